//! Per-plugin limits of offloaded calls: a concurrency bound, stuck-call counting, quarantine.
//!
//! An offloaded call takes one of its plugin's call slots before it runs and gives it back when the
//! plugin returns. A call that cannot get a slot before its deadline times out. When the caller gives
//! up on a call that is still inside plugin code (its timeout passed), the call is **stuck**: the
//! thread cannot be killed, so it keeps its slot until the plugin returns. A plugin with
//! [`ExecutionLimits::quarantine_after_stuck`] stuck calls is **quarantined**: its calls are refused
//! at once with an `error` receipt, and one `auto_disable` receipt records the quarantine. The
//! quarantine ends by itself when every stuck call has returned (nothing is held any more).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Cancellation;
use crate::plugin_meta::PluginMeta;
use nitejar_store::receipts::{Receipt, ReceiptKind, ReceiptStatus};

/// Limits the execution host applies to each plugin's offloaded calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionLimits {
    /// How many calls of one plugin (version) may run at once (default 4). At least 1.
    pub max_concurrent_calls: usize,
    /// How many stuck calls quarantine a plugin (default 3); 0 never quarantines.
    pub quarantine_after_stuck: usize,
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        ExecutionLimits {
            max_concurrent_calls: 4,
            quarantine_after_stuck: 3,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters only; a panic while holding the lock cannot leave them half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The call slots of one plugin version in use, and the calls waiting for one.
#[derive(Default)]
struct Slots {
    busy: usize,
    waiting: usize,
}

/// The call slots and stuck-call count of one plugin version.
pub(crate) struct PluginHealth {
    meta: Arc<PluginMeta>,
    limits: ExecutionLimits,
    busy: Mutex<Slots>,
    freed: Condvar,
    stuck: AtomicUsize,
    quarantined: AtomicBool,
}

impl PluginHealth {
    fn new(meta: Arc<PluginMeta>, limits: ExecutionLimits) -> Self {
        PluginHealth {
            meta,
            limits,
            busy: Mutex::new(Slots::default()),
            freed: Condvar::new(),
            stuck: AtomicUsize::new(0),
            quarantined: AtomicBool::new(false),
        }
    }

    /// Why calls of this plugin are refused, while it is quarantined.
    pub(crate) fn quarantine_message(&self) -> Option<String> {
        self.quarantined.load(Ordering::Acquire).then(|| {
            format!(
                "plugin `{}` is quarantined: {} of its calls did not return after their timeout; \
                 its calls are refused until they do (or until the server restarts)",
                self.meta,
                self.stuck.load(Ordering::Acquire)
            )
        })
    }

    /// Calls that timed out and have not returned yet.
    pub(crate) fn stuck(&self) -> usize {
        self.stuck.load(Ordering::Acquire)
    }

    pub(crate) fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Acquire)
    }

    /// Takes a call slot, waiting no later than `deadline`. `None` when none came free in time or
    /// the call was cancelled meanwhile.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        cancellation: &Cancellation,
    ) -> Option<Permit> {
        let max = self.limits.max_concurrent_calls.max(1);
        let mut slots = lock(&self.busy);
        loop {
            if slots.busy < max {
                slots.busy += 1;
                return Some(Permit {
                    ticket: Arc::new(CallTicket {
                        health: self.clone(),
                        state: AtomicU8::new(RUNNING),
                    }),
                });
            }
            let now = Instant::now();
            if now >= deadline || cancellation.is_cancelled() {
                return None;
            }
            // Wake up now and then to notice a cancellation.
            let wait = (deadline - now).min(Duration::from_millis(50));
            slots.waiting += 1;
            slots = self
                .freed
                .wait_timeout(slots, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            slots.waiting -= 1;
        }
    }

    fn release(&self) {
        let mut slots = lock(&self.busy);
        slots.busy = slots.busy.saturating_sub(1);
        let waiting = slots.waiting > 0;
        drop(slots);
        // A notification is a system call; most releases have nobody to wake.
        if waiting {
            self.freed.notify_one();
        }
    }
}

const RUNNING: u8 = 0;
const ABANDONED: u8 = 1;
const FINISHED: u8 = 2;

/// One call inside plugin code.
pub(crate) struct CallTicket {
    health: Arc<PluginHealth>,
    state: AtomicU8,
}

impl CallTicket {
    /// The caller gave up on this call. If it is still running it counts as stuck; returns the
    /// quarantine this caused, if it tipped the plugin over the threshold.
    pub(crate) fn abandon(&self) -> Option<Quarantine> {
        if self
            .state
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let h = &self.health;
        let stuck = h.stuck.fetch_add(1, Ordering::AcqRel) + 1;
        let threshold = h.limits.quarantine_after_stuck;
        if threshold > 0 && stuck >= threshold && !h.quarantined.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                plugin.id = %h.meta.id,
                plugin.version = %h.meta.version,
                stuck_calls = stuck,
                "plugin quarantined: too many calls did not return after their timeout"
            );
            return Some(Quarantine {
                plugin: h.meta.clone(),
                stuck_calls: stuck,
                threshold,
            });
        }
        None
    }

    fn finish(&self) {
        if self.state.swap(FINISHED, Ordering::AcqRel) == ABANDONED {
            let h = &self.health;
            let left = h.stuck.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
            if left == 0 && h.quarantined.swap(false, Ordering::AcqRel) {
                tracing::info!(
                    plugin.id = %h.meta.id,
                    plugin.version = %h.meta.version,
                    "plugin released from quarantine: every stuck call has returned"
                );
            }
        }
    }
}

/// A call slot, held while plugin code runs.
pub(crate) struct Permit {
    ticket: Arc<CallTicket>,
}

impl Permit {
    pub(crate) fn ticket(&self) -> Arc<CallTicket> {
        self.ticket.clone()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.ticket.finish();
        self.ticket.health.release();
    }
}

/// The call an offloaded job is running right now, so that the waiting caller can mark it stuck.
#[derive(Default)]
pub(crate) struct TicketSlot(Mutex<Option<Arc<CallTicket>>>);

impl TicketSlot {
    pub(crate) fn set(&self, ticket: Arc<CallTicket>) {
        *lock(&self.0) = Some(ticket);
    }

    pub(crate) fn clear(&self) {
        lock(&self.0).take();
    }

    /// Marks the running call (if any) abandoned.
    pub(crate) fn abandon(&self) -> Option<Quarantine> {
        let ticket = lock(&self.0).take();
        ticket.and_then(|t| t.abandon())
    }
}

/// A plugin was just quarantined.
#[derive(Clone, Debug)]
pub struct Quarantine {
    /// The plugin.
    pub plugin: Arc<PluginMeta>,
    /// Its stuck calls when it was quarantined.
    pub stuck_calls: usize,
    /// The configured threshold.
    pub threshold: usize,
}

impl Quarantine {
    /// The `auto_disable` / `error` receipt that records it.
    pub fn receipt(&self) -> Receipt {
        Receipt::new(
            self.plugin.id.clone(),
            Some(self.plugin.version.clone()),
            ReceiptKind::AutoDisable,
            ReceiptStatus::Error,
        )
        .with_execution_mode(self.plugin.execution)
        .with_detail(json!({
            "action": "quarantine",
            "reason": format!(
                "{} calls did not return after their timeout; the threads cannot be stopped, so the \
                 plugin's calls are refused until they return",
                self.stuck_calls
            ),
            "stuck_calls": self.stuck_calls,
            "threshold": self.threshold,
        }))
    }
}

/// The health of every plugin version that made an offloaded call. Looked up on every offloaded
/// call; a list of a few dozen entries, compared by pointer first, is faster than hashing the id and
/// version each time.
#[derive(Default)]
pub(crate) struct HealthBook {
    limits: ExecutionLimits,
    plugins: Mutex<Vec<Arc<PluginHealth>>>,
}

fn same_version(a: &PluginMeta, b: &PluginMeta) -> bool {
    std::ptr::eq(a, b) || (a.id == b.id && a.version == b.version)
}

impl HealthBook {
    pub(crate) fn new(limits: ExecutionLimits) -> Self {
        HealthBook {
            limits,
            plugins: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn limits(&self) -> ExecutionLimits {
        self.limits
    }

    pub(crate) fn get(&self, meta: &Arc<PluginMeta>) -> Arc<PluginHealth> {
        let mut plugins = lock(&self.plugins);
        if let Some(health) = plugins.iter().find(|h| same_version(&h.meta, meta)) {
            return health.clone();
        }
        let health = Arc::new(PluginHealth::new(meta.clone(), self.limits));
        plugins.push(health.clone());
        health
    }

    pub(crate) fn peek(&self, meta: &PluginMeta) -> Option<Arc<PluginHealth>> {
        lock(&self.plugins)
            .iter()
            .find(|h| same_version(&h.meta, meta))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_meta::PluginOrigin;

    fn health(max: usize, threshold: usize) -> Arc<PluginHealth> {
        Arc::new(PluginHealth::new(
            PluginMeta::new("com.example.slow", "1.0.0", PluginOrigin::ThirdParty),
            ExecutionLimits {
                max_concurrent_calls: max,
                quarantine_after_stuck: threshold,
            },
        ))
    }

    #[test]
    fn a_full_plugin_refuses_a_slot_after_the_deadline() {
        let h = health(1, 3);
        let flag = Cancellation::default();
        let first = h.acquire(Instant::now() + Duration::from_secs(1), &flag);
        assert!(first.is_some());
        let started = Instant::now();
        assert!(h
            .acquire(Instant::now() + Duration::from_millis(30), &flag)
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
        drop(first);
        assert!(h
            .acquire(Instant::now() + Duration::from_millis(30), &flag)
            .is_some());
    }

    #[test]
    fn stuck_calls_quarantine_and_returning_calls_release() {
        let h = health(4, 2);
        let flag = Cancellation::default();
        let far = Instant::now() + Duration::from_secs(5);
        let a = h.acquire(far, &flag).unwrap();
        let b = h.acquire(far, &flag).unwrap();
        assert!(a.ticket().abandon().is_none());
        assert_eq!(h.stuck(), 1);
        let q = b.ticket().abandon().expect("second stuck call quarantines");
        assert_eq!(q.stuck_calls, 2);
        assert!(h.quarantine_message().is_some());
        // Abandoning twice counts once.
        assert!(b.ticket().abandon().is_none());
        drop(a);
        assert!(h.is_quarantined());
        drop(b);
        assert_eq!(h.stuck(), 0);
        assert!(!h.is_quarantined());
    }

    #[test]
    fn a_call_that_finished_is_not_stuck() {
        let h = health(4, 1);
        let flag = Cancellation::default();
        let p = h
            .acquire(Instant::now() + Duration::from_secs(1), &flag)
            .unwrap();
        let ticket = p.ticket();
        drop(p);
        assert!(ticket.abandon().is_none());
        assert_eq!(h.stuck(), 0);
    }
}
