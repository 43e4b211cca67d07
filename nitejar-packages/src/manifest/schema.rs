//! The JSON Schema pass: the shipped [`SCHEMA`] applied with the `jsonschema` crate, its findings
//! rewritten into our own stable text.
//!
//! The crate's own messages change between releases and quote whole regular expressions, and these
//! messages are snapshot-tested and shown to plugin authors. So only the facts of each error are used
//! (instance path, keyword, the keyword's value in our schema) and the words are ours.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use nitejar_sdk::manifest::SCHEMA;
use serde_json::Value;

use super::{join, shown, spelling, ManifestError};

/// The schema as a value (for looking up allowed keys and types) and compiled.
struct Compiled {
    schema: Value,
    validator: Validator,
}

/// Compiled once per process: building the validator costs far more than running it.
fn compiled() -> Result<&'static Compiled, &'static str> {
    static COMPILED: OnceLock<Result<Compiled, String>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let schema: Value = serde_json::from_str(SCHEMA)
                .map_err(|e| format!("the shipped manifest schema is not JSON: {e}"))?;
            let validator = jsonschema::draft202012::new(&schema)
                .map_err(|e| format!("the shipped manifest schema does not compile: {e}"))?;
            Ok(Compiled { schema, validator })
        })
        .as_ref()
        .map_err(String::as_str)
}

/// A schema finding, with the keyword that produced it (used to let a more specific semantic
/// message at the same place win).
pub(super) struct SchemaFinding {
    pub error: ManifestError,
    pub keyword: Keyword,
}

/// The keywords whose findings are treated differently when merging with semantic checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keyword {
    /// A wrong JSON type: the value was not inspected further.
    Type,
    /// About an array's items or an object's keys as a whole (`uniqueItems`, `propertyNames`): the
    /// semantic checks report these on the offending item instead.
    AboutChildren,
    Other,
}

/// Applies the schema to `doc`. An `Err` means the shipped schema itself is broken (a build defect,
/// reported to the user as such rather than as a panic).
pub(super) fn check(doc: &Value) -> Result<Vec<SchemaFinding>, String> {
    let compiled = compiled().map_err(str::to_string)?;
    Ok(compiled
        .validator
        .iter_errors(doc)
        .flat_map(|error| describe(&compiled.schema, &error))
        .collect())
}

fn describe(schema: &Value, error: &ValidationError<'_>) -> Vec<SchemaFinding> {
    let path = error.instance_path().as_str().to_string();
    let schema_path = error.schema_path().as_str();
    // The value of the failing keyword in our schema, e.g. the `type` or `pattern` string.
    let keyword_value = schema.pointer(schema_path);
    let finding = |path: String, message: String, keyword: Keyword| SchemaFinding {
        error: ManifestError { path, message },
        keyword,
    };
    let one = |message: String| vec![finding(path.clone(), message, Keyword::Other)];

    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let parent = schema_path
                .rsplit_once('/')
                .map(|(parent, _)| parent)
                .unwrap_or("");
            let allowed: Vec<&str> = schema
                .pointer(parent)
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|props| props.keys().map(String::as_str).collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|key| {
                    let message = match spelling::closest(key, &allowed, 2) {
                        Some(known) => {
                            format!("unknown field {}; did you mean `{known}`?", shown(key))
                        }
                        None => format!(
                            "unknown field {}; the fields allowed here are: {}",
                            shown(key),
                            allowed.join(", ")
                        ),
                    };
                    finding(join(&path, key), message, Keyword::Other)
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let hint = match name {
                "schemaVersion" => "; add `\"schemaVersion\": 1`",
                "id" => "; add an id such as `\"com.example.my-plugin\"`",
                "name" => "; add the name operators see",
                "version" => "; add a version such as `\"0.1.0\"`",
                "engine" => "; add `\"engine\": { \"nitejar\": \">=0.1.0 <1.0.0\" }` with the Nitejar versions the plugin works with",
                "nitejar" => "; add the Nitejar versions the plugin works with, e.g. `\">=0.1.0 <1.0.0\"`",
                _ => "",
            };
            vec![finding(
                join(&path, name),
                format!("is required but missing{hint}"),
                Keyword::Other,
            )]
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match keyword_value {
                Some(Value::String(t)) => article(t).to_string(),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(article)
                    .collect::<Vec<_>>()
                    .join(" or "),
                _ => match kind {
                    TypeKind::Single(t) => article(&t.to_string()).to_string(),
                    TypeKind::Multiple(_) => "another type".to_string(),
                },
            };
            let subject = if path.is_empty() { "the manifest " } else { "" };
            vec![finding(
                path.clone(),
                format!(
                    "{subject}must be {expected}, not {}",
                    type_of(error.instance())
                ),
                Keyword::Type,
            )]
        }
        ValidationErrorKind::Constant { expected_value } => {
            one(format!("must be `{expected_value}`"))
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            one(format!("must be one of: {}", options.join(", ")))
        }
        ValidationErrorKind::Pattern { pattern } => {
            one(format!("does not have the required form (`{pattern}`)"))
        }
        ValidationErrorKind::MinLength { limit: 1 } => one("must not be empty".to_string()),
        ValidationErrorKind::MinLength { limit } => {
            one(format!("must be at least {limit} characters long"))
        }
        ValidationErrorKind::MaxLength { limit } => one(format!(
            "is too long; at most {limit} characters are allowed"
        )),
        ValidationErrorKind::MinItems { limit } => one(format!("must list at least {limit} items")),
        ValidationErrorKind::MaxItems { limit } => {
            one(format!("lists too many items; at most {limit} are allowed"))
        }
        ValidationErrorKind::MinProperties { limit: 1 } => one("must not be empty".to_string()),
        ValidationErrorKind::MinProperties { limit } => {
            one(format!("must have at least {limit} entries"))
        }
        ValidationErrorKind::UniqueItems => vec![finding(
            path,
            "lists the same value more than once; remove the repeats".to_string(),
            Keyword::AboutChildren,
        )],
        ValidationErrorKind::PropertyNames { .. } => vec![finding(
            path,
            "has a key of the wrong form".to_string(),
            Keyword::AboutChildren,
        )],
        other => one(format!(
            "does not match the manifest schema (`{}`)",
            other.keyword()
        )),
    }
}

fn article(json_type: &str) -> &'static str {
    match json_type {
        "string" => "a string",
        "object" => "an object",
        "array" => "an array",
        "boolean" => "`true` or `false`",
        "integer" => "an integer",
        "number" => "a number",
        "null" => "`null`",
        _ => "another type",
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "`null`",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_schema_compiles() {
        assert!(check(&serde_json::json!({})).is_ok());
    }
}
