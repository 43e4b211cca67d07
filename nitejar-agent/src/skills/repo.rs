//! Repo skills: `SKILL.md` files under the configured roots.
//!
//! A root is a directory of skill directories: `<root>/<dir>/SKILL.md`, nested up to four levels
//! (`<root>/ops/deploy/SKILL.md` is `repo:ops/deploy`). A directory holding a `SKILL.md` is one skill;
//! everything else below it (hidden entries aside) is its supporting files, and no further skill is
//! looked for inside it. When two roots hold the same relative directory the first root listed wins
//! and the other is reported.

use std::path::{Path, PathBuf};

use super::frontmatter::parse_skill_md;
use super::index::{Skill, SkillLocation, SkillProblem};
use super::names::{
    slugify, validate_category, validate_description, validate_name, validate_tags,
    validate_tool_names,
};
use super::paths::{list_supporting_files, read_under};
use super::{SkillError, SkillLimits, SkillSourceKind, SKILL_FILE};

/// How deep below a root skill directories are looked for.
const MAX_DEPTH: usize = 4;

/// Scans the roots, in order. Skills that break a rule are left out and reported.
pub fn scan_roots(roots: &[PathBuf], limits: &SkillLimits) -> (Vec<Skill>, Vec<SkillProblem>) {
    let mut skills = Vec::new();
    let mut problems = Vec::new();
    for root in roots {
        let canonical = match root.canonicalize() {
            Ok(c) if c.is_dir() => c,
            Ok(_) => {
                problems.push(problem(
                    root.display(),
                    "the skills root is not a directory",
                ));
                continue;
            }
            Err(e) => {
                problems.push(problem(
                    root.display(),
                    format!("the skills root cannot be opened: {e}"),
                ));
                continue;
            }
        };
        walk(&canonical, "", 1, limits, &mut skills, &mut problems);
    }
    (skills, problems)
}

fn problem(location: impl std::fmt::Display, message: impl Into<String>) -> SkillProblem {
    SkillProblem {
        source: SkillSourceKind::Repo,
        location: location.to_string(),
        message: message.into(),
    }
}

fn walk(
    root: &Path,
    prefix: &str,
    depth: usize,
    limits: &SkillLimits,
    skills: &mut Vec<Skill>,
    problems: &mut Vec<SkillProblem>,
) {
    let dir = root.join(prefix);
    let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).collect(),
        Err(e) => {
            problems.push(problem(dir.display(), format!("cannot be read: {e}")));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            problems.push(problem(
                entry.path().display(),
                "the directory name is not UTF-8",
            ));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let relative = format!("{prefix}{name}");
        if meta.file_type().is_symlink() {
            problems.push(problem(
                format!("repo:{relative}"),
                format!(
                    "{} is a symbolic link; links are not followed inside a skills root",
                    entry.path().display()
                ),
            ));
            continue;
        }
        if !meta.is_dir() {
            continue;
        }
        let marker = entry.path().join(SKILL_FILE);
        if std::fs::symlink_metadata(&marker).is_ok() {
            match load(root, &relative, limits) {
                Ok(skill) => skills.push(skill),
                Err(e) => problems.push(problem(format!("repo:{relative}"), e.to_string())),
            }
        } else if depth < MAX_DEPTH {
            walk(
                root,
                &format!("{relative}/"),
                depth + 1,
                limits,
                skills,
                problems,
            );
        }
    }
}

/// Reads the skill in `<root>/<relative>` (`root` canonical).
fn load(root: &Path, relative: &str, limits: &SkillLimits) -> Result<Skill, SkillError> {
    let entry = format!("{relative}/{SKILL_FILE}");
    let bytes = read_under(root, &entry, limits)?;
    let dir = root.join(relative);
    let content = String::from_utf8(bytes).map_err(|_| SkillError::Io {
        path: dir.join(SKILL_FILE),
        message: "SKILL.md is not UTF-8 text".into(),
    })?;
    let (fm, _) = parse_skill_md(&content).map_err(|message| SkillError::Frontmatter {
        path: dir.join(SKILL_FILE).display().to_string(),
        message,
    })?;
    let files = list_supporting_files(&dir, limits)?;
    let size = content.len() as u64 + files.iter().map(|f| f.size_bytes).sum::<u64>();
    if size > limits.max_skill_bytes {
        return Err(SkillError::TooLarge {
            what: format!("skill `repo:{relative}`"),
            size,
            limit: limits.max_skill_bytes,
        });
    }
    let dir_name = relative.rsplit('/').next().unwrap_or(relative);
    let name = fm.name.clone().unwrap_or_else(|| dir_name.to_string());
    validate_name(&name)?;
    if let Some(d) = &fm.description {
        validate_description(d)?;
    }
    validate_tags(&fm.tags)?;
    let category = fm.category.clone().unwrap_or_else(|| "general".into());
    validate_category(&category)?;
    validate_tool_names(&fm.requires_tools)?;
    Ok(Skill {
        id: format!("repo:{relative}"),
        source: SkillSourceKind::Repo,
        name,
        slug: slugify(dir_name),
        description: fm.description,
        category,
        tags: fm.tags,
        version: fm.version,
        requires_tools: fm.requires_tools,
        plugin: None,
        origin: dir.join(SKILL_FILE).display().to_string(),
        content,
        files,
        size_bytes: size,
        enabled: true,
        active: true,
        default_enabled: false,
        shadowed_by: None,
        location: SkillLocation::Directory(dir),
    })
}

/// Entries [`roots_fingerprint`] looks at before it gives up (and the index is built every time).
const FINGERPRINT_MAX_ENTRIES: usize = 20_000;

/// A fingerprint of what is on disk under `roots`: every entry's path, type, size and modification
/// time, down to the depth skills are looked for and inside them. It moves when a skill directory or
/// any file in one is added, removed or written (a write that keeps the size and the modification
/// time is not seen). `None` when a root holds more than can be looked at quickly.
pub fn roots_fingerprint(roots: &[PathBuf]) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut seen = 0usize;
    for root in roots {
        root.hash(&mut hasher);
        let mut stack = vec![(root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                "unreadable".hash(&mut hasher);
                continue;
            };
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                seen += 1;
                if seen > FINGERPRINT_MAX_ENTRIES {
                    return None;
                }
                let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                entry.path().hash(&mut hasher);
                meta.len().hash(&mut hasher);
                meta.file_type().is_dir().hash(&mut hasher);
                meta.file_type().is_symlink().hash(&mut hasher);
                if let Ok(modified) = meta.modified() {
                    modified.hash(&mut hasher);
                }
                // Skills sit at most MAX_DEPTH deep; their supporting files a few levels more.
                if meta.is_dir() && depth < MAX_DEPTH + 4 {
                    stack.push((entry.path(), depth + 1));
                }
            }
        }
    }
    Some(hasher.finish())
}
