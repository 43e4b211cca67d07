//! The plugin manager wired from the configuration: for the CLI (on the data directory and the
//! database, server running or not) and for the server's boot.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use nitejar_core::builtin::BuiltinExt;
use nitejar_core::crypto::{load_or_create_key, Key};
use nitejar_core::engine::{Engine as CoreEngine, EngineConfig};
use nitejar_core::install::{Layout, Limits, NpmConfig};
use nitejar_core::lifecycle::{CrashLoopConfig, ManagerOptions, PluginManager};
use nitejar_core::store::{self, Store};

use crate::config::{self, Config};

/// The manager's settings from the configuration.
pub fn manager_options(config: &Config) -> ManagerOptions {
    let mut options = ManagerOptions::new(&config.data_dir);
    options.layout = Layout::new(&config.data_dir).with_plugins_dir(&config.plugins_dir);
    options.policy = config.trust.clone();
    options.limits = Limits {
        max_bytes: config.plugin_max_bytes,
        max_files: config.plugin_max_files,
        max_archive_bytes: config.plugin_max_bytes,
        ..Limits::default()
    };
    options.npm = NpmConfig {
        registry: config.npm_registry.clone(),
        token: config.npm_token.clone(),
        ..NpmConfig::default()
    };
    options.safe_mode = config.safe_mode;
    options.load_timeout = config.load_timeout;
    options.crash = crash_config(config);
    options.crash_strikes = config.crash_strikes;
    options.execution = config.plugin_execution;
    options.process_limits = config.plugin_process_limits;
    options.plugin_host = std::env::current_exe().ok().map(|program| {
        nitejar_core::loader::isolated::PluginHostCommand {
            program,
            args: vec![crate::PLUGIN_HOST_COMMAND.to_string()],
        }
    });
    options.crash_strike_window = config.crash_strike_window;
    options.agent_edit_source = config.agent_edit_source;
    options.builtin_network = builtin_api_hosts();
    options
}

fn crash_config(config: &Config) -> CrashLoopConfig {
    CrashLoopConfig {
        threshold: config.crash_threshold,
        window: config.crash_window,
    }
}

/// An operator who points a built-in at another API (`NITEJAR_<NAME>_API_BASE`, e.g.
/// `NITEJAR_TELEGRAM_API_BASE` for `builtin.telegram`) also grants it that host.
fn builtin_api_hosts() -> BTreeMap<String, Vec<String>> {
    let mut hosts = BTreeMap::new();
    for builtin in nitejar_core::builtin::builtins() {
        let Ok(validated) = builtin.manifest() else {
            continue;
        };
        let id = validated.manifest.id;
        let name = id.trim_start_matches("builtin.").to_ascii_uppercase();
        if let Some(base) = config::var(&format!("{name}_API_BASE")) {
            match api_host(&base) {
                Some(host) => {
                    hosts.insert(id, vec![host]);
                }
                None => tracing::error!("NITEJAR_{name}_API_BASE is not an http(s) URL: {base}"),
            }
        }
    }
    hosts
}

/// `host:port` of an http(s) URL, as a network permission entry.
fn api_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?;
    let port = parsed.port_or_known_default()?;
    Some(format!("{host}:{port}"))
}

/// Boots the plugins inside the server (built-ins, then installed plugins) and follows the database
/// from then on ([`CoreEngine::follow_database`]): changes made with the CLI, or by another machine,
/// are applied as soon as the change feed sees them, without a restart.
pub async fn start_in_server(engine: &CoreEngine) -> Arc<PluginManager> {
    let manager = engine.plugins.clone();
    let report = manager.boot().await;
    tracing::info!(
        "plugins: trust mode {}{}; built-ins {:?}; loaded {:?}; skipped {}; errors {}",
        report.trust_mode,
        if report.safe_mode {
            " (SAFE MODE: built-ins only)"
        } else {
            ""
        },
        report.builtins,
        report.loaded,
        report.skipped.len(),
        report.errors.len()
    );
    engine.follow_database();
    manager
}

/// What a CLI command works with.
pub struct Engine {
    pub manager: Arc<PluginManager>,
    pub config: Config,
    engine: CoreEngine,
}

/// The engine's configuration from the server's.
pub fn engine_config(config: &Config, key: Key) -> EngineConfig {
    let mut engine = EngineConfig::new(config.database_url.clone(), key, manager_options(config));
    engine.egress_allow_private = config.egress_allow_private.clone();
    engine
}

impl Engine {
    /// Opens the database and the data directory as the server does (same key, same store, the
    /// same assembly: [`nitejar_core::engine`]).
    pub async fn open() -> anyhow::Result<Engine> {
        let config = Config::from_env()?;
        config.prepare_dirs()?;
        nitejar_builtins::link();
        let (key, _) = load_or_create_key(config.encryption_key.as_deref(), &config.data_dir)
            .context("ENCRYPTION_KEY")?;
        let engine = CoreEngine::builder(engine_config(&config, key))
            .open()
            .await
            .with_context(|| {
                format!(
                    "could not open the database ({})",
                    store::Backend::of_url(&config.database_url).as_str()
                )
            })?;
        Ok(Engine {
            manager: engine.plugins.clone(),
            config,
            engine,
        })
    }

    /// The database.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.engine.store
    }

    /// Writes the receipts still queued and closes the database.
    pub async fn close(self) {
        let lost = self.engine.close().await;
        if lost > 0 {
            eprintln!("warning: {lost} receipt(s) could not be written");
        }
    }
}
