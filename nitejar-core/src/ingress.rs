//! Webhook ingress: from an HTTP request on an integration's webhook URL to a work item handed to the
//! runner.
//!
//! The pipeline, for `POST /api/webhooks/plugins/{type}/{integration_id}`:
//! find the integration row (404) → its type matches the URL (400) → it is enabled (403) → a plugin
//! provides the type (503) → decrypt its config → `parse_webhook` (401 on a bad signature) → ignored
//! deliveries answer 200 → the idempotency keys and the work item are stored in one transaction (a
//! duplicate delivery answers 200 and creates nothing, even under concurrency) → `work_item.pre_create`
//! (may block, or change session key, title, payload) → … → `work_item.post_create` → the work item is
//! handed to the runner.
//!
//! Every outcome is a `webhook_ingress` receipt whose detail holds the reason code. The HTTP layer is
//! not here (this crate has no HTTP framework): [`IngressOutcome`] carries the status to answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::hooks::{WorkItemPostCreate, WorkItemPreCreate};
use nitejar_sdk::{IntegrationError, IntegrationInstance, WebhookRequest};
use serde::Serialize;
use serde_json::{json, Value};

use crate::hooks::DispatchContext;
use crate::receipts::{Receipt, ReceiptKind, ReceiptStatus};
use crate::runner::RunRequest;
use crate::runtime::{IntegrationCallError, Runtime};
use crate::store::{IntegrationRow, NewWorkItem, Store, WorkItemRow};
use crate::ttl::TtlMap;
use tokio::sync::{mpsc, oneshot};

/// What the webhook route answers, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngressOutcome {
    /// The HTTP status to answer.
    pub status: u16,
    /// A stable reason code (`accepted`, `duplicate`, `bad_signature`, …).
    pub code: &'static str,
    /// A sentence for the operator (and the provider's delivery log).
    pub message: String,
    /// The work item created, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_item_id: Option<String>,
}

impl IngressOutcome {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        IngressOutcome {
            status,
            code,
            message: message.into(),
            work_item_id: None,
        }
    }
}

/// Where accepted work items go.
pub trait WorkSink: Send + Sync + 'static {
    /// Takes a work item to run. Must not wait for the run.
    fn submit(&self, request: RunRequest);
}

/// A work item waiting for the group commit, with where to send the answer.
type PendingItem = (
    Vec<String>,
    NewWorkItem,
    oneshot::Sender<Result<Option<WorkItemRow>, String>>,
);

/// Runs the ingress pipeline.
pub struct Ingress {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    work: Arc<dyn WorkSink>,
    writer: mpsc::Sender<PendingItem>,
    /// Integration rows recently read: a burst of deliveries reads its row once a second.
    rows: TtlMap<IntegrationRow>,
    parse_timeout: Duration,
}

/// How long an integration row read from the store serves deliveries before it is read again. Changes
/// made elsewhere (the CLI, another server) are picked up within this time.
const ROW_TTL: Duration = Duration::from_secs(1);

/// Work items written per transaction at most.
const GROUP_COMMIT_MAX: usize = 256;

impl Ingress {
    /// An ingress that hands accepted work items to `work`. Must be called inside a Tokio runtime: it
    /// starts the task that writes work items.
    pub fn new(runtime: Arc<Runtime>, store: Arc<dyn Store>, work: Arc<dyn WorkSink>) -> Self {
        let (writer, rx) = mpsc::channel(GROUP_COMMIT_MAX * 4);
        tokio::spawn(group_commit(store.clone(), rx));
        Ingress {
            runtime,
            store,
            work,
            writer,
            rows: TtlMap::new(ROW_TTL, 10_000),
            parse_timeout: Duration::from_secs(10),
        }
    }

    /// Forgets a cached integration row (call after changing it in this process).
    pub fn forget_integration(&self, id: &str) {
        self.rows.forget(id);
    }

    async fn integration_row(&self, id: &str) -> Result<Option<IntegrationRow>, String> {
        if let Some(row) = self.rows.get(id) {
            return Ok(Some(row));
        }
        let read_at = Instant::now();
        let row = self
            .store
            .get_integration(id)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(row) = &row {
            self.rows.put(id, read_at, row.clone());
        }
        Ok(row)
    }

    /// Creates a work item with its keys through the group commit: concurrent deliveries share one
    /// transaction, which is what lets one SQLite file accept thousands of webhooks a second.
    async fn create_once(
        &self,
        keys: Vec<String>,
        item: NewWorkItem,
    ) -> Result<Option<WorkItemRow>, String> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((keys, item, tx))
            .await
            .map_err(|_| "the work item writer stopped".to_string())?;
        rx.await
            .map_err(|_| "the work item writer stopped".to_string())?
    }

    /// Handles one webhook delivery.
    pub async fn handle(
        &self,
        integration_type: &str,
        integration_id: &str,
        request: WebhookRequest,
    ) -> IngressOutcome {
        let started = Instant::now();
        let (outcome, plugin) = self
            .pipeline(integration_type, integration_id, request)
            .await;
        let status = match outcome.code {
            "accepted" | "duplicate" | "ignored" => ReceiptStatus::Ok,
            "blocked_by_hook" => ReceiptStatus::Blocked,
            "bad_signature"
            | "bad_request"
            | "integration_not_found"
            | "type_mismatch"
            | "integration_disabled" => ReceiptStatus::Blocked,
            "parse_timeout" => ReceiptStatus::Timeout,
            _ => ReceiptStatus::Error,
        };
        let (plugin_id, version) = match &plugin {
            Some((id, v)) => (id.clone(), Some(v.clone())),
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
        self.runtime.sink().submit(vec![receipt]).await;
        outcome
    }

    async fn pipeline(
        &self,
        kind: &str,
        integration_id: &str,
        request: WebhookRequest,
    ) -> (IngressOutcome, Option<(Arc<str>, Arc<str>)>) {
        let registry = self.runtime.registry();
        let entry = registry.integration(kind);
        let plugin = entry.map(|e| (e.plugin.id.clone(), e.plugin.version.clone()));
        let sensitive = entry
            .map(|e| e.descriptor.sensitive_fields.clone())
            .unwrap_or_default();
        drop(registry);
        let row = match self.integration_row(integration_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return (
                    IngressOutcome::new(
                        404,
                        "integration_not_found",
                        format!("no integration `{integration_id}`"),
                    ),
                    plugin,
                )
            }
            Err(e) => {
                return (
                    IngressOutcome::new(500, "store_error", e.to_string()),
                    plugin,
                )
            }
        };
        if row.integration_type != kind {
            let msg = format!(
                "integration `{integration_id}` is of type `{}`, not `{kind}`; use its own webhook URL",
                row.integration_type
            );
            return (IngressOutcome::new(400, "type_mismatch", msg), plugin);
        }
        if !row.enabled {
            let msg = format!("integration `{integration_id}` is disabled");
            return (
                IngressOutcome::new(403, "integration_disabled", msg),
                plugin,
            );
        }
        if plugin.is_none() {
            let msg =
                format!("no active plugin provides integration type `{kind}`; enable its plugin");
            return (IngressOutcome::new(503, "type_unavailable", msg), plugin);
        }
        let config = match row.decrypted_config(self.store.cipher(), &sensitive) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("the integration's config cannot be read: {e}");
                return (IngressOutcome::new(500, "config_unreadable", msg), plugin);
            }
        };
        let instance = IntegrationInstance {
            id: row.id.clone(),
            kind: row.integration_type.clone(),
            name: row.name.clone(),
            config: Value::Object(config),
        };
        let ctx = DispatchContext::default();
        let parse_instance = instance.clone();
        let parsed = self
            .runtime
            .call_integration(
                kind,
                "parse_webhook",
                &ctx,
                self.parse_timeout,
                move |i, host| i.parse_webhook(&request, &parse_instance, host),
            )
            .await;
        let parsed = match parsed {
            Ok(p) => p,
            Err(IntegrationCallError::Failed(IntegrationError::Unauthorized(m))) => {
                return (IngressOutcome::new(401, "bad_signature", m), plugin)
            }
            Err(IntegrationCallError::Failed(IntegrationError::BadRequest(m))) => {
                return (IngressOutcome::new(400, "bad_request", m), plugin)
            }
            Err(IntegrationCallError::Timeout(ms)) => {
                let msg = format!("the integration did not parse the webhook within {ms} ms");
                return (IngressOutcome::new(504, "parse_timeout", msg), plugin);
            }
            Err(e) => {
                return (
                    IngressOutcome::new(500, "parse_failed", e.to_string()),
                    plugin,
                )
            }
        };
        let item = match (parsed.should_process, parsed.work_item) {
            (true, Some(item)) => item,
            _ => {
                let reason = parsed
                    .ignored_reason
                    .unwrap_or_else(|| "the integration did not ask for a work item".into());
                return (IngressOutcome::new(200, "ignored", reason), plugin);
            }
        };

        let pre = self
            .runtime
            .dispatch(
                &ctx,
                WorkItemPreCreate {
                    integration_id: row.id.clone(),
                    integration_type: kind.to_string(),
                    session_key: item.session_key,
                    source: item.source,
                    source_ref: item.source_ref,
                    title: item.title,
                    payload: item.payload,
                },
            )
            .await;
        if let Some(b) = pre.blocked {
            let msg = format!("blocked by `{}`: {}", b.plugin_id, b.reason);
            return (IngressOutcome::new(200, "blocked_by_hook", msg), plugin);
        }
        let item = pre.payload;
        let new = NewWorkItem {
            id: None,
            integration_id: Some(row.id.clone()),
            session_key: item.session_key.clone(),
            source: item.source.clone(),
            source_ref: item.source_ref.clone(),
            status: None,
            title: item.title.clone(),
            payload: Some(item.payload.to_string()),
        };
        let created = match self.create_once(parsed.idempotency_keys.clone(), new).await {
            Ok(Some(w)) => w,
            Ok(None) => {
                let msg = "this delivery was received before; nothing new was created";
                return (IngressOutcome::new(200, "duplicate", msg), plugin);
            }
            Err(e) => {
                return (
                    IngressOutcome::new(500, "store_error", e.to_string()),
                    plugin,
                )
            }
        };
        let ctx = DispatchContext::for_work_item(created.id.as_str());
        self.runtime
            .dispatch(
                &ctx,
                WorkItemPostCreate {
                    work_item_id: created.id.clone(),
                    integration_id: row.id.clone(),
                    integration_type: kind.to_string(),
                    session_key: created.session_key.clone(),
                    source: created.source.clone(),
                    source_ref: created.source_ref.clone(),
                    title: created.title.clone(),
                },
            )
            .await;
        let id = created.id.clone();
        self.work.submit(RunRequest {
            work_item: created,
            integration: instance,
            response_context: parsed.response_context,
        });
        let mut outcome = IngressOutcome::new(200, "accepted", "work item created");
        outcome.work_item_id = Some(id);
        (outcome, plugin)
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
        let (items, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|(keys, item, reply)| ((keys, item), reply))
            .unzip();
        match store.create_work_items_once(items).await {
            Ok(rows) => {
                for (row, reply) in rows.into_iter().zip(replies) {
                    let _ = reply.send(Ok(row));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
