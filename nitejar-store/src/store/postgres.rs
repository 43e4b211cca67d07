//! The shared backend: a Postgres server, for several machines on one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;

use super::error::mask_url;
use super::sql::{impl_store, Params, SqlStore};
use super::*;
use crate::crypto::Cipher;

/// The store on Postgres.
pub type PostgresStore = SqlStore<Postgres>;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;

impl SqlStore<Postgres> {
    /// Connects to the Postgres database at `url` (`postgres://user[:password]@host[:port]/db`) and runs
    /// the migrations. Several servers may start at once: sqlx serialises migrations with an advisory
    /// lock.
    pub async fn connect(url: &str, cipher: Cipher) -> Result<PostgresStore, StoreError> {
        let target = mask_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: target.clone(),
            reason: e.to_string(),
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                backend: "postgres",
                target: target.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: "postgres",
                target,
                source,
            })?;
        Ok(SqlStore {
            pool,
            cipher,
            backend: Backend::Postgres,
            begin_write: "BEGIN",
            params: Params::Numbered,
            health: Default::default(),
            write_gate: None,
            in_memory: false,
        })
    }
}

impl_store!(Postgres);
