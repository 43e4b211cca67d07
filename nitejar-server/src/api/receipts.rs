//! `/api/admin/receipts`: every plugin's receipts, newest first, filtered and keyset-paged.

use actix_web::{web, HttpResponse};
use nitejar_core::store::{EventFilter, PageRequest, PluginEventRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::auth::Admin;
use crate::state::AppState;

/// The query of a receipts page (API and UI).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceiptQuery {
    pub plugin: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    /// Only receipts naming this integration (its webhook deliveries, hand-overs).
    pub integration: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ReceiptQuery {
    /// The store filter: empty values mean "any".
    pub fn filter(&self) -> EventFilter {
        let some = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        EventFilter {
            plugin_id: some(&self.plugin),
            kind: some(&self.kind),
            status: some(&self.status),
            integration_id: some(&self.integration),
            work_item_id: None,
        }
    }

    /// The page to read (50 rows unless asked).
    pub fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit.unwrap_or(50),
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        }
    }
}

/// A receipt as the API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    pub id: String,
    pub plugin_id: String,
    pub plugin_version: Option<String>,
    pub kind: String,
    pub status: String,
    pub hook: Option<String>,
    pub work_item_id: Option<String>,
    pub job_id: Option<String>,
    pub duration_ms: Option<i64>,
    pub execution_mode: String,
    pub detail: Option<Value>,
    pub created_at: i64,
}

impl From<&PluginEventRow> for ReceiptView {
    fn from(e: &PluginEventRow) -> Self {
        ReceiptView {
            id: e.id.clone(),
            plugin_id: e.plugin_id.clone(),
            plugin_version: e.plugin_version.clone(),
            kind: e.kind.clone(),
            status: e.status.clone(),
            hook: e.hook_name.clone(),
            work_item_id: e.work_item_id.clone(),
            job_id: e.job_id.clone(),
            duration_ms: e.duration_ms,
            execution_mode: e.execution_mode.clone(),
            detail: e.detail(),
            created_at: e.created_at,
        }
    }
}

/// A store error of a receipts read, as the API answers it.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::BadCursor(_) => ApiError::bad_request("invalid_cursor", e.to_string()),
        e => ApiError::internal(e),
    }
}

pub async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<ReceiptQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter();
    let page = state
        .store
        .list_events(&filter, query.page())
        .await
        .map_err(store_error)?;
    let items: Vec<ReceiptView> = page.items.iter().map(ReceiptView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "nextCursor": page.next_cursor })))
}
