//! Integration rows as the admin API, the admin UI and embedding hosts change them: [`Integrations`].
//!
//! Nothing here knows any integration type: everything type-specific comes from the registry entry
//! of the row's type — its descriptor (`config_schema`, `sensitive_fields`) and its code
//! (`validate_config`, `setup`, `test_connection`), called through `Runtime::call_integration` so
//! that the call has a deadline and leaves a receipt like any other plugin call.
//!
//! - Create and update validate the config against the type's JSON Schema, then its
//!   `validate_config`. Sensitive fields are encrypted by the store; a sensitive value sent back as
//!   the mask `••••••••` keeps the stored secret.
//! - Create, update and enable call the type's `setup(instance, webhook_url)` (a provider webhook
//!   registration, for example) while the row is enabled, and store the `config_changes` it returns.
//! - A row belongs to the plugin that created it ([`crate::builtin::integration_owner`]).
//!   Every call that hands a row's config to plugin code goes to that plugin only: when another
//!   plugin provides the type now, the row is *not served* until the operator hands it over
//!   ([`Integrations::hand_over`]), which names the secrets the new plugin will be given and needs their consent.

use std::sync::Arc;
use std::time::Duration;

use crate::changes::ChangeFeed;
use crate::crypto::REDACTED;
use crate::hooks::DispatchContext;
use crate::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};
use crate::runtime::Runtime;
use crate::runtime::{CallReceipt, IntegrationCallError};
use crate::store::Store;
use crate::store::{IntegrationRow, IntegrationUpdate, NewIntegration, StoreError};
use nitejar_sdk::integration::{ConfigValidation, ConnectionTest, SetupResult};
use nitejar_sdk::{IntegrationDescriptor, IntegrationError, IntegrationInstance};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The integration service: creates, changes, enables, hands over, tests and deletes integration
/// rows through the plugin that provides their type.
pub struct Integrations {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    receipts: Arc<dyn ReceiptSink>,
    changes: Option<Arc<ChangeFeed>>,
}

impl Integrations {
    /// A service over `store`, calling plugins through `runtime`, its receipts to `receipts`.
    pub fn new(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        receipts: Arc<dyn ReceiptSink>,
    ) -> Self {
        Integrations {
            runtime,
            store,
            receipts,
            changes: None,
        }
    }

    /// After each change, reads `feed`'s counters, so that the webhooks and runs this process
    /// serves next see the change (other servers see it when notified).
    pub fn following(mut self, feed: Arc<ChangeFeed>) -> Self {
        self.changes = Some(feed);
        self
    }

    async fn saw_own_write(&self) {
        if let Some(feed) = &self.changes {
            if let Err(e) = feed.sync().await {
                tracing::warn!("could not read the change counters after a write: {e}");
            }
        }
    }
}

/// How long `validate_config`, `setup` and `test_connection` may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A new integration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Changes to an integration; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatch {
    pub name: Option<String>,
    pub config: Option<Map<String, Value>>,
    pub enabled: Option<bool>,
}

/// An integration as the API shows it: secrets masked.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub scope: String,
    pub enabled: bool,
    pub plugin_id: Option<String>,
    pub config: Value,
    pub webhook_url: String,
    /// Whether an active plugin provides the type (webhooks answer 503 otherwise).
    pub type_available: bool,
    /// The plugin the integration belongs to: the one recorded on the row, or — for a row of an
    /// earlier release — the built-in that provides its type; `None` when nobody does.
    pub owner: Option<String>,
    /// The plugin that provides the type now, if one does.
    pub provider: Option<String>,
    /// Whether the owner is the provider: only then are webhooks accepted and the owner's code
    /// given the configuration (`integration_not_served` otherwise, until a hand-over).
    pub served: bool,
    pub display_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What `setup` did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupReport {
    pub ok: bool,
    pub detail: Option<String>,
    pub error: Option<String>,
    /// Config fields `setup` changed (values not shown).
    pub changed_fields: Vec<String>,
}

/// One problem with a config.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer of the field (`/botToken`), or `` for the whole config.
    pub path: String,
    pub message: String,
}

/// Why an integration operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationOpError {
    #[error("integration {0:?} does not exist")]
    NotFound(String),
    #[error("no active plugin provides integration type `{0}`; install and enable the plugin that does, or pick another type")]
    UnknownType(String),
    #[error("the config is not valid: {}", .0.iter().map(|p| if p.path.is_empty() { p.message.clone() } else { format!("{}: {}", p.path, p.message) }).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    #[error("the name must not be empty")]
    EmptyName,
    /// The row belongs to another plugin than the type's provider (or to none).
    #[error("{0}")]
    NotServed(String),
    /// A hand-over to a plugin that does not provide the row's type now.
    #[error("plugin `{to}` cannot take this `{kind}` integration: {}", match provider {
        Some(p) => format!("the type is provided by `{p}` now"),
        None => "no active plugin provides the type; enable the plugin first".to_string(),
    })]
    HandOverTarget {
        kind: String,
        to: String,
        provider: Option<String>,
    },
    /// A hand-over needs the operator's consent to give the new plugin the config and secrets.
    #[error("handing this integration to `{}` gives that plugin its configuration{}; send acceptHandover: true to consent", .0.to, if .0.secret_fields.is_empty() { String::new() } else { format!(" and its secrets ({})", .0.secret_fields.join(", ")) })]
    HandOverConsentRequired(HandOver),
    #[error("integration type `{kind}` {operation} failed: {error}")]
    Call {
        kind: String,
        operation: &'static str,
        error: IntegrationCallError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntegrationOpError {
    /// The stable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            IntegrationOpError::NotFound(_) => "integration_not_found",
            IntegrationOpError::UnknownType(_) => "integration_type_unavailable",
            IntegrationOpError::Invalid(_) => "invalid_config",
            IntegrationOpError::EmptyName => "invalid_name",
            IntegrationOpError::NotServed(_) => "integration_not_served",
            IntegrationOpError::HandOverTarget { .. } => "handover_target_unavailable",
            IntegrationOpError::HandOverConsentRequired(_) => "handover_consent_required",
            IntegrationOpError::Call { .. } => "integration_call_failed",
            IntegrationOpError::Store(_) => "store_error",
        }
    }
}

/// The URL an integration's provider posts to.
pub fn webhook_url(base: &str, kind: &str, id: &str) -> String {
    format!("{base}/api/webhooks/plugins/{kind}/{id}")
}

/// Who serves a row: the plugin it belongs to, and the one that provides its type now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub owner: Option<String>,
    pub provider: Option<String>,
}

impl Ownership {
    /// The owner provides the type: its webhooks are accepted and its config reaches plugin code.
    pub fn served(&self) -> bool {
        self.owner.is_some() && self.owner == self.provider
    }
}

/// What handing a row to another plugin gives it: shown to the operator before they consent.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandOver {
    pub integration_id: String,
    pub from: Option<String>,
    pub to: String,
    /// Stored config fields the new plugin will read in plaintext.
    pub secret_fields: Vec<String>,
    /// Every config field it will read.
    pub config_fields: Vec<String>,
}

impl HandOver {
    /// What handing `row` (of `from`) to `to` gives `to`.
    pub fn of(row: &IntegrationRow, from: Option<String>, to: &str) -> HandOver {
        let stored = row.config_map().unwrap_or_default();
        HandOver {
            integration_id: row.id.clone(),
            from,
            to: to.to_owned(),
            secret_fields: stored
                .iter()
                .filter(|(_, v)| v.as_str().is_some_and(crate::crypto::is_encrypted))
                .map(|(k, _)| k.clone())
                .collect(),
            config_fields: stored.keys().cloned().collect(),
        }
    }
}

/// Removes masks from a new config: on create a mask stands for nothing.
fn without_masks(config: &mut Map<String, Value>) {
    config.retain(|_, v| !matches!(v, Value::String(s) if s == REDACTED));
}

fn not_served(row: &IntegrationRow, owned: Ownership) -> IntegrationOpError {
    IntegrationOpError::NotServed(
        IntegrationCallError::NotServed {
            kind: row.integration_type.clone(),
            owner: owned.owner,
            active: owned.provider,
        }
        .to_string(),
    )
}

/// Integration rows as the admin API, the admin UI and embedding hosts change them (see the module docs).
impl Integrations {
    fn descriptor(&self, kind: &str) -> Option<IntegrationDescriptor> {
        self.runtime
            .registry()
            .integration(kind)
            .map(|e| e.descriptor.clone())
    }

    /// The ownership of `row` in the registry as it is now.
    pub fn ownership(&self, row: &IntegrationRow) -> Ownership {
        Ownership {
            owner: crate::builtin::integration_owner(row),
            provider: self
                .runtime
                .registry()
                .integration(&row.integration_type)
                .map(|e| e.plugin.id.to_string()),
        }
    }

    /// The view of a row.
    pub fn view(&self, row: &IntegrationRow, base: &str) -> IntegrationView {
        let owned = self.ownership(row);
        let descriptor = self.descriptor(&row.integration_type);
        let sensitive = descriptor
            .as_ref()
            .map(|d| d.sensitive_fields.clone())
            .unwrap_or_default();
        let config = row
            .redacted_config(&sensitive)
            .unwrap_or_else(|e| json!({ "_error": e.to_string() }));
        IntegrationView {
            id: row.id.clone(),
            kind: row.integration_type.clone(),
            name: row.name.clone(),
            scope: row.scope.clone(),
            enabled: row.enabled,
            plugin_id: row.plugin_id.clone(),
            config,
            webhook_url: webhook_url(base, &row.integration_type, &row.id),
            type_available: descriptor.is_some(),
            served: owned.served(),
            owner: owned.owner,
            provider: owned.provider,
            display_name: descriptor.map(|d| d.display_name),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    /// Every integration (optionally of one type).
    pub async fn list(
        &self,
        kind: Option<&str>,
    ) -> Result<Vec<IntegrationRow>, IntegrationOpError> {
        Ok(self.store.list_integrations(kind).await?)
    }

    /// One integration.
    pub async fn get(&self, id: &str) -> Result<IntegrationRow, IntegrationOpError> {
        self.store
            .get_integration(id)
            .await?
            .ok_or_else(|| IntegrationOpError::NotFound(id.to_owned()))
    }

    /// Checks a plaintext config against the type's schema, then its `validate_config`.
    async fn validate(
        &self,
        d: &IntegrationDescriptor,
        row: Option<&IntegrationRow>,
        config: &Map<String, Value>,
    ) -> Result<(), IntegrationOpError> {
        let value = Value::Object(config.clone());
        let mut problems = Vec::new();
        match jsonschema::validator_for(&d.config_schema) {
            Ok(validator) => {
                for e in validator.iter_errors(&value) {
                    problems.push(Problem {
                        path: e.instance_path().as_str().to_owned(),
                        message: e.to_string(),
                    });
                }
            }
            Err(e) => problems.push(Problem {
                path: String::new(),
                message: format!(
                    "the config schema of type `{}` cannot be used ({e}); this is a bug in its plugin",
                    d.kind
                ),
            }),
        }
        if !problems.is_empty() {
            return Err(IntegrationOpError::Invalid(problems));
        }
        let checked: ConfigValidation = self
            .call(&d.kind, row, "validate_config", move |i, _| {
                Ok(i.validate_config(&value))
            })
            .await?;
        if checked.valid && checked.errors.is_empty() {
            return Ok(());
        }
        let problems = if checked.errors.is_empty() {
            vec![Problem {
                path: String::new(),
                message: "the integration refused this config".into(),
            }]
        } else {
            checked
                .errors
                .into_iter()
                .map(|message| Problem {
                    path: String::new(),
                    message,
                })
                .collect()
        };
        Err(IntegrationOpError::Invalid(problems))
    }

    /// Calls the type's provider; for an existing `row` (whose config the call carries), only when the
    /// row belongs to that provider.
    async fn call<T, F>(
        &self,
        kind: &str,
        row: Option<&IntegrationRow>,
        operation: &'static str,
        f: F,
    ) -> Result<T, IntegrationOpError>
    where
        T: Send + 'static,
        F: FnOnce(
                &dyn nitejar_sdk::Integration,
                &dyn nitejar_sdk::Host,
            ) -> Result<T, IntegrationError>
            + Send
            + 'static,
    {
        let ctx = DispatchContext::default();
        let answer = match row {
            Some(row) => {
                let owner = crate::builtin::integration_owner(row);
                self.runtime
                    .call_owned_integration(
                        owner.as_deref(),
                        kind,
                        operation,
                        &ctx,
                        CALL_TIMEOUT,
                        CallReceipt::new(),
                        f,
                    )
                    .await
            }
            None => {
                self.runtime
                    .call_integration(kind, operation, &ctx, CALL_TIMEOUT, f)
                    .await
            }
        };
        answer.map_err(|error| match error {
            IntegrationCallError::UnknownType(kind) => IntegrationOpError::UnknownType(kind),
            error @ IntegrationCallError::NotServed { .. } => {
                IntegrationOpError::NotServed(error.to_string())
            }
            error => IntegrationOpError::Call {
                kind: kind.to_owned(),
                operation,
                error,
            },
        })
    }

    /// Creates an integration; runs `setup` when it is enabled.
    pub async fn create(
        &self,
        mut input: IntegrationInput,
        base: &str,
    ) -> Result<(IntegrationRow, Option<SetupReport>), IntegrationOpError> {
        let d = self
            .descriptor(&input.kind)
            .ok_or_else(|| IntegrationOpError::UnknownType(input.kind.clone()))?;
        let name = input.name.trim().to_owned();
        if name.is_empty() {
            return Err(IntegrationOpError::EmptyName);
        }
        without_masks(&mut input.config);
        self.validate(&d, None, &input.config).await?;
        let plugin_id = self
            .runtime
            .registry()
            .integration(&d.kind)
            .map(|e| e.plugin.id.to_string());
        let mut new = NewIntegration::new(d.kind.clone(), name, input.config);
        new.enabled = input.enabled;
        new.plugin_id = plugin_id;
        let row = self
            .store
            .create_integration(new, &d.sensitive_fields)
            .await?;
        if !row.enabled {
            return Ok((row, None));
        }
        let (row, report) = self.setup(row, &d, base).await?;
        Ok((row, Some(report)))
    }

    /// Changes an integration; runs `setup` when it is (or becomes) enabled and its config or state
    /// changed.
    pub async fn update(
        &self,
        id: &str,
        patch: IntegrationPatch,
        base: &str,
    ) -> Result<(IntegrationRow, Option<SetupReport>), IntegrationOpError> {
        let current = self.get(id).await?;
        let name = match patch.name {
            Some(n) if n.trim().is_empty() => return Err(IntegrationOpError::EmptyName),
            other => other.map(|n| n.trim().to_owned()),
        };
        let d = self.descriptor(&current.integration_type);
        let sensitive = d
            .as_ref()
            .map(|d| d.sensitive_fields.clone())
            .unwrap_or_default();
        if let Some(incoming) = &patch.config {
            let d = d
                .as_ref()
                .ok_or_else(|| IntegrationOpError::UnknownType(current.integration_type.clone()))?;
            // The form is the provider's; the stored values are the owner's.
            let owned = self.ownership(&current);
            if !owned.served() {
                return Err(not_served(&current, owned));
            }
            // Validate what will be stored: masks stand for the stored secrets.
            let stored = current.decrypted_config(self.store.cipher(), &sensitive)?;
            let mut effective = incoming.clone();
            crate::crypto::merge_placeholders(&mut effective, &stored, &sensitive);
            self.validate(d, Some(&current), &effective).await?;
        }
        let config_changed = patch.config.is_some();
        let becomes_enabled = patch.enabled == Some(true) && !current.enabled;
        let row = self
            .store
            .update_integration(
                id,
                IntegrationUpdate {
                    name,
                    config: patch.config,
                    enabled: patch.enabled,
                    ..IntegrationUpdate::default()
                },
                &sensitive,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => IntegrationOpError::NotFound(id.to_owned()),
                e => e.into(),
            })?;
        // Webhooks served by this process see the change at once (other servers when notified).
        self.saw_own_write().await;
        match d {
            Some(d) if row.enabled && (config_changed || becomes_enabled) => {
                let (row, report) = self.setup(row, &d, base).await?;
                Ok((row, Some(report)))
            }
            _ => Ok((row, None)),
        }
    }

    /// Calls the type's `setup` and stores the config changes it returns. A failing setup leaves the
    /// row as it is and is reported, not raised: the operator fixes the config and saves again.
    async fn setup(
        &self,
        row: IntegrationRow,
        d: &IntegrationDescriptor,
        base: &str,
    ) -> Result<(IntegrationRow, SetupReport), IntegrationOpError> {
        let owned = self.ownership(&row);
        if !owned.served() {
            let report = SetupReport {
                ok: false,
                error: Some(not_served(&row, owned).to_string()),
                ..SetupReport::default()
            };
            return Ok((row, report));
        }
        let config = row.decrypted_config(self.store.cipher(), &d.sensitive_fields)?;
        let instance = IntegrationInstance::new(row.id.clone(), row.integration_type.clone())
            .with_name(row.name.clone())
            .with_config(Value::Object(config));
        let url = webhook_url(base, &row.integration_type, &row.id);
        let result: Result<SetupResult, _> = self
            .call(&d.kind, Some(&row), "setup", move |i, host| {
                i.setup(&instance, &url, host)
            })
            .await;
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                let report = SetupReport {
                    ok: false,
                    error: Some(e.to_string()),
                    ..SetupReport::default()
                };
                return Ok((row, report));
            }
        };
        let mut report = SetupReport {
            ok: true,
            detail: done.detail,
            error: None,
            changed_fields: done.config_changes.keys().cloned().collect(),
        };
        if done.config_changes.is_empty() {
            return Ok((row, report));
        }
        // The stored (encrypted) config plus the changes: untouched secrets keep their stored bytes.
        let mut config = row.config_map()?;
        config.extend(done.config_changes);
        let row = self
            .store
            .update_integration(
                &row.id,
                IntegrationUpdate {
                    config: Some(config),
                    ..IntegrationUpdate::default()
                },
                &d.sensitive_fields,
            )
            .await?;
        self.saw_own_write().await;
        report.changed_fields.sort();
        Ok((row, report))
    }

    /// Enables or disables an integration (enabling runs `setup`).
    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        base: &str,
    ) -> Result<(IntegrationRow, Option<SetupReport>), IntegrationOpError> {
        self.update(
            id,
            IntegrationPatch {
                enabled: Some(enabled),
                ..IntegrationPatch::default()
            },
            base,
        )
        .await
    }

    /// Deletes an integration. Its work items and receipts stay.
    pub async fn delete(&self, id: &str) -> Result<(), IntegrationOpError> {
        if self.store.delete_integration(id).await? {
            self.saw_own_write().await;
            Ok(())
        } else {
            Err(IntegrationOpError::NotFound(id.to_owned()))
        }
    }

    /// Gives integration `id` to plugin `to`, which must provide its type now. Until then the row is
    /// served by nobody (see [`Ownership`]); after it, `to`'s code reads its configuration and secrets,
    /// which is why `accept` is required: without it the answer is
    /// [`IntegrationOpError::HandOverConsentRequired`], naming what would be handed over. The change is
    /// receipted (`integration` / `handover`) under `to`.
    pub async fn hand_over(
        &self,
        id: &str,
        to: &str,
        accept: bool,
    ) -> Result<IntegrationRow, IntegrationOpError> {
        let row = self.get(id).await?;
        let owned = self.ownership(&row);
        if owned.provider.as_deref() != Some(to) {
            return Err(IntegrationOpError::HandOverTarget {
                kind: row.integration_type.clone(),
                to: to.to_owned(),
                provider: owned.provider,
            });
        }
        if owned.owner.as_deref() == Some(to) {
            return Ok(row);
        }
        row.config_map()?;
        let hand = HandOver::of(&row, owned.owner.clone(), to);
        if !accept {
            return Err(IntegrationOpError::HandOverConsentRequired(hand));
        }
        let row = self
            .store
            .update_integration(
                id,
                IntegrationUpdate {
                    plugin_id: Some(Some(to.to_owned())),
                    ..IntegrationUpdate::default()
                },
                &[],
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => IntegrationOpError::NotFound(id.to_owned()),
                e => e.into(),
            })?;
        self.saw_own_write().await;
        let receipt = Receipt::new(
            to.to_owned(),
            None,
            ReceiptKind::Integration,
            ReceiptStatus::Ok,
        )
        .with_detail(json!({
            "operation": "handover",
            "integration_id": hand.integration_id,
            "type": row.integration_type,
            "from": hand.from,
            "to": hand.to,
            "secret_fields": hand.secret_fields,
        }));
        self.receipts.submit(vec![receipt]).await;
        Ok(row)
    }

    /// Runs the type's `test_connection` with the stored config.
    pub async fn test_connection(&self, id: &str) -> Result<ConnectionTest, IntegrationOpError> {
        let row = self.get(id).await?;
        let d = self
            .descriptor(&row.integration_type)
            .ok_or_else(|| IntegrationOpError::UnknownType(row.integration_type.clone()))?;
        let owned = self.ownership(&row);
        if !owned.served() {
            return Err(not_served(&row, owned));
        }
        let config = Value::Object(row.decrypted_config(self.store.cipher(), &d.sensitive_fields)?);
        let result = self
            .call(&d.kind, Some(&row), "test_connection", move |i, host| {
                i.test_connection(&config, host)
            })
            .await;
        match result {
            Ok(test) => Ok(test),
            Err(IntegrationOpError::Call {
                error: IntegrationCallError::Failed(e),
                ..
            }) => Ok(ConnectionTest::failed(e.to_string())),
            Err(e) => Err(e),
        }
    }
}
