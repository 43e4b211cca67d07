//! [`DbReceiptSink`]: receipts into `plugin_events` (and `spans`), batched, never dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Store, StoredReceipt};
use crate::receipts::{Receipt, ReceiptSink, SubmitFuture};

/// How a [`DbReceiptSink`] queues, batches and retries.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Submitted batches the queue holds before `submit` waits for room.
    pub capacity: usize,
    /// How long `submit` waits for room in a full queue before it puts its batch in the overflow.
    /// This is the most a database fault adds to a request that submits receipts.
    pub max_wait: Duration,
    /// Receipts the overflow holds at most. Past it a receipt is logged in full (`receipt_lost`) and
    /// counted as lost: memory is finite, and a fault that outlasts this many receipts must not take
    /// the process with it.
    pub overflow_max: usize,
    /// Receipts written per transaction at most.
    pub max_batch: usize,
    /// The first retry delay after a failed write.
    pub retry_initial: Duration,
    /// The longest retry delay: also how late, at worst, the writer notices that the database is back.
    pub retry_max: Duration,
    /// How long [`DbReceiptSink::shutdown`] keeps retrying before it logs what is left as lost.
    pub shutdown_deadline: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            capacity: 1024,
            max_wait: Duration::from_secs(1),
            overflow_max: 200_000,
            max_batch: 4096,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// What a shutdown left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkShutdown {
    /// Receipts stored over the sink's life.
    pub written: u64,
    /// Receipts that could not be stored: cut off by the shutdown deadline, or past
    /// [`SinkOptions::overflow_max`] (each was logged in full).
    pub lost: u64,
}

/// What a [`DbReceiptSink`] has not stored yet, and whether the database is refusing writes: what an
/// operator, a metrics exporter or a readiness probe needs to tell a slow database from a broken one.
///
/// ```no_run
/// # fn demo(sink: &nitejar_store::store::DbReceiptSink) -> bool {
/// use std::time::Duration;
///
/// let backlog = sink.backlog();
/// // Not ready once writes have failed for longer than the retry cadence can explain.
/// let ready = backlog
///     .failing_since
///     .is_none_or(|since| since.elapsed() < Duration::from_secs(5));
/// # ready }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkBacklog {
    /// Batches in the queue, approximately: a pending flush counts as one, and so does a submitter
    /// that has reserved room and not yet sent its batch.
    pub queued_batches: usize,
    /// Receipts in the overflow, including those the writer is writing right now.
    pub overflow: usize,
    /// When the first of the current run of failed writes happened; `None` once a write succeeds.
    pub failing_since: Option<std::time::Instant>,
    /// The error of the most recent failed write. Kept after recovery, so that an operator can still
    /// see what happened; `failing_since` says whether it is current.
    pub last_error: Option<String>,
}

enum Command {
    Receipts(Vec<Receipt>),
    Flush(oneshot::Sender<()>),
    Shutdown,
}

/// Receipts that found the queue full for [`SinkOptions::max_wait`], in the order they came.
///
/// Batches stay whole: the writer takes a batch into one transaction or leaves it here.
#[derive(Default)]
struct Overflow {
    batches: VecDeque<Vec<StoredReceipt>>,
    /// Receipts spilled and not yet stored: those in `batches` and those the writer took out.
    len: usize,
    /// Batches ever spilled, and ever taken out by the writer. A flush waits until `taken` reaches the
    /// `spilled` it saw: every batch spilled before it has then been written.
    spilled: u64,
    taken: u64,
    /// Receipts spilled since the overflow was last empty, for one warning when an outage starts and
    /// one line when it is over.
    outage: usize,
    /// Set by the writer as it ends: from then on a spilling submitter writes its batch itself.
    closed: bool,
}

/// Where a spilled batch went.
enum Spilled {
    /// Into the overflow, but for `lost` (what did not fit under `overflow_max`).
    Held {
        lost: Vec<StoredReceipt>,
        first_of_outage: bool,
    },
    /// Nowhere: the writer is gone, so the submitter writes the batch itself.
    Closed(Vec<StoredReceipt>),
}

/// The state of the database as the last writes saw it.
#[derive(Default)]
struct Health {
    failing_since: Option<std::time::Instant>,
    last_error: Option<String>,
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
    overflow: std::sync::Mutex<Overflow>,
    /// Wakes a writer waiting on an empty queue when a batch is spilled. One writer, so `notify_one`:
    /// its stored permit covers a spill that happens just before the writer starts waiting.
    spilled: Notify,
    health: std::sync::Mutex<Health>,
}

// Every mutex here guards plain data updated in a few statements without awaiting or calling out: a
// panic elsewhere cannot leave it half-written, so a poisoned lock is still good to use.
impl Shared {
    fn deadline(&self) -> Option<Instant> {
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

    fn overflow(&self) -> std::sync::MutexGuard<'_, Overflow> {
        self.overflow.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `batch` at the end of the overflow, as much of it as `overflow_max` allows.
    fn spill(&self, mut batch: Vec<StoredReceipt>, overflow_max: usize) -> Spilled {
        let mut overflow = self.overflow();
        if overflow.closed {
            return Spilled::Closed(batch);
        }
        let room = overflow_max.saturating_sub(overflow.len);
        let lost = batch.split_off(batch.len().min(room));
        let first_of_outage = overflow.outage == 0 && !batch.is_empty();
        if !batch.is_empty() {
            overflow.len += batch.len();
            overflow.outage += batch.len();
            overflow.spilled += 1;
            overflow.batches.push_back(batch);
        }
        drop(overflow);
        self.spilled.notify_one();
        Spilled::Held {
            lost,
            first_of_outage,
        }
    }

    /// Moves whole batches from the front of the overflow into `pending` while it holds fewer than
    /// `limit` receipts (one batch at least, whatever its size, when `pending` is empty). Returns how
    /// many receipts it moved.
    fn take_overflow(&self, pending: &mut Vec<StoredReceipt>, limit: usize) -> usize {
        let mut overflow = self.overflow();
        let mut moved = 0;
        while pending.is_empty() || pending.len() < limit {
            let Some(batch) = overflow.batches.pop_front() else {
                break;
            };
            overflow.taken += 1;
            moved += batch.len();
            pending.extend(batch);
        }
        moved
    }

    /// Records that `receipts` taken from the overflow are done with (stored, or lost at shutdown).
    /// Returns how many batches the writer has taken out so far.
    fn overflow_written(&self, receipts: usize) -> u64 {
        let mut overflow = self.overflow();
        overflow.len -= receipts;
        let drained = if overflow.len == 0 && overflow.outage > 0 {
            Some(std::mem::take(&mut overflow.outage))
        } else {
            None
        };
        let taken = overflow.taken;
        drop(overflow);
        if let Some(receipts) = drained {
            // Warn, like the spill it ends: a log filtered to warnings shows both ends of the outage.
            tracing::warn!(receipts, "overflow drained: {receipts} receipts");
        }
        taken
    }

    /// Closes the overflow if it is empty; the writer ends only then, so no spilled receipt is left
    /// behind in it.
    fn close_overflow(&self) -> bool {
        let mut overflow = self.overflow();
        overflow.closed = overflow.batches.is_empty();
        overflow.closed
    }

    fn write_failed(&self, error: String) {
        let mut health = self.health();
        health
            .failing_since
            .get_or_insert_with(std::time::Instant::now);
        health.last_error = Some(error);
    }

    fn write_succeeded(&self) {
        self.health().failing_since = None;
    }

    /// Logs each receipt in full and counts it as lost: lost from the database, never silently.
    fn lose(&self, receipts: &[StoredReceipt], why: &str) {
        for stored in receipts {
            tracing::error!(
                receipt_lost = %serde_json::to_string(&stored.receipt).unwrap_or_default(),
                id = %stored.id,
                "{why}"
            );
        }
        self.lost
            .fetch_add(receipts.len() as u64, Ordering::Relaxed);
    }
}

/// A [`ReceiptSink`] that stores receipts in the database, batched, never dropped.
///
/// Submitters put batches on a bounded queue; one writer task takes everything queued, gives each
/// receipt a UUIDv7 id, and writes it all in one transaction of multi-row inserts. Under load the queue
/// fills while a transaction runs, so batches grow by themselves; when the queue is full, `submit` waits
/// (back-pressure) instead of dropping — but at most [`SinkOptions::max_wait`]. A database that refuses
/// writes must not stall every request that leaves a receipt, so past that wait the batch goes to the
/// sink's **overflow**, in memory, and `submit` returns. The writer drains the overflow alongside the
/// queue: at least half of every transaction goes to the overflow (it holds the older receipts, and it
/// is memory outside the queue's bound), the rest to the queue (so that submitters waiting for room are
/// served every transaction, not once the whole overflow is written). Batches stay whole in both, and
/// [`ReceiptSink::flush`] also waits for what was spilled before it. The overflow is bounded by
/// [`SinkOptions::overflow_max`] receipts; what would exceed it is logged and counted as lost (below).
///
/// When the database refuses a write, the writer retries the same batch (same ids, so a write that did
/// commit before its error was reported is not stored twice) with exponential backoff up to
/// [`SinkOptions::retry_max`] (so a healed database is noticed within about that), logging the
/// failure, for as long as the sink runs: nothing is discarded because the database was briefly away.
/// [`DbReceiptSink::backlog`] tells since when writes fail and how much waits. Only
/// [`DbReceiptSink::shutdown`] bounds the retrying (by [`SinkOptions::shutdown_deadline`]): a process
/// must be able to stop. Receipts still unwritten then, in the queue or the overflow, are logged one by
/// one, in full, at error level (`receipt_lost`), and counted in the returned [`SinkShutdown`]: lost
/// from the database, never silently.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn nitejar_store::store::Store>) {
/// use nitejar_store::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};
/// use nitejar_store::store::{DbReceiptSink, SinkOptions};
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

/// Why a submitter got no room in the queue.
enum NoRoom {
    /// The queue stayed full for `max_wait`.
    Full,
    /// The writer has stopped taking work (shutdown).
    Closed,
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

    /// Receipts lost so far (each was logged in full): past [`SinkOptions::overflow_max`], or cut off
    /// by the shutdown deadline.
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// What is waiting to be written and whether writes are failing; cheap enough for every probe.
    pub fn backlog(&self) -> SinkBacklog {
        let overflow = self.shared.overflow().len;
        let health = self.shared.health();
        SinkBacklog {
            queued_batches: self
                .queue
                .max_capacity()
                .saturating_sub(self.queue.capacity()),
            overflow,
            failing_since: health.failing_since,
            last_error: health.last_error.clone(),
        }
    }

    /// Writes everything queued and everything in the overflow, stops the writer and reports. Receipts
    /// submitted afterwards are written directly by the submitting task. Calling it again returns the
    /// same totals.
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

    /// Room in the queue, waiting at most `max_wait` for it.
    async fn reserve(&self) -> Result<mpsc::Permit<'_, Command>, NoRoom> {
        match self.queue.try_reserve() {
            Ok(permit) => Ok(permit),
            Err(TrySendError::Closed(())) => Err(NoRoom::Closed),
            // Only a full queue pays for a timer.
            Err(TrySendError::Full(())) => {
                match tokio::time::timeout(self.options.max_wait, self.queue.reserve()).await {
                    Ok(Ok(permit)) => Ok(permit),
                    Ok(Err(_closed)) => Err(NoRoom::Closed),
                    Err(_elapsed) => Err(NoRoom::Full),
                }
            }
        }
    }

    /// The queue stayed full: the batch goes to the overflow, for the writer to take when it can.
    async fn spill(&self, batch: Vec<Receipt>) {
        let stored: Vec<StoredReceipt> = batch.into_iter().map(StoredReceipt::new).collect();
        match self.shared.spill(stored, self.options.overflow_max) {
            Spilled::Held {
                lost,
                first_of_outage,
            } => {
                if first_of_outage {
                    let last_error = self.shared.health().last_error.clone();
                    tracing::warn!(
                        max_wait_ms = self.options.max_wait.as_millis() as u64,
                        capacity = self.options.capacity,
                        overflow_max = self.options.overflow_max,
                        last_error = last_error.as_deref().unwrap_or("none"),
                        "the receipt queue stayed full; holding receipts in memory until the \
                         database takes them again"
                    );
                }
                if !lost.is_empty() {
                    self.shared
                        .lose(&lost, "receipt could not be stored: the overflow is full");
                }
            }
            Spilled::Closed(stored) => self.write_direct(&stored).await,
        }
    }

    /// After shutdown the queue is closed: the submitter writes its own batch, retrying until the
    /// shutdown deadline.
    async fn write_direct(&self, stored: &[StoredReceipt]) {
        let deadline = Instant::now() + self.options.shutdown_deadline;
        write_with_retry(
            &*self.store,
            stored,
            &self.options,
            Some(deadline),
            &self.shared,
        )
        .await;
    }
}

impl Drop for DbReceiptSink {
    fn drop(&mut self) {
        // The writer still drains the queue and the overflow once the last sender is gone, but only
        // while the runtime runs; a runtime that stops first takes the unwritten receipts with it.
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
            match self.reserve().await {
                Ok(permit) => permit.send(Command::Receipts(batch)),
                Err(NoRoom::Full) => self.spill(batch).await,
                Err(NoRoom::Closed) => {
                    let stored: Vec<StoredReceipt> =
                        batch.into_iter().map(StoredReceipt::new).collect();
                    self.write_direct(&stored).await;
                }
            }
        })
    }

    fn flush(&self) -> SubmitFuture<'_> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if self.queue.send(Command::Flush(done)).await.is_ok() {
                // An error means the writer ended, after writing what it had (overflow included).
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

/// A flush to answer once the writer has taken `spilled` batches out of the overflow: then everything
/// spilled before the flush was received has been written too.
struct Waiter {
    spilled: u64,
    done: oneshot::Sender<()>,
}

impl Writer {
    async fn run(mut self) {
        let max_batch = self.options.max_batch;
        let mut pending: Vec<StoredReceipt> = Vec::new();
        let mut waiters: Vec<Waiter> = Vec::new();
        let mut open = true;
        loop {
            // Half a transaction for the overflow first, so that it drains even while the queue keeps
            // filling; the queue then, so that waiting submitters get room every transaction.
            let mut from_overflow = self.shared.take_overflow(&mut pending, max_batch / 2);
            if pending.is_empty() {
                if !open {
                    if self.shared.close_overflow() {
                        break; // the queue is closed and empty, and so is the overflow
                    }
                    continue;
                }
                // Nothing to write: wait for a command, or for a spill (the queue may stay empty
                // while submitters time out on a queue that was full a moment ago).
                tokio::select! {
                    command = self.rx.recv() => match command {
                        Some(command) => self.take(command, &mut pending, &mut waiters),
                        None => open = false, // every sender is gone and the queue is empty
                    },
                    () = self.shared.spilled.notified() => continue,
                }
            }
            // Whatever else is queued, up to one transaction's worth. The queue is first in, first out:
            // a flush taken here follows every receipt submitted before it.
            while open && pending.len() < max_batch {
                match self.rx.try_recv() {
                    Ok(command) => self.take(command, &mut pending, &mut waiters),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            from_overflow += self.shared.take_overflow(&mut pending, max_batch);
            if !pending.is_empty() {
                write_with_retry(&*self.store, &pending, &self.options, None, &self.shared).await;
                pending.clear();
            }
            let taken = self.shared.overflow_written(from_overflow);
            let (answered, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut waiters)
                .into_iter()
                .partition(|waiter| waiter.spilled <= taken);
            waiters = waiting;
            for waiter in answered {
                let _ = waiter.done.send(());
            }
        }
    }

    fn take(
        &mut self,
        command: Command,
        pending: &mut Vec<StoredReceipt>,
        waiters: &mut Vec<Waiter>,
    ) {
        match command {
            Command::Receipts(batch) => {
                pending.extend(batch.into_iter().map(StoredReceipt::new));
            }
            Command::Flush(done) => waiters.push(Waiter {
                spilled: self.shared.overflow().spilled,
                done,
            }),
            Command::Shutdown => {
                // Refuse new work; what is queued already is still received and written, and the
                // overflow after it.
                self.rx.close();
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
                shared.write_succeeded();
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
                shared.write_failed(error.to_string());
                // The first failure and every tenth after it: enough to see, not enough to flood.
                if failures == 1 || failures % 10 == 0 {
                    tracing::error!(
                        %error,
                        receipts = batch.len(),
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "could not store receipts; retrying (none is dropped: submitters wait up to \
                         max_wait for room in the queue, then the sink holds their receipts in memory)"
                    );
                }
                // A direct write after shutdown has a deadline of its own; the writer follows the one
                // a shutdown sets.
                let deadline = deadline.or_else(|| shared.deadline());
                if deadline.is_some_and(|d| Instant::now() + delay > d) {
                    shared.lose(batch, "receipt could not be stored before shutdown");
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
