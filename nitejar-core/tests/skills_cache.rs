//! The index runs share (`Skills::following`): reused while nothing it was built from changed (the
//! skills in the database, by the change feed; the files under the roots; the registry), rebuilt as
//! soon as one did; listing never uses it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod skillkit;
mod testdb;

use std::time::Duration;

use std::sync::Arc;

use nitejar_core::changes::ChangeFeed;
use nitejar_core::skills::{Skills, SkillsConfig};
use nitejar_core::store::Topic;
use skillkit::{skill_md, sqlite, write};

fn names(index: &nitejar_core::skills::SkillIndex) -> Vec<String> {
    let mut names: Vec<String> = index
        .skills()
        .iter()
        .filter(|s| s.enabled)
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn runs_share_an_index_until_something_it_was_built_from_changes() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().expect("tempdir");
    write(root.path(), "alpha/SKILL.md", skill_md("alpha", "first"));
    let config = SkillsConfig {
        roots: vec![root.path().to_path_buf()],
        ..Default::default()
    };
    // Not started: it reads the counters only when told to, so the test decides when it has seen
    // a change made elsewhere.
    let feed = ChangeFeed::open(store.clone()).await.expect("feed");
    let skills = Skills::new(store.clone(), config.clone()).following(feed.clone());
    let first = skills.run_index().await.expect("index");
    assert_eq!(names(&first), ["alpha"]);
    let again = skills.run_index().await.expect("index");
    assert!(Arc::ptr_eq(&first, &again), "reused while nothing changed");

    // A skill added on disk: the next run sees it (the roots' entries are looked at every run).
    write(root.path(), "beta/SKILL.md", skill_md("beta", "second"));
    let with_beta = skills.run_index().await.expect("index");
    assert_eq!(names(&with_beta), ["alpha", "beta"]);
    // A skill's file rewritten with other content and size.
    write(
        root.path(),
        "beta/SKILL.md",
        skill_md("beta", "second, now with a longer description"),
    );
    let rewritten = skills.run_index().await.expect("index");
    assert!(!Arc::ptr_eq(&with_beta, &rewritten), "rebuilt");

    // A change through the service: the next run sees it.
    skills
        .set_enabled("alpha", false)
        .await
        .expect("switch off");
    assert_eq!(names(&skills.run_index().await.expect("index")), ["beta"]);

    // A change made elsewhere (another process's service): runs see it once the feed has.
    let elsewhere = Skills::new(store.clone(), config);
    elsewhere
        .set_enabled("alpha", true)
        .await
        .expect("switch on");
    assert_eq!(
        names(&skills.run_index().await.expect("index")),
        ["beta"],
        "the feed has not read the counters yet"
    );
    feed.sync().await.expect("read the counters");
    assert_eq!(
        names(&skills.run_index().await.expect("index")),
        ["alpha", "beta"]
    );

    // Started, the feed sees such a change by itself; the test waits on it, not on a clock.
    feed.start(Duration::from_secs(3600));
    let before = feed.revision(Topic::Skills);
    elsewhere
        .set_enabled("beta", false)
        .await
        .expect("switch off");
    assert!(
        feed.wait_past(Topic::Skills, before, Duration::from_secs(5))
            .await
    );
    assert_eq!(names(&skills.run_index().await.expect("index")), ["alpha"]);
}

#[tokio::test]
async fn without_a_feed_every_run_builds_its_own_index() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().expect("tempdir");
    write(root.path(), "alpha/SKILL.md", skill_md("alpha", "first"));
    let skills = skillkit::service(&store, &[root.path()]);
    assert_eq!(names(&skills.run_index().await.expect("index")), ["alpha"]);
    write(root.path(), "beta/SKILL.md", skill_md("beta", "second"));
    assert_eq!(
        names(&skills.run_index().await.expect("index")),
        ["alpha", "beta"]
    );
}
