//! Whether the database is taking writes: the server answers webhooks 503 quickly while it is not,
//! `/readyz` says so, and a write is tried again now and then to notice when it is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a write is let through while the database is failing, to find out whether it is back.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct State {
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    last_error: Option<String>,
    /// When a write was last let through while failing.
    last_probe: Option<Instant>,
}

/// The health of a store's writes, as its write transactions report it: a commit that succeeds
/// heals it, a fault ([`StoreError::is_fault`](super::StoreError::is_fault)) breaks it. Errors about
/// the data written (a constraint, a value the column refuses) are not faults and change nothing.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: Mutex<State>,
}

/// A failing store, as [`StoreHealth::failing`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// How long writes have been failing.
    pub for_: Duration,
    /// The last fault.
    pub error: String,
}

impl StoreHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain fields: a panic elsewhere cannot leave them half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write went through.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        if let Some(since) = s.failing_since.take() {
            tracing::warn!(
                after_ms = since.elapsed().as_millis() as u64,
                "the database takes writes again"
            );
            s.last_error = None;
            s.last_probe = None;
        }
    }

    /// A write of operation `op` failed with `error`; counts only when it is a fault.
    pub(crate) fn failed_with(&self, error: &sqlx::Error, op: &str) {
        if !super::error::is_fault(error) {
            return;
        }
        let mut s = self.lock();
        if s.failing_since.is_none() {
            tracing::error!(%error, op, "the database refuses writes; webhooks answer 503 until it is back");
            s.failing_since = Some(Instant::now());
        }
        s.last_error = Some(format!("{op}: {error}"));
    }

    /// A write failed with `error`; counts only when it is a fault.
    pub fn failed(&self, error: &super::StoreError) {
        if !error.is_fault() {
            return;
        }
        let mut s = self.lock();
        if s.failing_since.is_none() {
            tracing::error!(%error, "the database refuses writes; webhooks answer 503 until it is back");
            s.failing_since = Some(Instant::now());
        }
        s.last_error = Some(error.to_string());
    }

    /// `Some` while writes are failing.
    pub fn failing(&self) -> Option<Failing> {
        let s = self.lock();
        s.failing_since.map(|since| Failing {
            for_: since.elapsed(),
            error: s.last_error.clone().unwrap_or_default(),
        })
    }

    /// Whether to try a write now: always while healthy; while failing, once every
    /// [`PROBE_EVERY`] (the others are refused at once instead of waiting for a database that is
    /// not there).
    pub fn try_write(&self) -> bool {
        let mut s = self.lock();
        if s.failing_since.is_none() {
            return true;
        }
        let now = Instant::now();
        if s.last_probe
            .is_none_or(|p| now.duration_since(p) >= PROBE_EVERY)
        {
            s.last_probe = Some(now);
            return true;
        }
        false
    }
}
