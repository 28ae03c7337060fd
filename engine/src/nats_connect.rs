//! How every command reaches NATS: who it is (a credentials file, an nkey,
//! a user and password, a token) and TLS (a CA of its own, a client
//! certificate). The URL may carry a user and password or a token too
//! (`nats://user:pass@host`); the flags add to it.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::secret::Secret;

/// The NATS credentials and TLS settings. `Debug` shows which are set,
/// never a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// A `.creds` file (a user JWT and its nkey seed), as `nsc` writes.
    pub creds: Option<PathBuf>,
    /// A file holding an nkey seed (`SU…`).
    pub nkey_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    /// A CA (PEM) the server's certificate must chain to; TLS is then
    /// required.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify
    /// clients; TLS is then required.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAuth")
            .field("creds", &self.creds)
            .field("nkey_file", &self.nkey_file)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

/// A NATS URL as messages show it: without its password, and without a
/// user name given alone (that is a token: `nats://TOKEN@host`).
pub fn shown_url(url: &str) -> String {
    let redacted = provenant_log::redact_url(url);
    match reqwest::Url::parse(&redacted) {
        Ok(mut u) if !u.username().is_empty() && u.password().is_none() => {
            let _ = u.set_username("***");
            u.to_string()
        }
        _ => redacted,
    }
}

impl NatsAuth {
    /// Refuses settings that cannot work together, before connecting.
    pub fn check(&self) -> anyhow::Result<()> {
        let ways = [
            self.creds.is_some(),
            self.nkey_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        anyhow::ensure!(
            ways.iter().filter(|w| **w).count() <= 1,
            "give one way to authenticate to NATS: a credentials file, an nkey, a user and password, or a token"
        );
        anyhow::ensure!(
            self.user.is_some() == self.password.is_some(),
            "a NATS user needs its password, and a password its user"
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "a NATS client certificate needs its key (--nats-tls-cert with --nats-tls-key)"
        );
        Ok(())
    }

    /// The connect options with these credentials and TLS settings.
    pub async fn options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        self.check()?;
        let mut options = async_nats::ConnectOptions::new();
        if let Some(path) = &self.creds {
            options = options.credentials_file(path).await.with_context(|| {
                format!("cannot read the NATS credentials file {}", path.display())
            })?;
        }
        if let Some(path) = &self.nkey_file {
            let seed = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the nkey file {}", path.display()))?;
            let seed = seed.trim();
            anyhow::ensure!(
                seed.starts_with("SU"),
                "{} holds no user nkey seed (SU…)",
                path.display()
            );
            options = options.nkey(seed.to_owned());
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        if let Some(token) = &self.token {
            options = options.token(token.expose().to_owned());
        }
        if let Some(ca) = &self.tls_ca {
            anyhow::ensure!(ca.is_file(), "no CA file at {}", ca.display());
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            for file in [cert, key] {
                anyhow::ensure!(file.is_file(), "no file at {}", file.display());
            }
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_token_or_password() {
        assert_eq!(
            shown_url("nats://s3cr3t@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        let shown = shown_url("nats://engine:pw-1@127.0.0.1:4222");
        assert!(
            shown.contains("engine") && !shown.contains("pw-1"),
            "{shown}"
        );
        assert_eq!(shown_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        let pg = provenant_log::redact_url("postgres://u@h/db?sslmode=require&password=pw-2");
        assert!(
            pg.contains("sslmode=require") && !pg.contains("pw-2"),
            "{pg}"
        );
    }

    #[test]
    fn debug_shows_which_are_set_and_no_secret() {
        let auth = NatsAuth {
            user: Some("engine".into()),
            password: Secret::new("pw-8731"),
            ..Default::default()
        };
        let shown = format!("{auth:?}");
        assert!(shown.contains("engine"), "{shown}");
        assert!(!shown.contains("pw-8731"), "{shown}");
    }

    #[test]
    fn settings_that_cannot_work_together_are_refused() {
        let both = NatsAuth {
            token: Secret::new("t"),
            creds: Some("x.creds".into()),
            ..Default::default()
        };
        assert!(both.check().unwrap_err().to_string().contains("one way"));
        let no_password = NatsAuth {
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(no_password.check().is_err());
        let no_key = NatsAuth {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(no_key.check().unwrap_err().to_string().contains("its key"));
        assert!(NatsAuth::default().check().is_ok());
    }
}
