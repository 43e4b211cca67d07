//! The rows the store reads and writes, and what callers pass to create or change them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::StoreError;
use crate::crypto::{self, Cipher};
use crate::receipts::Receipt;

/// A new UUIDv7 id as text. Time-ordered: ids made later in this process sort after earlier ones.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Unix time in seconds (the unit of the legacy `integrations` timestamps).
pub fn now_secs() -> i64 {
    crate::receipts::now_ms().div_euclid(1000)
}

// --- integrations ---------------------------------------------------------------------------------

/// One row of `integrations`, as stored: sensitive config values are `enc:` strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationRow {
    /// The id, which is also part of the webhook URL.
    pub id: String,
    /// The integration type (`telegram`, `github`, or a plugin's type).
    pub integration_type: String,
    /// The operator's name for it.
    pub name: String,
    /// The config JSON exactly as stored, or `None` when the row has none.
    pub config: Option<String>,
    /// `global` unless narrowed.
    pub scope: String,
    /// Whether webhooks for it are accepted.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// The plugin that contributes its type, once known.
    pub plugin_id: Option<String>,
}

impl IntegrationRow {
    /// The stored config as a JSON object (sensitive values still encrypted). A row without config has an
    /// empty object.
    pub fn config_map(&self) -> Result<Map<String, Value>, StoreError> {
        let Some(text) = self.config.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(Map::new());
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(Value::Null) => Ok(Map::new()),
            Ok(other) => Err(self.malformed(format!("expected a JSON object, found {other}"))),
            Err(e) => Err(self.malformed(e.to_string())),
        }
    }

    /// The config fit for the API and the admin UI: see [`crypto::redact`].
    pub fn redacted_config(&self, sensitive_fields: &[String]) -> Result<Value, StoreError> {
        Ok(crypto::redact(
            &Value::Object(self.config_map()?),
            sensitive_fields,
        ))
    }

    /// The plaintext config a plugin call receives.
    pub fn decrypted_config(
        &self,
        cipher: &Cipher,
        sensitive_fields: &[String],
    ) -> Result<Map<String, Value>, StoreError> {
        cipher
            .decrypt_config(&self.config_map()?, sensitive_fields)
            .map_err(|source| StoreError::Crypto {
                id: self.id.clone(),
                source,
            })
    }

    fn malformed(&self, reason: String) -> StoreError {
        StoreError::Malformed {
            entity: "integration",
            id: self.id.clone(),
            column: "config",
            reason,
        }
    }
}

/// What [`Store::create_integration`](super::IntegrationStore::create_integration) needs.
#[derive(Clone, Debug, PartialEq)]
pub struct NewIntegration {
    /// The id to use; a new UUIDv7 when `None`.
    pub id: Option<String>,
    /// The integration type.
    pub integration_type: String,
    /// The operator's name for it.
    pub name: String,
    /// The config in plaintext; sensitive fields are encrypted on write.
    pub config: Map<String, Value>,
    /// The scope (`global` by default).
    pub scope: String,
    /// Enabled (the default) or not.
    pub enabled: bool,
    /// The contributing plugin, when known.
    pub plugin_id: Option<String>,
}

impl NewIntegration {
    /// An enabled, global integration with a new id.
    pub fn new(
        integration_type: impl Into<String>,
        name: impl Into<String>,
        config: Map<String, Value>,
    ) -> NewIntegration {
        NewIntegration {
            id: None,
            integration_type: integration_type.into(),
            name: name.into(),
            config,
            scope: "global".to_owned(),
            enabled: true,
            plugin_id: None,
        }
    }
}

/// The fields of an integration to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntegrationUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new config, replacing the stored one. Sensitive fields sent as [`crypto::REDACTED`] keep their
    /// stored value.
    pub config: Option<Map<String, Value>>,
    /// A new scope.
    pub scope: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Set (`Some(Some(id))`) or clear (`Some(None)`) the contributing plugin.
    pub plugin_id: Option<Option<String>>,
}

// --- plugins ---------------------------------------------------------------------------------------

/// One row of `plugins`. Timestamps are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRow {
    /// The manifest id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Whether the operator enabled it.
    pub enabled: bool,
    /// `builtin`, `trusted`, `untrusted` or `unknown`.
    pub trust_level: String,
    /// `builtin`, `npm`, `git`, `upload` or `local`.
    pub source_kind: String,
    /// Package name, git URL, file name…
    pub source_ref: Option<String>,
    /// The active version.
    pub current_version: Option<String>,
    /// Content digest of the active version.
    pub current_checksum: Option<String>,
    /// Where the active version lives.
    pub current_install_path: Option<String>,
    /// The active version's manifest.
    pub manifest_json: String,
    /// Plugin-level config JSON, checked against the schema the manifest declares (`None`:
    /// nothing set). Written only by `Store::write_plugin_settings`.
    pub config_json: Option<String>,
    /// How many times the config or the stored secrets changed: an instance made with an older
    /// revision is replaced by one with the current settings.
    #[serde(default)]
    pub config_revision: i64,
    /// Where its code runs, as the operator chose it (`in_process` or `isolated`); `None` follows
    /// the server's default. Written only by `Store::set_plugin_execution`.
    #[serde(default)]
    pub execution_mode: Option<String>,
    /// The address space of its own process (isolated execution) in MiB, as the operator chose
    /// it; `None` follows the server's default. Written only by `Store::set_plugin_limits`.
    #[serde(default)]
    pub memory_limit_mib: Option<i64>,
    /// The processor time of its own process over its life, in seconds, as the operator chose
    /// it; `None` follows the server's default. Written only by `Store::set_plugin_limits`.
    #[serde(default)]
    pub cpu_limit_seconds: Option<i64>,
    /// The last load error, for the admin UI.
    pub last_load_error: Option<String>,
    /// Why `last_load_error` was set (one of [`error_kind`]): `None` with no error, or for one
    /// recorded before the kind was.
    #[serde(default)]
    pub last_error_kind: Option<String>,
    /// When it was last loaded.
    pub last_loaded_at: Option<i64>,
    /// When it was first installed (kept on upsert).
    pub installed_at: i64,
    /// When the row last changed.
    pub updated_at: i64,
}

impl PluginRow {
    /// Records why the plugin is not running: the message and its [`error_kind`].
    pub fn set_error(&mut self, kind: &'static str, message: impl Into<String>) {
        self.last_load_error = Some(message.into());
        self.last_error_kind = Some(kind.to_string());
    }

    /// The plugin runs (or was reset): no error.
    pub fn clear_error(&mut self) {
        self.last_load_error = None;
        self.last_error_kind = None;
    }

    /// Whether the recorded error is a refusal by the trust policy (retried when the policy
    /// accepts the plugin).
    pub fn refused_by_trust(&self) -> bool {
        self.last_load_error.is_some() && self.last_error_kind.as_deref() == Some(error_kind::TRUST)
    }
}

/// The kinds of `plugins.last_error_kind`.
pub mod error_kind {
    /// The trust policy refused the plugin (no trusted signature, no allowlist entry).
    pub const TRUST: &str = "trust";
    /// Its code could not be loaded or activated (or a version row, consent or file is missing).
    pub const LOAD: &str = "load";
    /// Its version directory changed after install.
    pub const TAMPERED: &str = "tampered";
    /// The process died with it running (the crash-loop guard or the strike count disabled it).
    pub const CRASH: &str = "crash";
    /// The previous process died while activating it.
    pub const BOOT_MARKER: &str = "boot_marker";
}

/// One row of `plugin_versions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersionRow {
    /// The plugin.
    pub plugin_id: String,
    /// The semver version.
    pub version: String,
    /// Content digest of the package.
    pub checksum: String,
    /// The immutable version directory.
    pub install_path: String,
    /// This version's manifest.
    pub manifest_json: String,
    /// Signature and signer, when signed.
    pub signature_json: Option<String>,
    /// Unix milliseconds.
    pub installed_at: i64,
}

/// One row of `plugin_disclosure_acks`: the operator's acknowledgement of one declared permission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureAckRow {
    /// The plugin.
    pub plugin_id: String,
    /// The permission (`network:api.telegram.org`, `secret:BOT_TOKEN`, …).
    pub permission: String,
    /// Scope target; empty when the permission is not scoped.
    pub scope: String,
    /// Whether it is acknowledged.
    pub acknowledged: bool,
    /// When it was acknowledged (Unix milliseconds).
    pub acknowledged_at: Option<i64>,
}

/// One row of `plugin_consents`: the operator's consent to one version of a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRow {
    /// The plugin.
    pub plugin_id: String,
    /// The version consented to.
    pub version: String,
    /// Its content digest: a consent holds for exactly these bytes.
    pub checksum: String,
    /// What was consented: permission acknowledgement strings and contributions
    /// (`hook:<event>`, `integration:<type>`, `skill:<id>`), sorted.
    pub consented: Vec<String>,
    /// `sha256:` of the consent text accepted; empty when not accepted as a text.
    pub consent_digest: String,
    /// `accepted`, `carried_over` (an upgrade that adds nothing) or `existing` (enabled before
    /// consents were recorded per version).
    pub basis: String,
    /// When (Unix milliseconds).
    pub accepted_at: i64,
}

/// The package bytes of one plugin version (`plugin_artifacts`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginArtifact {
    /// The plugin.
    pub plugin_id: String,
    /// The version.
    pub version: String,
    /// The package (a `.tgz`).
    pub bytes: Vec<u8>,
    /// Content digest of the package.
    pub checksum: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl std::fmt::Debug for PluginArtifact {
    // A package is megabytes; its debug output is its size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginArtifact")
            .field("plugin_id", &self.plugin_id)
            .field("version", &self.version)
            .field("bytes", &self.bytes.len())
            .field("checksum", &self.checksum)
            .field("created_at", &self.created_at)
            .finish()
    }
}

// --- agents, work items, jobs, spans -------------------------------------------------------------

/// What [`Store::create_agent`](super::AgentStore::create_agent) needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAgent {
    /// The id to use; a new UUIDv7 when `None`.
    pub id: Option<String>,
    /// The display name (unique).
    pub name: String,
    /// The @mention handle (unique when set).
    pub handle: Option<String>,
    /// Agent config JSON.
    pub config: Option<String>,
}

/// One row of `agents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRow {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The @mention handle.
    pub handle: Option<String>,
    /// Agent config JSON.
    pub config: Option<String>,
    /// `idle`, `busy`, …
    pub status: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// What [`Store::create_work_item`](super::WorkStore::create_work_item) needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewWorkItem {
    /// The id to use; a new UUIDv7 when `None`.
    pub id: Option<String>,
    /// The integration the webhook came through.
    pub integration_id: Option<String>,
    /// Groups the items of one conversation.
    pub session_key: String,
    /// Where it came from (`telegram`, …).
    pub source: String,
    /// The source's own reference (message id, issue URL, …).
    pub source_ref: String,
    /// `NEW` when `None`.
    pub status: Option<String>,
    /// A one-line summary.
    pub title: String,
    /// The parsed payload JSON.
    pub payload: Option<String>,
}

/// A work item accepted from a webhook, with everything that makes "accepted" true, written in one
/// transaction by [`Store::accept_work_items`](super::WorkStore::accept_work_items).
#[derive(Clone, Debug)]
pub struct AcceptedItem {
    /// Its idempotency keys: an item any of whose keys exists already is not stored at all.
    pub keys: Vec<String>,
    /// The work item (give it an `id` to know it before the commit, e.g. for `receipt`).
    pub item: NewWorkItem,
    /// The run to queue for it, if it is to be answered.
    pub run: Option<NewRun>,
    /// Its ingress receipt, stored with it (and only if it is stored).
    pub receipt: Option<StoredReceipt>,
}

/// A run to queue with a work item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRun {
    /// What `parse_webhook` handed back for `post_response` (JSON).
    pub response_context: Option<String>,
}

/// A claim on queued runs (see [`Store::claim_runs`](super::WorkStore::claim_runs)).
#[derive(Clone, Copy, Debug)]
pub struct RunClaim<'a> {
    /// Who claims: the lease owner written on each run.
    pub owner: &'a str,
    /// Runs to claim at most.
    pub limit: usize,
    /// Now, in Unix milliseconds: runs available by then, and leases expired by then, are claimable.
    pub now: i64,
    /// When the new leases end unless renewed.
    pub lease_until: i64,
}

/// A run claimed by [`Store::claim_runs`](super::WorkStore::claim_runs), with its work item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedRun {
    /// Its place in the queue.
    pub seq: i64,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// What `parse_webhook` handed back for `post_response` (JSON).
    pub response_context: Option<String>,
    /// The work item to answer.
    pub work_item: WorkItemRow,
}

/// One row of `work_items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItemRow {
    /// The id.
    pub id: String,
    /// The integration the webhook came through.
    pub integration_id: Option<String>,
    /// Groups the items of one conversation.
    pub session_key: String,
    /// Where it came from.
    pub source: String,
    /// The source's own reference.
    pub source_ref: String,
    /// `NEW`, `RUNNING`, `DONE`, …
    pub status: String,
    /// A one-line summary.
    pub title: String,
    /// The parsed payload JSON.
    pub payload: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// What [`Store::create_job`](super::WorkStore::create_job) needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewJob {
    /// The id to use; a new UUIDv7 when `None`.
    pub id: Option<String>,
    /// The work item this job works on.
    pub work_item_id: String,
    /// The agent that runs it.
    pub agent_id: String,
    /// The job that spawned this one.
    pub parent_job_id: Option<String>,
    /// The first job of the chain.
    pub root_job_id: Option<String>,
    /// `primary` when `None`.
    pub run_kind: Option<String>,
    /// The tool that spawned it.
    pub origin_tool_name: Option<String>,
    /// `PENDING` when `None`.
    pub status: Option<String>,
    /// When it started (Unix milliseconds), for a job created already running.
    pub started_at: Option<i64>,
}

/// One row of `jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRow {
    /// The id.
    pub id: String,
    /// The work item.
    pub work_item_id: String,
    /// The agent.
    pub agent_id: String,
    /// The job that spawned this one.
    pub parent_job_id: Option<String>,
    /// The first job of the chain.
    pub root_job_id: Option<String>,
    /// `primary`, …
    pub run_kind: String,
    /// The tool that spawned it.
    pub origin_tool_name: Option<String>,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, …
    pub status: String,
    /// Why it failed.
    pub error_text: Option<String>,
    /// Unix milliseconds.
    pub started_at: Option<i64>,
    /// Unix milliseconds.
    pub completed_at: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// The fields of a job to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobUpdate {
    /// A new status.
    pub status: Option<String>,
    /// Set or clear the error text.
    pub error_text: Option<Option<String>>,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it completed.
    pub completed_at: Option<i64>,
}

/// One row of `spans`. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanRow {
    /// The id.
    pub id: String,
    /// The trace it belongs to.
    pub trace_id: String,
    /// The enclosing span.
    pub parent_span_id: Option<String>,
    /// What it measures (`plugin.hook`, `plugin.integration`, …).
    pub name: String,
    /// Its kind (`plugin`, `model`, `tool`, …).
    pub kind: String,
    /// How it ended.
    pub status: String,
    /// Start, Unix milliseconds.
    pub start_time: i64,
    /// End, Unix milliseconds.
    pub end_time: Option<i64>,
    /// How long it took.
    pub duration_ms: Option<i64>,
    /// Attributes JSON (for plugin spans: `plugin.id`, `plugin.version`, `plugin.hook`,
    /// `plugin.status`).
    pub attributes: Option<String>,
    /// The job, when there is one.
    pub job_id: Option<String>,
    /// The agent, when there is one.
    pub agent_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

// --- receipts ----------------------------------------------------------------------------------------

/// A receipt with the id it is stored under.
///
/// The id is assigned once, before the first write attempt, so that a retried batch cannot store a
/// receipt twice.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReceipt {
    /// A UUIDv7.
    pub id: String,
    /// The receipt.
    pub receipt: Receipt,
}

impl StoredReceipt {
    /// Gives `receipt` a new UUIDv7 id.
    pub fn new(receipt: Receipt) -> StoredReceipt {
        StoredReceipt {
            id: new_id(),
            receipt,
        }
    }
}

/// One row of `plugin_events`. Kinds and statuses are text, because rows written by earlier releases
/// may hold values this one does not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginEventRow {
    /// The receipt id.
    pub id: String,
    /// The plugin.
    pub plugin_id: String,
    /// Its version at the time.
    pub plugin_version: Option<String>,
    /// `install`, `hook`, `integration`, …
    pub kind: String,
    /// `ok`, `error`, `timeout`, …
    pub status: String,
    /// The work item, when in a run.
    pub work_item_id: Option<String>,
    /// The job, when in a run.
    pub job_id: Option<String>,
    /// The hook event, for hook receipts.
    pub hook_name: Option<String>,
    /// How long it took.
    pub duration_ms: Option<i64>,
    /// The detail JSON.
    pub detail_json: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// `in_process`.
    pub execution_mode: String,
}

impl PluginEventRow {
    /// The kind, typed; `None` for a kind no release wrote.
    pub fn receipt_kind(&self) -> Option<crate::receipts::ReceiptKind> {
        crate::receipts::ReceiptKind::parse(&self.kind)
    }

    /// The status, typed; `None` for a status no release wrote.
    pub fn receipt_status(&self) -> Option<crate::receipts::ReceiptStatus> {
        crate::receipts::ReceiptStatus::parse(&self.status)
    }

    /// The detail, parsed. `None` when there is none or it is not JSON.
    pub fn detail(&self) -> Option<Value> {
        self.detail_json
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
}

/// The largest page [`Store::list_plugin_events`](super::ReceiptStore::list_plugin_events) returns.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Which page to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// At most this many rows; clamped to `1..=MAX_PAGE_LIMIT`.
    pub limit: u32,
    /// Where the previous page ended ([`Page::next_cursor`]); `None` for the first page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> PageRequest {
        PageRequest {
            limit,
            cursor: None,
        }
    }

    /// The page after `cursor`.
    pub fn after(limit: u32, cursor: impl Into<String>) -> PageRequest {
        PageRequest {
            limit,
            cursor: Some(cursor.into()),
        }
    }

    pub(crate) fn clamped_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_PAGE_LIMIT))
    }
}

/// One page of rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass this to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The position after a row in (`created_at` DESC, `id` DESC) order. Opaque to callers: it is
/// base64url text so that nobody builds one by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventCursor {
    pub created_at: i64,
    pub id: String,
}

impl EventCursor {
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id))
    }

    pub(crate) fn decode(text: &str) -> Result<EventCursor, StoreError> {
        let bad = || StoreError::BadCursor(text.to_owned());
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (created_at, id) = raw.split_once(':').ok_or_else(bad)?;
        Ok(EventCursor {
            created_at: created_at.parse().map_err(|_| bad())?,
            id: id.to_owned(),
        })
    }
}

/// Which receipts [`Store::list_events`](super::ReceiptStore::list_events) returns: every field set narrows
/// the list; none set means every receipt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only this plugin's receipts.
    pub plugin_id: Option<String>,
    /// Only this kind (`hook`, `webhook_ingress`, …).
    pub kind: Option<String>,
    /// Only this status (`ok`, `error`, …).
    pub status: Option<String>,
    /// Only receipts whose detail names this integration (`"integration_id"`): its webhook
    /// deliveries and hand-overs.
    pub integration_id: Option<String>,
    /// Only receipts of this work item (its ingress, hooks and integration calls).
    pub work_item_id: Option<String>,
}

// --- runs, as the operator sees them ------------------------------------------------------------------

/// Which work items [`Store::list_runs`](super::WorkStore::list_runs) returns: every field set narrows
/// the list; none set means every work item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Only work items that came through this integration.
    pub integration_id: Option<String>,
    /// Only work items with a receipt of this plugin: the plugin of the integration it came through
    /// (its `webhook_ingress` receipt) and every plugin whose hooks or integration calls ran on it.
    pub plugin_id: Option<String>,
    /// Only work items in this state, lower case: `queued` (in the run queue, not leased),
    /// `running` (leased, or a job still `RUNNING`), or the status of any of its jobs
    /// (`completed`, `failed`, `blocked`, `abandoned`).
    pub status: Option<String>,
    /// Only work items created at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only work items created before this time (Unix milliseconds).
    pub until: Option<i64>,
}

/// A work item's run while it is in the run queue (a row of `runs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRunRow {
    /// Its place in the queue.
    pub seq: i64,
    /// The work item.
    pub work_item_id: String,
    /// Claims so far.
    pub attempts: i64,
    /// The server holding it, while one does.
    pub lease_owner: Option<String>,
    /// Until when that server holds it (Unix milliseconds).
    pub lease_expires_at: Option<i64>,
    /// Not claimed before this time (Unix milliseconds): a retry waits.
    pub available_at: i64,
    /// Why the last attempt did not finish it.
    pub last_error: Option<String>,
}

/// A work item with what its run did: the integration type it came through, its place in the run
/// queue (while it has one) and its jobs, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRow {
    /// The work item.
    pub work_item: WorkItemRow,
    /// The type of its integration (`None` when the integration was deleted).
    pub integration_type: Option<String>,
    /// Its run while it is queued or running; `None` once its last job finished.
    pub queued: Option<QueuedRunRow>,
    /// Its jobs, oldest first.
    pub jobs: Vec<JobRow>,
}

// --- admin -----------------------------------------------------------------------------------------

/// One row of `admin_sessions`: a signed-in admin UI session. Timestamps are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionRow {
    /// The session id (UUIDv7), never the token.
    pub id: String,
    /// SHA-256 (lower-case hex) of the session token held in the operator's cookie.
    pub token_hash: String,
    /// When the operator signed in.
    pub created_at: i64,
    /// When the session ends however active it is.
    pub expires_at: i64,
    /// When the session was last used (updated at most once a minute).
    pub last_seen_at: Option<i64>,
    /// Which admin token the session was opened with: a keyed fingerprint of that token (never the
    /// token or its plain hash). A session whose token is no longer the admin token has ended.
    /// Empty for sessions opened before fingerprints existed (they have ended too).
    pub token_fingerprint: String,
}
