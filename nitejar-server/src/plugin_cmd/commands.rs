//! The commands that work on the installed plugins: list, install, enable, disable, upgrade,
//! rollback, uninstall, config, doctor, logs.

use nitejar_core::lifecycle::execution::ExecutionChoice;
use std::process::ExitCode;

use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{
    logs, Acknowledge, EnableRequest, LifecycleError, PluginState, Severity, UninstallOptions,
};
use nitejar_core::store::PageRequest;
use serde_json::{json, Value};

use super::setup::Engine;
use super::{Out, PluginCommand};

pub(crate) fn run(command: PluginCommand, out: &Out) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return out.fail(
                &format!("could not start the async runtime: {e}"),
                Value::Null,
            )
        }
    };
    let code = rt.block_on(async {
        let engine = match Engine::open().await {
            Ok(engine) => engine,
            Err(e) => return out.fail(&format!("{e:#}"), Value::Null),
        };
        let code = dispatch(&engine, command, out).await;
        engine.close().await;
        code
    });
    // A plugin that hung while loading left a thread behind: it is not waited for.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

fn acknowledge(ack_all: bool, ack: Vec<String>) -> Acknowledge {
    if ack_all {
        Acknowledge::All
    } else if ack.is_empty() {
        Acknowledge::None
    } else {
        Acknowledge::These(ack)
    }
}

/// A lifecycle error, with the consent text (or the config's problems) as its own JSON field.
pub(super) fn failed(out: &Out, error: &LifecycleError) -> ExitCode {
    let extra = match error {
        LifecycleError::ConsentRequired { text, .. } => {
            json!({ "reason": "consent_required", "consentText": text })
        }
        LifecycleError::AcknowledgementMissing { missing, .. } => {
            json!({ "reason": "acknowledgement_missing", "missing": missing })
        }
        LifecycleError::Trust { .. } => json!({ "reason": "trust_policy" }),
        LifecycleError::InvalidConfig { problems, .. } => {
            json!({ "reason": "invalid_config", "problems": problems })
        }
        LifecycleError::UndeclaredSecret {
            names, declared, ..
        } => json!({ "reason": "undeclared_secret", "undeclared": names, "declared": declared }),
        e if e.is_refusal() => json!({ "reason": "refused" }),
        _ => json!({ "reason": "failed" }),
    };
    out.fail(error, extra)
}

async fn dispatch(engine: &Engine, command: PluginCommand, out: &Out) -> ExitCode {
    let manager = &engine.manager;
    match command {
        PluginCommand::List { all } => {
            match manager.list().await {
                Ok(list) => {
                    let list: Vec<_> = list
                        .into_iter()
                        .filter(|p| all || p.state != PluginState::Uninstalled)
                        .collect();
                    out.ok(json!({ "plugins": list, "trustMode": engine.config.trust.mode().as_str() }), || {
                    if list.is_empty() {
                        println!("no plugins installed");
                        return;
                    }
                    println!("{:<40} {:<12} {:<12} {:<10} SOURCE", "ID", "VERSION", "STATE", "TRUST");
                    for p in &list {
                        let state = if p.builtin { "builtin" } else { p.state.as_str() };
                        let enabled = if p.builtin && p.state == PluginState::Disabled { "disabled" } else { state };
                        println!(
                            "{:<40} {:<12} {:<12} {:<10} {}",
                            p.id,
                            p.version.as_deref().unwrap_or("-"),
                            enabled,
                            p.trust_level,
                            p.source_ref.as_deref().unwrap_or(&p.source_kind)
                        );
                        if let Some(e) = &p.last_error {
                            println!("    error: {e}");
                        }
                    }
                })
                }
                Err(e) => failed(out, &e),
            }
        }
        PluginCommand::Install { source } => {
            let source = match InstallSource::detect(&source) {
                Ok(s) => s,
                Err(e) => return out.fail(&e, json!({ "reason": "bad_source" })),
            };
            match manager.install(source).await {
                Ok(o) => out.ok(json!({ "installed": o }), || {
                    let verb = if o.already_installed { "already installed" } else { "installed" };
                    println!("{verb} {} {} (disabled)", o.id, o.version);
                    println!("  source:    {} {}", o.source_kind, o.source_ref);
                    println!("  digest:    {}", o.digest);
                    println!("  signature: {}", o.signature);
                    if o.permissions.is_empty() {
                        println!("  permissions: none");
                    } else {
                        println!("  permissions (enforced at the host boundary only; the plugin runs in-process):");
                        for p in &o.permissions {
                            println!("    {} — {}", p.ack, p.description);
                        }
                    }
                    for note in &o.notes {
                        println!("  note: {note}");
                    }
                    match &o.enable_blocker {
                        Some(blocker) => println!("before it can be enabled: {blocker}"),
                        None => println!(
                            "next: nitejar plugin enable {} --accept-consent{}",
                            o.id,
                            if o.permissions.is_empty() { "" } else { " --ack-all" }
                        ),
                    }
                }),
                Err(e) => failed(out, &e),
            }
        }
        PluginCommand::Enable {
            id,
            accept_consent,
            ack_all,
            ack,
            isolated,
            in_process,
        } => {
            let chosen = if isolated {
                Some(nitejar_core::receipts::ExecutionMode::Isolated)
            } else if in_process {
                Some(nitejar_core::receipts::ExecutionMode::InProcess)
            } else {
                None
            };
            if let Some(mode) = chosen {
                // The mode changes; the limits chosen before stay.
                let result = match manager.execution_choice(&id).await {
                    Ok(choice) => {
                        manager
                            .set_execution(
                                &id,
                                ExecutionChoice {
                                    mode: Some(mode),
                                    ..choice
                                },
                            )
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    return failed(out, &e);
                }
            }
            let request = EnableRequest {
                accept_consent,
                acknowledge: acknowledge(ack_all, ack),
            };
            match manager.enable(&id, request).await {
                Ok(o) => out.ok(json!({ "enabled": o }), || {
                    println!("enabled {} {}", o.id, o.version);
                    if !o.active {
                        println!("  safe mode is on: it loads when the server starts without NITEJAR_SAFE_MODE");
                    } else {
                        println!("  a running server picks it up within a second");
                    }
                }),
                Err(e) => failed(out, &e),
            }
        }
        PluginCommand::Execution {
            id,
            mode,
            memory_mib,
            cpu_seconds,
        } => {
            let chosen = match mode.as_str() {
                "default" => None,
                other => match nitejar_core::lifecycle::execution::parse_execution(other) {
                    Some(m) => Some(m),
                    None => {
                        return out.fail(
                            &format!("MODE must be isolated, in_process or default, not `{other}`"),
                            json!({ "reason": "bad_mode" }),
                        )
                    }
                },
            };
            // A limit not given stays as chosen before; `default` gives it back to the server.
            let current = match manager.execution_choice(&id).await {
                Ok(c) => c,
                Err(e) => return failed(out, &e),
            };
            let mut limits = [
                (current.memory_mib, memory_mib, "--memory-mib"),
                (current.cpu_seconds, cpu_seconds, "--cpu-seconds"),
            ];
            for (value, given, flag) in &mut limits {
                match given.as_deref().map(str::trim) {
                    None => {}
                    Some("default") => *value = None,
                    Some(text) => match text.parse::<u64>() {
                        Ok(n) => *value = Some(n),
                        Err(_) => {
                            return out.fail(
                                &format!(
                                    "{flag} must be a whole number or `default`, not `{text}`"
                                ),
                                json!({ "reason": "bad_limit" }),
                            )
                        }
                    },
                }
            }
            let choice = ExecutionChoice {
                mode: chosen,
                memory_mib: limits[0].0,
                cpu_seconds: limits[1].0,
            };
            match manager.set_execution(&id, choice).await {
                Ok(o) => out.ok(json!({ "execution": o }), || {
                    println!(
                        "{id} runs {} ({})",
                        o.effective.as_str(),
                        if o.chosen.is_some() {
                            "chosen"
                        } else {
                            "the server's default"
                        }
                    );
                    if o.effective == nitejar_core::receipts::ExecutionMode::Isolated {
                        println!(
                            "  its process: at most {} MiB of address space, {} s of processor time",
                            o.limits.memory_mib, o.limits.cpu_seconds
                        );
                    }
                    println!("  a running server switches it within a second");
                }),
                Err(e) => failed(out, &e),
            }
        }
        PluginCommand::Disable { id } => match manager.disable(&id).await {
            Ok(()) => out.ok(json!({ "disabled": id }), || println!("disabled {id}")),
            Err(e) => failed(out, &e),
        },
        PluginCommand::Upgrade {
            id,
            source,
            accept_consent,
            ack_all,
            ack,
        } => {
            let source = match source.as_deref().map(InstallSource::detect).transpose() {
                Ok(s) => s,
                Err(e) => return out.fail(&e, json!({ "reason": "bad_source" })),
            };
            let request = EnableRequest {
                accept_consent,
                acknowledge: acknowledge(ack_all, ack),
            };
            match manager.upgrade(&id, source, request).await {
                Ok(o) => out.ok(json!({ "upgraded": o }), || {
                    println!("upgraded {} {} -> {}", o.id, o.from, o.to);
                    if o.added_permissions.is_empty() {
                        println!("  no new permissions");
                    } else {
                        println!("  new permissions:");
                        for p in &o.added_permissions {
                            println!("    + {} — {}", p.ack, p.description);
                        }
                    }
                    println!(
                        "  {} {} stays installed: nitejar plugin rollback {} --to {}",
                        o.id, o.from, o.id, o.from
                    );
                }),
                Err(e) => failed(out, &e),
            }
        }
        PluginCommand::Rollback {
            id,
            to,
            accept_consent,
        } => match manager.rollback(&id, &to, accept_consent).await {
            Ok(()) => out.ok(json!({ "id": id, "version": to }), || {
                println!("{id} is at {to} again")
            }),
            Err(e) => failed(out, &e),
        },
        PluginCommand::Uninstall {
            id,
            purge_files,
            purge_data,
        } => {
            let options = UninstallOptions {
                purge_files,
                purge_data,
            };
            match manager.uninstall(&id, options).await {
                Ok(o) => out.ok(json!({ "uninstalled": o }), || {
                    println!("uninstalled {id}");
                    if !purge_files {
                        println!("  files kept (remove them with --purge-files)");
                    }
                    if !purge_data {
                        println!("  settings, acknowledgements, receipts and data kept (remove them with --purge-data)");
                    }
                    println!("  integrations using its types are kept; they work again when a plugin provides the type");
                }),
                Err(e) => failed(out, &e),
            }
        }
        PluginCommand::Config { id, action } => super::config::run(engine, &id, action, out).await,
        PluginCommand::Trust { action } => super::trust::run(engine, action, out).await,
        PluginCommand::Doctor { remove_leftovers } => {
            let mut removed = Vec::new();
            if remove_leftovers {
                match manager.remove_leftovers().await {
                    Ok(r) => removed = r,
                    Err(e) => return failed(out, &e),
                }
            }
            let report = manager.doctor().await;
            let code = out.ok(json!({ "doctor": report, "removed": removed }), || {
                for r in &removed {
                    println!("removed leftover {r}");
                }
                println!(
                    "trust mode {}; {} plugin(s) checked",
                    report.trust_mode, report.plugins_checked
                );
                if report.findings.is_empty() {
                    println!("no problems found");
                }
                for f in &report.findings {
                    let severity = match f.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                        Severity::Info => "info",
                    };
                    let plugin = f
                        .plugin
                        .as_deref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default();
                    println!("{severity} [{}]{plugin}: {}", f.check, f.problem);
                    println!("  fix: {}", f.fix);
                }
            });
            if report.has_errors() {
                ExitCode::FAILURE
            } else {
                code
            }
        }
        PluginCommand::Logs { id, limit } => {
            let page = match manager
                .store()
                .list_plugin_events(&id, PageRequest::first(limit))
                .await
            {
                Ok(page) => page,
                Err(e) => return out.fail(&e, Value::Null),
            };
            let lines = logs::tail(&manager.layout().logs_dir(), &id, limit as usize);
            let receipts: Vec<Value> = page
                .items
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "kind": r.kind, "status": r.status, "version": r.plugin_version,
                        "hook": r.hook_name, "durationMs": r.duration_ms, "createdAt": r.created_at,
                        "detail": r.detail(), "workItemId": r.work_item_id, "jobId": r.job_id,
                    })
                })
                .collect();
            let file = manager.layout().log_file(&id);
            out.ok(
                json!({ "id": id, "receipts": receipts, "logFile": file, "log": lines }),
                || {
                    println!("receipts of {id} (newest first):");
                    if page.items.is_empty() {
                        println!("  none");
                    }
                    for r in &page.items {
                        let when = humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_millis(r.created_at.max(0) as u64),
                        );
                        let detail = r
                            .detail()
                            .and_then(|d| d.get("error").or_else(|| d.get("reason")).cloned())
                            .and_then(|d| d.as_str().map(str::to_string))
                            .map(|d| format!(" — {d}"))
                            .unwrap_or_default();
                        println!(
                            "  {when} {:<16} {:<8} {}{}{detail}",
                            r.kind,
                            r.status,
                            r.plugin_version.as_deref().unwrap_or("-"),
                            r.hook_name
                                .as_deref()
                                .map(|h| format!(" {h}"))
                                .unwrap_or_default()
                        );
                    }
                    println!("{}:", file.display());
                    if lines.is_empty() {
                        println!("  (empty)");
                    }
                    for line in &lines {
                        println!("  {line}");
                    }
                },
            )
        }
        PluginCommand::Validate { .. }
        | PluginCommand::Pack { .. }
        | PluginCommand::New { .. }
        | PluginCommand::Keygen { .. }
        | PluginCommand::Schema => out.fail(&"not a lifecycle command", Value::Null),
    }
}
