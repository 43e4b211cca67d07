//! `/api/admin/skills`: list (by source and scope), get (by id, name or slug), create, update and
//! delete admin skills, switch any skill on or off, set, remove and list assignments, export and
//! import. Every operation is one of [`nitejar_core::skills::Skills`]; this module parses what it is
//! sent and turns [`SkillError`]s into answers with stable codes.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use nitejar_core::skills::{
    AdminSkillInput, AdminSkillUpdate, AssignmentInput, ListFilter, PortableSkill, Scope,
    SkillError, SkillSourceKind,
};
use serde::Deserialize;
use serde_json::json;

use super::body;
use super::error::ApiError;
use crate::auth::Admin;
use crate::state::AppState;

/// Names agree, precedence decides: listed in every listing so that scripts and people see the
/// order without reading the docs.
pub const PRECEDENCE: [SkillSourceKind; 3] = [
    SkillSourceKind::Admin,
    SkillSourceKind::Plugin,
    SkillSourceKind::Repo,
];

/// The status and stable code of a skill error.
pub fn status_and_code(e: &SkillError) -> (StatusCode, &'static str) {
    match e {
        SkillError::NotFound { .. } => (StatusCode::NOT_FOUND, "skill_not_found"),
        SkillError::NoSuchFile { .. } => (StatusCode::NOT_FOUND, "skill_file_not_found"),
        SkillError::AlreadyExists { .. } => (StatusCode::CONFLICT, "skill_exists"),
        SkillError::NotAdmin { .. } => (StatusCode::FORBIDDEN, "not_admin_skill"),
        SkillError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        SkillError::Frontmatter { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_frontmatter"),
        SkillError::UnsafePath { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unsafe_path"),
        SkillError::TooLarge { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "skill_too_large"),
        SkillError::TooManyFiles { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_files"),
        SkillError::Format(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_export"),
        SkillError::Io { .. } | SkillError::Store(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

impl From<SkillError> for ApiError {
    fn from(e: SkillError) -> ApiError {
        let (status, code) = status_and_code(&e);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal(e);
        }
        let details = match &e {
            SkillError::Invalid { field, message } => Some(json!([{
                "path": format!("/{}", field.replace('[', "/").replace(']', "")),
                "message": message,
            }])),
            SkillError::UnsafePath { path, reason } => {
                Some(json!([{ "path": path, "message": reason }]))
            }
            _ => None,
        };
        let error = ApiError::new(status, code, e.to_string());
        match details {
            Some(d) => error.with_details(d),
            None => error,
        }
    }
}

/// `source` and `scope` of a listing, in the syntax of `nitejar skill list`.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub source: Option<String>,
    pub scope: Option<String>,
}

impl ListQuery {
    /// The filter; an empty value means "any".
    pub fn filter(&self) -> Result<ListFilter, SkillError> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        Ok(ListFilter {
            source: given(&self.source).map(str::parse).transpose()?,
            scope: given(&self.scope).map(str::parse).transpose()?,
        })
    }
}

pub async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let listing = state.skills.list(&query.filter()?).await?;
    Ok(HttpResponse::Ok().json(json!({
        "skills": listing.skills,
        "problems": listing.problems,
        "precedence": PRECEDENCE,
    })))
}

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.skills.get(&id).await?))
}

pub async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(payload, body::admin_body_limit(&state.config)).await?;
    let input: AdminSkillInput = body::json(&bytes)?;
    Ok(HttpResponse::Created().json(state.skills.create(input).await?))
}

pub async fn update(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(payload, body::admin_body_limit(&state.config)).await?;
    let update: AdminSkillUpdate = body::json(&bytes)?;
    Ok(HttpResponse::Ok().json(state.skills.update(&id, update).await?))
}

pub async fn delete(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Refuses repo and plugin skills (403) before looking whether an admin skill is there.
    if !state.skills.delete(&id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "skill_not_found",
            format!("no admin skill has the id or slug `{id}`"),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "deleted": true, "id": id.into_inner() })))
}

pub async fn enable(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.skills.set_enabled(&id, true).await?))
}

pub async fn disable(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.skills.set_enabled(&id, false).await?))
}

/// An assignment as sent: the scope is parsed here, so that a bad one is a 422 naming it rather
/// than a JSON error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentBody {
    scope: String,
    #[serde(default)]
    priority: i64,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

impl AssignmentBody {
    fn input(self) -> Result<AssignmentInput, SkillError> {
        Ok(AssignmentInput {
            scope: self.scope.parse()?,
            priority: self.priority,
            enabled: self.enabled,
        })
    }
}

#[derive(Deserialize)]
pub struct ScopeQuery {
    scope: Option<String>,
}

impl ScopeQuery {
    fn scope(&self) -> Result<Option<Scope>, SkillError> {
        self.scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .transpose()
    }
}

pub async fn assignments(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let items = state
        .skills
        .assignments(Some(&id), query.scope()?.as_ref())
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

pub async fn assign(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    input: web::Json<AssignmentBody>,
) -> Result<HttpResponse, ApiError> {
    let input = input.into_inner().input()?;
    Ok(HttpResponse::Ok().json(state.skills.assign(&id, input).await?))
}

pub async fn unassign(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(scope) = query.scope()? else {
        return Err(SkillError::Invalid {
            field: "scope".into(),
            message: "say which assignment to remove: ?scope=global, team:<id>, agent:<id> or \
                      integration_type:<type>"
                .into(),
        }
        .into());
    };
    if !state.skills.unassign(&id, &scope).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "assignment_not_found",
            format!("skill `{id}` has no assignment at scope `{scope}`"),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "deleted": true, "id": id.into_inner(), "scope": scope })))
}

/// A file name for an export: the skill's slug, with anything unusual in it replaced.
fn export_file_name(slug: &str) -> String {
    let safe: String = slug
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{}.skill.json",
        if safe.is_empty() { "skill" } else { &safe }
    )
}

pub async fn export(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let doc = state.skills.export(&id).await?;
    let name = export_file_name(&doc.skill.slug);
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .json(doc))
}

#[derive(Deserialize)]
pub struct ImportQuery {
    /// `true` replaces an admin skill with the same slug.
    #[serde(default)]
    replace: bool,
}

pub async fn import(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(payload, body::admin_body_limit(&state.config)).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| SkillError::Format("the document is not UTF-8 text".into()))?;
    let doc = PortableSkill::from_json(text)?;
    Ok(HttpResponse::Ok().json(state.skills.import(doc, query.replace).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_file_names_are_plain() {
        assert_eq!(export_file_name("jira-triage"), "jira-triage.skill.json");
        assert_eq!(export_file_name("a\"b/c"), "a-b-c.skill.json");
        assert_eq!(export_file_name(""), "skill.skill.json");
    }

    #[test]
    fn a_field_error_points_at_the_field() {
        let e: ApiError = SkillError::Invalid {
            field: "tags[2]".into(),
            message: "bad".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body()["error"]["details"][0]["path"], "/tags/2");
    }
}
