//! `/admin/skills`: every skill of every source with the one that wins each name, filtered by
//! source and scope; one skill's page with its text, supporting files and assignments, and the
//! forms that switch it, assign it and delete it. The create, edit and import forms are in
//! `skill_form.rs`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::skills::{
    AssignmentInput, AssignmentView, Scope, Skill, SkillDetail, SkillError, SkillSourceKind,
};
use serde::Deserialize;

use super::{error_page, path_segment, redirect, render, Chrome};
use crate::api::skills::{status_and_code, ListQuery};
use crate::auth::{Admin, AdminForm};
use crate::state::AppState;

/// Files larger than this are listed on a skill's page but not shown there (the export has them).
const SHOWN_FILE_BYTES: u64 = 64 * 1024;

/// The operator-facing precedence rule, on the list and on every skill page.
pub const PRECEDENCE_TEXT: &str = "When enabled skills share a name, an admin skill wins over a \
     plugin skill, and a plugin skill wins over a repo skill (within one source, the smaller id \
     wins). The others stay listed as shadowed and can still be reached by their id.";

/// A link to a skill's page.
pub struct SkillLink {
    pub id: String,
    pub href: String,
}

impl SkillLink {
    pub fn of(id: &str) -> SkillLink {
        SkillLink {
            id: id.to_owned(),
            href: format!("/admin/skills/{}", path_segment(id)),
        }
    }
}

/// How a skill stands, in words and a pill class.
fn status(skill: &Skill) -> (String, &'static str) {
    if !skill.enabled {
        ("switched off".into(), "")
    } else if !skill.active && skill.source == SkillSourceKind::Plugin {
        ("plugin not active".into(), "pill-warn")
    } else if !skill.active {
        ("not found in its source".into(), "pill-warn")
    } else if skill.shadowed_by.is_some() {
        ("shadowed".into(), "pill-warn")
    } else {
        ("active".into(), "pill-ok")
    }
}

fn source_class(source: SkillSourceKind) -> &'static str {
    match source {
        SkillSourceKind::Admin => "pill-info",
        SkillSourceKind::Plugin => "pill-ok",
        SkillSourceKind::Repo => "",
    }
}

/// `team:support (priority 2, on)`.
fn assignment_text(a: &AssignmentView) -> String {
    format!(
        "{} (priority {}, {})",
        a.scope,
        a.priority,
        if a.enabled { "on" } else { "off" }
    )
}

/// A skill as a row of the list.
struct ListRow {
    link: SkillLink,
    name: String,
    description: String,
    source: &'static str,
    source_class: &'static str,
    plugin: String,
    status: String,
    status_class: &'static str,
    shadowed_by: Option<SkillLink>,
    /// Ids of the skills whose name this one wins.
    wins_over: Vec<SkillLink>,
    assignments: Vec<String>,
}

struct Problem {
    source: &'static str,
    location: String,
    message: String,
}

/// An option of the source filter.
struct SourceOption {
    value: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "skills.html")]
struct ListPage {
    chrome: Chrome,
    precedence: &'static str,
    sources: Vec<SourceOption>,
    scope: String,
    filtered: bool,
    filter_error: Option<String>,
    rows: Vec<ListRow>,
    problems: Vec<Problem>,
}

#[derive(Deserialize)]
pub struct ListParams {
    source: Option<String>,
    scope: Option<String>,
    notice: Option<String>,
}

/// A failure the operator cannot fix from the page: logged, and a page that says where to look.
fn failure(e: &SkillError) -> HttpResponse {
    tracing::error!("skills page: {e}");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Skills could not be read; see the server log.",
    )
}

/// The error page of a skill error that is not a form problem (a missing skill, a repo skill that
/// cannot be deleted, …).
pub(super) fn skill_error_page(e: &SkillError) -> HttpResponse {
    let (status, _) = status_and_code(e);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return failure(e);
    }
    error_page(status, &e.to_string())
}

pub async fn list(
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListParams>,
) -> HttpResponse {
    let params = ListQuery {
        source: query.source.clone(),
        scope: query.scope.clone(),
    };
    let source = query.source.clone().unwrap_or_default();
    let scope = query.scope.clone().unwrap_or_default();
    let sources = ["admin", "plugin", "repo"]
        .into_iter()
        .map(|value| SourceOption {
            value,
            selected: source.trim() == value,
        })
        .collect();
    let chrome =
        Chrome::new(&state, &admin, "Skills", "skills").with_notice(query.notice.as_deref());
    let filter = match params.filter() {
        Ok(f) => f,
        Err(e) => {
            let page = ListPage {
                chrome,
                precedence: PRECEDENCE_TEXT,
                sources,
                scope,
                filtered: true,
                filter_error: Some(e.to_string()),
                rows: Vec::new(),
                problems: Vec::new(),
            };
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let filtered = filter.source.is_some() || filter.scope.is_some();
    let listing = match state.skills.list(&filter).await {
        Ok(l) => l,
        Err(e) => return failure(&e),
    };
    // Who wins over whom is read off the whole index: a filter may hide the winner or the loser.
    let mut wins: BTreeMap<String, Vec<SkillLink>> = BTreeMap::new();
    let everything = if filtered {
        match state.skills.list(&Default::default()).await {
            Ok(l) => l.skills,
            Err(e) => return failure(&e),
        }
    } else {
        listing.skills.clone()
    };
    for s in &everything {
        if let Some(winner) = &s.skill.shadowed_by {
            wins.entry(winner.clone())
                .or_default()
                .push(SkillLink::of(&s.skill.id));
        }
    }
    let rows = listing
        .skills
        .iter()
        .map(|s| {
            let skill = &s.skill;
            let (status, status_class) = status(skill);
            ListRow {
                link: SkillLink::of(&skill.id),
                name: skill.name.clone(),
                description: skill.description.clone().unwrap_or_default(),
                source: skill.source.as_str(),
                source_class: source_class(skill.source),
                plugin: skill
                    .plugin
                    .as_ref()
                    .map(|p| format!("{}@{}", p.id, p.version))
                    .unwrap_or_default(),
                status,
                status_class,
                shadowed_by: skill.shadowed_by.as_deref().map(SkillLink::of),
                wins_over: wins.remove(&skill.id).unwrap_or_default(),
                assignments: s.assignments.iter().map(assignment_text).collect(),
            }
        })
        .collect();
    let problems = listing
        .problems
        .iter()
        .map(|p| Problem {
            source: p.source.as_str(),
            location: p.location.clone(),
            message: p.message.clone(),
        })
        .collect();
    let page = ListPage {
        chrome,
        precedence: PRECEDENCE_TEXT,
        sources,
        scope,
        filtered,
        filter_error: None,
        rows,
        problems,
    };
    render(StatusCode::OK, &page)
}

struct FileView {
    path: String,
    size: u64,
    text: Option<String>,
    note: Option<String>,
}

struct AssignmentLine {
    scope: String,
    priority: i64,
    enabled: bool,
}

/// What the assignment form shows (again, after a refusal).
pub(super) struct AssignmentForm {
    scope: String,
    priority: String,
    enabled: bool,
}

impl Default for AssignmentForm {
    fn default() -> Self {
        AssignmentForm {
            scope: String::new(),
            priority: "0".into(),
            enabled: true,
        }
    }
}

#[derive(Template)]
#[template(path = "skill.html")]
struct DetailPage {
    chrome: Chrome,
    precedence: &'static str,
    link: SkillLink,
    name: String,
    description: String,
    source: &'static str,
    source_class: &'static str,
    origin: String,
    plugin: String,
    slug: String,
    category: String,
    tags: String,
    version: String,
    requires_tools: String,
    size: u64,
    enabled: bool,
    status: String,
    status_class: &'static str,
    is_admin: bool,
    shadowed_by: Option<SkillLink>,
    shadows: Vec<SkillLink>,
    content: String,
    files: Vec<FileView>,
    assignments: Vec<AssignmentLine>,
    form: AssignmentForm,
    problems: Vec<String>,
    export_href: String,
}

async fn file_views(state: &AppState, skill: &Skill) -> Vec<FileView> {
    let mut out = Vec::with_capacity(skill.files.len());
    for f in &skill.files {
        let (text, note) = if f.size_bytes > SHOWN_FILE_BYTES {
            (
                None,
                Some("Too large to show here; the export holds it.".to_owned()),
            )
        } else {
            match state.skills.read_file(skill, &f.path).await {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => (Some(text), None),
                    Err(_) => (None, Some("A binary file; the export holds it.".to_owned())),
                },
                Err(e) => (None, Some(e.to_string())),
            }
        };
        out.push(FileView {
            path: f.path.clone(),
            size: f.size_bytes,
            text,
            note,
        });
    }
    out
}

/// A skill's page; `status` is 200, or the refusal of a form on it (shown with `problems`).
pub(super) async fn detail_page(
    state: &AppState,
    admin: &Admin,
    detail: SkillDetail,
    notice: Option<&str>,
    status_code: StatusCode,
    form: AssignmentForm,
    problems: Vec<String>,
) -> HttpResponse {
    let files = file_views(state, &detail.skill).await;
    let SkillDetail {
        skill,
        content,
        assignments,
        shadows,
    } = detail;
    let (status, status_class) = status(&skill);
    let page = DetailPage {
        chrome: Chrome::new(state, admin, skill.name.clone(), "skills").with_notice(notice),
        precedence: PRECEDENCE_TEXT,
        export_href: format!("/api/admin/skills/{}/export", path_segment(&skill.id)),
        link: SkillLink::of(&skill.id),
        name: skill.name.clone(),
        description: skill.description.clone().unwrap_or_default(),
        source: skill.source.as_str(),
        source_class: source_class(skill.source),
        origin: skill.origin.clone(),
        plugin: skill
            .plugin
            .as_ref()
            .map(|p| format!("{}@{}", p.id, p.version))
            .unwrap_or_default(),
        slug: skill.slug.clone(),
        category: skill.category.clone(),
        tags: skill.tags.join(", "),
        version: skill.version.clone().unwrap_or_default(),
        requires_tools: skill.requires_tools.join(", "),
        size: skill.size_bytes,
        enabled: skill.enabled,
        status,
        status_class,
        is_admin: skill.source == SkillSourceKind::Admin,
        shadowed_by: skill.shadowed_by.as_deref().map(SkillLink::of),
        shadows: shadows.iter().map(|id| SkillLink::of(id)).collect(),
        content,
        files,
        assignments: assignments
            .iter()
            .map(|a| AssignmentLine {
                scope: a.scope.to_string(),
                priority: a.priority,
                enabled: a.enabled,
            })
            .collect(),
        form,
        problems,
    };
    render(status_code, &page)
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

pub async fn detail(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> HttpResponse {
    match state.skills.get(&id).await {
        Ok(detail) => {
            detail_page(
                &state,
                &admin,
                detail,
                query.notice.as_deref(),
                StatusCode::OK,
                AssignmentForm::default(),
                Vec::new(),
            )
            .await
        }
        Err(e) => skill_error_page(&e),
    }
}

/// Where a change to skill `id` sends the browser.
fn back_to(id: &str, notice: &str) -> HttpResponse {
    redirect(format!(
        "/admin/skills/{}?notice={notice}",
        path_segment(id)
    ))
}

async fn switch(state: &AppState, id: &str, enabled: bool) -> HttpResponse {
    match state.skills.set_enabled(id, enabled).await {
        Ok(d) => back_to(&d.skill.id, if enabled { "enabled" } else { "disabled" }),
        Err(e) => skill_error_page(&e),
    }
}

pub async fn enable(
    _post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    switch(&state, &id, true).await
}

pub async fn disable(
    _post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    switch(&state, &id, false).await
}

pub async fn delete(
    post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let form = post.form;
    if form.get("confirm").map(String::as_str) != Some("yes") {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick “Yes, delete this skill” to delete it. Nothing was deleted.",
        );
    }
    match state.skills.delete(&id).await {
        Ok(true) => redirect("/admin/skills?notice=deleted"),
        Ok(false) => error_page(
            StatusCode::NOT_FOUND,
            &format!("No admin skill has the id or slug `{id}`; nothing was deleted."),
        ),
        Err(e) => skill_error_page(&e),
    }
}

/// Shows a skill's page again with a refused form's values and the reason.
async fn refused(
    state: &AppState,
    admin: &Admin,
    id: &str,
    status: StatusCode,
    form: AssignmentForm,
    problem: String,
) -> HttpResponse {
    match state.skills.get(id).await {
        Ok(detail) => detail_page(state, admin, detail, None, status, form, vec![problem]).await,
        Err(e) => skill_error_page(&e),
    }
}

pub async fn assign(
    post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm {
        admin,
        form: fields,
    } = post;
    let form = AssignmentForm {
        scope: fields.get("scope").cloned().unwrap_or_default(),
        priority: fields.get("priority").cloned().unwrap_or_default(),
        enabled: fields.contains_key("enabled"),
    };
    let scope: Scope = match form.scope.parse() {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return refused(&state, &admin, &id, status, form, message).await;
        }
    };
    let priority = match form.priority.trim() {
        "" => 0,
        p => match p.parse::<i64>() {
            Ok(p) => p,
            Err(_) => {
                let message = format!("priority: `{p}` is not a whole number");
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                return refused(&state, &admin, &id, status, form, message).await;
            }
        },
    };
    let input = AssignmentInput {
        scope,
        priority,
        enabled: form.enabled,
    };
    match state.skills.assign(&id, input).await {
        Ok(view) => back_to(&view.skill_id, "assigned"),
        Err(e) => skill_error_page(&e),
    }
}

pub async fn unassign(
    post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm {
        admin,
        form: fields,
    } = post;
    let text = fields.get("scope").cloned().unwrap_or_default();
    let scope: Scope = match text.parse() {
        Ok(s) => s,
        Err(e) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            let form = AssignmentForm::default();
            return refused(&state, &admin, &id, status, form, e.to_string()).await;
        }
    };
    match state.skills.unassign(&id, &scope).await {
        Ok(true) => back_to(&id, "unassigned"),
        Ok(false) => {
            let message = format!("This skill has no assignment at scope `{scope}`.");
            let (status, form) = (StatusCode::NOT_FOUND, AssignmentForm::default());
            refused(&state, &admin, &id, status, form, message).await
        }
        Err(e) => skill_error_page(&e),
    }
}
