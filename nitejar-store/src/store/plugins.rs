//! Plugins, their versions, disclosure acknowledgements and package artifacts.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::{
    ConsentRow, DisclosureAckRow, PluginArtifact, PluginRow, PluginVersionRow, StoreError,
};

const PLUGIN_COLUMNS: &str = "id, name, enabled, trust_level, source_kind, source_ref, \
     current_version, current_checksum, current_install_path, manifest_json, config_json, \
     CAST(config_revision AS BIGINT) AS config_revision, execution_mode, memory_limit_mib, \
     cpu_limit_seconds, last_load_error, last_error_kind, last_loaded_at, \
     installed_at, updated_at";

const VERSION_COLUMNS: &str =
    "plugin_id, version, checksum, install_path, manifest_json, signature_json, installed_at";

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
    fn plugin_row(row: &DB::Row, op: &'static str) -> Result<PluginRow, StoreError> {
        Ok(PluginRow {
            id: col(row, "id", op)?,
            name: col(row, "name", op)?,
            enabled: col::<i64, _>(row, "enabled", op)? != 0,
            trust_level: col(row, "trust_level", op)?,
            source_kind: col(row, "source_kind", op)?,
            source_ref: col(row, "source_ref", op)?,
            current_version: col(row, "current_version", op)?,
            current_checksum: col(row, "current_checksum", op)?,
            current_install_path: col(row, "current_install_path", op)?,
            manifest_json: col(row, "manifest_json", op)?,
            config_json: col(row, "config_json", op)?,
            config_revision: col(row, "config_revision", op)?,
            execution_mode: col(row, "execution_mode", op)?,
            memory_limit_mib: col(row, "memory_limit_mib", op)?,
            cpu_limit_seconds: col(row, "cpu_limit_seconds", op)?,
            last_load_error: col(row, "last_load_error", op)?,
            last_error_kind: col(row, "last_error_kind", op)?,
            last_loaded_at: col(row, "last_loaded_at", op)?,
            installed_at: col(row, "installed_at", op)?,
            updated_at: col(row, "updated_at", op)?,
        })
    }

    fn version_row(row: &DB::Row, op: &'static str) -> Result<PluginVersionRow, StoreError> {
        Ok(PluginVersionRow {
            plugin_id: col(row, "plugin_id", op)?,
            version: col(row, "version", op)?,
            checksum: col(row, "checksum", op)?,
            install_path: col(row, "install_path", op)?,
            manifest_json: col(row, "manifest_json", op)?,
            signature_json: col(row, "signature_json", op)?,
            installed_at: col(row, "installed_at", op)?,
        })
    }

    /// Sets where a plugin's code runs and its process's limits (`None`: the server's default).
    pub(crate) async fn sql_set_plugin_execution(
        &self,
        id: &str,
        mode: Option<&str>,
        memory_mib: Option<i64>,
        cpu_seconds: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE plugins SET execution_mode = $2, memory_limit_mib = $3, \
             cpu_limit_seconds = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(mode)
        .bind(memory_mib)
        .bind(cpu_seconds)
        .bind(crate::receipts::now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("set plugin execution"))?;
        Ok(())
    }

    /// `execution_mode`, `memory_limit_mib` and `cpu_limit_seconds` are written on insert only
    /// (`sql_set_plugin_execution` changes them);
    /// `config_json` and `config_revision` are written on insert only: they change through
    /// `sql_write_plugin_settings` alone (see `store::settings`).
    pub(crate) async fn sql_upsert_plugin(&self, p: &PluginRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugins (id, name, enabled, trust_level, source_kind, source_ref, \
             current_version, current_checksum, current_install_path, manifest_json, config_json, \
             last_load_error, last_loaded_at, installed_at, updated_at, execution_mode, \
             memory_limit_mib, cpu_limit_seconds, last_error_kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled, \
             trust_level = excluded.trust_level, source_kind = excluded.source_kind, \
             source_ref = excluded.source_ref, current_version = excluded.current_version, \
             current_checksum = excluded.current_checksum, \
             current_install_path = excluded.current_install_path, \
             manifest_json = excluded.manifest_json, \
             last_load_error = excluded.last_load_error, last_loaded_at = excluded.last_loaded_at, \
             last_error_kind = excluded.last_error_kind, \
             updated_at = excluded.updated_at",
        )
        .bind(p.id.as_str())
        .bind(p.name.as_str())
        .bind(i64::from(p.enabled))
        .bind(p.trust_level.as_str())
        .bind(p.source_kind.as_str())
        .bind(p.source_ref.as_deref())
        .bind(p.current_version.as_deref())
        .bind(p.current_checksum.as_deref())
        .bind(p.current_install_path.as_deref())
        .bind(p.manifest_json.as_str())
        .bind(p.config_json.as_deref())
        .bind(p.last_load_error.as_deref())
        .bind(p.last_loaded_at)
        .bind(p.installed_at)
        .bind(p.updated_at)
        .bind(p.execution_mode.as_deref())
        .bind(p.memory_limit_mib)
        .bind(p.cpu_limit_seconds)
        .bind(p.last_error_kind.as_deref())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("upsert plugin"))?;
        Ok(())
    }

    pub(crate) async fn sql_get_plugin(&self, id: &str) -> Result<Option<PluginRow>, StoreError> {
        const OP: &str = "read plugin";
        let sql = format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::plugin_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_list_plugins(&self) -> Result<Vec<PluginRow>, StoreError> {
        const OP: &str = "list plugins";
        let sql = format!("SELECT {PLUGIN_COLUMNS} FROM plugins ORDER BY id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::plugin_row(r, OP)).collect()
    }

    pub(crate) async fn sql_delete_plugin(&self, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete plugin";
        let mut tx = self.begin_write(OP).await?;
        // Explicit rather than ON DELETE CASCADE alone: tables adopted from an earlier release may lack
        // the foreign keys. Receipts stay: they are the audit trail.
        for sql in [
            "DELETE FROM plugin_disclosure_acks WHERE plugin_id = $1",
            "DELETE FROM plugin_secrets WHERE plugin_id = $1",
            "DELETE FROM plugin_artifacts WHERE plugin_id = $1",
            "DELETE FROM plugin_versions WHERE plugin_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        let deleted = sqlx::query("DELETE FROM plugins WHERE id = $1 RETURNING id")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .is_some();
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(deleted)
    }

    pub(crate) async fn sql_upsert_plugin_version(
        &self,
        v: &PluginVersionRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_versions (plugin_id, version, checksum, install_path, \
             manifest_json, signature_json, installed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (plugin_id, version) DO UPDATE SET checksum = excluded.checksum, \
             install_path = excluded.install_path, manifest_json = excluded.manifest_json, \
             signature_json = excluded.signature_json",
        )
        .bind(v.plugin_id.as_str())
        .bind(v.version.as_str())
        .bind(v.checksum.as_str())
        .bind(v.install_path.as_str())
        .bind(v.manifest_json.as_str())
        .bind(v.signature_json.as_deref())
        .bind(v.installed_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("upsert plugin version"))?;
        Ok(())
    }

    pub(crate) async fn sql_get_plugin_version(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> Result<Option<PluginVersionRow>, StoreError> {
        const OP: &str = "read plugin version";
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plugin_versions WHERE plugin_id = $1 AND version = $2"
        );
        let row = sqlx::query(&sql)
            .bind(plugin_id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        row.map(|r| Self::version_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_list_plugin_versions(
        &self,
        plugin_id: &str,
    ) -> Result<Vec<PluginVersionRow>, StoreError> {
        const OP: &str = "list plugin versions";
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plugin_versions WHERE plugin_id = $1 \
             ORDER BY installed_at, version"
        );
        let rows = sqlx::query(&sql)
            .bind(plugin_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::version_row(r, OP)).collect()
    }

    pub(crate) async fn sql_upsert_disclosure_ack(
        &self,
        a: &DisclosureAckRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_disclosure_acks (plugin_id, permission, scope, acknowledged, \
             acknowledged_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (plugin_id, permission, scope) DO UPDATE SET \
             acknowledged = excluded.acknowledged, acknowledged_at = excluded.acknowledged_at",
        )
        .bind(a.plugin_id.as_str())
        .bind(a.permission.as_str())
        .bind(a.scope.as_str())
        .bind(i64::from(a.acknowledged))
        .bind(a.acknowledged_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("record disclosure acknowledgement"))?;
        Ok(())
    }

    pub(crate) async fn sql_put_consent(&self, c: &ConsentRow) -> Result<(), StoreError> {
        const OP: &str = "record consent";
        let consented = serde_json::to_string(&c.consented).map_err(|e| StoreError::Malformed {
            entity: "plugin_consents",
            id: format!("{}@{}", c.plugin_id, c.version),
            column: "consented_json",
            reason: e.to_string(),
        })?;
        let mut tx = self.begin_write(OP).await?;
        sqlx::query(
            "INSERT INTO plugin_consents (plugin_id, version, checksum, consented_json, \
             consent_digest, basis, accepted_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (plugin_id, version) DO UPDATE SET checksum = excluded.checksum, \
             consented_json = excluded.consented_json, consent_digest = excluded.consent_digest, \
             basis = excluded.basis, accepted_at = excluded.accepted_at",
        )
        .bind(c.plugin_id.as_str())
        .bind(c.version.as_str())
        .bind(c.checksum.as_str())
        .bind(consented.as_str())
        .bind(c.consent_digest.as_str())
        .bind(c.basis.as_str())
        .bind(c.accepted_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        tx.commit().await.map_err(StoreError::query(OP))
    }

    fn consent_row(row: &DB::Row, op: &'static str) -> Result<ConsentRow, StoreError> {
        let plugin_id: String = col(row, "plugin_id", op)?;
        let version: String = col(row, "version", op)?;
        let json: String = col(row, "consented_json", op)?;
        let consented = serde_json::from_str(&json).map_err(|e| StoreError::Malformed {
            entity: "plugin_consents",
            id: format!("{plugin_id}@{version}"),
            column: "consented_json",
            reason: e.to_string(),
        })?;
        Ok(ConsentRow {
            plugin_id,
            version,
            checksum: col(row, "checksum", op)?,
            consented,
            consent_digest: col(row, "consent_digest", op)?,
            basis: col(row, "basis", op)?,
            accepted_at: col(row, "accepted_at", op)?,
        })
    }

    pub(crate) async fn sql_get_consent(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> Result<Option<ConsentRow>, StoreError> {
        const OP: &str = "read consent";
        let row = sqlx::query(
            "SELECT plugin_id, version, checksum, consented_json, consent_digest, basis, \
             CAST(accepted_at AS BIGINT) AS accepted_at FROM plugin_consents \
             WHERE plugin_id = $1 AND version = $2",
        )
        .bind(plugin_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        row.map(|r| Self::consent_row(&r, OP)).transpose()
    }

    pub(crate) async fn sql_list_consents(
        &self,
        plugin_id: &str,
    ) -> Result<Vec<ConsentRow>, StoreError> {
        const OP: &str = "list consents";
        let rows = sqlx::query(
            "SELECT plugin_id, version, checksum, consented_json, consent_digest, basis, \
             CAST(accepted_at AS BIGINT) AS accepted_at FROM plugin_consents \
             WHERE plugin_id = $1 ORDER BY accepted_at, version",
        )
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter().map(|r| Self::consent_row(r, OP)).collect()
    }

    pub(crate) async fn sql_list_disclosure_acks(
        &self,
        plugin_id: &str,
    ) -> Result<Vec<DisclosureAckRow>, StoreError> {
        const OP: &str = "list disclosure acknowledgements";
        let rows = sqlx::query(
            "SELECT plugin_id, permission, scope, acknowledged, acknowledged_at \
             FROM plugin_disclosure_acks WHERE plugin_id = $1 ORDER BY permission, scope",
        )
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|row| {
                Ok(DisclosureAckRow {
                    plugin_id: col(row, "plugin_id", OP)?,
                    permission: col(row, "permission", OP)?,
                    scope: col(row, "scope", OP)?,
                    acknowledged: col::<i64, _>(row, "acknowledged", OP)? != 0,
                    acknowledged_at: col(row, "acknowledged_at", OP)?,
                })
            })
            .collect()
    }

    pub(crate) async fn sql_put_plugin_artifact(
        &self,
        a: &PluginArtifact,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_artifacts (plugin_id, version, tgz_blob, size_bytes, checksum, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (plugin_id, version) DO UPDATE SET tgz_blob = excluded.tgz_blob, \
             size_bytes = excluded.size_bytes, checksum = excluded.checksum, \
             created_at = excluded.created_at",
        )
        .bind(a.plugin_id.as_str())
        .bind(a.version.as_str())
        .bind(a.bytes.clone())
        .bind(i64::try_from(a.bytes.len()).unwrap_or(i64::MAX))
        .bind(a.checksum.as_str())
        .bind(a.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("store plugin artifact"))?;
        Ok(())
    }

    pub(crate) async fn sql_get_plugin_artifact(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> Result<Option<PluginArtifact>, StoreError> {
        const OP: &str = "read plugin artifact";
        let row = sqlx::query(
            "SELECT plugin_id, version, tgz_blob, checksum, created_at FROM plugin_artifacts \
             WHERE plugin_id = $1 AND version = $2",
        )
        .bind(plugin_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        row.map(|row| {
            Ok(PluginArtifact {
                plugin_id: col(&row, "plugin_id", OP)?,
                version: col(&row, "version", OP)?,
                bytes: col(&row, "tgz_blob", OP)?,
                checksum: col(&row, "checksum", OP)?,
                created_at: col(&row, "created_at", OP)?,
            })
        })
        .transpose()
    }
}
