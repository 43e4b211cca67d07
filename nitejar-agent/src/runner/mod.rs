//! The reference run: what happens to a work item once it exists.
//!
//! For each agent that handles the work item's integration (the default agent when none is assigned):
//!
//! 1. a job is created (`RUNNING`), and the integration acknowledges receipt (Telegram's 👀);
//! 2. the prompt is built — the agent's system prompt, the message text, the skills resolved for the
//!    agent, its team and the integration type — and `run.pre_prompt` may change the prompt or block
//!    the run (the job ends `BLOCKED`, nothing is sent to the model); the skills then follow the
//!    system prompt as a list of names and descriptions the model loads with `use_skill`;
//! 3. turn by turn: `model.pre_call` (may change model, temperature, max tokens, provider metadata,
//!    or block: the run stops there), the model call, `model.post_call`; for each tool call
//!    `tool.pre_exec` (may change the input or block: the model is told the tool was not run),
//!    the tool, `tool.post_exec` (may change the output the model sees);
//! 4. delivery of the answer through the integration: `response.pre_deliver` (may change the
//!    content or block: nothing is sent), `post_response`, `response.post_deliver`;
//! 5. the job ends `COMPLETED` (or `FAILED` with its error), and its spans are written.
//!
//! Work items from webhooks reach [`Runner::run_claimed`] through the run queue ([`queue`]), which
//! claims them from the database with a lease; the transaction that finishes a run's last job also
//! removes the run from the queue, so a run is never both finished and queued, or neither.

mod job;
pub mod model;
mod prompt;
pub mod queue;
pub mod tools;

pub use prompt::{skills_section, MAX_PROMPT_SKILLS};

use job::JobRun;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::integration::PostResponseResult;
use nitejar_sdk::IntegrationInstance;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::skills::Skills;
use model::ModelProvider;
use nitejar_runtime::hooks::{BlockedBy, DispatchContext};
use nitejar_runtime::runtime::Runtime;
use nitejar_store::changes::{ChangeFeed, RevCache};
use nitejar_store::receipts::now_ms;
use nitejar_store::store::Topic;
use nitejar_store::store::{
    AgentRow, JobUpdate, NewAgent, NewJob, SpanRow, Store, StoreError, WorkItemRow,
};
use tools::{AgentTools, ToolSet};

/// The name of the agent a fresh install starts with.
pub const DEFAULT_AGENT_NAME: &str = "Nitejar";

/// The system prompt of an agent that sets none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful assistant. Answer the user's message clearly and briefly.";

/// An agent's settings (the `config` JSON of its row). Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentConfig {
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// The team the agent belongs to (for skill assignments).
    pub team_id: Option<String>,
    /// Marks the agent that handles integrations no agent is assigned to.
    pub is_default: bool,
}

impl AgentConfig {
    /// The config of an agent row; an unreadable config counts as empty (and is logged).
    pub fn of(agent: &AgentRow) -> AgentConfig {
        match agent
            .config
            .as_deref()
            .map(serde_json::from_str::<AgentConfig>)
        {
            None => AgentConfig::default(),
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(agent.id = %agent.id, "agent config is not readable, using defaults: {e}");
                AgentConfig::default()
            }
        }
    }
}

/// How runs behave.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Model calls per run at most.
    pub max_turns: u32,
    /// Time an integration gets for `post_response` and `acknowledge_receipt`.
    pub integration_timeout: Duration,
    /// Attempts at one delivery at most, the first included (default 3). Only a failure the
    /// integration marks `retryable` is tried again; every attempt carries the same idempotency key.
    /// Zero counts as one.
    pub delivery_attempts: u32,
    /// The wait before the second attempt at a delivery, doubled before each further one (default
    /// 1 s). The run, and the session's queue behind it, waits this long.
    pub delivery_backoff: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            max_turns: 8,
            integration_timeout: Duration::from_secs(30),
            delivery_attempts: 3,
            delivery_backoff: Duration::from_secs(1),
        }
    }
}

/// Integrations whose agents a runner remembers at most.
const AGENTS_CACHE_MAX: usize = 1024;

/// A work item ready to run, with the integration it came through.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub work_item: WorkItemRow,
    pub integration: IntegrationInstance,
    /// What `parse_webhook` handed back for `post_response`.
    pub response_context: Option<Value>,
    /// The plugin the integration belongs to (see [`nitejar_runtime::builtin::integration_owner`]): its calls
    /// are refused unless that plugin provides the type. `None` calls whichever plugin provides it
    /// (for hosts and tests that run work items directly; the run queue always sets it).
    pub owner: Option<String>,
}

/// Where a job is, or how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// In progress.
    Running,
    Completed,
    Blocked,
    Failed,
    /// Its server stopped before it finished; the work item was answered by a later job.
    Abandoned,
}

impl JobStatus {
    /// Every status, in the order a run's state weighs them (see the admin's run view).
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Blocked,
        JobStatus::Failed,
        JobStatus::Abandoned,
    ];

    /// The status of a stored name (any letter case); `None` for a name no release wrote.
    pub fn parse(stored: &str) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(stored))
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Blocked => "BLOCKED",
            JobStatus::Failed => "FAILED",
            JobStatus::Abandoned => "ABANDONED",
        }
    }
}

/// What one job did.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub job_id: String,
    pub agent_id: String,
    pub status: JobStatus,
    /// The hook that blocked the run or its delivery, if one did.
    pub blocked: Option<BlockedBy>,
    /// Every delivery attempt's result, in order.
    pub deliveries: Vec<PostResponseResult>,
    /// The final answer as delivered (after `response.pre_deliver`).
    pub final_content: Option<String>,
    pub error: Option<String>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Runs work items.
pub struct Runner {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    model: Arc<dyn ModelProvider>,
    tools: ToolSet,
    config: RunnerConfig,
    skills: Option<Arc<Skills>>,
    /// Tools each agent gets by its grants (see [`Runner::with_agent_tools`]).
    agent_tools: Option<Arc<dyn AgentTools>>,
    /// The default agent as last read, under the agents' change counter (see [`Runner::following`]).
    default_agent: tokio::sync::Mutex<Option<(i64, AgentRow)>>,
    /// The agents of each integration as last read (see [`Runner::following`]).
    agents: RevCache<Vec<AgentRow>>,
    changes: Option<Arc<ChangeFeed>>,
}

impl Runner {
    /// A runner.
    pub fn new(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        model: Arc<dyn ModelProvider>,
        tools: ToolSet,
        config: RunnerConfig,
    ) -> Self {
        Runner {
            agents: RevCache::new(None, Topic::Agents, AGENTS_CACHE_MAX),
            changes: None,
            runtime,
            store,
            model,
            tools,
            config,
            skills: None,
            agent_tools: None,
            default_agent: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the agents of an integration (and the default agent) once while `feed` says no agent
    /// or assignment changed, instead of once per run; the run queue reads integration rows the
    /// same way. Without a feed, every run reads them.
    pub fn following(mut self, feed: Arc<ChangeFeed>) -> Self {
        self.agents = RevCache::new(Some(feed.clone()), Topic::Agents, AGENTS_CACHE_MAX);
        self.changes = Some(feed);
        self
    }

    /// The change feed the runner follows, if any.
    pub fn changes(&self) -> Option<&Arc<ChangeFeed>> {
        self.changes.as_ref()
    }

    /// Gives runs their skills: resolved per run from this service, listed in the prompt (when the
    /// tool set has `use_skill`) and passed to `run.pre_prompt` and to tools.
    pub fn with_skills(mut self, skills: Arc<Skills>) -> Self {
        self.skills = Some(skills);
        self
    }

    /// Offers each run's agent the tools it holds from `tools` (read at the start of the run), on
    /// top of the runner's own; a call to one of them it does not hold is refused with a receipt.
    pub fn with_agent_tools(mut self, tools: Arc<dyn AgentTools>) -> Self {
        self.agent_tools = Some(tools);
        self
    }

    /// Makes sure one agent exists to handle integrations nobody is assigned to. A fresh install
    /// gets one, named [`DEFAULT_AGENT_NAME`]; an install with agents is left alone.
    pub async fn ensure_default_agent(&self) -> Result<AgentRow, StoreError> {
        let mut cached = self.default_agent.lock().await;
        let revision = self
            .changes
            .as_ref()
            .and_then(|f| f.exact_revision(Topic::Agents));
        if let (Some((at, agent)), Some(now)) = (cached.as_ref(), revision) {
            if *at == now {
                return Ok(agent.clone());
            }
        }
        let agent = self.find_or_create_default_agent().await?;
        *cached = revision.map(|r| (r, agent.clone()));
        Ok(agent)
    }

    async fn find_or_create_default_agent(&self) -> Result<AgentRow, StoreError> {
        let agents = self.store.list_agents().await?;
        if let Some(a) = agents.iter().find(|a| AgentConfig::of(a).is_default) {
            return Ok(a.clone());
        }
        if let Some(first) = agents.first() {
            return Ok(first.clone());
        }
        let config = AgentConfig {
            is_default: true,
            ..Default::default()
        };
        self.store
            .create_agent(NewAgent {
                id: None,
                name: DEFAULT_AGENT_NAME.into(),
                handle: Some("nitejar".into()),
                config: Some(serde_json::to_string(&config).unwrap_or_default()),
            })
            .await
    }

    /// The agents that handle an integration: those assigned to it, or the default agent.
    pub async fn agents_for(&self, integration_id: &str) -> Result<Vec<AgentRow>, StoreError> {
        if let Some(agents) = self.agents.get(integration_id) {
            return Ok(agents);
        }
        let tag = self.agents.tag();
        let assigned = self.store.agents_for_integration(integration_id).await?;
        let agents = if assigned.is_empty() {
            vec![self.ensure_default_agent().await?]
        } else {
            assigned
        };
        self.agents.put(integration_id, tag, agents.clone());
        Ok(agents)
    }

    /// Runs a work item: one job per agent handling its integration.
    pub async fn run(&self, request: &RunRequest) -> Result<Vec<RunReport>, RunError> {
        let agents = self
            .agents_for(request.work_item.integration_id.as_deref().unwrap_or(""))
            .await?;
        let mut reports = Vec::with_capacity(agents.len());
        for agent in agents {
            reports.push(self.run_job(&agent, request, None).await?);
        }
        Ok(reports)
    }

    /// Runs a work item claimed from the run queue as `run` = (seq, lease owner): one job per agent
    /// handling its integration, except the agents in `answered` (their jobs finished in an earlier
    /// attempt). The run leaves the queue in the transaction that finishes its last job.
    pub async fn run_claimed(
        &self,
        request: &RunRequest,
        answered: &std::collections::HashSet<String>,
        run: (i64, &str),
    ) -> Result<Vec<RunReport>, RunError> {
        let agents: Vec<AgentRow> = self
            .agents_for(request.work_item.integration_id.as_deref().unwrap_or(""))
            .await?
            .into_iter()
            .filter(|a| !answered.contains(&a.id))
            .collect();
        if agents.is_empty() {
            // Every agent answered before the process that ran it stopped.
            self.store.finish_run(run.0, run.1).await?;
            return Ok(Vec::new());
        }
        let last = agents.len() - 1;
        let mut reports = Vec::with_capacity(agents.len());
        for (i, agent) in agents.iter().enumerate() {
            let finishes = (i == last).then_some(run);
            reports.push(self.run_job(agent, request, finishes).await?);
        }
        Ok(reports)
    }

    async fn run_job(
        &self,
        agent: &AgentRow,
        request: &RunRequest,
        finishes: Option<(i64, &str)>,
    ) -> Result<RunReport, RunError> {
        let started_ms = now_ms();
        let job = self
            .store
            .create_job(NewJob {
                work_item_id: request.work_item.id.clone(),
                agent_id: agent.id.clone(),
                status: Some(JobStatus::Running.as_str().into()),
                started_at: Some(started_ms),
                ..Default::default()
            })
            .await?;
        let mut run = JobRun {
            runner: self,
            request,
            agent,
            config: AgentConfig::of(agent),
            ctx: DispatchContext::for_work_item(request.work_item.id.as_str())
                .with_job(job.id.as_str(), agent.id.as_str()),
            job_id: job.id.clone(),
            spans: Vec::new(),
            skills: Vec::new(),
            tools: self.tools.clone(),
            report: RunReport {
                job_id: job.id.clone(),
                agent_id: agent.id.clone(),
                status: JobStatus::Completed,
                blocked: None,
                deliveries: Vec::new(),
                final_content: None,
                error: None,
            },
        };
        let run_started = Instant::now();
        run.execute().await;
        let report = run.report.clone();
        let mut spans = std::mem::take(&mut run.spans);
        spans.push(span(
            &job.id,
            &agent.id,
            None,
            "run",
            "run",
            report.status.as_str(),
            started_ms,
            run_started.elapsed(),
            json!({ "work_item.id": request.work_item.id, "integration.type": request.integration.kind }),
        ));
        // One transaction for the spans, the job's end and, for the run's last job, the run's
        // removal from the queue.
        self.store
            .finish_job_and_run(
                &job.id,
                JobUpdate {
                    status: Some(report.status.as_str().into()),
                    error_text: Some(report.error.clone()),
                    completed_at: Some(now_ms()),
                    ..Default::default()
                },
                &spans,
                finishes,
            )
            .await?;
        Ok(report)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn span(
    job_id: &str,
    agent_id: &str,
    parent: Option<&str>,
    name: &str,
    kind: &str,
    status: &str,
    start_ms: i64,
    duration: Duration,
    attributes: Value,
) -> SpanRow {
    let duration_ms = duration.as_millis() as i64;
    SpanRow {
        id: nitejar_store::store::new_id(),
        trace_id: job_id.to_string(),
        parent_span_id: parent.map(str::to_string),
        name: name.to_string(),
        kind: kind.to_string(),
        status: status.to_string(),
        start_time: start_ms,
        end_time: Some(start_ms + duration_ms),
        duration_ms: Some(duration_ms),
        attributes: Some(attributes.to_string()),
        job_id: Some(job_id.to_string()),
        agent_id: Some(agent_id.to_string()),
        created_at: now_ms(),
    }
}

/// The text a run answers: the payload's `text`, else the work item's title.
pub fn message_text(work_item: &WorkItemRow) -> String {
    work_item
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| work_item.title.clone())
}

#[cfg(test)]
mod tests {
    use super::JobStatus;

    #[test]
    fn a_stored_job_status_reads_back_as_itself_and_nothing_else_does() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                JobStatus::parse(&status.as_str().to_ascii_lowercase()),
                Some(status)
            );
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str(), "the API spells it as stored");
        }
        assert_eq!(JobStatus::parse("DONE"), None);
        assert_eq!(JobStatus::parse(""), None);
    }
}
