//! The index runs share (`SkillsConfig::run_index_ttl`): reused while nothing this service knows of
//! changed, rebuilt when it changes a skill or the time is up; listing never uses it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod skillkit;
mod testdb;

use std::time::Duration;

use nitejar_core::skills::{Skills, SkillsConfig};
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
async fn runs_share_an_index_until_it_changes_or_expires() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().expect("tempdir");
    write(root.path(), "alpha/SKILL.md", skill_md("alpha", "first"));
    let skills = Skills::new(
        store.clone(),
        SkillsConfig {
            roots: vec![root.path().to_path_buf()],
            run_index_ttl: Duration::from_millis(400),
            ..Default::default()
        },
    );
    let first = skills.run_index().await.expect("index");
    assert_eq!(names(&first), ["alpha"]);

    // A skill added on disk: runs keep the shared index for now; listing sees it at once.
    write(root.path(), "beta/SKILL.md", skill_md("beta", "second"));
    let again = skills.run_index().await.expect("index");
    assert!(std::sync::Arc::ptr_eq(&first, &again), "reused");
    assert_eq!(
        names(&skills.index().await.expect("index")),
        ["alpha", "beta"]
    );

    // A change through the service: the next run sees it.
    skills
        .set_enabled("alpha", false)
        .await
        .expect("switch off");
    assert_eq!(names(&skills.run_index().await.expect("index")), ["beta"]);

    // Changes made elsewhere reach runs once the time is up.
    write(root.path(), "gamma/SKILL.md", skill_md("gamma", "third"));
    assert_eq!(names(&skills.run_index().await.expect("index")), ["beta"]);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        names(&skills.run_index().await.expect("index")),
        ["beta", "gamma"]
    );
}

#[tokio::test]
async fn without_a_time_every_run_builds_its_own_index() {
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
