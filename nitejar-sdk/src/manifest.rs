//! The plugin manifest, `nitejar.plugin.json` (schema version 1).
//!
//! Every plugin package has a manifest at its root. It says who the plugin is, which shared library to
//! load (if any), which Nitejar versions it works with, what it contributes and which permissions it
//! asks the operator for. [`SCHEMA`] is its JSON Schema, for editors and tools; point an editor at it
//! with `"$schema": "https://nitejar.dev/schema/nitejar.plugin.v1.json"`.
//!
//! These types only describe the shape. They accept hook names, hosts and paths as plain strings so
//! that reading a manifest never fails on a bad value: the checks (schema, id and version format,
//! engine range, hook names, permissions, paths) live in `nitejar_core::manifest`, which reports every
//! problem with its JSON path.
//!
//! ```
//! use nitejar_sdk::manifest::Manifest;
//!
//! let manifest: Manifest = serde_json::from_str(r#"{
//!     "schemaVersion": 1,
//!     "id": "com.acme.jira",
//!     "name": "Acme Jira",
//!     "version": "1.0.0",
//!     "entry": { "x86_64-unknown-linux-gnu": "lib/x86_64/libacme_jira.so" },
//!     "engine": { "nitejar": ">=0.1.0 <1.0.0" },
//!     "contributes": { "integrations": ["jira"], "hooks": ["tool.pre_exec"] }
//! }"#).unwrap();
//!
//! assert!(!manifest.is_declarative());
//! let entry = manifest.entry.as_ref().unwrap();
//! assert_eq!(entry.for_target("x86_64-unknown-linux-gnu"), Some("lib/x86_64/libacme_jira.so"));
//! assert_eq!(entry.for_target("aarch64-apple-darwin"), None);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hooks::HookName;

/// The JSON Schema (draft 2020-12) of `nitejar.plugin.json`, schema version 1.
pub const SCHEMA: &str = include_str!("../schema/nitejar.plugin.schema.json");

/// The `$id` of [`SCHEMA`]: what a manifest's `$schema` key points to.
pub const SCHEMA_ID: &str = "https://nitejar.dev/schema/nitejar.plugin.v1.json";

/// The manifest's file name, at the root of a plugin package.
pub const MANIFEST_FILE: &str = "nitejar.plugin.json";

/// The manifest format version these types describe.
pub const SCHEMA_VERSION: u32 = 1;

/// The id prefix reserved for the plugins that ship with Nitejar.
pub const BUILTIN_ID_PREFIX: &str = "builtin.";

/// A plugin manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Manifest {
    /// The URL of the schema, for editors. Nitejar ignores it.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The manifest format version; `1`.
    pub schema_version: u32,
    /// Reverse-DNS plugin id, e.g. `com.acme.jira`.
    pub id: String,
    /// The name shown to operators.
    pub name: String,
    /// The plugin version (strict semver).
    pub version: String,
    /// One sentence on what the plugin does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The shared library to load. `None` makes a declarative (skills-only) plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
    /// The Nitejar versions the plugin works with.
    pub engine: Engine,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// An SPDX license expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Its home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Its source repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Words to find it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// An image file relative to the package root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// When it is activated.
    #[serde(default)]
    pub activation: Activation,
    /// What it asks the operator for.
    #[serde(default)]
    pub permissions: Permissions,
    /// What it contributes (checked against what its code registers).
    #[serde(default)]
    pub contributes: Contributes,
    /// The settings an operator can give the plugin (its config), as a form the admin renders.
    /// `None`: the plugin takes no config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigDeclaration>,
}

impl Manifest {
    /// Whether this is a declarative plugin: no `entry`, so it runs no code and may only contribute
    /// skills. Policy may allow such a plugin where code plugins are locked.
    ///
    /// A built-in (see [`is_builtin`](Self::is_builtin)) is never declarative: its code is compiled
    /// into the binary, which is why it has no `entry`.
    pub fn is_declarative(&self) -> bool {
        self.entry.is_none() && !self.is_builtin()
    }

    /// Whether the id carries the prefix reserved for built-in plugins (validation refuses it in
    /// third-party manifests).
    pub fn is_builtin(&self) -> bool {
        self.id.starts_with(BUILTIN_ID_PREFIX)
    }
}

/// The shared library of a plugin: one path for every platform, or one per target triple.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Entry {
    /// One path, relative to the package root.
    Path(String),
    /// Target triple (e.g. `x86_64-unknown-linux-gnu`) → path relative to the package root.
    PerTarget(BTreeMap<String, String>),
}

impl Entry {
    /// The path to load on `target` (a Rust target triple), if the manifest has one for it. A single
    /// path is taken to fit every target.
    pub fn for_target(&self, target: &str) -> Option<&str> {
        match self {
            Entry::Path(path) => Some(path),
            Entry::PerTarget(paths) => paths.get(target).map(String::as_str),
        }
    }

    /// Every path the entry names, with its target triple (`None` for a single path).
    pub fn paths(&self) -> Vec<(Option<&str>, &str)> {
        match self {
            Entry::Path(path) => vec![(None, path.as_str())],
            Entry::PerTarget(paths) => paths
                .iter()
                .map(|(target, path)| (Some(target.as_str()), path.as_str()))
                .collect(),
        }
    }
}

/// The versions of Nitejar (and, informationally, of other engines) the plugin works with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Engine {
    /// An npm-style version range, e.g. `>=0.1.0 <1.0.0`.
    pub nitejar: String,
    /// Other engines (`node`, ...): kept so nothing the author wrote is lost, but not applicable to
    /// this server.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// When the plugin is activated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Activation {
    /// Activate when the server starts rather than when first needed.
    #[serde(default)]
    pub on_startup: bool,
    /// Activate when an integration of one of these types receives work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_integration_types: Vec<String>,
    /// Activate when one of these hook events fires. Kept as written; see [`Activation::hook_names`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_hooks: Vec<String>,
}

impl Activation {
    /// The hook events of `on_hooks` that are known [`HookName`]s, in the order written. A validated
    /// manifest has no unknown ones.
    pub fn hook_names(&self) -> Vec<HookName> {
        hook_names(&self.on_hooks)
    }
}

/// What the plugin asks the operator for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Permissions {
    /// Hosts reachable through the host HTTP service (`api.example.com`, `*.example.com`,
    /// `localhost:8080`, `[::1]:9000`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<String>,
    /// Secret names readable through the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Readable paths: absolute, or relative to the package root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystem_read: Vec<String>,
    /// Writable paths: absolute, or relative to the package root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystem_write: Vec<String>,
    /// Whether the plugin may start processes through the host.
    #[serde(default)]
    pub allow_process_spawn: bool,
}

impl Permissions {
    /// Whether the plugin asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
            && self.secrets.is_empty()
            && self.filesystem_read.is_empty()
            && self.filesystem_write.is_empty()
            && !self.allow_process_spawn
    }
}

/// What the plugin adds, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Contributes {
    /// Integration (channel) types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrations: Vec<String>,
    /// Hook events the plugin handles. Kept as written; see [`Contributes::hook_names`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
    /// Skill ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
}

impl Contributes {
    /// The hook events of `hooks` that are known [`HookName`]s, in the order written. A validated
    /// manifest has no unknown ones.
    pub fn hook_names(&self) -> Vec<HookName> {
        hook_names(&self.hooks)
    }
}

/// The plugin's settings: the config an operator sets in the admin UI, the API
/// (`/api/admin/plugins/{id}/config`) or the CLI (`nitejar plugin config`), handed to the plugin's
/// build function when it is instantiated.
///
/// `schema` is a JSON Schema of a **subset** the admin can render as a form and check field by
/// field: an object whose `properties` are each a string, an integer, a number, a boolean, or an
/// array of strings, integers or numbers, with `title`, `description`, `default`, `enum`,
/// `minimum`/`maximum`, `minLength`/`maxLength`/`pattern` and, for arrays, `items`,
/// `minItems`/`maxItems`/`uniqueItems`; `required` lists the properties that must be set. No other
/// keyword is accepted, and no property outside `properties` can be set. Secrets do not belong
/// here: declare them in `permissions.secrets`, where the operator sets them encrypted and the
/// plugin reads them through the host.
///
/// `uiSchema` is optional and follows the convention of integration forms: `ui:order` (property
/// names, `*` for the rest) and per property `ui:widget` (`textarea`, `radio`), `ui:help`,
/// `ui:placeholder`.
///
/// The plugin gets exactly what the operator stored (`null` when nothing is), so it applies its own
/// defaults for properties that are not set; `default` is what the admin's form starts with.
///
/// ```
/// use nitejar_sdk::manifest::Manifest;
///
/// let manifest: Manifest = serde_json::from_str(r#"{
///     "schemaVersion": 1, "id": "com.acme.guard", "name": "Guard", "version": "1.0.0",
///     "entry": "lib/libguard.so", "engine": { "nitejar": ">=0.1.0" },
///     "config": {
///         "schema": {
///             "type": "object",
///             "properties": {
///                 "blockedTools": { "type": "array", "items": { "type": "string" }, "default": ["shell"] }
///             }
///         },
///         "uiSchema": { "blockedTools": { "ui:help": "One tool name per line." } }
///     }
/// }"#).unwrap();
/// assert!(manifest.config.unwrap().schema["properties"]["blockedTools"].is_object());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConfigDeclaration {
    /// The JSON Schema (subset) of the config object.
    pub schema: serde_json::Value,
    /// Form hints (`ui:order`, `ui:widget`, `ui:help`, `ui:placeholder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_schema: Option<serde_json::Value>,
}

impl ConfigDeclaration {
    /// A declaration of settings with this JSON Schema and no form hints. Manifests are read
    /// from JSON; a host that builds a declaration itself does it this way (the type is
    /// `#[non_exhaustive]`).
    ///
    /// ```
    /// use nitejar_sdk::manifest::ConfigDeclaration;
    /// use nitejar_sdk::serde_json::json;
    ///
    /// let declared = ConfigDeclaration::new(json!({ "type": "object" }))
    ///     .ui_schema(json!({ "ui:order": ["signature"] }));
    /// assert!(declared.ui_schema.is_some());
    /// ```
    pub fn new(schema: serde_json::Value) -> Self {
        ConfigDeclaration {
            schema,
            ui_schema: None,
        }
    }

    /// Sets the form hints.
    pub fn ui_schema(mut self, ui_schema: serde_json::Value) -> Self {
        self.ui_schema = Some(ui_schema);
        self
    }
}

/// The known hook names among `names`, in order.
///
/// Hook names stay strings in the manifest types so that an unknown one is reported by validation,
/// with its JSON path, instead of failing deserialisation of the whole file.
pub fn hook_names(names: &[String]) -> Vec<HookName> {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn seed() -> Value {
        json!({
            "schemaVersion": 1,
            "id": "com.acme.jira",
            "name": "Acme Jira",
            "version": "1.0.0",
            "description": "Jira integration and triage hooks",
            "entry": "lib/libacme_jira.so",
            "engine": { "nitejar": ">=0.1.0 <1.0.0", "node": ">=24" },
            "author": "Acme",
            "license": "MIT",
            "homepage": "https://acme.example",
            "repository": "https://github.com/acme/jira",
            "activation": { "onStartup": true, "onIntegrationTypes": ["jira"], "onHooks": ["tool.pre_exec"] },
            "permissions": {
                "network": ["api.atlassian.com", "*.atlassian.net", "localhost:8080"],
                "secrets": ["jira.api_token"],
                "filesystemRead": [],
                "filesystemWrite": [],
                "allowProcessSpawn": false
            },
            "contributes": {
                "integrations": ["jira"],
                "hooks": ["tool.pre_exec", "response.pre_deliver"],
                "skills": ["jira-triage"]
            }
        })
    }

    #[test]
    fn reads_the_seed_manifest() {
        let m: Manifest = serde_json::from_value(seed()).unwrap();
        assert_eq!(m.id, "com.acme.jira");
        assert_eq!(m.entry, Some(Entry::Path("lib/libacme_jira.so".into())));
        assert_eq!(m.engine.nitejar, ">=0.1.0 <1.0.0");
        assert_eq!(m.engine.other.get("node").map(String::as_str), Some(">=24"));
        assert!(m.activation.on_startup);
        assert_eq!(m.activation.hook_names(), vec![HookName::ToolPreExec]);
        assert_eq!(
            m.contributes.hook_names(),
            vec![HookName::ToolPreExec, HookName::ResponsePreDeliver]
        );
        assert_eq!(m.permissions.network.len(), 3);
        assert!(!m.permissions.is_empty());
        assert!(!m.is_declarative());
        assert!(!m.is_builtin());
    }

    #[test]
    fn round_trips_with_camel_case_names_and_engine_extras() {
        let m: Manifest = serde_json::from_value(seed()).unwrap();
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["schemaVersion"], 1);
        assert_eq!(back["engine"]["node"], ">=24");
        assert_eq!(back["activation"]["onIntegrationTypes"][0], "jira");
        assert_eq!(back["permissions"]["allowProcessSpawn"], false);
        let again: Manifest = serde_json::from_value(back).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn entry_per_target_picks_the_platform() {
        let entry: Entry = serde_json::from_value(json!({
            "x86_64-unknown-linux-gnu": "lib/x86_64/libacme.so",
            "aarch64-apple-darwin": "lib/aarch64/libacme.dylib"
        }))
        .unwrap();
        assert_eq!(
            entry.for_target("aarch64-apple-darwin"),
            Some("lib/aarch64/libacme.dylib")
        );
        assert_eq!(entry.for_target("x86_64-pc-windows-msvc"), None);
        assert_eq!(entry.paths().len(), 2);
        assert_eq!(
            Entry::Path("a.so".into()).for_target("anything"),
            Some("a.so")
        );
    }

    #[test]
    fn a_manifest_without_entry_is_declarative() {
        let m: Manifest = serde_json::from_value(json!({
            "schemaVersion": 1, "id": "com.acme.skills", "name": "Skills", "version": "0.1.0",
            "engine": { "nitejar": "*" }, "contributes": { "skills": ["triage"] }
        }))
        .unwrap();
        assert!(m.is_declarative());
        assert!(m.permissions.is_empty());
    }

    #[test]
    fn a_builtin_without_entry_is_code_not_declarative() {
        let m: Manifest = serde_json::from_value(json!({
            "schemaVersion": 1, "id": "builtin.echo", "name": "Echo", "version": "0.1.0",
            "engine": { "nitejar": ">=0.1.0" }, "contributes": { "integrations": ["echo"] }
        }))
        .unwrap();
        assert!(m.is_builtin());
        assert!(!m.is_declarative());
    }

    #[test]
    fn unknown_hook_names_do_not_fail_deserialisation() {
        let m: Manifest = serde_json::from_value(json!({
            "schemaVersion": 1, "id": "com.acme.x", "name": "X", "version": "0.1.0",
            "engine": { "nitejar": "*" }, "contributes": { "hooks": ["tool.pre_exec", "tool.whatever"] }
        }))
        .unwrap();
        assert_eq!(m.contributes.hooks.len(), 2);
        assert_eq!(m.contributes.hook_names(), vec![HookName::ToolPreExec]);
    }

    #[test]
    fn schema_is_json_with_the_published_id_and_the_nine_hooks() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["$id"], SCHEMA_ID);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        let hooks: Vec<&str> = schema["$defs"]["hookName"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let expected: Vec<&str> = HookName::ALL.iter().map(|h| h.as_str()).collect();
        assert_eq!(hooks, expected);
    }

    #[test]
    fn schema_lists_every_field_of_the_types() {
        // A field added to `Manifest` but not to the schema would be refused as unknown by validation.
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let full = serde_json::to_value(
            serde_json::from_value::<Manifest>({
                let mut v = seed();
                v["$schema"] = json!(SCHEMA_ID);
                v["keywords"] = json!(["jira"]);
                v["icon"] = json!("icon.png");
                v["permissions"]["filesystemRead"] = json!(["data"]);
                v["permissions"]["filesystemWrite"] = json!(["data"]);
                v["permissions"]["allowProcessSpawn"] = json!(true);
                v["config"] = json!({ "schema": { "type": "object" }, "uiSchema": {} });
                v
            })
            .unwrap(),
        )
        .unwrap();
        for (section, value) in [
            ("", &full),
            ("activation", &full["activation"]),
            ("permissions", &full["permissions"]),
            ("contributes", &full["contributes"]),
            ("config", &full["config"]),
        ] {
            let props = if section.is_empty() {
                &schema["properties"]
            } else {
                &schema["properties"][section]["properties"]
            };
            for key in value.as_object().unwrap().keys() {
                assert!(
                    props.get(key).is_some(),
                    "`{section}.{key}` missing from the schema"
                );
            }
        }
    }
}
