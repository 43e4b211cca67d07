//! Durable receipts: the database sink and keyset pages, on SQLite and on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};
use nitejar_core::store::{
    DbReceiptSink, PageRequest, PluginEventRow, SinkBacklog, SinkOptions, Store, StoreError,
    StoredReceipt,
};
use nitejar_sdk::HookName;
use serde_json::json;
use testdb::TestDb;

on_both_backends!(
    hundred_thousand_concurrent_receipts_land_exactly_once,
    shutdown_flushes_the_queue,
    events_page_newest_first_by_created_at_then_id,
    hook_and_integration_receipts_write_spans,
    a_database_error_is_retried_and_submitters_wait,
    recovery_is_prompt_with_the_default_retry_timings,
    receipts_past_overflow_max_are_counted_as_lost,
    backlog_reports_a_failing_database_until_it_recovers,
    flush_waits_for_what_went_to_the_overflow,
    shutdown_writes_the_overflow,
    shutdown_deadline_counts_what_could_not_be_stored,
);

const PLUGINS: [&str; 3] = [
    "builtin.telegram",
    "com.acme.echo",
    "com.example.not-installed",
];

/// A receipt carrying its sequence number `n` in its detail.
fn numbered(n: u64) -> Receipt {
    let plugin = PLUGINS[(n % 3) as usize];
    let kind = match n % 3 {
        0 => ReceiptKind::Hook,
        1 => ReceiptKind::Integration,
        _ => ReceiptKind::Load,
    };
    let mut r = Receipt::new(plugin, Some(Arc::from("1.0.0")), kind, ReceiptStatus::Ok);
    if kind == ReceiptKind::Hook {
        r.hook = Some(HookName::ModelPreCall);
        r.job_id = Some(Arc::from(format!("job-{}", n % 50)));
    }
    r.duration_us = n % 5000;
    r.with_detail(json!({ "n": n }))
}

/// Every event of `plugin_id`, page by page.
async fn all_events(store: &dyn Store, plugin_id: &str, limit: u32) -> Vec<PluginEventRow> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(limit);
    loop {
        let got = store
            .list_plugin_events(plugin_id, page.clone())
            .await
            .expect("page");
        out.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page = PageRequest::after(limit, cursor),
            None => return out,
        }
    }
}

async fn hundred_thousand_concurrent_receipts_land_exactly_once(db: TestDb) {
    const TASKS: u64 = 40;
    const PER_TASK: u64 = 2_500;
    let store = db.open().await;
    let sink = DbReceiptSink::start(
        store.clone(),
        SinkOptions {
            capacity: 256,
            ..SinkOptions::default()
        },
    );
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut n = t * PER_TASK;
                let end = n + PER_TASK;
                let mut size = 1;
                while n < end {
                    // Batches of 1..=7, as dispatches of different chain lengths submit them.
                    let batch: Vec<Receipt> = (n..(n + size).min(end)).map(numbered).collect();
                    n += batch.len() as u64;
                    sink.submit(batch).await;
                    size = size % 7 + 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("submitter");
    }
    sink.flush().await;
    assert_eq!(
        store.count_plugin_events(None).await.expect("count"),
        TASKS * PER_TASK
    );

    let mut seen = HashSet::new();
    let mut ids = HashSet::new();
    for plugin in PLUGINS {
        for event in all_events(&*store, plugin, 500).await {
            assert_eq!(event.plugin_id, plugin);
            assert_eq!(event.execution_mode, "in_process");
            let n = event.detail().and_then(|d| d["n"].as_u64()).expect("n");
            assert!(seen.insert(n), "receipt {n} stored twice");
            assert!(ids.insert(event.id), "id stored twice");
        }
    }
    assert_eq!(seen.len() as u64, TASKS * PER_TASK, "every receipt, once");

    let summary = sink.shutdown().await;
    assert_eq!(summary.written, TASKS * PER_TASK);
    assert_eq!(summary.lost, 0);
}

async fn shutdown_flushes_the_queue(db: TestDb) {
    let store = db.open().await;
    let sink = DbReceiptSink::start(store.clone(), SinkOptions::default());
    for n in 0..2_000 {
        sink.submit(vec![numbered(n)]).await;
    }
    // No flush: shutdown alone writes what is queued.
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (2_000, 0));
    assert_eq!(store.count_plugin_events(None).await.expect("count"), 2_000);

    // After shutdown a submit is still stored, by the submitter itself.
    sink.submit(vec![numbered(2_000)]).await;
    assert_eq!(store.count_plugin_events(None).await.expect("count"), 2_001);
    assert_eq!(sink.shutdown().await.written, 2_001);
}

async fn events_page_newest_first_by_created_at_then_id(db: TestDb) {
    let store = db.open().await;
    // 25 receipts with ties: five share each timestamp, so the id decides within a millisecond.
    let stored: Vec<StoredReceipt> = (0..25)
        .map(|i| {
            let mut r = Receipt::new("com.acme.echo", None, ReceiptKind::Hook, ReceiptStatus::Ok);
            r.created_at_ms = 1_000 + i / 5;
            StoredReceipt::new(r)
        })
        .collect();
    store.insert_receipts(&stored).await.expect("insert");
    // Another plugin's receipts never show up in this one's pages.
    let other: Vec<StoredReceipt> = (0..520)
        .map(|_| {
            StoredReceipt::new(Receipt::new(
                "com.acme.other",
                None,
                ReceiptKind::Load,
                ReceiptStatus::Ok,
            ))
        })
        .collect();
    store.insert_receipts(&other).await.expect("insert");
    store
        .insert_receipts(&stored)
        .await
        .expect("a retried batch is a no-op");

    let mut expected: Vec<(i64, String)> = stored
        .iter()
        .map(|s| (s.receipt.created_at_ms, s.id.clone()))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));

    let mut pages = Vec::new();
    let mut page = PageRequest::first(10);
    loop {
        let got = store
            .list_plugin_events("com.acme.echo", page)
            .await
            .expect("page");
        pages.push(got.items.len());
        let next = got.next_cursor.clone();
        for e in got.items {
            assert_eq!(e.plugin_id, "com.acme.echo");
            expected
                .first()
                .filter(|(at, id)| *at == e.created_at && *id == e.id)
                .expect("next newest row");
            expected.remove(0);
        }
        match next {
            Some(cursor) => page = PageRequest::after(10, cursor),
            None => break,
        }
    }
    assert_eq!(pages, [10, 10, 5]);
    assert!(expected.is_empty());

    let capped = store
        .list_plugin_events("com.acme.other", PageRequest::first(10_000))
        .await
        .expect("page");
    assert_eq!(capped.items.len(), 500, "limit is capped");
    assert!(capped.next_cursor.is_some());
    let at_least_one = store
        .list_plugin_events("com.acme.other", PageRequest::first(0))
        .await
        .expect("page");
    assert_eq!(at_least_one.items.len(), 1);

    let err = store
        .list_plugin_events("com.acme.echo", PageRequest::after(10, "not-a-cursor!"))
        .await
        .expect_err("bad cursor");
    assert!(matches!(err, StoreError::BadCursor(_)), "{err}");
}

async fn hook_and_integration_receipts_write_spans(db: TestDb) {
    let store = db.open().await;
    let sink = DbReceiptSink::start(store.clone(), SinkOptions::default());
    let mut hook = Receipt::new(
        "com.acme.guard",
        Some(Arc::from("2.1.0")),
        ReceiptKind::Hook,
        ReceiptStatus::Timeout,
    );
    hook.hook = Some(HookName::ToolPreExec);
    hook.job_id = Some(Arc::from("job-7"));
    hook.work_item_id = Some(Arc::from("wi-7"));
    hook.duration_us = 2_500;
    let integration = Receipt::new(
        "builtin.telegram",
        Some(Arc::from("1.0.0")),
        ReceiptKind::Integration,
        ReceiptStatus::Ok,
    )
    .with_detail(json!({"method": "integration.telegram.parse_webhook"}));
    let load = Receipt::new(
        "builtin.telegram",
        None,
        ReceiptKind::Load,
        ReceiptStatus::Ok,
    );
    sink.submit(vec![hook.clone(), integration, load]).await;
    sink.flush().await;

    let spans = store.list_spans("job-7").await.expect("spans");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(
        (span.name.as_str(), span.kind.as_str()),
        ("plugin.hook", "plugin")
    );
    assert_eq!(span.status, "timeout");
    assert_eq!(span.job_id.as_deref(), Some("job-7"));
    assert_eq!(span.duration_ms, Some(3));
    assert_eq!(span.end_time, Some(hook.created_at_ms));
    assert_eq!(span.start_time, hook.created_at_ms - 3);
    let attributes: serde_json::Value =
        serde_json::from_str(span.attributes.as_deref().expect("attributes")).expect("json");
    assert_eq!(attributes["plugin.id"], "com.acme.guard");
    assert_eq!(attributes["plugin.version"], "2.1.0");
    assert_eq!(attributes["plugin.hook"], "tool.pre_exec");
    assert_eq!(attributes["plugin.status"], "timeout");

    let events = all_events(&*store, "builtin.telegram", 10).await;
    assert_eq!(events.len(), 2);
    for event in events {
        let spans = store.list_spans(&event.id).await.expect("spans");
        match event.kind.as_str() {
            "integration" => {
                assert_eq!(spans.len(), 1, "an integration call has a span of its own");
                let attributes: serde_json::Value =
                    serde_json::from_str(spans[0].attributes.as_deref().expect("attributes"))
                        .expect("json");
                assert_eq!(attributes["plugin.id"], "builtin.telegram");
                assert_eq!(attributes["plugin.hook"], serde_json::Value::Null);
                assert_eq!(attributes["plugin.status"], "ok");
            }
            "load" => assert!(
                spans.is_empty(),
                "only hooks and integration calls have spans"
            ),
            other => panic!("unexpected kind {other}"),
        }
    }
}

fn retry_fast() -> SinkOptions {
    SinkOptions {
        capacity: 1,
        max_wait: Duration::from_millis(200),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        ..SinkOptions::default()
    }
}

/// A real failure: the table is gone until [`heal`] brings it back.
async fn break_table(db: &TestDb) {
    db.exec("ALTER TABLE plugin_events RENAME TO plugin_events_away")
        .await;
}

async fn heal(db: &TestDb) {
    db.exec("ALTER TABLE plugin_events_away RENAME TO plugin_events")
        .await;
}

/// Waits until the sink has seen a write fail (its writer now retries, holding what it took), and
/// returns when the first failure happened.
async fn writes_fail(sink: &DbReceiptSink) -> Instant {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(since) = sink.backlog().failing_since {
                return since;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the writer reports the failing write")
}

/// The sequence numbers of every stored receipt, in order, asserting that none is stored twice.
async fn stored_numbers(store: &dyn Store) -> Vec<u64> {
    let mut numbers = Vec::new();
    for plugin in PLUGINS {
        for event in all_events(store, plugin, 500).await {
            numbers.push(event.detail().and_then(|d| d["n"].as_u64()).expect("n"));
        }
    }
    numbers.sort_unstable();
    let distinct: HashSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), numbers.len(), "a receipt stored twice");
    numbers
}

async fn a_database_error_is_retried_and_submitters_wait(db: TestDb) {
    let store = db.open().await;
    let options = retry_fast();
    let max_wait = options.max_wait;
    let sink = DbReceiptSink::start(store.clone(), options);
    break_table(&db).await;
    sink.submit((0..10).map(numbered).collect()).await;
    writes_fail(&sink).await;
    let flushing = tokio::spawn({
        let sink = sink.clone();
        async move { sink.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!flushing.is_finished(), "flush waits while writes fail");

    // The queue (capacity 1) is full: a submitter waits for room, up to max_wait, and then leaves its
    // batch in the overflow instead of dropping it or waiting for the database.
    let blocked = tokio::spawn({
        let sink = sink.clone();
        async move {
            let started = Instant::now();
            sink.submit((10..20).map(numbered).collect()).await;
            let first = started.elapsed();
            let started = Instant::now();
            sink.submit((20..30).map(numbered).collect()).await;
            (first, started.elapsed())
        }
    });
    tokio::time::sleep(max_wait / 2).await;
    assert!(!blocked.is_finished(), "submit applies back-pressure");
    let (first, second) = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("submitters go on while the database fails")
        .expect("join");
    eprintln!("submits waited {first:?} and {second:?} (max_wait {max_wait:?})");
    for waited in [first, second] {
        assert!(waited >= max_wait, "waited {waited:?}, less than max_wait");
        assert!(
            waited < max_wait + Duration::from_secs(1),
            "waited {waited:?}, far past max_wait"
        );
    }
    let backlog = sink.backlog();
    assert_eq!(backlog.overflow, 20, "both batches wait in the overflow");
    assert_eq!(backlog.queued_batches, 1, "the first flush");
    assert_eq!(sink.lost(), 0);

    // A flush called now also waits for what went to the overflow.
    let flushing_all = tokio::spawn({
        let sink = sink.clone();
        async move { sink.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!flushing_all.is_finished(), "flush waits while writes fail");

    heal(&db).await;
    tokio::time::timeout(Duration::from_secs(20), flushing)
        .await
        .expect("flush finishes once the table is back")
        .expect("join");
    tokio::time::timeout(Duration::from_secs(20), flushing_all)
        .await
        .expect("flush finishes once the table is back")
        .expect("join");
    assert_eq!(
        stored_numbers(&*store).await,
        (0..30).collect::<Vec<_>>(),
        "the flush returned after every receipt submitted during the fault was stored, once"
    );
    assert_eq!(sink.backlog().overflow, 0);
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (30, 0));
}

async fn recovery_is_prompt_with_the_default_retry_timings(db: TestDb) {
    let store = db.open().await;
    let options = SinkOptions {
        capacity: 1,
        max_wait: Duration::from_millis(200),
        ..SinkOptions::default()
    };
    assert_eq!(options.retry_max, Duration::from_secs(1));
    let sink = DbReceiptSink::start(store.clone(), options);
    break_table(&db).await;
    sink.submit((0..10).map(numbered).collect()).await;
    let since = writes_fail(&sink).await;
    sink.submit((10..20).map(numbered).collect()).await; // queued
    sink.submit((20..30).map(numbered).collect()).await; // spilled
    assert_eq!(sink.backlog().overflow, 10);
    // Let the backoff reach its cap: retries at 0.1, 0.3, 0.7, 1.5 s, then every second. With a cap
    // of 5 s the writer, healed at 3.6 s, would sleep until 6.3 s.
    tokio::time::sleep_until((since + Duration::from_millis(3_600)).into()).await;
    heal(&db).await;
    let healed = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), async {
        while store.count_plugin_events(None).await.expect("count") < 30 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the backlog is written once the table is back");
    let took = healed.elapsed();
    eprintln!("backlog written {took:?} after the database healed");
    assert!(
        took < Duration::from_millis(1_500),
        "the backlog took {took:?} to be written"
    );
    assert_eq!(stored_numbers(&*store).await, (0..30).collect::<Vec<_>>());
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (30, 0));
}

async fn receipts_past_overflow_max_are_counted_as_lost(db: TestDb) {
    let store = db.open().await;
    let sink = DbReceiptSink::start(
        store.clone(),
        SinkOptions {
            max_wait: Duration::from_millis(50),
            overflow_max: 25,
            ..retry_fast()
        },
    );
    break_table(&db).await;
    sink.submit((0..10).map(numbered).collect()).await; // taken by the writer
    writes_fail(&sink).await;
    for start in (10..50).step_by(10) {
        // 10..20 is queued; 20..30 and 30..40 are spilled whole; of 40..50, five fit.
        sink.submit((start..start + 10).map(numbered).collect())
            .await;
    }
    assert_eq!(sink.lost(), 5);
    assert_eq!(sink.backlog().overflow, 25);

    heal(&db).await;
    sink.flush().await;
    assert_eq!(
        stored_numbers(&*store).await,
        (0..45).collect::<Vec<_>>(),
        "all but the receipts past overflow_max"
    );
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (45, 5));
}

async fn backlog_reports_a_failing_database_until_it_recovers(db: TestDb) {
    let store = db.open().await;
    let sink = DbReceiptSink::start(store.clone(), retry_fast());
    assert_eq!(sink.backlog(), SinkBacklog::default());

    break_table(&db).await;
    let broken = Instant::now();
    sink.submit((0..10).map(numbered).collect()).await;
    let since = writes_fail(&sink).await;
    assert!(since >= broken);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = sink.backlog();
    assert_eq!(
        during.failing_since,
        Some(since),
        "the first failure of the run, not the latest"
    );
    let error = during.last_error.expect("the error of the failing write");
    assert!(error.contains("plugin_events"), "{error}");

    heal(&db).await;
    sink.flush().await;
    let after = sink.backlog();
    assert_eq!(after.failing_since, None, "cleared by the next write");
    assert_eq!((after.queued_batches, after.overflow), (0, 0));
    assert_eq!(after.last_error.as_deref(), Some(error.as_str()));
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (10, 0));
}

async fn flush_waits_for_what_went_to_the_overflow(db: TestDb) {
    let store = db.open().await;
    // Small transactions, so that the overflow takes several to drain and a flush arrives while part
    // of it is still there.
    let sink = DbReceiptSink::start(
        store.clone(),
        SinkOptions {
            max_wait: Duration::from_millis(20),
            max_batch: 4,
            ..retry_fast()
        },
    );
    break_table(&db).await;
    sink.submit(vec![numbered(0)]).await;
    writes_fail(&sink).await;
    for n in 1..=25 {
        sink.submit(vec![numbered(n)]).await; // 1 is queued, the rest spilled
    }
    assert_eq!(sink.backlog().overflow, 24);
    let flushing = tokio::spawn({
        let sink = sink.clone();
        async move { sink.flush().await }
    });
    heal(&db).await;
    tokio::time::timeout(Duration::from_secs(20), flushing)
        .await
        .expect("flush finishes once the table is back")
        .expect("join");
    assert_eq!(stored_numbers(&*store).await, (0..=25).collect::<Vec<_>>());
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (26, 0));
}

async fn shutdown_writes_the_overflow(db: TestDb) {
    let store = db.open().await;
    // Small transactions: the shutdown command is taken while most of the overflow is still there.
    let sink = DbReceiptSink::start(
        store.clone(),
        SinkOptions {
            max_wait: Duration::from_millis(20),
            max_batch: 4,
            ..retry_fast()
        },
    );
    break_table(&db).await;
    sink.submit(vec![numbered(0)]).await;
    writes_fail(&sink).await;
    for n in 1..=25 {
        sink.submit(vec![numbered(n)]).await; // 1 is queued, the rest spilled
    }
    assert_eq!(sink.backlog().overflow, 24);
    heal(&db).await;
    // No flush: shutdown alone writes the queue and the overflow.
    let summary = sink.shutdown().await;
    assert_eq!((summary.written, summary.lost), (26, 0));
    assert_eq!(stored_numbers(&*store).await, (0..=25).collect::<Vec<_>>());
    assert_eq!(sink.backlog().overflow, 0);
}

async fn shutdown_deadline_counts_what_could_not_be_stored(db: TestDb) {
    let store = db.open().await;
    let sink = DbReceiptSink::start(
        store.clone(),
        SinkOptions {
            shutdown_deadline: Duration::from_millis(300),
            ..retry_fast()
        },
    );
    break_table(&db).await;
    sink.submit((0..30).map(numbered).collect()).await;
    writes_fail(&sink).await;
    sink.submit((30..40).map(numbered).collect()).await; // queued
    sink.submit((40..50).map(numbered).collect()).await; // spilled
    let summary = tokio::time::timeout(Duration::from_secs(20), sink.shutdown())
        .await
        .expect("shutdown is bounded by its deadline");
    assert_eq!((summary.written, summary.lost), (0, 50));
    heal(&db).await;
    assert_eq!(store.count_plugin_events(None).await.expect("count"), 0);
}
