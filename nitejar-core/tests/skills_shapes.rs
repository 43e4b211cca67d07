//! The JSON shapes the skills surfaces hand out (listing, detail, export): what the HTTP API and
//! `nitejar skill … --json` print. Volatile values (ids, timestamps, temp paths) are scrubbed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod skillkit;
mod testdb;

use nitejar_core::skills::{AdminSkillInput, AssignmentInput, ListFilter, SkillFileInput};
use serde_json::Value;
use skillkit::{service, skill_md, sqlite, write};

fn scrub(value: &mut Value, root: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "createdAt" | "updatedAt" | "exportedAt" => *v = Value::from("[time]"),
                    "id" if v.as_str().is_some_and(|s| !s.contains(':')) => {
                        *v = Value::from("[uuid]")
                    }
                    "nitejarVersion" => *v = Value::from("[version]"),
                    _ => scrub(v, root),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, root)),
        Value::String(s) if s.contains(root) => *s = s.replace(root, "[root]"),
        _ => {}
    }
}

#[tokio::test]
async fn listing_detail_and_export_shapes() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "deploy/SKILL.md",
        skill_md("Deploy", "repo version"),
    );
    write(root.path(), "deploy/refs/check.md", "- [ ] tests\n");
    let skills = service(&store, &[root.path()]);
    skills
        .create(AdminSkillInput {
            slug: "deploy".into(),
            name: "Deploy".into(),
            description: Some("The operator's deploy.".into()),
            category: Some("ops".into()),
            tags: vec!["ops".into()],
            version: Some("2.0.0".into()),
            requires_tools: vec!["bash".into()],
            content: "# Deploy\n\nAsk first.\n".into(),
            files: vec![SkillFileInput {
                path: "steps.md".into(),
                content: "1. ask\n".into(),
                content_type: Some("text/markdown".into()),
            }],
            enabled: true,
        })
        .await
        .unwrap();
    skills
        .assign(
            "admin:deploy",
            AssignmentInput {
                scope: "team:support".parse().unwrap(),
                priority: 2,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let root_text = root.path().canonicalize().unwrap().display().to_string();

    let mut listing =
        serde_json::to_value(skills.list(&ListFilter::default()).await.unwrap()).unwrap();
    scrub(&mut listing, &root_text);
    insta::assert_json_snapshot!("listing", listing);

    let mut detail = serde_json::to_value(skills.get("deploy").await.unwrap()).unwrap();
    scrub(&mut detail, &root_text);
    insta::assert_json_snapshot!("detail", detail);

    let mut export = serde_json::to_value(skills.export("deploy").await.unwrap()).unwrap();
    scrub(&mut export, &root_text);
    insta::assert_json_snapshot!("export", export);
}
