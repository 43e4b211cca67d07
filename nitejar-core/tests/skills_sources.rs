//! The three skill sources, the precedence between them, plugin skills following their plugin,
//! admin skills and their rules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod skillkit;
mod testdb;

use std::sync::Arc;

use nitejar_core::runtime::Runtime;
use nitejar_core::skills::{
    AdminSkillInput, AdminSkillUpdate, AssignmentInput, ListFilter, Scope, SkillError,
    SkillFileInput, SkillSourceKind,
};
use nitejar_core::store::AssignmentFilter;
use nitejar_sdk::SkillContribution;
use skillkit::{plugin_with_skills, service, skill_md, sqlite, write};

fn admin(slug: &str, name: &str) -> AdminSkillInput {
    AdminSkillInput {
        slug: slug.into(),
        name: name.into(),
        description: Some(format!("{name}, the operator's way")),
        category: None,
        tags: vec!["ops".into()],
        version: None,
        requires_tools: vec![],
        content: format!("# {name}\n\nAdmin instructions.\n"),
        files: vec![],
        enabled: true,
    }
}

#[tokio::test]
async fn repo_skills_are_read_from_every_root() {
    let (_db, store) = sqlite().await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let md = "---\nname: Deploy\ndescription: Ship to production.\ntags: [ops, deploy]\n\
              version: 1.2.0\ncategory: ops\nrequires-tools: [bash]\n---\n# Deploy\n";
    write(one.path(), "deploy/SKILL.md", md);
    write(one.path(), "deploy/refs/checklist.md", "- [ ] tests\n");
    write(one.path(), "deploy/scripts/run.sh", "#!/bin/sh\necho hi\n");
    write(one.path(), "deploy/.env", "SECRET=1\n");
    write(one.path(), "ops/backup/SKILL.md", "Back up the database.\n");
    write(one.path(), "notes/README.md", "not a skill\n");
    write(
        two.path(),
        "deploy/SKILL.md",
        skill_md("Other deploy", "from the second root"),
    );
    let missing = one.path().join("does-not-exist");
    let skills = service(&store, &[one.path(), two.path(), &missing]);

    let index = skills.index().await.unwrap();
    let ids: Vec<&str> = index.skills().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["repo:ops/backup", "repo:deploy"], "sorted by name");

    let deploy = index.get("repo:deploy").unwrap();
    assert_eq!(deploy.source, SkillSourceKind::Repo);
    assert_eq!(deploy.name, "Deploy");
    assert_eq!(deploy.description.as_deref(), Some("Ship to production."));
    assert_eq!(deploy.tags, ["ops", "deploy"]);
    assert_eq!(deploy.version.as_deref(), Some("1.2.0"));
    assert_eq!(deploy.category, "ops");
    assert_eq!(deploy.requires_tools, ["bash"]);
    assert_eq!(deploy.content, md);
    let files: Vec<(&str, u64)> = deploy
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.size_bytes))
        .collect();
    assert_eq!(files, [("refs/checklist.md", 12), ("scripts/run.sh", 18)]);
    assert_eq!(deploy.size_bytes, md.len() as u64 + 30);

    // No frontmatter: the name is the directory's.
    let backup = index.get("repo:ops/backup").unwrap();
    assert_eq!(backup.name, "backup");
    assert_eq!(backup.slug, "backup");
    assert_eq!(backup.category, "general");

    // The second root's `deploy` has the same id; the first root wins and the other is reported.
    let problems: Vec<String> = index
        .problems()
        .iter()
        .map(|p| format!("{}: {}", p.location, p.message))
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("repo:deploy: another skill has the same id")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("does-not-exist") && p.contains("cannot be opened")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn plugin_skills_appear_on_enable_and_disappear_on_disable() {
    let (_db, store) = sqlite().await;
    let package = tempfile::tempdir().unwrap();
    write(
        package.path(),
        "skills/guide/SKILL.md",
        "---\nname: Style guide\ndescription: How we write.\ntags: [writing]\n---\nWrite short.\n",
    );
    write(package.path(), "skills/guide/examples/good.md", "Short.\n");
    let runtime = Arc::new(Runtime::builder().build());
    let skills = Arc::new(service(&store, &[]).with_runtime(runtime.clone()));
    assert!(skills.index().await.unwrap().skills().is_empty());

    runtime
        .activate(plugin_with_skills(
            "com.example.helper",
            "1.0.0",
            Some(package.path()),
            vec![
                SkillContribution::inline("triage", "Triage", "Sort the tickets.")
                    .description("Sort incoming tickets."),
                // As the loader makes it for a declared `skills/guide/SKILL.md`: name = id.
                SkillContribution::file("guide", "guide", "skills/guide/SKILL.md"),
            ],
        ))
        .unwrap();
    let index = skills.index().await.unwrap();
    let triage = index.get("plugin:com.example.helper/triage").unwrap();
    assert!(triage.active && triage.enabled);
    assert_eq!(triage.content, "Sort the tickets.");
    assert_eq!(triage.plugin.as_ref().unwrap().version, "1.0.0");
    let guide = index.get("plugin:com.example.helper/guide").unwrap();
    assert_eq!(
        guide.name, "Style guide",
        "frontmatter names a skill whose name is its id"
    );
    assert_eq!(guide.tags, ["writing"]);
    assert_eq!(guide.files.len(), 1);
    assert_eq!(guide.files[0].path, "examples/good.md");
    let bytes = skills.read_file(guide, "examples/good.md").await.unwrap();
    assert_eq!(bytes, b"Short.\n");

    // Stored as plugin rows, which is what a reader without the registry (the CLI) sees.
    let rows = store.list_skills(Some("plugin")).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.metadata["active"] == true));
    let offline = service(&store, &[]);
    let seen = offline.index().await.unwrap();
    assert!(seen.get("plugin:com.example.helper/triage").unwrap().active);

    // Disable: the skills leave the registry, stay listed as inactive, their rows say so.
    assert!(runtime.deactivate("com.example.helper"));
    let index = skills.index().await.unwrap();
    let triage = index.get("plugin:com.example.helper/triage").unwrap();
    assert!(!triage.active);
    assert_eq!(
        index.lookup("triage").map(|s| s.is_available()),
        Some(false)
    );
    let rows = store.list_skills(Some("plugin")).await.unwrap();
    assert!(rows.iter().all(|r| r.metadata["active"] == false));
    assert!(
        !offline
            .index()
            .await
            .unwrap()
            .get("plugin:com.example.helper/triage")
            .unwrap()
            .active
    );

    // Enable again: back.
    runtime
        .activate(plugin_with_skills(
            "com.example.helper",
            "1.1.0",
            Some(package.path()),
            vec![SkillContribution::inline(
                "triage",
                "Triage",
                "Sort them, v1.1.",
            )],
        ))
        .unwrap();
    let index = skills.index().await.unwrap();
    let triage = index.get("plugin:com.example.helper/triage").unwrap();
    assert!(triage.active);
    assert_eq!(triage.content, "Sort them, v1.1.");
    assert!(!index.get("plugin:com.example.helper/guide").unwrap().active);
}

#[tokio::test]
async fn the_registry_watcher_keeps_rows_in_step() {
    let (_db, store) = sqlite().await;
    let runtime = Arc::new(Runtime::builder().build());
    let skills = Arc::new(service(&store, &[]).with_runtime(runtime.clone()));
    let watcher = skills.watch_registry().expect("a runtime is attached");
    runtime
        .activate(plugin_with_skills(
            "com.example.w",
            "1.0.0",
            None,
            vec![SkillContribution::inline("w", "W", "text")],
        ))
        .unwrap();
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = store.list_skills(Some("plugin")).await.unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        rows.len(),
        1,
        "the watcher wrote the row without an index build"
    );
    watcher.abort();
}

#[tokio::test]
async fn default_enabled_skills_are_assigned_once_and_the_operator_wins() {
    let (_db, store) = sqlite().await;
    let runtime = Arc::new(Runtime::builder().build());
    let skills = Arc::new(service(&store, &[]).with_runtime(runtime.clone()));
    let plugin = || {
        plugin_with_skills(
            "com.example.d",
            "1.0.0",
            None,
            vec![
                SkillContribution::inline("on", "On", "on").enabled_by_default(),
                SkillContribution::inline("off", "Off", "off"),
            ],
        )
    };
    runtime.activate(plugin()).unwrap();
    let report = skills.sync_plugins().await.unwrap();
    assert_eq!(report.default_assigned, ["plugin:com.example.d/on"]);
    let rows = store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].skill_id, "plugin:com.example.d/on");
    assert_eq!((rows[0].scope.as_str(), rows[0].enabled), ("global", true));

    // The operator switches it off; disabling and enabling the plugin does not switch it back on.
    skills
        .assign(
            "On",
            AssignmentInput {
                scope: Scope::Global,
                priority: 0,
                enabled: false,
            },
        )
        .await
        .unwrap();
    runtime.deactivate("com.example.d");
    skills.sync_plugins().await.unwrap();
    runtime.activate(plugin()).unwrap();
    let report = skills.sync_plugins().await.unwrap();
    assert!(report.default_assigned.is_empty());
    let rows = store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].enabled);

    // Deleting the assignment is a choice too: it is not made again.
    assert!(skills.unassign("On", &Scope::Global).await.unwrap());
    runtime.deactivate("com.example.d");
    skills.sync_plugins().await.unwrap();
    runtime.activate(plugin()).unwrap();
    skills.sync_plugins().await.unwrap();
    assert!(store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn admin_beats_plugin_beats_repo_and_the_listing_shows_it() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "deploy/SKILL.md",
        skill_md("Deploy", "repo version"),
    );
    let runtime = Arc::new(Runtime::builder().build());
    runtime
        .activate(plugin_with_skills(
            "com.example.p",
            "1.0.0",
            None,
            vec![SkillContribution::inline(
                "deploy",
                "deploy",
                "plugin version",
            )],
        ))
        .unwrap();
    let skills = service(&store, &[root.path()]).with_runtime(runtime.clone());

    // Plugin over repo.
    let index = skills.index().await.unwrap();
    assert_eq!(
        index.lookup("DEPLOY").unwrap().id,
        "plugin:com.example.p/deploy"
    );
    assert_eq!(
        index.get("repo:deploy").unwrap().shadowed_by.as_deref(),
        Some("plugin:com.example.p/deploy")
    );

    // Admin over both.
    skills.create(admin("deploy", "Deploy")).await.unwrap();
    let listing = skills.list(&ListFilter::default()).await.unwrap();
    let rows: Vec<(&str, Option<&str>)> = listing
        .skills
        .iter()
        .map(|s| (s.skill.id.as_str(), s.skill.shadowed_by.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("admin:deploy", None),
            ("plugin:com.example.p/deploy", Some("admin:deploy")),
            ("repo:deploy", Some("admin:deploy")),
        ]
    );
    let detail = skills.get("deploy").await.unwrap();
    assert_eq!(detail.skill.id, "admin:deploy");
    assert_eq!(
        detail.shadows,
        ["plugin:com.example.p/deploy", "repo:deploy"]
    );
    // A shadowed skill stays reachable by id.
    assert_eq!(
        skills.get("repo:deploy").await.unwrap().skill.source,
        SkillSourceKind::Repo
    );

    // Switched off, the admin skill no longer competes: the plugin's wins again.
    skills.set_enabled("admin:deploy", false).await.unwrap();
    let index = skills.index().await.unwrap();
    assert_eq!(
        index.lookup("deploy").unwrap().id,
        "plugin:com.example.p/deploy"
    );
    assert_eq!(index.get("admin:deploy").unwrap().shadowed_by, None);

    // Filters.
    let repo_only = skills
        .list(&ListFilter {
            source: Some(SkillSourceKind::Repo),
            scope: None,
        })
        .await
        .unwrap();
    assert_eq!(repo_only.skills.len(), 1);
    skills
        .assign(
            "repo:deploy",
            AssignmentInput {
                scope: "team:support".parse().unwrap(),
                priority: 2,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let team = skills
        .list(&ListFilter {
            source: None,
            scope: Some(Scope::Team("support".into())),
        })
        .await
        .unwrap();
    assert_eq!(team.skills.len(), 1);
    assert_eq!(team.skills[0].skill.id, "repo:deploy");
    assert_eq!(team.skills[0].assignments[0].priority, 2);
}

#[tokio::test]
async fn admin_skills_are_created_updated_and_deleted() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "triage/SKILL.md", "Triage.\n");
    let skills = service(&store, &[root.path()]);
    let mut input = admin("runbook", "Runbook");
    input.files = vec![SkillFileInput {
        path: "steps/one.md".into(),
        content: "Step one.\n".into(),
        content_type: Some("text/markdown".into()),
    }];
    let created = skills.create(input.clone()).await.unwrap();
    assert_eq!(created.skill.id, "admin:runbook");
    assert_eq!(created.skill.files[0].path, "steps/one.md");
    assert_eq!(created.skill.files[0].size_bytes, 10);
    let again = skills.create(input).await.unwrap_err();
    assert!(matches!(again, SkillError::AlreadyExists { .. }), "{again}");

    let updated = skills
        .update(
            "runbook",
            AdminSkillUpdate {
                name: Some("Runbook v2".into()),
                description: Some(None),
                content: Some("# v2\n".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.skill.name, "Runbook v2");
    assert_eq!(updated.skill.description, None);
    assert_eq!(updated.content, "# v2\n");
    assert_eq!(updated.skill.files.len(), 1, "files kept when not sent");
    let replaced = skills
        .update(
            "admin:runbook",
            AdminSkillUpdate {
                files: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(replaced.skill.files.is_empty());

    // A repo skill is not the operator's to change, with or without a row of its own.
    let refused = skills
        .update("repo:triage", AdminSkillUpdate::default())
        .await;
    assert!(
        matches!(refused, Err(SkillError::NotAdmin { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        skills.delete("triage").await,
        Err(SkillError::NotAdmin { .. })
    ));
    skills
        .assign(
            "repo:triage",
            AssignmentInput {
                scope: Scope::Global,
                priority: 0,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let refused = skills
        .update("repo:triage", AdminSkillUpdate::default())
        .await;
    assert!(
        matches!(refused, Err(SkillError::NotAdmin { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        skills.delete("repo:triage").await,
        Err(SkillError::NotAdmin { .. })
    ));

    assert!(skills.delete("admin:runbook").await.unwrap());
    assert!(!skills.delete("admin:runbook").await.unwrap());
    let err = skills.get("runbook").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no skill is called `runbook`; available: triage"
    );
}

#[tokio::test]
async fn slugs_tags_and_names_are_validated() {
    let (_db, store) = sqlite().await;
    let skills = service(&store, &[]);
    let cases: Vec<(AdminSkillInput, &str)> = vec![
        (
            admin("Deploy", "Deploy"),
            "slug: `Deploy` is not a valid slug",
        ),
        (
            admin("-deploy", "Deploy"),
            "slug: `-deploy` is not a valid slug",
        ),
        (admin(&"a".repeat(65), "Deploy"), "is not a valid slug"),
        (admin("has space", "Deploy"), "is not a valid slug"),
        (
            AdminSkillInput {
                tags: vec!["Ops".into()],
                ..admin("a", "A")
            },
            "tags[0]: `Ops` is not a valid tag",
        ),
        (
            AdminSkillInput {
                tags: vec!["ops".into(), "ops".into()],
                ..admin("a", "A")
            },
            "tags[1]: `ops` is listed twice",
        ),
        (
            AdminSkillInput {
                tags: (0..21).map(|i| format!("t{i}")).collect(),
                ..admin("a", "A")
            },
            "tags: 21 tags given; at most 20 are allowed",
        ),
        (
            admin("a", "Two\nlines"),
            "name: the name contains a line break",
        ),
        (admin("a", "  "), "name: the name is empty"),
        (
            AdminSkillInput {
                category: Some("Ops Team".into()),
                ..admin("a", "A")
            },
            "category: `Ops Team` is not a valid category",
        ),
        (
            AdminSkillInput {
                requires_tools: vec!["rm -rf".into()],
                ..admin("a", "A")
            },
            "requiresTools[0]",
        ),
        (
            AdminSkillInput {
                content: " \n".into(),
                ..admin("a", "A")
            },
            "content: the SKILL.md text is empty",
        ),
        (
            AdminSkillInput {
                content: "---\nname: x\n".into(),
                ..admin("a", "A")
            },
            "frontmatter: the frontmatter opened with `---` is never closed",
        ),
    ];
    for (input, expected) in cases {
        let err = skills.create(input).await.unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{err} (expected {expected})"
        );
    }
    assert!(
        store.list_skills(None).await.unwrap().is_empty(),
        "nothing stored"
    );

    // Repo skills follow the same rules: a bad tag keeps a skill out, with the reason.
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "bad/SKILL.md", "---\ntags: [Not OK]\n---\nx\n");
    let index = service(&store, &[root.path()]).index().await.unwrap();
    assert!(index.skills().is_empty());
    assert!(index.problems()[0].message.contains("is not a valid tag"));

    // Scopes.
    for bad in ["team", "team:", "everyone", "agents:x"] {
        assert!(bad.parse::<Scope>().is_err(), "{bad}");
    }
    assert_eq!(
        "integration_type:telegram".parse::<Scope>().unwrap(),
        Scope::IntegrationType("telegram".into())
    );
}

#[tokio::test]
async fn a_repo_skill_that_went_away_stays_listed_with_its_assignments() {
    let (_db, store) = sqlite().await;
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "ops/deploy/SKILL.md",
        skill_md("Deploy", "Ship it."),
    );
    let skills = service(&store, &[root.path()]);
    skills
        .assign(
            "Deploy",
            AssignmentInput {
                scope: Scope::Global,
                priority: 1,
                enabled: true,
            },
        )
        .await
        .unwrap();
    std::fs::remove_dir_all(root.path().join("ops")).unwrap();

    let listing = skills.list(&ListFilter::default()).await.unwrap();
    assert_eq!(listing.skills.len(), 1);
    let gone = &listing.skills[0];
    assert_eq!(gone.skill.id, "repo:ops/deploy");
    assert_eq!(gone.skill.slug, "deploy");
    assert!(!gone.skill.active);
    assert_eq!(gone.assignments.len(), 1);
    let run = nitejar_core::skills::RunScope {
        agent_id: "a".into(),
        ..Default::default()
    };
    assert!(skills.resolve_for_run(&run).await.unwrap().is_empty());

    // Back on disk, it is back in runs.
    write(
        root.path(),
        "ops/deploy/SKILL.md",
        skill_md("Deploy", "Ship it."),
    );
    let resolved = skills.resolve_for_run(&run).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].skill.id, "repo:ops/deploy");
}
