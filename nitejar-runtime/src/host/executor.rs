//! The plugin-call executor: threads that run offloaded hook calls, handed work without the
//! blocking pool.
//!
//! A `spawn_blocking` round trip costs 16–21 µs on a 2-core machine, far more than a batch of
//! handlers. Here a job goes to an idle worker through a queue: a worker that just finished keeps
//! polling for [`SPIN`] before it parks (chains of one run come close together), so a job handed
//! to it starts in well under a microsecond; a parked worker costs one wake-up; a thread is created
//! only when every worker is busy. At most one worker polls at a time, so an idle server burns no
//! more than one short poll after each burst. A worker idle for [`IDLE_EXIT`] exits.
//!
//! Polling yields the processor between looks ([`poll_until`]): on a machine with more runnable
//! threads than cores, the thread being waited for may be queued on the very core the waiter
//! polls on, and a waiter that only spins would hold it off for the whole poll.
//!
//! Like the blocking pool, the executor grows with what it is given: a worker stuck in plugin code
//! is lost to it until the plugin returns. What bounds that is per plugin — its call slots and its
//! quarantine (see [`super::ExecutionLimits`]).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::panic_message;

/// How long a worker that ran out of work waits for more before it parks.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// How long a parked worker waits for work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs jobs on threads of its own. Cheap to clone (one reference count).
#[derive(Clone, Default)]
pub(crate) struct Executor {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// `state.jobs.len()`, readable by a polling worker without the lock. A hint: it may be
    /// stale for an instant, which costs a polling worker one look at an empty queue.
    queued: AtomicUsize,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    parked: Vec<Thread>,
    spinning: usize,
    threads: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Whole pushes and pops only; a panicking job runs outside the lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, state: &mut State) -> Option<Job> {
        let job = state.jobs.pop_front();
        self.queued.store(state.jobs.len(), Ordering::Release);
        job
    }
}

impl Executor {
    /// An executor with no thread yet.
    pub(crate) fn new() -> Self {
        Executor::default()
    }

    /// Runs `job` on a worker.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        let mut state = self.shared.lock();
        state.jobs.push_back(job);
        let queued = state.jobs.len();
        if state.spinning >= queued {
            drop(state);
            // Told after the lock is released: a polling worker that saw it before would find
            // the lock taken, and a contended lock sleeps in the kernel (microseconds).
            self.shared.queued.store(queued, Ordering::Release);
            return;
        }
        self.shared.queued.store(queued, Ordering::Release);
        if let Some(worker) = state.parked.pop() {
            drop(state);
            worker.unpark();
            return;
        }
        state.threads += 1;
        drop(state);
        let shared = self.shared.clone();
        let started = thread::Builder::new()
            .name("nitejar-plugin-call".into())
            .spawn(move || work(shared));
        if let Err(e) = started {
            self.shared.lock().threads -= 1;
            tracing::error!(error = %e, "could not start a plugin-call thread; using the blocking pool");
            // The job is queued; drain the queue from the blocking pool instead.
            let shared = self.shared.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn_blocking(move || drain(&shared));
            }
        }
    }

    /// How many worker threads exist (busy, spinning or parked).
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.shared.lock().threads
    }

    /// Waits until `n` workers are parked.
    #[cfg(test)]
    fn wait_parked(&self, n: usize) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.shared.lock().parked.len() != n && Instant::now() < until {
            thread::sleep(Duration::from_micros(100));
        }
    }
}

/// How long a poll spins between two yields of the processor.
const SPIN_BETWEEN_YIELDS: Duration = Duration::from_micros(2);

/// Polls `ready` until it is true or `until` passes; whether it became true. Yields the processor
/// every [`SPIN_BETWEEN_YIELDS`], so that a thread queued on this core (often the one being waited
/// for) runs.
pub(crate) fn poll_until(until: Instant, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        let now = Instant::now();
        let round = (now + SPIN_BETWEEN_YIELDS).min(until);
        loop {
            // One pause between looks (a pause is ~40 ns on recent x86 processors); the clock
            // only now and then.
            for _ in 0..16 {
                if ready() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= round {
                break;
            }
        }
        if round >= until {
            return ready();
        }
        thread::yield_now();
    }
}

fn run(job: Job) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
        // Jobs contain plugin panics themselves; this is a bug of ours, kept from killing the worker.
        tracing::error!(panic = %panic_message(p), "a plugin-call job panicked");
    }
}

fn drain(shared: &Shared) {
    loop {
        let job = shared.take(&mut shared.lock());
        match job {
            Some(job) => run(job),
            None => return,
        }
    }
}

fn work(shared: Arc<Shared>) {
    let me = thread::current();
    loop {
        let mut state = shared.lock();
        if let Some(job) = shared.take(&mut state) {
            drop(state);
            run(job);
            continue;
        }
        if state.spinning == 0 {
            state.spinning += 1;
            drop(state);
            poll_until(Instant::now() + SPIN, || {
                shared.queued.load(Ordering::Acquire) > 0
            });
            state = shared.lock();
            state.spinning -= 1;
            if let Some(job) = shared.take(&mut state) {
                drop(state);
                run(job);
                continue;
            }
        }
        state.parked.push(me.clone());
        drop(state);
        let parked_at = Instant::now();
        loop {
            thread::park_timeout(IDLE_EXIT);
            let mut state = shared.lock();
            // `spawn` takes a worker off the list before it wakes it.
            match state.parked.iter().position(|t| t.id() == me.id()) {
                None => break,
                Some(at) if parked_at.elapsed() >= IDLE_EXIT => {
                    state.parked.swap_remove(at);
                    state.threads -= 1;
                    return;
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_on_workers_that_are_reused() {
        let executor = Executor::new();
        let (tx, rx) = mpsc::channel();
        let mut ids = Vec::new();
        for i in 0..10 {
            let tx = tx.clone();
            executor.spawn(move || tx.send((i, thread::current().id())).unwrap());
            let (j, id) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(i, j);
            ids.push(id);
            // A parked worker is woken, not replaced.
            executor.wait_parked(1);
        }
        assert_ne!(ids[0], thread::current().id());
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(executor.threads(), 1, "one job at a time needs one worker");
    }

    #[test]
    fn a_busy_worker_does_not_hold_up_the_next_job() {
        let executor = Executor::new();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        executor.spawn(move || {
            let _ = release_rx.recv_timeout(Duration::from_secs(5));
        });
        let tx2 = tx.clone();
        executor.spawn(move || tx2.send("second").unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "second");
        assert_eq!(executor.threads(), 2);
        release_tx.send(()).unwrap();
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_worker() {
        let executor = Executor::new();
        executor.spawn(|| panic!("a bug"));
        executor.wait_parked(1);
        let (tx, rx) = mpsc::channel();
        executor.spawn(move || tx.send(thread::current().id()).unwrap());
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(executor.threads(), 1);
    }
}
