//! The run queue: accepted work items wait here for the runner.
//!
//! Runs of one session (one conversation) happen one after the other, in arrival order, so an agent
//! never answers two messages of a chat at once; runs of different sessions go in parallel up to a
//! limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, Semaphore};
use tokio::task::JoinHandle;

use super::{RunRequest, Runner};
use crate::ingress::WorkSink;

/// Hands work items to the runner on Tokio tasks.
pub struct RunQueue {
    runner: Arc<Runner>,
    slots: Arc<Semaphore>,
    sessions: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
    handle: tokio::runtime::Handle,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl RunQueue {
    /// A queue running at most `parallel` runs at once, on the current Tokio runtime.
    pub fn new(runner: Arc<Runner>, parallel: usize) -> Arc<Self> {
        Arc::new(RunQueue {
            runner,
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            handle: tokio::runtime::Handle::current(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Waits until every run submitted so far has finished.
    pub async fn drain(&self) {
        loop {
            let tasks: Vec<JoinHandle<()>> = {
                let mut guard = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut *guard)
            };
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
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
        let task = self.handle.spawn(async move {
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
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}
