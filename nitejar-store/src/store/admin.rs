//! What the admin surface keeps: sessions of the admin UI and a few named settings.
//!
//! Sessions are looked up by the SHA-256 of their token: the token itself lives only in the
//! operator's cookie, so a copy of the database lets nobody in.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::{AdminSessionRow, StoreError};

const SESSION_COLUMNS: &str = "id, token_hash, CAST(created_at AS BIGINT) AS created_at, \
     CAST(expires_at AS BIGINT) AS expires_at, CAST(last_seen_at AS BIGINT) AS last_seen_at, \
     token_fingerprint";

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
    pub(crate) async fn sql_ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("ping the database"))?;
        Ok(())
    }

    pub(crate) async fn sql_get_admin_setting(
        &self,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "read admin setting";
        let row = sqlx::query("SELECT value FROM admin_settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| col(&r, "value", OP)).transpose()
    }

    pub(crate) async fn sql_probe_write(&self) -> Result<(), StoreError> {
        const OP: &str = "probe a write";
        // A row that changes, so that the write reaches the disk (an empty transaction would not).
        let mut tx = self.begin_write(OP).await?;
        sqlx::query(
            "INSERT INTO admin_settings (key, value, updated_at) VALUES ('store_write_probe', $1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(crate::receipts::now_ms().to_string())
        .bind(crate::receipts::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))
    }

    pub(crate) async fn sql_insert_admin_setting(
        &self,
        key: &str,
        value: &str,
        replace: bool,
    ) -> Result<bool, StoreError> {
        const OP: &str = "write admin setting";
        let conflict = if replace {
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        } else {
            "DO NOTHING"
        };
        let sql = format!(
            "INSERT INTO admin_settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) {conflict} RETURNING key"
        );
        let row = sqlx::query(&sql)
            .bind(key)
            .bind(value)
            .bind(crate::receipts::now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        Ok(row.is_some())
    }

    fn session_row(row: &DB::Row, op: &'static str) -> Result<AdminSessionRow, StoreError> {
        Ok(AdminSessionRow {
            id: col(row, "id", op)?,
            token_hash: col(row, "token_hash", op)?,
            created_at: col(row, "created_at", op)?,
            expires_at: col(row, "expires_at", op)?,
            last_seen_at: col(row, "last_seen_at", op)?,
            token_fingerprint: col(row, "token_fingerprint", op)?,
        })
    }

    pub(crate) async fn sql_create_admin_session(
        &self,
        session: &AdminSessionRow,
    ) -> Result<(), StoreError> {
        const OP: &str = "insert admin session";
        sqlx::query(
            "INSERT INTO admin_sessions \
             (id, token_hash, created_at, expires_at, last_seen_at, token_fingerprint) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id.as_str())
        .bind(session.token_hash.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.last_seen_at)
        .bind(session.token_fingerprint.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        Ok(())
    }

    pub(crate) async fn sql_get_admin_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<AdminSessionRow>, StoreError> {
        const OP: &str = "read admin session";
        let sql = format!("SELECT {SESSION_COLUMNS} FROM admin_sessions WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::session_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_touch_admin_session(
        &self,
        id: &str,
        last_seen_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE admin_sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(last_seen_at)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("touch admin session"))?;
        Ok(())
    }

    pub(crate) async fn sql_delete_admin_session(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM admin_sessions WHERE id = $1 RETURNING id")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("delete admin session"))?;
        Ok(done.is_some())
    }

    pub(crate) async fn sql_delete_admin_sessions_before(
        &self,
        expires_before: i64,
        idle_since: i64,
    ) -> Result<u64, StoreError> {
        const OP: &str = "delete expired admin sessions";
        let rows = sqlx::query(
            "DELETE FROM admin_sessions WHERE expires_at <= $1 \
             OR COALESCE(last_seen_at, created_at) <= $2 RETURNING id",
        )
        .bind(expires_before)
        .bind(idle_since)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        Ok(rows.len() as u64)
    }
}
