//! What a tool is, to the model and to whoever runs it: its spec, the context of a call and what
//! it produced. Below the runner and the skills (the `use_skill` tool is a skill's), so that
//! neither depends on the other to name a tool. The runner's set of tools is
//! [`crate::runner::tools`].

use std::future::Future;
use std::pin::Pin;

use nitejar_sdk::hooks::PromptSkill;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

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
