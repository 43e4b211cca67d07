//! The portable JSON form of a skill, for export and import (format version 2, the shape earlier
//! Nitejar releases use):
//!
//! ```json
//! {
//!   "formatVersion": 2,
//!   "skill": {
//!     "name": "Jira Triage", "slug": "jira-triage", "description": "…", "category": "ops",
//!     "tags": ["jira"], "version": "1.0.0", "requiresTools": ["bash"],
//!     "content": "---\nname: …\n---\n# Jira Triage\n…",
//!     "files": [
//!       { "path": "references/matrix.md", "content": "…", "contentType": "text/markdown" },
//!       { "path": "img/logo.png", "content": "iVBORw0…", "encoding": "base64" }
//!     ]
//!   },
//!   "metadata": { "exportedAt": "2026-02-20T12:00:00Z", "exportedFrom": "nitejar", "sourceId": "repo:jira-triage" }
//! }
//! ```
//!
//! Files are text (`"encoding": "utf8"`, the default) or base64. An import becomes an admin skill,
//! and admin skills hold text files only: a base64 file must decode to UTF-8 text. Assignments are
//! not part of the format (they belong to a deployment).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::{AdminSkillInput, SkillFileInput};
use super::SkillError;

/// The format version written and read.
pub const FORMAT_VERSION: u32 = 2;

/// An exported skill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortableSkill {
    pub format_version: u32,
    pub skill: PortableSkillBody,
    /// Free-form: `exportedAt`, `exportedFrom`, `sourceId`.
    #[serde(default)]
    pub metadata: Value,
}

/// The skill itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortableSkillBody {
    pub name: String,
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub requires_tools: Vec<String>,
    pub content: String,
    #[serde(default)]
    pub files: Vec<PortableFile>,
}

/// A supporting file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortableFile {
    pub path: String,
    pub content: String,
    /// `utf8` (default) or `base64`.
    #[serde(default = "utf8", skip_serializing_if = "is_utf8")]
    pub encoding: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

fn utf8() -> String {
    "utf8".into()
}

fn is_utf8(e: &str) -> bool {
    e == "utf8"
}

impl PortableFile {
    /// A file from its bytes: text when they are UTF-8, base64 otherwise.
    pub fn from_bytes(path: String, bytes: Vec<u8>, content_type: Option<String>) -> PortableFile {
        match String::from_utf8(bytes) {
            Ok(content) => PortableFile {
                path,
                content,
                encoding: utf8(),
                content_type,
            },
            Err(e) => PortableFile {
                path,
                content: STANDARD.encode(e.into_bytes()),
                encoding: "base64".into(),
                content_type,
            },
        }
    }
}

impl PortableSkill {
    /// Reads an export document.
    pub fn from_json(text: &str) -> Result<PortableSkill, SkillError> {
        let doc: PortableSkill =
            serde_json::from_str(text).map_err(|e| SkillError::Format(e.to_string()))?;
        if doc.format_version != FORMAT_VERSION {
            return Err(SkillError::Format(format!(
                "formatVersion {} is not supported; this server reads version {FORMAT_VERSION}",
                doc.format_version
            )));
        }
        Ok(doc)
    }

    /// The admin skill this document creates (not yet validated: see
    /// [`AdminSkillInput::validate`]). Base64 files must decode to UTF-8 text.
    pub fn into_admin_input(self) -> Result<AdminSkillInput, SkillError> {
        let body = self.skill;
        let files = body
            .files
            .into_iter()
            .map(|f| {
                let content = match f.encoding.as_str() {
                    "utf8" | "utf-8" | "text" => f.content,
                    "base64" => {
                        let bytes = STANDARD.decode(f.content.trim()).map_err(|e| {
                            SkillError::Format(format!("file `{}`: bad base64: {e}", f.path))
                        })?;
                        String::from_utf8(bytes).map_err(|_| SkillError::Invalid {
                            field: format!("files[{}]", f.path),
                            message: "the file is binary; admin skills hold text files only".into(),
                        })?
                    }
                    other => {
                        return Err(SkillError::Format(format!(
                            "file `{}`: encoding `{other}` is not utf8 or base64",
                            f.path
                        )))
                    }
                };
                Ok(SkillFileInput {
                    path: f.path,
                    content,
                    content_type: f.content_type,
                })
            })
            .collect::<Result<Vec<_>, SkillError>>()?;
        Ok(AdminSkillInput {
            slug: body.slug,
            name: body.name,
            description: body.description,
            category: body.category,
            tags: body.tags,
            version: body.version,
            requires_tools: body.requires_tools,
            content: body.content,
            files,
            enabled: true,
        })
    }
}
