//! The `nitejar plugin` commands as an operator runs them, against a SQLite file in a temp data
//! directory: pack (signed) → install → enable (consent refused, then given) → list → logs →
//! doctor → uninstall. (`plugin new` → `cargo test` → `plugin pack` → install is the author's
//! path, in `author_path.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn nitejar(data: &Path, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .current_dir(cwd)
        .env("NITEJAR_DATA_DIR", data)
        .env_remove("DATABASE_URL")
        .env_remove("NITEJAR_PLUGIN_TRUST_MODE")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run nitejar");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        format!("{stdout}{stderr}"),
    )
}

#[test]
fn pack_sign_install_enable_uninstall() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let package = work.path().join("greeter");
    std::fs::create_dir_all(package.join("lib")).unwrap();
    std::fs::copy(
        nitejar_suite::plugins::library("greeter_v1"),
        package.join("lib/libgreeter.so"),
    )
    .unwrap();
    let manifest = nitejar_suite::plugins::crate_manifest("tests/fixtures/plugins/greeter-v1");
    std::fs::write(package.join("nitejar.plugin.json"), manifest.to_string()).unwrap();
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    // Written as `minisign -G -W` writes a key without a password (KDF algorithm bytes zero).
    let mut raw = key.sk.to_bytes();
    raw[2..4].copy_from_slice(&[0, 0]);
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&raw)
    };
    std::fs::write(
        work.path().join("key"),
        format!("untrusted comment: test key\n{encoded}\n"),
    )
    .unwrap();
    let trusted = key.pk.to_base64();
    let guarded = [
        ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded"),
        ("NITEJAR_PLUGIN_TRUSTED_KEYS", trusted.as_str()),
    ];
    let id = "dev.nitejar.fixtures.greeter";
    let run = |args: &[&str]| nitejar(&data, work.path(), &guarded, args);

    let (code, out, text) = run(&["plugin", "pack", "greeter", "--sign", "key", "--json"]);
    assert_eq!(code, 0, "{text}");
    let file = out["packed"]["file"].as_str().unwrap().to_string();
    assert!(out["packed"]["signedBy"].is_string(), "{out}");

    let (code, out, text) = run(&["plugin", "install", &file, "--json"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["installed"]["trustLevel"], "trusted");
    assert!(out["installed"]["enableBlocker"].is_null(), "{out}");

    let (code, out, _) = run(&["plugin", "enable", id, "--json"]);
    assert_eq!(code, 1);
    assert_eq!(out["reason"], "consent_required");
    assert!(out["consentText"]
        .as_str()
        .unwrap()
        .contains("Isolated process:"));
    let (code, _, text) = run(&["plugin", "enable", id]);
    assert_eq!(code, 1);
    assert!(text.contains("--accept-consent"), "{text}");

    let (code, out, text) = run(&["plugin", "enable", id, "--accept-consent", "--json"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["enabled"]["version"], "1.0.0");

    let (code, out, _) = run(&["plugin", "list", "--json"]);
    assert_eq!(code, 0);
    let plugin = out["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(plugin["state"], "enabled");
    let (code, _, text) = run(&["plugin", "list"]);
    assert_eq!(code, 0);
    assert!(text.contains(id) && text.contains("enabled"), "{text}");

    let (code, out, _) = run(&["plugin", "logs", id, "--json"]);
    assert_eq!(code, 0);
    let kinds: Vec<&str> = out["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"install") && kinds.contains(&"enable") && kinds.contains(&"load"),
        "{kinds:?}"
    );
    assert!(!out["log"].as_array().unwrap().is_empty());

    let (code, out, text) = run(&["plugin", "doctor", "--json"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["doctor"]["pluginsChecked"], 1);

    // Without the key, the same plugin is refused at enable (and doctor says so, with the fix).
    let unkeyed = [("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded")];
    let (code, out, _) = nitejar(
        &data,
        work.path(),
        &unkeyed,
        &["plugin", "doctor", "--json"],
    );
    assert_eq!(code, 1);
    let findings = out["doctor"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["check"] == "trust"
            && f["fix"]
                .as_str()
                .unwrap()
                .contains("NITEJAR_PLUGIN_ALLOWLIST")),
        "{out}"
    );

    let (code, out, text) = run(&[
        "plugin",
        "uninstall",
        id,
        "--purge-files",
        "--purge-data",
        "--json",
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["uninstalled"]["purgedFiles"], true);
    assert!(!data.join("plugins").join(id).exists());
    let (code, out, _) = run(&["plugin", "disable", id, "--json"]);
    assert_eq!(code, 1);
    assert!(
        out["error"].as_str().unwrap().contains("is not installed"),
        "{out}"
    );
}

/// `nitejar plugin trust`: keys and entries added, listed with their source, refused with the
/// problem, removed; the environment's cannot be removed; each change receipted with the CLI user.
#[test]
fn trust_keys_and_allowlist_entries_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let pub_file = work.path().join("minisign.pub");
    std::fs::write(&pub_file, key.pk.to_box().unwrap().to_string()).unwrap();
    let env = [
        ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded"),
        ("NITEJAR_PLUGIN_ALLOWLIST", "com.env.allowed"),
        ("USER", "ops"),
    ];
    let run = |args: &[&str]| nitejar(&data, work.path(), &env, args);

    let file = pub_file.to_string_lossy().into_owned();
    let (code, out, text) = run(&["plugin", "trust", "key", "add", "--file", &file, "--json"]);
    assert_eq!(code, 0, "{text}");
    let key_id = out["change"]["ident"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(key_id.len(), 16, "{out}");
    assert_eq!(out["change"]["value"], key.pk.to_base64());

    let (code, out, text) = run(&["plugin", "trust", "key", "add", "RWQnotakey", "--json"]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(out["reason"], "invalid");
    assert!(
        out["error"]
            .as_str()
            .unwrap_or("")
            .contains("the trusted key"),
        "{out}"
    );

    let (code, _, text) = run(&["plugin", "trust", "allow", "add", " Com.Acme.Jira "]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("allowlist entry com.acme.jira added"),
        "{text}"
    );

    let (code, _, text) = run(&["plugin", "trust", "list"]);
    assert_eq!(code, 0, "{text}");
    for line in [
        format!("{key_id}  stored"),
        "environment com.env.allowed".to_string(),
        "stored      com.acme.jira".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} in\n{text}");
    }

    let (code, out, _) = run(&[
        "plugin",
        "trust",
        "allow",
        "remove",
        "com.env.allowed",
        "--json",
    ]);
    assert_eq!(
        (code, out["reason"].as_str()),
        (1, Some("set_by_environment"))
    );
    let (code, _, text) = run(&["plugin", "trust", "key", "remove", &key_id.to_lowercase()]);
    assert_eq!(code, 0, "{text}");
    let (_, out, _) = run(&["plugin", "trust", "key", "list", "--json"]);
    assert_eq!(out["trust"]["keys"], serde_json::json!([]), "{out}");

    let (_, out, _) = run(&["plugin", "logs", "nitejar.trust", "--json"]);
    let receipts = out["receipts"].as_array().cloned().unwrap_or_default();
    let by: Vec<&str> = receipts
        .iter()
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["detail"]["by"].as_str())
        .collect();
    assert_eq!(by, ["CLI (ops)", "CLI (ops)", "CLI (ops)"], "{out}");
}
