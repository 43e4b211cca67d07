//! `/metrics`: the Prometheus text exposition (see `crate::metrics` for what is counted and why the
//! route needs a credential).

use actix_web::{web, HttpResponse};

use crate::auth::MetricsReader;
use crate::state::AppState;

pub(crate) async fn metrics(_reader: MetricsReader, state: web::Data<AppState>) -> HttpResponse {
    // A count of the queue table: runs waiting, retrying or in progress on any server.
    let queued = match state.store.count_runs().await {
        Ok(n) => n as f64,
        Err(e) => {
            tracing::warn!("could not count queued runs for /metrics: {e}");
            f64::NAN
        }
    };
    let registry = state.runtime.registry();
    let libraries = nitejar_core::loader::loaded_libraries();
    let library_bytes: u64 = libraries.iter().map(|l| l.size_bytes).sum();
    let text = state.metrics.render(&[
        (
            "nitejar_active_plugins",
            "Plugins active in the registry.",
            registry.plugins().count() as f64,
        ),
        (
            "nitejar_loaded_libraries",
            "Plugin libraries mapped into the process (reclaimed on restart).",
            libraries.len() as f64,
        ),
        (
            "nitejar_loaded_library_bytes",
            "Size on disk of the mapped plugin libraries.",
            library_bytes as f64,
        ),
        (
            "nitejar_runs_queued",
            "Runs accepted and not finished yet (waiting, retrying or in progress, on any server).",
            queued,
        ),
        (
            "nitejar_runs_in_progress",
            "Runs in progress in this server.",
            state.runs.in_progress() as f64,
        ),
        (
            "nitejar_admin_auth_locked_out_addresses",
            "Client addresses refused for now after repeated failed admin credentials.",
            state.auth.throttle.locked_out(std::time::Instant::now()) as f64,
        ),
    ]);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
