//! A plugin's settings as stored: its config (`plugins.config_json`), the secrets the operator set
//! (`plugin_secrets`, encrypted with the store's cipher), and the revision counting changes to
//! either (`plugins.config_revision`).
//!
//! Only [`Store::write_plugin_settings`](super::PluginStore::write_plugin_settings) writes these: the
//! plugin row's other writers (`upsert_plugin`, called by every lifecycle operation with the row it
//! read) leave them as they are, so a lifecycle operation running in another process at the same
//! moment cannot undo a settings change.

use serde::Serialize;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::StoreError;
use crate::crypto::{Cipher, CryptoError};

/// One secret of a plugin, as stored (`plugin_secrets`). The value stays encrypted until
/// [`decrypt`](Self::decrypt)ed for the plugin that declares it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct PluginSecretRow {
    /// The plugin.
    pub plugin_id: String,
    /// The secret's identity: the environment variable its name reads (`NITEJAR_SECRET_<NAME>`).
    pub env_var: String,
    /// The name the manifest declared when it was set.
    pub name: String,
    /// `enc:` + base64 (AES-256-GCM), as integration secrets.
    #[serde(skip)]
    pub value: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl PluginSecretRow {
    /// The plaintext value.
    pub fn decrypt(&self, cipher: &Cipher) -> Result<String, CryptoError> {
        cipher.decrypt(&self.value)
    }
}

impl std::fmt::Debug for PluginSecretRow {
    // A secret's value never reaches a log, encrypted or not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSecretRow")
            .field("plugin_id", &self.plugin_id)
            .field("env_var", &self.env_var)
            .field("name", &self.name)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// A secret to store: identity, declared name and plaintext (encrypted by the store).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// The environment variable the name reads.
    pub env_var: String,
    /// The declared name.
    pub name: String,
    /// The plaintext.
    pub value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("env_var", &self.env_var)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A change of one plugin's settings, written in one transaction that also counts the revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsWrite {
    /// The plugin.
    pub plugin_id: String,
    /// `Some`: the new `config_json` (`Some(None)`: nothing stored). `None`: the config stays.
    pub config_json: Option<Option<String>>,
    /// Secrets to store (replacing a stored value of the same identity).
    pub set_secrets: Vec<SecretValue>,
    /// Stored secrets to remove, by environment variable.
    pub clear_secrets: Vec<String>,
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
    pub(crate) async fn sql_write_plugin_settings(
        &self,
        write: &SettingsWrite,
    ) -> Result<i64, StoreError> {
        const OP: &str = "write plugin settings";
        let now = crate::receipts::now_ms();
        // Encrypted before the transaction: nothing of a failed encryption is written.
        let mut encrypted = Vec::with_capacity(write.set_secrets.len());
        for s in &write.set_secrets {
            let value = self
                .cipher
                .encrypt(&s.value)
                .map_err(|e| StoreError::Malformed {
                    entity: "plugin_secrets",
                    id: format!("{}/{}", write.plugin_id, s.env_var),
                    column: "value",
                    reason: e.to_string(),
                })?;
            encrypted.push((s, value));
        }
        let mut tx = self.begin_write(OP).await?;
        let revision = match &write.config_json {
            Some(config) => sqlx::query(
                "UPDATE plugins SET config_json = $2, config_revision = config_revision + 1, \
                 updated_at = $3 WHERE id = $1 RETURNING config_revision",
            )
            .bind(write.plugin_id.as_str())
            .bind(config.as_deref())
            .bind(now),
            None => sqlx::query(
                "UPDATE plugins SET config_revision = config_revision + 1, updated_at = $2 \
                 WHERE id = $1 RETURNING config_revision",
            )
            .bind(write.plugin_id.as_str())
            .bind(now),
        }
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        let Some(revision) = revision else {
            return Err(StoreError::NotFound {
                entity: "plugin",
                id: write.plugin_id.clone(),
            });
        };
        let revision: i64 = col(&revision, "config_revision", OP)?;
        for env_var in &write.clear_secrets {
            sqlx::query("DELETE FROM plugin_secrets WHERE plugin_id = $1 AND env_var = $2")
                .bind(write.plugin_id.as_str())
                .bind(env_var.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        for (secret, value) in &encrypted {
            sqlx::query(
                "INSERT INTO plugin_secrets (plugin_id, env_var, name, value, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (plugin_id, env_var) DO UPDATE SET \
                 name = excluded.name, value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(write.plugin_id.as_str())
            .bind(secret.env_var.as_str())
            .bind(secret.name.as_str())
            .bind(value.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        }
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(revision)
    }

    pub(crate) async fn sql_list_plugin_secrets(
        &self,
        plugin_id: &str,
    ) -> Result<Vec<PluginSecretRow>, StoreError> {
        const OP: &str = "list plugin secrets";
        let rows = sqlx::query(
            "SELECT plugin_id, env_var, name, value, CAST(updated_at AS BIGINT) AS updated_at \
             FROM plugin_secrets WHERE plugin_id = $1 ORDER BY env_var",
        )
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|row| {
                Ok(PluginSecretRow {
                    plugin_id: col(row, "plugin_id", OP)?,
                    env_var: col(row, "env_var", OP)?,
                    name: col(row, "name", OP)?,
                    value: col(row, "value", OP)?,
                    updated_at: col(row, "updated_at", OP)?,
                })
            })
            .collect()
    }
}
