//! The index: every skill of every source, with precedence applied.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SkillSourceKind;

/// A supporting file of a skill: its path relative to the skill directory and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillFile {
    pub path: String,
    pub size_bytes: u64,
}

/// The plugin that contributes a skill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillPlugin {
    pub id: String,
    pub version: String,
}

/// Where a skill's supporting files are read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SkillLocation {
    /// A directory on disk (a repo skill's directory, the directory of a plugin's `SKILL.md`).
    Directory(PathBuf),
    /// The `skill_files` table (admin skills).
    Database,
    /// Nowhere: the skill has no supporting files (inline plugin skills, mirror rows read by the CLI).
    #[default]
    None,
}

/// One skill of the index.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    /// The stable skill id (see the [module docs](super#sources-and-skill-ids)).
    pub id: String,
    pub source: SkillSourceKind,
    /// The display name, also what agents ask `use_skill` for.
    pub name: String,
    /// A lookup key: an admin skill's slug, a plugin skill's id within its plugin, a repo skill's
    /// directory name made into a slug.
    pub slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub category: String,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Tools the skill expects (advisory).
    pub requires_tools: Vec<String>,
    /// The contributing plugin (plugin skills).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<SkillPlugin>,
    /// Where the text comes from: a file path, `<plugin>@<version>: inline`, `database`.
    pub origin: String,
    /// The `SKILL.md` text.
    #[serde(skip)]
    pub content: String,
    /// Supporting files, by path.
    pub files: Vec<SkillFile>,
    /// `SKILL.md` plus supporting files, in bytes.
    pub size_bytes: u64,
    /// The operator's switch (`true` unless turned off).
    pub enabled: bool,
    /// Whether its source provides it now (`false` for a skill of a plugin that is not active).
    pub active: bool,
    /// For plugin skills: assigned globally when the plugin is first enabled.
    pub default_enabled: bool,
    /// The id of the skill that wins this one's name, when another does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadowed_by: Option<String>,
    /// Where supporting files are read from.
    #[serde(skip)]
    pub location: SkillLocation,
}

impl Skill {
    /// Whether a run may be given this skill: enabled and active.
    pub fn is_available(&self) -> bool {
        self.enabled && self.active
    }

    /// The plugin id its receipts are recorded under (see the [module docs](super#receipts)).
    pub fn receipt_plugin(&self) -> (&str, Option<&str>) {
        match &self.plugin {
            Some(p) => (p.id.as_str(), Some(p.version.as_str())),
            None => (
                super::ENGINE_PLUGIN_ID,
                Some(nitejar_packages::NITEJAR_VERSION),
            ),
        }
    }
}

/// A skill that could not be indexed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillProblem {
    pub source: SkillSourceKind,
    /// The skill id or the path concerned.
    pub location: String,
    pub message: String,
}

/// Every skill of every source, with precedence applied: built by [`super::Skills::index`] (or by
/// hand in tests and embedding hosts), read by listings, the resolver and `use_skill`.
#[derive(Clone, Debug, Default)]
pub struct SkillIndex {
    skills: Vec<Skill>,
    by_id: BTreeMap<String, usize>,
    problems: Vec<SkillProblem>,
}

impl SkillIndex {
    /// An index of these skills. Ids must be unique (a later duplicate is reported as a problem and
    /// left out). Shadowing is computed here.
    pub fn new(skills: Vec<Skill>, mut problems: Vec<SkillProblem>) -> SkillIndex {
        let mut kept: Vec<Skill> = Vec::with_capacity(skills.len());
        let mut by_id = BTreeMap::new();
        for mut skill in skills {
            if by_id.contains_key(&skill.id) {
                problems.push(SkillProblem {
                    source: skill.source,
                    location: skill.id.clone(),
                    message: "another skill has the same id; this one is left out".into(),
                });
                continue;
            }
            skill.shadowed_by = None;
            by_id.insert(skill.id.clone(), kept.len());
            kept.push(skill);
        }
        // Name groups among skills that compete (enabled and active).
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in kept.iter().enumerate() {
            if s.is_available() {
                groups.entry(name_key(&s.name)).or_default().push(i);
            }
        }
        for members in groups.values() {
            let Some(&winner) = members.iter().min_by(|&&a, &&b| rank(&kept[a], &kept[b])) else {
                continue;
            };
            let winner_id = kept[winner].id.clone();
            for &i in members {
                if i != winner {
                    kept[i].shadowed_by = Some(winner_id.clone());
                }
            }
        }
        kept.sort_by(|a, b| {
            name_key(&a.name)
                .cmp(&name_key(&b.name))
                .then_with(|| rank(a, b))
        });
        let by_id = kept
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        SkillIndex {
            skills: kept,
            by_id,
            problems,
        }
    }

    /// Every skill, by name, the winner of a name first.
    pub fn skills(&self) -> &[Skill] {
        &self.skills
    }

    /// Skills that could not be indexed.
    pub fn problems(&self) -> &[SkillProblem] {
        &self.problems
    }

    /// The skill with this exact id.
    pub fn get(&self, id: &str) -> Option<&Skill> {
        self.by_id.get(id).map(|&i| &self.skills[i])
    }

    /// Finds a skill by id (exact), then by name (case-insensitive: the winner of the name), then by
    /// slug (case-insensitive, by precedence), then by id ignoring case. A disabled or inactive skill
    /// is returned only when nothing available matches; check [`Skill::is_available`].
    pub fn lookup(&self, query: &str) -> Option<&Skill> {
        let query = query.trim();
        if let Some(s) = self.get(query) {
            return Some(s);
        }
        let key = name_key(query);
        let best = |matches: &dyn Fn(&Skill) -> bool| -> Option<&Skill> {
            self.skills.iter().filter(|s| matches(s)).min_by(|a, b| {
                b.is_available()
                    .cmp(&a.is_available())
                    .then_with(|| rank(a, b))
            })
        };
        best(&|s| name_key(&s.name) == key)
            .or_else(|| best(&|s| s.slug.eq_ignore_ascii_case(&key)))
            .or_else(|| best(&|s| s.id.eq_ignore_ascii_case(&key)))
    }

    /// The names of available skills that win their name, sorted.
    pub fn available_names(&self) -> Vec<String> {
        self.skills
            .iter()
            .filter(|s| s.is_available() && s.shadowed_by.is_none())
            .map(|s| s.name.clone())
            .collect()
    }
}

/// How names are compared: trimmed, lower case.
pub(crate) fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Precedence order: higher source first, then smaller id.
pub(crate) fn rank(a: &Skill, b: &Skill) -> std::cmp::Ordering {
    b.source.cmp(&a.source).then_with(|| a.id.cmp(&b.id))
}
