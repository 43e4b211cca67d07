//! A plugin's settings: the config its manifest declares (see [`crate::plugin_config`]) and the
//! secrets it declares in `permissions.secrets`, as the operator sets them.
//!
//! - A config is checked against the declared schema, whole, before anything is stored; a config
//!   that does not fit is refused with a problem per setting, and nothing is written.
//! - A secret can be set only when the plugin declares it (by its environment-variable identity,
//!   as the permission gate judges it). Stored values are encrypted with `ENCRYPTION_KEY`; they are
//!   never shown, only where a secret's value comes from: [`SecretOrigin::Stored`], else the
//!   environment variable `NITEJAR_SECRET_<NAME>` ([`SecretOrigin::Environment`]), else
//!   [`SecretOrigin::Unset`]. The gate reads a stored value before the environment.
//! - A change applies without a restart. When the plugin is enabled, its library is instantiated
//!   with the new settings *before* they are stored: a plugin that refuses its config leaves the old
//!   settings running and stored. Then one transaction stores them and counts the revision, and the
//!   new instance replaces the running one (a registry swap). Another process — the server, when
//!   the CLI made the change; another machine — sees the revision differ from the one its instance
//!   was made with when it reconciles, and makes a new instance.
//! - Every change leaves a `configure` receipt naming the settings and secrets it changed; never a
//!   value.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::activate::{read_manifest, Loading};
use super::consent::manifest_of;
use super::execution::ExecutionChoice;
use super::operations::builtin;
use super::{LifecycleError, LoadedVersion, PluginManager};
use crate::crypto::REDACTED;
use crate::permissions::{secret_env_var, PermissionSet};
use crate::plugin_config::{ConfigProblem, ConfigProblems, ConfigSchema};
use crate::receipts::{now_ms, ReceiptKind, ReceiptStatus};
use crate::registry::{PluginMeta, PluginOrigin};
use crate::store::{error_kind, PluginRow, PluginVersionRow, SecretValue, SettingsWrite};

/// A change of a plugin's settings.
///
/// ```
/// use nitejar_core::lifecycle::SettingsChange;
/// use serde_json::json;
///
/// let change = SettingsChange::default()
///     .config(json!({ "blockedTools": ["shell"] }))
///     .secret("OPENAI_API_KEY", "sk-…")
///     .clear_secret("OLD_TOKEN");
/// assert_eq!(change.secrets.len(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// `Some`: the whole new config (a setting set to `null`, or `null` itself, is not set).
    /// `None`: the config stays as it is.
    pub config: Option<Value>,
    /// Secrets by declared name: `Some(value)` stores the value (the mask `••••••••` keeps the
    /// stored one), `None` removes the stored value (the environment applies again).
    pub secrets: BTreeMap<String, Option<String>>,
}

impl std::fmt::Debug for SettingsChange {
    // Secret values never reach a log: names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: BTreeMap<&str, &str> = self
            .secrets
            .iter()
            .map(|(k, v)| (k.as_str(), if v.is_some() { "set" } else { "clear" }))
            .collect();
        f.debug_struct("SettingsChange")
            .field("config", &self.config)
            .field("secrets", &secrets)
            .finish()
    }
}

impl SettingsChange {
    /// Replaces the config.
    pub fn config(mut self, config: Value) -> Self {
        self.config = Some(config);
        self
    }

    /// Stores a secret's value.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), Some(value.into()));
        self
    }

    /// Removes a secret's stored value.
    pub fn clear_secret(mut self, name: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), None);
        self
    }
}

/// Where the value a plugin reads for a secret comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretOrigin {
    /// The operator stored a value (encrypted); it wins over the environment.
    Stored,
    /// No stored value; the environment variable is set (in this process).
    Environment,
    /// Neither: the plugin's `secret` call fails with "not set".
    Unset,
}

impl SecretOrigin {
    /// `stored`, `environment`, `unset`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretOrigin::Stored => "stored",
            SecretOrigin::Environment => "environment",
            SecretOrigin::Unset => "unset",
        }
    }
}

/// One declared secret, as the operator sees it: never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStatus {
    /// The name the manifest declares.
    pub name: String,
    /// The environment variable that is its fallback (and its identity).
    pub env_var: String,
    /// Where its value comes from.
    pub source: SecretOrigin,
    /// `••••••••` when a value is there (stored or environment), `None` when unset.
    pub value: Option<&'static str>,
    /// When the stored value was set (Unix milliseconds).
    pub updated_at: Option<i64>,
    /// A stored value this server's `ENCRYPTION_KEY` cannot decrypt (set it again).
    pub unreadable: bool,
}

/// A plugin's settings as the operator sees them: the schema to render, the stored config, every
/// declared secret masked with where its value comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginSettings {
    /// The plugin.
    pub plugin_id: String,
    /// The current version (whose manifest declares the schema).
    pub version: String,
    /// The JSON Schema of the config, `None` when the plugin takes no config.
    pub schema: Option<Value>,
    /// Form hints.
    pub ui_schema: Option<Value>,
    /// The stored config (`null`: nothing set; the plugin gets `null`).
    pub config: Value,
    /// What a form starts with when nothing is stored.
    pub defaults: Map<String, Value>,
    /// Counts the changes of the config and the stored secrets.
    pub revision: i64,
    /// The plugin runs in this process with exactly these settings. `false` while it is disabled,
    /// and for the moment between a change made elsewhere (the CLI, another machine) and this
    /// process reconciling.
    pub in_effect: bool,
    /// Where the stored config does not fit the current schema (after an upgrade changed it).
    pub problems: Vec<ConfigProblem>,
    /// Every secret the plugin declares.
    pub secrets: Vec<SecretStatus>,
}

/// What [`PluginManager::configure`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigureOutcome {
    /// The plugin.
    pub id: String,
    /// Its current version.
    pub version: String,
    /// The revision now stored.
    pub revision: i64,
    /// Settings whose value changed (added, changed or removed), by name.
    pub changed_settings: Vec<String>,
    /// Secrets given a stored value.
    pub secrets_set: Vec<String>,
    /// Secrets whose stored value was removed.
    pub secrets_cleared: Vec<String>,
    /// The plugin's code was instantiated with the new settings before they were stored (it is
    /// enabled); `false` for a disabled plugin, which gets them when it is enabled.
    pub checked_by_plugin: bool,
    /// The running instance in this process was replaced by one with the new settings. A server
    /// whose plugins this process does not run (the CLI beside it) replaces its own within a second.
    pub reinstantiated: bool,
}

impl ConfigureOutcome {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !(self.changed_settings.is_empty()
            && self.secrets_set.is_empty()
            && self.secrets_cleared.is_empty())
    }
}

/// The settings one instance is made with.
pub(crate) struct Settings {
    pub(crate) config: Value,
    /// Decrypted stored secrets, by environment variable.
    pub(crate) secrets: BTreeMap<String, String>,
    pub(crate) revision: i64,
}

/// A config as stored: settings set to `null` dropped, an empty object is nothing set.
fn normalize(config: &Value) -> Value {
    match config {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if kept.is_empty() {
                Value::Null
            } else {
                Value::Object(kept)
            }
        }
        other => other.clone(),
    }
}

fn stored_config(row: &PluginRow) -> Value {
    match row
        .config_json
        .as_deref()
        .map(serde_json::from_str::<Value>)
    {
        None => Value::Null,
        Some(Ok(config)) => config,
        Some(Err(e)) => {
            tracing::warn!(plugin.id = %row.id, "the stored config is not JSON ({e}); the plugin gets none");
            Value::Null
        }
    }
}

/// Checks a (normalized) config against the schema, or against "no settings".
fn check_config(
    id: &str,
    schema: Option<&ConfigSchema>,
    config: &Value,
) -> Result<(), ConfigProblems> {
    match schema {
        Some(schema) => schema.validate(config),
        None if config.is_null() => Ok(()),
        None => Err(ConfigProblems(vec![ConfigProblem::whole(format!(
            "`{id}` declares no settings (its manifest has no `config`), so none can be set"
        ))])),
    }
}

/// The names whose values differ between two configs.
fn changed_names(before: &Value, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

impl PluginManager {
    /// The settings an instance of `row`'s plugin is made with now: its stored config and stored
    /// secrets (decrypted).
    pub(crate) async fn stored_settings(
        &self,
        row: &PluginRow,
    ) -> Result<Settings, LifecycleError> {
        let (secrets, unreadable) = self.stored_secrets(&row.id).await?;
        if let Some((_, error)) = unreadable.into_iter().next() {
            return Err(error);
        }
        Ok(Settings {
            config: stored_config(row),
            secrets,
            revision: row.config_revision,
        })
    }

    /// The stored secrets of a plugin, decrypted, by environment variable; and those that cannot
    /// be (with the environment variable they are stored under).
    #[allow(clippy::type_complexity)]
    pub(crate) async fn stored_secrets(
        &self,
        id: &str,
    ) -> Result<(BTreeMap<String, String>, Vec<(String, LifecycleError)>), LifecycleError> {
        let mut secrets = BTreeMap::new();
        let mut unreadable = Vec::new();
        for stored in self.store.list_plugin_secrets(id).await? {
            match stored.decrypt(self.store.cipher()) {
                Ok(value) => {
                    secrets.insert(stored.env_var, value);
                }
                Err(e) => unreadable.push((
                    stored.env_var.clone(),
                    LifecycleError::SecretUnreadable {
                        id: id.to_string(),
                        name: stored.name.clone(),
                        reason: e.to_string(),
                    },
                )),
            }
        }
        Ok((secrets, unreadable))
    }

    /// Whether the instance of plugin `id` running in this process (in the registry) was made
    /// with other settings than revision `revision`, or none runs.
    pub(crate) fn settings_outdated(&self, id: &str, revision: i64) -> bool {
        self.running_revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            != Some(&revision)
    }

    /// Records the settings revision of the instance of `id` now in the registry (`None`: none).
    pub(crate) fn set_running_revision(&self, id: &str, revision: Option<i64>) {
        let mut running = self
            .running_revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match revision {
            Some(r) => running.insert(id.to_string(), r),
            None => running.remove(id),
        };
    }

    /// The settings of an installed third-party plugin: its schema, stored config, and every
    /// declared secret masked, with where its value comes from.
    pub async fn settings(&self, id: &str) -> Result<PluginSettings, LifecycleError> {
        if builtin(id).is_some() {
            return Err(LifecycleError::Builtin {
                id: id.to_string(),
                action: "configured",
            });
        }
        let row = self.plugin_row(id).await?;
        let version = self.current_version_row(&row).await?;
        let manifest = manifest_of(id, &version)?;
        let schema = ConfigSchema::of_manifest(&manifest).map_err(|e| LifecycleError::Corrupt {
            id: id.to_string(),
            what: "config declaration",
            reason: e.to_string(),
        })?;
        let config = stored_config(&row);
        let problems = check_config(id, schema.as_ref(), &config)
            .err()
            .map(|p| p.0)
            .unwrap_or_default();
        let stored = self.store.list_plugin_secrets(id).await?;
        let meta = PluginMeta::new(id, &version.version, PluginOrigin::ThirdParty);
        let secrets = manifest
            .permissions
            .secrets
            .iter()
            .map(|name| {
                let env_var = secret_env_var(name);
                let row = stored.iter().find(|s| s.env_var == env_var);
                let unreadable = row.is_some_and(|r| r.decrypt(self.store.cipher()).is_err());
                let source = if row.is_some() {
                    SecretOrigin::Stored
                } else if self.gate.fallback_secret_is_set(&meta, name) {
                    SecretOrigin::Environment
                } else {
                    SecretOrigin::Unset
                };
                SecretStatus {
                    name: name.clone(),
                    env_var,
                    value: (source != SecretOrigin::Unset).then_some(REDACTED),
                    source,
                    updated_at: row.map(|r| r.updated_at),
                    unreadable,
                }
            })
            .collect();
        let in_effect = self
            .runtime
            .registry()
            .plugin(id)
            .is_some_and(|p| *p.meta().version == *version.version)
            && !self.settings_outdated(id, row.config_revision);
        Ok(PluginSettings {
            in_effect,
            plugin_id: id.to_string(),
            version: version.version,
            schema: schema.as_ref().map(|s| s.schema().clone()),
            ui_schema: schema.as_ref().and_then(|s| s.ui_schema().cloned()),
            defaults: schema
                .as_ref()
                .map(ConfigSchema::defaults)
                .unwrap_or_default(),
            config,
            revision: row.config_revision,
            problems,
            secrets,
        })
    }

    /// Changes a plugin's settings: its config and the secrets it declares.
    ///
    /// - The config (`change.config`, the whole of it) must fit the schema the current version's
    ///   manifest declares; a secret must be declared in `permissions.secrets` (by its
    ///   environment-variable identity, as the permission gate judges it). Otherwise the answer is
    ///   [`LifecycleError::InvalidConfig`] (a problem per setting) or
    ///   [`LifecycleError::UndeclaredSecret`], and nothing is stored.
    /// - When the plugin is enabled, its code is instantiated with the new settings *before* they
    ///   are stored: a plugin that refuses them keeps running with its old ones, which stay stored.
    /// - One transaction stores the config, the secrets (encrypted with `ENCRYPTION_KEY`) and a new
    ///   revision; the new instance then replaces the running one in this process (a registry
    ///   swap, no restart). Another process running the plugin — the server beside the CLI,
    ///   another machine — makes its own new instance when it reconciles and sees the revision.
    /// - A change (or a refusal) leaves a `configure` receipt naming settings and secrets, never a
    ///   value. Sending nothing new (the mask `••••••••` for a stored secret, the same config)
    ///   changes nothing and leaves no receipt.
    ///
    /// ```no_run
    /// # async fn demo(manager: &nitejar_core::lifecycle::PluginManager) -> Result<(), nitejar_core::lifecycle::LifecycleError> {
    /// use nitejar_core::lifecycle::SettingsChange;
    /// use serde_json::json;
    ///
    /// let change = SettingsChange::default()
    ///     .config(json!({ "redactSecrets": ["OPENAI_API_KEY"] }))
    ///     .secret("OPENAI_API_KEY", "sk-…");
    /// let outcome = manager.configure("dev.nitejar.examples.policy-guard", change).await?;
    /// assert_eq!(outcome.secrets_set, ["OPENAI_API_KEY"]);
    /// # Ok(()) }
    /// ```
    pub async fn configure(
        &self,
        id: &str,
        change: SettingsChange,
    ) -> Result<ConfigureOutcome, LifecycleError> {
        let mut held = Some(self.ops.lock().await);
        let asked = json!({
            "config": change.config.is_some(),
            "secrets": change.secrets.keys().collect::<Vec<_>>(),
        });
        let result = self.configure_inner(id, &change, &mut held).await;
        match &result {
            Ok(outcome) if outcome.changed() => {
                let detail = json!({
                    "changedSettings": outcome.changed_settings,
                    "secretsSet": outcome.secrets_set,
                    "secretsCleared": outcome.secrets_cleared,
                    "revision": outcome.revision,
                    "checkedByPlugin": outcome.checked_by_plugin,
                    "reinstantiated": outcome.reinstantiated,
                });
                self.receipt(
                    id,
                    Some(&outcome.version),
                    ReceiptKind::Configure,
                    ReceiptStatus::Ok,
                    detail,
                )
                .await;
            }
            Ok(_) => {}
            Err(e) => {
                self.refusal_receipt(id, None, ReceiptKind::Configure, e, asked)
                    .await;
            }
        }
        result
    }

    /// `held` is the lifecycle lock: let go while the plugin's code tries the new settings (a
    /// load, bounded by the load timeout), so that a plugin whose code takes long to load holds
    /// up no other operation; taken again to store them.
    async fn configure_inner<'a>(
        &'a self,
        id: &str,
        change: &SettingsChange,
        held: &mut Option<tokio::sync::MutexGuard<'a, ()>>,
    ) -> Result<ConfigureOutcome, LifecycleError> {
        if builtin(id).is_some() {
            return Err(LifecycleError::Builtin {
                id: id.to_string(),
                action: "configured",
            });
        }
        let row = self.plugin_row(id).await?;
        let version = self.current_version_row(&row).await?;
        let manifest = manifest_of(id, &version)?;
        let schema = ConfigSchema::of_manifest(&manifest).map_err(|e| LifecycleError::Corrupt {
            id: id.to_string(),
            what: "config declaration",
            reason: e.to_string(),
        })?;

        let before = stored_config(&row);
        let config = change.config.as_ref().map(normalize);
        if let Some(config) = &config {
            check_config(id, schema.as_ref(), config).map_err(|problems| {
                LifecycleError::InvalidConfig {
                    id: id.to_string(),
                    problems,
                }
            })?;
        }

        let permissions = PermissionSet::from(&manifest.permissions);
        let mut undeclared = Vec::new();
        let (mut set, mut clear) = (Vec::new(), Vec::new());
        for (name, value) in &change.secrets {
            let Some(declared) = permissions.declared_secret(name) else {
                undeclared.push(name.clone());
                continue;
            };
            let env_var = secret_env_var(declared);
            match value.as_deref() {
                Some(REDACTED) => {}
                Some("") => {
                    return Err(LifecycleError::EmptySecret {
                        id: id.to_string(),
                        name: declared.to_string(),
                    })
                }
                Some(value) => set.push(SecretValue {
                    env_var,
                    name: declared.to_string(),
                    value: value.to_string(),
                }),
                None => clear.push((declared.to_string(), env_var)),
            }
        }
        if !undeclared.is_empty() {
            return Err(LifecycleError::UndeclaredSecret {
                id: id.to_string(),
                names: undeclared,
                declared: manifest.permissions.secrets.clone(),
            });
        }

        // A stored secret this key cannot read is fixed by setting (or clearing) it again; any
        // other one stops the change, since no instance could be made with it.
        let (current, unreadable) = self.stored_secrets(id).await?;
        let stored_vars: Vec<String> = current
            .keys()
            .cloned()
            .chain(unreadable.iter().map(|(var, _)| var.clone()))
            .collect();
        for (var, error) in unreadable {
            let replaced =
                set.iter().any(|s| s.env_var == var) || clear.iter().any(|(_, v)| *v == var);
            if !replaced {
                return Err(error);
            }
        }
        let after = config.clone().unwrap_or_else(|| before.clone());
        let changed_settings = changed_names(&before, &after);
        let set: Vec<SecretValue> = set
            .into_iter()
            .filter(|s| current.get(&s.env_var) != Some(&s.value))
            .collect();
        let clear: Vec<(String, String)> = clear
            .into_iter()
            .filter(|(_, var)| stored_vars.contains(var))
            .collect();
        let mut outcome = ConfigureOutcome {
            id: id.to_string(),
            version: version.version.clone(),
            revision: row.config_revision,
            changed_settings,
            secrets_set: set.iter().map(|s| s.name.clone()).collect(),
            secrets_cleared: clear.iter().map(|(name, _)| name.clone()).collect(),
            checked_by_plugin: false,
            reinstantiated: false,
        };
        if !outcome.changed() {
            return Ok(outcome);
        }
        let mut secrets = current;
        for (_, var) in &clear {
            secrets.remove(var);
        }
        for s in &set {
            secrets.insert(s.env_var.clone(), s.value.clone());
        }

        // The plugin's code tries the new settings before they are stored.
        let live = row.enabled && row.last_load_error.is_none() && !self.options.safe_mode;
        let trial = if live {
            let dir = self.version_dir(&version).await?;
            self.verify_digest(&version, &dir).await?;
            let on_disk = read_manifest(&dir).map_err(|reason| LifecycleError::Corrupt {
                id: id.to_string(),
                what: "manifest",
                reason,
            })?;
            // One load of a version at a time in this process (a reconcile may be loading it).
            let key = (id.to_string(), version.version.clone());
            let _loading = Loading::claim(&self.loading, &key).ok_or_else(|| {
                LifecycleError::LoadInProgress {
                    id: id.to_string(),
                    version: version.version.clone(),
                }
            })?;
            held.take();
            let loaded = self
                .load(&row, &version, &dir, &on_disk, after.clone())
                .await;
            drop(_loading);
            *held = Some(self.ops.lock().await);
            // What the settings were checked against must still be what is stored.
            let now = self.plugin_row(id).await?;
            if now.config_revision != row.config_revision
                || now.current_version != row.current_version
                || !now.enabled
                || now.last_load_error.is_some()
                || ExecutionChoice::of(&now) != ExecutionChoice::of(&row)
            {
                return Err(LifecycleError::ChangedMeanwhile {
                    id: id.to_string(),
                    action: "configured",
                });
            }
            Some(loaded?)
        } else {
            None
        };

        let revision = self
            .store
            .write_plugin_settings(&SettingsWrite {
                plugin_id: id.to_string(),
                config_json: config.map(|c| (!c.is_null()).then(|| c.to_string())),
                set_secrets: set,
                clear_secrets: clear.into_iter().map(|(_, var)| var).collect(),
            })
            .await?;
        outcome.revision = revision;
        outcome.checked_by_plugin = trial.is_some();

        if let Some(plugin) = trial {
            let key = (id.to_string(), version.version.clone());
            self.lock_loaded().insert(
                key.clone(),
                LoadedVersion {
                    digest: version.checksum.clone(),
                    revision,
                    limits: self.isolated_limits(&row),
                    plugin: plugin.clone(),
                },
            );
            let running_here = self
                .runtime
                .registry()
                .plugin(id)
                .is_some_and(|p| *p.meta().version == *version.version);
            if running_here {
                let previous = self.gate.stored_secrets(id);
                self.gate.set_stored_secrets(id, secrets);
                if let Err(source) = self.runtime.activate(plugin) {
                    // The old instance keeps running; reconciling tries the stored settings again.
                    self.gate.set_stored_secrets(id, previous);
                    self.lock_loaded().remove(&key);
                    return Err(LifecycleError::Registry {
                        id: id.to_string(),
                        source,
                    });
                }
                self.set_running_revision(id, Some(revision));
                self.set_running_limits(id, self.isolated_limits(&row));
                outcome.reinstantiated = true;
            }
        } else if row.enabled
            && !self.options.safe_mode
            && row.last_load_error.is_some()
            && row.last_error_kind.as_deref() == Some(error_kind::LOAD)
        {
            outcome.reinstantiated = self.retry_with_stored_settings(id, &version, held).await;
        }
        tracing::info!(
            plugin.id = %id,
            plugin.version = %version.version,
            "settings changed (revision {revision}): settings {:?}, secrets set {:?}, cleared {:?}",
            outcome.changed_settings,
            outcome.secrets_set,
            outcome.secrets_cleared
        );
        Ok(outcome)
    }
}

impl PluginManager {
    /// Activates an enabled plugin that a load error stopped, with the settings just stored: a
    /// config fix is the usual cure for a load error, and nothing else would try again (the
    /// reconciler leaves a plugin in error alone until an operator acts). Either it runs, its
    /// error cleared, or its error is the one these settings met. Whether it runs now.
    /// The code loads with the lifecycle lock (`held`) let go, as for an enable.
    async fn retry_with_stored_settings<'a>(
        &'a self,
        id: &str,
        version: &PluginVersionRow,
        held: &mut Option<tokio::sync::MutexGuard<'a, ()>>,
    ) -> bool {
        let reread = async || match self.plugin_row(id).await {
            Ok(row) => Some(row),
            Err(e) => {
                tracing::warn!(plugin.id = %id, "could not read the plugin again to load it with its new settings: {e}");
                None
            }
        };
        let Some(before) = reread().await else {
            return false;
        };
        held.take();
        let loaded = self.preload_one(before.clone(), version.clone()).await;
        *held = Some(self.ops.lock().await);
        let Some(mut row) = reread().await else {
            return false;
        };
        if row.config_revision != before.config_revision
            || row.current_version != before.current_version
            || !row.enabled
        {
            // Another operation changed it meanwhile, and that operation answers for it.
            return false;
        }
        let result = match loaded {
            Ok(()) => self.activate_preloaded(&row, version, true).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(verdict) => {
                row.clear_error();
                row.trust_level = verdict.trust_level().to_string();
                row.last_loaded_at = Some(now_ms());
                row.updated_at = now_ms();
                if let Err(e) = self.store.upsert_plugin(&row).await {
                    // It runs; the reconciler clears the error when the store takes writes again.
                    tracing::warn!(plugin.id = %id, "the plugin runs with its new settings, but its cleared error could not be stored: {e}");
                }
                self.write_loaded_libraries();
                tracing::info!(plugin.id = %id, plugin.version = %version.version, "loaded with its new settings; its load error is cleared");
                true
            }
            Err(e) => {
                self.mark_error(&mut row, &e).await;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_shows_secret_names_only() {
        let change = SettingsChange::default().secret("TOKEN", "s3cr3t-value");
        let shown = format!("{change:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("s3cr3t-value"),
            "{shown}"
        );
    }

    #[test]
    fn null_settings_are_not_stored() {
        assert_eq!(normalize(&json!({ "a": null })), Value::Null);
        assert_eq!(normalize(&json!({ "a": 1, "b": null })), json!({ "a": 1 }));
        assert_eq!(normalize(&json!([1])), json!([1]));
    }

    #[test]
    fn changed_names_cover_added_changed_and_removed() {
        assert_eq!(
            changed_names(
                &json!({ "a": 1, "b": 2, "c": 3 }),
                &json!({ "a": 1, "b": 3, "d": 4 })
            ),
            ["b", "c", "d"]
        );
        assert_eq!(changed_names(&Value::Null, &json!({ "a": 1 })), ["a"]);
    }
}
