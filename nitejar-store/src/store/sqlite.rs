//! The embedded backend: one SQLite file (WAL, foreign keys on, 5 s busy timeout).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Sqlite;

use super::error::mask_url;
use super::sql::{impl_store, Params, SqlStore};
use super::*;
use crate::crypto::Cipher;

/// The store on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a connection waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite allows one writer at a time; a few connections serve concurrent readers (WAL) while the
/// receipt writer holds one.
const MAX_CONNECTIONS: u32 = 4;

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) the SQLite database at `url`: a file path, or a `sqlite:` URL
    /// (`sqlite://./data/nitejar.db`, `sqlite::memory:`). Adopts a file written by an earlier release
    /// (see the [module docs](crate::store#adopting-an-existing-database)), then runs the migrations.
    pub async fn open(url: &str, cipher: Cipher) -> Result<SqliteStore, StoreError> {
        let (options, target, in_memory) = connect_options(url)?;
        if !in_memory {
            if let Some(parent) = options.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                        backend: "sqlite",
                        target: target.clone(),
                        source: sqlx::Error::Io(e),
                    })?;
                }
            }
            private_file(options.get_filename()).map_err(|e| StoreError::Open {
                backend: "sqlite",
                target: target.clone(),
                source: sqlx::Error::Io(e),
            })?;
            super::adopt::adopt(&options, &target).await?;
        }
        // An in-memory database lives while one of its (shared-cache) connections is open: keep
        // one open forever.
        let pool_options = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                backend: "sqlite",
                target: target.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: "sqlite",
                target,
                source,
            })?;
        Ok(SqlStore {
            pool,
            cipher,
            backend: Backend::Sqlite,
            begin_write: "BEGIN IMMEDIATE",
            params: Params::Anonymous,
            health: Default::default(),
            write_gate: Some(Default::default()),
            in_memory,
        })
    }
}

/// The database holds every integration's (encrypted) secrets and the admin sessions: only its
/// owner may read it. A new file is created `0600`; an existing one readable by others is narrowed
/// to `0600`, with its `-wal` and `-shm` files (SQLite gives those the mode of the database file).
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            return Ok(());
        }
        let mut suffixed = path.as_os_str().to_owned();
        let base = suffixed.clone();
        for suffix in ["", "-wal", "-shm"] {
            suffixed.clone_from(&base);
            suffixed.push(suffix);
            let file = Path::new(&suffixed);
            let Ok(meta) = std::fs::metadata(file) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700))?;
                tracing::warn!(
                    "{} was readable by other users (mode {:o}); narrowed to {:o}",
                    file.display(),
                    mode & 0o777,
                    mode & 0o700
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Connect options for `url`, and how to name the database in messages.
fn connect_options(url: &str) -> Result<(SqliteConnectOptions, String, bool), StoreError> {
    let base = if url.trim_start().to_ascii_lowercase().starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: mask_url(url),
            reason: e.to_string(),
        })?
    } else if url.trim().is_empty() {
        return Err(StoreError::BadUrl {
            url: String::new(),
            reason: "it is empty; give a file path, a sqlite: URL or a postgres:// URL".to_owned(),
        });
    } else {
        SqliteConnectOptions::new().filename(Path::new(url))
    };
    let in_memory = url.starts_with("sqlite:") && names_memory(url);
    let target = if in_memory {
        ":memory:".to_owned()
    } else {
        base.get_filename().display().to_string()
    };
    let options = base
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        // In WAL mode NORMAL is durable across process crashes; a power cut can lose the last
        // transactions. FULL would fsync on every commit.
        .synchronous(SqliteSynchronous::Normal)
        // 16 MiB of page cache per connection (the default is 2 MiB): the receipt indexes stay in
        // memory under sustained writes.
        .pragma("cache_size", "-16384");
    Ok((options, target, in_memory))
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `?mode=memory`), read as sqlx
/// reads it. Its options then carry a "filename" (`file:sqlx-in-memory-<n>`) that is no file:
/// nothing may be created, adopted or watched under that name.
fn names_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:"
        || params
            .split('&')
            .any(|pair| pair.split_once('=') == Some(("mode", "memory")))
}

impl_store!(Sqlite);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed test

    use super::*;

    #[test]
    fn in_memory_urls_are_told_from_files() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x.db?mode=memory",
        ] {
            let (_, _, in_memory) = connect_options(url).unwrap();
            assert!(in_memory, "{url}");
        }
        let (_, target, _) = connect_options("sqlite::memory:").unwrap();
        assert_eq!(target, ":memory:");
        for url in [
            "sqlite://./data/nitejar.db",
            "data/nitejar.db",
            "sqlite:memory.db",
        ] {
            let (_, _, in_memory) = connect_options(url).unwrap();
            assert!(!in_memory, "{url}");
        }
    }

    #[tokio::test]
    async fn an_in_memory_database_leaves_no_file_behind() {
        let strays = || {
            std::fs::read_dir(".")
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains("sqlx-in-memory"))
                .count()
        };
        let before = strays();
        let cipher = Cipher::new(&crate::crypto::Key::generate().unwrap());
        let store = crate::store::open("sqlite::memory:", cipher).await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(
            strays(),
            before,
            "opening an in-memory database wrote a file"
        );
        assert_eq!(
            before, 0,
            "a file named like an in-memory database is in the crate directory"
        );
    }
}
