//! Webhook ingress: from an HTTP request on an integration's webhook URL to a work item handed to the
//! runner.
//!
//! The pipeline, for `POST /api/webhooks/plugins/{type}/{integration_id}`:
//! the database takes writes (else 503 at once, with `Retry-After`) → find the integration row (404)
//! → its type matches the URL (400) → it is enabled (403) → a plugin provides the type (503) →
//! decrypt its config → `parse_webhook` (401 on a bad signature) → ignored deliveries answer 200 →
//! `work_item.pre_create` (may block, or change session key, title, payload) → **accepted**: the work
//! item, its idempotency keys, its queued run and its ingress receipt are stored in ONE transaction
//! (a duplicate delivery answers 200 and creates nothing, even under concurrency) → `accepted` is
//! answered only after that commit → `work_item.post_create` → the run queue is woken.
//!
//! Concurrent deliveries share a transaction (group commit). A batch the database refuses because
//! of one item (a value a column cannot hold, a constraint) is split until that item fails alone;
//! a batch refused because the database is failing answers 503 for all of it.
//!
//! Every outcome is a `webhook_ingress` receipt whose detail holds the reason code. The HTTP layer is
//! not here (this crate has no HTTP framework): [`IngressOutcome`] carries the status to answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::hooks::{WorkItemPostCreate, WorkItemPreCreate};
use nitejar_sdk::{IntegrationError, IntegrationInstance, WebhookRequest};
use serde::Serialize;
use serde_json::{json, Value};

use nitejar_runtime::hooks::DispatchContext;
use nitejar_runtime::runtime::{IntegrationCallError, Runtime};
use nitejar_store::changes::{ChangeFeed, RevCache};
use nitejar_store::receipts::{Receipt, ReceiptKind, ReceiptStatus};
use nitejar_store::store::Topic;
use nitejar_store::store::{
    new_id, AcceptedItem, IntegrationRow, NewRun, NewWorkItem, Store, StoredReceipt, WorkItemRow,
};
use tokio::sync::{mpsc, oneshot, Notify};

/// Why a delivery was answered as it was: a stable code (its spelling is the API's `code` and
/// the receipt's `reason`), which decides the HTTP status and the receipt's status in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngressCode {
    /// Stored: a work item, its keys, its queued run.
    Accepted,
    /// Seen before (same idempotency key); nothing new stored.
    Duplicate,
    /// The plugin read it and found nothing to answer.
    Ignored,
    /// `work_item.pre_create` blocked it.
    BlockedByHook,
    /// The plugin refused its signature.
    BadSignature,
    /// The plugin (or the server) could not read it.
    BadRequest,
    /// No integration has this id.
    IntegrationNotFound,
    /// The integration is of another type than the URL says.
    TypeMismatch,
    /// The integration is disabled.
    IntegrationDisabled,
    /// The body is over the limit.
    BodyTooLarge,
    /// No active plugin provides the type.
    TypeUnavailable,
    /// The integration's plugin is not the one providing its type now.
    IntegrationNotServed,
    /// The integration's config cannot be decrypted.
    ConfigUnreadable,
    /// The plugin took too long to read it.
    ParseTimeout,
    /// The plugin failed reading it.
    ParseFailed,
    /// The database refused to store it.
    StoreError,
    /// The database is not taking writes.
    StoreUnavailable,
}

impl IngressCode {
    /// Its spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            IngressCode::Accepted => "accepted",
            IngressCode::Duplicate => "duplicate",
            IngressCode::Ignored => "ignored",
            IngressCode::BlockedByHook => "blocked_by_hook",
            IngressCode::BadSignature => "bad_signature",
            IngressCode::BadRequest => "bad_request",
            IngressCode::IntegrationNotFound => "integration_not_found",
            IngressCode::TypeMismatch => "type_mismatch",
            IngressCode::IntegrationDisabled => "integration_disabled",
            IngressCode::BodyTooLarge => "body_too_large",
            IngressCode::TypeUnavailable => "type_unavailable",
            IngressCode::IntegrationNotServed => "integration_not_served",
            IngressCode::ConfigUnreadable => "config_unreadable",
            IngressCode::ParseTimeout => "parse_timeout",
            IngressCode::ParseFailed => "parse_failed",
            IngressCode::StoreError => "store_error",
            IngressCode::StoreUnavailable => "store_unavailable",
        }
    }

    /// The HTTP status it is answered with.
    pub const fn http_status(self) -> u16 {
        match self {
            IngressCode::Accepted
            | IngressCode::Duplicate
            | IngressCode::Ignored
            | IngressCode::BlockedByHook => 200,
            IngressCode::BadRequest | IngressCode::TypeMismatch => 400,
            IngressCode::BadSignature => 401,
            IngressCode::IntegrationDisabled => 403,
            IngressCode::IntegrationNotFound => 404,
            IngressCode::BodyTooLarge => 413,
            IngressCode::ConfigUnreadable | IngressCode::ParseFailed | IngressCode::StoreError => {
                500
            }
            IngressCode::TypeUnavailable
            | IngressCode::IntegrationNotServed
            | IngressCode::StoreUnavailable => 503,
            IngressCode::ParseTimeout => 504,
        }
    }

    /// The status of its `webhook_ingress` receipt: refusals of the delivery itself are
    /// `blocked`, failures of the server or the plugin `error`.
    pub const fn receipt_status(self) -> ReceiptStatus {
        match self {
            IngressCode::Accepted | IngressCode::Duplicate | IngressCode::Ignored => {
                ReceiptStatus::Ok
            }
            IngressCode::BlockedByHook
            | IngressCode::BadSignature
            | IngressCode::BadRequest
            | IngressCode::IntegrationNotFound
            | IngressCode::TypeMismatch
            | IngressCode::IntegrationDisabled
            | IngressCode::BodyTooLarge => ReceiptStatus::Blocked,
            IngressCode::ParseTimeout => ReceiptStatus::Timeout,
            IngressCode::TypeUnavailable
            | IngressCode::IntegrationNotServed
            | IngressCode::ConfigUnreadable
            | IngressCode::ParseFailed
            | IngressCode::StoreError
            | IngressCode::StoreUnavailable => ReceiptStatus::Error,
        }
    }
}

/// What the webhook route answers, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngressOutcome {
    /// The HTTP status to answer (its code's).
    pub status: u16,
    /// Why.
    pub code: IngressCode,
    /// A sentence for the operator (and the provider's delivery log).
    pub message: String,
    /// The work item created, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_item_id: Option<String>,
    /// Seconds after which to try again (a `Retry-After`), for refusals that will pass later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl IngressOutcome {
    /// An outcome with its code and a sentence.
    pub fn new(code: IngressCode, message: impl Into<String>) -> Self {
        IngressOutcome {
            status: code.http_status(),
            code,
            message: message.into(),
            work_item_id: None,
            retry_after: None,
        }
    }

    fn store_unavailable(message: impl Into<String>) -> Self {
        IngressOutcome {
            retry_after: Some(RETRY_AFTER_SECS),
            ..IngressOutcome::new(IngressCode::StoreUnavailable, message)
        }
    }
}

/// How long a provider is asked to wait while the database is failing.
const RETRY_AFTER_SECS: u64 = 5;

/// Why the group commit did not store an item.
#[derive(Clone, Debug)]
struct Rejected {
    /// The database failed (not this item).
    fault: bool,
    message: String,
}

/// What the group commit answers for one item.
type Stored = Result<Option<WorkItemRow>, Rejected>;

/// A work item waiting for the group commit, with where to send the answer.
type PendingItem = (AcceptedItem, oneshot::Sender<Stored>);

/// Runs the ingress pipeline.
pub struct Ingress {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    /// Woken after a run is queued.
    queued: Arc<Notify>,
    writer: mpsc::Sender<PendingItem>,
    /// Integration rows as read, while the integrations' change counter stays (see
    /// [`Ingress::following`]).
    rows: RevCache<IntegrationRow>,
    parse_timeout: Duration,
    /// The server loads built-ins only: a type nobody provides is explained by that.
    safe_mode: bool,
}

/// Integration rows kept at most.
const ROWS_MAX: usize = 10_000;

/// Work items written per transaction at most.
const GROUP_COMMIT_MAX: usize = 256;

impl Ingress {
    /// An ingress that queues a run for every accepted work item and notifies `queued` (the run
    /// queue's waker). Must be called inside a Tokio runtime: it starts the task that writes work
    /// items.
    pub fn new(runtime: Arc<Runtime>, store: Arc<dyn Store>, queued: Arc<Notify>) -> Self {
        let (writer, rx) = mpsc::channel(GROUP_COMMIT_MAX * 4);
        tokio::spawn(group_commit(store.clone(), rx));
        Ingress {
            runtime,
            store,
            queued,
            writer,
            rows: RevCache::new(None, Topic::Integrations, ROWS_MAX),
            parse_timeout: Duration::from_secs(10),
            safe_mode: false,
        }
    }

    /// Says so in the answer to a delivery for a type no active plugin provides, when the server
    /// runs in safe mode (built-ins only): "enable its plugin" would send the operator the wrong
    /// way for a plugin that is enabled.
    pub fn in_safe_mode(mut self, on: bool) -> Self {
        self.safe_mode = on;
        self
    }

    /// Reads each integration row once while `feed` says no integration changed, instead of once
    /// per delivery. A writer in this process calls [`ChangeFeed::sync`] after changing a row.
    pub fn following(mut self, feed: Arc<ChangeFeed>) -> Self {
        self.rows = RevCache::new(Some(feed), Topic::Integrations, ROWS_MAX);
        self
    }

    async fn integration_row(&self, id: &str) -> Result<Option<IntegrationRow>, String> {
        if let Some(row) = self.rows.get(id) {
            return Ok(Some(row));
        }
        let tag = self.rows.tag();
        let row = self
            .store
            .get_integration(id)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(row) = &row {
            self.rows.put(id, tag, row.clone());
        }
        Ok(row)
    }

    /// Stores an accepted item through the group commit: concurrent deliveries share one
    /// transaction, which is what lets one SQLite file accept thousands of webhooks a second.
    async fn accept(&self, item: AcceptedItem) -> Stored {
        let stopped = || Rejected {
            fault: true,
            message: "the work item writer stopped".into(),
        };
        let (tx, rx) = oneshot::channel();
        self.writer.send((item, tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Handles one webhook delivery.
    pub async fn handle(
        &self,
        integration_type: &str,
        integration_id: &str,
        request: WebhookRequest,
    ) -> IngressOutcome {
        let started = Instant::now();
        let (outcome, plugin, stored) = self
            .pipeline(integration_type, integration_id, request, started)
            .await;
        if let Some(mut receipt) = stored {
            // Stored with the work item; the sinks that only watch (metrics) still see it.
            receipt.duration_us = started.elapsed().as_micros() as u64;
            self.runtime.sink().stored(vec![receipt]).await;
            return outcome;
        }
        self.record(integration_type, integration_id, &outcome, plugin, started)
            .await;
        outcome
    }

    /// Records the receipt of a delivery refused before the pipeline ran (by the HTTP layer: a body
    /// over the limit).
    pub async fn refused(
        &self,
        integration_type: &str,
        integration_id: &str,
        outcome: &IngressOutcome,
    ) {
        let plugin = self
            .runtime
            .registry()
            .integration(integration_type)
            .map(|e| (e.plugin.id.clone(), e.plugin.version.clone()));
        self.record(
            integration_type,
            integration_id,
            outcome,
            plugin,
            Instant::now(),
        )
        .await;
    }

    fn receipt(
        integration_type: &str,
        integration_id: &str,
        outcome: &IngressOutcome,
        plugin: Option<(Arc<str>, Arc<str>)>,
        started: Instant,
    ) -> Receipt {
        let status = outcome.code.receipt_status();
        let (plugin_id, version) = match plugin {
            Some((id, v)) => (id, Some(v)),
            None => (Arc::from(format!("integration:{integration_type}")), None),
        };
        let mut receipt = Receipt::new(plugin_id, version, ReceiptKind::WebhookIngress, status)
            .with_detail(json!({
                "reason": outcome.code,
                "message": outcome.message,
                "http_status": outcome.status,
                "integration_id": integration_id,
                "integration_type": integration_type,
            }));
        receipt.work_item_id = outcome.work_item_id.as_deref().map(Arc::from);
        receipt.duration_us = started.elapsed().as_micros() as u64;
        receipt
    }

    async fn record(
        &self,
        integration_type: &str,
        integration_id: &str,
        outcome: &IngressOutcome,
        plugin: Option<(Arc<str>, Arc<str>)>,
        started: Instant,
    ) {
        let receipt = Self::receipt(integration_type, integration_id, outcome, plugin, started);
        self.runtime.sink().submit(vec![receipt]).await;
    }

    /// The pipeline; the third value is the ingress receipt when it was stored with the work item.
    async fn pipeline(
        &self,
        kind: &str,
        integration_id: &str,
        request: WebhookRequest,
        started: Instant,
    ) -> (
        IngressOutcome,
        Option<(Arc<str>, Arc<str>)>,
        Option<Receipt>,
    ) {
        let registry = self.runtime.registry();
        let entry = registry.integration(kind);
        let plugin = entry.map(|e| (e.plugin.id.clone(), e.plugin.version.clone()));
        let sensitive = entry
            .map(|e| e.descriptor.sensitive_fields.clone())
            .unwrap_or_default();
        drop(registry);
        match self
            .steps(kind, integration_id, request, &plugin, &sensitive, started)
            .await
        {
            Ok((outcome, receipt)) => (outcome, plugin, Some(receipt)),
            Err(outcome) => (outcome, plugin, None),
        }
    }

    /// Every step up to the accepted work item; `Err` is any other outcome.
    async fn steps(
        &self,
        kind: &str,
        integration_id: &str,
        request: WebhookRequest,
        plugin: &Option<(Arc<str>, Arc<str>)>,
        sensitive: &[String],
        started: Instant,
    ) -> Result<(IngressOutcome, Receipt), IngressOutcome> {
        // Nothing can be accepted while the database refuses writes: say so at once, rather than
        // after parsing and a write that waits for a lock or a disk.
        if !self.store.health().try_write() {
            let why = self
                .store
                .health()
                .failing()
                .map(|f| f.error)
                .unwrap_or_default();
            return Err(IngressOutcome::store_unavailable(format!(
                "the database is not taking writes ({why}); try again later"
            )));
        }
        let row = match self.integration_row(integration_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Err(IngressOutcome::new(
                    IngressCode::IntegrationNotFound,
                    format!("no integration `{integration_id}`"),
                ))
            }
            Err(e) => return Err(IngressOutcome::store_unavailable(e)),
        };
        if row.integration_type != kind {
            let msg = format!(
                "integration `{integration_id}` is of type `{}`, not `{kind}`; use its own webhook URL",
                row.integration_type
            );
            return Err(IngressOutcome::new(IngressCode::TypeMismatch, msg));
        }
        if !row.enabled {
            let msg = format!("integration `{integration_id}` is disabled");
            return Err(IngressOutcome::new(IngressCode::IntegrationDisabled, msg));
        }
        if plugin.is_none() {
            let msg = if self.safe_mode {
                format!(
                    "no active plugin provides integration type `{kind}`: the server runs in safe \
                     mode (NITEJAR_SAFE_MODE), which loads built-ins only; restart it without \
                     safe mode"
                )
            } else {
                format!("no active plugin provides integration type `{kind}`; enable its plugin")
            };
            return Err(IngressOutcome::new(IngressCode::TypeUnavailable, msg));
        }
        // The row's own plugin, or nobody: its config and secrets are never decrypted for another
        // plugin that happens to declare the same type.
        let owner = nitejar_runtime::builtin::integration_owner(&row);
        let active = plugin.as_ref().map(|(id, _)| id.to_string());
        if owner != active {
            let refused = IntegrationCallError::NotServed {
                kind: kind.to_string(),
                owner,
                active,
            };
            return Err(IngressOutcome::new(
                IngressCode::IntegrationNotServed,
                refused.to_string(),
            ));
        }
        let config = match row.decrypted_config(self.store.cipher(), sensitive) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("the integration's config cannot be read: {e}");
                return Err(IngressOutcome::new(IngressCode::ConfigUnreadable, msg));
            }
        };
        let instance = IntegrationInstance::new(row.id.clone(), row.integration_type.clone())
            .with_name(row.name.clone())
            .with_config(Value::Object(config));
        let ctx = DispatchContext::default();
        let parsed = self
            .runtime
            .parse_webhook(
                owner.as_deref(),
                kind,
                &ctx,
                self.parse_timeout,
                request,
                instance,
            )
            .await;
        let parsed = match parsed {
            Ok(p) => p,
            Err(IntegrationCallError::Failed(IntegrationError::Unauthorized(m))) => {
                return Err(IngressOutcome::new(IngressCode::BadSignature, m))
            }
            Err(IntegrationCallError::Failed(IntegrationError::BadRequest(m))) => {
                return Err(IngressOutcome::new(IngressCode::BadRequest, m))
            }
            Err(IntegrationCallError::Timeout(ms)) => {
                let msg = format!("the integration did not parse the webhook within {ms} ms");
                return Err(IngressOutcome::new(IngressCode::ParseTimeout, msg));
            }
            Err(e) => return Err(IngressOutcome::new(IngressCode::ParseFailed, e.to_string())),
        };
        let item = match (parsed.should_process, parsed.work_item) {
            (true, Some(item)) => item,
            _ => {
                let reason = parsed
                    .ignored_reason
                    .unwrap_or_else(|| "the integration did not ask for a work item".into());
                return Err(IngressOutcome::new(IngressCode::Ignored, reason));
            }
        };

        // Payloads are `#[non_exhaustive]` (the SDK may add fields): filled in from `Default`.
        let mut event = WorkItemPreCreate::default();
        event.integration_id = row.id.clone();
        event.integration_type = kind.to_string();
        event.session_key = item.session_key;
        event.source = item.source;
        event.source_ref = item.source_ref;
        event.title = item.title;
        event.payload = item.payload;
        let pre = self.runtime.dispatch(&ctx, event).await;
        if let Some(b) = pre.blocked {
            let msg = format!("blocked by `{}`: {}", b.plugin_id, b.reason);
            return Err(IngressOutcome::new(IngressCode::BlockedByHook, msg));
        }
        let item = pre.payload;
        // The id is chosen here so that the receipt stored with the item can name it.
        let id = new_id();
        let mut accepted = IngressOutcome::new(IngressCode::Accepted, "work item created");
        accepted.work_item_id = Some(id.clone());
        let receipt = Self::receipt(kind, integration_id, &accepted, plugin.clone(), started);
        let new = AcceptedItem {
            keys: parsed.idempotency_keys.clone(),
            item: NewWorkItem {
                id: Some(id),
                integration_id: Some(row.id.clone()),
                session_key: item.session_key.clone(),
                source: item.source.clone(),
                source_ref: item.source_ref.clone(),
                status: None,
                title: item.title.clone(),
                payload: Some(item.payload.to_string()),
            },
            run: Some(NewRun {
                response_context: parsed.response_context.as_ref().map(Value::to_string),
            }),
            receipt: Some(StoredReceipt::new(receipt.clone())),
        };
        let created = match self.accept(new).await {
            Ok(Some(w)) => w,
            Ok(None) => {
                let msg = "this delivery was received before; nothing new was created";
                return Err(IngressOutcome::new(IngressCode::Duplicate, msg));
            }
            Err(Rejected {
                fault: true,
                message,
            }) => {
                return Err(IngressOutcome::store_unavailable(format!(
                    "the delivery could not be stored ({message}); try again later"
                )))
            }
            Err(Rejected {
                fault: false,
                message,
            }) => return Err(IngressOutcome::new(IngressCode::StoreError, message)),
        };
        self.queued.notify_one();
        let ctx = DispatchContext::for_work_item(created.id.as_str());
        let mut event = WorkItemPostCreate::default();
        event.work_item_id = created.id.clone();
        event.integration_id = row.id.clone();
        event.integration_type = kind.to_string();
        event.session_key = created.session_key.clone();
        event.source = created.source.clone();
        event.source_ref = created.source_ref.clone();
        event.title = created.title.clone();
        self.runtime.dispatch(&ctx, event).await;
        Ok((accepted, receipt))
    }
}

/// Writes queued work items, as many as are waiting (up to [`GROUP_COMMIT_MAX`]) per transaction.
async fn group_commit(store: Arc<dyn Store>, mut rx: mpsc::Receiver<PendingItem>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let results = store_batch(&*store, &items).await;
        for (result, reply) in results.into_iter().zip(replies) {
            let _ = reply.send(result);
        }
    }
}

/// Stores `items` in one transaction; when the database refuses the batch because of what it holds
/// (not because it is failing), each half is tried on its own, down to the one item at fault.
fn store_batch<'a>(
    store: &'a dyn Store,
    items: &'a [AcceptedItem],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Stored>> + Send + 'a>> {
    Box::pin(async move {
        match store.accept_work_items(items).await {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) if !e.is_fault() && items.len() > 1 => {
                let (left, right) = items.split_at(items.len() / 2);
                let mut out = store_batch(store, left).await;
                out.extend(store_batch(store, right).await);
                out
            }
            Err(e) => {
                if !e.is_fault() {
                    tracing::error!("a webhook delivery could not be stored: {e}");
                }
                let rejected = Rejected {
                    fault: e.is_fault(),
                    message: e.to_string(),
                };
                vec![Err(rejected); items.len()]
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_store::crypto::{Cipher, Key};

    #[test]
    fn a_code_is_spelled_once_and_decides_status_and_receipt_together() {
        use IngressCode as C;
        let all = [
            C::Accepted,
            C::Duplicate,
            C::Ignored,
            C::BlockedByHook,
            C::BadSignature,
            C::BadRequest,
            C::IntegrationNotFound,
            C::TypeMismatch,
            C::IntegrationDisabled,
            C::BodyTooLarge,
            C::TypeUnavailable,
            C::IntegrationNotServed,
            C::ConfigUnreadable,
            C::ParseTimeout,
            C::ParseFailed,
            C::StoreError,
            C::StoreUnavailable,
        ];
        let mut spelled = std::collections::HashSet::new();
        for code in all {
            // The API's `code` and the receipt's `reason` are this spelling.
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert!(spelled.insert(code.as_str()), "{code:?}");
            let outcome = IngressOutcome::new(code, "why");
            assert_eq!(outcome.status, code.http_status());
            // Only what was taken in is a 2xx answer with an ok receipt, or was refused by a hook.
            let ok = code.receipt_status() == ReceiptStatus::Ok;
            assert_eq!(ok, matches!(code, C::Accepted | C::Duplicate | C::Ignored));
            assert_eq!(
                outcome.status == 200,
                ok || code == C::BlockedByHook,
                "{code:?}"
            );
        }
    }

    fn item(id: &str, key: &str) -> AcceptedItem {
        AcceptedItem {
            keys: vec![key.to_owned()],
            item: NewWorkItem {
                id: Some(id.to_owned()),
                integration_id: Some("int".into()),
                session_key: format!("session-{id}"),
                source: "test".into(),
                source_ref: String::new(),
                status: None,
                title: id.to_owned(),
                payload: None,
            },
            run: Some(NewRun::default()),
            receipt: None,
        }
    }

    #[tokio::test]
    async fn a_batch_refused_for_one_item_fails_that_item_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = Key::parse(&"ab".repeat(32)).expect("key");
        let store = nitejar_store::store::open(
            &dir.path().join("t.db").display().to_string(),
            Cipher::new(&key),
        )
        .await
        .expect("store");
        // A work item with this id exists: inserting it again breaks a constraint (not a fault).
        let first = store_batch(&*store, &[item("taken", "k0")]).await;
        assert!(matches!(first.as_slice(), [Ok(Some(_))]));
        let batch = [
            item("a", "k1"),
            item("b", "k2"),
            item("taken", "k3"),
            item("c", "k4"),
            item("d", "k5"),
        ];
        let results = store_batch(&*store, &batch).await;
        let stored: Vec<bool> = results.iter().map(|r| matches!(r, Ok(Some(_)))).collect();
        assert_eq!(stored, [true, true, false, true, true]);
        match &results[2] {
            Err(rejected) => assert!(!rejected.fault, "{}", rejected.message),
            other => panic!("the offending item: {other:?}"),
        }
        assert_eq!(store.count_runs().await.expect("count"), 5);
    }
}
