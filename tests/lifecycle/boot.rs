//! Boot: built-ins first, a tampered version directory, the boot marker, safe mode; and the
//! crash-loop guard.

use std::time::Duration;

use nitejar_core::hooks::DispatchContext;
use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{
    CrashLoopConfig, EnableRequest, LifecycleError, PluginState, SettingsChange,
};
use nitejar_sdk::hooks::{ResponsePreDeliver, ToolPreExec};

use crate::on_both_backends;
use crate::support::{greeter, package_files, tgz, Env, GREETER};
use crate::testdb::TestDb;

const PROBE: &str = "dev.nitejar.fixtures.probe";

async fn answer(env: &Env) -> String {
    let payload = {
        let mut response = ResponsePreDeliver::default();
        response.content = "hi".into();
        response
    };
    env.runtime
        .dispatch(&DispatchContext::default(), payload)
        .await
        .payload
        .content
}

async fn installed_and_enabled(db: &TestDb) -> Env {
    let env = Env::new(db, |_| {}).await;
    let bytes = tgz(&greeter(1));
    env.manager
        .install(InstallSource::Upload {
            name: "g.tgz".into(),
            bytes,
        })
        .await
        .unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    env
}

async fn boot_loads_and_verifies(db: TestDb) {
    let env = installed_and_enabled(&db).await;
    // A restart loads it again, built-ins first.
    let env = env.restart(|_| {}).await;
    let report = env.manager.boot().await;
    assert!(
        report
            .builtins
            .iter()
            .any(|b| b.starts_with("builtin.echo@")),
        "{report:?}"
    );
    assert_eq!(report.loaded, vec![format!("{GREETER}@1.0.0")]);
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    let startup = env.receipts_of("nitejar.server", "startup").await;
    assert_eq!(startup[0].0, "ok");
    assert_eq!(startup[0].1["loaded"][0], format!("{GREETER}@1.0.0"));

    // A file changed in the version directory: marked error, not loaded, boot goes on.
    let dir = env.manager.layout().version_dir(GREETER, "1.0.0");
    std::fs::write(
        dir.join("nitejar.plugin.json.bak"),
        b"dropped in by someone",
    )
    .unwrap();
    let env = env.restart(|_| {}).await;
    let report = env.manager.boot().await;
    assert!(report.loaded.is_empty());
    assert!(
        report.errors[0].reason.contains("was changed on disk"),
        "{report:?}"
    );
    assert!(
        !report.builtins.is_empty(),
        "a failing plugin never blocks boot"
    );
    assert_eq!(answer(&env).await, "hi");
    let listed = env.manager.list().await.unwrap();
    let g = listed.iter().find(|p| p.id == GREETER).unwrap();
    assert_eq!(g.state, PluginState::Error);
    assert!(g
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("was changed on disk"));
    let alerts = env
        .store
        .list_plugin_alerts(Some(GREETER), false)
        .await
        .unwrap();
    assert_eq!(alerts[0].kind, "tampered");
    assert_eq!(
        env.receipts_of("nitejar.server", "startup").await[0].0,
        "error"
    );
    let doctor = env.manager.doctor().await;
    assert!(
        doctor.findings.iter().any(|f| f.check == "digest"),
        "{doctor:?}"
    );
    // Reconcile does not retry it every second; an operator's enable does (and refuses again).
    assert!(env.manager.reconcile().await.unwrap().is_empty());
    assert!(env
        .manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .is_err());
    std::fs::remove_file(dir.join("nitejar.plugin.json.bak")).unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    assert!(
        env.store
            .list_plugin_alerts(Some(GREETER), false)
            .await
            .unwrap()
            .is_empty(),
        "alerts cleared"
    );
}

async fn boot_marker_and_safe_mode(db: TestDb) {
    let env = installed_and_enabled(&db).await;
    // Safe mode: built-ins only.
    let env = env.restart(|o| o.safe_mode = true).await;
    let report = env.manager.boot().await;
    assert!(report.safe_mode && report.loaded.is_empty() && !report.builtins.is_empty());
    assert!(report
        .skipped
        .iter()
        .any(|s| s.id == GREETER && s.reason.contains("safe mode")));
    assert_eq!(answer(&env).await, "hi");
    assert!(
        env.manager.reconcile().await.unwrap().is_empty(),
        "reconcile respects safe mode"
    );

    // The previous process died while activating the plugin: skipped, disabled, said so.
    let marker = env.manager.layout().activation_marker(GREETER);
    std::fs::write(
        &marker,
        r#"{"version":"1.0.0","pid":999999999,"started_at_ms":0}"#,
    )
    .unwrap();
    let env = env.restart(|o| o.safe_mode = false).await;
    let report = env.manager.boot().await;
    assert!(report.loaded.is_empty());
    assert!(
        report.errors[0]
            .reason
            .contains("the server stopped while activating"),
        "{report:?}"
    );
    assert!(!marker.exists());
    let row = env.store.get_plugin(GREETER).await.unwrap().unwrap();
    assert!(!row.enabled);
    assert!(row
        .last_load_error
        .unwrap()
        .contains("skipped and disabled"));
    assert_eq!(
        env.store
            .list_plugin_alerts(Some(GREETER), false)
            .await
            .unwrap()[0]
            .kind,
        "boot_marker"
    );
    // The next boot starts normally; the operator enables it again.
    let env = env.restart(|_| {}).await;
    assert!(env.manager.boot().await.errors.is_empty());
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    assert!(!marker.exists(), "the marker is removed after activation");
}

async fn crash_loop_auto_disables(db: TestDb) {
    let env = Env::new(&db, |o| {
        o.crash = CrashLoopConfig {
            threshold: 3,
            window: Duration::from_secs(60),
        };
    })
    .await;
    let probe = package_files("tests/fixtures/plugins/probe", "probe", |_| {}, &[]);
    env.manager
        .install(InstallSource::Upload {
            name: "p.tgz".into(),
            bytes: tgz(&probe),
        })
        .await
        .unwrap();
    env.manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap();
    let panic = || {
        let mut call = ToolPreExec::default();
        call.tool_name = "panic".into();
        call
    };
    for _ in 0..2 {
        env.runtime
            .dispatch(&DispatchContext::default(), panic())
            .await;
    }
    assert!(
        env.runtime.registry().plugin(PROBE).is_some(),
        "two failures are not a loop"
    );
    env.runtime
        .dispatch(&DispatchContext::default(), panic())
        .await;
    assert!(
        env.runtime.registry().plugin(PROBE).is_none(),
        "unregistered at once"
    );
    assert!(env.runtime.registry().integration("probe").is_none());
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert!(!row.enabled);
    assert!(row
        .last_load_error
        .unwrap()
        .contains("auto-disabled: 3 failed calls"));
    let receipts = env.receipts_of(PROBE, "auto_disable").await;
    assert_eq!(receipts[0].1["failureCount"], 3);
    let alerts = env
        .store
        .list_plugin_alerts(Some(PROBE), false)
        .await
        .unwrap();
    assert_eq!(alerts[0].kind, "auto_disable");
    // It stays out across reconciliations and restarts until an operator enables it.
    assert!(env.manager.reconcile().await.unwrap().is_empty());
    let env = env.restart(|_| {}).await;
    assert!(env.manager.boot().await.loaded.is_empty());
}

/// A plugin whose loading hangs is an error of that plugin, on time: enabling it answers
/// `LoadTimedOut` after the limit (and later operations are not held up), and a boot with it enabled
/// finishes, loads the others and reports it.
async fn a_plugin_that_hangs_while_loading_is_bounded(db: TestDb) {
    let limit = Duration::from_millis(400);
    let env = Env::new(&db, |o| o.load_timeout = limit).await;
    let probe = package_files("tests/fixtures/plugins/probe", "probe", |_| {}, &[]);
    env.manager
        .install(InstallSource::Upload {
            name: "p.tgz".into(),
            bytes: tgz(&probe),
        })
        .await
        .unwrap();
    env.manager
        .install(InstallSource::Upload {
            name: "g.tgz".into(),
            bytes: tgz(&greeter(1)),
        })
        .await
        .unwrap();
    env.store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: PROBE.into(),
            config_json: Some(Some(r#"{"loadSleepMs": 3000}"#.into())),
            ..Default::default()
        })
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let err = env
        .manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            nitejar_core::lifecycle::LifecycleError::LoadTimedOut { .. }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(env.runtime.registry().plugin(PROBE).is_none());
    let loads = env.receipts_of(PROBE, "load").await;
    assert!(
        loads.iter().any(|(status, _)| status == "timeout"),
        "{loads:?}"
    );
    // The next operation goes through.
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();

    // Enabled with the hang in its config: a boot finishes and loads the rest.
    let mut row = env.store.get_plugin(PROBE).await.unwrap().expect("row");
    row.enabled = true;
    env.store.upsert_plugin(&row).await.unwrap();
    let env = env.restart(|o| o.load_timeout = limit).await;
    let started = std::time::Instant::now();
    let report = env.manager.boot().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        report.loaded,
        vec![format!("{GREETER}@1.0.0")],
        "{report:?}"
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.id == PROBE && e.reason.contains("did not finish loading")),
        "{report:?}"
    );
    let row = env.store.get_plugin(PROBE).await.unwrap().expect("row");
    assert!(row
        .last_load_error
        .as_deref()
        .is_some_and(|e| e.contains("did not finish loading")));
}

/// Plugin code loads outside the lifecycle lock: while a reconciliation waits for a plugin that
/// loads slowly, another operation and another reconciliation go through at once (the second
/// skips the version being loaded), and the slow plugin is still activated when it is ready.
async fn a_slow_load_holds_up_no_other_operation(db: TestDb) {
    let env = Env::new(&db, |o| o.load_timeout = Duration::from_secs(10)).await;
    let probe = package_files("tests/fixtures/plugins/probe", "probe", |_| {}, &[]);
    for (name, bytes) in [("p.tgz", tgz(&probe)), ("g.tgz", tgz(&greeter(1)))] {
        env.manager
            .install(InstallSource::Upload {
                name: name.into(),
                bytes,
            })
            .await
            .unwrap();
    }
    for id in [PROBE, GREETER] {
        env.manager
            .enable(id, EnableRequest::accept_all())
            .await
            .unwrap();
    }
    // A fresh process must load both again; the probe's code now takes 1.5 s to load.
    env.store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: PROBE.into(),
            config_json: Some(Some(r#"{"loadSleepMs": 1500}"#.into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let env = env
        .restart(|o| o.load_timeout = Duration::from_secs(10))
        .await;

    let slow = async { env.manager.reconcile().await.unwrap() };
    let disable = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        env.manager.disable(GREETER).await.unwrap();
        started.elapsed()
    };
    let again = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let report = env.manager.reconcile().await.unwrap();
        (started.elapsed(), report)
    };
    let (slow, disabled_in, (again_in, again)) = tokio::join!(slow, disable, again);
    assert!(
        disabled_in < Duration::from_millis(700),
        "disable waited for another plugin's load: {disabled_in:?}"
    );
    assert!(
        again_in < Duration::from_millis(700),
        "a reconciliation waited for a load another one runs: {again_in:?}"
    );
    assert!(again.errors.is_empty(), "{again:?}");
    assert!(
        !again.activated.iter().any(|a| a.starts_with(PROBE)),
        "{again:?}"
    );
    // The slow one activated the probe, and not the greeter disabled meanwhile.
    assert_eq!(slow.activated, vec![format!("{PROBE}@1.0.0")], "{slow:?}");
    assert!(env.runtime.registry().plugin(PROBE).is_some());
    assert!(env.runtime.registry().plugin(GREETER).is_none());
}

/// Enabling a plugin whose code takes long to load, or changing its settings (a new instance
/// tries them), lets the lifecycle lock go while it loads: another plugin is disabled or enabled
/// meanwhile at once, and the slow operation still finishes — unless what it was checked against
/// changed meanwhile.
async fn enabling_a_slow_plugin_holds_up_no_other_operation(db: TestDb) {
    let env = Env::new(&db, |o| o.load_timeout = Duration::from_secs(10)).await;
    let probe = package_files("tests/fixtures/plugins/probe", "probe", |_| {}, &[]);
    for (name, bytes) in [("p.tgz", tgz(&probe)), ("g.tgz", tgz(&greeter(1)))] {
        env.manager
            .install(InstallSource::Upload {
                name: name.into(),
                bytes,
            })
            .await
            .unwrap();
    }
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    env.store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: PROBE.into(),
            config_json: Some(Some(r#"{"loadSleepMs": 1500}"#.into())),
            ..Default::default()
        })
        .await
        .unwrap();

    let slow = async {
        let started = std::time::Instant::now();
        let outcome = env
            .manager
            .enable(PROBE, EnableRequest::accept_all())
            .await
            .unwrap();
        (started.elapsed(), outcome)
    };
    let disable = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        env.manager.disable(GREETER).await.unwrap();
        started.elapsed()
    };
    let ((slow_in, enabled), disabled_in) = tokio::join!(slow, disable);
    assert!(
        disabled_in < Duration::from_millis(700),
        "disable waited for another plugin's load: {disabled_in:?}"
    );
    assert!(slow_in >= Duration::from_millis(1500), "{slow_in:?}");
    assert!(enabled.active);
    assert!(env.runtime.registry().plugin(PROBE).is_some());
    assert!(env.runtime.registry().plugin(GREETER).is_none());
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert!(row.enabled && row.last_load_error.is_none(), "{row:?}");

    // New settings (here a secret; the stored config keeps its 1.5 s load) are tried by a new
    // instance with the lock let go as well.
    let slow = async {
        let started = std::time::Instant::now();
        let change = SettingsChange::default().secret("PROBE_TOKEN", "second");
        let outcome = env.manager.configure(PROBE, change).await.unwrap();
        (started.elapsed(), outcome)
    };
    let enable = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        env.manager
            .enable(GREETER, EnableRequest::accept_all())
            .await
            .unwrap();
        started.elapsed()
    };
    let ((slow_in, configured), enabled_in) = tokio::join!(slow, enable);
    assert!(
        enabled_in < Duration::from_millis(700),
        "enable waited for another plugin's settings to load: {enabled_in:?}"
    );
    assert!(slow_in >= Duration::from_millis(1500), "{slow_in:?}");
    assert!(
        configured.checked_by_plugin && configured.reinstantiated,
        "{configured:?}"
    );
    assert!(env.runtime.registry().plugin(GREETER).is_some());

    // Settings stored by someone else while the new ones load: the change stops, as it was
    // checked against settings that are no longer the stored ones, and stores nothing.
    let slow = env.manager.configure(
        PROBE,
        SettingsChange::default().secret("PROBE_TOKEN", "third"),
    );
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.store
            .write_plugin_settings(&nitejar_core::store::SettingsWrite {
                plugin_id: PROBE.into(),
                config_json: Some(Some(
                    r#"{"loadSleepMs": 1500, "round": "elsewhere"}"#.into(),
                )),
                ..Default::default()
            })
            .await
            .unwrap()
    };
    let (stopped, revision) = tokio::join!(slow, meanwhile);
    let error = stopped.unwrap_err();
    assert!(
        matches!(error, LifecycleError::ChangedMeanwhile { .. }),
        "{error:?}"
    );
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(row.config_revision, revision);
    assert!(row.config_json.unwrap().contains("elsewhere"));
}

on_both_backends!(
    a_plugin_that_hangs_while_loading_is_bounded,
    a_slow_load_holds_up_no_other_operation,
    enabling_a_slow_plugin_holds_up_no_other_operation,
    boot_loads_and_verifies,
    boot_marker_and_safe_mode,
    crash_loop_auto_disables
);
