//! The checks a JSON Schema cannot express well, or cannot explain well: id and version formats with
//! a message that says what to write, the engine range against the running version, paths that must
//! stay inside the package, hook names, and the agreement between `activation`, `contributes` and
//! `entry`.
//!
//! The checks read the raw JSON rather than [`Manifest`](nitejar_sdk::manifest::Manifest), so a
//! wrongly typed field elsewhere does not hide the problems here: every value of the wrong type is
//! skipped (the schema pass reports it) and everything else is still checked.

use std::path::Path;
use std::str::FromStr;

use nitejar_sdk::manifest::BUILTIN_ID_PREFIX;
use nitejar_sdk::HookName;
use serde_json::{Map, Value};

use super::target::is_target_triple;
use super::{
    join, paths, permissions, shown, spelling, EngineRange, Findings, Rule, ValidateOptions,
};

pub(super) fn check(
    doc: &Value,
    opts: &ValidateOptions,
    out: &mut Findings,
) -> Option<EngineRange> {
    let doc = doc.as_object()?;
    if let Some(Value::Number(n)) = doc.get("schemaVersion") {
        if n.as_u64() != Some(1) {
            out.error(
                "/schemaVersion",
                format!("this server reads manifest schema version 1, not `{n}`; write `\"schemaVersion\": 1` (a manifest for a newer schema version needs a newer Nitejar)"),
            );
        }
    }
    if let Some(Value::String(id)) = doc.get("id") {
        plugin_id(id, opts.builtin, out);
    }
    if let Some(Value::String(name)) = doc.get("name") {
        if name.trim().is_empty() {
            out.error("/name", "must not be blank; write the name operators see");
        }
    }
    if let Some(Value::String(version)) = doc.get("version") {
        plugin_version(version, out);
    }
    let engine = doc.get("engine").and_then(|e| engine(e, opts, out));
    // A built-in's code is compiled into the binary, so it has no `entry` and is still code.
    let declarative = !doc.contains_key("entry") && !opts.builtin;
    if let Some(e) = doc.get("entry") {
        entry(e, opts, out);
    }
    if let Some(Value::String(icon)) = doc.get("icon") {
        package_file(
            "/icon",
            icon,
            opts.package_dir.as_deref(),
            "an image file",
            out,
        );
    }
    if let Some(Value::String(homepage)) = doc.get("homepage") {
        let rest = homepage
            .strip_prefix("https://")
            .or_else(|| homepage.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.chars().any(char::is_whitespace)) {
            out.error(
                "/homepage",
                format!(
                    "{} is not an http(s) URL; write it in full, e.g. `https://example.com/my-plugin`",
                    shown(homepage)
                ),
            );
        }
    }
    if let Some(p) = doc.get("permissions") {
        permissions::check(p, declarative, out);
    }
    contributions(doc, declarative, opts, out);
    if let Some(config) = doc.get("config") {
        if declarative {
            out.error(
                "/config",
                "a plugin without `entry` runs no code and takes no config; remove it, or add the `entry` library that reads it",
            );
        }
        for (path, message) in crate::plugin_config::check_declaration(config, "/config") {
            out.error(path, message);
        }
    }
    engine
}

fn plugin_id(id: &str, allow_builtin: bool, out: &mut Findings) {
    let length = id.chars().count();
    if length > 128 {
        out.error(
            "/id",
            format!("is {length} characters long; a plugin id has at most 128"),
        );
        return;
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
    if !valid {
        let message = if id.chars().any(|c| c.is_ascii_uppercase()) {
            format!(
                "{} has upper-case letters; plugin ids are lower case, e.g. {}",
                shown(id),
                shown(&id.to_ascii_lowercase())
            )
        } else if parts.len() < 2 {
            format!(
                "{} needs at least two dot-separated parts in reverse-DNS style, e.g. `com.acme.jira`",
                shown(id)
            )
        } else {
            format!(
                "{} is not a plugin id: each dot-separated part uses only `a-z`, `0-9` and `-` and starts with a letter or digit, and the first part has no `-` (e.g. `com.acme.jira`)",
                shown(id)
            )
        };
        out.error("/id", message);
    }
    if !allow_builtin && id.starts_with(BUILTIN_ID_PREFIX) {
        out.error(
            "/id",
            "the `builtin.` prefix is reserved for the plugins that ship with Nitejar; use an id under a domain you control, e.g. `com.example.my-plugin`",
        );
    }
}

fn plugin_version(version: &str, out: &mut Findings) {
    if semver::Version::parse(version).is_ok() {
        return;
    }
    let message = match version.strip_prefix(['v', 'V']) {
        Some(rest) if semver::Version::parse(rest).is_ok() => {
            format!("{} starts with `v`; write the bare version {}", shown(version), shown(rest))
        }
        _ => format!(
            "{} is not a semantic version; write MAJOR.MINOR.PATCH, e.g. `1.0.0` (a `-prerelease` and `+build` suffix may follow)",
            shown(version)
        ),
    };
    out.error("/version", message);
}

fn engine(engine: &Value, opts: &ValidateOptions, out: &mut Findings) -> Option<EngineRange> {
    let engine = engine.as_object()?;
    for (key, value) in engine {
        if key == "nitejar" {
            continue;
        }
        let shown_value = value
            .as_str()
            .map(|v| format!(" ({})", shown(v)))
            .unwrap_or_default();
        out.note(
            join("/engine", key),
            format!(
                "{}{shown_value} is not applicable to a Nitejar server and is ignored",
                shown(key)
            ),
        );
    }
    let Some(Value::String(text)) = engine.get("nitejar") else {
        return None;
    };
    let range = match EngineRange::parse(text) {
        Ok(range) => range,
        Err(e) => {
            out.error("/engine/nitejar", e.to_string());
            return None;
        }
    };
    let running = &opts.running_version;
    if !range.matches(running) {
        let normalised = range.to_string();
        let meaning = if normalised == text.trim() {
            String::new()
        } else {
            format!(" (`{normalised}`)")
        };
        out.error(
            "/engine/nitejar",
            format!(
                "the plugin needs Nitejar {}{meaning} and this server is {running}; install a release of the plugin made for Nitejar {running}, or widen the range if the plugin works with it",
                shown(text)
            ),
        );
    }
    if range.has_bare_version() {
        out.note(
            "/engine/nitejar",
            format!(
                "{} names a version without an operator, which means exactly that version (npm rules, unlike Cargo); write `^` before it to accept compatible releases",
                shown(text)
            ),
        );
    }
    Some(range)
}

fn entry(entry: &Value, opts: &ValidateOptions, out: &mut Findings) {
    let dir = opts.package_dir.as_deref();
    let map = match entry {
        Value::String(path) => {
            package_file("/entry", path, dir, "the plugin library", out);
            return;
        }
        Value::Object(map) => map,
        _ => return,
    };
    if map.is_empty() {
        out.error(
            "/entry",
            "lists no library; map at least one target triple to a path, e.g. `{ \"x86_64-unknown-linux-gnu\": \"lib/libplugin.so\" }`",
        );
        return;
    }
    let wanted = opts.target.as_deref();
    for (triple, path) in map {
        let at = join("/entry", triple);
        if !is_target_triple(triple) {
            out.error(
                &at,
                format!(
                    "{} is not a target triple; write `arch-vendor-os[-env]` as rustc names it, e.g. `x86_64-unknown-linux-gnu`",
                    shown(triple)
                ),
            );
        }
        if let Value::String(path) = path {
            // Only this machine's library has to be on disk: a package may ship per-platform builds
            // separately.
            let on_disk = dir.filter(|_| wanted.is_none_or(|w| w == triple));
            package_file(&at, path, on_disk, "the plugin library", out);
        }
    }
    if let Some(wanted) = wanted {
        if !map.contains_key(wanted) {
            let listed: Vec<&str> = map.keys().map(String::as_str).collect();
            out.error(
                "/entry",
                format!(
                    "has no library for this platform ({wanted}); it lists {}. Build the plugin for {wanted} and add it here",
                    listed.join(", ")
                ),
            );
        }
    }
}

/// A file named relative to the package root; checked on disk when `dir` is given.
fn package_file(at: &str, written: &str, dir: Option<&Path>, what: &str, out: &mut Findings) {
    let components = match paths::package_relative(written) {
        Ok(components) => components,
        Err(message) => return out.error(at, message),
    };
    let result = match dir {
        Some(dir) => paths::file_in_package(dir, &components, written, what).map(|_| ()),
        None if components.is_empty() => Err(format!(
            "{} names the package root; it must name {what}",
            shown(written)
        )),
        None => Ok(()),
    };
    if let Err(message) = result {
        out.error(at, message);
    }
}

fn contributions(
    doc: &Map<String, Value>,
    declarative: bool,
    opts: &ValidateOptions,
    out: &mut Findings,
) {
    let section = |name: &str| doc.get(name).and_then(Value::as_object);
    // `None` when the list has the wrong type (the schema pass reports it); absent means empty.
    let list = |section: Option<&Map<String, Value>>, key: &str| -> Option<Vec<Value>> {
        match section.and_then(|s| s.get(key)) {
            None => Some(Vec::new()),
            Some(value) => value.as_array().cloned(),
        }
    };
    let contributes = section("contributes");
    let activation = section("activation");

    let integrations = list(contributes, "integrations");
    let hooks = list(contributes, "hooks");
    let skills = list(contributes, "skills").unwrap_or_default();
    out.check_list(
        "/contributes/integrations",
        integrations.as_deref().unwrap_or_default(),
        integration_type,
    );
    out.check_list(
        "/contributes/hooks",
        hooks.as_deref().unwrap_or_default(),
        hook_name,
    );
    out.check_list("/contributes/skills", &skills, skill_id);

    let on_types = list(activation, "onIntegrationTypes").unwrap_or_default();
    let on_hooks = list(activation, "onHooks").unwrap_or_default();
    out.check_list(
        "/activation/onIntegrationTypes",
        &on_types,
        integration_type,
    );
    out.check_list("/activation/onHooks", &on_hooks, hook_name);
    for (key, items, declared, rule, field) in [
        (
            "onIntegrationTypes",
            &on_types,
            &integrations,
            integration_type as Rule,
            "contributes.integrations",
        ),
        ("onHooks", &on_hooks, &hooks, hook_name, "contributes.hooks"),
    ] {
        // A `contributes` list of the wrong type says nothing about what is contributed.
        let Some(declared) = declared else { continue };
        for (i, item) in items.iter().enumerate() {
            let Some(name) = item.as_str() else { continue };
            if rule(name).is_ok() && !declared.iter().any(|d| d.as_str() == Some(name)) {
                out.error(
                    join(&join("/activation", key), i),
                    format!(
                        "{} is not in `{field}`; a plugin is only activated by what it contributes: add it there or remove it here",
                        shown(name)
                    ),
                );
            }
        }
    }

    if declarative {
        for (key, items, what) in [
            ("integrations", &integrations, "integrations"),
            ("hooks", &hooks, "hook handlers"),
        ] {
            if items.as_ref().is_some_and(|items| !items.is_empty()) {
                out.error(
                    join("/contributes", key),
                    format!("a plugin without `entry` runs no code and cannot contribute {what}; add the `entry` library that implements them, or remove them"),
                );
            }
        }
        if let Some(dir) = opts.package_dir.as_deref() {
            for (i, skill) in skills.iter().enumerate() {
                let Some(id) = skill.as_str().filter(|id| skill_id(id).is_ok()) else {
                    continue;
                };
                let file = format!("skills/{id}/SKILL.md");
                if !dir.join(&file).is_file() {
                    out.error(
                        join("/contributes/skills", i),
                        format!("`{file}` does not exist in the package; a plugin without `entry` must ship every skill it lists as a file"),
                    );
                }
            }
        }
    }

    let none = |l: &Option<Vec<Value>>| l.as_ref().is_some_and(Vec::is_empty);
    if none(&integrations) && none(&hooks) && skills.is_empty() {
        out.note(
            "/contributes",
            "the plugin contributes no integrations, hooks or skills, so enabling it changes nothing",
        );
    }
}

/// An integration (channel) type: `^[a-z0-9][a-z0-9_-]*$`, at most 64 characters.
fn integration_type(kind: &str) -> Result<(), String> {
    name_rule(kind, true, "an integration type", ", `_` and `-`", "`jira`")
}

/// A skill id: `^[a-z0-9][a-z0-9-]*$`, at most 64 characters.
fn skill_id(id: &str) -> Result<(), String> {
    name_rule(id, false, "a skill id", " and `-`", "`jira-triage`")
}

fn name_rule(
    name: &str,
    underscore: bool,
    what: &str,
    marks: &str,
    example: &str,
) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("is empty; write {what} such as {example}"));
    }
    if name.chars().count() > 64 {
        return Err(format!(
            "is longer than 64 characters; {what} has at most 64"
        ));
    }
    let start_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let chars_ok = name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (underscore && b == b'_')
    });
    if start_ok && chars_ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not {what}; use `a-z`, `0-9`{marks}, starting with a letter or digit, e.g. {example}",
            shown(name)
        ))
    }
}

fn hook_name(name: &str) -> Result<(), String> {
    if HookName::from_str(name).is_ok() {
        return Ok(());
    }
    let known: Vec<&str> = HookName::ALL.iter().map(|h| h.as_str()).collect();
    Err(match spelling::closest(name, &known, 2) {
        Some(meant) => format!(
            "{} is not a hook event; did you mean `{meant}`?",
            shown(name)
        ),
        None => format!(
            "{} is not a hook event; use one of: {}",
            shown(name),
            known.join(", ")
        ),
    })
}
