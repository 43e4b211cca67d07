//! The one spelling of a trusted key and of an allowlist entry.
//!
//! Every decision about a key or an entry — is it valid, is it there already, does it match a
//! plugin, which one does a removal name — is made on the canonical value this module returns, and
//! that value is what is stored and compared. So no other spelling of the same thing (case,
//! surrounding or inner whitespace, a `minisign.pub` file instead of its key line, a Unicode
//! lookalike of an ASCII letter) counts as another key or entry, and none slips past a check:
//!
//! - a key is the standard base64 of its 42 bytes (`Ed`, the 8-byte key id, the 32-byte Ed25519
//!   key), re-encoded from the decoded bytes; its id is 16 upper-case hex digits;
//! - an allowlist entry is `<plugin id>` or `<plugin id>@sha256:<64 hex digits>`, lower case, ASCII
//!   only (plugin ids are lower-case ASCII by the manifest's rules, so a lookalike is refused, never
//!   folded into a different id).
//!
//! ```
//! use nitejar_packages::trust::canonical::{allow_entry, key_id};
//!
//! let entry = allow_entry("  Com.Acme.Jira@SHA256:AB").unwrap_err();
//! assert!(entry.problem.contains("64 hex digits"));
//! assert_eq!(allow_entry(" Com.Acme.Jira ").unwrap().to_string(), "com.acme.jira");
//! assert!(allow_entry("com.acme.jirа").is_err()); // a Cyrillic `а`
//! assert_eq!(key_id("0123456789abcdef").unwrap(), "0123456789ABCDEF");
//! ```

use base64::Engine as _;

use super::AllowEntry;

/// What is wrong with a key or an entry as given, worded for the person who typed it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct EntryProblem {
    /// What is wrong and what to give instead.
    pub problem: String,
}

fn problem(text: impl Into<String>) -> EntryProblem {
    EntryProblem {
        problem: text.into(),
    }
}

/// A minisign public key in its canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLine {
    /// 16 upper-case hex digits, as `minisign` prints it.
    pub key_id: String,
    /// The standard base64 of the key's 42 bytes.
    pub line: String,
}

/// Reads a minisign public key: its base64 line (`RW…`), or the whole `minisign.pub` text (an
/// `untrusted comment:` line, then the key line).
pub fn key_line(text: &str) -> Result<KeyLine, EntryProblem> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let lines: Vec<&str> = match lines.split_first() {
        Some((first, rest)) if first.starts_with("untrusted comment:") => rest.to_vec(),
        _ => lines,
    };
    let line = match lines.as_slice() {
        [] => return Err(problem("is empty; give the public key: the base64 line of a minisign.pub file (it starts with `RW`)")),
        [line] => *line,
        _ => {
            return Err(problem(
                "holds more than one line; give one public key: the base64 line of a minisign.pub file (it starts with `RW`), optionally after its `untrusted comment:` line",
            ))
        }
    };
    if let Some(c) = line.chars().find(|c| !c.is_ascii()) {
        return Err(problem(format!(
            "contains `{c}` (U+{:04X}), which is not a base64 character; copy the key line from the minisign.pub file again",
            u32::from(c)
        )));
    }
    if line.chars().any(|c| c.is_ascii_whitespace()) {
        return Err(problem(
            "contains a space inside the key; a minisign public key is one unbroken base64 line",
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|e| {
            problem(format!(
                "is not base64 ({e}); give the base64 line of a minisign.pub file (it starts with `RW`)"
            ))
        })?;
    if bytes.len() != 42 {
        return Err(problem(format!(
            "decodes to {} bytes; a minisign public key is 42 (its line is 56 base64 characters starting with `RW`)",
            bytes.len()
        )));
    }
    if &bytes[..2] != b"Ed" {
        return Err(problem(
            "is not an Ed25519 minisign public key (its line starts with `RW`); a signature or a secret key does not go here",
        ));
    }
    let line = base64::engine::general_purpose::STANDARD.encode(&bytes);
    minisign_verify::PublicKey::from_base64(&line)
        .map_err(|e| problem(format!("is not a minisign public key ({e:?})")))?;
    let id: [u8; 8] = bytes[2..10]
        .try_into()
        .map_err(|_| problem("has no key id"))?;
    Ok(KeyLine {
        key_id: format!("{:016X}", u64::from_le_bytes(id)),
        line,
    })
}

/// Reads a key id as a removal names it: 16 hex digits (either case), or a whole key line (its
/// id is taken).
pub fn key_id(text: &str) -> Result<String, EntryProblem> {
    let trimmed = text.trim();
    if trimmed.len() == 16 && trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(trimmed.to_ascii_uppercase());
    }
    match key_line(trimmed) {
        Ok(key) => Ok(key.key_id),
        Err(_) => Err(problem(format!(
            "`{}` is not a key id; give the 16 hex digits `nitejar plugin trust key list` (or the admin) shows for the key",
            shorten(trimmed)
        ))),
    }
}

/// Reads an allowlist entry: `<plugin id>` or `<plugin id>@sha256:<digest>`.
pub fn allow_entry(text: &str) -> Result<AllowEntry, EntryProblem> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(problem(
            "is empty; give a plugin id (`com.acme.jira`) or a plugin id pinned to one build (`com.acme.jira@sha256:<digest>`)",
        ));
    }
    if let Some(c) = trimmed.chars().find(|c| !c.is_ascii()) {
        return Err(problem(format!(
            "contains `{c}` (U+{:04X}), which is not ASCII; plugin ids and digests are written in ASCII letters, digits, `.`, `-`, `@` and `:`",
            u32::from(c)
        )));
    }
    let lower = trimmed.to_ascii_lowercase();
    let (id, digest) = match lower.split_once('@') {
        Some((id, digest)) => (id, Some(digest)),
        None => (lower.as_str(), None),
    };
    if let Some(why) = plugin_id_problem(id) {
        return Err(problem(format!("`{}`: {why}", shorten(trimmed))));
    }
    if id.starts_with("builtin.") {
        return Err(problem(format!(
            "`{id}` is a built-in plugin id; built-ins are part of the server and need no allowlist entry"
        )));
    }
    let digest = match digest {
        None => None,
        Some(d) => {
            let hex = d.strip_prefix("sha256:").ok_or_else(|| {
                problem(format!(
                    "`{}`: after `@` comes the content digest, `sha256:<64 hex digits>` (shown by `nitejar plugin list` and on the plugin's page)",
                    shorten(trimmed)
                ))
            })?;
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(problem(format!(
                    "`{}`: the digest after `sha256:` must be 64 hex digits",
                    shorten(trimmed)
                )));
            }
            Some(format!("sha256:{hex}"))
        }
    };
    Ok(AllowEntry {
        id: id.to_string(),
        digest,
    })
}

/// Why `id` (lower case already) is not a plugin id, by the manifest's rules.
fn plugin_id_problem(id: &str) -> Option<&'static str> {
    if id.len() > 128 {
        return Some("a plugin id has at most 128 characters");
    }
    let parts: Vec<&str> = id.split('.').collect();
    let first_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let rest_ok = |p: &str| {
        p.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let valid = parts.len() >= 2 && first_ok(parts[0]) && parts[1..].iter().all(|p| rest_ok(p));
    (!valid).then_some(
        "not a plugin id: reverse-DNS style, dot-separated parts of `a-z`, `0-9` and `-` (e.g. `com.acme.jira`)",
    )
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_key() -> (String, String) {
        let mut bytes = b"Ed".to_vec();
        bytes.extend_from_slice(&0x0123_4567_89AB_CDEFu64.to_le_bytes());
        bytes.extend_from_slice(&[7u8; 32]);
        (
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            "0123456789ABCDEF".to_string(),
        )
    }

    #[test]
    fn a_key_has_one_spelling() {
        let (line, id) = a_key();
        let plain = key_line(&line).unwrap();
        assert_eq!(plain.key_id, id);
        let file = format!("untrusted comment: minisign public key {id}\n  {line}  \n");
        assert_eq!(key_line(&file).unwrap(), plain);
        assert_eq!(key_id(&id.to_lowercase()).unwrap(), id);
        assert_eq!(key_id(&line).unwrap(), id);
    }

    #[test]
    fn a_key_that_is_not_one_is_named() {
        let (line, _) = a_key();
        let lookalike = line.replacen('R', "Р", 1); // Cyrillic Er
        assert!(key_line(&lookalike).unwrap_err().problem.contains("U+0420"));
        let spaced = format!("{} {}", &line[..20], &line[20..]);
        assert!(key_line(&spaced).unwrap_err().problem.contains("space"));
        assert!(key_line(&line[..40]).is_err());
        assert!(key_line(&format!("{line}\n{line}"))
            .unwrap_err()
            .problem
            .contains("more than one line"));
        assert!(key_line("").unwrap_err().problem.contains("is empty"));
        assert!(key_id("xyz").is_err());
    }

    #[test]
    fn entries_are_lower_case_ascii() {
        let digest = "AB".repeat(32);
        let e = allow_entry(&format!(" COM.Acme.Jira@Sha256:{digest} ")).unwrap();
        assert_eq!(
            e.to_string(),
            format!("com.acme.jira@sha256:{}", digest.to_lowercase())
        );
        for bad in [
            "com.acme.jirа",
            "com",
            "com.acme.jira@md5:00",
            "com.acme.jira@sha256:00",
            "builtin.telegram",
            "com.acme .jira",
        ] {
            assert!(allow_entry(bad).is_err(), "{bad}");
        }
        assert!(allow_entry("ｃom.acme.jira")
            .unwrap_err()
            .problem
            .contains("U+FF43"));
    }
}
