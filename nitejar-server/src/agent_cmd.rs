//! `nitejar agent …`: what agents may do to plugins, and what they asked for, from the command line
//! against the database the server uses (a running server applies a grant to the agent's next run,
//! and follows an approved enable within a second).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use nitejar_core::lifecycle::agent_ops::{PluginCapability, VersionRequest};

use crate::api::agent_grants::document;
use crate::plugin_cmd::setup::Engine;

/// Agent commands.
#[derive(Subcommand)]
pub enum AgentCommand {
    /// Show what an agent may do to plugins through its tools, or set it (none by default).
    Grants {
        /// The agent's id.
        agent: String,
        /// Set the agent's grants to exactly these, comma-separated (`plugins.disable,plugins.install`);
        /// `none` withdraws every grant.
        #[arg(long)]
        set: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List what agents asked you to do to plugins (an enable, an upgrade, an edit of its
    /// source), newest first.
    Requests {
        /// Only these: pending, approved or rejected.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve an agent's request with your consent: an enable as with `nitejar plugin enable`,
    /// an upgrade or edit as with `nitejar plugin upgrade`, installing exactly the package that was
    /// reviewed (without --accept-consent it prints the consent text to read and changes
    /// nothing).
    Approve {
        /// The request's id, as `requests` lists it.
        request: String,
        /// You read the plugin's consent text and accept it.
        #[arg(long)]
        accept_consent: bool,
        /// Acknowledge every permission it declares.
        #[arg(long)]
        ack_all: bool,
    },
    /// Reject an agent's request.
    Reject {
        /// The request's id.
        request: String,
    },
}

pub fn run(cmd: AgentCommand) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
        .and_then(|rt| rt.block_on(run_async(cmd)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The capabilities `--set` names, each spelled exactly as one is.
fn parse_set(text: &str) -> anyhow::Result<Vec<PluginCapability>> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|name| {
            PluginCapability::parse(name.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "`{}` is not a capability (one of: {}, or `none`); nothing was changed",
                    name.trim(),
                    PluginCapability::ALL
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

async fn run_async(cmd: AgentCommand) -> anyhow::Result<()> {
    let (agent, set, json) = match cmd {
        AgentCommand::Grants { agent, set, json } => (agent, set, json),
        other => return requests(other).await,
    };
    let wanted = set.as_deref().map(parse_set).transpose()?;
    let engine = Engine::open().await?;
    let result = match &wanted {
        Some(capabilities) => {
            engine
                .manager
                .set_agent_grants(&agent, capabilities, &crate::plugin_cmd::trust::by())
                .await
        }
        None => match engine.store().get_agent(&agent).await {
            Ok(Some(_)) => engine.manager.agent_grants(&agent).await,
            Ok(None) => Err(nitejar_core::lifecycle::LifecycleError::UnknownAgent(
                agent.clone(),
            )),
            Err(e) => Err(e.into()),
        },
    };
    engine.close().await;
    let grants = result?;
    if json {
        println!("{}", document(&grants));
        return Ok(());
    }
    for capability in PluginCapability::ALL {
        let held = grants.capabilities.contains(&capability);
        let state = match (held, grants.unavailable(capability)) {
            (true, None) => "granted".to_string(),
            (true, Some(why)) => format!("granted, but not usable: {why}"),
            (false, Some(why)) => format!("not available: {why}"),
            (false, None) => "not granted".to_string(),
        };
        println!(
            "{:<22} {:<22} {state}",
            capability.as_str(),
            capability.tool_name()
        );
    }
    if wanted.is_some() {
        eprintln!("Set; the agent's next run is offered the tools it now holds (receipted as agent_grant).");
    }
    Ok(())
}

/// `requests`, `approve`, `reject`.
async fn requests(cmd: AgentCommand) -> anyhow::Result<()> {
    let by = crate::plugin_cmd::trust::by();
    let engine = Engine::open().await?;
    let result = match cmd {
        AgentCommand::Requests { status, json } => match status.as_deref() {
            Some(s) if !["pending", "approved", "rejected"].contains(&s) => Err(anyhow::anyhow!(
                "--status {s} is none of pending, approved, rejected"
            )),
            _ => match engine.manager.plugin_requests(status.as_deref()).await {
                Ok(items) if json => {
                    println!("{}", serde_json::json!({ "items": items }));
                    Ok(())
                }
                Ok(items) => {
                    if items.is_empty() {
                        println!("No requests.");
                    }
                    for r in items {
                        let version = VersionRequest::of_request(&r)
                            .map(|v| format!(" {} → {}", v.from, v.to))
                            .unwrap_or_default();
                        println!(
                            "{}  {:<8} {} {}{version}  agent {} (job {}){}",
                            r.id,
                            r.status,
                            r.action,
                            r.plugin_id,
                            r.agent_id,
                            r.job_id,
                            r.reason.map(|w| format!(": {w}")).unwrap_or_default()
                        );
                    }
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
        },
        AgentCommand::Approve {
            request,
            accept_consent,
            ack_all,
        } => {
            let consent = nitejar_core::lifecycle::EnableRequest {
                accept_consent,
                acknowledge: if ack_all {
                    nitejar_core::lifecycle::Acknowledge::All
                } else {
                    nitejar_core::lifecycle::Acknowledge::None
                },
            };
            engine
                .manager
                .approve_request(&request, consent, &by)
                .await
                .map(|d| match &d.upgraded {
                    Some(up) => println!(
                        "Approved: {} is upgraded from {} to {} (request {}, asked by agent {}).",
                        d.request.plugin_id, up.from, up.to, d.request.id, d.request.agent_id
                    ),
                    None => println!(
                        "Approved: {} is enabled (request {}, asked by agent {}).",
                        d.request.plugin_id, d.request.id, d.request.agent_id
                    ),
                })
                .map_err(Into::into)
        }
        AgentCommand::Reject { request } => engine
            .manager
            .reject_request(&request, &by)
            .await
            .map(|d| {
                println!(
                    "Rejected request {} ({} stays as it was).",
                    d.request.id, d.request.plugin_id
                )
            })
            .map_err(Into::into),
        AgentCommand::Grants { .. } => Ok(()),
    };
    engine.close().await;
    result
}
