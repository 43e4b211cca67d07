//! `/api/admin/runtime` (how plugins run here, and what is loaded) and
//! `/api/admin/integration-types`.

use actix_web::{web, HttpResponse};
use nitejar_core::receipts::ExecutionMode;
use nitejar_core::registry::PluginOrigin;
use serde::Serialize;
use serde_json::json;

use crate::auth::Admin;
use crate::posture;
use crate::state::AppState;
use nitejar_core::trust::TrustMode;

/// An active plugin, briefly.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSummary {
    pub id: String,
    pub version: String,
    pub origin: &'static str,
    pub integrations: Vec<String>,
    pub hooks: usize,
    pub skills: usize,
}

/// A plugin library mapped into the process.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LibrarySummary {
    pub plugin_id: String,
    pub version: String,
    pub path: String,
    pub size_bytes: u64,
    pub loaded_at: i64,
    /// `false`: an earlier or disabled version that stays mapped until restart.
    pub active: bool,
}

/// What `/api/admin/runtime` answers and the runtime page shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSummary {
    pub version: &'static str,
    pub execution_mode: &'static str,
    pub enforcement_scope: &'static str,
    pub trust_mode: &'static str,
    pub safe_mode: bool,
    pub badge: &'static str,
    pub posture: &'static str,
    pub posture_texts: serde_json::Value,
    pub effective_limitations: Vec<String>,
    pub host_enforced_controls: Vec<&'static str>,
    pub active_plugins: Vec<ActiveSummary>,
    pub loaded_libraries: Vec<LibrarySummary>,
    /// Bytes of mapped libraries no active plugin uses (reclaimed on restart).
    pub leaked_bytes: u64,
}

/// The runtime as it is now.
pub fn summary(state: &AppState) -> RuntimeSummary {
    let registry = state.runtime.registry();
    let active_plugins: Vec<ActiveSummary> = registry
        .plugins()
        .map(|p| ActiveSummary {
            id: p.meta().id.to_string(),
            version: p.meta().version.to_string(),
            origin: match p.meta().origin {
                PluginOrigin::Builtin => "builtin",
                PluginOrigin::ThirdParty => "third_party",
            },
            integrations: p
                .integrations()
                .iter()
                .map(|i| i.descriptor().kind)
                .collect(),
            hooks: p.hooks().len(),
            skills: p.skills().len(),
        })
        .collect();
    let loaded_libraries: Vec<LibrarySummary> = nitejar_core::loader::loaded_libraries()
        .into_iter()
        .map(|l| {
            let active = registry
                .plugin(&l.plugin_id)
                .is_some_and(|p| *p.meta().version == *l.version);
            LibrarySummary {
                plugin_id: l.plugin_id,
                version: l.version,
                path: l.path.display().to_string(),
                size_bytes: l.size_bytes,
                loaded_at: l.loaded_at_ms,
                active,
            }
        })
        .collect();
    let leaked_bytes = loaded_libraries
        .iter()
        .filter(|l| !l.active)
        .map(|l| l.size_bytes)
        .sum();
    let mode = state.config.trust_mode();
    RuntimeSummary {
        version: nitejar_core::NITEJAR_VERSION,
        execution_mode: posture::execution_mode(state.config.plugin_execution),
        enforcement_scope: posture::enforcement_scope(state.config.plugin_execution),
        trust_mode: mode.as_str(),
        safe_mode: state.config.safe_mode,
        badge: posture::badge(state.config.plugin_execution),
        posture: nitejar_core::trust::posture_for(mode, state.config.plugin_execution),
        posture_texts: json!({
            TrustMode::SelfHostOpen.as_str(): posture::posture_text(TrustMode::SelfHostOpen),
            TrustMode::SelfHostGuarded.as_str(): posture::posture_text(TrustMode::SelfHostGuarded),
            TrustMode::SaasLocked.as_str(): posture::posture_text(TrustMode::SaasLocked),
        }),
        effective_limitations: match state.config.plugin_execution {
            ExecutionMode::InProcess => posture::effective_limitations(),
            ExecutionMode::Isolated => {
                posture::isolated_limitations(state.config.plugin_process_limits)
            }
        },
        host_enforced_controls: posture::host_enforced_controls(),
        active_plugins,
        loaded_libraries,
        leaked_bytes,
    }
}

pub async fn runtime(_admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(summary(&state))
}

pub async fn integration_types(_admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let registry = state.runtime.registry();
    let items: Vec<_> = registry
        .integrations()
        .into_iter()
        .map(|e| {
            json!({
                "pluginId": &*e.plugin.id,
                "pluginVersion": &*e.plugin.version,
                "descriptor": e.descriptor,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "items": items }))
}
