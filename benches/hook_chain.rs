//! A `tool.pre_exec` chain with a 4 KB payload, through built-in handlers and through the same
//! handlers in a plugin library, inline and offloaded (the workload the targets below were set on).
//!
//! Payload `{tool_name, tool_input: {command, content: 4096 × "x"}, tool_call_id, turn}`; handlers
//! answer `continue` (no-op) or a new `tool_input` with `counter` incremented (mutating). Cases:
//! 1, 10 and 100 no-op handlers, 10 mutating ones. Implementations:
//!
//! - `builtin`: typed handlers compiled in, run inline (how built-ins run);
//! - `library_inline`: the `tests/fixtures/plugins/hook-chain` library, run inline — the cost of
//!   the ABI and JSON alone;
//! - `library_offload`: the same library as third-party plugins really run, off the async workers.
//! - `library_isolated`: the same library in a process of its own (isolated execution; this bench
//!   binary is its plugin host): one round trip per batch.
//!
//! Every dispatch also makes one receipt per handler (in-memory sink). The bench allocates with the
//! server's allocator (mimalloc). Targets (2 cores):
//! library inline within 2× of built-in (10 no-op ≤ 3 µs, 10 mutating ≤ 10 µs, 100 no-op ≤
//! 25 µs); library offloaded ≤ 8.5 µs for 10 no-op and ≤ 12.5 µs for 10 mutating.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use nitejar_core::hooks::DispatchContext;
use nitejar_core::host::{ExecPolicy, NoServices};
use nitejar_core::loader::isolated::{Isolation, PluginHostCommand};
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::receipts::MemorySink;
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::hooks::{HookContext, HookOptions, ToolPreExec, ToolPreExecPatch};
use nitejar_sdk::{HookResult, Plugin};
use nitejar_suite::plugins::install_package;
use serde_json::{json, Value};

// The allocator the `nitejar` binary runs with: these figures are the server's. (The plugin library
// allocates with its own, the system's.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The cases of the table: (name, handlers, mutating).
const CASES: [(&str, u64, bool); 4] = [
    ("noop_1", 1, false),
    ("noop_10", 10, false),
    ("noop_100", 100, false),
    ("mutating_10", 10, true),
];

fn payload(n: u64) -> ToolPreExec {
    let mut call = ToolPreExec::default();
    call.turn = 1;
    call.tool_name = "write_file".into();
    call.tool_call_id = format!("call-{n}");
    call.tool_input = json!({ "command": "write", "content": "x".repeat(4096) });
    call
}

// The fixture's handlers, compiled in.
fn noop(_ctx: &HookContext<'_>, _call: &ToolPreExec) -> HookResult<ToolPreExecPatch> {
    HookResult::proceed()
}

fn count(_ctx: &HookContext<'_>, call: &ToolPreExec) -> HookResult<ToolPreExecPatch> {
    let mut input = call.tool_input.clone();
    let counter = input.get("counter").and_then(Value::as_u64).unwrap_or(0);
    if let Some(fields) = input.as_object_mut() {
        fields.insert("counter".into(), json!(counter + 1));
    }
    HookResult::change(ToolPreExecPatch::new().tool_input(input))
}

fn builtin(handlers: u64, mutating: bool) -> ActivePlugin {
    let mut builder = Plugin::builder();
    for _ in 0..handlers {
        builder = if mutating {
            builder.hook(HookOptions::new(), count)
        } else {
            builder.hook(HookOptions::new(), noop)
        };
    }
    ActivePlugin::from_plugin(
        PluginMeta::new("builtin.bench-chain", "1.0.0", PluginOrigin::Builtin),
        &builder.build(),
    )
}

fn library(dir: &std::path::Path, handlers: u64, mutating: bool, isolated: bool) -> ActivePlugin {
    let manifest = validate_package_dir(dir, &ValidateOptions::new())
        .expect("valid manifest")
        .manifest;
    let mut package = PluginPackage::new(dir, manifest)
        .with_config(json!({ "handlers": handlers, "mutating": mutating }));
    if isolated {
        package = package.isolated(Isolation {
            command: PluginHostCommand {
                program: std::env::current_exe().expect("this bench"),
                args: vec![PLUGIN_HOST.into()],
            },
            load_timeout: Duration::from_secs(30),
            data_dir: dir.join("data"),
            limits: Default::default(),
        });
    }
    loader::load(&package, Arc::new(NoServices)).expect("load the hook-chain fixture")
}

/// The argument that makes this bench binary a plugin's process.
const PLUGIN_HOST: &str = "__plugin-host";

fn time(
    tokio_rt: &tokio::runtime::Runtime,
    rt: &Runtime,
    sink: &MemorySink,
    iters: u64,
) -> Duration {
    let ctx = DispatchContext::for_work_item("wi-bench").with_job("job-bench", "agent-bench");
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let batch = (iters - done).min(100);
        let payloads: Vec<ToolPreExec> = (0..batch).map(payload).collect();
        let mut outputs = Vec::with_capacity(batch as usize);
        let start = Instant::now();
        tokio_rt.block_on(async {
            for p in payloads {
                outputs.push(rt.dispatch(&ctx, p).await);
            }
        });
        total += start.elapsed();
        // Dropping payloads and receipts is the caller's business, not the dispatcher's.
        drop(std::hint::black_box(outputs));
        sink.take();
        done += batch;
    }
    total
}

fn hook_chain(c: &mut Criterion) {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let data = tempfile::tempdir().expect("tempdir");
    let dir = install_package(
        data.path(),
        "tests/fixtures/plugins/hook-chain",
        "hook_chain",
        |_| {},
    );
    for (case, handlers, mutating) in CASES {
        let implementations = [
            ("builtin", builtin(handlers, mutating)),
            (
                "library_inline",
                library(&dir, handlers, mutating, false).with_policy(ExecPolicy::Inline),
            ),
            ("library_offload", library(&dir, handlers, mutating, false)),
            ("library_isolated", library(&dir, handlers, mutating, true)),
        ];
        let mut group = c.benchmark_group(format!("hook_chain_{case}"));
        for (name, plugin) in implementations {
            let sink = MemorySink::new();
            let rt = Runtime::builder().sink(sink.clone()).build();
            rt.activate(plugin).expect("activate");
            // Every implementation must give the same answer.
            let out = tokio_rt.block_on(rt.dispatch(&DispatchContext::default(), payload(0)));
            assert!(!out.is_blocked(), "{case}/{name}");
            let expected = mutating.then_some(handlers);
            assert_eq!(
                out.payload
                    .tool_input
                    .get("counter")
                    .and_then(Value::as_u64),
                expected,
                "{case}/{name}"
            );
            assert_eq!(sink.take().len() as u64, handlers, "{case}/{name}");
            group.bench_function(name, |b| {
                b.iter_custom(|iters| time(&tokio_rt, &rt, &sink, iters))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = hook_chain
}
fn main() {
    if std::env::args().nth(1).as_deref() == Some(PLUGIN_HOST) {
        std::process::exit(nitejar_core::loader::isolated::run_plugin_host());
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
