//! Skills: instructions an agent loads with the `use_skill` tool, from one index over three sources.
//!
//! # Sources and skill ids
//!
//! | source | where it comes from | skill id |
//! | --- | --- | --- |
//! | repo | a `SKILL.md` under a configured root (`NITEJAR_SKILLS_DIRS`), YAML frontmatter | `repo:<directory relative to its root>` |
//! | plugin | a [`SkillContribution`](nitejar_sdk::SkillContribution) of an active plugin, inline or a file of its package | `plugin:<plugin id>/<skill id>` |
//! | admin | created or imported by an operator, stored in the database with its supporting files | `admin:<slug>` |
//!
//! Ids are stable: a repo skill keeps its id while its directory keeps its place, a plugin skill
//! across versions of its plugin, an admin skill for its whole life (its slug cannot change).
//! Besides its id, a skill is found by its **name** or its **slug**, case-insensitively
//! ([`SkillIndex::lookup`]).
//!
//! # Precedence
//!
//! Names are one namespace. When enabled skills of several sources share a name, **admin beats
//! plugin beats repo** (the operator's word is last; a plugin is more deliberate than a file that
//! happens to be in a directory); within one source the smaller id wins. The others stay listed,
//! marked `shadowed_by` the winner, and remain reachable by id. Disabled skills and skills of
//! inactive plugins do not compete.
//!
//! # Assignments and resolution
//!
//! A skill reaches a run through assignments ([`Scope`]): `global`, `team:<id>`, `agent:<id>`,
//! `integration_type:<type>`, each with a priority and an enabled flag. For a run (its agent, the
//! agent's team, the work item's integration type — [`RunScope`]) the most specific matching
//! assignment of each skill decides (agent over team over integration type over global), so an
//! agent-level `--disable` switches off a global assignment for that agent and an agent-level
//! assignment switches on a skill disabled globally. Resolved skills are ordered by priority (high
//! first), then name; when two share a name the precedence above picks one.
//!
//! A plugin skill contributed with `default_enabled` gets one global assignment the first time its
//! plugin is seen active. It is made once: an operator who disables or deletes it is not overruled
//! when the plugin is enabled again.
//!
//! # Safety and limits
//!
//! Every path inside a skill is relative, without `..`, and may not cross a symbolic link: files are
//! opened component by component below the canonical root, and a link anywhere refuses the file
//! (the root itself, being the operator's setting, may be a link). Sizes are capped per file and per
//! skill ([`SkillLimits`], `NITEJAR_SKILL_MAX_FILE_BYTES` / `NITEJAR_SKILL_MAX_BYTES` in the
//! server) for every source. Hidden files (`.name`) are not part of a skill. A skill that breaks a
//! rule is left out of the index and reported as a [`SkillProblem`] with the reason.
//!
//! # Receipts
//!
//! Every `use_skill` call is a `skill` receipt: on the contributing plugin for a plugin skill, and on
//! [`ENGINE_PLUGIN_ID`] (`nitejar.skills`) for repo and admin skills and for misses.

mod catalog;
mod frontmatter;
mod index;
mod manage;
mod names;
mod paths;
mod plugin;
mod portable;
mod repo;
mod scope;
mod service;
mod tool;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use nitejar_store::store::StoreError;

pub use catalog::{AdminSkillInput, AdminSkillUpdate, SkillFileInput};
pub use frontmatter::{parse_skill_md, Frontmatter};
pub use index::{Skill, SkillFile, SkillIndex, SkillLocation, SkillPlugin, SkillProblem};
pub use manage::{
    AssignmentInput, AssignmentView, ListFilter, SkillDetail, SkillListing, SkillSummary,
};
pub use names::{one_line, slugify, validate_slug, validate_tags, MAX_TAGS};
pub use paths::{check_relative_path, open_under};
pub use plugin::plugin_skills;
pub use portable::{PortableFile, PortableSkill, PortableSkillBody, FORMAT_VERSION};
pub use repo::scan_roots;
pub use scope::{resolve, ResolvedSkill, RunScope, Scope};
pub use service::{Skills, SkillsConfig, SyncReport};
pub use tool::{UseSkill, USE_SKILL};

/// The plugin id skill-use receipts of repo and admin skills (and misses) are recorded under: the
/// engine's skill service, which no installed plugin is.
pub const ENGINE_PLUGIN_ID: &str = "nitejar.skills";

/// The name of a skill's entry file.
pub const SKILL_FILE: &str = "SKILL.md";

/// Size limits of skills, enforced for every source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillLimits {
    /// The largest single file (`SKILL.md` or a supporting file), in bytes. Default 256 KiB.
    pub max_file_bytes: u64,
    /// The largest skill (`SKILL.md` plus every supporting file), in bytes. Default 1 MiB.
    pub max_skill_bytes: u64,
    /// Supporting files per skill at most. Default 256.
    pub max_files: usize,
}

impl Default for SkillLimits {
    fn default() -> Self {
        SkillLimits {
            max_file_bytes: 256 * 1024,
            max_skill_bytes: 1024 * 1024,
            max_files: 256,
        }
    }
}

/// Where a skill comes from. Ordered by precedence: `Repo < Plugin < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillSourceKind {
    /// A `SKILL.md` under a configured root.
    Repo,
    /// Contributed by a plugin.
    Plugin,
    /// Created by an operator.
    Admin,
}

impl SkillSourceKind {
    /// `repo`, `plugin` or `admin` (the stored `source_kind`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SkillSourceKind::Repo => "repo",
            SkillSourceKind::Plugin => "plugin",
            SkillSourceKind::Admin => "admin",
        }
    }

    /// Reads a stored `source_kind`. Anything that is not `repo` or `plugin` is an operator's skill
    /// (earlier releases wrote `admin` or `db`).
    pub fn from_stored(kind: &str) -> SkillSourceKind {
        match kind {
            "repo" => SkillSourceKind::Repo,
            "plugin" => SkillSourceKind::Plugin,
            _ => SkillSourceKind::Admin,
        }
    }
}

impl std::str::FromStr for SkillSourceKind {
    type Err = SkillError;
    fn from_str(s: &str) -> Result<Self, SkillError> {
        match s {
            "repo" => Ok(SkillSourceKind::Repo),
            "plugin" => Ok(SkillSourceKind::Plugin),
            "admin" => Ok(SkillSourceKind::Admin),
            other => Err(SkillError::Invalid {
                field: "source".into(),
                message: format!("`{other}` is not a skill source; use repo, plugin or admin"),
            }),
        }
    }
}

impl std::fmt::Display for SkillSourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with a skill. Messages name the skill, field or path, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// A field does not follow its rules (slug, tag, name, scope, …).
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`slug`, `tags[2]`, `scope`, …).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A path inside a skill is refused.
    #[error("path `{path}` is refused: {reason}")]
    UnsafePath {
        /// The path as given.
        path: String,
        /// Why (`..`, absolute, a symbolic link, outside the skill directory, …).
        reason: String,
    },
    /// A file or the whole skill is over its size limit.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Which file, or which skill.
        what: String,
        size: u64,
        limit: u64,
    },
    /// A skill has too many supporting files.
    #[error("{what} has more than {limit} supporting files")]
    TooManyFiles { what: String, limit: usize },
    /// `SKILL.md` frontmatter cannot be read.
    #[error("{path}: frontmatter: {message}")]
    Frontmatter { path: String, message: String },
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// No skill has this id, name or slug.
    #[error("no skill is called `{query}`{}", available_list(.available))]
    NotFound {
        query: String,
        /// Names that would have matched something.
        available: Vec<String>,
    },
    /// A skill has no supporting file at this path (or it cannot be read where this runs).
    #[error("skill `{skill}` has no readable supporting file `{path}`{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    NoSuchFile {
        skill: String,
        path: String,
        hint: Option<String>,
    },
    /// The operation only applies to admin skills.
    #[error("skill `{id}` comes from {source_kind}; only admin skills can be changed or deleted (import or copy it as an admin skill to change it)")]
    NotAdmin {
        id: String,
        source_kind: SkillSourceKind,
    },
    /// An admin skill with this slug exists.
    #[error("an admin skill with slug `{slug}` exists already; pick another slug or replace it")]
    AlreadyExists { slug: String },
    /// An import document is not a skill export.
    #[error("not a Nitejar skill export: {0}")]
    Format(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn available_list(names: &[String]) -> String {
    if names.is_empty() {
        "; no skills are available".into()
    } else {
        format!("; available: {}", names.join(", "))
    }
}

/// sha256 of some bytes, as lower-case hex (the `checksum` columns).
pub(crate) fn checksum(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
