//! [`DbReceiptSink`]: receipts into `plugin_events` (and `spans`), batched, never dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Store, StoredReceipt};
use crate::receipts::{Receipt, ReceiptSink, SubmitFuture};

/// How a [`DbReceiptSink`] queues, batches and retries.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Submitted batches the queue holds before `submit` waits.
    pub capacity: usize,
    /// Receipts written per transaction at most.
    pub max_batch: usize,
    /// The first retry delay after a failed write.
    pub retry_initial: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// How long [`DbReceiptSink::shutdown`] keeps retrying before it logs what is left as lost.
    pub shutdown_deadline: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            capacity: 1024,
            max_batch: 4096,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// What a shutdown left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkShutdown {
    /// Receipts stored over the sink's life.
    pub written: u64,
    /// Receipts that could not be stored before the shutdown deadline (each was logged in full).
    pub lost: u64,
}

enum Command {
    Receipts(Vec<Receipt>),
    Flush(oneshot::Sender<()>),
    Shutdown,
}

/// What the sink, its writer and direct writers share.
#[derive(Default)]
struct Shared {
    written: AtomicU64,
    lost: AtomicU64,
    /// Set by `shutdown`: from then on, retrying stops at this instant.
    deadline: std::sync::Mutex<Option<Instant>>,
    /// Wakes a writer sleeping between retries when `deadline` is set.
    stopping: Notify,
}

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        // The value is a plain `Option<Instant>`: a panic elsewhere cannot leave it half-written.
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop_by(&self, deadline: Instant) {
        let mut slot = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(deadline);
        }
        drop(slot);
        self.stopping.notify_waiters();
    }
}

/// A [`ReceiptSink`] that stores receipts in the database, batched, never dropped.
///
/// Submitters put batches on a bounded queue; one writer task takes everything queued, gives each
/// receipt a UUIDv7 id, and writes it all in one transaction of multi-row inserts. Under load the queue
/// fills while a transaction runs, so batches grow by themselves; when the queue is full, `submit` waits
/// (back-pressure) instead of dropping.
///
/// When the database refuses a write, the writer retries the same batch (same ids, so a write that did
/// commit before its error was reported is not stored twice) with exponential backoff, logging the
/// failure, for as long as the sink runs: nothing is discarded because the database was briefly away.
/// Meanwhile the queue fills and submitters wait. Only [`DbReceiptSink::shutdown`] bounds the retrying
/// (by [`SinkOptions::shutdown_deadline`]): a process must be able to stop. Receipts still unwritten then
/// are logged one by one, in full, at error level (`receipt_lost`), and counted in the returned
/// [`SinkShutdown`]: lost from the database, never silently.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn nitejar_core::store::Store>) {
/// use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};
/// use nitejar_core::store::{DbReceiptSink, SinkOptions};
///
/// let sink = DbReceiptSink::start(store, SinkOptions::default());
/// sink.submit(vec![Receipt::new("builtin.telegram", None, ReceiptKind::Load, ReceiptStatus::Ok)]).await;
/// sink.flush().await; // stored
/// let summary = sink.shutdown().await;
/// assert_eq!(summary.lost, 0);
/// # }
/// ```
pub struct DbReceiptSink {
    store: Arc<dyn Store>,
    queue: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    options: SinkOptions,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl DbReceiptSink {
    /// Starts the writer task on the current Tokio runtime.
    pub fn start(store: Arc<dyn Store>, options: SinkOptions) -> Arc<DbReceiptSink> {
        let (queue, rx) = mpsc::channel(options.capacity.max(1));
        let shared = Arc::new(Shared::default());
        let writer = tokio::spawn(
            Writer {
                store: store.clone(),
                rx,
                shared: shared.clone(),
                options: options.clone(),
            }
            .run(),
        );
        Arc::new(DbReceiptSink {
            store,
            queue,
            shared,
            options,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Receipts stored so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Writes everything queued, stops the writer and reports. Receipts submitted afterwards are
    /// written directly by the submitting task. Calling it again returns the same totals.
    pub async fn shutdown(&self) -> SinkShutdown {
        // Bound the retrying first: the writer may be retrying a batch right now and would otherwise
        // never get to the shutdown command.
        self.shared
            .stop_by(Instant::now() + self.options.shutdown_deadline);
        let writer = self.writer.lock().await.take();
        if let Some(writer) = writer {
            // Fails only when the writer is gone already; then there is nothing to wait for but it.
            let _ = self.queue.send(Command::Shutdown).await;
            if let Err(e) = writer.await {
                tracing::error!(error = %e, "the receipt writer task ended abnormally");
            }
        }
        SinkShutdown {
            written: self.shared.written.load(Ordering::Relaxed),
            lost: self.shared.lost.load(Ordering::Relaxed),
        }
    }

    /// After shutdown the queue is closed: the submitter writes its own batch, retrying until the
    /// shutdown deadline.
    async fn write_direct(&self, batch: Vec<Receipt>) {
        let stored: Vec<StoredReceipt> = batch.into_iter().map(StoredReceipt::new).collect();
        let deadline = Instant::now() + self.options.shutdown_deadline;
        write_with_retry(
            &*self.store,
            &stored,
            &self.options,
            Some(deadline),
            &self.shared,
        )
        .await;
    }
}

impl Drop for DbReceiptSink {
    fn drop(&mut self) {
        // The writer still drains the queue once the last sender is gone, but only while the runtime
        // runs; a runtime that stops first takes the queued receipts with it.
        if self.writer.get_mut().is_some() {
            tracing::warn!(
                "receipt sink dropped without shutdown(); queued receipts are written only if the \
                 runtime keeps running"
            );
        }
    }
}

impl ReceiptSink for DbReceiptSink {
    fn submit(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        Box::pin(async move {
            if batch.is_empty() {
                return;
            }
            if let Err(mpsc::error::SendError(Command::Receipts(batch))) =
                self.queue.send(Command::Receipts(batch)).await
            {
                self.write_direct(batch).await;
            }
        })
    }

    fn flush(&self) -> SubmitFuture<'_> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if self.queue.send(Command::Flush(done)).await.is_ok() {
                // An error means the writer ended, after writing what it had.
                let _ = wait.await;
            }
        })
    }
}

struct Writer {
    store: Arc<dyn Store>,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    options: SinkOptions,
}

impl Writer {
    async fn run(mut self) {
        let mut pending: Vec<StoredReceipt> = Vec::new();
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            // Wait for work, then take whatever else is queued, up to one transaction's worth. The queue
            // is first in, first out: a flush taken here follows every receipt submitted before it.
            let Some(first) = self.rx.recv().await else {
                break; // every sender is gone and the queue is empty
            };
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Receipts(batch) => {
                        pending.extend(batch.into_iter().map(StoredReceipt::new));
                    }
                    Command::Flush(done) => waiters.push(done),
                    Command::Shutdown => {
                        // Refuse new work; what is queued already is still received and written.
                        self.rx.close();
                    }
                }
                if pending.len() < self.options.max_batch {
                    next = self.rx.try_recv().ok();
                }
            }
            if !pending.is_empty() {
                write_with_retry(&*self.store, &pending, &self.options, None, &self.shared).await;
                pending.clear();
            }
            for done in waiters.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

/// Writes `batch`, retrying with backoff until it is stored or the deadline (`deadline`, else the one
/// set by a shutdown) passes; past it the receipts are logged in full and counted as lost.
async fn write_with_retry(
    store: &dyn Store,
    batch: &[StoredReceipt],
    options: &SinkOptions,
    deadline: Option<Instant>,
    shared: &Shared,
) {
    let mut delay = options.retry_initial;
    let mut failures: u32 = 0;
    loop {
        match store.insert_receipts(batch).await {
            Ok(()) => {
                shared
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                if failures > 0 {
                    tracing::warn!(
                        receipts = batch.len(),
                        failures,
                        "receipts stored after failed attempts"
                    );
                }
                return;
            }
            Err(error) => {
                failures += 1;
                // The first failure and every tenth after it: enough to see, not enough to flood.
                if failures == 1 || failures % 10 == 0 {
                    tracing::error!(
                        %error,
                        receipts = batch.len(),
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "could not store receipts; retrying (none is dropped, submitters wait while \
                         the queue is full)"
                    );
                }
                // A direct write after shutdown has a deadline of its own; the writer follows the one
                // a shutdown sets.
                let deadline = deadline.or_else(|| shared.deadline());
                if deadline.is_some_and(|d| Instant::now() + delay > d) {
                    for stored in batch {
                        tracing::error!(
                            receipt_lost = %serde_json::to_string(&stored.receipt).unwrap_or_default(),
                            id = %stored.id,
                            "receipt could not be stored before shutdown"
                        );
                    }
                    shared.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.stopping.notified() => {}
                }
                delay = (delay * 2).min(options.retry_max);
            }
        }
    }
}
