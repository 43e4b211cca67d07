//! The hook dispatcher, through the public runtime API: ordering, mutations, policies, timeouts,
//! budget, fail policies, panics, offloading and receipts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nitejar_core::hooks::{DispatchContext, HookBatchCalls, HookContribution, JsonHookHandler};
use nitejar_core::host::{CallScope, ExecPolicy};
use nitejar_core::receipts::{MemorySink, Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::hooks::{
    HookContext, HookOptions, ModelPostCall, ModelPreCall, ModelPreCallPatch, ResponsePreDeliver,
    ResponsePreDeliverPatch, ToolPreExec,
};
use nitejar_sdk::{HookName, HookResult, Plugin};

fn runtime(sink: &Arc<MemorySink>) -> Runtime {
    Runtime::builder().sink(sink.clone()).build()
}

fn builtin(id: &str, plugin: Plugin) -> ActivePlugin {
    ActivePlugin::from_plugin(PluginMeta::new(id, "1.0.0", PluginOrigin::Builtin), &plugin)
}

fn offloaded(id: &str, plugin: Plugin) -> ActivePlugin {
    ActivePlugin::from_plugin(
        PluginMeta::new(id, "2.0.0", PluginOrigin::ThirdParty),
        &plugin,
    )
}

fn response(content: &str) -> ResponsePreDeliver {
    let mut response = ResponsePreDeliver::default();
    response.integration_id = "int-1".into();
    response.integration_type = "echo".into();
    response.content = content.into();
    response.response_mode = "final".into();
    response.hit_limit = false;
    response
}

/// A handler that appends `tag` to the response content.
fn append(
    tag: &'static str,
) -> impl Fn(&HookContext<'_>, &ResponsePreDeliver) -> HookResult<ResponsePreDeliverPatch>
       + Send
       + Sync
       + 'static {
    move |_ctx, r| {
        HookResult::change(ResponsePreDeliverPatch::new().content(format!("{}{tag}", r.content)))
    }
}

fn statuses(receipts: &[Receipt]) -> Vec<(String, ReceiptStatus)> {
    receipts
        .iter()
        .map(|r| (r.plugin_id.to_string(), r.status))
        .collect()
}

#[tokio::test]
async fn handlers_run_by_priority_then_plugin_id_then_registration_order() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    // Registered out of order on purpose: activation order must not matter.
    rt.activate(builtin(
        "com.zed.late",
        Plugin::builder()
            .hook(HookOptions::new().priority(5), append("[zed]"))
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.acme.first",
        Plugin::builder()
            .hook(HookOptions::new().priority(5), append("[acme-1]"))
            .hook(HookOptions::new().priority(5), append("[acme-2]"))
            .hook(HookOptions::new().priority(1), append("[acme-low]"))
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.beta.high",
        Plugin::builder()
            .hook(HookOptions::new().priority(10), append("[beta]"))
            .build(),
    ))
    .unwrap();

    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "[beta][acme-1][acme-2][zed][acme-low]");
    assert!(!out.is_blocked());
    let receipts = sink.take();
    assert_eq!(
        receipts
            .iter()
            .map(|r| r.plugin_id.to_string())
            .collect::<Vec<_>>(),
        [
            "com.beta.high",
            "com.acme.first",
            "com.acme.first",
            "com.zed.late",
            "com.acme.first"
        ]
    );
    assert!(receipts.iter().all(|r| r.status == ReceiptStatus::Ok));
}

#[tokio::test]
async fn each_handler_sees_the_previous_change_and_receipts_carry_the_run_context() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    rt.activate(builtin(
        "com.example.tune",
        Plugin::builder()
            .hook(HookOptions::new().priority(2), |_ctx, _m: &ModelPreCall| {
                HookResult::change(ModelPreCallPatch::new().temperature(0.2))
            })
            .hook(
                HookOptions::new().priority(1),
                move |ctx, m: &ModelPreCall| {
                    seen2.lock().unwrap().push((
                        m.temperature,
                        ctx.work_item_id.map(str::to_string),
                        ctx.job_id.map(str::to_string),
                        ctx.hook,
                    ));
                    HookResult::change(
                        ModelPreCallPatch::new().max_tokens(m.max_tokens.unwrap_or(0) + 100),
                    )
                },
            )
            .build(),
    ))
    .unwrap();
    let ctx = DispatchContext::for_work_item("wi-1").with_job("job-1", "agent-1");
    let out = rt
        .dispatch(&ctx, {
            let mut call = ModelPreCall::default();
            call.turn = 1;
            call.model = "m".into();
            call.temperature = Some(1.0);
            call.max_tokens = Some(50);
            call
        })
        .await;
    assert_eq!(out.payload.temperature, Some(0.2));
    assert_eq!(out.payload.max_tokens, Some(150));
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [(
            Some(0.2),
            Some("wi-1".to_string()),
            Some("job-1".to_string()),
            HookName::ModelPreCall
        )]
    );
    let receipts = sink.take();
    assert_eq!(receipts.len(), 2);
    for r in &receipts {
        assert_eq!(r.kind, ReceiptKind::Hook);
        assert_eq!(r.hook, Some(HookName::ModelPreCall));
        assert_eq!(r.plugin_version.as_deref(), Some("1.0.0"));
        assert_eq!(r.work_item_id.as_deref(), Some("wi-1"));
        assert_eq!(r.job_id.as_deref(), Some("job-1"));
        assert!(r.created_at_ms > 1_700_000_000_000);
    }
}

/// A handler that answers fixed JSON, the way a handler of a loaded library does.
struct Answers(&'static str);

impl JsonHookHandler for Answers {
    fn call(&self, _ctx: &HookContext<'_>, _payload_json: &str) -> Result<String, String> {
        Ok(self.0.to_string())
    }
}

fn json_plugin(
    id: &str,
    hook: HookName,
    options: HookOptions,
    answer: &'static str,
) -> ActivePlugin {
    ActivePlugin::from_parts(
        PluginMeta::new(id, "0.3.0", PluginOrigin::ThirdParty),
        Vec::new(),
        vec![HookContribution::Json {
            hook,
            options,
            handler: Arc::new(Answers(answer)),
        }],
        Vec::new(),
    )
}

#[tokio::test]
async fn a_change_outside_the_mutation_policy_is_denied_and_not_applied() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    // `integration_type` is not mutable on response.pre_deliver; `content` is. The whole answer is
    // refused, including its allowed part.
    rt.activate(json_plugin(
        "com.evil.retarget",
        HookName::ResponsePreDeliver,
        HookOptions::new().priority(10),
        r#"{"action":"continue","changes":{"content":"pwned","integration_type":"github"}}"#,
    ))
    .unwrap();
    rt.activate(builtin(
        "com.good.after",
        Plugin::builder()
            .hook(HookOptions::new(), append("!"))
            .build(),
    ))
    .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), response("hello"))
        .await;
    assert_eq!(out.payload.content, "hello!");
    assert_eq!(out.payload.integration_type, "echo");
    assert!(!out.is_blocked(), "fail_open: the chain goes on");
    let receipts = sink.take();
    assert_eq!(
        statuses(&receipts),
        [
            ("com.evil.retarget".into(), ReceiptStatus::Denied),
            ("com.good.after".into(), ReceiptStatus::Ok)
        ]
    );
    let detail = receipts[0].detail.as_ref().unwrap();
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .contains("unknown field `integration_type`"),
        "{detail}"
    );
    assert_eq!(detail["mutable_fields"], serde_json::json!(["content"]));
}

#[tokio::test]
async fn a_refused_change_by_a_fail_closed_handler_blocks_the_event() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(json_plugin(
        "com.strict.guard",
        HookName::ToolPreExec,
        HookOptions::new().fail_closed(),
        r#"{"action":"continue","changes":{"tool_name":"rm"}}"#,
    ))
    .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), {
            let mut call = ToolPreExec::default();
            call.tool_name = "ls".into();
            call
        })
        .await;
    assert_eq!(out.payload.tool_name, "ls");
    let blocked = out.blocked.expect("fail_closed blocks");
    assert_eq!(blocked.status, ReceiptStatus::Denied);
    assert_eq!(&*blocked.plugin_id, "com.strict.guard");
}

#[tokio::test]
async fn an_unreadable_json_answer_is_an_error() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(json_plugin(
        "com.broken.json",
        HookName::ResponsePreDeliver,
        HookOptions::new(),
        r#"{"action":"explode"}"#,
    ))
    .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), response("x"))
        .await;
    assert_eq!(out.payload.content, "x");
    let receipts = sink.take();
    assert_eq!(receipts[0].status, ReceiptStatus::Error);
}

#[tokio::test]
async fn a_block_stops_the_chain() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(builtin(
        "com.policy.guard",
        Plugin::builder()
            .hook(HookOptions::new().priority(100), |_ctx, t: &ToolPreExec| {
                if t.tool_name == "shell" {
                    HookResult::block("shell is disabled")
                } else {
                    HookResult::proceed()
                }
            })
            .build(),
    ))
    .unwrap();
    let later = Arc::new(AtomicUsize::new(0));
    let later2 = later.clone();
    rt.activate(builtin(
        "com.observer",
        Plugin::builder()
            .on(move |_ctx, _t: &ToolPreExec| {
                later2.fetch_add(1, Ordering::SeqCst);
                HookResult::proceed()
            })
            .build(),
    ))
    .unwrap();
    let call = |name: &str| {
        let mut call = ToolPreExec::default();
        call.tool_name = name.into();
        call
    };
    let out = rt
        .dispatch(&DispatchContext::default(), call("shell"))
        .await;
    let blocked = out.blocked.expect("blocked");
    assert_eq!(blocked.status, ReceiptStatus::Blocked);
    assert_eq!(blocked.reason, "shell is disabled");
    assert_eq!(later.load(Ordering::SeqCst), 0);
    let receipts = sink.take();
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0].detail.as_ref().unwrap()["reason"],
        "shell is disabled"
    );

    let out = rt.dispatch(&DispatchContext::default(), call("ls")).await;
    assert!(!out.is_blocked());
    assert_eq!(later.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_event_that_cannot_be_blocked_is_not_blocked() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(builtin(
        "com.confused.blocker",
        Plugin::builder()
            .hook(
                HookOptions::new().fail_closed(),
                |_ctx, _m: &ModelPostCall| HookResult::block("too late"),
            )
            .build(),
    ))
    .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), ModelPostCall::default())
        .await;
    assert!(!out.is_blocked());
    let receipts = sink.take();
    assert_eq!(receipts[0].status, ReceiptStatus::Denied);
    assert!(receipts[0].detail.as_ref().unwrap()["reason"]
        .as_str()
        .unwrap()
        .contains("`model.post_call` cannot be blocked"));
}

fn sleeper(
    ms: u64,
    tag: &'static str,
) -> impl Fn(&HookContext<'_>, &ResponsePreDeliver) -> HookResult<ResponsePreDeliverPatch>
       + Send
       + Sync
       + 'static {
    move |_ctx, r| {
        std::thread::sleep(Duration::from_millis(ms));
        HookResult::change(ResponsePreDeliverPatch::new().content(format!("{}{tag}", r.content)))
    }
}

#[tokio::test]
async fn an_inline_handler_past_its_timeout_is_a_timeout_and_its_change_is_discarded() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(builtin(
        "com.slow.inline",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(1).timeout_ms(20),
                sleeper(60, "[slow]"),
            )
            .hook(HookOptions::new(), append("[next]"))
            .build(),
    ))
    .unwrap();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "[next]");
    assert!(!out.is_blocked());
    let receipts = sink.take();
    assert_eq!(receipts[0].status, ReceiptStatus::Timeout);
    assert_eq!(receipts[0].detail.as_ref().unwrap()["timeout_ms"], 20);
    assert!(receipts[0].duration_us >= 60_000);
    assert_eq!(receipts[1].status, ReceiptStatus::Ok);
}

#[tokio::test(flavor = "current_thread")]
async fn an_offloaded_handler_that_never_returns_in_time_is_timed_out_on_time_and_the_server_keeps_answering(
) {
    let sink = MemorySink::new();
    let rt = Arc::new(runtime(&sink));
    rt.activate(offloaded(
        "com.stuck.plugin",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(1).timeout_ms(100),
                sleeper(1500, "[stuck]"),
            )
            .hook(HookOptions::new(), append("[after]"))
            .build(),
    ))
    .unwrap();

    // On a single-threaded runtime, a ticker only advances if the dispatch never blocks the worker.
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticks2 = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ticks2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let started = Instant::now();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    let waited = started.elapsed();
    ticker.abort();

    assert!(
        waited < Duration::from_millis(600),
        "the caller must get `timeout` on time, waited {waited:?}"
    );
    assert!(
        ticks.load(Ordering::SeqCst) >= 5,
        "the async worker was stalled"
    );
    assert_eq!(
        out.payload.content, "[after]",
        "fail_open: the chain goes on"
    );
    let receipts = sink.take();
    assert_eq!(
        statuses(&receipts),
        [
            ("com.stuck.plugin".into(), ReceiptStatus::Timeout),
            ("com.stuck.plugin".into(), ReceiptStatus::Ok)
        ]
    );
}

#[tokio::test]
async fn a_fail_closed_handler_that_times_out_blocks_the_event() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(offloaded(
        "com.slow.guard",
        Plugin::builder()
            .hook(
                HookOptions::new().timeout_ms(50).fail_closed(),
                |_ctx, _t: &ToolPreExec| {
                    std::thread::sleep(Duration::from_millis(400));
                    HookResult::proceed()
                },
            )
            .build(),
    ))
    .unwrap();
    let started = Instant::now();
    let out = rt
        .dispatch(&DispatchContext::default(), ToolPreExec::default())
        .await;
    assert!(started.elapsed() < Duration::from_millis(300));
    let blocked = out.blocked.expect("fail_closed timeout blocks");
    assert_eq!(blocked.status, ReceiptStatus::Timeout);
    assert_eq!(sink.take()[0].status, ReceiptStatus::Timeout);
}

#[tokio::test]
async fn a_spent_budget_skips_the_rest_and_a_skipped_fail_closed_handler_blocks() {
    let sink = MemorySink::new();
    let rt = Runtime::builder()
        .sink(sink.clone())
        .chain_budget(Duration::from_millis(80))
        .build();
    rt.activate(builtin(
        "com.a.hog",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(10).timeout_ms(1000),
                |_ctx, _t: &ToolPreExec| {
                    std::thread::sleep(Duration::from_millis(120));
                    HookResult::proceed()
                },
            )
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.b.observer",
        Plugin::builder()
            .hook(HookOptions::new().priority(5), |_ctx, _t: &ToolPreExec| {
                HookResult::proceed()
            })
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.c.guard",
        Plugin::builder()
            .hook(
                HookOptions::new().fail_closed(),
                |_ctx, _t: &ToolPreExec| HookResult::proceed(),
            )
            .build(),
    ))
    .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), ToolPreExec::default())
        .await;
    let receipts = sink.take();
    assert_eq!(
        statuses(&receipts),
        [
            // The hog's own timeout was capped by the 80 ms budget.
            ("com.a.hog".into(), ReceiptStatus::Timeout),
            ("com.b.observer".into(), ReceiptStatus::SkippedBudget),
            ("com.c.guard".into(), ReceiptStatus::SkippedBudget),
        ]
    );
    assert_eq!(receipts[0].detail.as_ref().unwrap()["timeout_ms"], 80);
    let blocked = out.blocked.expect("the fail_closed guard could not run");
    assert_eq!(blocked.status, ReceiptStatus::SkippedBudget);
    assert_eq!(&*blocked.plugin_id, "com.c.guard");
}

#[tokio::test]
async fn a_spent_budget_without_fail_closed_handlers_does_not_block() {
    let sink = MemorySink::new();
    let rt = Runtime::builder()
        .sink(sink.clone())
        .chain_budget(Duration::from_millis(30))
        .build();
    rt.activate(offloaded(
        "com.a.hog",
        Plugin::builder()
            .hook(HookOptions::new().priority(1), sleeper(200, "[hog]"))
            .hook(HookOptions::new(), append("[skipped]"))
            .build(),
    ))
    .unwrap();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert!(!out.is_blocked());
    assert_eq!(out.payload.content, "");
    assert_eq!(
        statuses(&sink.take()),
        [
            ("com.a.hog".into(), ReceiptStatus::Timeout),
            ("com.a.hog".into(), ReceiptStatus::SkippedBudget)
        ]
    );
}

#[tokio::test]
async fn a_panicking_handler_is_an_error_and_the_process_goes_on() {
    for origin in [PluginOrigin::Builtin, PluginOrigin::ThirdParty] {
        let sink = MemorySink::new();
        let rt = runtime(&sink);
        let plugin = Plugin::builder()
            .hook(
                HookOptions::new().priority(1),
                |_ctx, _r: &ResponsePreDeliver| -> HookResult<ResponsePreDeliverPatch> {
                    panic!("handler bug: index out of range")
                },
            )
            .hook(HookOptions::new(), append("[still here]"))
            .build();
        rt.activate(ActivePlugin::from_plugin(
            PluginMeta::new("com.buggy", "1.0.0", origin),
            &plugin,
        ))
        .unwrap();
        let out = rt.dispatch(&DispatchContext::default(), response("")).await;
        assert_eq!(out.payload.content, "[still here]", "{origin:?}");
        let receipts = sink.take();
        assert_eq!(receipts[0].status, ReceiptStatus::Error, "{origin:?}");
        assert!(receipts[0].detail.as_ref().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("handler bug: index out of range"));
    }
}

#[tokio::test]
async fn consecutive_offloaded_handlers_share_one_hop_and_inline_ones_stay_on_the_caller() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let threads = Arc::new(Mutex::new(Vec::new()));
    let record = |threads: Arc<Mutex<Vec<(String, std::thread::ThreadId)>>>, tag: &'static str| {
        move |_ctx: &HookContext<'_>, r: &ResponsePreDeliver| {
            threads
                .lock()
                .unwrap()
                .push((tag.to_string(), std::thread::current().id()));
            HookResult::change(
                ResponsePreDeliverPatch::new().content(format!("{}{tag}", r.content)),
            )
        }
    };
    rt.activate(offloaded(
        "com.external",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(30),
                record(threads.clone(), "a"),
            )
            .hook(
                HookOptions::new().priority(20),
                record(threads.clone(), "b"),
            )
            .hook(HookOptions::new().priority(0), record(threads.clone(), "d"))
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.builtin",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(10),
                record(threads.clone(), "c"),
            )
            .build(),
    ))
    .unwrap();
    let caller = std::thread::current().id();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "abcd");
    let seen = threads.lock().unwrap().clone();
    let id = |tag: &str| seen.iter().find(|(t, _)| t == tag).unwrap().1;
    assert_eq!(id("a"), id("b"), "one hop for a run of offloaded handlers");
    assert_ne!(id("a"), caller);
    assert_eq!(id("c"), caller, "built-ins run inline");
    assert_ne!(id("d"), caller);
}

#[tokio::test]
async fn deactivating_a_plugin_removes_its_handlers_at_once() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(builtin(
        "com.tag",
        Plugin::builder().on(append("[tag]")).build(),
    ))
    .unwrap();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "[tag]");
    assert!(rt.deactivate("com.tag"));
    assert!(!rt.deactivate("com.tag"));
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "");
    assert_eq!(sink.len(), 1, "no handler, no receipt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_never_sees_a_half_built_registry() {
    let sink = MemorySink::new();
    let rt = Arc::new(runtime(&sink));
    let plugin = || {
        builtin(
            "com.pair",
            Plugin::builder()
                .hook(HookOptions::new().priority(2), append("x"))
                .hook(HookOptions::new().priority(1), append("x"))
                .build(),
        )
    };
    let toggler = {
        let rt = rt.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..2000 {
                rt.activate(plugin()).unwrap();
                rt.deactivate("com.pair");
            }
        })
    };
    while !toggler.is_finished() {
        let out = rt.dispatch(&DispatchContext::default(), response("")).await;
        assert!(
            out.payload.content.is_empty() || out.payload.content == "xx",
            "saw {:?}",
            out.payload.content
        );
        tokio::task::yield_now().await;
    }
    toggler.await.unwrap();
}

#[tokio::test]
async fn a_handler_sees_cancellation_after_its_deadline() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let observed = Arc::new(Mutex::new(None));
    let observed2 = observed.clone();
    rt.activate(offloaded(
        "com.cooperative",
        Plugin::builder()
            .hook(
                HookOptions::new().timeout_ms(40),
                move |ctx, _r: &ResponsePreDeliver| {
                    let started = Instant::now();
                    while !ctx.host.is_cancelled() && started.elapsed() < Duration::from_secs(2) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    *observed2.lock().unwrap() = Some(started.elapsed());
                    HookResult::proceed()
                },
            )
            .build(),
    ))
    .unwrap();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert!(!out.is_blocked());
    assert_eq!(sink.take()[0].status, ReceiptStatus::Timeout);
    // The plugin thread notices the cancellation shortly after the deadline.
    for _ in 0..100 {
        if observed.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = observed.lock().unwrap().expect("the handler returned");
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn no_handler_means_no_work_and_no_receipt() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let out = rt
        .dispatch(&DispatchContext::default(), response("same"))
        .await;
    assert_eq!(out.payload.content, "same");
    assert!(sink.is_empty());
}

/// A plugin transport that takes batches (`hooks.<event>`), the way the loader's proxies do: it
/// records each batch it is sent and answers what `answer` makes of the handlers' indices.
/// What [`Batches`] answers for the indices of a batch (`None`: it does not take batches).
type BatchAnswers = Box<dyn Fn(&[usize]) -> Option<String> + Send + Sync>;

struct Batches {
    answer: BatchAnswers,
    sent: Mutex<Vec<Vec<usize>>>,
    refused: std::sync::atomic::AtomicBool,
    next_id: std::sync::atomic::AtomicU64,
}

impl Batches {
    fn new(answer: impl Fn(&[usize]) -> Option<String> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Batches {
            answer: Box::new(answer),
            sent: Mutex::new(Vec::new()),
            refused: false.into(),
            next_id: 0.into(),
        })
    }

    fn sent(&self) -> Vec<Vec<usize>> {
        self.sent.lock().unwrap().clone()
    }
}

impl HookBatchCalls for Batches {
    fn batches(&self) -> bool {
        !self.refused.load(Ordering::SeqCst)
    }
    fn call_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }
    fn call(
        &self,
        hook: HookName,
        _call_id: u64,
        scope: CallScope,
        payload: &str,
    ) -> Result<Option<String>, String> {
        assert_eq!(scope.hook(), Some(HookName::ResponsePreDeliver));
        assert_eq!(hook, HookName::ResponsePreDeliver);
        let request: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(request["event"]["integration_id"], "int-1", "{request}");
        assert!(request["budget_us"].as_u64().unwrap() > 7_000_000);
        let handlers: Vec<usize> = serde_json::from_value(request["handlers"].clone()).unwrap();
        self.sent.lock().unwrap().push(handlers.clone());
        match (self.answer)(&handlers) {
            Some(text) => Ok(Some(text)),
            None => {
                self.refused.store(true, Ordering::SeqCst);
                Ok(None)
            }
        }
    }
    fn progress(&self, _call_id: u64) -> Result<String, String> {
        Err("not asked in these tests".into())
    }
}

/// A handler of a plugin behind [`Batches`]; called on its own, it appends `[<index>]`.
struct Batched {
    index: usize,
    batches: Arc<dyn HookBatchCalls>,
    alone: Arc<AtomicUsize>,
}

impl JsonHookHandler for Batched {
    fn call(&self, _ctx: &HookContext<'_>, payload_json: &str) -> Result<String, String> {
        self.alone.fetch_add(1, Ordering::SeqCst);
        let r: ResponsePreDeliver = serde_json::from_str(payload_json).unwrap();
        Ok(serde_json::json!({
            "action": "continue",
            "changes": {"content": format!("{}[{}]", r.content, self.index)}
        })
        .to_string())
    }
    fn batch(&self) -> Option<(&Arc<dyn HookBatchCalls>, usize)> {
        Some((&self.batches, self.index))
    }
}

/// A third-party plugin with handlers `0..priorities.len()` behind `batches`, run inline (as a
/// library plugin is when its policy says so) or offloaded.
fn batched_plugin(
    batches: &Arc<Batches>,
    priorities: &[i32],
    alone: &Arc<AtomicUsize>,
    timeout_ms: u32,
) -> ActivePlugin {
    let transport: Arc<dyn HookBatchCalls> = batches.clone();
    let hooks = priorities
        .iter()
        .enumerate()
        .map(|(index, &priority)| HookContribution::Json {
            hook: HookName::ResponsePreDeliver,
            options: HookOptions::new().priority(priority).timeout_ms(timeout_ms),
            handler: Arc::new(Batched {
                index,
                batches: transport.clone(),
                alone: alone.clone(),
            }),
        })
        .collect();
    ActivePlugin::from_parts(
        PluginMeta::new("com.batched", "0.5.0", PluginOrigin::ThirdParty),
        Vec::new(),
        hooks,
        Vec::new(),
    )
}

/// A batch answer in which every handler continues after `ns` nanoseconds, the ones in `changed`
/// having changed the content to `content`.
fn continued(handlers: &[usize], changed: &[usize], content: &str) -> String {
    serde_json::json!({
        "ns": vec![1_000u64; handlers.len()],
        "changed": changed,
        "changes": {"content": content},
    })
    .to_string()
}

#[tokio::test]
async fn consecutive_handlers_of_one_plugin_cross_once_per_chain() {
    for policy in [ExecPolicy::Inline, ExecPolicy::Offload] {
        let sink = MemorySink::new();
        let rt = runtime(&sink);
        let alone = Arc::new(AtomicUsize::new(0));
        let batches = Batches::new(|handlers| {
            Some(match handlers {
                [0, 1] => continued(handlers, &[1], "[0][1]"),
                other => panic!("unexpected batch {other:?}"),
            })
        });
        rt.activate(batched_plugin(&batches, &[30, 20, 0], &alone, 1500).with_policy(policy))
            .unwrap();
        rt.activate(builtin(
            "com.builtin",
            Plugin::builder()
                .hook(HookOptions::new().priority(10), append("[builtin]"))
                .build(),
        ))
        .unwrap();
        let out = rt.dispatch(&DispatchContext::default(), response("")).await;
        assert_eq!(out.payload.content, "[0][1][builtin][2]", "{policy:?}");
        // Handler 2 is alone after the built-in: one call either way, its own.
        assert_eq!(batches.sent(), [vec![0, 1]], "{policy:?}");
        assert_eq!(alone.load(Ordering::SeqCst), 1, "{policy:?}");
        let receipts = sink.take();
        assert_eq!(
            statuses(&receipts),
            [
                ("com.batched".into(), ReceiptStatus::Ok),
                ("com.batched".into(), ReceiptStatus::Ok),
                ("com.builtin".into(), ReceiptStatus::Ok),
                ("com.batched".into(), ReceiptStatus::Ok),
            ],
            "{policy:?}"
        );
        // Each handler of the batch has the duration the plugin measured for it.
        assert_eq!(receipts[0].duration_us, 1, "{policy:?}");
        assert_eq!(receipts[1].duration_us, 1, "{policy:?}");
        assert!(receipts.iter().all(|r| r.plugin_version.is_some()));
    }
}

#[tokio::test]
async fn a_plugin_that_does_not_take_batches_is_called_handler_by_handler_from_then_on() {
    for policy in [ExecPolicy::Inline, ExecPolicy::Offload] {
        let sink = MemorySink::new();
        let rt = runtime(&sink);
        let alone = Arc::new(AtomicUsize::new(0));
        let batches = Batches::new(|_| None);
        rt.activate(batched_plugin(&batches, &[2, 1], &alone, 1500).with_policy(policy))
            .unwrap();
        for _ in 0..2 {
            let out = rt.dispatch(&DispatchContext::default(), response("")).await;
            assert_eq!(out.payload.content, "[0][1]", "{policy:?}");
        }
        assert_eq!(batches.sent(), [vec![0, 1]], "asked once, {policy:?}");
        assert_eq!(alone.load(Ordering::SeqCst), 4, "{policy:?}");
        assert!(sink.take().iter().all(|r| r.status == ReceiptStatus::Ok));
    }
}

#[tokio::test]
async fn a_batch_change_outside_the_mutation_policy_is_denied_for_every_handler_that_changed() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let alone = Arc::new(AtomicUsize::new(0));
    let batches = Batches::new(|handlers| {
        Some(
            serde_json::json!({
                "ns": vec![1_000u64; handlers.len()],
                "changed": [0, 2],
                "changes": {"content": "pwned", "integration_type": "github"},
            })
            .to_string(),
        )
    });
    rt.activate(batched_plugin(&batches, &[3, 2, 1], &alone, 1500))
        .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), response("hello"))
        .await;
    assert_eq!(out.payload.content, "hello");
    assert_eq!(out.payload.integration_type, "echo");
    assert!(!out.is_blocked(), "fail_open: the chain goes on");
    let receipts = sink.take();
    assert_eq!(
        receipts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [
            ReceiptStatus::Denied,
            ReceiptStatus::Ok,
            ReceiptStatus::Denied
        ]
    );
    let detail = receipts[0].detail.as_ref().unwrap();
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .contains("unknown field `integration_type`"),
        "{detail}"
    );
    assert_eq!(detail["mutable_fields"], serde_json::json!(["content"]));
}

#[tokio::test]
async fn a_late_answer_in_a_batch_is_a_timeout_and_the_chain_goes_on_in_a_new_call() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let alone = Arc::new(AtomicUsize::new(0));
    // The plugin stops after the late handler, as the SDK's batches do.
    let batches = Batches::new(|handlers| {
        Some(match handlers {
            [0, 1, 2] => serde_json::json!({
                "ns": [1_000, 80_000_000],
                "changed": [0],
                "changes": {"content": "[0]"},
            })
            .to_string(),
            other => panic!("unexpected batch {other:?}"),
        })
    });
    rt.activate(batched_plugin(&batches, &[3, 2, 1], &alone, 50).with_policy(ExecPolicy::Inline))
        .unwrap();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "[0][2]");
    // Handler 2 goes on alone, in a call of its own.
    assert_eq!(batches.sent(), [vec![0, 1, 2]]);
    assert_eq!(alone.load(Ordering::SeqCst), 1);
    let receipts = sink.take();
    assert_eq!(
        receipts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [ReceiptStatus::Ok, ReceiptStatus::Timeout, ReceiptStatus::Ok]
    );
    assert_eq!(receipts[1].detail.as_ref().unwrap()["timeout_ms"], 50);
    assert_eq!(receipts[1].duration_us, 80_000);
}

#[tokio::test]
async fn a_short_timeout_after_a_long_one_in_an_offloaded_run_is_noticed_on_time() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(offloaded(
        "com.mixed.timeouts",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(2).timeout_ms(5000),
                append("[quick]"),
            )
            .hook(
                HookOptions::new().priority(1).timeout_ms(50),
                sleeper(600, "[slow]"),
            )
            .hook(HookOptions::new(), append("[after]"))
            .build(),
    ))
    .unwrap();
    let started = Instant::now();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(400),
        "the second handler's 50 ms count, not the first's 5 s: waited {waited:?}"
    );
    assert_eq!(out.payload.content, "[quick][after]");
    let receipts = sink.take();
    assert_eq!(
        receipts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [ReceiptStatus::Ok, ReceiptStatus::Timeout, ReceiptStatus::Ok]
    );
    assert_eq!(receipts[1].detail.as_ref().unwrap()["timeout_ms"], 50);
}

#[tokio::test]
async fn a_hook_receipt_names_the_fields_its_handler_changed_never_their_values() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    rt.activate(builtin(
        "com.acme.tuner",
        Plugin::builder()
            .hook(
                HookOptions::new().priority(10),
                |_ctx, _m: &ModelPreCall| {
                    HookResult::change(
                        ModelPreCallPatch::new()
                            .model("secret-model-name")
                            .temperature(0.1),
                    )
                },
            )
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.acme.watcher",
        Plugin::builder()
            .hook(HookOptions::new().priority(5), |_ctx, _m: &ModelPreCall| {
                HookResult::proceed()
            })
            .build(),
    ))
    .unwrap();
    rt.activate(builtin(
        "com.acme.stopper",
        Plugin::builder()
            .hook(HookOptions::new().priority(1), |_ctx, m: &ModelPreCall| {
                if m.turn > 3 {
                    HookResult::block("too many turns")
                } else {
                    HookResult::proceed()
                }
            })
            .build(),
    ))
    .unwrap();
    let out = rt
        .dispatch(&DispatchContext::default(), ModelPreCall::default())
        .await;
    assert_eq!(out.payload.model, "secret-model-name");
    let receipts = sink.take();
    assert_eq!(
        receipts[0].detail,
        Some(serde_json::json!({ "changed_fields": ["model", "temperature"] }))
    );
    let text = serde_json::to_string(&receipts[0].detail).unwrap();
    assert!(!text.contains("secret-model-name"), "{text}");
    assert_eq!(receipts[1].detail, None, "a handler that changed nothing");

    let blocked = rt
        .dispatch(&DispatchContext::default(), {
            let mut call = ModelPreCall::default();
            call.turn = 4;
            call
        })
        .await;
    assert!(blocked.is_blocked());
    let receipts = sink.take();
    assert_eq!(receipts[2].status, ReceiptStatus::Blocked);
    assert_eq!(
        receipts[2].detail,
        Some(serde_json::json!({ "reason": "too many turns" }))
    );
}

#[tokio::test]
async fn in_a_batch_every_handler_that_changed_something_names_the_batch_fields() {
    let sink = MemorySink::new();
    let rt = runtime(&sink);
    let alone = Arc::new(AtomicUsize::new(0));
    let batches = Batches::new(|handlers| Some(continued(handlers, &[0, 2], "[0][2]")));
    rt.activate(batched_plugin(&batches, &[30, 20, 10], &alone, 1500))
        .unwrap();
    let out = rt.dispatch(&DispatchContext::default(), response("")).await;
    assert_eq!(out.payload.content, "[0][2]");
    let receipts = sink.take();
    let combined =
        serde_json::json!({ "changed_fields": ["content"], "combined_with_batch": true });
    assert_eq!(receipts[0].detail.as_ref(), Some(&combined));
    assert_eq!(receipts[1].detail, None, "handler 1 changed nothing");
    assert_eq!(receipts[2].detail.as_ref(), Some(&combined));
}
