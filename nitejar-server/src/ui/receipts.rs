//! `/admin/receipts`: receipts across plugins, filtered by plugin, kind and status, newest first,
//! one keyset page at a time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::store::{PluginEventRow, StoreError};

use super::{error_page, format_ms, render, Chrome};
use crate::api::receipts::ReceiptQuery;
use crate::auth::Admin;
use crate::state::AppState;

/// Receipt kinds, for the filter.
pub const KINDS: &[&str] = &[
    "webhook_ingress",
    "hook",
    "integration",
    "permission_denied",
    "install",
    "enable",
    "disable",
    "upgrade",
    "rollback",
    "uninstall",
    "configure",
    "trust",
    "agent_grant",
    "load",
    "auto_disable",
    "crashed_process",
    "skill",
    "startup",
];
/// Receipt statuses, for the filter.
pub const STATUSES: &[&str] = &[
    "ok",
    "blocked",
    "error",
    "timeout",
    "skipped_budget",
    "denied",
    "pending",
];

/// One receipt as a table row.
pub struct ReceiptLine {
    pub time: String,
    pub plugin: String,
    pub version: String,
    pub kind: String,
    pub status: String,
    /// `pill-ok`, `pill-warn`, `pill-err`.
    pub status_class: &'static str,
    pub hook: String,
    pub duration: String,
    pub work_item: String,
    /// The integration the receipt names (webhook deliveries, hand-overs), if any.
    pub integration: String,
    /// The reason code of a webhook receipt, the operation of an integration call, …
    pub summary: String,
    pub detail: String,
}

impl From<&PluginEventRow> for ReceiptLine {
    fn from(e: &PluginEventRow) -> Self {
        let detail = e.detail();
        let summary = detail
            .as_ref()
            .and_then(|d| {
                ["reason", "operation", "permission", "error", "message"]
                    .iter()
                    .find_map(|k| d.get(*k).and_then(|v| v.as_str()))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        ReceiptLine {
            time: format_ms(e.created_at),
            plugin: e.plugin_id.clone(),
            version: e.plugin_version.clone().unwrap_or_default(),
            kind: e.kind.clone(),
            status: e.status.clone(),
            status_class: match e.status.as_str() {
                "ok" => "pill-ok",
                "blocked" | "skipped_budget" | "denied" | "pending" => "pill-warn",
                _ => "pill-err",
            },
            hook: e.hook_name.clone().unwrap_or_default(),
            duration: e.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
            work_item: e.work_item_id.clone().unwrap_or_default(),
            integration: detail
                .as_ref()
                .and_then(|d| d.get("integration_id").and_then(|v| v.as_str()))
                .map(str::to_owned)
                .unwrap_or_default(),
            summary: summary.chars().take(120).collect(),
            detail: detail
                .map(|d| serde_json::to_string_pretty(&d).unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}

/// An option of a filter.
pub struct Opt {
    pub value: String,
    pub selected: bool,
}

/// An integration, for the filter.
pub struct IntegrationOpt {
    pub id: String,
    pub label: String,
    pub selected: bool,
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

#[derive(Template)]
#[template(path = "receipts.html")]
struct ReceiptsPage {
    chrome: Chrome,
    plugins: Vec<Opt>,
    kinds: Vec<Opt>,
    statuses: Vec<Opt>,
    integrations: Vec<IntegrationOpt>,
    receipts: Vec<ReceiptLine>,
    /// Query string of the next (older) page, when there is one.
    older: Option<String>,
    /// Query string of the first page, when this is a later one.
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

pub async fn page(
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<ReceiptQuery>,
) -> HttpResponse {
    let filter = query.filter();
    let page = match state.store.list_events(&filter, query.page()).await {
        Ok(p) => p,
        Err(StoreError::BadCursor(_)) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "That page link is not valid; start from the newest receipts.",
            )
        }
        Err(e) => {
            tracing::error!("receipts page: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Receipts could not be read; see the server log.",
            );
        }
    };
    let mut plugins: Vec<String> = match state.store.list_plugins().await {
        Ok(rows) => rows.into_iter().map(|r| r.id).collect(),
        Err(_) => Vec::new(),
    };
    plugins.extend(
        state
            .runtime
            .registry()
            .plugins()
            .map(|p| p.meta().id.to_string()),
    );
    plugins.sort();
    plugins.dedup();
    let plugin = filter.plugin_id.clone().unwrap_or_default();
    let kind = filter.kind.clone().unwrap_or_default();
    let status = filter.status.clone().unwrap_or_default();
    let integration = filter.integration_id.clone().unwrap_or_default();
    let integrations = state
        .store
        .list_integrations(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| IntegrationOpt {
            selected: r.id == integration,
            label: format!("{} ({})", r.name, r.integration_type),
            id: r.id,
        })
        .collect();
    let older = page.next_cursor.as_deref().map(|c| {
        query_string(&[
            ("plugin", &plugin),
            ("kind", &kind),
            ("status", &status),
            ("integration", &integration),
            ("cursor", c),
        ])
    });
    let paged = query.cursor.as_deref().is_some_and(|c| !c.is_empty());
    let view = ReceiptsPage {
        chrome: Chrome::new(&state, &admin, "Receipts", "receipts"),
        plugins: options(plugins.iter().map(String::as_str), &plugin),
        kinds: options(KINDS.iter().copied(), &kind),
        statuses: options(STATUSES.iter().copied(), &status),
        integrations,
        receipts: page.items.iter().map(ReceiptLine::from).collect(),
        older,
        newest: paged.then(|| {
            query_string(&[
                ("plugin", &plugin),
                ("kind", &kind),
                ("status", &status),
                ("integration", &integration),
            ])
        }),
    };
    render(StatusCode::OK, &view)
}
