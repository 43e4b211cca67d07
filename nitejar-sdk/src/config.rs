//! A plugin's settings, read into the plugin's own type.
//!
//! The settings an operator can change are declared once, in the manifest's `config.schema`
//! (which the admin renders as a form and checks every change against). The plugin's code reads
//! them into a `#[derive(Deserialize)]` struct with [`Config::get`]; a setting the operator left
//! unset takes the `default` the schema declares, so the defaults are written in one place only.
//!
//! A build function that takes `&Config` is one of the forms
//! [`export_plugin!`](crate::export_plugin) accepts; it is called with the stored settings each
//! time the plugin is instantiated (after every change):
//!
//! ```
//! use nitejar_sdk::config::Config;
//! use nitejar_sdk::serde_json::json;
//! use nitejar_sdk::Plugin;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Settings {
//!     blocked_tools: Vec<String>,
//!     max_length: Option<u32>,
//! }
//!
//! fn plugin(config: &Config) -> Result<Plugin, nitejar_sdk::config::ConfigError> {
//!     let settings: Settings = config.get()?;
//!     // … capture `settings` in the handlers …
//!     # let _ = (settings.blocked_tools, settings.max_length);
//!     Ok(Plugin::builder().build())
//! }
//!
//! // The manifest declares the settings and their defaults (here inline; a crate reads its own
//! // with `include_str!("../nitejar.plugin.json")`).
//! let manifest = json!({
//!     "schemaVersion": 1, "id": "com.acme.guard", "name": "Guard", "version": "1.0.0",
//!     "config": { "schema": { "type": "object", "properties": {
//!         "blockedTools": { "type": "array", "items": { "type": "string" }, "default": ["shell"] },
//!         "maxLength": { "type": "integer" }
//!     } } }
//! })
//! .to_string();
//! let unset = Config::declared_in(&manifest, json!(null))?;
//! let settings: Settings = unset.get()?;
//! assert_eq!(settings.blocked_tools, ["shell"]);
//! assert_eq!(settings.max_length, None);
//!
//! let set = Config::declared_in(&manifest, json!({ "maxLength": "long" }))?;
//! let error = set.get::<Settings>().err().map(|e| e.to_string()).unwrap_or_default();
//! assert!(error.starts_with("the plugin's config does not fit at `maxLength`"), "{error}");
//! # Ok::<(), nitejar_sdk::config::ConfigError>(())
//! ```
//!
//! ## Handlers use the settings they were built with
//!
//! A handler reaches its settings by capturing them (an [`Arc`](std::sync::Arc) when several
//! handlers share them); there is no per-call accessor on the hook context, on purpose:
//!
//! - **A value the code cannot read refuses the change.** The server instantiates an enabled
//!   plugin with new settings *before* it stores them; a build function that answers a
//!   [`ConfigError`] refuses the change, nothing is stored, and the running instance keeps its
//!   settings. Read per call, the same mistake would surface later as a failing handler.
//! - **A change makes a new instance.** The next call after the change reaches an instance built
//!   with the new settings, without a restart (also when the change was made by the CLI, from
//!   another process, and when the plugin runs in a process of its own): the tests
//!   `tests/lifecycle/settings.rs` and `nitejar-server/tests/plugin_settings.rs` show it.
//! - **Settings are read once**, not once per call.
//!
//! ```
//! use std::sync::Arc;
//!
//! use nitejar_sdk::config::{Config, ConfigError};
//! use nitejar_sdk::hooks::{HookResult, ResponsePreDeliver, ResponsePreDeliverPatch, ToolPreExec};
//! use nitejar_sdk::serde_json::json;
//! use nitejar_sdk::testing::{run_hook, TestHost};
//! use nitejar_sdk::Plugin;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Settings {
//!     #[serde(default)]
//!     blocked_tools: Vec<String>,
//!     max_length: Option<usize>,
//! }
//!
//! fn plugin(config: &Config) -> Result<Plugin, ConfigError> {
//!     let settings = Arc::new(config.get::<Settings>()?);
//!     let for_tools = Arc::clone(&settings);
//!     Ok(Plugin::builder()
//!         .on(move |_ctx, call: &ToolPreExec| {
//!             if for_tools.blocked_tools.contains(&call.tool_name) {
//!                 HookResult::block(format!("`{}` is blocked here", call.tool_name))
//!             } else {
//!                 HookResult::proceed()
//!             }
//!         })
//!         .on(move |_ctx, response: &ResponsePreDeliver| match settings.max_length {
//!             Some(max) if response.content.chars().count() > max => HookResult::change(
//!                 ResponsePreDeliverPatch::new().content(response.content.chars().take(max).collect::<String>()),
//!             ),
//!             _ => HookResult::proceed(),
//!         })
//!         .build())
//! }
//!
//! let plugin = plugin(&Config::new(json!({ "blockedTools": ["shell"], "maxLength": 5 })))?;
//! let host = TestHost::new();
//! let mut call = ToolPreExec::default();
//! call.tool_name = "shell".into();
//! assert!(run_hook(&plugin, &host, call).blocked.is_some());
//! let mut response = ResponsePreDeliver::default();
//! response.content = "a long answer".into();
//! assert_eq!(run_hook(&plugin, &host, response).payload.content, "a lon");
//! # Ok::<(), ConfigError>(())
//! ```

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The settings an operator gave a plugin, with the defaults its manifest declares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    value: Value,
    defaults: Map<String, Value>,
}

impl Config {
    /// Settings without declared defaults: [`get`](Self::get) sees exactly `value`.
    pub fn new(value: Value) -> Config {
        Config {
            value,
            defaults: Map::new(),
        }
    }

    /// Settings whose unset keys take the `default`s of the manifest's `config.schema`.
    /// `manifest` is the text of a `nitejar.plugin.json`. `value` is what the operator stored
    /// (`null` when nothing is set).
    pub fn declared_in(manifest: &str, value: Value) -> Result<Config, ConfigError> {
        // Only `config.schema` is read: the rest of the manifest is the host's to check.
        let manifest: Value =
            serde_json::from_str(manifest).map_err(|e| ConfigError::Manifest(e.to_string()))?;
        Ok(Config::with_schema(
            manifest.pointer("/config/schema"),
            value,
        ))
    }

    /// Settings whose unset keys take the `default`s of a `config.schema` (the properties of a
    /// top-level object schema; nothing when `schema` is `None` or not of that shape).
    pub fn with_schema(schema: Option<&Value>, value: Value) -> Config {
        let defaults = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .filter_map(|(key, property)| {
                        Some((key.clone(), property.get("default")?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Config { value, defaults }
    }

    /// What the operator stored, as it was stored (`null` when nothing is set).
    pub fn raw(&self) -> &Value {
        &self.value
    }

    /// Whether the operator has stored any settings.
    pub fn is_set(&self) -> bool {
        !self.value.is_null()
    }

    /// The settings with every unset key given its declared default.
    pub fn merged(&self) -> Result<Value, ConfigError> {
        let mut merged = self.defaults.clone();
        match &self.value {
            Value::Null => {}
            Value::Object(set) => merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone()))),
            other => return Err(ConfigError::NotAnObject { found: kind(other) }),
        }
        Ok(Value::Object(merged))
    }

    /// The settings read into `T` (unset keys take their declared defaults). A key of `T` that is
    /// neither set nor declared with a default must be optional in `T` (`Option`, or
    /// `#[serde(default)]`).
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let merged = self.merged()?;
        serde_path_to_error::deserialize(merged).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Mismatch {
                path: if path == "." { String::new() } else { path },
                reason: e.into_inner().to_string(),
            }
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Why a plugin's settings could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The settings are not a JSON object.
    #[error("the plugin's config must be a JSON object, not {found}")]
    NotAnObject {
        /// What it is instead.
        found: &'static str,
    },
    /// A setting does not fit the plugin's type (a wrong type, or a required key without a
    /// value or a declared default).
    #[error("the plugin's config does not fit{}: {reason}; declare the setting (and its default) in nitejar.plugin.json's config.schema with the type the code reads", if path.is_empty() { String::new() } else { format!(" at `{path}`") })]
    Mismatch {
        /// The setting's path (`blockedTools[2]`), empty for the whole object.
        path: String,
        /// What serde said.
        reason: String,
    },
    /// The manifest given to [`Config::declared_in`] could not be read.
    #[error("the manifest the config's defaults come from cannot be read: {0}")]
    Manifest(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Settings {
        blocked_tools: Vec<String>,
        label: String,
        #[serde(default)]
        strict: bool,
        limit: Option<u32>,
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "blockedTools": { "type": "array", "items": { "type": "string" }, "default": ["shell"] },
                "label": { "type": "string", "default": "— signed" },
                "strict": { "type": "boolean" },
                "limit": { "type": "integer", "minimum": 1 }
            }
        })
    }

    #[test]
    fn unset_keys_take_the_declared_defaults() {
        let settings: Settings = Config::with_schema(Some(&schema()), Value::Null)
            .get()
            .unwrap();
        assert_eq!(
            settings,
            Settings {
                blocked_tools: vec!["shell".into()],
                label: "— signed".into(),
                strict: false,
                limit: None,
            }
        );
        let settings: Settings =
            Config::with_schema(Some(&schema()), json!({ "label": "x", "limit": 3 }))
                .get()
                .unwrap();
        assert_eq!(settings.label, "x");
        assert_eq!(settings.limit, Some(3));
        assert_eq!(
            settings.blocked_tools,
            ["shell"],
            "a default fills only unset keys"
        );
        let settings: Settings =
            Config::with_schema(Some(&schema()), json!({ "blockedTools": [] }))
                .get()
                .unwrap();
        assert!(
            settings.blocked_tools.is_empty(),
            "a set value replaces its default"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_path() {
        let config = Config::with_schema(Some(&schema()), json!({ "blockedTools": ["a", 7] }));
        let error = config.get::<Settings>().unwrap_err();
        match &error {
            ConfigError::Mismatch { path, .. } => assert_eq!(path, "blockedTools[1]"),
            other => panic!("{other:?}"),
        }
        assert!(
            error
                .to_string()
                .starts_with("the plugin's config does not fit at `blockedTools[1]`: invalid type: integer `7`, expected a string"),
            "{error}"
        );
    }

    #[test]
    fn a_required_key_without_a_default_is_named() {
        let error = Config::new(json!({ "blockedTools": [] }))
            .get::<Settings>()
            .unwrap_err();
        assert!(
            error.to_string().contains("missing field `label`"),
            "{error}"
        );
    }

    #[test]
    fn settings_that_are_not_an_object_are_refused() {
        let error = Config::new(json!(["shell"])).get::<Settings>().unwrap_err();
        assert_eq!(error, ConfigError::NotAnObject { found: "a list" });
        assert_eq!(
            error.to_string(),
            "the plugin's config must be a JSON object, not a list"
        );
    }

    #[test]
    fn defaults_come_from_the_manifest_text() {
        let manifest = json!({
            "schemaVersion": 1, "id": "com.acme.x", "name": "X", "version": "0.1.0",
            "config": { "schema": schema() }
        })
        .to_string();
        let config = Config::declared_in(&manifest, Value::Null).unwrap();
        assert!(!config.is_set());
        assert_eq!(config.get::<Settings>().unwrap().label, "— signed");
        let without =
            json!({ "schemaVersion": 1, "id": "com.acme.x", "name": "X", "version": "0.1.0" })
                .to_string();
        let config =
            Config::declared_in(&without, json!({ "label": "y", "blockedTools": [] })).unwrap();
        assert_eq!(config.get::<Settings>().unwrap().label, "y");
        assert!(matches!(
            Config::declared_in("{", Value::Null),
            Err(ConfigError::Manifest(_))
        ));
    }
}
