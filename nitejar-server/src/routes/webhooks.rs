//! `/api/webhooks/plugins/{type}/{integration_id}`: the webhook URL of every integration row.
//!
//! `POST` runs the ingress pipeline; the answer's status and `code` say what happened. `GET` answers
//! 200 for providers that probe the URL before sending. Webhooks authenticate by the integration's own
//! signature (checked by its `parse_webhook`), never by an admin credential. Registered in the route
//! table (`routes/mod.rs`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use nitejar_core::ingress::{IngressCode, IngressOutcome};
use nitejar_sdk::WebhookRequest;
use serde_json::json;

use crate::state::AppState;

/// The answer to a delivery, in the shape every webhook answer has.
fn answer(outcome: &IngressOutcome) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(outcome.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if let Some(seconds) = outcome.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.json(json!({
        "ok": status.is_success(),
        "code": outcome.code,
        "message": outcome.message,
        "workItemId": outcome.work_item_id,
    }))
}

/// The body, or the refusal of one larger than `limit` (read no further than the limit).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, IngressOutcome> {
    let too_large = || {
        IngressOutcome::new(
            IngressCode::BodyTooLarge,
            format!(
                "the body is larger than {limit} bytes (NITEJAR_WEBHOOK_MAX_BYTES); nothing was \
                 stored"
            ),
        )
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut payload).await {
        let chunk = chunk.map_err(|e| {
            IngressOutcome::new(
                IngressCode::BadRequest,
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) async fn receive(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (kind, integration_id) = path.into_inner();
    let body = match read_body(&req, payload, state.config.webhook_max_bytes).await {
        Ok(body) => body,
        Err(outcome) => {
            state
                .ingress
                .refused(&kind, &integration_id, &outcome)
                .await;
            return answer(&outcome);
        }
    };
    let mut request = WebhookRequest::new(req.method().to_string(), req.path().to_string())
        .with_query(req.query_string())
        .with_body(body.to_vec());
    request.headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let outcome = state.ingress.handle(&kind, &integration_id, request).await;
    answer(&outcome)
}

pub(crate) async fn probe() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "ok": true }))
}
