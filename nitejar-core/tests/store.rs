//! The store suite: every test runs once on SQLite (a temp file) and once on Postgres (a database of its
//! own on 127.0.0.1:5432).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::collections::HashSet;
use std::sync::Arc;

use nitejar_core::crypto::{is_encrypted, REDACTED};
use nitejar_core::store::{
    Backend, DisclosureAckRow, IntegrationUpdate, JobUpdate, NewAgent, NewIntegration, NewJob,
    NewWorkItem, PluginArtifact, PluginRequestRow, PluginRow, PluginVersionRow, SecretValue,
    SettingsWrite, SpanRow, StoreError,
};
use serde_json::{json, Map, Value};
use testdb::TestDb;

on_both_backends!(
    opens_twice_and_migrations_are_idempotent,
    integration_secrets_are_encrypted_and_decryptable,
    integration_updates_touch_only_their_row,
    placeholder_keeps_the_stored_secret,
    integrations_are_listed_by_type_enabled_and_deleted,
    integration_errors_name_the_row,
    plugins_versions_acks_and_artifacts,
    plugin_settings_change_together_and_only_through_their_own_write,
    idempotency_keys_are_all_or_nothing,
    concurrent_idempotency_keys_have_one_winner,
    work_items_jobs_and_spans,
    work_items_are_group_committed_with_their_keys,
    batches_without_shared_multi_key_items_take_few_statements_and_stay_exact,
    agents_of_an_integration_and_finishing_a_job,
    plugin_requests_keep_what_they_ask_and_are_decided_once,
);

fn config(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `""` encrypted with the test key (a test vector of `docs/design.md`).
const ALREADY_ENCRYPTED: &str = "enc:oKGio6SlpqeoqaqrrK2urwIvhBxwK2awvsgRH2feIh0=";

fn sensitive() -> Vec<String> {
    vec!["bot_token".to_owned(), "webhook_secret".to_owned()]
}

async fn opens_twice_and_migrations_are_idempotent(db: TestDb) {
    let store = db.open().await;
    let row = store
        .create_integration(
            NewIntegration::new("telegram", "bot", config(json!({"bot_token": "t"}))),
            &sensitive(),
        )
        .await
        .expect("create");
    store.close().await.expect("close");
    // Opening again runs the migrations again: nothing to do, nothing changed.
    let again = db.open().await;
    assert_eq!(
        again.get_integration(&row.id).await.expect("get"),
        Some(row)
    );
    let expected = if db.url().starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    assert_eq!(again.backend(), expected);
}

async fn integration_secrets_are_encrypted_and_decryptable(db: TestDb) {
    let store = db.open().await;
    let before = nitejar_core::receipts::now_ms() / 1000;
    let row = store
        .create_integration(
            NewIntegration::new(
                "telegram",
                "Support bot",
                config(json!({
                    "bot_token": "123456789:ABCdefGHI",
                    "webhook_secret": ALREADY_ENCRYPTED,
                    "chat_id": "42",
                    "nested": {"bot_token": "nested values are not encrypted on write"},
                })),
            ),
            &sensitive(),
        )
        .await
        .expect("create");

    // A new id is a UUIDv7; timestamps are Unix seconds.
    let id = uuid::Uuid::parse_str(&row.id).expect("uuid id");
    assert_eq!(id.get_version_num(), 7);
    assert!(row.created_at >= before && row.created_at <= before + 5);
    assert_eq!(row.created_at, row.updated_at);
    assert!(row.enabled);
    assert_eq!(row.scope, "global");

    let stored = row.config_map().expect("config");
    let token = stored["bot_token"].as_str().expect("string");
    assert!(is_encrypted(token), "bot_token stored as {token}");
    assert_eq!(
        stored["webhook_secret"], ALREADY_ENCRYPTED,
        "a value already starting with enc: is never encrypted again"
    );
    assert_eq!(
        stored["chat_id"], "42",
        "fields not named sensitive stay plain"
    );
    assert_eq!(
        stored["nested"]["bot_token"],
        "nested values are not encrypted on write"
    );

    let plain = row
        .decrypted_config(store.cipher(), &sensitive())
        .expect("decrypt");
    assert_eq!(plain["bot_token"], "123456789:ABCdefGHI");
    assert_eq!(plain["webhook_secret"], "");

    let shown = row.redacted_config(&sensitive()).expect("redact");
    assert_eq!(shown["bot_token"], REDACTED);
    assert_eq!(shown["webhook_secret"], REDACTED);
    assert_eq!(shown["chat_id"], "42");
    assert_eq!(shown["nested"]["bot_token"], REDACTED);
}

async fn integration_updates_touch_only_their_row(db: TestDb) {
    let store = db.open().await;
    let a = store
        .create_integration(
            NewIntegration::new("telegram", "a", config(json!({"bot_token": "A"}))),
            &sensitive(),
        )
        .await
        .expect("create a");
    let b = store
        .create_integration(
            NewIntegration::new("telegram", "b", config(json!({"bot_token": "B"}))),
            &sensitive(),
        )
        .await
        .expect("create b");

    let renamed = store
        .update_integration(
            &a.id,
            IntegrationUpdate {
                name: Some("a, renamed".into()),
                ..Default::default()
            },
            &sensitive(),
        )
        .await
        .expect("update");
    assert_eq!(renamed.name, "a, renamed");
    assert_eq!(
        renamed.config, a.config,
        "config bytes unchanged by a rename"
    );
    assert_eq!(renamed.created_at, a.created_at);
    assert!(renamed.updated_at >= a.updated_at);
    assert_eq!(
        store.get_integration(&b.id).await.expect("get b"),
        Some(b.clone()),
        "the other row is untouched"
    );

    let disabled = store
        .set_integration_enabled(&a.id, false)
        .await
        .expect("disable");
    assert!(!disabled.enabled);
    assert_eq!(disabled.config, a.config);
    assert_eq!(
        store.get_integration(&b.id).await.expect("get b"),
        Some(b.clone())
    );

    let moved = store
        .update_integration(
            &a.id,
            IntegrationUpdate {
                plugin_id: Some(Some("builtin.telegram".into())),
                scope: Some("team:7".into()),
                ..Default::default()
            },
            &sensitive(),
        )
        .await
        .expect("update");
    assert_eq!(moved.plugin_id.as_deref(), Some("builtin.telegram"));
    assert_eq!(moved.scope, "team:7");
    assert!(!moved.enabled, "enabled stays as it was");
    assert_eq!(moved.name, "a, renamed");
    let cleared = store
        .update_integration(
            &a.id,
            IntegrationUpdate {
                plugin_id: Some(None),
                ..Default::default()
            },
            &sensitive(),
        )
        .await
        .expect("update");
    assert_eq!(cleared.plugin_id, None);
    assert_eq!(cleared.scope, "team:7");
}

async fn placeholder_keeps_the_stored_secret(db: TestDb) {
    let store = db.open().await;
    let row = store
        .create_integration(
            NewIntegration::new(
                "telegram",
                "bot",
                config(json!({"bot_token": "secret-1", "chat_id": "1"})),
            ),
            &sensitive(),
        )
        .await
        .expect("create");
    let stored_token = row.config_map().expect("config")["bot_token"].clone();

    // What the UI shows, edited and sent back: the placeholder means "unchanged".
    let mut form = config(row.redacted_config(&sensitive()).expect("redact"));
    form.insert("chat_id".into(), json!("2"));
    // A placeholder for a secret that was never set must not become one.
    form.insert("webhook_secret".into(), json!(REDACTED));
    let updated = store
        .update_integration(
            &row.id,
            IntegrationUpdate {
                config: Some(form),
                ..Default::default()
            },
            &sensitive(),
        )
        .await
        .expect("update");
    let after = updated.config_map().expect("config");
    assert_eq!(
        after["bot_token"], stored_token,
        "same ciphertext, byte for byte"
    );
    assert_eq!(after["chat_id"], "2");
    assert!(!after.contains_key("webhook_secret"));

    // A new value replaces the secret, encrypted.
    let replaced = store
        .update_integration(
            &row.id,
            IntegrationUpdate {
                config: Some(config(json!({"bot_token": "secret-2", "chat_id": "2"}))),
                ..Default::default()
            },
            &sensitive(),
        )
        .await
        .expect("update");
    let token = replaced.config_map().expect("config")["bot_token"].clone();
    assert_ne!(token, stored_token);
    assert!(is_encrypted(token.as_str().expect("string")));
    let plain = replaced
        .decrypted_config(store.cipher(), &sensitive())
        .expect("decrypt");
    assert_eq!(plain["bot_token"], "secret-2");
}

async fn integrations_are_listed_by_type_enabled_and_deleted(db: TestDb) {
    let store = db.open().await;
    let agent = store
        .create_agent(NewAgent {
            name: "mary".into(),
            ..Default::default()
        })
        .await
        .expect("agent");
    let mut ids = Vec::new();
    for (kind, name) in [("telegram", "t1"), ("github", "g1"), ("telegram", "t2")] {
        let mut new = NewIntegration::new(kind, name, Map::new());
        new.id = Some(format!("given-{name}"));
        new.enabled = name != "t2";
        ids.push(store.create_integration(new, &[]).await.expect("create").id);
    }
    assert_eq!(ids, ["given-t1", "given-g1", "given-t2"]);
    let telegram = store
        .list_integrations(Some("telegram"))
        .await
        .expect("list");
    let names: Vec<_> = telegram.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["t1", "t2"]);
    assert!(!telegram[1].enabled);
    assert_eq!(store.list_integrations(None).await.expect("all").len(), 3);

    store
        .assign_integration(&agent.id, "given-t1")
        .await
        .expect("assign");
    store
        .assign_integration(&agent.id, "given-t1")
        .await
        .expect("assigning twice is a no-op");
    assert_eq!(
        store.agent_integration_ids(&agent.id).await.expect("ids"),
        ["given-t1"]
    );

    assert!(store.delete_integration("given-t1").await.expect("delete"));
    assert!(!store.delete_integration("given-t1").await.expect("again"));
    assert_eq!(store.get_integration("given-t1").await.expect("get"), None);
    assert!(store
        .agent_integration_ids(&agent.id)
        .await
        .expect("ids")
        .is_empty());
    assert_eq!(store.list_integrations(None).await.expect("all").len(), 2);
}

async fn integration_errors_name_the_row(db: TestDb) {
    let store = db.open().await;
    let err = store
        .update_integration("nope", IntegrationUpdate::default(), &[])
        .await
        .expect_err("missing row");
    assert!(matches!(err, StoreError::NotFound { .. }));
    assert_eq!(err.to_string(), "integration \"nope\" does not exist");
    let err = store
        .set_integration_enabled("nope", true)
        .await
        .expect_err("missing row");
    assert!(matches!(err, StoreError::NotFound { .. }));

    let mut new = NewIntegration::new("telegram", "x", Map::new());
    new.id = Some("dup".into());
    store
        .create_integration(new.clone(), &[])
        .await
        .expect("create");
    let err = store
        .create_integration(new, &[])
        .await
        .expect_err("duplicate");
    assert_eq!(err.to_string(), "integration \"dup\" already exists");
}

fn plugin(id: &str, version: &str, at: i64) -> PluginRow {
    PluginRow {
        id: id.into(),
        name: format!("{id} plugin"),
        enabled: false,
        trust_level: "untrusted".into(),
        source_kind: "npm".into(),
        source_ref: Some(format!("@acme/{id}")),
        current_version: Some(version.into()),
        current_checksum: Some(format!("sha256:{version}")),
        current_install_path: Some(format!("/data/plugins/{id}/versions/{version}")),
        manifest_json: json!({"id": id, "version": version}).to_string(),
        config_json: None,
        config_revision: 0,
        execution_mode: None,
        memory_limit_mib: None,
        cpu_limit_seconds: None,
        last_load_error: None,
        last_error_kind: None,
        last_loaded_at: None,
        installed_at: at,
        updated_at: at,
    }
}

async fn plugin_settings_change_together_and_only_through_their_own_write(db: TestDb) {
    let store = db.open().await;
    let p = plugin("com.acme.guard", "1.0.0", 1_000);
    store.upsert_plugin(&p).await.expect("insert");
    let secret = |name: &str, value: &str| SecretValue {
        env_var: format!("NITEJAR_SECRET_{}", name.to_ascii_uppercase()),
        name: name.into(),
        value: value.into(),
    };
    let revision = store
        .write_plugin_settings(&SettingsWrite {
            plugin_id: p.id.clone(),
            config_json: Some(Some(r#"{"blockedTools":["shell"]}"#.into())),
            set_secrets: vec![secret("api_key", "sk-live-123"), secret("other", "x")],
            clear_secrets: Vec::new(),
        })
        .await
        .expect("write");
    assert_eq!(revision, 1);
    let row = store.get_plugin(&p.id).await.expect("get").expect("row");
    assert_eq!(
        row.config_json.as_deref(),
        Some(r#"{"blockedTools":["shell"]}"#)
    );
    assert_eq!(row.config_revision, 1);

    // Stored encrypted, with the store's key; listed by identity.
    let secrets = store.list_plugin_secrets(&p.id).await.expect("secrets");
    let names: Vec<&str> = secrets.iter().map(|s| s.env_var.as_str()).collect();
    assert_eq!(names, ["NITEJAR_SECRET_API_KEY", "NITEJAR_SECRET_OTHER"]);
    assert!(is_encrypted(&secrets[0].value), "{}", secrets[0].value);
    assert!(!secrets[0].value.contains("sk-live"));
    assert_eq!(
        secrets[0].decrypt(&testdb::cipher()).expect("decrypt"),
        "sk-live-123"
    );
    assert!(!format!("{:?}", secrets[0]).contains(&secrets[0].value));

    // A lifecycle write of the row it read earlier does not undo the settings.
    let mut stale = p.clone();
    stale.enabled = true;
    store.upsert_plugin(&stale).await.expect("upsert");
    let row = store.get_plugin(&p.id).await.expect("get").expect("row");
    assert!(row.enabled);
    assert_eq!(row.config_revision, 1);
    assert!(row.config_json.is_some());

    // Secrets alone: the config stays; replacing and clearing by identity.
    let revision = store
        .write_plugin_settings(&SettingsWrite {
            plugin_id: p.id.clone(),
            config_json: None,
            set_secrets: vec![secret("API_KEY", "sk-live-456")],
            clear_secrets: vec!["NITEJAR_SECRET_OTHER".into()],
        })
        .await
        .expect("write");
    assert_eq!(revision, 2);
    let secrets = store.list_plugin_secrets(&p.id).await.expect("secrets");
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].name, "API_KEY");
    assert_eq!(
        secrets[0].decrypt(&testdb::cipher()).expect("decrypt"),
        "sk-live-456"
    );
    let row = store.get_plugin(&p.id).await.expect("get").expect("row");
    assert!(row.config_json.is_some());
    let revision = store
        .write_plugin_settings(&SettingsWrite {
            plugin_id: p.id.clone(),
            config_json: Some(None),
            ..SettingsWrite::default()
        })
        .await
        .expect("write");
    assert_eq!(revision, 3);
    assert_eq!(
        store
            .get_plugin(&p.id)
            .await
            .expect("get")
            .expect("row")
            .config_json,
        None
    );

    // Nothing is written for a plugin without a row.
    let missing = store
        .write_plugin_settings(&SettingsWrite {
            plugin_id: "com.acme.nobody".into(),
            set_secrets: vec![secret("api_key", "v")],
            ..SettingsWrite::default()
        })
        .await
        .expect_err("no row");
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
    assert!(store
        .list_plugin_secrets("com.acme.nobody")
        .await
        .expect("list")
        .is_empty());

    // A purge of the plugin's row takes its secrets.
    assert!(store.delete_plugin(&p.id).await.expect("delete"));
    assert!(store
        .list_plugin_secrets(&p.id)
        .await
        .expect("list")
        .is_empty());
}

async fn plugins_versions_acks_and_artifacts(db: TestDb) {
    let store = db.open().await;
    let p = plugin("com.acme.echo", "1.0.0", 1_000);
    store.upsert_plugin(&p).await.expect("insert");
    assert_eq!(store.get_plugin(&p.id).await.expect("get"), Some(p.clone()));

    // Upgrade: every column follows, except when it was first installed.
    let mut upgraded = plugin("com.acme.echo", "1.1.0", 2_000);
    upgraded.enabled = true;
    upgraded.last_load_error = Some("boom".into());
    store.upsert_plugin(&upgraded).await.expect("update");
    let got = store.get_plugin(&p.id).await.expect("get").expect("exists");
    assert_eq!(got.installed_at, 1_000);
    assert_eq!(got.updated_at, 2_000);
    assert!(got.enabled);
    assert_eq!(got.current_version.as_deref(), Some("1.1.0"));
    assert_eq!(got.last_load_error.as_deref(), Some("boom"));

    store
        .upsert_plugin(&plugin("com.acme.alpha", "0.1.0", 5))
        .await
        .expect("insert");
    let ids: Vec<_> = store
        .list_plugins()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["com.acme.alpha", "com.acme.echo"]);

    for (version, at) in [("1.0.0", 1_000), ("1.1.0", 2_000)] {
        store
            .upsert_plugin_version(&PluginVersionRow {
                plugin_id: p.id.clone(),
                version: version.into(),
                checksum: format!("sha256:{version}"),
                install_path: format!("/v/{version}"),
                manifest_json: "{}".into(),
                signature_json: None,
                installed_at: at,
            })
            .await
            .expect("version");
    }
    let versions = store.list_plugin_versions(&p.id).await.expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].version, "1.0.0");
    assert_eq!(
        store
            .get_plugin_version(&p.id, "1.1.0")
            .await
            .expect("get")
            .map(|v| v.install_path),
        Some("/v/1.1.0".to_owned())
    );

    let mut ack = DisclosureAckRow {
        plugin_id: p.id.clone(),
        permission: "network:api.example.com".into(),
        scope: String::new(),
        acknowledged: false,
        acknowledged_at: None,
    };
    store.upsert_disclosure_ack(&ack).await.expect("ack");
    ack.acknowledged = true;
    ack.acknowledged_at = Some(3_000);
    store.upsert_disclosure_ack(&ack).await.expect("ack again");
    assert_eq!(
        store.list_disclosure_acks(&p.id).await.expect("acks"),
        [ack]
    );

    let artifact = PluginArtifact {
        plugin_id: p.id.clone(),
        version: "1.1.0".into(),
        bytes: (0..=255u8).cycle().take(100_000).collect(),
        checksum: "sha256:abc".into(),
        created_at: 2_000,
    };
    store.put_plugin_artifact(&artifact).await.expect("put");
    assert_eq!(
        store
            .get_plugin_artifact(&p.id, "1.1.0")
            .await
            .expect("get"),
        Some(artifact)
    );
    assert_eq!(
        store
            .get_plugin_artifact(&p.id, "9.9.9")
            .await
            .expect("get"),
        None
    );

    assert!(store.delete_plugin(&p.id).await.expect("delete"));
    assert_eq!(store.get_plugin(&p.id).await.expect("get"), None);
    assert!(store
        .list_plugin_versions(&p.id)
        .await
        .expect("versions")
        .is_empty());
    assert!(store
        .list_disclosure_acks(&p.id)
        .await
        .expect("acks")
        .is_empty());
    assert_eq!(
        store
            .get_plugin_artifact(&p.id, "1.1.0")
            .await
            .expect("get"),
        None
    );
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

async fn idempotency_keys_are_all_or_nothing(db: TestDb) {
    let store = db.open().await;
    assert!(store
        .try_insert_idempotency_keys(&keys(&["tg:1", "tg:2", "tg:2"]))
        .await
        .expect("insert"));
    // One known key refuses the whole set: tg:3 was not inserted.
    assert!(!store
        .try_insert_idempotency_keys(&keys(&["tg:3", "tg:2"]))
        .await
        .expect("insert"));
    assert!(store
        .try_insert_idempotency_keys(&keys(&["tg:3"]))
        .await
        .expect("insert"));
    let item = store
        .create_work_item(NewWorkItem {
            session_key: "s".into(),
            source: "telegram".into(),
            source_ref: "1".into(),
            title: "hello".into(),
            ..Default::default()
        })
        .await
        .expect("work item");
    store
        .attach_idempotency_keys(&keys(&["tg:1", "tg:2"]), &item.id)
        .await
        .expect("attach");
}

async fn concurrent_idempotency_keys_have_one_winner(db: TestDb) {
    let store = db.open().await;
    for round in 0..5 {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&store);
                // Overlapping sets: every task shares `shared`, each has a key of its own too.
                let set = keys(&[&format!("shared:{round}"), &format!("own:{round}:{i}")]);
                tokio::spawn(async move { store.try_insert_idempotency_keys(&set).await })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task.await.expect("join").expect("insert") {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

async fn work_items_jobs_and_spans(db: TestDb) {
    let store = db.open().await;
    let agent = store
        .create_agent(NewAgent {
            name: "Mary".into(),
            handle: Some("mary".into()),
            ..Default::default()
        })
        .await
        .expect("agent");
    let err = store
        .create_agent(NewAgent {
            name: "Mary".into(),
            ..Default::default()
        })
        .await
        .expect_err("names are unique");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    assert_eq!(
        store.get_agent(&agent.id).await.expect("get"),
        Some(agent.clone())
    );

    let item = store
        .create_work_item(NewWorkItem {
            integration_id: Some("given-t1".into()),
            session_key: "telegram:42".into(),
            source: "telegram".into(),
            source_ref: "msg-1".into(),
            title: "Hi".into(),
            payload: Some(json!({"text": "Hi"}).to_string()),
            ..Default::default()
        })
        .await
        .expect("work item");
    assert_eq!(item.status, "NEW");
    assert_eq!(
        store.get_work_item(&item.id).await.expect("get"),
        Some(item.clone())
    );

    let job = store
        .create_job(NewJob {
            work_item_id: item.id.clone(),
            agent_id: agent.id.clone(),
            ..Default::default()
        })
        .await
        .expect("job");
    assert_eq!(
        (job.status.as_str(), job.run_kind.as_str()),
        ("PENDING", "primary")
    );
    let running = store
        .update_job(
            &job.id,
            JobUpdate {
                status: Some("RUNNING".into()),
                started_at: Some(10),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(running.started_at, Some(10));
    let failed = store
        .update_job(
            &job.id,
            JobUpdate {
                status: Some("FAILED".into()),
                error_text: Some(Some("model unreachable".into())),
                completed_at: Some(20),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(failed.started_at, Some(10), "unset fields stay");
    assert_eq!(failed.error_text.as_deref(), Some("model unreachable"));
    assert_eq!(store.get_job(&job.id).await.expect("get"), Some(failed));
    let err = store
        .update_job("nope", JobUpdate::default())
        .await
        .expect_err("missing");
    assert_eq!(err.to_string(), "job \"nope\" does not exist");

    let span = |id: &str, start: i64| SpanRow {
        id: id.into(),
        trace_id: job.id.clone(),
        parent_span_id: None,
        name: "model.call".into(),
        kind: "model".into(),
        status: "ok".into(),
        start_time: start,
        end_time: Some(start + 5),
        duration_ms: Some(5),
        attributes: Some(json!({"model": "offline"}).to_string()),
        job_id: Some(job.id.clone()),
        agent_id: Some(agent.id.clone()),
        created_at: start,
    };
    let spans = vec![span("s2", 20), span("s1", 10)];
    store.insert_spans(&spans).await.expect("spans");
    store
        .insert_spans(&spans)
        .await
        .expect("inserting the same spans again is a no-op");
    let listed = store.list_spans(&job.id).await.expect("list");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    assert_eq!(listed[1], spans[0]);
    let ids: HashSet<_> = listed.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids.len(), 2);
}

fn item(n: usize) -> NewWorkItem {
    NewWorkItem {
        integration_id: Some("int-batch".into()),
        session_key: format!("s:{n}"),
        source: "echo".into(),
        source_ref: format!("m{n}"),
        title: format!("item {n}"),
        ..Default::default()
    }
}

async fn work_items_are_group_committed_with_their_keys(db: TestDb) {
    let store = db.open().await;
    let first = store
        .create_work_item_once(&keys(&["k:seen"]), item(0))
        .await
        .expect("first")
        .expect("created");
    // One batch: a new item, a duplicate, an item whose second key is a duplicate (its first key must
    // not stay behind), the same key twice within the batch, and an item without keys.
    let results = store
        .create_work_items_once(vec![
            (keys(&["k:1"]), item(1)),
            (keys(&["k:seen"]), item(2)),
            (keys(&["k:3a", "k:seen"]), item(3)),
            (keys(&["k:4"]), item(4)),
            (keys(&["k:4"]), item(5)),
            (Vec::new(), item(6)),
        ])
        .await
        .expect("batch");
    let created: Vec<bool> = results.iter().map(Option::is_some).collect();
    assert_eq!(created, [true, false, false, true, false, true]);
    // k:3a was rolled back with its item: it is still free.
    assert!(store
        .try_insert_idempotency_keys(&keys(&["k:3a"]))
        .await
        .expect("free"));
    for row in results.iter().flatten() {
        assert_eq!(
            store.get_work_item(&row.id).await.expect("get").as_ref(),
            Some(row)
        );
    }
    assert_ne!(results[0].as_ref().map(|r| &r.id), Some(&first.id));
}

/// Batches where no item with several keys shares one (the usual case: one key per delivery) are
/// written with a few multi-row statements; the outcome must be the same as one by one.
async fn batches_without_shared_multi_key_items_take_few_statements_and_stay_exact(db: TestDb) {
    let store = db.open().await;
    store
        .create_work_item_once(&keys(&["k:seen"]), item(0))
        .await
        .expect("first")
        .expect("created");
    // One key each (a duplicate of a stored key, the same key three times, none at all).
    let results = store
        .create_work_items_once(vec![
            (keys(&["k:1"]), item(1)),
            (keys(&["k:seen"]), item(2)),
            (keys(&["k:3"]), item(3)),
            (keys(&["k:3"]), item(4)),
            (Vec::new(), item(5)),
            (keys(&["k:3", "k:3"]), item(6)),
        ])
        .await
        .expect("batch");
    let created: Vec<bool> = results.iter().map(Option::is_some).collect();
    assert_eq!(created, [true, false, true, false, true, false]);
    assert_eq!(
        results[2].as_ref().map(|r| r.title.as_str()),
        Some("item 3")
    );
    // Several keys, none shared: the item that lost one gives its other key back.
    let results = store
        .create_work_items_once(vec![
            (keys(&["k:7a", "k:seen"]), item(7)),
            (keys(&["k:8a", "k:8b"]), item(8)),
        ])
        .await
        .expect("batch");
    assert!(results[0].is_none());
    let kept = results[1].as_ref().expect("created");
    assert!(store
        .try_insert_idempotency_keys(&keys(&["k:7a"]))
        .await
        .expect("free"));
    assert!(!store
        .try_insert_idempotency_keys(&keys(&["k:8b"]))
        .await
        .expect("held"));
    assert_eq!(
        store.get_work_item(&kept.id).await.expect("get").as_ref(),
        Some(kept)
    );
    // Every created row reads back as returned, in the caller's order.
    let many: Vec<_> = (0..300)
        .map(|n| (keys(&[&format!("k:many:{n}")]), item(1000 + n)))
        .collect();
    let results = store.create_work_items_once(many).await.expect("batch");
    for (n, row) in results.iter().enumerate() {
        let row = row.as_ref().expect("created");
        assert_eq!(row.title, format!("item {}", 1000 + n));
        assert_eq!(
            store.get_work_item(&row.id).await.expect("get").as_ref(),
            Some(row)
        );
    }
}

async fn agents_of_an_integration_and_finishing_a_job(db: TestDb) {
    let store = db.open().await;
    let a = store
        .create_agent(NewAgent {
            name: "A".into(),
            ..Default::default()
        })
        .await
        .expect("a");
    let b = store
        .create_agent(NewAgent {
            name: "B".into(),
            ..Default::default()
        })
        .await
        .expect("b");
    assert_eq!(store.list_agents().await.expect("list").len(), 2);
    let int1 = store
        .create_integration(NewIntegration::new("echo", "one", Map::new()), &[])
        .await
        .expect("integration 1");
    let int2 = store
        .create_integration(NewIntegration::new("echo", "two", Map::new()), &[])
        .await
        .expect("integration 2");
    store
        .assign_integration(&b.id, &int1.id)
        .await
        .expect("assign");
    let assigned = store.agents_for_integration(&int1.id).await.expect("for");
    assert_eq!(
        assigned.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        [b.id.as_str()]
    );
    assert!(store
        .agents_for_integration(&int2.id)
        .await
        .expect("none")
        .is_empty());

    let w = store.create_work_item(item(9)).await.expect("item");
    let job = store
        .create_job(NewJob {
            work_item_id: w.id.clone(),
            agent_id: a.id.clone(),
            status: Some("RUNNING".into()),
            started_at: Some(5),
            ..Default::default()
        })
        .await
        .expect("job");
    assert_eq!((job.status.as_str(), job.started_at), ("RUNNING", Some(5)));
    let span = SpanRow {
        id: "span-finish".into(),
        trace_id: job.id.clone(),
        parent_span_id: None,
        name: "run".into(),
        kind: "run".into(),
        status: "COMPLETED".into(),
        start_time: 5,
        end_time: Some(9),
        duration_ms: Some(4),
        attributes: None,
        job_id: Some(job.id.clone()),
        agent_id: Some(a.id.clone()),
        created_at: 9,
    };
    let done = store
        .finish_job(
            &job.id,
            JobUpdate {
                status: Some("COMPLETED".into()),
                completed_at: Some(9),
                ..Default::default()
            },
            std::slice::from_ref(&span),
        )
        .await
        .expect("finish");
    assert_eq!(
        (done.status.as_str(), done.completed_at),
        ("COMPLETED", Some(9))
    );
    assert_eq!(store.list_spans(&job.id).await.expect("spans"), vec![span]);
    let missing = store
        .finish_job("no-such-job", JobUpdate::default(), &[])
        .await
        .expect_err("missing job");
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
}

async fn plugin_requests_keep_what_they_ask_and_are_decided_once(db: TestDb) {
    let store = db.open().await;
    let request = |id: &str, action: &str, detail: Option<Value>| PluginRequestRow {
        id: id.into(),
        plugin_id: "dev.example.acme".into(),
        action: action.into(),
        agent_id: "agent-1".into(),
        job_id: "job-1".into(),
        work_item_id: "wi-1".into(),
        reason: Some("because".into()),
        status: "pending".into(),
        created_at: 1_000,
        decided_at: None,
        decided_by: None,
        detail,
    };
    let enable = request("r1", "enable", None);
    let detail =
        json!({"from": "1.0.0", "to": "1.0.0+edit.1", "digest": "sha256:ab", "files": ["a.md"]});
    let edit = request("r2", "edit_source", Some(detail.clone()));
    let package: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    store.create_plugin_request(&enable, None).await.unwrap();
    store
        .create_plugin_request(&edit, Some(&package))
        .await
        .unwrap();

    assert_eq!(store.get_plugin_request("r1").await.unwrap(), Some(enable));
    assert_eq!(store.get_plugin_request("r2").await.unwrap(), Some(edit));
    assert_eq!(store.plugin_request_archive("r1").await.unwrap(), None);
    assert_eq!(
        store.plugin_request_archive("r2").await.unwrap(),
        Some(package),
        "the edit's package, byte for byte"
    );
    assert_eq!(store.plugin_request_archive("nope").await.unwrap(), None);
    let pending = store.plugin_requests(Some("pending")).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].detail, Some(detail));

    assert!(store
        .decide_plugin_request("r2", "approved", "admin", 2_000)
        .await
        .unwrap());
    assert!(
        !store
            .decide_plugin_request("r2", "rejected", "someone else", 3_000)
            .await
            .unwrap(),
        "a decided request is not decided again"
    );
    let decided = store.get_plugin_request("r2").await.unwrap().unwrap();
    assert_eq!(
        (
            decided.status.as_str(),
            decided.decided_by.as_deref(),
            decided.decided_at
        ),
        ("approved", Some("admin"), Some(2_000))
    );
    assert_eq!(
        store.plugin_requests(Some("pending")).await.unwrap().len(),
        1
    );
}
