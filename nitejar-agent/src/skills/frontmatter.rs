//! `SKILL.md` frontmatter: a YAML block between `---` lines at the top of the file.
//!
//! ```text
//! ---
//! name: Deploy
//! description: Ship the current branch to production.
//! tags: [ops, deploy]          # or a comma-separated string
//! version: 1.2.0
//! category: ops
//! requires-tools: [bash]
//! ---
//! # Deploy
//! …
//! ```
//!
//! Every key is optional and unknown keys are ignored (files written for other tools carry
//! `license`, `allowed-tools`, …). A file without a leading `---` line has no frontmatter.

use serde_yaml_ng::Value;

/// The fields Nitejar reads from a `SKILL.md` frontmatter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontmatter {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// Kept as written (`1.0` and `"1.0"` alike).
    pub version: Option<String>,
    pub category: Option<String>,
    /// `requires-tools` (also read as `requires_tools`): advisory, never enforced.
    pub requires_tools: Vec<String>,
}

/// Splits a `SKILL.md` into its frontmatter and body, and reads the frontmatter. The error is a
/// message fit to follow the file's name.
///
/// ```
/// use nitejar_agent::skills::parse_skill_md;
/// let (fm, body) = parse_skill_md("---\nname: Deploy\ntags: ops, deploy\n---\nShip it.\n").unwrap();
/// assert_eq!(fm.name.as_deref(), Some("Deploy"));
/// assert_eq!(fm.tags, ["ops", "deploy"]);
/// assert_eq!(body, "Ship it.\n");
/// ```
pub fn parse_skill_md(text: &str) -> Result<(Frontmatter, &str), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = strip_fence(text) else {
        return Ok((Frontmatter::default(), text));
    };
    let mut offset = 0;
    let mut end = None;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare == "..." {
            end = Some((offset, offset + line.len()));
            break;
        }
        offset += line.len();
    }
    let Some((yaml_end, body_start)) = end else {
        return Err("the frontmatter opened with `---` is never closed with a `---` line".into());
    };
    let yaml = &rest[..yaml_end];
    let body = &rest[body_start..];
    let value: Value = if yaml.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?
    };
    let map = match value {
        Value::Null => return Ok((Frontmatter::default(), body)),
        Value::Mapping(map) => map,
        _ => return Err("the frontmatter is not a map of `key: value` lines".into()),
    };
    let get = |key: &str| map.get(key);
    Ok((
        Frontmatter {
            name: scalar(get("name"), "name")?,
            description: scalar(get("description"), "description")?,
            tags: list(get("tags"), "tags")?,
            version: scalar(get("version"), "version")?,
            category: scalar(get("category"), "category")?,
            requires_tools: list(
                get("requires-tools").or_else(|| get("requires_tools")),
                "requires-tools",
            )?,
        },
        body,
    ))
}

/// The text after an opening `---` line, if the file starts with one.
fn strip_fence(text: &str) -> Option<&str> {
    let first_end = text.find('\n')?;
    let first = text[..first_end].trim_end_matches('\r');
    (first == "---").then(|| &text[first_end + 1..])
}

fn scalar(value: Option<&Value>, key: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(format!("`{key}` must be a single value")),
    }
}

fn list(value: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| match scalar(Some(item), key)? {
                Some(s) => Ok(s),
                None => Err(format!("`{key}` has an empty entry")),
            })
            .collect(),
        Some(_) => Err(format!(
            "`{key}` must be a list or a comma-separated string"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_frontmatter() {
        let (fm, body) = parse_skill_md("# Title\n---\n").unwrap();
        assert_eq!(fm, Frontmatter::default());
        assert_eq!(body, "# Title\n---\n");
    }

    #[test]
    fn full_frontmatter() {
        let text = "---\r\nname: \"Deploy\"\r\ndescription: >\r\n  Ship it\r\n  today.\r\ntags:\r\n  - ops\r\n  - deploy\r\nversion: 1.0\r\ncategory: ops\r\nrequires-tools: [bash, git]\r\nlicense: MIT\r\n---\r\nBody";
        let (fm, body) = parse_skill_md(text).unwrap();
        assert_eq!(fm.name.as_deref(), Some("Deploy"));
        assert_eq!(fm.description.as_deref(), Some("Ship it today."));
        assert_eq!(fm.tags, ["ops", "deploy"]);
        assert_eq!(fm.version.as_deref(), Some("1.0"));
        assert_eq!(fm.category.as_deref(), Some("ops"));
        assert_eq!(fm.requires_tools, ["bash", "git"]);
        assert_eq!(body, "Body");
    }

    #[test]
    fn broken_frontmatter() {
        assert!(parse_skill_md("---\nname: x\n").is_err());
        assert!(parse_skill_md("---\n- a\n- b\n---\n").is_err());
        assert!(parse_skill_md("---\nname: [a, b]\n---\n").is_err());
        assert!(parse_skill_md("---\nname: : :\n  bad\n---\n").is_err());
        assert!(parse_skill_md("---\ntags: {a: b}\n---\n").is_err());
    }
}
