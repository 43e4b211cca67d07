//! The execution host: where and how plugin calls run.
//!
//! One set of timeout semantics for every plugin: a call has a deadline; if it has not answered by
//! then its outcome is `timeout`, its result is discarded, and the call is marked cancelled (the
//! plugin sees it through [`Host::is_cancelled`] and at its next host call). *Where* a call runs is
//! its [`ExecPolicy`]:
//!
//! - [`ExecPolicy::Inline`]: on the caller's thread. For built-ins, our own reviewed code. No thread
//!   hop (a hop costs 16–21 µs on a 2-core machine, against ~1 ns for the call), but an inline call
//!   that overruns is only judged `timeout` after it returns.
//! - [`ExecPolicy::Offload`]: off the async workers. For code loaded from outside the binary. Hook
//!   calls go to the host's own executor threads (a hand-off of well under a microsecond to a
//!   worker that is spinning, one wake-up otherwise; see `executor`); integration calls, which
//!   block on host I/O anyway, to the blocking pool. The caller gets `timeout` on time and the
//!   server keeps answering even if the call never returns. The thread itself cannot be killed; it
//!   stays busy until the plugin returns. Offloaded calls are bounded per plugin, and a plugin
//!   whose calls keep getting stuck is quarantined (see [`ExecutionLimits`]).
//!
//! Every offloaded call runs inside its [`CallScope`], which proxies of plugins loaded from a
//! library use to route the plugin's host calls back to the right call.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::host::{HttpRequest, HttpResponse, LogLevel, ProcessOutput, ProcessRequest};
use nitejar_sdk::{Host, HostError};
use serde::{Deserialize, Serialize};

use crate::plugin_meta::PluginMeta;
use nitejar_store::receipts::ReceiptSink;

pub(crate) mod executor;
mod health;
pub mod inflight;
mod scope;

use executor::Executor;
use health::HealthBook;
pub use health::{ExecutionLimits, Quarantine};
pub(crate) use health::{PluginHealth, TicketSlot};
pub use scope::CallScope;

/// Where a plugin call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecPolicy {
    /// On the caller's thread (built-ins).
    Inline,
    /// Off the async workers, with the caller waiting no longer than the deadline (code loaded from
    /// outside the binary).
    Offload,
}

/// The cancellation flag of a call (or of a run of consecutive offloaded calls).
#[derive(Debug, Default)]
pub struct Cancellation {
    cancelled: AtomicBool,
}

impl Cancellation {
    /// A flag that is not set.
    pub fn new() -> Arc<Self> {
        Arc::new(Cancellation::default())
    }

    /// Marks the call cancelled.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Whether the call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// The services behind [`Host`] that depend on the plugin's permissions: HTTP, secrets, files,
/// processes. The server provides the permission gate; an embedding host may provide its own.
pub trait HostServices: Send + Sync + 'static {
    /// See [`Host::http`].
    fn http(
        &self,
        plugin: &PluginMeta,
        deadline: Option<Instant>,
        request: &HttpRequest,
    ) -> Result<HttpResponse, HostError>;
    /// See [`Host::secret`].
    fn secret(&self, plugin: &PluginMeta, name: &str) -> Result<String, HostError>;
    /// See [`Host::read_file`].
    fn read_file(&self, plugin: &PluginMeta, path: &str) -> Result<Vec<u8>, HostError>;
    /// See [`Host::write_file`].
    fn write_file(&self, plugin: &PluginMeta, path: &str, contents: &[u8])
        -> Result<(), HostError>;
    /// See [`Host::spawn_process`].
    fn spawn_process(
        &self,
        plugin: &PluginMeta,
        deadline: Option<Instant>,
        request: &ProcessRequest,
    ) -> Result<ProcessOutput, HostError>;
    /// Records a receipt the host made outside a dispatch (a plugin's process that died). The
    /// default drops it.
    fn receipt(&self, receipt: nitejar_store::receipts::Receipt) {
        let _ = receipt;
    }

    /// See [`Host::log`]. The default writes to `tracing` with the plugin's id and version.
    fn log(&self, plugin: &PluginMeta, level: LogLevel, message: &str) {
        log_to_tracing(plugin, level, message);
    }
}

fn log_to_tracing(plugin: &PluginMeta, level: LogLevel, message: &str) {
    let (id, version) = (&*plugin.id, &*plugin.version);
    match level {
        LogLevel::Trace => {
            tracing::trace!(plugin.id = %id, plugin.version = %version, "{message}")
        }
        LogLevel::Debug => {
            tracing::debug!(plugin.id = %id, plugin.version = %version, "{message}")
        }
        LogLevel::Info => {
            tracing::info!(plugin.id = %id, plugin.version = %version, "{message}")
        }
        LogLevel::Warn => {
            tracing::warn!(plugin.id = %id, plugin.version = %version, "{message}")
        }
        LogLevel::Error => {
            tracing::error!(plugin.id = %id, plugin.version = %version, "{message}")
        }
    }
}

/// Host services that offer nothing but logging: every HTTP, secret, file or process call is
/// refused as unavailable. The default of a runtime built without a permission gate.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoServices;

impl NoServices {
    fn refuse(what: &str) -> HostError {
        HostError::Unavailable(format!(
            "{what} is not offered by this host (no permission gate is configured)"
        ))
    }
}

impl HostServices for NoServices {
    fn http(
        &self,
        _: &PluginMeta,
        _: Option<Instant>,
        _: &HttpRequest,
    ) -> Result<HttpResponse, HostError> {
        Err(Self::refuse("http"))
    }
    fn secret(&self, _: &PluginMeta, _: &str) -> Result<String, HostError> {
        Err(Self::refuse("secret"))
    }
    fn read_file(&self, _: &PluginMeta, _: &str) -> Result<Vec<u8>, HostError> {
        Err(Self::refuse("read_file"))
    }
    fn write_file(&self, _: &PluginMeta, _: &str, _: &[u8]) -> Result<(), HostError> {
        Err(Self::refuse("write_file"))
    }
    fn spawn_process(
        &self,
        _: &PluginMeta,
        _: Option<Instant>,
        _: &ProcessRequest,
    ) -> Result<ProcessOutput, HostError> {
        Err(Self::refuse("spawn_process"))
    }
}

/// The [`Host`] one plugin call sees: the plugin's identity, the call's deadline and cancellation,
/// and the services. Host calls made after the call was cancelled or past its deadline fail at once.
pub struct CallHost<'a> {
    plugin: &'a PluginMeta,
    deadline: Option<Instant>,
    cancellation: &'a Cancellation,
    services: &'a dyn HostServices,
}

impl<'a> CallHost<'a> {
    /// The host of one call.
    pub fn new(
        plugin: &'a PluginMeta,
        deadline: Option<Instant>,
        cancellation: &'a Cancellation,
        services: &'a dyn HostServices,
    ) -> Self {
        CallHost {
            plugin,
            deadline,
            cancellation,
            services,
        }
    }

    fn check_live(&self) -> Result<(), HostError> {
        if self.cancellation.is_cancelled() {
            return Err(HostError::Cancelled);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(HostError::Timeout),
            _ => Ok(()),
        }
    }
}

impl Host for CallHost<'_> {
    fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        self.check_live()?;
        self.services.http(self.plugin, self.deadline, request)
    }
    fn secret(&self, name: &str) -> Result<String, HostError> {
        self.check_live()?;
        self.services.secret(self.plugin, name)
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        self.check_live()?;
        self.services.read_file(self.plugin, path)
    }
    fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.check_live()?;
        self.services.write_file(self.plugin, path, contents)
    }
    fn spawn_process(&self, request: &ProcessRequest) -> Result<ProcessOutput, HostError> {
        self.check_live()?;
        self.services
            .spawn_process(self.plugin, self.deadline, request)
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.services.log(self.plugin, level, message);
    }
    fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// The text of a caught panic.
pub fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked with a non-string payload".to_string()
    }
}

/// How one plugin call ended.
#[derive(Debug)]
pub enum CallOutcome<T> {
    /// It returned in time.
    Done(T),
    /// It panicked; the panic was contained.
    Panicked(String),
    /// It did not return before its deadline (or could not get one of its plugin's call slots
    /// before it). Its result, if it ever comes, is discarded.
    TimedOut,
    /// It was not run: the plugin is quarantined (see [`ExecutionLimits`]). The message says why.
    Quarantined(String),
}

/// Runs single plugin calls (integration calls, loads) with the execution policy and deadline of the
/// call. Hook chains use the same rules through the dispatcher.
///
/// Offloaded calls are bounded per plugin version ([`ExecutionLimits::max_concurrent_calls`]); a call
/// the caller gave up on while it was still in plugin code counts as stuck until it returns, and a
/// plugin with too many stuck calls is quarantined ([`ExecutionLimits::quarantine_after_stuck`]).
#[derive(Clone)]
pub struct ExecutionHost {
    services: Arc<dyn HostServices>,
    health: Arc<HealthBook>,
    sink: Option<Arc<dyn ReceiptSink>>,
    executor: Executor,
}

impl ExecutionHost {
    /// An execution host over these services, with the default [`ExecutionLimits`].
    pub fn new(services: Arc<dyn HostServices>) -> Self {
        ExecutionHost {
            services,
            health: Arc::new(HealthBook::new(ExecutionLimits::default())),
            sink: None,
            executor: Executor::new(),
        }
    }

    /// Replaces the limits (plugins that already made calls keep the limits they started with).
    pub fn with_limits(mut self, limits: ExecutionLimits) -> Self {
        self.health = Arc::new(HealthBook::new(limits));
        self
    }

    /// Where the host writes the receipts it makes itself (a quarantine).
    pub fn with_sink(mut self, sink: Arc<dyn ReceiptSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The services handed to plugin calls.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The limits of offloaded calls.
    pub fn limits(&self) -> ExecutionLimits {
        self.health.limits()
    }

    /// How many calls of this plugin version timed out and have not returned yet.
    pub fn stuck_calls(&self, plugin: &PluginMeta) -> usize {
        self.health.peek(plugin).map_or(0, |h| h.stuck())
    }

    /// Whether this plugin version is quarantined.
    pub fn is_quarantined(&self, plugin: &PluginMeta) -> bool {
        self.health.peek(plugin).is_some_and(|h| h.is_quarantined())
    }

    pub(crate) fn health(&self, plugin: &Arc<PluginMeta>) -> Arc<PluginHealth> {
        self.health.get(plugin)
    }

    /// The threads offloaded hook calls run on.
    pub(crate) fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Runs `f` for `plugin` with the given policy and timeout, and says how it ended and how long
    /// the caller waited.
    pub async fn call<T, F>(
        &self,
        plugin: &Arc<PluginMeta>,
        policy: ExecPolicy,
        timeout: Duration,
        f: F,
    ) -> (CallOutcome<T>, Duration)
    where
        T: Send + 'static,
        F: FnOnce(&dyn Host) -> T + Send + 'static,
    {
        self.call_for(plugin, policy, timeout, None, None, f).await
    }

    /// [`ExecutionHost::call`] for a call that belongs to a work item and job (receipts the host
    /// services write carry them).
    pub async fn call_for<T, F>(
        &self,
        plugin: &Arc<PluginMeta>,
        policy: ExecPolicy,
        timeout: Duration,
        work_item_id: Option<Arc<str>>,
        job_id: Option<Arc<str>>,
        f: F,
    ) -> (CallOutcome<T>, Duration)
    where
        T: Send + 'static,
        F: FnOnce(&dyn Host) -> T + Send + 'static,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let cancellation = Cancellation::new();
        let scope = CallScope::new(
            plugin.clone(),
            Some(deadline),
            cancellation.clone(),
            self.services.clone(),
        )
        .with_run(work_item_id, job_id);
        match policy {
            ExecPolicy::Inline => {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    scope.enter(|| f(&scope))
                }));
                let elapsed = started.elapsed();
                let outcome = match result {
                    _ if elapsed > timeout => CallOutcome::TimedOut,
                    Ok(v) => CallOutcome::Done(v),
                    Err(p) => CallOutcome::Panicked(panic_message(p)),
                };
                (outcome, elapsed)
            }
            ExecPolicy::Offload => {
                let health = self.health(plugin);
                if let Some(message) = health.quarantine_message() {
                    return (CallOutcome::Quarantined(message), started.elapsed());
                }
                let slot = Arc::new(TicketSlot::default());
                let job_slot = slot.clone();
                let task = tokio::task::spawn_blocking(move || {
                    let permit = health.acquire(deadline, scope.cancellation())?;
                    job_slot.set(permit.ticket());
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        scope.enter(|| f(&scope))
                    }));
                    job_slot.clear();
                    drop(permit);
                    Some(result)
                });
                let outcome = match tokio::time::timeout_at(deadline.into(), task).await {
                    // An answer that raced past the deadline is judged like an inline one: late.
                    Ok(Ok(Some(_))) if Instant::now() > deadline => CallOutcome::TimedOut,
                    Ok(Ok(Some(Ok(v)))) => CallOutcome::Done(v),
                    Ok(Ok(Some(Err(p)))) => CallOutcome::Panicked(panic_message(p)),
                    Ok(Ok(None)) => CallOutcome::TimedOut,
                    Ok(Err(join)) => CallOutcome::Panicked(join.to_string()),
                    Err(_) => {
                        cancellation.cancel();
                        if let Some(quarantine) = slot.abandon() {
                            if let Some(sink) = &self.sink {
                                sink.submit(vec![quarantine.receipt()]).await;
                            }
                        }
                        CallOutcome::TimedOut
                    }
                };
                (outcome, started.elapsed())
            }
        }
    }
}
