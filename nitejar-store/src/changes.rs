//! One change feed: how a server learns that something it keeps in memory changed in the database,
//! whoever changed it (this server, the CLI, another server on the same Postgres).
//!
//! Every write to plugins, trust settings, integration rows, agents or skills moves that topic's
//! counter in the same transaction (by trigger; see [`crate::store::Topic`]). The feed holds the
//! counters as last read and publishes every move:
//!
//! - it reads them again when the store signals a commit ([`Store::watch_changes`]: a Postgres
//!   notification; on SQLite, `PRAGMA data_version` moving), when asked to ([`ChangeFeed::sync`],
//!   which a writer in this process calls so that its own next read sees its write), and, as a safety
//!   net only, every [`SAFETY_NET`];
//! - caches ([`RevCache`]) keep what they read tagged with the counter it was read under and serve it
//!   only while the counter has not moved: nothing is served by age;
//! - the reconciler (`nitejar_core::lifecycle::follow`) runs when the plugins' or trust's counter moves;
//! - a run queued by any server wakes the run queues listening ([`ChangeFeed::runs_queued`]).
//!
//! Without a feed (an engine assembled by hand, a test), the services that would cache read the
//! database every time instead: never stale, only slower.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::store::{Backend, ChangeSignal, Revisions, Store, StoreError, Topic};

/// How often the counters are read even when no signal came (a lost notification, a watcher that
/// could not connect).
pub const SAFETY_NET: Duration = Duration::from_secs(15);

/// The change counters of one database, as this process last read them.
pub struct ChangeFeed {
    store: Arc<dyn Store>,
    tx: watch::Sender<Revisions>,
    /// One read of the counters at a time; a caller that waited for another's read reads again.
    reading: tokio::sync::Mutex<()>,
    /// Signalled by the watcher: the counters may have moved.
    signalled: Arc<Notify>,
    /// Woken when a run was queued by any server (Postgres).
    runs: Arc<Notify>,
    /// Whether the store's watcher listens now (see [`ChangeFeed::status`]).
    watching: Arc<std::sync::atomic::AtomicBool>,
    /// Why the last read of the counters failed, if it did.
    last_error: Mutex<Option<String>>,
    /// The last read worked (what `is_exact` reads on every cache lookup, without a lock).
    read_ok: std::sync::atomic::AtomicBool,
    /// `start` was called and `stop` was not.
    started: std::sync::atomic::AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("revisions", &*self.tx.borrow())
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// Reads the counters of `store` once. Nothing follows them until [`ChangeFeed::start`].
    pub async fn open(store: Arc<dyn Store>) -> Result<Arc<ChangeFeed>, StoreError> {
        let first = store.change_revisions().await?;
        Ok(Arc::new(ChangeFeed {
            store,
            tx: watch::Sender::new(first),
            reading: tokio::sync::Mutex::new(()),
            signalled: Arc::new(Notify::new()),
            runs: Arc::new(Notify::new()),
            watching: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            last_error: Mutex::new(None),
            read_ok: std::sync::atomic::AtomicBool::new(true),
            started: std::sync::atomic::AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// Follows the database from now on, on the current Tokio runtime: starts the store's watcher and
    /// the task that reads the counters on each of its signals (and every `safety_net` without one).
    /// Calling it again does nothing.
    pub fn start(self: &Arc<Self>, safety_net: Duration) {
        let mut tasks = self.lock_tasks();
        if !tasks.is_empty() {
            return;
        }
        self.started
            .store(true, std::sync::atomic::Ordering::Release);
        let (signalled, runs) = (self.signalled.clone(), self.runs.clone());
        let watching = self.watching.clone();
        let store = self.store.clone();
        tasks.push(tokio::spawn(async move {
            let callback: crate::store::ChangeCallback = Arc::new(move |signal| match signal {
                ChangeSignal::RunQueued => runs.notify_waiters(),
                ChangeSignal::Counters => signalled.notify_one(),
                ChangeSignal::Resumed => {
                    watching.store(true, std::sync::atomic::Ordering::Release);
                    // Whatever was notified while nobody listened: read the counters, and let the
                    // queues look for runs.
                    signalled.notify_one();
                    runs.notify_waiters();
                }
                ChangeSignal::Lost => watching.store(false, std::sync::atomic::Ordering::Release),
            });
            if let Err(e) = store.watch_changes(callback).await {
                tracing::error!("change feed: watching stopped: {e}");
            }
        }));
        let feed = Arc::downgrade(self);
        let signalled = self.signalled.clone();
        tasks.push(tokio::spawn(async move {
            let mut last_error = String::new();
            loop {
                tokio::select! {
                    () = signalled.notified() => {}
                    () = tokio::time::sleep(safety_net) => {}
                }
                let Some(feed) = feed.upgrade() else { return };
                match feed.sync().await {
                    Ok(_) => last_error.clear(),
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_error {
                            tracing::warn!("change feed: could not read the counters: {text}");
                            last_error = text;
                        }
                    }
                }
            }
        }));
    }

    /// Stops following the database (the counters stay as last read).
    pub fn stop(&self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
        self.watching
            .store(false, std::sync::atomic::Ordering::Release);
        self.started
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// How the feed learns of changes now, for operators (`/readyz`).
    pub fn status(&self) -> FeedStatus {
        FeedStatus {
            started: !self.lock_tasks().is_empty(),
            watching: self.watching.load(std::sync::atomic::Ordering::Acquire),
            how: match self.store.backend() {
                Backend::Postgres => "postgres notifications (LISTEN nitejar_changes)",
                Backend::Sqlite => "sqlite data_version, asked every 50 ms",
            },
            safety_net: SAFETY_NET,
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn lock_tasks(&self) -> MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        // Only whole handles are pushed or drained under this lock.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters as last read.
    pub fn current(&self) -> Revisions {
        *self.tx.borrow()
    }

    /// The counter of `topic` as last read.
    pub fn revision(&self, topic: Topic) -> i64 {
        self.tx.borrow().get(topic)
    }

    /// Whether the counters as last read can be trusted to move with every change: the last read
    /// worked and, once started, the watcher listens. While it does not (a lost connection being
    /// taken up again, the counters' row gone), caches read through instead of serving.
    pub fn is_exact(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        self.read_ok.load(Acquire) && (!self.started.load(Acquire) || self.watching.load(Acquire))
    }

    /// The counter of `topic` to cache a value under, or `None` when nothing should be cached now
    /// (see [`ChangeFeed::is_exact`]).
    pub fn exact_revision(&self, topic: Topic) -> Option<i64> {
        self.is_exact().then(|| self.revision(topic))
    }

    /// Every new reading of the counters that moved one (see [`watch::Receiver::changed`]).
    pub fn subscribe(&self) -> watch::Receiver<Revisions> {
        self.tx.subscribe()
    }

    /// Woken (all waiters) when a run was queued by any server, or when watching resumed.
    pub fn runs_queued(&self) -> Arc<Notify> {
        self.runs.clone()
    }

    /// Reads the counters now and publishes them if one moved. A writer in this process calls it
    /// after its write, so that what it does next in this process sees the write.
    pub async fn sync(&self) -> Result<Revisions, StoreError> {
        let _one = self.reading.lock().await;
        let read = self.store.change_revisions().await;
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            read.as_ref().err().map(ToString::to_string);
        self.read_ok
            .store(read.is_ok(), std::sync::atomic::Ordering::Release);
        let now = read?;
        // Reads are one at a time, so the last read is the newest. A counter that went back (a
        // database restored from a backup) is published too: what was cached under it is stale.
        self.tx.send_if_modified(|held| {
            let moved = *held != now;
            *held = now;
            moved
        });
        Ok(self.current())
    }

    /// Waits until the counter of `topic` is past `beyond`, for at most `timeout`; answers whether it
    /// is. (Tests wait on this rather than on a sleep.)
    pub async fn wait_past(&self, topic: Topic, beyond: i64, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| r.get(topic) > beyond))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a feed learns of changes (see [`ChangeFeed::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedStatus {
    /// Following the database at all (a CLI's engine does not).
    pub started: bool,
    /// The store's watcher listens now: changes are seen within moments. When it does not (a lost
    /// connection, being taken up again), only the safety net sees them.
    pub watching: bool,
    /// What the watcher listens to.
    pub how: &'static str,
    /// How often the counters are read regardless.
    pub safety_net: Duration,
    /// Why the last read of the counters failed, if it did.
    pub last_error: Option<String>,
}

/// Values read from the store, each tagged with the counter of one topic it was read under, and
/// served only while that counter has not moved. Bounded: past `max` keys it starts afresh.
pub struct RevCache<V> {
    feed: Option<Arc<ChangeFeed>>,
    topic: Topic,
    max: usize,
    map: Mutex<(i64, HashMap<String, V>)>,
}

impl<V: Clone> RevCache<V> {
    /// A cache of `topic`'s values following `feed`; without a feed it keeps nothing.
    pub fn new(feed: Option<Arc<ChangeFeed>>, topic: Topic, max: usize) -> Self {
        RevCache {
            feed,
            topic,
            max,
            map: Mutex::new((i64::MIN, HashMap::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (i64, HashMap<String, V>)> {
        // Only whole entries are stored under this lock.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counter to read a value under: take it *before* reading, so that a write racing the read
    /// moves the counter past the tag. `None` without a feed, or while the feed cannot tell what
    /// changed (nothing is kept or served then).
    pub fn tag(&self) -> Option<i64> {
        self.feed.as_ref()?.exact_revision(self.topic)
    }

    /// The value of `key`, if it was read under the counter as it stands.
    pub fn get(&self, key: &str) -> Option<V> {
        let now = self.tag()?;
        let map = self.lock();
        if map.0 != now {
            return None;
        }
        map.1.get(key).cloned()
    }

    /// Keeps `value`, read under `tag` (from [`RevCache::tag`]). Values kept under another counter
    /// are dropped: [`RevCache::get`] serves only those kept under the counter as it stands.
    pub fn put(&self, key: &str, tag: Option<i64>, value: V) {
        let Some(tag) = tag else { return };
        let mut map = self.lock();
        if tag != map.0 || map.1.len() >= self.max {
            map.1.clear();
            map.0 = tag;
        }
        map.1.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_tell_which_topics_moved() {
        let a = Revisions::default().with(Topic::Plugins, 3);
        let b = a.with(Topic::Skills, 1).with(Topic::Plugins, 4);
        assert_eq!(b.moved_since(&a), vec![Topic::Plugins, Topic::Skills]);
        assert!(a.moved_since(&a).is_empty());
    }

    #[tokio::test]
    async fn a_cache_serves_only_under_the_counter_it_read_at() {
        use crate::crypto::{Cipher, Key};
        use crate::store::{NewAgent, NewIntegration};
        let cipher = Cipher::new(&Key::generate().unwrap());
        let store = crate::store::open("sqlite::memory:", cipher).await.unwrap();
        let feed = ChangeFeed::open(store.clone()).await.unwrap();
        let cache = RevCache::new(Some(feed.clone()), Topic::Agents, 2);
        let tag = cache.tag();
        cache.put("a", tag, 1);
        assert_eq!(cache.get("a"), Some(1));

        store
            .create_agent(NewAgent {
                name: "Support".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(cache.get("a"), Some(1), "until the feed reads the counters");
        feed.sync().await.unwrap();
        assert_eq!(cache.get("a"), None, "the agents' counter moved");
        cache.put("b", tag, 2);
        assert_eq!(cache.get("b"), None, "read before the move: never served");

        let tag = cache.tag();
        cache.put("c", tag, 3);
        store
            .create_integration(NewIntegration::new("echo", "x", Default::default()), &[])
            .await
            .unwrap();
        feed.sync().await.unwrap();
        assert_eq!(cache.get("c"), Some(3), "another topic's move");

        cache.put("d", tag, 4);
        cache.put("e", tag, 5);
        assert!(cache.lock().1.len() <= 2, "bounded");
        assert_eq!(cache.get("e"), Some(5));

        let uncached = RevCache::new(None, Topic::Agents, 2);
        uncached.put("a", uncached.tag(), 1);
        assert_eq!(uncached.get("a"), None, "without a feed nothing is kept");
    }
}
