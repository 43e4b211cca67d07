//! A plugin's settings against a real server process: the API (`/api/admin/plugins/{id}/config`)
//! checks configs against the schema the manifest declares and secrets against what it declares,
//! writes nothing it refuses, never returns a secret and says where each one's value comes from;
//! the CLI (`nitejar plugin config`) sets, reads and edits them beside the running server; and a
//! webhook run uses a config and a stored secret saved while the server runs — no restart.
//! Exercised with the `policy-guard` example (its response redaction reads both) behind the
//! `signed-webhook` example integration.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::redaction::*;
use support::*;

const MASK: &str = "••••••••";

async fn put(server: &Server, body: Value) -> Answer {
    api(server, Method::PUT, &config_path(), Some(&body)).await
}

#[tokio::test]
async fn the_api_checks_settings_writes_nothing_it_refuses_and_never_returns_a_secret() {
    let data = DataDir::new();
    let package = guard_package(&data);
    let server = start_admin(
        &data,
        &[
            open_mode(),
            // The fallback: the server's environment.
            ("NITEJAR_SECRET_OPENAI_API_KEY", "env-value-1111".into()),
        ],
    );
    install_and_enable(&server, &package, GUARD).await;

    // What the manifest declares, nothing stored, the environment in effect for the secret.
    let got = api(&server, Method::GET, &config_path(), None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert!(!got.text.contains("env-value-1111"), "{}", got.text);
    let body = got.json();
    assert_eq!(body["config"], Value::Null);
    assert_eq!(body["revision"], 0);
    assert_eq!(
        body["schema"]["properties"]["blockedTools"]["type"],
        "array"
    );
    assert_eq!(body["defaults"]["blockedTools"], json!(["shell"]));
    assert_eq!(
        body["secrets"],
        json!([{
            "name": "OPENAI_API_KEY", "envVar": "NITEJAR_SECRET_OPENAI_API_KEY",
            "source": "environment", "value": MASK, "updatedAt": null, "unreadable": false
        }])
    );
    assert_eq!(body["inEffect"], true);

    // Schema violations: 422 naming each field, nothing written.
    let bad = put(
        &server,
        json!({"config": {"blockedTools": "shell", "redactSecrets": ["GITHUB_TOKEN"], "colour": 1}}),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let error = &bad.json()["error"];
    assert_eq!(error["code"], "invalid_config");
    let fields: Vec<&str> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["blockedTools", "colour", "redactSecrets"],
        "{error}"
    );
    assert_eq!(error["details"][2]["path"], "/redactSecrets/0");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("blockedTools: must be a list of strings")
            && message.contains("`colour` is not a setting of this plugin"),
        "{message}"
    );

    // An undeclared secret: refused, and the valid config sent with it is not written either.
    let bad = put(
        &server,
        json!({"config": {"redact": ["hunter2"]}, "secrets": {"GITHUB_TOKEN": "ghp_secret_value"}}),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json()["error"]["code"], "undeclared_secret");
    assert_eq!(
        bad.json()["error"]["details"],
        json!({"undeclared": ["GITHUB_TOKEN"], "declared": ["OPENAI_API_KEY"]})
    );
    assert!(!bad.text.contains("ghp_secret_value"));
    for (body, status, code) in [
        (
            json!({"secrets": {"OPENAI_API_KEY": 5}}),
            422,
            "invalid_secret",
        ),
        (
            json!({"secrets": {"OPENAI_API_KEY": ""}}),
            422,
            "invalid_secret",
        ),
        (
            json!({"secrets": ["OPENAI_API_KEY"]}),
            422,
            "invalid_secret",
        ),
        (json!({"settings": {}}), 400, "invalid_json"),
        (json!({"config": ["shell"]}), 422, "invalid_config"),
    ] {
        let refused = put(&server, body.clone()).await;
        assert_eq!(refused.status, status, "{body}: {}", refused.text);
        assert_eq!(refused.json()["error"]["code"], code, "{body}");
    }
    let unchanged = settings(&server).await;
    assert_eq!(unchanged["config"], Value::Null);
    assert_eq!(unchanged["revision"], 0);
    assert_eq!(unchanged["secrets"][0]["source"], "environment");
    let store = data.store().await;
    assert!(store.list_plugin_secrets(GUARD).await.unwrap().is_empty());

    // A config and a secret: stored (the secret encrypted), masked, and the stored value wins.
    let saved = put(
        &server,
        json!({
            "config": {"blockedTools": ["shell", "fs_*"], "redact": ["hunter2"], "redactSecrets": ["OPENAI_API_KEY"]},
            "secrets": {"OPENAI_API_KEY": "stored-value-2222"}
        }),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert!(!saved.text.contains("stored-value-2222"));
    let body = saved.json();
    assert_eq!(body["configured"]["reinstantiated"], true, "{body}");
    assert_eq!(body["configured"]["secretsSet"], json!(["OPENAI_API_KEY"]));
    assert_eq!(
        body["configured"]["changedSettings"],
        json!(["blockedTools", "redact", "redactSecrets"])
    );
    assert_eq!(body["settings"]["secrets"][0]["source"], "stored");
    assert_eq!(body["settings"]["secrets"][0]["value"], MASK);
    let got = api(&server, Method::GET, &config_path(), None).await;
    assert!(!got.text.contains("stored-value-2222"));
    assert_eq!(
        got.json()["config"]["blockedTools"],
        json!(["shell", "fs_*"])
    );
    assert_eq!(got.json()["revision"], 1);
    assert_eq!(
        got.json()["inEffect"],
        true,
        "re-instantiated at once, in this server"
    );
    let stored = store.list_plugin_secrets(GUARD).await.unwrap();
    assert!(stored[0].value.starts_with("enc:"), "encrypted at rest");
    assert_eq!(stored[0].decrypt(&cipher()).unwrap(), "stored-value-2222");

    // The mask sent back keeps the stored value.
    let same = put(&server, json!({"secrets": {"OPENAI_API_KEY": MASK}})).await;
    assert_eq!(same.status, 200, "{}", same.text);
    assert_eq!(same.json()["settings"]["revision"], 1);

    // Removing the stored value: the environment is in effect again.
    let cleared = put(&server, json!({"secrets": {"OPENAI_API_KEY": null}})).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(
        cleared.json()["settings"]["secrets"][0]["source"],
        "environment"
    );
    assert!(store.list_plugin_secrets(GUARD).await.unwrap().is_empty());
    // `"config": null` removes every setting.
    let emptied = put(&server, json!({"config": null})).await;
    assert_eq!(emptied.json()["settings"]["config"], Value::Null);

    // Receipts name what changed, never a value; refusals are receipted too.
    let events = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{GUARD}/events?limit=200"),
        None,
    )
    .await;
    for value in ["stored-value-2222", "env-value-1111", "ghp_secret_value"] {
        assert!(!events.text.contains(value), "a receipt holds {value}");
    }
    let configure: Vec<(String, Value)> = events.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "configure")
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_owned(),
                e["detail"].clone(),
            )
        })
        .collect();
    assert!(
        configure
            .iter()
            .any(|(s, d)| s == "ok" && d["secretsSet"] == json!(["OPENAI_API_KEY"])),
        "{configure:?}"
    );
    assert!(
        configure.iter().any(|(s, _)| s == "denied"),
        "{configure:?}"
    );

    // Not for built-ins; 404 for what is not installed.
    let builtin = api(
        &server,
        Method::GET,
        "/api/admin/plugins/builtin.echo/config",
        None,
    )
    .await;
    assert_eq!(builtin.status, 409, "{}", builtin.text);
    assert_eq!(builtin.json()["error"]["code"], "builtin_plugin");
    let missing = api(
        &server,
        Method::PUT,
        "/api/admin/plugins/com.acme.nope/config",
        Some(&json!({"config": {}})),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.text);

    // In the API document, with both methods.
    let doc = api(&server, Method::GET, "/api/openapi.json", None)
        .await
        .json();
    let path = &doc["paths"]["/api/admin/plugins/{id}/config"];
    assert_eq!(
        path["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PluginConfigUpdate"
    );
    assert!(path["get"].is_object());
}

#[tokio::test]
async fn a_webhook_run_uses_settings_saved_while_the_server_runs() {
    settings_saved_while_the_server_runs_are_used(RedactionRun::start().await).await;
}

/// The same with each plugin in a process of its own: the new instance is a new process, and the
/// stored secret reaches it through the host's secret service in the server.
#[tokio::test]
async fn a_webhook_run_uses_settings_saved_while_the_server_runs_in_isolated_execution() {
    let run = RedactionRun::start_with(&[("NITEJAR_PLUGIN_EXECUTION", "isolated".into())]).await;
    let guard = api(
        &run.server,
        Method::GET,
        &format!("/api/admin/plugins/{GUARD}"),
        None,
    )
    .await
    .json();
    assert_eq!(guard["executionMode"], "isolated", "{guard}");
    settings_saved_while_the_server_runs_are_used(run).await;
}

async fn settings_saved_while_the_server_runs_are_used(run: RedactionRun) {
    let pid = run.server.pid();
    let first = run.delivered("d-1").await;
    assert!(
        first.contains("org-secret-4242") && first.contains("hunter2"),
        "no config yet: nothing of this is redacted: {first}"
    );

    let saved = api(
        &run.server,
        Method::PUT,
        &config_path(),
        Some(&json!({
            "config": {"redact": ["hunter2"], "redactSecrets": ["OPENAI_API_KEY"]},
            "secrets": {"OPENAI_API_KEY": "org-secret-4242"}
        })),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.text);

    let second = run.delivered("d-2").await;
    assert!(
        !second.contains("org-secret-4242") && !second.contains("hunter2"),
        "{second}"
    );
    assert!(
        second.contains("The key is [redacted] and the password is [redacted]."),
        "{second}"
    );
    assert_eq!(run.server.pid(), pid, "the same server process");
}

/// `nitejar plugin config`, beside the running server: what it stores, the server runs with.
fn nitejar(
    data: &DataDir,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> (i32, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .env("ENCRYPTION_KEY", KEY_HEX)
        .env("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nitejar");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("nitejar output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        format!("{stdout}{stderr}"),
    )
}

#[tokio::test]
async fn the_cli_sets_reads_and_edits_settings_and_the_running_server_follows() {
    let run = RedactionRun::start().await;
    let data = &run.data;
    let cli = |args: &[&str], stdin: &str| nitejar(data, &[], args, stdin);

    // key=value pairs (typed by the schema) and a JSON document; the secret from standard input.
    let (code, out, text) = cli(
        &[
            "plugin",
            "config",
            GUARD,
            "set",
            "redact=hunter2",
            r#"{"blockedTools": ["search"]}"#,
            "redactSecrets=OPENAI_API_KEY",
            "--secret",
            "OPENAI_API_KEY",
            "--json",
        ],
        "org-secret-4242\n",
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["configured"]["checkedByPlugin"], true, "{out}");
    assert_eq!(out["configured"]["secretsSet"], json!(["OPENAI_API_KEY"]));
    assert!(!text.contains("org-secret-4242"));

    let (code, out, text) = cli(&["plugin", "config", GUARD, "get", "--json"], "");
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        out["settings"]["config"],
        json!({"redact": ["hunter2"], "blockedTools": ["search"], "redactSecrets": ["OPENAI_API_KEY"]})
    );
    assert_eq!(out["settings"]["secrets"][0]["source"], "stored");
    assert!(!text.contains("org-secret-4242"));
    let (code, _, text) = cli(&["plugin", "config", GUARD], "");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("OPENAI_API_KEY") && text.contains("stored (encrypted)"),
        "{text}"
    );

    // The server, which was running all along, switches to them within a second.
    run.in_effect(1).await;
    let answer = run.delivered("cli-1").await;
    assert!(
        answer.contains("The key is [redacted] and the password is [redacted]."),
        "{answer}"
    );

    // Refused: an unknown setting, a value of the wrong type, an undeclared secret. Nothing stored.
    for (args, expected) in [
        (
            vec!["maxLength=3"],
            "`maxLength` is not a setting of this plugin",
        ),
        (
            vec![r#"{"blockedTools": "shell"}"#],
            "blockedTools: must be a list of strings",
        ),
        (
            vec!["--secret", "GITHUB_TOKEN=ghp_x"],
            "does not declare the secret `GITHUB_TOKEN`",
        ),
    ] {
        let mut all = vec!["plugin", "config", GUARD, "set"];
        all.extend(args.iter().copied());
        let (code, _, text) = cli(&all, "");
        assert_eq!(code, 1, "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
    }
    let store = data.store().await;
    assert_eq!(
        store
            .get_plugin(GUARD)
            .await
            .unwrap()
            .unwrap()
            .config_revision,
        1
    );

    // `edit` with an editor that changes the file: saved when it fits.
    let editor = data.path.join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/hunter2/swordfish/' \"$1\"\n").unwrap();
    let bad_editor = data.path.join("bad-editor.sh");
    std::fs::write(
        &bad_editor,
        "#!/bin/sh\necho '{\"blockedTools\": \"shell\"}' > \"$1\"\n",
    )
    .unwrap();
    for script in [&editor, &bad_editor] {
        let _ = Command::new("chmod").arg("+x").arg(script).status();
    }
    let (code, out, text) = nitejar(
        data,
        &[("EDITOR", editor.to_str().unwrap())],
        &["plugin", "config", GUARD, "edit", "--json"],
        "",
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["configured"]["changedSettings"], json!(["redact"]));
    // The refused edit is kept in the data directory, not left in the machine's /tmp.
    let (code, _, text) = nitejar(
        data,
        &[
            ("EDITOR", bad_editor.to_str().unwrap()),
            ("TMPDIR", data.path.to_str().unwrap()),
        ],
        &["plugin", "config", GUARD, "edit"],
        "",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("blockedTools: must be a list of strings")
            && text.contains("your edit is kept in"),
        "{text}"
    );
    let row = store.get_plugin(GUARD).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(row.config_json.as_deref().unwrap()).unwrap()["redact"],
        json!(["swordfish"])
    );

    // Clearing the stored secret: the next run has nothing to redact it with.
    let (code, _, text) = cli(
        &[
            "plugin",
            "config",
            GUARD,
            "set",
            "--clear-secret",
            "OPENAI_API_KEY",
        ],
        "",
    );
    assert_eq!(code, 0, "{text}");
    run.in_effect(3).await;
    let answer = run.delivered("cli-2").await;
    assert!(answer.contains("org-secret-4242"), "{answer}");
}
