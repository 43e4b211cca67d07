//! A plugin's settings (its config and the secrets it declares) set by the operator: checked
//! against what the manifest declares, stored (secrets encrypted), and in effect in the running
//! plugin without a restart — in the process that made the change, in a server beside the CLI that
//! made it, and after a restart. Exercised with the `policy-guard` example, whose redaction reads
//! both its config and a secret through the host.

use nitejar_core::crypto::{is_encrypted, REDACTED};
use nitejar_core::hooks::DispatchContext;
use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{EnableRequest, LifecycleError, SecretOrigin, SettingsChange};
use nitejar_sdk::hooks::{ResponsePreDeliver, ToolPreExec};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{package_files, tgz, Env};
use crate::testdb::TestDb;

const GUARD: &str = "dev.nitejar.examples.policy-guard";
/// The value stored for the guard's declared secret `OPENAI_API_KEY`.
const KEY: &str = "org-key-9f8e7d6c";

fn guard() -> InstallSource {
    let files = package_files("examples/policy-guard", "policy_guard", |_| {}, &[]);
    InstallSource::Upload {
        name: "policy-guard.tgz".into(),
        bytes: tgz(&files),
    }
}

/// What the guard makes of a response that holds a literal, the secret and a token.
async fn delivered(env: &Env) -> String {
    let payload = {
        let mut response = ResponsePreDeliver::default();
        response.content = format!("pw hunter2, key {KEY}, token sk-ABCDEFGHIJKLMNOPQRST");
        response
    };
    env.runtime
        .dispatch(&DispatchContext::default(), payload)
        .await
        .payload
        .content
}

async fn blocks(env: &Env, tool: &str) -> bool {
    let payload = {
        let mut call = ToolPreExec::default();
        call.tool_name = tool.into();
        call
    };
    env.runtime
        .dispatch(&DispatchContext::default(), payload)
        .await
        .blocked
        .is_some()
}

async fn enabled_guard(db: &TestDb) -> Env {
    let env = Env::new(db, |_| {}).await;
    env.manager.install(guard()).await.unwrap();
    env.manager
        .enable(GUARD, EnableRequest::accept_all())
        .await
        .unwrap();
    env
}

fn redaction() -> SettingsChange {
    SettingsChange::default()
        .config(json!({
            "blockedTools": ["search"],
            "redact": ["hunter2"],
            "redactSecrets": ["OPENAI_API_KEY"],
            "redactTokenPrefixes": ["sk-"]
        }))
        .secret("OPENAI_API_KEY", KEY)
}

async fn settings_apply_to_the_running_plugin_without_a_restart(db: TestDb) {
    let env = enabled_guard(&db).await;
    // No config: the plugin's own defaults (shell blocked, sk- tokens redacted).
    assert_eq!(
        delivered(&env).await,
        format!("pw hunter2, key {KEY}, token [redacted]")
    );
    assert!(blocks(&env, "shell").await);
    assert!(!blocks(&env, "search").await);
    let before = env.manager.settings(GUARD).await.unwrap();
    assert_eq!(before.config, Value::Null);
    assert_eq!(before.secrets[0].source, SecretOrigin::Unset);
    assert_eq!(before.secrets[0].value, None);
    assert_eq!(before.defaults["blockedTools"], json!(["shell"]));

    let outcome = env.manager.configure(GUARD, redaction()).await.unwrap();
    assert!(outcome.checked_by_plugin && outcome.reinstantiated);
    assert_eq!(
        outcome.changed_settings,
        [
            "blockedTools",
            "redact",
            "redactSecrets",
            "redactTokenPrefixes"
        ]
    );
    assert_eq!(outcome.secrets_set, ["OPENAI_API_KEY"]);
    assert_eq!(outcome.revision, 1);

    // The same runtime, no restart: the new instance reads the config and the stored secret.
    assert_eq!(
        delivered(&env).await,
        "pw [redacted], key [redacted], token [redacted]"
    );
    assert!(blocks(&env, "search").await);
    assert!(!blocks(&env, "shell").await);

    let after = env.manager.settings(GUARD).await.unwrap();
    assert_eq!(after.config["redact"], json!(["hunter2"]));
    assert_eq!(after.revision, 1);
    assert!(after.problems.is_empty());
    let secret = &after.secrets[0];
    assert_eq!(
        (secret.name.as_str(), secret.env_var.as_str()),
        ("OPENAI_API_KEY", "NITEJAR_SECRET_OPENAI_API_KEY")
    );
    assert_eq!(secret.source, SecretOrigin::Stored);
    assert_eq!(secret.value, Some(REDACTED));
    let stored = env.store.list_plugin_secrets(GUARD).await.unwrap();
    assert!(is_encrypted(&stored[0].value));

    // Sending the mask back changes nothing: no new revision, no receipt.
    let same = env
        .manager
        .configure(
            GUARD,
            SettingsChange::default().secret("OPENAI_API_KEY", REDACTED),
        )
        .await
        .unwrap();
    assert!(!same.changed() && !same.reinstantiated);
    assert_eq!(same.revision, 1);

    // Removing the stored value: the plugin gets none (nothing in the environment either).
    let cleared = env
        .manager
        .configure(
            GUARD,
            SettingsChange::default().clear_secret("OPENAI_API_KEY"),
        )
        .await
        .unwrap();
    assert_eq!(cleared.secrets_cleared, ["OPENAI_API_KEY"]);
    assert_eq!(
        delivered(&env).await,
        format!("pw [redacted], key {KEY}, token [redacted]")
    );

    // Receipts name what changed, never a value.
    let receipts = env.receipts_of(GUARD, "configure").await;
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    let (status, detail) = &receipts[1];
    assert_eq!(status, "ok");
    assert_eq!(detail["secretsSet"], json!(["OPENAI_API_KEY"]));
    assert_eq!(detail["reinstantiated"], true);
    for r in env.receipts(GUARD).await {
        let text = r.detail_json.unwrap_or_default();
        assert!(!text.contains(KEY), "a receipt holds the secret: {text}");
    }

    // A restart runs the plugin with what is stored.
    env.manager
        .configure(
            GUARD,
            SettingsChange::default().secret("OPENAI_API_KEY", KEY),
        )
        .await
        .unwrap();
    let env = env.restart(|_| {}).await;
    env.manager.boot().await;
    assert_eq!(
        delivered(&env).await,
        "pw [redacted], key [redacted], token [redacted]"
    );
}

async fn a_refused_change_stores_nothing(db: TestDb) {
    let env = enabled_guard(&db).await;
    let refused = |change: SettingsChange| {
        let manager = env.manager.clone();
        async move { manager.configure(GUARD, change).await.unwrap_err() }
    };

    let e = refused(
        SettingsChange::default()
            .config(json!({ "blockedTools": "shell", "redactSecrets": ["GITHUB_TOKEN"], "colour": "red" }))
            .secret("OPENAI_API_KEY", KEY),
    )
    .await;
    let LifecycleError::InvalidConfig { problems, .. } = &e else {
        panic!("{e}");
    };
    let fields: Vec<_> = problems.0.iter().map(|p| p.field.as_deref()).collect();
    assert_eq!(
        fields,
        [Some("blockedTools"), Some("colour"), Some("redactSecrets")]
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the config of `{GUARD}` was not saved:\n\
             blockedTools: must be a list of strings\n\
             colour: `colour` is not a setting of this plugin; its settings are: blockedTools, redact, redactSecrets, redactTokenPrefixes\n\
             redactSecrets (item 1): `GITHUB_TOKEN` is not allowed; use one of: `OPENAI_API_KEY`"
        )
    );

    let e = refused(SettingsChange::default().secret("GITHUB_TOKEN", "ghp_x")).await;
    assert!(
        matches!(&e, LifecycleError::UndeclaredSecret { names, declared, .. }
            if names == &["GITHUB_TOKEN"] && declared == &["OPENAI_API_KEY"]),
        "{e}"
    );
    assert!(!e.to_string().contains("ghp_x"));
    let e = refused(SettingsChange::default().secret("OPENAI_API_KEY", "")).await;
    assert!(matches!(e, LifecycleError::EmptySecret { .. }), "{e}");
    let e = refused(SettingsChange::default().config(json!(["shell"]))).await;
    assert!(matches!(e, LifecycleError::InvalidConfig { .. }), "{e}");

    // Nothing of it stored, nothing changed in the running plugin.
    let row = env.store.get_plugin(GUARD).await.unwrap().unwrap();
    assert_eq!((row.config_json, row.config_revision), (None, 0));
    assert!(env
        .store
        .list_plugin_secrets(GUARD)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        delivered(&env).await,
        format!("pw hunter2, key {KEY}, token [redacted]")
    );
    let receipts = env.receipts_of(GUARD, "configure").await;
    assert!(
        receipts.iter().all(|(status, _)| status == "denied"),
        "{receipts:?}"
    );
    assert!(!receipts.is_empty());

    // A built-in takes no settings.
    let e = env
        .manager
        .configure("builtin.echo", SettingsChange::default().config(json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, LifecycleError::Builtin { .. }), "{e}");
}

/// The CLI is another process on the same database: the server makes a new instance when it
/// reconciles, with the settings the CLI stored.
async fn a_running_server_picks_up_settings_changed_by_the_cli(db: TestDb) {
    let server = enabled_guard(&db).await;
    let cli = Env::with(
        tempfile::tempdir().unwrap(),
        server.store.clone(),
        server.options.clone(),
    )
    .await;
    let outcome = cli.manager.configure(GUARD, redaction()).await.unwrap();
    // The CLI runs no plugins, but tried the new settings in the plugin's code before storing them.
    assert!(outcome.checked_by_plugin && !outcome.reinstantiated);
    assert_eq!(
        delivered(&server).await,
        format!("pw hunter2, key {KEY}, token [redacted]"),
        "not yet"
    );
    let report = server.manager.reconcile().await.unwrap();
    assert_eq!(report.activated, [format!("{GUARD}@0.1.0")]);
    assert_eq!(
        delivered(&server).await,
        "pw [redacted], key [redacted], token [redacted]"
    );
    assert!(
        server.manager.reconcile().await.unwrap().is_empty(),
        "nothing more to do"
    );
    let loads = server.receipts_of(GUARD, "load").await;
    assert_eq!(
        loads.len(),
        3,
        "the server's at enable, the CLI's trial of the new settings, the server's new instance"
    );
}

/// A disabled plugin takes its settings when it is enabled.
async fn a_disabled_plugin_is_configured_before_it_runs(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    env.manager.install(guard()).await.unwrap();
    let outcome = env.manager.configure(GUARD, redaction()).await.unwrap();
    assert!(!outcome.checked_by_plugin && !outcome.reinstantiated);
    env.manager
        .enable(GUARD, EnableRequest::accept_all())
        .await
        .unwrap();
    assert_eq!(
        delivered(&env).await,
        "pw [redacted], key [redacted], token [redacted]"
    );
}

/// A plugin stopped by a load error runs again when its settings are fixed: the change is tried
/// at once, not left for an operator to disable and enable it.
async fn a_plugin_in_a_load_error_is_retried_with_its_new_settings(db: TestDb) {
    let env = enabled_guard(&db).await;
    // A config its code refuses, stored past the schema check (as an earlier version's schema
    // allowed, or another machine wrote): the next reconcile records the load error.
    env.store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: GUARD.into(),
            config_json: Some(Some(json!({ "blockedTools": "shell" }).to_string())),
            set_secrets: Vec::new(),
            clear_secrets: Vec::new(),
        })
        .await
        .unwrap();
    let report = env.manager.reconcile().await.unwrap();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    env.manager.reconcile().await.unwrap();
    let row = env.store.get_plugin(GUARD).await.unwrap().unwrap();
    assert!(row.enabled);
    let error = row.last_load_error.clone().unwrap_or_default();
    assert!(error.contains("blockedTools"), "{error}");
    assert!(env.runtime.registry().plugin(GUARD).is_none(), "taken out");

    let outcome = env.manager.configure(GUARD, redaction()).await.unwrap();
    assert!(outcome.reinstantiated, "{outcome:?}");
    let row = env.store.get_plugin(GUARD).await.unwrap().unwrap();
    assert_eq!(row.last_load_error, None);
    assert_eq!(row.last_error_kind, None);
    assert_eq!(
        delivered(&env).await,
        "pw [redacted], key [redacted], token [redacted]"
    );
    assert!(env.manager.reconcile().await.unwrap().is_empty());

    // Settings that still fail leave the error these settings met, not the old one.
    env.store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: GUARD.into(),
            config_json: Some(Some(json!({ "redact": "hunter2" }).to_string())),
            set_secrets: Vec::new(),
            clear_secrets: Vec::new(),
        })
        .await
        .unwrap();
    env.manager.reconcile().await.unwrap();
    let before = env.store.get_plugin(GUARD).await.unwrap().unwrap();
    assert!(before
        .last_load_error
        .unwrap_or_default()
        .contains("redact"));
    let loads_before = env.receipts_of(GUARD, "load").await.len();
    let outcome = env
        .manager
        .configure(
            GUARD,
            SettingsChange::default().secret("OPENAI_API_KEY", "another-key-1234"),
        )
        .await
        .unwrap();
    assert!(!outcome.reinstantiated);
    let after = env.store.get_plugin(GUARD).await.unwrap().unwrap();
    assert!(after.enabled);
    assert!(after.last_load_error.unwrap_or_default().contains("redact"));
    assert_eq!(
        env.receipts_of(GUARD, "load").await.len(),
        loads_before + 1,
        "the retry with the new secret is one more load"
    );
}

on_both_backends!(
    a_plugin_in_a_load_error_is_retried_with_its_new_settings,
    settings_apply_to_the_running_plugin_without_a_restart,
    a_refused_change_stores_nothing,
    a_running_server_picks_up_settings_changed_by_the_cli,
    a_disabled_plugin_is_configured_before_it_runs,
);
