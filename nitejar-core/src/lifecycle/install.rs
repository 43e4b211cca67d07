//! Install and upgrade: a package through the pipeline, its rows, its version directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use semver::Version;
use serde::Serialize;
use serde_json::{json, Value};

use super::consent::ConsentBasis;
use super::operations::{Acknowledge, EnableRequest};
use super::{LifecycleError, PluginManager};
use crate::install::{InstallSource, NpmSpec, StagedPackage, SIGNATURE_FILE};
use crate::receipts::{now_ms, ReceiptKind, ReceiptStatus};
use crate::store::{PluginArtifact, PluginRow, PluginVersionRow};
use crate::trust::consent::{added_permissions, consent_diff, consent_set, ConsentDiff};
use crate::trust::{disclose, DisclosedPermission, SignatureCheck, Verdict};

/// What `install` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallOutcome {
    /// The plugin.
    pub id: String,
    /// The installed version.
    pub version: String,
    /// Its content digest.
    pub digest: String,
    /// `local`, `upload`, `npm`, `git`.
    pub source_kind: String,
    /// The exact source (path, file, `name@version (integrity)`, `url#commit`).
    pub source_ref: String,
    /// The version directory.
    pub dir: PathBuf,
    /// The same version with the same digest was installed already.
    pub already_installed: bool,
    /// What its signature says.
    pub signature: String,
    /// `trusted` or `untrusted`.
    pub trust_level: String,
    /// The declared permissions.
    pub permissions: Vec<DisclosedPermission>,
    /// Manifest notes (ignored engine keys, …).
    pub notes: Vec<String>,
    /// What stands between this plugin and being enabled under the current trust mode, if anything.
    pub enable_blocker: Option<String>,
}

/// What `upgrade` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeOutcome {
    /// The plugin.
    pub id: String,
    /// The version before.
    pub from: String,
    /// The version now current.
    pub to: String,
    /// The new version's digest.
    pub digest: String,
    /// Permissions the new version declares that the old one did not.
    pub added_permissions: Vec<DisclosedPermission>,
    /// What the new version adds to and drops from the consented set (permissions, hooks,
    /// integration types, skills).
    pub consent_diff: ConsentDiff,
    /// Whether the new version is active in this process's runtime (the plugin is enabled).
    pub activated: bool,
}

/// What an upgrade would do, before it is done ([`PluginManager::plan_upgrade`]).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    /// The plugin.
    pub id: String,
    /// The current version.
    pub from: String,
    /// The version it would install.
    pub to: String,
    /// That package's digest.
    pub digest: String,
    /// `npm`, `git`, `local` or `upload`.
    pub source_kind: String,
    /// Exactly what was read: `name@version (integrity)`, `url#commit`, a path or a file name.
    pub source_ref: String,
    /// Whether the operator must consent (it adds to what the current version's consent covers).
    pub needs_consent: bool,
    /// Permissions it declares that the current version does not.
    pub added_permissions: Vec<DisclosedPermission>,
    /// What it adds to and drops from the consented set.
    pub consent_diff: ConsentDiff,
    /// The consent text the operator would accept.
    pub consent_text: String,
}

/// A new version judged against the current one, nothing of it registered.
struct UpgradeJudged {
    judged: Judged,
    current: String,
    new: String,
    new_manifest: nitejar_sdk::manifest::Manifest,
    added: Vec<DisclosedPermission>,
    diff: ConsentDiff,
    text: String,
    /// The plugin was never enabled: its enable asks consent, not the upgrade.
    never_consented: bool,
}

/// A staged package judged by the trust policy.
struct Judged {
    staged: StagedPackage,
    check: SignatureCheck,
    verdict: Verdict,
}

impl PluginManager {
    /// Installs a package: fetch, stage, validate, digest, trust policy, rows, artifact, version
    /// directory, `current`. The plugin ends up installed and **disabled**. Installing the same
    /// version with the same contents again is a no-op; a plugin installed at another version needs
    /// [`upgrade`](Self::upgrade).
    pub async fn install(&self, source: InstallSource) -> Result<InstallOutcome, LifecycleError> {
        let _op = self.ops.lock().await;
        let started = Instant::now();
        let shown = source.to_string();
        let mut known: Option<(String, String)> = None;
        let result = self.install_inner(source, &mut known).await;
        let (id, version) = known.unwrap_or_else(|| (install_receipt_id(&shown), String::new()));
        let version = Some(version.as_str()).filter(|v| !v.is_empty());
        match &result {
            Ok(outcome) => {
                let detail = json!({
                    "source": shown, "sourceKind": outcome.source_kind, "sourceRef": outcome.source_ref,
                    "digest": outcome.digest, "signature": outcome.signature,
                    "trustLevel": outcome.trust_level, "alreadyInstalled": outcome.already_installed,
                    "durationMs": started.elapsed().as_millis() as u64,
                });
                self.receipt(
                    &id,
                    version,
                    ReceiptKind::Install,
                    ReceiptStatus::Ok,
                    detail,
                )
                .await;
            }
            Err(e) => {
                self.refusal_receipt(
                    &id,
                    version,
                    ReceiptKind::Install,
                    e,
                    json!({ "source": shown }),
                )
                .await
            }
        }
        result
    }

    async fn install_inner(
        &self,
        source: InstallSource,
        known: &mut Option<(String, String)>,
    ) -> Result<InstallOutcome, LifecycleError> {
        self.refresh_trust().await?;
        let judged = self.stage_and_judge(source, known).await?;
        let id = judged.staged.id().to_string();
        let version = judged.staged.version().to_string();
        let existing = self.store.get_plugin(&id).await?;
        if let Some(row) = &existing {
            if let Some(current) = &row.current_version {
                if *current == version
                    && row.current_checksum.as_deref() == Some(&judged.staged.digest)
                {
                    let dir = self.layout().version_dir(&id, &version);
                    self.adopt_signature(row, &judged, &dir).await?;
                    return Ok(self.outcome(&judged, dir, true));
                }
                return Err(LifecycleError::AlreadyInstalled {
                    id,
                    version: current.clone(),
                });
            }
        }
        let now = now_ms();
        let manifest = &judged.staged.manifest.manifest;
        let row = PluginRow {
            id: id.clone(),
            name: manifest.name.clone(),
            enabled: false,
            trust_level: judged.verdict.trust_level().to_string(),
            source_kind: judged.staged.source_kind.to_string(),
            source_ref: Some(judged.staged.source_ref.clone()),
            current_version: Some(version.clone()),
            current_checksum: Some(judged.staged.digest.clone()),
            current_install_path: Some(
                self.layout()
                    .version_dir(&id, &version)
                    .display()
                    .to_string(),
            ),
            manifest_json: manifest_json(manifest),
            config_json: existing.as_ref().and_then(|r| r.config_json.clone()),
            config_revision: existing.as_ref().map_or(0, |r| r.config_revision),
            execution_mode: existing.as_ref().and_then(|r| r.execution_mode.clone()),
            memory_limit_mib: existing.as_ref().and_then(|r| r.memory_limit_mib),
            cpu_limit_seconds: existing.as_ref().and_then(|r| r.cpu_limit_seconds),
            last_load_error: None,
            last_error_kind: None,
            last_loaded_at: None,
            installed_at: existing.as_ref().map(|r| r.installed_at).unwrap_or(now),
            updated_at: now,
        };
        let (dir, reused) = self
            .register(&judged, Some(&row), existing.is_none())
            .await?;
        self.layout()
            .set_current(&id, &version)
            .map_err(LifecycleError::io(
                "point `current` at",
                self.layout().current_link(&id),
            ))?;
        Ok(self.outcome(&judged, dir, reused))
    }

    /// The same contents installed again, now signed: the signature (outside the digest, so the
    /// version's contents stay as they were) is kept beside the installed version and in its stored
    /// package, and the plugin's trust level follows — a signed build of an installed version no
    /// longer needs an uninstall to be recognised, and one signed by a key not trusted yet is
    /// recognised once the key is.
    async fn adopt_signature(
        &self,
        row: &PluginRow,
        judged: &Judged,
        dir: &Path,
    ) -> Result<(), LifecycleError> {
        let Some(signature) = &judged.staged.signature else {
            return Ok(());
        };
        let path = dir.join(SIGNATURE_FILE);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(signature.as_str()) {
            return Ok(());
        }
        let keep = match &judged.check {
            SignatureCheck::Trusted { .. } => true,
            // Signed by a key not trusted yet: kept, so that trusting the key later is enough
            // (every judgement reads the signature again, against the keys of then) — unless
            // what is installed is signed by a key trusted now.
            SignatureCheck::UnknownKey { .. } => {
                let installed = std::fs::read_to_string(&path).ok();
                let check = self
                    .policy()
                    .check_signature(installed.as_deref(), &judged.staged.digest);
                !matches!(check, SignatureCheck::Trusted { .. })
            }
            // A signature that does not match, or cannot be read, proves nothing anywhere.
            _ => false,
        };
        if !keep {
            return Ok(());
        }
        std::fs::write(&path, signature).map_err(LifecycleError::io("write", &path))?;
        let version = judged.staged.version().to_string();
        if let Some(mut version_row) = self.store.get_plugin_version(&row.id, &version).await? {
            version_row.signature_json = Some(judged.check.to_json().to_string());
            self.store.upsert_plugin_version(&version_row).await?;
        }
        self.store
            .put_plugin_artifact(&PluginArtifact {
                plugin_id: row.id.clone(),
                version: judged.staged.version().to_string(),
                bytes: judged.staged.archive.clone(),
                checksum: judged.staged.digest.clone(),
                created_at: now_ms(),
            })
            .await?;
        let mut updated = row.clone();
        updated.trust_level = judged.verdict.trust_level().to_string();
        // A trust refusal recorded under the old (unsigned) judgement no longer holds when the
        // policy accepts the signed build; the plugin runs again at the next reconciliation.
        if updated.refused_by_trust()
            && self
                .policy()
                .judge_enable(&row.id, &judged.staged.digest, &judged.check)
                .is_ok()
        {
            updated.clear_error();
        }
        updated.updated_at = now_ms();
        self.store.upsert_plugin(&updated).await?;
        Ok(())
    }

    async fn stage_and_judge(
        &self,
        source: InstallSource,
        known: &mut Option<(String, String)>,
    ) -> Result<Judged, LifecycleError> {
        // saas_locked: nothing is read from the server's own disk, not even to look at it.
        if self.options.policy.mode() == crate::trust::TrustMode::SaasLocked
            && source.reads_server_files()
        {
            return Err(LifecycleError::Trust {
                id: source.to_string(),
                action: "install",
                refusal: crate::trust::Refusal {
                    reason: format!(
                        "the server runs in saas_locked mode, which refuses sources on the server's \
                         own disk (`{source}`)"
                    ),
                    fix: "only built-ins and platform-signed plugins from npm or git over https \
                          can be installed here"
                        .into(),
                },
            });
        }
        let installer = self.installer.clone();
        let staged = Self::blocking(move || installer.stage(source)).await??;
        *known = Some((staged.id().to_string(), staged.version().to_string()));
        let policy = self.policy();
        let check = policy.check_signature(staged.signature.as_deref(), &staged.digest);
        let verdict = policy
            .judge_install(staged.id(), staged.source_kind, &staged.digest, &check)
            .map_err(|refusal| LifecycleError::Trust {
                id: staged.id().to_string(),
                action: "install",
                refusal,
            })?;
        Ok(Judged {
            staged,
            check,
            verdict,
        })
    }

    /// Writes the rows (the plugin row when given, the version row, the artifact) and moves the
    /// package into its version directory. On failure nothing of it stays.
    async fn register(
        &self,
        judged: &Judged,
        row: Option<&PluginRow>,
        new_plugin: bool,
    ) -> Result<(PathBuf, bool), LifecycleError> {
        let staged = &judged.staged;
        let (id, version) = (staged.id(), staged.version());
        if let Some(existing) = self.store.get_plugin_version(id, version).await? {
            if existing.checksum != staged.digest {
                return Err(crate::install::InstallError::VersionExists {
                    id: id.to_string(),
                    version: version.to_string(),
                    existing: existing.checksum,
                    new: staged.digest.clone(),
                }
                .into());
            }
        }
        // Refuse a different build of an existing version directory before touching the database.
        let layout = self.layout().clone();
        let on_disk = staged.existing(&layout)?;
        let now = now_ms();
        let version_row = PluginVersionRow {
            plugin_id: id.to_string(),
            version: version.to_string(),
            checksum: staged.digest.clone(),
            install_path: layout.version_dir(id, version).display().to_string(),
            manifest_json: manifest_json(&staged.manifest.manifest),
            signature_json: Some(judged.check.to_json().to_string()),
            installed_at: now,
        };
        let artifact = PluginArtifact {
            plugin_id: id.to_string(),
            version: version.to_string(),
            bytes: staged.archive.clone(),
            checksum: staged.digest.clone(),
            created_at: now,
        };
        let written = async {
            if let Some(row) = row {
                self.store.upsert_plugin(row).await?;
            }
            self.store.upsert_plugin_version(&version_row).await?;
            self.store.put_plugin_artifact(&artifact).await
        }
        .await;
        if let Err(e) = written {
            if new_plugin {
                let _ = self.store.delete_plugin(id).await;
            }
            return Err(e.into());
        }
        if let Some(dir) = on_disk {
            return Ok((dir, true));
        }
        // The staged package moves with one rename; its staging directory goes when it drops.
        let staged_root = staged.root().to_path_buf();
        let target = layout.version_dir(id, version);
        let versions = layout.versions_dir(id);
        let moved =
            std::fs::create_dir_all(&versions).and_then(|_| std::fs::rename(&staged_root, &target));
        if let Err(e) = moved {
            if new_plugin {
                let _ = self.store.delete_plugin(id).await;
            }
            return Err(LifecycleError::io("move the package to", &target)(e));
        }
        Ok((target, false))
    }

    fn outcome(&self, judged: &Judged, dir: PathBuf, already_installed: bool) -> InstallOutcome {
        let staged = &judged.staged;
        let blocker = self
            .policy()
            .judge_enable(staged.id(), &staged.digest, &judged.check)
            .err()
            .map(|r| r.to_string());
        InstallOutcome {
            id: staged.id().to_string(),
            version: staged.version().to_string(),
            digest: staged.digest.clone(),
            source_kind: staged.source_kind.to_string(),
            source_ref: staged.source_ref.clone(),
            dir,
            already_installed,
            signature: judged.check.describe(),
            trust_level: judged.verdict.trust_level().to_string(),
            permissions: disclose(&staged.manifest.manifest.permissions),
            notes: staged
                .manifest
                .notes
                .iter()
                .map(ToString::to_string)
                .collect(),
            enable_blocker: blocker,
        }
    }

    /// Installs a new version beside the current one and makes it current. Without a source, the
    /// plugin's own source is fetched again (npm: the `latest` tag; git: the default branch; a
    /// local path: the same path). A version that adds anything to what the current version's
    /// consent covers (a permission, a hook, an integration type, a skill) is refused — staged,
    /// judged, and nothing of it registered — until `request` accepts the difference; one that adds
    /// nothing carries the consent over. When the plugin is enabled, the new version is activated
    /// before `current` flips (a failure leaves the old version running). The old version stays
    /// installed (and loaded) for [`rollback`](Self::rollback).
    pub async fn upgrade(
        &self,
        id: &str,
        source: Option<InstallSource>,
        request: EnableRequest,
    ) -> Result<UpgradeOutcome, LifecycleError> {
        self.upgrade_checked(id, source, request, None).await
    }

    /// [`upgrade`](Self::upgrade), refused ([`LifecycleError::NotWhatWasReviewed`]) when the
    /// package `source` gives is not the one of digest `expect`.
    pub(crate) async fn upgrade_checked(
        &self,
        id: &str,
        source: Option<InstallSource>,
        request: EnableRequest,
        expect: Option<&str>,
    ) -> Result<UpgradeOutcome, LifecycleError> {
        let mut held = Some(self.ops.lock().await);
        let started = Instant::now();
        let result = self
            .upgrade_inner(id, source, &request, expect, &mut held)
            .await;
        match &result {
            Ok(outcome) => {
                let added: Vec<&str> = outcome
                    .added_permissions
                    .iter()
                    .map(|p| p.ack.as_str())
                    .collect();
                let detail = json!({
                    "from": outcome.from, "to": outcome.to, "digest": outcome.digest,
                    "addedPermissions": added, "activated": outcome.activated,
                    "durationMs": started.elapsed().as_millis() as u64,
                });
                self.receipt(
                    id,
                    Some(&outcome.to),
                    ReceiptKind::Upgrade,
                    ReceiptStatus::Ok,
                    detail,
                )
                .await;
            }
            Err(e) => {
                self.refusal_receipt(id, None, ReceiptKind::Upgrade, e, Value::Null)
                    .await
            }
        }
        result
    }

    /// What an upgrade of `id` from `source` (its own source when `None`, as for
    /// [`upgrade`](Self::upgrade)) would install and what it would need, without installing
    /// anything: the package is fetched, validated and judged by the trust policy, then dropped.
    /// The plan names the exact source it read (`name@version`, `url#commit`) and the package's
    /// digest, so that what is approved later is what was reviewed.
    pub async fn plan_upgrade(
        &self,
        id: &str,
        source: Option<InstallSource>,
    ) -> Result<UpgradePlan, LifecycleError> {
        let _op = self.ops.lock().await;
        let row = self.plugin_row(id).await?;
        let judged = self.judge_upgrade(&row, source, None).await?;
        Ok(UpgradePlan {
            id: id.to_string(),
            from: judged.current,
            to: judged.new,
            digest: judged.judged.staged.digest.clone(),
            source_kind: judged.judged.staged.source_kind.to_string(),
            source_ref: judged.judged.staged.source_ref.clone(),
            needs_consent: !(judged.never_consented || judged.diff.adds_nothing()),
            added_permissions: judged.added,
            consent_diff: judged.diff,
            consent_text: judged.text,
        })
    }

    /// The new version from `source` judged against `row`'s current one; nothing of it
    /// registered. `expect`: the digest it must have (what an operator reviewed).
    async fn judge_upgrade(
        &self,
        row: &PluginRow,
        source: Option<InstallSource>,
        expect: Option<&str>,
    ) -> Result<UpgradeJudged, LifecycleError> {
        let id = row.id.as_str();
        if row.source_kind == "builtin" {
            return Err(LifecycleError::Builtin {
                id: id.to_string(),
                action: "upgraded",
            });
        }
        let source = match source {
            Some(s) => s,
            None => source_again(row)?,
        };
        self.refresh_trust().await?;
        let mut known = None;
        let judged = self.stage_and_judge(source, &mut known).await?;
        if judged.staged.id() != id {
            return Err(LifecycleError::WrongPlugin {
                expected: id.to_string(),
                found: judged.staged.id().to_string(),
            });
        }
        if let Some(expected) = expect {
            if judged.staged.digest != expected {
                return Err(LifecycleError::NotWhatWasReviewed {
                    id: id.to_string(),
                    expected: expected.to_string(),
                    found: judged.staged.digest.clone(),
                });
            }
        }
        let current = row.current_version.clone().unwrap_or_default();
        let new = judged.staged.version().to_string();
        let ordering = match (Version::parse(&new), Version::parse(&current)) {
            (Ok(n), Ok(c)) => n.cmp(&c),
            _ => new.cmp(&current),
        };
        if ordering != std::cmp::Ordering::Greater {
            return Err(LifecycleError::NotAnUpgrade {
                id: id.to_string(),
                current,
                new,
                hint: if ordering == std::cmp::Ordering::Equal {
                    "Nothing to do."
                } else {
                    "To go back to an installed version, use `nitejar plugin rollback <id> --to <version>`."
                },
            });
        }
        let old_manifest: nitejar_sdk::manifest::Manifest =
            serde_json::from_str(&row.manifest_json).map_err(|e| LifecycleError::Corrupt {
                id: id.to_string(),
                what: "manifest",
                reason: e.to_string(),
            })?;
        let new_manifest = judged.staged.manifest.manifest.clone();
        let added = added_permissions(&old_manifest.permissions, &new_manifest.permissions);
        // Against what the current version's consent covers (its permissions, hooks,
        // integration types, skills).
        let current_row = self.current_version_row(row).await?;
        let baseline = self.consent_of(&current_row).await?;
        let diff = consent_diff(
            &Self::consented_set(baseline.as_ref()),
            &consent_set(&new_manifest),
        );
        let text = crate::trust::consent::upgrade_consent_text_for(
            &new_manifest,
            self.options.policy.mode(),
            self.execution_of(row),
            &diff,
        );
        Ok(UpgradeJudged {
            never_consented: baseline.is_none() && !row.enabled,
            judged,
            current,
            new,
            new_manifest,
            added,
            diff,
            text,
        })
    }

    /// `held`: the lifecycle lock, let go while the new version's code loads. `expect`: the
    /// digest the new version must have.
    async fn upgrade_inner<'a>(
        &'a self,
        id: &str,
        source: Option<InstallSource>,
        request: &EnableRequest,
        expect: Option<&str>,
        held: &mut Option<tokio::sync::MutexGuard<'a, ()>>,
    ) -> Result<UpgradeOutcome, LifecycleError> {
        let row = self.plugin_row(id).await?;
        let UpgradeJudged {
            judged,
            current,
            new,
            new_manifest,
            added,
            diff,
            text,
            never_consented,
        } = self.judge_upgrade(&row, source, expect).await?;
        // Consent before anything of the new version is registered.
        let consent = if never_consented {
            // Never enabled: like an install, the version cannot run until enable asks consent.
            None
        } else if diff.adds_nothing() {
            Some(ConsentBasis::CarriedOver)
        } else if request.accept_consent {
            Some(ConsentBasis::Accepted)
        } else {
            return Err(LifecycleError::ConsentRequired {
                id: id.to_string(),
                text,
                diff: Some(diff),
            });
        };
        self.register(&judged, None, false).await?;
        // From here on a failure takes the new version out again — row, artifact, consent and
        // directory — so that it neither lingers as a version to roll back to nor blocks a fixed
        // build of the same version; `current` has not moved.
        let activated = async {
            let new_version = self
                .store
                .get_plugin_version(id, &new)
                .await?
                .ok_or_else(|| LifecycleError::NotInstalled(format!("{id}@{new}")))?;
            if let Some(basis) = consent {
                let accepted = (basis == ConsentBasis::Accepted).then_some(text.as_str());
                self.record_consent(&new_version, basis, accepted).await?;
            }
            self.record_acknowledgements(id, &new_manifest, &request.acknowledge, &added)
                .await?;
            let mut activated = false;
            if row.enabled {
                self.activate_loading_unlocked(&row, &new_version, held)
                    .await?;
                activated = true;
            }
            self.make_current(
                &row,
                &new_version,
                &judged.verdict,
                Some((judged.staged.source_kind, &judged.staged.source_ref)),
            )
            .await?;
            Ok::<bool, LifecycleError>(activated)
        }
        .await;
        let activated = match activated {
            Ok(activated) => activated,
            Err(e) => {
                self.forget_failed_version(id, &new).await;
                return Err(e);
            }
        };
        Ok(UpgradeOutcome {
            id: id.to_string(),
            from: current,
            to: new,
            digest: judged.staged.digest.clone(),
            added_permissions: added,
            consent_diff: diff,
            activated,
        })
    }

    /// Activates `version` of `row`'s plugin for an upgrade holding the lifecycle lock in `held`:
    /// when its code is not loaded yet, the lock is let go while it loads (bounded by the load
    /// timeout) and taken again, and the plugin must not have changed meanwhile (its current
    /// version and enabled state), or the upgrade stops with [`LifecycleError::ChangedMeanwhile`].
    async fn activate_loading_unlocked<'a>(
        &'a self,
        row: &PluginRow,
        version: &PluginVersionRow,
        held: &mut Option<tokio::sync::MutexGuard<'a, ()>>,
    ) -> Result<(), LifecycleError> {
        let mut may_load = false;
        loop {
            match self.activate_preloaded(row, version, may_load).await {
                Err(LifecycleError::NotPreloaded {
                    row: wanted,
                    version: to_load,
                }) if !may_load => {
                    held.take();
                    let loaded = self.preload_one(*wanted, *to_load).await;
                    *held = Some(self.ops.lock().await);
                    let now = self.plugin_row(&row.id).await?;
                    if now.current_version != row.current_version || !now.enabled {
                        return Err(LifecycleError::ChangedMeanwhile {
                            id: row.id.clone(),
                            action: "upgraded",
                        });
                    }
                    loaded?;
                    // Found loaded now, unless its settings changed meanwhile: then it loads
                    // here, under the lock, bounded all the same.
                    may_load = true;
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Removes what registering `version` of `id` left, after the upgrade to it failed: its row,
    /// artifact and consent, then its directory. Best effort: what cannot be removed is logged, and
    /// `doctor` reports it.
    async fn forget_failed_version(&self, id: &str, version: &str) {
        if let Err(e) = self.store.delete_plugin_version(id, version).await {
            tracing::error!(plugin.id = %id, "could not remove the failed version {version}: {e}");
        }
        let dir = self.layout().version_dir(id, version);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(
                    plugin.id = %id,
                    "could not remove {} of the failed version: {e}",
                    dir.display()
                );
            }
        }
    }

    /// Points the plugin at `version`: the `current` link, then the row.
    pub(crate) async fn make_current(
        &self,
        row: &PluginRow,
        version: &PluginVersionRow,
        verdict: &Verdict,
        source: Option<(&str, &str)>,
    ) -> Result<(), LifecycleError> {
        self.layout()
            .set_current(&row.id, &version.version)
            .map_err(LifecycleError::io(
                "point `current` at",
                self.layout().current_link(&row.id),
            ))?;
        let manifest: nitejar_sdk::manifest::Manifest =
            serde_json::from_str(&version.manifest_json).map_err(|e| LifecycleError::Corrupt {
                id: row.id.clone(),
                what: "manifest",
                reason: e.to_string(),
            })?;
        let mut updated = row.clone();
        updated.name = manifest.name;
        updated.current_version = Some(version.version.clone());
        updated.current_checksum = Some(version.checksum.clone());
        updated.current_install_path = Some(version.install_path.clone());
        updated.manifest_json = version.manifest_json.clone();
        updated.trust_level = verdict.trust_level().to_string();
        // The version's own source, kind and reference together: an npm plugin upgraded from an
        // uploaded file is upgraded next from a source the operator gives, not from `name`.
        if let Some((kind, reference)) = source {
            updated.source_kind = kind.to_string();
            updated.source_ref = Some(reference.to_string());
        }
        updated.clear_error();
        updated.updated_at = now_ms();
        self.store.upsert_plugin(&updated).await?;
        Ok(())
    }

    /// Records acknowledgements given with an enable or upgrade: `All` acknowledges every declared
    /// permission (or only `added` ones for an upgrade, when given), `These` the named ones, each
    /// checked against the manifest.
    pub(crate) async fn record_acknowledgements(
        &self,
        id: &str,
        manifest: &nitejar_sdk::manifest::Manifest,
        acknowledge: &Acknowledge,
        scope: &[DisclosedPermission],
    ) -> Result<Vec<String>, LifecycleError> {
        let declared: Vec<String> = disclose(&manifest.permissions)
            .into_iter()
            .map(|p| p.ack)
            .collect();
        let chosen: Vec<String> = match acknowledge {
            Acknowledge::None => Vec::new(),
            Acknowledge::All if scope.is_empty() => declared.clone(),
            Acknowledge::All => scope.iter().map(|p| p.ack.clone()).collect(),
            Acknowledge::These(list) => {
                for ack in list {
                    if !declared.contains(ack) {
                        return Err(LifecycleError::UnknownAcknowledgement {
                            id: id.to_string(),
                            ack: ack.clone(),
                            declared,
                        });
                    }
                }
                list.clone()
            }
        };
        let now = now_ms();
        for permission in &chosen {
            self.store
                .upsert_disclosure_ack(&crate::store::DisclosureAckRow {
                    plugin_id: id.to_string(),
                    permission: permission.clone(),
                    scope: String::new(),
                    acknowledged: true,
                    acknowledged_at: Some(now),
                })
                .await?;
        }
        Ok(chosen)
    }

    /// A receipt for a failed or refused operation: `denied` for refusals, `error` otherwise.
    pub(crate) async fn refusal_receipt(
        &self,
        id: &str,
        version: Option<&str>,
        kind: ReceiptKind,
        error: &LifecycleError,
        extra: Value,
    ) {
        let status = if error.is_refusal() {
            ReceiptStatus::Denied
        } else {
            ReceiptStatus::Error
        };
        let mut detail = json!({ "error": error.to_string() });
        if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            d.extend(extra);
        }
        self.receipt(id, version, kind, status, detail).await;
    }
}

/// The plugin's own source, to fetch again for an upgrade without one.
fn source_again(row: &PluginRow) -> Result<InstallSource, LifecycleError> {
    let reference = row.source_ref.clone().unwrap_or_default();
    let required = || LifecycleError::SourceRequired {
        id: row.id.clone(),
        kind: row.source_kind.clone(),
    };
    match row.source_kind.as_str() {
        "npm" => {
            let name = reference.split(' ').next().unwrap_or_default();
            let spec = NpmSpec::parse(name).map_err(|_| required())?;
            Ok(InstallSource::Npm(NpmSpec {
                name: spec.name,
                request: None,
            }))
        }
        "git" => {
            let url = reference.split('#').next().unwrap_or_default();
            if url.is_empty() {
                return Err(required());
            }
            Ok(InstallSource::Git(crate::install::GitSpec {
                url: url.to_string(),
                reference: None,
            }))
        }
        "local" if !reference.is_empty() => Ok(InstallSource::Path(PathBuf::from(reference))),
        _ => Err(required()),
    }
}

/// The receipt id of an install that failed before its manifest was read: the npm name when there
/// is one, else `nitejar.install`.
fn install_receipt_id(source: &str) -> String {
    match NpmSpec::parse(source) {
        Ok(spec) if !source.contains('/') || source.starts_with('@') => spec.name,
        _ => "nitejar.install".to_string(),
    }
}

fn manifest_json(manifest: &nitejar_sdk::manifest::Manifest) -> String {
    serde_json::to_string(manifest).unwrap_or_else(|_| "{}".into())
}
