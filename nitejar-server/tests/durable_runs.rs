//! Accepted means answered, against real server processes on SQLite and on Postgres: deliveries are
//! sent under load through the echo channel to an agent whose model takes a while, the server is
//! killed with SIGKILL (or stopped with a backlog past its drain time, or one of two servers sharing a
//! Postgres database is killed), and afterwards every delivery that was answered `accepted` has its
//! work item, its ingress receipt and exactly one completed job, and no job is left `RUNNING`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;
#[path = "../../nitejar-core/tests/testdb/mod.rs"]
mod testdb;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_core::store::{EventFilter, PageRequest, Store};
use reqwest::Method;
use serde_json::json;
use support::admin::*;
use support::tmpfs::TmpfsNamespace;
use support::*;
use testdb::TestDb;

/// An OpenAI-compatible model that answers "ok" after `delay`.
fn slow_model(delay: Duration) -> LocalHttp {
    LocalHttp::start(move |_| {
        std::thread::sleep(delay);
        json_reply(
            200,
            &json!({"choices": [{"message": {"role": "assistant", "content": "ok"}}],
                    "usage": {"total_tokens": 1}}),
        )
    })
}

fn model_env(model: &LocalHttp) -> Vec<(&'static str, String)> {
    vec![
        ("NITEJAR_MODEL_BASE_URL", model.url("/v1")),
        ("NITEJAR_MODEL", "slow".to_owned()),
    ]
}

/// The server's environment for `db`, plus `extra`.
fn env_for(db: &TestDb, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("DATABASE_URL", db.url().to_owned())];
    env.extend_from_slice(extra);
    env
}

async fn echo_integration(server: &Server) -> String {
    let created = api(
        server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "echo", "name": "load"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Sends deliveries `from..from + count` (`concurrency` at a time, sessions `n % sessions`) until
/// they are all sent or the server stops answering; returns the work item id of every delivery
/// answered `accepted`. `stop_after`: kill switch once that many were accepted (`on_accepted` runs).
async fn fire(
    port: u16,
    integration: &str,
    from: usize,
    count: usize,
    concurrency: usize,
    sessions: usize,
    accepted_so_far: Arc<AtomicUsize>,
) -> Vec<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(from));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, accepted_so_far) =
            (client.clone(), next.clone(), accepted_so_far.clone());
        let url = format!("http://127.0.0.1:{port}/api/webhooks/plugins/echo/{integration}");
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= from + count {
                    return accepted;
                }
                let body = json!({"text": format!("message {n}"), "id": format!("d{n}"),
                                  "session": format!("s{}", n % sessions)});
                let Ok(resp) = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                else {
                    // The server is gone: what it did not answer, it did not accept.
                    return accepted;
                };
                let Some(answer) = resp
                    .text()
                    .await
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                else {
                    return accepted;
                };
                if answer["code"] == "accepted" {
                    accepted.push(answer["workItemId"].as_str().unwrap_or_default().to_owned());
                    accepted_so_far.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

/// Every receipt of `kind`, with its work item and status.
async fn receipts(store: &Arc<dyn Store>, kind: &str) -> Vec<(Option<String>, String, String)> {
    let filter = EventFilter {
        kind: Some(kind.into()),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut page = PageRequest::first(500);
    loop {
        let got = store
            .list_events(&filter, page.clone())
            .await
            .expect("events");
        for e in &got.items {
            let reason = e
                .detail_json
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d["reason"].as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push((e.work_item_id.clone(), e.status.clone(), reason));
        }
        match got.next_cursor {
            Some(c) => page = PageRequest::after(500, c),
            None => return out,
        }
    }
}

/// Waits (up to `secs`) until the queue is empty and every accepted item has a completed job, then
/// checks that every accepted delivery has its work item, its ingress receipt and exactly one
/// completed job, that no job is left `RUNNING`, and that every abandoned job has its receipt.
async fn assert_all_answered_once(store: &Arc<dyn Store>, accepted: &[String], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let queued = store.count_runs().await.expect("count runs");
        if queued == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{queued} runs still queued after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let distinct: BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(distinct.len(), accepted.len(), "work item ids are unique");
    let mut abandoned = 0;
    for id in accepted {
        assert!(
            store.get_work_item(id).await.expect("read").is_some(),
            "accepted work item {id} is stored"
        );
        let jobs = store.jobs_of_work_item(id).await.expect("jobs");
        let statuses: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
        let completed = statuses.iter().filter(|s| **s == "COMPLETED").count();
        assert_eq!(completed, 1, "work item {id}: jobs {statuses:?}");
        assert!(
            !statuses.contains(&"RUNNING"),
            "work item {id}: jobs {statuses:?}"
        );
        abandoned += statuses.iter().filter(|s| **s == "ABANDONED").count();
    }
    // The receipts are written after the jobs; give the writer a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ingress = receipts(store, "webhook_ingress").await;
        let with_receipt: BTreeSet<String> = ingress
            .iter()
            .filter(|(_, status, reason)| status == "ok" && reason == "accepted")
            .filter_map(|(w, _, _)| w.clone())
            .collect();
        let runs = receipts(store, "run").await;
        let abandoned_receipts = runs.iter().filter(|(_, _, r)| r == "abandoned").count();
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|id| !with_receipt.contains(*id))
            .collect();
        if missing.is_empty() && abandoned_receipts >= abandoned {
            assert_eq!(
                abandoned_receipts, abandoned,
                "one receipt per abandoned job"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "accepted without an ingress receipt: {} (e.g. {:?}); abandoned jobs {abandoned}, \
             their receipts {abandoned_receipts}",
            missing.len(),
            missing.first()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_backends!(
    kill_9_under_load_loses_no_accepted_delivery,
    a_shutdown_with_a_backlog_leaves_it_queued_for_the_next_start,
    nul_characters_are_stored_the_same_on_both_backends_and_fail_nothing,
);

async fn kill_9_under_load_loses_no_accepted_delivery(db: TestDb) {
    let data = DataDir::new();
    let model = slow_model(Duration::from_millis(30));
    let env = env_for(&db, &model_env(&model));
    let server = start_admin(&data, &env);
    let integration = echo_integration(&server).await;
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let port = server.port;
    let load = tokio::spawn({
        let (integration, accepted_count) = (integration.clone(), accepted_count.clone());
        async move { fire(port, &integration, 0, 5000, 24, 40, accepted_count).await }
    });
    // Kill it in the middle of the load, with runs in progress and a backlog queued.
    while accepted_count.load(Ordering::SeqCst) < 600 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = server.kill();
    let accepted = load.await.expect("load");
    assert!(accepted.len() >= 600, "{} accepted", accepted.len());
    let store = db.open().await;
    let queued = store.count_runs().await.expect("count");
    assert!(
        queued > 0,
        "the kill left runs queued (else this test shows nothing):\n{log}"
    );

    let server = start_admin(&data, &env);
    assert_all_answered_once(&store, &accepted, 120).await;
    drop(server);
}

async fn a_shutdown_with_a_backlog_leaves_it_queued_for_the_next_start(db: TestDb) {
    let data = DataDir::new();
    let model = slow_model(Duration::from_millis(200));
    let mut env = env_for(&db, &model_env(&model));
    env.push(("NITEJAR_RUN_CONCURRENCY", "2".to_owned()));
    // Runs in progress get half a second when the server stops; the backlog takes many seconds.
    env.push(("NITEJAR_RUN_DRAIN_MS", "500".to_owned()));
    let server = start_admin(&data, &env);
    let integration = echo_integration(&server).await;
    let accepted = fire(server.port, &integration, 0, 120, 16, 60, Arc::default()).await;
    assert_eq!(accepted.len(), 120);
    let log = server.stop();
    assert!(
        log.contains("runs left in the queue for the next start"),
        "{log}"
    );
    let store = db.open().await;
    let queued = store.count_runs().await.expect("count");
    assert!(queued >= 60, "{queued} runs queued after the shutdown");

    let fast = slow_model(Duration::from_millis(1));
    let server = start_admin(&data, &env_for(&db, &model_env(&fast)));
    assert_all_answered_once(&store, &accepted, 60).await;
    drop(server);
}

async fn nul_characters_are_stored_the_same_on_both_backends_and_fail_nothing(db: TestDb) {
    let data = DataDir::new();
    let server = start_admin(&data, &env_for(&db, &[]));
    let integration = echo_integration(&server).await;
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api/webhooks/plugins/echo/{integration}"));
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = HashMap::new();
            for n in (worker..2000).step_by(16) {
                // Every 50th message holds U+0000 in its text (and so in its title).
                let text = if n % 50 == 0 {
                    format!("nul \u{0} in message {n}")
                } else {
                    format!("message {n}")
                };
                let body =
                    json!({"text": text, "id": format!("n{n}"), "session": format!("s{}", n % 7)});
                let answer: serde_json::Value = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("send")
                    .text()
                    .await
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .expect("json");
                answers.insert(n, answer);
            }
            answers
        }));
    }
    let mut answers = HashMap::new();
    for t in tasks {
        answers.extend(t.await.expect("task"));
    }
    let refused: Vec<_> = answers
        .iter()
        .filter(|(_, a)| a["code"] != "accepted")
        .collect();
    assert!(
        refused.is_empty(),
        "{} refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    let store = db.open().await;
    let item = answers[&50]["workItemId"].as_str().expect("id").to_owned();
    let stored = store
        .get_work_item(&item)
        .await
        .expect("read")
        .expect("item");
    assert_eq!(
        stored.title, "nul \u{FFFD} in message 50",
        "U+0000 is stored as U+FFFD in text"
    );
    let payload: serde_json::Value =
        serde_json::from_str(stored.payload.as_deref().unwrap_or("")).expect("payload");
    assert_eq!(
        payload["text"], "nul \u{0} in message 50",
        "the payload keeps it, escaped"
    );
    let accepted: Vec<String> = answers
        .values()
        .map(|a| a["workItemId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_all_answered_once(&store, &accepted, 120).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_load_has_its_runs_finished_by_the_other_on_postgres() {
    let db = TestDb::postgres().await;
    let model = slow_model(Duration::from_millis(30));
    let mut env = env_for(&db, &model_env(&model));
    // A dead server's runs are claimed by the other after its leases expire.
    env.push(("NITEJAR_RUN_LEASE_MS", "2000".to_owned()));
    let (data_a, data_b) = (DataDir::new(), DataDir::new());
    let a = start_admin(&data_a, &env);
    let integration = echo_integration(&a).await;
    let b = start_admin(&data_b, &env);
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let load_a = tokio::spawn({
        let (integration, c) = (integration.clone(), accepted_count.clone());
        let port = a.port;
        async move { fire(port, &integration, 0, 3000, 12, 30, c).await }
    });
    let load_b = tokio::spawn({
        let (integration, c) = (integration.clone(), accepted_count.clone());
        let port = b.port;
        async move { fire(port, &integration, 100_000, 300, 4, 30, c).await }
    });
    while accepted_count.load(Ordering::SeqCst) < 400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    let mut accepted = load_a.await.expect("load a");
    accepted.extend(load_b.await.expect("load b"));
    let store = db.open().await;
    assert!(
        store.count_runs().await.expect("count") > 0,
        "the kill left runs queued"
    );
    // Only server B is left to finish everything, A's runs included.
    assert_all_answered_once(&store, &accepted, 120).await;
    drop(b);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_json_error_and_a_receipt() {
    let data = DataDir::new();
    let server = start_admin(&data, &[("NITEJAR_WEBHOOK_MAX_BYTES", "1024".to_owned())]);
    let integration = echo_integration(&server).await;
    let big = json!({"text": "x".repeat(2000)}).to_string();
    let answer = read(
        client()
            .post(server.url(&format!("/api/webhooks/plugins/echo/{integration}")))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["code"], "body_too_large");
    assert!(answer.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("1024"));
    let store = data.store().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = receipts(&store, "webhook_ingress").await;
        if got
            .iter()
            .any(|(_, status, reason)| reason == "body_too_large" && status == "blocked")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an ingress receipt for the refused body: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the filesystem of `ns` under `dir`; returns the filler's path.
fn fill_disk(ns: &TmpfsNamespace, dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = ns.path(&dir.join("filler"));
    let mut file = std::fs::File::create(&path).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    path
}

/// Waits until the server's run queue is empty (its `/metrics`).
async fn wait_for_empty_queue(server: &Server, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let metrics = call(server, Method::GET, "/metrics", Some(ADMIN_TOKEN), None)
            .await
            .text;
        if metrics.contains("\nnitejar_runs_queued 0\n")
            && metrics.contains("\nnitejar_runs_in_progress 0\n")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "runs still queued after {secs} s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_fast_and_heals_without_a_restart() {
    let data = DataDir::new();
    let ns = TmpfsNamespace::new(&data, 24);
    let server = ns.start_server(&data, &[("NITEJAR_ADMIN_TOKEN", ADMIN_TOKEN.to_owned())]);
    let integration = echo_integration(&server).await;
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api/webhooks/plugins/echo/{integration}"));
    let deliver = |n: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let started = Instant::now();
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .body(json!({"text": format!("m{n}"), "id": format!("f{n}")}).to_string())
                .send()
                .await
                .expect("send");
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp
                .text()
                .await
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            (status, body, retry_after, started.elapsed())
        }
    };
    let mut accepted = Vec::new();
    for n in 0..20 {
        let (status, body, ..) = deliver(n).await;
        assert_eq!(status, 200, "{body}");
        accepted.push(body["workItemId"].as_str().unwrap_or_default().to_owned());
    }

    // The disk fills up: deliveries are refused with 503 and Retry-After, at once, never hanging.
    let filler = fill_disk(&ns, &data.path);
    let mut refused = 0;
    let mut ready_during = None;
    for n in 20..120 {
        let (status, body, retry_after, took) = deliver(n).await;
        assert!(took < Duration::from_secs(2), "delivery {n} took {took:?}");
        match status {
            200 => accepted.push(body["workItemId"].as_str().unwrap_or_default().to_owned()),
            503 => {
                refused += 1;
                assert_eq!(body["code"], "store_unavailable", "{body}");
                assert!(retry_after.is_some(), "503 with Retry-After");
            }
            other => panic!("delivery {n} during the fault: {other} {body}"),
        }
        // Readiness follows the last write: a write that found a free page in between makes it
        // ready for a moment. What must hold is that it says not ready while writes fail.
        if n >= 40 && ready_during.is_none() {
            let ready = call(&server, Method::GET, "/readyz", None, None).await;
            if ready.status == 503 {
                ready_during = Some(ready);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused >= 50,
        "only {refused} deliveries were refused: the fault did not take"
    );
    let ready_during = ready_during.expect("/readyz never answered 503 while the disk was full");
    assert_eq!(ready_during.status, 503, "{}", ready_during.text);
    assert_eq!(ready_during.json()["checks"]["writes"]["ok"], false);

    // Space again: within seconds, without a restart, deliveries are accepted and /readyz is 200.
    std::fs::remove_file(&filler).expect("remove the filler");
    let healed = Instant::now();
    let mut n = 1000;
    loop {
        let (status, body, ..) = deliver(n).await;
        n += 1;
        if status == 200 {
            accepted.push(body["workItemId"].as_str().unwrap_or_default().to_owned());
            break;
        }
        assert_eq!(status, 503, "{body}");
        refused += 1;
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "still refused {:?} after the fault cleared: {body}",
            healed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for m in n..n + 20 {
        let (status, body, ..) = deliver(m).await;
        assert_eq!(status, 200, "{body}");
        accepted.push(body["workItemId"].as_str().unwrap_or_default().to_owned());
    }
    let ready = call(&server, Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);

    // Nothing accepted is lost, and neither is the receipt of any refusal made during the fault.
    wait_for_empty_queue(&server, 60).await;
    let log = server.stop();
    assert!(
        log.contains("receipts written:") && log.contains("lost: 0"),
        "{log}"
    );
    let copy = DataDir::new();
    ns.copy_out(&data.path, "nitejar.db", &copy.path);
    let store = copy.store().await;
    assert_all_answered_once(&store, &accepted, 10).await;
    let got = receipts(&store, "webhook_ingress").await;
    let unavailable = got
        .iter()
        .filter(|(_, _, r)| r == "store_unavailable")
        .count();
    assert_eq!(
        unavailable, refused,
        "a receipt of every refusal made during the fault"
    );
}
