//! What the plugin lifecycle adds to the store: admin alerts about plugins, and the purges an
//! operator asks for when uninstalling (`--purge-files`, `--purge-data`).

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::StoreError;

/// One row of `plugin_alerts`: something about a plugin the admin must see until it is dealt
/// with. Timestamps are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginAlertRow {
    /// A UUIDv7.
    pub id: String,
    /// The plugin.
    pub plugin_id: String,
    /// The version it is about, when it is about one.
    pub plugin_version: Option<String>,
    /// `auto_disable`, `boot_marker`, `tampered`, `load_error`, …
    pub kind: String,
    /// What happened and what to do, for the admin.
    pub message: String,
    /// Structured detail JSON.
    pub detail_json: Option<String>,
    /// When it was raised.
    pub created_at: i64,
    /// When it was cleared; `None` while it is active.
    pub cleared_at: Option<i64>,
}

const ALERT_COLUMNS: &str =
    "id, plugin_id, plugin_version, kind, message, detail_json, created_at, cleared_at";

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
    pub(crate) async fn sql_insert_plugin_alert(
        &self,
        a: &PluginAlertRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_alerts (id, plugin_id, plugin_version, kind, message, detail_json, \
             created_at, cleared_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(a.id.as_str())
        .bind(a.plugin_id.as_str())
        .bind(a.plugin_version.as_deref())
        .bind(a.kind.as_str())
        .bind(a.message.as_str())
        .bind(a.detail_json.as_deref())
        .bind(a.created_at)
        .bind(a.cleared_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("raise plugin alert"))?;
        Ok(())
    }

    pub(crate) async fn sql_list_plugin_alerts(
        &self,
        plugin_id: Option<&str>,
        include_cleared: bool,
    ) -> Result<Vec<PluginAlertRow>, StoreError> {
        const OP: &str = "list plugin alerts";
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM plugin_alerts \
             WHERE ($1 IS NULL OR plugin_id = $1) AND ($2 = 1 OR cleared_at IS NULL) \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(plugin_id)
            .bind(i64::from(include_cleared))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|row| {
                Ok(PluginAlertRow {
                    id: col(row, "id", OP)?,
                    plugin_id: col(row, "plugin_id", OP)?,
                    plugin_version: col(row, "plugin_version", OP)?,
                    kind: col(row, "kind", OP)?,
                    message: col(row, "message", OP)?,
                    detail_json: col(row, "detail_json", OP)?,
                    created_at: col(row, "created_at", OP)?,
                    cleared_at: col(row, "cleared_at", OP)?,
                })
            })
            .collect()
    }

    pub(crate) async fn sql_clear_plugin_alerts(
        &self,
        plugin_id: &str,
        at: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE plugin_alerts SET cleared_at = $2 WHERE plugin_id = $1 AND cleared_at IS NULL \
             RETURNING id",
        )
        .bind(plugin_id)
        .bind(at)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("clear plugin alerts"))?;
        Ok(done.len() as u64)
    }

    pub(crate) async fn sql_delete_plugin_versions(
        &self,
        plugin_id: &str,
    ) -> Result<u64, StoreError> {
        const OP: &str = "delete plugin versions";
        let mut tx = self.begin_write(OP).await?;
        sqlx::query("DELETE FROM plugin_artifacts WHERE plugin_id = $1")
            .bind(plugin_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        let done =
            sqlx::query("DELETE FROM plugin_versions WHERE plugin_id = $1 RETURNING version")
                .bind(plugin_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(done.len() as u64)
    }

    pub(crate) async fn sql_delete_plugin_version(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "delete a plugin version";
        let mut tx = self.begin_write(OP).await?;
        for table in ["plugin_consents", "plugin_artifacts"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE plugin_id = $1 AND version = $2"
            ))
            .bind(plugin_id)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        }
        let done = sqlx::query(
            "DELETE FROM plugin_versions WHERE plugin_id = $1 AND version = $2 RETURNING version",
        )
        .bind(plugin_id)
        .bind(version)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(!done.is_empty())
    }

    pub(crate) async fn sql_purge_plugin_data(&self, plugin_id: &str) -> Result<u64, StoreError> {
        const OP: &str = "purge plugin data";
        let mut tx = self.begin_write(OP).await?;
        sqlx::query("DELETE FROM plugin_alerts WHERE plugin_id = $1")
            .bind(plugin_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        let done = sqlx::query("DELETE FROM plugin_events WHERE plugin_id = $1 RETURNING id")
            .bind(plugin_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(done.len() as u64)
    }
}
