//! Adopting a SQLite file written by an earlier Nitejar release: every integration row stays byte for
//! byte (checked with sha256 of every column of every row, before and after), what is missing is
//! added, and receipts can be written even where the legacy schema would have refused them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use nitejar_core::store::prelude::*;
use std::sync::Arc;

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};
use nitejar_core::store::{
    DbReceiptSink, IntegrationUpdate, NewIntegration, PageRequest, SinkOptions, SqliteStore, Store,
};
use nitejar_sdk::HookName;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row, SqliteConnection};

/// The tables an earlier release created, as it created them.
const LEGACY_SCHEMA: &str = r#"
CREATE TABLE plugins (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 0,
  trust_level TEXT NOT NULL DEFAULT 'unknown', source_kind TEXT NOT NULL, source_ref TEXT,
  current_version TEXT, current_checksum TEXT, current_install_path TEXT,
  manifest_json TEXT NOT NULL, config_json TEXT, last_load_error TEXT, last_loaded_at INTEGER,
  installed_at INTEGER NOT NULL DEFAULT (unixepoch()), updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE integrations (
  id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, config TEXT,
  scope TEXT NOT NULL DEFAULT 'global', enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()), updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, sprite_id TEXT, config TEXT,
  status TEXT NOT NULL DEFAULT 'idle', created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE agent_integrations (
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  PRIMARY KEY (agent_id, integration_id)
);
CREATE TABLE work_items (
  id TEXT PRIMARY KEY, integration_id TEXT REFERENCES integrations(id), session_key TEXT NOT NULL,
  source TEXT NOT NULL, source_ref TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'NEW',
  title TEXT NOT NULL, payload TEXT, created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY, work_item_id TEXT NOT NULL REFERENCES work_items(id) ON DELETE CASCADE,
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, status TEXT NOT NULL DEFAULT 'PENDING',
  created_at INTEGER NOT NULL DEFAULT (unixepoch()), updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE plugin_events (
  id TEXT PRIMARY KEY, plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
  plugin_version TEXT, kind TEXT NOT NULL, status TEXT NOT NULL, work_item_id TEXT, job_id TEXT,
  hook_name TEXT, duration_ms INTEGER, detail_json TEXT,
  created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX idx_plugin_events_plugin_time ON plugin_events (plugin_id, created_at);
CREATE TABLE spans (
  id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
  kind TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'ok', start_time INTEGER NOT NULL,
  end_time INTEGER, duration_ms INTEGER, attributes TEXT,
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, agent_id TEXT NOT NULL,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()), cost_usd REAL
);
CREATE INDEX idx_spans_agent_created ON spans (agent_id, created_at);
"#;

/// Legacy rows: configs with `enc:` values (encrypted by the earlier release with the same key), a
/// row without config, a disabled one, odd scopes; seconds for timestamps.
const LEGACY_ROWS: &str = r#"
INSERT INTO integrations (id, type, name, config, scope, enabled, created_at, updated_at) VALUES
 ('integration-1', 'telegram', 'Telegram Inbox',
  '{"botToken":"enc:oKGio6SlpqeoqaqrrK2ur5SknTCJX2r4PGRa1+nO2OwbkRCILfv6TvqkXvOucOj2xQ0K","chatId":"42"}',
  'global', 1, 1706918400, 1706918460),
 ('7b0f3c52-0f0e-4c1b-9d55-2b8f0a6f9c11', 'github', 'GitHub app',
  '{ "appId": 12345, "privateKey": "enc:oKGio6SlpqeoqaqrrK2urwIvhBxwK2awvsgRH2feIh0=" }',
  'team:core', 0, 1706918500, 1707000000),
 ('integration-3', 'telegram', 'No config yet', NULL, 'global', 1, 1706918600, 1706918600);
INSERT INTO plugins (id, name, source_kind, manifest_json, installed_at, updated_at)
  VALUES ('builtin.telegram', 'Telegram', 'builtin', '{}', 1706918400, 1706918400);
INSERT INTO agents (id, name) VALUES ('agent-1', 'Mary');
INSERT INTO agent_integrations (agent_id, integration_id, created_at) VALUES ('agent-1', 'integration-1', 15);
INSERT INTO work_items (id, integration_id, session_key, source, source_ref, title)
  VALUES ('work-1', 'integration-1', 's', 'telegram', '1', 'Legacy work item');
INSERT INTO jobs (id, work_item_id, agent_id) VALUES ('job-1', 'work-1', 'agent-1');
INSERT INTO plugin_events (id, plugin_id, kind, status, created_at)
  VALUES ('legacy-event-1', 'builtin.telegram', 'load', 'ok', 1706918400);
INSERT INTO spans (id, trace_id, name, kind, start_time, job_id, agent_id, cost_usd)
  VALUES ('legacy-span-1', 'trace-1', 'model.call', 'model', 1706918400, 'job-1', 'agent-1', 0.25);
"#;

const LEGACY_COLUMNS: [&str; 8] = [
    "id",
    "type",
    "name",
    "config",
    "scope",
    "enabled",
    "created_at",
    "updated_at",
];

/// sha256 of every legacy column of every integration row (with its rowid, so a row deleted and
/// re-inserted with the same values would show), each value `quote()`d so that its storage class
/// counts as well as its bytes.
async fn integration_checksums(path: &str) -> Vec<(String, String)> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("connect");
    let quoted: Vec<String> = LEGACY_COLUMNS
        .iter()
        .map(|c| format!("quote(\"{c}\")"))
        .collect();
    let sql = format!(
        "SELECT id, quote(rowid) || '|' || {} AS all_columns FROM integrations ORDER BY rowid",
        quoted.join(" || '|' || ")
    );
    let rows = sqlx::query(&sql).fetch_all(&mut conn).await.expect("rows");
    conn.close().await.ok();
    rows.iter()
        .map(|r| {
            let id: String = r.get("id");
            let all: String = r.get("all_columns");
            (id, hex(&Sha256::digest(all.as_bytes())))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn scalar(path: &str, sql: &str) -> Option<String> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("connect");
    let row = sqlx::query(sql).fetch_optional(&mut conn).await.expect(sql);
    conn.close().await.ok();
    row.and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten())
}

async fn legacy_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("nitejar.db").display().to_string();
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}?mode=rwc"))
        .await
        .expect("create legacy file");
    sqlx::raw_sql(LEGACY_SCHEMA)
        .execute(&mut conn)
        .await
        .expect("legacy schema");
    sqlx::raw_sql(LEGACY_ROWS)
        .execute(&mut conn)
        .await
        .expect("legacy rows");
    conn.close().await.expect("close");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_legacy_file_keeps_every_integration_row_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = legacy_file(&dir).await;
    let before = integration_checksums(&path).await;
    assert_eq!(before.len(), 3);

    let store = Arc::new(
        SqliteStore::open(&path, testdb::cipher())
            .await
            .expect("adopt and migrate"),
    );
    assert_eq!(integration_checksums(&path).await, before);

    // The legacy rows read through the store as they are, secrets decrypt with the same key.
    let sensitive = vec!["botToken".to_owned(), "privateKey".to_owned()];
    let row = store
        .get_integration("integration-1")
        .await
        .expect("get")
        .expect("legacy row");
    assert_eq!((row.created_at, row.updated_at), (1706918400, 1706918460));
    assert_eq!(row.plugin_id, None, "the new column is NULL on legacy rows");
    let plain = row
        .decrypted_config(store.cipher(), &sensitive)
        .expect("decrypt");
    assert_eq!(plain["botToken"], "123456789:ABCdefGHI");
    let github = store
        .get_integration("7b0f3c52-0f0e-4c1b-9d55-2b8f0a6f9c11")
        .await
        .expect("get")
        .expect("legacy row");
    assert!(!github.enabled);
    assert_eq!(
        github.config.as_deref(),
        Some(
            r#"{ "appId": 12345, "privateKey": "enc:oKGio6SlpqeoqaqrrK2urwIvhBxwK2awvsgRH2feIh0=" }"#
        )
    );
    assert_eq!(
        github
            .decrypted_config(store.cipher(), &sensitive)
            .expect("decrypt")["privateKey"],
        ""
    );
    assert_eq!(
        store
            .get_integration("integration-3")
            .await
            .expect("get")
            .expect("row")
            .config,
        None
    );

    // Changing one row leaves the others' checksums alone.
    store
        .update_integration(
            "integration-3",
            IntegrationUpdate {
                name: Some("renamed".into()),
                ..Default::default()
            },
            &sensitive,
        )
        .await
        .expect("update");
    store
        .create_integration(
            NewIntegration::new("telegram", "new one", serde_json::Map::new()),
            &sensitive,
        )
        .await
        .expect("create");
    let after = integration_checksums(&path).await;
    assert_eq!(after.len(), 4);
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1], before[1]);
    assert_ne!(after[2], before[2]);

    // Receipts for a plugin with no `plugins` row, and spans outside any job, are stored now; the
    // legacy receipt and span are still there, with the legacy-only column.
    let sink = DbReceiptSink::start(store.clone(), SinkOptions::default());
    let mut hook = Receipt::new(
        "com.example.not-installed",
        None,
        ReceiptKind::Hook,
        ReceiptStatus::Ok,
    );
    hook.hook = Some(HookName::WorkItemPreCreate);
    sink.submit(vec![hook]).await;
    sink.flush().await;
    let page = store
        .list_plugin_events("com.example.not-installed", PageRequest::first(10))
        .await
        .expect("page");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        store
            .list_spans(&page.items[0].id)
            .await
            .expect("spans")
            .len(),
        1
    );
    let legacy = store
        .list_plugin_events("builtin.telegram", PageRequest::first(10))
        .await
        .expect("page");
    assert_eq!(legacy.items.len(), 1);
    assert_eq!(legacy.items[0].id, "legacy-event-1");
    assert_eq!(legacy.items[0].execution_mode, "in_process");
    assert_eq!(
        scalar(
            &path,
            "SELECT CAST(cost_usd AS TEXT) FROM spans WHERE id = 'legacy-span-1'"
        )
        .await,
        Some("0.25".to_owned())
    );
    assert_eq!(
        scalar(
            &path,
            "SELECT name FROM sqlite_master WHERE name = 'idx_spans_agent_created'"
        )
        .await,
        Some("idx_spans_agent_created".to_owned()),
        "legacy indexes survive the rebuild"
    );
    assert_eq!(
        scalar(&path, "SELECT journal_mode FROM pragma_journal_mode").await,
        Some("wal".to_owned())
    );
    let summary = sink.shutdown().await;
    assert_eq!(summary.lost, 0);
    store.close().await.expect("close");

    // Opening again changes nothing.
    let before_reopen = integration_checksums(&path).await;
    let again = SqliteStore::open(&path, testdb::cipher())
        .await
        .expect("reopen");
    assert_eq!(integration_checksums(&path).await, before_reopen);
    assert_eq!(again.list_integrations(None).await.expect("list").len(), 4);
}
