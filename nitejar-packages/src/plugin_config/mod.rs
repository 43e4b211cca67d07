//! A plugin's config: the settings its manifest declares (`config`, see
//! [`ConfigDeclaration`]), and every config an operator sets checked against them before it is
//! stored or handed to the plugin.
//!
//! The declaration is a JSON Schema of a deliberate **subset**: an object of named settings, each a
//! string, an integer, a number, a boolean or an array of strings, integers or numbers, with the
//! keywords that constrain those (`enum`, `minimum`/`maximum`, `minLength`/`maxLength`/`pattern`,
//! `items`, `minItems`/`maxItems`/`uniqueItems`), `title`, `description`, `default`, and
//! `required`. That is what the admin renders as one form field per setting, what a CLI
//! `name=value` pair can say, and what can be checked with a message naming the setting. Anything
//! else is refused when the manifest is validated (so an author learns at `nitejar plugin validate`,
//! not when an operator's form silently ignores a keyword). The object is closed: a setting that is
//! not declared cannot be set.
//!
//! Secrets are not config: a config is stored and shown in plain text. A plugin declares its
//! secrets in `permissions.secrets`; the operator sets them encrypted (see
//! `nitejar_core::lifecycle::PluginManager::configure`).
//!
//! ```
//! use nitejar_packages::plugin_config::ConfigSchema;
//! use nitejar_sdk::manifest::ConfigDeclaration;
//! use serde_json::json;
//!
//! let schema = ConfigSchema::parse(&ConfigDeclaration::new(json!({
//!     "type": "object",
//!     "properties": {
//!         "blockedTools": { "type": "array", "items": { "type": "string" } },
//!         "maxLength": { "type": "integer", "minimum": 1 }
//!     }
//! })))
//! .unwrap();
//! assert!(schema.validate(&json!({ "blockedTools": ["shell"] })).is_ok());
//! let problems = schema.validate(&json!({ "blockedTools": "shell", "maxLenght": 3 })).unwrap_err();
//! assert_eq!(
//!     problems.to_string(),
//!     "blockedTools: must be a list of strings\n\
//!      maxLenght: `maxLenght` is not a setting of this plugin; did you mean `maxLength`?"
//! );
//! assert_eq!(schema.value_from_text("blockedTools", "shell, fs_write").unwrap(), json!(["shell", "fs_write"]));
//! ```

mod declaration;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use nitejar_sdk::manifest::{ConfigDeclaration, Manifest};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::manifest::spelling;

/// A setting's JSON type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Array,
}

/// The constraints of a scalar value (a setting, or the items of an array setting).
#[derive(Clone, Default)]
struct ScalarRules {
    allowed: Option<Vec<Value>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    /// The pattern as written, and compiled (JSON Schema regular expressions).
    pattern: Option<(String, Arc<jsonschema::Validator>)>,
}

impl fmt::Debug for ScalarRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalarRules")
            .field("allowed", &self.allowed)
            .field("minimum", &self.minimum)
            .field("maximum", &self.maximum)
            .field("min_length", &self.min_length)
            .field("max_length", &self.max_length)
            .field("pattern", &self.pattern.as_ref().map(|(p, _)| p))
            .finish()
    }
}

#[derive(Clone, Debug)]
struct Items {
    kind: Kind,
    rules: ScalarRules,
}

/// One declared setting.
#[derive(Clone, Debug)]
struct Property {
    kind: Kind,
    default: Option<Value>,
    rules: ScalarRules,
    items: Option<Items>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
}

/// A plugin's config schema, read from its manifest's `config` declaration.
#[derive(Clone, Debug)]
pub struct ConfigSchema {
    declared: ConfigDeclaration,
    properties: BTreeMap<String, Property>,
    required: Vec<String>,
}

/// A `config` declaration outside the supported subset (a manifest that was not validated by this
/// release). Each problem reads `<JSON pointer>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the plugin's config declaration cannot be used: {}", problems.join("; "))]
pub struct ConfigSchemaError {
    /// The problems, as `<JSON pointer>: <message>`.
    pub problems: Vec<String>,
}

/// One problem with a config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// A JSON pointer into the config (`/blockedTools/2`); empty for the whole config.
    pub path: String,
    /// The setting the problem is about (the first segment of `path`), if any.
    pub field: Option<String>,
    /// What is wrong, in words that name what to write instead.
    pub message: String,
}

impl ConfigProblem {
    fn new(path: String, message: String) -> ConfigProblem {
        let field = path
            .strip_prefix('/')
            .and_then(|p| p.split('/').next())
            .filter(|f| !f.is_empty())
            .map(|f| f.replace("~1", "/").replace("~0", "~"));
        ConfigProblem {
            path,
            field,
            message,
        }
    }

    /// A problem with the whole config.
    pub fn whole(message: impl Into<String>) -> ConfigProblem {
        ConfigProblem::new(String::new(), message.into())
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segments = self.path.trim_start_matches('/').splitn(2, '/');
        match (segments.next().filter(|s| !s.is_empty()), segments.next()) {
            (Some(field), Some(rest)) => match rest.parse::<usize>() {
                // Items are counted from 1, as an operator reads a list.
                Ok(i) => write!(f, "{field} (item {}): {}", i + 1, self.message),
                Err(_) => write!(f, "{field}/{rest}: {}", self.message),
            },
            (Some(field), None) => write!(f, "{field}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a config, one per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ConfigProblems(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Checks a manifest's `config` declaration (at JSON pointer `base`) for manifest validation:
/// `(path, message)` per problem.
pub(crate) fn check_declaration(decl: &Value, base: &str) -> Vec<(String, String)> {
    declaration::check(decl, base).1
}

impl ConfigSchema {
    /// The schema a manifest declares; `Ok(None)` for a plugin that takes no config.
    pub fn of_manifest(manifest: &Manifest) -> Result<Option<ConfigSchema>, ConfigSchemaError> {
        manifest
            .config
            .as_ref()
            .map(ConfigSchema::parse)
            .transpose()
    }

    /// Reads a declaration (see the [module docs](self) for the subset).
    pub fn parse(declared: &ConfigDeclaration) -> Result<ConfigSchema, ConfigSchemaError> {
        let value = serde_json::to_value(declared).unwrap_or(Value::Null);
        match declaration::check(&value, "/config") {
            (Some(parsed), problems) if problems.is_empty() => Ok(ConfigSchema {
                declared: declared.clone(),
                properties: parsed.properties,
                required: parsed.required,
            }),
            (_, problems) => Err(ConfigSchemaError {
                problems: problems
                    .into_iter()
                    .map(|(path, message)| format!("{path}: {message}"))
                    .collect(),
            }),
        }
    }

    /// The JSON Schema as declared (what the admin renders its form from).
    pub fn schema(&self) -> &Value {
        &self.declared.schema
    }

    /// The form hints as declared.
    pub fn ui_schema(&self) -> Option<&Value> {
        self.declared.ui_schema.as_ref()
    }

    /// The names of the settings, in alphabetical order.
    pub fn settings(&self) -> impl Iterator<Item = &str> {
        self.properties.keys().map(String::as_str)
    }

    /// The declared defaults: what a form for a plugin without a stored config starts with.
    pub fn defaults(&self) -> Map<String, Value> {
        self.properties
            .iter()
            .filter_map(|(k, p)| p.default.clone().map(|d| (k.clone(), d)))
            .collect()
    }

    /// Checks a config: an object of declared settings only (or `null`: nothing set), each value of
    /// its setting's type and within its constraints, every required setting present. Every
    /// problem is reported, in setting order.
    pub fn validate(&self, config: &Value) -> Result<(), ConfigProblems> {
        let mut out: Vec<(String, String)> = Vec::new();
        let empty = Map::new();
        let map = match config {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(ConfigProblems(vec![ConfigProblem::whole(format!(
                    "the config must be a JSON object of settings (e.g. {{\"{}\": …}}), not {}",
                    self.settings().next().unwrap_or("name"),
                    json_kind(other)
                ))]))
            }
        };
        let names: Vec<&str> = self.settings().collect();
        for (key, value) in map {
            let at = pointer(key);
            match self.properties.get(key) {
                Some(p) => p.check(&at, value, &mut out),
                None => {
                    let hint = match spelling::closest(key, &names, 2) {
                        Some(meant) => format!("did you mean `{meant}`?"),
                        None if names.is_empty() => "it declares none".to_string(),
                        None => format!("its settings are: {}", names.join(", ")),
                    };
                    out.push((
                        at,
                        format!("`{key}` is not a setting of this plugin; {hint}"),
                    ));
                }
            }
        }
        for name in &self.required {
            if map.get(name).is_none_or(Value::is_null) {
                out.push((pointer(name), "is required; set a value".into()));
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Err(ConfigProblems(
            out.into_iter()
                .map(|(path, message)| ConfigProblem::new(path, message))
                .collect(),
        ))
    }

    /// The value a `name=text` pair on a command line means for setting `name`: the text itself
    /// for a string; a number, `true`/`false` for the others; for an array, a JSON array or the
    /// items separated by commas. The value is only converted here; [`validate`](Self::validate)
    /// checks it with the rest of the config.
    pub fn value_from_text(&self, name: &str, text: &str) -> Result<Value, ConfigProblem> {
        let Some(p) = self.properties.get(name) else {
            let names: Vec<&str> = self.settings().collect();
            let hint = match spelling::closest(name, &names, 2) {
                Some(meant) => format!("did you mean `{meant}`?"),
                None => format!("its settings are: {}", names.join(", ")),
            };
            return Err(ConfigProblem::new(
                pointer(name),
                format!("`{name}` is not a setting of this plugin; {hint}"),
            ));
        };
        let fail = |message: String| ConfigProblem::new(pointer(name), message);
        match p.kind {
            Kind::Array => {
                let trimmed = text.trim();
                if trimmed.starts_with('[') {
                    return serde_json::from_str(trimmed)
                        .map_err(|e| fail(format!("is not a JSON array: {e}")));
                }
                let kind = p.items.as_ref().map_or(Kind::String, |i| i.kind);
                let items = trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| scalar_from_text(kind, s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                Ok(Value::Array(items))
            }
            kind => scalar_from_text(kind, text).map_err(fail),
        }
    }
}

fn scalar_from_text(kind: Kind, text: &str) -> Result<Value, String> {
    let t = text.trim();
    match kind {
        Kind::String | Kind::Array => Ok(Value::String(text.to_string())),
        Kind::Integer => t
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{t}` is not a whole number")),
        Kind::Number => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{t}` is not a number")),
        Kind::Boolean => match t {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{t}` is neither `true` nor `false`")),
        },
    }
}

/// `/name`, escaped as a JSON pointer requires.
fn pointer(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "`null`",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A number as an operator writes it: `3`, not `3.0`.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::String => "strings",
        Kind::Integer => "whole numbers",
        Kind::Number => "numbers",
        Kind::Boolean => "`true`/`false` values",
        Kind::Array => "lists",
    }
}

/// Why `value` is not of `kind`, if it is not. An array's items are not looked at.
fn type_problem(kind: Kind, value: &Value) -> Option<String> {
    let ok = match (kind, value) {
        (Kind::String, Value::String(_)) => true,
        (Kind::Integer, Value::Number(n)) => is_integer(n),
        (Kind::Number, Value::Number(_)) => true,
        (Kind::Boolean, Value::Bool(_)) => true,
        (Kind::Array, Value::Array(_)) => true,
        _ => false,
    };
    if ok {
        return None;
    }
    Some(match kind {
        Kind::String => "must be a string".to_string(),
        Kind::Integer => "must be a whole number".to_string(),
        Kind::Number => "must be a number".to_string(),
        Kind::Boolean => "must be `true` or `false`".to_string(),
        Kind::Array => "must be a list".to_string(),
    })
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

impl ScalarRules {
    fn check(&self, kind: Kind, at: &str, value: &Value, out: &mut Vec<(String, String)>) {
        if let Some(message) = type_problem(kind, value) {
            out.push((at.to_string(), message));
            return;
        }
        if let Some(allowed) = &self.allowed {
            let equal = |a: &Value| match (a, value) {
                (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
                _ => a == value,
            };
            if !allowed.iter().any(equal) {
                let list: Vec<String> = allowed.iter().map(shown).collect();
                out.push((
                    at.to_string(),
                    format!(
                        "{} is not allowed; use one of: {}",
                        shown(value),
                        list.join(", ")
                    ),
                ));
                return;
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = self.minimum.filter(|min| n < *min) {
                out.push((
                    at.to_string(),
                    format!("must be at least {}", number_text(min)),
                ));
            }
            if let Some(max) = self.maximum.filter(|max| n > *max) {
                out.push((
                    at.to_string(),
                    format!("must be at most {}", number_text(max)),
                ));
            }
        }
        if let Some(s) = value.as_str() {
            let length = s.chars().count() as u64;
            if let Some(min) = self.min_length.filter(|min| length < *min) {
                let message = if min == 1 {
                    "must not be empty".to_string()
                } else {
                    format!("must be at least {min} characters long")
                };
                out.push((at.to_string(), message));
            }
            if let Some(max) = self.max_length.filter(|max| length > *max) {
                out.push((
                    at.to_string(),
                    format!("is too long: at most {max} characters"),
                ));
            }
            if let Some((pattern, validator)) = &self.pattern {
                if !validator.is_valid(value) {
                    out.push((
                        at.to_string(),
                        format!(
                            "{} does not have the required form (`{pattern}`)",
                            shown(value)
                        ),
                    ));
                }
            }
        }
    }
}

impl Property {
    fn check(&self, at: &str, value: &Value, out: &mut Vec<(String, String)>) {
        if self.kind != Kind::Array {
            return self.rules.check(self.kind, at, value, out);
        }
        let Some(items) = value.as_array() else {
            let of = self.items.as_ref().map_or("values", |i| plural(i.kind));
            out.push((at.to_string(), format!("must be a list of {of}")));
            return;
        };
        let count = items.len() as u64;
        if let Some(min) = self.min_items.filter(|min| count < *min) {
            out.push((
                at.to_string(),
                format!(
                    "must list at least {min} item{}",
                    if min == 1 { "" } else { "s" }
                ),
            ));
        }
        if let Some(max) = self.max_items.filter(|max| count > *max) {
            out.push((
                at.to_string(),
                format!("lists too many items: at most {max}"),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            let item_at = format!("{at}/{i}");
            if let Some(spec) = &self.items {
                spec.rules.check(spec.kind, &item_at, item, out);
            }
            if self.unique_items && items[..i].contains(item) {
                out.push((item_at, format!("{} is listed more than once", shown(item))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(schema: Value) -> ConfigSchema {
        ConfigSchema::parse(&ConfigDeclaration::new(schema)).unwrap()
    }

    fn guard() -> ConfigSchema {
        schema(json!({
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": { "type": "string", "enum": ["block", "warn"] },
                "blockedTools": { "type": "array", "items": { "type": "string", "minLength": 1 }, "uniqueItems": true, "maxItems": 3 },
                "limit": { "type": "integer", "minimum": 1, "maximum": 10 },
                "ratio": { "type": "number" },
                "strict": { "type": "boolean", "default": false },
                "prefix": { "type": "string", "pattern": "^[a-z]+-$" }
            }
        }))
    }

    fn messages(config: Value) -> Vec<String> {
        match guard().validate(&config) {
            Ok(()) => Vec::new(),
            Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_fitting_config_passes() {
        assert_eq!(
            messages(
                json!({ "mode": "warn", "blockedTools": ["shell"], "limit": 3, "ratio": 0.5, "strict": true, "prefix": "sk-" })
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            messages(json!({ "mode": "block", "limit": 2.0 })),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_problem_names_its_setting() {
        assert_eq!(
            messages(json!({
                "blockedTools": ["shell", "", "shell", "a"],
                "limit": 11, "ratio": "half", "strict": "yes", "prefix": "SK", "extra": 1
            })),
            [
                "blockedTools: lists too many items: at most 3",
                "blockedTools (item 2): must not be empty",
                "blockedTools (item 3): `shell` is listed more than once",
                "extra: `extra` is not a setting of this plugin; its settings are: blockedTools, limit, mode, prefix, ratio, strict",
                "limit: must be at most 10",
                "mode: is required; set a value",
                "prefix: `SK` does not have the required form (`^[a-z]+-$`)",
                "ratio: must be a number",
                "strict: must be `true` or `false`",
            ]
        );
        assert_eq!(
            messages(json!({ "mode": "stop", "limit": 1.5 })),
            [
                "limit: must be a whole number",
                "mode: `stop` is not allowed; use one of: `block`, `warn`"
            ]
        );
        assert_eq!(
            messages(json!(["shell"])),
            ["the config must be a JSON object of settings (e.g. {\"blockedTools\": …}), not a list"]
        );
        let problems = guard()
            .validate(&json!({ "blockedTools": "shell", "mode": "warn" }))
            .unwrap_err();
        assert_eq!(problems.0[0].field.as_deref(), Some("blockedTools"));
        assert_eq!(problems.0[0].path, "/blockedTools");
    }

    #[test]
    fn null_is_an_empty_config() {
        let optional =
            schema(json!({ "type": "object", "properties": { "a": { "type": "string" } } }));
        assert!(optional.validate(&Value::Null).is_ok());
        assert_eq!(messages(Value::Null), ["mode: is required; set a value"]);
    }

    #[test]
    fn command_line_text_becomes_typed_values() {
        let s = guard();
        assert_eq!(s.value_from_text("limit", " 4 ").unwrap(), json!(4));
        assert_eq!(s.value_from_text("ratio", "0.25").unwrap(), json!(0.25));
        assert_eq!(s.value_from_text("strict", "true").unwrap(), json!(true));
        assert_eq!(s.value_from_text("mode", " warn").unwrap(), json!(" warn"));
        assert_eq!(
            s.value_from_text("blockedTools", "shell, fs_*").unwrap(),
            json!(["shell", "fs_*"])
        );
        assert_eq!(
            s.value_from_text("blockedTools", r#"["a,b"]"#).unwrap(),
            json!(["a,b"])
        );
        assert_eq!(
            s.value_from_text("limit", "four").unwrap_err().to_string(),
            "limit: `four` is not a whole number"
        );
        assert_eq!(
            s.value_from_text("blockedtools", "x").unwrap_err().to_string(),
            "blockedtools: `blockedtools` is not a setting of this plugin; did you mean `blockedTools`?"
        );
    }

    #[test]
    fn defaults_are_what_the_form_starts_with() {
        assert_eq!(
            Value::Object(guard().defaults()),
            json!({ "strict": false })
        );
    }

    fn declaration_problems(decl: Value) -> Vec<String> {
        check_declaration(&decl, "/config")
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    #[test]
    fn declarations_outside_the_subset_are_refused_with_the_way_out() {
        let problems = declaration_problems(json!({
            "schema": {
                "type": "object",
                "properties": {
                    "token": { "type": "string", "writeOnly": true },
                    "nested": { "type": "object" },
                    "count": { "type": "integer", "minLength": 2, "default": "x" },
                    "list": { "type": "array" },
                    "mode": { "type": "string", "enum": ["a", 1], "pattern": "(" },
                    "bad name": { "type": "string" },
                    "fmt": { "type": "string", "fromat": "uri" }
                },
                "required": ["missing"]
            },
            "uiSchema": { "ui:order": ["count", "nope"], "count": { "ui:widget": "textarea" } }
        }));
        insta::assert_snapshot!(problems.join("\n"));
    }

    #[test]
    fn a_schema_of_the_subset_parses() {
        let problems = declaration_problems(json!({
            "schema": {
                "type": "object",
                "additionalProperties": false,
                "properties": { "mode": { "type": "string", "enum": ["a", "b"], "default": "a" } }
            },
            "uiSchema": { "ui:order": ["*"], "mode": { "ui:widget": "radio", "ui:help": "Pick one." } }
        }));
        assert_eq!(problems, Vec::<String>::new());
    }
}
