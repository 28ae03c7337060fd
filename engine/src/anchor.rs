//! Head anchors and their Ed25519 signatures: what an anchor says, how it
//! is signed and how a signature is checked. Pure; the service publishes
//! anchors (`service::anchors`), `audit verify` and `audit anchors` check
//! them.
//!
//! An anchor is a JSON object `{head, position, hash, at, engine_instance,
//! signature?}`. The signature covers the canonical JSON encoding of every
//! other member, after the domain tag [`SIGNED_PREFIX`] (so no other
//! message a key signs can pass for an anchor): `{alg: "ed25519", key:
//! <public key, base64>, value: <signature, base64>}`.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use provenant_events::Head;
use serde_json::{Map, Value, json};

/// What the signed bytes start with.
pub const SIGNED_PREFIX: &[u8] = b"provenant-anchor-v1\n";

/// An anchor's members, without its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub head: Head,
    /// When the engine read the head (RFC 3339).
    pub at: String,
    pub engine_instance: String,
}

impl Anchor {
    fn unsigned(&self) -> Map<String, Value> {
        let value = json!({
            "head": self.head.to_string(),
            "position": self.head.position,
            "hash": self.head.hash.to_string(),
            "at": self.at,
            "engine_instance": self.engine_instance,
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The anchor as published: signed when a key is given.
    pub fn to_json(&self, key: Option<&SigningKey>) -> Value {
        let mut map = self.unsigned();
        if let Some(key) = key {
            let signature = key.sign(&signed_bytes(&map));
            map.insert(
                "signature".into(),
                json!({
                    "alg": "ed25519",
                    "key": BASE64.encode(key.verifying_key().as_bytes()),
                    "value": BASE64.encode(signature.to_bytes()),
                }),
            );
        }
        Value::Object(map)
    }
}

fn signed_bytes(unsigned: &Map<String, Value>) -> Vec<u8> {
    let text = provenant_events::canonical::to_canonical_string(&Value::Object(unsigned.clone()));
    let mut bytes = SIGNED_PREFIX.to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// Why an anchor is not one to trust.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnchorError {
    #[error("not an anchor: {0}")]
    Malformed(String),
    #[error("the anchor is not signed")]
    Unsigned,
    #[error("the anchor is signed by another key ({found}), not the one given ({expected})")]
    WrongKey { found: String, expected: String },
    #[error("the anchor's signature does not verify: it was forged or altered")]
    BadSignature,
}

/// Reads an anchor's members, without checking a signature.
pub fn parse(value: &Value) -> Result<Anchor, AnchorError> {
    let malformed = |what: &str| AnchorError::Malformed(what.to_owned());
    let object = value
        .as_object()
        .ok_or_else(|| malformed("not a JSON object"))?;
    let text = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&format!("no string {name:?}")))
    };
    let head: Head = text("head")?
        .parse()
        .map_err(|_| malformed("\"head\" is not POSITION:HASH"))?;
    // The members repeated for readers must agree with the head.
    if object.get("position").and_then(Value::as_u64) != Some(head.position)
        || object.get("hash").and_then(Value::as_str) != Some(head.hash.to_string().as_str())
    {
        return Err(malformed(
            "\"position\" and \"hash\" disagree with \"head\"",
        ));
    }
    Ok(Anchor {
        head,
        at: text("at")?.to_owned(),
        engine_instance: text("engine_instance")?.to_owned(),
    })
}

/// Reads an anchor and checks that `key` signed exactly these members.
pub fn verify(value: &Value, key: &VerifyingKey) -> Result<Anchor, AnchorError> {
    let anchor = parse(value)?;
    let signature = value.get("signature").ok_or(AnchorError::Unsigned)?;
    let field = |name: &str| {
        signature
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| AnchorError::Malformed(format!("no string signature.{name}")))
    };
    if field("alg")? != "ed25519" {
        return Err(AnchorError::Malformed(
            "signature.alg is not \"ed25519\"".into(),
        ));
    }
    let expected = BASE64.encode(key.as_bytes());
    let found = field("key")?;
    if found != expected {
        return Err(AnchorError::WrongKey {
            found: found.to_owned(),
            expected,
        });
    }
    let bytes = BASE64
        .decode(field("value")?)
        .map_err(|_| AnchorError::Malformed("signature.value is not base64".into()))?;
    let signature = Signature::from_slice(&bytes)
        .map_err(|_| AnchorError::Malformed("signature.value is not 64 bytes".into()))?;
    // What was signed is the anchor's members as read (all of them but the
    // signature): a member added or changed after signing fails.
    let mut unsigned = value.as_object().cloned().unwrap_or_default();
    unsigned.remove("signature");
    key.verify_strict(&signed_bytes(&unsigned), &signature)
        .map_err(|_| AnchorError::BadSignature)?;
    Ok(anchor)
}

/// The public key's short form, as anchors carry it.
pub fn key_text(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// A private key from a PKCS#8 PEM file (`provenant keys generate`, or
/// `openssl genpkey -algorithm ed25519`).
pub fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the private key {} may be read by others (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an Ed25519 private key in PKCS#8 PEM: {e}",
            path.display()
        )
    })
}

/// A public key from a PEM file (SubjectPublicKeyInfo, as `provenant keys
/// generate` writes beside the private key, or `openssl pkey -pubout`).
pub fn read_verifying_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key file {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an Ed25519 public key in PEM: {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn anchor() -> Anchor {
        Anchor {
            head: format!("42:{}", "ab".repeat(32)).parse().unwrap(),
            at: "2026-12-02T05:00:00.000000Z".into(),
            engine_instance: "e1".into(),
        }
    }

    #[test]
    fn a_signed_anchor_verifies_with_its_key_only() {
        let signed = anchor().to_json(Some(&key(1)));
        assert_eq!(verify(&signed, &key(1).verifying_key()), Ok(anchor()));
        assert!(matches!(
            verify(&signed, &key(2).verifying_key()),
            Err(AnchorError::WrongKey { .. })
        ));
        let unsigned = anchor().to_json(None);
        assert_eq!(
            verify(&unsigned, &key(1).verifying_key()),
            Err(AnchorError::Unsigned)
        );
        assert_eq!(parse(&unsigned), Ok(anchor()));
    }

    #[test]
    fn any_change_after_signing_fails() {
        let signed = anchor().to_json(Some(&key(1)));
        let public = key(1).verifying_key();
        let mut later = anchor();
        later.head = format!("43:{}", "cd".repeat(32)).parse().unwrap();
        // The head moved, with position and hash kept consistent.
        let mut forged = later.to_json(None);
        forged["signature"] = signed["signature"].clone();
        assert_eq!(verify(&forged, &public), Err(AnchorError::BadSignature));
        let mut added = signed.clone();
        added["note"] = json!("x");
        assert_eq!(verify(&added, &public), Err(AnchorError::BadSignature));
        let mut inconsistent = signed.clone();
        inconsistent["position"] = json!(7);
        assert!(matches!(
            verify(&inconsistent, &public),
            Err(AnchorError::Malformed(_))
        ));
        let mut garbled = signed;
        garbled["signature"]["value"] = json!("!!");
        assert!(matches!(
            verify(&garbled, &public),
            Err(AnchorError::Malformed(_))
        ));
        assert!(matches!(
            verify(&json!([1]), &public),
            Err(AnchorError::Malformed(_))
        ));
    }
}
