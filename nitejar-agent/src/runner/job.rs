//! One job in progress: the prompt, the model turns with their tool calls, and the delivery, each
//! wrapped by its hooks (see the [module docs](super) for the order and what each hook may do).

use std::time::{Duration, Instant};

use nitejar_sdk::hooks::{
    ModelPostCall, ModelPreCall, ModelToolCall, PromptSkill, ResponsePostDeliver,
    ResponsePreDeliver, RunPrePrompt, ToolPostExec, ToolPreExec,
};
use nitejar_sdk::integration::{PostResponseOptions, PostResponseResult, ResponseMode};
use serde_json::{json, Value};

use super::model::{self, ChatMessage, ChatRequest};
use super::tools::{ToolContext, ToolOutput, ToolSet};
use super::{
    message_text, prompt, skills_section, span, AgentConfig, JobStatus, RunReport, RunRequest,
    Runner, DEFAULT_SYSTEM_PROMPT,
};
use crate::skills::{RunScope, USE_SKILL};
use nitejar_runtime::hooks::{BlockedBy, DispatchContext};
use nitejar_runtime::runtime::{AnswerFailure, CallReceipt};
use nitejar_store::receipts::now_ms;
use nitejar_store::store::{AgentRow, SpanRow};

/// One job in progress.
pub(super) struct JobRun<'a> {
    pub(super) runner: &'a Runner,
    pub(super) request: &'a RunRequest,
    pub(super) agent: &'a AgentRow,
    pub(super) config: AgentConfig,
    pub(super) ctx: DispatchContext,
    pub(super) job_id: String,
    pub(super) spans: Vec<SpanRow>,
    pub(super) report: RunReport,
    /// The run's skills, as `run.pre_prompt` saw them.
    pub(super) skills: Vec<PromptSkill>,
    /// The tools of this run: the runner's, and those its agent holds.
    pub(super) tools: ToolSet,
}

impl JobRun<'_> {
    /// The skills of this run: its agent's, its team's, its integration type's and the global ones.
    async fn resolve_skills(&self) -> Vec<PromptSkill> {
        let scope = RunScope {
            agent_id: self.agent.id.clone(),
            team_id: self.config.team_id.clone(),
            integration_type: Some(self.request.integration.kind.clone()),
        };
        prompt::run_skills(self.runner.skills.as_deref(), &scope, &self.job_id).await
    }

    fn block(&mut self, blocked: BlockedBy) {
        self.report.status = JobStatus::Blocked;
        self.report.blocked = Some(blocked);
    }

    fn fail(&mut self, error: impl Into<String>) {
        self.report.status = JobStatus::Failed;
        self.report.error = Some(error.into());
    }

    fn span(
        &mut self,
        name: &str,
        kind: &str,
        status: &str,
        start_ms: i64,
        took: Duration,
        attrs: Value,
    ) {
        let s = span(
            &self.job_id,
            &self.agent.id,
            None,
            name,
            kind,
            status,
            start_ms,
            took,
            attrs,
        );
        self.spans.push(s);
    }

    fn response_mode(&self) -> ResponseMode {
        self.runner
            .runtime
            .registry()
            .integration(&self.request.integration.kind)
            .map(|e| e.descriptor.response_mode)
            .unwrap_or_default()
    }

    pub(super) async fn execute(&mut self) {
        let runner = self.runner;
        let timeout = runner.config.integration_timeout;

        // Acknowledge receipt (a reaction, a typing indicator); a failure here never stops the run.
        let (instance, rc) = (
            self.request.integration.clone(),
            self.request.response_context.clone(),
        );
        let _ = self
            .call_integration(
                "acknowledge_receipt",
                timeout,
                CallReceipt::new(),
                move |i, host| i.acknowledge_receipt(&instance, rc.as_ref(), host),
            )
            .await;

        let text = message_text(&self.request.work_item);
        if let Some(granted) = &self.runner.agent_tools {
            self.tools = self
                .runner
                .tools
                .and(&granted.tools_for(&self.agent.id).await);
        }
        let skills = self.resolve_skills().await;
        // Hook payloads are `#[non_exhaustive]` (the SDK may add fields): filled in from
        // `Default`.
        let mut prompt = RunPrePrompt::default();
        prompt.system_prompt = self
            .config
            .system_prompt
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string());
        prompt.user_message = text;
        prompt.skills = skills;
        let prompt = runner.runtime.dispatch(&self.ctx, prompt).await;
        if let Some(b) = prompt.blocked {
            self.block(b);
            return;
        }
        let prompt = prompt.payload;
        let mut system_prompt = prompt.system_prompt;
        if self.tools.get(USE_SKILL).is_some() {
            system_prompt.push_str(&skills_section(&prompt.skills));
        }
        self.skills = prompt.skills;

        let mut messages = vec![
            ChatMessage::text("system", system_prompt),
            ChatMessage::text("user", prompt.user_message),
        ];
        let streaming = self.response_mode() == ResponseMode::Streaming;
        let mut final_answer: Option<String> = None;
        let mut hit_limit = true;
        for turn in 1..=runner.config.max_turns {
            let mut pre = ModelPreCall::default();
            pre.turn = turn;
            pre.model = self
                .config
                .model
                .clone()
                .unwrap_or_else(|| runner.model.default_model().to_string());
            pre.temperature = self.config.temperature;
            pre.max_tokens = self.config.max_tokens;
            pre.messages = messages
                .iter()
                .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                .collect();
            pre.provider_metadata = json!({});
            let pre = runner.runtime.dispatch(&self.ctx, pre).await;
            if let Some(b) = pre.blocked {
                self.block(b);
                return;
            }
            let pre = pre.payload;
            let start_ms = now_ms();
            let started = Instant::now();
            let response = runner
                .model
                .complete(ChatRequest {
                    model: pre.model.clone(),
                    temperature: pre.temperature,
                    max_tokens: pre.max_tokens,
                    messages: messages.clone(),
                    tools: self.tools.specs(),
                    provider_metadata: pre.provider_metadata.clone(),
                })
                .await;
            let took = started.elapsed();
            let response = match response {
                Ok(r) => {
                    self.span("model.call", "model", "ok", start_ms, took, json!({
                        "model": pre.model, "provider": runner.model.name(), "turn": turn, "usage": r.usage }));
                    r
                }
                Err(e) => {
                    self.span("model.call", "model", "error", start_ms, took, json!({
                        "model": pre.model, "provider": runner.model.name(), "turn": turn, "error": e.to_string() }));
                    self.fail(format!("model call failed: {e}"));
                    return;
                }
            };
            let mut post = ModelPostCall::default();
            post.turn = turn;
            post.model = pre.model.clone();
            post.content = response.content.clone();
            post.tool_calls = response
                .tool_calls
                .iter()
                .map(|c| ModelToolCall::new(c.id.clone(), c.name.clone(), c.arguments.clone()))
                .collect();
            post.usage = response.usage.clone();
            post.duration_ms = took.as_millis() as u64;
            runner.runtime.dispatch(&self.ctx, post).await;

            if response.tool_calls.is_empty() {
                final_answer = response.content.clone();
                hit_limit = false;
                break;
            }
            // An assistant message that also calls tools is an intermediate update.
            if streaming {
                if let Some(text) = response.content.as_deref().filter(|t| !t.trim().is_empty()) {
                    if !self.deliver(text, false).await {
                        return;
                    }
                }
            }
            messages.push(ChatMessage {
                role: "assistant".into(),
                content: response.content.clone(),
                tool_calls: response.tool_calls.clone(),
                tool_call_id: None,
            });
            for call in &response.tool_calls {
                let output = self.call_tool(turn, call).await;
                messages.push(ChatMessage::tool_result(&call.id, output));
            }
        }
        let Some(answer) = final_answer.filter(|a| !a.trim().is_empty()) else {
            if hit_limit {
                self.fail(format!(
                    "the run reached its limit of {} model calls",
                    runner.config.max_turns
                ));
            }
            return;
        };
        self.deliver(&answer, hit_limit).await;
    }

    /// Runs one tool call with its hooks; returns what the model sees.
    async fn call_tool(&mut self, turn: u32, call: &model::ToolCall) -> String {
        let runner = self.runner;
        let mut event = ToolPreExec::default();
        event.turn = turn;
        event.tool_name = call.name.clone();
        event.tool_call_id = call.id.clone();
        event.tool_input = call.arguments.clone();
        let pre = runner.runtime.dispatch(&self.ctx, event).await;
        let start_ms = now_ms();
        let started = Instant::now();
        let input = pre.payload.tool_input.clone();
        let tctx = ToolContext {
            work_item_id: self.request.work_item.id.clone(),
            job_id: self.job_id.clone(),
            agent_id: self.agent.id.clone(),
            integration_type: self.request.integration.kind.clone(),
            team_id: self.config.team_id.clone(),
            skills: self.skills.clone(),
        };
        let governed = runner
            .agent_tools
            .as_ref()
            .filter(|g| g.governs(&call.name));
        let result = match (&pre.blocked, self.tools.get(&call.name), governed) {
            (Some(b), _, _) => ToolOutput::failed(format!("[blocked] {}", b.reason)),
            (None, Some(tool), _) => tool.call(&tctx, &input).await,
            // A tool of the agent's grants that it does not hold: refused, with a receipt.
            (None, None, Some(granted)) => granted.refuse(&tctx, &call.name, &input).await,
            (None, None, None) => {
                ToolOutput::failed(format!("there is no tool named `{}`", call.name))
            }
        };
        let status = match (&pre.blocked, result.success) {
            (Some(_), _) => "blocked",
            (None, true) => "ok",
            (None, false) => "error",
        };
        self.span(
            "tool.call",
            "tool",
            status,
            start_ms,
            started.elapsed(),
            json!({
            "tool.name": call.name, "tool.call_id": call.id,
            "blocked_by": pre.blocked.as_ref().map(|b| b.plugin_id.to_string()) }),
        );
        let mut event = ToolPostExec::default();
        event.turn = turn;
        event.tool_name = call.name.clone();
        event.tool_call_id = call.id.clone();
        event.tool_input = input;
        event.output = result.output;
        event.success = result.success;
        let post = runner.runtime.dispatch(&self.ctx, event).await;
        post.payload.output
    }

    /// Delivers content through the integration with its hooks: `response.pre_deliver` once, then
    /// `post_response` until it succeeds, fails for good or runs out of
    /// [`RunnerConfig::delivery_attempts`](super::RunnerConfig::delivery_attempts), then
    /// `response.post_deliver` once with the final result. Returns `false` when the run should stop
    /// (the delivery was blocked or failed).
    async fn deliver(&mut self, content: &str, hit_limit: bool) -> bool {
        let runner = self.runner;
        let instance = &self.request.integration;
        let mut event = ResponsePreDeliver::default();
        event.integration_id = instance.id.clone();
        event.integration_type = instance.kind.clone();
        event.content = content.to_string();
        event.response_mode = self.response_mode().as_str().into();
        event.hit_limit = hit_limit;
        let pre = runner.runtime.dispatch(&self.ctx, event).await;
        if let Some(b) = pre.blocked {
            self.block(b);
            return false;
        }
        let content = pre.payload.content;
        let options = PostResponseOptions::new()
            .with_hit_limit(hit_limit)
            .with_idempotency_key(self.idempotency_key());
        let attempts = runner.config.delivery_attempts.max(1);
        let mut backoff = runner.config.delivery_backoff;
        let mut attempt = 1;
        let result = loop {
            let result = self.attempt_delivery(&content, &options, attempt).await;
            self.report.deliveries.push(result.clone());
            // A timed-out or panicked call arrives here as not retryable: the provider may have
            // taken the message before the call was given up on.
            if result.success || !result.retryable || attempt >= attempts {
                break result;
            }
            tracing::warn!(
                work_item_id = %self.request.work_item.id,
                job_id = %self.job_id,
                attempt,
                "delivery failed, trying again in {backoff:?}: {}",
                result.error.as_deref().unwrap_or("no reason given"),
            );
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        };
        let mut event = ResponsePostDeliver::default();
        event.integration_id = instance.id.clone();
        event.integration_type = instance.kind.clone();
        event.content = content.clone();
        event.result = result.clone();
        runner.runtime.dispatch(&self.ctx, event).await;
        if result.success {
            self.report.final_content = Some(content);
            true
        } else {
            let tried = if attempt > 1 {
                format!(" (after {attempt} attempts)")
            } else {
                String::new()
            };
            self.fail(format!(
                "delivery failed{tried}: {}",
                result
                    .error
                    .as_deref()
                    .unwrap_or("the integration reported a failure")
            ));
            false
        }
    }

    /// The key of the delivery about to be made: `<work_item_id>:<agent_id>:<n>`, `n` counting this
    /// job's deliveries from 0. A retried run of the work item (a new job) gives its n-th delivery
    /// the same key, so a provider that honours keys drops what the crashed run already posted.
    fn idempotency_key(&self) -> String {
        // A failed delivery ends the run, so the deliveries made so far are the successful ones;
        // counting attempts instead would shift the key after a retried delivery.
        let made = self.report.deliveries.iter().filter(|d| d.success).count();
        format!("{}:{}:{made}", self.request.work_item.id, self.agent.id)
    }

    /// One `post_response` call, with a receipt that says `error` when the integration answers
    /// that it did not deliver. An integration that gives no answer (an error, a panic, a timeout)
    /// counts as a failure not worth retrying.
    async fn attempt_delivery(
        &self,
        content: &str,
        options: &PostResponseOptions,
        attempt: u32,
    ) -> PostResponseResult {
        let runner = self.runner;
        let (inst, rc, work_item_id, text, opts) = (
            self.request.integration.clone(),
            self.request.response_context.clone(),
            self.request.work_item.id.clone(),
            content.to_string(),
            options.clone(),
        );
        let mut receipt = CallReceipt::judged_by(undelivered).with_detail("attempt", attempt);
        if let Some(key) = &options.idempotency_key {
            receipt = receipt.with_detail("idempotency_key", key.as_str());
        }
        self.call_integration(
            "post_response",
            runner.config.integration_timeout,
            receipt,
            move |i, host| i.post_response(&inst, &work_item_id, &text, rc.as_ref(), &opts, host),
        )
        .await
        .unwrap_or_else(|e| PostResponseResult::failed(e.to_string(), false))
    }

    /// Calls the run's integration: through its own plugin only, when the request names it.
    async fn call_integration<T, F>(
        &self,
        operation: &str,
        timeout: std::time::Duration,
        receipt: CallReceipt<T>,
        f: F,
    ) -> Result<T, nitejar_runtime::runtime::IntegrationCallError>
    where
        T: Send + 'static,
        F: FnOnce(
                &dyn nitejar_sdk::Integration,
                &dyn nitejar_sdk::Host,
            ) -> Result<T, nitejar_sdk::IntegrationError>
            + Send
            + 'static,
    {
        let runtime = &self.runner.runtime;
        let kind = &self.request.integration.kind;
        match &self.request.owner {
            Some(owner) => {
                runtime
                    .call_owned_integration(
                        Some(owner),
                        kind,
                        operation,
                        &self.ctx,
                        timeout,
                        receipt,
                        f,
                    )
                    .await
            }
            None => {
                runtime
                    .call_integration_judged(kind, operation, &self.ctx, timeout, receipt, f)
                    .await
            }
        }
    }
}

/// The receipt's reading of a `post_response` answer: one that says it was not delivered is a
/// failure, with whether the integration thinks trying again may help.
fn undelivered(result: &PostResponseResult) -> Option<AnswerFailure> {
    (!result.success).then(|| {
        AnswerFailure::new(
            result
                .error
                .as_deref()
                .unwrap_or("the integration reported a failure"),
        )
        .with_detail("retryable", result.retryable)
    })
}
