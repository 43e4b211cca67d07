//! `/admin/plugins`: installed and built-in plugins, their state and alerts; one plugin's page with
//! its versions, declared capabilities (each with where it is enforced and whether it is
//! acknowledged), recent receipts and last error.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::store::{PageRequest, PluginVersionRow};
use serde::Deserialize;

use super::receipts::ReceiptLine;
use super::{error_page, format_ms, render, Chrome};
use crate::auth::Principal;
use crate::plugins::{self, PluginView};
use crate::posture;
use crate::serve::AppState;

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct ListPage {
    chrome: Chrome,
    plugins: Vec<PluginView>,
    alerts: Vec<String>,
}

struct VersionLine {
    version: String,
    installed: String,
    checksum: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "plugin.html")]
struct DetailPage {
    chrome: Chrome,
    p: PluginView,
    warning: &'static str,
    versions: Vec<VersionLine>,
    receipts: Vec<ReceiptLine>,
}

fn store_failure(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!("plugins page: {e}");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Plugins could not be read; see the server log.",
    )
}

pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<Notice>,
) -> HttpResponse {
    let plugins = match plugins::list(&state).await {
        Ok(p) => p,
        Err(e) => return store_failure(e),
    };
    let mut alerts: Vec<String> = plugins
        .iter()
        .filter(|p| p.state == "error")
        .map(|p| {
            format!(
                "{} could not be loaded: {}",
                p.id,
                p.last_load_error.clone().unwrap_or_default()
            )
        })
        .collect();
    let auto_disabled = nitejar_core::store::EventFilter {
        kind: Some("auto_disable".into()),
        ..Default::default()
    };
    if let Ok(page) = state
        .store
        .list_events(&auto_disabled, PageRequest::first(5))
        .await
    {
        for e in page.items {
            alerts.push(format!(
                "{} was disabled automatically at {} after repeated failures; see its receipts.",
                e.plugin_id,
                format_ms(e.created_at)
            ));
        }
    }
    let page = ListPage {
        chrome: Chrome::new(&state, &principal, "Plugins", "plugins")
            .with_notice(query.notice.as_deref()),
        plugins,
        alerts,
    };
    render(StatusCode::OK, &page)
}

pub async fn detail(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> HttpResponse {
    let p = match plugins::get(&state, &id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("No plugin `{id}` is installed."),
            )
        }
        Err(e) => return store_failure(e),
    };
    let versions: Vec<PluginVersionRow> = state
        .store
        .list_plugin_versions(&id)
        .await
        .unwrap_or_default();
    let receipts = match state
        .store
        .list_plugin_events(&id, PageRequest::first(20))
        .await
    {
        Ok(page) => page.items.iter().map(ReceiptLine::from).collect(),
        Err(e) => return store_failure(e),
    };
    let versions = versions
        .into_iter()
        .rev()
        .map(|v| VersionLine {
            current: p.version.as_deref() == Some(v.version.as_str()),
            installed: format_ms(v.installed_at),
            checksum: v.checksum.chars().take(16).collect(),
            version: v.version,
        })
        .collect();
    let page = DetailPage {
        chrome: Chrome::new(&state, &principal, p.name.clone(), "plugins")
            .with_notice(query.notice.as_deref()),
        warning: posture::IN_PROCESS_WARNING,
        p,
        versions,
        receipts,
    };
    render(StatusCode::OK, &page)
}
