//! The run queue in the database, on SQLite and on Postgres: accepted items carry their run and
//! receipt in one transaction; claims respect sessions, leases and availability; concurrent claimers
//! on Postgres get disjoint runs; finishing a run hands its session to the next run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::collections::BTreeSet;
use std::sync::Arc;

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::store::{
    AcceptedItem, ClaimedRun, EventFilter, JobUpdate, NewJob, NewRun, NewWorkItem, PageRequest,
    RunClaim, Store, StoredReceipt,
};
use testdb::TestDb;

on_both_backends!(
    an_item_is_stored_with_its_run_and_receipt_or_not_at_all,
    one_run_per_session_at_a_time_in_order,
    leases_expire_and_are_renewed,
    requeued_runs_wait_and_released_leases_are_claimed_again,
    finishing_the_last_job_removes_the_run_in_the_same_transaction,
    concurrent_claimers_never_share_a_run,
);

fn accepted(n: usize, session: &str, key: &str) -> AcceptedItem {
    let id = nitejar_core::store::new_id();
    let mut receipt = Receipt::new(
        "builtin.echo",
        Some(Arc::from("0.1.0")),
        ReceiptKind::WebhookIngress,
        ReceiptStatus::Ok,
    );
    receipt.detail = Some(serde_json::json!({ "reason": "accepted", "n": n }));
    AcceptedItem {
        keys: vec![key.to_owned()],
        item: NewWorkItem {
            id: Some(id),
            integration_id: Some("int-1".into()),
            session_key: session.into(),
            source: "test".into(),
            source_ref: format!("{n}"),
            title: format!("item {n}"),
            payload: Some(format!("{{\"text\": \"item {n}\"}}")),
            ..Default::default()
        },
        run: Some(NewRun {
            response_context: Some(format!("{{\"n\": {n}}}")),
        }),
        receipt: Some(StoredReceipt::new(receipt)),
    }
}

fn claim(owner: &str, limit: usize, now: i64) -> RunClaim<'_> {
    RunClaim {
        owner,
        limit,
        now,
        lease_until: now + 30_000,
    }
}

fn titles(runs: &[ClaimedRun]) -> Vec<String> {
    runs.iter().map(|r| r.work_item.title.clone()).collect()
}

async fn ingress_receipts(store: &Arc<dyn Store>) -> usize {
    let filter = EventFilter {
        kind: Some("webhook_ingress".into()),
        ..Default::default()
    };
    store
        .list_events(&filter, PageRequest::first(500))
        .await
        .expect("events")
        .items
        .len()
}

async fn an_item_is_stored_with_its_run_and_receipt_or_not_at_all(db: TestDb) {
    let store = db.open().await;
    let first = [accepted(0, "s", "k0"), accepted(1, "s", "k1")];
    let rows = store.accept_work_items(&first).await.expect("accept");
    assert!(rows.iter().all(Option::is_some));
    // A duplicate key: nothing of that item is stored, neither its run nor its receipt.
    let again = [accepted(2, "s", "k0"), accepted(3, "t", "k3")];
    let rows = store.accept_work_items(&again).await.expect("accept");
    assert!(rows[0].is_none() && rows[1].is_some());
    assert_eq!(store.count_runs().await.expect("count"), 3);
    assert_eq!(ingress_receipts(&store).await, 3);
    let filter = EventFilter {
        kind: Some("webhook_ingress".into()),
        ..Default::default()
    };
    let events = store
        .list_events(&filter, PageRequest::first(10))
        .await
        .expect("events");
    let items: BTreeSet<Option<String>> = events
        .items
        .iter()
        .map(|e| e.work_item_id.clone())
        .collect();
    assert!(
        items.contains(&rows[1].as_ref().map(|r| r.id.clone())),
        "the receipt names the stored item"
    );
    // The response context comes back with the claim.
    let claimed = store
        .claim_runs(claim("a", 10, now()))
        .await
        .expect("claim");
    assert_eq!(claimed[0].response_context.as_deref(), Some("{\"n\": 0}"));
}

fn now() -> i64 {
    nitejar_core::receipts::now_ms()
}

async fn one_run_per_session_at_a_time_in_order(db: TestDb) {
    let store = db.open().await;
    let items: Vec<AcceptedItem> = (0..6)
        .map(|n| accepted(n, if n % 2 == 0 { "even" } else { "odd" }, &format!("k{n}")))
        .collect();
    store.accept_work_items(&items).await.expect("accept");
    // The oldest run of each session only, oldest first.
    let claimed = store
        .claim_runs(claim("a", 10, now()))
        .await
        .expect("claim");
    assert_eq!(titles(&claimed), ["item 0", "item 1"]);
    assert!(claimed.iter().all(|r| r.attempts == 1));
    assert!(store
        .claim_runs(claim("b", 10, now()))
        .await
        .expect("claim")
        .is_empty());
    // Done with item 0: item 2 is next for its session, item 3 still waits for item 1.
    assert!(store.finish_run(claimed[0].seq, "a").await.expect("finish"));
    let next = store
        .claim_runs(claim("b", 10, now()))
        .await
        .expect("claim");
    assert_eq!(titles(&next), ["item 2"]);
    // Another owner cannot finish a run it does not hold.
    assert!(!store.finish_run(claimed[1].seq, "b").await.expect("finish"));
    assert!(store.finish_run(claimed[1].seq, "a").await.expect("finish"));
    assert_eq!(
        titles(
            &store
                .claim_runs(claim("b", 10, now()))
                .await
                .expect("claim")
        ),
        ["item 3"]
    );
    // A long backlog of one session does not hide another session's runs.
    let more: Vec<AcceptedItem> = (10..300)
        .map(|n| accepted(n, "busy", &format!("k{n}")))
        .chain([accepted(999, "quiet", "k999")])
        .collect();
    store.accept_work_items(&more).await.expect("accept");
    let claimed = store
        .claim_runs(claim("c", 10, now()))
        .await
        .expect("claim");
    assert_eq!(titles(&claimed), ["item 10", "item 999"]);
}

async fn leases_expire_and_are_renewed(db: TestDb) {
    let store = db.open().await;
    store
        .accept_work_items(&[accepted(0, "s", "k0"), accepted(1, "t", "k1")])
        .await
        .expect("accept");
    let t0 = now();
    let claimed = store.claim_runs(claim("a", 10, t0)).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    // Renew one of the two; the other's lease runs out.
    let renewed = store
        .renew_run_leases("a", &[claimed[0].seq], t0 + 120_000)
        .await
        .expect("renew");
    assert_eq!(renewed, 1);
    assert_eq!(
        store
            .renew_run_leases("b", &[claimed[1].seq], t0 + 120_000)
            .await
            .expect("renew"),
        0,
        "only the owner renews"
    );
    let later = t0 + 60_000;
    let reclaimed = store
        .claim_runs(claim("b", 10, later))
        .await
        .expect("claim");
    assert_eq!(titles(&reclaimed), ["item 1"]);
    assert_eq!(reclaimed[0].attempts, 2);
    // The old owner lost it.
    assert!(!store.finish_run(claimed[1].seq, "a").await.expect("finish"));
}

async fn requeued_runs_wait_and_released_leases_are_claimed_again(db: TestDb) {
    let store = db.open().await;
    store
        .accept_work_items(&[accepted(0, "s", "k0"), accepted(1, "s", "k1")])
        .await
        .expect("accept");
    let t0 = now();
    let claimed = store.claim_runs(claim("a", 10, t0)).await.expect("claim");
    assert_eq!(titles(&claimed), ["item 0"]);
    assert!(store
        .requeue_run(claimed[0].seq, "a", t0 + 5_000, "plugin disabled")
        .await
        .expect("requeue"));
    // Not before its time, and its session waits with it.
    assert!(store
        .claim_runs(claim("a", 10, t0 + 1_000))
        .await
        .expect("claim")
        .is_empty());
    let retried = store
        .claim_runs(claim("a", 10, t0 + 5_000))
        .await
        .expect("claim");
    assert_eq!(titles(&retried), ["item 0"]);
    assert_eq!(retried[0].attempts, 2);
    // Released (a shutdown, or a server taking its runs back at start): claimable at once.
    assert_eq!(
        store.release_run_leases(Some("a")).await.expect("release"),
        1
    );
    let again = store
        .claim_runs(claim("b", 10, t0 + 5_000))
        .await
        .expect("claim");
    assert_eq!(titles(&again), ["item 0"]);
    assert_eq!(
        store.release_run_leases(None).await.expect("release all"),
        1
    );
}

async fn finishing_the_last_job_removes_the_run_in_the_same_transaction(db: TestDb) {
    let store = db.open().await;
    let agent = store
        .create_agent(nitejar_core::store::NewAgent {
            id: None,
            name: "agent".into(),
            handle: None,
            config: None,
        })
        .await
        .expect("agent");
    store
        .accept_work_items(&[accepted(0, "s", "k0"), accepted(1, "s", "k1")])
        .await
        .expect("accept");
    let claimed = store.claim_runs(claim("a", 1, now())).await.expect("claim");
    let job = store
        .create_job(NewJob {
            work_item_id: claimed[0].work_item.id.clone(),
            agent_id: agent.id.clone(),
            status: Some("RUNNING".into()),
            ..Default::default()
        })
        .await
        .expect("job");
    store
        .finish_job_and_run(
            &job.id,
            JobUpdate {
                status: Some("COMPLETED".into()),
                ..Default::default()
            },
            &[],
            Some((claimed[0].seq, "a")),
        )
        .await
        .expect("finish");
    assert_eq!(store.count_runs().await.expect("count"), 1);
    let jobs = store
        .jobs_of_work_item(&claimed[0].work_item.id)
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, "COMPLETED");
    // And the session's next run is claimable.
    let next = store.claim_runs(claim("a", 1, now())).await.expect("claim");
    assert_eq!(titles(&next), ["item 1"]);
    assert_eq!(store.repair_run_heads().await.expect("repair"), 0);
}

async fn concurrent_claimers_never_share_a_run(db: TestDb) {
    let store = db.open().await;
    let items: Vec<AcceptedItem> = (0..400)
        .map(|n| accepted(n, &format!("s{n}"), &format!("k{n}")))
        .collect();
    store.accept_work_items(&items).await.expect("accept");
    let mut tasks = Vec::new();
    for owner in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("server-{owner}");
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_runs(claim(&owner, 7, now()))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                for run in got {
                    assert!(store.finish_run(run.seq, &owner).await.expect("finish"));
                    mine.push(run.work_item.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer"));
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 400, "every run claimed");
    assert_eq!(distinct.len(), 400, "by exactly one claimer");
    assert_eq!(store.count_runs().await.expect("count"), 0);
}
