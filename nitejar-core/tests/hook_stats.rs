//! A plugin's hook calls over the last hours, on SQLite and on Postgres: calls, errors and
//! nearest-rank p50/p99 per hourly bucket, from the hook receipts it left; other plugins, other
//! kinds, skipped handlers and receipts outside the window are not counted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::sync::Arc;

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::store::{HookStatsWindow, StoredReceipt, BUCKET_MS};
use nitejar_sdk::HookName;
use testdb::TestDb;

on_both_backends!(hook_calls_are_counted_and_ranked_per_hour);

fn hook(plugin: &str, status: ReceiptStatus, ms: u64, at: i64) -> StoredReceipt {
    let mut r = Receipt::new(plugin, Some(Arc::from("1.0.0")), ReceiptKind::Hook, status);
    r.hook = Some(HookName::ModelPreCall);
    r.duration_us = ms * 1000;
    r.created_at_ms = at;
    StoredReceipt::new(r)
}

async fn hook_calls_are_counted_and_ranked_per_hour(db: TestDb) {
    let store = db.open().await;
    // A fixed "now", 20 minutes into an hour.
    let hour = 1_780_000_000_000_i64.div_euclid(BUCKET_MS) * BUCKET_MS;
    let now = hour + 20 * 60_000;
    let mut receipts = Vec::new();
    // Two hours ago: 100 calls of 1..=100 ms, 3 of them failed (error, timeout, denied).
    let two_ago = hour - 2 * BUCKET_MS;
    for ms in 1..=100u64 {
        let status = match ms {
            10 => ReceiptStatus::Error,
            20 => ReceiptStatus::Timeout,
            30 => ReceiptStatus::Denied,
            40 => ReceiptStatus::Blocked,
            _ => ReceiptStatus::Ok,
        };
        receipts.push(hook("acme.guard", status, ms, two_ago + ms as i64 * 1000));
    }
    // This hour: 4 calls of 5, 7, 9, 400 ms.
    for (i, ms) in [5u64, 7, 9, 400].into_iter().enumerate() {
        receipts.push(hook("acme.guard", ReceiptStatus::Ok, ms, hour + i as i64));
    }
    // Not counted: a skipped handler, another plugin, another kind, before the window, after now.
    receipts.push(hook(
        "acme.guard",
        ReceiptStatus::SkippedBudget,
        0,
        hour + 10,
    ));
    receipts.push(hook("acme.other", ReceiptStatus::Error, 900, hour + 11));
    let mut install = Receipt::new(
        "acme.guard",
        None,
        ReceiptKind::Install,
        ReceiptStatus::Error,
    );
    install.created_at_ms = hour + 12;
    receipts.push(StoredReceipt::new(install));
    receipts.push(hook(
        "acme.guard",
        ReceiptStatus::Error,
        800,
        hour - 24 * BUCKET_MS,
    ));
    receipts.push(hook("acme.guard", ReceiptStatus::Error, 800, now + 1));
    store.insert_receipts(&receipts).await.expect("insert");

    let stats = store
        .hook_stats(HookStatsWindow {
            plugin_id: "acme.guard",
            hours: 24,
            now_ms: now,
        })
        .await
        .expect("stats");
    assert_eq!(stats.since_ms, hour - 23 * BUCKET_MS);
    assert_eq!(stats.until_ms, now + 1);
    assert_eq!(stats.buckets.len(), 24);
    let shown: Vec<_> = stats
        .buckets
        .iter()
        .filter(|b| b.calls > 0)
        .map(|b| {
            (
                b.start_ms,
                b.calls,
                b.errors,
                b.p50_ms,
                b.p99_ms,
                b.durations_read,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (two_ago, 100, 3, Some(50), Some(99), 100),
            (hour, 4, 0, Some(7), Some(400), 4),
        ]
    );
    assert!(stats
        .buckets
        .iter()
        .all(|b| b.calls > 0 || (b.p50_ms.is_none() && b.p99_ms.is_none() && b.errors == 0)));
    assert_eq!(stats.total.calls, 104);
    assert_eq!(stats.total.errors, 3);
    // 104 values: 1..=100 plus 5, 7, 9 and 400. Rank 52 is 49 (three values come twice below it);
    // rank 103 is 100, the 400 alone above it.
    assert_eq!(stats.total.p50_ms, Some(49));
    assert_eq!(stats.total.p99_ms, Some(100));

    let nothing = store
        .hook_stats(HookStatsWindow {
            plugin_id: "acme.none",
            hours: 24,
            now_ms: now,
        })
        .await
        .expect("stats");
    assert_eq!(nothing.total.calls, 0);
    assert_eq!(nothing.total.p50_ms, None);
}
