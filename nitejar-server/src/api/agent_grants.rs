//! `/api/admin/agents/{id}/plugin-grants`: what an agent may do to plugins through its tools, set
//! by the operator through
//! [`PluginManager::set_agent_grants`](nitejar_core::lifecycle::PluginManager::set_agent_grants),
//! as `nitejar agent grants` does. A change applies to the agent's next run and to its next call
//! of a tool already offered; receipted (`agent_grant`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use nitejar_core::lifecycle::agent_ops::{AgentGrants, PluginCapability, AGENT_GRANT_RECEIPT_ID};
use nitejar_core::lifecycle::LifecycleError;
use serde_json::{json, Value};

use super::error::ApiError;
use super::trust::changed_by;
use crate::auth::Admin;
use crate::state::AppState;

/// The grants with every capability described, for the operator (API and CLI).
pub fn document(grants: &AgentGrants) -> Value {
    let capabilities: Vec<Value> = PluginCapability::ALL
        .iter()
        .map(|c| {
            json!({
                "capability": c.as_str(),
                "tool": c.tool_name(),
                "granted": grants.capabilities.contains(c),
                "available": grants.unavailable(*c).is_none(),
                "unavailableReason": grants.unavailable(*c),
            })
        })
        .collect();
    json!({
        "agentId": grants.agent_id,
        "granted": grants.capabilities,
        "capabilities": capabilities,
        "receiptsPluginId": AGENT_GRANT_RECEIPT_ID,
    })
}

/// `{"capabilities": [...]}`, each spelled exactly as a capability is.
fn capabilities_of(body: &Value) -> Result<Vec<PluginCapability>, ApiError> {
    let listed = match body.as_object() {
        Some(fields) if fields.len() == 1 => fields.get("capabilities"),
        _ => None,
    };
    let Some(Value::Array(items)) = listed else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "send {\"capabilities\": [\"plugins.disable\", …]} (an empty list withdraws every grant)",
        ));
    };
    let known = || {
        PluginCapability::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .and_then(PluginCapability::parse)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_capability",
                        format!(
                            "capabilities[{i}] is {item}, not a capability (one of: {}); nothing was changed",
                            known()
                        ),
                    )
                })
        })
        .collect()
}

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let agent = state
        .store
        .get_agent(&id)
        .await
        .map_err(LifecycleError::from)?;
    if agent.is_none() {
        return Err(LifecycleError::UnknownAgent(id.into_inner()).into());
    }
    let grants = state.plugins.agent_grants(&id).await?;
    Ok(HttpResponse::Ok().json(document(&grants)))
}

pub async fn put(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let capabilities = capabilities_of(&body)?;
    let grants = state
        .plugins
        .set_agent_grants(&id, &capabilities, &changed_by(&admin))
        .await?;
    Ok(HttpResponse::Ok().json(document(&grants)))
}

/// `?status=pending|approved|rejected`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    status: Option<String>,
}

/// `GET /api/admin/plugin-requests`: what agents asked the operator to do, newest first.
pub async fn requests(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<RequestsQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = query.status.as_deref();
    if let Some(other) = status.filter(|s| !["pending", "approved", "rejected"].contains(s)) {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("status `{other}` is none of pending, approved, rejected"),
        ));
    }
    let items = state.plugins.plugin_requests(status).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/admin/plugin-requests/{id}/approve`, with the operator's consent as for an enable.
pub async fn approve(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let consent = super::plugins::json_or_default::<super::plugins::ConsentBody>(&body)?.request();
    let decision = state
        .plugins
        .approve_request(&id, consent, &changed_by(&admin))
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}

/// `POST /api/admin/plugin-requests/{id}/reject`.
pub async fn reject(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let decision = state
        .plugins
        .reject_request(&id, &changed_by(&admin))
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}
