//! Plugin skills: the [`SkillContribution`]s of the active plugins, read from the registry.
//!
//! An inline skill is its text. A file skill is a file of the plugin's package (its version
//! directory, immutable once installed), opened below the package directory with the same checks
//! as any skill path; when the file is a `SKILL.md`, the other files of its directory are its
//! supporting files. Frontmatter in the text fills in what the contribution leaves out (a
//! description, tags, a category, a version; the name, when the contribution's name is just its id,
//! as for skills the loader finds in `skills/<id>/SKILL.md`).

use nitejar_sdk::{SkillContribution, SkillSource};

use super::frontmatter::parse_skill_md;
use super::index::{Skill, SkillLocation, SkillPlugin, SkillProblem};
use super::names::{
    validate_category, validate_description, validate_name, validate_slug, validate_tags,
    validate_tool_names,
};
use super::paths::{check_relative_path, list_supporting_files, open_under, read_under};
use super::{SkillError, SkillLimits, SkillSourceKind, SKILL_FILE};
use nitejar_runtime::registry::{Registry, SkillEntry};

/// The skills of every active plugin of `registry`. Skills that break a rule are left out and
/// reported.
pub fn plugin_skills(registry: &Registry, limits: &SkillLimits) -> (Vec<Skill>, Vec<SkillProblem>) {
    let mut skills = Vec::new();
    let mut problems = Vec::new();
    for entry in registry.skills() {
        match load(entry, limits) {
            Ok(skill) => skills.push(skill),
            Err(e) => problems.push(SkillProblem {
                source: SkillSourceKind::Plugin,
                location: skill_id(&entry.plugin.id, &entry.skill.id),
                message: e.to_string(),
            }),
        }
    }
    (skills, problems)
}

/// `plugin:<plugin id>/<skill id>`.
pub(crate) fn skill_id(plugin_id: &str, skill_id: &str) -> String {
    format!("plugin:{plugin_id}/{skill_id}")
}

fn load(entry: &SkillEntry, limits: &SkillLimits) -> Result<Skill, SkillError> {
    let c: &SkillContribution = &entry.skill;
    let plugin = &entry.plugin;
    validate_slug(&c.id).map_err(|_| SkillError::Invalid {
        field: "id".into(),
        message: format!(
            "plugin skill id `{}` is not valid: use 1 to 64 lower-case letters, digits and `-`",
            c.id
        ),
    })?;
    let id = skill_id(&plugin.id, &c.id);
    let (content, files, location, origin) = match &c.source {
        SkillSource::Inline { content } => {
            let size = content.len() as u64;
            if size > limits.max_file_bytes {
                return Err(SkillError::TooLarge {
                    what: format!("the inline text of skill `{id}`"),
                    size,
                    limit: limits.max_file_bytes,
                });
            }
            (
                content.clone(),
                Vec::new(),
                SkillLocation::None,
                format!("{plugin}: inline"),
            )
        }
        SkillSource::File { path } => {
            let path = check_relative_path(path)?;
            let Some(package) = entry.package_dir.as_deref() else {
                return Err(SkillError::Io {
                    path: path.clone().into(),
                    message: format!(
                        "plugin `{plugin}` was not loaded from a package directory, so its file \
                         skill cannot be read; give the text inline"
                    ),
                });
            };
            let bytes = read_under(package, &path, limits)?;
            let content = String::from_utf8(bytes).map_err(|_| SkillError::Io {
                path: package.join(&path),
                message: "the skill file is not UTF-8 text".into(),
            })?;
            let (files, location) = match path.rsplit_once('/') {
                Some((dir, file)) if file == SKILL_FILE => {
                    let dir = open_under(package, dir)?;
                    (
                        list_supporting_files(&dir, limits)?,
                        SkillLocation::Directory(dir),
                    )
                }
                _ => (Vec::new(), SkillLocation::None),
            };
            (content, files, location, format!("{plugin}: {path}"))
        }
        // `SkillSource` is `#[non_exhaustive]`: a source a later SDK adds is refused by name
        // until this server learns to read it.
        other => {
            return Err(SkillError::Invalid {
                field: "source".into(),
                message: format!(
                    "plugin skill `{id}` comes from a source this server cannot read ({other:?}); \
                     give the text inline or as a file in the package"
                ),
            })
        }
    };
    let size = content.len() as u64 + files.iter().map(|f| f.size_bytes).sum::<u64>();
    if size > limits.max_skill_bytes {
        return Err(SkillError::TooLarge {
            what: format!("skill `{id}`"),
            size,
            limit: limits.max_skill_bytes,
        });
    }
    let (fm, _) = parse_skill_md(&content).map_err(|message| SkillError::Frontmatter {
        path: origin.clone(),
        message,
    })?;
    let name = match fm.name {
        Some(n) if c.name == c.id => n,
        _ => c.name.clone(),
    };
    validate_name(&name)?;
    let description = c.description.clone().or(fm.description);
    if let Some(d) = &description {
        validate_description(d)?;
    }
    let tags = if c.tags.is_empty() {
        fm.tags
    } else {
        c.tags.clone()
    };
    validate_tags(&tags)?;
    let category = fm.category.unwrap_or_else(|| "general".into());
    validate_category(&category)?;
    validate_tool_names(&fm.requires_tools)?;
    Ok(Skill {
        id,
        source: SkillSourceKind::Plugin,
        name,
        slug: c.id.clone(),
        description,
        category,
        tags,
        version: fm.version,
        requires_tools: fm.requires_tools,
        plugin: Some(SkillPlugin {
            id: plugin.id.to_string(),
            version: plugin.version.to_string(),
        }),
        origin,
        content,
        files,
        size_bytes: size,
        enabled: true,
        active: true,
        default_enabled: c.default_enabled,
        shadowed_by: None,
        location,
    })
}
