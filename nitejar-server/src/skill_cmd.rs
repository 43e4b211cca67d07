//! `nitejar skill …`: skill commands that work on the skills roots and the database directly, so
//! they work with the server down. Plugin skills are shown as the server last recorded them (their
//! plugin's activity included); a running server picks assignments up on its next run.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use nitejar_core::crypto::{load_or_create_key, Cipher};
use nitejar_core::skills::{
    AssignmentInput, AssignmentView, ListFilter, Scope, Skill, SkillDetail, SkillListing,
    SkillSourceKind, Skills,
};
use nitejar_core::store::{self, Store};

use crate::config::Config;

/// Skill commands.
#[derive(Subcommand)]
pub enum SkillCommand {
    /// List skills of every source, with what wins each name and what is assigned where.
    List {
        /// Only skills of this source: repo, plugin or admin.
        #[arg(long)]
        source: Option<SkillSourceKind>,
        /// Only skills assigned at this scope: global, team:<id>, agent:<id>,
        /// integration_type:<type>.
        #[arg(long)]
        scope: Option<Scope>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one skill (by id, name or slug): its fields, files, assignments and text.
    Show {
        /// The skill's id, name or slug.
        skill: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Assign a skill to a scope, or change the priority or on/off state of that assignment.
    Assign {
        /// The skill's id, name or slug.
        skill: String,
        /// global, team:<id>, agent:<id> or integration_type:<type>.
        #[arg(long)]
        scope: Scope,
        /// Higher comes first in the prompt.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// Switch the skill off at this scope (overrides a broader assignment).
        #[arg(long)]
        disable: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a skill command.
pub fn run(cmd: SkillCommand) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
        .and_then(|rt| rt.block_on(execute(cmd)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cmd: SkillCommand) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let store = open_store(&config).await?;
    let skills = Skills::new(store.clone(), config.skills_config());
    let result = match cmd {
        SkillCommand::List {
            source,
            scope,
            json,
        } => {
            let listing = skills.list(&ListFilter { source, scope }).await?;
            if json {
                emit(&serde_json::to_string_pretty(&listing)?);
            } else {
                emit(&render_listing(&listing));
            }
            Ok(())
        }
        SkillCommand::Show { skill, json } => {
            let detail = skills.get(&skill).await?;
            if json {
                emit(&serde_json::to_string_pretty(&detail)?);
            } else {
                emit(&render_detail(&detail));
            }
            Ok(())
        }
        SkillCommand::Assign {
            skill,
            scope,
            priority,
            disable,
            json,
        } => {
            let view = skills
                .assign(
                    &skill,
                    AssignmentInput {
                        scope,
                        priority,
                        enabled: !disable,
                    },
                )
                .await?;
            if json {
                emit(&serde_json::to_string_pretty(&view)?);
            } else {
                emit(&format!(
                    "{} → {} ({})",
                    view.skill_id,
                    view.scope,
                    assignment_state(&view)
                ));
            }
            Ok(())
        }
    };
    store.close().await.ok();
    result
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    config.prepare_dirs()?;
    let (key, _) = load_or_create_key(config.encryption_key.as_deref(), &config.data_dir)
        .context("ENCRYPTION_KEY")?;
    store::open(&config.database_url, Cipher::new(&key))
        .await
        .with_context(|| {
            format!(
                "could not open the database ({})",
                store::Backend::of_url(&config.database_url).as_str()
            )
        })
}

fn status(skill: &Skill) -> String {
    if !skill.enabled {
        "switched off".into()
    } else if !skill.active && skill.source == SkillSourceKind::Plugin {
        "plugin not active".into()
    } else if !skill.active {
        "not found in its source".into()
    } else if let Some(winner) = &skill.shadowed_by {
        format!("shadowed by {winner}")
    } else {
        "active".into()
    }
}

fn assignment_state(a: &AssignmentView) -> String {
    let state = if a.enabled { "on" } else { "off" };
    format!("priority {}, {state}", a.priority)
}

fn render_listing(listing: &SkillListing) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 5]> = listing
        .skills
        .iter()
        .map(|s| {
            let assignments = s
                .assignments
                .iter()
                .map(|a| format!("{} ({})", a.scope, assignment_state(a)))
                .collect::<Vec<_>>()
                .join(", ");
            [
                s.skill.id.clone(),
                s.skill.source.to_string(),
                s.skill.name.clone(),
                status(&s.skill),
                if assignments.is_empty() {
                    "-".into()
                } else {
                    assignments
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no skills\n");
    } else {
        let header = ["ID", "SOURCE", "NAME", "STATUS", "ASSIGNED"].map(String::from);
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(rows.iter()) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(rows.iter()) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    if !listing.problems.is_empty() {
        out.push_str(&format!(
            "\n{} skill{} left out:\n",
            listing.problems.len(),
            if listing.problems.len() == 1 { "" } else { "s" }
        ));
        for p in &listing.problems {
            out.push_str(&format!("  {} ({}): {}\n", p.location, p.source, p.message));
        }
    }
    out
}

fn render_detail(d: &SkillDetail) -> String {
    let s = &d.skill;
    let mut out = format!("{} — {}\n", s.id, s.name);
    let mut field =
        |label: &str, value: &str| out.push_str(&format!("{:<13}{value}\n", format!("{label}:")));
    field("source", &format!("{} ({})", s.source, s.origin));
    if let Some(p) = &s.plugin {
        field("plugin", &format!("{}@{}", p.id, p.version));
    }
    field("slug", &s.slug);
    if let Some(desc) = &s.description {
        field("description", desc);
    }
    field("category", &s.category);
    if !s.tags.is_empty() {
        field("tags", &s.tags.join(", "));
    }
    if let Some(v) = &s.version {
        field("version", v);
    }
    if !s.requires_tools.is_empty() {
        field("requires", &s.requires_tools.join(", "));
    }
    field("status", &status(s));
    if !d.shadows.is_empty() {
        field("shadows", &d.shadows.join(", "));
    }
    field("size", &format!("{} bytes", s.size_bytes));
    if s.files.is_empty() {
        field("files", "-");
    } else {
        let files: Vec<String> = s
            .files
            .iter()
            .map(|f| format!("{} ({} bytes)", f.path, f.size_bytes))
            .collect();
        field("files", &files.join(", "));
    }
    if d.assignments.is_empty() {
        field("assigned", "-");
    } else {
        let list: Vec<String> = d
            .assignments
            .iter()
            .map(|a| format!("{} ({})", a.scope, assignment_state(a)))
            .collect();
        field("assigned", &list.join(", "));
    }
    out.push_str(&format!("\n--- SKILL.md ---\n{}\n", d.content.trim_end()));
    out
}

/// Writes to stdout, ending with a newline; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
}
