//! The operator's trust settings as stored: trusted keys and allowlist entries added in the admin
//! or with the CLI (`trust_entries`), and the revision counting changes to them
//! (`trust_revision`), written in the same transaction as the change.
//!
//! Values are stored in their canonical spelling (see `nitejar_core::trust::canonical`); the store does
//! not read them, it only keeps them.

use serde::Serialize;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore, WriteTx};
use super::StoreError;

/// One row of `trust_entries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustEntryRow {
    /// `key` or `allow`.
    pub kind: String,
    /// What the entry is known by: the key id, or the allowlist entry.
    pub ident: String,
    /// The canonical key line, or the allowlist entry.
    pub value: String,
    /// Who added it.
    pub added_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
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
    pub(crate) async fn sql_list_trust_entries(&self) -> Result<Vec<TrustEntryRow>, StoreError> {
        const OP: &str = "list trust entries";
        let rows = sqlx::query(
            "SELECT kind, ident, value, added_by, CAST(created_at AS BIGINT) AS created_at \
             FROM trust_entries ORDER BY created_at, kind, ident",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|row| {
                Ok(TrustEntryRow {
                    kind: col(row, "kind", OP)?,
                    ident: col(row, "ident", OP)?,
                    value: col(row, "value", OP)?,
                    added_by: col(row, "added_by", OP)?,
                    created_at: col(row, "created_at", OP)?,
                })
            })
            .collect()
    }

    pub(crate) async fn sql_trust_revision(&self) -> Result<i64, StoreError> {
        const OP: &str = "read the trust revision";
        let row = sqlx::query(
            "SELECT CAST(revision AS BIGINT) AS revision FROM trust_revision WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        match row {
            Some(row) => col(&row, "revision", OP),
            None => Ok(0),
        }
    }

    /// Inserts the entry and counts the revision, in one transaction; returns the new revision.
    pub(crate) async fn sql_add_trust_entry(
        &self,
        entry: &TrustEntryRow,
    ) -> Result<i64, StoreError> {
        const OP: &str = "add a trust entry";
        let mut tx = self.begin_write(OP).await?;
        let inserted = sqlx::query(
            "INSERT INTO trust_entries (kind, ident, value, added_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, ident) DO NOTHING RETURNING ident",
        )
        .bind(entry.kind.as_str())
        .bind(entry.ident.as_str())
        .bind(entry.value.as_str())
        .bind(entry.added_by.as_str())
        .bind(entry.created_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        if inserted.is_none() {
            return Err(StoreError::AlreadyExists {
                entity: "trust entry",
                id: format!("{}:{}", entry.kind, entry.ident),
            });
        }
        let revision = Self::count_revision(&mut tx, OP).await?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(revision)
    }

    /// Deletes the entry and counts the revision, in one transaction; `None` (nothing counted)
    /// when there was no such entry.
    pub(crate) async fn sql_remove_trust_entry(
        &self,
        kind: &str,
        ident: &str,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "remove a trust entry";
        let mut tx = self.begin_write(OP).await?;
        let deleted =
            sqlx::query("DELETE FROM trust_entries WHERE kind = $1 AND ident = $2 RETURNING ident")
                .bind(kind)
                .bind(ident)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        if deleted.is_none() {
            return Ok(None);
        }
        let revision = Self::count_revision(&mut tx, OP).await?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(Some(revision))
    }

    async fn count_revision(tx: &mut WriteTx<DB>, op: &'static str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "UPDATE trust_revision SET revision = revision + 1 WHERE id = 1 \
             RETURNING CAST(revision AS BIGINT) AS revision",
        )
        .fetch_one(&mut **tx)
        .await
        .map_err(StoreError::query(op))?;
        col(&row, "revision", op)
    }
}
