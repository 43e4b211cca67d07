//! `nitejar plugin pack <dir> [--sign <key>]`: an uploadable `.tgz`.
//!
//! A plugin crate (a directory with `Cargo.toml`) is built first (`cargo build --lib`, release by
//! default) and packed as a package: the manifest, the library at the manifest's `entry`, and
//! `skills/`, the icon, `README*` and `LICENSE*` when present — not the sources. Any other
//! directory is packed as it is (without `.git`, `target` and `node_modules`). The package is
//! validated exactly as the server will validate it, its content digest computed, and with
//! `--sign` a minisign signature of the digest written into it as `nitejar.plugin.sig`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{anyhow, bail, Context as _};
use nitejar_core::install::archive::{read_dir_files, write_tgz};
use nitejar_core::install::{digest_dir, SIGNATURE_FILE, SKIPPED_DIRS};
use nitejar_core::manifest::{current_target_triple, validate_package_dir, ValidateOptions};
use nitejar_sdk::manifest::{Manifest, MANIFEST_FILE};
use serde_json::json;

use super::Out;
use crate::config;

pub(crate) fn run(
    dir: &Path,
    sign: Option<&Path>,
    out_file: Option<PathBuf>,
    profile: &str,
    out: &Out,
) -> ExitCode {
    match pack(dir, sign, out_file, profile, out.json) {
        Ok(packed) => out.ok(json!({ "packed": packed }), || {
            println!(
                "packed {} {} into {}",
                packed.id,
                packed.version,
                packed.file.display()
            );
            println!("  digest:    {}", packed.digest);
            println!("  files:     {}, {} bytes", packed.files, packed.bytes);
            match &packed.signed_by {
                Some(key) => println!("  signature: minisign key {key}"),
                None => println!("  signature: none (sign with --sign <minisign secret key>)"),
            }
            println!(
                "install it: nitejar plugin install {}",
                packed.file.display()
            );
        }),
        Err(e) => out.fail(&format!("{e:#}"), serde_json::Value::Null),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Packed {
    id: String,
    version: String,
    file: PathBuf,
    digest: String,
    files: usize,
    bytes: u64,
    signed_by: Option<String>,
}

fn pack(
    dir: &Path,
    sign: Option<&Path>,
    out_file: Option<PathBuf>,
    profile: &str,
    quiet: bool,
) -> anyhow::Result<Packed> {
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE))
        .with_context(|| format!("there is no readable {MANIFEST_FILE} in {}", dir.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
        format!(
            "{MANIFEST_FILE} cannot be read; run `nitejar plugin validate {}`",
            dir.display()
        )
    })?;
    let staging = tempfile::tempdir().context("could not create a temporary directory")?;
    let package = staging.path().join("package");
    std::fs::create_dir(&package)?;
    if dir.join("Cargo.toml").is_file() {
        stage_crate(dir, &manifest, &package, profile, quiet)?;
    } else {
        copy_dir(dir, &package)?;
        let _ = std::fs::remove_file(package.join(SIGNATURE_FILE));
    }
    let valid = validate_package_dir(&package, &ValidateOptions::new())
        .map_err(|e| anyhow!("the package is not valid:\n{e}"))?;
    let digest = digest_dir(&package).context("could not digest the package")?;
    let signed_by = match sign {
        Some(key) => Some(sign_digest(key, &digest, &valid.manifest, &package)?),
        None => None,
    };
    let files = read_dir_files(&package)?;
    let bytes = files.iter().map(|f| f.contents.len() as u64).sum();
    let file = out_file.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.tgz",
            valid.manifest.id, valid.manifest.version
        ))
    });
    let out = std::fs::File::create(&file)
        .with_context(|| format!("could not create {}", file.display()))?;
    write_tgz(&files, 6, std::io::BufWriter::new(out))
        .with_context(|| format!("could not write {}", file.display()))?;
    Ok(Packed {
        id: valid.manifest.id,
        version: valid.manifest.version,
        file,
        digest,
        files: files.len(),
        bytes,
        signed_by,
    })
}

/// Builds the crate's library and lays the package out in `package`.
fn stage_crate(
    dir: &Path,
    manifest: &Manifest,
    package: &Path,
    profile: &str,
    quiet: bool,
) -> anyhow::Result<()> {
    let target = current_target_triple();
    let entry = manifest
        .entry
        .as_ref()
        .and_then(|e| e.for_target(&target))
        .ok_or_else(|| anyhow!("{MANIFEST_FILE} has no `entry` for {target}; set it to the library's path in the package, e.g. `lib/lib<name>.so`"))?
        .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args([
            "build",
            "--lib",
            "--message-format=json-render-diagnostics",
            "--profile",
            profile,
        ])
        .stdout(Stdio::piped())
        .stderr(if quiet {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    if !quiet {
        eprintln!("building {} ({profile})…", dir.display());
    }
    let output = command.output().context("could not run cargo")?;
    if !output.status.success() {
        bail!(
            "`cargo build --lib --profile {profile}` failed in {}{}",
            dir.display(),
            if quiet {
                format!(":\n{}", String::from_utf8_lossy(&output.stderr))
            } else {
                String::new()
            }
        );
    }
    let library = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["crate_types"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.to_string_lossy().ends_with(std::env::consts::DLL_SUFFIX))
        .ok_or_else(|| anyhow!("cargo built no cdylib; set `crate-type = [\"cdylib\", \"rlib\"]` under [lib] in Cargo.toml"))?;
    let target_path = package.join(&entry);
    if let Some(parent) = target_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(&library, &target_path)
        .with_context(|| format!("could not copy {}", library.display()))?;
    std::fs::copy(dir.join(MANIFEST_FILE), package.join(MANIFEST_FILE))?;
    let mut extras: Vec<PathBuf> = Vec::new();
    if let Some(icon) = &manifest.icon {
        extras.push(PathBuf::from(icon));
    }
    extras.push(PathBuf::from("skills"));
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("README") || name.starts_with("LICENSE") {
            extras.push(PathBuf::from(name));
        }
    }
    for extra in extras {
        let from = dir.join(&extra);
        let to = package.join(&extra);
        if from.is_dir() {
            copy_dir(&from, &to)?;
        } else if from.is_file() {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)?.flatten() {
        let name = entry.file_name();
        if SKIPPED_DIRS.iter().any(|s| name == *s) {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if entry.path().extension().is_some_and(|e| e == "tgz")
            && from.join(MANIFEST_FILE).is_file()
        {
            // An earlier pack's output next to the manifest is not part of the package.
            continue;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A secret key stored without a password (`minisign -G -W`): its KDF algorithm bytes are zero.
fn unencrypted(text: &str) -> Option<minisign::SecretKey> {
    use base64::Engine as _;
    let line = text.lines().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    if bytes.get(2..4) != Some(&[0, 0]) {
        return None;
    }
    minisign::SecretKey::from_bytes(&bytes).ok()
}

/// Signs the digest text with a minisign secret key and writes `nitejar.plugin.sig`. Returns the
/// key id.
fn sign_digest(
    key_file: &Path,
    digest: &str,
    manifest: &Manifest,
    package: &Path,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("could not read the secret key {}", key_file.display()))?;
    let password = config::var("SIGN_PASSWORD");
    let open = |password: Option<String>| {
        minisign::SecretKeyBox::from_string(&text).and_then(|b| b.into_secret_key(password))
    };
    let secret = match (password, unencrypted(&text)) {
        (Some(p), _) => open(Some(p)),
        (None, Some(key)) => Ok(key),
        // An encrypted key without NITEJAR_SIGN_PASSWORD: asked for on a terminal.
        (None, None) if std::io::stdin().is_terminal() => open(None),
        (None, None) => open(Some(String::new())),
    }
    .map_err(|e| anyhow!("could not open the secret key {} ({e}); if it is password-protected, set NITEJAR_SIGN_PASSWORD", key_file.display()))?;
    let public = minisign::PublicKey::from_secret_key(&secret)
        .map_err(|e| anyhow!("the secret key {} is damaged: {e}", key_file.display()))?;
    let comment = format!(
        "nitejar plugin {}@{} {digest}",
        manifest.id, manifest.version
    );
    let signature = minisign::sign(
        Some(&public),
        &secret,
        digest.as_bytes(),
        Some(&comment),
        None,
    )
    .map_err(|e| anyhow!("signing failed: {e}"))?;
    std::fs::write(package.join(SIGNATURE_FILE), signature.to_string())?;
    let key_line = public.to_box().map(|b| b.into_string()).unwrap_or_default();
    let id = key_line
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_string();
    Ok(id)
}
