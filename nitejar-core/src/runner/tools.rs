//! Tools a run offers the model.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use nitejar_sdk::hooks::PromptSkill;
use serde_json::{json, Value};

use super::model::ToolSpec;

/// What a tool produced: the text the model sees and whether it succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOutput {
    pub output: String,
    pub success: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(output: impl Into<String>) -> Self {
        ToolOutput {
            output: output.into(),
            success: true,
        }
    }
    /// A failed result; the model sees the message.
    pub fn failed(output: impl Into<String>) -> Self {
        ToolOutput {
            output: output.into(),
            success: false,
        }
    }
}

/// A boxed future of a tool call.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolOutput> + Send + 'a>>;

/// The run context a tool is called in.
#[derive(Clone, Debug, Default)]
pub struct ToolContext {
    pub work_item_id: String,
    pub job_id: String,
    pub agent_id: String,
    pub integration_type: String,
    /// The agent's team, if it has one.
    pub team_id: Option<String>,
    /// The skills resolved for this run, as the prompt listed them.
    pub skills: Vec<PromptSkill>,
}

/// A tool.
pub trait Tool: Send + Sync + 'static {
    /// Name, description and argument schema.
    fn spec(&self) -> ToolSpec;
    /// Runs the tool.
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: &'a Value) -> ToolFuture<'a>;
}

/// The tools of a run, by name.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool (replacing one of the same name).
    pub fn with(mut self, tool: impl Tool) -> Self {
        self.tools.insert(tool.spec().name, Arc::new(tool));
        self
    }

    /// The specs offered to the model, by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }

    /// The tool of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// This set with `other`'s tools added (this set's win a clash of names).
    pub fn and(&self, other: &ToolSet) -> ToolSet {
        let mut tools = other.tools.clone();
        tools.extend(self.tools.iter().map(|(n, t)| (n.clone(), t.clone())));
        ToolSet { tools }
    }
}

/// Tools an agent gets beyond the runner's own, by what the operator granted that agent (see
/// [`crate::lifecycle::agent_ops::PluginOpsTools`]).
pub trait AgentTools: Send + Sync + 'static {
    /// The tools agent `agent_id` holds now; read at the start of each run.
    fn tools_for<'a>(
        &'a self,
        agent_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = ToolSet> + Send + 'a>>;

    /// Whether `name` is a tool of this kind. A call to one the agent does not hold (a model
    /// can name any tool) goes to [`AgentTools::refuse`], not to "no such tool".
    fn governs(&self, name: &str) -> bool;

    /// Refuses a call to tool `name` that the agent does not hold, with a receipt.
    fn refuse<'a>(
        &'a self,
        ctx: &'a ToolContext,
        name: &'a str,
        input: &'a Value,
    ) -> ToolFuture<'a>;
}

/// `current_time`: the server's current time (UTC, RFC 3339). Harmless, and handy to see tool
/// calls and tool hooks work.
#[derive(Clone, Copy, Debug, Default)]
pub struct CurrentTime;

impl Tool for CurrentTime {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "current_time".into(),
            description: "The current date and time in UTC.".into(),
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        }
    }

    fn call<'a>(&'a self, _ctx: &'a ToolContext, _input: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move { ToolOutput::ok(rfc3339_utc(crate::receipts::now_ms())) })
    }
}

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp (civil-from-days, no time zone database).
pub fn rfc3339_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_996_800_000), "2026-11-30T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
