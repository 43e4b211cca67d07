//! The operator's trust settings: trusted keys and allowlist entries added (and removed) in the
//! admin or with the CLI, beside those of the environment.
//!
//! - **Where they live.** `trust_entries`, each in its canonical spelling (see
//!   [`crate::trust::canonical`]); `trust_revision` counts changes in the transaction that makes
//!   them. The environment's keys and entries (`NITEJAR_PLUGIN_TRUSTED_KEYS`,
//!   `NITEJAR_PLUGIN_ALLOWLIST`) still apply, are listed with their source, and cannot be removed
//!   here (they come back with the next start): they change in the environment.
//! - **How a change applies.** Every operation that judges trust (install, enable, upgrade,
//!   rollback, boot, reconcile, doctor) first compares the stored revision with the one its policy
//!   was built from and rebuilds the policy when they differ: one small query. The reconciler, on
//!   a new revision, judges every active plugin again (one the policy no longer accepts is taken
//!   out and marked `error`, kind `trust`) and retries every enabled plugin whose error is a trust
//!   refusal that the policy now accepts; its error clears when it activates. Every server sharing
//!   the database does this within a second; no restart.
//! - **saas_locked.** Its trusted keys are the platform's, set in the environment; the allowlist
//!   does not count in that mode. So nothing can be added or removed there, and entries stored
//!   under another mode do not apply.
//! - **Audit.** Every change, and every refused attempt, is a `trust` receipt (under the id
//!   [`TRUST_RECEIPT_ID`]) naming who made it and what changed: the key id and public key line, or
//!   the entry. Nothing else of the request is recorded.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::{LifecycleError, PluginManager, ReconcileReport};
use crate::receipts::{now_ms, ReceiptKind, ReceiptStatus};
use crate::store::{StoreError, TrustEntryRow};
use crate::trust::{canonical, AllowEntry, TrustMode, TrustPolicy, TrustedKey};

/// The plugin id trust-setting receipts are recorded under.
pub const TRUST_RECEIPT_ID: &str = "nitejar.trust";

/// A trusted key or an allowlist entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustEntryKind {
    /// A minisign public key.
    Key,
    /// An allowlist entry.
    Allow,
}

impl TrustEntryKind {
    /// `key` or `allow`: the stored kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            TrustEntryKind::Key => "key",
            TrustEntryKind::Allow => "allow",
        }
    }

    /// What it is called in messages.
    pub const fn noun(self) -> &'static str {
        match self {
            TrustEntryKind::Key => "trusted key",
            TrustEntryKind::Allow => "allowlist entry",
        }
    }

    /// The environment variable that also holds entries of this kind.
    pub const fn env_var(self) -> &'static str {
        match self {
            TrustEntryKind::Key => "NITEJAR_PLUGIN_TRUSTED_KEYS",
            TrustEntryKind::Allow => "NITEJAR_PLUGIN_ALLOWLIST",
        }
    }
}

/// Where a key or an entry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustSource {
    /// The environment (`NITEJAR_PLUGIN_TRUSTED_KEYS`, `NITEJAR_PLUGIN_ALLOWLIST`).
    Environment,
    /// Stored in the database by an operator (admin or CLI).
    Stored,
}

/// A trust-settings change that did not happen, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustSettingsError {
    /// The key or entry as given cannot be read.
    #[error("the {} {problem}; nothing was changed", kind.noun())]
    Invalid {
        /// Key or entry.
        kind: TrustEntryKind,
        /// What is wrong, and what to give instead.
        problem: String,
    },
    /// It is trusted already.
    #[error("the {} `{ident}` is there already ({}); nothing was changed", kind.noun(), match origin { TrustSource::Environment => format!("set by {}", kind.env_var()), TrustSource::Stored => "in the trust settings".to_string() })]
    Duplicate {
        /// Key or entry.
        kind: TrustEntryKind,
        /// The key id or the entry.
        ident: String,
        /// Where the one already there comes from.
        origin: TrustSource,
    },
    /// Another key with the same key id is trusted: signatures name keys by id, so two keys with one
    /// id cannot both be trusted.
    #[error("another key with the key id {key_id} is trusted already; signatures name their key by id, so remove that key first")]
    KeyIdTaken {
        /// The key id.
        key_id: String,
    },
    /// No such stored key or entry.
    #[error("there is no {} `{ident}` in the trust settings; the list shows what there is", kind.noun())]
    NotFound {
        /// Key or entry.
        kind: TrustEntryKind,
        /// The key id or the entry.
        ident: String,
    },
    /// The key or entry comes from the environment, which this cannot change.
    #[error("the {} `{ident}` is set by the environment variable {}; remove it there and restart the server", kind.noun(), kind.env_var())]
    FromEnvironment {
        /// Key or entry.
        kind: TrustEntryKind,
        /// The key id or the entry.
        ident: String,
    },
    /// saas_locked: the platform's keys only.
    #[error("the server runs in saas_locked mode: its trusted keys are the platform's, set in NITEJAR_PLUGIN_TRUSTED_KEYS, and the allowlist does not apply; nothing can be added or removed here")]
    Locked,
}

/// One trusted key as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedKeyView {
    /// 16 upper-case hex digits.
    pub key_id: String,
    /// The canonical base64 line.
    pub public_key: String,
    /// Where it comes from.
    pub source: TrustSource,
    /// Whether this server judges plugins with it now (stored keys do not apply under saas_locked).
    pub in_effect: bool,
    /// Whether it can be removed here (stored, and the mode allows changes).
    pub removable: bool,
    /// Who added it (stored keys).
    pub added_by: Option<String>,
    /// When (Unix milliseconds; stored keys).
    pub added_at: Option<i64>,
}

/// One allowlist entry as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowEntryView {
    /// `id` or `id@sha256:<hex>`.
    pub entry: String,
    /// The plugin it allows.
    pub plugin_id: String,
    /// The build it is pinned to, if any.
    pub digest: Option<String>,
    /// Where it comes from.
    pub source: TrustSource,
    /// Whether this server judges plugins with it now (never under saas_locked).
    pub in_effect: bool,
    /// Whether it can be removed here.
    pub removable: bool,
    /// Who added it (stored entries).
    pub added_by: Option<String>,
    /// When (Unix milliseconds; stored entries).
    pub added_at: Option<i64>,
}

/// The trust settings as an operator sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustSettings {
    /// The trust mode (`NITEJAR_PLUGIN_TRUST_MODE`).
    pub mode: TrustMode,
    /// Whether keys and entries can be added and removed here (not under saas_locked).
    pub editable: bool,
    /// Whether the allowlist counts in this mode.
    pub allowlist_applies: bool,
    /// The count of changes to the stored entries.
    pub revision: i64,
    /// Every trusted key: the environment's first.
    pub keys: Vec<TrustedKeyView>,
    /// Every allowlist entry: the environment's first.
    pub allowlist: Vec<AllowEntryView>,
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustChange {
    /// `add` or `remove`.
    pub action: &'static str,
    /// Key or entry.
    pub kind: TrustEntryKind,
    /// The key id, or the entry.
    pub ident: String,
    /// The public key line, or the entry.
    pub value: String,
    /// The revision after the change.
    pub revision: i64,
    /// What ran in this process before the change (id → version), so that applying it reports what
    /// changed whichever reconciliation did the work ([`PluginManager::apply_trust_change`]).
    #[serde(skip)]
    pub running_before: BTreeMap<String, String>,
}

/// The policy a manager judges with: the environment's, plus the stored entries of `revision`.
#[derive(Clone, Debug)]
pub(crate) struct TrustState {
    pub(crate) revision: Option<i64>,
    pub(crate) policy: Arc<TrustPolicy>,
    pub(crate) stored: Vec<TrustEntryRow>,
}

impl TrustState {
    pub(crate) fn from_environment(policy: &TrustPolicy) -> TrustState {
        TrustState {
            revision: None,
            policy: Arc::new(policy.clone()),
            stored: Vec::new(),
        }
    }

    /// Takes `next` unless it was read at an older revision than this state's: two refreshes
    /// running at once (a request's and the change feed's) may finish in either order, and the
    /// slower one must not put back settings the faster one already replaced.
    fn replace_unless_older(&mut self, next: TrustState) -> bool {
        if self
            .revision
            .is_some_and(|r| next.revision.is_none_or(|n| n < r))
        {
            return false;
        }
        *self = next;
        true
    }
}

/// The canonical identity and value of what `text` names.
fn canonical_of(kind: TrustEntryKind, text: &str) -> Result<(String, String), TrustSettingsError> {
    let invalid = |problem: String| TrustSettingsError::Invalid { kind, problem };
    match kind {
        TrustEntryKind::Key => canonical::key_line(text)
            .map(|k| (k.key_id, k.line))
            .map_err(|p| invalid(p.problem)),
        TrustEntryKind::Allow => canonical::allow_entry(text)
            .map(|e| (e.to_string(), e.to_string()))
            .map_err(|p| invalid(p.problem)),
    }
}

impl PluginManager {
    /// The policy plugins are judged with now (see [`Self::refresh_trust`]).
    pub fn policy(&self) -> Arc<TrustPolicy> {
        self.trust_state().policy.clone()
    }

    /// The revision of the stored trust settings the policy was built from (`None`: not read yet).
    pub(crate) fn trust_revision_in_use(&self) -> Option<i64> {
        self.trust_state().revision
    }

    fn trust_state(&self) -> TrustState {
        self.trust.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the policy from the environment's keys and entries and the stored ones when the
    /// stored revision is not the one it was built from. Returns whether it changed.
    pub async fn refresh_trust(&self) -> Result<bool, LifecycleError> {
        let revision = self.store.trust_revision().await?;
        if self.trust_state().revision == Some(revision) {
            return Ok(false);
        }
        let stored = self.store.list_trust_entries().await?;
        let base = &self.options.policy;
        let policy = if base.mode() == TrustMode::SaasLocked {
            base.clone()
        } else {
            let mut keys = Vec::new();
            let mut allowlist = Vec::new();
            for row in &stored {
                match row.kind.as_str() {
                    "key" => match TrustedKey::parse(&row.value) {
                        Ok(key) => keys.push(key),
                        Err(e) => {
                            tracing::warn!("a stored trusted key ({}) is not used: {e}", row.ident)
                        }
                    },
                    "allow" => match canonical::allow_entry(&row.value) {
                        Ok(entry) => allowlist.push(entry),
                        Err(e) => tracing::warn!(
                            "a stored allowlist entry ({}) is not used: {e}",
                            row.ident
                        ),
                    },
                    other => {
                        tracing::warn!("a stored trust entry of unknown kind `{other}` is not used")
                    }
                }
            }
            base.clone().with_more(keys, allowlist)
        };
        let mut state = self.trust.write().unwrap_or_else(|p| p.into_inner());
        Ok(state.replace_unless_older(TrustState {
            revision: Some(revision),
            policy: Arc::new(policy),
            stored,
        }))
    }

    /// The trust settings: every key and entry with where it comes from and whether it applies.
    pub async fn trust_settings(&self) -> Result<TrustSettings, LifecycleError> {
        self.refresh_trust().await?;
        let state = self.trust_state();
        let base = &self.options.policy;
        let mode = base.mode();
        let editable = mode != TrustMode::SaasLocked;
        let mut keys: Vec<TrustedKeyView> = base
            .keys()
            .iter()
            .map(|k| TrustedKeyView {
                key_id: k.id().to_string(),
                public_key: k.line().to_string(),
                source: TrustSource::Environment,
                in_effect: true,
                removable: false,
                added_by: None,
                added_at: None,
            })
            .collect();
        let mut allowlist: Vec<AllowEntryView> = base
            .allowlist()
            .iter()
            .map(|e| AllowEntryView {
                entry: e.to_string(),
                plugin_id: e.id.clone(),
                digest: e.digest.clone(),
                source: TrustSource::Environment,
                in_effect: mode != TrustMode::SaasLocked,
                removable: false,
                added_by: None,
                added_at: None,
            })
            .collect();
        for row in &state.stored {
            match row.kind.as_str() {
                "key" => keys.push(TrustedKeyView {
                    key_id: row.ident.clone(),
                    public_key: row.value.clone(),
                    source: TrustSource::Stored,
                    in_effect: editable,
                    removable: editable,
                    added_by: Some(row.added_by.clone()),
                    added_at: Some(row.created_at),
                }),
                "allow" => {
                    let parsed: Option<AllowEntry> = canonical::allow_entry(&row.value).ok();
                    allowlist.push(AllowEntryView {
                        entry: row.value.clone(),
                        plugin_id: parsed.as_ref().map(|e| e.id.clone()).unwrap_or_default(),
                        digest: parsed.and_then(|e| e.digest),
                        source: TrustSource::Stored,
                        in_effect: editable,
                        removable: editable,
                        added_by: Some(row.added_by.clone()),
                        added_at: Some(row.created_at),
                    })
                }
                _ => {}
            }
        }
        Ok(TrustSettings {
            mode,
            editable,
            allowlist_applies: mode != TrustMode::SaasLocked,
            revision: state.revision.unwrap_or(0),
            keys,
            allowlist,
        })
    }

    /// Adds a trusted key (`text`: its base64 line or the `minisign.pub` text) or an allowlist
    /// entry (`id` or `id@sha256:<digest>`), read in its canonical spelling, on behalf of `by`
    /// (who: recorded in the receipt). Refused, with nothing stored, when it cannot be read, is
    /// there already (in the environment or stored), or the mode is saas_locked. A running server
    /// applies it when it next reconciles (at once, when it made the change).
    pub async fn add_trust_entry(
        &self,
        kind: TrustEntryKind,
        text: &str,
        by: &str,
    ) -> Result<TrustChange, LifecycleError> {
        let running_before = self.running_versions();
        let result = self
            .add_trust_entry_inner(kind, text, by)
            .await
            .map(|change| TrustChange {
                running_before,
                ..change
            });
        self.trust_receipt("add", kind, by, &result).await;
        result
    }

    async fn add_trust_entry_inner(
        &self,
        kind: TrustEntryKind,
        text: &str,
        by: &str,
    ) -> Result<TrustChange, LifecycleError> {
        if self.options.policy.mode() == TrustMode::SaasLocked {
            return Err(TrustSettingsError::Locked.into());
        }
        let (ident, value) = canonical_of(kind, text)?;
        let base = &self.options.policy;
        let from_env = match kind {
            TrustEntryKind::Key => base
                .keys()
                .iter()
                .find(|k| k.id() == ident)
                .map(|k| k.line() == value),
            TrustEntryKind::Allow => base
                .allowlist()
                .iter()
                .any(|e| e.to_string() == ident)
                .then_some(true),
        };
        match from_env {
            Some(true) => {
                return Err(TrustSettingsError::Duplicate {
                    kind,
                    ident,
                    origin: TrustSource::Environment,
                }
                .into())
            }
            Some(false) => return Err(TrustSettingsError::KeyIdTaken { key_id: ident }.into()),
            None => {}
        }
        if kind == TrustEntryKind::Key {
            self.refresh_trust().await?;
            let same_id = self
                .trust_state()
                .stored
                .into_iter()
                .find(|r| r.kind == "key" && r.ident == ident);
            if let Some(row) = same_id {
                return Err(if row.value == value {
                    TrustSettingsError::Duplicate {
                        kind,
                        ident,
                        origin: TrustSource::Stored,
                    }
                } else {
                    TrustSettingsError::KeyIdTaken { key_id: ident }
                }
                .into());
            }
        }
        let row = TrustEntryRow {
            kind: kind.as_str().to_string(),
            ident: ident.clone(),
            value: value.clone(),
            added_by: by.to_string(),
            created_at: now_ms(),
        };
        let revision = match self.store.add_trust_entry(&row).await {
            Ok(revision) => revision,
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(TrustSettingsError::Duplicate {
                    kind,
                    ident,
                    origin: TrustSource::Stored,
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        };
        self.refresh_trust().await?;
        Ok(TrustChange {
            action: "add",
            kind,
            ident,
            value,
            revision,
            running_before: BTreeMap::new(),
        })
    }

    /// Removes a stored trusted key (`text`: its key id, or its line) or allowlist entry, on
    /// behalf of `by`. Refused when it comes from the environment, is not there, or the mode is
    /// saas_locked. A plugin trusted only by it stops running when a server next reconciles.
    pub async fn remove_trust_entry(
        &self,
        kind: TrustEntryKind,
        text: &str,
        by: &str,
    ) -> Result<TrustChange, LifecycleError> {
        let running_before = self.running_versions();
        let result = self
            .remove_trust_entry_inner(kind, text)
            .await
            .map(|change| TrustChange {
                running_before,
                ..change
            });
        self.trust_receipt("remove", kind, by, &result).await;
        result
    }

    async fn remove_trust_entry_inner(
        &self,
        kind: TrustEntryKind,
        text: &str,
    ) -> Result<TrustChange, LifecycleError> {
        if self.options.policy.mode() == TrustMode::SaasLocked {
            return Err(TrustSettingsError::Locked.into());
        }
        let ident = match kind {
            TrustEntryKind::Key => canonical::key_id(text),
            TrustEntryKind::Allow => canonical::allow_entry(text).map(|e| e.to_string()),
        }
        .map_err(|p| TrustSettingsError::Invalid {
            kind,
            problem: p.problem,
        })?;
        self.refresh_trust().await?;
        let stored = self
            .trust_state()
            .stored
            .into_iter()
            .find(|r| r.kind == kind.as_str() && r.ident == ident);
        let base = &self.options.policy;
        let in_env = match kind {
            TrustEntryKind::Key => base.keys().iter().any(|k| k.id() == ident),
            TrustEntryKind::Allow => base.allowlist().iter().any(|e| e.to_string() == ident),
        };
        let Some(stored) = stored else {
            return Err(if in_env {
                TrustSettingsError::FromEnvironment { kind, ident }
            } else {
                TrustSettingsError::NotFound { kind, ident }
            }
            .into());
        };
        let Some(revision) = self.store.remove_trust_entry(kind.as_str(), &ident).await? else {
            return Err(TrustSettingsError::NotFound { kind, ident }.into());
        };
        self.refresh_trust().await?;
        Ok(TrustChange {
            action: "remove",
            kind,
            ident,
            value: stored.value,
            revision,
            running_before: BTreeMap::new(),
        })
    }

    /// The receipt of a change (or a refused one): who, what; never more of the request.
    async fn trust_receipt(
        &self,
        action: &str,
        kind: TrustEntryKind,
        by: &str,
        result: &Result<TrustChange, LifecycleError>,
    ) {
        let (status, detail) = match result {
            Ok(change) => {
                let mut detail = json!({
                    "action": action, "kind": kind, "by": by, "revision": change.revision,
                });
                match kind {
                    TrustEntryKind::Key => {
                        detail["keyId"] = json!(change.ident);
                        detail["publicKey"] = json!(change.value);
                    }
                    TrustEntryKind::Allow => detail["entry"] = json!(change.ident),
                }
                (ReceiptStatus::Ok, detail)
            }
            Err(e) => {
                let status = if matches!(e, LifecycleError::TrustSettings(_)) {
                    ReceiptStatus::Denied
                } else {
                    ReceiptStatus::Error
                };
                (
                    status,
                    json!({ "action": action, "kind": kind, "by": by, "error": e.to_string() }),
                )
            }
        };
        self.receipt(TRUST_RECEIPT_ID, None, ReceiptKind::Trust, status, detail)
            .await;
    }
}

/// How many times a trust change applied in this process waits 50 ms for a plugin another
/// operation is loading.
const LOADING_ELSEWHERE_ROUNDS: usize = 100;

impl PluginManager {
    /// What runs in this process: plugin id → version.
    fn running_versions(&self) -> BTreeMap<String, String> {
        self.runtime
            .registry()
            .plugins()
            .map(|p| (p.meta().id.to_string(), p.meta().version.to_string()))
            .collect()
    }

    /// Applies a trust change in this process at once (a reconciliation) and reports what it
    /// changed since the change was made: plugins taken out or brought back, whichever
    /// reconciliation did it (the one the change feed started may have got there first).
    pub async fn apply_trust_change(
        &self,
        change: &TrustChange,
    ) -> Result<ReconcileReport, LifecycleError> {
        // A plugin the change feed's reconciliation is loading at the same moment is activated by
        // that one: wait for its load and reconcile again, so that the answer says what the change
        // did (a load is bounded by the load timeout; this waits a few seconds at most).
        let mut report = self.reconcile().await?;
        for _ in 0..LOADING_ELSEWHERE_ROUNDS {
            if report.loading_elsewhere.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let again = self.reconcile().await?;
            // A plugin that failed in an earlier round is not tried again: keep its error.
            report.errors.extend(again.errors);
            report.loading_elsewhere = again.loading_elsewhere;
        }
        let now = self.running_versions();
        report.activated = now
            .iter()
            .filter(|(id, v)| change.running_before.get(*id) != Some(*v))
            .map(|(id, v)| format!("{id}@{v}"))
            .collect();
        report.deactivated = change
            .running_before
            .keys()
            .filter(|id| !now.contains_key(*id))
            .cloned()
            .collect();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(revision: Option<i64>, ident: &str) -> TrustState {
        TrustState {
            revision,
            policy: Arc::new(TrustPolicy::default()),
            stored: vec![TrustEntryRow {
                kind: "allow".into(),
                ident: ident.into(),
                value: ident.into(),
                added_by: "test".into(),
                created_at: 0,
            }],
        }
    }

    #[test]
    fn a_refresh_read_at_an_older_revision_does_not_replace_a_newer_one() {
        let mut current = state(None, "first");
        assert!(current.replace_unless_older(state(Some(3), "three")));
        // The slower of two refreshes finishes last with what it read before the change.
        assert!(!current.replace_unless_older(state(Some(2), "two")));
        assert_eq!(current.revision, Some(3));
        assert_eq!(current.stored[0].ident, "three");
        // The same revision read again, and a newer one, are taken.
        assert!(current.replace_unless_older(state(Some(3), "three again")));
        assert!(current.replace_unless_older(state(Some(4), "four")));
        assert_eq!(current.stored[0].ident, "four");
    }
}
