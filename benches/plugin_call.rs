//! One hook call into a plugin library against the same handler built in.
//!
//! The handler is the policy guard's `tool.pre_exec` check (is the tool on the blocked list?) on a
//! tool that passes, dispatched through `Runtime::dispatch` with an in-memory receipt sink:
//!
//! - `builtin_inline`: the typed handler compiled in, run inline (how built-ins run);
//! - `library_inline`: the `examples/policy-guard` library, run inline — the cost of the ABI and
//!   JSON alone (encode the payload, cross the boundary, decode, call, encode, decode, check the
//!   mutation policy);
//! - `library_offload`: the same library as third-party plugins really run, on the blocking pool
//!   with a per-plugin call slot — adds the thread hop;
//! - `builtin_offload`: the typed handler offloaded, to show what the hop alone costs.
//!
//! The ratio asked for is `library_offload / builtin_inline` (what moving a handler out of the
//! binary costs) and `library_inline / builtin_inline` (the boundary without the hop).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nitejar_core::hooks::DispatchContext;
use nitejar_core::host::{ExecPolicy, NoServices};
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::receipts::MemorySink;
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::hooks::{HookOptions, ToolPreExec};
use nitejar_sdk::{HookResult, Plugin};
use nitejar_suite::plugins::install_package;

/// The policy guard's check, compiled in.
fn blocks(blocked: &[String], tool: &str) -> bool {
    let tool = tool.to_ascii_lowercase();
    blocked.iter().any(|rule| {
        let rule = rule.to_ascii_lowercase();
        match rule.strip_suffix('*') {
            Some(prefix) => tool.starts_with(prefix),
            None => tool == rule,
        }
    })
}

fn builtin(policy: ExecPolicy) -> ActivePlugin {
    let blocked = vec!["shell".to_string()];
    let plugin = Plugin::builder()
        .hook(
            HookOptions::new()
                .priority(1000)
                .timeout_ms(500)
                .fail_closed(),
            move |_ctx, call: &ToolPreExec| {
                if blocks(&blocked, &call.tool_name) {
                    HookResult::block(format!("the tool `{}` is blocked", call.tool_name))
                } else {
                    HookResult::proceed()
                }
            },
        )
        .build();
    ActivePlugin::from_plugin(
        PluginMeta::new("builtin.bench-guard", "1.0.0", PluginOrigin::Builtin),
        &plugin,
    )
    .with_policy(policy)
}

fn library(data: &std::path::Path) -> ActivePlugin {
    let dir = install_package(data, "examples/policy-guard", "policy_guard", |_| {});
    let manifest = validate_package_dir(&dir, &ValidateOptions::new())
        .expect("valid manifest")
        .manifest;
    loader::load(&PluginPackage::new(&dir, manifest), Arc::new(NoServices)).expect("load")
}

fn time(
    tokio_rt: &tokio::runtime::Runtime,
    rt: &Runtime,
    sink: &MemorySink,
    iters: u64,
) -> Duration {
    let ctx = DispatchContext::for_work_item("wi-bench");
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let batch = (iters - done).min(100);
        let payloads: Vec<ToolPreExec> = (0..batch)
            .map(|i| {
                let mut call = ToolPreExec::default();
                call.turn = 1;
                call.tool_name = "search".into();
                call.tool_call_id = format!("call-{i}");
                call.tool_input = serde_json::json!({ "query": "weather in Lisbon" });
                call
            })
            .collect();
        let mut outputs = Vec::with_capacity(batch as usize);
        let start = Instant::now();
        tokio_rt.block_on(async {
            for p in payloads {
                outputs.push(rt.dispatch(&ctx, p).await);
            }
        });
        total += start.elapsed();
        drop(std::hint::black_box(outputs));
        sink.take();
        done += batch;
    }
    total
}

fn plugin_call(c: &mut Criterion) {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let data = tempfile::tempdir().expect("tempdir");
    let lib = library(data.path());
    let cases = [
        ("builtin_inline", builtin(ExecPolicy::Inline)),
        (
            "library_inline",
            lib.clone().with_policy(ExecPolicy::Inline),
        ),
        ("library_offload", lib),
        ("builtin_offload", builtin(ExecPolicy::Offload)),
    ];
    let mut group = c.benchmark_group("tool_pre_exec_one_handler");
    for (name, plugin) in cases {
        let sink = MemorySink::new();
        let rt = Runtime::builder().sink(sink.clone()).build();
        rt.activate(plugin).expect("activate");
        // The answer must be the same whichever way the handler runs.
        let check = tokio_rt.block_on(rt.dispatch(&DispatchContext::default(), {
            let mut call = ToolPreExec::default();
            call.tool_name = "shell".into();
            call
        }));
        assert!(check.is_blocked(), "{name} must block the shell tool");
        sink.take();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| time(&tokio_rt, &rt, &sink, iters))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = plugin_call
}
criterion_main!(benches);
