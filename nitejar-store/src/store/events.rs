//! Receipts in `plugin_events` (and their `spans`), written in batches and read by keyset pages.

use serde_json::json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::runs::MAX_ROWS_PER_STATEMENT;
use super::sql::{chunk_sizes, col, multi_row_insert, SqlStore};
use super::{
    EventCursor, EventFilter, Page, PageRequest, PluginEventRow, SpanRow, StoreError, StoredReceipt,
};
use crate::receipts::{Receipt, ReceiptKind};

const EVENT_COLUMNS: [&str; 12] = [
    "id",
    "plugin_id",
    "plugin_version",
    "kind",
    "status",
    "work_item_id",
    "job_id",
    "hook_name",
    "duration_ms",
    "detail_json",
    "created_at",
    "execution_mode",
];

// Postgres refuses NUL in text; a receipt must not be refused for one, so NUL becomes U+FFFD in the
// free-text columns (ids are validated elsewhere and never contain one; detail JSON escapes it).
use super::sql::storable as text;

/// The `spans` row of a hook or integration receipt; `None` for other kinds. The span shares the
/// receipt's id, so that a retried batch cannot write it twice either.
pub(crate) fn span_of(stored: &StoredReceipt) -> Option<SpanRow> {
    let r: &Receipt = &stored.receipt;
    let name = match r.kind {
        ReceiptKind::Hook => "plugin.hook",
        ReceiptKind::Integration => "plugin.integration",
        _ => return None,
    };
    let duration_ms = i64::try_from(r.duration_ms()).unwrap_or(i64::MAX);
    let attributes = json!({
        "plugin.id": &*r.plugin_id,
        "plugin.version": r.plugin_version.as_deref(),
        "plugin.hook": r.hook.map(|h| h.as_str()),
        "plugin.status": r.status.as_str(),
        "plugin.kind": r.kind.as_str(),
        "plugin.execution_mode": r.execution_mode.as_str(),
        "work_item_id": r.work_item_id.as_deref(),
    });
    Some(SpanRow {
        id: stored.id.clone(),
        // One trace per run: the job when there is one, else the work item, else the span alone.
        trace_id: r
            .job_id
            .as_deref()
            .or(r.work_item_id.as_deref())
            .unwrap_or(&stored.id)
            .to_owned(),
        parent_span_id: None,
        name: name.to_owned(),
        kind: "plugin".to_owned(),
        status: r.status.as_str().to_owned(),
        // A receipt is stamped when the call ended.
        start_time: r.created_at_ms.saturating_sub(duration_ms),
        end_time: Some(r.created_at_ms),
        duration_ms: Some(duration_ms),
        attributes: Some(attributes.to_string()),
        job_id: r.job_id.as_deref().map(str::to_owned),
        agent_id: None,
        created_at: r.created_at_ms,
    })
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
    pub(crate) async fn sql_insert_receipts(
        &self,
        receipts: &[StoredReceipt],
    ) -> Result<(), StoreError> {
        const OP: &str = "insert receipts into plugin_events";
        if receipts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(OP).await?;
        Self::insert_receipt_rows(&mut tx, receipts, self.params).await?;
        tx.commit().await.map_err(StoreError::query(OP))
    }

    /// Inserts receipts (and the spans of hook and integration receipts) inside a transaction the
    /// caller owns: the receipt writer's, or the one that accepts a webhook delivery.
    pub(crate) async fn insert_receipt_rows(
        tx: &mut super::sql::WriteTx<DB>,
        receipts: &[StoredReceipt],
        params: super::sql::Params,
    ) -> Result<(), StoreError> {
        const OP: &str = "insert receipts into plugin_events";
        let mut rest = receipts;
        for size in chunk_sizes(receipts.len(), MAX_ROWS_PER_STATEMENT) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let sql = multi_row_insert(
                "plugin_events",
                &EVENT_COLUMNS,
                size,
                "ON CONFLICT (id) DO NOTHING",
                params,
            );
            // Owned per-row values first: the query borrows them until it has run.
            let rows: Vec<_> = chunk
                .iter()
                .map(|s| {
                    let r = &s.receipt;
                    (
                        s.id.as_str(),
                        text(&r.plugin_id),
                        r.plugin_version.as_deref().map(text),
                        r.kind.as_str(),
                        r.status.as_str(),
                        r.work_item_id.as_deref().map(text),
                        r.job_id.as_deref().map(text),
                        r.hook.map(|h| h.as_str()),
                        i64::try_from(r.duration_ms()).unwrap_or(i64::MAX),
                        r.detail.as_ref().map(|d| d.to_string()),
                        r.created_at_ms,
                        r.execution_mode.as_str(),
                    )
                })
                .collect();
            let mut query = sqlx::query(&sql);
            for row in &rows {
                query = query
                    .bind(row.0)
                    .bind(row.1.as_ref())
                    .bind(row.2.as_deref())
                    .bind(row.3)
                    .bind(row.4)
                    .bind(row.5.as_deref())
                    .bind(row.6.as_deref())
                    .bind(row.7)
                    .bind(row.8)
                    .bind(row.9.as_deref())
                    .bind(row.10)
                    .bind(row.11);
            }
            query
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        let spans: Vec<SpanRow> = receipts.iter().filter_map(span_of).collect();
        Self::insert_span_rows(tx, &spans, params).await
    }

    pub(crate) async fn sql_list_plugin_events(
        &self,
        plugin_id: &str,
        page: PageRequest,
    ) -> Result<Page<PluginEventRow>, StoreError> {
        const OP: &str = "list plugin_events";
        let limit = page.clamped_limit();
        let cursor = page
            .cursor
            .as_deref()
            .map(EventCursor::decode)
            .transpose()?;
        let columns = EVENT_COLUMNS.join(", ");
        // One more row than asked tells whether a next page exists without a COUNT.
        let rows = match &cursor {
            None => {
                let sql = format!(
                    "SELECT {columns} FROM plugin_events WHERE plugin_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                sqlx::query(&sql)
                    .bind(plugin_id)
                    .bind(limit + 1)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(c) => {
                let sql = format!(
                    "SELECT {columns} FROM plugin_events WHERE plugin_id = $1 \
                     AND (created_at, id) < ($2, $3) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                );
                sqlx::query(&sql)
                    .bind(plugin_id)
                    .bind(c.created_at)
                    .bind(c.id.as_str())
                    .bind(limit + 1)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(StoreError::query(OP))?;
        let mut items = rows
            .iter()
            .map(|row| Self::event_row(row, OP))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let has_more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = match items.last() {
            Some(last) if has_more => Some(
                EventCursor {
                    created_at: last.created_at,
                    id: last.id.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    fn event_row(row: &DB::Row, op: &'static str) -> Result<PluginEventRow, StoreError> {
        Ok(PluginEventRow {
            id: col(row, "id", op)?,
            plugin_id: col(row, "plugin_id", op)?,
            plugin_version: col(row, "plugin_version", op)?,
            kind: col(row, "kind", op)?,
            status: col(row, "status", op)?,
            work_item_id: col(row, "work_item_id", op)?,
            job_id: col(row, "job_id", op)?,
            hook_name: col(row, "hook_name", op)?,
            duration_ms: col(row, "duration_ms", op)?,
            detail_json: col(row, "detail_json", op)?,
            created_at: col(row, "created_at", op)?,
            execution_mode: col(row, "execution_mode", op)?,
        })
    }

    pub(crate) async fn sql_list_events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<PluginEventRow>, StoreError> {
        const OP: &str = "list plugin_events by filter";
        let limit = page.clamped_limit();
        let cursor = page
            .cursor
            .as_deref()
            .map(EventCursor::decode)
            .transpose()?;
        let columns = EVENT_COLUMNS.join(", ");
        // Receipts name their integration in the detail; the detail is compact JSON written by
        // this code, so the pair `"integration_id":"<id>"` is a substring of it (LIKE-escaped).
        let filters = "($1 IS NULL OR plugin_id = $1) AND ($2 IS NULL OR kind = $2) \
                       AND ($3 IS NULL OR status = $3) \
                       AND ($4 IS NULL OR detail_json LIKE $4 ESCAPE '\\') \
                       AND ($5 IS NULL OR work_item_id = $5)";
        let (after, limit_param) = if cursor.is_some() {
            ("AND (created_at, id) < ($6, $7)", "$8")
        } else {
            ("", "$6")
        };
        let integration = filter.integration_id.as_deref().map(|id| {
            // As stored (JSON-quoted), then LIKE-escaped.
            let quoted = serde_json::to_string(id).unwrap_or_default();
            let escaped: String = quoted
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("%\"integration_id\":{escaped}%")
        });
        let sql = format!(
            "SELECT {columns} FROM plugin_events WHERE {filters} {after} \
             ORDER BY created_at DESC, id DESC LIMIT {limit_param}"
        );
        let mut query = sqlx::query(&sql)
            .bind(filter.plugin_id.as_deref())
            .bind(filter.kind.as_deref())
            .bind(filter.status.as_deref())
            .bind(integration)
            .bind(filter.work_item_id.as_deref());
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
            .map(|row| Self::event_row(row, OP))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let has_more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = match items.last() {
            Some(last) if has_more => Some(
                EventCursor {
                    created_at: last.created_at,
                    id: last.id.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    pub(crate) async fn sql_count_plugin_events(
        &self,
        plugin_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "count plugin_events";
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM plugin_events WHERE ($1 IS NULL OR plugin_id = $1)",
        )
        .bind(plugin_id)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        let n: i64 = col(&row, "n", OP)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
