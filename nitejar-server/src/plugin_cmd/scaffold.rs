//! `nitejar plugin new <name>`: a plugin crate that builds, tests and packs as it is.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde_json::json;

use super::Out;

pub(crate) fn run(
    name: &str,
    id: Option<String>,
    sdk_path: Option<PathBuf>,
    out: &Out,
) -> ExitCode {
    match scaffold(name, id, sdk_path) {
        Ok((dir, id)) => out.ok(json!({ "created": dir, "id": id }), || {
            println!("created {} ({id})", dir.display());
            println!("next:");
            println!("  cd {}", dir.display());
            println!("  cargo test");
            println!("  nitejar plugin pack .");
            println!("  nitejar plugin install {id}-0.1.0.tgz");
        }),
        Err(e) => out.fail(&format!("{e:#}"), serde_json::Value::Null),
    }
}

fn scaffold(
    name: &str,
    id: Option<String>,
    sdk_path: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, String)> {
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
    let sdk = match sdk_path.or_else(find_sdk) {
        Some(path) => {
            let path = path.canonicalize().with_context(|| {
                format!("the nitejar-sdk path {} does not exist", path.display())
            })?;
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("\"{}\"", nitejar_core::NITEJAR_VERSION),
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("could not create {}", dir.display()))?;
    let write = |path: &str, text: String| -> anyhow::Result<()> {
        std::fs::write(dir.join(path), text).with_context(|| format!("could not write {path}"))
    };
    write("Cargo.toml", cargo_toml(name, &sdk))?;
    write("nitejar.plugin.json", manifest(name, &id, &lib_name))?;
    write("src/lib.rs", LIB_RS.replace("{name}", name))?;
    write(".gitignore", "/target\n*.tgz\n".into())?;
    write("README.md", readme(name, &id))?;
    Ok((dir, id))
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
  "schemaVersion": 1,
  "id": "{id}",
  "name": "{name}",
  "version": "0.1.0",
  "description": "Signs every response.",
  "entry": "lib/{prefix}{lib_name}{suffix}",
  "engine": {{ "nitejar": ">={} <1.0.0" }},
  "contributes": {{ "hooks": ["response.pre_deliver"] }}
}}
"#,
        nitejar_core::NITEJAR_VERSION
    )
}

fn readme(name: &str, id: &str) -> String {
    format!(
        "# {name}\n\nA Nitejar plugin (`{id}`).\n\n```sh\ncargo test                    # unit tests with nitejar_sdk::testing\nnitejar plugin pack .         # builds the library, writes {id}-0.1.0.tgz\nnitejar plugin pack . --sign ~/.minisign/minisign.key   # signed, for guarded servers\nnitejar plugin install {id}-0.1.0.tgz\nnitejar plugin enable {id} --accept-consent\n```\n\nPermissions go in `nitejar.plugin.json` under `permissions`; the server enforces them at the host\nboundary (`ctx.host.http`, `secret`, files, processes). The plugin runs in the server's process.\n"
    )
}

const LIB_RS: &str = r#"//! {name}: a Nitejar plugin that signs every response before it is delivered.

use nitejar_sdk::hooks::{HookResult, ResponsePreDeliver, ResponsePreDeliverPatch};
use nitejar_sdk::Plugin;

/// What the plugin contributes. The server calls this once when it loads the plugin.
pub fn plugin() -> Plugin {
    Plugin::builder()
        .on(|ctx, response: &ResponsePreDeliver| {
            ctx.host.log(nitejar_sdk::LogLevel::Info, "signing a response");
            HookResult::change(ResponsePreDeliverPatch {
                content: Some(format!("{}\n\n— {name}", response.content)),
            })
        })
        .build()
}

nitejar_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use nitejar_sdk::hooks::ResponsePreDeliver;
    use nitejar_sdk::testing::{run_hook, TestHost};

    #[test]
    fn responses_are_signed() {
        let host = TestHost::new();
        let run = run_hook(
            &super::plugin(),
            &host,
            ResponsePreDeliver {
                content: "hello".into(),
                ..Default::default()
            },
        );
        assert_eq!(run.payload.content, "hello\n\n— {name}");
        assert!(run.blocked.is_none());
    }
}
"#;
