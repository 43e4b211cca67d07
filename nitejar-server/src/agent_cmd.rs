//! `nitejar agent …`: what agents may do, set from the command line against the database the
//! server uses (a running server applies a change to the agent's next run).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use nitejar_core::lifecycle::agent_ops::PluginCapability;

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
    let AgentCommand::Grants { agent, set, json } = cmd;
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
        let state = if grants.capabilities.contains(&capability) {
            "granted"
        } else if capability.unavailable().is_some() {
            "not available in this version"
        } else {
            "not granted"
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
