//! The admin tables and the receipts view, on SQLite and on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::sync::Arc;

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::store::{AdminSessionRow, EventFilter, PageRequest, StoredReceipt};
use testdb::TestDb;

on_both_backends!(
    settings_are_written_once_or_replaced,
    sessions_are_found_by_token_hash_touched_and_swept,
    events_are_filtered_and_paged_across_plugins,
);

async fn settings_are_written_once_or_replaced(db: TestDb) {
    let store = db.open().await;
    store.ping().await.expect("ping");
    assert_eq!(store.get_admin_setting("k").await.expect("get"), None);
    assert!(store
        .put_admin_setting("k", "first", false)
        .await
        .expect("put"));
    // A second server starting at the same time must not overwrite the first one's value.
    assert!(!store
        .put_admin_setting("k", "second", false)
        .await
        .expect("put"));
    assert_eq!(
        store.get_admin_setting("k").await.expect("get").as_deref(),
        Some("first")
    );
    assert!(store
        .put_admin_setting("k", "third", true)
        .await
        .expect("put"));
    assert_eq!(
        store.get_admin_setting("k").await.expect("get").as_deref(),
        Some("third")
    );
}

fn session(id: &str, hash: &str, created_at: i64, expires_at: i64) -> AdminSessionRow {
    AdminSessionRow {
        id: id.into(),
        token_hash: hash.into(),
        created_at,
        expires_at,
        last_seen_at: None,
        token_fingerprint: format!("fp-{id}"),
    }
}

async fn sessions_are_found_by_token_hash_touched_and_swept(db: TestDb) {
    let store = db.open().await;
    let now = 1_700_000_000_000_i64;
    store
        .create_admin_session(&session("s1", "h1", now, now + 1000))
        .await
        .expect("create s1");
    store
        .create_admin_session(&session("s2", "h2", now, now + 100_000))
        .await
        .expect("create s2");
    store
        .create_admin_session(&session("s3", "h3", now, now + 100_000))
        .await
        .expect("create s3");
    let found = store.get_admin_session("h2").await.expect("get");
    assert_eq!(found, Some(session("s2", "h2", now, now + 100_000)));
    assert_eq!(store.get_admin_session("nope").await.expect("get"), None);

    store
        .touch_admin_session("s2", now + 500)
        .await
        .expect("touch");
    let touched = store.get_admin_session("h2").await.expect("get");
    assert_eq!(touched.and_then(|s| s.last_seen_at), Some(now + 500));

    // s1 has expired by now+2000; s3 was never used after now (idle); s2 was seen at now+500.
    let swept = store
        .delete_stale_admin_sessions(now + 2000, now + 100)
        .await
        .expect("sweep");
    assert_eq!(swept, 2);
    assert!(store.get_admin_session("h1").await.expect("get").is_none());
    assert!(store.get_admin_session("h3").await.expect("get").is_none());
    assert!(store.delete_admin_session("s2").await.expect("delete"));
    assert!(!store
        .delete_admin_session("s2")
        .await
        .expect("delete again"));
}

fn receipt(plugin: &str, kind: ReceiptKind, status: ReceiptStatus, at: i64) -> StoredReceipt {
    let mut r = Receipt::new(Arc::from(plugin), Some(Arc::from("1.0.0")), kind, status);
    r.created_at_ms = at;
    StoredReceipt::new(r)
}

async fn events_are_filtered_and_paged_across_plugins(db: TestDb) {
    let store = db.open().await;
    let mut receipts = Vec::new();
    for i in 0..10 {
        let plugin = if i % 2 == 0 {
            "com.example.a"
        } else {
            "com.example.b"
        };
        let status = if i % 3 == 0 {
            ReceiptStatus::Error
        } else {
            ReceiptStatus::Ok
        };
        receipts.push(receipt(plugin, ReceiptKind::Hook, status, 1000 + i));
    }
    receipts.push(receipt(
        "com.example.a",
        ReceiptKind::WebhookIngress,
        ReceiptStatus::Ok,
        2000,
    ));
    // Two deliveries naming integrations whose ids a LIKE pattern would confuse (`_`, `%`).
    for (id, at) in [("in_1", 900), ("in%1", 901), ("inx1", 902)] {
        let mut r = receipt(
            "com.example.c",
            ReceiptKind::WebhookIngress,
            ReceiptStatus::Ok,
            at,
        );
        r.receipt.detail = Some(serde_json::json!({ "integration_id": id, "reason": "accepted" }));
        receipts.push(r);
    }
    store.insert_receipts(&receipts).await.expect("insert");
    for id in ["in_1", "in%1", "inx1"] {
        let only = EventFilter {
            integration_id: Some(id.into()),
            ..EventFilter::default()
        };
        let page = store
            .list_events(&only, PageRequest::first(100))
            .await
            .expect("by integration");
        let named: Vec<String> = page
            .items
            .iter()
            .map(|e| {
                e.detail().expect("detail")["integration_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(named, [id], "receipts of integration {id}");
    }

    let all = store
        .list_events(&EventFilter::default(), PageRequest::first(100))
        .await
        .expect("all");
    assert_eq!(all.items.len(), 14);
    assert_eq!(all.items[0].kind, "webhook_ingress", "newest first");
    assert!(all.next_cursor.is_none());

    let hooks_of_a = EventFilter {
        plugin_id: Some("com.example.a".into()),
        kind: Some("hook".into()),
        ..EventFilter::default()
    };
    let page = store
        .list_events(&hooks_of_a, PageRequest::first(100))
        .await
        .expect("a");
    assert_eq!(page.items.len(), 5);
    assert!(page
        .items
        .iter()
        .all(|e| e.plugin_id == "com.example.a" && e.kind == "hook"));

    let errors = EventFilter {
        status: Some("error".into()),
        ..EventFilter::default()
    };
    let page = store
        .list_events(&errors, PageRequest::first(100))
        .await
        .expect("errors");
    let times: Vec<i64> = page.items.iter().map(|e| e.created_at).collect();
    assert_eq!(times, vec![1009, 1006, 1003, 1000]);

    // Keyset pages of 4 cover every receipt once, in order.
    let mut seen = Vec::new();
    let mut request = PageRequest::first(4);
    loop {
        let page = store
            .list_events(&EventFilter::default(), request.clone())
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|e| e.created_at));
        match page.next_cursor {
            Some(c) => request = PageRequest::after(4, c),
            None => break,
        }
    }
    let mut expected: Vec<i64> = (1000..1010).rev().collect();
    expected.insert(0, 2000);
    expected.extend([902, 901, 900]);
    assert_eq!(seen, expected);
}
