//! Manifest validation: is this `nitejar.plugin.json` one the server can install and load?
//!
//! The manifest's shape lives in the SDK ([`nitejar_sdk::manifest`]), with its JSON Schema. This
//! module decides whether a given manifest is acceptable, in two passes over the same JSON:
//!
//! 1. the **schema** pass applies the shipped JSON Schema (types, required and unknown fields), so the
//!    server and an author's editor agree on the shape;
//! 2. the **semantic** pass checks what a schema cannot say well: formats with a message that says what
//!    to write, the `engine.nitejar` range against the running version, paths that stay inside the
//!    package, hook names, permissions, and the agreement of `activation`, `contributes` and `entry`.
//!
//! Every problem is collected (not just the first) as a [`ManifestError`]: a JSON pointer into the
//! manifest and a stable sentence that says what to do. Where both passes find a problem at the same
//! place, the semantic message wins, being the more specific one.
//!
//! ```
//! use nitejar_packages::manifest::{validate_manifest_json, ValidateOptions};
//!
//! let text = r#"{
//!     "schemaVersion": 1,
//!     "id": "com.acme.jira",
//!     "name": "Acme Jira",
//!     "version": "1.0.0",
//!     "entry": "lib/libacme_jira.so",
//!     "engine": { "nitejar": ">=0.1.0 <1.0.0", "node": ">=24" },
//!     "activation": { "onHooks": ["tool.pre_exec"] },
//!     "contributes": { "hooks": ["tool.pre_exec"] },
//!     "permissions": { "network": ["https://api.atlassian.com"] }
//! }"#;
//! let errors = validate_manifest_json(text, &ValidateOptions::new()).unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "/permissions/network/0: `https://api.atlassian.com` has a scheme; write only the host and port, e.g. `api.atlassian.com`\n"
//! );
//!
//! let fixed = text.replace("https://", "");
//! let valid = validate_manifest_json(&fixed, &ValidateOptions::new()).unwrap();
//! assert_eq!(valid.engine.to_string(), ">=0.1.0, <1.0.0");
//! assert_eq!(valid.notes[0].to_string(), "/engine/node: `node` (`>=24`) is not applicable to a Nitejar server and is ignored");
//! ```

mod paths;
mod permissions;
mod range;
mod schema;
mod semantics;
pub(crate) mod spelling;
mod target;

use std::cmp::Ordering;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nitejar_sdk::manifest::{Manifest, MANIFEST_FILE};
use nitejar_sdk::{Contributions, HookName};
use serde::Serialize;
use serde_json::Value;

pub use range::{EngineRange, RangeError};
pub use target::current_target_triple;

/// How to validate a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidateOptions {
    /// The manifest belongs to a plugin compiled into this binary. Such a plugin may use the reserved
    /// `builtin.` id prefix, and its code needs no `entry` (so it is not declarative without one).
    pub builtin: bool,
    /// The Nitejar version `engine.nitejar` must include.
    pub running_version: semver::Version,
    /// The unpacked package. When set, the files the manifest names (the entry library for
    /// [`target`](Self::target), the icon, a declarative plugin's skills) must exist inside it.
    pub package_dir: Option<PathBuf>,
    /// The target triple a per-target `entry` must have a library for; `None` skips that check (for
    /// tools that look at manifests built for other machines).
    pub target: Option<String>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            builtin: false,
            running_version: running_version(),
            package_dir: None,
            target: Some(current_target_triple()),
        }
    }
}

impl ValidateOptions {
    /// Options for a third-party manifest on this machine: not a built-in, this Nitejar version
    /// ([`NITEJAR_VERSION`](crate::NITEJAR_VERSION)), this platform, no package directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the manifest of a plugin compiled into this binary (see [`builtin`](Self::builtin)).
    pub fn builtin(mut self, builtin: bool) -> Self {
        self.builtin = builtin;
        self
    }

    /// Checks `engine.nitejar` against `version` instead of this build's version.
    pub fn running_version(mut self, version: semver::Version) -> Self {
        self.running_version = version;
        self
    }

    /// Checks the files the manifest names inside `dir`.
    pub fn package_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.package_dir = Some(dir.into());
        self
    }

    /// Requires a per-target `entry` to have a library for `target` (`None`: no requirement).
    pub fn target(mut self, target: Option<String>) -> Self {
        self.target = target;
        self
    }
}

fn running_version() -> semver::Version {
    // Cargo refuses to build a package whose version is not semver, so this cannot fail at run time.
    #[allow(clippy::expect_used)]
    semver::Version::parse(crate::NITEJAR_VERSION).expect("Cargo package versions are semver")
}

/// A manifest that passed validation.
#[derive(Clone, Debug)]
pub struct ValidatedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// `engine.nitejar`, parsed.
    pub engine: EngineRange,
    /// Things worth telling the author that do not stop the plugin (ignored engine keys, a plugin
    /// that contributes nothing, an exact version pin).
    pub notes: Vec<ManifestNote>,
}

impl ValidatedManifest {
    /// The hook events the manifest says the plugin handles.
    pub fn contributed_hooks(&self) -> Vec<HookName> {
        self.manifest.contributes.hook_names()
    }
}

/// One problem in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
pub struct ManifestError {
    /// A JSON pointer to the offending value, e.g. `/permissions/network/2`; empty for the whole
    /// document. A missing required field is pointed at where it belongs (`/engine/nitejar`).
    pub path: String,
    /// What is wrong and what to do, in words that stay the same between releases.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        located(f, &self.path, &self.message)
    }
}

/// Something worth telling the author that does not stop validation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ManifestNote {
    /// A JSON pointer, as in [`ManifestError::path`].
    pub path: String,
    /// The note.
    pub message: String,
}

impl fmt::Display for ManifestNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        located(f, &self.path, &self.message)
    }
}

fn located(f: &mut fmt::Formatter<'_>, path: &str, message: &str) -> fmt::Result {
    if path.is_empty() {
        f.write_str(message)
    } else {
        write!(f, "{path}: {message}")
    }
}

/// Every problem found in a manifest, in document order. Displayed one per line as
/// `<path>: <message>` (a problem with the whole document shows just its message), ready for a
/// command line to print.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl ManifestErrors {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        ManifestErrors(vec![ManifestError {
            path: path.into(),
            message: message.into(),
        }])
    }

    /// The problems.
    pub fn errors(&self) -> &[ManifestError] {
        &self.0
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for an error returned by validation).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        Ok(())
    }
}

impl IntoIterator for ManifestErrors {
    type Item = ManifestError;
    type IntoIter = std::vec::IntoIter<ManifestError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ManifestErrors {
    type Item = &'a ManifestError;
    type IntoIter = std::slice::Iter<'a, ManifestError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Validates the text of a `nitejar.plugin.json`.
///
/// Text that is not JSON is one error with an empty path. A UTF-8 byte order mark, which some
/// editors write, is ignored.
pub fn validate_manifest_json(
    text: &str,
    opts: &ValidateOptions,
) -> Result<ValidatedManifest, ManifestErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| ManifestErrors::one("", format!("the manifest is not valid JSON: {e}")))?;
    validate_manifest_value(&doc, opts)
}

/// Validates a manifest already parsed as JSON.
pub fn validate_manifest_value(
    doc: &Value,
    opts: &ValidateOptions,
) -> Result<ValidatedManifest, ManifestErrors> {
    let schema_findings = schema::check(doc).map_err(|defect| {
        ManifestErrors::one(
            "",
            format!("this build of Nitejar cannot validate manifests: {defect}; please report it"),
        )
    })?;
    let mut findings = Findings::default();
    let engine = semantics::check(doc, opts, &mut findings);

    let mut errors = merge(schema_findings, findings.errors);
    let mut notes = findings.notes;
    errors.sort_by(|a, b| compare_paths(&a.path, &b.path));
    errors.dedup();
    notes.sort_by(|a, b| compare_paths(&a.path, &b.path));
    notes.dedup();
    if !errors.is_empty() {
        return Err(ManifestErrors(errors));
    }

    let manifest: Manifest = serde_json::from_value(doc.clone()).map_err(|e| {
        // Both passes accepted it, so this is a disagreement between schema and types (a defect).
        ManifestErrors::one("", format!("the manifest cannot be read: {e}"))
    })?;
    let engine =
        engine.ok_or_else(|| ManifestErrors::one("/engine/nitejar", "is required but missing"))?;
    Ok(ValidatedManifest {
        manifest,
        engine,
        notes,
    })
}

/// Validates the package unpacked in `dir`: reads `<dir>/nitejar.plugin.json` and checks the files
/// it names inside `dir` (this overrides [`ValidateOptions::package_dir`]).
///
/// A missing or unreadable manifest is one error with an empty path.
///
/// ```no_run
/// use nitejar_packages::manifest::{validate_package_dir, ValidateOptions};
///
/// match validate_package_dir("plugins/_staging/acme".as_ref(), &ValidateOptions::new()) {
///     Ok(valid) => println!("{} {} is valid", valid.manifest.id, valid.manifest.version),
///     Err(errors) => eprint!("nitejar.plugin.json has {} problem(s):\n{errors}", errors.len()),
/// }
/// ```
pub fn validate_package_dir(
    dir: &Path,
    opts: &ValidateOptions,
) -> Result<ValidatedManifest, ManifestErrors> {
    let file = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        let message = match e.kind() {
            io::ErrorKind::NotFound if !dir.is_dir() => {
                format!(
                    "{} is not a directory; point at the unpacked plugin package",
                    dir.display()
                )
            }
            io::ErrorKind::NotFound => format!(
                "there is no {MANIFEST_FILE} in {}; a plugin package has its manifest at its root",
                dir.display()
            ),
            io::ErrorKind::InvalidData => {
                format!("{} is not UTF-8 text", file.display())
            }
            _ => format!("{} cannot be read: {e}", file.display()),
        };
        ManifestErrors::one("", message)
    })?;
    let opts = ValidateOptions {
        package_dir: Some(dir.to_path_buf()),
        ..opts.clone()
    };
    validate_manifest_json(&text, &opts)
}

/// Checks that a manifest's `contributes` matches what its library registered when instantiated.
///
/// Integrations and hooks must match both ways. A skill the library registers must be declared; a
/// declared skill the library does not register is fine, since it is read from
/// `skills/<skill-id>/SKILL.md` in the package instead.
pub fn check_contributions(
    manifest: &Manifest,
    actual: &Contributions,
) -> Result<(), ManifestErrors> {
    let mut out = Findings::default();
    let declared = &manifest.contributes;
    for (i, kind) in declared.integrations.iter().enumerate() {
        if !actual.integrations.contains(kind) {
            out.error(
                join("/contributes/integrations", i),
                format!("the plugin library provides no integration of type {}; implement it or remove it from the manifest", shown(kind)),
            );
        }
    }
    for kind in &actual.integrations {
        if !declared.integrations.contains(kind) {
            out.error(
                "/contributes/integrations",
                format!("the plugin library provides the integration type {}, which the manifest does not declare; add it here", shown(kind)),
            );
        }
    }
    for (i, hook) in declared.hooks.iter().enumerate() {
        let registered = hook
            .parse::<HookName>()
            .is_ok_and(|h| actual.hooks.contains(&h));
        if !registered {
            out.error(
                join("/contributes/hooks", i),
                format!("the plugin library registers no handler for {}; add one or remove it from the manifest", shown(hook)),
            );
        }
    }
    for hook in &actual.hooks {
        if !declared.hooks.iter().any(|h| h == hook.as_str()) {
            out.error(
                "/contributes/hooks",
                format!("the plugin library registers a handler for `{hook}`, which the manifest does not declare; add it here"),
            );
        }
    }
    for skill in &actual.skills {
        if !declared.skills.contains(skill) {
            out.error(
                "/contributes/skills",
                format!("the plugin library provides the skill {}, which the manifest does not declare; add it here", shown(skill)),
            );
        }
    }
    if out.errors.is_empty() {
        Ok(())
    } else {
        Err(ManifestErrors(out.errors))
    }
}

/// A check of one string value: `Err` holds the message.
type Rule = fn(&str) -> Result<(), String>;

/// What the semantic checks found.
#[derive(Default)]
struct Findings {
    errors: Vec<ManifestError>,
    notes: Vec<ManifestNote>,
}

impl Findings {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ManifestError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn note(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.notes.push(ManifestNote {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Applies `rule` to each string of a list and reports repeats. Items that are not strings are
    /// left to the schema pass.
    fn check_list(
        &mut self,
        base: &str,
        items: &[Value],
        rule: impl Fn(&str) -> Result<(), String>,
    ) {
        for (i, item) in items.iter().enumerate() {
            let Some(text) = item.as_str() else { continue };
            if let Err(message) = rule(text) {
                self.error(join(base, i), message);
            }
            if let Some(first) = items[..i].iter().position(|earlier| earlier == item) {
                self.error(
                    join(base, i),
                    format!(
                        "{} is listed more than once (first at {}); remove the repeat",
                        shown(text),
                        join(base, first)
                    ),
                );
            }
        }
    }
}

/// Keeps the semantic findings and those schema findings that say something the semantic pass did
/// not: where both found a problem at one place, the semantic message is the more specific.
fn merge(schema: Vec<schema::SchemaFinding>, semantic: Vec<ManifestError>) -> Vec<ManifestError> {
    let type_errors: Vec<String> = schema
        .iter()
        .filter(|f| f.keyword == schema::Keyword::Type)
        .map(|f| f.error.path.clone())
        .collect();
    let mut kept: Vec<ManifestError> = schema
        .into_iter()
        .filter(|f| {
            let path = &f.error.path;
            let below = format!("{path}/");
            let said_here = semantic.iter().any(|s| &s.path == path);
            let said_below = f.keyword == schema::Keyword::AboutChildren
                && semantic.iter().any(|s| s.path.starts_with(&below));
            // A value of the wrong type gets one message, not one per keyword that also failed.
            let wrong_type = f.keyword != schema::Keyword::Type && type_errors.contains(path);
            !(said_here || said_below || wrong_type)
        })
        .map(|f| f.error)
        .collect();
    kept.extend(semantic);
    kept
}

/// The manifest's fields in the order authors write them, so problems are listed in document order
/// rather than alphabetically. Keys of different objects never meet in a comparison, so one list
/// serves every level.
const FIELD_ORDER: [&str; 32] = [
    "$schema",
    "schemaVersion",
    "id",
    "name",
    "version",
    "description",
    "entry",
    "engine",
    "nitejar",
    "author",
    "license",
    "homepage",
    "repository",
    "keywords",
    "icon",
    "activation",
    "onStartup",
    "onIntegrationTypes",
    "onHooks",
    "permissions",
    "network",
    "secrets",
    "filesystemRead",
    "filesystemWrite",
    "allowProcessSpawn",
    "contributes",
    "integrations",
    "hooks",
    "skills",
    "config",
    "schema",
    "uiSchema",
];

fn compare_paths(a: &str, b: &str) -> Ordering {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Segment<'a> {
        Known(usize),
        Index(u64),
        Other(&'a str),
    }
    fn segments(path: &str) -> Vec<Segment<'_>> {
        path.split('/')
            .skip(1)
            .map(|segment| {
                if let Some(rank) = FIELD_ORDER.iter().position(|f| *f == segment) {
                    Segment::Known(rank)
                } else if let Ok(index) = segment.parse::<u64>() {
                    Segment::Index(index)
                } else {
                    Segment::Other(segment)
                }
            })
            .collect()
    }
    segments(a).cmp(&segments(b))
}

/// `base` + `/` + `segment`, escaped as a JSON pointer (RFC 6901) requires.
fn join(base: &str, segment: impl fmt::Display) -> String {
    let segment = segment.to_string().replace('~', "~0").replace('/', "~1");
    format!("{base}/{segment}")
}

/// A value from the manifest quoted for a message: in backticks, control characters replaced and
/// long values cut, so one bad value cannot flood the output.
fn shown(value: &str) -> String {
    const LIMIT: usize = 80;
    let mut out = String::from("`");
    for (i, c) in value.chars().enumerate() {
        if i == LIMIT {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '\u{fffd}' } else { c });
    }
    out.push('`');
    out
}
