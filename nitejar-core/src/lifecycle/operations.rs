//! Enable, disable, rollback, uninstall.

use crate::builtin::BuiltinExt;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::consent::{manifest_of, ConsentBasis};
use super::{LifecycleError, PluginManager};
use crate::receipts::{now_ms, ExecutionMode, ReceiptKind, ReceiptStatus};
use crate::store::{PluginRow, PluginVersionRow};
use crate::trust::consent::{consent_diff, consent_digest, consent_set};
use crate::trust::{TrustBasis, Verdict};

/// Which declared permissions the operator acknowledges with this request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acknowledge {
    /// None (those acknowledged before stay acknowledged).
    #[default]
    None,
    /// Every declared permission (for an upgrade: every newly declared one).
    All,
    /// These acknowledgement strings (`network:api.x.com`, `secret:TOKEN`, …).
    These(Vec<String>),
}

/// What the operator says when enabling (or upgrading an enabled plugin).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnableRequest {
    /// The operator read and accepts the consent text. Never implied.
    pub accept_consent: bool,
    /// Permissions acknowledged with this request.
    pub acknowledge: Acknowledge,
}

impl EnableRequest {
    /// Consent accepted, every permission acknowledged.
    pub fn accept_all() -> Self {
        EnableRequest {
            accept_consent: true,
            acknowledge: Acknowledge::All,
        }
    }
}

/// What `enable` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnableOutcome {
    /// The plugin.
    pub id: String,
    /// The enabled version.
    pub version: String,
    /// Every acknowledged permission.
    pub acknowledged: Vec<String>,
    /// Why the trust policy accepts it.
    pub trust: TrustBasis,
    /// Whether it is active in this process's runtime (not in safe mode).
    pub active: bool,
    /// Where its code runs (built-ins: always in the server's process).
    pub execution: ExecutionMode,
}

/// What `uninstall` should remove besides the pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UninstallOptions {
    /// Remove the version directories, version rows and stored packages.
    pub purge_files: bool,
    /// Remove the plugin's row (config, acknowledgements), receipts, alerts, data directory and log.
    pub purge_data: bool,
}

/// What `uninstall` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallOutcome {
    /// The plugin.
    pub id: String,
    /// The version that was current.
    pub version: Option<String>,
    /// Files removed.
    pub purged_files: bool,
    /// Data removed.
    pub purged_data: bool,
    /// Receipts deleted with the data.
    pub receipts_deleted: u64,
}

impl PluginManager {
    /// Enables a plugin: explicit consent (third-party), the trust policy, every declared permission
    /// acknowledged (guarded and locked modes), then load, grant and registry swap, and only then
    /// the row. Each refusal says why and is receipted. Enabling a plugin in an error state retries
    /// it and clears its alerts. The plugin's code loads with the lifecycle lock let go (see
    /// `loading_outside_the_lock`): other operations carry on meanwhile.
    pub async fn enable(
        &self,
        id: &str,
        request: EnableRequest,
    ) -> Result<EnableOutcome, LifecycleError> {
        let started = Instant::now();
        let result = self
            .loading_outside_the_lock(async |may_load| {
                self.enable_inner(id, &request, may_load).await
            })
            .await;
        match &result {
            Ok(outcome) => {
                let detail = json!({
                    "consent": if outcome.trust == TrustBasis::Builtin { "not_required" } else { "accepted" },
                    "acknowledged": outcome.acknowledged,
                    "trust": outcome.trust,
                    "trustMode": self.options.policy.mode().as_str(),
                    "executionMode": outcome.execution.as_str(),
                    "enforcement": match outcome.execution {
                        ExecutionMode::InProcess => "host_boundary",
                        ExecutionMode::Isolated => "kernel_and_host_boundary",
                    },
                    "active": outcome.active,
                    "durationMs": started.elapsed().as_millis() as u64,
                });
                self.receipt(
                    id,
                    Some(&outcome.version),
                    ReceiptKind::Enable,
                    ReceiptStatus::Ok,
                    detail,
                )
                .await;
            }
            Err(e) => {
                let detail = json!({ "trustMode": self.options.policy.mode().as_str() });
                self.refusal_receipt(id, None, ReceiptKind::Enable, e, detail)
                    .await;
            }
        }
        result
    }

    async fn enable_inner(
        &self,
        id: &str,
        request: &EnableRequest,
        may_load: bool,
    ) -> Result<EnableOutcome, LifecycleError> {
        if let Some(builtin) = builtin(id) {
            return self.enable_builtin(id, builtin).await;
        }
        self.refresh_trust().await?;
        let row = self.plugin_row(id).await?;
        let version = self.current_version_row(&row).await?;
        let manifest: nitejar_sdk::manifest::Manifest =
            serde_json::from_str(&version.manifest_json).map_err(|e| LifecycleError::Corrupt {
                id: id.to_string(),
                what: "manifest",
                reason: e.to_string(),
            })?;
        let dir = self.version_dir(&version).await?;
        self.verify_digest(&version, &dir).await?;
        // Policy before consent: there is no point accepting a text for a plugin that cannot run.
        self.judge_enable(id, &version.checksum, &dir)?;
        let text = crate::trust::consent_text_for(
            &manifest,
            self.options.policy.mode(),
            self.execution_of(&row),
        );
        if !request.accept_consent {
            return Err(LifecycleError::ConsentRequired {
                id: id.to_string(),
                text,
                diff: None,
            });
        }
        self.record_acknowledgements(id, &manifest, &request.acknowledge, &[])
            .await?;
        self.record_consent(&version, ConsentBasis::Accepted, Some(&text))
            .await?;
        let acknowledged = self.acknowledgements(id, &manifest).await?;
        let (verdict, active) = if self.options.safe_mode {
            let (verdict, _) = self.judge_enable(id, &version.checksum, &dir)?;
            (verdict, false)
        } else {
            (
                self.activate_preloaded(&row, &version, may_load).await?,
                true,
            )
        };
        let mut updated = row.clone();
        updated.enabled = true;
        updated.clear_error();
        updated.trust_level = verdict.trust_level().to_string();
        if active {
            updated.last_loaded_at = Some(now_ms());
        }
        updated.updated_at = now_ms();
        if let Err(e) = self.store.upsert_plugin(&updated).await {
            self.deactivate(id);
            return Err(e.into());
        }
        self.store.clear_plugin_alerts(id, now_ms()).await?;
        tracing::info!(plugin.id = %id, plugin.version = %version.version, "enabled (consent {})", consent_digest(&text));
        Ok(EnableOutcome {
            id: id.to_string(),
            version: version.version,
            acknowledged,
            trust: verdict.basis,
            active,
            execution: self.execution_of(&updated),
        })
    }

    async fn enable_builtin(
        &self,
        id: &str,
        builtin: &'static crate::builtin::BuiltinPlugin,
    ) -> Result<EnableOutcome, LifecycleError> {
        let version = builtin
            .manifest()
            .map(|v| v.manifest.version)
            .unwrap_or_default();
        if let Err(message) = self.activate_builtin(builtin) {
            return Err(LifecycleError::Task(message));
        }
        self.set_builtin_enabled(id, true).await?;
        Ok(EnableOutcome {
            id: id.to_string(),
            version,
            acknowledged: Vec::new(),
            trust: TrustBasis::Builtin,
            active: true,
            execution: ExecutionMode::InProcess,
        })
    }

    pub(crate) async fn current_version_row(
        &self,
        row: &PluginRow,
    ) -> Result<PluginVersionRow, LifecycleError> {
        let version = row
            .current_version
            .clone()
            .ok_or_else(|| LifecycleError::NotInstalled(row.id.clone()))?;
        self.store
            .get_plugin_version(&row.id, &version)
            .await?
            .ok_or_else(|| LifecycleError::Corrupt {
                id: row.id.clone(),
                what: "current version row",
                reason: format!("plugin_versions has no row for {version}"),
            })
    }

    /// Disables a plugin: its hooks, integrations and skills leave the registry at once and its
    /// grant is withdrawn; then the row. Built-ins can be disabled too.
    pub async fn disable(&self, id: &str) -> Result<(), LifecycleError> {
        let _op = self.ops.lock().await;
        let result = self.disable_inner(id).await;
        match &result {
            Ok(version) => {
                self.receipt(
                    id,
                    version.as_deref(),
                    ReceiptKind::Disable,
                    ReceiptStatus::Ok,
                    json!({}),
                )
                .await
            }
            Err(e) => {
                self.refusal_receipt(id, None, ReceiptKind::Disable, e, json!({}))
                    .await
            }
        }
        result.map(|_| ())
    }

    async fn disable_inner(&self, id: &str) -> Result<Option<String>, LifecycleError> {
        let active = self.deactivate(id);
        if builtin(id).is_some() {
            self.set_builtin_enabled(id, false).await?;
            return Ok(active.map(|m| m.version.to_string()));
        }
        let row = self.plugin_row(id).await?;
        let mut updated = row.clone();
        updated.enabled = false;
        updated.updated_at = now_ms();
        self.store.upsert_plugin(&updated).await?;
        self.write_loaded_libraries();
        Ok(row.current_version)
    }

    /// Makes an installed version current again. The version needs its consent on record: one
    /// without (it was never enabled, or an upgrade to it was refused) is refused with the consent
    /// text and what it adds to the current version's consent, unless `accept_consent` gives it now.
    /// When the plugin is enabled the version is activated first (instantly when it was loaded
    /// before in this process); its permissions must be acknowledged as at enable.
    pub async fn rollback(
        &self,
        id: &str,
        to: &str,
        accept_consent: bool,
    ) -> Result<(), LifecycleError> {
        let result = self
            .loading_outside_the_lock(async |may_load| {
                self.rollback_inner(id, to, accept_consent, may_load).await
            })
            .await;
        match &result {
            Ok(from) => {
                self.receipt(
                    id,
                    Some(to),
                    ReceiptKind::Rollback,
                    ReceiptStatus::Ok,
                    json!({ "from": from, "to": to }),
                )
                .await
            }
            Err(e) => {
                self.refusal_receipt(id, Some(to), ReceiptKind::Rollback, e, json!({ "to": to }))
                    .await
            }
        }
        result.map(|_| ())
    }

    async fn rollback_inner(
        &self,
        id: &str,
        to: &str,
        accept_consent: bool,
        may_load: bool,
    ) -> Result<Option<String>, LifecycleError> {
        if builtin(id).is_some() {
            return Err(LifecycleError::Builtin {
                id: id.to_string(),
                action: "rolled back",
            });
        }
        self.refresh_trust().await?;
        let row = self.plugin_row(id).await?;
        let Some(version) = self.store.get_plugin_version(id, to).await? else {
            let installed = self
                .store
                .list_plugin_versions(id)
                .await?
                .into_iter()
                .map(|v| v.version)
                .collect();
            return Err(LifecycleError::VersionNotInstalled {
                id: id.to_string(),
                version: to.to_string(),
                installed,
            });
        };
        let dir = self.version_dir(&version).await?;
        self.verify_digest(&version, &dir).await?;
        if self.consent_of(&version).await?.is_none() {
            let manifest = manifest_of(id, &version)?;
            let mode = self.options.policy.mode();
            let current = self.current_version_row(&row).await.ok();
            let before = match &current {
                Some(c) => Self::consented_set(self.consent_of(c).await?.as_ref()),
                None => Default::default(),
            };
            let diff = consent_diff(&before, &consent_set(&manifest));
            let text = crate::trust::consent::upgrade_consent_text_for(
                &manifest,
                mode,
                self.execution_of(&row),
                &diff,
            );
            if !accept_consent {
                return Err(LifecycleError::ConsentRequired {
                    id: id.to_string(),
                    text,
                    diff: Some(diff),
                });
            }
            self.record_consent(&version, ConsentBasis::Accepted, Some(&text))
                .await?;
        }
        let verdict = if row.enabled && !self.options.safe_mode {
            self.activate_preloaded(&row, &version, may_load).await?
        } else {
            self.judge_enable(id, &version.checksum, &dir)
                .map(|(v, _)| v)
                .unwrap_or(Verdict {
                    basis: TrustBasis::OpenMode,
                })
        };
        self.make_current(&row, &version, &verdict, None).await?;
        self.write_loaded_libraries();
        Ok(row.current_version)
    }

    /// Uninstalls a plugin: disables it, removes `current`, and purges files and data only when
    /// asked. Never touches integration, work-item or message rows.
    pub async fn uninstall(
        &self,
        id: &str,
        options: UninstallOptions,
    ) -> Result<UninstallOutcome, LifecycleError> {
        let _op = self.ops.lock().await;
        let result = self.uninstall_inner(id, options).await;
        match &result {
            Ok(outcome) => {
                let detail = json!({ "purgeFiles": outcome.purged_files, "purgeData": outcome.purged_data, "receiptsDeleted": outcome.receipts_deleted });
                self.receipt(
                    id,
                    outcome.version.as_deref(),
                    ReceiptKind::Uninstall,
                    ReceiptStatus::Ok,
                    detail,
                )
                .await
            }
            Err(e) => {
                self.refusal_receipt(id, None, ReceiptKind::Uninstall, e, json!({}))
                    .await
            }
        }
        result
    }

    async fn uninstall_inner(
        &self,
        id: &str,
        options: UninstallOptions,
    ) -> Result<UninstallOutcome, LifecycleError> {
        if builtin(id).is_some() {
            return Err(LifecycleError::Builtin {
                id: id.to_string(),
                action: "uninstalled",
            });
        }
        // An uninstalled plugin (row kept) can be uninstalled again to purge what was kept.
        let Some(row) = self.store.get_plugin(id).await? else {
            return Err(LifecycleError::NotInstalled(id.to_string()));
        };
        self.deactivate(id);
        let layout = self.layout().clone();
        layout
            .remove_current(id)
            .map_err(LifecycleError::io("remove", layout.current_link(id)))?;
        let _ = std::fs::remove_file(layout.activation_marker(id));
        let mut receipts_deleted = 0;
        if options.purge_data {
            receipts_deleted = self.store.purge_plugin_data(id).await?;
            self.store.delete_plugin(id).await?;
            remove_dir(&layout.plugin_data_dir(id))?;
            let _ = std::fs::remove_file(layout.log_file(id));
            let _ = std::fs::remove_file(layout.logs_dir().join(format!("{id}.log.1")));
        } else {
            let mut updated = row.clone();
            updated.enabled = false;
            updated.current_version = None;
            updated.current_checksum = None;
            updated.current_install_path = None;
            updated.clear_error();
            updated.updated_at = now_ms();
            self.store.upsert_plugin(&updated).await?;
            self.store.clear_plugin_alerts(id, now_ms()).await?;
        }
        if options.purge_files {
            if !options.purge_data {
                self.store.delete_plugin_versions(id).await?;
            }
            remove_dir(&layout.versions_dir(id))?;
            // The plugin directory goes too once nothing is left in it (its data may be kept).
            let _ = std::fs::remove_dir(layout.plugin_dir(id));
        }
        self.write_loaded_libraries();
        Ok(UninstallOutcome {
            id: id.to_string(),
            version: row.current_version,
            purged_files: options.purge_files,
            purged_data: options.purge_data,
            receipts_deleted,
        })
    }

    /// Upserts the row of a built-in with `enabled` (the row records the operator's choice).
    pub(crate) async fn set_builtin_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<(), LifecycleError> {
        let Some(builtin) = builtin(id) else {
            return Ok(());
        };
        let mut row = match self.store.get_plugin(id).await? {
            Some(row) => row,
            None => builtin_row(builtin, enabled),
        };
        row.enabled = enabled;
        row.updated_at = now_ms();
        self.store.upsert_plugin(&row).await?;
        Ok(())
    }
}

/// The built-in with this id, if one is linked into the binary.
pub(crate) fn builtin(id: &str) -> Option<&'static crate::builtin::BuiltinPlugin> {
    crate::builtin::builtins()
        .into_iter()
        .find(|b| b.manifest().is_ok_and(|v| v.manifest.id == id))
}

/// A fresh `plugins` row for a built-in.
pub(crate) fn builtin_row(builtin: &crate::builtin::BuiltinPlugin, enabled: bool) -> PluginRow {
    let now = now_ms();
    let (id, name, version) = match builtin.manifest() {
        Ok(v) => (v.manifest.id, v.manifest.name, v.manifest.version),
        Err(e) => (e.id, String::new(), String::new()),
    };
    PluginRow {
        id,
        name,
        enabled,
        trust_level: "builtin".into(),
        source_kind: "builtin".into(),
        source_ref: None,
        current_version: Some(version),
        current_checksum: None,
        current_install_path: None,
        manifest_json: builtin.manifest.to_string(),
        config_json: None,
        config_revision: 0,
        execution_mode: None,
        memory_limit_mib: None,
        cpu_limit_seconds: None,
        last_load_error: None,
        last_error_kind: None,
        last_loaded_at: None,
        installed_at: now,
        updated_at: now,
    }
}

fn remove_dir(dir: &std::path::Path) -> Result<(), LifecycleError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LifecycleError::io("remove", dir)(e))
        }
        _ => Ok(()),
    }
}
