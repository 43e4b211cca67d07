//! Where a third-party plugin's code runs: in the server's process or in one of its own.
//!
//! The operator chooses per plugin (`plugins.execution_mode`); a plugin without a choice follows
//! the server's default (`ManagerOptions::execution`). `saas_locked` runs third-party code isolated
//! only, whatever the row says. A change re-activates an active plugin at once, in the new mode
//! (nothing changes when that fails); other processes follow when they reconcile.
//!
//! The limits of an isolated plugin's own process (`plugins.memory_limit_mib`,
//! `plugins.cpu_limit_seconds`) are chosen the same way, each falling back to the server's
//! default (`ManagerOptions::process_limits`); a change restarts an active isolated plugin's
//! process under the new limits.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{LifecycleError, PluginManager};
use crate::loader::isolated::ProcessLimits;
use crate::receipts::{ExecutionMode, ReceiptKind, ReceiptStatus};
use crate::store::PluginRow;
use crate::trust::TrustMode;

/// Where a third-party plugin runs and the limits of its own process, as the operator chooses
/// them: each `None` follows the server's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionChoice {
    /// `in_process` or `isolated`.
    pub mode: Option<ExecutionMode>,
    /// Address space of its process, in MiB (isolated only), within
    /// [`ProcessLimits::MEMORY_MIB`].
    pub memory_mib: Option<u64>,
    /// Processor time of its process over its life, in seconds (isolated only), within
    /// [`ProcessLimits::CPU_SECONDS`].
    pub cpu_seconds: Option<u64>,
}

impl ExecutionChoice {
    /// The choice stored in `row`.
    pub fn of(row: &PluginRow) -> ExecutionChoice {
        ExecutionChoice {
            mode: row.execution_mode.as_deref().and_then(parse_execution),
            memory_mib: row.memory_limit_mib.and_then(|v| u64::try_from(v).ok()),
            cpu_seconds: row.cpu_limit_seconds.and_then(|v| u64::try_from(v).ok()),
        }
    }
}

/// What [`PluginManager::set_execution`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionOutcome {
    /// The plugin.
    pub id: String,
    /// What the operator chose (`None`: the server's default).
    pub chosen: Option<ExecutionMode>,
    /// Where its code runs now (or will, once enabled).
    pub effective: ExecutionMode,
    /// The limits its process runs under when it runs isolated (the choice, else the defaults).
    pub limits: ProcessLimits,
    /// Whether it is active, in that mode.
    pub active: bool,
}

/// Reads a stored or given mode name.
pub fn parse_execution(text: &str) -> Option<ExecutionMode> {
    match text {
        "in_process" => Some(ExecutionMode::InProcess),
        "isolated" => Some(ExecutionMode::Isolated),
        _ => None,
    }
}

impl PluginManager {
    /// Where `row`'s code runs: isolated in `saas_locked`; else the operator's choice, else the
    /// server's default.
    pub fn execution_of(&self, row: &PluginRow) -> ExecutionMode {
        if self.options.policy.mode() == TrustMode::SaasLocked {
            return ExecutionMode::Isolated;
        }
        row.execution_mode
            .as_deref()
            .and_then(parse_execution)
            .unwrap_or(self.options.execution)
    }

    /// What the operator chose for plugin `id` (each `None`: the server's default).
    pub async fn execution_choice(&self, id: &str) -> Result<ExecutionChoice, LifecycleError> {
        Ok(ExecutionChoice::of(&self.plugin_row(id).await?))
    }

    /// The limits of `row`'s own process when it runs isolated: the operator's choice, else the
    /// server's default, each on its own.
    pub fn limits_of(&self, row: &PluginRow) -> ProcessLimits {
        let choice = ExecutionChoice::of(row);
        let default = self.options.process_limits;
        ProcessLimits {
            memory_mib: choice.memory_mib.unwrap_or(default.memory_mib),
            cpu_seconds: choice.cpu_seconds.unwrap_or(default.cpu_seconds),
        }
    }

    /// The limits `row`'s process is to run under: `None` when it runs in this process.
    pub(crate) fn isolated_limits(&self, row: &PluginRow) -> Option<ProcessLimits> {
        (self.execution_of(row) == ExecutionMode::Isolated).then(|| self.limits_of(row))
    }

    /// Whether `row`'s plugin is active in another mode, or under other limits, than it should
    /// run with now (changed by the CLI or another machine).
    pub(crate) fn execution_changed(&self, row: &PluginRow) -> bool {
        let registry = self.runtime.registry();
        let Some(plugin) = registry.plugin(&row.id) else {
            return false;
        };
        plugin.meta().execution != self.execution_of(row)
            || self.running_limits(&row.id) != self.isolated_limits(row)
    }

    /// The limits of the isolated instance of `id` in the registry (`None`: none, or it runs in
    /// this process).
    fn running_limits(&self, id: &str) -> Option<ProcessLimits> {
        self.running_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
    }

    /// Records the limits of the instance of `id` now in the registry.
    pub(crate) fn set_running_limits(&self, id: &str, limits: Option<ProcessLimits>) {
        let mut running = self
            .running_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match limits {
            Some(l) => running.insert(id.to_string(), l),
            None => running.remove(id),
        };
    }

    /// Sets where a third-party plugin's code runs (`None`: the server's default) and, if it is
    /// active, re-activates it in that mode. Receipted (`configure`).
    pub async fn set_execution(
        &self,
        id: &str,
        choice: ExecutionChoice,
    ) -> Result<ExecutionOutcome, LifecycleError> {
        // The code loads in its new mode with the lifecycle lock let go (bounded by the load
        // timeout), so that a plugin whose code takes long to load holds up no other operation.
        let result = self
            .loading_outside_the_lock(async |may_load| {
                self.set_execution_inner(id, choice, may_load).await
            })
            .await;
        let detail = match &result {
            Ok(o) => json!({
                "executionMode": o.chosen.map(ExecutionMode::as_str),
                "effective": o.effective.as_str(),
                "memoryMib": choice.memory_mib,
                "cpuSeconds": choice.cpu_seconds,
                "limits": o.limits,
                "active": o.active,
            }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let status = if result.is_ok() {
            ReceiptStatus::Ok
        } else {
            ReceiptStatus::Error
        };
        self.receipt(id, None, ReceiptKind::Configure, status, detail)
            .await;
        result
    }

    /// Under the lifecycle lock. The choice is stored once the plugin runs with it (when it is
    /// active): a load that fails leaves it running as it was, and its choice as it was.
    async fn set_execution_inner(
        &self,
        id: &str,
        choice: ExecutionChoice,
        may_load: bool,
    ) -> Result<ExecutionOutcome, LifecycleError> {
        let chosen = choice.mode;
        for (field, value, range) in [
            ("memoryMib", choice.memory_mib, ProcessLimits::MEMORY_MIB),
            ("cpuSeconds", choice.cpu_seconds, ProcessLimits::CPU_SECONDS),
        ] {
            if let Some(value) = value.filter(|v| !range.contains(v)) {
                return Err(LifecycleError::InvalidLimit {
                    id: id.to_string(),
                    field,
                    value,
                    min: *range.start(),
                    max: *range.end(),
                });
            }
        }
        if super::operations::builtin(id).is_some() {
            return Err(LifecycleError::ExecutionRefused {
                id: id.to_string(),
                reason: "it is built in: its code is part of the server and runs in its process"
                    .into(),
            });
        }
        if self.options.policy.mode() == TrustMode::SaasLocked
            && chosen == Some(ExecutionMode::InProcess)
        {
            return Err(LifecycleError::ExecutionRefused {
                id: id.to_string(),
                reason: "saas_locked runs third-party plugins isolated only".into(),
            });
        }
        if chosen == Some(ExecutionMode::Isolated) && self.options.plugin_host.is_none() {
            return Err(LifecycleError::ExecutionRefused {
                id: id.to_string(),
                reason: "isolated execution needs a plugin host command, and this host has none"
                    .into(),
            });
        }
        let mut row = self.plugin_row(id).await?;
        row.execution_mode = chosen.map(|m| m.as_str().to_string());
        row.memory_limit_mib = choice.memory_mib.and_then(|v| i64::try_from(v).ok());
        row.cpu_limit_seconds = choice.cpu_seconds.and_then(|v| i64::try_from(v).ok());
        let effective = self.execution_of(&row);
        let mut active = self.runtime.registry().plugin(id).is_some();
        if self.execution_changed(&row) {
            let version = self.current_version_row(&row).await?;
            self.activate_preloaded(&row, &version, may_load).await?;
            active = true;
        }
        self.store_choice(id, &choice).await?;
        if !active {
            // Loaded for nothing (it was disabled while it loaded): its process ends.
            self.end_idle_processes(id, None);
        }
        Ok(ExecutionOutcome {
            id: id.to_string(),
            chosen,
            effective,
            limits: self.limits_of(&row),
            active,
        })
    }

    async fn store_choice(&self, id: &str, choice: &ExecutionChoice) -> Result<(), LifecycleError> {
        self.store
            .set_plugin_execution(
                id,
                choice.mode.map(ExecutionMode::as_str),
                choice.memory_mib.and_then(|v| i64::try_from(v).ok()),
                choice.cpu_seconds.and_then(|v| i64::try_from(v).ok()),
            )
            .await?;
        Ok(())
    }
}
