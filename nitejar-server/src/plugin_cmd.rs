//! `nitejar plugin …`: plugin commands that work on a package or the data directory directly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// Plugin commands.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Check a plugin package's `nitejar.plugin.json` and print every problem.
    Validate {
        /// The package directory.
        dir: PathBuf,
    },
}

pub fn run(cmd: PluginCommand) -> ExitCode {
    match cmd {
        PluginCommand::Validate { dir } => {
            eprintln!("validate {}: not yet available", dir.display());
            ExitCode::FAILURE
        }
    }
}
