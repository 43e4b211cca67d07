//! The SQL shared by both backends.
//!
//! SQLite and Postgres accept the same statements here: `$1`-style parameters (sqlx's SQLite driver
//! maps `$N` to the N-th argument), `ON CONFLICT … DO UPDATE/NOTHING`, `RETURNING`, row-value
//! comparisons. So the queries are written once, in `impl<DB> SqlStore<DB>` blocks generic over the
//! sqlx driver, and [`SqliteStore`](super::SqliteStore) and [`PostgresStore`](super::PostgresStore) are
//! `SqlStore<Sqlite>` and `SqlStore<Postgres>`. What differs per backend (connect options, pragmas,
//! adoption of legacy files, the migration folder, how a write transaction begins) lives in `sqlite.rs`
//! and `postgres.rs`.
//!
//! Rust does not carry a trait's where-clauses over to its users, so every generic `impl` block repeats
//! the sqlx bounds it needs (the list in [`SqlStore`]'s own impl below is the reference).

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::health::StoreHealth;
use super::{Backend, StoreError};
use crate::crypto::Cipher;

/// A store over one sqlx driver.
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
    pub(crate) cipher: Cipher,
    pub(crate) backend: Backend,
    /// The statement that opens a write transaction: SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for the lock instead of failing with
    /// "database is locked" when another writer got in between.
    pub(crate) begin_write: &'static str,
    /// How multi-row inserts write their parameters.
    pub(crate) params: Params,
    /// Whether writes are going through (see [`StoreHealth`]).
    pub(crate) health: Arc<StoreHealth>,
    /// SQLite: the one write lock of the database, taken in this process first (in order, without
    /// sleeping). SQLite lets one connection write at a time; a connection that finds the lock
    /// taken polls for it with growing sleeps (1, 2, 5, 10 ms …), which left the webhook writer
    /// asleep while the lock was free. `None` on Postgres, which takes concurrent writers.
    pub(crate) write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// A SQLite database in memory (`sqlite::memory:`): no file, one process.
    pub(crate) in_memory: bool,
}

/// Parameter style of generated multi-row inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Params {
    /// `$1, $2, …` (Postgres needs them).
    Numbered,
    /// `?, ?, …`. For SQLite: binding a numbered parameter makes SQLite look its name up in a list,
    /// linearly, so a 3000-parameter statement spent most of its time there (measured: 80% of a batch
    /// insert). Anonymous parameters skip the lookup.
    Anonymous,
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    /// Opens a write transaction on a connection of its own (see [`WriteTx`]).
    pub(crate) async fn begin_write(&self, op: &'static str) -> Result<WriteTx<DB>, StoreError> {
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(source) => {
                self.health.failed_with(&source, op);
                return Err(StoreError::Query { op, source });
            }
        };
        if let Err(source) = sqlx::query(self.begin_write).execute(&mut *conn).await {
            // Whatever state the connection is in, it is not handed to anyone else.
            drop(conn.detach());
            self.health.failed_with(&source, op);
            return Err(StoreError::Query { op, source });
        }
        Ok(WriteTx {
            conn: Some(conn),
            op,
            health: self.health.clone(),
            _gate: gate,
        })
    }
}

/// A write transaction: `BEGIN` (SQLite: `BEGIN IMMEDIATE`) … `COMMIT`, sent as plain statements on a
/// connection taken from the pool for the purpose.
///
/// A transaction that does not end in a successful `COMMIT` or `ROLLBACK` — a failed statement, a
/// failed commit, a caller returning early — takes its connection out of the pool and closes it (the
/// database rolls back what it had). A connection whose last write failed is therefore never handed
/// to the next caller. (sqlx's own transactions count their depth on the connection; a `BEGIN` that
/// failed, on a full disk or a read-only file, left that count off by one, and every later
/// transaction on that pooled connection failed with "attempted to call begin_with at non-zero
/// transaction depth" until a restart.) Commits feed [`StoreHealth`].
pub(crate) struct WriteTx<DB: Database> {
    /// `Some` until `commit` or `rollback` takes it.
    conn: Option<PoolConnection<DB>>,
    op: &'static str,
    health: Arc<StoreHealth>,
    /// Held until the transaction ends (SQLite; see [`SqlStore::write_gate`]).
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;

    #[expect(
        clippy::expect_used,
        reason = "only `commit` and `rollback` take the connection, and they consume the transaction"
    )]
    fn deref(&self) -> &DB::Connection {
        self.conn
            .as_ref()
            .expect("an open transaction has its connection")
    }
}

impl<DB: Database> std::ops::DerefMut for WriteTx<DB> {
    #[expect(
        clippy::expect_used,
        reason = "only `commit` and `rollback` take the connection, and they consume the transaction"
    )]
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.conn
            .as_mut()
            .expect("an open transaction has its connection")
    }
}

impl<DB: Database> Drop for WriteTx<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Ended without COMMIT or ROLLBACK: close the connection rather than pool it mid-way.
            drop(conn.detach());
        }
    }
}

impl<DB> WriteTx<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    /// Commits; on failure the connection is closed.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    /// Rolls back; on failure the connection is closed.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        match sqlx::query(statement).execute(&mut *conn).await {
            Ok(_) => {
                self.health.succeeded();
                Ok(())
            }
            Err(source) => {
                drop(conn.detach());
                self.health.failed_with(&source, self.op);
                Err(source)
            }
        }
    }
}

/// Text as a text column can hold it on every backend: U+0000 (which Postgres refuses in `text`)
/// becomes U+FFFD on both, so the same message is stored the same way wherever it goes. JSON columns
/// need nothing: serde writes U+0000 as `\u0000`.
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Reads a column, naming the operation in the error.
pub(crate) fn col<'r, T, R>(
    row: &'r R,
    name: &'static str,
    op: &'static str,
) -> Result<T, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<T, _>(name).map_err(StoreError::query(op))
}

/// `($first, $first+1, …)` (or `(?, ?, …)`) for `count` parameters: one row of a multi-row `VALUES`.
pub(crate) fn placeholders(first: usize, count: usize, params: Params) -> String {
    let mut out = String::with_capacity(count * 4 + 2);
    out.push('(');
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        match params {
            Params::Numbered => {
                out.push('$');
                out.push_str(&(first + i).to_string());
            }
            Params::Anonymous => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// `INSERT INTO table (columns) VALUES (…), (…), …` for `rows` rows, with `suffix` appended.
pub(crate) fn multi_row_insert(
    table: &str,
    columns: &[&str],
    rows: usize,
    suffix: &str,
    params: Params,
) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&placeholders(1 + r * columns.len(), columns.len(), params));
    }
    sql.push(' ');
    sql.push_str(suffix);
    sql
}

/// Splits `len` rows into chunks whose sizes are powers of two no larger than `max`, so that the few
/// statement shapes a multi-row insert uses stay in the driver's prepared-statement cache.
pub(crate) fn chunk_sizes(mut len: usize, max: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while len > 0 {
        let mut size = max.min(len).next_power_of_two();
        if size > len {
            size /= 2;
        }
        sizes.push(size);
        len -= size;
    }
    sizes
}

/// Implements [`Store`](super::Store) for a concrete `SqlStore<DB>` by delegating to the shared SQL.
///
/// Generated per backend (rather than one generic impl) so that the compiler checks the `Send`-ness of
/// each returned future on the concrete driver types, where it holds without extra bounds.
macro_rules! impl_store {
    ($db:ty) => {
        impl $crate::store::Store for $crate::store::sql::SqlStore<$db> {
            fn backend(&self) -> $crate::store::Backend {
                self.backend
            }
            fn cipher(&self) -> &$crate::crypto::Cipher {
                &self.cipher
            }
            fn health(&self) -> &$crate::store::StoreHealth {
                &self.health
            }
            fn probe_write(&self) -> StoreFuture<'_, ()> {
                Box::pin(self.sql_probe_write())
            }
            fn change_revisions(&self) -> StoreFuture<'_, $crate::store::Revisions> {
                Box::pin(self.sql_change_revisions())
            }
            fn watch_changes(&self, signal: $crate::store::ChangeCallback) -> StoreFuture<'_, ()> {
                Box::pin(self.sql_watch_changes(signal))
            }
            fn ping(&self) -> StoreFuture<'_, ()> {
                Box::pin(self.sql_ping())
            }
            fn close(&self) -> StoreFuture<'_, ()> {
                Box::pin(async move {
                    self.pool.close().await;
                    Ok(())
                })
            }
        }
        impl $crate::store::IntegrationStore for $crate::store::sql::SqlStore<$db> {
            fn create_integration<'a>(
                &'a self,
                new: NewIntegration,
                sensitive_fields: &'a [String],
            ) -> StoreFuture<'a, IntegrationRow> {
                Box::pin(self.sql_create_integration(new, sensitive_fields))
            }
            fn get_integration<'a>(
                &'a self,
                id: &'a str,
            ) -> StoreFuture<'a, Option<IntegrationRow>> {
                Box::pin(self.sql_get_integration(id))
            }
            fn list_integrations<'a>(
                &'a self,
                integration_type: Option<&'a str>,
            ) -> StoreFuture<'a, Vec<IntegrationRow>> {
                Box::pin(self.sql_list_integrations(integration_type))
            }
            fn update_integration<'a>(
                &'a self,
                id: &'a str,
                update: IntegrationUpdate,
                sensitive_fields: &'a [String],
            ) -> StoreFuture<'a, IntegrationRow> {
                Box::pin(self.sql_update_integration(id, update, sensitive_fields))
            }
            fn set_integration_enabled<'a>(
                &'a self,
                id: &'a str,
                enabled: bool,
            ) -> StoreFuture<'a, IntegrationRow> {
                Box::pin(self.sql_set_integration_enabled(id, enabled))
            }
            fn delete_integration<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_delete_integration(id))
            }
        }
        impl $crate::store::PluginStore for $crate::store::sql::SqlStore<$db> {
            fn upsert_plugin<'a>(&'a self, plugin: &'a PluginRow) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_upsert_plugin(plugin))
            }
            fn get_plugin<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PluginRow>> {
                Box::pin(self.sql_get_plugin(id))
            }
            fn list_plugins(&self) -> StoreFuture<'_, Vec<PluginRow>> {
                Box::pin(self.sql_list_plugins())
            }
            fn delete_plugin<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_delete_plugin(id))
            }
            fn upsert_plugin_version<'a>(
                &'a self,
                version: &'a PluginVersionRow,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_upsert_plugin_version(version))
            }
            fn get_plugin_version<'a>(
                &'a self,
                plugin_id: &'a str,
                version: &'a str,
            ) -> StoreFuture<'a, Option<PluginVersionRow>> {
                Box::pin(self.sql_get_plugin_version(plugin_id, version))
            }
            fn list_plugin_versions<'a>(
                &'a self,
                plugin_id: &'a str,
            ) -> StoreFuture<'a, Vec<PluginVersionRow>> {
                Box::pin(self.sql_list_plugin_versions(plugin_id))
            }
            fn upsert_disclosure_ack<'a>(
                &'a self,
                ack: &'a DisclosureAckRow,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_upsert_disclosure_ack(ack))
            }
            fn list_disclosure_acks<'a>(
                &'a self,
                plugin_id: &'a str,
            ) -> StoreFuture<'a, Vec<DisclosureAckRow>> {
                Box::pin(self.sql_list_disclosure_acks(plugin_id))
            }
            fn put_plugin_artifact<'a>(
                &'a self,
                artifact: &'a PluginArtifact,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_put_plugin_artifact(artifact))
            }
            fn get_plugin_artifact<'a>(
                &'a self,
                plugin_id: &'a str,
                version: &'a str,
            ) -> StoreFuture<'a, Option<PluginArtifact>> {
                Box::pin(self.sql_get_plugin_artifact(plugin_id, version))
            }
            fn delete_plugin_versions<'a>(&'a self, plugin_id: &'a str) -> StoreFuture<'a, u64> {
                Box::pin(self.sql_delete_plugin_versions(plugin_id))
            }
            fn delete_plugin_version<'a>(
                &'a self,
                plugin_id: &'a str,
                version: &'a str,
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_delete_plugin_version(plugin_id, version))
            }
            fn purge_plugin_data<'a>(&'a self, plugin_id: &'a str) -> StoreFuture<'a, u64> {
                Box::pin(self.sql_purge_plugin_data(plugin_id))
            }
            fn insert_plugin_alert<'a>(
                &'a self,
                alert: &'a $crate::store::PluginAlertRow,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_insert_plugin_alert(alert))
            }
            fn list_plugin_alerts<'a>(
                &'a self,
                plugin_id: Option<&'a str>,
                include_cleared: bool,
            ) -> StoreFuture<'a, Vec<$crate::store::PluginAlertRow>> {
                Box::pin(self.sql_list_plugin_alerts(plugin_id, include_cleared))
            }
            fn clear_plugin_alerts<'a>(
                &'a self,
                plugin_id: &'a str,
                at_ms: i64,
            ) -> StoreFuture<'a, u64> {
                Box::pin(self.sql_clear_plugin_alerts(plugin_id, at_ms))
            }
            fn write_plugin_settings<'a>(
                &'a self,
                write: &'a $crate::store::SettingsWrite,
            ) -> StoreFuture<'a, i64> {
                Box::pin(self.sql_write_plugin_settings(write))
            }
            fn set_plugin_execution<'a>(
                &'a self,
                plugin_id: &'a str,
                mode: Option<&'a str>,
                memory_mib: Option<i64>,
                cpu_seconds: Option<i64>,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_set_plugin_execution(plugin_id, mode, memory_mib, cpu_seconds))
            }
            fn list_plugin_secrets<'a>(
                &'a self,
                plugin_id: &'a str,
            ) -> StoreFuture<'a, Vec<$crate::store::PluginSecretRow>> {
                Box::pin(self.sql_list_plugin_secrets(plugin_id))
            }
            fn put_consent<'a>(&'a self, consent: &'a ConsentRow) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_put_consent(consent))
            }
            fn get_consent<'a>(
                &'a self,
                plugin_id: &'a str,
                version: &'a str,
            ) -> StoreFuture<'a, Option<ConsentRow>> {
                Box::pin(self.sql_get_consent(plugin_id, version))
            }
            fn list_consents<'a>(&'a self, plugin_id: &'a str) -> StoreFuture<'a, Vec<ConsentRow>> {
                Box::pin(self.sql_list_consents(plugin_id))
            }
        }
        impl $crate::store::TrustStore for $crate::store::sql::SqlStore<$db> {
            fn list_trust_entries(&self) -> StoreFuture<'_, Vec<$crate::store::TrustEntryRow>> {
                Box::pin(self.sql_list_trust_entries())
            }
            fn trust_revision(&self) -> StoreFuture<'_, i64> {
                Box::pin(self.sql_trust_revision())
            }
            fn add_trust_entry<'a>(
                &'a self,
                entry: &'a $crate::store::TrustEntryRow,
            ) -> StoreFuture<'a, i64> {
                Box::pin(self.sql_add_trust_entry(entry))
            }
            fn remove_trust_entry<'a>(
                &'a self,
                kind: &'a str,
                ident: &'a str,
            ) -> StoreFuture<'a, Option<i64>> {
                Box::pin(self.sql_remove_trust_entry(kind, ident))
            }
        }
        impl $crate::store::AgentStore for $crate::store::sql::SqlStore<$db> {
            fn create_agent(&self, new: NewAgent) -> StoreFuture<'_, AgentRow> {
                Box::pin(self.sql_create_agent(new))
            }
            fn get_agent<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<AgentRow>> {
                Box::pin(self.sql_get_agent(id))
            }
            fn assign_integration<'a>(
                &'a self,
                agent_id: &'a str,
                integration_id: &'a str,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_assign_integration(agent_id, integration_id))
            }
            fn agent_integration_ids<'a>(
                &'a self,
                agent_id: &'a str,
            ) -> StoreFuture<'a, Vec<String>> {
                Box::pin(self.sql_agent_integration_ids(agent_id))
            }
            fn agent_plugin_grants<'a>(
                &'a self,
                agent_id: &'a str,
            ) -> StoreFuture<'a, Vec<String>> {
                Box::pin(self.sql_agent_plugin_grants(agent_id))
            }
            fn set_agent_plugin_grants<'a>(
                &'a self,
                agent_id: &'a str,
                capabilities: &'a [String],
                granted_by: &'a str,
                at_ms: i64,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_set_agent_plugin_grants(
                    agent_id,
                    capabilities,
                    granted_by,
                    at_ms,
                ))
            }
            fn create_plugin_request<'a>(
                &'a self,
                row: &'a $crate::store::PluginRequestRow,
                archive: Option<&'a [u8]>,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_create_plugin_request(row, archive))
            }
            fn plugin_request_archive<'a>(
                &'a self,
                id: &'a str,
            ) -> StoreFuture<'a, Option<Vec<u8>>> {
                Box::pin(self.sql_plugin_request_archive(id))
            }
            fn plugin_requests<'a>(
                &'a self,
                status: Option<&'a str>,
            ) -> StoreFuture<'a, Vec<$crate::store::PluginRequestRow>> {
                Box::pin(self.sql_plugin_requests(status))
            }
            fn get_plugin_request<'a>(
                &'a self,
                id: &'a str,
            ) -> StoreFuture<'a, Option<$crate::store::PluginRequestRow>> {
                Box::pin(self.sql_get_plugin_request(id))
            }
            fn decide_plugin_request<'a>(
                &'a self,
                id: &'a str,
                status: &'a str,
                by: &'a str,
                at_ms: i64,
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_decide_plugin_request(id, status, by, at_ms))
            }
            fn list_agents(&self) -> StoreFuture<'_, Vec<AgentRow>> {
                Box::pin(self.sql_list_agents())
            }
            fn agents_for_integration<'a>(
                &'a self,
                integration_id: &'a str,
            ) -> StoreFuture<'a, Vec<AgentRow>> {
                Box::pin(self.sql_agents_for_integration(integration_id))
            }
        }
        impl $crate::store::WorkStore for $crate::store::sql::SqlStore<$db> {
            fn try_insert_idempotency_keys<'a>(
                &'a self,
                keys: &'a [String],
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_try_insert_idempotency_keys(keys))
            }
            fn attach_idempotency_keys<'a>(
                &'a self,
                keys: &'a [String],
                work_item_id: &'a str,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_attach_idempotency_keys(keys, work_item_id))
            }
            fn create_work_item(&self, new: NewWorkItem) -> StoreFuture<'_, WorkItemRow> {
                Box::pin(self.sql_create_work_item(new))
            }
            fn create_work_items_once(
                &self,
                items: Vec<(Vec<String>, NewWorkItem)>,
            ) -> StoreFuture<'_, Vec<Option<WorkItemRow>>> {
                Box::pin(self.sql_create_work_items_once(items))
            }
            fn accept_work_items<'a>(
                &'a self,
                items: &'a [AcceptedItem],
            ) -> StoreFuture<'a, Vec<Option<WorkItemRow>>> {
                Box::pin(self.sql_accept_work_items(items))
            }
            fn claim_runs<'a>(&'a self, claim: RunClaim<'a>) -> StoreFuture<'a, Vec<ClaimedRun>> {
                Box::pin(self.sql_claim_runs(claim))
            }
            fn renew_run_leases<'a>(
                &'a self,
                owner: &'a str,
                seqs: &'a [i64],
                until: i64,
            ) -> StoreFuture<'a, u64> {
                Box::pin(self.sql_renew_run_leases(owner, seqs, until))
            }
            fn requeue_run<'a>(
                &'a self,
                seq: i64,
                owner: &'a str,
                available_at: i64,
                error: &'a str,
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_requeue_run(seq, owner, available_at, error))
            }
            fn release_run_leases<'a>(&'a self, owner: Option<&'a str>) -> StoreFuture<'a, u64> {
                Box::pin(self.sql_release_run_leases(owner))
            }
            fn finish_run<'a>(&'a self, seq: i64, owner: &'a str) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_finish_run(seq, owner))
            }
            fn finish_job_and_run<'a>(
                &'a self,
                id: &'a str,
                update: JobUpdate,
                spans: &'a [SpanRow],
                run: Option<(i64, &'a str)>,
            ) -> StoreFuture<'a, JobRow> {
                Box::pin(self.sql_finish_job_and_run(id, update, spans, run))
            }
            fn jobs_of_work_item<'a>(
                &'a self,
                work_item_id: &'a str,
            ) -> StoreFuture<'a, Vec<JobRow>> {
                Box::pin(self.sql_jobs_of_work_item(work_item_id))
            }
            fn count_runs(&self) -> StoreFuture<'_, u64> {
                Box::pin(self.sql_count_runs())
            }
            fn repair_run_heads(&self) -> StoreFuture<'_, u64> {
                Box::pin(self.sql_repair_run_heads())
            }
            fn finish_job<'a>(
                &'a self,
                id: &'a str,
                update: JobUpdate,
                spans: &'a [SpanRow],
            ) -> StoreFuture<'a, JobRow> {
                Box::pin(self.sql_finish_job(id, update, spans))
            }
            fn create_work_item_once<'a>(
                &'a self,
                keys: &'a [String],
                new: NewWorkItem,
            ) -> StoreFuture<'a, Option<WorkItemRow>> {
                Box::pin(self.sql_create_work_item_once(keys, new))
            }
            fn get_work_item<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<WorkItemRow>> {
                Box::pin(self.sql_get_work_item(id))
            }
            fn create_job(&self, new: NewJob) -> StoreFuture<'_, JobRow> {
                Box::pin(self.sql_create_job(new))
            }
            fn update_job<'a>(&'a self, id: &'a str, update: JobUpdate) -> StoreFuture<'a, JobRow> {
                Box::pin(self.sql_update_job(id, update))
            }
            fn get_job<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<JobRow>> {
                Box::pin(self.sql_get_job(id))
            }
            fn insert_spans<'a>(&'a self, spans: &'a [SpanRow]) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_insert_spans(spans))
            }
            fn list_spans<'a>(&'a self, trace_id: &'a str) -> StoreFuture<'a, Vec<SpanRow>> {
                Box::pin(self.sql_list_spans(trace_id))
            }
            fn list_runs<'a>(
                &'a self,
                filter: &'a RunFilter,
                page: PageRequest,
            ) -> StoreFuture<'a, Page<RunRow>> {
                Box::pin(self.sql_list_runs(filter, page))
            }
            fn get_run<'a>(&'a self, work_item_id: &'a str) -> StoreFuture<'a, Option<RunRow>> {
                Box::pin(self.sql_get_run(work_item_id))
            }
        }
        impl $crate::store::SkillStore for $crate::store::sql::SqlStore<$db> {
            fn insert_skill<'a>(
                &'a self,
                skill: &'a SkillRow,
                files: &'a [SkillFileRow],
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_insert_skill(skill, files))
            }
            fn update_skill<'a>(
                &'a self,
                skill: &'a SkillRow,
                files: Option<&'a [SkillFileRow]>,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_update_skill(skill, files))
            }
            fn upsert_mirror_skills<'a>(&'a self, skills: &'a [SkillRow]) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_upsert_mirror_skills(skills))
            }
            fn get_skill<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<SkillRow>> {
                Box::pin(self.sql_get_skill(id))
            }
            fn list_skills<'a>(
                &'a self,
                source_kind: Option<&'a str>,
            ) -> StoreFuture<'a, Vec<SkillRow>> {
                Box::pin(self.sql_list_skills(source_kind))
            }
            fn delete_skill<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_delete_skill(id))
            }
            fn set_skill_enabled<'a>(
                &'a self,
                id: &'a str,
                enabled: bool,
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_set_skill_enabled(id, enabled))
            }
            fn list_skill_files<'a>(
                &'a self,
                skill_id: &'a str,
            ) -> StoreFuture<'a, Vec<SkillFileRow>> {
                Box::pin(self.sql_list_skill_files(skill_id))
            }
            fn get_skill_file<'a>(
                &'a self,
                skill_id: &'a str,
                relative_path: &'a str,
            ) -> StoreFuture<'a, Option<SkillFileRow>> {
                Box::pin(self.sql_get_skill_file(skill_id, relative_path))
            }
            fn list_skill_file_stats(&self) -> StoreFuture<'_, Vec<SkillFileStat>> {
                Box::pin(self.sql_list_skill_file_stats())
            }
            fn set_skill_assignment<'a>(
                &'a self,
                new: &'a NewSkillAssignment,
            ) -> StoreFuture<'a, SkillAssignmentRow> {
                Box::pin(self.sql_set_skill_assignment(new))
            }
            fn insert_skill_assignment_if_absent<'a>(
                &'a self,
                new: &'a NewSkillAssignment,
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_insert_skill_assignment_if_absent(new))
            }
            fn list_skill_assignments<'a>(
                &'a self,
                filter: &'a AssignmentFilter,
            ) -> StoreFuture<'a, Vec<SkillAssignmentRow>> {
                Box::pin(self.sql_list_skill_assignments(filter))
            }
            fn delete_skill_assignment<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_delete_skill_assignment(id))
            }
            fn skill_assignments_for_run<'a>(
                &'a self,
                agent_id: &'a str,
                team_id: Option<&'a str>,
                integration_type: Option<&'a str>,
            ) -> StoreFuture<'a, Vec<SkillAssignmentRow>> {
                Box::pin(self.sql_skill_assignments_for_run(agent_id, team_id, integration_type))
            }
        }
        impl $crate::store::ReceiptStore for $crate::store::sql::SqlStore<$db> {
            fn insert_receipts<'a>(&'a self, receipts: &'a [StoredReceipt]) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_insert_receipts(receipts))
            }
            fn list_plugin_events<'a>(
                &'a self,
                plugin_id: &'a str,
                page: PageRequest,
            ) -> StoreFuture<'a, Page<PluginEventRow>> {
                Box::pin(self.sql_list_plugin_events(plugin_id, page))
            }
            fn count_plugin_events<'a>(
                &'a self,
                plugin_id: Option<&'a str>,
            ) -> StoreFuture<'a, u64> {
                Box::pin(self.sql_count_plugin_events(plugin_id))
            }
            fn list_events<'a>(
                &'a self,
                filter: &'a EventFilter,
                page: PageRequest,
            ) -> StoreFuture<'a, Page<PluginEventRow>> {
                Box::pin(self.sql_list_events(filter, page))
            }
            fn hook_stats<'a>(&'a self, window: HookStatsWindow<'a>) -> StoreFuture<'a, HookStats> {
                Box::pin(self.sql_hook_stats(window))
            }
        }
        impl $crate::store::AdminStore for $crate::store::sql::SqlStore<$db> {
            fn get_admin_setting<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
                Box::pin(self.sql_get_admin_setting(key))
            }
            fn put_admin_setting<'a>(
                &'a self,
                key: &'a str,
                value: &'a str,
                replace: bool,
            ) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_insert_admin_setting(key, value, replace))
            }
            fn create_admin_session<'a>(
                &'a self,
                session: &'a AdminSessionRow,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_create_admin_session(session))
            }
            fn get_admin_session<'a>(
                &'a self,
                token_hash: &'a str,
            ) -> StoreFuture<'a, Option<AdminSessionRow>> {
                Box::pin(self.sql_get_admin_session(token_hash))
            }
            fn touch_admin_session<'a>(
                &'a self,
                id: &'a str,
                last_seen_at: i64,
            ) -> StoreFuture<'a, ()> {
                Box::pin(self.sql_touch_admin_session(id, last_seen_at))
            }
            fn delete_admin_session<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
                Box::pin(self.sql_delete_admin_session(id))
            }
            fn delete_stale_admin_sessions(
                &self,
                expires_before: i64,
                idle_since: i64,
            ) -> StoreFuture<'_, u64> {
                Box::pin(self.sql_delete_admin_sessions_before(expires_before, idle_since))
            }
        }
    };
}

pub(crate) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_everything() {
        assert_eq!(chunk_sizes(0, 256), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1, 256), vec![1]);
        assert_eq!(chunk_sizes(300, 256), vec![256, 32, 8, 4]);
        assert_eq!(chunk_sizes(1000, 256), vec![256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(chunk_sizes(100, 64), vec![64, 32, 4]);
    }

    #[test]
    fn multi_row_insert_numbers_parameters_across_rows() {
        assert_eq!(
            multi_row_insert(
                "t",
                &["a", "b"],
                2,
                "ON CONFLICT DO NOTHING",
                Params::Numbered
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            multi_row_insert("t", &["a", "b"], 2, "", Params::Anonymous),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) "
        );
    }
}
