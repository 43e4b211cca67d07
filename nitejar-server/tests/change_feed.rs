//! A change made with the CLI reaches running servers through the change feed, not a timer: on
//! SQLite (one server; the feed asks SQLite whether another connection committed) and on Postgres
//! (two servers sharing the database; both are notified). The figures are printed: how long after
//! the CLI exited each server answered differently.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;
#[path = "../../nitejar-core/tests/testdb/mod.rs"]
mod testdb;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::admin::*;
use support::*;
use testdb::TestDb;

/// Well under a second, and far under the feed's safety net (15 s): only the feed can meet it.
const WITHIN: Duration = Duration::from_millis(1000);

async fn echo_integration(server: &Server) -> String {
    let created = api(
        server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "echo", "name": "feed"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn deliver(server: &Server, integration: &str) -> u16 {
    client()
        .post(server.url(&format!("/api/webhooks/plugins/echo/{integration}")))
        .header("content-type", "application/json")
        .body(json!({"text": "hello"}).to_string())
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// Waits until `/readyz` says the server's change feed listens (it starts with the server).
async fn watching(server: &Server, label: &str) {
    let started = Instant::now();
    loop {
        let ready = call(server, Method::GET, "/readyz", None, None).await;
        let changes = &ready.json()["checks"]["changes"];
        if changes["ok"] == true {
            assert_eq!(changes["watching"], true, "{changes}");
            assert_eq!(changes["safetyNetMs"], 15_000, "{changes}");
            let how = changes["how"].as_str().unwrap_or_default();
            let backend = label.split(',').next().unwrap_or_default();
            assert!(how.starts_with(backend), "{label}: {how}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{label}: the change feed never listened: {changes}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `nitejar <args>` against `database_url`; panics unless it succeeds.
fn cli(data: &DataDir, database_url: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", database_url)
        .env("ENCRYPTION_KEY", KEY_HEX)
        .output()
        .expect("run nitejar");
    assert!(
        out.status.success(),
        "nitejar {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How long after `since` each server's delivery answered `wanted` (polled every 5 ms).
async fn answered_after(
    servers: &[&Server],
    integration: &str,
    wanted: impl Fn(u16) -> bool,
    since: Instant,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for server in servers {
        loop {
            if wanted(deliver(server, integration).await) {
                out.push(since.elapsed());
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "the server never saw the change:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    out
}

/// Disables, then enables, the echo channel with the CLI next to `servers`; asserts each change
/// reached every server within [`WITHIN`] of the CLI's exit.
async fn a_cli_change_reaches(
    servers: &[&Server],
    data: &DataDir,
    database_url: &str,
    label: &str,
) {
    for server in servers {
        watching(server, label).await;
    }
    let integration = echo_integration(servers[0]).await;
    for server in servers {
        assert_eq!(deliver(server, &integration).await, 200, "{}", server.log());
    }
    cli(data, database_url, &["plugin", "disable", "builtin.echo"]);
    let off = answered_after(servers, &integration, |s| s != 200, Instant::now()).await;
    cli(data, database_url, &["plugin", "enable", "builtin.echo"]);
    let on = answered_after(servers, &integration, |s| s == 200, Instant::now()).await;
    eprintln!("{label}: a CLI disable seen after {off:?}, an enable after {on:?}");
    for seen in off.iter().chain(&on) {
        assert!(*seen < WITHIN, "{label}: seen after {seen:?}");
    }
}

#[tokio::test]
async fn a_cli_change_reaches_a_running_server_on_sqlite() {
    let data = DataDir::new();
    let server = start_admin(&data, &[]);
    a_cli_change_reaches(&[&server], &data, &data.database_url(), "sqlite").await;
}

#[tokio::test]
async fn a_cli_change_reaches_both_servers_sharing_postgres() {
    let db = TestDb::postgres().await;
    let env = [("DATABASE_URL", db.url().to_owned())];
    let (data_a, data_b, data_cli) = (DataDir::new(), DataDir::new(), DataDir::new());
    let a = start_admin(&data_a, &env);
    let b = start_admin(&data_b, &env);
    a_cli_change_reaches(&[&a, &b], &data_cli, db.url(), "postgres, two servers").await;
}
