//! Isolated execution against real server processes: each plugin's code runs in a process of its
//! own (`NITEJAR_PLUGIN_EXECUTION=isolated`). A plugin that aborts, segfaults or hangs in a call is
//! contained: the server answers, other plugins keep working, a `crashed` receipt names the signal,
//! the plugin's process is started again, and the crash-loop guard takes a plugin that keeps
//! crashing out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::packages::package_dir;
use support::probe::*;
use support::*;

fn start(data: &DataDir, extra: &[(&str, String)]) -> Server {
    let mut env = vec![
        ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_string()),
        ("NITEJAR_PLUGIN_EXECUTION", "isolated".to_string()),
    ];
    env.extend(extra.iter().cloned());
    start_admin(data, &env)
}

async fn test_connection(
    server: &Server,
    store: &std::sync::Arc<dyn nitejar_core::store::Store>,
    config: Value,
) -> Answer {
    let id = create_plugin_integration(store, PROBE, "probe", config, &[]).await;
    api(
        server,
        Method::POST,
        &format!("/api/admin/integrations/{id}/test"),
        None,
    )
    .await
}

/// The probe's plugin process: its pid, from the children of the server.
fn plugin_processes(server: &Server) -> Vec<u32> {
    // Each thread lists the children it started.
    let mut pids: Vec<u32> = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|c| {
                    c.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_hangs_are_contained_in_the_plugins_process() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let server = start(&data, &[]);
    install_probe(&server, packages.path(), "127.0.0.1").await;
    let store = data.store().await;

    // The plugin runs, in a process of its own, and says so.
    let ok = test_connection(
        &server,
        &store,
        json!({"action": "log", "message": "hello"}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["ok"], true, "{}", ok.text);
    assert_eq!(plugin_processes(&server).len(), 1, "one plugin process");
    let plugin = probe_view(&server).await;
    assert_eq!(plugin["executionMode"], "isolated", "{plugin}");
    // The consent text, the posture and the badge say where it runs, not "in-process".
    let consent = plugin["consentText"].as_str().unwrap_or_default();
    assert!(
        consent.contains("Isolated process:") && !consent.contains("In-process"),
        "{consent}"
    );
    assert!(
        plugin["posture"]
            .as_str()
            .is_some_and(|p| p.contains("runs isolated")),
        "{plugin}"
    );
    let runtime = api(&server, Method::GET, "/api/admin/runtime", None)
        .await
        .json();
    assert_eq!(runtime["executionMode"], "isolated", "{runtime}");
    assert!(
        runtime["badge"]
            .as_str()
            .is_some_and(|b| b.starts_with("Plugins isolated by default")),
        "{runtime}"
    );
    // And what it does not do.
    assert!(
        plugin["effectiveLimitations"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s
                .as_str()
                .is_some_and(|s| s.starts_with("Kernel-enforced in that process")))),
        "{plugin}"
    );

    // An abort ends the plugin's process, not the server.
    let before = plugin_processes(&server);
    let aborted = test_connection(&server, &store, json!({"action": "abort"})).await;
    assert_eq!(aborted.json()["ok"], false, "{}", aborted.text);
    let crashed = receipts_within(&server, "crashed", 1).await;
    assert_eq!(crashed[0]["detail"]["signal"], "SIGABRT", "{crashed:?}");
    assert_eq!(crashed[0]["executionMode"], "isolated");
    let health = client()
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    // It is started again after its back-off, and works.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = test_connection(&server, &store, json!({"action": "deadline"})).await;
    assert_eq!(again.json()["ok"], true, "{}", again.text);
    let after = plugin_processes(&server);
    assert_eq!(after.len(), 1);
    assert_ne!(before, after, "a new process");

    // A segfault too.
    let faulted = test_connection(&server, &store, json!({"action": "segfault"})).await;
    assert_eq!(faulted.json()["ok"], false, "{}", faulted.text);
    let crashed = receipts_within(&server, "crashed", 2).await;
    assert_eq!(crashed[0]["detail"]["signal"], "SIGSEGV", "{crashed:?}");
    assert_eq!(server.log().matches("panicked").count(), 0);

    // A memory hog meets its address-space limit in its own process.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let hog = test_connection(&server, &store, json!({"action": "hog", "mb": 4096})).await;
    assert_eq!(hog.json()["ok"], false, "{}", hog.text);
    let crashed = receipts_within(&server, "crashed", 3).await;
    assert_eq!(crashed[0]["detail"]["signal"], "SIGABRT", "{crashed:?}");

    // A server that dies takes no plugin process with it into the background: the process sees
    // its stream close and exits. (Three deaths in a row: a back-off of 2 s.)
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let _ = test_connection(&server, &store, json!({"action": "deadline"})).await;
    let children = plugin_processes(&server);
    assert_eq!(children.len(), 1);
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", children[0]));
        let running = stat.is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        });
        if !running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the plugin's process outlived the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_stops_the_plugins_process() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let server = start(&data, &[]);
    install_probe(&server, packages.path(), "127.0.0.1").await;
    let store = data.store().await;
    let ok = test_connection(&server, &store, json!({"action": "deadline"})).await;
    assert_eq!(ok.json()["ok"], true, "{}", ok.text);
    let hung = plugin_processes(&server);
    assert_eq!(hung.len(), 1);

    // `test` gives the call 15 s; the plugin sleeps a minute.
    let started = Instant::now();
    let late = test_connection(&server, &store, json!({"action": "sleep", "ms": 60000})).await;
    let took = started.elapsed();
    assert!(
        late.text.contains("did not answer within 15000 ms"),
        "{}",
        late.text
    );
    assert!(took < Duration::from_secs(20), "answered on time: {took:?}");
    // The process that hung is gone (its thread and processor time are back), and no crash is
    // recorded for a process the server stopped on purpose.
    let gone = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive = std::path::Path::new(&format!("/proc/{}", hung[0])).exists();
            if !alive || Instant::now() > deadline {
                break !alive;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(gone, "the hung process was stopped");
    assert!(receipts(&server, "crashed").await.is_empty());
    // The next call starts it again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = test_connection(&server, &store, json!({"action": "deadline"})).await;
    assert_eq!(again.json()["ok"], true, "{}", again.text);
}

/// What only the kernel can refuse: the plugin's own socket, file and process calls, around the
/// host. In-process they succeed (the posture says so); isolated they are refused, and the
/// plugin keeps working through the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_refuses_what_the_plugin_does_around_the_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr").to_string();
    let outside = tempfile::NamedTempFile::new().expect("a file outside its roots");
    std::fs::write(outside.path(), "secret").expect("write");
    let hostile = [
        json!({"action": "direct_connect", "addr": addr}),
        json!({"action": "direct_read", "path": outside.path()}),
        json!({"action": "direct_read", "path": "/etc/passwd"}),
        json!({"action": "direct_exec", "program": "/bin/sh"}),
    ];
    for isolated in [false, true] {
        let data = DataDir::new();
        let packages = tempfile::tempdir().expect("tempdir");
        let mode = if isolated { "isolated" } else { "in_process" };
        let server = start(&data, &[("NITEJAR_PLUGIN_EXECUTION", mode.to_string())]);
        install_probe(&server, packages.path(), "127.0.0.1").await;
        let store = data.store().await;
        for config in &hostile {
            let answer = test_connection(&server, &store, config.clone()).await;
            assert_eq!(
                answer.json()["ok"],
                true,
                "{mode} {config}: {}",
                answer.text
            );
            let detail = answer.json()["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if isolated {
                assert!(detail.starts_with("refused"), "{mode} {config}: {detail}");
            } else {
                assert!(!detail.starts_with("refused"), "{mode} {config}: {detail}");
            }
        }
        // Through the host it still works.
        let logged =
            test_connection(&server, &store, json!({"action": "log", "message": "hi"})).await;
        assert_eq!(logged.json()["detail"], "logged", "{mode}: {}", logged.text);
    }
}

/// The operator chooses per plugin, over the API and the CLI; a running plugin switches at once
/// (API) or within a second (CLI, through reconciliation), and where it runs is what the kernel
/// then enforces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_chooses_where_each_plugin_runs() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let server = start(
        &data,
        &[("NITEJAR_PLUGIN_EXECUTION", "in_process".to_string())],
    );
    install_probe(&server, packages.path(), "127.0.0.1").await;
    let store = data.store().await;
    let read_passwd = json!({"action": "direct_read", "path": "/etc/passwd"});
    let detail = |a: &Answer| a.json()["detail"].as_str().unwrap_or_default().to_owned();

    assert_eq!(
        detail(&test_connection(&server, &store, read_passwd.clone()).await),
        "read"
    );
    assert!(plugin_processes(&server).is_empty());

    let put = |body: Value| {
        let server = &server;
        async move {
            api(
                server,
                Method::PUT,
                &format!("/api/admin/plugins/{PROBE}/execution"),
                Some(&body),
            )
            .await
        }
    };
    let set = |mode: Value| put(json!({ "mode": mode }));
    let isolated = set(json!("isolated")).await;
    assert_eq!(isolated.status, 200, "{}", isolated.text);
    assert_eq!(isolated.json()["execution"]["effective"], "isolated");
    assert_eq!(isolated.json()["execution"]["active"], true);
    assert_eq!(plugin_processes(&server).len(), 1);
    let refused = test_connection(&server, &store, read_passwd.clone()).await;
    assert!(detail(&refused).starts_with("refused"), "{}", refused.text);
    let view = probe_view(&server).await;
    assert_eq!(view["executionMode"], "isolated");
    assert_eq!(view["executionModeChoice"], "isolated");
    assert_eq!(view["processLimits"]["memoryMib"], 1024, "{view}");
    let list = Session::sign_in(&server)
        .await
        .get(&server, "/admin/plugins")
        .await;
    assert!(
        list.text.contains("<td>isolated</td>"),
        "the list says where it runs"
    );
    assert!(view["processLimits"]["memoryMibChoice"].is_null());

    // The operator's memory limit: the process starts again under it, and the kernel holds it.
    let hog = json!({"action": "hog", "mb": 400});
    assert_eq!(
        test_connection(&server, &store, hog.clone()).await.json()["ok"],
        true,
        "400 MiB fits the default 1 GiB"
    );
    let before = plugin_processes(&server);
    let limited = put(json!({"mode": "isolated", "memoryMib": 256})).await;
    assert_eq!(limited.status, 200, "{}", limited.text);
    assert_eq!(limited.json()["execution"]["limits"]["memoryMib"], 256);
    // A new process, under the new limit (the old one exits when its stream closes).
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let now = plugin_processes(&server);
        if now.len() == 1 && now != before {
            break now;
        }
        assert!(Instant::now() < deadline, "no new process: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = std::fs::read_to_string(format!("/proc/{}/limits", after[0])).unwrap_or_default();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Max address space") && l.contains(&(256u64 << 20).to_string())),
        "{status}"
    );
    let refused = test_connection(&server, &store, hog.clone()).await;
    assert_eq!(refused.json()["ok"], false, "{}", refused.text);
    let view = probe_view(&server).await;
    assert_eq!(view["processLimits"]["memoryMib"], 256, "{view}");
    assert_eq!(view["processLimits"]["memoryMibChoice"], 256);
    assert!(
        view["effectiveLimitations"]
            .to_string()
            .contains("at most 256 MiB"),
        "{view}"
    );
    // Out of range, of the wrong type, or an unknown field: refused, nothing changes.
    for (body, status) in [
        (json!({"mode": "isolated", "memoryMib": 64}), 422),
        (json!({"mode": "isolated", "cpuSeconds": 1}), 422),
        (json!({"mode": "isolated", "memoryMib": "lots"}), 422),
        (json!({"mode": "isolated", "memory": 512}), 400),
        (json!({"memoryMib": 512}), 400),
    ] {
        let answer = put(body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
    }
    let (ok, text) = cli(
        &data,
        &[
            "plugin",
            "execution",
            PROBE,
            "isolated",
            "--memory-mib",
            "lots",
        ],
    );
    assert!(
        !ok && text.contains("--memory-mib must be a whole number"),
        "{text}"
    );
    let view = probe_view(&server).await;
    assert_eq!(
        view["processLimits"]["memoryMibChoice"], 256,
        "nothing changed"
    );
    // Back to the server's default: the hog fits again.
    let (ok, text) = cli(
        &data,
        &[
            "plugin",
            "execution",
            PROBE,
            "isolated",
            "--memory-mib",
            "default",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("at most 1024 MiB"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    // The server follows: a process of its own again (the hog's crash ended the last one).
    let address_space = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/limits"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max address space"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    loop {
        let now = plugin_processes(&server);
        if now.len() == 1 && address_space(now[0]).contains(&(1024u64 << 20).to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not follow the CLI"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its new instance takes the calls once swapped in (the reconcile loads it first).
    loop {
        let fits = test_connection(&server, &store, hog.clone()).await;
        if fits.json()["ok"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "{}\n{}", fits.text, server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Bad input changes nothing.
    assert_eq!(set(json!("sandboxed")).await.status, 422);
    let builtin = api(
        &server,
        Method::PUT,
        "/api/admin/plugins/builtin.echo/execution",
        Some(&json!({"mode": "isolated"})),
    )
    .await;
    assert_eq!(builtin.status, 409, "{}", builtin.text);

    // The CLI, beside the running server: back to in-process.
    let (ok, text) = cli(&data, &["plugin", "execution", PROBE, "in_process"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !plugin_processes(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the server did not switch it back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        detail(&test_connection(&server, &store, read_passwd).await),
        "read"
    );
    // isolated, 256 MiB, the default again (the CLI), in-process (the CLI); the two refusals
    // the lifecycle made (out of range) are receipted as errors.
    let configured = receipts(&server, "configure").await;
    let count = |status: &str| configured.iter().filter(|r| r["status"] == status).count();
    assert_eq!((count("ok"), count("error")), (4, 2), "{configured:?}");

    // A change of where it runs loads the plugin in its new mode with the lifecycle lock let go:
    // a plugin that takes 1.5 s to load holds up no other operation meanwhile.
    let post = |path: &'static str| {
        let server = &server;
        async move {
            api(
                server,
                Method::POST,
                &format!("/api/admin/plugins/{PROBE}/{path}"),
                Some(&json!({"acceptConsent": true})),
            )
            .await
        }
    };
    assert_eq!(post("disable").await.status, 200);
    store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: PROBE.into(),
            config_json: Some(Some(r#"{"loadSleepMs": 1500}"#.into())),
            ..Default::default()
        })
        .await
        .expect("settings");
    let enabled = post("enable").await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let slow = async {
        let started = Instant::now();
        (set(json!("isolated")).await, started.elapsed())
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        (post("disable").await, started.elapsed())
    };
    let ((moved, moved_in), (disabled, disabled_in)) = tokio::join!(slow, meanwhile);
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert!(
        disabled_in < Duration::from_millis(700),
        "the disable waited for the load: {disabled_in:?}"
    );
    assert!(moved_in >= Duration::from_millis(1500), "{moved_in:?}");
    // It was disabled meanwhile: the choice is stored, and nothing runs.
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.json()["execution"]["active"], false, "{}", moved.text);
    let view = probe_view(&server).await;
    assert_eq!(view["executionModeChoice"], "isolated", "{view}");
    assert_eq!(view["enabled"], false, "{view}");
    // A disabled plugin's code does not go on running in a process of its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !plugin_processes(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "a disabled plugin's process lives on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The plugin's page has the choice too (a form, CSRF-checked like every other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_page_chooses_where_it_runs() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let server = start(
        &data,
        &[("NITEJAR_PLUGIN_EXECUTION", "in_process".to_string())],
    );
    install_probe(&server, packages.path(), "127.0.0.1").await;
    let session = Session::sign_in(&server).await;
    let page = session
        .get(&server, &format!("/admin/plugins/{PROBE}"))
        .await;
    assert!(page.text.contains("id=\"execution-form\""), "{}", page.text);
    let saved = session
        .post_form(
            &server,
            &format!("/admin/plugins/{PROBE}/execution"),
            &[("mode", "isolated")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let view = probe_view(&server).await;
    assert_eq!(view["executionMode"], "isolated", "{view}");
    assert_eq!(plugin_processes(&server).len(), 1);
    let page = session
        .get(&server, &format!("/admin/plugins/{PROBE}"))
        .await;
    assert!(
        page.text.contains("<option value=\"isolated\" selected>"),
        "the choice is shown"
    );
    let bad = session
        .post_form(
            &server,
            &format!("/admin/plugins/{PROBE}/execution"),
            &[("mode", "elsewhere")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
}

/// `nitejar plugin enable --isolated` keeps the choice: the server, in-process by default, runs
/// that plugin in a process of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_isolated_from_the_cli() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let dir = package_dir(
        packages.path(),
        "probe",
        "tests/fixtures/plugins/probe",
        "probe",
        |_| {},
    );
    let (ok, text) = cli(&data, &["plugin", "install", &dir.to_string_lossy()]);
    assert!(ok, "{text}");
    let (ok, text) = cli(
        &data,
        &[
            "plugin",
            "enable",
            PROBE,
            "--isolated",
            "--in-process",
            "--accept-consent",
        ],
    );
    assert!(!ok, "the two flags exclude each other: {text}");
    let (ok, text) = cli(
        &data,
        &["plugin", "enable", PROBE, "--isolated", "--accept-consent"],
    );
    assert!(ok, "{text}");

    let server = start(
        &data,
        &[("NITEJAR_PLUGIN_EXECUTION", "in_process".to_string())],
    );
    let view = probe_view(&server).await;
    assert_eq!(view["executionMode"], "isolated", "{view}");
    assert_eq!(view["executionModeChoice"], "isolated", "{view}");
    assert_eq!(plugin_processes(&server).len(), 1);

    // Disabled from the CLI beside the running server: the server follows, and the plugin's
    // process ends with it (its code does not go on running).
    let (ok, text) = cli(&data, &["plugin", "disable", PROBE]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !plugin_processes(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the disabled plugin's process lives on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
