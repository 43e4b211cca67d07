//! The database: plugins and their versions, acknowledgements, receipts, integrations, work items, jobs,
//! spans, skills.
//!
//! [`Store`] is the interface the rest of the engine uses, an object-safe trait held as
//! `Arc<dyn Store>`, made of one trait per area: [`IntegrationStore`], [`PluginStore`],
//! [`TrustStore`], [`AgentStore`], [`WorkStore`], [`SkillStore`], [`ReceiptStore`] and
//! [`AdminStore`] (each declared here, each implemented in its own file's SQL). Methods of every
//! area are called on an `Arc<dyn Store>` as they are; code holding a concrete store brings the
//! traits into scope with [`prelude`]. Two implementations share one body of SQL:
//!
//! - [`SqliteStore`], the embedded default (a file path or a `sqlite:` URL);
//! - [`PostgresStore`], for several machines sharing one database (a `postgres:` URL).
//!
//! [`open`] picks one from `DATABASE_URL`, runs the migrations (`migrations/sqlite` or
//! `migrations/postgres`, embedded at build time) and, on SQLite, first adopts a database written by an
//! earlier Nitejar release (see [`adopt`](self#adopting-an-existing-database)).
//!
//! # Adopting an existing database
//!
//! A SQLite file that already has an `integrations` table keeps every row of it byte for byte: ids,
//! `type`, the `config` blob (with its `enc:` values) and the second-resolution timestamps. What the
//! store adds: the nullable `integrations.plugin_id` column (added before the migrations run, because
//! SQLite has no `ADD COLUMN IF NOT EXISTS`), every missing table (the migrations only use
//! `CREATE … IF NOT EXISTS`), and, for the two telemetry tables `plugin_events` and `spans` when an
//! earlier release created them with constraints that would refuse a receipt (a foreign key to
//! `plugins`, a required job), a rebuild of that table without those constraints that copies every row.
//!
//! # Conventions
//!
//! Booleans are integers, JSON is text, timestamps are Unix milliseconds, ids are UUIDv7 text — except in
//! `integrations`, whose timestamps stay in seconds as earlier releases wrote them. Rows of other tables
//! adopted from an earlier release keep whatever they held.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nitejar_store::crypto::{Cipher, Key};
//! use nitejar_store::store::{self, NewIntegration};
//!
//! let cipher = Cipher::new(&Key::generate()?);
//! let store = store::open("./data/nitejar.db", cipher).await?;
//! let mut config = serde_json::Map::new();
//! config.insert("bot_token".into(), "123456789:ABCdefGHI".into());
//! let row = store
//!     .create_integration(NewIntegration::new("telegram", "Support bot", config), &["bot_token".into()])
//!     .await?;
//! assert!(row.config.as_deref().unwrap_or("").contains("enc:"));
//! # Ok(()) }
//! ```

mod admin;
mod adopt;
mod agent_grants;
mod changes;
mod error;
mod events;
mod health;
mod history;
mod hook_stats;
mod integrations;
mod key_check;
mod lifecycle;
mod plugins;
mod postgres;
mod queue;
mod receipts;
mod rows;
mod runs;
mod settings;
mod skill_assignments;
mod skills;
mod sql;
mod sqlite;
mod trust;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use agent_grants::PluginRequestRow;
pub use changes::{ChangeCallback, ChangeSignal, Revisions, Topic, SQLITE_CHECK_EVERY};
pub use error::StoreError;
pub use health::{Failing, StoreHealth, PROBE_EVERY};
pub use hook_stats::{
    nearest_rank, HookBucket, HookStats, HookStatsWindow, BUCKET_MS, ERROR_STATUSES,
    MAX_DURATIONS_READ, MAX_HOURS,
};
pub use key_check::{
    check_encryption_key, key_fingerprint, KeyCheck, KeyCheckError, FINGERPRINT_SETTING,
};
pub use lifecycle::PluginAlertRow;
pub use postgres::PostgresStore;
pub use receipts::{DbReceiptSink, SinkBacklog, SinkOptions, SinkShutdown};
pub use rows::*;
pub use settings::{PluginSecretRow, SecretValue, SettingsWrite};
pub use skill_assignments::{AssignmentFilter, NewSkillAssignment, SkillAssignmentRow};
pub use skills::{SkillFileRow, SkillFileStat, SkillRow};
pub use sqlite::SqliteStore;
pub use trust::TrustEntryRow;

use crate::crypto::Cipher;

/// A boxed future returned by [`Store`] methods: `Send`, so the server can hold `Arc<dyn Store>` and
/// await it from any task.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names: `postgres://` and `postgresql://` are Postgres, everything
    /// else (a path, `sqlite:`…) is SQLite.
    pub fn of_url(url: &str) -> Backend {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Opens the database named by `url` (a `DATABASE_URL` value) and brings its schema up to date.
///
/// - a path (`./data/nitejar.db`, `/app/data/nitejar.db`) or a `sqlite:` URL opens SQLite, creating the
///   file if it is missing;
/// - a `postgres://` or `postgresql://` URL connects to Postgres.
///
/// `cipher` encrypts the sensitive fields of integration configs (see [`crate::crypto`]).
pub async fn open(url: &str, cipher: Cipher) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of_url(url) {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::open(url, cipher).await?)),
        Backend::Postgres => Ok(Arc::new(PostgresStore::connect(url, cipher).await?)),
    }
}

/// The database, as the engine and the server use it.
///
/// Every method touches only the rows it names; no method rewrites a row it was not asked to change.
/// Errors say which operation failed on which row.
pub trait Store:
    IntegrationStore
    + PluginStore
    + TrustStore
    + AgentStore
    + WorkStore
    + SkillStore
    + ReceiptStore
    + AdminStore
    + Send
    + Sync
    + 'static
{
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// The cipher integration configs are encrypted with (to decrypt a config for a plugin call).
    fn cipher(&self) -> &Cipher;

    /// Whether writes are going through (see [`StoreHealth`]).
    fn health(&self) -> &StoreHealth;

    /// Writes one small row (the `admin_settings` entry `store_write_probe`) to find out whether the
    /// database takes writes again; the outcome updates [`Store::health`]. Called while it is
    /// failing and nothing else writes (an idle server must not stay "not ready" forever).
    fn probe_write(&self) -> StoreFuture<'_, ()>;

    /// The change counters (see `nitejar_core::changes`): each moves with every write to its topic's
    /// tables, by trigger, in the writing transaction.
    fn change_revisions(&self) -> StoreFuture<'_, Revisions>;

    /// Watches for commits that may have moved the change counters, calling `signal` for each (see
    /// [`ChangeSignal`]). Runs for as long as it is polled; errors are logged and watching resumed.
    fn watch_changes(&self, signal: ChangeCallback) -> StoreFuture<'_, ()>;

    // --- admin --------------------------------------------------------------------------------------

    /// Answers when the database does (`/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Closes the connection pool (waits for connections in use to be returned).
    fn close(&self) -> StoreFuture<'_, ()>;
}

/// Integration rows (their `config` encrypted as earlier releases wrote it). A part of [`Store`]; bring it into scope with [`prelude`].
pub trait IntegrationStore: Send + Sync {
    // --- integrations -------------------------------------------------------------------------------

    /// Creates an integration row. `sensitive_fields` (from the integration type's descriptor) name the
    /// top-level config fields stored encrypted. The id is a new UUIDv7 unless `new.id` is set;
    /// timestamps are Unix seconds.
    fn create_integration<'a>(
        &'a self,
        new: NewIntegration,
        sensitive_fields: &'a [String],
    ) -> StoreFuture<'a, IntegrationRow>;

    /// The integration with this id.
    fn get_integration<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<IntegrationRow>>;

    /// Every integration, or only those of one `type`, oldest first.
    fn list_integrations<'a>(
        &'a self,
        integration_type: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<IntegrationRow>>;

    /// Changes the fields set in `update` on one row and stamps its `updated_at`. A sensitive field sent
    /// as [`crate::crypto::REDACTED`] keeps its stored value; other sensitive values are encrypted.
    fn update_integration<'a>(
        &'a self,
        id: &'a str,
        update: IntegrationUpdate,
        sensitive_fields: &'a [String],
    ) -> StoreFuture<'a, IntegrationRow>;

    /// Enables or disables one integration.
    fn set_integration_enabled<'a>(
        &'a self,
        id: &'a str,
        enabled: bool,
    ) -> StoreFuture<'a, IntegrationRow>;

    /// Deletes one integration (and its agent assignments). `false` when there was no such row.
    fn delete_integration<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
}

/// Installed plugins: their rows, versions, acknowledgements, consents, settings and secrets, artifacts and alerts. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait PluginStore: Send + Sync {
    // --- plugins ------------------------------------------------------------------------------------

    /// Inserts a plugin row or updates every column but `installed_at` of the existing one.
    fn upsert_plugin<'a>(&'a self, plugin: &'a PluginRow) -> StoreFuture<'a, ()>;

    /// One plugin.
    fn get_plugin<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PluginRow>>;

    /// Every plugin, by id.
    fn list_plugins(&self) -> StoreFuture<'_, Vec<PluginRow>>;

    /// Deletes a plugin row with its versions, acknowledgements, secrets and artifacts (not its
    /// receipts).
    fn delete_plugin<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// Inserts a version row or updates the existing one (same plugin id and version).
    fn upsert_plugin_version<'a>(&'a self, version: &'a PluginVersionRow) -> StoreFuture<'a, ()>;

    /// One version of a plugin.
    fn get_plugin_version<'a>(
        &'a self,
        plugin_id: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, Option<PluginVersionRow>>;

    /// Every version of a plugin, oldest install first.
    fn list_plugin_versions<'a>(
        &'a self,
        plugin_id: &'a str,
    ) -> StoreFuture<'a, Vec<PluginVersionRow>>;

    /// Records (or changes) the operator's acknowledgement of one declared permission.
    fn upsert_disclosure_ack<'a>(&'a self, ack: &'a DisclosureAckRow) -> StoreFuture<'a, ()>;

    /// Every acknowledgement row of a plugin.
    fn list_disclosure_acks<'a>(
        &'a self,
        plugin_id: &'a str,
    ) -> StoreFuture<'a, Vec<DisclosureAckRow>>;

    /// Changes a plugin's settings in one transaction: its config (when `write.config_json` is
    /// set), the secrets to store (encrypted with [`Store::cipher`]) and to remove; and counts the
    /// revision. Returns the new `config_revision`. [`StoreError::NotFound`] when the plugin has no
    /// row.
    fn write_plugin_settings<'a>(&'a self, write: &'a SettingsWrite) -> StoreFuture<'a, i64>;

    /// Sets, in one write, where a plugin's code runs (`in_process`, `isolated`) and the limits of
    /// its own process when isolated (address space in MiB, processor time in seconds); each
    /// `None` follows the server's default. The only write of `plugins.execution_mode`,
    /// `plugins.memory_limit_mib` and `plugins.cpu_limit_seconds`.
    fn set_plugin_execution<'a>(
        &'a self,
        plugin_id: &'a str,
        mode: Option<&'a str>,
        memory_mib: Option<i64>,
        cpu_seconds: Option<i64>,
    ) -> StoreFuture<'a, ()>;

    /// The secrets stored for a plugin (encrypted), by environment variable.
    fn list_plugin_secrets<'a>(
        &'a self,
        plugin_id: &'a str,
    ) -> StoreFuture<'a, Vec<PluginSecretRow>>;

    /// Records the consent to one version (replacing an earlier one for the same version).
    fn put_consent<'a>(&'a self, consent: &'a ConsentRow) -> StoreFuture<'a, ()>;

    /// The consent to one version, if there is one.
    fn get_consent<'a>(
        &'a self,
        plugin_id: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, Option<ConsentRow>>;

    /// Every consent of a plugin, oldest first.
    fn list_consents<'a>(&'a self, plugin_id: &'a str) -> StoreFuture<'a, Vec<ConsentRow>>;

    /// Stores the package bytes of one plugin version (replacing any stored before).
    fn put_plugin_artifact<'a>(&'a self, artifact: &'a PluginArtifact) -> StoreFuture<'a, ()>;

    /// The package bytes of one plugin version.
    fn get_plugin_artifact<'a>(
        &'a self,
        plugin_id: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, Option<PluginArtifact>>;

    /// Deletes every version row and stored artifact of a plugin (the plugin row stays). Returns how
    /// many versions were deleted.
    fn delete_plugin_versions<'a>(&'a self, plugin_id: &'a str) -> StoreFuture<'a, u64>;

    /// Deletes one version of a plugin: its row, stored artifact and consent, in one transaction
    /// (an upgrade that failed after registering it). Returns whether a version row was deleted.
    fn delete_plugin_version<'a>(
        &'a self,
        plugin_id: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, bool>;

    /// Deletes a plugin's receipts (`plugin_events`) and alerts. Returns how many receipts were
    /// deleted. Only `nitejar plugin uninstall --purge-data` calls this.
    fn purge_plugin_data<'a>(&'a self, plugin_id: &'a str) -> StoreFuture<'a, u64>;

    /// Raises an admin alert about a plugin.
    fn insert_plugin_alert<'a>(&'a self, alert: &'a PluginAlertRow) -> StoreFuture<'a, ()>;

    /// The alerts of one plugin (or of all), oldest first; cleared ones only when asked.
    fn list_plugin_alerts<'a>(
        &'a self,
        plugin_id: Option<&'a str>,
        include_cleared: bool,
    ) -> StoreFuture<'a, Vec<PluginAlertRow>>;

    /// Clears a plugin's active alerts (stamps `cleared_at`). Returns how many were cleared.
    fn clear_plugin_alerts<'a>(&'a self, plugin_id: &'a str, at_ms: i64) -> StoreFuture<'a, u64>;
}

/// Trust entries operators stored, and the revision every change counts. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait TrustStore: Send + Sync {
    // --- trust settings -------------------------------------------------------------------------------

    /// The operator's trusted keys and allowlist entries, oldest first.
    fn list_trust_entries(&self) -> StoreFuture<'_, Vec<TrustEntryRow>>;

    /// How many times the trust entries changed (0 before the first change).
    fn trust_revision(&self) -> StoreFuture<'_, i64>;

    /// Adds a trust entry and counts the revision in one transaction; returns the new revision.
    /// [`StoreError::AlreadyExists`] (nothing changed) when an entry of that kind and ident exists.
    fn add_trust_entry<'a>(&'a self, entry: &'a TrustEntryRow) -> StoreFuture<'a, i64>;

    /// Removes a trust entry and counts the revision in one transaction; returns the new revision,
    /// or `None` (nothing changed) when there was no such entry.
    fn remove_trust_entry<'a>(
        &'a self,
        kind: &'a str,
        ident: &'a str,
    ) -> StoreFuture<'a, Option<i64>>;
}

/// Agents, the integrations assigned to them, what they may do to plugins and the requests they made. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait AgentStore: Send + Sync {
    // --- agents' plugin grants --------------------------------------------------------------------

    /// The capabilities agent `agent_id` holds (`plugins.disable`, …), sorted; none without a grant.
    fn agent_plugin_grants<'a>(&'a self, agent_id: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// Replaces agent `agent_id`'s grants with `capabilities`, in one transaction.
    fn set_agent_plugin_grants<'a>(
        &'a self,
        agent_id: &'a str,
        capabilities: &'a [String],
        granted_by: &'a str,
        at_ms: i64,
    ) -> StoreFuture<'a, ()>;

    /// Records an agent's request, with the package it would install when it wrote one (an
    /// edit's).
    fn create_plugin_request<'a>(
        &'a self,
        row: &'a PluginRequestRow,
        archive: Option<&'a [u8]>,
    ) -> StoreFuture<'a, ()>;

    /// The package a request would install, when it carries one.
    fn plugin_request_archive<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Requests with `status` (any when `None`), newest first, at most 500.
    fn plugin_requests<'a>(
        &'a self,
        status: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<PluginRequestRow>>;

    /// One request.
    fn get_plugin_request<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PluginRequestRow>>;

    /// Sets a pending request's `status` (`approved`, `rejected`); false, and nothing written,
    /// when it is not pending (decided already).
    fn decide_plugin_request<'a>(
        &'a self,
        id: &'a str,
        status: &'a str,
        by: &'a str,
        at_ms: i64,
    ) -> StoreFuture<'a, bool>;

    // --- agents, work items, jobs, spans ------------------------------------------------------------

    /// Creates an agent.
    fn create_agent(&self, new: NewAgent) -> StoreFuture<'_, AgentRow>;

    /// One agent.
    fn get_agent<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<AgentRow>>;

    /// Assigns an integration to an agent (no-op when already assigned).
    fn assign_integration<'a>(
        &'a self,
        agent_id: &'a str,
        integration_id: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// The ids of the integrations assigned to an agent.
    fn agent_integration_ids<'a>(&'a self, agent_id: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// Every agent, oldest first.
    fn list_agents(&self) -> StoreFuture<'_, Vec<AgentRow>>;

    /// The agents assigned to an integration, oldest first.
    fn agents_for_integration<'a>(
        &'a self,
        integration_id: &'a str,
    ) -> StoreFuture<'a, Vec<AgentRow>>;
}

/// Work items, their idempotency keys, the run queue, jobs and spans. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait WorkStore: Send + Sync {
    /// Inserts every key, all or none, in one transaction. `true` when all were new; `false` when any
    /// already existed (nothing is inserted then). Of concurrent callers with the same key exactly one
    /// gets `true`.
    fn try_insert_idempotency_keys<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, bool>;

    /// Points idempotency keys at the work item they produced.
    fn attach_idempotency_keys<'a>(
        &'a self,
        keys: &'a [String],
        work_item_id: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// Creates a work item.
    fn create_work_item(&self, new: NewWorkItem) -> StoreFuture<'_, WorkItemRow>;

    /// Creates a work item and its idempotency keys in one transaction: `None` (and nothing stored)
    /// when any key exists already. Of concurrent callers with the same key exactly one gets the work
    /// item.
    fn create_work_item_once<'a>(
        &'a self,
        keys: &'a [String],
        new: NewWorkItem,
    ) -> StoreFuture<'a, Option<WorkItemRow>>;

    /// Creates many work items, each with its idempotency keys, in one transaction (group commit):
    /// `None` for an item any of whose keys exists already (nothing of it is stored), the row for the
    /// others, in order.
    fn create_work_items_once(
        &self,
        items: Vec<(Vec<String>, NewWorkItem)>,
    ) -> StoreFuture<'_, Vec<Option<WorkItemRow>>>;

    /// Ends a job: stores its spans and applies `update`, in one transaction.
    fn finish_job<'a>(
        &'a self,
        id: &'a str,
        update: JobUpdate,
        spans: &'a [SpanRow],
    ) -> StoreFuture<'a, JobRow>;

    // --- the run queue ------------------------------------------------------------------------------

    /// Accepts work items from webhooks in ONE transaction (group commit): each with its idempotency
    /// keys, its queued run and its ingress receipt. `None` for an item any of whose keys exists
    /// already (nothing of it is stored: no item, run or receipt), the row for the others, in order.
    fn accept_work_items<'a>(
        &'a self,
        items: &'a [AcceptedItem],
    ) -> StoreFuture<'a, Vec<Option<WorkItemRow>>>;

    /// Claims up to `claim.limit` runs: available by `claim.now`, not leased (or leased until before
    /// `claim.now`: their server stopped renewing), and the oldest of their session (runs of one
    /// session are answered in order, one at a time). Oldest first. Each gets a lease for
    /// `claim.owner` until `claim.lease_until` and one more attempt. On Postgres, servers claiming at
    /// once skip each other's rows (`FOR UPDATE SKIP LOCKED`): each run goes to one of them.
    fn claim_runs<'a>(&'a self, claim: RunClaim<'a>) -> StoreFuture<'a, Vec<ClaimedRun>>;

    /// Extends the leases `owner` holds on runs `seqs` until `until`; returns how many it still held.
    fn renew_run_leases<'a>(
        &'a self,
        owner: &'a str,
        seqs: &'a [i64],
        until: i64,
    ) -> StoreFuture<'a, u64>;

    /// Puts run `seq`, leased by `owner`, back in the queue, available again at `available_at`, with
    /// the reason; `false` when `owner` no longer held it.
    fn requeue_run<'a>(
        &'a self,
        seq: i64,
        owner: &'a str,
        available_at: i64,
        error: &'a str,
    ) -> StoreFuture<'a, bool>;

    /// Ends the leases of `owner` (`None`: of everyone), so that their runs are claimed again at
    /// once: at shutdown for the runs a server did not finish, at start for the runs of a server
    /// that died. Returns how many.
    fn release_run_leases<'a>(&'a self, owner: Option<&'a str>) -> StoreFuture<'a, u64>;

    /// Removes run `seq`, leased by `owner`, from the queue (done, or given up); the next run of its
    /// session becomes claimable. `false` when `owner` no longer held it.
    fn finish_run<'a>(&'a self, seq: i64, owner: &'a str) -> StoreFuture<'a, bool>;

    /// [`WorkStore::finish_job`] and, in the same transaction, [`WorkStore::finish_run`] when `run` is given
    /// (the run's last job): the job's end and the run's removal are never seen one without the
    /// other.
    fn finish_job_and_run<'a>(
        &'a self,
        id: &'a str,
        update: JobUpdate,
        spans: &'a [SpanRow],
        run: Option<(i64, &'a str)>,
    ) -> StoreFuture<'a, JobRow>;

    /// The jobs of a work item, oldest first.
    fn jobs_of_work_item<'a>(&'a self, work_item_id: &'a str) -> StoreFuture<'a, Vec<JobRow>>;

    /// Runs queued (waiting, leased or retrying).
    fn count_runs(&self) -> StoreFuture<'_, u64>;

    /// Marks as claimable the oldest run of every session that is not marked (two servers adding and
    /// finishing runs of one session at the same moment on Postgres can leave one unmarked).
    /// Returns how many it marked.
    fn repair_run_heads(&self) -> StoreFuture<'_, u64>;

    /// One work item.
    fn get_work_item<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<WorkItemRow>>;

    /// Creates a job.
    fn create_job(&self, new: NewJob) -> StoreFuture<'_, JobRow>;

    /// Changes the fields set in `update` on one job and stamps its `updated_at`.
    fn update_job<'a>(&'a self, id: &'a str, update: JobUpdate) -> StoreFuture<'a, JobRow>;

    /// One job.
    fn get_job<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<JobRow>>;

    /// Inserts spans (one transaction). A span whose id exists already is left as it is.
    fn insert_spans<'a>(&'a self, spans: &'a [SpanRow]) -> StoreFuture<'a, ()>;

    /// The spans of one trace, by start time.
    fn list_spans<'a>(&'a self, trace_id: &'a str) -> StoreFuture<'a, Vec<SpanRow>>;

    /// One page of work items with what their runs did (queue state, jobs), newest first (by
    /// `created_at`, then `id`), narrowed by `filter`. [`StoreError::BadCursor`] for a cursor this
    /// store did not hand out.
    fn list_runs<'a>(
        &'a self,
        filter: &'a RunFilter,
        page: PageRequest,
    ) -> StoreFuture<'a, Page<RunRow>>;

    /// One work item with what its run did.
    fn get_run<'a>(&'a self, work_item_id: &'a str) -> StoreFuture<'a, Option<RunRow>>;
}

/// Skills (admin and mirrored), their files and their assignments. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait SkillStore: Send + Sync {
    // --- skills -------------------------------------------------------------------------------------

    /// Creates a skill row with its supporting files, in one transaction.
    /// [`StoreError::AlreadyExists`] when the id or the slug is taken.
    fn insert_skill<'a>(
        &'a self,
        skill: &'a SkillRow,
        files: &'a [SkillFileRow],
    ) -> StoreFuture<'a, ()>;

    /// Rewrites one skill row (every column but `id`, `slug`, `source_kind`, `plugin_id` and
    /// `created_at`) and, when `files` is given, replaces all its supporting files, in one
    /// transaction. [`StoreError::NotFound`] when there is no such row.
    fn update_skill<'a>(
        &'a self,
        skill: &'a SkillRow,
        files: Option<&'a [SkillFileRow]>,
    ) -> StoreFuture<'a, ()>;

    /// Inserts or refreshes mirror rows (skills whose source is a repo directory or a plugin), in one
    /// transaction. An existing row keeps its `enabled` switch and `created_at`.
    fn upsert_mirror_skills<'a>(&'a self, skills: &'a [SkillRow]) -> StoreFuture<'a, ()>;

    /// One skill row.
    fn get_skill<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<SkillRow>>;

    /// Every skill row, or those of one `source_kind`, by id.
    fn list_skills<'a>(&'a self, source_kind: Option<&'a str>) -> StoreFuture<'a, Vec<SkillRow>>;

    /// Deletes a skill with its files and assignments. `false` when there was no such row.
    fn delete_skill<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// Sets the operator's switch of one skill. `false` when there is no such row.
    fn set_skill_enabled<'a>(&'a self, id: &'a str, enabled: bool) -> StoreFuture<'a, bool>;

    /// The supporting files of a skill (with content), by path.
    fn list_skill_files<'a>(&'a self, skill_id: &'a str) -> StoreFuture<'a, Vec<SkillFileRow>>;

    /// One supporting file of a skill.
    fn get_skill_file<'a>(
        &'a self,
        skill_id: &'a str,
        relative_path: &'a str,
    ) -> StoreFuture<'a, Option<SkillFileRow>>;

    /// Path and size of every supporting file of every skill (no content).
    fn list_skill_file_stats(&self) -> StoreFuture<'_, Vec<SkillFileStat>>;

    /// Creates or changes the assignment of a skill to one scope (priority and enabled flag).
    /// [`StoreError::NotFound`] when the skill has no row.
    fn set_skill_assignment<'a>(
        &'a self,
        new: &'a NewSkillAssignment,
    ) -> StoreFuture<'a, SkillAssignmentRow>;

    /// Adds an assignment unless one exists for the same skill and scope (whatever its flag).
    /// `true` when added.
    fn insert_skill_assignment_if_absent<'a>(
        &'a self,
        new: &'a NewSkillAssignment,
    ) -> StoreFuture<'a, bool>;

    /// Assignments, narrowed by the filter; highest priority first.
    fn list_skill_assignments<'a>(
        &'a self,
        filter: &'a AssignmentFilter,
    ) -> StoreFuture<'a, Vec<SkillAssignmentRow>>;

    /// Deletes one assignment. `false` when there was no such row.
    fn delete_skill_assignment<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// The assignments that apply to a run: global ones, the agent's, its team's (when it has one)
    /// and its integration type's (when known), enabled or not; highest priority first.
    fn skill_assignments_for_run<'a>(
        &'a self,
        agent_id: &'a str,
        team_id: Option<&'a str>,
        integration_type: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<SkillAssignmentRow>>;
}

/// Receipts (`plugin_events`) and what is counted from them. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait ReceiptStore: Send + Sync {
    // --- receipts -----------------------------------------------------------------------------------

    /// Writes receipts to `plugin_events` (and `spans` for hook and integration receipts) in one
    /// transaction. Idempotent: a receipt whose id is stored already is skipped, so a batch can be
    /// retried after an ambiguous failure without duplicates.
    fn insert_receipts<'a>(&'a self, receipts: &'a [StoredReceipt]) -> StoreFuture<'a, ()>;

    /// One page of a plugin's receipts, newest first (by `created_at`, then `id`).
    fn list_plugin_events<'a>(
        &'a self,
        plugin_id: &'a str,
        page: PageRequest,
    ) -> StoreFuture<'a, Page<PluginEventRow>>;

    /// How many receipts are stored, for one plugin or for all.
    fn count_plugin_events<'a>(&'a self, plugin_id: Option<&'a str>) -> StoreFuture<'a, u64>;

    /// One page of receipts across plugins, newest first, narrowed by `filter`.
    fn list_events<'a>(
        &'a self,
        filter: &'a EventFilter,
        page: PageRequest,
    ) -> StoreFuture<'a, Page<PluginEventRow>>;

    /// A plugin's hook calls in the hourly buckets of `window`: calls, errors, p50 and p99
    /// durations (see [`HookStats`]).
    fn hook_stats<'a>(&'a self, window: HookStatsWindow<'a>) -> StoreFuture<'a, HookStats>;
}

/// Admin settings and sessions. A part of [`Store`]; bring it into scope with [`prelude`].
pub trait AdminStore: Send + Sync {
    /// A named admin setting.
    fn get_admin_setting<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Stores a named admin setting. With `replace` false an existing value is kept and `false`
    /// returned, so that of several servers starting at once exactly one writes it.
    fn put_admin_setting<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        replace: bool,
    ) -> StoreFuture<'a, bool>;

    /// Records a new admin UI session.
    fn create_admin_session<'a>(&'a self, session: &'a AdminSessionRow) -> StoreFuture<'a, ()>;

    /// The session whose token hashes to `token_hash`.
    fn get_admin_session<'a>(
        &'a self,
        token_hash: &'a str,
    ) -> StoreFuture<'a, Option<AdminSessionRow>>;

    /// Stamps a session's `last_seen_at`.
    fn touch_admin_session<'a>(&'a self, id: &'a str, last_seen_at: i64) -> StoreFuture<'a, ()>;

    /// Ends one session (sign-out). `false` when there was no such session.
    fn delete_admin_session<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// Deletes sessions that expired by `expires_before` or were last used at or before
    /// `idle_since`; returns how many.
    fn delete_stale_admin_sessions(
        &self,
        expires_before: i64,
        idle_since: i64,
    ) -> StoreFuture<'_, u64>;
}

/// The store's traits, to call its methods on an `Arc<dyn Store>`: `use …::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AdminStore, AgentStore, IntegrationStore, PluginStore, ReceiptStore, SkillStore, Store,
        TrustStore, WorkStore,
    };
}
