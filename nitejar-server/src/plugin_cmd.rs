//! `nitejar plugin …`: plugin commands that work on a package or the data directory directly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use serde_json::json;

/// Plugin commands.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Check a plugin package's `nitejar.plugin.json`; print every problem and exit non-zero on any.
    Validate {
        /// The package directory.
        dir: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: PluginCommand) -> ExitCode {
    match cmd {
        PluginCommand::Validate { dir, json } => validate(&dir, json),
    }
}

fn validate(dir: &std::path::Path, as_json: bool) -> ExitCode {
    match validate_package_dir(dir, &ValidateOptions::new()) {
        Ok(valid) => {
            let m = &valid.manifest;
            if as_json {
                let out = json!({
                    "valid": true,
                    "id": m.id,
                    "version": m.version,
                    "engine": valid.engine.to_string(),
                    "notes": valid.notes,
                    "errors": [],
                });
                println!("{out:#}");
            } else {
                println!("{} {}: valid (engine {})", m.id, m.version, valid.engine);
                for note in &valid.notes {
                    println!("note: {note}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            if as_json {
                let out = json!({ "valid": false, "errors": errors });
                println!("{out:#}");
            } else {
                eprintln!(
                    "{}: {} problem{} in {}",
                    dir.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    nitejar_sdk::manifest::MANIFEST_FILE
                );
                for e in errors.errors() {
                    eprintln!("  {e}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
