//! One structured log line per request: method, path (never the query string, which may carry a
//! CSRF token), status, duration. Health checks, metrics scrapes and the stylesheet log at `debug`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// The middleware (`actix_web::middleware::from_fn(log)`).
pub async fn log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let response = next.call(req).await?;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let quiet = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics")
        || path.starts_with("/admin/assets/");
    if quiet {
        tracing::debug!(target: "nitejar::http", %method, %path, status, ms, "request");
    } else {
        tracing::info!(target: "nitejar::http", %method, %path, status, ms, "request");
    }
    Ok(response)
}
