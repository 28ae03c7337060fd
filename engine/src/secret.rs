//! A secret (a token, a password): never shown by `Debug`.

use std::fmt;

use sha2::{Digest, Sha256};

/// A secret (a token, a password): compared in constant time, never shown
/// by `Debug`.
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// Its SHA-256 digest, made once: every request's token is compared
    /// with it.
    digest: [u8; 32],
}

impl Secret {
    /// None for an empty string (an unset variable set to "").
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.is_empty()).then(|| Secret {
            digest: digest_of(&value),
            value,
        })
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Its SHA-256 digest, to compare in constant time whatever the length.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

/// The SHA-256 digest of a secret, or of a value compared with one.
pub fn digest_of(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// A secret as clap reads it from a flag or a variable: an empty value
/// (`PROVENANT_ADMIN_TOKEN=`, as compose files write an unset one) is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretArg(pub Option<Secret>);

/// clap's parser for [`SecretArg`]: a secret is visible ASCII (it travels
/// in an HTTP header or a NATS connect), or none when empty.
pub fn parse_secret(s: &str) -> Result<SecretArg, String> {
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "holds a character other than visible ASCII (no spaces or control characters)".into(),
        );
    }
    Ok(SecretArg(Secret::new(s)))
}

/// Compared in constant time (over SHA-256 digests, whatever the lengths).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.digest.ct_eq(&other.digest))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}
