//! The one error type of the store boundary.

use crate::crypto::CryptoError;

/// What went wrong in the store. Messages name the operation and the row; they never contain a
/// database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `DATABASE_URL` could not be understood.
    #[error("DATABASE_URL {url} is not usable: {reason}")]
    BadUrl {
        /// The URL, with any password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or reached.
    #[error("could not open the {backend} database at {target}: {source}")]
    Open {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The file or server, with any password masked.
        target: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed. The database is left at the last migration that succeeded.
    #[error(
        "migrating the {backend} database at {target} failed: {source} (the database was left at \
         the last migration that succeeded; fix the cause and start again)"
    )]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The file or server, with any password masked.
        target: String,
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// Adopting a database written by an earlier Nitejar release failed before any migration ran.
    #[error("adopting the existing database at {target} failed while {step}: {source}")]
    Adopt {
        /// The file.
        target: String,
        /// Which step: "adding integrations.plugin_id", "rebuilding spans", …
        step: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("{op} failed: {source}")]
    Query {
        /// What the store was doing ("insert integration", "list plugin_events", …).
        op: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A row the operation needs does not exist.
    #[error("{entity} {id:?} does not exist")]
    NotFound {
        /// "integration", "job", …
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// A row with this key exists already.
    #[error("{entity} {id:?} already exists")]
    AlreadyExists {
        /// "integration", "agent", …
        entity: &'static str,
        /// Its id (or name).
        id: String,
    },
    /// A stored value does not have the shape the store expects.
    #[error("{entity} {id:?} holds malformed data in {column}: {reason}")]
    Malformed {
        /// "integration", "plugin_events", …
        entity: &'static str,
        /// The row's id.
        id: String,
        /// The column.
        column: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A sensitive config field could not be encrypted or decrypted.
    #[error("integration {id:?}: {source}")]
    Crypto {
        /// The integration id.
        id: String,
        /// The cipher's error.
        source: CryptoError,
    },
    /// A pagination cursor was not one the store handed out.
    #[error("the page cursor {0:?} is not valid; start again without a cursor")]
    BadCursor(String),
}

impl StoreError {
    /// Wraps a driver error of operation `op`.
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { op, source }
    }

    /// Whether the database itself failed — unreachable, full, read-only, locked, out of resources —
    /// rather than refused what was written. A fault says nothing about the rows: the same write is
    /// worth trying again once the database is back, and trying it row by row would fail the same way.
    pub fn is_fault(&self) -> bool {
        match self {
            StoreError::Open { source, .. }
            | StoreError::Query { source, .. }
            | StoreError::Adopt { source, .. } => is_fault(source),
            _ => false,
        }
    }
}

/// See [`StoreError::is_fault`].
pub(crate) fn is_fault(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // The primary result code is the low byte of the extended one.
                let code = db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| c & 0xff);
                // BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
                return code
                    .is_none_or(|c| matches!(c, 5 | 6 | 7 | 8 | 10 | 11 | 13 | 14 | 15 | 26));
            }
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // SQLSTATE classes: connection, transaction rollback (serialization, deadlock),
                // insufficient resources (disk full), operator intervention, system error, internal.
                let class = pg.code().get(..2).unwrap_or("");
                return matches!(class, "08" | "40" | "53" | "57" | "58" | "XX");
            }
            false
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// `url` with the password of its user-info part (if any) replaced by `***`, fit for messages and logs.
pub(crate) fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db.internal:5432/nitejar?sslmode=disable"),
            "postgres://app:***@db.internal:5432/nitejar?sslmode=disable"
        );
        assert_eq!(
            mask_url("postgres://app@db/nitejar"),
            "postgres://app@db/nitejar"
        );
        assert_eq!(mask_url("./data/nitejar.db"), "./data/nitejar.db");
    }
}
