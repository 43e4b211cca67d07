//! One integration call into the `examples/signed-webhook` library, in the server's process and
//! isolated (the library in a process of its own; this bench binary is its plugin host):
//!
//! - `parse_webhook`: a signed delivery (HMAC-SHA256 over a small JSON body) checked and turned
//!   into a work item — the call crosses to the plugin and back once;
//! - `post_response`: the answer posted to the integration's callback URL (a local HTTP server)
//!   through the host's HTTP service — in isolated mode the host call crosses back to the server
//!   and its answer to the plugin again, so two round trips plus the HTTP request.
//!
//! Both run behind the permission gate with an in-memory receipt sink, the way the server calls
//! integrations (off the async workers, with a deadline).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use nitejar_core::hooks::DispatchContext;
use nitejar_core::loader::isolated::{Isolation, PluginHostCommand};
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::permissions::{Grant, PermissionGate, PermissionSet};
use nitejar_core::receipts::MemorySink;
use nitejar_core::runtime::Runtime;
use nitejar_sdk::integration::{PostResponseOptions, WebhookRequest};
use nitejar_sdk::webhook::HmacSignature;
use nitejar_sdk::IntegrationInstance;
use nitejar_suite::local_http::{LocalHttp, Reply};
use nitejar_suite::plugins::install_package;
use serde_json::{json, Value};

/// The argument that makes this bench binary a plugin's process.
const PLUGIN_HOST: &str = "__plugin-host";
const SECRET: &str = "whsec-bench";
const KIND: &str = "signed-webhook";

fn runtime(
    dir: &std::path::Path,
    data: &std::path::Path,
    isolated: bool,
) -> (Runtime, Arc<MemorySink>) {
    let manifest = validate_package_dir(dir, &ValidateOptions::new())
        .expect("valid manifest")
        .manifest;
    let sink = MemorySink::new();
    let gate = Arc::new(PermissionGate::new(data, sink.clone()));
    let permissions = PermissionSet::from(&manifest.permissions);
    let mut package = PluginPackage::new(dir, manifest);
    if isolated {
        package = package.isolated(Isolation {
            command: PluginHostCommand {
                program: std::env::current_exe().expect("this bench"),
                args: vec![PLUGIN_HOST.into()],
            },
            load_timeout: Duration::from_secs(30),
            data_dir: data.join("plugin-data"),
            limits: Default::default(),
        });
    }
    let active = loader::load(&package, gate.clone()).expect("load signed-webhook");
    gate.grant(active.meta(), Grant::new(permissions, dir));
    let runtime = Runtime::builder().services(gate).sink(sink.clone()).build();
    runtime.activate(active).expect("activate");
    (runtime, sink)
}

fn instance(callback: &str) -> IntegrationInstance {
    IntegrationInstance::new("int-bench", KIND)
        .with_name("bench")
        .with_config(json!({ "secret": SECRET, "callbackUrl": callback }))
}

fn delivery(n: u64) -> WebhookRequest {
    let body = format!(r#"{{"id":"evt-{n}","text":"restart the worker","conversation":"ops"}}"#);
    let signature = format!(
        "sha256={}",
        HmacSignature::sha256().sign(SECRET.as_bytes(), body.as_bytes())
    );
    WebhookRequest::new("POST", "/api/webhooks/plugins/signed-webhook/int-bench")
        .with_header("x-signature-256", signature)
        .with_body(body)
}

fn integration_call(c: &mut Criterion) {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let callback = LocalHttp::start(|_| Reply::text(200, r#"{"id":"cb-1"}"#));
    let port = callback.port();
    let data = tempfile::tempdir().expect("tempdir");
    let dir = install_package(
        data.path(),
        "examples/signed-webhook",
        "signed_webhook",
        |m| m["permissions"]["network"] = json!([format!("127.0.0.1:{port}")]),
    );
    let inst = instance(&callback.url("/responses"));
    let ctx = DispatchContext::for_work_item("wi-bench");
    let deadline = Duration::from_secs(5);

    let mut parse = c.benchmark_group("integration_parse_webhook");
    let mut runtimes = Vec::new();
    for (name, isolated) in [("in_process", false), ("isolated", true)] {
        let (rt, sink) = runtime(&dir, data.path(), isolated);
        // Both must answer the same.
        let (request, i) = (delivery(0), inst.clone());
        let parsed = tokio_rt
            .block_on(
                rt.call_integration(KIND, "parse_webhook", &ctx, deadline, move |p, host| {
                    p.parse_webhook(&request, &i, host)
                }),
            )
            .expect("parse_webhook");
        assert_eq!(
            parsed.work_item.map(|w| w.title).as_deref(),
            Some("restart the worker"),
            "{name}"
        );
        parse.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let requests: Vec<WebhookRequest> = (0..iters).map(delivery).collect();
                let start = Instant::now();
                tokio_rt.block_on(async {
                    for request in requests {
                        let i = inst.clone();
                        let out = rt
                            .call_integration(
                                KIND,
                                "parse_webhook",
                                &ctx,
                                deadline,
                                move |p, host| p.parse_webhook(&request, &i, host),
                            )
                            .await
                            .expect("parse_webhook");
                        std::hint::black_box(out);
                    }
                });
                let took = start.elapsed();
                sink.take();
                took
            })
        });
        runtimes.push((name, rt, sink));
    }
    parse.finish();

    let mut post = c.benchmark_group("integration_post_response");
    for (name, rt, sink) in &runtimes {
        post.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                tokio_rt.block_on(async {
                    for n in 0..iters {
                        let i = inst.clone();
                        let context: Option<Value> =
                            Some(json!({ "conversation": "ops", "event": n }));
                        let out = rt
                            .call_integration(
                                KIND,
                                "post_response",
                                &ctx,
                                deadline,
                                move |p, host| {
                                    p.post_response(
                                        &i,
                                        "wi-bench",
                                        "restarted",
                                        context.as_ref(),
                                        &PostResponseOptions::default(),
                                        host,
                                    )
                                },
                            )
                            .await
                            .expect("post_response");
                        assert!(out.success, "{name}: {out:?}");
                    }
                });
                let took = start.elapsed();
                sink.take();
                took
            })
        });
    }
    post.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = integration_call
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some(PLUGIN_HOST) {
        std::process::exit(nitejar_core::loader::isolated::run_plugin_host());
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
