//! `nitejar skill list|show|assign`: on the skills roots and the database directly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

use std::process::Command;
use std::sync::Arc;

use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runtime::Runtime;
use nitejar_core::skills::{AdminSkillInput, Skills, SkillsConfig};
use nitejar_sdk::{Plugin, SkillContribution};
use serde_json::Value;

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

struct Env {
    data: tempfile::TempDir,
    skills: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            data: tempfile::tempdir().unwrap(),
            skills: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.skills.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn nitejar(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_nitejar"))
            .args(args)
            .env("NITEJAR_DATA_DIR", self.data.path())
            .env("NITEJAR_SKILLS_DIRS", self.skills.path())
            .env("ENCRYPTION_KEY", KEY_HEX)
            .env_remove("DATABASE_URL")
            .env_remove("SLOPBOT_SKILLS_DIRS")
            .output()
            .expect("run nitejar");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, stdout, stderr) = self.nitejar(args);
        assert_eq!(code, 0, "{stdout}{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// The same database the CLI opens, through the core (as a running server would write it).
    async fn service(&self, runtime: Option<Arc<Runtime>>) -> Skills {
        let url = self.data.path().join("nitejar.db").display().to_string();
        let cipher = Cipher::new(&Key::parse(KEY_HEX).unwrap());
        let store = nitejar_core::store::open(&url, cipher).await.unwrap();
        let skills = Skills::new(
            store,
            SkillsConfig {
                roots: vec![self.skills.path().to_path_buf()],
                ..Default::default()
            },
        );
        match runtime {
            Some(rt) => skills.with_runtime(rt),
            None => skills,
        }
    }
}

fn md(name: &str, description: &str) -> String {
    format!("---\nname: {name}\ndescription: {description}\ntags: [ops]\n---\n# {name}\n")
}

#[test]
fn list_show_and_assign_repo_skills() {
    let env = Env::new();
    env.write("deploy/SKILL.md", &md("Deploy", "Ship it."));
    env.write("deploy/refs/check.md", "- [ ] tests\n");
    env.write("bad/SKILL.md", "---\ntags: [Bad Tag]\n---\nx\n");

    let (code, stdout, stderr) = env.nitejar(&["skill", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ID           SOURCE  NAME    STATUS  ASSIGNED\nrepo:deploy  repo    Deploy  active  -\n"), "{stdout}");
    assert!(
        stdout.contains(
            "1 skill left out:\n  repo:bad (repo): tags[0]: `Bad Tag` is not a valid tag"
        ),
        "{stdout}"
    );

    let (code, stdout, stderr) = env.nitejar(&[
        "skill",
        "assign",
        "deploy",
        "--scope",
        "team:support",
        "--priority",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "repo:deploy → team:support (priority 3, on)\n");
    let (code, stdout, _) = env.nitejar(&[
        "skill",
        "assign",
        "DEPLOY",
        "--scope",
        "global",
        "--disable",
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "repo:deploy → global (priority 0, off)\n");
    let view = env.json(&[
        "skill",
        "assign",
        "repo:deploy",
        "--scope",
        "agent:a1",
        "--priority",
        "-2",
        "--json",
    ]);
    assert_eq!(view["scope"], "agent:a1");
    assert_eq!(view["priority"], -2);

    let listing = env.json(&["skill", "list", "--scope", "team:support", "--json"]);
    let skills = listing["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 1);
    assert_eq!(skills[0]["id"], "repo:deploy");
    assert_eq!(skills[0]["assignments"].as_array().unwrap().len(), 3);
    let none = env.json(&["skill", "list", "--source", "admin", "--json"]);
    assert_eq!(none["skills"], serde_json::json!([]));

    let (code, stdout, _) = env.nitejar(&["skill", "show", "Deploy"]);
    assert_eq!(code, 0);
    for line in [
        "repo:deploy — Deploy\n",
        "description: Ship it.\n",
        "files:       refs/check.md (12 bytes)\n",
        "assigned:    team:support (priority 3, on), global (priority 0, off), agent:a1 (priority -2, on)\n",
        "\n--- SKILL.md ---\n---\nname: Deploy\n",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from\n{stdout}");
    }
    let detail = env.json(&["skill", "show", "repo:deploy", "--json"]);
    assert_eq!(detail["content"], md("Deploy", "Ship it."));
    assert_eq!(detail["files"][0]["path"], "refs/check.md");
}

#[test]
fn errors_say_what_to_do() {
    let env = Env::new();
    env.write("deploy/SKILL.md", &md("Deploy", "Ship it."));
    let (code, _, stderr) = env.nitejar(&["skill", "show", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: no skill is called `nope`; available: Deploy\n"
    );
    let (code, _, stderr) = env.nitejar(&["skill", "assign", "deploy", "--scope", "everyone"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("use global, team:<id>, agent:<id> or integration_type:<type>"),
        "{stderr}"
    );
    let (code, _, stderr) = env.nitejar(&["skill", "list", "--source", "disk"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("use repo, plugin or admin"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_shows_which_source_wins_a_name() {
    let env = Env::new();
    env.write("deploy/SKILL.md", &md("Deploy", "repo version"));
    // A server with an active plugin contributing `deploy`, and an operator's admin skill.
    let runtime = Arc::new(Runtime::builder().build());
    let plugin = Plugin::builder()
        .skill(SkillContribution::inline(
            "deploy",
            "deploy",
            "plugin version",
        ))
        .build();
    runtime
        .activate(ActivePlugin::from_plugin(
            PluginMeta::new("com.example.p", "1.0.0", PluginOrigin::ThirdParty),
            &plugin,
        ))
        .unwrap();
    let server = env.service(Some(runtime.clone())).await;
    server.sync_plugins().await.unwrap();
    server
        .create(AdminSkillInput {
            slug: "deploy".into(),
            name: "Deploy".into(),
            description: Some("the operator's".into()),
            category: None,
            tags: vec![],
            version: None,
            requires_tools: vec![],
            content: "admin version".into(),
            files: vec![],
            enabled: true,
        })
        .await
        .unwrap();

    let (code, stdout, stderr) = env.nitejar(&["skill", "list"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "ID                           SOURCE  NAME    STATUS                    ASSIGNED",
            "admin:deploy                 admin   Deploy  active                    -",
            "plugin:com.example.p/deploy  plugin  deploy  shadowed by admin:deploy  -",
            "repo:deploy                  repo    Deploy  shadowed by admin:deploy  -",
        ]
    );
    let detail = env.json(&["skill", "show", "deploy", "--json"]);
    assert_eq!(
        detail["shadows"],
        serde_json::json!(["plugin:com.example.p/deploy", "repo:deploy"])
    );

    // The plugin is disabled in the server: the CLI sees it as not active.
    runtime.deactivate("com.example.p");
    server.sync_plugins().await.unwrap();
    let (_, stdout, _) = env.nitejar(&["skill", "list", "--source", "plugin"]);
    assert!(
        stdout.contains("plugin:com.example.p/deploy  plugin  deploy  plugin not active"),
        "{stdout}"
    );
}
