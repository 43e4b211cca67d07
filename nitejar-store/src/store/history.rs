//! What runs did, as the operator reads it: work items newest first with their place in the run
//! queue and their jobs (the admin's runs pages). Read-only; the runner writes these rows.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::runs::{JOB_COLUMNS, WORK_ITEM_COLUMNS};
use super::sql::{col, placeholders, SqlStore};
use super::{
    EventCursor, JobRow, Page, PageRequest, QueuedRunRow, RunFilter, RunRow, StoreError,
    WorkItemRow,
};

/// The work item columns, qualified for a query that also reads its integration's type.
fn work_item_columns() -> String {
    WORK_ITEM_COLUMNS
        .split(',')
        .map(|c| format!("w.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

const QUEUED_COLUMNS: &str =
    "seq, work_item_id, attempts, lease_owner, lease_expires_at, available_at, last_error";

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
    pub(crate) async fn sql_list_runs(
        &self,
        filter: &RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunRow>, StoreError> {
        const OP: &str = "list runs";
        let limit = page.clamped_limit();
        let cursor = page
            .cursor
            .as_deref()
            .map(EventCursor::decode)
            .transpose()?;
        let status = filter
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase);
        // `queued` and `running` are the queue's states; any other value is a job status (stored
        // upper case). A leased run has a RUNNING job except for the moment between claim and job.
        let filters = "($1 IS NULL OR w.integration_id = $1) \
             AND ($2 IS NULL OR EXISTS (SELECT 1 FROM plugin_events e \
                  WHERE e.work_item_id = w.id AND e.plugin_id = $2)) \
             AND ($3 IS NULL \
                  OR ($3 = 'queued' AND EXISTS (SELECT 1 FROM runs r \
                      WHERE r.work_item_id = w.id AND r.lease_owner IS NULL)) \
                  OR ($3 = 'running' AND EXISTS (SELECT 1 FROM runs r \
                      WHERE r.work_item_id = w.id AND r.lease_owner IS NOT NULL)) \
                  OR EXISTS (SELECT 1 FROM jobs j WHERE j.work_item_id = w.id AND j.status = UPPER($3))) \
             AND ($4 IS NULL OR w.created_at >= $4) \
             AND ($5 IS NULL OR w.created_at < $5)";
        let (after, limit_param) = if cursor.is_some() {
            ("AND (w.created_at, w.id) < ($6, $7)", "$8")
        } else {
            ("", "$6")
        };
        let sql = format!(
            "SELECT {}, (SELECT i.type FROM integrations i WHERE i.id = w.integration_id) \
             AS integration_type FROM work_items w WHERE {filters} {after} \
             ORDER BY w.created_at DESC, w.id DESC LIMIT {limit_param}",
            work_item_columns()
        );
        let mut query = sqlx::query(&sql)
            .bind(filter.integration_id.as_deref())
            .bind(filter.plugin_id.as_deref())
            .bind(status)
            .bind(filter.since)
            .bind(filter.until);
        if let Some(c) = &cursor {
            query = query.bind(c.created_at).bind(c.id.as_str());
        }
        let rows = query
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        let mut items = rows
            .iter()
            .map(|row| {
                Ok((
                    Self::work_item_row(row, OP)?,
                    col::<Option<String>, _>(row, "integration_type", OP)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let has_more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = match items.last() {
            Some((last, _)) if has_more => Some(
                EventCursor {
                    created_at: last.created_at,
                    id: last.id.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        let items = self.with_queue_and_jobs(items).await?;
        Ok(Page { items, next_cursor })
    }

    pub(crate) async fn sql_get_run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        const OP: &str = "read run";
        let sql = format!(
            "SELECT {}, (SELECT i.type FROM integrations i WHERE i.id = w.integration_id) \
             AS integration_type FROM work_items w WHERE w.id = $1",
            work_item_columns()
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?
        else {
            return Ok(None);
        };
        let item = (
            Self::work_item_row(&row, OP)?,
            col::<Option<String>, _>(&row, "integration_type", OP)?,
        );
        Ok(self.with_queue_and_jobs(vec![item]).await?.pop())
    }

    /// Adds each work item's queued run and jobs, reading both for the whole page at once.
    async fn with_queue_and_jobs(
        &self,
        items: Vec<(WorkItemRow, Option<String>)>,
    ) -> Result<Vec<RunRow>, StoreError> {
        const OP: &str = "read the queue and jobs of work items";
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = items.iter().map(|(w, _)| w.id.as_str()).collect();
        let among = placeholders(1, ids.len(), self.params);

        // The queue before the jobs: a run leaves the queue in the transaction that finishes its
        // last job, so a run read as gone from the queue has its final jobs in the second read.
        // (The other order can read a RUNNING job and then no queue row: a finished run that looks
        // like one still running.)
        let sql = format!("SELECT {QUEUED_COLUMNS} FROM runs WHERE work_item_id IN {among}");
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let mut queued: HashMap<String, QueuedRunRow> = HashMap::new();
        for row in query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?
        {
            let run = QueuedRunRow {
                seq: col(&row, "seq", OP)?,
                work_item_id: col(&row, "work_item_id", OP)?,
                attempts: col(&row, "attempts", OP)?,
                lease_owner: col(&row, "lease_owner", OP)?,
                lease_expires_at: col(&row, "lease_expires_at", OP)?,
                available_at: col(&row, "available_at", OP)?,
                last_error: col(&row, "last_error", OP)?,
            };
            queued.insert(run.work_item_id.clone(), run);
        }

        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE work_item_id IN {among} ORDER BY created_at, id"
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let mut jobs: HashMap<String, Vec<JobRow>> = HashMap::new();
        for row in query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?
        {
            let job = Self::job_row(&row, OP)?;
            jobs.entry(job.work_item_id.clone()).or_default().push(job);
        }

        Ok(items
            .into_iter()
            .map(|(work_item, integration_type)| RunRow {
                queued: queued.remove(&work_item.id),
                jobs: jobs.remove(&work_item.id).unwrap_or_default(),
                integration_type,
                work_item,
            })
            .collect())
    }
}
