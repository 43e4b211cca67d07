//! The settings section of a plugin's page: a form generated from the config schema its manifest
//! declares (the same generator and template as integration forms), and one password field per
//! secret it declares, with where that secret's value comes from now. Saving goes through
//! [`PluginManager::configure`](nitejar_core::lifecycle::PluginManager::configure); a refused form
//! is shown again with each problem under its field and nothing stored.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use nitejar_core::crypto::REDACTED;
use nitejar_core::lifecycle::{
    LifecycleError, PluginSettings, SecretOrigin, SecretStatus, SettingsChange,
};
use nitejar_core::plugin_config::ConfigProblems;
use serde_json::{Map, Value};

use super::form::{config_from_form, fields, Field};
use super::{format_ms, redirect};
use crate::auth::AdminForm;
use crate::plugins;
use crate::state::AppState;

/// The input name prefix of secret fields: `secret.<NAME>`.
const SECRET_PREFIX: &str = "secret.";

/// One declared secret in the form.
pub struct SecretField {
    pub name: String,
    pub env_var: String,
    /// `secret.<NAME>`.
    pub input: String,
    /// `stored`, `environment`, `unset`.
    pub source: &'static str,
    /// What the source means, for the operator.
    pub source_text: String,
    /// A value is stored: the input shows the mask and a "remove" box is offered.
    pub stored: bool,
    /// A value was typed into a form that was refused: it must be typed again.
    pub retype: bool,
    pub error: Option<String>,
}

/// The settings section of a plugin's page.
pub struct SettingsSection {
    /// The plugin declares a config schema.
    pub has_schema: bool,
    pub fields: Vec<Field>,
    pub secrets: Vec<SecretField>,
    /// Problems that belong to no field (the form was refused), or of the stored config against
    /// the current schema.
    pub problems: Vec<String>,
    /// The form was refused.
    pub refused: bool,
    /// Whether the plugin runs with what is stored, in words.
    pub status: String,
}

impl SettingsSection {
    /// Whether there is anything to set.
    pub fn is_empty(&self) -> bool {
        !self.has_schema && self.secrets.is_empty()
    }
}

fn secret_field(s: &SecretStatus) -> SecretField {
    let source_text = match s.source {
        SecretOrigin::Stored => format!(
            "stored (encrypted){}; it wins over {}",
            s.updated_at
                .map(|t| format!(", set {}", format_ms(t)))
                .unwrap_or_default(),
            s.env_var
        ),
        SecretOrigin::Environment => format!("from the environment variable {}", s.env_var),
        SecretOrigin::Unset => format!(
            "not set: neither stored here nor in the environment variable {}",
            s.env_var
        ),
    };
    SecretField {
        input: format!("{SECRET_PREFIX}{}", s.name),
        name: s.name.clone(),
        env_var: s.env_var.clone(),
        source: s.source.as_str(),
        source_text,
        stored: s.source == SecretOrigin::Stored,
        retype: false,
        error: s
            .unreadable
            .then(|| "The stored value cannot be decrypted with this server's ENCRYPTION_KEY; type it again.".to_owned()),
    }
}

/// The section for a plugin's settings as stored.
pub fn section(settings: &PluginSettings) -> SettingsSection {
    let stored = settings.config.as_object();
    let fields = match &settings.schema {
        // Nothing stored: the form starts with the declared defaults.
        Some(schema) => fields(schema, settings.ui_schema.as_ref(), &[], stored),
        None => Vec::new(),
    };
    SettingsSection {
        has_schema: settings.schema.is_some(),
        fields,
        secrets: settings.secrets.iter().map(secret_field).collect(),
        problems: settings
            .problems
            .iter()
            .map(|p| format!("The stored config does not fit this version's settings: {p}"))
            .collect(),
        refused: false,
        status: if settings.in_effect {
            format!(
                "The plugin runs with these settings now (revision {}).",
                settings.revision
            )
        } else {
            format!(
                "Revision {}. The plugin does not run here with them yet: it gets them when it is enabled (a server beside the command line that changed them switches as soon as it sees the change).",
                settings.revision
            )
        },
    }
}

/// What the submitted form asks for, or the field errors of its config part.
struct Submitted {
    config: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    clear: Vec<String>,
}

fn split(form: Vec<(String, String)>) -> Submitted {
    let mut submitted = Submitted {
        config: BTreeMap::new(),
        secrets: BTreeMap::new(),
        clear: Vec::new(),
    };
    for (k, v) in form {
        if k.starts_with("config.") {
            submitted.config.insert(k, v);
        } else if let Some(name) = k.strip_prefix(SECRET_PREFIX) {
            submitted.secrets.insert(name.to_owned(), v);
        } else if k == "clear_secret" {
            submitted.clear.push(v);
        }
    }
    submitted
}

/// The config a form describes. A list field that was submitted empty is an empty list: the
/// operator emptied it (the plugin would otherwise apply its own default for a missing setting).
fn config_of(
    settings: &PluginSettings,
    submitted: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, BTreeMap<String, String>> {
    let Some(schema) = &settings.schema else {
        return Ok(Map::new());
    };
    let mut config = config_from_form(schema, settings.ui_schema.as_ref(), submitted, None)?;
    for f in fields(schema, settings.ui_schema.as_ref(), &[], None) {
        if f.widget == "lines" && submitted.contains_key(&f.input) && !config.contains_key(&f.key) {
            config.insert(f.key, Value::Array(Vec::new()));
        }
    }
    Ok(config)
}

/// The section shown again after a refused save: what was typed, with the problems.
fn refused_section(
    settings: &PluginSettings,
    submitted: &Submitted,
    field_errors: &BTreeMap<String, String>,
    problems: Vec<String>,
) -> SettingsSection {
    let mut section = section(settings);
    for f in &mut section.fields {
        if let Some(v) = submitted.config.get(&f.input) {
            if f.widget != "checkbox" {
                f.value = v.clone();
            }
        }
        if f.widget == "checkbox" {
            f.checked = submitted.config.contains_key(&f.input);
        }
        f.error = field_errors.get(&f.key).cloned();
    }
    for s in &mut section.secrets {
        // A secret typed into a refused form is not sent back to the browser.
        s.retype = submitted
            .secrets
            .get(&s.name)
            .is_some_and(|v| !v.is_empty() && v != REDACTED);
    }
    section.problems = problems;
    section.refused = true;
    section
}

/// Problems of a refused config: by field where a field shows it, the rest for the top of the
/// section.
fn sort_problems(
    settings: &PluginSettings,
    problems: &ConfigProblems,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut by_field = BTreeMap::new();
    let mut general = vec![NOT_SAVED.to_owned()];
    for p in &problems.0 {
        match &p.field {
            Some(field) if settings.schema.is_some() && !by_field.contains_key(field) => {
                // `/blockedTools/1`: the second line of a one-per-line field.
                let message = match p
                    .path
                    .split('/')
                    .nth(2)
                    .and_then(|i| i.parse::<usize>().ok())
                {
                    Some(i) => format!("line {}: {}", i + 1, p.message),
                    None => p.message.clone(),
                };
                by_field.insert(field.clone(), message);
            }
            _ => general.push(p.to_string()),
        }
    }
    (by_field, general)
}

const NOT_SAVED: &str = "Nothing was saved. Check the fields marked below.";

pub async fn save(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = post;
    let settings = match state.plugins.settings(&id).await {
        Ok(s) => s,
        Err(e) => return plugins_error(&e),
    };
    let submitted = split(form);
    let refused = |field_errors: BTreeMap<String, String>, problems: Vec<String>| {
        refused_section(&settings, &submitted, &field_errors, problems)
    };
    let (section, status) = 'refused: {
        let config = match config_of(&settings, &submitted.config) {
            Ok(config) => config,
            Err(field_errors) => {
                break 'refused (
                    refused(field_errors, vec![NOT_SAVED.into()]),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
            }
        };
        let mut change = SettingsChange {
            config: settings.schema.is_some().then_some(Value::Object(config)),
            secrets: BTreeMap::new(),
        };
        for (name, value) in &submitted.secrets {
            // An empty field, or the mask, leaves the secret as it is.
            if !value.is_empty() && value != REDACTED {
                change.secrets.insert(name.clone(), Some(value.clone()));
            }
        }
        for name in &submitted.clear {
            change.secrets.entry(name.clone()).or_insert(None);
        }
        let enabled = state
            .store
            .get_plugin(&id)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.enabled);
        match state.plugins.configure(&id, change).await {
            Ok(outcome) if !outcome.changed() => {
                return redirect(format!(
                    "/admin/plugins/{id}?notice=settings_unchanged#settings"
                ))
            }
            Ok(_) if enabled => {
                return redirect(format!("/admin/plugins/{id}?notice=configured#settings"))
            }
            Ok(_) => {
                return redirect(format!(
                    "/admin/plugins/{id}?notice=configured_disabled#settings"
                ))
            }
            Err(LifecycleError::InvalidConfig { problems, .. }) => {
                let (by_field, general) = sort_problems(&settings, &problems);
                (refused(by_field, general), StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(e) => {
                let (status, _) = plugins::error_status(&e);
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!("plugin {id}: settings not saved: {e}");
                }
                (
                    refused(
                        BTreeMap::new(),
                        vec![format!("Nothing was saved: {}", plugins::ui_message(&e))],
                    ),
                    status,
                )
            }
        }
    };
    super::plugins::detail_page(&state, &admin, &id, None, Some(section), status).await
}

fn plugins_error(e: &LifecycleError) -> HttpResponse {
    let (status, _) = plugins::error_status(e);
    super::error_page(status, &plugins::ui_message(e))
}
