//! `nitejar plugin …`: the operator's plugin commands. They work on the data directory and the
//! database directly, so they also work while the server is down; a running server applies what
//! they change as soon as its change feed sees it (see [`setup::start_in_server`]). Every command takes `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

mod commands;
mod config;
mod keygen;
mod pack;
mod scaffold;
pub mod setup;
pub(crate) mod trust;
mod validate;

/// `nitejar plugin` and its options.
#[derive(Args)]
pub struct PluginArgs {
    /// Print the result as JSON (on stdout, errors included).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Plugin commands.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// List installed plugins and built-ins with their state.
    List {
        /// Also list uninstalled plugins whose data is kept.
        #[arg(long)]
        all: bool,
    },
    /// Install a plugin (disabled): a directory, a .tgz, an npm package (`name`, `name@1.2.3`,
    /// `name@^1`) or a git URL (`https://…`, `file://…`, `git+…`, with `#branch`, `#tag` or
    /// `#commit`).
    Install {
        /// Where the package is.
        source: String,
    },
    /// Enable a plugin: it is loaded and its hooks and integrations go live.
    Enable {
        /// The plugin id.
        id: String,
        /// Accept the consent text (shown when this is missing). Never implied.
        #[arg(long)]
        accept_consent: bool,
        /// Acknowledge every permission the plugin declares.
        #[arg(long, conflicts_with = "ack")]
        ack_all: bool,
        /// Acknowledge one declared permission (`network:api.example.com`, `secret:TOKEN`,
        /// `fs.read:assets`, `fs.write:out`, `process.spawn`); repeatable.
        #[arg(long, value_name = "PERMISSION")]
        ack: Vec<String>,
        /// Run it in a process of its own, under the kernel's controls (kept as its choice; see
        /// `nitejar plugin execution`).
        #[arg(long, conflicts_with = "in_process")]
        isolated: bool,
        /// Run it in the server's process (kept as its choice).
        #[arg(long)]
        in_process: bool,
    },
    /// Disable a plugin: its hooks and integrations are unregistered at once.
    Disable {
        /// The plugin id.
        id: String,
    },
    /// Choose where a plugin's code runs: `isolated` (a process of its own, under the kernel's
    /// controls), `in_process`, or `default` (NITEJAR_PLUGIN_EXECUTION), and the limits of its
    /// process when isolated. A running server switches it within a second.
    Execution {
        /// The plugin id.
        id: String,
        /// `isolated`, `in_process` or `default`.
        mode: String,
        /// Address space of its process in MiB (128 to 1048576), or `default`
        /// (NITEJAR_PLUGIN_MEMORY_MIB). Not given: kept as chosen before.
        #[arg(long, value_name = "MIB")]
        memory_mib: Option<String>,
        /// Processor time of its process over its life in seconds (10 to 31536000), or `default`
        /// (NITEJAR_PLUGIN_CPU_SECONDS). Not given: kept as chosen before.
        #[arg(long, value_name = "SECONDS")]
        cpu_seconds: Option<String>,
    },
    /// Install a newer version beside the current one and switch to it (keeps the old one for
    /// rollback). Without a source, the plugin's own source is fetched again.
    Upgrade {
        /// The plugin id.
        id: String,
        /// Where the new version is (as for `install`).
        source: Option<String>,
        /// Accept the consent text for permissions the new version adds.
        #[arg(long)]
        accept_consent: bool,
        /// Acknowledge every permission the new version adds.
        #[arg(long, conflicts_with = "ack")]
        ack_all: bool,
        /// Acknowledge one added permission; repeatable.
        #[arg(long, value_name = "PERMISSION")]
        ack: Vec<String>,
    },
    /// Switch back to an installed version.
    Rollback {
        /// The plugin id.
        id: String,
        /// The version to switch to.
        #[arg(long)]
        to: String,
        /// Consent to that version when none is on record for it (it was never enabled, or an
        /// upgrade to it was refused); the command shows the text and what it adds otherwise.
        #[arg(long)]
        accept_consent: bool,
    },
    /// Disable a plugin and remove its `current` pointer; files and data stay unless asked.
    Uninstall {
        /// The plugin id.
        id: String,
        /// Also remove its version directories and stored packages.
        #[arg(long)]
        purge_files: bool,
        /// Also remove its settings, acknowledgements, receipts, data directory and log.
        #[arg(long)]
        purge_data: bool,
    },
    /// Show or change a plugin's settings: its config (checked against the schema its manifest
    /// declares) and the secrets it declares (stored encrypted). A running server applies a
    /// change within a second.
    Config {
        /// The plugin id.
        id: String,
        #[command(subcommand)]
        action: Option<config::ConfigAction>,
    },
    /// The trusted keys and allowlist entries plugins are judged with: list them, add or remove
    /// stored ones (those of the environment are listed, and change only in the environment). A
    /// running server applies a change within a second.
    Trust {
        #[command(subcommand)]
        action: trust::TrustAction,
    },
    /// Check installed plugins and the plugin directory; print each problem with its fix.
    Doctor {
        /// First remove what a failed install or upgrade left: versions never made current that
        /// no receipt explains (row, stored package, directory), and version directories without
        /// a version row.
        #[arg(long)]
        remove_leftovers: bool,
    },
    /// Show a plugin's receipts and its log file.
    Logs {
        /// The plugin id.
        id: String,
        /// How many receipts and log lines.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Check a plugin package's `nitejar.plugin.json`; print every problem and exit non-zero on any.
    Validate {
        /// The package directory.
        dir: PathBuf,
    },
    /// Make an uploadable `.tgz` of a package directory or a plugin crate (built first). It is
    /// also an npm package: `npm publish <file>` publishes it.
    Pack {
        /// The package directory or plugin crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Sign it with this minisign secret key (password from NITEJAR_SIGN_PASSWORD, or asked).
        #[arg(long, value_name = "SECRET_KEY_FILE")]
        sign: Option<PathBuf>,
        /// Where to write it (default `<id>-<version>.tgz` in the current directory).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The cargo profile a plugin crate is built with.
        #[arg(long, default_value = "release")]
        profile: String,
        /// The npm package name written in the package.json (default `nitejar-plugin-` and the
        /// id's last part; a package's own package.json is kept instead).
        #[arg(long, value_name = "NAME")]
        npm_name: Option<String>,
    },
    /// Create a minisign key pair for signing packages (`pack --sign`); prints the public-key
    /// line operators put in NITEJAR_PLUGIN_TRUSTED_KEYS.
    Keygen {
        /// The directory for `minisign.key` and `minisign.pub` (default `~/.minisign`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Store the secret key without a password (otherwise NITEJAR_SIGN_PASSWORD, or asked).
        #[arg(long)]
        unprotected: bool,
        /// Replace keys that exist in that directory.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of `nitejar.plugin.json` (what editors and `validate` check).
    Schema,
    /// Create a plugin crate that builds, tests and packs as it is.
    New {
        /// The crate name (`my-plugin`); also the directory created.
        name: String,
        /// The plugin id (default `dev.local.<name>`).
        #[arg(long)]
        id: Option<String>,
        /// Depend on the nitejar-sdk at this path (the `nitejar-sdk` directory of a Nitejar
        /// checkout) instead of the published crate.
        #[arg(long, value_name = "DIR", env = "NITEJAR_SDK_PATH")]
        sdk_path: Option<PathBuf>,
    },
}

/// Runs a plugin command.
pub fn run(args: PluginArgs) -> ExitCode {
    let out = Out { json: args.json };
    match args.command {
        PluginCommand::Validate { dir } => validate::run(&dir, &out),
        PluginCommand::New { name, id, sdk_path } => scaffold::run(&name, id, sdk_path, &out),
        PluginCommand::Pack {
            dir,
            sign,
            out: file,
            profile,
            npm_name,
        } => pack::run(
            pack::PackOptions {
                dir: &dir,
                sign: sign.as_deref(),
                out_file: file,
                profile: &profile,
                npm_name,
            },
            &out,
        ),
        PluginCommand::Keygen {
            out: dir,
            unprotected,
            force,
        } => keygen::run(dir, unprotected, force, &out),
        PluginCommand::Schema => {
            print!("{}", nitejar_sdk::manifest::SCHEMA);
            ExitCode::SUCCESS
        }
        command => commands::run(command, &out),
    }
}

/// How a command reports: human text, or one JSON document on stdout.
pub(crate) struct Out {
    pub json: bool,
}

impl Out {
    /// Reports success: `value` as JSON, or what `human` prints.
    pub fn ok(&self, value: Value, human: impl FnOnce()) -> ExitCode {
        if self.json {
            let mut value = value;
            if let Some(o) = value.as_object_mut() {
                o.insert("ok".into(), json!(true));
            }
            println!("{value:#}");
        } else {
            human();
        }
        ExitCode::SUCCESS
    }

    /// Reports a failure (exit code 1).
    pub fn fail(&self, error: &dyn std::fmt::Display, extra: Value) -> ExitCode {
        if self.json {
            let mut value = json!({ "ok": false, "error": error.to_string() });
            if let (Some(o), Value::Object(extra)) = (value.as_object_mut(), extra) {
                o.extend(extra);
            }
            println!("{value:#}");
        } else {
            eprintln!("error: {error}");
        }
        ExitCode::FAILURE
    }
}
