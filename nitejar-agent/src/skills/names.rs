//! The rules of skill names, slugs, tags, categories and tool names.
//!
//! Names and descriptions end up in the system prompt, so they are single-line and free of control
//! characters; slugs, tags and categories are lookup keys and follow one pattern,
//! `^[a-z0-9][a-z0-9-]{0,63}$`.

use super::SkillError;

/// Tags per skill at most.
pub const MAX_TAGS: usize = 20;
/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SkillError {
    SkillError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Whether `s` matches `^[a-z0-9][a-z0-9-]{0,63}$`.
fn is_key(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Checks a slug: `^[a-z0-9][a-z0-9-]{0,63}$`.
///
/// ```
/// use nitejar_agent::skills::validate_slug;
/// assert!(validate_slug("jira-triage").is_ok());
/// assert!(validate_slug("Jira").is_err());
/// assert!(validate_slug("-x").is_err());
/// ```
pub fn validate_slug(slug: &str) -> Result<(), SkillError> {
    if is_key(slug) {
        Ok(())
    } else {
        Err(invalid(
            "slug",
            format!(
                "`{slug}` is not a valid slug: use 1 to 64 lower-case letters, digits and `-`, \
                 starting with a letter or digit"
            ),
        ))
    }
}

/// Checks tags: at most [`MAX_TAGS`], each `^[a-z0-9][a-z0-9-]{0,63}$`, no duplicates.
pub fn validate_tags(tags: &[String]) -> Result<(), SkillError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(
            "tags",
            format!("{} tags given; at most {MAX_TAGS} are allowed", tags.len()),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if !is_key(tag) {
            return Err(invalid(
                format!("tags[{i}]"),
                format!(
                    "`{tag}` is not a valid tag: use 1 to 64 lower-case letters, digits and `-`, \
                     starting with a letter or digit"
                ),
            ));
        }
        if tags[..i].contains(tag) {
            return Err(invalid(
                format!("tags[{i}]"),
                format!("`{tag}` is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Checks a category (same pattern as a slug).
pub fn validate_category(category: &str) -> Result<(), SkillError> {
    if is_key(category) {
        Ok(())
    } else {
        Err(invalid(
            "category",
            format!(
                "`{category}` is not a valid category: use 1 to 64 lower-case letters, digits and \
                 `-` (e.g. general, coding, ops)"
            ),
        ))
    }
}

/// Checks a display name: 1 to 128 characters, one line, no control characters.
pub fn validate_name(name: &str) -> Result<(), SkillError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(invalid("name", "the name is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("the name is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "the name contains a line break or another control character; names are one line",
        ));
    }
    Ok(())
}

/// Checks a description: at most 1024 characters, no control characters but line breaks and tabs
/// (which the prompt renders as spaces).
pub fn validate_description(description: &str) -> Result<(), SkillError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("the description is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            "description",
            "the description contains a control character",
        ));
    }
    Ok(())
}

/// Checks the advisory `requires-tools` list: tool names of `[A-Za-z0-9_.-]`, 1 to 64 characters.
pub fn validate_tool_names(tools: &[String]) -> Result<(), SkillError> {
    for (i, tool) in tools.iter().enumerate() {
        let ok = !tool.is_empty()
            && tool.len() <= 64
            && tool
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(invalid(
                format!("requiresTools[{i}]"),
                format!("`{tool}` is not a tool name: use letters, digits, `_`, `.` and `-`"),
            ));
        }
    }
    Ok(())
}

/// A slug made from any text: lower case, runs of other characters become one `-`, at most 64
/// characters; `skill` when nothing is left.
///
/// ```
/// use nitejar_agent::skills::slugify;
/// assert_eq!(slugify("Deploy to Prod!"), "deploy-to-prod");
/// assert_eq!(slugify("__"), "skill");
/// ```
pub fn slugify(text: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= 64 {
            break;
        }
    }
    out.truncate(64);
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "skill".into()
    } else {
        trimmed.to_string()
    }
}

/// A description as one prompt line: whitespace runs (line breaks included) become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(is_key("a"));
        assert!(is_key("0-a"));
        assert!(is_key(&"a".repeat(64)));
        assert!(!is_key(&"a".repeat(65)));
        assert!(!is_key(""));
        assert!(!is_key("a_b"));
        assert!(!is_key("a.b"));
        assert!(!is_key("é"));
    }

    #[test]
    fn slugs_from_text() {
        assert_eq!(slugify("ops/Deploy"), "ops-deploy");
        assert_eq!(slugify("  a  b "), "a-b");
        assert_eq!(slugify(&"x".repeat(100)).len(), 64);
    }
}
