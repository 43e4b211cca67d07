//! What the runner adds to the prompt: the run's skills, after the system prompt.

use nitejar_sdk::hooks::PromptSkill;

use crate::skills::{RunScope, Skills};

/// The skills of a run, as the prompt lists them. A failure to resolve them is logged and the run
/// goes on without skills.
pub(super) async fn run_skills(
    skills: Option<&Skills>,
    scope: &RunScope,
    job_id: &str,
) -> Vec<PromptSkill> {
    let Some(skills) = skills else {
        return Vec::new();
    };
    match skills.resolve_for_run(scope).await {
        Ok(resolved) => resolved
            .into_iter()
            .map(|r| PromptSkill::new(r.skill.id, r.skill.name, r.skill.description))
            .collect(),
        Err(e) => {
            tracing::warn!(job.id = %job_id, "could not resolve the run's skills: {e}");
            Vec::new()
        }
    }
}

/// Skills listed in a prompt at most; the rest stay reachable through `use_skill`.
pub const MAX_PROMPT_SKILLS: usize = 50;

/// The section appended to the system prompt for a run's skills: one line per skill (name and
/// description), and how to load one. Empty without skills.
///
/// ```
/// use nitejar_agent::runner::skills_section;
/// use nitejar_sdk::hooks::PromptSkill;
/// let section = skills_section(&[PromptSkill::new("repo:deploy", "deploy", Some("Ship it.".into()))]);
/// assert!(section.contains("- deploy: Ship it."));
/// ```
pub fn skills_section(skills: &[PromptSkill]) -> String {
    if skills.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n\n## Skills\n\nThese skills hold instructions for particular tasks. When one fits the \
         task, call the `use_skill` tool with its name to load it before you answer.\n\n",
    );
    for s in skills.iter().take(MAX_PROMPT_SKILLS) {
        let description = s
            .description
            .as_deref()
            .map(crate::skills::one_line)
            .filter(|d| !d.is_empty());
        match description {
            Some(d) => out.push_str(&format!("- {}: {d}\n", s.name)),
            None => out.push_str(&format!("- {}\n", s.name)),
        }
    }
    if skills.len() > MAX_PROMPT_SKILLS {
        out.push_str(&format!(
            "- … and {} more; ask `use_skill` for one by name.\n",
            skills.len() - MAX_PROMPT_SKILLS
        ));
    }
    out
}
