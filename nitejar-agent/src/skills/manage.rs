//! The operations of the skills surface, shaped like its API: list (with source and scope
//! filters), get, create / update / delete admin skills, switch a skill on or off, set and list
//! assignments, export and import. The HTTP layer and the CLI call these; they check everything
//! themselves and return typed errors.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::catalog::{admin_id, mirror_row, AdminSkillInput, AdminSkillUpdate};
use super::index::{Skill, SkillIndex, SkillProblem};
use super::portable::{PortableFile, PortableSkill, PortableSkillBody, FORMAT_VERSION};
use super::scope::Scope;
use super::service::Skills;
use super::{SkillError, SkillSourceKind};
use nitejar_store::receipts::now_ms;
use nitejar_store::receipts::rfc3339_utc;
use nitejar_store::store::{AssignmentFilter, NewSkillAssignment, SkillAssignmentRow, StoreError};

/// Which skills to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only skills of this source.
    pub source: Option<SkillSourceKind>,
    /// Only skills with an assignment at exactly this scope.
    pub scope: Option<Scope>,
}

/// An assignment as the surfaces show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentView {
    pub id: String,
    pub skill_id: String,
    pub scope: Scope,
    pub priority: i64,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AssignmentView {
    fn of(row: SkillAssignmentRow) -> Option<AssignmentView> {
        match Scope::from_row(&row.scope, row.scope_id.as_deref()) {
            Ok(scope) => Some(AssignmentView {
                id: row.id,
                skill_id: row.skill_id,
                scope,
                priority: row.priority,
                enabled: row.enabled,
                created_at: row.created_at,
                updated_at: row.updated_at,
            }),
            Err(e) => {
                tracing::warn!(assignment.id = %row.id, "unreadable skill assignment: {e}");
                None
            }
        }
    }
}

/// An assignment to set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentInput {
    pub scope: Scope,
    /// Higher first in the prompt (default 0).
    #[serde(default)]
    pub priority: i64,
    /// `false` switches the skill off at this scope (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// One skill in a listing: the skill and its assignments.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillSummary {
    #[serde(flatten)]
    pub skill: Skill,
    pub assignments: Vec<AssignmentView>,
}

/// A listing: the skills, and what could not be indexed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkillListing {
    pub skills: Vec<SkillSummary>,
    pub problems: Vec<SkillProblem>,
}

/// One skill in full: the listing fields, its text, and the skills its name shadows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillDetail {
    #[serde(flatten)]
    pub skill: Skill,
    pub content: String,
    pub assignments: Vec<AssignmentView>,
    /// Ids of the skills this one wins the name of.
    pub shadows: Vec<String>,
}

fn not_found(query: &str, index: &SkillIndex) -> SkillError {
    SkillError::NotFound {
        query: query.to_string(),
        available: index.available_names(),
    }
}

impl Skills {
    /// Every skill (with its assignments), filtered; problems of the sources alongside.
    pub async fn list(&self, filter: &ListFilter) -> Result<SkillListing, SkillError> {
        let index = self.index().await?;
        let assignments = self.assignments_by_skill(None).await?;
        let skills = index
            .skills()
            .iter()
            .filter(|s| filter.source.is_none_or(|source| s.source == source))
            .map(|s| SkillSummary {
                skill: s.clone(),
                assignments: assignments
                    .iter()
                    .filter(|a| a.skill_id == s.id)
                    .cloned()
                    .collect(),
            })
            .filter(|s| {
                filter
                    .scope
                    .as_ref()
                    .is_none_or(|scope| s.assignments.iter().any(|a| &a.scope == scope))
            })
            .collect();
        let problems = index
            .problems()
            .iter()
            .filter(|p| filter.source.is_none_or(|source| p.source == source))
            .cloned()
            .collect();
        Ok(SkillListing { skills, problems })
    }

    /// One skill, by id, name or slug (see [`SkillIndex::lookup`]).
    pub async fn get(&self, query: &str) -> Result<SkillDetail, SkillError> {
        let index = self.index().await?;
        let skill = index
            .lookup(query)
            .ok_or_else(|| not_found(query, &index))?;
        self.detail(&index, skill).await
    }

    async fn detail(&self, index: &SkillIndex, skill: &Skill) -> Result<SkillDetail, SkillError> {
        let assignments = self.assignments_by_skill(Some(&skill.id)).await?;
        Ok(SkillDetail {
            skill: skill.clone(),
            content: skill.content.clone(),
            assignments,
            shadows: index
                .skills()
                .iter()
                .filter(|s| s.shadowed_by.as_deref() == Some(skill.id.as_str()))
                .map(|s| s.id.clone())
                .collect(),
        })
    }

    async fn detail_of(&self, id: &str) -> Result<SkillDetail, SkillError> {
        let index = self.index().await?;
        let skill = index.get(id).ok_or_else(|| not_found(id, &index))?;
        self.detail(&index, skill).await
    }

    async fn assignments_by_skill(
        &self,
        skill_id: Option<&str>,
    ) -> Result<Vec<AssignmentView>, SkillError> {
        let rows = self
            .store
            .list_skill_assignments(&AssignmentFilter {
                skill_id: skill_id.map(str::to_string),
                ..Default::default()
            })
            .await?;
        Ok(rows.into_iter().filter_map(AssignmentView::of).collect())
    }

    /// Creates an admin skill (`admin:<slug>`), checked in full first.
    pub async fn create(&self, input: AdminSkillInput) -> Result<SkillDetail, SkillError> {
        input.validate(&self.config.limits)?;
        let slug = input.slug.clone();
        let (row, files) = input.into_rows(now_ms());
        match self.store.insert_skill(&row, &files).await {
            Ok(()) => self.invalidate_run_index(),
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(SkillError::AlreadyExists { slug })
            }
            Err(e) => return Err(e.into()),
        }
        self.detail_of(&row.id).await
    }

    /// Changes an admin skill; the result is checked in full before anything is stored.
    pub async fn update(
        &self,
        id: &str,
        update: AdminSkillUpdate,
    ) -> Result<SkillDetail, SkillError> {
        let row = self.admin_row(id).await?;
        let files_changed = update.files.is_some();
        let files = self.store.list_skill_files(&row.id).await?;
        let mut input = AdminSkillInput::from_row(&row, files);
        input.apply(update);
        input.validate(&self.config.limits)?;
        let (mut new_row, new_files) = input.into_rows(now_ms());
        // The row keeps its identity (an id adopted from an earlier release stays).
        new_row.id = row.id.clone();
        new_row.created_at = row.created_at;
        new_row.metadata = row.metadata.clone();
        let new_files: Vec<_> = new_files
            .into_iter()
            .map(|mut f| {
                f.skill_id = row.id.clone();
                f
            })
            .collect();
        self.store
            .update_skill(&new_row, files_changed.then_some(new_files.as_slice()))
            .await?;
        self.invalidate_run_index();
        self.detail_of(&row.id).await
    }

    /// Deletes an admin skill with its files and assignments. `false` when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, SkillError> {
        match self.admin_row(id).await {
            Ok(row) => {
                let deleted = self.store.delete_skill(&row.id).await?;
                self.invalidate_run_index();
                Ok(deleted)
            }
            Err(SkillError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The stored row of an admin skill, by id or slug. [`SkillError::NotAdmin`] when the query
    /// names a repo or plugin skill instead.
    async fn admin_row(&self, id: &str) -> Result<nitejar_store::store::SkillRow, SkillError> {
        let row = match self.store.get_skill(id).await? {
            Some(row) => Some(row),
            None => self.store.get_skill(&admin_id(id)).await?,
        };
        match row {
            Some(row)
                if SkillSourceKind::from_stored(&row.source_kind) == SkillSourceKind::Admin =>
            {
                Ok(row)
            }
            Some(row) => Err(SkillError::NotAdmin {
                id: row.id,
                source_kind: SkillSourceKind::from_stored(&row.source_kind),
            }),
            // No row: a repo skill nobody assigned or switched yet has none, and is still not
            // the operator's to change; say so rather than that there is no such skill.
            None => {
                let index = self.index().await?;
                match index.lookup(id) {
                    Some(skill) if skill.source != SkillSourceKind::Admin => {
                        Err(SkillError::NotAdmin {
                            id: skill.id.clone(),
                            source_kind: skill.source,
                        })
                    }
                    _ => Err(not_found(id, &index)),
                }
            }
        }
    }

    /// Switches a skill of any source on or off (the operator's switch, kept across re-syncs).
    pub async fn set_enabled(&self, query: &str, enabled: bool) -> Result<SkillDetail, SkillError> {
        let index = self.index().await?;
        let skill = index
            .lookup(query)
            .ok_or_else(|| not_found(query, &index))?;
        self.ensure_row(skill).await?;
        self.store.set_skill_enabled(&skill.id, enabled).await?;
        self.invalidate_run_index();
        self.detail_of(&skill.id).await
    }

    /// Assigns a skill (by id, name or slug) to a scope, or changes that assignment's priority and
    /// flag. A repo skill gets its mirror row here, since assignments point at rows.
    pub async fn assign(
        &self,
        query: &str,
        input: AssignmentInput,
    ) -> Result<AssignmentView, SkillError> {
        let index = self.index().await?;
        let skill = index
            .lookup(query)
            .ok_or_else(|| not_found(query, &index))?;
        self.ensure_row(skill).await?;
        let row = self
            .store
            .set_skill_assignment(&NewSkillAssignment {
                skill_id: skill.id.clone(),
                scope: input.scope.kind().into(),
                scope_id: input.scope.scope_id().into(),
                priority: input.priority,
                enabled: input.enabled,
            })
            .await?;
        AssignmentView::of(row).ok_or_else(|| SkillError::Invalid {
            field: "scope".into(),
            message: "the stored assignment cannot be read back".into(),
        })
    }

    /// Removes the assignment of a skill at a scope. `false` when there was none. (To keep a
    /// `default_enabled` plugin skill off, disable its global assignment instead: see the
    /// [module docs](super#assignments-and-resolution).)
    pub async fn unassign(&self, query: &str, scope: &Scope) -> Result<bool, SkillError> {
        let index = self.index().await?;
        let skill = index
            .lookup(query)
            .ok_or_else(|| not_found(query, &index))?;
        let rows = self
            .store
            .list_skill_assignments(&AssignmentFilter {
                skill_id: Some(skill.id.clone()),
                scope: Some(scope.kind().into()),
                scope_id: Some(scope.scope_id().into()),
            })
            .await?;
        let mut removed = false;
        for row in rows {
            removed |= self.store.delete_skill_assignment(&row.id).await?;
        }
        Ok(removed)
    }

    /// Assignments, of one skill and/or at one scope.
    pub async fn assignments(
        &self,
        query: Option<&str>,
        scope: Option<&Scope>,
    ) -> Result<Vec<AssignmentView>, SkillError> {
        let skill_id = match query {
            None => None,
            Some(q) => {
                let index = self.index().await?;
                let skill = index.lookup(q).ok_or_else(|| not_found(q, &index))?;
                Some(skill.id.clone())
            }
        };
        let rows = self
            .store
            .list_skill_assignments(&AssignmentFilter {
                skill_id,
                scope: scope.map(|s| s.kind().to_string()),
                scope_id: scope.map(|s| s.scope_id().to_string()),
            })
            .await?;
        Ok(rows.into_iter().filter_map(AssignmentView::of).collect())
    }

    /// Makes sure a skill has a row (repo skills get one on first need; a plugin skill read from
    /// its mirror row has one).
    async fn ensure_row(&self, skill: &Skill) -> Result<(), SkillError> {
        if skill.source == SkillSourceKind::Admin {
            return Ok(());
        }
        let previous = self.store.get_skill(&skill.id).await?;
        if previous.is_some() && skill.source == SkillSourceKind::Plugin {
            return Ok(());
        }
        let row = mirror_row(skill, previous.as_ref(), now_ms());
        self.store.upsert_mirror_skills(&[row]).await?;
        self.invalidate_run_index();
        Ok(())
    }

    /// Exports a skill of any source in the portable format (files as text, or base64 when binary).
    pub async fn export(&self, query: &str) -> Result<PortableSkill, SkillError> {
        let index = self.index().await?;
        let skill = index
            .lookup(query)
            .ok_or_else(|| not_found(query, &index))?;
        let mut files = Vec::with_capacity(skill.files.len());
        if skill.source == SkillSourceKind::Admin {
            for f in self.store.list_skill_files(&skill.id).await? {
                files.push(PortableFile::from_bytes(
                    f.relative_path,
                    f.content.into_bytes(),
                    f.content_type,
                ));
            }
        } else {
            for f in &skill.files {
                let bytes = self.read_file(skill, &f.path).await?;
                files.push(PortableFile::from_bytes(f.path.clone(), bytes, None));
            }
        }
        Ok(PortableSkill {
            format_version: FORMAT_VERSION,
            skill: PortableSkillBody {
                name: skill.name.clone(),
                slug: skill.slug.clone(),
                description: skill.description.clone(),
                category: Some(skill.category.clone()),
                tags: skill.tags.clone(),
                version: skill.version.clone(),
                requires_tools: skill.requires_tools.clone(),
                content: skill.content.clone(),
                files,
            },
            metadata: json!({
                "exportedAt": rfc3339_utc(now_ms()),
                "exportedFrom": "nitejar",
                "nitejarVersion": nitejar_packages::NITEJAR_VERSION,
                "sourceId": skill.id,
            }),
        })
    }

    /// Imports a portable skill as an admin skill. When an admin skill has the slug already it is
    /// replaced if `replace`, else [`SkillError::AlreadyExists`]. Checked in full first; nothing is
    /// stored on any error.
    pub async fn import(
        &self,
        doc: PortableSkill,
        replace: bool,
    ) -> Result<SkillDetail, SkillError> {
        let input = doc.into_admin_input()?;
        input.validate(&self.config.limits)?;
        let id = admin_id(&input.slug);
        if self.store.get_skill(&id).await?.is_none() {
            return self.create(input).await;
        }
        if !replace {
            return Err(SkillError::AlreadyExists { slug: input.slug });
        }
        let update = AdminSkillUpdate {
            name: Some(input.name),
            description: Some(input.description),
            category: Some(input.category.unwrap_or_else(|| "general".into())),
            tags: Some(input.tags),
            version: Some(input.version),
            requires_tools: Some(input.requires_tools),
            content: Some(input.content),
            files: Some(input.files),
            enabled: None,
        };
        self.update(&id, update).await
    }
}
