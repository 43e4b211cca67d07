//! `GET /api/admin/plugins/{id}/stats`: a plugin's hook calls over the last hours, per UTC hour —
//! calls, errors, p50 and p99 durations — from the hook receipts it left (see
//! [`nitejar_core::store::HookStats`]). The plugin's page draws the same figures.

use actix_web::{web, HttpResponse};
use nitejar_core::receipts::now_ms;
use nitejar_core::store::{
    HookBucket, HookStats, HookStatsWindow, BUCKET_MS, ERROR_STATUSES, MAX_HOURS,
};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::receipts::store_error;
use crate::auth::Admin;
use crate::plugins;
use crate::state::AppState;

/// The window the plugin page shows, and the API's default.
pub const DEFAULT_HOURS: u32 = 24;

#[derive(Deserialize)]
pub struct StatsQuery {
    hours: Option<String>,
}

/// One bucket as the API writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketView {
    start: i64,
    calls: u64,
    errors: u64,
    p50_ms: Option<i64>,
    p99_ms: Option<i64>,
    durations_read: u64,
}

impl From<&HookBucket> for BucketView {
    fn from(b: &HookBucket) -> Self {
        BucketView {
            start: b.start_ms,
            calls: b.calls,
            errors: b.errors,
            p50_ms: b.p50_ms,
            p99_ms: b.p99_ms,
            durations_read: b.durations_read,
        }
    }
}

/// The answer: the window, its buckets oldest first, and its totals.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    plugin_id: String,
    hours: u32,
    bucket_ms: i64,
    since: i64,
    until: i64,
    error_statuses: [&'static str; 3],
    buckets: Vec<BucketView>,
    total: BucketView,
}

impl StatsView {
    fn new(plugin_id: &str, hours: u32, stats: &HookStats) -> StatsView {
        StatsView {
            plugin_id: plugin_id.to_owned(),
            hours,
            bucket_ms: BUCKET_MS,
            since: stats.since_ms,
            until: stats.until_ms,
            error_statuses: ERROR_STATUSES,
            buckets: stats.buckets.iter().map(BucketView::from).collect(),
            total: BucketView::from(&stats.total),
        }
    }
}

fn hours_of(query: &StatsQuery) -> Result<u32, ApiError> {
    let Some(raw) = query.hours.as_deref().filter(|h| !h.is_empty()) else {
        return Ok(DEFAULT_HOURS);
    };
    match raw.parse::<u32>() {
        Ok(h) if (1..=MAX_HOURS).contains(&h) => Ok(h),
        _ => Err(ApiError::bad_request(
            "invalid_hours",
            format!("`hours` must be a whole number of hours from 1 to {MAX_HOURS}, not `{raw}`"),
        )),
    }
}

/// The plugin's hook figures over the last `hours` (whole UTC hours, the last one the current).
pub async fn hook_stats(state: &AppState, id: &str, hours: u32) -> Result<HookStats, ApiError> {
    state
        .store
        .hook_stats(HookStatsWindow {
            plugin_id: id,
            hours,
            now_ms: now_ms(),
        })
        .await
        .map_err(store_error)
}

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let hours = hours_of(&query)?;
    if plugins::get(&state, &id)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(super::plugins::not_found(&id));
    }
    let stats = hook_stats(&state, &id, hours).await?;
    Ok(HttpResponse::Ok().json(StatsView::new(&id, hours, &stats)))
}
