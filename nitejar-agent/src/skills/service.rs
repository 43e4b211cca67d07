//! The skill service: builds the index from the three sources, keeps plugin mirror rows in step
//! with the registry, resolves a run's skills and reads skill files.
//!
//! The operations an API or a CLI calls (list, get, create, …) are in `manage.rs`, on the same type.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::catalog::{admin_skills, mirror_row, skill_from_mirror};
use super::index::{Skill, SkillIndex, SkillLocation, SkillProblem};
use super::paths::{check_relative_path, read_under};
use super::plugin::plugin_skills;
use super::repo::{roots_fingerprint, scan_roots};
use super::scope::{resolve, ResolvedSkill, RunScope};
use super::{SkillError, SkillLimits, SkillSourceKind};
use nitejar_runtime::registry::Registry;
use nitejar_runtime::runtime::Runtime;
use nitejar_store::changes::ChangeFeed;
use nitejar_store::receipts::{
    now_ms, MemorySink, Receipt, ReceiptKind, ReceiptSink, ReceiptStatus,
};
use nitejar_store::store::Topic;
use nitejar_store::store::{NewSkillAssignment, SkillRow, Store};

/// Where repo skills are and how large skills may be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkillsConfig {
    /// Roots scanned for `<dir>/SKILL.md`, in order (the first root wins a directory both hold).
    pub roots: Vec<PathBuf>,
    pub limits: SkillLimits,
}

/// What [`Skills::sync_plugins`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Plugin skills seen for the first time.
    pub added: Vec<String>,
    /// Plugin skills whose plugin is no longer active.
    pub deactivated: Vec<String>,
    /// `default_enabled` skills given their global assignment.
    pub default_assigned: Vec<String>,
}

struct PluginPart {
    registry: Arc<Registry>,
    skills: Vec<Skill>,
    problems: Vec<SkillProblem>,
}

/// The skill service. One per process, shared (`Arc<Skills>`) by the runner, the `use_skill` tool
/// and the server's surfaces.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn nitejar_store::store::Store>) -> Result<(), nitejar_agent::skills::SkillError> {
/// use nitejar_agent::skills::{RunScope, Skills, SkillsConfig};
///
/// let skills = Skills::new(store, SkillsConfig { roots: vec!["./skills".into()], ..Default::default() });
/// for s in skills.index().await?.skills() {
///     println!("{} {} {:?}", s.id, s.name, s.shadowed_by);
/// }
/// let run = RunScope { agent_id: "agent-1".into(), team_id: None, integration_type: Some("telegram".into()) };
/// let resolved = skills.resolve_for_run(&run).await?;
/// # Ok(()) }
/// ```
pub struct Skills {
    pub(super) store: Arc<dyn Store>,
    runtime: Option<Arc<Runtime>>,
    sink: Arc<dyn ReceiptSink>,
    pub(super) config: SkillsConfig,
    plugin_part: Mutex<Option<Arc<PluginPart>>>,
    // Held across a sync so two syncs of the same registry do not interleave.
    synced: tokio::sync::Mutex<Option<Arc<Registry>>>,
    run_index: Mutex<Option<CachedIndex>>,
    /// Tells when skills changed in the database (see [`Skills::following`]).
    changes: Option<Arc<ChangeFeed>>,
}

/// An index built for runs, with what it was built from.
struct CachedIndex {
    /// The skills' change counter before the build.
    revision: i64,
    registry: Option<Arc<Registry>>,
    /// What the repo roots held before the build ([`roots_fingerprint`]).
    roots: u64,
    index: Arc<SkillIndex>,
}

impl Skills {
    /// A service over the store. Without a runtime ([`Skills::with_runtime`]) plugin skills are read
    /// from their mirror rows, as the last server that synced them recorded them (this is what the
    /// CLI does).
    pub fn new(store: Arc<dyn Store>, config: SkillsConfig) -> Skills {
        Skills {
            store,
            runtime: None,
            sink: MemorySink::new(),
            config,
            plugin_part: Mutex::new(None),
            synced: tokio::sync::Mutex::new(None),
            run_index: Mutex::new(None),
            changes: None,
        }
    }

    /// Lets runs share one index while nothing it was built from changed: the skills in the
    /// database (`feed`'s skills counter), the plugin registry and the files under the repo roots
    /// (looked at on every run: one walk of their entries' sizes and modification times). Without a
    /// feed every run builds its own index. Listing and reading skills never share one.
    pub fn following(mut self, feed: Arc<ChangeFeed>) -> Skills {
        self.changes = Some(feed);
        self
    }

    /// Reads plugin skills from the runtime's registry (and keeps their mirror rows in step), and
    /// sends skill-use receipts to the runtime's sink.
    pub fn with_runtime(mut self, runtime: Arc<Runtime>) -> Skills {
        self.sink = runtime.sink().clone();
        self.runtime = Some(runtime);
        self
    }

    /// Where skill-use receipts go (default: the runtime's sink, else memory).
    pub fn with_sink(mut self, sink: Arc<dyn ReceiptSink>) -> Skills {
        self.sink = sink;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SkillsConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Builds the index: repo roots scanned now, plugin skills of the current registry (or of their
    /// mirror rows), admin skills from the store; the operator's switches applied; precedence
    /// computed.
    pub async fn index(&self) -> Result<SkillIndex, SkillError> {
        let (roots, limits) = (self.config.roots.clone(), self.config.limits);
        let (mut skills, mut problems) =
            tokio::task::spawn_blocking(move || scan_roots(&roots, &limits))
                .await
                .unwrap_or_else(|e| {
                    let problem = SkillProblem {
                        source: SkillSourceKind::Repo,
                        location: "skills roots".into(),
                        message: format!("the scan failed: {e}"),
                    };
                    (Vec::new(), vec![problem])
                });
        if let Some(runtime) = &self.runtime {
            if let Err(e) = self.sync_plugins().await {
                tracing::warn!("could not record plugin skills in the database: {e}");
            }
            let part = self.plugin_part(runtime.registry()).await;
            skills.extend(part.skills.iter().cloned());
            problems.extend(part.problems.iter().cloned());
        }
        let rows = self.store.list_skills(None).await?;
        let stats = self.store.list_skill_file_stats().await?;
        let present: BTreeSet<String> = skills.iter().map(|s| s.id.clone()).collect();
        // Mirror rows whose source does not provide the skill now stay listed, inactive, so their
        // assignments are not invisible: a repo skill whose directory went away, a plugin skill of a
        // plugin that is not active (without a registry, a plugin row says itself whether it is).
        for row in &rows {
            let kind = SkillSourceKind::from_stored(&row.source_kind);
            if kind == SkillSourceKind::Admin || present.contains(&row.id) {
                continue;
            }
            let mut skill = skill_from_mirror(row);
            skill.active &= kind == SkillSourceKind::Plugin && self.runtime.is_none();
            skills.push(skill);
        }
        let switches: HashMap<&str, bool> = rows
            .iter()
            .filter(|r| SkillSourceKind::from_stored(&r.source_kind) != SkillSourceKind::Admin)
            .map(|r| (r.id.as_str(), r.enabled))
            .collect();
        for skill in &mut skills {
            if let Some(&enabled) = switches.get(skill.id.as_str()) {
                skill.enabled = enabled;
            }
        }
        skills.extend(admin_skills(&rows, &stats));
        Ok(SkillIndex::new(skills, problems))
    }

    /// The skills of the registry, computed once per registry snapshot (reading file skills is file
    /// I/O, done off the async workers).
    async fn plugin_part(&self, registry: Arc<Registry>) -> Arc<PluginPart> {
        if let Some(part) = self.lock_part().as_ref() {
            if Arc::ptr_eq(&part.registry, &registry) {
                return part.clone();
            }
        }
        let limits = self.config.limits;
        let reg = registry.clone();
        let (skills, problems) = tokio::task::spawn_blocking(move || plugin_skills(&reg, &limits))
            .await
            .unwrap_or_else(|e| {
                let problem = SkillProblem {
                    source: SkillSourceKind::Plugin,
                    location: "registry".into(),
                    message: format!("reading plugin skills failed: {e}"),
                };
                (Vec::new(), vec![problem])
            });
        let part = Arc::new(PluginPart {
            registry,
            skills,
            problems,
        });
        *self.lock_part() = Some(part.clone());
        part
    }

    fn lock_part(&self) -> std::sync::MutexGuard<'_, Option<Arc<PluginPart>>> {
        // Only whole values are stored under this lock.
        self.plugin_part.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the plugin mirror rows in step with the runtime's registry: a row per skill of an
    /// active plugin (inserted or refreshed, the operator's switch kept), rows of skills whose plugin
    /// left marked inactive (kept, with their assignments, for when it comes back), and the one-time
    /// global assignment of `default_enabled` skills. Does nothing when the registry has not changed
    /// since the last sync, or without a runtime.
    pub async fn sync_plugins(&self) -> Result<SyncReport, SkillError> {
        let Some(runtime) = &self.runtime else {
            return Ok(SyncReport::default());
        };
        let mut synced = self.synced.lock().await;
        let registry = runtime.registry();
        if synced.as_ref().is_some_and(|r| Arc::ptr_eq(r, &registry)) {
            return Ok(SyncReport::default());
        }
        let part = self.plugin_part(registry.clone()).await;
        let existing = self.store.list_skills(Some("plugin")).await?;
        let previous: HashMap<&str, &SkillRow> =
            existing.iter().map(|r| (r.id.as_str(), r)).collect();
        let now = now_ms();
        let mut report = SyncReport::default();
        let mut rows = Vec::new();
        let mut to_assign = Vec::new();
        for skill in &part.skills {
            let prev = previous.get(skill.id.as_str()).copied();
            if prev.is_none() {
                report.added.push(skill.id.clone());
            }
            let assigned = prev
                .and_then(|p| p.metadata.get("defaultAssigned"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if skill.default_enabled && !assigned {
                to_assign.push(skill);
            }
            rows.push(mirror_row(skill, prev, now));
        }
        let current: BTreeSet<&str> = part.skills.iter().map(|s| s.id.as_str()).collect();
        for row in &existing {
            let active = row.metadata.get("active").and_then(Value::as_bool);
            if !current.contains(row.id.as_str()) && active != Some(false) {
                let mut gone = row.clone();
                if let Some(meta) = gone.metadata.as_object_mut() {
                    meta.insert("active".into(), json!(false));
                } else {
                    gone.metadata = json!({ "active": false });
                }
                gone.updated_at = now;
                report.deactivated.push(row.id.clone());
                rows.push(gone);
            }
        }
        self.store.upsert_mirror_skills(&rows).await?;
        if !to_assign.is_empty() {
            let mut flagged = Vec::new();
            for skill in to_assign {
                let added = self
                    .store
                    .insert_skill_assignment_if_absent(&NewSkillAssignment {
                        skill_id: skill.id.clone(),
                        scope: "global".into(),
                        scope_id: String::new(),
                        priority: 0,
                        enabled: true,
                    })
                    .await?;
                if added {
                    report.default_assigned.push(skill.id.clone());
                }
                if let Some(row) = rows.iter().find(|r| r.id == skill.id) {
                    let mut row = row.clone();
                    row.metadata["defaultAssigned"] = json!(true);
                    flagged.push(row);
                }
            }
            self.store.upsert_mirror_skills(&flagged).await?;
        }
        *synced = Some(registry);
        if report != SyncReport::default() {
            tracing::info!(
                added = report.added.len(),
                deactivated = report.deactivated.len(),
                default_assigned = report.default_assigned.len(),
                "plugin skills synchronised"
            );
        }
        Ok(report)
    }

    /// Keeps the mirror rows in step with the registry from now on: a task that syncs whenever a
    /// plugin is activated or deactivated (see [`Runtime::subscribe`]). It ends when the service or
    /// the runtime goes away. `None` without a runtime. Call from within a Tokio runtime.
    pub fn watch_registry(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = self.runtime.clone()?;
        let mut changes = runtime.subscribe();
        drop(runtime);
        let this: Weak<Skills> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let Some(skills) = this.upgrade() else { break };
                if let Err(e) = skills.sync_plugins().await {
                    tracing::warn!("could not record plugin skills in the database: {e}");
                }
                drop(skills);
                if changes.changed().await.is_err() {
                    break;
                }
            }
        }))
    }

    /// The index as runs see it: [`index`](Self::index), shared by runs while nothing it was built
    /// from changed (see [`Skills::following`]).
    pub async fn run_index(&self) -> Result<Arc<SkillIndex>, SkillError> {
        let Some(feed) = &self.changes else {
            return Ok(Arc::new(self.index().await?));
        };
        // Read before the build: a change racing it moves them past what the index is kept under.
        // While the feed cannot tell what changed, every run builds its own.
        let Some(revision) = feed.exact_revision(Topic::Skills) else {
            return Ok(Arc::new(self.index().await?));
        };
        let registry = self.runtime.as_ref().map(|r| r.registry());
        let fingerprint = if self.config.roots.is_empty() {
            Some(0) // nothing on disk to look at: no trip to the blocking pool per run
        } else {
            let roots = self.config.roots.clone();
            tokio::task::spawn_blocking(move || roots_fingerprint(&roots))
                .await
                .ok()
                .flatten()
        };
        if let (Some(cached), Some(fingerprint)) = (self.lock_run_index().as_ref(), fingerprint) {
            let same_registry = match (&cached.registry, &registry) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same_registry && cached.revision == revision && cached.roots == fingerprint {
                return Ok(cached.index.clone());
            }
        }
        let index = Arc::new(self.index().await?);
        *self.lock_run_index() = fingerprint.map(|roots| CachedIndex {
            revision,
            registry,
            roots,
            index: index.clone(),
        });
        Ok(index)
    }

    /// Forgets the index runs reuse (after this service changed a skill).
    pub(super) fn invalidate_run_index(&self) {
        *self.lock_run_index() = None;
    }

    fn lock_run_index(&self) -> std::sync::MutexGuard<'_, Option<CachedIndex>> {
        // Only whole values are stored under this lock.
        self.run_index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The skills of a run (see [`resolve`]).
    pub async fn resolve_for_run(&self, run: &RunScope) -> Result<Vec<ResolvedSkill>, SkillError> {
        let index = self.run_index().await?;
        let assignments = self
            .store
            .skill_assignments_for_run(
                &run.agent_id,
                run.team_id.as_deref(),
                run.integration_type.as_deref(),
            )
            .await?;
        Ok(resolve(&index, &assignments, run))
    }

    /// Reads one supporting file of a skill (one its listing names: hidden files and anything
    /// outside the skill stay unreadable; links are refused again at read time).
    pub async fn read_file(&self, skill: &Skill, path: &str) -> Result<Vec<u8>, SkillError> {
        let path = check_relative_path(path)?;
        let missing = |hint: Option<&str>| SkillError::NoSuchFile {
            skill: skill.id.clone(),
            path: path.clone(),
            hint: hint.map(str::to_string),
        };
        if !skill.files.iter().any(|f| f.path == path) {
            return Err(missing(Some("it is not in the skill's file list")));
        }
        match &skill.location {
            SkillLocation::Directory(dir) => {
                let (dir, limits, relative) = (dir.clone(), self.config.limits, path.clone());
                tokio::task::spawn_blocking(move || read_under(&dir, &relative, &limits))
                    .await
                    .map_err(|e| missing(Some(&format!("the read failed: {e}"))))?
            }
            SkillLocation::Database => match self.store.get_skill_file(&skill.id, &path).await? {
                Some(f) => Ok(f.content.into_bytes()),
                None => Err(missing(None)),
            },
            SkillLocation::None => Err(missing(Some(
                "the files of a plugin skill are readable only where its plugin is active",
            ))),
        }
    }

    /// Records a skill use: on the contributing plugin, else on the engine's skill service.
    pub(super) async fn record_use(
        &self,
        ids: (Option<&str>, Option<&str>),
        skill: Option<&Skill>,
        status: ReceiptStatus,
        detail: Value,
        took: Duration,
    ) {
        let (plugin_id, version) = match skill {
            Some(s) => s.receipt_plugin(),
            None => (
                super::ENGINE_PLUGIN_ID,
                Some(nitejar_packages::NITEJAR_VERSION),
            ),
        };
        let mut receipt = Receipt::new(
            plugin_id,
            version.map(Arc::from),
            ReceiptKind::Skill,
            status,
        )
        .with_detail(detail);
        receipt.work_item_id = ids.0.filter(|s| !s.is_empty()).map(Arc::from);
        receipt.job_id = ids.1.filter(|s| !s.is_empty()).map(Arc::from);
        receipt.duration_us = took.as_micros() as u64;
        self.sink.submit(vec![receipt]).await;
    }
}
