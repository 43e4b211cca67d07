//! `/admin/integrations`: the list, and create/edit forms generated from each type's schema.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use nitejar_core::crypto::REDACTED;
use nitejar_core::store::IntegrationRow;
use nitejar_sdk::IntegrationDescriptor;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::form::{config_from_form, fields, Field};
use super::{error_page, format_ms, redirect, render, Chrome};
use crate::api::base_url;
use crate::auth::{Admin, AdminForm};
use crate::integrations::{
    self as ops, IntegrationInput, IntegrationOpError, IntegrationPatch, SetupReport,
};
use crate::state::AppState;

struct TypeOption {
    kind: String,
    label: String,
    plugin: String,
}

struct Row {
    id: String,
    name: String,
    type_label: String,
    enabled: bool,
    available: bool,
    served: bool,
    owner: String,
    webhook_url: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct ListPage {
    chrome: Chrome,
    types: Vec<TypeOption>,
    items: Vec<Row>,
}

#[derive(Template)]
#[template(path = "integration_form.html")]
struct FormPage {
    chrome: Chrome,
    /// `None` for a new integration.
    existing: Option<Existing>,
    kind: String,
    type_label: String,
    type_description: String,
    plugin: String,
    name: String,
    enabled: bool,
    /// The type is available, so the configuration can be checked and changed.
    editable: bool,
    fields: Vec<Field>,
    problems: Vec<String>,
    setup: Option<SetupReport>,
    test: Option<(bool, String)>,
}

struct Existing {
    id: String,
    webhook_url: String,
    created: String,
    updated: String,
    available: bool,
    /// Its owner provides the type (see `integrations::Ownership`).
    served: bool,
    /// The plugin it belongs to, if any.
    owner: Option<String>,
    /// When it is not served and another plugin provides the type: what a hand-over gives it.
    handover: Option<ops::HandOver>,
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

fn type_label(d: Option<&IntegrationDescriptor>, kind: &str) -> String {
    match d {
        Some(d) => d.display_name.clone(),
        None => format!("{kind} (no active plugin provides it)"),
    }
}

fn descriptor(state: &AppState, kind: &str) -> Option<(IntegrationDescriptor, String)> {
    state
        .runtime
        .registry()
        .integration(kind)
        .map(|e| (e.descriptor.clone(), e.plugin.to_string()))
}

fn ops_error(e: IntegrationOpError) -> HttpResponse {
    let status = match e {
        IntegrationOpError::NotFound(_) => StatusCode::NOT_FOUND,
        IntegrationOpError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("admin UI: {e}");
    }
    error_page(status, &e.to_string())
}

pub async fn list(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<Notice>,
) -> HttpResponse {
    let rows = match state.integrations.list(None).await {
        Ok(rows) => rows,
        Err(e) => return ops_error(e),
    };
    let base = base_url(&state, &req);
    let registry = state.runtime.registry();
    let types = registry
        .integrations()
        .into_iter()
        .map(|e| TypeOption {
            kind: e.descriptor.kind.clone(),
            label: e.descriptor.display_name.clone(),
            plugin: e.plugin.id.to_string(),
        })
        .collect();
    let items = rows
        .iter()
        .map(|r| {
            let d = registry
                .integration(&r.integration_type)
                .map(|e| &e.descriptor);
            let owned = state.integrations.ownership(r);
            Row {
                id: r.id.clone(),
                name: r.name.clone(),
                type_label: type_label(d, &r.integration_type),
                enabled: r.enabled,
                available: d.is_some(),
                served: owned.served(),
                owner: owned.owner.unwrap_or_else(|| "no plugin".into()),
                webhook_url: ops::webhook_url(&base, &r.integration_type, &r.id),
                updated: format_ms(r.updated_at.saturating_mul(1000)),
            }
        })
        .collect();
    let page = ListPage {
        chrome: Chrome::new(&state, &admin, "Integrations", "integrations")
            .with_notice(query.notice.as_deref()),
        types,
        items,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn new_form(
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<NewQuery>,
) -> HttpResponse {
    let kind = query.kind.clone().unwrap_or_default();
    let Some((d, plugin)) = descriptor(&state, &kind) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("No active plugin provides integration type `{kind}`. Pick a type from the integrations page."),
        );
    };
    let page = FormPage {
        chrome: Chrome::new(
            &state,
            &admin,
            format!("New {} integration", d.display_name),
            "integrations",
        ),
        existing: None,
        kind: d.kind.clone(),
        type_label: d.display_name.clone(),
        type_description: d.description.clone(),
        plugin,
        name: String::new(),
        enabled: true,
        editable: true,
        fields: fields(
            &d.config_schema,
            d.ui_schema.as_ref(),
            &d.sensitive_fields,
            None,
        ),
        problems: Vec::new(),
        setup: None,
        test: None,
    };
    render(StatusCode::OK, &page)
}

/// Splits a submitted form into its `config.*` fields and the rest.
fn split_form(
    pairs: Vec<(String, String)>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut config = BTreeMap::new();
    let mut other = BTreeMap::new();
    for (k, v) in pairs {
        if k.starts_with("config.") {
            config.insert(k, v);
        } else {
            other.insert(k, v);
        }
    }
    (config, other)
}

/// Puts submitted values and errors back into the fields, for a form shown again.
fn refill(
    d: &IntegrationDescriptor,
    submitted: &BTreeMap<String, String>,
    config: Option<&Map<String, Value>>,
    field_errors: &BTreeMap<String, String>,
) -> Vec<Field> {
    let mut out = fields(
        &d.config_schema,
        d.ui_schema.as_ref(),
        &d.sensitive_fields,
        config,
    );
    for f in &mut out {
        if let Some(v) = submitted.get(&f.input) {
            if f.widget == "password" && v != REDACTED {
                // A secret typed into a form that was refused is not sent back to the browser.
                f.value = String::new();
                f.masked = false;
                f.retype = !v.is_empty();
            } else if f.widget != "checkbox" {
                f.value = v.clone();
            }
        }
        if f.widget == "checkbox" {
            f.checked = submitted.contains_key(&f.input);
        }
        f.error = field_errors.get(&f.key).cloned();
    }
    out
}

/// Field errors by key, and problems that belong to no field.
fn sort_problems(
    e: &IntegrationOpError,
    fields: &[Field],
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut by_field = BTreeMap::new();
    let mut general = Vec::new();
    match e {
        IntegrationOpError::Invalid(problems) => {
            for p in problems {
                let mut segments = p.path.trim_start_matches('/').split('/');
                let key = segments.next().unwrap_or("");
                // `/allowedChatIds/1`: the second line of a one-per-line field.
                let message = match segments.next().and_then(|i| i.parse::<usize>().ok()) {
                    Some(i) => format!("line {}: {}", i + 1, p.message),
                    None => p.message.clone(),
                };
                if !key.is_empty()
                    && fields.iter().any(|f| f.key == key)
                    && !by_field.contains_key(key)
                {
                    by_field.insert(key.to_owned(), message);
                } else {
                    general.push(message);
                }
            }
            if general.is_empty() {
                general.push("Check the fields marked below.".into());
            }
        }
        other => general.push(other.to_string()),
    }
    (by_field, general)
}

pub async fn create(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let (submitted, other) = split_form(form);
    let kind = other.get("type").cloned().unwrap_or_default();
    let name = other.get("name").cloned().unwrap_or_default();
    let enabled = other.contains_key("enabled");
    let Some((d, plugin)) = descriptor(&state, &kind) else {
        return ops_error(IntegrationOpError::UnknownType(kind));
    };
    let show_again = |field_errors: BTreeMap<String, String>, problems: Vec<String>| {
        let page = FormPage {
            chrome: Chrome::new(
                &state,
                &admin,
                format!("New {} integration", d.display_name),
                "integrations",
            ),
            existing: None,
            kind: d.kind.clone(),
            type_label: d.display_name.clone(),
            type_description: d.description.clone(),
            plugin: plugin.clone(),
            name: name.clone(),
            enabled,
            editable: true,
            fields: refill(&d, &submitted, None, &field_errors),
            problems,
            setup: None,
            test: None,
        };
        render(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let config = match config_from_form(&d.config_schema, d.ui_schema.as_ref(), &submitted, None) {
        Ok(c) => c,
        Err(field_errors) => {
            return show_again(field_errors, vec!["Check the fields marked below.".into()])
        }
    };
    let input = IntegrationInput {
        kind: d.kind.clone(),
        name: name.clone(),
        config,
        enabled,
    };
    match state
        .integrations
        .create(input, &base_url(&state, &req))
        .await
    {
        Ok((row, setup)) => match setup {
            Some(report) if !report.ok => {
                edit_page(&state, &admin, &req, &row, None, Some(report), None)
            }
            _ => redirect(format!("/admin/integrations/{}?notice=created", row.id)),
        },
        Err(IntegrationOpError::Store(e)) => ops_error(IntegrationOpError::Store(e)),
        Err(e) => {
            let blank = fields(
                &d.config_schema,
                d.ui_schema.as_ref(),
                &d.sensitive_fields,
                None,
            );
            let (field_errors, problems) = sort_problems(&e, &blank);
            show_again(field_errors, problems)
        }
    }
}

fn edit_page(
    state: &AppState,
    admin: &Admin,
    req: &HttpRequest,
    row: &IntegrationRow,
    notice: Option<&str>,
    setup: Option<SetupReport>,
    test: Option<(bool, String)>,
) -> HttpResponse {
    let found = descriptor(state, &row.integration_type);
    let view = state.integrations.view(row, &base_url(state, req));
    let stored = view.config.as_object().cloned().unwrap_or_default();
    let handover = match (&view.provider, view.served) {
        (Some(to), false) => Some(ops::HandOver::of(row, view.owner.clone(), to)),
        _ => None,
    };
    let (fields, type_description, plugin) = match &found {
        // The form is the provider's: shown only for a row it serves.
        Some((d, plugin)) if view.served => (
            fields(
                &d.config_schema,
                d.ui_schema.as_ref(),
                &d.sensitive_fields,
                Some(&stored),
            ),
            d.description.clone(),
            plugin.clone(),
        ),
        _ => (
            Vec::new(),
            String::new(),
            view.owner.clone().unwrap_or_default(),
        ),
    };
    let page = FormPage {
        chrome: Chrome::new(state, admin, row.name.clone(), "integrations").with_notice(notice),
        existing: Some(Existing {
            id: row.id.clone(),
            webhook_url: view.webhook_url.clone(),
            created: format_ms(row.created_at.saturating_mul(1000)),
            updated: format_ms(row.updated_at.saturating_mul(1000)),
            available: found.is_some(),
            served: view.served,
            owner: view.owner.clone(),
            handover,
        }),
        kind: row.integration_type.clone(),
        type_label: type_label(found.as_ref().map(|(d, _)| d), &row.integration_type),
        type_description,
        plugin,
        name: row.name.clone(),
        enabled: row.enabled,
        editable: found.is_some() && view.served,
        fields,
        problems: Vec::new(),
        setup,
        test,
    };
    render(StatusCode::OK, &page)
}

pub async fn edit_form(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> HttpResponse {
    match state.integrations.get(&id).await {
        Ok(row) => edit_page(
            &state,
            &admin,
            &req,
            &row,
            query.notice.as_deref(),
            None,
            None,
        ),
        Err(e) => ops_error(e),
    }
}

pub async fn update(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let row = match state.integrations.get(&id).await {
        Ok(row) => row,
        Err(e) => return ops_error(e),
    };
    let Some((d, plugin)) = descriptor(&state, &row.integration_type) else {
        return ops_error(IntegrationOpError::UnknownType(row.integration_type));
    };
    let (submitted, other) = split_form(form);
    let name = other.get("name").cloned().unwrap_or_default();
    let base = base_url(&state, &req);
    let view = state.integrations.view(&row, &base);
    let stored = view.config.as_object().cloned().unwrap_or_default();
    let show_again = |field_errors: BTreeMap<String, String>, problems: Vec<String>| {
        let page = FormPage {
            chrome: Chrome::new(&state, &admin, row.name.clone(), "integrations"),
            existing: Some(Existing {
                id: row.id.clone(),
                webhook_url: view.webhook_url.clone(),
                created: format_ms(row.created_at.saturating_mul(1000)),
                updated: format_ms(row.updated_at.saturating_mul(1000)),
                available: true,
                served: true,
                owner: Some(plugin.clone()),
                handover: None,
            }),
            kind: row.integration_type.clone(),
            type_label: d.display_name.clone(),
            type_description: d.description.clone(),
            plugin: plugin.clone(),
            name: name.clone(),
            enabled: row.enabled,
            editable: true,
            fields: refill(&d, &submitted, Some(&stored), &field_errors),
            problems,
            setup: None,
            test: None,
        };
        render(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let config = match config_from_form(
        &d.config_schema,
        d.ui_schema.as_ref(),
        &submitted,
        Some(&stored),
    ) {
        Ok(c) => c,
        Err(field_errors) => {
            return show_again(field_errors, vec!["Check the fields marked below.".into()])
        }
    };
    let patch = IntegrationPatch {
        name: Some(name.clone()),
        config: Some(config),
        enabled: None,
    };
    match state.integrations.update(&row.id, patch, &base).await {
        Ok((saved, Some(report))) if !report.ok => {
            edit_page(&state, &admin, &req, &saved, None, Some(report), None)
        }
        Ok((saved, _)) => redirect(format!("/admin/integrations/{}?notice=saved", saved.id)),
        Err(IntegrationOpError::Store(e)) => ops_error(IntegrationOpError::Store(e)),
        Err(e) => {
            let (field_errors, problems) =
                sort_problems(&e, &refill(&d, &submitted, Some(&stored), &BTreeMap::new()));
            show_again(field_errors, problems)
        }
    }
}

async fn switch(
    state: &AppState,
    admin: &Admin,
    req: &HttpRequest,
    id: &str,
    enabled: bool,
) -> HttpResponse {
    match state
        .integrations
        .set_enabled(id, enabled, &base_url(state, req))
        .await
    {
        Ok((row, Some(report))) if !report.ok => {
            edit_page(state, admin, req, &row, None, Some(report), None)
        }
        Ok((row, _)) => redirect(format!(
            "/admin/integrations/{}?notice={}",
            row.id,
            if enabled { "enabled" } else { "disabled" }
        )),
        Err(e) => ops_error(e),
    }
}

pub async fn enable(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    switch(&state, &post.admin, &req, &id, true).await
}

pub async fn disable(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    switch(&state, &post.admin, &req, &id, false).await
}

#[derive(Deserialize)]
pub struct HandOverForm {
    plugin: String,
    accept: Option<String>,
}

pub async fn hand_over(
    post: AdminForm<HandOverForm>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let form = post.form;
    let accept = form.accept.as_deref() == Some("yes");
    match state
        .integrations
        .hand_over(&id, &form.plugin, accept)
        .await
    {
        Ok(row) => redirect(format!("/admin/integrations/{}?notice=handed_over", row.id)),
        Err(IntegrationOpError::HandOverConsentRequired(_)) => error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the box that gives the plugin this integration's configuration and secrets to \
             hand it over. Nothing was changed.",
        ),
        Err(e) => ops_error(e),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: Option<String>,
}

pub async fn delete(
    post: AdminForm<DeleteForm>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let form = post.form;
    if form.confirm.as_deref() != Some("yes") {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick “Yes, delete this integration” to delete it. Nothing was deleted.",
        );
    }
    match state.integrations.delete(&id).await {
        Ok(()) => redirect("/admin/integrations?notice=deleted"),
        Err(e) => ops_error(e),
    }
}

pub async fn test_connection(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let row = match state.integrations.get(&id).await {
        Ok(row) => row,
        Err(e) => return ops_error(e),
    };
    let test = match state.integrations.test_connection(&id).await {
        Ok(t) if t.ok => (
            true,
            t.detail.unwrap_or_else(|| "The connection works.".into()),
        ),
        Ok(t) => (
            false,
            t.error
                .unwrap_or_else(|| "The connection test failed.".into()),
        ),
        Err(e) => (false, e.to_string()),
    };
    edit_page(&state, &post.admin, &req, &row, None, None, Some(test))
}
