//! The run queue in the database: `runs` rows written with the work items they answer, claimed with
//! leases, removed with the job that finishes them. The database is the queue — on Postgres shared by
//! every server — so a run accepted by a server that dies is finished by whoever claims it next.
//!
//! Runs of one session are answered one at a time in arrival order (`seq`). Only the oldest run of a
//! session may be claimed; `is_head` marks it, kept by the writes that add and remove runs, so that
//! a claim reads the heads only however long one chat's backlog is (and `NOT EXISTS` re-checks it, so
//! a stale mark can delay a run but never reorder one).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::runs::{JOB_COLUMNS, MAX_ROWS_PER_STATEMENT, WORK_ITEM_COLUMNS};
use super::sql::{chunk_sizes, col, multi_row_insert, placeholders, Params, SqlStore, WriteTx};
use super::{
    AcceptedItem, Backend, ClaimedRun, JobRow, JobUpdate, RunClaim, SpanRow, StoreError,
    StoredReceipt, WorkItemRow,
};
use crate::receipts::now_ms;

/// The run of a work item that is the first of its session, and not leased, is claimable.
const CLAIMABLE: &str = "r.is_head = 1 AND r.available_at <= $1 \
     AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= $1) \
     AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.session_key = r.session_key AND e.seq < r.seq)";

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
    pub(crate) async fn sql_accept_work_items(
        &self,
        items: &[AcceptedItem],
    ) -> Result<Vec<Option<WorkItemRow>>, StoreError> {
        const OP: &str = "accept work items";
        let mut tx = self.begin_write(OP).await?;
        let rows = Self::insert_work_items(&mut tx, items, self.params).await?;
        let mut runs: Vec<(&str, &str, Option<&str>)> = Vec::new();
        let mut receipts: Vec<StoredReceipt> = Vec::new();
        for (a, row) in items.iter().zip(&rows) {
            let Some(row) = row else { continue };
            if let Some(run) = &a.run {
                runs.push((
                    row.id.as_str(),
                    row.session_key.as_str(),
                    run.response_context.as_deref(),
                ));
            }
            if let Some(receipt) = &a.receipt {
                let mut receipt = receipt.clone();
                receipt.receipt.work_item_id = Some(row.id.as_str().into());
                receipts.push(receipt);
            }
        }
        Self::queue_runs(&mut tx, &runs, self.params).await?;
        Self::insert_receipt_rows(&mut tx, &receipts, self.params).await?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(rows)
    }

    /// Queues a run for each `(work item, session, response context)`, in order, and marks the ones
    /// that are the oldest of their session.
    async fn queue_runs(
        tx: &mut WriteTx<DB>,
        runs: &[(&str, &str, Option<&str>)],
        params: Params,
    ) -> Result<(), StoreError> {
        const OP: &str = "queue runs";
        let now = now_ms();
        let mut seqs: Vec<i64> = Vec::with_capacity(runs.len());
        let mut rest = runs;
        for size in chunk_sizes(runs.len(), MAX_ROWS_PER_STATEMENT) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let sql = multi_row_insert(
                "runs",
                &[
                    "work_item_id",
                    "session_key",
                    "response_context",
                    "available_at",
                    "created_at",
                    "updated_at",
                ],
                size,
                "RETURNING seq",
                params,
            );
            let contexts: Vec<Option<std::borrow::Cow<'_, str>>> = chunk
                .iter()
                .map(|(_, _, c)| c.map(super::sql::storable))
                .collect();
            let mut query = sqlx::query(&sql);
            for ((work_item, session, _), context) in chunk.iter().zip(&contexts) {
                query = query
                    .bind(*work_item)
                    .bind(super::sql::storable(session).into_owned())
                    .bind(context.as_deref())
                    .bind(now)
                    .bind(now)
                    .bind(now);
            }
            for row in query
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?
            {
                seqs.push(col(&row, "seq", OP)?);
            }
        }
        for chunk in seqs.chunks(MAX_ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE runs SET is_head = 1 WHERE seq IN {} AND NOT EXISTS \
                 (SELECT 1 FROM runs e WHERE e.session_key = runs.session_key AND e.seq < runs.seq)",
                placeholders(1, chunk.len(), params)
            );
            let mut query = sqlx::query(&sql);
            for seq in chunk {
                query = query.bind(*seq);
            }
            query
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        Ok(())
    }

    pub(crate) async fn sql_claim_runs(
        &self,
        claim: RunClaim<'_>,
    ) -> Result<Vec<ClaimedRun>, StoreError> {
        const OP: &str = "claim runs";
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        // A read first: on SQLite a write transaction takes the database's one write lock, which the
        // webhook writer needs; most polls find nothing to claim.
        let any = sqlx::query(&format!(
            "SELECT r.seq FROM runs r WHERE {CLAIMABLE} LIMIT 1"
        ))
        .bind(claim.now)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE OF r SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        let mut tx = self.begin_write(OP).await?;
        let claimed = sqlx::query(&format!(
            "UPDATE runs SET lease_owner = $2, lease_expires_at = $3, attempts = attempts + 1, \
             updated_at = $1 \
             WHERE seq IN (SELECT r.seq FROM runs r WHERE {CLAIMABLE} ORDER BY r.seq LIMIT $4{skip_locked}) \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $1) RETURNING seq"
        ))
        .bind(claim.now)
        .bind(claim.owner)
        .bind(claim.lease_until)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        let seqs: Vec<i64> = claimed
            .iter()
            .map(|row| col(row, "seq", OP))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(seqs.len());
        if !seqs.is_empty() {
            let columns = WORK_ITEM_COLUMNS
                .split(", ")
                .map(|c| format!("w.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT r.seq AS run_seq, r.attempts AS run_attempts, \
                 r.response_context AS run_response_context, {columns} \
                 FROM runs r JOIN work_items w ON w.id = r.work_item_id \
                 WHERE r.seq IN {} ORDER BY r.seq",
                placeholders(1, seqs.len(), self.params)
            );
            let mut query = sqlx::query(&sql);
            for seq in &seqs {
                query = query.bind(*seq);
            }
            for row in query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?
            {
                out.push(ClaimedRun {
                    seq: col(&row, "run_seq", OP)?,
                    attempts: col(&row, "run_attempts", OP)?,
                    response_context: col(&row, "run_response_context", OP)?,
                    work_item: Self::work_item_row(&row, OP)?,
                });
            }
        }
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(out)
    }

    pub(crate) async fn sql_renew_run_leases(
        &self,
        owner: &str,
        seqs: &[i64],
        until: i64,
    ) -> Result<u64, StoreError> {
        const OP: &str = "renew run leases";
        let mut renewed = 0;
        for chunk in seqs.chunks(MAX_ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE runs SET lease_expires_at = $1, updated_at = $2 \
                 WHERE lease_owner = $3 AND seq IN {} RETURNING seq",
                placeholders(4, chunk.len(), Params::Numbered)
            );
            let mut query = sqlx::query(&sql).bind(until).bind(now_ms()).bind(owner);
            for seq in chunk {
                query = query.bind(*seq);
            }
            let mut tx = self.begin_write(OP).await?;
            renewed += query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?
                .len() as u64;
            tx.commit().await.map_err(StoreError::query(OP))?;
        }
        Ok(renewed)
    }

    pub(crate) async fn sql_requeue_run(
        &self,
        seq: i64,
        owner: &str,
        available_at: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "put a run back in the queue";
        let mut tx = self.begin_write(OP).await?;
        let done = sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, available_at = $3, \
             last_error = $4, updated_at = $5 WHERE seq = $1 AND lease_owner = $2 RETURNING seq",
        )
        .bind(seq)
        .bind(owner)
        .bind(available_at)
        .bind(super::sql::storable(error).as_ref())
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(done.is_some())
    }

    pub(crate) async fn sql_release_run_leases(
        &self,
        owner: Option<&str>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "release run leases";
        let mut tx = self.begin_write(OP).await?;
        let done =
            match owner {
                Some(owner) => sqlx::query(
                    "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 \
                     WHERE lease_owner = $1 RETURNING seq",
                )
                .bind(owner)
                .bind(now_ms())
                .fetch_all(&mut *tx)
                .await,
                None => sqlx::query(
                    "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
                     WHERE lease_owner IS NOT NULL RETURNING seq",
                )
                .bind(now_ms())
                .fetch_all(&mut *tx)
                .await,
            };
        let released = done.map_err(StoreError::query(OP))?.len() as u64;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(released)
    }

    /// Removes run `seq` if `owner` holds it, and marks the next run of its session as claimable.
    async fn finish_run_in(
        tx: &mut WriteTx<DB>,
        seq: i64,
        owner: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "finish run";
        let removed = sqlx::query(
            "DELETE FROM runs WHERE seq = $1 AND lease_owner = $2 RETURNING session_key",
        )
        .bind(seq)
        .bind(owner)
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::query(OP))?;
        let Some(row) = removed else {
            return Ok(false);
        };
        let session: String = col(&row, "session_key", OP)?;
        sqlx::query(
            "UPDATE runs SET is_head = 1 WHERE seq = \
             (SELECT MIN(seq) FROM runs WHERE session_key = $1) AND is_head = 0",
        )
        .bind(session.as_str())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query(OP))?;
        Ok(true)
    }

    pub(crate) async fn sql_finish_run(&self, seq: i64, owner: &str) -> Result<bool, StoreError> {
        const OP: &str = "finish run";
        let mut tx = self.begin_write(OP).await?;
        let done = Self::finish_run_in(&mut tx, seq, owner).await?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(done)
    }

    pub(crate) async fn sql_finish_job_and_run(
        &self,
        id: &str,
        update: JobUpdate,
        spans: &[SpanRow],
        run: Option<(i64, &str)>,
    ) -> Result<JobRow, StoreError> {
        const OP: &str = "finish job";
        let mut tx = self.begin_write(OP).await?;
        Self::insert_span_rows(&mut tx, spans, self.params).await?;
        let job = Self::update_job_in(&mut tx, id, update).await?;
        if let Some((seq, owner)) = run {
            if !Self::finish_run_in(&mut tx, seq, owner).await? {
                tracing::warn!(
                    job_id = id,
                    run = seq,
                    "the run's lease had passed to another server; it may answer this work item again"
                );
            }
        }
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(job)
    }

    pub(crate) async fn sql_jobs_of_work_item(
        &self,
        work_item_id: &str,
    ) -> Result<Vec<JobRow>, StoreError> {
        const OP: &str = "list jobs of work item";
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE work_item_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(work_item_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::job_row(r, OP)).collect()
    }

    pub(crate) async fn sql_count_runs(&self) -> Result<u64, StoreError> {
        const OP: &str = "count runs";
        let row = sqlx::query("SELECT COUNT(*) AS n FROM runs")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        let n: i64 = col(&row, "n", OP)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn sql_repair_run_heads(&self) -> Result<u64, StoreError> {
        const OP: &str = "repair run heads";
        let mut tx = self.begin_write(OP).await?;
        let done = sqlx::query(
            "UPDATE runs SET is_head = 1 WHERE is_head = 0 AND NOT EXISTS \
             (SELECT 1 FROM runs e WHERE e.session_key = runs.session_key AND e.seq < runs.seq) \
             RETURNING seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(done.len() as u64)
    }
}
