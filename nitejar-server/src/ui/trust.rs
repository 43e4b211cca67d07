//! `/admin/trust`: the trusted keys and allowlist entries plugins are judged with. The
//! environment's are listed with their source and cannot be removed here; an operator adds and
//! removes stored ones (not under saas_locked). A change applies at once (the page says what it
//! activated or took out) and is receipted. A refused form comes back with the reason under its
//! field and nothing changed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::lifecycle::{LifecycleError, TrustEntryKind, TrustSettings, TrustSource};
use nitejar_core::trust::TrustMode;

use super::{format_ms, redirect, render, Chrome};
use crate::api::trust::{apply, changed_by, ENVIRONMENT_NOTE, LOCKED_NOTE};
use crate::auth::{Admin, AdminForm};
use crate::plugins::error_status;
use crate::state::AppState;

/// One key or entry on the page.
pub struct Line {
    /// The key id, or the entry.
    pub ident: String,
    /// The public key line (keys), else empty.
    pub value: String,
    /// `environment` or `stored`.
    pub source: &'static str,
    pub in_effect: bool,
    pub removable: bool,
    /// Who added it and when (stored).
    pub added: String,
}

#[derive(Template)]
#[template(path = "trust.html")]
struct TrustPage {
    chrome: Chrome,
    mode: &'static str,
    editable: bool,
    allowlist_applies: bool,
    keys: Vec<Line>,
    allowlist: Vec<Line>,
    environment_note: &'static str,
    locked_note: Option<&'static str>,
    /// A refused form: which (`key`, `allow`) and why.
    key_error: Option<String>,
    allow_error: Option<String>,
    /// The entry typed into a refused allowlist form (a key is never sent back).
    allow_value: String,
    /// What the last change did in this server.
    applied: Option<String>,
}

fn source_name(source: TrustSource) -> &'static str {
    match source {
        TrustSource::Environment => "environment",
        TrustSource::Stored => "stored",
    }
}

fn added(by: &Option<String>, at: Option<i64>) -> String {
    match (by, at) {
        (Some(by), Some(at)) => format!("{by}, {}", format_ms(at)),
        (Some(by), None) => by.clone(),
        _ => String::new(),
    }
}

fn trust_page(state: &AppState, admin: &Admin, settings: TrustSettings) -> TrustPage {
    TrustPage {
        chrome: Chrome::new(state, admin, "Trust", "trust"),
        mode: settings.mode.as_str(),
        editable: settings.editable,
        allowlist_applies: settings.allowlist_applies,
        keys: settings
            .keys
            .iter()
            .map(|k| Line {
                ident: k.key_id.clone(),
                value: k.public_key.clone(),
                source: source_name(k.source),
                in_effect: k.in_effect,
                removable: k.removable,
                added: added(&k.added_by, k.added_at),
            })
            .collect(),
        allowlist: settings
            .allowlist
            .iter()
            .map(|e| Line {
                ident: e.entry.clone(),
                value: String::new(),
                source: source_name(e.source),
                in_effect: e.in_effect,
                removable: e.removable,
                added: added(&e.added_by, e.added_at),
            })
            .collect(),
        environment_note: ENVIRONMENT_NOTE,
        locked_note: (settings.mode == TrustMode::SaasLocked).then_some(LOCKED_NOTE),
        key_error: None,
        allow_error: None,
        allow_value: String::new(),
        applied: None,
    }
}

fn failure_page(message: &str) -> HttpResponse {
    super::error_page(StatusCode::INTERNAL_SERVER_ERROR, message)
}

async fn show(admin: &Admin, state: &AppState, notice: Option<&str>) -> HttpResponse {
    match state.plugins.trust_settings().await {
        Ok(settings) => {
            let mut p = trust_page(state, admin, settings);
            p.chrome = p.chrome.with_notice(notice);
            render(StatusCode::OK, &p)
        }
        Err(e) => failure_page(&format!("The trust settings could not be read: {e}")),
    }
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

pub async fn page(
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    show(&admin, &state, query.notice.as_deref()).await
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// After a change: the page with what it did, or the form again with why it was refused.
async fn after(
    state: &AppState,
    admin: &Admin,
    kind: TrustEntryKind,
    typed: &str,
    result: Result<nitejar_core::lifecycle::TrustChange, LifecycleError>,
    notice: &'static str,
) -> HttpResponse {
    match result {
        Ok(change) => {
            let applied = apply(state, &change).await;
            let mut said = Vec::new();
            for (key, text) in [("activated", "Now running"), ("deactivated", "Taken out")] {
                let names: Vec<String> = applied[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if !names.is_empty() {
                    said.push(format!("{text}: {}.", names.join(", ")));
                }
            }
            if said.is_empty() {
                return redirect(format!("/admin/trust?notice={notice}"));
            }
            match state.plugins.trust_settings().await {
                Ok(settings) => {
                    let mut p = trust_page(state, admin, settings);
                    p.chrome = p.chrome.with_notice(Some(notice));
                    p.applied = Some(said.join(" "));
                    render(StatusCode::OK, &p)
                }
                Err(e) => failure_page(&format!("The trust settings could not be read: {e}")),
            }
        }
        Err(e) => {
            let (status, _) = error_status(&e);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                return failure_page(&format!("The change could not be made: {e}"));
            }
            let settings = match state.plugins.trust_settings().await {
                Ok(s) => s,
                Err(e) => {
                    return failure_page(&format!("The trust settings could not be read: {e}"))
                }
            };
            let mut p = trust_page(state, admin, settings);
            let message = format!("Nothing was changed: {}", ui_message(&e));
            match kind {
                TrustEntryKind::Key => p.key_error = Some(message),
                TrustEntryKind::Allow => {
                    p.allow_error = Some(message);
                    p.allow_value = typed.trim().to_owned();
                }
            }
            render(status, &p)
        }
    }
}

/// The error in the page's terms (fields and buttons), not the CLI's.
fn ui_message(e: &LifecycleError) -> String {
    use nitejar_core::lifecycle::TrustSettingsError as T;
    match e {
        LifecycleError::TrustSettings(T::Invalid { kind, problem }) => {
            format!(
                "the {} {problem}",
                match kind {
                    TrustEntryKind::Key => "public key",
                    TrustEntryKind::Allow => "allowlist entry",
                }
            )
        }
        other => {
            let text = other.to_string();
            text.trim_end_matches("; nothing was changed").to_owned()
        }
    }
}

pub async fn add_key(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let text = field(&post.form, "public_key").to_owned();
    let result = state
        .plugins
        .add_trust_entry(TrustEntryKind::Key, &text, &changed_by(&post.admin))
        .await;
    after(
        &state,
        &post.admin,
        TrustEntryKind::Key,
        "",
        result,
        "key_added",
    )
    .await
}

pub async fn remove_key(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let id = field(&post.form, "key_id").to_owned();
    let result = state
        .plugins
        .remove_trust_entry(TrustEntryKind::Key, &id, &changed_by(&post.admin))
        .await;
    after(
        &state,
        &post.admin,
        TrustEntryKind::Key,
        "",
        result,
        "key_removed",
    )
    .await
}

pub async fn add_allow(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let text = field(&post.form, "entry").to_owned();
    let result = state
        .plugins
        .add_trust_entry(TrustEntryKind::Allow, &text, &changed_by(&post.admin))
        .await;
    after(
        &state,
        &post.admin,
        TrustEntryKind::Allow,
        &text,
        result,
        "entry_added",
    )
    .await
}

pub async fn remove_allow(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let text = field(&post.form, "entry").to_owned();
    let result = state
        .plugins
        .remove_trust_entry(TrustEntryKind::Allow, &text, &changed_by(&post.admin))
        .await;
    after(
        &state,
        &post.admin,
        TrustEntryKind::Allow,
        "",
        result,
        "entry_removed",
    )
    .await
}
