//! What each agent may do to plugins (`agent_plugin_grants`): one row per granted capability,
//! replaced whole when the operator sets an agent's grants.
//!
//! Capabilities are stored in their one spelling (see [`crate::lifecycle::agent_ops`]); the store
//! does not read them, it only keeps them.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::StoreError;

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
}
