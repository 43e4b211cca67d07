//! Admin skills and mirror rows: what an operator sends, how it is checked, and how rows of the
//! `skills` table become index entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::frontmatter::parse_skill_md;
use super::index::{Skill, SkillFile, SkillLocation, SkillPlugin};
use super::names::{
    slugify, validate_category, validate_description, validate_name, validate_slug, validate_tags,
    validate_tool_names,
};
use super::paths::check_relative_path;
use super::{checksum, SkillError, SkillLimits, SkillSourceKind};
use nitejar_store::store::{new_id, SkillFileRow, SkillFileStat, SkillRow};

/// A supporting file of an admin skill (text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillFileInput {
    /// Relative to the skill directory (`references/api.md`).
    pub path: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A new admin skill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSkillInput {
    /// `^[a-z0-9][a-z0-9-]{0,63}$`; the skill id is `admin:<slug>` and never changes.
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `general` when unset.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub requires_tools: Vec<String>,
    /// The `SKILL.md` text.
    pub content: String,
    #[serde(default)]
    pub files: Vec<SkillFileInput>,
    /// `true` unless set.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Changes to an admin skill; unset fields keep their value. `files`, when set, replaces every
/// supporting file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdminSkillUpdate {
    pub name: Option<String>,
    /// `Some(None)` (JSON `null`) clears it.
    #[serde(deserialize_with = "present")]
    pub description: Option<Option<String>>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    /// `Some(None)` (JSON `null`) clears it.
    #[serde(deserialize_with = "present")]
    pub version: Option<Option<String>>,
    pub requires_tools: Option<Vec<String>>,
    pub content: Option<String>,
    pub files: Option<Vec<SkillFileInput>>,
    pub enabled: Option<bool>,
}

impl AdminSkillInput {
    /// Checks every rule: slug, name, description, category, tags, tool names, non-empty content with
    /// readable frontmatter, file paths (no `..`, not absolute, no duplicates) and every size limit.
    pub fn validate(&self, limits: &SkillLimits) -> Result<(), SkillError> {
        validate_slug(&self.slug)?;
        validate_name(&self.name)?;
        if let Some(d) = &self.description {
            validate_description(d)?;
        }
        if let Some(c) = &self.category {
            validate_category(c)?;
        }
        validate_tags(&self.tags)?;
        validate_tool_names(&self.requires_tools)?;
        if let Some(v) = &self.version {
            if v.chars().count() > 64 || v.chars().any(char::is_control) {
                return Err(SkillError::Invalid {
                    field: "version".into(),
                    message: "the version is one line of at most 64 characters".into(),
                });
            }
        }
        if self.content.trim().is_empty() {
            return Err(SkillError::Invalid {
                field: "content".into(),
                message: "the SKILL.md text is empty".into(),
            });
        }
        parse_skill_md(&self.content).map_err(|message| SkillError::Frontmatter {
            path: "content".into(),
            message,
        })?;
        check_size("SKILL.md", self.content.len() as u64, limits)?;
        if self.files.len() > limits.max_files {
            return Err(SkillError::TooManyFiles {
                what: format!("skill `{}`", self.slug),
                limit: limits.max_files,
            });
        }
        let mut seen = BTreeSet::new();
        let mut total = self.content.len() as u64;
        for f in &self.files {
            let path = check_relative_path(&f.path)?;
            if path == super::SKILL_FILE {
                return Err(SkillError::Invalid {
                    field: "files".into(),
                    message: "SKILL.md is the skill's content, not a supporting file".into(),
                });
            }
            if !seen.insert(path.clone()) {
                return Err(SkillError::Invalid {
                    field: "files".into(),
                    message: format!("`{path}` is listed twice"),
                });
            }
            check_size(&path, f.content.len() as u64, limits)?;
            total += f.content.len() as u64;
        }
        if total > limits.max_skill_bytes {
            return Err(SkillError::TooLarge {
                what: format!("skill `{}`", self.slug),
                size: total,
                limit: limits.max_skill_bytes,
            });
        }
        Ok(())
    }

    /// The row and file rows of this skill, stamped `now` (Unix ms).
    pub(crate) fn into_rows(self, now: i64) -> (SkillRow, Vec<SkillFileRow>) {
        let id = admin_id(&self.slug);
        let files: Vec<SkillFileRow> = self
            .files
            .into_iter()
            .map(|f| SkillFileRow {
                id: new_id(),
                skill_id: id.clone(),
                checksum: Some(checksum(f.content.as_bytes())),
                size_bytes: f.content.len() as i64,
                relative_path: f.path,
                content: f.content,
                content_type: f.content_type,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let row = SkillRow {
            id,
            name: self.name.trim().to_string(),
            slug: self.slug,
            description: self.description.filter(|d| !d.trim().is_empty()),
            category: self.category.unwrap_or_else(|| "general".into()),
            source_kind: SkillSourceKind::Admin.as_str().into(),
            plugin_id: None,
            source_ref: None,
            checksum: Some(checksum(self.content.as_bytes())),
            content: self.content,
            is_directory: !files.is_empty(),
            version: self.version,
            enabled: self.enabled,
            tags: self.tags,
            requires_tools: self.requires_tools,
            metadata: Value::Null,
            created_at: now,
            updated_at: now,
        };
        (row, files)
    }

    /// An input equal to a stored admin skill (to apply an update to).
    pub(crate) fn from_row(row: &SkillRow, files: Vec<SkillFileRow>) -> AdminSkillInput {
        AdminSkillInput {
            slug: row.slug.clone(),
            name: row.name.clone(),
            description: row.description.clone(),
            category: Some(row.category.clone()),
            tags: row.tags.clone(),
            version: row.version.clone(),
            requires_tools: row.requires_tools.clone(),
            content: row.content.clone(),
            files: files
                .into_iter()
                .map(|f| SkillFileInput {
                    path: f.relative_path,
                    content: f.content,
                    content_type: f.content_type,
                })
                .collect(),
            enabled: row.enabled,
        }
    }

    /// Applies an update.
    pub(crate) fn apply(&mut self, update: AdminSkillUpdate) {
        let AdminSkillUpdate {
            name,
            description,
            category,
            tags,
            version,
            requires_tools,
            content,
            files,
            enabled,
        } = update;
        set(&mut self.name, name);
        set(&mut self.description, description);
        set(&mut self.category, category.map(Some));
        set(&mut self.tags, tags);
        set(&mut self.version, version);
        set(&mut self.requires_tools, requires_tools);
        set(&mut self.content, content);
        set(&mut self.files, files);
        set(&mut self.enabled, enabled);
    }
}

/// A field that is present deserialises to `Some`, even when it is `null` (absent fields take the
/// `default`, `None`): how an update says "clear this".
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn check_size(path: &str, size: u64, limits: &SkillLimits) -> Result<(), SkillError> {
    if size > limits.max_file_bytes {
        return Err(SkillError::TooLarge {
            what: format!("file `{path}`"),
            size,
            limit: limits.max_file_bytes,
        });
    }
    Ok(())
}

/// `admin:<slug>`.
pub(crate) fn admin_id(slug: &str) -> String {
    format!("admin:{slug}")
}

/// Index entries of stored admin skills (any row whose source is neither `repo` nor `plugin`).
pub(crate) fn admin_skills(rows: &[SkillRow], stats: &[SkillFileStat]) -> Vec<Skill> {
    let mut files: BTreeMap<&str, Vec<SkillFile>> = BTreeMap::new();
    for s in stats {
        files
            .entry(s.skill_id.as_str())
            .or_default()
            .push(SkillFile {
                path: s.relative_path.clone(),
                size_bytes: s.size_bytes.max(0) as u64,
            });
    }
    rows.iter()
        .filter(|r| SkillSourceKind::from_stored(&r.source_kind) == SkillSourceKind::Admin)
        .map(|r| {
            let files = files.remove(r.id.as_str()).unwrap_or_default();
            let size = r.content.len() as u64 + files.iter().map(|f| f.size_bytes).sum::<u64>();
            Skill {
                id: r.id.clone(),
                source: SkillSourceKind::Admin,
                name: r.name.clone(),
                slug: r.slug.clone(),
                description: r.description.clone(),
                category: r.category.clone(),
                tags: r.tags.clone(),
                version: r.version.clone(),
                requires_tools: r.requires_tools.clone(),
                plugin: None,
                origin: "database".into(),
                content: r.content.clone(),
                files,
                size_bytes: size,
                enabled: r.enabled,
                active: true,
                default_enabled: false,
                shadowed_by: None,
                location: SkillLocation::Database,
            }
        })
        .collect()
}

/// The mirror row of a repo or plugin skill. `previous` is the stored row, whose metadata flags
/// (`defaultAssigned`) carry over.
pub(crate) fn mirror_row(skill: &Skill, previous: Option<&SkillRow>, now: i64) -> SkillRow {
    let mut metadata = json!({
        "active": skill.active,
        "origin": skill.origin,
        "files": skill.files,
        "defaultEnabled": skill.default_enabled,
        "sizeBytes": skill.size_bytes,
    });
    if let Some(p) = &skill.plugin {
        metadata["pluginId"] = json!(p.id);
        metadata["pluginVersion"] = json!(p.version);
    }
    if let Some(flag) = previous.and_then(|p| p.metadata.get("defaultAssigned")) {
        metadata["defaultAssigned"] = flag.clone();
    }
    SkillRow {
        id: skill.id.clone(),
        name: skill.name.clone(),
        slug: skill.id.clone(),
        description: skill.description.clone(),
        category: skill.category.clone(),
        source_kind: skill.source.as_str().into(),
        plugin_id: skill.plugin.as_ref().map(|p| p.id.clone()),
        source_ref: Some(skill.origin.clone()),
        content: skill.content.clone(),
        is_directory: !skill.files.is_empty(),
        version: skill.version.clone(),
        checksum: Some(checksum(skill.content.as_bytes())),
        enabled: previous.is_none_or(|p| p.enabled),
        tags: skill.tags.clone(),
        requires_tools: skill.requires_tools.clone(),
        metadata,
        created_at: previous.map_or(now, |p| p.created_at),
        updated_at: now,
    }
}

/// The index entry of a repo or plugin skill as its mirror row last recorded it: for readers without
/// the running server's registry (the CLI), and for skills their source no longer provides. Its
/// supporting files are listed but not readable.
pub(crate) fn skill_from_mirror(row: &SkillRow) -> Skill {
    let meta = &row.metadata;
    let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_string);
    let files: Vec<SkillFile> = meta
        .get("files")
        .and_then(|f| serde_json::from_value(f.clone()).ok())
        .unwrap_or_default();
    let plugin = text("pluginId").map(|id| SkillPlugin {
        id,
        version: text("pluginVersion").unwrap_or_default(),
    });
    let kind = SkillSourceKind::from_stored(&row.source_kind);
    let tail = row.id.split_once(':').map_or(row.id.as_str(), |(_, t)| t);
    let last = tail.rsplit('/').next().unwrap_or(tail);
    let slug = match kind {
        SkillSourceKind::Repo => slugify(last),
        _ => last.to_string(),
    };
    Skill {
        id: row.id.clone(),
        source: kind,
        name: row.name.clone(),
        slug,
        description: row.description.clone(),
        category: row.category.clone(),
        tags: row.tags.clone(),
        version: row.version.clone(),
        requires_tools: row.requires_tools.clone(),
        plugin,
        origin: row.source_ref.clone().unwrap_or_default(),
        content: row.content.clone(),
        size_bytes: meta
            .get("sizeBytes")
            .and_then(Value::as_u64)
            .unwrap_or(row.content.len() as u64),
        files,
        enabled: row.enabled,
        active: meta.get("active").and_then(Value::as_bool).unwrap_or(false),
        default_enabled: meta
            .get("defaultEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        shadowed_by: None,
        location: SkillLocation::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_tells_null_from_absent() {
        let clear: AdminSkillUpdate =
            serde_json::from_str(r#"{"description": null, "name": "x"}"#).unwrap();
        assert_eq!(clear.description, Some(None));
        assert_eq!(clear.version, None);
        let set: AdminSkillUpdate = serde_json::from_str(r#"{"version": "2.0"}"#).unwrap();
        assert_eq!(set.version, Some(Some("2.0".into())));
    }
}
