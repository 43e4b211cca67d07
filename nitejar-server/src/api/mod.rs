//! The JSON API under `/api/admin` (and `/api/openapi.json`). Routes are listed in
//! `crate::routes`; errors are [`error::ApiError`].

pub mod agent_grants;
pub mod body;
pub mod error;
pub mod integrations;
pub mod openapi;
pub mod plugin_config;
pub mod plugin_stats;
pub mod plugins;
pub mod receipts;
pub mod runs;
pub mod runtime;
pub mod skills;
pub mod trust;

use actix_web::HttpRequest;

use crate::state::AppState;

/// The base URL webhook URLs start with: `NITEJAR_PUBLIC_URL`, else what this request was sent to.
pub fn base_url(state: &AppState, req: &HttpRequest) -> String {
    match state.config.public_base_url() {
        Some(base) => base,
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}
