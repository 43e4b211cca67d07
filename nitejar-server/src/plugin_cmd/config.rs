//! `nitejar plugin config <id> [get|set|edit]`: a plugin's settings from the command line — the
//! config its manifest declares, and the secrets it declares — through the same
//! [`PluginManager::configure`](nitejar_core::lifecycle::PluginManager::configure) as the admin
//! UI and API. A running server applies a change within a second (it reconciles).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use nitejar_core::lifecycle::{LifecycleError, PluginSettings, SecretOrigin, SettingsChange};
use nitejar_core::plugin_config::ConfigSchema;
use nitejar_sdk::manifest::ConfigDeclaration;
use serde_json::{json, Map, Value};

use super::setup::Engine;
use super::Out;

/// What `nitejar plugin config <id>` does.
#[derive(Subcommand)]
pub enum ConfigAction {
    /// Show the settings, the stored config and where each secret's value comes from (the
    /// default).
    Get,
    /// Change settings: `NAME=VALUE` pairs (`NAME=` removes the setting; a list is a JSON array or
    /// comma-separated values) and/or JSON documents (`'{"name": …}'`), merged into the stored
    /// config; and secrets. Everything is checked before anything is stored.
    Set {
        /// `NAME=VALUE` pairs and JSON object documents, applied in order.
        #[arg(value_name = "NAME=VALUE|JSON")]
        values: Vec<String>,
        /// A JSON document from a file (`-`: standard input), applied before the arguments.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Start from an empty config instead of the stored one.
        #[arg(long)]
        replace: bool,
        /// Store a declared secret (encrypted): `NAME=VALUE`, or `NAME` alone to type the value
        /// (not shown) or read it from standard input — which keeps it out of the shell history.
        /// Repeatable.
        #[arg(long, value_name = "NAME[=VALUE]")]
        secret: Vec<String>,
        /// Remove a secret's stored value (the environment variable applies again). Repeatable.
        #[arg(long, value_name = "NAME")]
        clear_secret: Vec<String>,
    },
    /// Edit the config as JSON in $VISUAL or $EDITOR (default `vi`); saved when the editor exits,
    /// if it fits the schema (otherwise nothing is stored and the edit is kept in a file).
    Edit,
}

pub(super) async fn run(
    engine: &Engine,
    id: &str,
    action: Option<ConfigAction>,
    out: &Out,
) -> ExitCode {
    let manager = &engine.manager;
    let settings = match manager.settings(id).await {
        Ok(s) => s,
        Err(e) => return super::commands::failed(out, &e),
    };
    match action.unwrap_or(ConfigAction::Get) {
        ConfigAction::Get => out.ok(json!({ "settings": settings }), || print(&settings)),
        ConfigAction::Set {
            values,
            file,
            replace,
            secret,
            clear_secret,
        } => {
            let change = match change_of(
                &settings,
                &values,
                file.as_deref(),
                replace,
                &secret,
                &clear_secret,
            ) {
                Ok(change) => change,
                Err(message) => return out.fail(&message, json!({ "reason": "bad_arguments" })),
            };
            apply(engine, id, change, out).await
        }
        ConfigAction::Edit => edit(engine, id, &settings, out).await,
    }
}

async fn apply(engine: &Engine, id: &str, change: SettingsChange, out: &Out) -> ExitCode {
    match engine.manager.configure(id, change).await {
        Ok(o) => out.ok(json!({ "configured": o }), || {
            if !o.changed() {
                println!("nothing changed: the settings of {id} are as they were");
                return;
            }
            println!("saved the settings of {} {} (revision {})", o.id, o.version, o.revision);
            if !o.changed_settings.is_empty() {
                println!("  changed: {}", o.changed_settings.join(", "));
            }
            if !o.secrets_set.is_empty() {
                println!("  secrets stored: {}", o.secrets_set.join(", "));
            }
            if !o.secrets_cleared.is_empty() {
                println!("  stored secrets removed: {}", o.secrets_cleared.join(", "));
            }
            if o.checked_by_plugin {
                println!("  the plugin started with them here; a running server switches to them within a second");
            } else {
                println!("  the plugin is not running; it gets them when it is enabled");
            }
        }),
        Err(e) => super::commands::failed(out, &e),
    }
}

fn schema_of(settings: &PluginSettings) -> Option<ConfigSchema> {
    let schema = settings.schema.clone()?;
    let mut declared = ConfigDeclaration::new(schema);
    declared.ui_schema = settings.ui_schema.clone();
    ConfigSchema::parse(&declared).ok()
}

/// The change `set`'s arguments describe.
fn change_of(
    settings: &PluginSettings,
    values: &[String],
    file: Option<&Path>,
    replace: bool,
    secrets: &[String],
    clear: &[String],
) -> Result<SettingsChange, String> {
    let mut change = SettingsChange::default();
    if replace || file.is_some() || !values.is_empty() {
        let schema = schema_of(settings);
        let mut config = match (&settings.config, replace) {
            (Value::Object(map), false) => map.clone(),
            _ => Map::new(),
        };
        fn merge(config: &mut Map<String, Value>, doc: Value, from: &str) -> Result<(), String> {
            match doc {
                Value::Object(map) => {
                    config.extend(map);
                    Ok(())
                }
                _ => Err(format!("{from} is not a JSON object of settings")),
            }
        }
        if let Some(file) = file {
            let text = if file == Path::new("-") {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("could not read standard input: {e}"))?
            } else {
                std::fs::read_to_string(file)
                    .map_err(|e| format!("could not read {}: {e}", file.display()))?
            };
            let doc = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
            merge(&mut config, doc, &file.display().to_string())?;
        }
        for value in values {
            if value.trim_start().starts_with('{') {
                let doc = serde_json::from_str(value)
                    .map_err(|e| format!("`{value}` is not a JSON document: {e}"))?;
                merge(&mut config, doc, "the document")?;
                continue;
            }
            let Some((name, text)) = value.split_once('=') else {
                return Err(format!(
                    "`{value}` is neither NAME=VALUE nor a JSON document (`{{\"name\": …}}`)"
                ));
            };
            if text.is_empty() {
                config.remove(name);
                continue;
            }
            let parsed = match &schema {
                Some(schema) => schema
                    .value_from_text(name, text)
                    .map_err(|p| p.to_string())?,
                None => {
                    return Err(format!(
                        "`{}` declares no settings (its manifest has no `config`)",
                        settings.plugin_id
                    ))
                }
            };
            config.insert(name.to_owned(), parsed);
        }
        change.config = Some(Value::Object(config));
    }
    for s in secrets {
        match s.split_once('=') {
            Some((name, value)) => {
                change
                    .secrets
                    .insert(name.to_owned(), Some(value.to_owned()));
            }
            None => {
                let value = read_secret(s)?;
                change.secrets.insert(s.clone(), Some(value));
            }
        }
    }
    for name in clear {
        change.secrets.insert(name.clone(), None);
    }
    if change.config.is_none() && change.secrets.is_empty() {
        return Err(
            "nothing to set: give NAME=VALUE pairs, a JSON document, --file, --secret or --clear-secret"
                .into(),
        );
    }
    Ok(change)
}

/// A secret's value from standard input: typed without echo on a terminal, else the next line.
fn read_secret(name: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("value of the secret {name} (not shown): ");
        let _ = std::io::stderr().flush();
        let quiet = hide_input(&stdin);
        let read = stdin.lock().read_line(&mut line);
        if let Some(restore) = quiet {
            restore();
        }
        eprintln!();
        read.map_err(|e| format!("could not read the value of {name}: {e}"))?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("could not read the value of {name} from standard input: {e}"))?;
    }
    let value = line.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(format!(
            "no value for the secret {name}: give --secret {name}=VALUE, or the value on standard input"
        ));
    }
    Ok(value)
}

/// Turns the terminal's echo off; the returned function turns it back on.
fn hide_input(stdin: &std::io::Stdin) -> Option<impl FnOnce() + '_> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let before = tcgetattr(stdin).ok()?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(stdin, OptionalActions::Now, &quiet).ok()?;
    Some(move || {
        let _ = tcsetattr(stdin, OptionalActions::Now, &before);
    })
}

async fn edit(engine: &Engine, id: &str, settings: &PluginSettings, out: &Out) -> ExitCode {
    if settings.schema.is_none() {
        return out.fail(
            &format!("`{id}` declares no settings (its manifest has no `config`); nothing to edit"),
            json!({ "reason": "no_settings" }),
        );
    }
    // Nothing stored: the editor starts with the declared defaults.
    let start = match &settings.config {
        Value::Null => Value::Object(settings.defaults.clone()),
        config => config.clone(),
    };
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&start).unwrap_or_default()
    );
    let file = match tempfile::Builder::new()
        .prefix(&format!("nitejar-{id}-config-"))
        .suffix(".json")
        .tempfile()
    {
        Ok(f) => f,
        Err(e) => return out.fail(&format!("could not create a file to edit: {e}"), json!({})),
    };
    if let Err(e) = std::fs::write(file.path(), &text) {
        return out.fail(
            &format!("could not write {}: {e}", file.path().display()),
            json!({}),
        );
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // Through the shell, as git does: `EDITOR="code --wait"` works.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return out.fail(
                &format!("the editor ({editor}) exited with {s}; nothing was saved"),
                json!({ "reason": "editor_failed" }),
            )
        }
        Err(e) => {
            return out.fail(
                &format!("could not start the editor `{editor}` ({e}); set VISUAL or EDITOR"),
                json!({ "reason": "editor_failed" }),
            )
        }
    }
    let edited = match std::fs::read_to_string(file.path()) {
        Ok(t) => t,
        Err(e) => return out.fail(&format!("could not read the edited file: {e}"), json!({})),
    };
    if edited.trim() == text.trim() {
        return out.ok(json!({ "configured": null }), || {
            println!("no change: nothing saved")
        });
    }
    // Kept when the edit is refused, so the operator can fix it rather than start again.
    let keep = |file: tempfile::NamedTempFile| -> String {
        match file.keep() {
            Ok((_, path)) => format!(
                "; your edit is kept in {}: fix it, then `nitejar plugin config {id} set --replace --file {}`",
                path.display(),
                path.display()
            ),
            Err(_) => String::new(),
        }
    };
    let config: Value = match serde_json::from_str(&edited) {
        Ok(c) => c,
        Err(e) => {
            let kept = keep(file);
            return out.fail(
                &format!("the edited config is not JSON ({e}); nothing was saved{kept}"),
                json!({ "reason": "invalid_json" }),
            );
        }
    };
    match engine
        .manager
        .configure(id, SettingsChange::default().config(config))
        .await
    {
        Err(e @ LifecycleError::InvalidConfig { .. }) => {
            let kept = keep(file);
            out.fail(&format!("{e}{kept}"), json!({ "reason": "invalid_config" }))
        }
        result => {
            drop(file);
            match result {
                Ok(o) => out.ok(json!({ "configured": o }), || {
                    println!(
                        "saved the settings of {} {} (revision {}); changed: {}",
                        o.id,
                        o.version,
                        o.revision,
                        o.changed_settings.join(", ")
                    );
                }),
                Err(e) => super::commands::failed(out, &e),
            }
        }
    }
}

fn print(settings: &PluginSettings) {
    println!(
        "{} {} — settings (revision {})",
        settings.plugin_id, settings.version, settings.revision
    );
    match &settings.schema {
        None => println!("  takes no config"),
        Some(schema) => {
            let empty = Map::new();
            let stored = settings.config.as_object().unwrap_or(&empty);
            let props = schema
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (name, prop) in &props {
                let value = match (stored.get(name), settings.defaults.get(name)) {
                    (Some(v), _) => v.to_string(),
                    (None, Some(d)) => format!("(not set; the form's default is {d})"),
                    (None, None) => "(not set)".to_string(),
                };
                let kind = prop.get("type").and_then(Value::as_str).unwrap_or("");
                println!("  {name:<24} {value}");
                if let Some(d) = prop.get("description").and_then(Value::as_str) {
                    println!("  {:<24} {kind}: {d}", "");
                }
            }
        }
    }
    for p in &settings.problems {
        println!("  problem: {p}");
    }
    if settings.secrets.is_empty() {
        println!("secrets: none declared");
        return;
    }
    println!("secrets (values never shown):");
    for s in &settings.secrets {
        let source = match s.source {
            SecretOrigin::Stored if s.unreadable => {
                "stored, but unreadable with this ENCRYPTION_KEY: set it again".to_string()
            }
            SecretOrigin::Stored => format!("stored (encrypted); wins over {}", s.env_var),
            SecretOrigin::Environment => format!(
                "from the environment ({}) as this process sees it",
                s.env_var
            ),
            SecretOrigin::Unset => format!(
                "unset: store one with --secret {}, or set {}",
                s.name, s.env_var
            ),
        };
        println!("  {:<24} {source}", s.name);
    }
}
