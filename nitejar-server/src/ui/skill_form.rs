//! The admin skill forms: create, edit (with supporting files) and import (a pasted export).
//!
//! A form is checked in full by the skill service before anything is stored; a refusal shows the
//! form again, with what was typed and the reason, and nothing half-written. Supporting files are
//! rows of the form (`file_path.N`, `file_content.N`, `file_remove.N`): the rows there are, plus
//! one empty row to add a file — no JavaScript needed.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::skills::{
    AdminSkillInput, AdminSkillUpdate, PortableSkill, SkillError, SkillFileInput, SkillSourceKind,
};

use super::skills::{skill_error_page, SkillLink};
use super::{path_segment, redirect, render, Chrome};
use crate::api::skills::status_and_code;
use crate::auth::{Admin, AdminForm};
use crate::state::AppState;

/// A supporting-file row of the form.
struct FileSlot {
    index: usize,
    path: String,
    content: String,
    content_type: String,
    remove: bool,
}

/// What the create and edit forms hold.
#[derive(Default)]
struct Values {
    slug: String,
    name: String,
    description: String,
    category: String,
    tags: String,
    version: String,
    requires_tools: String,
    content: String,
    enabled: bool,
    files: Vec<FileSlot>,
}

/// Browsers send textarea text with CRLF line ends; skills are stored with LF.
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// `a, b` or one per line → `["a", "b"]`.
fn list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl Values {
    fn from_form(form: &BTreeMap<String, String>) -> Values {
        let get = |k: &str| form.get(k).cloned().unwrap_or_default();
        let indices: BTreeSet<usize> = form
            .keys()
            .filter_map(|k| {
                k.strip_prefix("file_path.")
                    .or_else(|| k.strip_prefix("file_content."))
            })
            .filter_map(|i| i.parse().ok())
            .collect();
        Values {
            slug: get("slug").trim().to_owned(),
            name: get("name"),
            description: get("description"),
            category: get("category"),
            tags: get("tags"),
            version: get("version"),
            requires_tools: get("requires_tools"),
            content: lf(&get("content")),
            enabled: form.contains_key("enabled"),
            files: indices
                .into_iter()
                .map(|i| FileSlot {
                    index: i,
                    path: get(&format!("file_path.{i}")),
                    content: lf(&get(&format!("file_content.{i}"))),
                    content_type: get(&format!("file_type.{i}")),
                    remove: form.contains_key(&format!("file_remove.{i}")),
                })
                .collect(),
        }
    }

    /// The supporting files the rows describe: empty rows and rows ticked for removal are left
    /// out; a row with text but no path is refused.
    fn files(&self) -> Result<Vec<SkillFileInput>, SkillError> {
        let mut out = Vec::new();
        for (n, slot) in self.files.iter().enumerate() {
            if slot.remove || (slot.path.trim().is_empty() && slot.content.is_empty()) {
                continue;
            }
            if slot.path.trim().is_empty() {
                return Err(SkillError::Invalid {
                    field: "files".into(),
                    message: format!(
                        "file row {} has text but no path; give it a path relative to the skill \
                         directory (e.g. references/api.md), or empty it",
                        n + 1
                    ),
                });
            }
            out.push(SkillFileInput {
                path: slot.path.trim().to_owned(),
                content: slot.content.clone(),
                content_type: optional(&slot.content_type),
            });
        }
        Ok(out)
    }

    fn input(&self) -> Result<AdminSkillInput, SkillError> {
        Ok(AdminSkillInput {
            slug: self.slug.clone(),
            name: self.name.trim().to_owned(),
            description: optional(&self.description),
            category: optional(&self.category),
            tags: list(&self.tags),
            version: optional(&self.version),
            requires_tools: list(&self.requires_tools),
            content: self.content.clone(),
            files: self.files()?,
            enabled: self.enabled,
        })
    }

    fn update(&self) -> Result<AdminSkillUpdate, SkillError> {
        Ok(AdminSkillUpdate {
            name: Some(self.name.trim().to_owned()),
            description: Some(optional(&self.description)),
            category: Some(optional(&self.category).unwrap_or_else(|| "general".into())),
            tags: Some(list(&self.tags)),
            version: Some(optional(&self.version)),
            requires_tools: Some(list(&self.requires_tools)),
            content: Some(self.content.clone()),
            files: Some(self.files()?),
            enabled: None,
        })
    }

    /// The rows to show: those with something in them, then one empty row for a new file.
    fn with_empty_row(mut self) -> Values {
        self.files
            .retain(|f| !f.path.trim().is_empty() || !f.content.is_empty());
        let next = self.files.iter().map(|f| f.index + 1).max().unwrap_or(0);
        self.files.push(FileSlot {
            index: next,
            path: String::new(),
            content: String::new(),
            content_type: String::new(),
            remove: false,
        });
        self
    }
}

#[derive(Template)]
#[template(path = "skill_form.html")]
struct FormPage {
    chrome: Chrome,
    /// The skill being edited; `None` for a new one.
    existing: Option<SkillLink>,
    v: Values,
    problems: Vec<String>,
    limits: String,
}

fn limits_text(state: &AppState) -> String {
    let limits = state.skills.config().limits;
    format!(
        "Each file (SKILL.md included) is at most {} bytes, the whole skill at most {} bytes, with \
         at most {} supporting files. Paths are relative to the skill directory: no leading /, \
         no .. parts.",
        limits.max_file_bytes, limits.max_skill_bytes, limits.max_files
    )
}

fn form_page(
    state: &AppState,
    admin: &Admin,
    existing: Option<SkillLink>,
    v: Values,
    status: StatusCode,
    problems: Vec<String>,
) -> HttpResponse {
    let title = match &existing {
        Some(_) => format!("Edit {}", v.name),
        None => "New skill".to_owned(),
    };
    let page = FormPage {
        chrome: Chrome::new(state, admin, title, "skills"),
        existing,
        v: v.with_empty_row(),
        problems,
        limits: limits_text(state),
    };
    render(status, &page)
}

/// A refused form: shown again with the reason when the operator can fix it, else an error page.
fn refused(
    state: &AppState,
    admin: &Admin,
    existing: Option<SkillLink>,
    v: Values,
    e: SkillError,
) -> HttpResponse {
    match status_and_code(&e).0 {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => form_page(
            state,
            admin,
            existing,
            v,
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![e.to_string()],
        ),
        _ => skill_error_page(&e),
    }
}

pub async fn new_form(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let v = Values {
        category: "general".into(),
        enabled: true,
        ..Values::default()
    };
    form_page(&state, &admin, None, v, StatusCode::OK, Vec::new())
}

pub async fn create(
    post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let v = Values::from_form(&form);
    let input = match v.input() {
        Ok(i) => i,
        Err(e) => return refused(&state, &admin, None, v, e),
    };
    match state.skills.create(input).await {
        Ok(d) => redirect(format!(
            "/admin/skills/{}?notice=skill_created",
            path_segment(&d.skill.id)
        )),
        Err(e) => refused(&state, &admin, None, v, e),
    }
}

pub async fn edit_form(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let detail = match state.skills.get(&id).await {
        Ok(d) => d,
        Err(e) => return skill_error_page(&e),
    };
    let skill = &detail.skill;
    if skill.source != SkillSourceKind::Admin {
        return skill_error_page(&SkillError::NotAdmin {
            id: skill.id.clone(),
            source_kind: skill.source,
        });
    }
    let files = match state.store.list_skill_files(&skill.id).await {
        Ok(f) => f,
        Err(e) => return skill_error_page(&e.into()),
    };
    let v = Values {
        slug: skill.slug.clone(),
        name: skill.name.clone(),
        description: skill.description.clone().unwrap_or_default(),
        category: skill.category.clone(),
        tags: skill.tags.join(", "),
        version: skill.version.clone().unwrap_or_default(),
        requires_tools: skill.requires_tools.join(", "),
        content: detail.content.clone(),
        enabled: skill.enabled,
        files: files
            .into_iter()
            .enumerate()
            .map(|(index, f)| FileSlot {
                index,
                path: f.relative_path,
                content: f.content,
                content_type: f.content_type.unwrap_or_default(),
                remove: false,
            })
            .collect(),
    };
    let link = SkillLink::of(&skill.id);
    form_page(&state, &admin, Some(link), v, StatusCode::OK, Vec::new())
}

pub async fn save(
    post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let mut v = Values::from_form(&form);
    let link = SkillLink::of(&id);
    // The slug is not editable; show the skill's own.
    v.slug = id.strip_prefix("admin:").unwrap_or(&id).to_owned();
    let update = match v.update() {
        Ok(u) => u,
        Err(e) => return refused(&state, &admin, Some(link), v, e),
    };
    match state.skills.update(&id, update).await {
        Ok(d) => redirect(format!(
            "/admin/skills/{}?notice=saved",
            path_segment(&d.skill.id)
        )),
        Err(e) => refused(&state, &admin, Some(link), v, e),
    }
}

#[derive(Template)]
#[template(path = "skill_import.html")]
struct ImportPage {
    chrome: Chrome,
    document: String,
    replace: bool,
    problems: Vec<String>,
    limits: String,
}

fn import_page(
    state: &AppState,
    admin: &Admin,
    document: String,
    replace: bool,
    status: StatusCode,
    problems: Vec<String>,
) -> HttpResponse {
    let page = ImportPage {
        chrome: Chrome::new(state, admin, "Import a skill", "skills"),
        document,
        replace,
        problems,
        limits: limits_text(state),
    };
    render(status, &page)
}

pub async fn import_form(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    import_page(
        &state,
        &admin,
        String::new(),
        false,
        StatusCode::OK,
        Vec::new(),
    )
}

pub async fn import(
    post: AdminForm<BTreeMap<String, String>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let document = form.get("document").cloned().unwrap_or_default();
    let replace = form.contains_key("replace");
    let result = match PortableSkill::from_json(&document) {
        Ok(doc) => state.skills.import(doc, replace).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => redirect(format!(
            "/admin/skills/{}?notice=skill_imported",
            path_segment(&d.skill.id)
        )),
        Err(e) => match status_and_code(&e).0 {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                import_page(
                    &state,
                    &admin,
                    document,
                    replace,
                    status,
                    vec![e.to_string()],
                )
            }
            _ => skill_error_page(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_rows_become_files_and_line_ends_become_lf() {
        let v = Values::from_form(&form(&[
            ("slug", " ops "),
            ("name", "Ops"),
            ("content", "# Ops\r\nline\r\n"),
            ("tags", "a, b\nc"),
            ("file_path.0", "refs/a.md"),
            ("file_content.0", "A\r\n"),
            ("file_path.1", "refs/gone.md"),
            ("file_content.1", "x"),
            ("file_remove.1", "yes"),
            ("file_path.2", ""),
            ("file_content.2", ""),
        ]));
        let input = v.input().unwrap();
        assert_eq!(input.slug, "ops");
        assert_eq!(input.content, "# Ops\nline\n");
        assert_eq!(input.tags, ["a", "b", "c"]);
        assert_eq!(input.files.len(), 1);
        assert_eq!(input.files[0].path, "refs/a.md");
        assert_eq!(input.files[0].content, "A\n");
        assert!(!input.enabled);
    }

    #[test]
    fn a_file_row_with_text_and_no_path_is_refused() {
        let v = Values::from_form(&form(&[("file_content.3", "orphan")]));
        let e = v.input().unwrap_err();
        assert!(e.to_string().contains("no path"), "{e}");
    }
}
