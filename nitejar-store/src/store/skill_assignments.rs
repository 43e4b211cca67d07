//! Skill assignments (`skill_assignments`): which skill applies where, with what priority, on or off.

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::{new_id, StoreError};
use crate::receipts::now_ms;

const ASSIGNMENT_COLUMNS: &str = "id, skill_id, skill_slug, scope, scope_id, priority, \
     auto_inject, enabled, created_at, updated_at";

/// One row of `skill_assignments`. `scope` is `global`, `team`, `agent` or `integration_type`;
/// `scope_id` is the team id, agent id or integration type (empty for `global`; rows adopted from an
/// earlier release may hold `None` there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillAssignmentRow {
    pub id: String,
    pub skill_id: String,
    pub skill_slug: String,
    pub scope: String,
    pub scope_id: Option<String>,
    /// Higher first in the prompt.
    pub priority: i64,
    pub auto_inject: bool,
    pub enabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// What [`Store::set_skill_assignment`](super::SkillStore::set_skill_assignment) needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewSkillAssignment {
    pub skill_id: String,
    pub scope: String,
    /// Empty for `global`.
    pub scope_id: String,
    pub priority: i64,
    pub enabled: bool,
}

/// Which assignments to list; every field narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignmentFilter {
    pub skill_id: Option<String>,
    pub scope: Option<String>,
    /// Only with `scope`; empty matches `global` rows.
    pub scope_id: Option<String>,
}

fn missing_skill(op: &'static str, id: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    let id = id.to_owned();
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound {
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
    fn assignment_row(row: &DB::Row, op: &'static str) -> Result<SkillAssignmentRow, StoreError> {
        Ok(SkillAssignmentRow {
            id: col(row, "id", op)?,
            skill_id: col(row, "skill_id", op)?,
            skill_slug: col(row, "skill_slug", op)?,
            scope: col(row, "scope", op)?,
            scope_id: col(row, "scope_id", op)?,
            priority: col(row, "priority", op)?,
            auto_inject: col::<i64, _>(row, "auto_inject", op)? != 0,
            enabled: col::<i64, _>(row, "enabled", op)? != 0,
            created_at: col(row, "created_at", op)?,
            updated_at: col(row, "updated_at", op)?,
        })
    }

    pub(crate) async fn sql_set_skill_assignment(
        &self,
        new: &NewSkillAssignment,
    ) -> Result<SkillAssignmentRow, StoreError> {
        const OP: &str = "set skill assignment";
        let mut tx = self.begin_write(OP).await?;
        let now = now_ms();
        let slug = sqlx::query("SELECT slug FROM skills WHERE id = $1")
            .bind(new.skill_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .map(|r| col::<String, _>(&r, "slug", OP))
            .transpose()?;
        let Some(slug) = slug else {
            return Err(StoreError::NotFound {
                entity: "skill",
                id: new.skill_id.clone(),
            });
        };
        // A global row adopted from an earlier release may have a NULL scope id: update it in place
        // rather than adding a second global row beside it.
        let sql = format!(
            "UPDATE skill_assignments SET priority = $4, enabled = $5, updated_at = $6, \
             scope_id = $3 WHERE skill_id = $1 AND scope = $2 AND COALESCE(scope_id, '') = $3 \
             RETURNING {ASSIGNMENT_COLUMNS}"
        );
        let updated = sqlx::query(&sql)
            .bind(new.skill_id.as_str())
            .bind(new.scope.as_str())
            .bind(new.scope_id.as_str())
            .bind(new.priority)
            .bind(i64::from(new.enabled))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        let row = match updated {
            Some(row) => row,
            None => {
                let sql = format!(
                    "INSERT INTO skill_assignments ({ASSIGNMENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8) RETURNING {ASSIGNMENT_COLUMNS}"
                );
                sqlx::query(&sql)
                    .bind(new_id())
                    .bind(new.skill_id.as_str())
                    .bind(slug.as_str())
                    .bind(new.scope.as_str())
                    .bind(new.scope_id.as_str())
                    .bind(new.priority)
                    .bind(i64::from(new.enabled))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(missing_skill(OP, &new.skill_id))?
            }
        };
        let row = Self::assignment_row(&row, OP)?;
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(row)
    }

    pub(crate) async fn sql_insert_skill_assignment_if_absent(
        &self,
        new: &NewSkillAssignment,
    ) -> Result<bool, StoreError> {
        const OP: &str = "add skill assignment";
        let mut tx = self.begin_write(OP).await?;
        let exists = sqlx::query(
            "SELECT id FROM skill_assignments WHERE skill_id = $1 AND scope = $2 \
             AND COALESCE(scope_id, '') = $3",
        )
        .bind(new.skill_id.as_str())
        .bind(new.scope.as_str())
        .bind(new.scope_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?
        .is_some();
        if exists {
            return Ok(false);
        }
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO skill_assignments (id, skill_id, skill_slug, scope, scope_id, priority, \
             auto_inject, enabled, created_at, updated_at) \
             SELECT $1, id, slug, $3, $4, $5, 0, $6, $7, $7 FROM skills WHERE id = $2 \
             ON CONFLICT (skill_id, scope, scope_id) DO NOTHING RETURNING id",
        )
        .bind(new_id())
        .bind(new.skill_id.as_str())
        .bind(new.scope.as_str())
        .bind(new.scope_id.as_str())
        .bind(new.priority)
        .bind(i64::from(new.enabled))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?
        .is_some();
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(inserted)
    }

    pub(crate) async fn sql_list_skill_assignments(
        &self,
        filter: &AssignmentFilter,
    ) -> Result<Vec<SkillAssignmentRow>, StoreError> {
        const OP: &str = "list skill assignments";
        // Unset filters compare with themselves: one statement shape for every combination.
        let sql = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM skill_assignments \
             WHERE ($1 = '' OR skill_id = $1) AND ($2 = '' OR scope = $2) \
             AND ($3 = '' OR COALESCE(scope_id, '') = $4) \
             ORDER BY priority DESC, skill_id, scope, scope_id"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.skill_id.as_deref().unwrap_or(""))
            .bind(filter.scope.as_deref().unwrap_or(""))
            .bind(if filter.scope_id.is_some() { "1" } else { "" })
            .bind(filter.scope_id.as_deref().unwrap_or(""))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::assignment_row(r, OP)).collect()
    }

    pub(crate) async fn sql_delete_skill_assignment(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("DELETE FROM skill_assignments WHERE id = $1 RETURNING id")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("delete skill assignment"))?;
        Ok(row.is_some())
    }

    pub(crate) async fn sql_skill_assignments_for_run(
        &self,
        agent_id: &str,
        team_id: Option<&str>,
        integration_type: Option<&str>,
    ) -> Result<Vec<SkillAssignmentRow>, StoreError> {
        const OP: &str = "list skill assignments of a run";
        // An absent team or integration type binds NULL, which matches no row.
        let sql = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM skill_assignments WHERE scope = 'global' \
             OR (scope = 'agent' AND scope_id = $1) OR (scope = 'team' AND scope_id = $2) \
             OR (scope = 'integration_type' AND scope_id = $3) \
             ORDER BY priority DESC, skill_id"
        );
        let rows = sqlx::query(&sql)
            .bind(agent_id)
            .bind(team_id)
            .bind(integration_type)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::assignment_row(r, OP)).collect()
    }
}
