//! `/admin/plugins`: installed and built-in plugins, their state and alerts; one plugin's page with
//! its versions, declared capabilities (each with where it is enforced and whether it is
//! acknowledged), recent receipts and last error.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::install::{GitSpec, InstallSource, NpmSpec};
use nitejar_core::lifecycle::agent_ops::VersionRequest;
use nitejar_core::lifecycle::{Acknowledge, EnableRequest, LifecycleError, UninstallOptions};
use nitejar_core::store::PluginRequestRow;
use nitejar_core::store::{PageRequest, PluginVersionRow};
use nitejar_core::trust::consent::ConsentDiff;
use nitejar_core::trust::TrustMode;
use serde::Deserialize;

use super::hook_chart::HookChart;
use super::plugin_config::{self, SettingsSection};
use super::receipts::ReceiptLine;
use super::{error_page, format_ms, redirect, render, Chrome};
use crate::api;
use crate::api::error::ApiError;
use crate::auth::{Admin, AdminForm};
use crate::plugins::{self, PluginView};
use crate::posture;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
    /// On the review page: the agent's request (`plugin_requests`) the review decides.
    request: Option<String>,
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
    /// Newer than the current version: the button says "Switch to", not "Roll back to".
    newer: bool,
    /// Whether a consent is on record for it (it cannot run without one).
    consent: String,
}

#[derive(Template)]
#[template(path = "plugin.html")]
struct DetailPage {
    chrome: Chrome,
    p: PluginView,
    warning: &'static str,
    versions: Vec<VersionLine>,
    receipts: Vec<ReceiptLine>,
    /// A third-party plugin with a current version (not built in, not uninstalled).
    installed: bool,
    /// Its settings form, when it declares a config schema or secrets.
    settings: Option<SettingsSection>,
    /// Its hook calls over the last 24 h.
    chart: HookChart,
}

fn store_failure(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!("plugins page: {e}");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Plugins could not be read; see the server log.",
    )
}

pub async fn list(
    admin: Admin,
    state: web::Data<AppState>,
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
        chrome: Chrome::new(&state, &admin, "Plugins", "plugins")
            .with_notice(query.notice.as_deref()),
        plugins,
        alerts,
    };
    render(StatusCode::OK, &page)
}

pub async fn detail(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> HttpResponse {
    detail_page(
        &state,
        &admin,
        &id,
        query.notice.as_deref(),
        None,
        StatusCode::OK,
    )
    .await
}

/// A plugin's page; `settings` replaces its settings section as stored (a refused form shown
/// again, with `status`).
pub(crate) async fn detail_page(
    state: &AppState,
    admin: &Admin,
    id: &str,
    notice: Option<&str>,
    settings: Option<SettingsSection>,
    status: StatusCode,
) -> HttpResponse {
    let p = match plugins::get(state, id).await {
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
        .list_plugin_versions(id)
        .await
        .unwrap_or_default();
    let receipts = match state
        .store
        .list_plugin_events(id, PageRequest::first(20))
        .await
    {
        Ok(page) => page.items.iter().map(ReceiptLine::from).collect(),
        Err(e) => return store_failure(e),
    };
    let consents = state.store.list_consents(id).await.unwrap_or_default();
    let versions: Vec<VersionLine> = versions
        .into_iter()
        .rev()
        .map(|v| VersionLine {
            consent: match consents
                .iter()
                .find(|c| c.version == v.version && c.checksum == v.checksum)
            {
                Some(c) if c.basis == "carried_over" => "consented (carried over)".into(),
                Some(c) if c.basis == "existing" => "consented (enabled before)".into(),
                Some(_) => "consented".into(),
                None => "no consent".into(),
            },
            current: p.version.as_deref() == Some(v.version.as_str()),
            newer: match (
                semver::Version::parse(&v.version),
                p.version.as_deref().map(semver::Version::parse),
            ) {
                (Ok(v), Some(Ok(current))) => v > current,
                _ => false,
            },
            installed: format_ms(v.installed_at),
            checksum: v.checksum.chars().take(16).collect(),
            version: v.version,
        })
        .collect();
    let installed = p.origin != "builtin" && p.version.is_some() && !versions.is_empty();
    let settings = match settings {
        Some(section) => Some(section),
        None if installed => match state.plugins.settings(id).await {
            Ok(settings) => Some(plugin_config::section(&settings)),
            Err(e) => {
                tracing::warn!(plugin.id = %id, "plugin page: settings not shown: {e}");
                None
            }
        },
        None => None,
    }
    .filter(|s| !s.is_empty());
    let chart =
        match api::plugin_stats::hook_stats(state, id, api::plugin_stats::DEFAULT_HOURS).await {
            Ok(stats) => HookChart::new(&stats),
            Err(e) => return store_failure(e.to_string()),
        };
    let page = DetailPage {
        chrome: Chrome::new(state, admin, p.name.clone(), "plugins").with_notice(notice),
        chart,
        installed,
        warning: warning_of(&p),
        p,
        versions,
        receipts,
        settings,
    };
    render(status, &page)
}

// --- install ---------------------------------------------------------------------------------

/// Which install form a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Upload,
    Npm,
    Git,
    Local,
}

#[derive(Template)]
#[template(path = "plugin_install.html")]
struct InstallPage {
    chrome: Chrome,
    warning: &'static str,
    /// The form that failed and why.
    error: Option<(Tab, String)>,
    npm: String,
    git_url: String,
    git_ref: String,
    path: String,
    max_mib: u64,
    /// `saas_locked`: uploads and paths are refused, so their forms are not offered.
    locked: bool,
}

impl InstallPage {
    fn new(state: &AppState, admin: &Admin) -> InstallPage {
        InstallPage {
            chrome: Chrome::new(state, admin, "Install a plugin", "plugins"),
            warning: posture::warning(state.config.plugin_execution),
            error: None,
            npm: String::new(),
            git_url: String::new(),
            git_ref: String::new(),
            path: String::new(),
            max_mib: state.plugins.options().limits.max_archive_bytes / (1024 * 1024),
            locked: state.config.trust_mode() == TrustMode::SaasLocked,
        }
    }

    fn error_for(&self, tab: Tab) -> Option<&str> {
        match &self.error {
            Some((t, message)) if *t == tab => Some(message),
            _ => None,
        }
    }
}

pub async fn install_page(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    render(StatusCode::OK, &InstallPage::new(&state, &admin))
}

/// After an install: the review page, or the install page again with the reason.
async fn installed(
    state: &AppState,
    admin: &Admin,
    result: Result<InstallSource, ApiError>,
    tab: Tab,
    fill: impl FnOnce(&mut InstallPage),
) -> HttpResponse {
    let result = match result {
        Ok(source) => state.plugins.install(source).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => redirect(format!(
            "/admin/plugins/{}/review?notice=installed",
            outcome.id
        )),
        Err(e) => {
            let mut page = InstallPage::new(state, admin);
            fill(&mut page);
            page.error = Some((tab, e.message.clone()));
            render(e.status, &page)
        }
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

pub async fn install_npm(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let spec = field(&form, "spec").to_owned();
    let source = NpmSpec::parse(&spec).map(InstallSource::Npm).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_source",
            e.to_string(),
        )
    });
    installed(&state, &admin, source, Tab::Npm, |p| p.npm = spec).await
}

pub async fn install_git(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let url = field(&form, "url").to_owned();
    let reference = field(&form, "ref").to_owned();
    let source = GitSpec::parse(&url)
        .map(|mut spec| {
            if !reference.is_empty() {
                spec.reference = Some(reference.clone());
            }
            InstallSource::Git(spec)
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_source",
                e.to_string(),
            )
        });
    installed(&state, &admin, source, Tab::Git, |p| {
        p.git_url = url;
        p.git_ref = reference;
    })
    .await
}

pub async fn install_local(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let path = field(&form, "path").to_owned();
    let source = api::plugins::local_source(&path);
    installed(&state, &admin, source, Tab::Local, |p| p.path = path).await
}

pub async fn upload(
    admin: Admin,
    state: web::Data<AppState>,
    multipart: Multipart,
) -> HttpResponse {
    let upload = api::plugins::read_upload(&state, multipart).await;
    let source = upload
        .as_ref()
        .map(api::plugins::UploadedPackage::source)
        .map_err(Clone::clone);
    let page = installed(&state, &admin, source, Tab::Upload, |_| {}).await;
    // Only now, the install finished either way, may the received file go.
    drop(upload);
    page
}

// --- review, enable, and the rest ------------------------------------------------------------

#[derive(Template)]
#[template(path = "plugin_review.html")]
struct ReviewPage {
    chrome: Chrome,
    p: PluginView,
    warning: &'static str,
    consent_text: String,
    error: Option<String>,
    /// Acknowledgements ticked in a refused submission.
    ticked: Vec<String>,
    /// Every declared permission must be acknowledged in this trust mode.
    ack_required: bool,
    /// The agent's request this review approves or rejects (a pending one).
    request: Option<PluginRequestRow>,
}

impl ReviewPage {
    fn is_ticked(&self, permission: &str) -> bool {
        self.ticked.iter().any(|t| t == permission)
    }
}

async fn review_page(
    state: &AppState,
    admin: &Admin,
    id: &str,
    notice: Option<&str>,
    error: Option<(StatusCode, String)>,
    ticked: Vec<String>,
    request: Option<PluginRequestRow>,
) -> HttpResponse {
    let detail = match plugins::detail(state, id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("No plugin `{id}` is installed."),
            )
        }
        Err(e) => return store_failure(e),
    };
    let Some(consent_text) = detail.consent_text else {
        return error_page(
            StatusCode::CONFLICT,
            &format!("`{id}` is built into this server; it needs no consent. Enable or disable it on its page."),
        );
    };
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let page = ReviewPage {
        chrome: Chrome::new(
            state,
            admin,
            format!("Review {}", detail.plugin.name),
            "plugins",
        )
        .with_notice(notice),
        warning: warning_of(&detail.plugin),
        p: detail.plugin,
        consent_text,
        error: error.map(|(_, m)| m),
        ticked,
        ack_required: state.config.trust_mode() != TrustMode::SelfHostOpen,
        request,
    };
    render(status, &page)
}

pub async fn review(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> HttpResponse {
    let request = match &query.request {
        Some(rid) => match pending_request_of(&state, &id, rid).await {
            Ok(request) => Some(request),
            Err(page) => return page,
        },
        None => None,
    };
    if let Some(request) = request.clone() {
        if let Some(asked) = VersionRequest::of_request(&request) {
            return version_request_page(&state, &admin, &id, request, asked, None).await;
        }
    }
    review_page(
        &state,
        &admin,
        &id,
        query.notice.as_deref(),
        None,
        Vec::new(),
        request,
    )
    .await
}

/// The review of an agent's upgrade or edit: what the new version adds to the consent, the
/// consent text, and approve (with the operator's consent) or reject.
async fn version_request_page(
    state: &AppState,
    admin: &Admin,
    id: &str,
    request: PluginRequestRow,
    asked: VersionRequest,
    refused: Option<(StatusCode, String)>,
) -> HttpResponse {
    let edit = request.action == "edit_source";
    let status = refused.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    consent_page_as(
        status,
        state,
        admin,
        ConsentAsk {
            id: id.to_string(),
            heading: if edit {
                format!(
                    "Review an agent's edit of {id}: {} → {}",
                    asked.from, asked.to
                )
            } else {
                format!(
                    "Review an agent's upgrade of {id}: {} → {}",
                    asked.from, asked.to
                )
            },
            action: format!("/admin/plugins/{id}/requests/{}/approve", request.id),
            hidden: Vec::new(),
            button: if edit {
                "Consent and install the edited version".into()
            } else {
                "Consent and upgrade".into()
            },
            ack_new: true,
            text: asked.consent_text.clone(),
            diff: asked.consent_diff.clone(),
            upload: false,
            request: Some((request, asked)),
            error: refused.map(|(_, m)| m),
        },
    )
    .await
}

/// Agent request `rid`, pending, for plugin `id`; else the page that says why not.
async fn pending_request_of(
    state: &AppState,
    id: &str,
    rid: &str,
) -> Result<PluginRequestRow, HttpResponse> {
    match state.plugins.plugin_request(rid).await {
        Ok(r) if r.plugin_id != id => Err(error_page(
            StatusCode::NOT_FOUND,
            &format!("Request {rid} is not about `{id}`."),
        )),
        Ok(r) if r.status != "pending" => Err(error_page(
            StatusCode::CONFLICT,
            &format!("Request {rid} is {} already.", r.status),
        )),
        Ok(r) => Ok(r),
        Err(e) => {
            let (status, _) = plugins::error_status(&e);
            Err(error_page(status, &plugins::ui_message(&e)))
        }
    }
}

/// The consent and acknowledgements a review form gives.
fn consent_of(form: &[(String, String)], builtin: bool) -> (EnableRequest, Vec<String>) {
    let accept_consent = builtin
        || form
            .iter()
            .any(|(k, v)| k == "accept_consent" && v == "yes");
    let ticked: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "ack")
        .map(|(_, v)| v.clone())
        .collect();
    let request = EnableRequest {
        accept_consent,
        acknowledge: if ticked.is_empty() {
            Acknowledge::None
        } else {
            Acknowledge::These(ticked.clone())
        },
    };
    (request, ticked)
}

/// The review form's words for a refused enable.
fn refusal_message(e: &LifecycleError) -> String {
    match e {
        LifecycleError::ConsentRequired { .. } => {
            "Tick “I have read this and consent” to enable the plugin.".to_owned()
        }
        LifecycleError::AcknowledgementMissing { mode, missing, .. } => format!(
            "The {mode} trust mode needs every declared permission acknowledged; not ticked: {}.",
            missing.join(", ")
        ),
        other => plugins::ui_message(other),
    }
}

/// Approves an agent's request from its review page: the plugin is enabled with the consent
/// and acknowledgements ticked there, as for any enable.
pub async fn approve_request(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, rid) = path.into_inner();
    let AdminForm { admin, form } = post;
    let request = match pending_request_of(&state, &id, &rid).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    let asked = VersionRequest::of_request(&request);
    let (consent, ticked) = match asked {
        // The version consent page's boxes: consent, and the permissions it adds.
        Some(_) => (
            EnableRequest {
                accept_consent: field(&form, "accept_consent") == "yes",
                acknowledge: if field(&form, "ack_new") == "yes" {
                    Acknowledge::All
                } else {
                    Acknowledge::None
                },
            },
            Vec::new(),
        ),
        None => consent_of(&form, false),
    };
    let by = crate::api::trust::changed_by(&admin);
    match (
        state.plugins.approve_request(&rid, consent, &by).await,
        asked,
    ) {
        (Ok(_), _) => redirect(format!("/admin/plugins/{id}?notice=request_approved")),
        (Err(e), Some(asked)) => {
            let (status, _) = plugins::error_status(&e);
            let message = match &e {
                LifecycleError::ConsentRequired { .. } => {
                    "Tick “I have read this and consent” to approve the new version.".to_owned()
                }
                other => plugins::ui_message(other),
            };
            version_request_page(&state, &admin, &id, request, asked, Some((status, message))).await
        }
        (Err(e), None) => {
            let (status, _) = plugins::error_status(&e);
            let message = refusal_message(&e);
            review_page(
                &state,
                &admin,
                &id,
                None,
                Some((status, message)),
                ticked,
                Some(request),
            )
            .await
        }
    }
}

/// Rejects an agent's request from its review page.
pub async fn reject_request(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, rid) = path.into_inner();
    let by = crate::api::trust::changed_by(&post.admin);
    match state.plugins.reject_request(&rid, &by).await {
        Ok(_) => redirect("/admin/agents?notice=request_rejected".to_string()),
        Err(e) => {
            let (status, _) = plugins::error_status(&e);
            error_page(status, &format!("{id}: {}", plugins::ui_message(&e)))
        }
    }
}

pub async fn enable(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let builtin = plugins::is_builtin(&id);
    let (request, ticked) = consent_of(&form, builtin);
    match state.plugins.enable(&id, request).await {
        Ok(_) => redirect(format!("/admin/plugins/{id}?notice=enabled")),
        Err(e) => {
            let (status, _) = plugins::error_status(&e);
            let message = refusal_message(&e);
            if builtin {
                return error_page(status, &message);
            }
            review_page(
                &state,
                &admin,
                &id,
                None,
                Some((status, message)),
                ticked,
                None,
            )
            .await
        }
    }
}

/// A change made from the plugin page: back to it with a notice, or an error page saying why.
fn after(id: &str, result: Result<(), LifecycleError>, notice: &str) -> HttpResponse {
    match result {
        Ok(()) => redirect(format!("/admin/plugins/{id}?notice={notice}")),
        Err(e) => {
            let (status, _) = plugins::error_status(&e);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!("plugin {id}: {e}");
            }
            error_page(status, &plugins::ui_message(&e))
        }
    }
}

/// Where a plugin's code runs (the execution form on its page).
pub async fn execution(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let mode = match field(&post.form, "mode") {
        "default" => None,
        other => match nitejar_core::lifecycle::execution::parse_execution(other) {
            Some(mode) => Some(mode),
            None => {
                return error_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Choose where the plugin runs: the server's default, isolated, or in the server's process.",
                )
            }
        },
    };
    // Empty: the server's default.
    let limit = |name: &str, label: &str| -> Result<Option<u64>, String> {
        match field(&post.form, name).trim() {
            "" => Ok(None),
            text => text.parse::<u64>().map(Some).map_err(|_| {
                format!("{label} must be a whole number, or empty for the server's default; not “{text}”.")
            }),
        }
    };
    let (memory_mib, cpu_seconds) = match (
        limit("memory_mib", "Memory (MiB)"),
        limit("cpu_seconds", "Processor time (s)"),
    ) {
        (Ok(m), Ok(c)) => (m, c),
        (Err(e), _) | (_, Err(e)) => return error_page(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let choice = nitejar_core::lifecycle::execution::ExecutionChoice {
        mode,
        memory_mib,
        cpu_seconds,
    };
    let result = state.plugins.set_execution(&id, choice).await.map(|_| ());
    after(&id, result, "execution_changed")
}

pub async fn disable(
    _post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    after(&id, state.plugins.disable(&id).await, "disabled")
}

pub async fn rollback(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let form = &post.form;
    let version = field(form, "version");
    if version.is_empty() {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose the installed version to roll back to.",
        );
    }
    let accept = form
        .iter()
        .any(|(k, v)| k == "accept_consent" && v == "yes");
    match state.plugins.rollback(&id, version, accept).await {
        Err(LifecycleError::ConsentRequired { text, diff, .. }) => {
            consent_page(
                &state,
                &post.admin,
                ConsentAsk {
                    id: id.to_string(),
                    heading: format!("Consent to {id} {version}"),
                    action: format!("/admin/plugins/{id}/rollback"),
                    hidden: vec![("version".into(), version.to_owned())],
                    button: format!("Consent and roll back to {version}"),
                    ack_new: false,
                    text,
                    diff: diff.unwrap_or_default(),
                    upload: false,
                    request: None,
                    error: None,
                },
            )
            .await
        }
        result => after(&id, result, "rolled_back"),
    }
}

/// The warning for the plugin `p` (where its code runs now, or would if enabled).
fn warning_of(p: &PluginView) -> &'static str {
    if p.execution_mode == nitejar_core::receipts::ExecutionMode::Isolated.as_str() {
        posture::ISOLATED_WARNING
    } else {
        posture::IN_PROCESS_WARNING
    }
}

/// What a consent page asks for, and where it posts the answer.
struct ConsentAsk {
    id: String,
    heading: String,
    action: String,
    hidden: Vec<(String, String)>,
    button: String,
    ack_new: bool,
    text: String,
    diff: ConsentDiff,
    /// The form sends the package file again (an upgrade by upload).
    upload: bool,
    /// The agent's upgrade or edit request this consent approves.
    request: Option<(PluginRequestRow, VersionRequest)>,
    /// Why the last submission was refused.
    error: Option<String>,
}

impl ConsentAsk {
    fn with_upload(mut self) -> Self {
        self.upload = true;
        self
    }
}

#[derive(Template)]
#[template(path = "plugin_consent.html")]
struct ConsentPage {
    chrome: Chrome,
    warning: &'static str,
    id: String,
    heading: String,
    action: String,
    hidden: Vec<(String, String)>,
    button: String,
    ack_new: bool,
    text: String,
    diff: ConsentDiff,
    upload: bool,
    /// The version runs in a process of its own.
    isolated: bool,
    request: Option<(PluginRequestRow, VersionRequest)>,
    error: Option<String>,
}

/// The page that asks consent to a version (an upgrade or a rollback that needs it), with what it
/// adds to and drops from what was consented before, and the same action again.
async fn consent_page(state: &AppState, admin: &Admin, ask: ConsentAsk) -> HttpResponse {
    consent_page_as(StatusCode::PRECONDITION_REQUIRED, state, admin, ask).await
}

/// [`consent_page`] answered with `status` (an agent's request is a page to read, not a refusal).
async fn consent_page_as(
    status: StatusCode,
    state: &AppState,
    admin: &Admin,
    ask: ConsentAsk,
) -> HttpResponse {
    // Where the version asked about will run: the plugin's choice, else the server's default.
    let mode = match state.store.get_plugin(&ask.id).await {
        Ok(Some(row)) => state.plugins.execution_of(&row),
        Ok(None) => state.config.plugin_execution,
        Err(e) => return store_failure(e),
    };
    let page = ConsentPage {
        chrome: Chrome::new(state, admin, ask.heading.clone(), "plugins"),
        warning: posture::warning(mode),
        id: ask.id,
        heading: ask.heading,
        action: ask.action,
        hidden: ask.hidden,
        button: ask.button,
        ack_new: ask.ack_new,
        text: ask.text,
        diff: ask.diff,
        upload: ask.upload,
        isolated: mode == nitejar_core::receipts::ExecutionMode::Isolated,
        request: ask.request,
        error: ask.error,
    };
    render(status, &page)
}

pub async fn upgrade(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let form = &post.form;
    let text = field(form, "source");
    let source_text = text.to_owned();
    let source = if text.is_empty() {
        None
    } else {
        match InstallSource::detect(text) {
            Ok(s) => Some(s),
            Err(e) => return error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        }
    };
    let request = EnableRequest {
        accept_consent: form
            .iter()
            .any(|(k, v)| k == "accept_consent" && v == "yes"),
        acknowledge: if form.iter().any(|(k, v)| k == "ack_new" && v == "yes") {
            Acknowledge::All
        } else {
            Acknowledge::None
        },
    };
    match state.plugins.upgrade(&id, source, request).await {
        Err(LifecycleError::ConsentRequired { text, diff, .. }) => {
            consent_page(
                &state,
                &post.admin,
                ConsentAsk {
                    id: id.to_string(),
                    heading: format!("Consent to the new version of {id}"),
                    action: format!("/admin/plugins/{id}/upgrade"),
                    hidden: vec![("source".into(), source_text)],
                    button: "Consent and upgrade".into(),
                    ack_new: true,
                    text,
                    diff: diff.unwrap_or_default(),
                    upload: false,
                    request: None,
                    error: None,
                },
            )
            .await
        }
        result => after(&id, result.map(|_| ()), "upgraded"),
    }
}

/// The upgrade form's upload: the package file, with the consent boxes sent before it. When the
/// new version needs a consent that was not ticked, the consent page asks to tick it and upload the
/// package again (nothing of the refused upload is kept).
pub async fn upgrade_upload(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    multipart: Multipart,
) -> HttpResponse {
    let upload = match api::plugins::read_upload(&state, multipart).await {
        Ok(upload) => upload,
        Err(e) => return error_page(e.status, &e.message),
    };
    let request = EnableRequest {
        accept_consent: upload.has_field("accept_consent", "yes"),
        acknowledge: if upload.has_field("ack_new", "yes") {
            Acknowledge::All
        } else {
            Acknowledge::None
        },
    };
    let result = state
        .plugins
        .upgrade(&id, Some(upload.source()), request)
        .await;
    // Only now, the upgrade finished either way, may the received file go.
    drop(upload);
    match result {
        Err(LifecycleError::ConsentRequired { text, diff, .. }) => {
            consent_page(
                &state,
                &admin,
                ConsentAsk {
                    id: id.to_string(),
                    heading: format!("Consent to the new version of {id}"),
                    action: format!("/admin/plugins/{id}/upgrade/upload"),
                    hidden: Vec::new(),
                    button: "Consent and upload again".into(),
                    ack_new: true,
                    text,
                    diff: diff.unwrap_or_default(),
                    upload: false,
                    request: None,
                    error: None,
                }
                .with_upload(),
            )
            .await
        }
        result => after(&id, result.map(|_| ()), "upgraded"),
    }
}

pub async fn uninstall(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let form = post.form;
    let options = UninstallOptions {
        purge_files: form.iter().any(|(k, v)| k == "purge_files" && v == "yes"),
        purge_data: form.iter().any(|(k, v)| k == "purge_data" && v == "yes"),
    };
    match state.plugins.uninstall(&id, options).await {
        Ok(_) => redirect("/admin/plugins?notice=uninstalled"),
        Err(e) => after(&id, Err(e), ""),
    }
}
