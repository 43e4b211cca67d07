//! The crash-loop guard: a third-party plugin whose calls fail again and again is taken out.
//!
//! [`CrashGuard::wrap`] puts the guard in front of the runtime's receipt sink. Every `crashed`
//! receipt, and every `hook` and `integration` receipt with status `error` or `timeout`, counts as
//! a failure of its plugin — except an integration call that failed as working code fails (it
//! refused a bad signature or request, or its provider failed it; see
//! [`crate::runtime::failed_by_design`]): those are the sender's or the provider's doing, and
//! counting them would let anyone who can reach a webhook URL disable its plugin. When a
//! plugin reaches `threshold` failures within `window` (defaults 5 in 5 minutes,
//! `NITEJAR_PLUGIN_CRASH_THRESHOLD` and `NITEJAR_PLUGIN_CRASH_WINDOW_MS`), its hooks and
//! integrations leave the registry at once — before the receipts that tripped the guard are even
//! written — and then the plugin is disabled, an `auto_disable` receipt and an admin alert are
//! recorded, and `plugins.last_load_error` says what happened. Built-ins are not counted: their
//! errors come from the services they call, not from crashing code.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde_json::json;

use super::PluginManager;
use crate::receipts::{now_ms, Receipt, ReceiptKind, ReceiptSink, ReceiptStatus, SubmitFuture};
use crate::registry::PluginOrigin;

/// How many failures in how long trip the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashLoopConfig {
    /// Failures that trip the guard (default 5).
    pub threshold: u32,
    /// Within this window (default 5 minutes).
    pub window: Duration,
}

impl Default for CrashLoopConfig {
    fn default() -> Self {
        CrashLoopConfig {
            threshold: 5,
            window: Duration::from_secs(300),
        }
    }
}

/// Counts failures per plugin and disables a plugin that crash-loops. See the module docs.
pub struct CrashGuard {
    config: CrashLoopConfig,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
    manager: OnceLock<Weak<PluginManager>>,
}

impl CrashGuard {
    /// A guard, not yet attached to a manager (it counts nothing until it is).
    pub fn new(config: CrashLoopConfig) -> Arc<CrashGuard> {
        Arc::new(CrashGuard {
            config,
            failures: Mutex::new(HashMap::new()),
            manager: OnceLock::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> CrashLoopConfig {
        self.config
    }

    /// A sink that counts failures and then hands every receipt to `inner`. Give it to the
    /// runtime's builder.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn ReceiptSink>) -> Arc<dyn ReceiptSink> {
        Arc::new(GuardedSink {
            inner,
            guard: self.clone(),
        })
    }

    pub(crate) fn attach(&self, manager: &Arc<PluginManager>) {
        let _ = self.manager.set(Arc::downgrade(manager));
    }

    /// Counts the failures in `batch`; returns the plugins (id, version, failures) that tripped.
    fn record(&self, manager: &PluginManager, batch: &[Receipt]) -> Vec<(String, String, usize)> {
        let now = now_ms();
        let window = self.config.window.as_millis() as i64;
        let registry = manager.runtime().registry();
        let mut tripped = Vec::new();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for receipt in batch {
            let counted = matches!(
                receipt.kind,
                ReceiptKind::Hook | ReceiptKind::Integration | ReceiptKind::Crashed
            ) && matches!(
                receipt.status,
                ReceiptStatus::Error | ReceiptStatus::Timeout
            ) && !(receipt.kind == ReceiptKind::Integration
                && receipt
                    .detail
                    .as_ref()
                    .and_then(|d| d.get(crate::runtime::ERROR_KIND))
                    .and_then(|k| k.as_str())
                    .is_some_and(crate::runtime::failed_by_design));
            if !counted {
                continue;
            }
            let Some(plugin) = registry.plugin(&receipt.plugin_id) else {
                continue;
            };
            if plugin.meta().origin != PluginOrigin::ThirdParty {
                continue;
            }
            let id = receipt.plugin_id.to_string();
            let times = failures.entry(id.clone()).or_default();
            times.push_back(now);
            while times.front().is_some_and(|t| now - *t > window) {
                times.pop_front();
            }
            if times.len() >= self.config.threshold as usize {
                let count = times.len();
                failures.remove(&id);
                if !tripped.iter().any(|(t, _, _)| *t == id) {
                    tripped.push((id, plugin.meta().version.to_string(), count));
                }
            }
        }
        tripped
    }
}

struct GuardedSink {
    inner: Arc<dyn ReceiptSink>,
    guard: Arc<CrashGuard>,
}

impl ReceiptSink for GuardedSink {
    fn submit(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        let manager = self.guard.manager.get().and_then(Weak::upgrade);
        let tripped = match &manager {
            Some(m) => self.guard.record(m, &batch),
            None => Vec::new(),
        };
        // Out of the registry at once, before anything is awaited.
        if let Some(m) = &manager {
            for (id, _, _) in &tripped {
                m.deactivate(id);
            }
        }
        Box::pin(async move {
            self.inner.submit(batch).await;
            if let Some(m) = manager {
                for (id, version, count) in tripped {
                    m.auto_disable(&id, &version, count, self.guard.config)
                        .await;
                }
            }
        })
    }

    fn flush(&self) -> SubmitFuture<'_> {
        self.inner.flush()
    }

    /// Ingress receipts stored with their work items: not plugin calls, nothing for the guard.
    fn stored(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        self.inner.stored(batch)
    }
}

impl PluginManager {
    /// Disables a plugin that tripped the crash-loop guard and says so (row, alert, receipt, log).
    async fn auto_disable(
        &self,
        id: &str,
        version: &str,
        failures: usize,
        config: CrashLoopConfig,
    ) {
        let _op = self.ops.lock().await;
        self.deactivate(id);
        let window_s = config.window.as_secs();
        let reason = format!(
            "auto-disabled: {failures} failed calls (error or timeout) within {window_s} s (crash-loop guard: {} in {window_s} s); its hooks and integrations were unregistered. Check `nitejar plugin logs {id}`, fix or upgrade it, then enable it again",
            config.threshold
        );
        match self.store.get_plugin(id).await {
            Ok(Some(mut row)) => {
                row.enabled = false;
                row.set_error(crate::store::error_kind::CRASH, reason.clone());
                row.updated_at = now_ms();
                if let Err(e) = self.store.upsert_plugin(&row).await {
                    tracing::error!(plugin.id = %id, "could not record the auto-disable: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(plugin.id = %id, "could not read the plugin to auto-disable it: {e}")
            }
        }
        self.alert(id, Some(version), "auto_disable", &reason).await;
        self.receipt(
            id,
            Some(version),
            ReceiptKind::AutoDisable,
            ReceiptStatus::Error,
            json!({
                "reason": "crash_loop",
                "failureCount": failures,
                "threshold": config.threshold,
                "windowMs": config.window.as_millis() as u64,
                "message": reason,
            }),
        )
        .await;
        tracing::error!(plugin.id = %id, plugin.version = %version, "{reason}");
        self.write_loaded_libraries();
    }
}
