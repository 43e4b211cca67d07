//! What each agent may do to plugins (`agent_plugin_grants`): one row per granted capability,
//! replaced whole when the operator sets an agent's grants; and what agents asked the operator to
//! do (`plugin_requests`), pending until the operator decides.
//!
//! Capabilities are stored in their one spelling (see `nitejar_core::lifecycle::agent_ops`); the store
//! does not read them, it only keeps them.

use serde::Serialize;
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::StoreError;

/// One row of `plugin_requests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRequestRow {
    pub id: String,
    pub plugin_id: String,
    /// `enable`, `upgrade` or `edit_source`.
    pub action: String,
    pub agent_id: String,
    pub job_id: String,
    pub work_item_id: String,
    /// The agent's words.
    pub reason: Option<String>,
    /// `pending`, `approved`, `rejected`.
    pub status: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    /// What an upgrade or edit would do, as reviewed (see
    /// `nitejar_core::lifecycle::agent_ops::VersionRequest`); `None` for an enable.
    pub detail: Option<serde_json::Value>,
}

const REQUEST_COLUMNS: &str = "id, plugin_id, action, agent_id, job_id, work_item_id, reason, status, \
     CAST(created_at AS BIGINT) AS created_at, CAST(decided_at AS BIGINT) AS decided_at, decided_by, detail_json";

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
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Decode<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    pub(crate) async fn sql_agent_plugin_grants(
        &self,
        agent_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "list an agent's plugin grants";
        let rows = sqlx::query(
            "SELECT capability FROM agent_plugin_grants WHERE agent_id = $1 ORDER BY capability",
        )
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter().map(|row| col(row, "capability", OP)).collect()
    }

    /// Replaces the agent's grants with `capabilities`, in one transaction.
    pub(crate) async fn sql_set_agent_plugin_grants(
        &self,
        agent_id: &str,
        capabilities: &[String],
        granted_by: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "set an agent's plugin grants";
        let mut tx = self.begin_write(OP).await?;
        sqlx::query("DELETE FROM agent_plugin_grants WHERE agent_id = $1")
            .bind(agent_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        for capability in capabilities {
            sqlx::query(
                "INSERT INTO agent_plugin_grants (agent_id, capability, granted_by, granted_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(agent_id)
            .bind(capability.as_str())
            .bind(granted_by)
            .bind(at_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        }
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(())
    }

    /// Records a request with the package it would install (an edit's), in one statement.
    pub(crate) async fn sql_create_plugin_request(
        &self,
        row: &PluginRequestRow,
        archive: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        const OP: &str = "record a plugin request";
        let detail = row.detail.as_ref().map(Value::to_string);
        let mut tx = self.begin_write(OP).await?;
        sqlx::query(
            "INSERT INTO plugin_requests (id, plugin_id, action, agent_id, job_id, work_item_id, \
             reason, status, created_at, detail_json, archive) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(row.id.as_str())
        .bind(row.plugin_id.as_str())
        .bind(row.action.as_str())
        .bind(row.agent_id.as_str())
        .bind(row.job_id.as_str())
        .bind(row.work_item_id.as_str())
        .bind(row.reason.as_deref())
        .bind(row.status.as_str())
        .bind(row.created_at)
        .bind(detail.as_deref())
        .bind(archive.map(<[u8]>::to_vec))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(())
    }

    fn request_of(row: &DB::Row, op: &'static str) -> Result<PluginRequestRow, StoreError> {
        let id: String = col(row, "id", op)?;
        let detail = col::<Option<String>, _>(row, "detail_json", op)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| StoreError::Malformed {
                    entity: "plugin_requests",
                    id: id.clone(),
                    column: "detail_json",
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(PluginRequestRow {
            id,
            plugin_id: col(row, "plugin_id", op)?,
            action: col(row, "action", op)?,
            agent_id: col(row, "agent_id", op)?,
            job_id: col(row, "job_id", op)?,
            work_item_id: col(row, "work_item_id", op)?,
            reason: col(row, "reason", op)?,
            status: col(row, "status", op)?,
            created_at: col(row, "created_at", op)?,
            decided_at: col(row, "decided_at", op)?,
            decided_by: col(row, "decided_by", op)?,
            detail,
        })
    }

    /// Requests with `status` (any when `None`), newest first, at most 500.
    pub(crate) async fn sql_plugin_requests(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<PluginRequestRow>, StoreError> {
        const OP: &str = "list plugin requests";
        let rows = match status {
            Some(status) => {
                let sql = format!(
                    "SELECT {REQUEST_COLUMNS} FROM plugin_requests WHERE status = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT 500"
                );
                sqlx::query(&sql).bind(status).fetch_all(&self.pool).await
            }
            None => {
                let sql = format!(
                    "SELECT {REQUEST_COLUMNS} FROM plugin_requests \
                     ORDER BY created_at DESC, id DESC LIMIT 500"
                );
                sqlx::query(&sql).fetch_all(&self.pool).await
            }
        }
        .map_err(StoreError::query(OP))?;
        rows.iter().map(|row| Self::request_of(row, OP)).collect()
    }

    pub(crate) async fn sql_get_plugin_request(
        &self,
        id: &str,
    ) -> Result<Option<PluginRequestRow>, StoreError> {
        const OP: &str = "read a plugin request";
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM plugin_requests WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|row| Self::request_of(&row, OP)).transpose()
    }

    /// The package a request would install, when it carries one (an edit's).
    pub(crate) async fn sql_plugin_request_archive(
        &self,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "read a plugin request's package";
        let row = sqlx::query("SELECT archive FROM plugin_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        Ok(match row {
            Some(row) => col::<Option<Vec<u8>>, _>(&row, "archive", OP)?,
            None => None,
        })
    }

    /// Decides a pending request; false (nothing written) when it is not pending.
    pub(crate) async fn sql_decide_plugin_request(
        &self,
        id: &str,
        status: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "decide a plugin request";
        let mut tx = self.begin_write(OP).await?;
        let decided = sqlx::query(
            "UPDATE plugin_requests SET status = $2, decided_by = $3, decided_at = $4 \
             WHERE id = $1 AND status = 'pending' RETURNING id",
        )
        .bind(id)
        .bind(status)
        .bind(by)
        .bind(at_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(decided.is_some())
    }
}
