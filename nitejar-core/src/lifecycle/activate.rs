//! Putting one plugin version into the runtime, and taking it out: the digest check, the trust
//! policy, the operator's acknowledgements, the boot marker, the load, the grant, the registry swap.

use crate::builtin::BuiltinExt;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nitejar_sdk::manifest::Manifest;
use nitejar_sdk::SkillContribution;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{LifecycleError, LoadedVersion, PluginManager};
use crate::builtin::BuiltinPlugin;
use crate::install::{digest_dir, SIGNATURE_FILE};
use crate::loader::isolated::{Isolation, ProcessLimits};
use crate::loader::{self, LoadError, PluginPackage};
use crate::manifest::{validate_package_dir, ValidateOptions};
use crate::permissions::{Grant, PermissionSet};
use crate::receipts::{ExecutionMode, ReceiptKind, ReceiptStatus};
use crate::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use crate::store::{PluginRow, PluginVersionRow};
use crate::trust::consent::ack_strings;
use crate::trust::{SignatureCheck, Verdict};

/// `plugins/<id>/.activating`: written before a plugin's code first runs in this process, removed
/// when activation ends either way. Found at boot, it means the previous process died while
/// activating the plugin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ActivationMarker {
    pub(crate) version: String,
    pub(crate) pid: u32,
    pub(crate) started_at_ms: i64,
}

impl ActivationMarker {
    /// Whether the process that wrote the marker is still running (another process activating the
    /// plugin right now, e.g. the CLI while the server boots).
    pub(crate) fn writer_alive(&self) -> bool {
        if self.pid == std::process::id() {
            return false;
        }
        Path::new("/proc").join(self.pid.to_string()).exists()
    }
}

/// The package directory's own reading of its manifest: what is loaded is what is on disk.
pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    validate_package_dir(dir, &ValidateOptions::new())
        .map(|v| v.manifest)
        .map_err(|e| e.to_string().trim_end().to_string())
}

impl PluginManager {
    /// The version directory of `version` on this machine: materialised from `plugin_artifacts`
    /// when this machine does not have it yet (several machines, one database).
    pub(crate) async fn version_dir(
        &self,
        version: &PluginVersionRow,
    ) -> Result<PathBuf, LifecycleError> {
        let layout = self.layout().clone();
        let dir = layout.version_dir(&version.plugin_id, &version.version);
        if std::fs::symlink_metadata(&dir).is_ok() {
            return Ok(dir);
        }
        let Some(artifact) = self
            .store
            .get_plugin_artifact(&version.plugin_id, &version.version)
            .await?
        else {
            return Err(LifecycleError::Io {
                action: "find",
                path: dir,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the version directory is missing and no package is stored in the database; reinstall the plugin",
                ),
            });
        };
        let installer = self.installer.clone();
        let name = format!("{}-{}.tgz", version.plugin_id, version.version);
        let staged = Self::blocking(move || {
            let staged = installer.stage_artifact(artifact.bytes, &name)?;
            let dir = staged.commit(installer.layout())?;
            Ok::<_, crate::install::InstallError>(dir)
        })
        .await??;
        tracing::info!(
            plugin.id = %version.plugin_id,
            plugin.version = %version.version,
            "materialised from the stored package into {}",
            staged.dir().display()
        );
        Ok(staged.dir().to_path_buf())
    }

    /// Checks the files of a version directory against the digest recorded at install.
    pub(crate) async fn verify_digest(
        &self,
        version: &PluginVersionRow,
        dir: &Path,
    ) -> Result<(), LifecycleError> {
        let dir_owned = dir.to_path_buf();
        let actual = Self::blocking(move || digest_dir(&dir_owned))
            .await?
            .unwrap_or_else(|e| format!("unreadable ({e})"));
        if actual == version.checksum {
            Ok(())
        } else {
            Err(LifecycleError::Tampered {
                id: version.plugin_id.clone(),
                version: version.version.clone(),
                expected: version.checksum.clone(),
                actual,
            })
        }
    }

    /// The trust policy's verdict on enabling a version in `dir` (its signature read from disk).
    pub(crate) fn judge_enable(
        &self,
        id: &str,
        digest: &str,
        dir: &Path,
    ) -> Result<(Verdict, SignatureCheck), LifecycleError> {
        let signature = std::fs::read_to_string(dir.join(SIGNATURE_FILE)).ok();
        let policy = self.policy();
        let check = policy.check_signature(signature.as_deref(), digest);
        let verdict =
            policy
                .judge_enable(id, digest, &check)
                .map_err(|refusal| LifecycleError::Trust {
                    id: id.to_string(),
                    action: "enable",
                    refusal,
                })?;
        Ok((verdict, check))
    }

    /// The acknowledged permissions of a plugin, and (in a mode that requires it) an error naming
    /// the declared ones that are not.
    pub(crate) async fn acknowledgements(
        &self,
        id: &str,
        manifest: &Manifest,
    ) -> Result<Vec<String>, LifecycleError> {
        let acked: Vec<String> = self
            .store
            .list_disclosure_acks(id)
            .await?
            .into_iter()
            .filter(|a| a.acknowledged)
            .map(|a| a.permission)
            .collect();
        let mode = self.options.policy.mode();
        if mode.requires_acknowledgement() {
            let missing: Vec<String> = ack_strings(&manifest.permissions)
                .into_iter()
                .filter(|p| !acked.contains(p))
                .collect();
            if !missing.is_empty() {
                return Err(LifecycleError::AcknowledgementMissing {
                    id: id.to_string(),
                    mode: mode.as_str(),
                    missing,
                });
            }
        }
        Ok(acked)
    }

    /// Puts `version` of a third-party plugin into the runtime (replacing the active version, if
    /// any): digest, trust, acknowledgements, load (or reuse a version loaded earlier in this
    /// process), grant, registry swap. Nothing changes when it fails.
    pub(crate) async fn activate_version(
        &self,
        row: &PluginRow,
        version: &PluginVersionRow,
    ) -> Result<Verdict, LifecycleError> {
        let prepared = self.prepare_version(row, version, true).await?;
        self.install_prepared(&row.id, prepared)
    }

    /// [`Self::activate_version`] for an operation holding the lifecycle lock: when the version's
    /// code is not loaded yet (with these settings, mode and limits) and `may_load` is false, it
    /// changes nothing and answers [`LifecycleError::NotPreloaded`], for
    /// [`Self::loading_outside_the_lock`] to load it with the lock let go and run the operation
    /// again.
    pub(crate) async fn activate_preloaded(
        &self,
        row: &PluginRow,
        version: &PluginVersionRow,
        may_load: bool,
    ) -> Result<Verdict, LifecycleError> {
        let prepared = self.prepare_version(row, version, may_load).await?;
        self.install_prepared(&row.id, prepared)
    }

    /// Runs `op` under the lifecycle lock. When it needs a version's code loaded
    /// ([`LifecycleError::NotPreloaded`]), the lock is let go while the code loads (bounded by
    /// the load timeout, as at reconcile), and `op` runs again under the lock: a plugin whose code
    /// takes long to load holds up no other operation. `op` gets `may_load`: true on the last
    /// attempt only (something keeps changing what is loaded: load under the lock, bounded all the
    /// same). What `op` did before asking must be safe to do again.
    pub(crate) async fn loading_outside_the_lock<T>(
        &self,
        op: impl AsyncFn(bool) -> Result<T, LifecycleError>,
    ) -> Result<T, LifecycleError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            let held = self.ops.lock().await;
            match op(attempt >= ATTEMPTS).await {
                Err(LifecycleError::NotPreloaded { row, version }) if attempt < ATTEMPTS => {
                    drop(held);
                    attempt += 1;
                    self.preload_one(*row, *version).await?;
                }
                other => return other,
            }
        }
    }

    /// Loads one version for an operation that let the lifecycle lock go ([`Self::preload`]).
    /// A version another task is loading right now is no error: its load is what the operation
    /// finds when it runs again (after a short wait, for that load to go on).
    pub(crate) async fn preload_one(
        &self,
        row: PluginRow,
        version: PluginVersionRow,
    ) -> Result<(), LifecycleError> {
        let id = row.id.clone();
        match self
            .preload(&[(row, version)])
            .await
            .remove(&id)
            .map(|p| p.result)
        {
            Some(Err(LifecycleError::LoadInProgress { .. })) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            Some(Ok(())) | None => Ok(()),
        }
    }

    /// Loads `versions` of third-party plugins (or finds them loaded) at once, each bounded by the
    /// load timeout, without changing the registry: what [`Self::activate_version`] then finds
    /// ready. Callers run it outside the lifecycle lock, so that a plugin whose code takes long to
    /// load holds up no other operation. Each plugin's outcome, by id; a version another task is
    /// loading right now is `LoadInProgress`.
    pub(crate) async fn preload(
        &self,
        versions: &[(PluginRow, PluginVersionRow)],
    ) -> HashMap<String, Preloaded> {
        let loads = versions.iter().map(|(row, version)| async move {
            let result = self.prepare_version(row, version, true).await.map(|_| ());
            (
                row.id.clone(),
                Preloaded {
                    version: version.version.clone(),
                    revision: row.config_revision,
                    result,
                },
            )
        });
        futures_util::future::join_all(loads)
            .await
            .into_iter()
            .collect()
    }

    /// Everything of an activation but the registry: consent, digest, trust, acknowledgements,
    /// and the version's code loaded (or found loaded earlier in this process).
    async fn prepare_version(
        &self,
        row: &PluginRow,
        version: &PluginVersionRow,
        may_load: bool,
    ) -> Result<Prepared, LifecycleError> {
        let id = row.id.as_str();
        // Nothing of a version runs without the operator's consent to it on record.
        self.require_consent(version).await?;
        let dir = self.version_dir(version).await?;
        self.verify_digest(version, &dir).await?;
        let (verdict, _) = self.judge_enable(id, &version.checksum, &dir)?;
        let manifest = read_manifest(&dir).map_err(|reason| LifecycleError::Load {
            id: id.to_string(),
            version: version.version.clone(),
            source: LoadError::NoLibrary {
                plugin: id.to_string(),
                message: reason,
            },
        })?;
        let acked = self.acknowledgements(id, &manifest).await?;
        let settings = self.stored_settings(row).await?;
        let key = (id.to_string(), version.version.clone());
        let cached = self.lock_loaded().get(&key).cloned();
        let plugin = match cached {
            Some(loaded) if loaded.digest != version.checksum => {
                return Err(LifecycleError::StaleLibrary {
                    id: id.to_string(),
                    version: version.version.clone(),
                })
            }
            // Made with the settings stored now: reused (a rollback is a registry swap).
            Some(loaded)
                if loaded.revision == settings.revision
                    && loaded.plugin.meta().execution == self.execution_of(row)
                    && loaded.limits == self.isolated_limits(row) =>
            {
                loaded.plugin
            }
            // None yet, or made with older settings: a new instance of the (same) library — by
            // the caller, outside the lifecycle lock, when it may not load here.
            _ if !may_load => {
                return Err(LifecycleError::NotPreloaded {
                    row: Box::new(row.clone()),
                    version: Box::new(version.clone()),
                })
            }
            _ => {
                let _loading = Loading::claim(&self.loading, &key).ok_or_else(|| {
                    LifecycleError::LoadInProgress {
                        id: id.to_string(),
                        version: version.version.clone(),
                    }
                })?;
                let plugin = self
                    .load(row, version, &dir, &manifest, settings.config.clone())
                    .await?;
                self.lock_loaded().insert(
                    key,
                    LoadedVersion {
                        digest: version.checksum.clone(),
                        revision: settings.revision,
                        limits: self.isolated_limits(row),
                        plugin: plugin.clone(),
                    },
                );
                plugin
            }
        };
        Ok(Prepared {
            verdict,
            manifest,
            dir,
            acked,
            plugin,
            secrets: settings.secrets,
            revision: settings.revision,
            limits: self.isolated_limits(row),
        })
    }

    /// Grants a prepared version its permissions and swaps it into the registry. Nothing changes
    /// when the registry refuses it.
    fn install_prepared(&self, id: &str, prepared: Prepared) -> Result<Verdict, LifecycleError> {
        let Prepared {
            verdict,
            manifest,
            dir,
            acked,
            plugin,
            secrets,
            revision,
            limits,
        } = prepared;
        let meta = plugin.meta().clone();
        let previous = self.runtime.registry().plugin(id).map(|p| p.meta().clone());
        self.gate.grant(
            &meta,
            Grant::new(PermissionSet::from(&manifest.permissions), &dir)
                .acknowledged(acked)
                .require_acknowledgement(self.options.policy.mode().requires_acknowledgement()),
        );
        let previous_secrets = self.gate.stored_secrets(id);
        self.gate.set_stored_secrets(id, secrets);
        if let Err(source) = self.runtime.activate(plugin) {
            self.gate.set_stored_secrets(id, previous_secrets);
            if previous.as_deref() != Some(&*meta) {
                self.gate.revoke(&meta);
            }
            return Err(LifecycleError::Registry {
                id: id.to_string(),
                source,
            });
        }
        self.set_running_revision(id, Some(revision));
        self.set_running_limits(id, limits);
        if let Some(previous) = previous.filter(|p| p.version != meta.version) {
            self.gate.revoke(&previous);
        }
        self.end_idle_processes(id, Some(&meta.version));
        self.write_loaded_libraries();
        Ok(verdict)
    }

    /// Ends the processes of `id`'s isolated instances but the one of version `keep` (the version
    /// now in the registry): the code of a disabled plugin, or of a version no longer current,
    /// does not go on running in a process of its own. A process ends once the calls in flight
    /// into it are done. Instances in this process stay: their library cannot be unloaded, and a
    /// rollback reuses them.
    pub(crate) fn end_idle_processes(&self, id: &str, keep: Option<&str>) {
        let idle: Vec<LoadedVersion> = {
            let mut loaded = self.lock_loaded();
            let keys: Vec<(String, String)> = loaded
                .iter()
                .filter(|((plugin, version), l)| {
                    plugin == id && Some(version.as_str()) != keep && l.limits.is_some()
                })
                .map(|(key, _)| key.clone())
                .collect();
            keys.iter().filter_map(|key| loaded.remove(key)).collect()
        };
        // Outside the lock: ending a process is a system call.
        drop(idle);
    }

    /// Loads a version's code (or a declarative plugin's skills) with the boot marker around it,
    /// instantiated with `config`, and writes a `load` receipt.
    pub(crate) async fn load(
        &self,
        row: &PluginRow,
        version: &PluginVersionRow,
        dir: &Path,
        manifest: &Manifest,
        config: serde_json::Value,
    ) -> Result<ActivePlugin, LifecycleError> {
        let id = row.id.clone();
        let library = PluginPackage::new(dir, manifest.clone())
            .library_path()
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(library) = &library {
            let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
            let first = opened
                .entry(library.clone())
                .or_insert_with(|| version.checksum.clone());
            if *first != version.checksum {
                return Err(LifecycleError::StaleLibrary {
                    id,
                    version: version.version.clone(),
                });
            }
        }
        let started = Instant::now();
        let marker_path = self.layout().activation_marker(&id);
        let marker = ActivationMarker {
            version: version.version.clone(),
            pid: std::process::id(),
            started_at_ms: crate::receipts::now_ms(),
        };
        if let Some(parent) = marker_path.parent() {
            std::fs::create_dir_all(parent).map_err(LifecycleError::io("create", parent))?;
        }
        let text = serde_json::to_vec(&marker).unwrap_or_default();
        std::fs::write(&marker_path, text).map_err(LifecycleError::io("write", &marker_path))?;
        let mut package = PluginPackage::new(dir, manifest.clone()).with_config(config);
        if self.execution_of(row) == ExecutionMode::Isolated {
            let Some(command) = self.options.plugin_host.clone() else {
                let _ = std::fs::remove_file(&marker_path);
                return Err(LifecycleError::Load {
                    id,
                    version: version.version.clone(),
                    source: LoadError::Instantiate {
                        plugin: format!("{}@{}", row.id, version.version),
                        message:
                            "isolated execution needs a plugin host command, and this host has none"
                                .into(),
                    },
                });
            };
            package = package.isolated(Isolation {
                command,
                load_timeout: self.options.load_timeout,
                data_dir: self.layout().plugin_data_dir(&row.id),
                limits: self.limits_of(row),
            });
        } else if let Some(marks) = &self.marks {
            package = package.with_marks(marks.clone());
        }
        let services: Arc<dyn crate::host::HostServices> = self.gate.clone();
        let limit = self.options.load_timeout;
        let result = tokio::time::timeout(
            limit,
            Self::blocking(move || {
                if package.manifest.entry.is_none() {
                    declarative(&package)
                } else {
                    loader::load(&package, services)
                }
            }),
        )
        .await;
        let _ = std::fs::remove_file(&marker_path);
        let Ok(result) = result else {
            let error = LifecycleError::LoadTimedOut {
                id: id.clone(),
                version: version.version.clone(),
                after: limit,
            };
            self.receipt(
                &id,
                Some(&version.version),
                ReceiptKind::Load,
                ReceiptStatus::Timeout,
                json!({ "dir": dir.display().to_string(), "error": error.to_string(), "timeoutMs": limit.as_millis() as u64 }),
            )
            .await;
            return Err(error);
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match result? {
            Ok(plugin) => {
                self.receipt(
                    &id,
                    Some(&version.version),
                    ReceiptKind::Load,
                    ReceiptStatus::Ok,
                    json!({ "dir": dir.display().to_string(), "durationMs": duration_ms, "digest": version.checksum }),
                )
                .await;
                Ok(plugin)
            }
            Err(source) => {
                self.receipt(
                    &id,
                    Some(&version.version),
                    ReceiptKind::Load,
                    ReceiptStatus::Error,
                    json!({ "dir": dir.display().to_string(), "error": source.to_string() }),
                )
                .await;
                Err(LifecycleError::Load {
                    id,
                    version: version.version.clone(),
                    source,
                })
            }
        }
    }

    /// Takes a plugin out of the runtime and withdraws its grant. Returns the version that was
    /// active.
    pub(crate) fn deactivate(&self, id: &str) -> Option<Arc<PluginMeta>> {
        let active = self.runtime.registry().plugin(id).map(|p| p.meta().clone());
        self.runtime.deactivate(id);
        if let Some(meta) = &active {
            self.gate.revoke(meta);
        }
        // Plaintext secrets are held only for plugins that run.
        self.gate.set_stored_secrets(id, Default::default());
        self.set_running_revision(id, None);
        self.set_running_limits(id, None);
        self.end_idle_processes(id, None);
        active
    }

    /// Activates a built-in with the grant its manifest declares (plus the operator's API-base
    /// hosts). Built-ins need no acknowledgement: they are part of the binary.
    pub(crate) fn activate_builtin(&self, builtin: &BuiltinPlugin) -> Result<String, String> {
        let validated = builtin.manifest().map_err(|e| e.to_string())?;
        let active = builtin.activate().map_err(|e| e.to_string())?;
        let manifest = &validated.manifest;
        let mut permissions = PermissionSet::from(&manifest.permissions);
        if let Some(extra) = self.options.builtin_network.get(&manifest.id) {
            permissions = permissions.network(extra);
        }
        self.gate.grant(
            active.meta(),
            Grant::new(permissions, self.layout().data_dir()).require_acknowledgement(false),
        );
        let id = manifest.id.clone();
        self.runtime.activate(active).map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// Writes `plugins/_runtime/libraries.json`: what this process has loaded and whether each is
    /// still active, so `nitejar plugin doctor` can report leaked versions from outside the server.
    pub(crate) fn write_loaded_libraries(&self) {
        let registry = self.runtime.registry();
        let libraries: Vec<serde_json::Value> = loader::loaded_libraries()
            .into_iter()
            .map(|l| {
                let active = registry
                    .plugin(&l.plugin_id)
                    .is_some_and(|p| *p.meta().version == *l.version);
                json!({
                    "path": l.path, "sizeBytes": l.size_bytes, "pluginId": l.plugin_id,
                    "version": l.version, "loadedAtMs": l.loaded_at_ms, "active": active,
                })
            })
            .collect();
        let file = self.layout().loaded_libraries_file();
        let doc = json!({ "pid": std::process::id(), "libraries": libraries });
        let written = file
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&file, doc.to_string()));
        if let Err(e) = written {
            tracing::warn!("could not write {}: {e}", file.display());
        }
    }
}

/// What [`PluginManager::preload`] did with one plugin.
pub(crate) struct Preloaded {
    /// The version it loaded (or tried to).
    pub(crate) version: String,
    /// The settings revision it loaded it with.
    pub(crate) revision: i64,
    pub(crate) result: Result<(), LifecycleError>,
}

/// A version ready to go into the registry.
struct Prepared {
    verdict: Verdict,
    manifest: Manifest,
    dir: PathBuf,
    acked: Vec<String>,
    plugin: ActivePlugin,
    /// The stored secrets (decrypted) of the settings `plugin` was made with.
    secrets: std::collections::BTreeMap<String, String>,
    /// Their revision.
    revision: i64,
    /// The limits of its process (isolated), `None` in this process.
    limits: Option<ProcessLimits>,
}

/// A version being loaded in this process, until dropped.
pub(crate) struct Loading<'a> {
    set: &'a Mutex<HashSet<(String, String)>>,
    key: (String, String),
}

impl<'a> Loading<'a> {
    /// Claims `key`; `None` when another task is loading it.
    pub(crate) fn claim(
        set: &'a Mutex<HashSet<(String, String)>>,
        key: &(String, String),
    ) -> Option<Self> {
        let mut loading = set.lock().unwrap_or_else(|p| p.into_inner());
        loading.insert(key.clone()).then(|| Loading {
            set,
            key: key.clone(),
        })
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// A plugin without code: its skills, read from `skills/<id>/SKILL.md` in the package.
fn declarative(package: &PluginPackage) -> Result<ActivePlugin, LoadError> {
    let manifest = &package.manifest;
    let mut skills = Vec::new();
    for skill in &manifest.contributes.skills {
        let relative = format!("skills/{skill}/SKILL.md");
        if !package.dir.join(&relative).is_file() {
            return Err(LoadError::Contributes {
                plugin: manifest.id.clone(),
                problems: vec![format!(
                    "/contributes/skills: the package has no {relative} for the skill `{skill}`"
                )],
            });
        }
        skills.push(SkillContribution::file(skill, skill, relative));
    }
    let meta = PluginMeta::new(&manifest.id, &manifest.version, PluginOrigin::ThirdParty);
    Ok(ActivePlugin::from_parts(
        meta,
        Vec::new(),
        Vec::new(),
        skills,
    ))
}
