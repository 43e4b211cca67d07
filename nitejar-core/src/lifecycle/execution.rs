//! Where a third-party plugin's code runs: in the server's process or in one of its own.
//!
//! The operator chooses per plugin (`plugins.execution_mode`); a plugin without a choice follows
//! the server's default (`ManagerOptions::execution`). `saas_locked` runs third-party code isolated
//! only, whatever the row says. A change re-activates an active plugin at once, in the new mode
//! (nothing changes when that fails); other processes follow when they reconcile.

use serde::Serialize;
use serde_json::json;

use super::{LifecycleError, PluginManager};
use crate::receipts::{ExecutionMode, ReceiptKind, ReceiptStatus};
use crate::store::PluginRow;
use crate::trust::TrustMode;

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

    /// Whether `row`'s plugin is active in another mode than it should run in now (changed by the
    /// CLI or another machine).
    pub(crate) fn execution_changed(&self, row: &PluginRow) -> bool {
        self.runtime
            .registry()
            .plugin(&row.id)
            .is_some_and(|p| p.meta().execution != self.execution_of(row))
    }

    /// Sets where a third-party plugin's code runs (`None`: the server's default) and, if it is
    /// active, re-activates it in that mode. Receipted (`configure`).
    pub async fn set_execution(
        &self,
        id: &str,
        chosen: Option<ExecutionMode>,
    ) -> Result<ExecutionOutcome, LifecycleError> {
        let _op = self.ops.lock().await;
        let result = self.set_execution_inner(id, chosen).await;
        let detail = match &result {
            Ok(o) => json!({
                "executionMode": o.chosen.map(ExecutionMode::as_str),
                "effective": o.effective.as_str(),
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

    async fn set_execution_inner(
        &self,
        id: &str,
        chosen: Option<ExecutionMode>,
    ) -> Result<ExecutionOutcome, LifecycleError> {
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
        self.store
            .set_plugin_execution(id, chosen.map(ExecutionMode::as_str))
            .await?;
        let previous = row.execution_mode.clone();
        row.execution_mode = chosen.map(|m| m.as_str().to_string());
        let effective = self.execution_of(&row);
        let running = self
            .runtime
            .registry()
            .plugin(id)
            .map(|p| p.meta().execution);
        let mut active = running.is_some();
        if running.is_some_and(|mode| mode != effective) {
            let result = match self.current_version_row(&row).await {
                Ok(v) => self.activate_version(&row, &v).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                // The plugin keeps running as it was, and the choice is undone.
                self.store
                    .set_plugin_execution(id, previous.as_deref())
                    .await?;
                return Err(e);
            }
            active = true;
        }
        Ok(ExecutionOutcome {
            id: id.to_string(),
            chosen,
            effective,
            active,
        })
    }
}
