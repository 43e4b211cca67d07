//! `/api/admin/integrations`: create, read, update, delete, test, hand over.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::base_url;
use super::error::ApiError;
use crate::auth::Admin;
use crate::integrations::{IntegrationInput, IntegrationOpError, IntegrationPatch};
use crate::state::AppState;

impl From<IntegrationOpError> for ApiError {
    fn from(e: IntegrationOpError) -> ApiError {
        let status = match &e {
            IntegrationOpError::NotFound(_) => StatusCode::NOT_FOUND,
            IntegrationOpError::UnknownType(_) => StatusCode::CONFLICT,
            IntegrationOpError::Invalid(_) | IntegrationOpError::EmptyName => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            IntegrationOpError::NotServed(_) | IntegrationOpError::HandOverTarget { .. } => {
                StatusCode::CONFLICT
            }
            IntegrationOpError::HandOverConsentRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            IntegrationOpError::Call { .. } => StatusCode::BAD_GATEWAY,
            IntegrationOpError::Store(e) => return ApiError::internal(e),
        };
        let error = ApiError::new(status, e.code(), e.to_string());
        match e {
            IntegrationOpError::Invalid(problems) => error.with_details(json!(problems)),
            IntegrationOpError::HandOverConsentRequired(hand) => error.with_details(json!(hand)),
            _ => error,
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state, &req);
    let rows = state.integrations.list(query.kind.as_deref()).await?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| state.integrations.view(r, &base))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = state.integrations.get(&id).await?;
    Ok(HttpResponse::Ok().json(state.integrations.view(&row, &base_url(&state, &req))))
}

pub async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    input: web::Json<IntegrationInput>,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state, &req);
    let (row, setup) = state.integrations.create(input.into_inner(), &base).await?;
    Ok(HttpResponse::Created().json(json!({
        "integration": state.integrations.view(&row, &base),
        "setup": setup,
    })))
}

pub async fn update(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    patch: web::Json<IntegrationPatch>,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state, &req);
    let (row, setup) = state
        .integrations
        .update(&id, patch.into_inner(), &base)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "integration": state.integrations.view(&row, &base),
        "setup": setup,
    })))
}

pub async fn delete(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.integrations.delete(&id).await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": true, "id": id.into_inner() })))
}

pub async fn test_connection(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let test = state.integrations.test_connection(&id).await?;
    Ok(HttpResponse::Ok().json(test))
}

/// `POST /api/admin/integrations/{id}/handover`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandOverBody {
    /// The plugin to give the integration to: the one that provides its type now.
    plugin: String,
    /// Consent to give that plugin the integration's configuration and secrets (428
    /// `handover_consent_required` otherwise, with what would be handed over).
    #[serde(default)]
    accept_handover: bool,
}

pub async fn hand_over(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<HandOverBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let row = state
        .integrations
        .hand_over(&id, &body.plugin, body.accept_handover)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "integration": state.integrations.view(&row, &base_url(&state, &req)),
    })))
}
