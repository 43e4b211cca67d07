//! `/healthz`: the process is up and serving.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::serve::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.runtime.registry();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": nitejar_core::NITEJAR_VERSION,
        "activePlugins": registry.plugins().count(),
    }))
}
