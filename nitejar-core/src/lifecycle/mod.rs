//! The plugin lifecycle: install, enable, disable, upgrade, rollback, uninstall, boot, reconcile,
//! the crash-loop guard and `doctor`, over the store, the runtime, the permission gate and the data
//! directory.
//!
//! [`PluginManager`] is the one place these operations live; the CLI, the HTTP API and the server's
//! boot all call it. The database is the source of truth for what *should* run (`plugins.enabled`,
//! `plugins.current_version`); the runtime holds what *does* run in this process; the data directory
//! holds the immutable version directories and the `current` pointer (see
//! [`Layout`]). Every operation leaves a receipt, refusals included, and a
//! line in `logs/plugins/<id>.log`.
//!
//! Invariants:
//!
//! - **Installed means disabled.** Nothing runs until an operator enables it with explicit consent.
//! - **Versions are immutable.** An installed `id@version` is never rewritten; a package with the
//!   same version and other contents is refused.
//! - **Libraries are never unloaded.** Every version loaded in this process is kept with its
//!   [`ActivePlugin`] so a rollback is a registry swap; `doctor` reports what that costs.
//! - **No plugin operation deletes integration, work-item or message rows.** Uninstall leaves the
//!   integrations of the plugin's types in place (their webhooks answer "unknown type" until a
//!   plugin provides it again).
//! - **A failing plugin never blocks boot**, and a plugin that killed the previous process while it
//!   was being activated is skipped, disabled and reported (the boot marker).

mod activate;
pub mod agent_ops;
mod boot;
mod consent;
pub mod crash;
mod doctor;
pub mod execution;
mod follow;
pub use follow::follow;
mod install;
/// The plugin log files ([`crate::plugin_logs`]), as this module has always named them.
pub use crate::plugin_logs as logs;
mod operations;
mod settings;
mod trust_settings;

use crate::builtin::BuiltinExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use boot::{BootReport, ReconcileReport};
pub use crash::{CrashGuard, CrashLoopConfig};
pub use doctor::{DoctorReport, Finding, Severity};
pub use install::{InstallOutcome, UpgradeOutcome, UpgradePlan};
pub use operations::{
    Acknowledge, EnableOutcome, EnableRequest, UninstallOptions, UninstallOutcome,
};
pub use settings::{ConfigureOutcome, PluginSettings, SecretOrigin, SecretStatus, SettingsChange};
pub use trust_settings::{
    AllowEntryView, TrustChange, TrustEntryKind, TrustSettings, TrustSettingsError, TrustSource,
    TrustedKeyView, TRUST_RECEIPT_ID,
};

use crate::host::inflight::InFlightMarks;
use crate::install::{InstallError, Installer, Layout, Limits, NpmConfig};
use crate::loader::isolated::{PluginHostCommand, ProcessLimits};
use crate::loader::LoadError;
use crate::permissions::PermissionGate;
use crate::receipts::{ExecutionMode, Receipt, ReceiptKind, ReceiptStatus};
use crate::registry::{ActivePlugin, RegistryError};
use crate::runtime::Runtime;
use crate::store::{PluginRow, PluginVersionRow, Store, StoreError};
use crate::trust::{Refusal, TrustPolicy};

/// The plugin id startup receipts are recorded under.
pub const STARTUP_RECEIPT_ID: &str = "nitejar.server";

/// Why a lifecycle operation did not happen. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No such plugin is installed.
    #[error("plugin `{0}` is not installed; `nitejar plugin list` shows what is")]
    NotInstalled(String),
    /// Install of a plugin that is installed already.
    #[error("plugin `{id}` is already installed at version {version}; use `nitejar plugin upgrade {id} <source>` to install another version")]
    AlreadyInstalled {
        /// The plugin.
        id: String,
        /// Its current version.
        version: String,
    },
    /// The operation does not apply to built-ins.
    #[error("`{id}` is built into this server; it cannot be {action} (only enabled or disabled)")]
    Builtin {
        /// The built-in.
        id: String,
        /// What was asked.
        action: &'static str,
    },
    /// Fetching, unpacking or validating the package failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The trust policy refuses.
    #[error("{action} of `{id}` refused: {refusal}")]
    Trust {
        /// The plugin.
        id: String,
        /// `install`, `enable`, …
        action: &'static str,
        /// Why and what to do.
        refusal: Refusal,
    },
    /// Consent was not given.
    #[error("`{id}` needs your explicit consent to this version; read this, then run again with --accept-consent (API: \"acceptConsent\": true):\n\n{text}")]
    ConsentRequired {
        /// The plugin.
        id: String,
        /// The consent text.
        text: String,
        /// For an upgrade or a rollback: what the version adds to (and drops from) what was
        /// consented before.
        diff: Option<crate::trust::consent::ConsentDiff>,
    },
    /// Declared permissions are not acknowledged.
    #[error("`{id}`: {mode} mode requires every declared permission to be acknowledged; not acknowledged: {}. Run again with --ack-all, or --ack <permission> for each", missing.join(", "))]
    AcknowledgementMissing {
        /// The plugin.
        id: String,
        /// The trust mode.
        mode: &'static str,
        /// The acknowledgement strings still missing.
        missing: Vec<String>,
    },
    /// An acknowledgement names a permission the plugin does not declare.
    #[error("`{id}` does not declare `{ack}`; it declares: {}", if declared.is_empty() { "nothing".to_string() } else { declared.join(", ") })]
    UnknownAcknowledgement {
        /// The plugin.
        id: String,
        /// What was given.
        ack: String,
        /// What it declares.
        declared: Vec<String>,
    },
    /// A version directory's files differ from what was installed.
    #[error("{id}@{version} was changed on disk after it was installed (digest {actual}, installed {expected}); it is not loaded. Reinstall it, or roll back to another version")]
    Tampered {
        /// The plugin.
        id: String,
        /// The version.
        version: String,
        /// The installed digest.
        expected: String,
        /// The digest now.
        actual: String,
    },
    /// The version is not installed.
    #[error("{id}@{version} is not installed; installed versions: {}", if installed.is_empty() { "none".to_string() } else { installed.join(", ") })]
    VersionNotInstalled {
        /// The plugin.
        id: String,
        /// The version asked for.
        version: String,
        /// The installed versions.
        installed: Vec<String>,
    },
    /// The upgrade source holds another plugin.
    #[error("the package is `{found}`, not `{expected}`; upgrade installs a new version of the same plugin")]
    WrongPlugin {
        /// The plugin being upgraded.
        expected: String,
        /// What the package is.
        found: String,
    },
    /// The upgrade would go backwards or nowhere.
    #[error("`{id}` is at {current}; the package is {new}. {hint}")]
    NotAnUpgrade {
        /// The plugin.
        id: String,
        /// Its current version.
        current: String,
        /// The package's version.
        new: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// Upgrade without a source, for a plugin whose source cannot be fetched again.
    #[error("`{id}` was installed from {kind}; give the new package: `nitejar plugin upgrade {id} <source>`")]
    SourceRequired {
        /// The plugin.
        id: String,
        /// Its source kind.
        kind: String,
    },
    /// The plugin library could not be loaded.
    #[error("{id}@{version} could not be loaded: {source}")]
    Load {
        /// The plugin.
        id: String,
        /// The version.
        version: String,
        /// Why.
        source: LoadError,
    },
    /// The plugin conflicts with an active plugin.
    #[error("`{id}` could not be activated: {source}")]
    Registry {
        /// The plugin.
        id: String,
        /// The conflict.
        source: RegistryError,
    },
    /// The plugin cannot run where the operator asked.
    #[error("{id} cannot run there: {reason}")]
    ExecutionRefused {
        /// The plugin.
        id: String,
        /// Why.
        reason: String,
    },
    /// A process limit outside what a plugin's process can run under.
    #[error("{id}: {field} must be between {min} and {max}, not {value}")]
    InvalidLimit {
        /// The plugin.
        id: String,
        /// The field: `memoryMib` or `cpuSeconds`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// No agent's request has this id.
    #[error("there is no request `{0}`")]
    UnknownRequest(String),
    /// The request was approved or rejected already.
    #[error("request `{id}` is {status} already")]
    RequestDecided {
        /// The request.
        id: String,
        /// `approved` or `rejected`.
        status: String,
    },
    /// No agent has this id.
    #[error("there is no agent `{0}`")]
    UnknownAgent(String),
    /// A capability that cannot be granted to agents (in this version, or under this policy).
    #[error("`{capability}` cannot be granted to an agent: {reason}")]
    GrantRefused {
        /// The capability.
        capability: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The package a reviewed request names is no longer the one the operator reviewed (its
    /// source now gives other bytes); nothing was installed.
    #[error("{id}: the package is not the one that was reviewed (reviewed {expected}, the source now gives {found}); nothing was installed — reject the request, and review a new one")]
    NotWhatWasReviewed {
        /// The plugin.
        id: String,
        /// The digest reviewed.
        expected: String,
        /// The digest the source gives now.
        found: String,
    },
    /// Another operation changed the plugin while code for this one was loading (an upgrade's
    /// new version, an instance with new settings).
    #[error("{id} was changed by another operation while its code loaded for this one; nothing was {action}, try again")]
    ChangedMeanwhile {
        /// The plugin.
        id: String,
        /// What this operation would have done: "upgraded", "configured".
        action: &'static str,
    },
    /// An operation holding the lifecycle lock needs this version's code loaded first (outside
    /// the lock). Handled inside the manager; no public operation returns it.
    #[error("{}@{} is not loaded yet", row.id, version.version)]
    NotPreloaded {
        /// The plugin.
        row: Box<PluginRow>,
        /// The version to load.
        version: Box<PluginVersionRow>,
    },
    /// Another task of this process is loading this version right now.
    #[error("{id}@{version} is being loaded by another operation; try again in a moment")]
    LoadInProgress {
        /// The plugin.
        id: String,
        /// The version.
        version: String,
    },
    /// Loading the plugin's code did not finish in time.
    #[error("{id}@{version} did not finish loading within {} ms (NITEJAR_PLUGIN_LOAD_TIMEOUT_MS); it is not active, and the thread loading it is abandoned until the server restarts. Check `nitejar plugin logs {id}`, fix or upgrade it", .after.as_millis())]
    LoadTimedOut {
        /// The plugin.
        id: String,
        /// The version.
        version: String,
        /// The limit.
        after: Duration,
    },
    /// Another build of the same version is already loaded in this process.
    #[error("another build of {id}@{version} is already loaded in this process; restart the server to load the new one")]
    StaleLibrary {
        /// The plugin.
        id: String,
        /// The version.
        version: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored value could not be read.
    #[error("the stored {what} of `{id}` cannot be read: {reason}; reinstall the plugin")]
    Corrupt {
        /// The plugin.
        id: String,
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A blocking task died.
    #[error("an internal task failed: {0}")]
    Task(String),
    /// A config that does not fit the schema the plugin declares; nothing was saved.
    #[error("the config of `{id}` was not saved:\n{problems}")]
    InvalidConfig {
        /// The plugin.
        id: String,
        /// Every problem, each naming its setting.
        problems: crate::plugin_config::ConfigProblems,
    },
    /// A secret the plugin does not declare; nothing was saved.
    #[error("`{id}` does not declare the secret{} {}; only the secrets in its manifest's permissions.secrets can be set (it declares: {}). Nothing was saved", if names.len() == 1 { "" } else { "s" }, names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "), if declared.is_empty() { "none".to_string() } else { declared.join(", ") })]
    UndeclaredSecret {
        /// The plugin.
        id: String,
        /// The names given that it does not declare.
        names: Vec<String>,
        /// What it declares.
        declared: Vec<String>,
    },
    /// A secret sent with an empty value; nothing was saved.
    #[error("the secret `{name}` of `{id}` was given an empty value; nothing was saved. To remove its stored value use --clear-secret {name}")]
    EmptySecret {
        /// The plugin.
        id: String,
        /// The secret.
        name: String,
    },
    /// A change of the trust settings that did not happen.
    #[error(transparent)]
    TrustSettings(#[from] TrustSettingsError),
    /// A stored secret this server's `ENCRYPTION_KEY` cannot decrypt.
    #[error("the stored secret `{name}` of `{id}` cannot be decrypted with this ENCRYPTION_KEY ({reason}); set it again: nitejar plugin config {id} set --secret {name}")]
    SecretUnreadable {
        /// The plugin.
        id: String,
        /// The secret.
        name: String,
        /// Why.
        reason: String,
    },
}

impl LifecycleError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LifecycleError::Io {
            action,
            path,
            source,
        }
    }

    /// The `plugins.last_error_kind` of this error when it stops a plugin from running (see
    /// [`crate::store::error_kind`]).
    pub fn kind(&self) -> &'static str {
        use crate::store::error_kind;
        match self {
            LifecycleError::Trust { .. } => error_kind::TRUST,
            LifecycleError::Tampered { .. } => error_kind::TAMPERED,
            _ => error_kind::LOAD,
        }
    }

    /// Whether the operation was refused by policy or by the operator's missing consent, as opposed
    /// to failing (receipts: `denied` rather than `error`).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            LifecycleError::Trust { .. }
                | LifecycleError::ConsentRequired { .. }
                | LifecycleError::AcknowledgementMissing { .. }
                | LifecycleError::InvalidConfig { .. }
                | LifecycleError::UndeclaredSecret { .. }
                | LifecycleError::EmptySecret { .. }
                | LifecycleError::TrustSettings(_)
                | LifecycleError::NotWhatWasReviewed { .. }
        ) || matches!(self, LifecycleError::Install(e) if e.is_refusal())
    }
}

/// Settings of a [`PluginManager`].
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Where plugins live.
    pub layout: Layout,
    /// The trust mode, and the keys and allowlist of the environment (the operator's stored trust
    /// settings are added to them, see [`PluginManager::policy`]).
    pub policy: TrustPolicy,
    /// Package limits.
    pub limits: Limits,
    /// The npm registry.
    pub npm: NpmConfig,
    /// `NITEJAR_SAFE_MODE`: built-ins only.
    pub safe_mode: bool,
    /// The crash-loop guard.
    pub crash: CrashLoopConfig,
    /// Extra `permissions.network` entries for built-ins, by id (an operator who points a built-in
    /// at another API base grants it that host).
    pub builtin_network: BTreeMap<String, Vec<String>>,
    /// How long loading a plugin's code (open, instantiate, describe) may take (default 10 s). A
    /// load past it is an error of that plugin — boot, reconcile and the other plugins carry on —
    /// and its thread is abandoned (in-process code cannot be stopped).
    pub load_timeout: Duration,
    /// Crashes of the whole process with a plugin's calls in flight that disable it at boot
    /// (default 3) …
    pub crash_strikes: u32,
    /// … within this window (default 1 hour).
    pub crash_strike_window: Duration,
    /// Where third-party plugins' code runs (default: in this process).
    pub execution: ExecutionMode,
    /// The limits of an isolated plugin's own process unless the operator chose others for it
    /// (default 1 GiB of address space, an hour of processor time).
    pub process_limits: ProcessLimits,
    /// The command that runs a plugin's own process (isolated execution); a host that has none
    /// cannot run plugins isolated.
    pub plugin_host: Option<PluginHostCommand>,
    /// Whether agents may be granted `plugins.edit_source` at all (default no; never under
    /// `saas_locked`). See [`agent_ops`].
    pub agent_edit_source: bool,
}

impl ManagerOptions {
    /// Defaults for a data directory: guarded mode without keys, default limits, the public npm
    /// registry, no safe mode.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ManagerOptions {
            layout: Layout::new(data_dir),
            policy: TrustPolicy::default(),
            limits: Limits::default(),
            npm: NpmConfig::default(),
            safe_mode: false,
            crash: CrashLoopConfig::default(),
            builtin_network: BTreeMap::new(),
            load_timeout: Duration::from_secs(10),
            crash_strikes: 3,
            crash_strike_window: Duration::from_secs(3600),
            execution: ExecutionMode::InProcess,
            process_limits: ProcessLimits::default(),
            plugin_host: None,
            agent_edit_source: false,
        }
    }
}

/// One plugin version loaded in this process.
#[derive(Clone)]
pub(crate) struct LoadedVersion {
    pub(crate) digest: String,
    /// The `config_revision` of the settings it was instantiated with.
    pub(crate) revision: i64,
    /// The limits of its own process (isolated), `None` in this process.
    pub(crate) limits: Option<ProcessLimits>,
    pub(crate) plugin: ActivePlugin,
}

/// The plugin lifecycle over a store, a runtime and a permission gate. See the module docs.
pub struct PluginManager {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    gate: Arc<PermissionGate>,
    installer: Installer,
    options: ManagerOptions,
    loaded: Mutex<HashMap<(String, String), LoadedVersion>>,
    /// The digest of the build of every library path this process opened (or tried to open): the
    /// operating system hands back the first library opened at a path, so another build at the
    /// same path (a fixed one after a failed upgrade) cannot load until a restart.
    opened: Mutex<HashMap<String, String>>,
    /// One lifecycle operation at a time in this process.
    ops: tokio::sync::Mutex<()>,
    /// This process's in-flight marks; `None` when they could not be set up (logged).
    marks: Option<Arc<InFlightMarks>>,
    /// Versions whose code is being loaded right now (loads run outside `ops`).
    loading: Mutex<HashSet<(String, String)>>,
    /// The settings revision of the instance of each plugin in this process's registry (a loaded
    /// instance in `loaded` may be newer: prepared, not yet swapped in).
    running_revisions: Mutex<HashMap<String, i64>>,
    /// The process limits of each isolated instance in the registry, by plugin id.
    running_limits: Mutex<HashMap<String, ProcessLimits>>,
    /// The trust policy: the environment's, plus the stored trust settings of a revision.
    trust: std::sync::RwLock<trust_settings::TrustState>,
    /// The trust revision the active plugins were last judged against (by boot or reconcile).
    judged_trust: Mutex<Option<i64>>,
}

impl PluginManager {
    /// A manager. `runtime` and `gate` are the ones the server dispatches through; a `crash` guard,
    /// when given, is attached to this manager (it must wrap the runtime's receipt sink).
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        gate: Arc<PermissionGate>,
        options: ManagerOptions,
        crash: Option<&Arc<CrashGuard>>,
    ) -> Arc<PluginManager> {
        let installer = Installer::new(options.layout.clone())
            .with_limits(options.limits.clone())
            .with_npm(options.npm.clone());
        let marks = match InFlightMarks::open(&options.layout.inflight_dir()) {
            Ok(marks) => Some(Arc::new(marks)),
            Err(e) => {
                tracing::warn!(
                    "could not set up in-flight marks in {}: {e}; a crash in a plugin's call will not be attributed to it",
                    options.layout.inflight_dir().display()
                );
                None
            }
        };
        let manager = Arc::new(PluginManager {
            marks,
            loading: Mutex::new(HashSet::new()),
            running_revisions: Mutex::new(HashMap::new()),
            running_limits: Mutex::new(HashMap::new()),
            trust: std::sync::RwLock::new(trust_settings::TrustState::from_environment(
                &options.policy,
            )),
            judged_trust: Mutex::new(None),
            store,
            runtime,
            gate,
            installer,
            options,
            loaded: Mutex::new(HashMap::new()),
            opened: Mutex::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
        });
        if let Some(guard) = crash {
            guard.attach(&manager);
        }
        manager
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The settings.
    pub fn options(&self) -> &ManagerOptions {
        &self.options
    }

    /// Says the process is stopping: plugin calls still running from now on (a handler stuck at
    /// shutdown) are not taken for a crash at the next boot.
    pub fn stopping(&self) {
        if let Some(marks) = &self.marks {
            marks.close();
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.options.layout
    }

    fn lock_loaded(&self) -> MutexGuard<'_, HashMap<(String, String), LoadedVersion>> {
        // Entries are inserted whole; a panic elsewhere cannot leave one half-written.
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every plugin with its state: built-ins linked into this binary and every row of `plugins`.
    pub async fn list(&self) -> Result<Vec<PluginStatus>, LifecycleError> {
        let rows = self.store.list_plugins().await?;
        let registry = self.runtime.registry();
        let mut out: BTreeMap<String, PluginStatus> = BTreeMap::new();
        for builtin in crate::builtin::builtins() {
            if let Ok(v) = builtin.manifest() {
                let m = v.manifest;
                out.insert(
                    m.id.clone(),
                    PluginStatus {
                        id: m.id.clone(),
                        name: m.name.clone(),
                        version: Some(m.version.clone()),
                        state: PluginState::Enabled,
                        builtin: true,
                        trust_level: "builtin".into(),
                        source_kind: "builtin".into(),
                        source_ref: None,
                        digest: None,
                        last_error: None,
                        active_version: None,
                    },
                );
            }
        }
        for row in rows {
            let builtin = row.source_kind == "builtin";
            let state = PluginState::of(&row);
            let entry = PluginStatus {
                id: row.id.clone(),
                name: row.name.clone(),
                version: row.current_version.clone(),
                state,
                builtin,
                trust_level: row.trust_level.clone(),
                source_kind: row.source_kind.clone(),
                source_ref: row.source_ref.clone(),
                digest: row.current_checksum.clone(),
                last_error: row.last_load_error.clone(),
                active_version: None,
            };
            out.insert(row.id.clone(), entry);
        }
        for status in out.values_mut() {
            status.active_version = registry
                .plugin(&status.id)
                .map(|p| p.meta().version.to_string());
        }
        Ok(out.into_values().collect())
    }

    /// Writes a lifecycle receipt (and a log line).
    pub(crate) async fn receipt(
        &self,
        id: &str,
        version: Option<&str>,
        kind: ReceiptKind,
        status: ReceiptStatus,
        detail: Value,
    ) {
        let message = detail
            .get("error")
            .or_else(|| detail.get("reason"))
            .and_then(Value::as_str)
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        logs::append(
            &self.options.layout.logs_dir(),
            id,
            version,
            if status == ReceiptStatus::Ok {
                "INFO"
            } else {
                "WARN"
            },
            &format!("{} {}{message}", kind.as_str(), status.as_str()),
        );
        let mut detail = detail;
        // Done for an agent: the receipt names it, its job and its work item.
        let actor = agent_ops::ACTING_AGENT.try_with(Clone::clone).ok();
        if let (Some(actor), Some(fields)) = (&actor, detail.as_object_mut()) {
            fields.insert("actor".into(), actor.detail());
        }
        let mut receipt =
            Receipt::new(id, version.map(Arc::from), kind, status).with_detail(detail);
        if let Some(actor) = actor {
            receipt.job_id = Some(Arc::from(actor.job_id));
            receipt.work_item_id = Some(Arc::from(actor.work_item_id));
        }
        // Where the plugin's code runs now, when it runs.
        if let Some(plugin) = self.runtime.registry().plugin(id) {
            receipt = receipt.with_execution_mode(plugin.meta().execution);
        }
        self.runtime.sink().submit(vec![receipt]).await;
    }

    /// Runs blocking work (file I/O, libgit2, plugin code) off the async workers.
    pub(crate) async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LifecycleError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| LifecycleError::Task(e.to_string()))
    }

    pub(crate) async fn plugin_row(&self, id: &str) -> Result<PluginRow, LifecycleError> {
        match self.store.get_plugin(id).await? {
            Some(row) if row.source_kind == "builtin" || row.current_version.is_some() => Ok(row),
            _ => Err(LifecycleError::NotInstalled(id.to_string())),
        }
    }
}

/// What state a plugin is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Enabled and (as far as the database knows) loading fine.
    Enabled,
    /// Installed, not enabled.
    Disabled,
    /// Its last load failed, or it was disabled by the crash-loop guard or the boot marker; the
    /// reason is `last_error`.
    Error,
    /// Uninstalled; its data is kept (see `uninstall --purge-data`).
    Uninstalled,
}

impl PluginState {
    fn of(row: &PluginRow) -> PluginState {
        if row.current_version.is_none() && row.source_kind != "builtin" {
            PluginState::Uninstalled
        } else if row.last_load_error.is_some() {
            PluginState::Error
        } else if row.enabled {
            PluginState::Enabled
        } else {
            PluginState::Disabled
        }
    }

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Enabled => "enabled",
            PluginState::Disabled => "disabled",
            PluginState::Error => "error",
            PluginState::Uninstalled => "uninstalled",
        }
    }
}

/// One line of `nitejar plugin list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The current version.
    pub version: Option<String>,
    /// The state.
    pub state: PluginState,
    /// Compiled into the binary.
    pub builtin: bool,
    /// `builtin`, `trusted`, `untrusted`.
    pub trust_level: String,
    /// Where it came from.
    pub source_kind: String,
    /// The exact source.
    pub source_ref: Option<String>,
    /// The current version's content digest.
    pub digest: Option<String>,
    /// The last load error or why it was disabled.
    pub last_error: Option<String>,
    /// The version active in *this* process's runtime.
    pub active_version: Option<String>,
}

/// How long a server following the database waits for a reconciliation when no change was signalled
/// ([`follow`] runs one as soon as the change feed sees a change).
pub const RECONCILE_SAFETY_NET: Duration = crate::changes::SAFETY_NET;
