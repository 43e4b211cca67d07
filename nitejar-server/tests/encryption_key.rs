//! A server started with another `ENCRYPTION_KEY` than the one its secrets were written with refuses
//! to start and says how to recover, instead of starting and failing on the first delivery that
//! needs a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/// Runs `nitejar serve` on `data` with `env` and waits for it to exit (at most 30 s): its exit
/// status and what it wrote to stderr.
fn serve_until_exit(data: &DataDir, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nitejar"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", free_port().to_string())
        .env("NITEJAR_BIND", "127.0.0.1")
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start nitejar");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "nitejar did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_server_with_another_key_refuses_to_start_and_says_how_to_recover() {
    let data = DataDir::new();
    // The first start records the key's fingerprint.
    let server = Server::start(&data, &[]);
    let store = data.store().await;
    let id = create_integration(
        &store,
        "telegram",
        json!({"botToken": "1:secret", "webhookSecret": "s"}),
        &["botToken", "webhookSecret"],
    )
    .await;
    server.stop();

    let (code, log) = serve_until_exit(&data, &[("ENCRYPTION_KEY", OTHER_KEY)]);
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("ENCRYPTION_KEY is not the key this database's secrets were written with"),
        "{log}"
    );
    assert!(
        log.contains("NITEJAR_ACCEPT_NEW_ENCRYPTION_KEY=true"),
        "{log}"
    );
    assert!(!log.contains(OTHER_KEY), "the key is never printed");

    // The original key still works.
    Server::start(&data, &[]).stop();

    // The key is lost: accepting a new one starts, and names what must be entered again.
    let server = Server::start(
        &data,
        &[
            ("ENCRYPTION_KEY", OTHER_KEY.into()),
            ("NITEJAR_ACCEPT_NEW_ENCRYPTION_KEY", "true".into()),
        ],
    );
    let log = server.stop();
    assert!(log.contains("a NEW key is recorded"), "{log}");
    assert!(log.contains(&id), "{log}");
    // From now on the new key is the database's key.
    Server::start(&data, &[("ENCRYPTION_KEY", OTHER_KEY.into())]).stop();
}

/// A database of an earlier release has secrets but no fingerprint: the key must read them.
#[tokio::test]
async fn a_database_without_a_fingerprint_is_checked_against_its_secrets() {
    let data = DataDir::new();
    let store = data.store().await;
    let id = create_integration(
        &store,
        "telegram",
        json!({"botToken": "1:secret"}),
        &["botToken"],
    )
    .await;
    assert_eq!(
        store
            .get_admin_setting(nitejar_core::store::FINGERPRINT_SETTING)
            .await
            .expect("setting"),
        None
    );

    let (code, log) = serve_until_exit(&data, &[("ENCRYPTION_KEY", OTHER_KEY)]);
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!("cannot decrypt the secrets of integration {id}")),
        "{log}"
    );

    Server::start(&data, &[]).stop();
    assert_eq!(
        store
            .get_admin_setting(nitejar_core::store::FINGERPRINT_SETTING)
            .await
            .expect("setting"),
        Some(nitejar_core::store::key_fingerprint(
            &nitejar_core::crypto::Key::parse(KEY_HEX).expect("key")
        ))
    );
}
