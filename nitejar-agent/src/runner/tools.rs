//! Tools a run offers the model.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::tool::ToolSpec;

pub use crate::tool::{Tool, ToolContext, ToolFuture, ToolOutput};

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
/// `nitejar_core::lifecycle::agent_ops::PluginOpsTools`).
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
        Box::pin(async move { ToolOutput::ok(rfc3339_utc(nitejar_store::receipts::now_ms())) })
    }
}

pub use nitejar_store::receipts::rfc3339_utc;

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
