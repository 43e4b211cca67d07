//! The change counters and how a backend tells that they may have moved.
//!
//! Every write to what a server keeps in memory or acts on bumps its topic's counter in the `changes`
//! row, in the transaction that makes it, by a trigger on the table written (migration
//! `0016_change_feed`): no write path can forget it, the CLI's and another server's included. What a
//! server does with the counters is `nitejar_core::changes`'s business; this module reads them and watches
//! for commits:
//!
//! - **Postgres** tells every listening connection at commit (`NOTIFY nitejar_changes`, the payload
//!   naming the topic; `runs` for a newly queued run, which has no counter).
//! - **SQLite** has no notification across processes. The watcher asks SQLite every
//!   [`SQLITE_CHECK_EVERY`] whether any other connection committed (`PRAGMA data_version`, which
//!   reads the shared WAL index and no table) and signals only then; a database in memory (one
//!   connection, one process) is signalled on every check.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, Row};

use super::sql::SqlStore;
use super::StoreError;

/// What a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Plugins, their versions, consents, acknowledgements and secrets.
    Plugins,
    /// Trust entries (keys and allowlist) stored by operators.
    Trust,
    /// Integration rows.
    Integrations,
    /// Agents, their assignments to integrations and their plugin grants.
    Agents,
    /// Skills, their files and their assignments.
    Skills,
}

impl Topic {
    /// Every topic with a counter.
    pub const ALL: [Topic; 5] = [
        Topic::Plugins,
        Topic::Trust,
        Topic::Integrations,
        Topic::Agents,
        Topic::Skills,
    ];

    /// The topic's column in `changes` and its spelling in a notification.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Plugins => "plugins",
            Topic::Trust => "trust",
            Topic::Integrations => "integrations",
            Topic::Agents => "agents",
            Topic::Skills => "skills",
        }
    }
}

/// The change counters, as read together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Revisions([i64; 5]);

impl Revisions {
    /// The counter of `topic`.
    pub fn get(&self, topic: Topic) -> i64 {
        self.0[topic as usize]
    }

    /// The topics whose counter differs between `self` and `other`.
    pub fn moved_since(&self, other: &Revisions) -> Vec<Topic> {
        Topic::ALL
            .into_iter()
            .filter(|t| self.get(*t) != other.get(*t))
            .collect()
    }

    /// `self` with `topic` set (tests build expectations with it).
    pub fn with(mut self, topic: Topic, revision: i64) -> Revisions {
        self.0[topic as usize] = revision;
        self
    }
}

/// What a watcher reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeSignal {
    /// The counters may have moved: read them.
    Counters,
    /// A run was queued (Postgres, by any server).
    RunQueued,
    /// Watching started, or started again after [`ChangeSignal::Lost`]: anything may have moved
    /// meanwhile. Sent once the watcher listens, so a read it starts misses nothing.
    Resumed,
    /// Watching stopped (a lost connection); it is tried again, and [`ChangeSignal::Resumed`]
    /// follows when it works. Meanwhile only the safety net notices changes.
    Lost,
}

/// Called by a watcher for every signal; cheap, never blocks.
pub type ChangeCallback = Arc<dyn Fn(ChangeSignal) + Send + Sync>;

/// How often the SQLite watcher asks whether another connection committed.
pub const SQLITE_CHECK_EVERY: Duration = Duration::from_millis(50);

/// The wait before listening again after the watcher lost its connection (it doubles up to 5 s).
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// The channel a Postgres server listens on.
const CHANNEL: &str = "nitejar_changes";

/// The `changes` row is gone (deleted by hand, or a database restored without it): nobody can
/// tell what changed, and a server must not trust what it cached.
fn missing_row() -> StoreError {
    StoreError::NotFound {
        entity: "the change counters row (table `changes`, created by migration 0016; restore it \
                 with `INSERT INTO changes (id) VALUES (1)`)",
        id: "1".to_owned(),
    }
}

pub(crate) const COLUMNS: &str = "plugins, trust, integrations, agents, skills";

pub(crate) fn revisions_of<R: Row>(row: &R) -> Result<Revisions, StoreError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    const OP: &str = "read the change counters";
    let mut out = Revisions::default();
    for topic in Topic::ALL {
        out.0[topic as usize] = row
            .try_get::<i64, _>(topic.as_str())
            .map_err(StoreError::query(OP))?;
    }
    Ok(out)
}

impl<DB> SqlStore<DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'r> &'r str: sqlx::ColumnIndex<DB::Row>,
{
    pub(crate) async fn sql_change_revisions(&self) -> Result<Revisions, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM changes WHERE id = 1"))
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("read the change counters"))?;
        row.map_or_else(|| Err(missing_row()), |r| revisions_of(&r))
    }
}

impl SqlStore<sqlx::Sqlite> {
    /// Signals [`ChangeSignal::Counters`] whenever another connection committed (see the module
    /// docs). Runs until the task is dropped.
    pub(crate) async fn sql_watch_changes(&self, signal: ChangeCallback) -> Result<(), StoreError> {
        let options = self.pool.connect_options();
        let in_memory = self.in_memory;
        let mut tick = tokio::time::interval(SQLITE_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if in_memory {
            // One connection, one process: every check is a signal.
            signal(ChangeSignal::Resumed);
            loop {
                tick.tick().await;
                signal(ChangeSignal::Counters);
            }
        }
        let mut retry = RETRY_FIRST;
        loop {
            let mut conn = match sqlx::SqliteConnection::connect_with(&options).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("change feed: could not open a connection to watch: {e}");
                    signal(ChangeSignal::Lost);
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            // The baseline first, then the signal: the read the signal starts sees every commit
            // up to the baseline, and every later one moves the version past it.
            let Ok(mut seen) = data_version(&mut conn).await else {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
                continue;
            };
            retry = RETRY_FIRST;
            signal(ChangeSignal::Resumed);
            loop {
                tick.tick().await;
                let Ok(version) = data_version(&mut conn).await else {
                    signal(ChangeSignal::Lost);
                    break;
                };
                if version != seen {
                    signal(ChangeSignal::Counters);
                    seen = version;
                }
            }
        }
    }
}

/// SQLite's count of commits by other connections, as `conn` sees it.
async fn data_version(conn: &mut sqlx::SqliteConnection) -> Result<i64, ()> {
    sqlx::query_scalar::<_, i64>("PRAGMA data_version")
        .fetch_one(conn)
        .await
        .map_err(|e| tracing::warn!("change feed: could not ask SQLite for changes: {e}"))
}

impl SqlStore<sqlx::Postgres> {
    /// Listens on `nitejar_changes` and signals every notification; after a lost connection, listens
    /// again and signals [`ChangeSignal::Resumed`] (what was notified meanwhile is lost). Runs until
    /// the task is dropped.
    pub(crate) async fn sql_watch_changes(&self, signal: ChangeCallback) -> Result<(), StoreError> {
        let mut retry = RETRY_FIRST;
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("change feed: could not connect to listen: {e}");
                    signal(ChangeSignal::Lost);
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!("change feed: could not listen on {CHANNEL}: {e}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
                continue;
            }
            retry = RETRY_FIRST;
            signal(ChangeSignal::Resumed);
            loop {
                // `try_recv` answers `None` when the connection was lost. Listening again is done
                // above, on a new connection, so that `Resumed` is sent only once it listens:
                // what was notified meanwhile is gone, and the read `Resumed` starts finds it.
                match listener.try_recv().await {
                    Ok(Some(n)) if n.payload() == "runs" => signal(ChangeSignal::RunQueued),
                    Ok(Some(_)) => signal(ChangeSignal::Counters),
                    Ok(None) => {
                        tracing::warn!(
                            "change feed: the listening connection was lost; listening again"
                        );
                        signal(ChangeSignal::Lost);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("change feed: listening failed: {e}");
                        signal(ChangeSignal::Lost);
                        break;
                    }
                }
            }
        }
    }
}
