//! `nitejar plugin keygen [--out DIR]`: a minisign key pair for signing plugin packages.
//!
//! The files are minisign's own: `minisign.key` (the secret key, protected with a password through
//! scrypt as `minisign -G` does, or stored without one as `minisign -G -W` does when asked with
//! `--unprotected`) and `minisign.pub`. `nitejar plugin pack --sign` and the `minisign` tool read
//! the secret key; the public key's base64 line is what operators put in
//! `NITEJAR_PLUGIN_TRUSTED_KEYS`.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use serde_json::json;

use super::Out;
use crate::config;

/// The secret key's file name in the key directory (minisign's).
pub(crate) const SECRET_KEY_FILE: &str = "minisign.key";
/// The public key's file name in the key directory (minisign's).
pub(crate) const PUBLIC_KEY_FILE: &str = "minisign.pub";

pub(crate) fn run(out_dir: Option<PathBuf>, unprotected: bool, force: bool, out: &Out) -> ExitCode {
    match keygen(out_dir, unprotected, force) {
        Ok(keys) => out.ok(json!({ "keys": keys }), || {
            let protection = if keys.protected {
                "protected with your password"
            } else {
                "NOT password-protected"
            };
            println!(
                "wrote the secret key {} ({protection}; keep it private and backed up)",
                keys.secret_key.display()
            );
            println!("wrote the public key {}", keys.public_key.display());
            println!("key id: {}", keys.key_id);
            println!();
            println!("Sign a package with it:");
            println!(
                "  nitejar plugin pack . --sign {}",
                keys.secret_key.display()
            );
            println!("Give operators the public key line; a server in self_host_guarded mode");
            println!("then accepts what you sign:");
            println!("  NITEJAR_PLUGIN_TRUSTED_KEYS={}", keys.trusted_key);
        }),
        Err(e) => out.fail(&format!("{e:#}"), serde_json::Value::Null),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Keys {
    secret_key: PathBuf,
    public_key: PathBuf,
    key_id: String,
    /// The line for `NITEJAR_PLUGIN_TRUSTED_KEYS`.
    trusted_key: String,
    protected: bool,
}

fn keygen(out_dir: Option<PathBuf>, unprotected: bool, force: bool) -> anyhow::Result<Keys> {
    let dir = match out_dir {
        Some(dir) => dir,
        None => default_dir()?,
    };
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    if !force {
        for path in [&secret_path, &public_path] {
            if path.exists() {
                bail!(
                    "{} exists already; a new key would make everything signed with the old one \
                     unverifiable by operators who trust it. Choose another directory with --out, \
                     or pass --force to replace it",
                    path.display()
                );
            }
        }
    }
    let password = if unprotected { None } else { Some(password()?) };
    let pair =
        minisign::KeyPair::generate_encrypted_keypair(Some(password.clone().unwrap_or_default()))
            .map_err(|e| anyhow!("could not generate a key pair: {e}"))?;
    let secret_text = match &password {
        Some(_) => pair
            .sk
            .to_box(None)
            .map_err(|e| anyhow!("could not encode the secret key: {e}"))?
            .into_string(),
        None => unprotected_box(&pair.sk),
    };
    let public_box = pair
        .pk
        .to_box()
        .map_err(|e| anyhow!("could not encode the public key: {e}"))?
        .into_string();
    let key_id = public_box
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_default()
        .to_string();
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    write_private(&secret_path, &secret_text, force)?;
    std::fs::write(&public_path, &public_box)
        .with_context(|| format!("could not write {}", public_path.display()))?;
    Ok(Keys {
        secret_key: secret_path,
        public_key: public_path,
        key_id,
        trusted_key: pair.pk.to_base64(),
        protected: password.is_some(),
    })
}

/// minisign's own default, `~/.minisign`.
fn default_dir() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".minisign"))
        .ok_or_else(|| anyhow!("HOME is not set; say where to write the keys with --out DIR"))
}

/// The password: `NITEJAR_SIGN_PASSWORD` (what `plugin pack --sign` reads too), else asked twice
/// on the terminal. An empty password would store the key unprotected without saying so.
fn password() -> anyhow::Result<String> {
    if let Some(password) = config::var("SIGN_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "the secret key needs a password and there is no terminal to ask on; set \
             NITEJAR_SIGN_PASSWORD, or pass --unprotected for a key stored without one"
        );
    }
    let first = rpassword::prompt_password("Password for the secret key: ")
        .context("could not read the password")?;
    if first.is_empty() {
        bail!("an empty password would leave the key unprotected; pass --unprotected if that is what you want");
    }
    let again = rpassword::prompt_password("The same password again: ")
        .context("could not read the password")?;
    if first != again {
        bail!("the passwords do not match; nothing was written");
    }
    Ok(first)
}

/// The secret key as `minisign -G -W` stores a key without a password: the key in clear with its
/// checksum, and the KDF algorithm bytes zero (which says "not encrypted" to minisign and to
/// `nitejar plugin pack --sign`).
fn unprotected_box(secret: &minisign::SecretKey) -> String {
    use base64::Engine as _;
    let mut raw = secret.to_bytes();
    raw[2..4].copy_from_slice(&[0, 0]);
    format!(
        "untrusted comment: minisign secret key (not password-protected)\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(&raw)
    )
}

/// Writes the secret key readable by its owner only, never following a link.
fn write_private(path: &Path, text: &str, replace: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        // A link there is removed, not written through.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("could not replace {}", path.display()))
            }
        }
    }
    options.create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", path.display()))
}
