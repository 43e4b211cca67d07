//! Refused paths (`..`, absolute, symbolic links), size limits for every source, and the
//! import/export round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod skillkit;
mod testdb;

use std::os::unix::fs::symlink;
use std::sync::Arc;

use nitejar_core::runtime::Runtime;
use nitejar_core::skills::{
    open_under, AdminSkillInput, PortableSkill, SkillError, SkillFileInput, SkillLimits,
    FORMAT_VERSION,
};
use nitejar_sdk::SkillContribution;
use serde_json::json;
use skillkit::{plugin_with_skills, service, service_with, skill_md, sqlite, write};

fn admin_with_files(slug: &str, files: &[(&str, &str)]) -> AdminSkillInput {
    AdminSkillInput {
        slug: slug.into(),
        name: slug.into(),
        description: None,
        category: None,
        tags: vec![],
        version: None,
        requires_tools: vec![],
        content: "# text\n".into(),
        files: files
            .iter()
            .map(|(p, c)| SkillFileInput {
                path: (*p).into(),
                content: (*c).into(),
                content_type: None,
            })
            .collect(),
        enabled: true,
    }
}

fn problem_of<'a>(index: &'a nitejar_core::skills::SkillIndex, location: &str) -> &'a str {
    index
        .problems()
        .iter()
        .find(|p| p.location == location)
        .map(|p| p.message.as_str())
        .unwrap_or_else(|| panic!("no problem for {location}: {:?}", index.problems()))
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_are_refused_everywhere() {
    let (_db, store) = sqlite().await;
    let skills = service(&store, &[]);
    for bad in [
        "../escape.md",
        "refs/../../escape.md",
        "/etc/passwd",
        "a/./b",
        "a\\b",
    ] {
        let err = skills
            .create(admin_with_files("a", &[(bad, "x")]))
            .await
            .unwrap_err();
        assert!(matches!(err, SkillError::UnsafePath { .. }), "{bad}: {err}");
    }
    assert!(store.list_skills(None).await.unwrap().is_empty());

    // Plugin file skills: the path is checked before anything is opened.
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.md", "secret");
    let package = tempfile::tempdir().unwrap();
    let runtime = Arc::new(Runtime::builder().build());
    runtime
        .activate(plugin_with_skills(
            "com.example.bad",
            "1.0.0",
            Some(package.path()),
            vec![
                SkillContribution::file("up", "up", "../secret.md"),
                SkillContribution::file(
                    "abs",
                    "abs",
                    outside.path().join("secret.md").display().to_string(),
                ),
            ],
        ))
        .unwrap();
    let skills = service(&store, &[]).with_runtime(runtime);
    let index = skills.index().await.unwrap();
    assert!(index.skills().is_empty());
    assert!(problem_of(&index, "plugin:com.example.bad/up").contains("it contains `..`"));
    assert!(problem_of(&index, "plugin:com.example.bad/abs").contains("it is absolute"));

    // Reading a supporting file goes through the same check.
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "s/SKILL.md", "x\n");
    write(root.path(), "s/a.md", "a\n");
    let skills = service(&store, &[root.path()]);
    let index = skills.index().await.unwrap();
    let s = index.get("repo:s").unwrap();
    let err = skills.read_file(s, "../s/a.md").await.unwrap_err();
    assert!(matches!(err, SkillError::UnsafePath { .. }), "{err}");
    let err = skills.read_file(s, "SKILL.md").await.unwrap_err();
    assert!(matches!(err, SkillError::NoSuchFile { .. }), "{err}");
    assert_eq!(skills.read_file(s, "a.md").await.unwrap(), b"a\n");
}

#[tokio::test]
async fn symbolic_links_are_refused() {
    let (_db, store) = sqlite().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "secret.md", "secret\n");
    write(
        outside.path(),
        "dir/SKILL.md",
        skill_md("Elsewhere", "outside the root"),
    );
    let root = tempfile::tempdir().unwrap();
    // SKILL.md itself a link.
    std::fs::create_dir_all(root.path().join("linked-entry")).unwrap();
    symlink(&secret, root.path().join("linked-entry/SKILL.md")).unwrap();
    // A supporting file that is a link.
    write(root.path(), "linked-file/SKILL.md", "x\n");
    symlink(&secret, root.path().join("linked-file/notes.md")).unwrap();
    // A skill directory that is a link.
    symlink(outside.path().join("dir"), root.path().join("linked-dir")).unwrap();
    // A link to a file inside the root is refused as well.
    write(root.path(), "inner/SKILL.md", "x\n");
    write(root.path(), "inner/real.md", "real\n");
    symlink(
        root.path().join("inner/real.md"),
        root.path().join("inner/alias.md"),
    )
    .unwrap();
    write(root.path(), "fine/SKILL.md", "fine\n");

    let skills = service(&store, &[root.path()]);
    let index = skills.index().await.unwrap();
    let ids: Vec<&str> = index.skills().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["repo:fine"]);
    assert!(problem_of(&index, "repo:linked-entry").contains("symbolic link"));
    assert!(problem_of(&index, "repo:linked-file")
        .contains("`notes.md` is refused: it is a symbolic link"));
    assert!(problem_of(&index, "repo:linked-dir").contains("is a symbolic link"));
    assert!(problem_of(&index, "repo:inner").contains("`alias.md` is refused"));

    // A plugin whose package holds a link.
    let package = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(package.path().join("skills")).unwrap();
    symlink(
        outside.path().join("dir"),
        package.path().join("skills/linked"),
    )
    .unwrap();
    let runtime = Arc::new(Runtime::builder().build());
    runtime
        .activate(plugin_with_skills(
            "com.example.links",
            "1.0.0",
            Some(package.path()),
            vec![SkillContribution::file(
                "linked",
                "linked",
                "skills/linked/SKILL.md",
            )],
        ))
        .unwrap();
    let index = service(&store, &[])
        .with_runtime(runtime)
        .index()
        .await
        .unwrap();
    assert!(index.skills().is_empty());
    assert!(problem_of(&index, "plugin:com.example.links/linked").contains("symbolic link"));

    // The check itself, directly.
    let err = open_under(root.path(), "linked-dir/SKILL.md").unwrap_err();
    assert!(matches!(err, SkillError::UnsafePath { .. }), "{err}");
}

#[tokio::test]
async fn size_limits_hold_for_every_source() {
    let (_db, store) = sqlite().await;
    let limits = SkillLimits {
        max_file_bytes: 100,
        max_skill_bytes: 250,
        max_files: 3,
    };
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "big-entry/SKILL.md", "x".repeat(101));
    write(root.path(), "big-file/SKILL.md", "ok\n");
    write(root.path(), "big-file/data.txt", "y".repeat(101));
    write(root.path(), "big-skill/SKILL.md", "z".repeat(100));
    write(root.path(), "big-skill/a.txt", "a".repeat(100));
    write(root.path(), "big-skill/b.txt", "b".repeat(51));
    for i in 0..4 {
        write(root.path(), &format!("many/f{i}.txt"), "f");
    }
    write(root.path(), "many/SKILL.md", "many\n");
    write(root.path(), "at-limit/SKILL.md", "z".repeat(100));
    write(root.path(), "at-limit/a.txt", "a".repeat(100));
    write(root.path(), "at-limit/b.txt", "b".repeat(50));

    let package = tempfile::tempdir().unwrap();
    write(package.path(), "skills/huge/SKILL.md", "h".repeat(101));
    let runtime = Arc::new(Runtime::builder().build());
    runtime
        .activate(plugin_with_skills(
            "com.example.big",
            "1.0.0",
            Some(package.path()),
            vec![
                SkillContribution::inline("inline", "inline", "i".repeat(101)),
                SkillContribution::file("huge", "huge", "skills/huge/SKILL.md"),
            ],
        ))
        .unwrap();
    let skills = service_with(&store, &[root.path()], limits).with_runtime(runtime);
    let index = skills.index().await.unwrap();
    let ids: Vec<&str> = index.skills().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["repo:at-limit"], "{:?}", index.problems());
    assert_eq!(
        problem_of(&index, "repo:big-entry"),
        "file `big-entry/SKILL.md` is 101 bytes, over the limit of 100 bytes"
    );
    assert_eq!(
        problem_of(&index, "repo:big-file"),
        "file `data.txt` is 101 bytes, over the limit of 100 bytes"
    );
    assert_eq!(
        problem_of(&index, "repo:big-skill"),
        "skill `repo:big-skill` is 251 bytes, over the limit of 250 bytes"
    );
    assert_eq!(
        problem_of(&index, "repo:many"),
        "the skill has more than 3 supporting files"
    );
    assert!(problem_of(&index, "plugin:com.example.big/inline").contains("101 bytes"));
    assert!(problem_of(&index, "plugin:com.example.big/huge").contains("101 bytes"));

    // Admin skills: per file and per skill, refused before anything is stored.
    let err = skills
        .create(admin_with_files("a", &[("big.md", &"x".repeat(101))]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "file `big.md` is 101 bytes, over the limit of 100 bytes"
    );
    let mut whole = admin_with_files(
        "a",
        &[("one.md", &"x".repeat(100)), ("two.md", &"y".repeat(100))],
    );
    whole.content = "c".repeat(51);
    let err = skills.create(whole).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "skill `a` is 251 bytes, over the limit of 250 bytes"
    );
    let too_many = admin_with_files("a", &[("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")]);
    let err = skills.create(too_many).await.unwrap_err();
    assert!(matches!(err, SkillError::TooManyFiles { .. }), "{err}");
    let mut big = admin_with_files("a", &[]);
    big.content = "c".repeat(101);
    assert!(matches!(
        skills.create(big).await,
        Err(SkillError::TooLarge { .. })
    ));
    assert!(store.list_skills(Some("admin")).await.unwrap().is_empty());
}

#[tokio::test]
async fn import_and_export_round_trip() {
    let (_db, store) = sqlite().await;
    let skills = service(&store, &[]);
    let mut input = admin_with_files(
        "jira-triage",
        &[
            ("references/matrix.md", "| p | s |\n"),
            ("scripts/report.sh", "#!/bin/sh\n"),
        ],
    );
    input.name = "Jira Triage".into();
    input.description = Some("Triage tickets.".into());
    input.tags = vec!["jira".into(), "ops".into()];
    input.category = Some("ops".into());
    input.version = Some("1.0.0".into());
    input.requires_tools = vec!["bash".into()];
    input.content = "---\nname: Jira Triage\n---\n# Jira Triage\n".into();
    skills.create(input).await.unwrap();

    let exported = skills.export("Jira Triage").await.unwrap();
    let text = serde_json::to_string_pretty(&exported).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["formatVersion"], FORMAT_VERSION);
    assert_eq!(doc["skill"]["slug"], "jira-triage");
    assert_eq!(doc["skill"]["requiresTools"], json!(["bash"]));
    assert_eq!(doc["skill"]["files"][0]["path"], "references/matrix.md");
    assert_eq!(doc["metadata"]["sourceId"], "admin:jira-triage");

    assert!(skills.delete("admin:jira-triage").await.unwrap());
    let imported = skills
        .import(PortableSkill::from_json(&text).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(imported.skill.id, "admin:jira-triage");
    let again = skills.export("admin:jira-triage").await.unwrap();
    assert_eq!(
        again.skill, exported.skill,
        "the round trip changes nothing"
    );

    // The slug is taken now: refused unless replacing.
    let mut changed = exported.clone();
    changed.skill.content = "# changed\n".into();
    changed.skill.files.pop();
    let err = skills.import(changed.clone(), false).await.unwrap_err();
    assert!(matches!(err, SkillError::AlreadyExists { .. }), "{err}");
    let replaced = skills.import(changed, true).await.unwrap();
    assert_eq!(replaced.content, "# changed\n");
    assert_eq!(replaced.skill.files.len(), 1);

    // Documents that are refused, with nothing stored.
    let bad_path = json!({"formatVersion": 2, "skill": {"name": "X", "slug": "x", "content": "x",
        "files": [{"path": "../x.md", "content": "x"}]}});
    let err = skills
        .import(
            PortableSkill::from_json(&bad_path.to_string()).unwrap(),
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SkillError::UnsafePath { .. }), "{err}");
    let binary = json!({"formatVersion": 2, "skill": {"name": "X", "slug": "x", "content": "x",
        "files": [{"path": "logo.png", "content": "iVBORw0KGgo=", "encoding": "base64"}]}});
    let err = skills
        .import(
            PortableSkill::from_json(&binary.to_string()).unwrap(),
            false,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("admin skills hold text files only"),
        "{err}"
    );
    let text_b64 = json!({"formatVersion": 2, "skill": {"name": "X", "slug": "x", "content": "x",
        "files": [{"path": "a.txt", "content": "aGVsbG8=", "encoding": "base64"}]}});
    let ok = skills
        .import(
            PortableSkill::from_json(&text_b64.to_string()).unwrap(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(ok.skill.files[0].size_bytes, 5);
    let err = PortableSkill::from_json(
        r#"{"formatVersion": 3, "skill": {"name": "X", "slug": "x", "content": "x"}}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("formatVersion 3 is not supported"),
        "{err}"
    );
    assert!(PortableSkill::from_json("[]").is_err());

    // A repo skill exports too, binary files as base64, and imports as an admin skill copy.
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "Deploy Now/SKILL.md",
        skill_md("Deploy now", "Ship."),
    );
    write(root.path(), "Deploy Now/notes.md", "notes\n");
    let skills = service(&store, &[root.path()]);
    let exported = skills.export("repo:Deploy Now").await.unwrap();
    assert_eq!(exported.skill.slug, "deploy-now");
    let imported = skills.import(exported, false).await.unwrap();
    assert_eq!(imported.skill.id, "admin:deploy-now");
    assert_eq!(imported.skill.files[0].path, "notes.md");
    write(
        root.path(),
        "Deploy Now/logo.png",
        [0x89u8, 0x50, 0xff, 0x00],
    );
    let exported = skills.export("repo:Deploy Now").await.unwrap();
    let logo = exported
        .skill
        .files
        .iter()
        .find(|f| f.path == "logo.png")
        .unwrap();
    assert_eq!(
        (logo.encoding.as_str(), logo.content.as_str()),
        ("base64", "iVD/AA==")
    );
}
