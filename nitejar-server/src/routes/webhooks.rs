//! `/api/webhooks/plugins/{type}/{integration_id}`: the webhook URL of every integration row.
//!
//! `POST` runs the ingress pipeline; the answer's status and `code` say what happened. `GET` answers
//! 200 for providers that probe the URL before sending. Webhooks authenticate by the integration's own
//! signature (checked by its `parse_webhook`), never by an admin credential. Registered in the route
//! table (`routes/mod.rs`).

use actix_web::{web, HttpRequest, HttpResponse};
use nitejar_sdk::WebhookRequest;
use serde_json::json;

use crate::serve::AppState;

pub(crate) async fn receive(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (kind, integration_id) = path.into_inner();
    let request = WebhookRequest {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect(),
        body: body.to_vec(),
    };
    let outcome = state.ingress.handle(&kind, &integration_id, request).await;
    let status = actix_web::http::StatusCode::from_u16(outcome.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({
        "ok": status.is_success(),
        "code": outcome.code,
        "message": outcome.message,
        "workItemId": outcome.work_item_id,
    }))
}

pub(crate) async fn probe() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "ok": true }))
}
