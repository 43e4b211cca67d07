//! Boot and reconciliation: bringing this process's runtime in line with the database.

use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::activate::{ActivationMarker, Preloaded};
use super::operations::builtin_row;
use super::{LifecycleError, PluginManager, STARTUP_RECEIPT_ID};
use crate::host::inflight::Crashed;
use crate::receipts::{now_ms, ReceiptKind, ReceiptStatus};
use crate::store::{
    error_kind, EventFilter, PageRequest, PluginAlertRow, PluginRow, PluginVersionRow,
};

/// What boot did, plugin by plugin. Also the detail of the `startup` receipt.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootReport {
    /// The trust mode.
    pub trust_mode: String,
    /// Whether `NITEJAR_SAFE_MODE` kept third-party plugins out.
    pub safe_mode: bool,
    /// Built-ins activated (`id@version`).
    pub builtins: Vec<String>,
    /// Third-party plugins activated (`id@version`).
    pub loaded: Vec<String>,
    /// Plugins not loaded on purpose, with the reason.
    pub skipped: Vec<Skipped>,
    /// Plugins that failed, with the error (they are marked `error`).
    pub errors: Vec<Skipped>,
    /// How long boot took.
    pub duration_ms: u64,
}

/// A plugin and a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The plugin.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// What one reconciliation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    /// Plugins (re)activated (`id@version`).
    pub activated: Vec<String>,
    /// Plugins taken out of the runtime.
    pub deactivated: Vec<String>,
    /// Plugins that failed to activate (now marked `error`).
    pub errors: Vec<Skipped>,
    /// Plugins another operation (another reconciliation, an enable) was loading at that moment:
    /// that operation activates them. Not a change of this reconciliation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loading_elsewhere: Vec<String>,
}

impl ReconcileReport {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.activated.is_empty() && self.deactivated.is_empty() && self.errors.is_empty()
    }
}

impl PluginManager {
    /// Boots the plugins: built-ins first (those the operator has not disabled), then every enabled
    /// third-party plugin allowed by the trust policy, each current version's digest verified
    /// first. A plugin whose activation killed the previous process (its boot marker is still
    /// there) is skipped, disabled and reported. A failing plugin never stops the others; it is
    /// marked `error` with its message. Ends with a `startup` receipt summarising everything.
    ///
    /// First of all, a process that died with plugin calls in flight (its in-flight marks, see
    /// [`crate::host::inflight`]) is a `crashed_process` receipt and an alert for each plugin that
    /// was running code; a plugin with `crash_strikes` of them within `crash_strike_window` is
    /// disabled before it can be loaded again, so that a plugin that takes the process down ends
    /// its crash loop after a bounded number of restarts.
    pub async fn boot(&self) -> BootReport {
        let _op = self.ops.lock().await;
        let started = Instant::now();
        if let Err(e) = self.refresh_trust().await {
            tracing::error!(
                "the trust settings could not be read ({e}); plugins are judged with the environment's keys and allowlist only"
            );
        }
        let mut report = BootReport {
            trust_mode: self.options.policy.mode().as_str().to_string(),
            safe_mode: self.options.safe_mode,
            ..BootReport::default()
        };
        self.attribute_crashes(&mut report).await;
        self.boot_builtins(&mut report).await;
        match self.store.list_plugins().await {
            Ok(rows) => {
                let mut candidates = Vec::new();
                for row in rows {
                    if row.source_kind == "builtin" || row.current_version.is_none() {
                        continue;
                    }
                    if let Some(candidate) = self.boot_candidate(row, &mut report).await {
                        candidates.push(candidate);
                    }
                }
                // Every plugin's code loads at once: one that hangs costs boot the load timeout,
                // not the others' turn.
                let mut preloaded = self.preload(&candidates).await;
                for (row, version) in candidates {
                    let loaded = preloaded.remove(&row.id).map(|p| p.result);
                    self.boot_plugin(row, version, loaded, &mut report).await;
                }
            }
            Err(e) => report.errors.push(Skipped {
                id: "*".into(),
                reason: format!("the installed plugins could not be read: {e}"),
            }),
        }
        self.set_judged_trust();
        report.duration_ms = started.elapsed().as_millis() as u64;
        let status = if report.errors.is_empty() {
            ReceiptStatus::Ok
        } else {
            ReceiptStatus::Error
        };
        let detail = serde_json::to_value(&report).unwrap_or_default();
        self.receipt(
            STARTUP_RECEIPT_ID,
            Some(crate::NITEJAR_VERSION),
            ReceiptKind::Startup,
            status,
            detail,
        )
        .await;
        self.write_loaded_libraries();
        for e in &report.errors {
            tracing::error!(plugin.id = %e.id, "plugin not loaded: {}", e.reason);
        }
        for s in &report.skipped {
            tracing::warn!(plugin.id = %s.id, "plugin skipped: {}", s.reason);
        }
        report
    }

    async fn boot_builtins(&self, report: &mut BootReport) {
        for builtin in crate::builtin::builtins() {
            let fresh = builtin_row(builtin, true);
            let id = fresh.id.clone();
            let row = match self.store.get_plugin(&id).await {
                Ok(Some(mut row)) => {
                    // The binary decides a built-in's version and manifest; the row keeps the
                    // operator's enabled flag.
                    row.name = fresh.name.clone();
                    row.current_version = fresh.current_version.clone();
                    row.manifest_json = fresh.manifest_json.clone();
                    row
                }
                Ok(None) => fresh,
                Err(e) => {
                    tracing::warn!("could not read the row of {id}: {e}; activating it anyway");
                    fresh
                }
            };
            if let Err(e) = self.store.upsert_plugin(&row).await {
                tracing::warn!("could not record built-in {id}: {e}");
            }
            if !row.enabled {
                report.skipped.push(Skipped {
                    id,
                    reason: "disabled by the operator".into(),
                });
                continue;
            }
            match self.activate_builtin(builtin) {
                Ok(_) => report
                    .builtins
                    .push(format!("{id}@{}", row.current_version.unwrap_or_default())),
                Err(reason) => report.errors.push(Skipped { id, reason }),
            }
        }
    }

    /// Whether `row` is to be loaded at boot, and its current version: not when its boot marker
    /// says the previous process died activating it (it is disabled), when it is disabled, in safe
    /// mode, or when its version row is missing (marked `error`).
    async fn boot_candidate(
        &self,
        mut row: PluginRow,
        report: &mut BootReport,
    ) -> Option<(PluginRow, PluginVersionRow)> {
        let id = row.id.clone();
        let version = row.current_version.clone().unwrap_or_default();
        if let Some(reason) = self.check_marker(&row) {
            row.enabled = false;
            row.set_error(error_kind::BOOT_MARKER, reason.clone());
            row.updated_at = now_ms();
            let _ = self.store.upsert_plugin(&row).await;
            self.alert(&id, Some(&version), "boot_marker", &reason)
                .await;
            self.receipt(
                &id,
                Some(&version),
                ReceiptKind::Load,
                ReceiptStatus::Error,
                json!({ "error": reason, "bootMarker": true }),
            )
            .await;
            report.errors.push(Skipped { id, reason });
            return None;
        }
        if !row.enabled {
            return None;
        }
        if self.options.safe_mode {
            report.skipped.push(Skipped {
                id,
                reason: "safe mode (NITEJAR_SAFE_MODE=1): built-ins only".into(),
            });
            return None;
        }
        match self.current_version_row(&row).await {
            Ok(v) => {
                self.consent_existing(&v).await;
                Some((row, v))
            }
            Err(e) => {
                self.mark_error(&mut row, &e).await;
                report.errors.push(Skipped {
                    id,
                    reason: e.to_string(),
                });
                None
            }
        }
    }

    /// Activates a boot candidate whose code `loaded` (or failed to) already.
    async fn boot_plugin(
        &self,
        mut row: PluginRow,
        v: PluginVersionRow,
        loaded: Option<Result<(), LifecycleError>>,
        report: &mut BootReport,
    ) {
        let id = row.id.clone();
        let version = v.version.clone();
        let result = match loaded {
            Some(Err(e)) => Err(e),
            _ => self.activate_version(&row, &v).await,
        };
        match result {
            Ok(verdict) => {
                row.clear_error();
                row.last_loaded_at = Some(now_ms());
                row.trust_level = verdict.trust_level().to_string();
                row.updated_at = now_ms();
                let _ = self.store.upsert_plugin(&row).await;
                if self.layout().current_version(&id).as_deref() != Some(version.as_str()) {
                    let _ = self.layout().set_current(&id, &version);
                }
                report.loaded.push(format!("{id}@{version}"));
            }
            Err(e) => {
                self.mark_error(&mut row, &e).await;
                report.errors.push(Skipped {
                    id,
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Receipts, alerts and strikes for the plugins that had calls in flight when an earlier
    /// process died.
    async fn attribute_crashes(&self, report: &mut BootReport) {
        let Some(marks) = &self.marks else {
            return;
        };
        for crashed in marks.claim_crashed() {
            self.strike(crashed, report).await;
        }
    }

    async fn strike(&self, crashed: Crashed, report: &mut BootReport) {
        let Crashed {
            plugin_id: id,
            version,
            calls,
            pid,
            process_started_ms,
        } = crashed;
        let window = self.options.crash_strike_window;
        let strikes_allowed = self.options.crash_strikes.max(1);
        let since = now_ms() - window.as_millis() as i64;
        let filter = EventFilter {
            plugin_id: Some(id.clone()),
            kind: Some(ReceiptKind::CrashedProcess.as_str().into()),
            ..EventFilter::default()
        };
        let earlier = match self
            .store
            .list_events(&filter, PageRequest::first(strikes_allowed))
            .await
        {
            Ok(page) => page.items.iter().filter(|e| e.created_at >= since).count(),
            Err(e) => {
                tracing::warn!(plugin.id = %id, "could not count earlier crashes: {e}");
                0
            }
        };
        let strikes = earlier + 1;
        let window_min = window.as_secs().div_ceil(60);
        let message = format!(
            "the server process (pid {pid}) died while {id}@{version} had {calls} call(s) running in it; strike {strikes} of {strikes_allowed} within {window_min} min. A plugin in the server's process can take it down: see logs/plugins/{id}.log and the server's own log from before the restart"
        );
        self.receipt(
            &id,
            Some(&version),
            ReceiptKind::CrashedProcess,
            ReceiptStatus::Error,
            json!({
                "error": message,
                "pid": pid,
                "callsInFlight": calls,
                "processStartedAtMs": process_started_ms,
                "strike": strikes,
                "strikesAllowed": strikes_allowed,
                "windowMs": window.as_millis() as u64,
            }),
        )
        .await;
        tracing::error!(plugin.id = %id, plugin.version = %version, "{message}");
        let row = match self.store.get_plugin(&id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(plugin.id = %id, "could not read the plugin after a crash: {e}");
                return;
            }
        };
        if (strikes as u32) < strikes_allowed || !row.enabled {
            self.alert(&id, Some(&version), "crashed_process", &message)
                .await;
            return;
        }
        let reason = format!(
            "auto-disabled: the server process died {strikes} times within {window_min} min while this plugin had calls running in it (last: pid {pid}); it was disabled so the server stays up. Check `nitejar plugin logs {id}`, fix or upgrade it, then enable it again"
        );
        let mut row = row;
        row.enabled = false;
        row.set_error(error_kind::CRASH, reason.clone());
        row.updated_at = now_ms();
        if let Err(e) = self.store.upsert_plugin(&row).await {
            tracing::error!(plugin.id = %id, "could not record the auto-disable: {e}");
        }
        self.alert(&id, Some(&version), "auto_disable", &reason)
            .await;
        self.receipt(
            &id,
            Some(&version),
            ReceiptKind::AutoDisable,
            ReceiptStatus::Error,
            json!({
                "reason": "crashed_process",
                "strikes": strikes,
                "strikesAllowed": strikes_allowed,
                "windowMs": window.as_millis() as u64,
                "message": reason,
            }),
        )
        .await;
        tracing::error!(plugin.id = %id, "{reason}");
        report.errors.push(Skipped { id, reason });
    }

    /// The third-party versions a reconciliation would activate now: enabled, not in error, not
    /// active at that version with the settings stored now.
    async fn wanted_versions(&self) -> Result<Vec<(PluginRow, PluginVersionRow)>, LifecycleError> {
        if self.options.safe_mode {
            return Ok(Vec::new());
        }
        let registry = self.runtime.registry();
        let mut wanted = Vec::new();
        for row in self.store.list_plugins().await? {
            if row.source_kind == "builtin" || !row.enabled || !self.may_run(&row) {
                continue;
            }
            let Some(version) = row.current_version.clone() else {
                continue;
            };
            let active = registry.plugin(&row.id).map(|p| p.meta().version.clone());
            if active.as_deref() == Some(version.as_str())
                && !self.settings_outdated(&row.id, row.config_revision)
                && !self.execution_changed(&row)
            {
                continue;
            }
            // A missing version row is reported under the lock.
            if let Ok(v) = self.current_version_row(&row).await {
                wanted.push((row, v));
            }
        }
        Ok(wanted)
    }

    /// The boot marker's verdict: `Some(reason)` when the previous process died activating the
    /// plugin. The marker is removed either way (unless its writer is still running).
    fn check_marker(&self, row: &PluginRow) -> Option<String> {
        let path = self.layout().activation_marker(&row.id);
        let text = std::fs::read_to_string(&path).ok()?;
        let marker: Option<ActivationMarker> = serde_json::from_str(&text).ok();
        if marker.as_ref().is_some_and(ActivationMarker::writer_alive) {
            return None;
        }
        let _ = std::fs::remove_file(&path);
        let (version, when) = match &marker {
            Some(m) => (
                m.version.clone(),
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(m.started_at_ms.max(0) as u64),
                )
                .to_string(),
            ),
            None => (
                row.current_version.clone().unwrap_or_default(),
                "an unknown time".into(),
            ),
        };
        Some(format!(
            "the server stopped while activating {}@{version} (at {when}); the plugin was skipped and disabled so the server could start. Check logs/plugins/{}.log, then enable it again (or upgrade / roll back)",
            row.id, row.id
        ))
    }

    /// Records a failed activation: `last_load_error`, an alert for a tampered directory, and a
    /// `load` receipt when the loader did not write one already.
    pub(crate) async fn mark_error(&self, row: &mut PluginRow, error: &LifecycleError) {
        let version = row.current_version.clone();
        row.set_error(error.kind(), error.to_string());
        row.updated_at = now_ms();
        let _ = self.store.upsert_plugin(row).await;
        if matches!(error, LifecycleError::Tampered { .. }) {
            self.alert(&row.id, version.as_deref(), "tampered", &error.to_string())
                .await;
        }
        // A load writes its own receipt (ok, error or timeout).
        if !matches!(
            error,
            LifecycleError::Load { .. } | LifecycleError::LoadTimedOut { .. }
        ) {
            let status = if error.is_refusal() {
                ReceiptStatus::Denied
            } else {
                ReceiptStatus::Error
            };
            self.receipt(
                &row.id,
                version.as_deref(),
                ReceiptKind::Load,
                status,
                json!({ "error": error.to_string() }),
            )
            .await;
        }
    }

    /// Raises an admin alert (a failure to store it is logged, not returned).
    pub(crate) async fn alert(&self, id: &str, version: Option<&str>, kind: &str, message: &str) {
        let alert = PluginAlertRow {
            id: crate::store::new_id(),
            plugin_id: id.to_string(),
            plugin_version: version.map(str::to_string),
            kind: kind.to_string(),
            message: message.to_string(),
            detail_json: None,
            created_at: now_ms(),
            cleared_at: None,
        };
        if let Err(e) = self.store.insert_plugin_alert(&alert).await {
            tracing::error!(plugin.id = %id, "could not record the alert `{message}`: {e}");
        }
    }

    /// Brings the runtime in line with the database: activates what is enabled and not active (or
    /// active at another version), deactivates what is disabled, uninstalled or in error. This is
    /// how a running server picks up what the CLI (or another machine) changed. A plugin that fails
    /// is marked `error` and not retried until an operator acts on it.
    ///
    /// The code of what is to be activated is loaded first, outside the lifecycle lock (each load
    /// bounded by the load timeout): a plugin that takes long to load holds up no other operation,
    /// and a reconciliation running meanwhile skips the version being loaded and applies the rest.
    /// A plugin that became wanted between the load and the lock waits for the next round.
    pub async fn reconcile(&self) -> Result<ReconcileReport, LifecycleError> {
        self.refresh_trust().await?;
        let wanted = self.wanted_versions().await?;
        let mut preloaded = self.preload(&wanted).await;
        let _op = self.ops.lock().await;
        let mut report = ReconcileReport::default();
        self.judge_active_again(&mut report).await?;
        let rows = self.store.list_plugins().await?;
        let registry = self.runtime.registry();
        for mut row in rows.iter().cloned() {
            let active = registry
                .plugin(&row.id)
                .map(|p| p.meta().version.to_string());
            if row.source_kind == "builtin" {
                let Some(builtin) = super::operations::builtin(&row.id) else {
                    continue;
                };
                match (row.enabled, active.is_some()) {
                    (true, false) => match self.activate_builtin(builtin) {
                        Ok(_) => report.activated.push(row.id.clone()),
                        Err(reason) => report.errors.push(Skipped {
                            id: row.id.clone(),
                            reason,
                        }),
                    },
                    (false, true) => {
                        self.deactivate(&row.id);
                        report.deactivated.push(row.id.clone());
                    }
                    _ => {}
                }
                continue;
            }
            let desired = row
                .current_version
                .clone()
                .filter(|_| row.enabled && self.may_run(&row) && !self.options.safe_mode);
            match desired {
                // Not active at this version, or active with other settings than stored (changed
                // by the CLI or another machine).
                Some(version)
                    if active.as_deref() != Some(version.as_str())
                        || self.settings_outdated(&row.id, row.config_revision)
                        || self.execution_changed(&row) =>
                {
                    let result = match preloaded.remove(&row.id) {
                        // Changed since the load, or being loaded by another operation: next round.
                        Some(p) if p.version != version || p.revision != row.config_revision => {
                            continue
                        }
                        Some(Preloaded {
                            result: Err(LifecycleError::LoadInProgress { .. }),
                            ..
                        }) => {
                            report.loading_elsewhere.push(row.id.clone());
                            continue;
                        }
                        Some(Preloaded { result: Err(e), .. }) => Err(e),
                        Some(Preloaded { result: Ok(()), .. }) => {
                            match self.current_version_row(&row).await {
                                Ok(v) => self.activate_version(&row, &v).await,
                                Err(e) => Err(e),
                            }
                        }
                        None => match self.current_version_row(&row).await {
                            Ok(_) => continue,
                            Err(e) => Err(e),
                        },
                    };
                    match result {
                        Ok(verdict) => {
                            if self.layout().current_version(&row.id).as_deref()
                                != Some(version.as_str())
                            {
                                let _ = self.layout().set_current(&row.id, &version);
                            }
                            self.record_running(&row, &verdict).await;
                            report.activated.push(format!("{}@{version}", row.id));
                        }
                        Err(e) => {
                            self.mark_error(&mut row, &e).await;
                            report.errors.push(Skipped {
                                id: row.id.clone(),
                                reason: e.to_string(),
                            });
                        }
                    }
                }
                Some(_) => {}
                None if active.is_some() => {
                    self.deactivate(&row.id);
                    report.deactivated.push(row.id.clone());
                }
                None => {}
            }
        }
        // Active third-party plugins whose row is gone (uninstalled with --purge-data elsewhere).
        for plugin in registry.plugins() {
            let meta = plugin.meta();
            if meta.origin == crate::registry::PluginOrigin::ThirdParty
                && !rows.iter().any(|r| *r.id == *meta.id)
            {
                self.deactivate(&meta.id);
                report.deactivated.push(meta.id.to_string());
            }
        }
        if !report.is_empty() {
            self.write_loaded_libraries();
            tracing::info!(
                "plugins reconciled: activated {:?}, deactivated {:?}, errors {}",
                report.activated,
                report.deactivated,
                report.errors.len()
            );
        }
        Ok(report)
    }

    /// Whether a row's recorded error still keeps it from running: every error does, until an
    /// operator acts, except a refusal by the trust policy that the policy now accepts (a key or
    /// an allowlist entry was added, a signed build installed).
    pub(crate) fn may_run(&self, row: &PluginRow) -> bool {
        if row.last_load_error.is_none() {
            return true;
        }
        if !row.refused_by_trust() {
            return false;
        }
        let (Some(version), Some(digest)) = (&row.current_version, &row.current_checksum) else {
            return false;
        };
        let dir = self.layout().version_dir(&row.id, version);
        dir.is_dir() && self.judge_enable(&row.id, digest, &dir).is_ok()
    }

    /// A plugin activated by reconciling runs: its error (the cause is gone) and its trust level
    /// are brought up to date in its row, read again so that nothing else of it is overwritten.
    async fn record_running(&self, row: &PluginRow, verdict: &crate::trust::Verdict) {
        if row.last_load_error.is_none() && row.trust_level == verdict.trust_level() {
            return;
        }
        let mut fresh = match self.store.get_plugin(&row.id).await {
            Ok(Some(fresh)) => fresh,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(plugin.id = %row.id, "could not clear the error of a plugin that runs again: {e}");
                return;
            }
        };
        fresh.clear_error();
        fresh.trust_level = verdict.trust_level().to_string();
        fresh.last_loaded_at = Some(now_ms());
        fresh.updated_at = now_ms();
        if let Err(e) = self.store.upsert_plugin(&fresh).await {
            tracing::warn!(plugin.id = %row.id, "could not clear the error of a plugin that runs again: {e}");
        }
        let _ = self.store.clear_plugin_alerts(&row.id, now_ms()).await;
    }

    fn set_judged_trust(&self) {
        let revision = self.trust_revision_in_use();
        *self.judged_trust.lock().unwrap_or_else(|p| p.into_inner()) = revision;
    }

    /// When the trust settings changed since the active plugins were judged: each active
    /// third-party plugin is judged again; one the policy refuses now is taken out of the runtime
    /// and marked `error` (kind `trust`, retried when the policy accepts it again), one still
    /// accepted gets its trust level updated.
    async fn judge_active_again(&self, report: &mut ReconcileReport) -> Result<(), LifecycleError> {
        let revision = self.trust_revision_in_use();
        if *self.judged_trust.lock().unwrap_or_else(|p| p.into_inner()) == revision {
            return Ok(());
        }
        let registry = self.runtime.registry();
        for plugin in registry.plugins() {
            let meta = plugin.meta();
            if meta.origin != crate::registry::PluginOrigin::ThirdParty {
                continue;
            }
            let Some(mut row) = self.store.get_plugin(&meta.id).await? else {
                continue;
            };
            let Some(version) = self
                .store
                .get_plugin_version(&meta.id, &meta.version)
                .await?
            else {
                continue;
            };
            let dir = self.layout().version_dir(&meta.id, &meta.version);
            match self.judge_enable(&meta.id, &version.checksum, &dir) {
                Ok((verdict, _)) => {
                    if row.trust_level != verdict.trust_level() {
                        row.trust_level = verdict.trust_level().to_string();
                        row.updated_at = now_ms();
                        self.store.upsert_plugin(&row).await?;
                    }
                }
                Err(e) => {
                    self.deactivate(&meta.id);
                    self.mark_error(&mut row, &e).await;
                    tracing::warn!(plugin.id = %meta.id, "taken out of the runtime: {e}");
                    report.deactivated.push(meta.id.to_string());
                    report.errors.push(Skipped {
                        id: meta.id.to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        *self.judged_trust.lock().unwrap_or_else(|p| p.into_inner()) = revision;
        Ok(())
    }
}
