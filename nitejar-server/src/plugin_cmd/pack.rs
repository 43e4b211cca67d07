//! `nitejar plugin pack <dir> [--sign <key>]`: an uploadable `.tgz`.
//!
//! A plugin crate (a directory with `Cargo.toml`) is built first (`cargo build --lib`, release by
//! default) and packed as a package: the manifest, the library at the manifest's `entry`, and
//! `skills/`, the icon, `README*` and `LICENSE*` when present — not the sources. Any other
//! directory is packed as it is (without `.git`, `target` and `node_modules`). The package is
//! validated exactly as the server will validate it, its content digest computed, and with
//! `--sign` a minisign signature of the digest written into it as `nitejar.plugin.sig`.
//!
//! Every package gets a `package.json` (see [`npm_package`]), so the same package can be
//! published with `npm publish` and installed with `nitejar plugin install <npm name>`. An
//! author's own `package.json` is kept as written. It is part of the package, hence of the
//! digest and the signature: npm publishes the files as they are.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{anyhow, bail, Context as _};
use nitejar_core::install::archive::{read_dir_files, write_tgz};
use nitejar_core::install::{digest_dir, NpmSpec, SIGNATURE_FILE, SKIPPED_DIRS};
use nitejar_core::manifest::{current_target_triple, validate_package_dir, ValidateOptions};
use nitejar_sdk::manifest::{Manifest, MANIFEST_FILE};
use serde_json::json;

use super::Out;
use crate::config;

/// npm's package file.
const PACKAGE_JSON: &str = "package.json";

/// What `nitejar plugin pack` was asked to do.
pub(crate) struct PackOptions<'a> {
    pub dir: &'a Path,
    pub sign: Option<&'a Path>,
    pub out_file: Option<PathBuf>,
    pub profile: &'a str,
    pub npm_name: Option<String>,
}

pub(crate) fn run(options: PackOptions<'_>, out: &Out) -> ExitCode {
    match pack(options, out.json) {
        Ok(packed) => out.ok(json!({ "packed": packed }), || {
            println!(
                "packed {} {} into {}",
                packed.id,
                packed.version,
                packed.file.display()
            );
            println!("  digest:    {}", packed.digest);
            println!("  npm name:  {}", packed.npm_name);
            println!("  files:     {}, {} bytes", packed.files, packed.bytes);
            match &packed.signed_by {
                Some(key) => println!("  signature: minisign key {key}"),
                None => println!("  signature: none (sign with --sign <minisign secret key>)"),
            }
            println!(
                "install it: nitejar plugin install {}",
                packed.file.display()
            );
            println!(
                "publish it: npm publish {}   (then: nitejar plugin install {})",
                packed.file.display(),
                packed.npm_name
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
    /// The name in the package's `package.json`.
    npm_name: String,
}

fn pack(options: PackOptions<'_>, quiet: bool) -> anyhow::Result<Packed> {
    let PackOptions {
        dir,
        sign,
        out_file,
        profile,
        npm_name,
    } = options;
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
    let npm_name = npm_package(&package, &manifest, npm_name, sign.is_some())?;
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
        npm_name,
    })
}

/// The npm name a plugin id gets when the author names none: `nitejar-plugin-` and the id's last
/// part (`com.acme.jira` → `nitejar-plugin-jira`), the form operators search npm for.
pub(crate) fn default_npm_name(id: &str) -> String {
    let last = id.rsplit('.').next().unwrap_or(id);
    if last.starts_with("nitejar-plugin-") {
        last.to_string()
    } else {
        format!("nitejar-plugin-{last}")
    }
}

/// Makes sure the staged package has a `package.json` and returns its npm name. An author's own
/// is kept as written (its version must be the manifest's: operators ask npm for that version);
/// otherwise one is written with the npm name (`--npm-name`, else [`default_npm_name`]), the
/// manifest's version, description, license and links, every file of the package under `files`,
/// the `nitejar-plugin` keyword, and a `nitejar` block with the plugin id and engine range.
fn npm_package(
    package: &Path,
    manifest: &Manifest,
    npm_name: Option<String>,
    signed: bool,
) -> anyhow::Result<String> {
    let path = package.join(PACKAGE_JSON);
    if path.is_file() {
        let text =
            std::fs::read_to_string(&path).context("could not read the package's package.json")?;
        let own: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("the package's package.json is not JSON ({e}); fix it, or remove it and `nitejar plugin pack` writes one"))?;
        let name = own["name"].as_str().unwrap_or_default().to_string();
        if name.is_empty() {
            bail!(
                "the package's package.json has no `name`; add one (e.g. \"{}\")",
                default_npm_name(&manifest.id)
            );
        }
        if let Some(wanted) = npm_name.filter(|n| *n != name) {
            bail!("--npm-name {wanted} differs from the name in the package's own package.json ({name}); change it there, or drop --npm-name");
        }
        let version = own["version"].as_str().unwrap_or_default();
        if version != manifest.version {
            bail!(
                "package.json says version {:?} but {MANIFEST_FILE} says {:?}; make them the same (operators install an npm version and get the manifest's)",
                version, manifest.version
            );
        }
        return Ok(name);
    }
    let name = npm_name.unwrap_or_else(|| default_npm_name(&manifest.id));
    NpmSpec::parse(&name).map_err(|_| {
        anyhow!("`{name}` is not an npm package name; npm names are lower case letters, digits, `-`, `.` and `_`, optionally under a scope (`@acme/nitejar-jira`); give one with --npm-name")
    })?;
    let mut files: Vec<String> = std::fs::read_dir(package)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if signed {
        files.push(SIGNATURE_FILE.to_string());
    }
    files.sort();
    files.dedup();
    let mut keywords = vec!["nitejar-plugin".to_string(), "nitejar".to_string()];
    for keyword in &manifest.keywords {
        if !keywords.contains(keyword) {
            keywords.push(keyword.clone());
        }
    }
    let mut doc = json!({
        "name": name,
        "version": manifest.version,
        "description": manifest.description.clone().unwrap_or_else(|| manifest.name.clone()),
        "keywords": keywords,
        "files": files,
        "nitejar": {
            "id": manifest.id,
            "engine": manifest.engine.nitejar,
            "manifest": MANIFEST_FILE,
        },
    });
    let optional = [
        ("license", &manifest.license),
        ("author", &manifest.author),
        ("homepage", &manifest.homepage),
        ("repository", &manifest.repository),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            doc[key] = json!(value);
        }
    }
    let text = serde_json::to_string_pretty(&doc).context("could not write package.json")?;
    std::fs::write(&path, text + "\n").context("could not write package.json")?;
    Ok(name)
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
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The one failure an author cannot fix in their own code: a registry without the SDK.
        let sdk_hint = if quiet && !stderr.contains("no matching package named `nitejar-sdk`") {
            ""
        } else {
            "\nif cargo said `no matching package named nitejar-sdk`, its registry does not have this SDK release: depend on a Nitejar checkout's SDK in Cargo.toml (`nitejar-sdk = { path = \"<checkout>/nitejar-sdk\" }`, which `nitejar plugin new --sdk-path` writes)"
        };
        bail!(
            "`cargo build --lib --profile {profile}` failed in {}{}{sdk_hint}",
            dir.display(),
            if quiet {
                format!(":\n{stderr}")
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
    // An author's package.json (an npm name of their own, a scope, more metadata) is kept.
    let mut extras: Vec<PathBuf> = vec![PathBuf::from(PACKAGE_JSON)];
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
        // A key stored without a password (`minisign -G -W`, `nitejar plugin keygen
        // --unprotected`) needs none, whatever NITEJAR_SIGN_PASSWORD says.
        (_, Some(key)) => Ok(key),
        (Some(p), None) => open(Some(p)),
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
