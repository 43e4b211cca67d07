//! Reading a manifest's `config` declaration: the JSON Schema subset a plugin may declare, with a
//! problem (JSON pointer and what to write instead) for everything outside it.
//!
//! The subset is what the admin can render as a form and check field by field, so every keyword is
//! checked for where it applies: `minLength` on a number, or an `enum` value of another type than
//! its property, would otherwise be silently ignored by the form and by validation alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Items, Kind, Property, ScalarRules};
use crate::manifest::spelling;

/// One problem with a declaration: where (a JSON pointer into the manifest) and what.
pub(crate) type Problem = (String, String);

const SCHEMA_KEYS: &[&str] = &[
    "type",
    "title",
    "description",
    "properties",
    "required",
    "additionalProperties",
];
const PROPERTY_KEYS: &[&str] = &[
    "type",
    "title",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
];
const ITEM_KEYS: &[&str] = &[
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
];
const WIDGETS: &[&str] = &["textarea", "radio"];

/// What a well-formed declaration holds.
pub(crate) struct Parsed {
    pub(crate) properties: BTreeMap<String, Property>,
    pub(crate) required: Vec<String>,
}

fn join(base: &str, segment: &str) -> String {
    format!("{base}/{}", segment.replace('~', "~0").replace('/', "~1"))
}

fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        format!("`{cut}…`")
    } else {
        format!("`{cut}`")
    }
}

/// Whether `name` can be a setting's name: it is a form field (`config.<name>`) and a CLI
/// `name=value` pair, so letters, digits, `_` and `-`, starting with a letter.
fn is_setting_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64
}

/// Checks the declaration at `base` (`/config` in a manifest). A value of the wrong JSON type is
/// skipped here: the manifest's schema pass reports it.
pub(crate) fn check(decl: &Value, base: &str) -> (Option<Parsed>, Vec<Problem>) {
    let mut out = Vec::new();
    let Some(decl) = decl.as_object() else {
        return (None, out);
    };
    let schema_path = join(base, "schema");
    let parsed = match decl.get("schema") {
        Some(Value::Object(schema)) => schema_object(schema, &schema_path, &mut out),
        Some(_) => None,
        None => {
            out.push((
                schema_path,
                "is required but missing; write the JSON Schema of the config, e.g. `{ \"type\": \"object\", \"properties\": { … } }`".into(),
            ));
            None
        }
    };
    if let (Some(Value::Object(ui)), Some(parsed)) = (decl.get("uiSchema"), &parsed) {
        let declared: Vec<&str> = decl
            .get("schema")
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        ui_schema(ui, &join(base, "uiSchema"), &declared, parsed, &mut out);
    }
    let parsed = if out.is_empty() { parsed } else { None };
    (parsed, out)
}

fn schema_object(schema: &Map<String, Value>, at: &str, out: &mut Vec<Problem>) -> Option<Parsed> {
    for key in schema.keys() {
        if !SCHEMA_KEYS.contains(&key.as_str()) {
            out.push((
                join(at, key),
                unknown_keyword(key, SCHEMA_KEYS, "the config schema"),
            ));
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        Some(other) => out.push((
            join(at, "type"),
            format!("must be `\"object\"`, not {other}: the config is an object of settings"),
        )),
        None => out.push((
            join(at, "type"),
            "is required but missing; write `\"type\": \"object\"`".into(),
        )),
    }
    if let Some(extra) = schema.get("additionalProperties") {
        if extra != &Value::Bool(false) {
            out.push((
                join(at, "additionalProperties"),
                "may only be `false`: only the declared properties can be set".into(),
            ));
        }
    }
    let props_at = join(at, "properties");
    let mut properties = BTreeMap::new();
    match schema.get("properties") {
        Some(Value::Object(props)) => {
            for (name, prop) in props {
                let prop_at = join(&props_at, name);
                if !is_setting_name(name) {
                    out.push((
                        prop_at.clone(),
                        format!(
                            "{} is not a setting name; use letters, digits, `_` and `-`, starting with a letter (at most 64 characters), e.g. `blockedTools`",
                            shown(name)
                        ),
                    ));
                }
                if let Some(p) = property(prop, &prop_at, out) {
                    properties.insert(name.clone(), p);
                }
            }
        }
        Some(_) => {}
        None => out.push((
            props_at,
            "is required but missing; list the settings, e.g. `{ \"blockedTools\": { \"type\": \"array\", \"items\": { \"type\": \"string\" } } }`".into(),
        )),
    }
    let mut required = Vec::new();
    if let Some(Value::Array(names)) = schema.get("required") {
        let names_of: Vec<&str> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name.as_str() else { continue };
            if !names_of.contains(&name) {
                out.push((
                    join(&join(at, "required"), &i.to_string()),
                    format!(
                        "{} is not in `properties`; a required setting must be declared there",
                        shown(name)
                    ),
                ));
            } else if !required.iter().any(|r| r == name) {
                required.push(name.to_string());
            }
        }
    }
    Some(Parsed {
        properties,
        required,
    })
}

fn unknown_keyword(key: &str, allowed: &[&str], what: &str) -> String {
    match key {
        "writeOnly" | "secret" | "sensitive" => format!(
            "{} is not supported: a config value is stored and shown as plain text. Declare a secret in `permissions.secrets` instead; the operator sets it encrypted and the plugin reads it through the host",
            shown(key)
        ),
        _ => match spelling::closest(key, allowed, 2) {
            Some(meant) => format!("{} is not supported in {what}; did you mean `{meant}`?", shown(key)),
            None => format!(
                "{} is not supported in {what}; the keywords allowed here are: {}",
                shown(key),
                allowed.join(", ")
            ),
        },
    }
}

fn number(map: &Map<String, Value>, key: &str, at: &str, out: &mut Vec<Problem>) -> Option<f64> {
    match map.get(key)? {
        Value::Number(n) => n.as_f64(),
        _ => {
            out.push((join(at, key), "must be a number".into()));
            None
        }
    }
}

fn count(map: &Map<String, Value>, key: &str, at: &str, out: &mut Vec<Problem>) -> Option<u64> {
    match map.get(key)? {
        Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
        _ => {
            out.push((join(at, key), "must be a whole number, 0 or more".into()));
            None
        }
    }
}

fn kind_of(value: Option<&Value>, at: &str, items: bool, out: &mut Vec<Problem>) -> Option<Kind> {
    let allowed = if items {
        "`string`, `integer` or `number`"
    } else {
        "`string`, `integer`, `number`, `boolean` or `array`"
    };
    let at = join(at, "type");
    match value {
        None => {
            out.push((
                at,
                format!("is required but missing; write one of {allowed}"),
            ));
            None
        }
        Some(Value::String(t)) => match (t.as_str(), items) {
            ("string", _) => Some(Kind::String),
            ("integer", _) => Some(Kind::Integer),
            ("number", _) => Some(Kind::Number),
            ("boolean", false) => Some(Kind::Boolean),
            ("array", false) => Some(Kind::Array),
            ("object", false) => {
                out.push((at, format!("`object` settings are not supported (the admin renders one field per setting); use {allowed}, or one setting per value")));
                None
            }
            _ => {
                out.push((
                    at,
                    format!("{} is not supported here; use {allowed}", shown(t)),
                ));
                None
            }
        },
        Some(other) => {
            out.push((
                at,
                format!("must be one of {allowed} as a string, not {other}"),
            ));
            None
        }
    }
}

/// The rules of a scalar (a property, or an array's items); `kind` is the scalar's type.
fn scalar_rules(
    map: &Map<String, Value>,
    at: &str,
    kind: Kind,
    out: &mut Vec<Problem>,
) -> ScalarRules {
    let numeric = matches!(kind, Kind::Integer | Kind::Number);
    let textual = kind == Kind::String;
    let mut rules = ScalarRules::default();
    for (key, applies, to) in [
        ("minimum", numeric, "numbers"),
        ("maximum", numeric, "numbers"),
        ("minLength", textual, "strings"),
        ("maxLength", textual, "strings"),
        ("pattern", textual, "strings"),
    ] {
        if map.contains_key(key) && !applies {
            out.push((join(at, key), format!("applies to {to} only; remove it")));
        }
    }
    if numeric {
        rules.minimum = number(map, "minimum", at, out);
        rules.maximum = number(map, "maximum", at, out);
        if let (Some(lo), Some(hi)) = (rules.minimum, rules.maximum) {
            if lo > hi {
                out.push((
                    join(at, "maximum"),
                    format!("is below `minimum` ({lo}); nothing could be set"),
                ));
            }
        }
    }
    if textual {
        rules.min_length = count(map, "minLength", at, out);
        rules.max_length = count(map, "maxLength", at, out);
        if let (Some(lo), Some(hi)) = (rules.min_length, rules.max_length) {
            if lo > hi {
                out.push((
                    join(at, "maxLength"),
                    format!("is below `minLength` ({lo}); nothing could be set"),
                ));
            }
        }
        match map.get("pattern") {
            None => {}
            Some(Value::String(p)) => {
                match jsonschema::validator_for(&serde_json::json!({ "pattern": p })) {
                    Ok(v) => rules.pattern = Some((p.clone(), Arc::new(v))),
                    Err(e) => out.push((
                        join(at, "pattern"),
                        format!("{} is not a regular expression ({e}); write one as JSON Schema reads it, e.g. `^[a-z]+$`", shown(p)),
                    )),
                }
            }
            Some(_) => out.push((
                join(at, "pattern"),
                "must be a string (a regular expression)".into(),
            )),
        }
    }
    match map.get("enum") {
        None => {}
        Some(Value::Array(values)) if !values.is_empty() => {
            let mut ok = true;
            for (i, v) in values.iter().enumerate() {
                if let Some(message) = super::type_problem(kind, v) {
                    out.push((
                        join(&join(at, "enum"), &i.to_string()),
                        format!("{message}, as the property's `type` says"),
                    ));
                    ok = false;
                }
            }
            if ok {
                rules.allowed = Some(values.clone());
            }
        }
        Some(_) => out.push((
            join(at, "enum"),
            "must list at least one allowed value".into(),
        )),
    }
    rules
}

fn property(prop: &Value, at: &str, out: &mut Vec<Problem>) -> Option<Property> {
    let Some(map) = prop.as_object() else {
        out.push((
            at.to_string(),
            "must be an object describing the setting, e.g. `{ \"type\": \"string\" }`".into(),
        ));
        return None;
    };
    for key in map.keys() {
        if !PROPERTY_KEYS.contains(&key.as_str()) {
            out.push((
                join(at, key),
                unknown_keyword(key, PROPERTY_KEYS, "a config property"),
            ));
        }
    }
    let before = out.len();
    let kind = kind_of(map.get("type"), at, false, out)?;
    // The form shows them as they are.
    for key in ["title", "description"] {
        if map.get(key).is_some_and(|v| !v.is_string()) {
            out.push((join(at, key), "must be a string".into()));
        }
    }
    let is_array = kind == Kind::Array;
    for key in ["items", "minItems", "maxItems", "uniqueItems"] {
        if map.contains_key(key) && !is_array {
            out.push((
                join(at, key),
                "applies to `array` settings only; remove it".into(),
            ));
        }
    }
    let (rules, items) = if is_array {
        for key in [
            "enum",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "pattern",
        ] {
            if map.contains_key(key) {
                out.push((
                    join(at, key),
                    "applies to the items of an array: move it into `items`".to_string(),
                ));
            }
        }
        let items_at = join(at, "items");
        let items = match map.get("items") {
            Some(Value::Object(items)) => {
                for key in items.keys() {
                    if !ITEM_KEYS.contains(&key.as_str()) {
                        out.push((
                            join(&items_at, key),
                            unknown_keyword(key, ITEM_KEYS, "the items of an array setting"),
                        ));
                    }
                }
                kind_of(items.get("type"), &items_at, true, out).map(|kind| Items {
                    kind,
                    rules: scalar_rules(items, &items_at, kind, out),
                })
            }
            Some(_) => {
                out.push((
                    items_at,
                    "must be an object, e.g. `{ \"type\": \"string\" }`".into(),
                ));
                None
            }
            None => {
                out.push((items_at, "is required for an array setting; write `{ \"type\": \"string\" }` (or `integer`, `number`)".into()));
                None
            }
        };
        (ScalarRules::default(), items)
    } else {
        (scalar_rules(map, at, kind, out), None)
    };
    let min_items = if is_array {
        count(map, "minItems", at, out)
    } else {
        None
    };
    let max_items = if is_array {
        count(map, "maxItems", at, out)
    } else {
        None
    };
    if let (Some(lo), Some(hi)) = (min_items, max_items) {
        if lo > hi {
            out.push((
                join(at, "maxItems"),
                format!("is below `minItems` ({lo}); nothing could be set"),
            ));
        }
    }
    let unique_items = match map.get("uniqueItems") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            out.push((join(at, "uniqueItems"), "must be `true` or `false`".into()));
            false
        }
    };
    if is_array && items.is_none() {
        return None;
    }
    let property = Property {
        kind,
        default: None,
        rules,
        items,
        min_items,
        max_items,
        unique_items,
    };
    let default = map.get("default").cloned();
    if let Some(default) = &default {
        let mut problems = Vec::new();
        property.check("", default, &mut problems);
        if let Some((_, message)) = problems.into_iter().next() {
            out.push((
                join(at, "default"),
                format!("the default does not fit the setting: {message}"),
            ));
        }
    }
    if out.len() > before {
        return None;
    }
    Some(Property {
        default,
        ..property
    })
}

fn ui_schema(
    ui: &Map<String, Value>,
    at: &str,
    declared: &[&str],
    parsed: &Parsed,
    out: &mut Vec<Problem>,
) {
    let names = declared;
    for (key, value) in ui {
        let here = join(at, key);
        if key == "ui:order" {
            let Some(order) = value.as_array() else {
                out.push((
                    here,
                    "must be a list of setting names (`*` stands for the rest)".into(),
                ));
                continue;
            };
            for (i, entry) in order.iter().enumerate() {
                let ok = entry
                    .as_str()
                    .is_some_and(|e| e == "*" || names.contains(&e));
                if !ok {
                    out.push((
                        join(&here, &i.to_string()),
                        format!("{entry} is not a setting of `properties` (nor `*`)"),
                    ));
                }
            }
            continue;
        }
        if !names.contains(&key.as_str()) {
            let message = match spelling::closest(key, names, 2) {
                Some(meant) => format!(
                    "{} is not a setting of `properties`; did you mean `{meant}`?",
                    shown(key)
                ),
                None => format!(
                    "{} is neither `ui:order` nor a setting of `properties`",
                    shown(key)
                ),
            };
            out.push((here, message));
            continue;
        }
        // A setting whose declaration has problems of its own: its hints are checked once it is fixed.
        let Some(kind) = parsed.properties.get(key).map(|p| p.kind) else {
            continue;
        };
        let Some(hints) = value.as_object() else {
            out.push((
                here,
                "must be an object of hints (`ui:widget`, `ui:help`, `ui:placeholder`)".into(),
            ));
            continue;
        };
        for (hint, v) in hints {
            let hint_at = join(&here, hint);
            match hint.as_str() {
                "ui:help" | "ui:placeholder" => {
                    if !v.is_string() {
                        out.push((hint_at, "must be a string".into()));
                    }
                }
                "ui:widget" => match v.as_str() {
                    Some("textarea") if kind == Kind::String => {}
                    Some("radio")
                        if kind == Kind::Boolean
                            || parsed.properties[key].rules.allowed.is_some() => {}
                    Some(w) if WIDGETS.contains(&w) => out.push((
                        hint_at,
                        format!("`{w}` does not fit this setting: `textarea` is for strings, `radio` for booleans and settings with an `enum`"),
                    )),
                    _ => out.push((hint_at, format!("must be one of: {}", WIDGETS.join(", ")))),
                },
                other => out.push((
                    hint_at,
                    format!("{} is not a form hint; use `ui:widget`, `ui:help` or `ui:placeholder`", shown(other)),
                )),
            }
        }
    }
}
