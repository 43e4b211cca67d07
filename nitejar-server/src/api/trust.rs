//! `/api/admin/trust`: the trusted keys and allowlist entries plugins are judged with — those of
//! the environment (listed, not removable) and those an operator stored — added and removed
//! through [`PluginManager::add_trust_entry`](nitejar_core::lifecycle::PluginManager::add_trust_entry),
//! as the admin UI and `nitejar plugin trust` do. A change applies in this server before the answer
//! (the answer says what it activated or took out) and in every other server sharing the database
//! within a second.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use nitejar_core::lifecycle::{
    ReconcileReport, TrustChange, TrustEntryKind, TrustSettings, TRUST_RECEIPT_ID,
};
use nitejar_core::trust::TrustMode;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::auth::Admin;
use crate::plugins::trust_field;
use crate::state::AppState;

/// Who made a change, as its receipt records it.
pub fn changed_by(admin: &Admin) -> String {
    match admin {
        Admin::Token => "admin API (bearer token)".into(),
        Admin::Session(s) => format!("admin UI (session {})", s.id),
    }
}

/// What the environment's entries are, for the operator (API and page).
pub const ENVIRONMENT_NOTE: &str = "Keys and entries whose source is `environment` come from NITEJAR_PLUGIN_TRUSTED_KEYS and NITEJAR_PLUGIN_ALLOWLIST, read when the server starts: they cannot be removed here; change the variable and restart the server.";

/// Why nothing can be changed under saas_locked.
pub const LOCKED_NOTE: &str = "This server runs in saas_locked mode: only plugins signed by a platform key run, the platform's keys are set in NITEJAR_PLUGIN_TRUSTED_KEYS, and the allowlist does not apply. Trust settings cannot be changed here.";

/// The settings with the notes an operator needs to read them.
pub fn document(settings: &TrustSettings) -> Value {
    let mut doc = json!(settings);
    doc["environmentNote"] = json!(ENVIRONMENT_NOTE);
    doc["lockedNote"] = if settings.mode == TrustMode::SaasLocked {
        json!(LOCKED_NOTE)
    } else {
        Value::Null
    };
    doc["receiptsPluginId"] = json!(TRUST_RECEIPT_ID);
    doc
}

/// The one text field a change body holds, checked: an object with exactly `field`, a string.
fn field_of(body: &Value, kind: TrustEntryKind) -> Result<String, ApiError> {
    let field = trust_field(kind);
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("the body must be a JSON object: {{\"{field}\": \"…\"}}"),
        ));
    };
    if let Some(other) = fields.keys().find(|k| *k != field) {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("unknown field `{other}`; send {{\"{field}\": \"…\"}}"),
        ));
    }
    match fields.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            match kind {
                TrustEntryKind::Key => "invalid_trusted_key",
                TrustEntryKind::Allow => "invalid_allowlist_entry",
            },
            format!(
                "`{field}` must be a string: {}; nothing was changed",
                match kind {
                    TrustEntryKind::Key =>
                        "the base64 line of a minisign.pub file (it starts with `RW`)",
                    TrustEntryKind::Allow =>
                        "a plugin id (`com.acme.jira`) or a plugin id pinned to one build (`com.acme.jira@sha256:<digest>`)",
                }
            ),
        )
        .with_details(json!([{ "path": format!("/{field}"), "message": "must be a string" }]))),
    }
}

/// Applies a change in this server at once: plugins judged again, refused ones taken out, those
/// now accepted activated.
pub async fn apply(state: &AppState, change: &TrustChange) -> Value {
    match state.plugins.apply_trust_change(change).await {
        Ok(report) => applied(&report),
        Err(e) => {
            tracing::warn!("the trust change is stored; applying it now failed ({e}); the reconciler tries again when the change feed or its safety net next starts a round");
            json!({ "error": e.to_string() })
        }
    }
}

fn applied(report: &ReconcileReport) -> Value {
    json!({
        "activated": report.activated,
        "deactivated": report.deactivated,
        "errors": report.errors,
    })
}

async fn answer(
    state: &AppState,
    status: StatusCode,
    change: TrustChange,
) -> Result<HttpResponse, ApiError> {
    let applied = apply(state, &change).await;
    let settings = state.plugins.trust_settings().await?;
    Ok(HttpResponse::build(status)
        .json(json!({ "change": change, "applied": applied, "trust": document(&settings) })))
}

pub async fn get(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = state.plugins.trust_settings().await?;
    Ok(HttpResponse::Ok().json(document(&settings)))
}

pub async fn add_key(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let text = field_of(&body, TrustEntryKind::Key)?;
    let change = state
        .plugins
        .add_trust_entry(TrustEntryKind::Key, &text, &changed_by(&admin))
        .await?;
    answer(&state, StatusCode::CREATED, change).await
}

pub async fn remove_key(
    admin: Admin,
    state: web::Data<AppState>,
    key_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let change = state
        .plugins
        .remove_trust_entry(TrustEntryKind::Key, &key_id, &changed_by(&admin))
        .await?;
    answer(&state, StatusCode::OK, change).await
}

pub async fn add_allow(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let text = field_of(&body, TrustEntryKind::Allow)?;
    let change = state
        .plugins
        .add_trust_entry(TrustEntryKind::Allow, &text, &changed_by(&admin))
        .await?;
    answer(&state, StatusCode::CREATED, change).await
}

pub async fn remove_allow(
    admin: Admin,
    state: web::Data<AppState>,
    entry: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let change = state
        .plugins
        .remove_trust_entry(TrustEntryKind::Allow, &entry, &changed_by(&admin))
        .await?;
    answer(&state, StatusCode::OK, change).await
}
