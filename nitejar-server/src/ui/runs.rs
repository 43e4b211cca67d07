//! `/admin/runs`: work items with their runs' outcomes, filtered and paged; `/admin/runs/{id}`: one
//! run — its jobs, a timeline of each job's spans drawn as inline SVG bars (the CSP allows no
//! inline style, and the pages carry no script), and its receipts.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::store::{PluginEventRow, SpanRow, StoreError};
use serde_json::Value;

use super::receipts::{IntegrationOpt, Opt, ReceiptLine};
use super::{error_page, format_ms, render, Chrome};
use crate::api::runs::{self, JobView, RunQuery, RunView};
use crate::auth::Admin;
use crate::state::AppState;

/// `pill-ok`, `pill-warn`, `pill-err` or `pill-info` for a run or job status.
fn status_class(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "completed" | "delivered" | "ok" => "pill-ok",
        "failed" | "error" | "timeout" => "pill-err",
        "blocked" | "abandoned" | "denied" | "skipped_budget" => "pill-warn",
        _ => "pill-info",
    }
}

/// One run as a table row.
struct RunLine {
    id: String,
    time: String,
    integration: String,
    /// The integration's name, when it still exists.
    integration_name: String,
    integration_type: String,
    preview: String,
    status: String,
    status_class: &'static str,
    jobs: Vec<JobLine>,
    /// What became of it: the delivery, the failure, or the queue's state.
    outcome: String,
    failed: bool,
}

struct JobLine {
    id: String,
    agent: String,
    status: String,
    status_class: &'static str,
    error: String,
    started: String,
    finished: String,
    took: String,
}

impl From<&JobView> for JobLine {
    fn from(j: &JobView) -> Self {
        JobLine {
            id: j.id.clone(),
            agent: j.agent_id.clone(),
            status: j.status.clone(),
            status_class: status_class(&j.status),
            error: j.error.clone().unwrap_or_default(),
            started: j.started_at.map(format_ms).unwrap_or_default(),
            finished: j.finished_at.map(format_ms).unwrap_or_default(),
            took: j.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
        }
    }
}

fn outcome(v: &RunView) -> String {
    if let Some(f) = &v.failure {
        return f.reason.clone();
    }
    if let Some(d) = &v.delivery {
        let tries = if d.attempts > 1 {
            format!(" after {} attempts", d.attempts)
        } else {
            String::new()
        };
        return format!("answer {}{tries} at {}", d.status, format_ms(d.at));
    }
    match &v.queue {
        Some(q) if q.state == "running" => {
            format!("running (attempt {})", q.attempts)
        }
        Some(q) => match &q.last_error {
            Some(e) => format!(
                "waiting to retry at {} (attempt {} failed: {e})",
                format_ms(q.available_at),
                q.attempts
            ),
            None => "waiting in the queue".into(),
        },
        None if v.jobs.is_empty() => "no job ran".into(),
        None => "no answer was delivered".into(),
    }
}

impl From<&RunView> for RunLine {
    fn from(v: &RunView) -> Self {
        RunLine {
            id: v.id.clone(),
            time: format_ms(v.created_at),
            integration: v.integration_id.clone().unwrap_or_default(),
            integration_name: String::new(),
            integration_type: v.integration_type.clone().unwrap_or_default(),
            preview: v.preview.clone(),
            status: v.status.as_str().to_owned(),
            status_class: status_class(v.status.as_str()),
            jobs: v.jobs.iter().map(JobLine::from).collect(),
            outcome: outcome(v),
            failed: v.failure.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    chrome: Chrome,
    integrations: Vec<IntegrationOpt>,
    plugins: Vec<Opt>,
    statuses: Vec<Opt>,
    since: String,
    until: String,
    runs: Vec<RunLine>,
    older: Option<String>,
    newest: Option<String>,
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

fn options<'a>(values: impl IntoIterator<Item = &'a str>, selected: &str) -> Vec<Opt> {
    values
        .into_iter()
        .map(|v| Opt {
            value: v.to_owned(),
            selected: v == selected,
        })
        .collect()
}

pub async fn page(
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<RunQuery>,
) -> HttpResponse {
    let filter = match query.filter() {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.message),
    };
    let (views, next_cursor) =
        match runs::page_of_runs(state.store.as_ref(), &filter, query.page()).await {
            Ok(p) => p,
            Err(StoreError::BadCursor(_)) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "That page link is not valid; start from the newest runs.",
                )
            }
            Err(e) => {
                tracing::error!("runs page: {e}");
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Runs could not be read; see the server log.",
                );
            }
        };
    let integration = filter.integration_id.clone().unwrap_or_default();
    let plugin = filter.plugin_id.clone().unwrap_or_default();
    let status = filter.status.clone().unwrap_or_default();
    // The form shows the times as the operator typed them.
    let since = query.since.clone().unwrap_or_default();
    let until = query.until.clone().unwrap_or_default();
    let rows = state
        .store
        .list_integrations(None)
        .await
        .unwrap_or_default();
    let names: std::collections::HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str()))
        .collect();
    let mut lines: Vec<RunLine> = views.iter().map(RunLine::from).collect();
    for line in &mut lines {
        if let Some(name) = names.get(line.integration.as_str()) {
            line.integration_name = (*name).to_owned();
        }
    }
    let integrations = rows
        .iter()
        .map(|r| IntegrationOpt {
            selected: r.id == integration,
            label: format!("{} ({})", r.name, r.integration_type),
            id: r.id.clone(),
        })
        .collect();
    let mut plugins: Vec<String> = state
        .store
        .list_plugins()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.id)
        .collect();
    plugins.extend(
        state
            .runtime
            .registry()
            .plugins()
            .map(|p| p.meta().id.to_string()),
    );
    plugins.sort();
    plugins.dedup();
    let pairs = |cursor: &str| {
        query_string(&[
            ("integration", &integration),
            ("plugin", &plugin),
            ("status", &status),
            ("since", &since),
            ("until", &until),
            ("cursor", cursor),
        ])
    };
    let older = next_cursor.as_deref().map(pairs);
    let paged = query.cursor.as_deref().is_some_and(|c| !c.is_empty());
    let view = RunsPage {
        chrome: Chrome::new(&state, &admin, "Runs", "runs"),
        integrations,
        plugins: options(plugins.iter().map(String::as_str), &plugin),
        statuses: options(runs::STATUSES.iter().copied(), &status),
        since: since.clone(),
        until: until.clone(),
        runs: lines,
        older,
        newest: paged.then(|| pairs("")),
    };
    render(StatusCode::OK, &view)
}

/// One bar of a job's timeline. Offsets and widths are percentages of the job's window (SVG
/// lengths).
struct Bar {
    label: String,
    detail: String,
    kind: String,
    status: String,
    status_class: &'static str,
    offset: String,
    width: String,
    took: String,
}

/// A job with its timeline.
struct JobTimeline {
    job: JobLine,
    window: String,
    bars: Vec<Bar>,
}

fn attr<'a>(attrs: &'a Option<Value>, key: &str) -> Option<&'a Value> {
    attrs
        .as_ref()
        .and_then(|a| a.get(key))
        .filter(|v| !v.is_null())
}

fn attr_text(attrs: &Option<Value>, key: &str) -> String {
    match attr(attrs, key) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// The label and detail of a span: what it was, and the plugin, tool or model behind it.
fn describe(span: &SpanRow, receipts: &[PluginEventRow]) -> (String, String) {
    let attrs: Option<Value> = span
        .attributes
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok());
    let plugin = attr_text(&attrs, "plugin.id");
    match span.name.as_str() {
        "run" => ("job".into(), "the whole job".into()),
        "model.call" => (
            format!("model call (turn {})", attr_text(&attrs, "turn")),
            format!(
                "{} via {}",
                attr_text(&attrs, "model"),
                attr_text(&attrs, "provider")
            ),
        ),
        "tool.call" => (
            format!("tool {}", attr_text(&attrs, "tool.name")),
            match attr_text(&attrs, "blocked_by") {
                b if b.is_empty() => String::new(),
                b => format!("blocked by {b}"),
            },
        ),
        "plugin.hook" => (format!("hook {}", attr_text(&attrs, "plugin.hook")), plugin),
        "plugin.integration" => {
            // The span shares its id with the receipt, whose detail names the operation.
            let operation = receipts
                .iter()
                .find(|r| r.id == span.id)
                .and_then(|r| r.detail())
                .and_then(|d| {
                    d.get("operation")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "integration call".into());
            let label = match operation.as_str() {
                "post_response" => "delivery (post_response)".to_owned(),
                op => op.to_owned(),
            };
            (label, plugin)
        }
        other => (other.to_owned(), plugin),
    }
}

fn timeline(job: &JobView, spans: &[SpanRow], receipts: &[PluginEventRow]) -> JobTimeline {
    let ends = spans.iter().map(|s| {
        s.end_time
            .unwrap_or(s.start_time + s.duration_ms.unwrap_or(0))
    });
    let start = spans
        .iter()
        .map(|s| s.start_time)
        .chain(job.started_at)
        .min()
        .unwrap_or(0);
    let end = ends
        .chain(job.finished_at)
        .max()
        .unwrap_or(start)
        .max(start);
    // At least 1 ms, so that an instant job still draws.
    let total = (end - start).max(1) as f64;
    let mut ordered: Vec<&SpanRow> = spans.iter().collect();
    // The job's own span first, then by start.
    ordered.sort_by_key(|s| (s.name != "run", s.start_time));
    let bars = ordered
        .into_iter()
        .map(|s| {
            let took = s
                .duration_ms
                .or_else(|| s.end_time.map(|e| e - s.start_time))
                .unwrap_or(0);
            // A bar never vanishes (half a percent at least), and never runs past the window: an
            // instant at the very end is drawn just inside it.
            let width = (took as f64 / total * 100.0).clamp(0.5, 100.0);
            let offset = ((s.start_time - start) as f64 / total * 100.0).clamp(0.0, 100.0 - width);
            let (label, detail) = describe(s, receipts);
            Bar {
                label,
                detail,
                kind: s.kind.clone(),
                status: s.status.clone(),
                status_class: status_class(&s.status),
                offset: format!("{offset:.2}"),
                width: format!("{width:.2}"),
                took: format!("{took} ms"),
            }
        })
        .collect();
    JobTimeline {
        job: JobLine::from(job),
        window: format!("{} ms", end - start),
        bars,
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    run: RunLine,
    session_key: String,
    source: String,
    title: String,
    text: String,
    failure: Option<String>,
    delivery: Option<String>,
    queue: Option<String>,
    timelines: Vec<JobTimeline>,
    receipts: Vec<ReceiptLine>,
}

pub async fn detail(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = path.into_inner();
    let detail = match runs::detail_of(state.store.as_ref(), &id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "There is no such work item; the runs page lists them.",
            )
        }
        Err(e) => {
            tracing::error!("run page: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "This run could not be read; see the server log.",
            );
        }
    };
    let v = &detail.run;
    let timelines = v
        .jobs
        .iter()
        .map(|j| {
            let spans = detail.spans.get(&j.id).map(Vec::as_slice).unwrap_or(&[]);
            timeline(j, spans, &detail.receipts)
        })
        .collect();
    let text = match state.store.get_work_item(&id).await {
        Ok(Some(w)) => nitejar_core::runner::message_text(&w),
        _ => v.preview.clone(),
    };
    let delivery = v.delivery.as_ref().map(|d| {
        let mut s = format!(
            "{} at {} ({} attempt{})",
            d.status,
            format_ms(d.at),
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        );
        if let Some(e) = &d.error {
            s.push_str(&format!(": {e}"));
        }
        s
    });
    let queue = v.queue.as_ref().map(|q| {
        let mut s = format!("{} — {} attempt(s)", q.state, q.attempts);
        if let Some(o) = &q.lease_owner {
            s.push_str(&format!(", held by {o}"));
        }
        if let Some(e) = &q.last_error {
            s.push_str(&format!(
                "; last error: {e}; next attempt at {}",
                format_ms(q.available_at)
            ));
        }
        s
    });
    let view = RunPage {
        chrome: Chrome::new(&state, &admin, "Run", "runs"),
        run: RunLine::from(v),
        session_key: v.session_key.clone(),
        source: v.source.clone(),
        title: v.title.clone(),
        text,
        failure: v.failure.as_ref().map(|f| f.reason.clone()),
        delivery,
        queue,
        timelines,
        receipts: detail.receipts.iter().map(ReceiptLine::from).collect(),
    };
    render(StatusCode::OK, &view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str, kind: &str, start: i64, took: i64) -> SpanRow {
        SpanRow {
            id: format!("{name}-{start}"),
            trace_id: "job".into(),
            parent_span_id: None,
            name: name.into(),
            kind: kind.into(),
            status: "ok".into(),
            start_time: start,
            end_time: Some(start + took),
            duration_ms: Some(took),
            attributes: Some(r#"{"turn": 1, "model": "m", "provider": "p", "plugin.id": "acme.x", "plugin.hook": "tool.pre_exec"}"#.into()),
            job_id: Some("job".into()),
            agent_id: None,
            created_at: start,
        }
    }

    #[test]
    fn bars_are_placed_as_shares_of_the_job_and_never_vanish_or_overflow() {
        let job = JobView {
            id: "job".into(),
            agent_id: "a".into(),
            status: "COMPLETED".into(),
            error: None,
            started_at: Some(1_000),
            finished_at: Some(1_200),
            duration_ms: Some(200),
        };
        let spans = [
            span("model.call", "model", 1_040, 20),
            span("run", "run", 1_000, 200),
            span("plugin.hook", "plugin", 1_200, 0),
            span("tool.call", "tool", 1_100, 100),
        ];
        let t = timeline(&job, &spans, &[]);
        let bars: Vec<(&str, &str, &str)> = t
            .bars
            .iter()
            .map(|b| (b.label.as_str(), b.offset.as_str(), b.width.as_str()))
            .collect();
        assert_eq!(
            bars,
            [
                ("job", "0.00", "100.00"),
                ("model call (turn 1)", "20.00", "10.00"),
                ("tool ", "50.00", "50.00"),
                ("hook tool.pre_exec", "99.50", "0.50"),
            ]
        );
        assert_eq!(t.window, "200 ms");
        assert_eq!(t.bars[3].detail, "acme.x");
    }
}
