//! The change feed on both backends: a write by anyone — another store on the same database (another
//! server), a hand-written statement on a connection of its own (the CLI, an operator's `psql`) —
//! moves its topic's counter and only that one, and a started feed sees it without a timer: by
//! notification on Postgres, by `PRAGMA data_version` on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use std::time::{Duration, Instant};

use nitejar_core::changes::ChangeFeed;
use nitejar_core::store::{NewAgent, NewIntegration, Topic, TrustEntryRow};
use testdb::TestDb;

/// What no test here may wait on: the safety net of a feed started by the tests is an hour.
const NO_SAFETY_NET: Duration = Duration::from_secs(3600);

async fn every_write_moves_its_own_topic(db: TestDb) {
    let here = db.open().await;
    let elsewhere = db.open().await;
    let feed = ChangeFeed::open(here.clone()).await.unwrap();
    feed.start(NO_SAFETY_NET);
    // The watcher is listening once it has signalled its start; a first read makes sure.
    feed.sync().await.unwrap();

    let writes: Vec<(Topic, &str)> = vec![
        (Topic::Integrations, "integration"),
        (Topic::Agents, "agent"),
        (Topic::Trust, "trust entry"),
        (Topic::Skills, "skill"),
        (Topic::Plugins, "plugin"),
    ];
    for (topic, what) in writes {
        let before = feed.current();
        let started = Instant::now();
        match topic {
            Topic::Integrations => {
                elsewhere
                    .create_integration(
                        NewIntegration::new("telegram", "bot", Default::default()),
                        &[],
                    )
                    .await
                    .unwrap();
            }
            Topic::Agents => {
                elsewhere
                    .create_agent(NewAgent {
                        name: "Support".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            Topic::Trust => {
                elsewhere
                    .add_trust_entry(&TrustEntryRow {
                        kind: "allow".into(),
                        ident: "acme.tool".into(),
                        value: "acme.tool".into(),
                        added_by: "test".into(),
                        created_at: 0,
                    })
                    .await
                    .unwrap();
            }
            // Hand-written statements on a connection of their own.
            Topic::Skills => {
                db.exec(
                    "INSERT INTO skills (id, name, slug, source_kind, content, created_at, \
                     updated_at) VALUES ('s1', 'notes', 'notes', 'admin', 'x', 0, 0)",
                )
                .await;
            }
            Topic::Plugins => {
                db.exec(
                    "INSERT INTO plugins (id, name, source_kind, manifest_json, installed_at, \
                     updated_at) VALUES ('acme.tool', 'Tool', 'npm', '{}', 0, 0)",
                )
                .await;
            }
        }
        assert!(
            feed.wait_past(topic, before.get(topic), Duration::from_secs(5))
                .await,
            "a new {what} moved the {} counter",
            topic.as_str()
        );
        let seen = started.elapsed();
        let after = feed.current();
        assert_eq!(
            after.moved_since(&before),
            vec![topic],
            "a new {what} moved its topic and no other"
        );
        // SQLite is asked every 50 ms; a notification takes a round trip.
        assert!(
            seen < Duration::from_millis(500),
            "a new {what} was seen after {seen:?}"
        );
        eprintln!("{what}: seen after {seen:?}");
    }
    feed.stop();
}

#[tokio::test]
async fn sqlite_every_write_moves_its_own_topic() {
    every_write_moves_its_own_topic(TestDb::sqlite()).await;
}

#[tokio::test]
async fn postgres_every_write_moves_its_own_topic() {
    every_write_moves_its_own_topic(TestDb::postgres().await).await;
}

#[tokio::test]
async fn postgres_a_run_queued_by_another_server_is_told() {
    let db = TestDb::postgres().await;
    let here = db.open().await;
    let feed = ChangeFeed::open(here.clone()).await.unwrap();
    feed.start(NO_SAFETY_NET);
    let queued = feed.runs_queued();
    // Wait for the watcher's first signal (it wakes the queues when it starts listening).
    tokio::time::timeout(Duration::from_secs(5), queued.notified())
        .await
        .expect("the watcher started listening");
    let told = queued.notified();
    tokio::pin!(told);
    told.as_mut().enable();
    db.exec(
        "INSERT INTO work_items (id, session_key, source, source_ref, status, title, created_at, \
         updated_at) VALUES ('w1', 's', 'test', 'r', 'NEW', 't', 0, 0); \
         INSERT INTO runs (work_item_id, session_key, available_at, created_at, updated_at) \
         VALUES ('w1', 's', 0, 0, 0)",
    )
    .await;
    tokio::time::timeout(Duration::from_secs(5), told)
        .await
        .expect("a run queued elsewhere wakes this server's queue");
    feed.stop();
}

#[tokio::test]
async fn a_write_that_fails_moves_nothing() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let feed = ChangeFeed::open(store.clone()).await.unwrap();
    let before = feed.sync().await.unwrap();
    let entry = TrustEntryRow {
        kind: "allow".into(),
        ident: "acme.tool".into(),
        value: "acme.tool".into(),
        added_by: "test".into(),
        created_at: 0,
    };
    store.add_trust_entry(&entry).await.unwrap();
    let once = feed.sync().await.unwrap();
    assert_eq!(once.moved_since(&before), vec![Topic::Trust]);
    assert!(store.add_trust_entry(&entry).await.is_err(), "a duplicate");
    assert_eq!(
        feed.sync().await.unwrap(),
        once,
        "rolled back with the write"
    );
}

#[tokio::test]
async fn postgres_a_lost_listening_connection_is_taken_up_again_and_nothing_is_missed() {
    let db = TestDb::postgres().await;
    let here = db.open().await;
    let feed = ChangeFeed::open(here.clone()).await.unwrap();
    feed.start(NO_SAFETY_NET);
    let queued = feed.runs_queued();
    tokio::time::timeout(Duration::from_secs(5), queued.notified())
        .await
        .expect("the watcher started listening");
    assert!(feed.status().watching);

    // The database ends the listening connection (a restart, a failover, an operator), and a
    // write lands while nobody listens.
    let told = queued.notified();
    tokio::pin!(told);
    told.as_mut().enable();
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .await;
    let before = feed.current();
    db.exec(
        "INSERT INTO agents (id, name, created_at, updated_at) \
         VALUES ('a1', 'Support', 0, 0)",
    )
    .await;
    // Listening again, the feed reads the counters at once: the write is seen without any
    // notification of it, and without waiting for the safety net.
    assert!(
        feed.wait_past(
            Topic::Agents,
            before.get(Topic::Agents),
            Duration::from_secs(10)
        )
        .await,
        "the write made while nobody listened was seen"
    );
    tokio::time::timeout(Duration::from_secs(10), told)
        .await
        .expect("the run queues were woken to look for runs queued meanwhile");
    assert!(
        feed.status().watching,
        "listening again: {:?}",
        feed.status()
    );
    feed.stop();
    assert!(!feed.status().watching && !feed.status().started);
}

#[tokio::test]
async fn without_its_counters_the_feed_says_so_and_no_cache_serves() {
    use nitejar_core::changes::RevCache;
    let db = TestDb::sqlite();
    let store = db.open().await;
    let feed = ChangeFeed::open(store.clone()).await.unwrap();
    let cache = RevCache::new(Some(feed.clone()), Topic::Agents, 10);
    cache.put("a", cache.tag(), 1);
    assert_eq!(cache.get("a"), Some(1));

    // The row is gone (deleted by hand, a restore without it): writes no longer move anything.
    db.exec("DELETE FROM changes").await;
    let err = feed.sync().await.unwrap_err().to_string();
    assert!(err.contains("INSERT INTO changes (id) VALUES (1)"), "{err}");
    assert!(!feed.is_exact());
    assert_eq!(feed.status().last_error.as_deref(), Some(err.as_str()));
    assert_eq!(
        cache.get("a"),
        None,
        "nothing is served while the feed cannot tell"
    );
    assert_eq!(cache.tag(), None, "nor kept");

    // Restored as the error says: exact again.
    db.exec("INSERT INTO changes (id) VALUES (1)").await;
    feed.sync().await.unwrap();
    assert!(feed.is_exact());
    cache.put("b", cache.tag(), 2);
    assert_eq!(cache.get("b"), Some(2));
}
