//! Handlers of a real plugin library in batches: one `hooks.<event>` call per plugin per chain,
//! judged handler by handler exactly as one by one — results, panics, blocks, per-handler
//! timeouts and deadlines, the budget — and a library built before batches still served.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nitejar_core::hooks::{DispatchContext, Dispatched};
use nitejar_core::host::{ExecPolicy, HostServices};
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::receipts::{MemorySink, Receipt, ReceiptStatus};
use nitejar_core::registry::{PluginMeta, PluginOrigin};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::abi::{HookBatchAnswer, HookBatchCall, PluginError};
use nitejar_sdk::hooks::ToolPreExec;
use nitejar_sdk::host::{HttpRequest, HttpResponse, LogLevel, ProcessOutput, ProcessRequest};
use nitejar_sdk::HostError;
use nitejar_suite::plugins::install_package;
use serde_json::{json, Value};

/// Host services that keep the plugins' log lines (every scripted handler logs `ran <name>`).
#[derive(Default)]
struct Logs(Mutex<Vec<String>>);

impl Logs {
    /// How many lines end with `text` (the host prefixes the plugin's own lines with the method).
    fn count(&self, text: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with(text))
            .count()
    }
}

impl HostServices for Logs {
    fn http(
        &self,
        _: &PluginMeta,
        _: Option<Instant>,
        _: &HttpRequest,
    ) -> Result<HttpResponse, HostError> {
        Err(HostError::Unavailable("no network here".into()))
    }
    fn secret(&self, _: &PluginMeta, _: &str) -> Result<String, HostError> {
        Err(HostError::Unavailable("no secrets here".into()))
    }
    fn read_file(&self, _: &PluginMeta, _: &str) -> Result<Vec<u8>, HostError> {
        Err(HostError::Unavailable("no files here".into()))
    }
    fn write_file(&self, _: &PluginMeta, _: &str, _: &[u8]) -> Result<(), HostError> {
        Err(HostError::Unavailable("no files here".into()))
    }
    fn spawn_process(
        &self,
        _: &PluginMeta,
        _: Option<Instant>,
        _: &ProcessRequest,
    ) -> Result<ProcessOutput, HostError> {
        Err(HostError::Unavailable("no processes here".into()))
    }
    fn log(&self, _: &PluginMeta, _: LogLevel, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

struct Chain {
    runtime: Runtime,
    sink: Arc<MemorySink>,
    logs: Arc<Logs>,
    meta: Arc<PluginMeta>,
    _data: tempfile::TempDir,
}

const HOOK_CHAIN: (&str, &str) = ("tests/fixtures/plugins/hook-chain", "hook_chain");
const LEGACY: (&str, &str) = ("tests/fixtures/plugins/legacy-hooks", "legacy_hooks");

fn package(data: &std::path::Path, (dir, lib): (&str, &str), config: Value) -> PluginPackage {
    let dir = install_package(data, dir, lib, |_| {});
    let manifest = validate_package_dir(&dir, &ValidateOptions::new())
        .unwrap()
        .manifest;
    PluginPackage::new(&dir, manifest).with_config(config)
}

/// The scripted fixture `fixture` (see `tests/fixtures/plugins/hook_chain.rs`) in a runtime, run
/// with `policy`.
fn chain(fixture: (&str, &str), script: Value, policy: ExecPolicy, budget: Duration) -> Chain {
    let data = tempfile::tempdir().unwrap();
    let logs = Arc::new(Logs::default());
    let package = package(data.path(), fixture, json!({ "script": script }));
    let active = loader::load(&package, logs.clone()).unwrap();
    let meta = active.meta().clone();
    let sink = MemorySink::new();
    let runtime = Runtime::builder()
        .sink(sink.clone())
        .services(logs.clone())
        .chain_budget(budget)
        .build();
    runtime.activate(active.with_policy(policy)).unwrap();
    Chain {
        runtime,
        sink,
        logs,
        meta,
        _data: data,
    }
}

impl Chain {
    async fn dispatch(&self) -> Dispatched<ToolPreExec> {
        self.dispatch_with(4096).await
    }

    /// Dispatches a payload whose `tool_input.content` is `len` bytes long.
    async fn dispatch_with(&self, len: usize) -> Dispatched<ToolPreExec> {
        let call = {
            let mut call = ToolPreExec::default();
            call.turn = 1;
            call.tool_name = "write_file".into();
            call.tool_call_id = "call-1".into();
            call.tool_input = json!({ "content": "x".repeat(len) });
            call
        };
        self.runtime
            .dispatch(&DispatchContext::for_work_item("wi-1"), call)
            .await
    }

    /// Waits until no call of the plugin is stuck any more.
    async fn until_returned(&self) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.runtime.exec().stuck_calls(&self.meta) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(self.runtime.exec().stuck_calls(&self.meta), 0);
    }
}

fn trail(out: &Dispatched<ToolPreExec>) -> Vec<String> {
    out.payload.tool_input["trail"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn statuses(receipts: &[Receipt]) -> Vec<ReceiptStatus> {
    receipts.iter().map(|r| r.status).collect()
}

fn detail(r: &Receipt, key: &str) -> Value {
    r.detail
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

const POLICIES: [ExecPolicy; 2] = [ExecPolicy::Inline, ExecPolicy::Offload];
const BUDGET: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_answers_a_chain_of_handlers_in_one_call() {
    let data = tempfile::tempdir().unwrap();
    let script = json!([{"name": "a"}, {"name": "b"}, {"name": "c", "op": "block"}]);
    let event = json!({"turn": 1, "tool_name": "t", "tool_call_id": "c", "tool_input": {}});
    let payload = HookBatchCall::encode(
        &[0, 1, 2],
        1_000_000,
        Some("wi-1"),
        None,
        None,
        &event.to_string(),
    );
    for fixture in [HOOK_CHAIN, LEGACY] {
        let package = package(data.path(), fixture, json!({ "script": script }));
        let library = loader::open(&package.library_path().unwrap()).unwrap();
        let meta = PluginMeta::new(&package.manifest.id, "1.0.0", PluginOrigin::ThirdParty);
        let plugin = library
            .instantiate(meta, &package.config, Arc::new(Logs::default()))
            .unwrap();
        let answer = plugin.call("hooks.tool.pre_exec", &payload);
        if fixture == LEGACY {
            let err = answer.unwrap_err();
            assert_eq!(err.kind.as_str(), PluginError::UNKNOWN_METHOD, "{err}");
            continue;
        }
        let text = answer.unwrap();
        let answer: HookBatchAnswer<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(answer.ns.len(), 3, "{text}");
        assert_eq!(answer.changed, [0, 1], "{text}");
        let changes: Value = serde_json::from_str(answer.changes.unwrap().get()).unwrap();
        assert_eq!(changes, json!({"tool_input": {"trail": ["a", "b"]}}));
        assert!(
            text.contains(r#""end":{"action":"block","reason":"c says no"}"#),
            "{text}"
        );
        // Asked about a call that is not running, the plugin says so.
        let progress = plugin
            .call("hooks.progress", r#"{"call_id":12345}"#)
            .unwrap();
        assert_eq!(progress, r#"{"running_ns":null}"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_library_handlers_gives_what_handlers_called_one_by_one_give() {
    let script = json!([
        {"name": "a"},
        {"name": "b", "priority": -1},
        {"name": "c", "op": "block", "priority": -2},
        {"name": "d", "priority": -3},
    ]);
    for fixture in [HOOK_CHAIN, LEGACY] {
        for policy in POLICIES {
            let c = chain(fixture, script.clone(), policy, BUDGET);
            // Twice: the legacy library is asked for a batch once, then called one by one.
            for _ in 0..2 {
                let out = c.dispatch().await;
                assert_eq!(trail(&out), ["a", "b"], "{fixture:?} {policy:?}");
                assert_eq!(out.payload.tool_input["content"], "x".repeat(4096));
                let blocked = out.blocked.expect("c blocks");
                assert_eq!(blocked.reason, "c says no");
                assert_eq!(blocked.status, ReceiptStatus::Blocked);
                let receipts = c.sink.take();
                assert_eq!(
                    statuses(&receipts),
                    [ReceiptStatus::Ok, ReceiptStatus::Ok, ReceiptStatus::Blocked],
                    "{fixture:?} {policy:?}"
                );
                assert!(receipts
                    .iter()
                    .all(|r| r.work_item_id.as_deref() == Some("wi-1")));
            }
            assert_eq!(c.logs.count("ran d"), 0, "{fixture:?} {policy:?}");
            assert_eq!(c.logs.count("ran a"), 2, "{fixture:?} {policy:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answer_gives_the_same_outcomes_whether_the_caller_or_the_job_reads_it() {
    // Offloaded, a short answer of the job's last batch is read by the caller, a long one (past
    // 64 KB, from a 100 KB payload) by the job; the batch stops at `c` and `d` goes on after it.
    let script = json!([
        {"name": "a"},
        {"name": "b", "priority": -1},
        {"name": "c", "op": "panic", "priority": -2},
        {"name": "d", "priority": -3},
    ]);
    for len in [4096, 100_000] {
        for policy in POLICIES {
            let c = chain(HOOK_CHAIN, script.clone(), policy, BUDGET);
            let out = c.dispatch_with(len).await;
            assert_eq!(trail(&out), ["a", "b", "d"], "{len} {policy:?}");
            let content = out.payload.tool_input["content"].as_str().map(str::len);
            assert_eq!(content, Some(len), "{len} {policy:?}");
            let receipts = c.sink.take();
            assert_eq!(
                statuses(&receipts),
                [
                    ReceiptStatus::Ok,
                    ReceiptStatus::Ok,
                    ReceiptStatus::Error,
                    ReceiptStatus::Ok
                ],
                "{len} {policy:?}"
            );
            for r in &receipts[..2] {
                assert_eq!(detail(r, "changed_fields"), json!(["tool_input"]));
                assert_eq!(detail(r, "combined_with_batch"), json!(true));
            }
            assert_eq!(
                detail(&receipts[3], "changed_fields"),
                json!(["tool_input"])
            );
            assert_eq!(detail(&receipts[3], "combined_with_batch"), Value::Null);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_batch_is_that_handlers_error_and_the_others_keep_their_outcomes() {
    let script = json!([
        {"name": "a"},
        {"name": "b", "op": "panic", "priority": -1},
        {"name": "c", "priority": -2},
    ]);
    for policy in POLICIES {
        let c = chain(HOOK_CHAIN, script.clone(), policy, BUDGET);
        let out = c.dispatch().await;
        assert!(!out.is_blocked(), "fail_open");
        assert_eq!(trail(&out), ["a", "c"], "{policy:?}");
        let receipts = c.sink.take();
        assert_eq!(
            statuses(&receipts),
            [ReceiptStatus::Ok, ReceiptStatus::Error, ReceiptStatus::Ok],
            "{policy:?}"
        );
        let error = detail(&receipts[1], "error");
        let error = error.as_str().unwrap();
        assert!(error.contains("panicked: b was asked to panic"), "{error}");
        assert!(
            error.contains("hook_chain.rs"),
            "the location is kept: {error}"
        );
        // Nothing ran twice.
        for name in ["a", "b", "c"] {
            assert_eq!(c.logs.count(&format!("ran {name}")), 1, "{name} {policy:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_times_out_inside_an_offloaded_batch_is_judged_on_time_and_nothing_runs_twice(
) {
    let script = json!([
        {"name": "a"},
        {"name": "b", "op": "sleep", "ms": 700, "timeout_ms": 100, "priority": -1},
        {"name": "c", "priority": -2},
        {"name": "d", "priority": -3},
    ]);
    let c = chain(HOOK_CHAIN, script, ExecPolicy::Offload, BUDGET);
    let started = Instant::now();
    let out = c.dispatch().await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(500),
        "the caller gets b's timeout on time, waited {waited:?}"
    );
    assert!(!out.is_blocked(), "fail_open: the chain goes on");
    assert_eq!(
        trail(&out),
        ["a", "c", "d"],
        "a's change is kept, b's is not"
    );
    let receipts = c.sink.take();
    assert_eq!(
        statuses(&receipts),
        [
            ReceiptStatus::Ok,
            ReceiptStatus::Timeout,
            ReceiptStatus::Ok,
            ReceiptStatus::Ok
        ]
    );
    assert_eq!(detail(&receipts[1], "timeout_ms"), 100);
    assert_eq!(
        c.runtime.exec().stuck_calls(&c.meta),
        1,
        "b is still running"
    );
    // Once b returns, its batch stops: c and d ran once, in the fresh call.
    c.until_returned().await;
    for name in ["a", "b", "c", "d"] {
        assert_eq!(c.logs.count(&format!("ran {name}")), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_closed_handler_that_times_out_inside_a_batch_blocks_and_the_rest_never_runs() {
    let script = json!([
        {"name": "a"},
        {"name": "b", "op": "sleep", "ms": 400, "timeout_ms": 60, "fail_closed": true, "priority": -1},
        {"name": "c", "priority": -2},
    ]);
    let c = chain(HOOK_CHAIN, script, ExecPolicy::Offload, BUDGET);
    let started = Instant::now();
    let out = c.dispatch().await;
    assert!(started.elapsed() < Duration::from_millis(300));
    let blocked = out.blocked.expect("a fail_closed timeout blocks");
    assert_eq!(blocked.status, ReceiptStatus::Timeout);
    assert_eq!(
        statuses(&c.sink.take()),
        [ReceiptStatus::Ok, ReceiptStatus::Timeout]
    );
    c.until_returned().await;
    assert_eq!(c.logs.count("ran c"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_batch_judges_a_late_handler_when_it_returns_and_discards_its_change() {
    let script = json!([
        {"name": "a", "op": "sleep", "ms": 80, "timeout_ms": 20},
        {"name": "b", "priority": -1},
    ]);
    let c = chain(HOOK_CHAIN, script, ExecPolicy::Inline, BUDGET);
    let out = c.dispatch().await;
    assert_eq!(trail(&out), ["b"]);
    let receipts = c.sink.take();
    assert_eq!(
        statuses(&receipts),
        [ReceiptStatus::Timeout, ReceiptStatus::Ok]
    );
    assert_eq!(detail(&receipts[0], "timeout_ms"), 20);
    assert!(receipts[0].duration_us >= 80_000);
    assert_eq!(c.logs.count("ran b"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_handler_of_a_batch_has_its_own_deadline() {
    // b's deadline is its own 300 ms from when it starts, not what is left of a's 5 s.
    let script = json!([
        {"name": "a", "op": "sleep", "ms": 150, "timeout_ms": 5000},
        {"name": "b", "op": "deadline", "timeout_ms": 300, "priority": -1},
    ]);
    for policy in POLICIES {
        let c = chain(HOOK_CHAIN, script.clone(), policy, BUDGET);
        let out = c.dispatch().await;
        let trail = trail(&out);
        assert_eq!(trail.len(), 2, "{trail:?}");
        let left: u64 = trail[1].strip_prefix("b:").unwrap().parse().unwrap();
        assert!((200..=300).contains(&left), "{policy:?}: b had {left} ms");
        assert!(statuses(&c.sink.take())
            .iter()
            .all(|s| *s == ReceiptStatus::Ok));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_spent_inside_a_batch_times_out_the_running_handler_and_skips_the_rest() {
    let script = json!([
        {"name": "a", "op": "sleep", "ms": 400, "timeout_ms": 5000},
        {"name": "b", "priority": -1},
        {"name": "c", "fail_closed": true, "priority": -2},
    ]);
    for policy in POLICIES {
        let c = chain(
            HOOK_CHAIN,
            script.clone(),
            policy,
            Duration::from_millis(150),
        );
        let started = Instant::now();
        let out = c.dispatch().await;
        if policy == ExecPolicy::Offload {
            assert!(started.elapsed() < Duration::from_millis(350), "on time");
        }
        let receipts = c.sink.take();
        assert_eq!(
            statuses(&receipts),
            [
                ReceiptStatus::Timeout,
                ReceiptStatus::SkippedBudget,
                ReceiptStatus::SkippedBudget
            ],
            "{policy:?}"
        );
        // The handler's own 5 s were capped by what was left of the 150 ms budget.
        let capped = detail(&receipts[0], "timeout_ms").as_u64().unwrap();
        assert!((100..=150).contains(&capped), "{policy:?}: {capped}");
        assert!(trail(&out).is_empty());
        let blocked = out.blocked.expect("the fail_closed c could not run");
        assert_eq!(blocked.status, ReceiptStatus::SkippedBudget);
        c.until_returned().await;
        assert_eq!(c.logs.count("ran b"), 0, "{policy:?}");
    }
}
