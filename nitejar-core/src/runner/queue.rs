//! The run queue: accepted work items wait here for the runner.
//!
//! Runs of one session (one conversation) happen one after the other, in arrival order, so an agent
//! never answers two messages of a chat at once; runs of different sessions go in parallel up to a
//! limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, Notify, Semaphore};

use super::{RunRequest, Runner};
use crate::ingress::WorkSink;

/// Hands work items to the runner on Tokio tasks.
pub struct RunQueue {
    runner: Arc<Runner>,
    slots: Arc<Semaphore>,
    sessions: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
    handle: tokio::runtime::Handle,
    /// Runs submitted and not finished (waiting or running); `drain` waits for zero.
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl RunQueue {
    /// A queue running at most `parallel` runs at once, on the current Tokio runtime.
    pub fn new(runner: Arc<Runner>, parallel: usize) -> Arc<Self> {
        Arc::new(RunQueue {
            runner,
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            handle: tokio::runtime::Handle::current(),
            pending: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
        })
    }

    /// Waits until every run submitted so far has finished.
    pub async fn drain(&self) {
        loop {
            // Register interest before checking, so a run finishing in between still wakes us.
            let notified = self.idle.notified();
            if self.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Runs submitted and not finished yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn session_lock(&self, key: &str) -> Arc<AsyncMutex<()>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Forget sessions nobody is waiting on, so the map does not grow with every chat ever seen.
        sessions.retain(|_, lock| Arc::strong_count(lock) > 1);
        sessions
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(AsyncMutex::new(())))
            .clone()
    }
}

impl WorkSink for RunQueue {
    fn submit(&self, request: RunRequest) {
        let runner = self.runner.clone();
        let slots = self.slots.clone();
        let session = self.session_lock(&request.work_item.session_key);
        let (pending, idle) = (self.pending.clone(), self.idle.clone());
        pending.fetch_add(1, Ordering::AcqRel);
        self.handle.spawn(async move {
            // Counts the run finished however the task ends (even by a panic).
            let _done = Done(pending, idle);
            // Take the session turn first so arrival order is kept within a session.
            let _turn = session.lock().await;
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            let id = request.work_item.id.clone();
            match runner.run(&request).await {
                Ok(reports) => {
                    for r in reports {
                        tracing::info!(work_item_id = %id, job_id = %r.job_id, status = r.status.as_str(), "run finished");
                    }
                }
                Err(e) => tracing::error!(work_item_id = %id, "run could not start: {e}"),
            }
        });
    }
}

struct Done(Arc<AtomicUsize>, Arc<Notify>);

impl Drop for Done {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.1.notify_waiters();
        }
    }
}
