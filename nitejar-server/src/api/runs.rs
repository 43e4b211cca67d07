//! `/api/admin/runs`: every work item with what its run did — its place in the run queue, its jobs,
//! its delivery or the reason it failed — newest first, filtered and keyset-paged; and one run with
//! its jobs' spans and its receipts. The UI pages (`ui::runs`) read the same views.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use nitejar_core::receipts::{ReceiptKind, ReceiptStatus};
use nitejar_core::runner::JobStatus;
use nitejar_core::store::{
    EventFilter, JobRow, PageRequest, PluginEventRow, QueuedRunRow, RunFilter, RunRow, SpanRow,
    Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::receipts::ReceiptView;
use crate::auth::Admin;
use crate::state::AppState;

/// Run states, for the filter: the queue's two, then the job statuses.
pub const STATUSES: &[&str] = &[
    "queued",
    "running",
    "completed",
    "failed",
    "blocked",
    "abandoned",
];

/// Characters of the message text a list shows.
const PREVIEW_CHARS: usize = 160;

/// The query of a runs page (API and UI).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunQuery {
    pub integration: Option<String>,
    pub plugin: Option<String>,
    pub status: Option<String>,
    /// Unix milliseconds, or a UTC date and time (`2026-05-01T12:00`, what a browser's
    /// `datetime-local` field sends).
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn some(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A time of the query: Unix milliseconds, or a UTC date and time (seconds optional).
pub fn parse_time(field: &'static str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let with_seconds = if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&with_seconds)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_time",
                format!(
                    "`{field}` must be Unix milliseconds (1767225600000) or a UTC date and time \
                     (2026-01-01T00:00); got {text:?}"
                ),
            )
        })
}

impl RunQuery {
    /// The store filter: empty values mean "any"; a time that does not parse is a 400.
    pub fn filter(&self) -> Result<RunFilter, ApiError> {
        let time = |field, v: &Option<String>| some(v).map(|t| parse_time(field, &t)).transpose();
        Ok(RunFilter {
            integration_id: some(&self.integration),
            plugin_id: some(&self.plugin),
            status: some(&self.status).map(|s| s.to_ascii_lowercase()),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }

    /// The page to read (50 rows unless asked).
    pub fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit.unwrap_or(50),
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        }
    }
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: String,
    pub agent_id: String,
    pub status: String,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

impl From<&JobRow> for JobView {
    fn from(j: &JobRow) -> Self {
        JobView {
            id: j.id.clone(),
            agent_id: j.agent_id.clone(),
            status: j.status.clone(),
            error: j.error_text.clone(),
            started_at: j.started_at,
            finished_at: j.completed_at,
            duration_ms: j.started_at.zip(j.completed_at).map(|(s, e)| e - s),
        }
    }
}

/// The run queue's hold on a work item.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// `queued` (waiting; `availableAt` may be later, after a failed attempt) or `running` (leased).
    pub state: &'static str,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub available_at: i64,
    pub last_error: Option<String>,
}

impl From<&QueuedRunRow> for QueueView {
    fn from(q: &QueuedRunRow) -> Self {
        QueueView {
            state: if q.lease_owner.is_some() {
                "running"
            } else {
                "queued"
            },
            attempts: q.attempts,
            lease_owner: q.lease_owner.clone(),
            lease_expires_at: q.lease_expires_at,
            available_at: q.available_at,
            last_error: q.last_error.clone(),
        }
    }
}

/// What became of the answer: the `post_response` calls of the run's integration.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// `delivered` or `failed` (the last attempt's outcome).
    pub status: &'static str,
    pub attempts: usize,
    /// When the last attempt ended.
    pub at: i64,
    /// The integration's reason, when it failed.
    pub error: Option<String>,
    /// The job that delivered (or tried to).
    pub job_id: Option<String>,
}

/// Why a run failed, when it did: the first failed job's error, else the queue's last error.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureView {
    pub job_id: Option<String>,
    pub reason: String,
}

/// One work item and its run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    pub integration_id: Option<String>,
    pub integration_type: Option<String>,
    pub session_key: String,
    pub source: String,
    pub title: String,
    /// The message text, cut to 160 characters.
    pub preview: String,
    pub created_at: i64,
    /// `queued`, `running`, `completed`, `failed`, `blocked`, `abandoned`, or `not_run` (no job
    /// and not queued: an item stored without a run).
    pub status: RunState,
    /// While the run is in the queue.
    pub queue: Option<QueueView>,
    pub jobs: Vec<JobView>,
    pub delivery: Option<DeliveryView>,
    pub failure: Option<FailureView>,
}

/// A run's state as the admin shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Completed,
    Failed,
    Blocked,
    Abandoned,
    /// No job and not queued: an item stored without a run.
    NotRun,
}

impl RunState {
    /// Its spelling in the API (and the admin's filter).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Blocked => "blocked",
            RunState::Abandoned => "abandoned",
            RunState::NotRun => "not_run",
        }
    }
}

/// The run's state: the queue's while it is queued, else the worst of its jobs' statuses.
fn run_status(run: &RunRow) -> RunState {
    if let Some(q) = &run.queued {
        return if q.lease_owner.is_some() {
            RunState::Running
        } else {
            RunState::Queued
        };
    }
    let has = |s: JobStatus| {
        run.jobs
            .iter()
            .any(|j| JobStatus::parse(&j.status) == Some(s))
    };
    // A retried run keeps the ABANDONED job of the server that died; a later job answered it.
    if has(JobStatus::Failed) {
        RunState::Failed
    } else if has(JobStatus::Blocked) {
        RunState::Blocked
    } else if has(JobStatus::Running) {
        RunState::Running
    } else if has(JobStatus::Completed) {
        RunState::Completed
    } else if has(JobStatus::Abandoned) {
        RunState::Abandoned
    } else {
        RunState::NotRun
    }
}

/// The `post_response` receipts of a work item, oldest first.
fn deliveries(receipts: &[PluginEventRow]) -> Vec<&PluginEventRow> {
    let mut out: Vec<&PluginEventRow> = receipts
        .iter()
        .filter(|r| {
            r.receipt_kind() == Some(ReceiptKind::Integration)
                && r.detail().is_some_and(|d| {
                    d.get("operation").and_then(Value::as_str) == Some("post_response")
                })
        })
        .collect();
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    out
}

impl RunView {
    /// The view of `run`, given its receipts (any order).
    pub fn new(run: &RunRow, receipts: &[PluginEventRow]) -> RunView {
        let w = &run.work_item;
        let text = nitejar_core::runner::message_text(w);
        let preview: String = text.chars().take(PREVIEW_CHARS).collect();
        let status = run_status(run);
        let sent = deliveries(receipts);
        let delivery = sent.last().map(|last| {
            let delivered = last.receipt_status() == Some(ReceiptStatus::Ok);
            DeliveryView {
                status: if delivered { "delivered" } else { "failed" },
                attempts: sent.iter().filter(|r| r.job_id == last.job_id).count(),
                at: last.created_at,
                error: (!delivered).then(|| {
                    last.detail()
                        .and_then(|d| d.get("error").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| last.status.clone())
                }),
                job_id: last.job_id.clone(),
            }
        });
        let failure = run
            .jobs
            .iter()
            .find(|j| JobStatus::parse(&j.status) == Some(JobStatus::Failed))
            .map(|j| FailureView {
                job_id: Some(j.id.clone()),
                reason: j
                    .error_text
                    .clone()
                    .unwrap_or_else(|| "the job failed without a recorded reason".into()),
            })
            .or_else(|| {
                run.queued
                    .as_ref()
                    .and_then(|q| q.last_error.clone())
                    .map(|reason| FailureView {
                        job_id: None,
                        reason,
                    })
            });
        RunView {
            id: w.id.clone(),
            integration_id: w.integration_id.clone(),
            integration_type: run.integration_type.clone(),
            session_key: w.session_key.clone(),
            source: w.source.clone(),
            title: w.title.clone(),
            preview,
            created_at: w.created_at,
            status,
            queue: run.queued.as_ref().map(QueueView::from),
            jobs: run.jobs.iter().map(JobView::from).collect(),
            delivery,
            failure,
        }
    }
}

/// A span as the API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub start: i64,
    pub duration_ms: Option<i64>,
    pub attributes: Option<Value>,
}

impl From<&SpanRow> for SpanView {
    fn from(s: &SpanRow) -> Self {
        SpanView {
            id: s.id.clone(),
            name: s.name.clone(),
            kind: s.kind.clone(),
            status: s.status.clone(),
            start: s.start_time,
            duration_ms: s
                .duration_ms
                .or_else(|| s.end_time.map(|e| e - s.start_time)),
            attributes: s
                .attributes
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
        }
    }
}

/// The receipts of one work item, newest first (at most this many).
const RECEIPTS_PER_RUN: u32 = 500;

/// Every receipt of a work item (up to [`RECEIPTS_PER_RUN`]), newest first.
pub async fn receipts_of(
    store: &dyn Store,
    work_item_id: &str,
) -> Result<Vec<PluginEventRow>, StoreError> {
    let filter = EventFilter {
        work_item_id: Some(work_item_id.to_owned()),
        ..Default::default()
    };
    Ok(store
        .list_events(&filter, PageRequest::first(RECEIPTS_PER_RUN))
        .await?
        .items)
}

/// One page of runs with their views (the receipts of each item are read to find its delivery).
pub async fn page_of_runs(
    store: &dyn Store,
    filter: &RunFilter,
    page: PageRequest,
) -> Result<(Vec<RunView>, Option<String>), StoreError> {
    let runs = store.list_runs(filter, page).await?;
    let mut views = Vec::with_capacity(runs.items.len());
    for run in &runs.items {
        let receipts = receipts_of(store, &run.work_item.id).await?;
        views.push(RunView::new(run, &receipts));
    }
    Ok((views, runs.next_cursor))
}

/// A store error of a runs read, as the API answers it.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::BadCursor(_) => ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not one this server handed out; pass the nextCursor of the previous \
             page, or leave it out for the newest runs",
        ),
        e => ApiError::internal(e),
    }
}

pub async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<RunQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let (items, next_cursor) = page_of_runs(state.store.as_ref(), &filter, query.page())
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(json!({ "items": items, "nextCursor": next_cursor })))
}

/// One run in full: the view, each job's spans, the receipts.
pub struct RunDetail {
    pub run: RunView,
    /// Spans by job id, by start time.
    pub spans: HashMap<String, Vec<SpanRow>>,
    pub receipts: Vec<PluginEventRow>,
}

/// Reads one run in full; `None` when there is no such work item.
pub async fn detail_of(store: &dyn Store, id: &str) -> Result<Option<RunDetail>, StoreError> {
    let Some(run) = store.get_run(id).await? else {
        return Ok(None);
    };
    let receipts = receipts_of(store, id).await?;
    let mut spans = HashMap::new();
    for job in &run.jobs {
        // A job's spans (the runner's and its hooks' and integration calls') share its id as trace.
        spans.insert(job.id.clone(), store.list_spans(&job.id).await?);
    }
    Ok(Some(RunDetail {
        run: RunView::new(&run, &receipts),
        spans,
        receipts,
    }))
}

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let detail = detail_of(state.store.as_ref(), &id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "run_not_found",
                format!("there is no work item {id:?}; GET /api/admin/runs lists them"),
            )
        })?;
    let mut run = serde_json::to_value(&detail.run).map_err(ApiError::internal)?;
    if let Some(jobs) = run.get_mut("jobs").and_then(Value::as_array_mut) {
        for job in jobs {
            let spans: Vec<SpanView> = job
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| detail.spans.get(id))
                .map(|s| s.iter().map(SpanView::from).collect())
                .unwrap_or_default();
            if let Some(job) = job.as_object_mut() {
                job.insert("spans".into(), json!(spans));
            }
        }
    }
    let receipts: Vec<ReceiptView> = detail.receipts.iter().map(ReceiptView::from).collect();
    if let Some(map) = run.as_object_mut() {
        map.insert("receipts".into(), json!(receipts));
    }
    Ok(HttpResponse::Ok().json(run))
}

#[cfg(test)]
mod tests {
    use super::RunState;

    #[test]
    fn a_run_state_is_spelled_the_same_in_json_and_in_the_filter() {
        for state in [
            RunState::Queued,
            RunState::Running,
            RunState::Completed,
            RunState::Failed,
            RunState::Blocked,
            RunState::Abandoned,
            RunState::NotRun,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
