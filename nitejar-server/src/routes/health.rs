//! `/healthz` (the process is up) and `/readyz` (it can do its work: the database answers and the
//! plugin registry is built). Both are public: load balancers and the image's `HEALTHCHECK` call them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub(crate) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.runtime.registry();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": nitejar_core::NITEJAR_VERSION,
        "activePlugins": registry.plugins().count(),
    }))
}

/// The receipt writer's backlog: receipts wait (in its queue, or past its back-pressure in memory)
/// while the database refuses them, and are written when it is back.
fn receipts_check(state: &AppState) -> serde_json::Value {
    let backlog = state.receipts.backlog();
    json!({
        "ok": backlog.failing_since.is_none(),
        "queuedBatches": backlog.queued_batches,
        "overflow": backlog.overflow,
        "error": backlog.failing_since.and(backlog.last_error),
    })
}

pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the database did not answer within 2 s".to_owned()),
    };
    // Reads working is not enough: a full disk or a read-only file refuses every delivery. While
    // writes are failing, try one now and then (an idle server has nothing else that would notice
    // the database is back).
    if state.store.health().failing().is_some() && state.store.health().try_write() {
        let _ = tokio::time::timeout(Duration::from_secs(2), state.store.probe_write()).await;
    }
    let writes = state.store.health().failing();
    let registry = state.ready.load(Ordering::Acquire);
    let ready = database.is_ok() && writes.is_none() && registry;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": match &database { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e}) },
            "writes": match &writes {
                None => json!({"ok": true}),
                Some(f) => json!({"ok": false, "failingForMs": f.for_.as_millis() as u64, "error": f.error}),
            },
            "receipts": receipts_check(&state),
            "registry": { "ok": registry, "activePlugins": state.runtime.registry().plugins().count() },
            // Not a condition of readiness: without it changes made elsewhere still arrive, by
            // the safety net, only later.
            "changes": changes_check(&state),
        }
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// How this server learns of changes made elsewhere (the CLI, another server).
fn changes_check(state: &AppState) -> serde_json::Value {
    let status = state.changes.status();
    json!({
        "ok": status.watching && status.last_error.is_none(),
        "watching": status.watching,
        "how": status.how,
        "safetyNetMs": status.safety_net.as_millis() as u64,
        "error": status.last_error,
    })
}
