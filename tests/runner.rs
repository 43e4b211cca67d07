//! The reference run: every change a hook policy allows is honoured at its call site, and every block
//! has its documented effect. Driven with a scripted model provider and a recording integration on a
//! real SQLite store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::receipts::{MemorySink, Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::runner::model::{
    ChatRequest, ChatResponse, ModelFuture, ModelProvider, ToolCall,
};
use nitejar_core::runner::tools::{
    CurrentTime, Tool, ToolContext, ToolFuture, ToolOutput, ToolSet,
};
use nitejar_core::runner::{JobStatus, RunRequest, Runner, RunnerConfig};
use nitejar_core::runtime::Runtime;
use nitejar_core::store::{self, NewWorkItem, Store};
use nitejar_sdk::hooks::*;
use nitejar_sdk::integration::{PostResponseOptions, PostResponseResult, ResponseMode};
use nitejar_sdk::{
    HookResult, Host, Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance,
    Plugin, WebhookParseResult, WebhookRequest,
};
use serde_json::{json, Value};

/// A model that answers from a script and records every request.
struct Scripted {
    answers: Mutex<Vec<ChatResponse>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl Scripted {
    fn new(mut answers: Vec<ChatResponse>) -> Arc<Self> {
        answers.reverse();
        Arc::new(Scripted {
            answers: Mutex::new(answers),
            requests: Mutex::new(Vec::new()),
        })
    }
    fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl ModelProvider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn default_model(&self) -> &str {
        "base-model"
    }
    fn complete(&self, request: ChatRequest) -> ModelFuture<'_> {
        self.requests.lock().unwrap().push(request);
        let answer = self.answers.lock().unwrap().pop().unwrap_or_default();
        Box::pin(async move { Ok(answer) })
    }
}

fn text(content: &str) -> ChatResponse {
    ChatResponse {
        content: Some(content.into()),
        ..Default::default()
    }
}

fn tool_call(name: &str, args: Value) -> ChatResponse {
    ChatResponse {
        content: None,
        tool_calls: vec![ToolCall {
            id: "call-1".into(),
            name: name.into(),
            arguments: args,
        }],
        usage: Value::Null,
    }
}

/// What [`Recorder`] does with one `post_response` call.
#[derive(Clone)]
enum Answer {
    /// Answers with this result.
    Result(PostResponseResult),
    /// Panics.
    Panic,
    /// Sleeps this long, then says it was sent.
    Hang(Duration),
}

/// An integration that records what it was asked to deliver, and answers from a script (sent,
/// once the script is used up).
#[derive(Clone)]
struct Recorder {
    mode: ResponseMode,
    calls: Arc<Mutex<Vec<(String, PostResponseOptions)>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Recorder {
    fn new(mode: ResponseMode) -> Self {
        Recorder {
            mode,
            calls: Arc::default(),
            script: Arc::default(),
        }
    }
}

impl Integration for Recorder {
    fn descriptor(&self) -> IntegrationDescriptor {
        IntegrationDescriptor::new("recorder", "Recorder", "records deliveries")
            .response_mode(self.mode)
    }
    fn parse_webhook(
        &self,
        _: &WebhookRequest,
        _: &IntegrationInstance,
        _: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        Ok(WebhookParseResult::ignore("not used"))
    }
    fn post_response(
        &self,
        _: &IntegrationInstance,
        _: &str,
        content: &str,
        _: Option<&Value>,
        options: &PostResponseOptions,
        _: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        self.calls
            .lock()
            .unwrap()
            .push((content.to_string(), options.clone()));
        let answer = self.script.lock().unwrap().pop_front();
        match answer {
            None => Ok(PostResponseResult::sent(Some("ref-1".into()))),
            Some(Answer::Result(result)) => Ok(result),
            Some(Answer::Panic) => panic!("the recorder was told to panic"),
            Some(Answer::Hang(time)) => {
                std::thread::sleep(time);
                Ok(PostResponseResult::sent(Some("late".into())))
            }
        }
    }
}

/// A tool that echoes its input, so the test sees what reached it.
struct EchoInput;

impl Tool for EchoInput {
    fn spec(&self) -> nitejar_core::runner::model::ToolSpec {
        nitejar_core::runner::model::ToolSpec {
            name: "echo_input".into(),
            description: "echoes its input".into(),
            parameters: json!({"type": "object"}),
        }
    }
    fn call<'a>(&'a self, _ctx: &'a ToolContext, input: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move { ToolOutput::ok(input.to_string()) })
    }
}

struct Fixture {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    sink: Arc<MemorySink>,
    delivered: Recorder,
    _dir: tempfile::TempDir,
}

/// A fixture whose integration posts only the final answer.
async fn fixture() -> Fixture {
    fixture_with(ResponseMode::Final).await
}

async fn fixture_with(mode: ResponseMode) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nitejar.db");
    let store = store::open(db.to_str().unwrap(), Cipher::new(&Key::generate().unwrap()))
        .await
        .unwrap();
    let sink = MemorySink::new();
    let runtime = Arc::new(Runtime::builder().sink(sink.clone()).build());
    let delivered = Recorder::new(mode);
    runtime
        .activate(ActivePlugin::from_plugin(
            PluginMeta::new("com.test.recorder", "1.0.0", PluginOrigin::Builtin),
            &Plugin::builder().integration(delivered.clone()).build(),
        ))
        .unwrap();
    Fixture {
        runtime,
        store,
        sink,
        delivered,
        _dir: dir,
    }
}

impl Fixture {
    fn hooks(&self, plugin: Plugin) {
        self.runtime
            .activate(ActivePlugin::from_plugin(
                PluginMeta::new("com.test.hooks", "1.0.0", PluginOrigin::Builtin),
                &plugin,
            ))
            .unwrap();
    }

    async fn run(&self, model: Arc<Scripted>, message: &str) -> nitejar_core::runner::RunReport {
        let work_item = self.work_item(message).await;
        self.run_item(model, &work_item, RunnerConfig::default())
            .await
    }

    async fn work_item(&self, message: &str) -> nitejar_core::store::WorkItemRow {
        self.store
            .create_work_item(NewWorkItem {
                integration_id: Some("int-1".into()),
                session_key: "recorder:1".into(),
                source: "recorder".into(),
                source_ref: "m1".into(),
                title: message.into(),
                payload: Some(json!({ "text": message }).to_string()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// Runs a work item (again, if it ran before: a new job, as after a crash).
    async fn run_item(
        &self,
        model: Arc<Scripted>,
        work_item: &nitejar_core::store::WorkItemRow,
        config: RunnerConfig,
    ) -> nitejar_core::runner::RunReport {
        let runner = Runner::new(
            self.runtime.clone(),
            self.store.clone(),
            model,
            ToolSet::new().with(CurrentTime).with(EchoInput),
            config,
        );
        let request = RunRequest {
            work_item: work_item.clone(),
            integration: IntegrationInstance::new("int-1", "recorder").with_name("rec"),
            response_context: None,
            owner: None,
        };
        let mut reports = runner.run(&request).await.unwrap();
        assert_eq!(reports.len(), 1, "the default agent runs it");
        let report = reports.remove(0);
        let job = self.store.get_job(&report.job_id).await.unwrap().unwrap();
        assert_eq!(
            job.status,
            report.status.as_str(),
            "the job row records the outcome"
        );
        assert_eq!(
            job.error_text, report.error,
            "the job row records the error"
        );
        report
    }

    /// What `post_response` was given, call by call.
    fn delivered(&self) -> Vec<String> {
        self.posts()
            .into_iter()
            .map(|(content, _)| content)
            .collect()
    }

    fn posts(&self) -> Vec<(String, PostResponseOptions)> {
        self.delivered.calls.lock().unwrap().clone()
    }

    /// The answers `post_response` gives, in order; sent once they are used up.
    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.delivered.script.lock().unwrap().extend(answers);
    }

    /// The receipts of `post_response` calls, oldest first.
    fn post_receipts(&self) -> Vec<Receipt> {
        self.sink
            .receipts()
            .into_iter()
            .filter(|r| {
                r.kind == ReceiptKind::Integration
                    && r.detail.as_ref().and_then(|d| d["operation"].as_str())
                        == Some("post_response")
            })
            .collect()
    }
}

#[tokio::test]
async fn every_allowed_change_reaches_its_call_site() {
    let f = fixture().await;
    f.hooks(
        Plugin::builder()
            .on(|_c, p: &RunPrePrompt| {
                HookResult::change(
                    RunPrePromptPatch::new()
                        .system_prompt(format!("{} Be terse.", p.system_prompt))
                        .user_message(format!("[ticket] {}", p.user_message)),
                )
            })
            .on(|_c, _m: &ModelPreCall| {
                HookResult::change(
                    ModelPreCallPatch::new()
                        .model("swapped-model")
                        .temperature(0.1)
                        .max_tokens(77)
                        .provider_metadata(json!({"user": "team-a"})),
                )
            })
            .on(|_c, t: &ToolPreExec| {
                let mut input = t.tool_input.clone();
                input["added_by_hook"] = json!(true);
                HookResult::change(ToolPreExecPatch::new().tool_input(input))
            })
            .on(|_c, t: &ToolPostExec| {
                HookResult::change(
                    ToolPostExecPatch::new().output(format!("{} (checked)", t.output)),
                )
            })
            .on(|_c, r: &ResponsePreDeliver| {
                HookResult::change(
                    ResponsePreDeliverPatch::new().content(r.content.replace("secret", "******")),
                )
            })
            .build(),
    );
    let model = Scripted::new(vec![
        tool_call("echo_input", json!({"q": 1})),
        text("the secret answer"),
    ]);
    let report = f.run(model.clone(), "hello").await;
    assert_eq!(report.status, JobStatus::Completed, "{report:?}");

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert!(first.messages[0]
        .content
        .as_deref()
        .unwrap_or_default()
        .ends_with("Be terse."));
    assert_eq!(first.messages[1].content.as_deref(), Some("[ticket] hello"));
    assert_eq!(first.model, "swapped-model");
    assert_eq!(first.temperature, Some(0.1));
    assert_eq!(first.max_tokens, Some(77));
    assert_eq!(first.provider_metadata, json!({"user": "team-a"}));
    // The tool got the changed input, and the model the changed output.
    let tool_result = requests[1].messages.last().unwrap();
    assert_eq!(tool_result.role, "tool");
    assert_eq!(
        tool_result.content.as_deref(),
        Some(r#"{"added_by_hook":true,"q":1} (checked)"#)
    );
    assert_eq!(f.delivered(), ["the ****** answer"]);
    assert_eq!(report.final_content.as_deref(), Some("the ****** answer"));
}

#[tokio::test]
async fn a_blocked_prompt_stops_the_run_before_the_model() {
    let f = fixture().await;
    f.hooks(
        Plugin::builder()
            .on(|_c, _p: &RunPrePrompt| HookResult::block("outside business hours"))
            .build(),
    );
    let model = Scripted::new(vec![text("never")]);
    let report = f.run(model.clone(), "hi").await;
    assert_eq!(report.status, JobStatus::Blocked);
    assert_eq!(report.blocked.unwrap().reason, "outside business hours");
    assert!(model.requests().is_empty());
    assert!(f.delivered().is_empty());
}

#[tokio::test]
async fn a_blocked_model_call_stops_the_run() {
    let f = fixture().await;
    f.hooks(
        Plugin::builder()
            .on(|_c, _m: &ModelPreCall| HookResult::block("budget exhausted"))
            .build(),
    );
    let model = Scripted::new(vec![text("never")]);
    let report = f.run(model.clone(), "hi").await;
    assert_eq!(report.status, JobStatus::Blocked);
    assert!(model.requests().is_empty());
    assert!(f.delivered().is_empty());
}

#[tokio::test]
async fn a_blocked_tool_is_not_run_and_the_model_is_told_why() {
    let f = fixture().await;
    let post_exec_saw = Arc::new(Mutex::new(None));
    let seen = post_exec_saw.clone();
    f.hooks(
        Plugin::builder()
            .hook(HookOptions::new().fail_closed(), |_c, t: &ToolPreExec| {
                if t.tool_name == "echo_input" {
                    HookResult::block("echo_input is not allowed here")
                } else {
                    HookResult::proceed()
                }
            })
            .on(move |_c, t: &ToolPostExec| {
                *seen.lock().unwrap() = Some(t.success);
                HookResult::proceed()
            })
            .build(),
    );
    let model = Scripted::new(vec![
        tool_call("echo_input", json!({})),
        text("ok, I won't"),
    ]);
    let report = f.run(model.clone(), "do it").await;
    assert_eq!(report.status, JobStatus::Completed);
    let tool_result = model.requests()[1].messages.last().cloned().unwrap();
    assert_eq!(
        tool_result.content.as_deref(),
        Some("[blocked] echo_input is not allowed here")
    );
    assert_eq!(f.delivered(), ["ok, I won't"]);
    assert_eq!(
        *post_exec_saw.lock().unwrap(),
        Some(false),
        "tool.post_exec sees the refusal"
    );
}

#[tokio::test]
async fn a_blocked_delivery_sends_nothing() {
    let f = fixture().await;
    f.hooks(
        Plugin::builder()
            .on(|_c, r: &ResponsePreDeliver| {
                if r.content.contains("password") {
                    HookResult::block("would leak a password")
                } else {
                    HookResult::proceed()
                }
            })
            .build(),
    );
    let report = f
        .run(Scripted::new(vec![text("the password is hunter2")]), "?")
        .await;
    assert_eq!(report.status, JobStatus::Blocked);
    assert!(f.delivered().is_empty());
    assert!(report.deliveries.is_empty());
}

#[tokio::test]
async fn a_failing_model_fails_the_job_with_its_error() {
    struct Down;
    impl ModelProvider for Down {
        fn name(&self) -> &str {
            "down"
        }
        fn default_model(&self) -> &str {
            "m"
        }
        fn complete(&self, _r: ChatRequest) -> ModelFuture<'_> {
            Box::pin(async {
                Err(nitejar_core::runner::model::ModelError::Status {
                    status: 503,
                    body: "overloaded".into(),
                })
            })
        }
    }
    let f = fixture().await;
    let runner = Runner::new(
        f.runtime.clone(),
        f.store.clone(),
        Arc::new(Down),
        ToolSet::new(),
        RunnerConfig::default(),
    );
    let work_item = f
        .store
        .create_work_item(NewWorkItem {
            session_key: "s".into(),
            source: "recorder".into(),
            source_ref: "r".into(),
            title: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let reports = runner
        .run(&RunRequest {
            work_item,
            integration: IntegrationInstance::new("int-1", "recorder"),
            response_context: None,
            owner: None,
        })
        .await
        .unwrap();
    assert_eq!(reports[0].status, JobStatus::Failed);
    assert!(reports[0].error.as_deref().unwrap().contains("503"));
    let job = f.store.get_job(&reports[0].job_id).await.unwrap().unwrap();
    assert_eq!(job.status, "FAILED");
    assert!(job.error_text.unwrap().contains("overloaded"));
}

#[tokio::test]
async fn the_agents_of_an_integration_are_reread_when_the_feed_says_agents_changed() {
    use nitejar_core::changes::ChangeFeed;
    use nitejar_core::store::Topic;
    let f = fixture().await;
    let integration = f
        .store
        .create_integration(
            nitejar_core::store::NewIntegration::new("recorder", "agents", Default::default()),
            &[],
        )
        .await
        .unwrap();
    let runner = || {
        Runner::new(
            f.runtime.clone(),
            f.store.clone(),
            Arc::new(nitejar_core::runner::model::OfflineModel),
            ToolSet::new(),
            RunnerConfig::default(),
        )
    };
    // Not started: it moves only when told to read the counters, so what the cache serves between
    // a write and that read is seen deterministically.
    let feed = ChangeFeed::open(f.store.clone()).await.unwrap();
    let caching = runner().following(feed.clone());
    let fresh = runner();
    let names = |agents: Vec<nitejar_core::store::AgentRow>| {
        agents.into_iter().map(|a| a.name).collect::<Vec<_>>()
    };
    let before = names(caching.agents_for(&integration.id).await.unwrap());
    assert_eq!(
        before,
        names(fresh.agents_for(&integration.id).await.unwrap())
    );

    let support = f
        .store
        .create_agent(nitejar_core::store::NewAgent {
            name: "Support".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    f.store
        .assign_integration(&support.id, &integration.id)
        .await
        .unwrap();
    assert_eq!(
        names(fresh.agents_for(&integration.id).await.unwrap()),
        ["Support"]
    );
    assert_eq!(
        names(caching.agents_for(&integration.id).await.unwrap()),
        before,
        "served from the cache until the feed reads the counters"
    );
    // A change to another topic leaves the cache alone.
    let agents_at = feed.sync().await.unwrap().get(Topic::Agents);
    assert_eq!(
        names(caching.agents_for(&integration.id).await.unwrap()),
        ["Support"],
        "read again once the agents' counter moved"
    );
    f.store
        .update_integration(
            &integration.id,
            nitejar_core::store::IntegrationUpdate {
                name: Some("renamed".into()),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
    assert_eq!(feed.sync().await.unwrap().get(Topic::Agents), agents_at);

    // Started, the feed sees a write by itself: the test waits on it, not on a clock.
    feed.start(Duration::from_secs(3600));
    let billing = f
        .store
        .create_agent(nitejar_core::store::NewAgent {
            name: "Billing".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    f.store
        .assign_integration(&billing.id, &integration.id)
        .await
        .unwrap();

    assert!(
        feed.wait_past(Topic::Agents, agents_at, Duration::from_secs(5))
            .await,
        "the feed saw the write"
    );
    let mut after = names(caching.agents_for(&integration.id).await.unwrap());
    after.sort();
    assert_eq!(after, ["Billing", "Support"]);
}

/// Retries that wait milliseconds, not seconds.
fn fast_retries(attempts: u32) -> RunnerConfig {
    RunnerConfig {
        delivery_attempts: attempts,
        delivery_backoff: Duration::from_millis(5),
        ..RunnerConfig::default()
    }
}

fn detail(receipt: &Receipt) -> &Value {
    receipt
        .detail
        .as_ref()
        .expect("integration receipts have detail")
}

fn keys(f: &Fixture) -> Vec<Option<String>> {
    f.posts()
        .into_iter()
        .map(|(_, options)| options.idempotency_key)
        .collect()
}

#[tokio::test]
async fn a_retryable_delivery_failure_is_tried_again_with_the_same_key() {
    let f = fixture().await;
    let pre_deliver = Arc::new(Mutex::new(0));
    let post_deliver = Arc::new(Mutex::new(Vec::new()));
    let (pre, post) = (pre_deliver.clone(), post_deliver.clone());
    f.hooks(
        Plugin::builder()
            .on(move |_c, _r: &ResponsePreDeliver| {
                *pre.lock().unwrap() += 1;
                HookResult::proceed()
            })
            .on(move |_c, r: &ResponsePostDeliver| {
                post.lock().unwrap().push(r.result.clone());
                HookResult::proceed()
            })
            .build(),
    );
    f.script([Answer::Result(PostResponseResult::failed(
        "Too Many Requests: retry after 1",
        true,
    ))]);
    let item = f.work_item("hi").await;
    let report = f
        .run_item(Scripted::new(vec![text("hello")]), &item, fast_retries(3))
        .await;

    assert_eq!(report.status, JobStatus::Completed, "{report:?}");
    assert_eq!(f.delivered(), ["hello", "hello"]);
    let keys = keys(&f);
    assert!(keys[0].is_some());
    assert_eq!(keys[0], keys[1], "both attempts carry one key");
    assert_eq!(report.deliveries.len(), 2, "the report has every attempt");

    let receipts = f.post_receipts();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    assert_eq!(receipts[0].status, ReceiptStatus::Error);
    assert_eq!(
        detail(&receipts[0])["error"],
        json!("Too Many Requests: retry after 1")
    );
    assert_eq!(detail(&receipts[0])["retryable"], json!(true));
    assert_eq!(detail(&receipts[0])["attempt"], json!(1));
    assert_eq!(receipts[1].status, ReceiptStatus::Ok);
    assert_eq!(detail(&receipts[1])["attempt"], json!(2));
    for receipt in &receipts {
        assert_eq!(detail(receipt)["idempotency_key"], json!(keys[0]));
        assert_eq!(detail(receipt)["type"], json!("recorder"));
    }

    assert_eq!(
        *pre_deliver.lock().unwrap(),
        1,
        "response.pre_deliver runs once"
    );
    let seen = post_deliver.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "response.post_deliver runs once");
    assert!(seen[0].success, "with the final result: {seen:?}");
}

#[tokio::test]
async fn a_delivery_failure_that_is_not_retryable_fails_the_job_at_once() {
    let f = fixture().await;
    f.script([Answer::Result(PostResponseResult::failed(
        "Forbidden: bot was blocked by the user",
        false,
    ))]);
    let item = f.work_item("hi").await;
    let report = f
        .run_item(Scripted::new(vec![text("hello")]), &item, fast_retries(3))
        .await;

    assert_eq!(report.status, JobStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("bot was blocked by the user"), "{error}");
    assert_eq!(f.delivered().len(), 1, "one attempt");

    let receipts = f.post_receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0].status,
        ReceiptStatus::Error,
        "the receipt does not say ok for a message that never went out"
    );
    assert_eq!(
        detail(&receipts[0])["error"],
        json!("Forbidden: bot was blocked by the user")
    );
    assert_eq!(detail(&receipts[0])["retryable"], json!(false));
    assert_eq!(detail(&receipts[0])["attempt"], json!(1));
    assert_eq!(detail(&receipts[0])["operation"], json!("post_response"));
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_fails_the_job_after_its_attempts() {
    let f = fixture().await;
    // More failures than attempts, so only the limit can stop the retries.
    f.script(std::iter::repeat_n(
        Answer::Result(PostResponseResult::failed("Bad Gateway", true)),
        9,
    ));
    let item = f.work_item("hi").await;
    let report = f
        .run_item(Scripted::new(vec![text("hello")]), &item, fast_retries(4))
        .await;

    assert_eq!(report.status, JobStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("Bad Gateway"), "{error}");
    assert!(error.contains("4 attempts"), "{error}");
    assert_eq!(f.delivered().len(), 4, "exactly delivery_attempts attempts");
    let receipts = f.post_receipts();
    let attempts: Vec<_> = receipts
        .iter()
        .map(|r| detail(r)["attempt"].clone())
        .collect();
    assert_eq!(attempts, [json!(1), json!(2), json!(3), json!(4)]);
    assert!(receipts.iter().all(|r| r.status == ReceiptStatus::Error));
}

#[tokio::test]
async fn a_panicking_or_timed_out_delivery_is_not_tried_again() {
    // The post may have gone out before the integration panicked or was given up on.
    let f = fixture().await;
    f.script([Answer::Panic]);
    let item = f.work_item("hi").await;
    let report = f
        .run_item(Scripted::new(vec![text("hello")]), &item, fast_retries(3))
        .await;
    assert_eq!(report.status, JobStatus::Failed);
    assert_eq!(f.delivered().len(), 1);

    let f = fixture().await;
    f.script([Answer::Hang(Duration::from_millis(500))]);
    let item = f.work_item("hi").await;
    let config = RunnerConfig {
        integration_timeout: Duration::from_millis(100),
        ..fast_retries(3)
    };
    let report = f
        .run_item(Scripted::new(vec![text("hello")]), &item, config)
        .await;
    assert_eq!(report.status, JobStatus::Failed);
    assert_eq!(f.delivered().len(), 1);
    let receipts = f.post_receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].status, ReceiptStatus::Timeout);
}

#[tokio::test]
async fn the_idempotency_key_is_the_same_on_every_run_of_a_work_item() {
    let f = fixture().await;
    let item = f.work_item("hi").await;
    let first = f
        .run_item(
            Scripted::new(vec![text("one")]),
            &item,
            RunnerConfig::default(),
        )
        .await;
    // A retried run, as after a crash: a new job of the same agent, maybe worded differently.
    let second = f
        .run_item(
            Scripted::new(vec![text("one, again")]),
            &item,
            RunnerConfig::default(),
        )
        .await;
    assert_ne!(first.job_id, second.job_id);
    assert_eq!(first.agent_id, second.agent_id);
    let expected = format!("{}:{}:0", item.id, first.agent_id);
    assert_eq!(keys(&f), [Some(expected.clone()), Some(expected)]);
}

#[tokio::test]
async fn each_delivery_of_a_job_has_its_own_key_however_often_it_was_tried() {
    let f = fixture_with(ResponseMode::Streaming).await;
    f.script([Answer::Result(PostResponseResult::failed("timeout", true))]);
    let item = f.work_item("hi").await;
    let model = Scripted::new(vec![
        ChatResponse {
            content: Some("looking it up".into()),
            ..tool_call("current_time", json!({}))
        },
        text("it is noon"),
    ]);
    let report = f.run_item(model, &item, fast_retries(3)).await;
    assert_eq!(report.status, JobStatus::Completed, "{report:?}");
    assert_eq!(
        f.delivered(),
        ["looking it up", "looking it up", "it is noon"]
    );
    let key = |n: usize| Some(format!("{}:{}:{n}", item.id, report.agent_id));
    assert_eq!(keys(&f), [key(0), key(0), key(1)]);
}
