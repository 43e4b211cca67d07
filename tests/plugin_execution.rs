//! The execution host with real plugin libraries: panics contained, timeouts, cancellation,
//! per-plugin call slots, stuck calls and quarantine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_core::hooks::DispatchContext;
use nitejar_core::host::{ExecutionLimits, NoServices};
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::receipts::{MemorySink, Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::registry::PluginMeta;
use nitejar_core::runtime::{IntegrationCallError, Runtime};
use nitejar_sdk::hooks::ToolPreExec;
use nitejar_sdk::integration::ConnectionTest;
use nitejar_sdk::IntegrationError;
use nitejar_suite::plugins::install_package;
use serde_json::{json, Value};

struct Probe {
    runtime: Arc<Runtime>,
    sink: Arc<MemorySink>,
    meta: Arc<PluginMeta>,
    _data: tempfile::TempDir,
}

fn probe(limits: ExecutionLimits) -> Probe {
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(data.path(), "tests/fixtures/plugins/probe", "probe", |_| {});
    let manifest = validate_package_dir(&dir, &ValidateOptions::new())
        .unwrap()
        .manifest;
    let active = loader::load(&PluginPackage::new(&dir, manifest), Arc::new(NoServices)).unwrap();
    let meta = active.meta().clone();
    let sink = MemorySink::new();
    let runtime = Runtime::builder().sink(sink.clone()).limits(limits).build();
    runtime.activate(active).unwrap();
    Probe {
        runtime: Arc::new(runtime),
        sink,
        meta,
        _data: data,
    }
}

impl Probe {
    async fn act(
        &self,
        config: Value,
        timeout_ms: u64,
    ) -> Result<ConnectionTest, IntegrationCallError> {
        self.runtime
            .call_integration(
                "probe",
                "test_connection",
                &DispatchContext::default(),
                Duration::from_millis(timeout_ms),
                move |integration, host| integration.test_connection(&config, host),
            )
            .await
    }

    async fn tool(&self, name: &str, input: Value) -> nitejar_core::hooks::Dispatched<ToolPreExec> {
        let call = {
            let mut call = ToolPreExec::default();
            call.tool_name = name.into();
            call.tool_input = input;
            call
        };
        self.runtime
            .dispatch(&DispatchContext::for_work_item("wi-1"), call)
            .await
    }

    fn take(&self) -> Vec<Receipt> {
        self.sink.take()
    }
}

fn detail(r: &Receipt, key: &str) -> String {
    r.detail
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_is_reported_and_the_process_keeps_serving() {
    let p = probe(ExecutionLimits::default());

    let out = p.tool("panic", Value::Null).await;
    assert!(!out.is_blocked(), "the probe's handler is fail_open");
    let receipts = p.take();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].status, ReceiptStatus::Error);
    let error = detail(&receipts[0], "error");
    assert!(
        error.contains("panicked: probe hook was asked to panic"),
        "{error}"
    );
    assert!(
        error.contains("src/lib.rs"),
        "the location is kept: {error}"
    );

    let err = p
        .act(json!({"action": "panic", "message": "boom"}), 2000)
        .await
        .unwrap_err();
    let IntegrationCallError::Failed(IntegrationError::Other(message)) = &err else {
        panic!("expected the integration's failure, got {err:?}");
    };
    assert!(
        message.contains("panicked: probe was asked to panic: boom"),
        "{message}"
    );
    let receipts = p.take();
    assert_eq!(
        (receipts[0].kind, receipts[0].status),
        (ReceiptKind::Integration, ReceiptStatus::Error)
    );
    assert!(detail(&receipts[0], "error").contains("boom"));

    // Still serving, the same instance.
    assert!(
        p.act(json!({"action": "log", "message": "after"}), 2000)
            .await
            .unwrap()
            .ok
    );
    let out = p.tool("search", Value::Null).await;
    assert!(!out.is_blocked());
    assert_eq!(p.take().last().map(|r| r.status), Some(ReceiptStatus::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_calls_time_out_and_quarantine_the_plugin_until_they_return() {
    let p = probe(ExecutionLimits {
        max_concurrent_calls: 4,
        quarantine_after_stuck: 2,
    });
    // The probe's handler has a 200 ms timeout and ignores cancellation while it sleeps.
    for _ in 0..2 {
        let started = Instant::now();
        p.tool("sleep", json!({"ms": 1500})).await;
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "the caller got its timeout on time"
        );
    }
    assert_eq!(p.runtime.exec().stuck_calls(&p.meta), 2);
    assert!(p.runtime.exec().is_quarantined(&p.meta));
    let receipts = p.take();
    let statuses: Vec<_> = receipts.iter().map(|r| (r.kind, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (ReceiptKind::Hook, ReceiptStatus::Timeout),
            (ReceiptKind::Hook, ReceiptStatus::Timeout),
            (ReceiptKind::AutoDisable, ReceiptStatus::Error),
        ]
    );
    assert_eq!(detail(&receipts[2], "action"), "quarantine");
    assert_eq!(receipts[2].work_item_id.as_deref(), Some("wi-1"));

    // Quarantined: refused at once, hooks and integration calls alike.
    let started = Instant::now();
    p.tool("search", Value::Null).await;
    let err = p.act(json!({"action": "log"}), 2000).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        matches!(err, IntegrationCallError::Quarantined(_)),
        "{err:?}"
    );
    let receipts = p.take();
    assert_eq!(receipts[0].status, ReceiptStatus::Error);
    assert!(
        detail(&receipts[0], "error").contains("is quarantined"),
        "{:?}",
        receipts[0]
    );
    assert_eq!(
        (receipts[1].kind, receipts[1].status),
        (ReceiptKind::Integration, ReceiptStatus::Error)
    );

    // Once the stuck calls return, the plugin is served again.
    let until = Instant::now() + Duration::from_secs(5);
    while p.runtime.exec().stuck_calls(&p.meta) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!p.runtime.exec().is_quarantined(&p.meta));
    assert!(p.act(json!({"action": "log"}), 2000).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_plugin_sees_the_cancellation_and_returns() {
    let p = probe(ExecutionLimits::default());
    let started = Instant::now();
    let err = p
        .act(
            json!({"action": "sleep", "ms": 5000, "cooperative": true}),
            150,
        )
        .await
        .unwrap_err();
    assert_eq!(err, IntegrationCallError::Timeout(150));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(p.take()[0].status, ReceiptStatus::Timeout);
    // The plugin polls `is_cancelled` through the host object and stops long before 5 s.
    let until = Instant::now() + Duration::from_secs(2);
    while p.runtime.exec().stuck_calls(&p.meta) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.runtime.exec().stuck_calls(&p.meta), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_sees_its_deadline() {
    let p = probe(ExecutionLimits::default());
    let test = p.act(json!({"action": "deadline"}), 5000).await.unwrap();
    let left: u64 = test.detail.unwrap().parse().unwrap();
    assert!((4000..=5000).contains(&left), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_bound_wait_for_a_slot_or_time_out() {
    let p = probe(ExecutionLimits {
        max_concurrent_calls: 1,
        quarantine_after_stuck: 3,
    });
    let busy = p.act(json!({"action": "sleep", "ms": 600}), 3000);
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.act(json!({"action": "log"}), 200).await
    };
    let patient = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.act(json!({"action": "log"}), 3000).await
    };
    let (busy, waiting, patient) = tokio::join!(busy, waiting, patient);
    assert!(busy.unwrap().ok);
    assert_eq!(waiting.unwrap_err(), IntegrationCallError::Timeout(200));
    assert!(
        patient.unwrap().ok,
        "a call that can wait gets the slot when it frees"
    );
    assert_eq!(p.runtime.exec().stuck_calls(&p.meta), 0);
}
