//! `use_skill`: the tool through which a model loads a skill during a run.
//!
//! Arguments: `{"name": "<name, slug or id>"}` returns the skill's text and the list of its
//! supporting files (paths and sizes); adding `"file": "<path>"` returns that supporting file
//! instead. The name is looked up among the run's own skills first, then in the whole index
//! ([`SkillIndex::lookup`](super::SkillIndex::lookup)). A miss fails and lists the available names,
//! the run's first. Every call is a `skill` receipt (see the [module docs](super#receipts)).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::index::{Skill, SkillIndex};
use super::service::Skills;
use crate::tool::{Tool, ToolContext, ToolFuture, ToolOutput, ToolSpec};
use nitejar_store::receipts::ReceiptStatus;

/// The tool's name.
pub const USE_SKILL: &str = "use_skill";

/// The `use_skill` tool, over a [`Skills`] service.
#[derive(Clone)]
pub struct UseSkill {
    skills: Arc<Skills>,
}

impl UseSkill {
    /// The tool.
    pub fn new(skills: Arc<Skills>) -> UseSkill {
        UseSkill { skills }
    }
}

impl Tool for UseSkill {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: USE_SKILL.into(),
            description: "Load a skill: its instructions and the list of its supporting files. \
                          Give `file` to read one of those files instead."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "The skill's name (or id)." },
                    "file": { "type": "string", "description": "A supporting file's path, as listed." }
                },
                "required": ["name"],
                "additionalProperties": false
            }),
        }
    }

    fn call<'a>(&'a self, ctx: &'a ToolContext, input: &'a Value) -> ToolFuture<'a> {
        Box::pin(self.run(ctx, input))
    }
}

impl UseSkill {
    async fn run(&self, ctx: &ToolContext, input: &Value) -> ToolOutput {
        let started = Instant::now();
        let ids = (Some(ctx.work_item_id.as_str()), Some(ctx.job_id.as_str()));
        let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::trim);
        let query = text("name")
            .or_else(|| text("skill_name"))
            .or_else(|| text("id"))
            .filter(|q| !q.is_empty());
        let file = text("file").filter(|f| !f.is_empty());
        let Some(query) = query else {
            let message = "use_skill needs the skill's `name`, e.g. {\"name\": \"deploy\"}";
            self.skills
                .record_use(
                    ids,
                    None,
                    ReceiptStatus::Error,
                    json!({ "error": message }),
                    started.elapsed(),
                )
                .await;
            return ToolOutput::failed(message);
        };
        let index = match self.skills.run_index().await {
            Ok(index) => index,
            Err(e) => {
                let message = format!("skills are unavailable right now: {e}");
                self.skills
                    .record_use(
                        ids,
                        None,
                        ReceiptStatus::Error,
                        json!({ "query": query, "error": message }),
                        started.elapsed(),
                    )
                    .await;
                return ToolOutput::failed(message);
            }
        };
        let Some(skill) = find(&index, ctx, query) else {
            let message = miss_message(ctx, query);
            self.skills
                .record_use(
                    ids,
                    None,
                    ReceiptStatus::Error,
                    json!({ "query": query, "error": "not found" }),
                    started.elapsed(),
                )
                .await;
            return ToolOutput::failed(message);
        };
        let mut detail = json!({
            "skillId": skill.id,
            "name": skill.name,
            "source": skill.source,
            "query": query,
        });
        if let Some(f) = file {
            detail["file"] = json!(f);
        }
        let result = if !skill.enabled {
            Err(format!(
                "skill `{}` is switched off by the operator",
                skill.name
            ))
        } else if !skill.active {
            Err(format!(
                "skill `{}` belongs to a plugin that is not active",
                skill.name
            ))
        } else {
            match file {
                Some(path) => match self.skills.read_file(skill, path).await {
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(text) => Ok(text),
                        Err(e) => Err(format!(
                            "`{path}` is a binary file ({} bytes); it cannot be shown as text",
                            e.into_bytes().len()
                        )),
                    },
                    Err(e) => Err(e.to_string()),
                },
                None => Ok(render(skill)),
            }
        };
        let status = match &result {
            Ok(_) => ReceiptStatus::Ok,
            Err(e) => {
                detail["error"] = json!(e);
                ReceiptStatus::Error
            }
        };
        self.skills
            .record_use(ids, Some(skill), status, detail, started.elapsed())
            .await;
        match result {
            Ok(text) => ToolOutput::ok(text),
            Err(e) => ToolOutput::failed(e),
        }
    }
}

/// A skill of this run — assigned to its agent, its team, its integration type or globally — by
/// id, then by name or id case-insensitively. Skills outside the run's scope are not found: scopes
/// are what an operator uses to keep a skill (and its supporting files) away from an agent.
fn find<'i>(index: &'i SkillIndex, ctx: &ToolContext, query: &str) -> Option<&'i Skill> {
    ctx.skills
        .iter()
        .find(|s| s.id == query)
        .or_else(|| {
            ctx.skills.iter().find(|s| {
                s.name.trim().eq_ignore_ascii_case(query) || s.id.eq_ignore_ascii_case(query)
            })
        })
        .and_then(|s| index.get(&s.id))
}

/// The answer to a name this run has no skill for: only the skills of this run are named.
fn miss_message(ctx: &ToolContext, query: &str) -> String {
    let run: Vec<&str> = ctx.skills.iter().map(|s| s.name.as_str()).collect();
    let mut message = format!("There is no skill called `{query}` for this run.");
    if run.is_empty() {
        message.push_str(" This run has no skills.");
    } else {
        message.push_str(&format!(" Skills for this run: {}.", run.join(", ")));
    }
    message
}

/// What a hit returns: a header, the skill's text, its supporting files.
fn render(skill: &Skill) -> String {
    let mut out = format!("# Skill: {} ({})\n", skill.name, skill.id);
    if let Some(d) = &skill.description {
        out.push_str(&super::names::one_line(d));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(skill.content.trim_end());
    out.push_str("\n\n");
    if skill.files.is_empty() {
        out.push_str("This skill has no supporting files.\n");
    } else {
        out.push_str(&format!("Supporting files ({}):\n", skill.files.len()));
        for f in &skill.files {
            out.push_str(&format!("- {} ({} bytes)\n", f.path, f.size_bytes));
        }
        out.push_str(&format!(
            "Read one with use_skill {}.\n",
            json!({ "name": skill.name, "file": "<path>" })
        ));
    }
    out
}
