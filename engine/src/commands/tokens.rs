//! `serve`'s tokens, one per role: given on the command line, in an
//! environment variable, or in a file (for secret mounts). Their values are
//! never shown: not in `--help` (`hide_env_values`), not in `Debug`.

use anyhow::Context as _;
use clap::Args;

use crate::secret::{Secret, SecretArg, parse_secret};
use crate::service::access::Tokens;

/// The roles' tokens.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The game's token: may send ticks and configure and read worlds.
    #[arg(long, value_name = "TOKEN", env = "PROVENANT_GAME_TOKEN", hide_env_values = true, value_parser = parse_secret, conflicts_with = "game_token_file")]
    pub game_token: Option<SecretArg>,
    /// A file holding the game's token (its trailing newline dropped).
    #[arg(long, value_name = "FILE", env = "PROVENANT_GAME_TOKEN_FILE")]
    pub game_token_file: Option<std::path::PathBuf>,
    /// A reader's token: may read events, sessions, worlds and /metrics.
    #[arg(long, value_name = "TOKEN", env = "PROVENANT_READER_TOKEN", hide_env_values = true, value_parser = parse_secret, conflicts_with = "reader_token_file")]
    pub reader_token: Option<SecretArg>,
    /// A file holding a reader's token.
    #[arg(long, value_name = "FILE", env = "PROVENANT_READER_TOKEN_FILE")]
    pub reader_token_file: Option<std::path::PathBuf>,
    /// The admin's token: may do everything, the admin API included. Once
    /// any role has a token, every route but /livez and /readyz needs
    /// `Authorization: Bearer <token>` of a role it admits (401 without a
    /// token, 403 with another role's). Without any token the engine
    /// listens only on a loopback address.
    #[arg(long, value_name = "TOKEN", env = "PROVENANT_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secret, conflicts_with = "admin_token_file")]
    pub admin_token: Option<SecretArg>,
    /// A file holding the admin's token.
    #[arg(long, value_name = "FILE", env = "PROVENANT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
}

impl TokenArgs {
    /// The tokens, each from its argument or its file.
    pub fn tokens(&self) -> anyhow::Result<Tokens> {
        Ok(Tokens {
            game: pick(&self.game_token, &self.game_token_file, "--game-token-file")?,
            reader: pick(
                &self.reader_token,
                &self.reader_token_file,
                "--reader-token-file",
            )?,
            admin: pick(
                &self.admin_token,
                &self.admin_token_file,
                "--admin-token-file",
            )?,
        })
    }
}

fn pick(
    given: &Option<SecretArg>,
    file: &Option<std::path::PathBuf>,
    flag: &str,
) -> anyhow::Result<Option<Secret>> {
    if let Some(token) = given.as_ref().and_then(|g| g.0.clone()) {
        return Ok(Some(token));
    }
    let Some(path) = file.as_ref().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    let token = text.trim_end_matches(['\n', '\r']);
    let token = parse_secret(token)
        .map_err(|e| anyhow::anyhow!("{flag}: {}: the token {e}", path.display()))?;
    token
        .0
        .map(Some)
        .with_context(|| format!("{flag}: {} holds no token", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_token_without_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let args = TokenArgs {
            game_token: None,
            game_token_file: None,
            reader_token: None,
            reader_token_file: Some(path.clone()),
            admin_token: None,
            admin_token_file: None,
        };
        let tokens = args.tokens().unwrap();
        assert_eq!(tokens.reader.unwrap().expose(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        let err = format!("{:#}", args.tokens().unwrap_err());
        assert!(err.contains("holds no token"), "{err}");
        let missing = TokenArgs {
            reader_token_file: Some(dir.path().join("missing")),
            ..args
        };
        let err = format!("{:#}", missing.tokens().unwrap_err());
        assert!(err.contains("--reader-token-file: cannot read"), "{err}");
    }
}
