//! `provenant keys generate`: an Ed25519 key pair for signing head anchors
//! (`serve --anchor-key-file`) and checking them (`audit anchors`, `audit
//! verify --anchor-public-key`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

use crate::error_text::report;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new Ed25519 key pair: the private key (PKCS#8 PEM, readable
    /// by its owner only) for `serve --anchor-key-file`, and beside it the
    /// public key (`<FILE>.pub`, PEM) for the auditors.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where the private key goes; the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE", default_value = "anchor-key.pem")]
    pub out: PathBuf,
    /// Replace key files that exist (otherwise they are kept and the
    /// command fails).
    #[arg(long)]
    pub force: bool,
}

impl KeysCommand {
    pub fn run(self) -> std::process::ExitCode {
        match self {
            KeysCommand::Generate(args) => report(generate(&args)),
        }
    }
}

/// The public key's path beside a private key's.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("cannot encode the private key: {e}"))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("cannot encode the public key: {e}"))?;
    let public_file = public_path(&args.out);
    if !args.force {
        for path in [&args.out, &public_file] {
            anyhow::ensure!(
                !path.exists(),
                "{} exists (--force replaces it)",
                path.display()
            );
        }
    }
    write_new(&args.out, private.as_bytes(), 0o600, args.force)?;
    write_new(&public_file, public.as_bytes(), 0o644, args.force)?;
    println!("private key: {}", args.out.display());
    println!("public key:  {}", public_file.display());
    println!(
        "key:         {}",
        crate::anchor::key_text(&key.verifying_key())
    );
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists (--force replaces it)", path.display())
        } else {
            format!("cannot write {}", path.display())
        }
    })?;
    // A file replaced keeps its mode: set it before the key is written.
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
