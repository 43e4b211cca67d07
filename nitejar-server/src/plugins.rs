//! Plugins as the admin sees them: what is installed (the `plugins` rows), what is built in, what is
//! active in the registry, and what each declares — with the posture copy and, per declared
//! capability, where it is enforced and whether the operator acknowledged it.

use nitejar_core::builtin::BuiltinExt;
use nitejar_core::lifecycle::execution::ExecutionChoice;
use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use nitejar_core::install::InstallError;
use nitejar_core::lifecycle::LifecycleError;
use nitejar_core::registry::PluginOrigin;
use nitejar_core::store::{PluginRow, StoreError};
use nitejar_core::trust::consent::{consent_diff, consent_set, ConsentDiff};
use nitejar_sdk::manifest::Manifest;
use serde::Serialize;
use serde_json::json;

use crate::api::error::ApiError;

use crate::posture::{self, DeclaredCapability};
use crate::state::AppState;

/// A plugin in the list and on its page (and in the API).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The current (or active) version.
    pub version: Option<String>,
    /// `builtin` or `third_party`.
    pub origin: &'static str,
    /// `builtin`, `npm`, `git`, `upload`, `local`.
    pub source_kind: String,
    pub source_ref: Option<String>,
    pub trust_level: String,
    pub enabled: bool,
    /// Its contributions are in the registry right now.
    pub active: bool,
    /// `active`, `enabled_not_active`, `disabled`, `error`, `uninstalled` (its row and data
    /// kept, no current version).
    pub state: &'static str,
    /// Why an enabled plugin is not loaded, when the server knows (safe mode).
    pub not_loaded_reason: Option<&'static str>,
    pub last_load_error: Option<String>,
    /// Why: `trust` (the trust policy refused it; it runs again by itself once the policy accepts
    /// it), `load`, `tampered`, `crash`, `boot_marker`; `None` without an error (or for one
    /// recorded before kinds were).
    pub last_error_kind: Option<String>,
    pub integrations: Vec<String>,
    pub hooks: Vec<String>,
    pub skills: Vec<String>,
    pub execution_mode: &'static str,
    /// Where the operator asked it to run (`in_process`, `isolated`); `None`: the server's default.
    pub execution_mode_choice: Option<String>,
    pub enforcement_scope: &'static str,
    pub posture: &'static str,
    pub effective_limitations: Vec<String>,
    /// The limits of its own process when it runs isolated (third-party plugins).
    pub process_limits: Option<ProcessLimitsView>,
    pub declared_capabilities: Vec<DeclaredCapability>,
    pub host_enforced_controls: Vec<&'static str>,
    pub installed_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// The limits of a third-party plugin's process (isolated execution).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessLimitsView {
    /// What its process runs under: the choices, else the server's defaults.
    #[serde(flatten)]
    pub effective: nitejar_core::loader::isolated::ProcessLimits,
    /// The operator's choice of address space in MiB; `None`: the server's default.
    pub memory_mib_choice: Option<u64>,
    /// The operator's choice of processor time in seconds; `None`: the server's default.
    pub cpu_seconds_choice: Option<u64>,
}

fn state_of(enabled: bool, active: bool, error: Option<&str>) -> &'static str {
    match (enabled, active, error) {
        (_, true, _) => "active",
        (true, false, Some(_)) => "error",
        (true, false, None) => "enabled_not_active",
        (false, _, _) => "disabled",
    }
}

fn view(
    state: &AppState,
    manifest: Option<&Manifest>,
    row: Option<&PluginRow>,
    id: &str,
    acknowledged: &[String],
) -> PluginView {
    let registry = state.runtime.registry();
    let active = registry.plugin(id);
    let builtin = active.is_some_and(|p| p.meta().origin == PluginOrigin::Builtin)
        || row.is_some_and(|r| r.source_kind == "builtin")
        || (row.is_none() && id.starts_with("builtin."));
    let enabled = row.map(|r| r.enabled).unwrap_or(active.is_some());
    let error = row.and_then(|r| r.last_load_error.clone());
    let uninstalled = !builtin && row.is_some_and(|r| r.current_version.is_none());
    let contributes = manifest.map(|m| m.contributes.clone()).unwrap_or_default();
    // Where its code runs: the active version's real mode; else where it would run now.
    let mode = match active {
        Some(p) => p.meta().execution,
        None if builtin => nitejar_core::receipts::ExecutionMode::InProcess,
        None => row.map_or(state.config.plugin_execution, |r| {
            state.plugins.execution_of(r)
        }),
    };
    let isolated = mode == nitejar_core::receipts::ExecutionMode::Isolated;
    let limits = (!builtin).then(|| {
        let chosen = row.map(ExecutionChoice::of).unwrap_or_default();
        ProcessLimitsView {
            effective: row.map_or(state.config.plugin_process_limits, |r| {
                state.plugins.limits_of(r)
            }),
            memory_mib_choice: chosen.memory_mib,
            cpu_seconds_choice: chosen.cpu_seconds,
        }
    });
    let declared = manifest
        .map(|m| {
            posture::declared_capabilities(&m.permissions, mode, &|p| {
                builtin || acknowledged.iter().any(|a| a == p)
            })
        })
        .unwrap_or_default();
    PluginView {
        id: id.to_owned(),
        name: manifest
            .map(|m| m.name.clone())
            .or_else(|| row.map(|r| r.name.clone()))
            .unwrap_or_else(|| id.to_owned()),
        description: manifest.and_then(|m| m.description.clone()),
        // An uninstalled plugin has no version; its kept manifest names the last one it had.
        version: active
            .map(|p| p.meta().version.to_string())
            .or_else(|| row.and_then(|r| r.current_version.clone()))
            .or_else(|| {
                (!uninstalled)
                    .then(|| manifest.map(|m| m.version.clone()))
                    .flatten()
            }),
        origin: if builtin { "builtin" } else { "third_party" },
        source_kind: row.map(|r| r.source_kind.clone()).unwrap_or_else(|| {
            if builtin {
                "builtin".into()
            } else {
                "unknown".into()
            }
        }),
        source_ref: row.and_then(|r| r.source_ref.clone()),
        trust_level: row.map(|r| r.trust_level.clone()).unwrap_or_else(|| {
            if builtin {
                "builtin".into()
            } else {
                "unknown".into()
            }
        }),
        enabled,
        active: active.is_some(),
        state: if uninstalled && active.is_none() {
            "uninstalled"
        } else {
            state_of(enabled, active.is_some(), error.as_deref())
        },
        not_loaded_reason: (enabled && active.is_none() && !builtin && state.config.safe_mode)
            .then_some(
                "the server runs in safe mode (NITEJAR_SAFE_MODE): only built-ins are loaded",
            ),
        last_load_error: error,
        last_error_kind: row
            .filter(|r| r.last_load_error.is_some())
            .and_then(|r| r.last_error_kind.clone()),
        integrations: contributes.integrations,
        hooks: contributes.hooks,
        skills: contributes.skills,
        execution_mode: posture::execution_mode(mode),
        execution_mode_choice: row.and_then(|r| r.execution_mode.clone()),
        enforcement_scope: posture::enforcement_scope(mode),
        posture: nitejar_core::trust::posture_for(state.config.trust_mode(), mode),
        effective_limitations: if isolated {
            posture::isolated_limitations(
                limits.map_or(state.config.plugin_process_limits, |l| l.effective),
            )
        } else {
            posture::effective_limitations()
        },
        process_limits: limits,
        declared_capabilities: declared,
        host_enforced_controls: posture::host_enforced_controls(),
        installed_at: row.map(|r| r.installed_at),
        updated_at: row.map(|r| r.updated_at),
    }
}

fn builtin_manifests() -> BTreeMap<String, Manifest> {
    nitejar_core::builtin::builtins()
        .into_iter()
        .filter_map(|b| b.manifest().ok())
        .map(|v| (v.manifest.id.clone(), v.manifest))
        .collect()
}

fn row_manifest(row: &PluginRow) -> Option<Manifest> {
    serde_json::from_str(&row.manifest_json).ok()
}

async fn acknowledged(state: &AppState, id: &str) -> Result<Vec<String>, StoreError> {
    Ok(state
        .store
        .list_disclosure_acks(id)
        .await?
        .into_iter()
        .filter(|a| a.acknowledged)
        .map(|a| a.permission)
        .collect())
}

/// Every plugin: installed rows, built-ins and whatever else is active, by id.
pub async fn list(state: &AppState) -> Result<Vec<PluginView>, StoreError> {
    let rows: BTreeMap<String, PluginRow> = state
        .store
        .list_plugins()
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let builtins = builtin_manifests();
    let mut ids: Vec<String> = rows.keys().cloned().collect();
    ids.extend(builtins.keys().cloned());
    ids.extend(
        state
            .runtime
            .registry()
            .plugins()
            .map(|p| p.meta().id.to_string()),
    );
    ids.sort();
    ids.dedup();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = rows.get(&id);
        let manifest = row
            .and_then(row_manifest)
            .or_else(|| builtins.get(&id).cloned());
        let acks = if row.is_some() {
            acknowledged(state, &id).await?
        } else {
            Vec::new()
        };
        out.push(view(state, manifest.as_ref(), row, &id, &acks));
    }
    Ok(out)
}

/// Whether `id` is built into this binary.
pub fn is_builtin(id: &str) -> bool {
    builtin_manifests().contains_key(id)
}

/// One plugin's row and manifest (installed, else built in), or `None` when nothing by that id is
/// installed, built in or active.
async fn find(
    state: &AppState,
    id: &str,
) -> Result<Option<(Option<PluginRow>, Option<Manifest>)>, StoreError> {
    let row = state.store.get_plugin(id).await?;
    let manifest = row
        .as_ref()
        .and_then(row_manifest)
        .or_else(|| builtin_manifests().remove(id));
    if row.is_none() && manifest.is_none() && state.runtime.registry().plugin(id).is_none() {
        return Ok(None);
    }
    Ok(Some((row, manifest)))
}

async fn view_of(
    state: &AppState,
    id: &str,
    row: Option<&PluginRow>,
    manifest: Option<&Manifest>,
) -> Result<PluginView, StoreError> {
    let acks = if row.is_some() {
        acknowledged(state, id).await?
    } else {
        Vec::new()
    };
    Ok(view(state, manifest, row, id, &acks))
}

/// One plugin, or `None` when nothing by that id is installed, built in or active.
pub async fn get(state: &AppState, id: &str) -> Result<Option<PluginView>, StoreError> {
    match find(state, id).await? {
        Some((row, manifest)) => Ok(Some(
            view_of(state, id, row.as_ref(), manifest.as_ref()).await?,
        )),
        None => Ok(None),
    }
}

/// One installed version, as the detail view lists it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub version: String,
    pub checksum: String,
    pub installed_at: i64,
    /// The `current` pointer names it.
    pub current: bool,
    /// The consent on record for this version, if any: it cannot run without one.
    pub consent: Option<VersionConsent>,
    /// What this version declares and contributes beyond (`added`) and short of (`removed`) the
    /// current version's consent.
    pub diff_from_current: ConsentDiff,
}

/// The consent on record for one version.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionConsent {
    /// `accepted`, `carried_over` or `existing`.
    pub basis: String,
    pub accepted_at: i64,
    /// What it covers: permission acknowledgements and `hook:`, `integration:`, `skill:` entries.
    pub consented: Vec<String>,
}

/// The detail of one plugin: its view, installed versions and, for a third-party plugin that is
/// installed, the consent text an operator accepts to enable it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginDetail {
    #[serde(flatten)]
    pub plugin: PluginView,
    pub versions: Vec<VersionView>,
    /// What `enable` asks the operator to accept (`None` for built-ins).
    pub consent_text: Option<String>,
    /// The in-process warning shown on install and enable.
    pub in_process_warning: &'static str,
}

/// One plugin with its versions and consent text, or `None` when nothing by that id is known.
pub async fn detail(state: &AppState, id: &str) -> Result<Option<PluginDetail>, StoreError> {
    let Some((row, manifest)) = find(state, id).await? else {
        return Ok(None);
    };
    let plugin = view_of(state, id, row.as_ref(), manifest.as_ref()).await?;
    let current = row.as_ref().and_then(|r| r.current_version.as_deref());
    let rows = state.store.list_plugin_versions(id).await?;
    let consents = state.store.list_consents(id).await?;
    let consent_of = |v: &nitejar_core::store::PluginVersionRow| {
        consents
            .iter()
            .find(|c| c.version == v.version && c.checksum == v.checksum)
    };
    let set_of = |v: &nitejar_core::store::PluginVersionRow| {
        serde_json::from_str::<Manifest>(&v.manifest_json)
            .map(|m| consent_set(&m))
            .unwrap_or_default()
    };
    let baseline: std::collections::BTreeSet<String> = rows
        .iter()
        .find(|v| current == Some(v.version.as_str()))
        .and_then(consent_of)
        .map(|c| c.consented.iter().cloned().collect())
        .unwrap_or_default();
    let mut versions: Vec<VersionView> = rows
        .iter()
        .map(|v| VersionView {
            current: current == Some(v.version.as_str()),
            consent: consent_of(v).map(|c| VersionConsent {
                basis: c.basis.clone(),
                accepted_at: c.accepted_at,
                consented: c.consented.clone(),
            }),
            diff_from_current: consent_diff(&baseline, &set_of(v)),
            version: v.version.clone(),
            checksum: v.checksum.clone(),
            installed_at: v.installed_at,
        })
        .collect();
    versions.sort_by(|a, b| {
        let key = |v: &str| semver::Version::parse(v).ok();
        key(&b.version)
            .cmp(&key(&a.version))
            .then_with(|| b.version.cmp(&a.version))
    });
    // Only an installed third-party plugin is enabled with consent.
    let consent_text = match (&row, &manifest) {
        (Some(r), Some(m)) if plugin.origin != "builtin" => {
            Some(nitejar_core::trust::consent_text_for(
                m,
                state.config.trust_mode(),
                state.plugins.execution_of(r),
            ))
        }
        _ => None,
    };
    Ok(Some(PluginDetail {
        plugin,
        versions,
        consent_text,
        in_process_warning: posture::IN_PROCESS_WARNING,
    }))
}

/// The HTTP status and stable code of a lifecycle error (API and UI).
pub fn error_status(e: &LifecycleError) -> (StatusCode, &'static str) {
    use LifecycleError as E;
    match e {
        E::NotInstalled(_) => (StatusCode::NOT_FOUND, "plugin_not_found"),
        E::AlreadyInstalled { .. } => (StatusCode::CONFLICT, "already_installed"),
        E::Builtin { .. } => (StatusCode::CONFLICT, "builtin_plugin"),
        E::Install(InstallError::Source(_)) => (StatusCode::BAD_REQUEST, "invalid_source"),
        E::Install(InstallError::VersionExists { .. }) => (StatusCode::CONFLICT, "version_exists"),
        E::Install(
            InstallError::NpmNotFound { .. } | InstallError::NpmNoMatchingVersion { .. },
        ) => (StatusCode::NOT_FOUND, "package_not_found"),
        E::Install(InstallError::Npm(_) | InstallError::Git(_)) => {
            (StatusCode::BAD_GATEWAY, "source_unreachable")
        }
        E::Install(InstallError::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        E::Install(e) if e.is_refusal() => (StatusCode::UNPROCESSABLE_ENTITY, "package_refused"),
        E::Install(InstallError::Io { .. }) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "install_failed")
        }
        E::Install(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_package"),
        E::Trust { .. } => (StatusCode::FORBIDDEN, "trust_refused"),
        E::ConsentRequired { .. } => (StatusCode::PRECONDITION_REQUIRED, "consent_required"),
        E::AcknowledgementMissing { .. } => (
            StatusCode::PRECONDITION_REQUIRED,
            "acknowledgement_required",
        ),
        E::UnknownAcknowledgement { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_acknowledgement")
        }
        E::Tampered { .. } => (StatusCode::CONFLICT, "tampered"),
        E::VersionNotInstalled { .. } => (StatusCode::NOT_FOUND, "version_not_installed"),
        E::WrongPlugin { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_plugin"),
        E::NotAnUpgrade { .. } => (StatusCode::CONFLICT, "not_an_upgrade"),
        E::SourceRequired { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "source_required"),
        E::Load { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "load_failed"),
        E::LoadTimedOut { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "load_timed_out"),
        E::LoadInProgress { .. } => (StatusCode::CONFLICT, "load_in_progress"),
        E::ChangedMeanwhile { .. } => (StatusCode::CONFLICT, "changed_meanwhile"),
        E::NotWhatWasReviewed { .. } => (StatusCode::CONFLICT, "not_what_was_reviewed"),
        E::UnknownAgent(_) => (StatusCode::NOT_FOUND, "unknown_agent"),
        E::UnknownRequest(_) => (StatusCode::NOT_FOUND, "unknown_request"),
        E::RequestDecided { .. } => (StatusCode::CONFLICT, "request_decided"),
        E::GrantRefused { .. } => (StatusCode::CONFLICT, "grant_refused"),
        // Handled inside the manager; never returned by a public operation.
        E::NotPreloaded { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "not_loaded"),
        E::ExecutionRefused { .. } => (StatusCode::CONFLICT, "execution_refused"),
        E::InvalidLimit { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_limit"),
        E::Registry { .. } => (StatusCode::CONFLICT, "contribution_conflict"),
        E::StaleLibrary { .. } => (StatusCode::CONFLICT, "restart_required"),
        E::InvalidConfig { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_config"),
        E::UndeclaredSecret { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "undeclared_secret"),
        E::EmptySecret { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_secret"),
        E::SecretUnreadable { .. } => (StatusCode::CONFLICT, "secret_unreadable"),
        E::TrustSettings(t) => {
            use nitejar_core::lifecycle::{TrustEntryKind as K, TrustSettingsError as T};
            match t {
                T::Invalid { kind: K::Key, .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_trusted_key")
                }
                T::Invalid { kind: K::Allow, .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_allowlist_entry")
                }
                T::Duplicate { .. } => (StatusCode::CONFLICT, "already_trusted"),
                T::KeyIdTaken { .. } => (StatusCode::CONFLICT, "key_id_taken"),
                T::NotFound { .. } => (StatusCode::NOT_FOUND, "trust_entry_not_found"),
                T::FromEnvironment { .. } => (StatusCode::CONFLICT, "set_by_environment"),
                T::Locked => (StatusCode::CONFLICT, "trust_settings_locked"),
            }
        }
        E::Store(_) | E::Io { .. } | E::Corrupt { .. } | E::Task(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

/// The request field that carries a trusted key or an allowlist entry.
pub fn trust_field(kind: nitejar_core::lifecycle::TrustEntryKind) -> &'static str {
    match kind {
        nitejar_core::lifecycle::TrustEntryKind::Key => "publicKey",
        nitejar_core::lifecycle::TrustEntryKind::Allow => "entry",
    }
}

/// The message of a lifecycle error in the API's terms: where the core's message tells a CLI user
/// which flag to add, the API says which field to send (the CLI keeps the core's text).
/// A lifecycle error as the admin UI says it: in the page's terms (its buttons, boxes and
/// fields) where the core's message names the CLI's flags.
pub fn ui_message(e: &LifecycleError) -> String {
    use LifecycleError as E;
    match e {
        E::NotAnUpgrade { current, new, .. } if current == new => e.to_string(),
        E::NotAnUpgrade {
            id, current, new, ..
        } => format!(
            "`{id}` is at {current}; the package is {new}. To go back to an installed version, \
             use its \u{201c}Roll back to\u{201d} button under Versions on this plugin's page"
        ),
        E::ConsentRequired { id, .. } => format!(
            "`{id}` needs your explicit consent to this version: read the consent text, tick \
             the consent box and submit again"
        ),
        E::AcknowledgementMissing { id, mode, missing } => format!(
            "`{id}`: {mode} mode requires every declared permission to be acknowledged; not \
             acknowledged: {}. Tick the box of each and submit again",
            missing.join(", ")
        ),
        E::EmptySecret { id, name } => format!(
            "the secret `{name}` of `{id}` was given an empty value; nothing was saved. To \
             remove its stored value, tick \u{201c}Remove the stored value\u{201d} under its field"
        ),
        E::SecretUnreadable { id, name, .. } => format!(
            "the stored secret `{name}` of `{id}` cannot be decrypted with this server's \
             ENCRYPTION_KEY; type its value again in this plugin's Settings and save"
        ),
        _ => e.to_string(),
    }
}

pub fn api_message(e: &LifecycleError) -> String {
    use LifecycleError as E;
    match e {
        E::NotInstalled(id) => {
            format!("plugin `{id}` is not installed; GET /api/admin/plugins lists what is")
        }
        E::AlreadyInstalled { id, version } => format!(
            "plugin `{id}` is already installed at version {version}; POST \
             /api/admin/plugins/{id}/upgrade installs another version"
        ),
        E::ConsentRequired { id, .. } => format!(
            "`{id}` needs your explicit consent to this version: read error.details.consentText \
             (and details.diff, what it adds), then send the request again with \
             \"acceptConsent\": true"
        ),
        E::AcknowledgementMissing { id, mode, missing } => format!(
            "`{id}`: {mode} mode requires every declared permission to be acknowledged; not \
             acknowledged: {}. Send the request again with \"acknowledgeAll\": true, or list \
             them in \"acknowledge\"",
            missing.join(", ")
        ),
        E::NotAnUpgrade { current, new, .. } if current == new => e.to_string(),
        E::NotAnUpgrade {
            id, current, new, ..
        } => format!(
            "`{id}` is at {current}; the package is {new}. To go back to an installed version, \
             POST /api/admin/plugins/{id}/rollback with {{\"version\": …}}"
        ),
        E::InvalidConfig { id, problems } => format!(
            "the config of `{id}` was not saved: {}. error.details lists each problem with its \
             field",
            problems
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        E::EmptySecret { id, name } => format!(
            "the secret `{name}` of `{id}` was sent empty; nothing was saved. Send \
             \"{name}\": null in \"secrets\" to remove its stored value"
        ),
        E::SecretUnreadable { id, name, .. } => format!(
            "the stored secret `{name}` of `{id}` cannot be decrypted with this server's \
             ENCRYPTION_KEY; set it again: PUT /api/admin/plugins/{id}/config with \
             {{\"secrets\": {{\"{name}\": …}}}}"
        ),
        E::TrustSettings(nitejar_core::lifecycle::TrustSettingsError::Invalid {
            kind,
            problem,
        }) => {
            format!(
                "`{}`: the {} {problem}; nothing was changed",
                trust_field(*kind),
                kind.noun()
            )
        }
        E::SourceRequired { id, kind } => format!(
            "`{id}` was installed from {kind}; give the new package: POST \
             /api/admin/plugins/{id}/upgrade with \"source\", or upload it"
        ),
        e => e.to_string(),
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> ApiError {
        let (status, code) = error_status(&e);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal(e);
        }
        let details = match &e {
            LifecycleError::ConsentRequired { text, diff, .. } => {
                Some(json!({ "consentText": text, "diff": diff }))
            }
            LifecycleError::AcknowledgementMissing { missing, .. } => {
                Some(json!({ "missing": missing }))
            }
            LifecycleError::UnknownAcknowledgement { declared, .. } => {
                Some(json!({ "declared": declared }))
            }
            LifecycleError::VersionNotInstalled { installed, .. } => {
                Some(json!({ "installed": installed }))
            }
            LifecycleError::InvalidConfig { problems, .. } => Some(json!(problems)),
            LifecycleError::TrustSettings(
                nitejar_core::lifecycle::TrustSettingsError::Invalid { kind, problem },
            ) => Some(json!([{ "path": format!("/{}", trust_field(*kind)), "message": problem }])),
            LifecycleError::UndeclaredSecret {
                names, declared, ..
            } => Some(json!({ "undeclared": names, "declared": declared })),
            _ => None,
        };
        let error = ApiError::new(status, code, api_message(&e));
        match details {
            Some(d) => error.with_details(d),
            None => error,
        }
    }
}
