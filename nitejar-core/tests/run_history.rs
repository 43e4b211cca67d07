//! The operator's view of runs, on SQLite and on Postgres: work items newest first with their queue
//! state and jobs, filtered by integration, plugin, status and time, keyset-paged; one run with its
//! jobs; the receipts of one work item.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::sync::Arc;

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::store::{
    AcceptedItem, EventFilter, JobUpdate, NewJob, NewRun, NewWorkItem, PageRequest, RunClaim,
    RunFilter, Store, StoreError, StoredReceipt,
};
use testdb::TestDb;

on_both_backends!(
    runs_are_listed_newest_first_with_queue_state_and_jobs,
    filters_narrow_the_runs,
    runs_are_keyset_paged_and_a_bad_cursor_is_refused,
    receipts_can_be_read_for_one_work_item,
);

fn accepted(n: usize, integration: &str, plugin: &str) -> AcceptedItem {
    let receipt = Receipt::new(
        plugin,
        Some(Arc::from("0.1.0")),
        ReceiptKind::WebhookIngress,
        ReceiptStatus::Ok,
    );
    AcceptedItem {
        keys: vec![format!("key-{n}")],
        item: NewWorkItem {
            integration_id: Some(integration.into()),
            session_key: format!("session-{n}"),
            source: "test".into(),
            source_ref: format!("{n}"),
            title: format!("item {n}"),
            payload: Some(format!("{{\"text\": \"hello {n}\"}}")),
            ..Default::default()
        },
        run: Some(NewRun {
            response_context: None,
        }),
        receipt: Some(StoredReceipt::new(receipt)),
    }
}

/// Accepts items one by one (distinct `created_at`), returns their ids, oldest first.
async fn accept(store: &Arc<dyn Store>, items: Vec<AcceptedItem>) -> Vec<String> {
    let mut ids = Vec::new();
    for item in items {
        let rows = store.accept_work_items(&[item]).await.expect("accept");
        ids.push(rows[0].as_ref().expect("stored").id.clone());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    ids
}

fn claim(owner: &str) -> RunClaim<'_> {
    let now = nitejar_core::receipts::now_ms();
    RunClaim {
        owner,
        limit: 1,
        now,
        lease_until: now + 30_000,
    }
}

/// Claims the oldest claimable run and ends it with one job of `status`.
async fn run_once(store: &Arc<dyn Store>, status: &str, error: Option<&str>) -> String {
    let claimed = store.claim_runs(claim("srv")).await.expect("claim");
    let run = &claimed[0];
    let agent = store
        .create_agent(nitejar_core::store::NewAgent {
            name: format!("agent-{}", run.seq),
            ..Default::default()
        })
        .await
        .expect("agent");
    let job = store
        .create_job(NewJob {
            work_item_id: run.work_item.id.clone(),
            agent_id: agent.id.clone(),
            status: Some("RUNNING".into()),
            started_at: Some(1),
            ..Default::default()
        })
        .await
        .expect("job");
    store
        .finish_job_and_run(
            &job.id,
            JobUpdate {
                status: Some(status.into()),
                error_text: Some(error.map(str::to_owned)),
                completed_at: Some(2),
                ..Default::default()
            },
            &[],
            Some((run.seq, "srv")),
        )
        .await
        .expect("finish");
    run.work_item.id.clone()
}

async fn runs(store: &Arc<dyn Store>, filter: RunFilter) -> Vec<String> {
    store
        .list_runs(&filter, PageRequest::first(100))
        .await
        .expect("list runs")
        .items
        .into_iter()
        .map(|r| r.work_item.id)
        .collect()
}

async fn runs_are_listed_newest_first_with_queue_state_and_jobs(db: TestDb) {
    let store = db.open().await;
    let ids = accept(
        &store,
        (0..3)
            .map(|n| accepted(n, "int-a", "builtin.echo"))
            .collect(),
    )
    .await;
    let done = run_once(&store, "COMPLETED", None).await;
    let failed = run_once(&store, "FAILED", Some("delivery failed: chat not found")).await;
    assert_eq!(
        (done.as_str(), failed.as_str()),
        (ids[0].as_str(), ids[1].as_str())
    );

    let page = store
        .list_runs(&RunFilter::default(), PageRequest::first(10))
        .await
        .expect("list");
    let order: Vec<&str> = page.items.iter().map(|r| r.work_item.id.as_str()).collect();
    assert_eq!(order, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(page.next_cursor, None);
    // Still queued: a queue row, no job.
    let waiting = &page.items[0];
    assert!(waiting
        .queued
        .as_ref()
        .is_some_and(|q| q.lease_owner.is_none()));
    assert!(waiting.jobs.is_empty());
    // Finished: out of the queue, with its job and the reason it failed.
    let failed_run = &page.items[1];
    assert!(failed_run.queued.is_none());
    assert_eq!(failed_run.jobs.len(), 1);
    assert_eq!(failed_run.jobs[0].status, "FAILED");
    assert_eq!(
        failed_run.jobs[0].error_text.as_deref(),
        Some("delivery failed: chat not found")
    );
    assert_eq!(page.items[2].jobs[0].status, "COMPLETED");

    let one = store.get_run(&ids[1]).await.expect("get").expect("found");
    assert_eq!(one, page.items[1]);
    assert_eq!(store.get_run("no-such-item").await.expect("get"), None);
}

async fn filters_narrow_the_runs(db: TestDb) {
    let store = db.open().await;
    let ids = accept(
        &store,
        vec![
            accepted(0, "int-a", "builtin.echo"),
            accepted(1, "int-a", "builtin.echo"),
            accepted(2, "int-b", "acme.chat"),
            accepted(3, "int-b", "acme.chat"),
        ],
    )
    .await;
    run_once(&store, "COMPLETED", None).await;
    run_once(&store, "FAILED", Some("model call failed")).await;
    // Item 2 claimed and not finished: running. Item 3 waits: queued.
    store.claim_runs(claim("srv")).await.expect("claim");

    let by = |f: RunFilter| {
        let store = store.clone();
        async move { runs(&store, f).await }
    };
    let f = |integration: Option<&str>, plugin: Option<&str>, status: Option<&str>| RunFilter {
        integration_id: integration.map(str::to_owned),
        plugin_id: plugin.map(str::to_owned),
        status: status.map(str::to_owned),
        ..Default::default()
    };
    assert_eq!(
        by(f(Some("int-a"), None, None)).await,
        [ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        by(f(None, Some("acme.chat"), None)).await,
        [ids[3].clone(), ids[2].clone()]
    );
    assert_eq!(
        by(f(None, None, Some("completed"))).await,
        [ids[0].as_str()]
    );
    assert_eq!(by(f(None, None, Some("FAILED"))).await, [ids[1].as_str()]);
    assert_eq!(by(f(None, None, Some("running"))).await, [ids[2].as_str()]);
    assert_eq!(by(f(None, None, Some("queued"))).await, [ids[3].as_str()]);
    assert!(by(f(Some("int-a"), None, Some("queued"))).await.is_empty());
    assert!(by(f(None, Some("nobody"), None)).await.is_empty());

    // Time: since is inclusive, until exclusive.
    let created = |i: usize| {
        let store = store.clone();
        let id = ids[i].clone();
        async move {
            store
                .get_work_item(&id)
                .await
                .expect("get")
                .expect("item")
                .created_at
        }
    };
    let (t1, t2) = (created(1).await, created(2).await);
    let window = RunFilter {
        since: Some(t1),
        until: Some(t2),
        ..Default::default()
    };
    assert_eq!(by(window).await, [ids[1].as_str()]);
}

async fn runs_are_keyset_paged_and_a_bad_cursor_is_refused(db: TestDb) {
    let store = db.open().await;
    let ids = accept(
        &store,
        (0..5)
            .map(|n| accepted(n, "int-a", "builtin.echo"))
            .collect(),
    )
    .await;
    let mut seen = Vec::new();
    let mut request = PageRequest::first(2);
    loop {
        let page = store
            .list_runs(&RunFilter::default(), request.clone())
            .await
            .expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|r| r.work_item.id));
        match page.next_cursor {
            Some(c) => request = PageRequest::after(2, c),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.into_iter().rev().collect();
    assert_eq!(seen, newest_first);
    let bad = store
        .list_runs(&RunFilter::default(), PageRequest::after(2, "not a cursor"))
        .await;
    assert!(matches!(bad, Err(StoreError::BadCursor(_))), "{bad:?}");
}

async fn receipts_can_be_read_for_one_work_item(db: TestDb) {
    let store = db.open().await;
    let ids = accept(
        &store,
        (0..2)
            .map(|n| accepted(n, "int-a", "builtin.echo"))
            .collect(),
    )
    .await;
    let filter = EventFilter {
        work_item_id: Some(ids[1].clone()),
        ..Default::default()
    };
    let page = store
        .list_events(&filter, PageRequest::first(10))
        .await
        .expect("events");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].work_item_id.as_deref(), Some(ids[1].as_str()));
    assert_eq!(page.items[0].kind, "webhook_ingress");
    // With a cursor too (the parameters after the filter's move along).
    let filter = EventFilter {
        work_item_id: Some(ids[0].clone()),
        kind: Some("webhook_ingress".into()),
        ..Default::default()
    };
    let first = store
        .list_events(&EventFilter::default(), PageRequest::first(1))
        .await
        .expect("events");
    let after = store
        .list_events(
            &filter,
            PageRequest::after(10, first.next_cursor.expect("more")),
        )
        .await
        .expect("events");
    assert_eq!(after.items.len(), 1);
    assert_eq!(
        after.items[0].work_item_id.as_deref(),
        Some(ids[0].as_str())
    );
}
