//! What a run touches: agents, idempotency keys, work items, jobs, spans.

use std::collections::BTreeSet;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{chunk_sizes, col, multi_row_insert, storable, Params, SqlStore, WriteTx};
use super::{
    new_id, AcceptedItem, AgentRow, JobRow, JobUpdate, NewAgent, NewJob, NewWorkItem, SpanRow,
    StoreError, WorkItemRow,
};
use crate::receipts::now_ms;

const AGENT_COLUMNS: &str = "id, name, handle, config, status, created_at, updated_at";
pub(crate) const WORK_ITEM_COLUMNS: &str =
    "id, integration_id, session_key, source, source_ref, status, \
                                 title, payload, created_at, updated_at";
pub(crate) const JOB_COLUMNS: &str =
    "id, work_item_id, agent_id, parent_job_id, root_job_id, run_kind, \
                           origin_tool_name, status, error_text, started_at, completed_at, \
                           created_at, updated_at";
pub(crate) const SPAN_COLUMNS: [&str; 13] = [
    "id",
    "trace_id",
    "parent_span_id",
    "name",
    "kind",
    "status",
    "start_time",
    "end_time",
    "duration_ms",
    "attributes",
    "job_id",
    "agent_id",
    "created_at",
];

/// The columns a new work item is inserted with.
const WORK_ITEM_INSERT_COLUMNS: [&str; 10] = [
    "id",
    "integration_id",
    "session_key",
    "source",
    "source_ref",
    "status",
    "title",
    "payload",
    "created_at",
    "updated_at",
];

/// Whether a batch can take the few-statements path: no item has more than one distinct key, or no
/// key is wanted by two items.
fn batchable(items: &[AcceptedItem]) -> bool {
    let distinct = |keys: &[String]| keys.iter().collect::<BTreeSet<_>>().len();
    if items.iter().all(|a| distinct(&a.keys) <= 1) {
        return true;
    }
    let mut seen = BTreeSet::new();
    items.iter().all(|a| {
        a.keys
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .all(|k| seen.insert(k.as_str()))
    })
}

/// Rows per multi-row insert statement (13 columns: well under both backends' parameter limits).
pub(crate) const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Maps a unique violation to [`StoreError::AlreadyExists`], anything else to a failure of `op`.
fn already_exists(
    op: &'static str,
    entity: &'static str,
    id: &str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    let id = id.to_owned();
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::AlreadyExists { entity, id }
        }
        _ => StoreError::Query { op, source: e },
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
    fn agent_row(row: &DB::Row, op: &'static str) -> Result<AgentRow, StoreError> {
        Ok(AgentRow {
            id: col(row, "id", op)?,
            name: col(row, "name", op)?,
            handle: col(row, "handle", op)?,
            config: col(row, "config", op)?,
            status: col(row, "status", op)?,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
        })
    }

    pub(crate) fn work_item_row(
        row: &DB::Row,
        op: &'static str,
    ) -> Result<WorkItemRow, StoreError> {
        Ok(WorkItemRow {
            id: col(row, "id", op)?,
            integration_id: col(row, "integration_id", op)?,
            session_key: col(row, "session_key", op)?,
            source: col(row, "source", op)?,
            source_ref: col(row, "source_ref", op)?,
            status: col(row, "status", op)?,
            title: col(row, "title", op)?,
            payload: col(row, "payload", op)?,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
        })
    }

    pub(crate) fn job_row(row: &DB::Row, op: &'static str) -> Result<JobRow, StoreError> {
        Ok(JobRow {
            id: col(row, "id", op)?,
            work_item_id: col(row, "work_item_id", op)?,
            agent_id: col(row, "agent_id", op)?,
            parent_job_id: col(row, "parent_job_id", op)?,
            root_job_id: col(row, "root_job_id", op)?,
            run_kind: col(row, "run_kind", op)?,
            origin_tool_name: col(row, "origin_tool_name", op)?,
            status: col(row, "status", op)?,
            error_text: col(row, "error_text", op)?,
            started_at: col(row, "started_at", op)?,
            completed_at: col(row, "completed_at", op)?,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
        })
    }

    fn span_row(row: &DB::Row, op: &'static str) -> Result<SpanRow, StoreError> {
        Ok(SpanRow {
            id: col(row, "id", op)?,
            trace_id: col(row, "trace_id", op)?,
            parent_span_id: col(row, "parent_span_id", op)?,
            name: col(row, "name", op)?,
            kind: col(row, "kind", op)?,
            status: col(row, "status", op)?,
            start_time: col(row, "start_time", op)?,
            end_time: col(row, "end_time", op)?,
            duration_ms: col(row, "duration_ms", op)?,
            attributes: col(row, "attributes", op)?,
            job_id: col(row, "job_id", op)?,
            agent_id: col(row, "agent_id", op)?,
            created_at: col(row, "created_at", op)?,
        })
    }

    pub(crate) async fn sql_create_agent(&self, new: NewAgent) -> Result<AgentRow, StoreError> {
        const OP: &str = "insert agent";
        let id = new.id.unwrap_or_else(new_id);
        let now = now_ms();
        let sql = format!(
            "INSERT INTO agents (id, name, handle, config, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'idle', $5, $5) RETURNING {AGENT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(new.name.as_str())
            .bind(new.handle)
            .bind(new.config)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(already_exists(OP, "agent", &format!("{id} ({})", new.name)))?;
        Self::agent_row(&row, OP)
    }

    pub(crate) async fn sql_get_agent(&self, id: &str) -> Result<Option<AgentRow>, StoreError> {
        const OP: &str = "read agent";
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::agent_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_assign_integration(
        &self,
        agent_id: &str,
        integration_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_integrations (agent_id, integration_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(agent_id)
        .bind(integration_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("assign integration to agent"))?;
        Ok(())
    }

    pub(crate) async fn sql_agent_integration_ids(
        &self,
        agent_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "list agent integrations";
        let rows = sqlx::query(
            "SELECT integration_id FROM agent_integrations WHERE agent_id = $1 \
             ORDER BY integration_id",
        )
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| col(r, "integration_id", OP)).collect()
    }

    pub(crate) async fn sql_try_insert_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<bool, StoreError> {
        const OP: &str = "insert idempotency keys";
        // A key listed twice by one caller is one key, not a conflict with itself. Sorted, so that
        // concurrent callers with overlapping sets take the keys' locks in the same order (on Postgres,
        // opposite orders could deadlock).
        let mut tx = self.begin_write(OP).await?;
        if !Self::insert_keys(&mut tx, keys, None, OP).await? {
            tx.rollback().await.map_err(StoreError::query(OP))?;
            return Ok(false);
        }
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(true)
    }

    /// Inserts every key in `tx`; `false` as soon as one exists already (the caller rolls back).
    async fn insert_keys(
        tx: &mut super::sql::WriteTx<DB>,
        keys: &[String],
        work_item_id: Option<&str>,
        op: &'static str,
    ) -> Result<bool, StoreError> {
        // A key listed twice by one caller is one key, not a conflict with itself. Sorted, so that
        // concurrent callers with overlapping sets take the keys' locks in the same order (on Postgres,
        // opposite orders could deadlock).
        let keys: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let now = now_ms();
        for key in keys {
            // `RETURNING` tells whether this statement inserted the key. On Postgres a concurrent
            // insert of the same key waits for the other transaction and then conflicts, so exactly
            // one caller sees every key inserted.
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (key, work_item_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING RETURNING key",
            )
            .bind(key)
            .bind(work_item_id)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::query(op))?
            .is_some();
            if !inserted {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(crate) async fn sql_create_work_item_once(
        &self,
        keys: &[String],
        new: NewWorkItem,
    ) -> Result<Option<WorkItemRow>, StoreError> {
        let mut created = self
            .sql_create_work_items_once(vec![(keys.to_vec(), new)])
            .await?;
        Ok(created.pop().flatten())
    }

    /// Creates many work items, each with its idempotency keys, in ONE transaction (group commit): an
    /// item any of whose keys exists already is skipped (`None`), the others are created.
    pub(crate) async fn sql_create_work_items_once(
        &self,
        items: Vec<(Vec<String>, NewWorkItem)>,
    ) -> Result<Vec<Option<WorkItemRow>>, StoreError> {
        let items = items
            .into_iter()
            .map(|(keys, item)| AcceptedItem {
                keys,
                item,
                run: None,
                receipt: None,
            })
            .collect::<Vec<_>>();
        self.sql_accept_work_items(&items).await
    }

    /// Inserts the work items of `items` with their keys inside `tx`; `None` for an item that lost a
    /// key (nothing of it is left), its row otherwise.
    pub(crate) async fn insert_work_items(
        tx: &mut WriteTx<DB>,
        items: &[AcceptedItem],
        params: Params,
    ) -> Result<Vec<Option<WorkItemRow>>, StoreError> {
        if batchable(items) {
            Self::insert_work_items_batched(tx, items, params).await
        } else {
            Self::insert_work_items_one_by_one(tx, items).await
        }
    }

    /// The whole batch in a few statements: every item in one multi-row insert, every key in one
    /// `ON CONFLICT DO NOTHING RETURNING` insert, then the items that lost a key deleted again (their
    /// keys go with them). Exact when no item has more than one key, or no two items share one (see
    /// [`batchable`]): then a losing item never holds a key another item of the batch wanted.
    async fn insert_work_items_batched(
        tx: &mut WriteTx<DB>,
        items: &[AcceptedItem],
        params: Params,
    ) -> Result<Vec<Option<WorkItemRow>>, StoreError> {
        const OP: &str = "insert work items with idempotency keys";
        let now = now_ms();
        let ids: Vec<String> = items
            .iter()
            .map(|a| a.item.id.clone().unwrap_or_else(new_id))
            .collect();
        // (key, index of the item): sorted by key so that concurrent batches on Postgres take the
        // keys' locks in one order; stable, so the earlier item of the batch wins a shared key.
        let mut keys: Vec<(&str, usize)> = Vec::new();
        for (i, a) in items.iter().enumerate() {
            let distinct: BTreeSet<&str> = a.keys.iter().map(String::as_str).collect();
            keys.extend(distinct.into_iter().map(|k| (k, i)));
        }
        keys.sort_by(|a, b| a.0.cmp(b.0));

        let mut rows: std::collections::HashMap<String, WorkItemRow> =
            std::collections::HashMap::with_capacity(items.len());
        let mut rest: &[AcceptedItem] = items;
        let mut first = 0;
        for size in chunk_sizes(items.len(), MAX_ROWS_PER_STATEMENT) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let sql = multi_row_insert(
                "work_items",
                &WORK_ITEM_INSERT_COLUMNS,
                size,
                &format!("RETURNING {WORK_ITEM_COLUMNS}"),
                params,
            );
            let texts: Vec<[std::borrow::Cow<'_, str>; 5]> = chunk
                .iter()
                .map(|a| {
                    [
                        storable(&a.item.session_key),
                        storable(&a.item.source),
                        storable(&a.item.source_ref),
                        storable(&a.item.title),
                        storable(a.item.payload.as_deref().unwrap_or("")),
                    ]
                })
                .collect();
            let mut query = sqlx::query(&sql);
            for (offset, (a, text)) in chunk.iter().zip(&texts).enumerate() {
                let new = &a.item;
                query = query
                    .bind(ids[first + offset].as_str())
                    .bind(new.integration_id.as_deref())
                    .bind(text[0].as_ref())
                    .bind(text[1].as_ref())
                    .bind(text[2].as_ref())
                    .bind(new.status.as_deref().unwrap_or("NEW"))
                    .bind(text[3].as_ref())
                    .bind(new.payload.as_ref().map(|_| text[4].as_ref()))
                    .bind(now)
                    .bind(now);
            }
            first += size;
            for row in query
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?
            {
                let row = Self::work_item_row(&row, OP)?;
                rows.insert(row.id.clone(), row);
            }
        }

        // Key → the item that holds it now (inserted by this statement).
        let mut won: std::collections::HashMap<String, String> =
            std::collections::HashMap::with_capacity(keys.len());
        let mut rest: &[(&str, usize)] = &keys;
        for size in chunk_sizes(keys.len(), MAX_ROWS_PER_STATEMENT) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let sql = multi_row_insert(
                "idempotency_keys",
                &["key", "work_item_id", "created_at"],
                size,
                "ON CONFLICT (key) DO NOTHING RETURNING key, work_item_id",
                params,
            );
            let mut query = sqlx::query(&sql);
            for (key, i) in chunk {
                query = query.bind(*key).bind(ids[*i].as_str()).bind(now);
            }
            for row in query
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?
            {
                won.insert(col(&row, "key", OP)?, col(&row, "work_item_id", OP)?);
            }
        }
        let mut lost = vec![false; ids.len()];
        for (key, i) in &keys {
            if won.get(*key) != Some(&ids[*i]) {
                lost[*i] = true;
            }
        }
        let losers: Vec<&str> = ids
            .iter()
            .zip(&lost)
            .filter(|(_, lost)| **lost)
            .map(|(id, _)| id.as_str())
            .collect();
        for chunk in losers.chunks(MAX_ROWS_PER_STATEMENT) {
            // Their keys, if any were inserted, go with them (ON DELETE CASCADE).
            let sql = format!(
                "DELETE FROM work_items WHERE id IN {}",
                super::sql::placeholders(1, chunk.len(), params)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            query
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, lost) in ids.iter().zip(lost) {
            if lost {
                out.push(None);
            } else {
                let row = rows.remove(id).ok_or_else(|| StoreError::Query {
                    op: OP,
                    source: sqlx::Error::RowNotFound,
                })?;
                out.push(Some(row));
            }
        }
        Ok(out)
    }

    /// One item at a time, each under a savepoint: for batches where items share keys and one has
    /// several (a losing item's other keys must not block later items).
    async fn insert_work_items_one_by_one(
        tx: &mut WriteTx<DB>,
        items: &[AcceptedItem],
    ) -> Result<Vec<Option<WorkItemRow>>, StoreError> {
        const OP: &str = "insert work items with idempotency keys";
        let mut out = Vec::with_capacity(items.len());
        let sql = format!(
            "INSERT INTO work_items (id, integration_id, session_key, source, source_ref, status, \
             title, payload, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {WORK_ITEM_COLUMNS}"
        );
        for a in items {
            let (keys, new) = (&a.keys, &a.item);
            let id = new.id.clone().unwrap_or_else(new_id);
            let payload = new.payload.as_deref().map(storable);
            // A savepoint per item: when its second key conflicts, its first key goes too, and the
            // other items of the batch stay.
            sqlx::query("SAVEPOINT work_item")
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?;
            // The item first: its keys refer to it.
            let row = sqlx::query(&sql)
                .bind(id.as_str())
                .bind(new.integration_id.as_deref())
                .bind(storable(&new.session_key).as_ref())
                .bind(storable(&new.source).as_ref())
                .bind(storable(&new.source_ref).as_ref())
                .bind(new.status.as_deref().unwrap_or("NEW"))
                .bind(storable(&new.title).as_ref())
                .bind(payload.as_deref())
                .bind(now_ms())
                .fetch_one(&mut **tx)
                .await
                .map_err(already_exists(OP, "work item", &id))?;
            if !Self::insert_keys(tx, keys, Some(&id), OP).await? {
                sqlx::query("ROLLBACK TO SAVEPOINT work_item")
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::query(OP))?;
                sqlx::query("RELEASE SAVEPOINT work_item")
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::query(OP))?;
                out.push(None);
                continue;
            }
            sqlx::query("RELEASE SAVEPOINT work_item")
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?;
            out.push(Some(Self::work_item_row(&row, OP)?));
        }
        Ok(out)
    }

    pub(crate) async fn sql_list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        const OP: &str = "list agents";
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY created_at, id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::agent_row(r, OP)).collect()
    }

    pub(crate) async fn sql_agents_for_integration(
        &self,
        integration_id: &str,
    ) -> Result<Vec<AgentRow>, StoreError> {
        const OP: &str = "list agents of integration";
        let sql = format!(
            "SELECT {} FROM agents a JOIN agent_integrations ai ON ai.agent_id = a.id \
             WHERE ai.integration_id = $1 ORDER BY a.created_at, a.id",
            AGENT_COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(integration_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::agent_row(r, OP)).collect()
    }

    pub(crate) async fn sql_attach_idempotency_keys(
        &self,
        keys: &[String],
        work_item_id: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "attach idempotency keys to work item";
        let mut tx = self.begin_write(OP).await?;
        for key in keys {
            sqlx::query("UPDATE idempotency_keys SET work_item_id = $2 WHERE key = $1")
                .bind(key.as_str())
                .bind(work_item_id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        tx.commit().await.map_err(StoreError::query(OP))
    }

    pub(crate) async fn sql_create_work_item(
        &self,
        new: NewWorkItem,
    ) -> Result<WorkItemRow, StoreError> {
        // Without keys nothing can conflict, so `None` cannot come back; map it anyway rather than
        // panic.
        let id = new.id.clone().unwrap_or_default();
        self.sql_create_work_item_once(&[], new)
            .await?
            .ok_or(StoreError::AlreadyExists {
                entity: "work item",
                id,
            })
    }

    pub(crate) async fn sql_get_work_item(
        &self,
        id: &str,
    ) -> Result<Option<WorkItemRow>, StoreError> {
        const OP: &str = "read work item";
        let sql = format!("SELECT {WORK_ITEM_COLUMNS} FROM work_items WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::work_item_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_create_job(&self, new: NewJob) -> Result<JobRow, StoreError> {
        const OP: &str = "insert job";
        let id = new.id.unwrap_or_else(new_id);
        let sql = format!(
            "INSERT INTO jobs (id, work_item_id, agent_id, parent_job_id, root_job_id, run_kind, \
             origin_tool_name, status, started_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {JOB_COLUMNS}"
        );
        // Through a write transaction: on SQLite it waits its turn for the write lock in order.
        let mut tx = self.begin_write(OP).await?;
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(new.work_item_id)
            .bind(new.agent_id)
            .bind(new.parent_job_id)
            .bind(new.root_job_id)
            .bind(new.run_kind.unwrap_or_else(|| "primary".to_owned()))
            .bind(new.origin_tool_name)
            .bind(new.status.unwrap_or_else(|| "PENDING".to_owned()))
            .bind(new.started_at)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(already_exists(OP, "job", &id))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Self::job_row(&row, OP)
    }

    pub(crate) async fn sql_update_job(
        &self,
        id: &str,
        update: JobUpdate,
    ) -> Result<JobRow, StoreError> {
        const OP: &str = "update job";
        let mut tx = self.begin_write(OP).await?;
        let job = Self::update_job_in(&mut tx, id, update).await?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(job)
    }

    pub(crate) async fn update_job_in(
        conn: &mut DB::Connection,
        id: &str,
        update: JobUpdate,
    ) -> Result<JobRow, StoreError> {
        const OP: &str = "update job";
        let (set_error, error_text) = match update.error_text {
            Some(value) => (1_i64, value),
            None => (0_i64, None),
        };
        let sql = format!(
            "UPDATE jobs SET status = COALESCE($2, status), \
             error_text = CASE WHEN $3 = 1 THEN $4 ELSE error_text END, \
             started_at = COALESCE($5, started_at), completed_at = COALESCE($6, completed_at), \
             updated_at = $7 WHERE id = $1 RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(update.status)
            .bind(set_error)
            .bind(error_text)
            .bind(update.started_at)
            .bind(update.completed_at)
            .bind(now_ms())
            .fetch_optional(conn)
            .await
            .map_err(StoreError::query(OP))?
            .ok_or_else(|| StoreError::NotFound {
                entity: "job",
                id: id.to_owned(),
            })?;
        Self::job_row(&row, OP)
    }

    pub(crate) async fn sql_finish_job(
        &self,
        id: &str,
        update: JobUpdate,
        spans: &[SpanRow],
    ) -> Result<JobRow, StoreError> {
        const OP: &str = "finish job";
        let mut tx = self.begin_write(OP).await?;
        Self::insert_span_rows(&mut tx, spans, self.params).await?;
        let job = Self::update_job_in(&mut tx, id, update).await?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(job)
    }

    pub(crate) async fn sql_get_job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        const OP: &str = "read job";
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::job_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_insert_spans(&self, spans: &[SpanRow]) -> Result<(), StoreError> {
        const OP: &str = "insert spans";
        if spans.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(OP).await?;
        Self::insert_span_rows(&mut tx, spans, self.params).await?;
        tx.commit().await.map_err(StoreError::query(OP))
    }

    /// Inserts spans inside a transaction the caller owns (the receipt writer shares its own).
    pub(crate) async fn insert_span_rows(
        tx: &mut super::sql::WriteTx<DB>,
        spans: &[SpanRow],
        params: Params,
    ) -> Result<(), StoreError> {
        let mut rest = spans;
        for size in chunk_sizes(spans.len(), MAX_ROWS_PER_STATEMENT) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let sql = multi_row_insert(
                "spans",
                &SPAN_COLUMNS,
                size,
                "ON CONFLICT (id) DO NOTHING",
                params,
            );
            let mut query = sqlx::query(&sql);
            for s in chunk {
                query = query
                    .bind(s.id.as_str())
                    .bind(s.trace_id.as_str())
                    .bind(s.parent_span_id.as_deref())
                    .bind(s.name.as_str())
                    .bind(s.kind.as_str())
                    .bind(s.status.as_str())
                    .bind(s.start_time)
                    .bind(s.end_time)
                    .bind(s.duration_ms)
                    .bind(s.attributes.as_deref())
                    .bind(s.job_id.as_deref())
                    .bind(s.agent_id.as_deref())
                    .bind(s.created_at);
            }
            query
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query("insert spans"))?;
        }
        Ok(())
    }

    pub(crate) async fn sql_list_spans(&self, trace_id: &str) -> Result<Vec<SpanRow>, StoreError> {
        const OP: &str = "list spans";
        let sql = format!(
            "SELECT {} FROM spans WHERE trace_id = $1 ORDER BY start_time, id",
            SPAN_COLUMNS.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(trace_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::span_row(r, OP)).collect()
    }
}
