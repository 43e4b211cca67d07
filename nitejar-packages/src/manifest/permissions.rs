//! The `permissions` section: network hosts, secret names, filesystem paths, process spawning.
//!
//! What a plugin declares here is shown to the operator for consent and checked at the host services,
//! so each entry has to mean one unambiguous thing: a host pattern, not a URL; a secret name, not a
//! value; an absolute or package-relative path, not one that climbs out with `..`.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::{join, paths, shown, Findings, Rule};

/// The permission lists whose entries are strings, with their rule.
const LISTS: [(&str, Rule); 4] = [
    ("network", network_entry),
    ("secrets", secret_name),
    ("filesystemRead", paths::permission_path),
    ("filesystemWrite", paths::permission_path),
];

pub(super) fn check(permissions: &Value, declarative: bool, out: &mut Findings) {
    let Some(permissions) = permissions.as_object() else {
        return;
    };
    for (key, rule) in LISTS {
        let Some(items) = permissions.get(key).and_then(Value::as_array) else {
            continue;
        };
        let base = join("/permissions", key);
        out.check_list(&base, items, rule);
        if declarative && !items.is_empty() {
            out.error(base, without_entry(key));
        }
    }
    if let Some(secrets) = permissions.get("secrets").and_then(Value::as_array) {
        same_secret_twice(secrets, out);
    }
    if declarative && permissions.get("allowProcessSpawn") == Some(&Value::Bool(true)) {
        out.error(
            "/permissions/allowProcessSpawn",
            without_entry("allowProcessSpawn"),
        );
    }
}

/// Two names that read the same environment variable are one secret declared twice: the operator
/// would consent to two names and the plugin read one value.
fn same_secret_twice(secrets: &[Value], out: &mut Findings) {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (i, name) in secrets.iter().enumerate() {
        let Some(name) = name.as_str().filter(|n| secret_name(n).is_ok()) else {
            continue;
        };
        let var = crate::secret_env_var(name);
        match seen.iter().find(|(v, _)| *v == var) {
            Some((_, first)) if *first != name => out.error(
                format!("/permissions/secrets/{i}"),
                format!(
                    "{} and {} are one secret: both read {var}; declare it once",
                    shown(first),
                    shown(name)
                ),
            ),
            Some(_) => {}
            None => seen.push((var, name)),
        }
    }
}

fn without_entry(key: &str) -> String {
    format!(
        "a plugin without `entry` runs no code and cannot use `{key}`; remove it, or add the `entry` library that needs it"
    )
}

/// A host pattern: `[*.]host[:port]`, where host is lower-case DNS labels, `localhost`, an IPv4
/// address or a bracketed IPv6 address.
pub(super) fn network_entry(entry: &str) -> Result<(), String> {
    const EXAMPLE: &str = "e.g. `api.example.com`, `*.example.com` or `localhost:8080`";
    if entry.is_empty() {
        return Err(format!("is empty; write a host name, {EXAMPLE}"));
    }
    if entry == "*" {
        return Err(
            "`*` would allow every host; list the hosts the plugin needs (`*.example.com` allows the subdomains of one domain)"
                .to_string(),
        );
    }
    if let Some((_, rest)) = entry.split_once("://") {
        let host = rest.split('/').next().unwrap_or(rest);
        return Err(format!(
            "{} has a scheme; write only the host and port, e.g. {}",
            shown(entry),
            shown(host)
        ));
    }
    if let Some((host, _)) = entry.split_once('/') {
        return Err(format!(
            "{} has a path; permissions name hosts, not URLs: write {}",
            shown(entry),
            shown(host)
        ));
    }
    if entry.chars().any(char::is_whitespace) {
        return Err(format!("{} contains whitespace", shown(entry)));
    }
    if entry.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "{} has upper-case letters; write host names in lower case: {}",
            shown(entry),
            shown(&entry.to_ascii_lowercase())
        ));
    }

    let (wildcard, rest) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    if rest.contains('*') {
        return Err(format!(
            "{}: `*` may only stand as the first label, as in `*.example.com`",
            shown(entry)
        ));
    }

    let (host, port) = split_port(entry, rest)?;
    if port == Some("") {
        return Err(format!(
            "{} has no port after `:`; write the port or drop the `:`",
            shown(entry)
        ));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535));
        if !valid {
            return Err(format!(
                "{}: the port {} is not a number from 1 to 65535",
                shown(entry),
                shown(port)
            ));
        }
    }

    let literal = host.starts_with('[') || host == "localhost" || looks_like_ipv4(host);
    if wildcard && literal {
        return Err(format!(
            "{}: `*.` only goes before a domain name, not before `localhost` or an IP address",
            shown(entry)
        ));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{} is not a valid IPv6 address", shown(host))),
        };
    }
    if host == "localhost" {
        return Ok(());
    }
    if looks_like_ipv4(host) {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{} is not a valid IPv4 address", shown(host))),
        };
    }
    dns_name(entry, host, wildcard)
}

/// Splits `host:port`, keeping IPv6 literals whole. `entry` is the full text, for messages.
fn split_port<'a>(entry: &str, rest: &'a str) -> Result<(&'a str, Option<&'a str>), String> {
    if rest.starts_with('[') {
        let Some(end) = rest.find(']') else {
            return Err(format!(
                "{}: the IPv6 address has no closing `]`",
                shown(entry)
            ));
        };
        let (host, after) = rest.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!(
                    "{}: only `:port` may follow the IPv6 address",
                    shown(entry)
                )),
            },
        };
    }
    match rest.split_once(':') {
        Some((host, port)) if port.contains(':') || host.is_empty() => Err(format!(
            "{}: write IPv6 addresses in brackets, e.g. `[::1]:8080`",
            shown(entry)
        )),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((rest, None)),
    }
}

fn looks_like_ipv4(host: &str) -> bool {
    !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn dns_name(entry: &str, host: &str, wildcard: bool) -> Result<(), String> {
    if host.len() > 253 {
        return Err(format!(
            "{}: a host name has at most 253 characters",
            shown(entry)
        ));
    }
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(format!(
                "{} has an empty label (`..`, or a `.` at the start or end)",
                shown(entry)
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "{}: a label (the text between dots) has at most 63 characters",
                shown(entry)
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "{}: a host name may only contain `a-z`, `0-9`, `-` and `.`",
                shown(entry)
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "{}: a label may not start or end with `-`",
                shown(entry)
            ));
        }
    }
    if wildcard && labels.len() < 2 {
        return Err(format!(
            "{} covers a whole top-level domain; name the domain, e.g. `*.example.com`",
            shown(entry)
        ));
    }
    Ok(())
}

/// A secret name: letters, digits, `_`, `.` and `-`, at most 128 characters.
pub(super) fn secret_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; write a secret name such as `jira.api_token`".to_string());
    }
    if name.chars().count() > 128 {
        return Err("is longer than 128 characters; a secret name has at most 128".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "{} is not a secret name; use only letters `A-Z` `a-z`, digits `0-9`, `_`, `.` and `-`, e.g. `jira.api_token`",
            shown(name)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hosts_wildcards_ports_and_ip_literals() {
        for ok in [
            "api.atlassian.com",
            "*.atlassian.net",
            "localhost:8080",
            "localhost",
            "jira",
            "127.0.0.1",
            "10.0.0.5:443",
            "[::1]",
            "[::1]:9000",
            "[2001:db8::ff00:42:8329]:65535",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(network_entry(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_urls_bare_stars_and_bad_ports() {
        let cases = [
            (
                "https://api.example.com/v1",
                "has a scheme; write only the host and port, e.g. `api.example.com`",
            ),
            ("api.example.com/v1", "has a path"),
            ("*", "would allow every host"),
            ("api.*.com", "`*` may only stand as the first label"),
            ("*.com", "covers a whole top-level domain"),
            ("*.localhost", "only goes before a domain name"),
            ("*.10.0.0.1", "only goes before a domain name"),
            ("localhost:0", "not a number from 1 to 65535"),
            ("localhost:65536", "not a number from 1 to 65535"),
            ("localhost:", "has no port after `:`"),
            ("localhost:+80", "not a number from 1 to 65535"),
            (
                "API.example.com",
                "write host names in lower case: `api.example.com`",
            ),
            ("api_x.example.com", "may only contain"),
            ("-api.example.com", "may not start or end with `-`"),
            ("api..example.com", "empty label"),
            ("example.com.", "empty label"),
            ("256.1.1.1", "not a valid IPv4 address"),
            ("::1", "write IPv6 addresses in brackets"),
            ("[::g]", "not a valid IPv6 address"),
            ("[::1", "no closing `]`"),
            ("[::1]x", "only `:port` may follow"),
            ("", "is empty"),
            ("a b", "contains whitespace"),
        ];
        for (bad, expected) in cases {
            let message = network_entry(bad).expect_err(bad);
            assert!(message.contains(expected), "{bad}: {message}");
        }
    }

    #[test]
    fn secret_names_are_letters_digits_and_three_marks() {
        assert_eq!(secret_name("jira.api_token"), Ok(()));
        assert_eq!(secret_name("GITHUB-APP_KEY.2"), Ok(()));
        assert!(secret_name("jira token").is_err());
        assert!(secret_name("jira/token").is_err());
        assert!(secret_name("").is_err());
        assert!(secret_name(&"a".repeat(129)).is_err());
    }
}
