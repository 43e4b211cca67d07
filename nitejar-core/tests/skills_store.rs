//! The skill tables through the store, on SQLite and on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use nitejar_core::store::{
    AssignmentFilter, NewSkillAssignment, PluginRow, SkillFileRow, SkillRow, StoreError,
};
use serde_json::{json, Value};
use testdb::TestDb;

on_both_backends!(
    admin_skills_with_files_round_trip,
    updates_replace_or_keep_files,
    deleting_a_skill_takes_its_files_and_assignments,
    mirror_rows_keep_the_operators_switch,
    mirror_rows_link_a_plugin_only_when_it_has_a_row,
    assignments_are_one_per_skill_and_scope,
    default_assignments_never_overrule_the_operator,
    a_legacy_global_row_is_updated_in_place,
    run_assignments_match_agent_team_and_integration_type,
);

fn skill(id: &str, slug: &str, source: &str) -> SkillRow {
    SkillRow {
        id: id.into(),
        name: format!("Skill {slug}"),
        slug: slug.into(),
        description: Some("does things".into()),
        category: "general".into(),
        source_kind: source.into(),
        plugin_id: None,
        source_ref: None,
        content: format!("# {slug}\n"),
        is_directory: false,
        version: Some("1.0.0".into()),
        checksum: None,
        enabled: true,
        tags: vec!["ops".into(), "deploy".into()],
        requires_tools: vec!["bash".into()],
        metadata: Value::Null,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

fn file(skill_id: &str, path: &str, content: &str) -> SkillFileRow {
    SkillFileRow {
        id: nitejar_core::store::new_id(),
        skill_id: skill_id.into(),
        relative_path: path.into(),
        content: content.into(),
        content_type: Some("text/markdown".into()),
        size_bytes: content.len() as i64,
        checksum: None,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

fn assignment(skill_id: &str, scope: &str, scope_id: &str, priority: i64) -> NewSkillAssignment {
    NewSkillAssignment {
        skill_id: skill_id.into(),
        scope: scope.into(),
        scope_id: scope_id.into(),
        priority,
        enabled: true,
    }
}

async fn admin_skills_with_files_round_trip(db: TestDb) {
    let store = db.open().await;
    let row = skill("admin:deploy", "deploy", "admin");
    let files = [
        file("admin:deploy", "refs/b.md", "bbb"),
        file("admin:deploy", "refs/a.md", "a"),
    ];
    store.insert_skill(&row, &files).await.expect("insert");
    assert_eq!(
        store.get_skill("admin:deploy").await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(store.get_skill("admin:nope").await.unwrap(), None);

    let listed = store.list_skill_files("admin:deploy").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|f| f.relative_path.as_str())
            .collect::<Vec<_>>(),
        ["refs/a.md", "refs/b.md"]
    );
    let one = store
        .get_skill_file("admin:deploy", "refs/b.md")
        .await
        .unwrap();
    assert_eq!(one.map(|f| f.content), Some("bbb".into()));
    let stats = store.list_skill_file_stats().await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[1].size_bytes, 3);

    // The slug is unique: a second row with it is refused, and nothing of it is stored.
    let mut twin = skill("admin:other", "deploy", "admin");
    twin.name = "twin".into();
    let err = store
        .insert_skill(&twin, &[file("admin:other", "x.md", "x")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    assert_eq!(store.get_skill("admin:other").await.unwrap(), None);
    assert!(store
        .list_skill_files("admin:other")
        .await
        .unwrap()
        .is_empty());

    store
        .insert_skill(&skill("repo:x", "repo:x", "repo"), &[])
        .await
        .unwrap();
    let admins = store.list_skills(Some("admin")).await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(store.list_skills(None).await.unwrap().len(), 2);
}

async fn updates_replace_or_keep_files(db: TestDb) {
    let store = db.open().await;
    let row = skill("admin:a", "a", "admin");
    store
        .insert_skill(&row, &[file("admin:a", "one.md", "1")])
        .await
        .unwrap();
    let mut changed = row.clone();
    changed.name = "Renamed".into();
    changed.tags = vec![];
    changed.enabled = false;
    changed.updated_at = 2_000;
    store.update_skill(&changed, None).await.unwrap();
    let stored = store.get_skill("admin:a").await.unwrap().unwrap();
    assert_eq!(stored.name, "Renamed");
    assert!(stored.tags.is_empty());
    assert!(!stored.enabled);
    assert_eq!(stored.created_at, 1_000);
    assert_eq!(store.list_skill_files("admin:a").await.unwrap().len(), 1);

    let new_files = [
        file("admin:a", "two.md", "2"),
        file("admin:a", "three.md", "3"),
    ];
    store
        .update_skill(&changed, Some(&new_files))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_skill_files("admin:a")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.relative_path)
        .collect();
    assert_eq!(names, ["three.md", "two.md"]);

    let err = store
        .update_skill(&skill("admin:missing", "missing", "admin"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn deleting_a_skill_takes_its_files_and_assignments(db: TestDb) {
    let store = db.open().await;
    store
        .insert_skill(
            &skill("admin:a", "a", "admin"),
            &[file("admin:a", "f.md", "f")],
        )
        .await
        .unwrap();
    store
        .set_skill_assignment(&assignment("admin:a", "global", "", 0))
        .await
        .unwrap();
    assert!(store.delete_skill("admin:a").await.unwrap());
    assert!(!store.delete_skill("admin:a").await.unwrap());
    assert!(store.list_skill_file_stats().await.unwrap().is_empty());
    assert!(store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn mirror_rows_keep_the_operators_switch(db: TestDb) {
    let store = db.open().await;
    let mut row = skill(
        "plugin:com.example.x/triage",
        "plugin:com.example.x/triage",
        "plugin",
    );
    row.metadata = json!({"active": true});
    store.upsert_mirror_skills(&[row.clone()]).await.unwrap();
    assert!(store.set_skill_enabled(&row.id, false).await.unwrap());
    assert!(!store
        .set_skill_enabled("plugin:none/x", false)
        .await
        .unwrap());

    let mut again = row.clone();
    again.content = "# new text\n".into();
    again.enabled = true;
    again.created_at = 9_999;
    again.updated_at = 5_000;
    again.metadata = json!({"active": false});
    store.upsert_mirror_skills(&[again]).await.unwrap();
    let stored = store.get_skill(&row.id).await.unwrap().unwrap();
    assert_eq!(stored.content, "# new text\n");
    assert!(
        !stored.enabled,
        "a re-sync must not switch the skill back on"
    );
    assert_eq!(stored.created_at, 1_000);
    assert_eq!(stored.updated_at, 5_000);
    assert_eq!(stored.metadata, json!({"active": false}));
}

async fn mirror_rows_link_a_plugin_only_when_it_has_a_row(db: TestDb) {
    let store = db.open().await;
    let mut builtin = skill("plugin:builtin.x/a", "plugin:builtin.x/a", "plugin");
    builtin.plugin_id = Some("builtin.x".into());
    let mut installed = skill("plugin:com.example.y/b", "plugin:com.example.y/b", "plugin");
    installed.plugin_id = Some("com.example.y".into());
    store
        .upsert_plugin(&PluginRow {
            id: "com.example.y".into(),
            name: "Y".into(),
            enabled: true,
            trust_level: "unknown".into(),
            source_kind: "local".into(),
            source_ref: None,
            current_version: Some("1.0.0".into()),
            current_checksum: None,
            current_install_path: None,
            manifest_json: "{}".into(),
            config_json: None,
            config_revision: 0,
            execution_mode: None,
            memory_limit_mib: None,
            cpu_limit_seconds: None,
            last_load_error: None,
            last_error_kind: None,
            last_loaded_at: None,
            installed_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    store
        .upsert_mirror_skills(&[builtin.clone(), installed.clone()])
        .await
        .expect("a plugin without a row must not break the foreign key");
    let b = store.get_skill(&builtin.id).await.unwrap().unwrap();
    assert_eq!(b.plugin_id, None);
    let i = store.get_skill(&installed.id).await.unwrap().unwrap();
    assert_eq!(i.plugin_id.as_deref(), Some("com.example.y"));
}

async fn assignments_are_one_per_skill_and_scope(db: TestDb) {
    let store = db.open().await;
    store
        .insert_skill(&skill("admin:a", "a", "admin"), &[])
        .await
        .unwrap();
    let first = store
        .set_skill_assignment(&assignment("admin:a", "team", "support", 1))
        .await
        .unwrap();
    assert_eq!(first.skill_slug, "a");
    assert_eq!(first.scope_id.as_deref(), Some("support"));
    let mut change = assignment("admin:a", "team", "support", 7);
    change.enabled = false;
    let second = store.set_skill_assignment(&change).await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.priority, 7);
    assert!(!second.enabled);
    let global = store
        .set_skill_assignment(&assignment("admin:a", "global", "", 0))
        .await
        .unwrap();
    assert_eq!(global.scope_id.as_deref(), Some(""));

    let all = store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].priority, 7, "highest priority first");
    let teams = store
        .list_skill_assignments(&AssignmentFilter {
            scope: Some("team".into()),
            scope_id: Some("support".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(teams.len(), 1);
    let globals = store
        .list_skill_assignments(&AssignmentFilter {
            scope: Some("global".into()),
            scope_id: Some(String::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(globals.len(), 1);

    assert!(store.delete_skill_assignment(&first.id).await.unwrap());
    assert!(!store.delete_skill_assignment(&first.id).await.unwrap());

    let err = store
        .set_skill_assignment(&assignment("admin:missing", "global", "", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn default_assignments_never_overrule_the_operator(db: TestDb) {
    let store = db.open().await;
    store
        .insert_skill(&skill("admin:a", "a", "admin"), &[])
        .await
        .unwrap();
    let mut off = assignment("admin:a", "global", "", 0);
    off.enabled = false;
    store.set_skill_assignment(&off).await.unwrap();
    let added = store
        .insert_skill_assignment_if_absent(&assignment("admin:a", "global", "", 0))
        .await
        .unwrap();
    assert!(!added);
    let rows = store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].enabled);
    assert!(!store
        .insert_skill_assignment_if_absent(&assignment("admin:none", "global", "", 0))
        .await
        .unwrap());
}

async fn a_legacy_global_row_is_updated_in_place(db: TestDb) {
    let store = db.open().await;
    store
        .insert_skill(&skill("admin:a", "a", "admin"), &[])
        .await
        .unwrap();
    db.exec(
        "INSERT INTO skill_assignments (id, skill_id, skill_slug, scope, scope_id, priority, \
         auto_inject, enabled, created_at, updated_at) \
         VALUES ('legacy', 'admin:a', 'a', 'global', NULL, 0, 0, 1, 1, 1)",
    )
    .await;
    let row = store
        .set_skill_assignment(&assignment("admin:a", "global", "", 3))
        .await
        .unwrap();
    assert_eq!(row.id, "legacy");
    assert_eq!(row.priority, 3);
    assert!(!store
        .insert_skill_assignment_if_absent(&assignment("admin:a", "global", "", 0))
        .await
        .unwrap());
}

async fn run_assignments_match_agent_team_and_integration_type(db: TestDb) {
    let store = db.open().await;
    for slug in ["g", "t", "a", "i", "other"] {
        store
            .insert_skill(&skill(&format!("admin:{slug}"), slug, "admin"), &[])
            .await
            .unwrap();
    }
    for (id, scope, scope_id) in [
        ("admin:g", "global", ""),
        ("admin:t", "team", "support"),
        ("admin:a", "agent", "agent-1"),
        ("admin:i", "integration_type", "telegram"),
        ("admin:other", "agent", "agent-2"),
    ] {
        store
            .set_skill_assignment(&assignment(id, scope, scope_id, 0))
            .await
            .unwrap();
    }
    let ids = |rows: Vec<nitejar_core::store::SkillAssignmentRow>| {
        let mut ids: Vec<String> = rows.into_iter().map(|r| r.skill_id).collect();
        ids.sort();
        ids
    };
    let all = store
        .skill_assignments_for_run("agent-1", Some("support"), Some("telegram"))
        .await
        .unwrap();
    assert_eq!(ids(all), ["admin:a", "admin:g", "admin:i", "admin:t"]);
    let bare = store
        .skill_assignments_for_run("agent-1", None, None)
        .await
        .unwrap();
    assert_eq!(ids(bare), ["admin:a", "admin:g"]);
}
