//! `/admin/runtime`: how plugins run here, what the host enforces, and which libraries are loaded.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::{format_ms, render, Chrome};
use crate::api::runtime::{summary, RuntimeSummary};
use crate::auth::Admin;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "runtime.html")]
struct RuntimePage {
    chrome: Chrome,
    r: RuntimeSummary,
    libraries: Vec<LibraryLine>,
}

struct LibraryLine {
    plugin_id: String,
    version: String,
    loaded: String,
    size: String,
    active: bool,
}

pub async fn page(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let r = summary(&state);
    let libraries = r
        .loaded_libraries
        .iter()
        .map(|l| LibraryLine {
            plugin_id: l.plugin_id.clone(),
            version: l.version.clone(),
            loaded: format_ms(l.loaded_at),
            size: format!("{:.1} MiB", l.size_bytes as f64 / 1_048_576.0),
            active: l.active,
        })
        .collect();
    let page = RuntimePage {
        chrome: Chrome::new(&state, &admin, "Runtime", "runtime"),
        r,
        libraries,
    };
    render(StatusCode::OK, &page)
}
