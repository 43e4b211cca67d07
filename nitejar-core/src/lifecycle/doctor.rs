//! `doctor`: every check an operator would run by hand, each problem with its fix.

use std::path::Path;

use serde::Serialize;

use super::activate::read_manifest;
use super::{LifecycleError, PluginManager};
use crate::install::{digest_dir, layout::RESERVED_DIRS};
use crate::loader::{self, PluginPackage};
use crate::receipts::{ReceiptKind, ReceiptStatus};
use crate::store::PageRequest;
use crate::store::PluginRow;
use crate::trust::consent::ack_strings;
use crate::trust::TrustMode;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Not broken yet, or broken in a harmless way.
    Warning,
    /// A plugin will not (or does not) run as the operator expects.
    Error,
}

/// One problem, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The plugin, when it is about one.
    pub plugin: Option<String>,
    /// Which check (`digest`, `pointer`, `abi`, `engine`, `orphan`, `leak`, `trust`, …).
    pub check: &'static str,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

/// Everything `doctor` found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    /// The trust mode checked against.
    pub trust_mode: String,
    /// Plugins checked.
    pub plugins_checked: usize,
    /// What was found, worst first.
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    fn push(
        &mut self,
        severity: Severity,
        plugin: Option<&str>,
        check: &'static str,
        problem: String,
        fix: String,
    ) {
        self.findings.push(Finding {
            severity,
            plugin: plugin.map(str::to_string),
            check,
            problem,
            fix,
        });
    }
}

impl PluginManager {
    /// Checks installed plugins and the plugin directory: digests, `current` pointers, ABI
    /// compatibility (the library is opened, which runs its loader initialisers but no plugin
    /// code), engine ranges, the trust policy and acknowledgements, orphan directories, leftovers
    /// of interrupted installs and activations, and libraries a running server keeps loaded though
    /// no longer active.
    pub async fn doctor(&self) -> DoctorReport {
        let refreshed = self.refresh_trust().await;
        let policy = self.policy();
        let mut report = DoctorReport {
            trust_mode: policy.mode().as_str().to_string(),
            ..DoctorReport::default()
        };
        if let Err(e) = refreshed {
            report.push(
                Severity::Error,
                None,
                "database",
                format!("the trust settings cannot be read: {e}"),
                "check DATABASE_URL and that the database is reachable".into(),
            );
        }
        match policy.mode() {
            TrustMode::SelfHostOpen => report.push(
                Severity::Info,
                None,
                "trust",
                "self_host_open: unsigned plugins can be enabled; permissions are disclosed, not required to be acknowledged".into(),
                "set NITEJAR_PLUGIN_TRUST_MODE=self_host_guarded to require signatures or an allowlist".into(),
            ),
            TrustMode::SaasLocked if policy.keys().is_empty() => report.push(
                Severity::Warning,
                None,
                "trust",
                "saas_locked with no platform keys: no third-party plugin can be installed or enabled".into(),
                "set NITEJAR_PLUGIN_TRUSTED_KEYS to the platform's minisign public keys and restart".into(),
            ),
            mode if policy.keys().is_empty() && policy.allowlist().is_empty() => report.push(
                Severity::Warning,
                None,
                "trust",
                format!("{mode} with no trusted keys and an empty allowlist: no third-party plugin can be enabled"),
                "add a trusted key or an allowlist entry (admin Trust page, `nitejar plugin trust key add` / `allow add`, or NITEJAR_PLUGIN_TRUSTED_KEYS / NITEJAR_PLUGIN_ALLOWLIST)".into(),
            ),
            _ => {}
        }
        let rows = match self.store.list_plugins().await {
            Ok(rows) => rows,
            Err(e) => {
                report.push(
                    Severity::Error,
                    None,
                    "database",
                    format!("the plugins cannot be read: {e}"),
                    "check DATABASE_URL and that the database is reachable".into(),
                );
                return report;
            }
        };
        for row in &rows {
            if row.source_kind == "builtin" || row.current_version.is_none() {
                continue;
            }
            report.plugins_checked += 1;
            self.check_plugin(row, &mut report).await;
            self.check_settings(row, &mut report).await;
        }
        for row in &rows {
            if row.source_kind != "builtin" {
                self.check_leftover_versions(row, &mut report).await;
            }
        }
        self.check_directories(&rows, &mut report).await;
        self.check_leaks(&mut report);
        report
            .findings
            .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.plugin.cmp(&b.plugin)));
        report
    }

    async fn check_plugin(&self, row: &PluginRow, report: &mut DoctorReport) {
        let id = row.id.as_str();
        let version = row.current_version.clone().unwrap_or_default();
        let Ok(Some(version_row)) = self.store.get_plugin_version(id, &version).await else {
            report.push(
                Severity::Error,
                Some(id),
                "version",
                format!("current version {version} has no plugin_versions row"),
                format!("reinstall it: `nitejar plugin uninstall {id} --purge-files` then `nitejar plugin install <source>`"),
            );
            return;
        };
        let layout = self.layout();
        let dir = layout.version_dir(id, &version);
        if !dir.is_dir() {
            let stored = matches!(
                self.store.get_plugin_artifact(id, &version).await,
                Ok(Some(_))
            );
            if stored {
                report.push(
                    Severity::Warning,
                    Some(id),
                    "files",
                    format!("{} is missing on this machine", dir.display()),
                    "nothing to do: the server materialises it from the stored package when it activates the plugin".into(),
                );
            } else {
                report.push(
                    Severity::Error,
                    Some(id),
                    "files",
                    format!("{} is missing and no package is stored in the database", dir.display()),
                    format!("reinstall it: `nitejar plugin install <source>` after `nitejar plugin uninstall {id} --purge-files`"),
                );
            }
            return;
        }
        if layout.current_version(id).as_deref() != Some(version.as_str()) {
            report.push(
                Severity::Warning,
                Some(id),
                "pointer",
                format!(
                    "plugins/{id}/current points at {}, but the database says {version}",
                    layout.current_version(id).map(|v| format!("versions/{v}")).unwrap_or_else(|| "nothing".into())
                ),
                format!("the server repairs it when it activates the plugin; or run `nitejar plugin rollback {id} --to {version}`"),
            );
        }
        match digest_dir(&dir) {
            Ok(actual) if actual == version_row.checksum => {}
            Ok(actual) => report.push(
                Severity::Error,
                Some(id),
                "digest",
                format!("{id}@{version} changed on disk after install (digest {actual}, installed {})", version_row.checksum),
                format!("restore it from the stored package: `nitejar plugin uninstall {id} --purge-files` then install it again; or roll back to another version"),
            ),
            Err(e) => report.push(
                Severity::Error,
                Some(id),
                "digest",
                format!("{} cannot be read: {e}", dir.display()),
                "fix the file permissions of the data directory".into(),
            ),
        }
        let manifest = match read_manifest(&dir) {
            Ok(m) => m,
            Err(problem) => {
                report.push(
                    Severity::Error,
                    Some(id),
                    "engine",
                    format!("{id}@{version} is not valid for this server: {problem}"),
                    format!("upgrade it to a version built for Nitejar {} (`nitejar plugin upgrade {id} <source>`)", crate::NITEJAR_VERSION),
                );
                return;
            }
        };
        if manifest.entry.is_some() {
            let package = PluginPackage::new(&dir, manifest.clone());
            let opened = package.library_path().and_then(|path| loader::open(&path));
            if let Err(e) = opened {
                report.push(
                    Severity::Error,
                    Some(id),
                    "abi",
                    e.to_string(),
                    format!("install a build made with this server's nitejar-sdk: `nitejar plugin upgrade {id} <source>`"),
                );
            }
        }
        if row.enabled {
            if let Err(e) = self.judge_enable(id, &version_row.checksum, &dir) {
                let (problem, fix) = match e {
                    super::LifecycleError::Trust { refusal, .. } => (refusal.reason, refusal.fix),
                    other => (other.to_string(), "see the message".into()),
                };
                report.push(Severity::Error, Some(id), "trust", problem, fix);
            }
            if self.options.policy.mode().requires_acknowledgement() {
                let acked: Vec<String> = self
                    .store
                    .list_disclosure_acks(id)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a.acknowledged)
                    .map(|a| a.permission)
                    .collect();
                let missing: Vec<String> = ack_strings(&manifest.permissions)
                    .into_iter()
                    .filter(|p| !acked.contains(p))
                    .collect();
                if !missing.is_empty() {
                    report.push(
                        Severity::Error,
                        Some(id),
                        "acknowledgement",
                        format!(
                            "declared permissions not acknowledged: {}",
                            missing.join(", ")
                        ),
                        format!("`nitejar plugin enable {id} --accept-consent --ack-all`"),
                    );
                }
            }
        }
        if let Some(error) = &row.last_load_error {
            report.push(
                Severity::Error,
                Some(id),
                "state",
                error.clone(),
                format!("fix the cause, then `nitejar plugin enable {id} --accept-consent`"),
            );
        }
        if layout.activation_marker(id).exists() {
            report.push(
                Severity::Warning,
                Some(id),
                "marker",
                format!("plugins/{id}/.activating is present: an activation is running now or a process died during one"),
                "if no server or CLI is running, the next boot skips and disables the plugin and reports it".into(),
            );
        }
    }

    async fn check_directories(&self, rows: &[PluginRow], report: &mut DoctorReport) {
        let layout = self.layout();
        let Ok(entries) = std::fs::read_dir(layout.plugins_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if RESERVED_DIRS.contains(&name.as_str()) || !entry.path().is_dir() {
                continue;
            }
            let Some(row) = rows.iter().find(|r| r.id == name) else {
                report.push(
                    Severity::Warning,
                    Some(&name),
                    "orphan",
                    format!("plugins/{name} belongs to no installed plugin"),
                    format!("remove it: `rm -rf {}`", entry.path().display()),
                );
                continue;
            };
            let versions: Vec<String> = self
                .store
                .list_plugin_versions(&row.id)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.version)
                .collect();
            if let Ok(dirs) = std::fs::read_dir(layout.versions_dir(&name)) {
                for dir in dirs.flatten() {
                    let version = dir.file_name().to_string_lossy().into_owned();
                    if !versions.contains(&version) {
                        report.push(
                            Severity::Warning,
                            Some(&name),
                            "orphan",
                            format!("plugins/{name}/versions/{version} is not a registered version"),
                            format!("remove it: `nitejar plugin doctor --remove-leftovers` (or `rm -rf {}`)", dir.path().display()),
                        );
                    }
                }
            }
        }
        let stale = |p: &Path| {
            p.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 600)
        };
        for dir in [layout.staging_dir(), layout.cache_dir()] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if stale(&entry.path()) {
                    report.push(
                        Severity::Warning,
                        None,
                        "orphan",
                        format!(
                            "{} is left over from an interrupted install",
                            entry.path().display()
                        ),
                        format!("remove it: `rm -rf {}`", entry.path().display()),
                    );
                }
            }
        }
    }

    fn check_leaks(&self, report: &mut DoctorReport) {
        let file = self.layout().loaded_libraries_file();
        let Ok(text) = std::fs::read_to_string(&file) else {
            return;
        };
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        let pid = doc["pid"].as_u64().unwrap_or(0);
        if pid as u32 != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            return;
        }
        let leaked: Vec<&serde_json::Value> = doc["libraries"]
            .as_array()
            .map(|a| a.iter().filter(|l| l["active"] == false).collect())
            .unwrap_or_default();
        if leaked.is_empty() {
            return;
        }
        let bytes: u64 = leaked.iter().filter_map(|l| l["sizeBytes"].as_u64()).sum();
        let names: Vec<String> = leaked
            .iter()
            .map(|l| {
                format!(
                    "{}@{}",
                    l["pluginId"].as_str().unwrap_or("?"),
                    l["version"].as_str().unwrap_or("?")
                )
            })
            .collect();
        report.push(
            Severity::Info,
            None,
            "leak",
            format!(
                "the server (pid {pid}) keeps {} plugin version(s) loaded that are no longer active ({}; {} KiB): libraries are never unloaded",
                leaked.len(),
                names.join(", "),
                bytes / 1024
            ),
            "nothing is wrong; restart the server to reclaim the memory".into(),
        );
    }

    /// Stored secrets this server's `ENCRYPTION_KEY` cannot decrypt, and a stored config that no
    /// longer fits the schema the current version declares (after an upgrade).
    async fn check_settings(&self, row: &PluginRow, report: &mut DoctorReport) {
        let id = row.id.as_str();
        match self.stored_secrets(id).await {
            Ok((_, unreadable)) => {
                for (env_var, error) in unreadable {
                    let name = match &error {
                        super::LifecycleError::SecretUnreadable { name, .. } => name.clone(),
                        _ => env_var.clone(),
                    };
                    report.push(
                        Severity::Error,
                        Some(id),
                        "secret",
                        format!("the stored secret `{name}` cannot be decrypted with this ENCRYPTION_KEY (it was stored with another key): the plugin cannot be loaded with its settings"),
                        format!("set it again: `nitejar plugin config {id} set --secret {name}` (or in the plugin's Settings in the admin); or start the server with the ENCRYPTION_KEY it was stored with"),
                    );
                }
            }
            Err(e) => report.push(
                Severity::Error,
                Some(id),
                "database",
                format!("the stored secrets cannot be read: {e}"),
                "check DATABASE_URL and that the database is reachable".into(),
            ),
        }
        if let Ok(settings) = self.settings(id).await {
            if !settings.problems.is_empty() {
                let problems: Vec<String> =
                    settings.problems.iter().map(ToString::to_string).collect();
                report.push(
                    Severity::Error,
                    Some(id),
                    "config",
                    format!(
                        "the stored config does not fit the settings version {} declares: {}",
                        settings.version,
                        problems.join("; ")
                    ),
                    format!("change it to fit: `nitejar plugin config {id} edit` (or the plugin's Settings in the admin); or roll back to the version it was written for"),
                );
            }
        }
    }

    /// Versions of a plugin that are neither current nor explained by a receipt (an install or
    /// upgrade that made them current, a rollback to or from them): what a failed install or
    /// upgrade left behind. Only versions older than ten minutes, so an upgrade in progress is not
    /// taken for one.
    pub(crate) async fn leftover_versions(
        &self,
        row: &PluginRow,
    ) -> Result<Vec<String>, LifecycleError> {
        let versions = self.store.list_plugin_versions(&row.id).await?;
        let old = crate::receipts::now_ms() - 600_000;
        let candidates: Vec<String> = versions
            .into_iter()
            .filter(|v| row.current_version.as_deref() != Some(v.version.as_str()))
            .filter(|v| v.installed_at < old)
            .map(|v| v.version)
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let receipts = self
            .store
            .list_plugin_events(&row.id, PageRequest::first(500))
            .await?;
        let mut explained = std::collections::HashSet::new();
        for r in &receipts.items {
            if r.status != "ok" || !matches!(r.kind.as_str(), "install" | "upgrade" | "rollback") {
                continue;
            }
            if let Some(v) = &r.plugin_version {
                explained.insert(v.clone());
            }
            if let Some(detail) = r.detail() {
                for key in ["from", "to"] {
                    if let Some(v) = detail[key].as_str() {
                        explained.insert(v.to_string());
                    }
                }
            }
        }
        Ok(candidates
            .into_iter()
            .filter(|v| !explained.contains(v))
            .collect())
    }

    async fn check_leftover_versions(&self, row: &PluginRow, report: &mut DoctorReport) {
        let id = row.id.as_str();
        match self.leftover_versions(row).await {
            Ok(leftovers) => {
                for version in leftovers {
                    report.push(
                        Severity::Warning,
                        Some(id),
                        "leftover",
                        format!("{id}@{version} is installed but was never made current: no install, upgrade or rollback receipt explains it (a failed install or upgrade left it)"),
                        "remove it: `nitejar plugin doctor --remove-leftovers` (its row, stored package and directory)".into(),
                    );
                }
            }
            Err(e) => report.push(
                Severity::Error,
                Some(id),
                "database",
                format!("the versions and receipts cannot be read: {e}"),
                "check DATABASE_URL and that the database is reachable".into(),
            ),
        }
    }

    /// Removes what [`Self::doctor`] reports as left over: version rows (with their stored packages
    /// and consents) and version directories that nothing explains. Never a current version. Each
    /// removal is an `uninstall` receipt of that version. Returns what was removed.
    pub async fn remove_leftovers(&self) -> Result<Vec<String>, LifecycleError> {
        let _op = self.ops.lock().await;
        let rows = self.store.list_plugins().await?;
        let mut removed = Vec::new();
        for row in rows.iter().filter(|r| r.source_kind != "builtin") {
            for version in self.leftover_versions(row).await? {
                self.store.delete_plugin_version(&row.id, &version).await?;
                let dir = self.layout().version_dir(&row.id, &version);
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(LifecycleError::io("remove", &dir)(e))
                    }
                    _ => {}
                }
                self.receipt(
                    &row.id,
                    Some(&version),
                    ReceiptKind::Uninstall,
                    ReceiptStatus::Ok,
                    serde_json::json!({ "leftover": true, "reason": "removed by doctor: never made current" }),
                )
                .await;
                removed.push(format!("{}@{version}", row.id));
            }
            // Directories without a version row.
            let versions: Vec<String> = self
                .store
                .list_plugin_versions(&row.id)
                .await?
                .into_iter()
                .map(|v| v.version)
                .collect();
            if let Ok(dirs) = std::fs::read_dir(self.layout().versions_dir(&row.id)) {
                for dir in dirs.flatten() {
                    let version = dir.file_name().to_string_lossy().into_owned();
                    if versions.contains(&version) {
                        continue;
                    }
                    std::fs::remove_dir_all(dir.path())
                        .map_err(LifecycleError::io("remove", dir.path()))?;
                    removed.push(format!("plugins/{}/versions/{version}", row.id));
                }
            }
        }
        Ok(removed)
    }
}
