//! `nitejar plugin trust …`: the trusted keys and allowlist entries plugins are judged with, from
//! the command line, through the same
//! [`PluginManager::add_trust_entry`](nitejar_core::lifecycle::PluginManager::add_trust_entry) as
//! the admin UI and API. The environment's keys and entries are listed and cannot be removed here.
//! A running server applies a change within a second (it reconciles).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use nitejar_core::lifecycle::{LifecycleError, TrustEntryKind, TrustSource};
use serde_json::{json, Value};

use super::setup::Engine;
use super::Out;

/// What `nitejar plugin trust` does.
#[derive(Subcommand)]
pub enum TrustAction {
    /// List the trusted keys and allowlist entries, each with its source (`environment` or
    /// `stored`).
    List,
    /// Add or remove a trusted minisign public key.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Add or remove an allowlist entry (`<plugin id>` or `<plugin id>@sha256:<digest>`).
    Allow {
        #[command(subcommand)]
        action: AllowAction,
    },
}

/// `nitejar plugin trust key …`
#[derive(Subcommand)]
pub enum KeyAction {
    /// Trust a key: its base64 line (`RW…`), or --file with the publisher's minisign.pub.
    Add {
        /// The public key's base64 line.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        key: Option<String>,
        /// A minisign.pub file.
        #[arg(long, value_name = "PUBLIC_KEY_FILE")]
        file: Option<PathBuf>,
    },
    /// Stop trusting a stored key, by its key id (16 hex digits, as `list` shows).
    Remove {
        /// The key id.
        key_id: String,
    },
    /// List the trusted keys.
    List,
}

/// `nitejar plugin trust allow …`
#[derive(Subcommand)]
pub enum AllowAction {
    /// Allow a plugin id, or one build of it (`com.acme.jira@sha256:<digest>`).
    Add {
        /// The entry.
        entry: String,
    },
    /// Remove a stored allowlist entry.
    Remove {
        /// The entry, as `list` shows it.
        entry: String,
    },
    /// List the allowlist.
    List,
}

/// Who makes a change from the command line, as its receipt records it.
pub(crate) fn by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown user".into());
    format!("CLI ({user})")
}

fn failed(out: &Out, error: &LifecycleError) -> ExitCode {
    use nitejar_core::lifecycle::TrustSettingsError as T;
    let reason = match error {
        LifecycleError::TrustSettings(T::Invalid { .. }) => "invalid",
        LifecycleError::TrustSettings(T::Duplicate { .. } | T::KeyIdTaken { .. }) => "exists",
        LifecycleError::TrustSettings(T::NotFound { .. }) => "not_found",
        LifecycleError::TrustSettings(T::FromEnvironment { .. }) => "set_by_environment",
        LifecycleError::TrustSettings(T::Locked) => "locked",
        _ => "failed",
    };
    out.fail(error, json!({ "reason": reason }))
}

fn source(s: TrustSource) -> &'static str {
    match s {
        TrustSource::Environment => "environment",
        TrustSource::Stored => "stored",
    }
}

pub(super) async fn run(engine: &Engine, action: TrustAction, out: &Out) -> ExitCode {
    let manager = &engine.manager;
    let (kind, add, text) = match action {
        TrustAction::List => return list(engine, true, true, out).await,
        TrustAction::Key {
            action: KeyAction::List,
        } => return list(engine, true, false, out).await,
        TrustAction::Allow {
            action: AllowAction::List,
        } => return list(engine, false, true, out).await,
        TrustAction::Key {
            action: KeyAction::Add { key, file },
        } => {
            let text = match (key, file) {
                (Some(key), _) => key,
                (None, Some(file)) => match std::fs::read_to_string(&file) {
                    Ok(text) => text,
                    Err(e) => {
                        return out.fail(
                            &format!("--file {}: cannot be read: {e}", file.display()),
                            json!({ "reason": "invalid" }),
                        )
                    }
                },
                (None, None) => {
                    return out.fail(
                        &"give the key's base64 line, or --file <minisign.pub>",
                        json!({ "reason": "invalid" }),
                    )
                }
            };
            (TrustEntryKind::Key, true, text)
        }
        TrustAction::Key {
            action: KeyAction::Remove { key_id },
        } => (TrustEntryKind::Key, false, key_id),
        TrustAction::Allow {
            action: AllowAction::Add { entry },
        } => (TrustEntryKind::Allow, true, entry),
        TrustAction::Allow {
            action: AllowAction::Remove { entry },
        } => (TrustEntryKind::Allow, false, entry),
    };
    let result = if add {
        manager.add_trust_entry(kind, &text, &by()).await
    } else {
        manager.remove_trust_entry(kind, &text, &by()).await
    };
    match result {
        Ok(change) => out.ok(json!({ "change": change }), || {
            let what = match kind {
                TrustEntryKind::Key => format!("trusted key {}", change.ident),
                TrustEntryKind::Allow => format!("allowlist entry {}", change.ident),
            };
            println!("{what} {}", if add { "added" } else { "removed" });
            println!("  a running server applies it within a second (no restart)");
        }),
        Err(e) => failed(out, &e),
    }
}

async fn list(engine: &Engine, keys: bool, allowlist: bool, out: &Out) -> ExitCode {
    let settings = match engine.manager.trust_settings().await {
        Ok(s) => s,
        Err(e) => return failed(out, &e),
    };
    let mut doc = json!({ "trust": settings });
    if !keys {
        doc["trust"]["keys"] = Value::Null;
    }
    if !allowlist {
        doc["trust"]["allowlist"] = Value::Null;
    }
    out.ok(doc, || {
        println!("trust mode {}", settings.mode.as_str());
        if !settings.editable {
            println!("  saas_locked: only the platform's keys (NITEJAR_PLUGIN_TRUSTED_KEYS) count; nothing can be added or removed here");
        }
        if keys {
            println!("trusted keys:");
            if settings.keys.is_empty() {
                println!("  none");
            }
            for k in &settings.keys {
                println!(
                    "  {}  {:<11} {}{}",
                    k.key_id,
                    source(k.source),
                    k.public_key,
                    if k.in_effect { "" } else { "  (not applied in this mode)" }
                );
            }
        }
        if allowlist {
            println!("allowlist:");
            if settings.allowlist.is_empty() {
                println!("  none");
            }
            for e in &settings.allowlist {
                println!(
                    "  {:<11} {}{}",
                    source(e.source),
                    e.entry,
                    if e.in_effect { "" } else { "  (not applied in this mode)" }
                );
            }
        }
        println!("environment entries come from NITEJAR_PLUGIN_TRUSTED_KEYS / NITEJAR_PLUGIN_ALLOWLIST: change the variable and restart to change them");
    })
}
