//! The run queue of this process: claims runs from the database and runs them.
//!
//! Accepted work items wait in the `runs` table (written in the transaction that accepted them, see
//! [`WorkStore::accept_work_items`](nitejar_store::store::WorkStore::accept_work_items)); nothing waits only in memory. [`RunQueue`] claims as many as it has
//! free slots, each with a lease it renews while the run goes on, and removes a run in the
//! transaction that finishes its last job. So:
//!
//! - a process killed mid-run loses nothing: the next one to claim the run (this server after a
//!   restart, or another server on the same Postgres database once the lease has expired) closes the
//!   job left `RUNNING` as `ABANDONED` — with a receipt — and runs the work item again for the agents
//!   that have not answered it (delivery is at least once; the idempotency key handed to
//!   `post_response` is the same on every attempt);
//! - runs of one session are answered one at a time, in arrival order, whoever claims them;
//! - a run that cannot start (its plugin disabled, the database failing) goes back to the queue
//!   with a growing delay, and is given up — with a receipt — after [`RunQueueConfig::max_attempts`];
//! - a shutdown stops claiming, lets runs in progress finish until its deadline and leaves the rest
//!   in the queue for the next start (or another server).
//!
//! On SQLite one server owns the database (the server takes a lock on its data directory), so at
//! start it takes back every lease at once; on Postgres it takes back the leases of its own owner id
//! (stable across restarts of one data directory) and waits for other servers' leases to expire.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nitejar_sdk::IntegrationInstance;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{JobStatus, RunRequest, Runner};
use nitejar_runtime::runtime::Runtime;
use nitejar_store::changes::RevCache;
use nitejar_store::receipts::{now_ms, Receipt, ReceiptKind, ReceiptStatus};
use nitejar_store::store::Topic;
use nitejar_store::store::{Backend, ClaimedRun, IntegrationRow, JobUpdate, RunClaim, Store};

/// How the queue claims and retries.
#[derive(Clone, Debug)]
pub struct RunQueueConfig {
    /// Runs in parallel at most.
    pub concurrency: usize,
    /// How long a claim holds a run without renewal; a run whose server stops renewing (it died) is
    /// claimed again after this. Renewed every third of it.
    pub lease: Duration,
    /// How often the queue is read when nothing wakes it (runs retrying later, expired leases).
    pub poll: Duration,
    /// Claims of one run before it is given up.
    pub max_attempts: i64,
    /// The first delay before a run that could not start is tried again; doubles, up to
    /// [`RunQueueConfig::max_backoff`].
    pub backoff: Duration,
    /// The longest delay between two tries of one run.
    pub max_backoff: Duration,
}

impl Default for RunQueueConfig {
    fn default() -> Self {
        RunQueueConfig {
            concurrency: 4,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            max_attempts: 10,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What a shutdown left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueShutdown {
    /// Runs in progress when the shutdown began.
    pub in_progress: usize,
    /// Runs still in progress at the deadline: released, to be run again from the start.
    pub released: usize,
    /// Runs left in the queue for the next start (or another server).
    pub queued: u64,
}

/// How one run ended in this process.
enum Ended {
    /// Finished (its row is gone) or given up.
    Done,
    /// Could not start or could not finish: back to the queue.
    Retry(String),
}

struct Inner {
    runner: Arc<Runner>,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    owner: String,
    config: RunQueueConfig,
    /// Woken when a run is queued, finishes, or the queue stops.
    wake: Arc<Notify>,
    /// Runs in progress here: seq → when it was claimed.
    running: Mutex<HashMap<i64, Instant>>,
    stopping: std::sync::atomic::AtomicBool,
    /// Woken when a run ends (for shutdown).
    ended: Notify,
    /// Integration rows as read, while the integrations' change counter stays (the runner's feed).
    rows: RevCache<IntegrationRow>,
}

/// Claims runs from the database and runs them (see the module docs).
pub struct RunQueue {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl RunQueue {
    /// Starts claiming on the current Tokio runtime, as `owner` (an id that is this server's and no
    /// other's; stable across restarts lets a restarted server take its runs back at once).
    pub async fn start(
        runner: Arc<Runner>,
        store: Arc<dyn Store>,
        owner: impl Into<String>,
        config: RunQueueConfig,
    ) -> Arc<RunQueue> {
        let owner = owner.into();
        // Runs leased by a process that is gone: every one on SQLite (one server per database), this
        // owner's on Postgres (this server before a restart).
        let takeover = match store.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(owner.as_str()),
        };
        match store.release_run_leases(takeover).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                runs = n,
                "runs of a server that stopped without finishing them are queued again"
            ),
            Err(e) => tracing::error!("could not take back the runs of a stopped server: {e}"),
        }
        if let Err(e) = store.repair_run_heads().await {
            tracing::error!("could not check the run queue's order: {e}");
        }
        let rows = RevCache::new(runner.changes().cloned(), Topic::Integrations, 10_000);
        let inner = Arc::new(Inner {
            runtime: runner.runtime.clone(),
            runner,
            store,
            owner,
            config,
            wake: Arc::new(Notify::new()),
            running: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            ended: Notify::new(),
            rows,
        });
        let claim = tokio::spawn(inner.clone().claim_loop());
        let renew = tokio::spawn(inner.clone().renew_loop());
        Arc::new(RunQueue {
            inner,
            tasks: Mutex::new(vec![claim, renew]),
        })
    }

    /// What to notify when a run was queued (the ingress does, after each accepted delivery).
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// Runs in progress in this process.
    pub fn in_progress(&self) -> usize {
        self.inner.running_count()
    }

    /// The lease owner this process claims as.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Stops claiming, waits for the runs in progress until `deadline`, and releases the leases of
    /// those still going (they are claimed again, and run from the start, by whoever comes next).
    /// Nothing queued is dropped.
    pub async fn shutdown(&self, deadline: Duration) -> QueueShutdown {
        let inner = &self.inner;
        inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        inner.wake.notify_one();
        let in_progress = inner.running_count();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let ended = inner.ended.notified();
            if inner.running_count() == 0 {
                break;
            }
            if tokio::time::timeout_at(until, ended).await.is_err() {
                break;
            }
        }
        let released = inner.running_count();
        if released > 0 {
            if let Err(e) = inner.store.release_run_leases(Some(&inner.owner)).await {
                tracing::error!(
                    "could not release the runs still in progress (they are claimed again when \
                     their leases expire): {e}"
                );
            }
        }
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            task.abort();
        }
        let queued = inner.store.count_runs().await.unwrap_or(0);
        QueueShutdown {
            in_progress,
            released,
            queued,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Whole values only are stored under these locks.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn running_count(&self) -> usize {
        lock(&self.running).len()
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn claim_loop(self: Arc<Self>) {
        let mut failures: u32 = 0;
        while !self.stopping() {
            let free = self
                .config
                .concurrency
                .max(1)
                .saturating_sub(self.running_count());
            if free > 0 {
                let now = now_ms();
                let lease_until = now + duration_ms(self.config.lease);
                let claim = RunClaim {
                    owner: &self.owner,
                    limit: free,
                    now,
                    lease_until,
                };
                match self.store.claim_runs(claim).await {
                    Ok(runs) => {
                        failures = 0;
                        for run in runs {
                            self.clone().spawn_run(run);
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures % 30 == 0 {
                            tracing::error!(failures, "could not claim runs: {e}");
                        }
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    async fn renew_loop(self: Arc<Self>) {
        let every = (self.config.lease / 3).max(Duration::from_millis(100));
        let mut repaired = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            let seqs: Vec<i64> = lock(&self.running).keys().copied().collect();
            if !seqs.is_empty() {
                let until = now_ms() + duration_ms(self.config.lease);
                match self.store.renew_run_leases(&self.owner, &seqs, until).await {
                    Ok(n) if (n as usize) < seqs.len() => tracing::warn!(
                        held = n,
                        running = seqs.len(),
                        "some runs in progress here were claimed by another server (their leases \
                         expired); they may be answered twice"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!("could not renew run leases: {e}"),
                }
            }
            // Two servers adding and finishing runs of one session at once on Postgres can leave
            // a session's oldest run unmarked; look now and then.
            if self.store.backend() == Backend::Postgres
                && repaired.elapsed() >= Duration::from_secs(60)
            {
                repaired = Instant::now();
                match self.store.repair_run_heads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "marked runs claimable that waited unmarked"),
                    Err(e) => tracing::warn!("could not check the run queue's order: {e}"),
                }
            }
        }
    }

    fn spawn_run(self: Arc<Self>, run: ClaimedRun) {
        lock(&self.running).insert(run.seq, Instant::now());
        tokio::spawn(async move {
            let seq = run.seq;
            let attempts = run.attempts;
            let work_item_id = run.work_item.id.clone();
            // A task of its own, so that a panic in the run ends that task, not the bookkeeping.
            let execution = tokio::spawn({
                let this = self.clone();
                async move { this.execute(run).await }
            });
            let retry = match execution.await {
                Ok(Ended::Done) => None,
                Ok(Ended::Retry(reason)) => Some(reason),
                Err(e) if e.is_panic() => Some(format!(
                    "the run panicked: {}",
                    nitejar_runtime::host::panic_message(e.into_panic())
                )),
                Err(e) => Some(format!("the run was cancelled: {e}")),
            };
            if let Some(reason) = retry {
                self.retry_or_give_up(seq, attempts, &work_item_id, &reason)
                    .await;
            }
            lock(&self.running).remove(&seq);
            self.ended.notify_waiters();
            self.wake.notify_one();
        });
    }

    async fn retry_or_give_up(&self, seq: i64, attempts: i64, work_item_id: &str, reason: &str) {
        if attempts >= self.config.max_attempts {
            tracing::error!(
                work_item_id,
                attempts,
                "giving up the run of this work item: {reason}"
            );
            self.run_receipt(
                work_item_id,
                None,
                ReceiptStatus::Error,
                json!({ "reason": "gave_up", "attempts": attempts, "error": reason }),
            )
            .await;
            if let Err(e) = self.store.finish_run(seq, &self.owner).await {
                tracing::error!(work_item_id, "could not remove the given-up run: {e}");
            }
            return;
        }
        let exponent = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        let delay = self
            .config
            .backoff
            .saturating_mul(1 << exponent)
            .min(self.config.max_backoff);
        tracing::warn!(
            work_item_id,
            attempts,
            retry_in_ms = delay.as_millis() as u64,
            "the run goes back to the queue: {reason}"
        );
        let at = now_ms() + duration_ms(delay);
        if let Err(e) = self.store.requeue_run(seq, &self.owner, at, reason).await {
            tracing::error!(
                work_item_id,
                "could not put the run back in the queue (it is claimed again when its lease \
                 expires): {e}"
            );
        }
    }

    /// A receipt about a run, attributed to the plugin of its integration type when one is active.
    async fn run_receipt(
        &self,
        work_item_id: &str,
        kind_of: Option<&str>,
        status: ReceiptStatus,
        detail: Value,
    ) {
        let registry = self.runtime.registry();
        let plugin = kind_of
            .and_then(|k| registry.integration(k))
            .map(|e| e.plugin.clone());
        let (id, version): (Arc<str>, Option<Arc<str>>) = match plugin {
            Some(p) => (p.id.clone(), Some(p.version.clone())),
            None => (
                Arc::from(format!("integration:{}", kind_of.unwrap_or("unknown"))),
                None,
            ),
        };
        drop(registry);
        let mut receipt = Receipt::new(id, version, ReceiptKind::Run, status).with_detail(detail);
        receipt.work_item_id = Some(Arc::from(work_item_id));
        self.runtime.sink().submit(vec![receipt]).await;
    }

    async fn integration_row(&self, id: &str) -> Result<Option<IntegrationRow>, String> {
        if let Some(row) = self.rows.get(id) {
            return Ok(Some(row));
        }
        let tag = self.rows.tag();
        let row = self
            .store
            .get_integration(id)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(row) = &row {
            self.rows.put(id, tag, row.clone());
        }
        Ok(row)
    }

    async fn execute(&self, run: ClaimedRun) -> Ended {
        let item = &run.work_item;
        let Some(integration_id) = item.integration_id.clone() else {
            self.give_up_now(
                &run,
                None,
                "the work item has no integration to answer through",
            )
            .await;
            return Ended::Done;
        };
        let row = match self.integration_row(&integration_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                let why = format!("integration `{integration_id}` was deleted");
                self.give_up_now(&run, None, &why).await;
                return Ended::Done;
            }
            Err(e) => return Ended::Retry(format!("could not read integration: {e}")),
        };
        let kind = row.integration_type.clone();
        let owner = nitejar_runtime::builtin::integration_owner(&row);
        let sensitive = {
            let registry = self.runtime.registry();
            let entry = registry.integration(&kind);
            let active = entry.map(|e| e.plugin.id.to_string());
            // Only the row's own plugin answers it (and sees its secrets); it may come back.
            if active.is_none() || active != owner {
                return Ended::Retry(
                    nitejar_runtime::runtime::IntegrationCallError::NotServed {
                        kind: kind.clone(),
                        owner,
                        active,
                    }
                    .to_string(),
                );
            }
            entry
                .map(|e| e.descriptor.sensitive_fields.clone())
                .unwrap_or_default()
        };
        let config = match row.decrypted_config(self.store.cipher(), &sensitive) {
            Ok(c) => c,
            Err(e) => return Ended::Retry(format!("the integration's config cannot be read: {e}")),
        };
        let request = RunRequest {
            work_item: run.work_item.clone(),
            integration: IntegrationInstance::new(row.id.clone(), kind.clone())
                .with_name(row.name.clone())
                .with_config(Value::Object(config)),
            response_context: run
                .response_context
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
            owner,
        };

        // Jobs of earlier attempts: the finished ones are not run again; the ones left RUNNING by a
        // process that stopped are closed first.
        let jobs = match self.store.jobs_of_work_item(&item.id).await {
            Ok(jobs) => jobs,
            Err(e) => return Ended::Retry(format!("could not read the work item's jobs: {e}")),
        };
        let mut answered = HashSet::new();
        for job in jobs {
            if job.status == JobStatus::Running.as_str() {
                let error = "abandoned: the server running it stopped before it finished";
                let update = JobUpdate {
                    status: Some(JobStatus::Abandoned.as_str().into()),
                    error_text: Some(Some(error.into())),
                    completed_at: Some(now_ms()),
                    ..Default::default()
                };
                if let Err(e) = self.store.update_job(&job.id, update).await {
                    return Ended::Retry(format!("could not close abandoned job {}: {e}", job.id));
                }
                tracing::warn!(
                    work_item_id = %item.id,
                    job_id = %job.id,
                    "closed a job its server left running; answering the work item again"
                );
                let mut detail = json!({ "reason": "abandoned", "attempt": run.attempts });
                if let Some(d) = detail.as_object_mut() {
                    d.insert("job_id".into(), json!(job.id));
                }
                self.run_receipt(&item.id, Some(&kind), ReceiptStatus::Error, detail)
                    .await;
            } else if job.status != JobStatus::Abandoned.as_str() {
                answered.insert(job.agent_id);
            }
        }
        match self
            .runner
            .run_claimed(&request, &answered, (run.seq, &self.owner))
            .await
        {
            Ok(_) => Ended::Done,
            Err(e) => Ended::Retry(e.to_string()),
        }
    }

    /// Gives a run up at once (nothing will make it possible), with a receipt.
    async fn give_up_now(&self, run: &ClaimedRun, kind: Option<&str>, why: &str) {
        tracing::error!(work_item_id = %run.work_item.id, "not answering the work item: {why}");
        self.run_receipt(
            &run.work_item.id,
            kind,
            ReceiptStatus::Error,
            json!({ "reason": "gave_up", "attempts": run.attempts, "error": why }),
        )
        .await;
        if let Err(e) = self.store.finish_run(run.seq, &self.owner).await {
            tracing::error!(work_item_id = %run.work_item.id, "could not remove the run: {e}");
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
