//! Hook dispatch through in-process (inline) handlers, with an in-memory receipt sink.
//!
//! - one event through 1, 10 and 100 no-op handlers;
//! - one event through 10 handlers that each change one field of a 4 KB payload;
//! - one event through 10 handlers that each rewrite a 4 KB field (a redactor's shape).
//!
//! Targets (issue 2): ≤ 2 µs with 10 no-op handlers, ≤ 15 µs with 100, ≤ 5 µs for the 10 mutating
//! ones. Every handler call also produces a receipt, so these figures include receipt creation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nitejar_core::hooks::DispatchContext;
use nitejar_core::receipts::MemorySink;
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::hooks::{
    HookOptions, ModelPreCall, ModelPreCallPatch, ResponsePreDeliver, ResponsePreDeliverPatch,
};
use nitejar_sdk::{HookResult, Plugin};
use serde_json::json;

fn runtime_with(plugin: Plugin, sink: &Arc<MemorySink>) -> Runtime {
    let rt = Runtime::builder().sink(sink.clone()).build();
    rt.activate(ActivePlugin::from_plugin(
        PluginMeta::new("bench.plugin", "1.0.0", PluginOrigin::Builtin),
        &plugin,
    ))
    .expect("activate");
    rt
}

/// Times `iters` dispatches of `make()`. Payloads are built and dropped, and the sink is cleared,
/// outside the timed part, so memory stays flat and only dispatch is measured.
fn time_dispatch<E, F>(
    tokio_rt: &tokio::runtime::Runtime,
    rt: &Runtime,
    sink: &MemorySink,
    iters: u64,
    make: F,
) -> Duration
where
    E: nitejar_sdk::HookEvent,
    F: Fn() -> E,
{
    let ctx = DispatchContext::for_work_item("wi-bench").with_job("job-bench", "agent-bench");
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let batch = (iters - done).min(100);
        let payloads: Vec<E> = (0..batch).map(|_| make()).collect();
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

fn noop_handlers(c: &mut Criterion) {
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut group = c.benchmark_group("dispatch_noop");
    for n in [1usize, 10, 100] {
        let mut builder = Plugin::builder();
        for _ in 0..n {
            builder = builder.hook(HookOptions::new(), |_ctx, _r: &ResponsePreDeliver| {
                HookResult::proceed()
            });
        }
        let sink = MemorySink::new();
        let rt = runtime_with(builder.build(), &sink);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                time_dispatch(&tokio_rt, &rt, &sink, iters, || {
                    let mut response = ResponsePreDeliver::default();
                    response.content = "hello".into();
                    response
                })
            })
        });
    }
    group.finish();
}

fn payload_4k() -> ModelPreCall {
    // 16 messages of ~256 bytes: a 4 KB payload.
    let messages = (0..16)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "x".repeat(230)}))
        .collect();
    {
        let mut call = ModelPreCall::default();
        call.turn = 1;
        call.model = "gpt-test".into();
        call.temperature = Some(1.0);
        call.max_tokens = Some(1000);
        call.messages = messages;
        call.provider_metadata = json!({});
        call
    }
}

fn mutating_handlers(c: &mut Criterion) {
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let size = serde_json::to_vec(&payload_4k()).expect("json").len();
    assert!((4000..4600).contains(&size), "payload is {size} bytes");

    let mut group = c.benchmark_group("dispatch_mutating");
    let mut builder = Plugin::builder();
    for i in 0..10u32 {
        builder = builder.hook(HookOptions::new(), move |_ctx, m: &ModelPreCall| {
            // Each handler changes one field, alternating which.
            HookResult::change(match i % 3 {
                0 => ModelPreCallPatch::new().temperature(m.temperature.unwrap_or(1.0) * 0.9),
                1 => ModelPreCallPatch::new().max_tokens(m.max_tokens.unwrap_or(0) + 1),
                _ => ModelPreCallPatch::new().model(format!("gpt-test-{i}")),
            })
        });
    }
    let sink = MemorySink::new();
    let rt = runtime_with(builder.build(), &sink);
    let template = payload_4k();
    group.bench_function("10_one_field_of_4kb", |b| {
        b.iter_custom(|iters| time_dispatch(&tokio_rt, &rt, &sink, iters, || template.clone()))
    });

    let mut builder = Plugin::builder();
    for _ in 0..10 {
        builder = builder.hook(HookOptions::new(), |_ctx, r: &ResponsePreDeliver| {
            HookResult::change(
                ResponsePreDeliverPatch::new().content(r.content.replace("secret", "******")),
            )
        });
    }
    let sink = MemorySink::new();
    let rt = runtime_with(builder.build(), &sink);
    let content = "a secret in 4 KB of text. ".repeat(160);
    group.bench_function("10_rewrite_4kb_content", |b| {
        b.iter_custom(|iters| {
            time_dispatch(&tokio_rt, &rt, &sink, iters, || {
                let mut response = ResponsePreDeliver::default();
                response.content = content.clone();
                response
            })
        })
    });
    group.finish();
}

criterion_group!(benches, noop_handlers, mutating_handlers);
criterion_main!(benches);
