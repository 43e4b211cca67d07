//! A plugin's hook calls over the last 24 h, from the receipts it left, through a real server: the
//! API's hourly buckets with exact counts and nearest-rank p50/p99, and the plugin page's chart
//! giving the same numbers as text.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::sync::Arc;

use nitejar_core::receipts::{now_ms, Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::store::{StoredReceipt, BUCKET_MS};
use nitejar_sdk::HookName;
use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::*;

fn hook(plugin: &str, status: ReceiptStatus, ms: u64, at: i64) -> StoredReceipt {
    let mut r = Receipt::new(plugin, Some(Arc::from("0.1.0")), ReceiptKind::Hook, status);
    r.hook = Some(HookName::ResponsePreDeliver);
    r.duration_us = ms * 1000;
    r.created_at_ms = at;
    StoredReceipt::new(r)
}

/// Two hours ago: 100 calls of 1..=100 ms, two failed. This hour: 8, 4 and 300 ms. Another
/// plugin's hooks and this plugin's skipped handler are not its calls.
async fn seed(data: &DataDir) -> (i64, i64) {
    let store = data.store().await;
    let hour = now_ms().div_euclid(BUCKET_MS) * BUCKET_MS;
    let two_ago = hour - 2 * BUCKET_MS;
    let mut receipts: Vec<StoredReceipt> = (1..=100u64)
        .map(|ms| {
            let status = match ms {
                17 => ReceiptStatus::Error,
                71 => ReceiptStatus::Timeout,
                _ => ReceiptStatus::Ok,
            };
            hook("builtin.echo", status, ms, two_ago + ms as i64 * 1000)
        })
        .collect();
    for (i, ms) in [8u64, 4, 300].into_iter().enumerate() {
        receipts.push(hook("builtin.echo", ReceiptStatus::Ok, ms, hour + i as i64));
    }
    receipts.push(hook(
        "builtin.echo",
        ReceiptStatus::SkippedBudget,
        0,
        hour + 5,
    ));
    receipts.push(hook(
        "builtin.telegram",
        ReceiptStatus::Error,
        900,
        hour + 6,
    ));
    store.insert_receipts(&receipts).await.expect("receipts");
    store.close().await.expect("close");
    (two_ago, hour)
}

fn bucket(stats: &Value, start: i64) -> &Value {
    stats["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .find(|b| b["start"] == start)
        .unwrap_or_else(|| panic!("no bucket at {start} in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_counts_and_ranks_a_plugins_hook_calls_per_hour() {
    let data = DataDir::new();
    let (two_ago, hour) = seed(&data).await;
    let server = start_admin(&data, &[]);

    let answer = api(
        &server,
        Method::GET,
        "/api/admin/plugins/builtin.echo/stats",
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let stats = answer.json();
    assert_eq!(stats["hours"], 24);
    assert_eq!(stats["buckets"].as_array().map(Vec::len), Some(24));
    let since = stats["since"].as_i64().expect("since");
    // The window is whole UTC hours; the clock may have passed into the next hour since seeding.
    assert!(
        since == hour - 23 * BUCKET_MS || since == hour - 22 * BUCKET_MS,
        "{stats}"
    );
    // Times vary with the clock: named instead of written.
    let at = |mut b: Value, name: &str| {
        b["start"] = json!(name);
        b
    };
    let stable = json!({
        "pluginId": stats["pluginId"],
        "bucketMs": stats["bucketMs"],
        "errorStatuses": stats["errorStatuses"],
        "twoHoursAgo": at(bucket(&stats, two_ago).clone(), "[two hours ago]"),
        "thisHour": at(bucket(&stats, hour).clone(), "[this hour]"),
        "total": at(stats["total"].clone(), "[since]"),
        "emptyHours": stats["buckets"].as_array().expect("buckets").iter()
            .filter(|b| b["calls"] == 0 && b["p50Ms"].is_null() && b["p99Ms"].is_null()).count(),
    });
    insta::assert_json_snapshot!("plugin_hook_stats", stable);
    assert_eq!(bucket(&stats, two_ago)["p50Ms"], 50);
    assert_eq!(bucket(&stats, two_ago)["p99Ms"], 99);
    assert_eq!(bucket(&stats, hour)["p50Ms"], 8);
    assert_eq!(bucket(&stats, hour)["p99Ms"], 300);

    let other = api(
        &server,
        Method::GET,
        "/api/admin/plugins/builtin.telegram/stats?hours=3",
        None,
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.json()["buckets"].as_array().map(Vec::len), Some(3));
    assert_eq!(other.json()["total"]["calls"], 1);
    assert_eq!(other.json()["total"]["errors"], 1);

    for bad in ["0", "169", "day"] {
        let refused = api(
            &server,
            Method::GET,
            &format!("/api/admin/plugins/builtin.echo/stats?hours={bad}"),
            None,
        )
        .await;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_eq!(refused.json()["error"]["code"], "invalid_hours");
        let message = refused.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("`hours`") && message.contains(bad),
            "{message}"
        );
    }
    let missing = api(
        &server,
        Method::GET,
        "/api/admin/plugins/acme.none/stats",
        None,
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(missing.json()["error"]["code"], "plugin_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_page_charts_its_hook_calls_with_their_numbers() {
    let data = DataDir::new();
    let (two_ago, _hour) = seed(&data).await;
    let server = start_admin(&data, &[]);
    let session = Session::sign_in(&server).await;

    let page = session.get(&server, "/admin/plugins/builtin.echo").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let html = page.text;
    assert!(html.contains("Hook calls, last 24 h"), "{html}");
    assert!(
        html.contains("<strong>103</strong> calls · <strong>2</strong> errors"),
        "{html}"
    );
    // The whole window: 1..=100 with 4 and 8 below 50 → rank 52 is 50; rank 102 is 100.
    assert!(
        html.contains("p50 <strong>50 ms</strong> · p99 <strong>100 ms</strong>"),
        "{html}"
    );
    assert!(
        html.contains("aria-label=\"Hook calls per hour over the last 24 hours: 103 calls, 2 errors in all; at most 100 in one hour.\""),
        "{html}"
    );
    assert!(
        html.contains("aria-label=\"Hook call duration per hour over the last 24 hours: p50 50 ms, p99 100 ms over the window; the highest hourly p99 300 ms.\""),
        "{html}"
    );
    // The table row of the busy hour, and the bar titles.
    let hour = format!("{:02}:00", two_ago.div_euclid(BUCKET_MS).rem_euclid(24));
    assert!(
        html.contains("<td>100</td><td>2</td><td>50 ms</td><td>99 ms</td>"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<title>{hour} UTC: 100 calls, 2 errors</title>")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<title>{hour} UTC: p50 50 ms, p99 99 ms</title>")),
        "{html}"
    );
    assert!(
        html.contains("<td>3</td><td>0</td><td>8 ms</td><td>300 ms</td>"),
        "{html}"
    );

    // A plugin without hook calls says so instead of drawing empty strips.
    let quiet = session.get(&server, "/admin/plugins/builtin.github").await;
    assert_eq!(quiet.status, 200, "{}", quiet.text);
    assert!(
        quiet.text.contains("No hook calls in the last 24 hours."),
        "{}",
        quiet.text
    );
}
