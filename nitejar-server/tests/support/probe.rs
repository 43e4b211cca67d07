//! The `probe` fixture plugin in a running server: install and enable it, read its receipts, and
//! run the `nitejar` CLI beside the server on the same data directory.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::admin::api;
use super::packages::package_dir;
use super::{DataDir, Server, KEY_HEX};

/// The probe's plugin id.
pub const PROBE: &str = "dev.nitejar.fixtures.probe";

/// Installs and enables the probe, allowed to reach `network` (`host` or `host:port`).
pub async fn install_probe(server: &Server, packages: &Path, network: &str) {
    let dir = package_dir(
        packages,
        "probe",
        "tests/fixtures/plugins/probe",
        "probe",
        |m| m["permissions"]["network"] = json!([network]),
    );
    let installed = api(
        server,
        Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({"path": dir.to_string_lossy()})),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let enabled = api(
        server,
        Method::POST,
        &format!("/api/admin/plugins/{PROBE}/enable"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
}

/// The probe's receipts of `kind`, newest first.
pub async fn receipts(server: &Server, kind: &str) -> Vec<Value> {
    let page = api(
        server,
        Method::GET,
        &format!("/api/admin/receipts?plugin={PROBE}&kind={kind}"),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.json()["items"].as_array().cloned().unwrap_or_default()
}

/// The probe's receipts of `kind` once there are `n` (receipts are written in the background);
/// exactly `n`, or the test fails.
pub async fn receipts_within(server: &Server, kind: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = receipts(server, kind).await;
        if found.len() >= n || Instant::now() > deadline {
            assert_eq!(
                found.len(),
                n,
                "{kind} receipts: {found:?}\n{}",
                server.log()
            );
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The probe as the plugin API shows it.
pub async fn probe_view(server: &Server) -> Value {
    let answer = api(
        server,
        Method::GET,
        &format!("/api/admin/plugins/{PROBE}"),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

/// Runs `nitejar <args>` on `data` in open trust mode; whether it succeeded, and what it printed.
pub fn cli(data: &DataDir, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .env("ENCRYPTION_KEY", KEY_HEX)
        .env("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open")
        .output()
        .expect("run nitejar");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
