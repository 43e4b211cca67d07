//! The `nitejar` binary as a library: the server, its admin surface and its command line.
//!
//! `src/main.rs` only calls [`main`]. The library exists so that the route table's guarantees can be
//! checked from outside the crate (a doc test proves that an admin route refuses a handler without
//! the admin credential at compile time); hosts that embed Nitejar use `nitejar-core`, not this.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod access_log;
mod admin_cmd;
mod agent_cmd;
mod api;
pub mod auth;
mod config;
mod data_dir;
mod integrations;
mod metrics;
mod plugin_cmd;
mod plugins;
mod posture;
pub mod routes;
mod serve;
mod skill_cmd;
mod state;
mod ui;

/// Nitejar: AI agents that answer messages from your channels, extended by plugins.
#[derive(Parser)]
#[command(name = "nitejar", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `nitejar` alone runs the server with these options.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(serve::ServeArgs),
    /// Work with plugins.
    Plugin(plugin_cmd::PluginArgs),
    /// Administer the server (works while it is down).
    #[command(subcommand)]
    Admin(admin_cmd::AdminCommand),
    /// Exit 0 when the server on this machine answers `/healthz` (the image's HEALTHCHECK).
    Healthcheck {
        /// The port the server listens on.
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
    },
    /// Work with skills.
    #[command(subcommand)]
    Skill(skill_cmd::SkillCommand),
    /// Work with agents: what they may do to plugins.
    #[command(subcommand)]
    Agent(agent_cmd::AgentCommand),
}

/// The argument that makes this binary a plugin's process (see
/// [`nitejar_core::loader::isolated`]).
pub const PLUGIN_HOST_COMMAND: &str = "__plugin-host";

/// Runs the command line (`nitejar`, `nitejar serve`, `nitejar plugin …`).
pub fn main() -> ExitCode {
    // A plugin's own process (isolated execution), started by the server: not a command for
    // people, so not in the help.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == PLUGIN_HOST_COMMAND)
    {
        let code = nitejar_core::loader::isolated::run_plugin_host();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => match serve::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Plugin(cmd) => plugin_cmd::run(cmd),
        Command::Admin(cmd) => admin_cmd::run(cmd),
        Command::Healthcheck { port } => admin_cmd::healthcheck(port),
        Command::Skill(cmd) => skill_cmd::run(cmd),
        Command::Agent(cmd) => agent_cmd::run(cmd),
    }
}
