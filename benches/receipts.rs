//! Sustained receipt writes on SQLite (a file in a temp dir, WAL, the store's own settings).
//!
//! - `sink`: receipts submitted the way the dispatcher submits them (batches of 4, from 8 tasks at
//!   once) through `DbReceiptSink`, then flushed; two in three are hook receipts, which also write a
//!   `spans` row. The figure is receipts per second, end to end, stored and committed.
//! - `insert_receipts/1000`: the store's batch insert alone, 1000 receipts per transaction.
//!
//! Target (issue 4): ≥ 50 000 receipts/s through the sink on this 2-core machine. The database keeps
//! growing across samples, as it would in a server that runs for a while.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};
use nitejar_core::store::{self, DbReceiptSink, SinkOptions, Store, StoredReceipt};
use nitejar_sdk::HookName;
use serde_json::json;

const TASKS: u64 = 8;
const BATCH: u64 = 4;

fn receipt(n: u64) -> Receipt {
    let (kind, plugin) = match n % 3 {
        0 | 1 => (ReceiptKind::Hook, "com.acme.guard"),
        _ => (ReceiptKind::Integration, "builtin.telegram"),
    };
    let mut r = Receipt::new(plugin, Some(Arc::from("1.2.3")), kind, ReceiptStatus::Ok);
    if kind == ReceiptKind::Hook {
        r.hook = Some(HookName::ModelPreCall);
        r.work_item_id = Some(Arc::from("0190f0e2-7c3a-7b8e-9d41-2f6c8a1b3c4d"));
        r.job_id = Some(Arc::from("0190f0e2-7c3a-7b8e-9d41-2f6c8a1b3c4e"));
    }
    r.duration_us = 1_234;
    r.with_detail(json!({ "n": n, "changed": ["temperature"] }))
}

fn open(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let key = Key::generate().expect("key");
    let url = dir.path().join("nitejar.db").display().to_string();
    rt.block_on(store::open(&url, Cipher::new(&key)))
        .expect("open store")
}

fn bench_sink(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&rt, &dir);
    let sink = rt.block_on(async { DbReceiptSink::start(store.clone(), SinkOptions::default()) });

    let mut group = c.benchmark_group("receipts_sqlite");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sink", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                let per_task = iters.div_ceil(TASKS);
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let sink = sink.clone();
                        tokio::spawn(async move {
                            let mut n = t * per_task;
                            let end = n + per_task;
                            while n < end {
                                let batch = (n..(n + BATCH).min(end)).map(receipt).collect();
                                sink.submit(batch).await;
                                n += BATCH;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("submitter");
                }
                sink.flush().await;
                started.elapsed()
            })
        })
    });

    const ROWS: u64 = 1_000;
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("insert_receipts/1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let batch: Vec<StoredReceipt> = (0..ROWS)
                    .map(|n| StoredReceipt::new(receipt(i * ROWS + n)))
                    .collect();
                let started = Instant::now();
                rt.block_on(store.insert_receipts(&batch)).expect("insert");
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
    let summary = rt.block_on(sink.shutdown());
    assert_eq!(summary.lost, 0);
}

criterion_group!(benches, bench_sink);
criterion_main!(benches);
