//! A plugin that takes the server's whole process down in the middle of a call (in-process mode),
//! against real server processes: every death is a `crashed_process` receipt and an alert at the
//! next boot, and the crash loop ends after a bounded number of restarts with the plugin disabled
//! and the server up. A process killed while the plugin only waits for a host service is not the
//! plugin's crash.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use reqwest::Method;
use serde_json::json;
use support::admin::*;
use support::probe::*;
use support::*;

/// Installs and enables the probe, allowed to reach `network` (`host:port`).
/// A server that loads unsigned plugins (the probe is one).
fn start(data: &DataDir) -> Server {
    start_admin(
        data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_string())],
    )
}

/// Waits for the `startup` receipt of boot number `n` on this data directory: what boot recorded
/// before it is written by then.
async fn booted(server: &Server, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = api(
            server,
            Method::GET,
            "/api/admin/receipts?kind=startup",
            None,
        )
        .await;
        let found = page.json()["items"].as_array().map_or(0, Vec::len);
        if found >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "boot {n} left no startup receipt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Asks the probe to test its connection with `config`: the call runs the probe's code.
fn test_connection(server: &Server, integration: &str) -> tokio::task::JoinHandle<()> {
    let url = server.url(&format!("/api/admin/integrations/{integration}/test"));
    tokio::spawn(async move {
        // The server may die before it answers: any outcome is fine here.
        let _ = client()
            .post(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .map(|r| r.status());
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_aborts_the_server_is_disabled_after_bounded_restarts() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let mut server = start(&data);
    install_probe(&server, packages.path(), "127.0.0.1").await;
    let store = data.store().await;
    let integration =
        create_plugin_integration(&store, PROBE, "probe", json!({"action": "abort"}), &[]).await;

    for strike in 1..=3u64 {
        let call = test_connection(&server, &integration);
        let (status, log) = server.wait_exit(30);
        let _ = call.await;
        assert!(!status.success(), "the plugin took the server down: {log}");
        server = start(&data);
        let crashes = receipts_within(&server, "crashed_process", strike as usize).await;
        let detail = &crashes[0]["detail"];
        assert_eq!(detail["strike"], strike, "{detail}");
        assert_eq!(detail["callsInFlight"], 1, "{detail}");
        assert_eq!(crashes[0]["pluginVersion"], "1.0.0");
        let view = probe_view(&server).await;
        if strike < 3 {
            assert_eq!(view["enabled"], true, "strike {strike}: {view}");
            assert_eq!(view["state"], "active", "strike {strike}: {view}");
        } else {
            assert_eq!(view["enabled"], false, "{view}");
            let error = view["lastLoadError"].as_str().unwrap_or_default();
            assert!(error.contains("died 3 times"), "{error}");
        }
    }

    // The loop is over: the plugin is not loaded, its call is refused, the server stays up.
    let disabled = receipts_within(&server, "auto_disable", 1).await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["detail"]["reason"], "crashed_process");
    let alerts = store
        .list_plugin_alerts(Some(PROBE), false)
        .await
        .expect("alerts");
    assert!(
        alerts
            .iter()
            .filter(|a| a.kind == "crashed_process")
            .count()
            == 2
            && alerts.iter().any(|a| a.kind == "auto_disable"),
        "{alerts:?}"
    );
    let refused = api(
        &server,
        Method::POST,
        &format!("/api/admin/integrations/{integration}/test"),
        None,
    )
    .await;
    assert_ne!(refused.status, 200, "{}", refused.text);
    let health = client()
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfault_is_attributed_and_a_kill_during_a_host_call_is_not() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = arrived.clone();
    let slow = LocalHttp::start(move |_| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_secs(5));
        json_reply(200, &json!({}))
    });
    let server = start(&data);
    install_probe(
        &server,
        packages.path(),
        &format!("127.0.0.1:{}", slow.port()),
    )
    .await;
    let store = data.store().await;

    // Killed while the probe waits for the host's HTTP client: no plugin code is running.
    let waiting = create_plugin_integration(
        &store,
        PROBE,
        "probe",
        json!({"action": "http", "url": slow.url("/slow")}),
        &[],
    )
    .await;
    let call = test_connection(&server, &waiting);
    assert!(
        eventually(10, || arrived
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(()))
        .await
        .is_some(),
        "the probe's request never reached the slow server"
    );
    server.kill();
    let _ = call.await;
    let server = start(&data);
    booted(&server, 2).await;
    assert!(receipts(&server, "crashed_process").await.is_empty());
    assert_eq!(probe_view(&server).await["state"], "active");

    // A segfault in the probe's own code is its crash.
    let faulting =
        create_plugin_integration(&store, PROBE, "probe", json!({"action": "segfault"}), &[]).await;
    let call = test_connection(&server, &faulting);
    let (status, log) = server.wait_exit(30);
    let _ = call.await;
    assert!(!status.success(), "{log}");
    let server = start(&data);
    let crashes = receipts_within(&server, "crashed_process", 1).await;
    assert_eq!(crashes[0]["detail"]["strike"], 1);
    assert_eq!(
        probe_view(&server).await["state"],
        "active",
        "one strike only"
    );
}
