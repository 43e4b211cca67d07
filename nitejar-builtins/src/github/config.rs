//! The GitHub integration's config: its JSON shape, schema and validation.
//!
//! Field names and defaults are those of the earlier TypeScript Nitejar, so that existing
//! integration rows keep working: `appId` was stored as a string (a number is accepted too),
//! `trackIssueOpen` and `trackCheckRun` default to on, and the `mentions` comment policy falls back
//! to `@nitejar` when a row has no `mentionHandle`. Fields the TypeScript version kept for its
//! App-manifest flow (`appSlug`, `permissions`, `tokenTTL`, `manifestPending`) are accepted.

use nitejar_sdk::integration::{ConfigValidation, IntegrationCategory, ResponseMode};
use nitejar_sdk::{IntegrationDescriptor, IntegrationError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::AppKey;

/// The mention the `mentions` policy looks for when a row has no `mentionHandle`.
pub const DEFAULT_MENTION_HANDLE: &str = "nitejar";

/// Which issue comments become work items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentPolicy {
    /// Every new comment.
    All,
    /// Only comments that mention `@<mentionHandle>`.
    Mentions,
}

/// The config of one GitHub integration row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitHubConfig {
    #[serde(default)]
    pub app_id: Option<AppId>,
    /// The App's private key, PEM (PKCS#1 or PKCS#8).
    #[serde(default)]
    pub private_key: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// `owner/repo` names; empty means every repository the App is installed on.
    #[serde(default)]
    pub allowed_repos: Option<Vec<String>>,
    #[serde(default)]
    pub comment_policy: Option<String>,
    #[serde(default)]
    pub mention_handle: Option<String>,
    #[serde(default)]
    pub track_issue_open: Option<bool>,
    #[serde(default)]
    pub track_check_run: Option<bool>,
    /// Longest time (seconds) an installation token is reused, on top of its own expiry.
    #[serde(default, rename = "tokenTTL")]
    pub token_ttl: Option<u64>,
}

/// A GitHub App id: the TypeScript Nitejar stored it as a string; a number is accepted too.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AppId {
    Number(u64),
    Text(String),
}

impl AppId {
    /// The id as text, trimmed.
    pub fn as_text(&self) -> String {
        match self {
            AppId::Number(n) => n.to_string(),
            AppId::Text(s) => s.trim().to_string(),
        }
    }
}

impl GitHubConfig {
    /// Reads a config.
    pub fn from_value(config: &Value) -> Result<Self, IntegrationError> {
        serde_json::from_value(config.clone())
            .map_err(|e| IntegrationError::Config(format!("the GitHub config cannot be read: {e}")))
    }

    /// The App id and its private key, which every call to the API needs.
    pub fn app_credentials(&self) -> Result<(String, AppKey), IntegrationError> {
        let app_id = self
            .app_id
            .as_ref()
            .map(AppId::as_text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                IntegrationError::Config(
                    "appId is missing: copy the App ID from the GitHub App's settings page".into(),
                )
            })?;
        let pem = self
            .private_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                IntegrationError::Config(
                    "privateKey is missing: generate a private key on the GitHub App's settings \
                     page and paste the .pem file"
                        .into(),
                )
            })?;
        let key = AppKey::from_pem(pem)
            .map_err(|e| IntegrationError::Config(format!("privateKey: {e}")))?;
        Ok((app_id, key))
    }

    /// The configured webhook secret, if any.
    pub fn secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref().filter(|s| !s.is_empty())
    }

    /// Whether deliveries from this repository (`owner/repo`) are processed.
    pub fn allows_repo(&self, full_name: &str) -> bool {
        match &self.allowed_repos {
            Some(repos) if !repos.is_empty() => repos
                .iter()
                .any(|r| r.trim().eq_ignore_ascii_case(full_name)),
            _ => true,
        }
    }

    pub fn comment_policy(&self) -> CommentPolicy {
        match self.comment_policy.as_deref() {
            Some("mentions") => CommentPolicy::Mentions,
            _ => CommentPolicy::All,
        }
    }

    /// The handle the `mentions` policy looks for, without its `@`.
    pub fn mention_handle(&self) -> String {
        let handle = self
            .mention_handle
            .as_deref()
            .unwrap_or("")
            .trim()
            .trim_start_matches('@');
        if handle.is_empty() {
            DEFAULT_MENTION_HANDLE.to_string()
        } else {
            handle.to_string()
        }
    }

    pub fn track_issue_open(&self) -> bool {
        self.track_issue_open.unwrap_or(true)
    }

    pub fn track_check_run(&self) -> bool {
        self.track_check_run.unwrap_or(true)
    }
}

fn is_repo_name(name: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    matches!(name.split_once('/'), Some((owner, repo)) if valid(owner) && valid(repo))
}

fn text_field<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Checks what the JSON Schema cannot say as clearly: the key parses, the policy has its handle.
pub fn validate(config: &Value) -> ConfigValidation {
    let Some(object) = config.as_object() else {
        return ConfigValidation::invalid(vec!["the config must be a JSON object".into()]);
    };
    let mut errors: Vec<String> = Vec::new();
    match object.get("appId") {
        Some(Value::Number(n)) if n.is_u64() => {}
        Some(Value::String(s)) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {}
        None | Some(Value::Null) => {
            errors.push("appId: required; the App ID from the GitHub App's settings page".into())
        }
        Some(other) => errors.push(format!(
            "appId: {other} is not an App ID (a number such as 123456, shown on the App's settings page)"
        )),
    }
    match text_field(object, "privateKey") {
        None => errors.push(
            "privateKey: required; generate a private key on the GitHub App's settings page and \
             paste the whole .pem file"
                .into(),
        ),
        Some(pem) => {
            if let Err(e) = AppKey::from_pem(pem) {
                errors.push(format!("privateKey: {e}"));
            }
        }
    }
    if text_field(object, "webhookSecret").is_none() {
        errors.push(
            "webhookSecret: required; the secret set in the GitHub App's webhook settings, used to \
             verify every delivery"
                .into(),
        );
    }
    let client_id = text_field(object, "clientId").is_some();
    let client_secret = text_field(object, "clientSecret").is_some();
    if client_id != client_secret {
        errors.push("clientId and clientSecret: give both or neither".into());
    }
    let policy = object.get("commentPolicy");
    match policy {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if p == "all" || p == "mentions" => {}
        Some(other) => errors.push(format!(
            "commentPolicy: {other} is not a policy; use \"all\" or \"mentions\""
        )),
    }
    let handle = object
        .get("mentionHandle")
        .and_then(Value::as_str)
        .map(|h| h.trim().trim_start_matches('@'));
    if policy.and_then(Value::as_str) == Some("mentions") && handle.is_none_or(str::is_empty) {
        errors.push(
            "mentionHandle: required when commentPolicy is \"mentions\" (the name comments must \
             mention, e.g. nitejar for @nitejar)"
                .into(),
        );
    }
    if handle.is_some_and(|h| h.chars().any(char::is_whitespace)) {
        errors.push("mentionHandle: a single name without spaces, e.g. nitejar".into());
    }
    match object.get("allowedRepos") {
        None | Some(Value::Null) => {}
        Some(Value::Array(repos)) => {
            for (i, repo) in repos.iter().enumerate() {
                if !repo.as_str().map(str::trim).is_some_and(is_repo_name) {
                    errors.push(format!(
                        "allowedRepos[{i}]: {repo} is not a repository name; write owner/repo"
                    ));
                }
            }
        }
        Some(_) => errors.push("allowedRepos: must be a list of owner/repo names".into()),
    }
    for flag in ["trackIssueOpen", "trackCheckRun", "manifestPending"] {
        if !matches!(
            object.get(flag),
            None | Some(Value::Null) | Some(Value::Bool(_))
        ) {
            errors.push(format!("{flag}: must be true or false"));
        }
    }
    ConfigValidation::invalid(errors)
}

/// The integration type, names, schema and form hints.
pub fn descriptor() -> IntegrationDescriptor {
    IntegrationDescriptor::new(
        "github",
        "GitHub",
        "A GitHub App: answer issue comments, new issues and failed checks on pull requests \
         with a comment.",
    )
    .icon("brand-github")
    .category(IntegrationCategory::Code)
    .response_mode(ResponseMode::Final)
    .sensitive_fields(["privateKey", "clientSecret", "webhookSecret"])
    .config_schema(config_schema())
    .ui_schema(ui_schema())
}

fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "GitHub App",
        "type": "object",
        "required": ["appId", "privateKey", "webhookSecret"],
        "properties": {
            "appId": {
                "title": "App ID",
                "description": "Shown on the GitHub App's settings page (General → About).",
                "anyOf": [
                    { "type": "integer", "minimum": 1 },
                    { "type": "string", "pattern": "^\\s*[0-9]+\\s*$" }
                ]
            },
            "privateKey": {
                "type": "string",
                "title": "Private key",
                "description": "The .pem file generated on the App's settings page (PKCS#1 \
                                `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`).",
                "contentMediaType": "application/x-pem-file",
                "minLength": 1,
                "writeOnly": true
            },
            "webhookSecret": {
                "type": "string",
                "title": "Webhook secret",
                "description": "The secret set in the App's webhook settings; every delivery's \
                                X-Hub-Signature-256 is checked against it.",
                "minLength": 1,
                "writeOnly": true
            },
            "clientId": {
                "type": "string",
                "title": "Client ID",
                "description": "Optional: the App's OAuth client id."
            },
            "clientSecret": {
                "type": "string",
                "title": "Client secret",
                "description": "Optional: the App's OAuth client secret.",
                "writeOnly": true
            },
            "allowedRepos": {
                "type": "array",
                "title": "Allowed repositories",
                "description": "Only deliveries from these repositories (owner/repo) create work. \
                                Empty: every repository the App is installed on.",
                "items": { "type": "string", "pattern": "^\\s*[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\\s*$" },
                "default": []
            },
            "commentPolicy": {
                "type": "string",
                "title": "Comments to answer",
                "description": "all: every new comment; mentions: only comments that mention the \
                                handle below.",
                "enum": ["all", "mentions"],
                "default": "all"
            },
            "mentionHandle": {
                "type": "string",
                "title": "Mention handle",
                "description": "With the mentions policy, a comment must contain @handle.",
                "pattern": "^@?[^\\s@]+$"
            },
            "trackIssueOpen": {
                "type": "boolean",
                "title": "Answer new issues",
                "description": "Opened and reopened issues create work.",
                "default": true
            },
            "trackCheckRun": {
                "type": "boolean",
                "title": "Follow checks on pull requests",
                "description": "Completed check runs on pull requests create work.",
                "default": true
            },
            "tokenTTL": {
                "type": "integer",
                "title": "Token lifetime (seconds)",
                "description": "Reuse an installation token at most this long.",
                "minimum": 1
            },
            "appSlug": { "type": "string", "title": "App slug" },
            "permissions": { "type": "object", "title": "Permission preset" },
            "manifestPending": { "type": "boolean", "title": "App registration pending" }
        }
    })
}

/// Form hints, in the react-jsonschema-form convention (`ui:order`, `ui:widget`, `ui:help`).
fn ui_schema() -> Value {
    json!({
        "ui:order": [
            "appId", "privateKey", "webhookSecret", "commentPolicy", "mentionHandle",
            "allowedRepos", "trackIssueOpen", "trackCheckRun", "clientId", "clientSecret", "*"
        ],
        "appId": { "ui:placeholder": "123456" },
        "privateKey": {
            "ui:widget": "textarea",
            "ui:options": { "rows": 8, "secret": true },
            "ui:placeholder": "-----BEGIN RSA PRIVATE KEY-----",
            "ui:help": "Generate it under Private keys on the App's settings page."
        },
        "webhookSecret": {
            "ui:widget": "password",
            "ui:help": "Set the same value as the App's webhook secret. The webhook URL is this \
                        integration's /api/webhooks/plugins/github/{id}."
        },
        "clientSecret": { "ui:widget": "password" },
        "commentPolicy": { "ui:widget": "radio" },
        "mentionHandle": { "ui:placeholder": "nitejar", "ui:help": "Without or with the @." },
        "allowedRepos": { "ui:help": "owner/repo, one per entry." },
        "tokenTTL": { "ui:widget": "hidden" },
        "appSlug": { "ui:widget": "hidden" },
        "permissions": { "ui:widget": "hidden" },
        "manifestPending": { "ui:widget": "hidden" }
    })
}
