//! Integration rows: the channel instances operators configure, legacy-compatible.
//!
//! Every statement names one row by id; `updated_at` changes only on the row being changed, and columns
//! an update does not set are left to the database (`COALESCE($n, column)`), so their stored bytes stay
//! as they were. Reads cast the integer columns to `BIGINT`: a Postgres database written by an earlier
//! release has 32-bit integers there.

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::{new_id, now_secs, IntegrationRow, IntegrationUpdate, NewIntegration, StoreError};
use crate::crypto::{self, CryptoError};

const COLUMNS: &str = "id, type, name, config, scope, CAST(enabled AS BIGINT) AS enabled, \
                       CAST(created_at AS BIGINT) AS created_at, \
                       CAST(updated_at AS BIGINT) AS updated_at, plugin_id";

fn crypto_error(id: &str) -> impl FnOnce(CryptoError) -> StoreError + '_ {
    move |source| StoreError::Crypto {
        id: id.to_owned(),
        source,
    }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
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
    fn integration_row(row: &DB::Row, op: &'static str) -> Result<IntegrationRow, StoreError> {
        Ok(IntegrationRow {
            id: col(row, "id", op)?,
            integration_type: col(row, "type", op)?,
            name: col(row, "name", op)?,
            config: col(row, "config", op)?,
            scope: col(row, "scope", op)?,
            enabled: col::<i64, _>(row, "enabled", op)? != 0,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
            plugin_id: col(row, "plugin_id", op)?,
        })
    }

    pub(crate) async fn sql_create_integration(
        &self,
        new: NewIntegration,
        sensitive_fields: &[String],
    ) -> Result<IntegrationRow, StoreError> {
        const OP: &str = "insert integration";
        let id = new.id.unwrap_or_else(new_id);
        let mut config = new.config;
        // A placeholder on create means "no value": there is no stored secret for it to stand for.
        crypto::merge_placeholders(&mut config, &serde_json::Map::new(), sensitive_fields);
        self.cipher
            .encrypt_config(&mut config, sensitive_fields)
            .map_err(crypto_error(&id))?;
        let config_text = Value::Object(config).to_string();
        let now = now_secs();
        let sql = format!(
            "INSERT INTO integrations (id, type, name, config, scope, enabled, created_at, \
             updated_at, plugin_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(new.integration_type)
            .bind(new.name)
            .bind(config_text)
            .bind(new.scope)
            .bind(i64::from(new.enabled))
            .bind(now)
            .bind(new.plugin_id)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                if unique_violation(&e) {
                    StoreError::AlreadyExists {
                        entity: "integration",
                        id: id.clone(),
                    }
                } else {
                    StoreError::query(OP)(e)
                }
            })?;
        Self::integration_row(&row, OP)
    }

    pub(crate) async fn sql_get_integration(
        &self,
        id: &str,
    ) -> Result<Option<IntegrationRow>, StoreError> {
        const OP: &str = "read integration";
        let sql = format!("SELECT {COLUMNS} FROM integrations WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::integration_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_list_integrations(
        &self,
        integration_type: Option<&str>,
    ) -> Result<Vec<IntegrationRow>, StoreError> {
        const OP: &str = "list integrations";
        let sql = format!(
            "SELECT {COLUMNS} FROM integrations WHERE ($1 IS NULL OR type = $1) \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(integration_type)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::integration_row(r, OP)).collect()
    }

    pub(crate) async fn sql_update_integration(
        &self,
        id: &str,
        update: IntegrationUpdate,
        sensitive_fields: &[String],
    ) -> Result<IntegrationRow, StoreError> {
        const OP: &str = "update integration";
        let mut tx = self.begin_write(OP).await?;
        let select = format!("SELECT {COLUMNS} FROM integrations WHERE id = $1");
        let current = sqlx::query(&select)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .map(|r| Self::integration_row(&r, OP))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                entity: "integration",
                id: id.to_owned(),
            })?;
        let config_text = match update.config {
            None => None,
            Some(mut incoming) => {
                crypto::merge_placeholders(&mut incoming, &current.config_map()?, sensitive_fields);
                self.cipher
                    .encrypt_config(&mut incoming, sensitive_fields)
                    .map_err(crypto_error(id))?;
                Some(Value::Object(incoming).to_string())
            }
        };
        let (set_plugin, plugin_id) = match update.plugin_id {
            Some(value) => (1_i64, value),
            None => (0_i64, None),
        };
        let sql = format!(
            "UPDATE integrations SET name = COALESCE($2, name), config = COALESCE($3, config), \
             scope = COALESCE($4, scope), enabled = COALESCE($5, enabled), \
             plugin_id = CASE WHEN $6 = 1 THEN $7 ELSE plugin_id END, updated_at = $8 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(update.name)
            .bind(config_text)
            .bind(update.scope)
            .bind(update.enabled.map(i64::from))
            .bind(set_plugin)
            .bind(plugin_id)
            .bind(now_secs())
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        let updated = Self::integration_row(&row, OP)?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(updated)
    }

    pub(crate) async fn sql_set_integration_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<IntegrationRow, StoreError> {
        const OP: &str = "enable or disable integration";
        let sql = format!(
            "UPDATE integrations SET enabled = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(i64::from(enabled))
            .bind(now_secs())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?
            .ok_or_else(|| StoreError::NotFound {
                entity: "integration",
                id: id.to_owned(),
            })?;
        Self::integration_row(&row, OP)
    }

    pub(crate) async fn sql_delete_integration(&self, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete integration";
        let mut tx = self.begin_write(OP).await?;
        // Explicit, not left to ON DELETE CASCADE: an adopted legacy table may have no foreign key.
        sqlx::query("DELETE FROM agent_integrations WHERE integration_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        let deleted = sqlx::query("DELETE FROM integrations WHERE id = $1 RETURNING id")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .is_some();
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(deleted)
    }
}
