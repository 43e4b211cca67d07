//! Skills in real runs: the runner on a SQLite store with the offline model, a test channel, and a
//! hook that records what `run.pre_prompt` (and the model) saw.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod skillkit;
mod testdb;

use std::sync::{Arc, Mutex};

use nitejar_core::receipts::{MemorySink, ReceiptKind, ReceiptStatus};
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runner::model::OfflineModel;
use nitejar_core::runner::tools::{CurrentTime, ToolSet};
use nitejar_core::runner::{JobStatus, RunRequest, Runner, RunnerConfig};
use nitejar_core::runtime::Runtime;
use nitejar_core::skills::{AssignmentInput, Skills, UseSkill};
use nitejar_core::store::{NewAgent, NewIntegration, NewWorkItem, Store};
use nitejar_sdk::hooks::{ModelPreCall, RunPrePrompt, ToolPostExec};
use nitejar_sdk::integration::{PostResponseOptions, PostResponseResult};
use nitejar_sdk::{
    HookResult, Host, Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance,
    Plugin, SkillContribution, WebhookParseResult, WebhookRequest,
};
use serde_json::{json, Map, Value};
use skillkit::{plugin_with_skills, service, skill_md, sqlite, write};

/// A channel that keeps what it is asked to send.
struct TestChannel {
    kind: &'static str,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Integration for TestChannel {
    fn descriptor(&self) -> IntegrationDescriptor {
        IntegrationDescriptor::new(self.kind, "Test channel", "records responses")
    }
    fn parse_webhook(
        &self,
        _request: &WebhookRequest,
        _instance: &IntegrationInstance,
        _host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        Ok(WebhookParseResult::ignore("not used"))
    }
    fn post_response(
        &self,
        _instance: &IntegrationInstance,
        _work_item_id: &str,
        content: &str,
        _response_context: Option<&Value>,
        _options: &PostResponseOptions,
        _host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        self.sent.lock().unwrap().push(content.to_string());
        Ok(PostResponseResult::sent(None))
    }
}

#[derive(Default)]
struct Seen {
    prompts: Mutex<Vec<RunPrePrompt>>,
    system: Mutex<Vec<String>>,
    tool_results: Mutex<Vec<ToolPostExec>>,
}

struct World {
    _db: testdb::TestDb,
    _root: tempfile::TempDir,
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    sink: Arc<MemorySink>,
    skills: Arc<Skills>,
    runner: Runner,
    seen: Arc<Seen>,
    sent: Arc<Mutex<Vec<String>>>,
}

async fn world() -> World {
    let (db, store) = sqlite().await;
    let root = tempfile::tempdir().unwrap();
    let sink = MemorySink::new();
    let runtime = Arc::new(Runtime::builder().sink(sink.clone()).build());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let channels = Plugin::builder()
        .integration(TestChannel {
            kind: "testchat",
            sent: sent.clone(),
        })
        .integration(TestChannel {
            kind: "otherchat",
            sent: sent.clone(),
        })
        .build();
    runtime
        .activate(ActivePlugin::from_plugin(
            PluginMeta::new("com.example.channels", "1.0.0", PluginOrigin::Builtin),
            &channels,
        ))
        .unwrap();
    let seen = Arc::new(Seen::default());
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let recorder = Plugin::builder()
        .on(move |_ctx, p: &RunPrePrompt| {
            s1.prompts.lock().unwrap().push(p.clone());
            HookResult::proceed()
        })
        .on(move |_ctx, p: &ModelPreCall| {
            let system = p.messages[0]["content"].as_str().unwrap_or("").to_string();
            s2.system.lock().unwrap().push(system);
            HookResult::proceed()
        })
        .on(move |_ctx, p: &ToolPostExec| {
            s3.tool_results.lock().unwrap().push(p.clone());
            HookResult::proceed()
        })
        .build();
    runtime
        .activate(ActivePlugin::from_plugin(
            PluginMeta::new("com.example.recorder", "1.0.0", PluginOrigin::Builtin),
            &recorder,
        ))
        .unwrap();
    let skills = Arc::new(service(&store, &[root.path()]).with_runtime(runtime.clone()));
    let runner = Runner::new(
        runtime.clone(),
        store.clone(),
        Arc::new(OfflineModel),
        ToolSet::new()
            .with(CurrentTime)
            .with(UseSkill::new(skills.clone())),
        RunnerConfig::default(),
    )
    .with_skills(skills.clone());
    World {
        _db: db,
        _root: root,
        store,
        runtime,
        sink,
        skills,
        runner,
        seen,
        sent,
    }
}

impl World {
    fn repo_skill(&self, dir: &str, description: &str) {
        write(
            self._root.path(),
            &format!("{dir}/SKILL.md"),
            skill_md(dir, description),
        );
    }

    async fn assign(&self, skill: &str, scope: &str, priority: i64, enabled: bool) {
        self.skills
            .assign(
                skill,
                AssignmentInput {
                    scope: scope.parse().unwrap(),
                    priority,
                    enabled,
                },
            )
            .await
            .unwrap();
    }

    async fn agent(&self, name: &str, team: Option<&str>) -> String {
        let config = json!({ "teamId": team });
        self.store
            .create_agent(NewAgent {
                id: None,
                name: name.into(),
                handle: None,
                config: Some(config.to_string()),
            })
            .await
            .unwrap()
            .id
    }

    async fn integration(&self, kind: &str, agents: &[&str]) -> IntegrationInstance {
        let row = self
            .store
            .create_integration(NewIntegration::new(kind, kind, Map::new()), &[])
            .await
            .unwrap();
        for agent in agents {
            self.store.assign_integration(agent, &row.id).await.unwrap();
        }
        IntegrationInstance::new(row.id, kind).with_name(kind)
    }

    async fn run(&self, integration: &IntegrationInstance, text: &str) -> Vec<JobStatus> {
        let work_item = self
            .store
            .create_work_item(NewWorkItem {
                integration_id: Some(integration.id.clone()),
                session_key: "s".into(),
                source: integration.kind.clone(),
                source_ref: "1".into(),
                title: text.into(),
                payload: Some(json!({ "text": text }).to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        let reports = self
            .runner
            .run(&RunRequest {
                work_item,
                integration: integration.clone(),
                response_context: None,
                owner: None,
            })
            .await
            .unwrap();
        reports.into_iter().map(|r| r.status).collect()
    }

    /// The skill names each `run.pre_prompt` saw, in order.
    fn prompt_skills(&self) -> Vec<Vec<String>> {
        self.seen
            .prompts
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.skills.iter().map(|s| s.name.clone()).collect())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_reaches_the_prompt_of_its_runs() {
    let w = world().await;
    for (dir, desc) in [
        ("everywhere", "For everyone."),
        ("support-team", "For the support team."),
        ("sales-team", "For the sales team."),
        ("just-ada", "For Ada only."),
        ("chat-only", "For testchat work."),
        ("other-only", "For otherchat work."),
        ("unassigned", "Nobody's."),
    ] {
        w.repo_skill(dir, desc);
    }
    let ada = w.agent("Ada", Some("support")).await;
    let bob = w.agent("Bob", Some("sales")).await;
    w.assign("everywhere", "global", 1, true).await;
    w.assign("support-team", "team:support", 3, true).await;
    w.assign("sales-team", "team:sales", 3, true).await;
    w.assign("just-ada", &format!("agent:{ada}"), 5, true).await;
    w.assign("chat-only", "integration_type:testchat", 2, true)
        .await;
    w.assign("other-only", "integration_type:otherchat", 2, true)
        .await;

    let chat = w.integration("testchat", &[&ada, &bob]).await;
    assert_eq!(w.run(&chat, "hello").await, [JobStatus::Completed; 2]);
    let other = w.integration("otherchat", &[&ada]).await;
    assert_eq!(w.run(&other, "hello").await, [JobStatus::Completed]);

    let seen = w.prompt_skills();
    // By priority, high first.
    assert_eq!(
        seen[0],
        ["just-ada", "support-team", "chat-only", "everywhere"]
    );
    assert_eq!(seen[1], ["sales-team", "chat-only", "everywhere"]);
    assert_eq!(
        seen[2],
        ["just-ada", "support-team", "other-only", "everywhere"]
    );
    let prompt = &w.seen.prompts.lock().unwrap()[0];
    assert_eq!(prompt.skills[0].id, "repo:just-ada");
    assert_eq!(
        prompt.skills[0].description.as_deref(),
        Some("For Ada only.")
    );
    assert!(
        !prompt.system_prompt.contains("## Skills"),
        "hooks see the agent's own prompt"
    );

    // The model sees them after the system prompt, with the way to load one.
    let system = &w.seen.system.lock().unwrap()[0];
    assert!(
        system.starts_with(nitejar_core::runner::DEFAULT_SYSTEM_PROMPT),
        "{system}"
    );
    assert!(system.contains("## Skills"), "{system}");
    assert!(system.contains("call the `use_skill` tool"), "{system}");
    assert!(
        system.contains("- just-ada: For Ada only.\n- support-team: For the support team.\n"),
        "{system}"
    );
    assert!(!system.contains("unassigned"), "{system}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_specific_assignment_and_the_operators_switch_decide() {
    let w = world().await;
    for dir in ["muted-for-ada", "team-only", "switched-off", "shared"] {
        w.repo_skill(dir, "x");
    }
    let ada = w.agent("Ada", Some("support")).await;
    w.assign("muted-for-ada", "global", 0, true).await;
    w.assign("muted-for-ada", &format!("agent:{ada}"), 0, false)
        .await;
    w.assign("team-only", "global", 0, false).await;
    w.assign("team-only", "team:support", 0, true).await;
    w.assign("switched-off", "global", 0, true).await;
    w.skills.set_enabled("switched-off", false).await.unwrap();
    // Two skills named `shared`: the admin one has precedence over the repo one.
    w.assign("repo:shared", "global", 9, true).await;
    w.skills
        .create(nitejar_core::skills::AdminSkillInput {
            slug: "shared".into(),
            name: "shared".into(),
            description: Some("admin version".into()),
            category: None,
            tags: vec![],
            version: None,
            requires_tools: vec![],
            content: "admin text".into(),
            files: vec![],
            enabled: true,
        })
        .await
        .unwrap();
    w.assign("admin:shared", "global", 0, true).await;

    let chat = w.integration("testchat", &[&ada]).await;
    w.run(&chat, "hello").await;
    let prompt = w.seen.prompts.lock().unwrap()[0].clone();
    let ids: Vec<&str> = prompt.skills.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["admin:shared", "repo:team-only"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_skill_hits_and_misses_inside_a_run() {
    let w = world().await;
    w.repo_skill("deploy", "Ship to production.");
    write(
        w._root.path(),
        "deploy/refs/checklist.md",
        "- [ ] tests pass\n",
    );
    w.runtime
        .activate(plugin_with_skills(
            "com.example.helper",
            "2.1.0",
            None,
            vec![SkillContribution::inline(
                "triage",
                "Triage",
                "Sort tickets by severity.",
            )],
        ))
        .unwrap();
    let ada = w.agent("Ada", None).await;
    w.assign("deploy", "global", 0, true).await;
    let chat = w.integration("testchat", &[&ada]).await;

    // Hit, by name, case-insensitively.
    w.run(&chat, "/tool use_skill {\"name\":\"DEPLOY\"}").await;
    let answer = w.sent.lock().unwrap().last().cloned().unwrap();
    assert!(
        answer.starts_with(
            "Tool use_skill returned: # Skill: deploy (repo:deploy)\nShip to production.\n"
        ),
        "{answer}"
    );
    assert!(answer.contains("Do the deploy thing."), "{answer}");
    assert!(
        answer.contains("Supporting files (1):\n- refs/checklist.md (17 bytes)"),
        "{answer}"
    );
    assert!(w.seen.tool_results.lock().unwrap()[0].success);

    // A supporting file.
    w.run(
        &chat,
        "/tool use_skill {\"name\":\"deploy\",\"file\":\"refs/checklist.md\"}",
    )
    .await;
    let answer = w.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(answer, "Tool use_skill returned: - [ ] tests pass\n");

    // A skill not assigned to the run's scope is not there for it, by name or by id, and the
    // answer names only the run's own skills.
    for query in ["triage", "plugin:com.example.helper/triage"] {
        w.run(&chat, &format!("/tool use_skill {{\"name\":\"{query}\"}}"))
            .await;
        let answer = w.sent.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            answer,
            format!(
                "Tool use_skill returned: There is no skill called `{query}` for this run. \
                 Skills for this run: deploy."
            )
        );
    }
    // Once assigned (here: to its integration type), it is.
    w.assign(
        "plugin:com.example.helper/triage",
        "integration_type:testchat",
        0,
        true,
    )
    .await;
    w.run(&chat, "/tool use_skill {\"name\":\"triage\"}").await;
    let answer = w.sent.lock().unwrap().last().cloned().unwrap();
    assert!(answer.contains("Sort tickets by severity."), "{answer}");

    // Miss.
    w.run(&chat, "/tool use_skill {\"name\":\"nope\"}").await;
    let answer = w.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        answer,
        "Tool use_skill returned: There is no skill called `nope` for this run. Skills for this \
         run: deploy, Triage."
    );
    let results = w.seen.tool_results.lock().unwrap().clone();
    assert!(!results.last().unwrap().success);

    // Each use is a `skill` receipt on the contributing plugin (the engine for repo skills).
    let receipts: Vec<_> = w
        .sink
        .receipts()
        .into_iter()
        .filter(|r| r.kind == ReceiptKind::Skill)
        .collect();
    assert_eq!(receipts.len(), 6);
    let line = |i: usize| {
        let r = &receipts[i];
        (
            r.plugin_id.to_string(),
            r.plugin_version.as_deref().unwrap_or("").to_string(),
            r.status,
            r.detail.as_ref().and_then(|d| d.get("skillId")).cloned(),
        )
    };
    assert_eq!(
        line(0),
        (
            "nitejar.skills".into(),
            nitejar_core::NITEJAR_VERSION.into(),
            ReceiptStatus::Ok,
            Some(json!("repo:deploy"))
        )
    );
    assert_eq!(
        receipts[1].detail.as_ref().unwrap()["file"],
        "refs/checklist.md"
    );
    assert_eq!(line(2).2, ReceiptStatus::Error);
    assert_eq!(receipts[2].detail.as_ref().unwrap()["query"], "triage");
    assert_eq!(line(3).2, ReceiptStatus::Error);
    assert_eq!(
        line(4),
        (
            "com.example.helper".into(),
            "2.1.0".into(),
            ReceiptStatus::Ok,
            Some(json!("plugin:com.example.helper/triage"))
        )
    );
    assert_eq!(line(5).2, ReceiptStatus::Error);
    assert_eq!(receipts[5].detail.as_ref().unwrap()["query"], "nope");
    assert!(receipts
        .iter()
        .all(|r| r.work_item_id.is_some() && r.job_id.is_some()));

    // A skill switched off by the operator leaves every run.
    w.skills.set_enabled("deploy", false).await.unwrap();
    w.run(&chat, "/tool use_skill {\"name\":\"repo:deploy\"}")
        .await;
    let answer = w.sent.lock().unwrap().last().cloned().unwrap();
    assert!(
        answer.starts_with(
            "Tool use_skill returned: There is no skill called `repo:deploy` for this run."
        ),
        "{answer}"
    );
}
