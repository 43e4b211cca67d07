//! HTML forms generated from an integration type's `config_schema` and `ui_schema`, and the config
//! read back from a submitted form.
//!
//! The `ui_schema` follows the react-jsonschema-form convention the built-ins use: `ui:order` (with
//! `*` for the rest), per field `ui:widget` (`password`, `textarea`, `hidden`, `radio`), `ui:help`,
//! `ui:placeholder`. Without `ui:order`, required fields come first. Sensitive fields (the type's
//! `sensitive_fields`, or `writeOnly` in the schema) are password inputs that show the mask
//! `••••••••` when a value is stored; sending the mask back keeps the stored secret.
//!
//! JSON types map to inputs: boolean → checkbox (or yes/no radios), integer/number → number input,
//! string with `enum` → select (or radios), string → text, array of scalars → one value per line,
//! anything else → JSON in a textarea.

use std::collections::BTreeMap;

use nitejar_core::crypto::REDACTED;
use serde_json::{Map, Number, Value};

/// One choice of a select or radio group.
#[derive(Clone, Debug)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One form field.
#[derive(Clone, Debug)]
pub struct Field {
    /// The config key.
    pub key: String,
    /// The input's `name`: `config.<key>`.
    pub input: String,
    pub label: String,
    pub help: Option<String>,
    pub placeholder: String,
    /// `text`, `password`, `textarea`, `hidden`, `radio`, `select`, `checkbox`, `number`, `lines`,
    /// `json`.
    pub widget: &'static str,
    pub required: bool,
    pub value: String,
    pub checked: bool,
    pub choices: Vec<Choice>,
    /// A secret is stored: the input shows the mask.
    pub masked: bool,
    /// A secret was typed into a form that is shown again: it must be typed again.
    pub retype: bool,
    pub error: Option<String>,
}

fn ui<'a>(ui_schema: Option<&'a Value>, key: &str, hint: &str) -> Option<&'a str> {
    ui_schema?.get(key)?.get(hint)?.as_str()
}

fn humanize(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c == '_' || c == '-' {
            out.push(' ');
        } else if c.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else if i == 0 {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The schema's properties in form order.
fn ordered(schema: &Value, ui_schema: Option<&Value>) -> Vec<(String, Value)> {
    let props: BTreeMap<String, Value> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let required = required(schema);
    let order: Vec<String> = ui_schema
        .and_then(|u| u.get("ui:order"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_else(|| vec!["*".to_owned()]);
    let mut rest: Vec<&String> = props.keys().filter(|k| !order.contains(k)).collect();
    // Required fields first, then the others, each group alphabetical.
    rest.sort_by_key(|k| (!required.contains(k), (*k).clone()));
    let mut keys = Vec::new();
    for entry in &order {
        if entry == "*" {
            keys.extend(rest.iter().map(|k| (*k).clone()));
        } else if props.contains_key(entry) && !keys.contains(entry) {
            keys.push(entry.clone());
        }
    }
    if !order.iter().any(|o| o == "*") {
        keys.extend(rest.iter().map(|k| (*k).clone()));
    }
    keys.into_iter()
        .filter_map(|k| props.get(&k).map(|v| (k.clone(), v.clone())))
        .collect()
}

fn required(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The fields of a form for `values` (a stored config, redacted; or `None` for a new one, which
/// shows the schema's defaults).
pub fn fields(
    schema: &Value,
    ui_schema: Option<&Value>,
    sensitive: &[String],
    values: Option<&Map<String, Value>>,
) -> Vec<Field> {
    let required = required(schema);
    ordered(schema, ui_schema)
        .into_iter()
        .map(|(key, prop)| {
            let kind = match prop.get("type").and_then(Value::as_str) {
                Some(kind) => kind,
                // `anyOf` of scalars (a number or a numeric string): one text input.
                None if is_scalar_alternatives(&prop) => "string",
                None => "",
            };
            let widget_hint = ui(ui_schema, &key, "ui:widget");
            let is_secret = sensitive.contains(&key)
                || prop
                    .get("writeOnly")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            let current = match values {
                Some(v) => v.get(&key).cloned(),
                None => prop.get("default").cloned(),
            };
            let enum_values: Vec<String> = prop
                .get("enum")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(scalar_text).collect())
                .unwrap_or_default();
            let widget: &'static str = match (kind, widget_hint) {
                (_, Some("hidden")) => "hidden",
                ("boolean", Some("radio")) => "radio",
                ("boolean", _) => "checkbox",
                ("integer" | "number", _) => "number",
                ("string", Some("radio")) if !enum_values.is_empty() => "radio",
                ("string", _) if !enum_values.is_empty() => "select",
                ("string", Some("password")) => "password",
                ("string", _) if is_secret => "password",
                ("string", Some("textarea")) => "textarea",
                ("string", _) => "text",
                ("array", _) if is_scalar_array(&prop) => "lines",
                _ => "json",
            };
            let masked = is_secret && matches!(&current, Some(Value::String(s)) if !s.is_empty());
            let value = match (&current, widget) {
                (_, _) if masked => REDACTED.to_owned(),
                (Some(Value::Array(items)), "lines") => {
                    items.iter().map(scalar_text).collect::<Vec<_>>().join("\n")
                }
                (Some(v), "json") => serde_json::to_string_pretty(v).unwrap_or_default(),
                (Some(v), _) => scalar_text(v),
                (None, _) => String::new(),
            };
            let truth = matches!(current, Some(Value::Bool(true)));
            let choices = match (widget, kind) {
                ("radio", "boolean") => vec![
                    Choice {
                        value: "true".into(),
                        label: "Yes".into(),
                        selected: truth,
                    },
                    Choice {
                        value: "false".into(),
                        label: "No".into(),
                        selected: !truth,
                    },
                ],
                ("radio" | "select", _) => enum_values
                    .iter()
                    .map(|v| Choice {
                        value: v.clone(),
                        label: v.clone(),
                        selected: *v == value,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let help = ui(ui_schema, &key, "ui:help")
                .or_else(|| prop.get("description").and_then(Value::as_str))
                .map(str::to_owned);
            let placeholder = match ui(ui_schema, &key, "ui:placeholder") {
                Some(p) => p.to_owned(),
                None if widget == "lines" => "one per line".to_owned(),
                None => String::new(),
            };
            Field {
                input: format!("config.{key}"),
                label: prop
                    .get("title")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| humanize(&key)),
                help,
                placeholder,
                widget,
                required: required.contains(&key),
                value,
                checked: truth,
                choices,
                masked,
                retype: false,
                error: None,
                key,
            }
        })
        .collect()
}

fn is_scalar_alternatives(prop: &Value) -> bool {
    let scalar = |t: Option<&str>| matches!(t, Some("string" | "integer" | "number" | "boolean"));
    prop.get("anyOf")
        .or_else(|| prop.get("oneOf"))
        .and_then(Value::as_array)
        .is_some_and(|alts| {
            !alts.is_empty()
                && alts
                    .iter()
                    .all(|a| scalar(a.get("type").and_then(Value::as_str)))
        })
}

fn is_scalar_array(prop: &Value) -> bool {
    let Some(items) = prop.get("items") else {
        return true;
    };
    let scalar = |t: Option<&str>| matches!(t, Some("string" | "integer" | "number"));
    if scalar(items.get("type").and_then(Value::as_str)) {
        return true;
    }
    items
        .get("anyOf")
        .or_else(|| items.get("oneOf"))
        .and_then(Value::as_array)
        .is_some_and(|alts| {
            alts.iter()
                .all(|a| scalar(a.get("type").and_then(Value::as_str)))
        })
}

fn allows(prop: &Value, kind: &str) -> bool {
    if prop.get("type").and_then(Value::as_str) == Some(kind) {
        return true;
    }
    prop.get("anyOf")
        .or_else(|| prop.get("oneOf"))
        .and_then(Value::as_array)
        .is_some_and(|alts| {
            alts.iter()
                .any(|a| a.get("type").and_then(Value::as_str) == Some(kind))
        })
}

/// The config a submitted form describes. `form` holds the submitted `config.<key>` values (one per
/// key; the last wins). `stored` (redacted) keeps keys the schema does not describe. Returns the
/// config, or field errors by key.
pub fn config_from_form(
    schema: &Value,
    ui_schema: Option<&Value>,
    form: &BTreeMap<String, String>,
    stored: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, BTreeMap<String, String>> {
    let mut config = Map::new();
    let described: Vec<(String, Value)> = ordered(schema, ui_schema);
    if let Some(stored) = stored {
        for (k, v) in stored {
            if !described.iter().any(|(key, _)| key == k) {
                config.insert(k.clone(), v.clone());
            }
        }
    }
    let mut errors = BTreeMap::new();
    for field in fields(schema, ui_schema, &[], None) {
        let Some((_, prop)) = described.iter().find(|(k, _)| *k == field.key) else {
            continue;
        };
        let raw = form
            .get(&field.input)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned());
        let value = match field.widget {
            "checkbox" => Some(Value::Bool(raw.is_some())),
            "radio" if prop.get("type").and_then(Value::as_str) == Some("boolean") => {
                raw.map(|r| Value::Bool(r == "true"))
            }
            _ => match raw.filter(|r| !r.trim().is_empty()) {
                None => None,
                Some(text) => match parse(&text, field.widget, prop) {
                    Ok(v) => Some(v),
                    Err(message) => {
                        errors.insert(field.key.clone(), message);
                        None
                    }
                },
            },
        };
        if let Some(v) = value {
            config.insert(field.key.clone(), v);
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn parse(text: &str, widget: &str, prop: &Value) -> Result<Value, String> {
    match widget {
        "number" => {
            let t = text.trim();
            if allows(prop, "integer") {
                t.parse::<i64>()
                    .map(|n| Value::Number(n.into()))
                    .map_err(|_| format!("`{t}` is not a whole number"))
            } else {
                t.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("`{t}` is not a number"))
            }
        }
        "lines" => {
            let items = prop.get("items").cloned().unwrap_or(Value::Null);
            let mut out = Vec::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if allows(&items, "integer") {
                    if let Ok(n) = line.parse::<i64>() {
                        out.push(Value::Number(n.into()));
                        continue;
                    }
                    if !allows(&items, "string") {
                        return Err(format!("`{line}` is not a whole number"));
                    }
                }
                out.push(Value::String(line.to_owned()));
            }
            Ok(Value::Array(out))
        }
        "json" => serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}")),
        // A field that may be a number or a string (`anyOf`): a number when it reads as one.
        _ if prop.get("type").is_none() && allows(prop, "integer") => {
            match text.trim().parse::<i64>() {
                Ok(n) => Ok(Value::Number(n.into())),
                Err(_) if allows(prop, "string") => Ok(Value::String(text.to_owned())),
                Err(_) => Err(format!("`{}` is not a whole number", text.trim())),
            }
        }
        _ => Ok(Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": { "type": "string", "title": "Token" },
                "ids": { "type": "array", "items": { "anyOf": [{ "type": "integer" }, { "type": "string" }] } },
                "threads": { "type": "boolean", "default": true },
                "mode": { "type": "string", "enum": ["a", "b"] },
                "retries": { "type": "integer" },
                "extra": { "type": "object" },
                "note": { "type": "string" },
                "appId": { "anyOf": [{ "type": "integer" }, { "type": "string", "pattern": "^[0-9]+$" }] }
            }
        })
    }

    #[test]
    fn ui_schema_orders_and_picks_widgets() {
        let ui = json!({
            "ui:order": ["note", "*"],
            "note": { "ui:widget": "textarea", "ui:help": "Anything.", "ui:placeholder": "…" },
            "mode": { "ui:widget": "radio" }
        });
        let f = fields(&schema(), Some(&ui), &["token".into()], None);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            ["note", "token", "appId", "extra", "ids", "mode", "retries", "threads"]
        );
        let widgets: Vec<&str> = f.iter().map(|f| f.widget).collect();
        assert_eq!(
            widgets,
            ["textarea", "password", "text", "json", "lines", "radio", "number", "checkbox"]
        );
        assert_eq!(f[0].help.as_deref(), Some("Anything."));
        assert!(f[1].required && !f[1].masked);
        assert!(f[7].checked, "the default is shown on a new form");
    }

    #[test]
    fn stored_secrets_show_the_mask() {
        let stored = json!({ "token": REDACTED, "threads": false });
        let f = fields(&schema(), None, &["token".into()], stored.as_object());
        let token = f.iter().find(|f| f.key == "token").expect("token");
        assert!(token.masked);
        assert_eq!(token.value, REDACTED);
        assert!(!f.iter().any(|f| f.key == "threads" && f.checked));
    }

    #[test]
    fn a_form_becomes_a_typed_config() {
        let form: BTreeMap<String, String> = [
            ("config.token", "abc"),
            ("config.ids", "12\n-100\n\nchan"),
            ("config.mode", "b"),
            ("config.retries", "3"),
            ("config.extra", "{\"a\": 1}"),
            ("config.note", ""),
            ("config.appId", " 123 "),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let stored = json!({ "generated": "kept", "note": "dropped when emptied" });
        let config = config_from_form(&schema(), None, &form, stored.as_object()).expect("valid");
        assert_eq!(
            Value::Object(config),
            json!({
                "token": "abc", "ids": [12, -100, "chan"], "mode": "b", "retries": 3,
                "extra": {"a": 1}, "threads": false, "generated": "kept", "appId": 123
            })
        );
    }

    #[test]
    fn bad_numbers_and_json_are_field_errors() {
        let form: BTreeMap<String, String> = [("config.retries", "three"), ("config.extra", "{")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let errors = config_from_form(&schema(), None, &form, None).expect_err("invalid");
        assert_eq!(errors.len(), 2);
        assert!(errors["retries"].contains("whole number"));
    }
}
