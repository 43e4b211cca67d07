//! Skills: instructions an agent can load with the `use_skill` tool.

use serde::{Deserialize, Serialize};

/// Where a contributed skill's text comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkillSource {
    /// The text itself.
    Inline {
        /// The skill's instructions (Markdown).
        content: String,
    },
    /// A file inside the plugin package (relative path, no `..`).
    File {
        /// The file's path in the package.
        path: String,
    },
}

/// A skill a plugin contributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SkillContribution {
    /// Stable id, unique within the plugin (`[a-z0-9-]`).
    pub id: String,
    /// The name agents use to ask for it.
    pub name: String,
    /// What it is for (shown when an agent chooses skills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where its instructions come from.
    pub source: SkillSource,
    /// Words to group and find it by.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether the skill is assigned globally when the plugin is enabled.
    #[serde(default)]
    pub default_enabled: bool,
}

impl SkillContribution {
    /// A skill whose text is given inline.
    pub fn inline(
        id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        SkillContribution {
            id: id.into(),
            name: name.into(),
            description: None,
            source: SkillSource::Inline {
                content: content.into(),
            },
            tags: Vec::new(),
            default_enabled: false,
        }
    }

    /// A skill read from a file inside the plugin package.
    pub fn file(id: impl Into<String>, name: impl Into<String>, path: impl Into<String>) -> Self {
        SkillContribution {
            id: id.into(),
            name: name.into(),
            description: None,
            source: SkillSource::File { path: path.into() },
            tags: Vec::new(),
            default_enabled: false,
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Assigns the skill globally when the plugin is enabled.
    pub fn enabled_by_default(mut self) -> Self {
        self.default_enabled = true;
        self
    }
}
