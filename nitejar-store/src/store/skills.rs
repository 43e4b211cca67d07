//! Skills and their supporting files (`skills`, `skill_files`); assignments are in
//! `skill_assignments.rs`.
//!
//! Rows here are the catalog side of `nitejar_core::skills`: admin skills live only here (with their
//! supporting files in `skill_files`); repo and plugin skills get a *mirror row* so that assignments
//! (which reference `skills.id`) and the operator's on/off switch have something to point at.
//! The column `slug` is unique across all rows: it is an admin skill's slug, and for a mirror row it
//! repeats the skill id (`repo:…`, `plugin:…`), which can never collide with an admin slug (slugs
//! have no `:`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::StoreError;
use crate::receipts::now_ms;

const SKILL_COLUMNS: &str = "id, name, slug, description, category, source_kind, plugin_id, \
     source_ref, content, is_directory, version, checksum, enabled, tags_json, \
     requires_tools_json, metadata_json, created_at, updated_at";

const FILE_COLUMNS: &str = "id, skill_id, relative_path, content, content_type, size_bytes, \
     checksum, created_at, updated_at";

/// One row of `skills`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkillRow {
    /// The skill id (`admin:<slug>`, `repo:<dir>`, `plugin:<plugin>/<skill>`; rows adopted from an
    /// earlier release may hold a UUID).
    pub id: String,
    /// The display name.
    pub name: String,
    /// Unique across rows: an admin skill's slug, or the skill id for a mirror row.
    pub slug: String,
    pub description: Option<String>,
    /// `general` unless set.
    pub category: String,
    /// `admin`, `plugin` or `repo`.
    pub source_kind: String,
    /// The contributing plugin, when it has a `plugins` row (built-ins have none).
    pub plugin_id: Option<String>,
    /// Where the content came from (a path, `<plugin>@<version>:<path>`, …).
    pub source_ref: Option<String>,
    /// The `SKILL.md` text.
    pub content: String,
    /// Whether the skill has supporting files.
    pub is_directory: bool,
    pub version: Option<String>,
    /// sha256 (hex) of `content`.
    pub checksum: Option<String>,
    /// The operator's switch: a disabled skill is listed but never offered to a run.
    pub enabled: bool,
    pub tags: Vec<String>,
    pub requires_tools: Vec<String>,
    /// Extra state (for mirror rows: whether the source still provides the skill, …); `Null` when
    /// none.
    pub metadata: Value,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// One row of `skill_files`: a supporting file of an admin skill (text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillFileRow {
    pub id: String,
    pub skill_id: String,
    /// Relative to the skill directory, `/`-separated, checked (no `..`, not absolute).
    pub relative_path: String,
    pub content: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    /// sha256 (hex) of `content`.
    pub checksum: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A supporting file without its content, for listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillFileStat {
    pub skill_id: String,
    pub relative_path: String,
    pub size_bytes: i64,
    pub content_type: Option<String>,
}

fn json_list(value: &[String]) -> Option<String> {
    (!value.is_empty()).then(|| serde_json::to_string(value).unwrap_or_else(|_| "[]".into()))
}

fn parse_list(
    text: Option<String>,
    id: &str,
    column: &'static str,
) -> Result<Vec<String>, StoreError> {
    match text.as_deref().map(str::trim) {
        None | Some("") | Some("null") => Ok(Vec::new()),
        Some(t) => serde_json::from_str(t).map_err(|e| StoreError::Malformed {
            entity: "skill",
            id: id.to_owned(),
            column,
            reason: e.to_string(),
        }),
    }
}

fn already_exists(op: &'static str, id: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    let id = id.to_owned();
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
            entity: "skill",
            id,
        },
        _ => StoreError::Query { op, source: e },
    }
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
    fn skill_row(row: &DB::Row, op: &'static str) -> Result<SkillRow, StoreError> {
        let id: String = col(row, "id", op)?;
        let metadata = match col::<Option<String>, _>(row, "metadata_json", op)? {
            None => Value::Null,
            Some(t) if t.trim().is_empty() => Value::Null,
            Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Malformed {
                entity: "skill",
                id: id.clone(),
                column: "metadata_json",
                reason: e.to_string(),
            })?,
        };
        Ok(SkillRow {
            name: col(row, "name", op)?,
            slug: col(row, "slug", op)?,
            description: col(row, "description", op)?,
            category: col(row, "category", op)?,
            source_kind: col(row, "source_kind", op)?,
            plugin_id: col(row, "plugin_id", op)?,
            source_ref: col(row, "source_ref", op)?,
            content: col(row, "content", op)?,
            is_directory: col::<i64, _>(row, "is_directory", op)? != 0,
            version: col(row, "version", op)?,
            checksum: col(row, "checksum", op)?,
            enabled: col::<i64, _>(row, "enabled", op)? != 0,
            tags: parse_list(col(row, "tags_json", op)?, &id, "tags_json")?,
            requires_tools: parse_list(
                col(row, "requires_tools_json", op)?,
                &id,
                "requires_tools_json",
            )?,
            metadata,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
            id,
        })
    }

    fn skill_file_row(row: &DB::Row, op: &'static str) -> Result<SkillFileRow, StoreError> {
        Ok(SkillFileRow {
            id: col(row, "id", op)?,
            skill_id: col(row, "skill_id", op)?,
            relative_path: col(row, "relative_path", op)?,
            content: col(row, "content", op)?,
            content_type: col(row, "content_type", op)?,
            size_bytes: col::<Option<i64>, _>(row, "size_bytes", op)?.unwrap_or(0),
            checksum: col(row, "checksum", op)?,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
        })
    }

    /// The `INSERT … VALUES` of one skill row. The plugin id is set only when a `plugins` row exists
    /// (the column is a foreign key; built-ins and plugins activated by an embedding host have none).
    fn skill_insert(suffix: &str) -> String {
        format!(
            "INSERT INTO skills ({SKILL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
             (SELECT id FROM plugins WHERE id = $7), $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18) {suffix}"
        )
    }

    fn bind_skill<'q>(
        query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
        s: &'q SkillRow,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>> {
        let metadata = (!s.metadata.is_null()).then(|| s.metadata.to_string());
        query
            .bind(s.id.as_str())
            .bind(s.name.as_str())
            .bind(s.slug.as_str())
            .bind(s.description.as_deref())
            .bind(s.category.as_str())
            .bind(s.source_kind.as_str())
            .bind(s.plugin_id.as_deref())
            .bind(s.source_ref.as_deref())
            .bind(s.content.as_str())
            .bind(i64::from(s.is_directory))
            .bind(s.version.as_deref())
            .bind(s.checksum.as_deref())
            .bind(i64::from(s.enabled))
            .bind(json_list(&s.tags))
            .bind(json_list(&s.requires_tools))
            .bind(metadata)
            .bind(s.created_at)
            .bind(s.updated_at)
    }

    async fn replace_files(
        tx: &mut super::sql::WriteTx<DB>,
        skill_id: &str,
        files: &[SkillFileRow],
        op: &'static str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM skill_files WHERE skill_id = $1")
            .bind(skill_id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query(op))?;
        let sql = format!(
            "INSERT INTO skill_files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        for f in files {
            sqlx::query(&sql)
                .bind(f.id.as_str())
                .bind(skill_id)
                .bind(f.relative_path.as_str())
                .bind(f.content.as_str())
                .bind(f.content_type.as_deref())
                .bind(f.size_bytes)
                .bind(f.checksum.as_deref())
                .bind(f.created_at)
                .bind(f.updated_at)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query(op))?;
        }
        Ok(())
    }

    pub(crate) async fn sql_insert_skill(
        &self,
        skill: &SkillRow,
        files: &[SkillFileRow],
    ) -> Result<(), StoreError> {
        const OP: &str = "insert skill";
        let mut tx = self.begin_write(OP).await?;
        Self::bind_skill(sqlx::query(&Self::skill_insert("")), skill)
            .execute(&mut *tx)
            .await
            .map_err(already_exists(OP, &skill.slug))?;
        Self::replace_files(&mut tx, &skill.id, files, OP).await?;
        tx.commit().await.map_err(StoreError::query(OP))
    }

    pub(crate) async fn sql_update_skill(
        &self,
        skill: &SkillRow,
        files: Option<&[SkillFileRow]>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update skill";
        let mut tx = self.begin_write(OP).await?;
        let updated = sqlx::query(
            "UPDATE skills SET name = $2, description = $3, category = $4, content = $5, \
             is_directory = $6, version = $7, checksum = $8, enabled = $9, tags_json = $10, \
             requires_tools_json = $11, metadata_json = $12, updated_at = $13, source_ref = $14 \
             WHERE id = $1 RETURNING id",
        )
        .bind(skill.id.as_str())
        .bind(skill.name.as_str())
        .bind(skill.description.as_deref())
        .bind(skill.category.as_str())
        .bind(skill.content.as_str())
        .bind(i64::from(skill.is_directory))
        .bind(skill.version.as_deref())
        .bind(skill.checksum.as_deref())
        .bind(i64::from(skill.enabled))
        .bind(json_list(&skill.tags))
        .bind(json_list(&skill.requires_tools))
        .bind((!skill.metadata.is_null()).then(|| skill.metadata.to_string()))
        .bind(skill.updated_at)
        .bind(skill.source_ref.as_deref())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        if updated.is_none() {
            return Err(StoreError::NotFound {
                entity: "skill",
                id: skill.id.clone(),
            });
        }
        if let Some(files) = files {
            Self::replace_files(&mut tx, &skill.id, files, OP).await?;
        }
        tx.commit().await.map_err(StoreError::query(OP))
    }

    pub(crate) async fn sql_upsert_mirror_skills(
        &self,
        skills: &[SkillRow],
    ) -> Result<(), StoreError> {
        const OP: &str = "upsert mirrored skills";
        if skills.is_empty() {
            return Ok(());
        }
        // `enabled` (the operator's switch) and `created_at` survive a re-sync.
        let sql = Self::skill_insert(
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, slug = excluded.slug, \
             description = excluded.description, category = excluded.category, \
             source_kind = excluded.source_kind, plugin_id = excluded.plugin_id, \
             source_ref = excluded.source_ref, content = excluded.content, \
             is_directory = excluded.is_directory, version = excluded.version, \
             checksum = excluded.checksum, tags_json = excluded.tags_json, \
             requires_tools_json = excluded.requires_tools_json, \
             metadata_json = excluded.metadata_json, updated_at = excluded.updated_at",
        );
        let mut tx = self.begin_write(OP).await?;
        for skill in skills {
            Self::bind_skill(sqlx::query(&sql), skill)
                .execute(&mut *tx)
                .await
                .map_err(already_exists(OP, &skill.slug))?;
        }
        tx.commit().await.map_err(StoreError::query(OP))
    }

    pub(crate) async fn sql_get_skill(&self, id: &str) -> Result<Option<SkillRow>, StoreError> {
        const OP: &str = "read skill";
        let sql = format!("SELECT {SKILL_COLUMNS} FROM skills WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::skill_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_list_skills(
        &self,
        source_kind: Option<&str>,
    ) -> Result<Vec<SkillRow>, StoreError> {
        const OP: &str = "list skills";
        let rows = match source_kind {
            Some(kind) => {
                let sql = format!(
                    "SELECT {SKILL_COLUMNS} FROM skills WHERE source_kind = $1 ORDER BY id"
                );
                sqlx::query(&sql).bind(kind).fetch_all(&self.pool).await
            }
            None => {
                let sql = format!("SELECT {SKILL_COLUMNS} FROM skills ORDER BY id");
                sqlx::query(&sql).fetch_all(&self.pool).await
            }
        }
        .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::skill_row(r, OP)).collect()
    }

    pub(crate) async fn sql_delete_skill(&self, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete skill";
        let mut tx = self.begin_write(OP).await?;
        // Explicit rather than ON DELETE CASCADE alone: tables adopted from an earlier release may lack
        // the foreign keys.
        for sql in [
            "DELETE FROM skill_assignments WHERE skill_id = $1",
            "DELETE FROM skill_files WHERE skill_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        let deleted = sqlx::query("DELETE FROM skills WHERE id = $1 RETURNING id")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .is_some();
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(deleted)
    }

    pub(crate) async fn sql_set_skill_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "UPDATE skills SET enabled = $2, updated_at = $3 WHERE id = $1 RETURNING id",
        )
        .bind(id)
        .bind(i64::from(enabled))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("enable or disable skill"))?;
        Ok(row.is_some())
    }

    pub(crate) async fn sql_list_skill_files(
        &self,
        skill_id: &str,
    ) -> Result<Vec<SkillFileRow>, StoreError> {
        const OP: &str = "list skill files";
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM skill_files WHERE skill_id = $1 ORDER BY relative_path"
        );
        let rows = sqlx::query(&sql)
            .bind(skill_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::skill_file_row(r, OP)).collect()
    }

    pub(crate) async fn sql_get_skill_file(
        &self,
        skill_id: &str,
        relative_path: &str,
    ) -> Result<Option<SkillFileRow>, StoreError> {
        const OP: &str = "read skill file";
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM skill_files WHERE skill_id = $1 AND relative_path = $2"
        );
        let row = sqlx::query(&sql)
            .bind(skill_id)
            .bind(relative_path)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::skill_file_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_list_skill_file_stats(&self) -> Result<Vec<SkillFileStat>, StoreError> {
        const OP: &str = "list skill file sizes";
        let rows = sqlx::query(
            "SELECT skill_id, relative_path, size_bytes, content_type FROM skill_files \
             ORDER BY skill_id, relative_path",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|r| {
                Ok(SkillFileStat {
                    skill_id: col(r, "skill_id", OP)?,
                    relative_path: col(r, "relative_path", OP)?,
                    size_bytes: col::<Option<i64>, _>(r, "size_bytes", OP)?.unwrap_or(0),
                    content_type: col(r, "content_type", OP)?,
                })
            })
            .collect()
    }
}
