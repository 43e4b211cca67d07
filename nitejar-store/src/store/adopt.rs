//! Adopting a SQLite file written by an earlier Nitejar release, before the first migration runs.
//!
//! The first migration is all `CREATE … IF NOT EXISTS`, so it adds the tables a legacy file lacks and
//! leaves the ones it has. Two things SQL alone cannot do tolerantly on SQLite are done here, on a
//! connection of its own, and only while the file has not yet had our first migration:
//!
//! 1. **Missing columns.** A legacy table lacks columns ours have (`integrations.plugin_id` above all).
//!    SQLite has no `ADD COLUMN IF NOT EXISTS`, and the migration's indexes name those columns, so each
//!    missing column is added with `ALTER TABLE … ADD COLUMN` first. That changes the schema only: SQLite
//!    does not rewrite existing rows for it, so every byte of every integration row stays as it was.
//!    A column that is `NOT NULL` without a default in our schema is added as nullable (SQLite cannot
//!    add it otherwise).
//! 2. **Constraints that would refuse a receipt.** Earlier releases created `plugin_events` with a foreign
//!    key to `plugins` and `spans` with a required, foreign-keyed `job_id`. Receipts must be storable for
//!    built-ins and for plugins without a row, and spans for calls outside a job, so these two telemetry
//!    tables (and only these) are rebuilt without those constraints, following SQLite's documented
//!    procedure (create new, copy every row, drop old, rename, recreate indexes and triggers), in one
//!    transaction with foreign-key enforcement off. Columns the legacy table has and ours does not are
//!    kept. `integrations` is never rebuilt.
//!
//! The reference schema is not written twice: the first migration is run on an in-memory database and
//! its tables are compared with the file's.

use std::collections::BTreeMap;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

use super::StoreError;

/// The first migration, the reference schema.
const INITIAL_MIGRATION: &str = include_str!("../../../migrations/sqlite/0001_initial.sql");

/// Tables that are rebuilt when a legacy definition would refuse rows we write.
const REBUILDABLE: [&str; 2] = ["plugin_events", "spans"];

#[derive(Clone, Debug)]
struct Column {
    name: String,
    decl_type: String,
    not_null: bool,
    default: Option<String>,
    primary_key: bool,
}

struct Adopter<'a> {
    conn: &'a mut SqliteConnection,
    target: &'a str,
}

impl Adopter<'_> {
    fn fail(&self, step: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        let step = step.into();
        move |source| StoreError::Adopt {
            target: self.target.to_owned(),
            step,
            source,
        }
    }
}

/// Brings a legacy file's tables to the point where the first migration can run; a no-op for a new
/// file and for a file that has had our migrations.
pub(crate) async fn adopt(options: &SqliteConnectOptions, target: &str) -> Result<(), StoreError> {
    let err = |step: &str| {
        let step = step.to_owned();
        move |source| StoreError::Adopt {
            target: target.to_owned(),
            step,
            source,
        }
    };
    // Its own connection, with foreign keys off: dropping a table during a rebuild must not cascade.
    let mut conn = SqliteConnection::connect_with(&options.clone().foreign_keys(false))
        .await
        .map_err(err("opening the file"))?;
    let result = Adopter {
        conn: &mut conn,
        target,
    }
    .run()
    .await;
    // Close even after a failure; the pool opens its own connections.
    let closed = conn
        .close()
        .await
        .map_err(err("closing the adoption connection"));
    result.and(closed)
}

impl Adopter<'_> {
    async fn run(&mut self) -> Result<(), StoreError> {
        if self.already_migrated().await? {
            return Ok(());
        }
        let reference = reference_schema(self.target).await?;
        for (table, columns) in &reference {
            let existing = table_columns(self.conn, table)
                .await
                .map_err(self.fail(format!("reading the columns of {table}")))?;
            if existing.is_empty() {
                continue; // the migration creates it
            }
            if REBUILDABLE.contains(&table.as_str())
                && self.refuses_our_rows(table, columns, &existing).await?
            {
                self.rebuild(table, columns, &existing).await?;
            } else {
                self.add_missing_columns(table, columns, &existing).await?;
            }
        }
        Ok(())
    }

    async fn already_migrated(&mut self) -> Result<bool, StoreError> {
        let has_table = sqlx::query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(self.fail("looking for applied migrations"))?
        .is_some();
        if !has_table {
            return Ok(false);
        }
        Ok(
            sqlx::query("SELECT 1 FROM _sqlx_migrations WHERE version = 1 AND success")
                .fetch_optional(&mut *self.conn)
                .await
                .map_err(self.fail("looking for applied migrations"))?
                .is_some(),
        )
    }

    /// Whether the legacy table has a foreign key, or requires a value where ours allows none.
    async fn refuses_our_rows(
        &mut self,
        table: &str,
        ours: &[Column],
        existing: &[Column],
    ) -> Result<bool, StoreError> {
        let foreign_keys = sqlx::query(&format!("PRAGMA foreign_key_list(\"{table}\")"))
            .fetch_all(&mut *self.conn)
            .await
            .map_err(self.fail(format!("reading the foreign keys of {table}")))?;
        if !foreign_keys.is_empty() {
            return Ok(true);
        }
        Ok(existing.iter().any(|old| {
            old.not_null
                && old.default.is_none()
                && !old.primary_key
                && ours
                    .iter()
                    .find(|c| c.name == old.name)
                    .is_none_or(|c| !c.not_null)
        }))
    }

    async fn add_missing_columns(
        &mut self,
        table: &str,
        ours: &[Column],
        existing: &[Column],
    ) -> Result<(), StoreError> {
        for column in ours {
            if existing.iter().any(|c| c.name == column.name) {
                continue;
            }
            if column.primary_key {
                // Nothing sensible to add; the migration's statements will say what is wrong.
                tracing::warn!(table, column = %column.name, "legacy table lacks a key column");
                continue;
            }
            let mut decl = format!(
                "ALTER TABLE \"{table}\" ADD COLUMN \"{}\" {}",
                column.name, column.decl_type
            );
            if let Some(default) = &column.default {
                if column.not_null {
                    decl.push_str(" NOT NULL");
                }
                decl.push_str(&format!(" DEFAULT {default}"));
            }
            sqlx::query(&decl)
                .execute(&mut *self.conn)
                .await
                .map_err(self.fail(format!("adding {table}.{}", column.name)))?;
            tracing::info!(table, column = %column.name, "adopted database: added column");
        }
        Ok(())
    }

    async fn rebuild(
        &mut self,
        table: &str,
        ours: &[Column],
        existing: &[Column],
    ) -> Result<(), StoreError> {
        let step = format!("rebuilding {table} without legacy constraints");
        let reference_sql = reference_create_sql(table)
            .ok_or_else(|| self.fail(step.clone())(sqlx::Error::RowNotFound))?;
        let temp = format!("nitejar_adopt_{table}");
        // Keep every legacy column: ours first, then the legacy-only ones, unconstrained.
        let extras: Vec<&Column> = existing
            .iter()
            .filter(|old| !ours.iter().any(|c| c.name == old.name))
            .collect();
        let mut create = format!("CREATE TABLE \"{temp}\" {reference_sql}");
        // The column list ends at the last `)`: table options after it have no parentheses.
        if let Some(close) = create.rfind(')') {
            let added: String = extras
                .iter()
                .map(|c| match &c.default {
                    Some(d) => format!(",\n  \"{}\" {} DEFAULT {d}", c.name, c.decl_type),
                    None => format!(",\n  \"{}\" {}", c.name, c.decl_type),
                })
                .collect();
            create.insert_str(close, &added);
        }
        let copied: Vec<String> = existing.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let copied = copied.join(", ");
        let saved: Vec<String> = sqlx::query(
            "SELECT sql FROM sqlite_master WHERE tbl_name = $1 AND type IN ('index', 'trigger') \
             AND sql IS NOT NULL",
        )
        .bind(table)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(self.fail(step.clone()))?
        .iter()
        .map(|r| r.try_get::<String, _>("sql"))
        .collect::<Result<_, _>>()
        .map_err(self.fail(step.clone()))?;

        let mut tx = self
            .conn
            .begin()
            .await
            .map_err(|source| StoreError::Adopt {
                target: self.target.to_owned(),
                step: step.clone(),
                source,
            })?;
        let mut statements = vec![
            create,
            format!("INSERT INTO \"{temp}\" ({copied}) SELECT {copied} FROM \"{table}\""),
            format!("DROP TABLE \"{table}\""),
            format!("ALTER TABLE \"{temp}\" RENAME TO \"{table}\""),
        ];
        statements.extend(saved);
        for sql in &statements {
            sqlx::query(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Adopt {
                    target: self.target.to_owned(),
                    step: format!("{step} ({sql})"),
                    source,
                })?;
        }
        tx.commit().await.map_err(|source| StoreError::Adopt {
            target: self.target.to_owned(),
            step,
            source,
        })?;
        tracing::info!(
            table,
            "adopted database: rebuilt table without legacy constraints (rows kept)"
        );
        Ok(())
    }
}

/// The columns of every table of the first migration, read from an in-memory database it ran on.
async fn reference_schema(target: &str) -> Result<BTreeMap<String, Vec<Column>>, StoreError> {
    let err = |source| StoreError::Adopt {
        target: target.to_owned(),
        step: "building the reference schema".to_owned(),
        source,
    };
    let mut conn = SqliteConnection::connect("sqlite::memory:")
        .await
        .map_err(err)?;
    sqlx::raw_sql(INITIAL_MIGRATION)
        .execute(&mut conn)
        .await
        .map_err(err)?;
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(err)?
    .iter()
    .map(|r| r.try_get::<String, _>("name"))
    .collect::<Result<_, _>>()
    .map_err(err)?;
    let mut schema = BTreeMap::new();
    for table in tables {
        let columns = table_columns(&mut conn, &table).await.map_err(err)?;
        schema.insert(table, columns);
    }
    conn.close().await.map_err(err)?;
    Ok(schema)
}

/// `PRAGMA table_info`; empty when the table does not exist.
async fn table_columns(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<Vec<Column>, sqlx::Error> {
    let rows = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get("name")?,
                decl_type: r.try_get("type")?,
                not_null: r.try_get::<i64, _>("notnull")? != 0,
                default: r.try_get("dflt_value")?,
                primary_key: r.try_get::<i64, _>("pk")? != 0,
            })
        })
        .collect()
}

/// `table`'s `CREATE TABLE` in the first migration, from the opening parenthesis of its column list to
/// the end of the statement (table options such as `WITHOUT ROWID` included, `;` excluded).
fn reference_create_sql(table: &str) -> Option<&'static str> {
    let head = format!("CREATE TABLE IF NOT EXISTS {table} (");
    let start = INITIAL_MIGRATION.find(&head)? + head.len() - 1;
    let close = INITIAL_MIGRATION[start..].find("\n)")? + start;
    let end = INITIAL_MIGRATION[close..].find(';')? + close;
    Some(&INITIAL_MIGRATION[start..end])
}
