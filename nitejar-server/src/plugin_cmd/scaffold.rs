//! `nitejar plugin new <name>`: a plugin crate that builds, tests and packs as it is.
//!
//! The crate depends on the SDK at `--sdk-path` (or `NITEJAR_SDK_PATH`), else on the SDK of the
//! Nitejar checkout the command runs in, else on the published `nitejar-sdk` of this release. In
//! the last case cargo is asked to resolve it at once: a registry without it is said here, with
//! what to do, instead of by the author's first `cargo test`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{anyhow, bail, Context as _};
use nitejar_sdk::manifest::{MANIFEST_FILE, SCHEMA};
use serde_json::json;

use super::pack::default_npm_name;
use super::Out;

/// The manifest schema's file beside the manifest, named by its `$schema`.
pub(crate) const SCHEMA_FILE: &str = "nitejar.plugin.schema.json";

pub(crate) fn run(
    name: &str,
    id: Option<String>,
    sdk_path: Option<PathBuf>,
    out: &Out,
) -> ExitCode {
    match scaffold(name, id, sdk_path) {
        Ok(created) => out.ok(
            json!({ "created": created.dir, "id": created.id, "sdk": created.sdk, "warning": created.warning }),
            || {
                let Created { dir, id, warning, .. } = &created;
                println!("created {} ({id})", dir.display());
                if let Some(warning) = warning {
                    println!("warning: {warning}");
                }
                println!("next (the crate's README.md walks the whole path):");
                println!("  cd {}", dir.display());
                println!("  cargo test");
                println!("  nitejar plugin pack .");
                println!("  nitejar plugin install {id}-0.1.0.tgz");
            },
        ),
        Err(e) => out.fail(&format!("{e:#}"), serde_json::Value::Null),
    }
}

struct Created {
    dir: PathBuf,
    id: String,
    /// How Cargo.toml names the SDK.
    sdk: String,
    /// Something the author should know (the SDK could not be checked).
    warning: Option<String>,
}

fn scaffold(name: &str, id: Option<String>, sdk_path: Option<PathBuf>) -> anyhow::Result<Created> {
    let valid_name = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid_name {
        bail!("`{name}` is not a crate name for a plugin; use lower-case letters, digits and `-`, starting with a letter (e.g. `my-plugin`)");
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        bail!(
            "{} exists already; choose another name or remove it",
            dir.display()
        );
    }
    let id = id.unwrap_or_else(|| format!("dev.local.{}", name.replace('_', "-")));
    let lib_name = name.replace('-', "_");
    let (sdk, from_registry) = match sdk_path {
        Some(path) => (path_dependency(&checked_sdk(&path)?), false),
        None => match find_sdk() {
            Some(path) => (path_dependency(&path), false),
            None => (format!("\"{}\"", nitejar_sdk::SDK_VERSION), true),
        },
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("could not create {}", dir.display()))?;
    let written = write_crate(&dir, name, &id, &lib_name, &sdk);
    let checked = match written {
        Ok(()) if from_registry => check_registry_sdk(&dir, name),
        Ok(()) => Ok(None),
        Err(e) => Err(e),
    };
    match checked {
        Ok(warning) => Ok(Created {
            dir,
            id,
            sdk,
            warning,
        }),
        Err(e) => {
            // Nothing half-made is left behind: the same command, corrected, can run again.
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

fn write_crate(dir: &Path, name: &str, id: &str, lib_name: &str, sdk: &str) -> anyhow::Result<()> {
    let write = |path: &str, text: String| -> anyhow::Result<()> {
        std::fs::write(dir.join(path), text).with_context(|| format!("could not write {path}"))
    };
    write("Cargo.toml", cargo_toml(name, sdk))?;
    write(MANIFEST_FILE, manifest(name, id, lib_name))?;
    write(SCHEMA_FILE, SCHEMA.to_string())?;
    write("src/lib.rs", LIB_RS.replace("{name}", name))?;
    write(".gitignore", "/target\n*.tgz\n".into())?;
    write("README.md", readme(name, id))?;
    Ok(())
}

fn path_dependency(path: &Path) -> String {
    format!("{{ path = {:?} }}", path.display().to_string())
}

/// The SDK directory the author named, made absolute; refused when it is not the SDK.
fn checked_sdk(path: &Path) -> anyhow::Result<PathBuf> {
    let absolute = path.canonicalize().map_err(|e| {
        anyhow!(
            "the nitejar-sdk path {} cannot be used ({e}); give the `nitejar-sdk` directory of a Nitejar checkout",
            path.display()
        )
    })?;
    let manifest = std::fs::read_to_string(absolute.join("Cargo.toml")).unwrap_or_default();
    let is_sdk = manifest
        .lines()
        .any(|l| l.replace(' ', "") == "name=\"nitejar-sdk\"");
    if !is_sdk {
        bail!(
            "{} is not the nitejar-sdk crate (its Cargo.toml does not name `nitejar-sdk`); give the `nitejar-sdk` directory of a Nitejar checkout",
            absolute.display()
        );
    }
    Ok(absolute)
}

/// Asks cargo to resolve the crate's dependencies now (`cargo generate-lockfile`). The SDK missing
/// from the registry is an error that says what to do; any other failure (no network, say) only a
/// warning, since the crate itself is fine.
fn check_registry_sdk(dir: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = match Command::new(&cargo)
        .current_dir(dir)
        .args(["generate-lockfile", "--quiet"])
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            return Ok(Some(format!(
                "could not run `{cargo}` to check that nitejar-sdk {} resolves ({e}); install Rust from https://rustup.rs to build the plugin",
                nitejar_sdk::SDK_VERSION
            )))
        }
    };
    if output.status.success() {
        return Ok(None);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("error: ").trim())
        .find(|l| !l.is_empty())
        .unwrap_or("it failed")
        .to_string();
    let missing = stderr.contains("no matching package named `nitejar-sdk`")
        || stderr.contains("requirement `nitejar-sdk");
    if missing {
        bail!("{}", sdk_missing(name, &said));
    }
    Ok(Some(format!(
        "cargo could not resolve the crate's dependencies yet ({said}); the crate is written, and builds once cargo can reach a registry with nitejar-sdk {} (or use --sdk-path)",
        nitejar_sdk::SDK_VERSION
    )))
}

/// What to do when the registry has no nitejar-sdk of this release.
pub(crate) fn sdk_missing(name: &str, cargo_said: &str) -> String {
    let version = nitejar_sdk::SDK_VERSION;
    format!(
        "nitejar-sdk {version} cannot be resolved from your cargo registry (cargo: {cargo_said}), so the crate would not build. Nothing was created. Use the SDK of a Nitejar checkout instead:\n  nitejar plugin new {name} --sdk-path <checkout>/nitejar-sdk\nor set NITEJAR_SDK_PATH=<checkout>/nitejar-sdk (a checkout: git clone {}), or make nitejar-sdk {version} available in the registry cargo uses",
        env!("CARGO_PKG_REPOSITORY")
    )
}

/// The nitejar-sdk of the checkout the current directory is in, if any (so `nitejar plugin new`
/// inside a Nitejar checkout depends on the SDK beside it).
fn find_sdk() -> Option<PathBuf> {
    let start = std::env::current_dir().ok()?;
    start
        .ancestors()
        .map(|d| d.join("nitejar-sdk"))
        .find(|d| d.join("Cargo.toml").is_file() && d.join("src/abi").is_dir())
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# cdylib: the library the server loads; rlib: so `cargo test` can test it.
crate-type = ["cdylib", "rlib"]

[dependencies]
nitejar-sdk = {sdk}
# The plugin's settings are read into a struct of its own (src/lib.rs).
serde = {{ version = "1", features = ["derive"] }}

# A plugin crate is a workspace of its own, so it also builds inside another checkout.
[workspace]
"#
    )
}

fn manifest(name: &str, id: &str, lib_name: &str) -> String {
    let suffix = std::env::consts::DLL_SUFFIX;
    let prefix = std::env::consts::DLL_PREFIX;
    format!(
        r#"{{
  "$schema": "./{SCHEMA_FILE}",
  "schemaVersion": 1,
  "id": "{id}",
  "name": "{name}",
  "version": "0.1.0",
  "description": "Signs every response.",
  "entry": "lib/{prefix}{lib_name}{suffix}",
  "engine": {{ "nitejar": ">={} <1.0.0" }},
  "contributes": {{ "hooks": ["response.pre_deliver"] }},
  "config": {{
    "schema": {{
      "type": "object",
      "properties": {{
        "signature": {{
          "type": "string",
          "title": "Signature",
          "description": "The line appended to every response.",
          "minLength": 1,
          "default": "— {name}"
        }}
      }}
    }}
  }}
}}
"#,
        nitejar_core::NITEJAR_VERSION
    )
}

fn readme(name: &str, id: &str) -> String {
    README_MD
        .replace("{name}", name)
        .replace("{id}", id)
        .replace("{npm}", &default_npm_name(id))
        .replace("{schema}", SCHEMA_FILE)
}

const README_MD: &str = r#"# {name}

A Nitejar plugin (`{id}`): a `response.pre_deliver` hook that appends a signature line to every
response before it is delivered. The line is a setting: declared with its default in
`nitejar.plugin.json` under `config.schema` (the server's admin shows it as a form and checks every
change against it) and read in `src/lib.rs` into a struct with `config.get()`. The hook captures
that struct when the plugin is built; the server builds the plugin again with every change (and
keeps the old settings when the new ones do not fit), so a handler never reloads anything.

## 1. Develop and test

```sh
cargo test
```

`nitejar_sdk::testing` runs hooks and integrations against a `TestHost` that answers host calls
(secrets, HTTP, files) from memory. `nitejar.plugin.json` names `{schema}` (beside it) as its
`$schema`, so editors complete and check the manifest as you type; `nitejar plugin schema` prints
the same schema and `nitejar plugin validate .` checks the manifest as the server will.

Permissions (hosts, secrets, paths, processes) go in `nitejar.plugin.json` under `permissions`; the
server checks them at the host boundary (`ctx.host.http`, `secret`, files, processes), and a
plugin it runs isolated is also held to them by the kernel. Do all I/O through `ctx.host`.

If cargo says `no matching package named nitejar-sdk`, your registry does not have this SDK
release: depend on a Nitejar checkout's SDK instead (`nitejar-sdk = { path =
"<checkout>/nitejar-sdk" }` in `Cargo.toml`, which `nitejar plugin new --sdk-path` writes).

## 2. Pack

```sh
nitejar plugin pack .
```

This builds the library (release) and writes `{id}-0.1.0.tgz`: the manifest, the library at its
`entry`, `skills/`, `README*`, `LICENSE*` and a `package.json`, validated as the server validates
it.

## 3. Sign

A server in `self_host_guarded` mode (the default) enables a plugin only when it is signed by a
key its operator trusts, or allowlisted. Make a minisign key pair once:

```sh
nitejar plugin keygen                                   # ~/.minisign/minisign.key and minisign.pub
nitejar plugin pack . --sign ~/.minisign/minisign.key
```

`keygen` asks for a password that protects the secret key (or reads `NITEJAR_SIGN_PASSWORD`, as
`pack --sign` does; `--unprotected` stores it without one) and prints the public-key line to give
operators: they add it to `NITEJAR_PLUGIN_TRUSTED_KEYS` (comma-separated, one line per key). Keep
the secret key private and backed up; a new key means operators must trust the new line.

## 4. Publish to npm

The packed `.tgz` is an npm package. Its `package.json` names it `{npm}` (choose another with
`nitejar plugin pack . --npm-name <name>`, or keep a `package.json` of your own in this directory;
its `version` must be the manifest's), lists its files, and carries the keyword `nitejar-plugin`.

```sh
npm publish --dry-run {id}-0.1.0.tgz    # what would be published
npm publish {id}-0.1.0.tgz
```

Publish the signed `.tgz` as it is: the signature covers every file, `package.json` included.
Bump `version` in `nitejar.plugin.json` (and `Cargo.toml`) for each release.

## 5. Install (operators)

```sh
nitejar plugin install {npm}          # from npm, the newest version (`@0.1.0` for one)
nitejar plugin install {id}-0.1.0.tgz  # or the file itself
nitejar plugin enable {id} --accept-consent
```

The server checks the tarball against the registry's integrity, the package's digest and, in
guarded mode, its signature. `NITEJAR_NPM_REGISTRY` and `NITEJAR_NPM_TOKEN` select another
registry. The operator can change the signature line with `nitejar plugin config {id}` or on the
plugin's admin page; the plugin is built again with the new settings at once.
"#;

const LIB_RS: &str = r#"//! {name}: a Nitejar plugin that signs every response before it is delivered.

use nitejar_sdk::config::{Config, ConfigError};
use nitejar_sdk::hooks::{HookResult, ResponsePreDeliver, ResponsePreDeliverPatch};
use nitejar_sdk::{LogLevel, Plugin};
use serde::Deserialize;

/// The plugin's settings. `nitejar.plugin.json` declares them under `config.schema`, with their
/// defaults: a setting the operator has not set takes its declared default.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The line appended to every response.
    pub signature: String,
}

/// What the plugin contributes. The server calls this when it loads the plugin, and again with
/// the new settings whenever the operator changes them.
pub fn plugin(config: &Config) -> Result<Plugin, ConfigError> {
    let settings: Settings = config.get()?;
    Ok(Plugin::builder()
        // The handler owns the settings it was built with; a change builds a new plugin, so it
        // never sees stale ones.
        .on(move |ctx, response: &ResponsePreDeliver| {
            ctx.host.log(LogLevel::Info, "signing a response");
            HookResult::change(
                ResponsePreDeliverPatch::new()
                    .content(format!("{}\n\n{}", response.content, settings.signature)),
            )
        })
        .build())
}

nitejar_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use nitejar_sdk::config::Config;
    use nitejar_sdk::hooks::ResponsePreDeliver;
    use nitejar_sdk::serde_json::{json, Value};
    use nitejar_sdk::testing::{run_hook, TestHost};

    const MANIFEST: &str = include_str!("../nitejar.plugin.json");

    /// What the hook makes of "hello" with these settings.
    fn respond(settings: Value) -> String {
        let config = Config::declared_in(MANIFEST, settings).expect("the manifest is JSON");
        let plugin = super::plugin(&config).expect("the settings fit");
        // Payloads grow with the SDK: start from `Default`, set what the hook reads.
        let mut response = ResponsePreDeliver::default();
        response.content = "hello".into();
        let run = run_hook(&plugin, &TestHost::new(), response);
        assert!(run.blocked.is_none());
        run.payload.content
    }

    #[test]
    fn responses_are_signed() {
        // Nothing set: the default the manifest declares.
        assert_eq!(respond(Value::Null), "hello\n\n— {name}");
    }

    #[test]
    fn the_signature_is_a_setting() {
        assert_eq!(respond(json!({ "signature": "— the team" })), "hello\n\n— the team");
    }
}
"#;
