//! The plugin author's path, as an author outside the project walks it with nothing but the CLI,
//! cargo and npm: `plugin new` → `cargo test` → `plugin keygen` → `plugin pack --sign` → `npm
//! publish --dry-run` → the package npm packs, served by a local registry → `plugin install <npm
//! name>` → a server in guarded trust mode, trusting the printed key line, enables it → a webhook's
//! run goes through its hook, with the default its manifest declares for its setting, and with
//! the value the operator sets next.
//!
//! The scaffold is compiled once, in a target directory shared between runs
//! (`scaffold-builds`), with the workspace's lock file, so its dependencies are built once per
//! machine and not per run; the package is built with the test build's profile for the same
//! reason. Also here: `plugin new` where the SDK cannot be resolved, and the text it prints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::npm::Registry;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const CRATE: &str = "hello-plugin";
const ID: &str = "dev.local.hello-plugin";
const NPM_NAME: &str = "nitejar-plugin-hello-plugin";

struct Run {
    ok: bool,
    json: Value,
    text: String,
}

/// Runs `nitejar` in `cwd` with a clean environment plus `env`.
fn nitejar(data: &DataDir, cwd: &Path, env: &[(&str, String)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nitejar"));
    command
        .current_dir(cwd)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .env("ENCRYPTION_KEY", KEY_HEX);
    // What `plugin pack` needs to run cargo as the author would.
    for var in [
        "HOME",
        "CARGO",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run nitejar");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        ok: out.status.success(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        text: format!("{stdout}{stderr}"),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Speed only: the scaffold's dependencies are built once per machine.
fn shared_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("scaffold-builds")
}

/// Runs real `npm` against `registry` only: its own home, cache and config, no update check,
/// no retries (an unanswered request fails at once instead of after a minute of back-off).
fn npm(work: &Path, registry: &Registry, args: &[&str]) -> (bool, String) {
    let home = work.join("npm-home");
    std::fs::create_dir_all(&home).expect("npm home");
    let registry_url = registry.http.url("/");
    let npmrc = home.join(".npmrc");
    std::fs::write(
        &npmrc,
        format!(
            "registry={registry_url}\n//127.0.0.1:{}/:_authToken=t0ken\nfetch-retries=0\nupdate-notifier=false\naudit=false\nfund=false\n",
            registry.http.port()
        ),
    )
    .expect("npmrc");
    let out = Command::new("npm")
        .current_dir(work)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("npm_config_userconfig", &npmrc)
        .env("npm_config_cache", home.join("cache"))
        .output()
        .expect("npm is installed (scripts/install-test-deps.sh)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_plugin_new_to_a_signed_npm_package_a_guarded_server_runs() {
    let data = DataDir::new();
    let work = data.path.join("author");
    std::fs::create_dir_all(&work).expect("work dir");
    let sdk = repo_root().join("nitejar-sdk");

    // 1. The crate, depending on this checkout's SDK.
    let new = nitejar(
        &data,
        &work,
        &[],
        &[
            "plugin",
            "new",
            CRATE,
            "--sdk-path",
            sdk.to_str().expect("utf-8 path"),
            "--json",
        ],
    );
    assert!(new.ok, "{}", new.text);
    assert_eq!(new.json["id"], ID);
    let crate_dir = work.join(CRATE);
    // Editors find the manifest's schema beside it, without a network.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(crate_dir.join("nitejar.plugin.json")).expect("manifest"),
    )
    .expect("the manifest is JSON");
    assert_eq!(manifest["$schema"], "./nitejar.plugin.schema.json");
    let schema = std::fs::read_to_string(crate_dir.join("nitejar.plugin.schema.json"))
        .expect("the schema file is written beside the manifest");
    let printed = nitejar(&data, &work, &[], &["plugin", "schema"]);
    assert!(printed.ok, "{}", printed.text);
    assert_eq!(
        schema, printed.text,
        "`plugin schema` prints the same schema"
    );
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).expect("README");
    for step in [
        "cargo test",
        "nitejar plugin pack .",
        "nitejar plugin keygen",
        "--sign ~/.minisign/minisign.key",
        "NITEJAR_PLUGIN_TRUSTED_KEYS",
        "npm publish",
        &format!("nitejar plugin install {NPM_NAME}"),
    ] {
        assert!(
            readme.contains(step),
            "the README walks `{step}`:\n{readme}"
        );
    }

    // 2. Its own tests.
    std::fs::copy(repo_root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).expect("lock");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = shared_target();
    let test = Command::new(&cargo)
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["test"])
        .output()
        .expect("cargo test");
    let test_out = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "cargo test failed:\n{test_out}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    for name in ["responses_are_signed", "the_signature_is_a_setting"] {
        assert!(
            test_out.contains(name),
            "the scaffold's test {name} ran:\n{test_out}"
        );
    }

    // 3. A key pair protected with a password, as minisign makes it.
    let signing = [("NITEJAR_SIGN_PASSWORD", PASSWORD.to_string())];
    let keygen = nitejar(
        &data,
        &work,
        &signing,
        &["plugin", "keygen", "--out", "keys", "--json"],
    );
    assert!(keygen.ok, "{}", keygen.text);
    assert_eq!(keygen.json["keys"]["protected"], true);
    let trusted_key = keygen.json["keys"]["trustedKey"]
        .as_str()
        .expect("the public-key line")
        .to_string();
    let public_file = std::fs::read_to_string(work.join("keys/minisign.pub")).expect("pub");
    assert_eq!(
        public_file.lines().nth(1),
        Some(trusted_key.as_str()),
        "the printed line is minisign.pub's key line"
    );

    // 4. Packed and signed. The test build's profile: the library cargo test just built.
    let key_file = work.join("keys/minisign.key");
    let mut pack_env = signing.to_vec();
    pack_env.push(("CARGO_TARGET_DIR", target.to_string_lossy().into_owned()));
    let pack = nitejar(
        &data,
        &crate_dir,
        &pack_env,
        &[
            "plugin",
            "pack",
            ".",
            "--sign",
            key_file.to_str().expect("utf-8 path"),
            "--profile",
            "dev",
            "--json",
        ],
    );
    assert!(pack.ok, "{}", pack.text);
    assert_eq!(pack.json["packed"]["npmName"], NPM_NAME);
    assert_eq!(
        pack.json["packed"]["signedBy"], keygen.json["keys"]["keyId"],
        "signed with the new key"
    );
    let packed = crate_dir.join(pack.json["packed"]["file"].as_str().expect("file"));

    // 5. npm accepts it as a package.
    let registry = Registry::start();
    let packed_arg = packed.to_str().expect("utf-8 path");
    let (ok, out) = npm(&work, &registry, &["publish", "--dry-run", packed_arg]);
    assert!(ok, "npm publish --dry-run failed:\n{out}");
    assert!(out.contains(&format!("{NPM_NAME}@0.1.0")), "{out}");
    for file in [
        "nitejar.plugin.json",
        "nitejar.plugin.sig",
        "package.json",
        "lib/libhello_plugin.so",
    ] {
        assert!(out.contains(file), "npm would publish {file}:\n{out}");
    }
    let npm_out = work.join("npm-out");
    std::fs::create_dir_all(&npm_out).expect("npm out");
    let (ok, out) = npm(
        &work,
        &registry,
        &[
            "pack",
            packed_arg,
            "--pack-destination",
            npm_out.to_str().expect("utf-8 path"),
        ],
    );
    assert!(ok, "npm pack failed:\n{out}");
    let tarball = std::fs::read(npm_out.join(format!("{NPM_NAME}-0.1.0.tgz")))
        .unwrap_or_else(|e| panic!("npm pack wrote {NPM_NAME}-0.1.0.tgz ({e}):\n{out}"));
    registry.serve(NPM_NAME, "0.1.0", tarball);

    // 6. Installed from the registry by its npm name, on a guarded server's data directory.
    let guarded = vec![
        ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded".to_string()),
        ("NITEJAR_PLUGIN_TRUSTED_KEYS", trusted_key.clone()),
        ("NITEJAR_NPM_REGISTRY", registry.http.url("/")),
        ("NITEJAR_NPM_TOKEN", "t0ken".to_string()),
    ];
    let install = nitejar(
        &data,
        &work,
        &guarded,
        &["plugin", "install", NPM_NAME, "--json"],
    );
    assert!(install.ok, "{}", install.text);
    assert_eq!(install.json["installed"]["id"], ID, "{}", install.json);
    assert_eq!(install.json["installed"]["version"], "0.1.0");
    assert_eq!(install.json["installed"]["trustLevel"], "trusted");
    let fetched: Vec<String> = registry
        .http
        .received()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(
        fetched.contains(&format!("/{NPM_NAME}"))
            && fetched.contains(&format!("/tarballs/{NPM_NAME}-0.1.0.tgz")),
        "{fetched:?}"
    );
    let enable = nitejar(
        &data,
        &work,
        &guarded,
        &[
            "plugin",
            "enable",
            ID,
            "--accept-consent",
            "--ack-all",
            "--json",
        ],
    );
    assert!(enable.ok, "{}", enable.text);

    // 7. A guarded server runs it: a webhook's run is answered through its hook.
    let server = Server::start(&data, &guarded);
    let store = data.store().await;
    let integration = create_integration(&store, "echo", json!({}), &[]).await;
    let accepted = reqwest::Client::new()
        .post(server.url(&format!("/api/webhooks/plugins/echo/{integration}")))
        .header("content-type", "application/json")
        .body(json!({"text": "hello there"}).to_string())
        .send()
        .await
        .expect("webhook");
    assert_eq!(accepted.status().as_u16(), 200, "{}", server.log());
    // The echo channel logs what it delivers: the offline model's answer, then the line the
    // plugin's hook appended (its manifest's default for the setting).
    let delivered = "answered work item";
    let signed = format!("Echo: hello there\n\n— {CRATE}");
    let hook_ran = eventually(30, || {
        let log = server.log();
        (log.contains(delivered) && log.contains(&signed)).then_some(())
    })
    .await;
    assert!(
        hook_ran.is_some(),
        "the answer was delivered with the plugin's signature line:\n{}",
        server.log()
    );

    // 8. The operator changes the setting; the running server rebuilds the plugin with it, and
    //    the typed settings carry the new value.
    let set = nitejar(
        &data,
        &work,
        &guarded,
        &["plugin", "config", ID, "set", "signature=— the ops team"],
    );
    assert!(set.ok, "{}", set.text);
    // The server applies it within a second or so; each delivery is a new run, so deliver until
    // one is answered with the new line.
    let resigned = "Echo: hello again\n\n— the ops team";
    let mut answered = false;
    for _ in 0..15 {
        let status = reqwest::Client::new()
            .post(server.url(&format!("/api/webhooks/plugins/echo/{integration}")))
            .header("content-type", "application/json")
            .body(json!({"text": "hello again"}).to_string())
            .send()
            .await
            .expect("webhook")
            .status();
        assert_eq!(status.as_u16(), 200, "{}", server.log());
        if eventually(2, || server.log().contains(resigned).then_some(()))
            .await
            .is_some()
        {
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "an answer carried the changed setting:\n{}",
        server.log()
    );
    let events = store
        .list_plugin_events(ID, nitejar_core::store::PageRequest::first(50))
        .await
        .expect("receipts");
    assert!(
        events.items.iter().any(|e| e.kind == "hook"
            && e.status == "ok"
            && e.hook_name.as_deref() == Some("response.pre_deliver")),
        "{:?}",
        events.items
    );
    server.stop();
}
