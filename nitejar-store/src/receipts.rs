//! Receipts: one record for every action a plugin takes or that is taken on a plugin.
//!
//! Install, enable, every hook call, every integration call, every denied host call… each becomes a
//! [`Receipt`] handed to a [`ReceiptSink`]. The sink decides where receipts go (memory for tests and
//! embedding hosts, the `plugin_events` table for the server). Sinks never drop a receipt: when a sink
//! is full, [`ReceiptSink::submit`] waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nitejar_sdk::HookName;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of action a receipt records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Install,
    Enable,
    Disable,
    Upgrade,
    Rollback,
    Uninstall,
    Load,
    Hook,
    Integration,
    Skill,
    PermissionDenied,
    AutoDisable,
    WebhookIngress,
    Startup,
    /// A run of a work item: abandoned by a server that stopped, or given up.
    Run,
    /// The process died while the plugin had calls in flight (found at the next boot).
    CrashedProcess,
    /// The plugin's own process (isolated execution) died: a crash, a signal or a limit.
    Crashed,
    /// A change of a plugin's settings (config, stored secrets): names only, never values.
    Configure,
    /// A change of the trust settings (a trusted key or an allowlist entry added or removed), or a
    /// refused attempt: who, and the key id and public key or the entry.
    Trust,
    /// A change of what an agent may do to plugins (its grants), or a refused attempt.
    AgentGrant,
}

impl ReceiptKind {
    /// Every kind, in declaration order.
    pub const ALL: [ReceiptKind; 20] = [
        ReceiptKind::Install,
        ReceiptKind::Enable,
        ReceiptKind::Disable,
        ReceiptKind::Upgrade,
        ReceiptKind::Rollback,
        ReceiptKind::Uninstall,
        ReceiptKind::Load,
        ReceiptKind::Hook,
        ReceiptKind::Integration,
        ReceiptKind::Skill,
        ReceiptKind::PermissionDenied,
        ReceiptKind::AutoDisable,
        ReceiptKind::WebhookIngress,
        ReceiptKind::Startup,
        ReceiptKind::Run,
        ReceiptKind::CrashedProcess,
        ReceiptKind::Crashed,
        ReceiptKind::Configure,
        ReceiptKind::Trust,
        ReceiptKind::AgentGrant,
    ];

    /// The kind of a stored name; `None` for a name no release wrote.
    pub fn parse(stored: &str) -> Option<ReceiptKind> {
        ReceiptKind::ALL.into_iter().find(|k| k.as_str() == stored)
    }

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Install => "install",
            ReceiptKind::Enable => "enable",
            ReceiptKind::Disable => "disable",
            ReceiptKind::Upgrade => "upgrade",
            ReceiptKind::Rollback => "rollback",
            ReceiptKind::Uninstall => "uninstall",
            ReceiptKind::Load => "load",
            ReceiptKind::Hook => "hook",
            ReceiptKind::Integration => "integration",
            ReceiptKind::Skill => "skill",
            ReceiptKind::PermissionDenied => "permission_denied",
            ReceiptKind::AutoDisable => "auto_disable",
            ReceiptKind::WebhookIngress => "webhook_ingress",
            ReceiptKind::Startup => "startup",
            ReceiptKind::Run => "run",
            ReceiptKind::CrashedProcess => "crashed_process",
            ReceiptKind::Crashed => "crashed",
            ReceiptKind::Configure => "configure",
            ReceiptKind::Trust => "trust",
            ReceiptKind::AgentGrant => "agent_grant",
        }
    }
}

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Done.
    Ok,
    /// Stopped on purpose: a hook blocked the event, or the host refused a call.
    Blocked,
    /// Failed (an error or a panic in plugin code).
    Error,
    /// Ran past its time.
    Timeout,
    /// Not run: the event's chain budget was spent.
    SkippedBudget,
    /// Refused by policy: a change outside the event's mutation policy, or a block on an event that
    /// cannot be blocked.
    Denied,
    /// Asked for, and waiting for the operator's decision (an agent's request to enable a plugin).
    Pending,
}

impl ReceiptStatus {
    /// Every status, in declaration order.
    pub const ALL: [ReceiptStatus; 7] = [
        ReceiptStatus::Ok,
        ReceiptStatus::Blocked,
        ReceiptStatus::Error,
        ReceiptStatus::Timeout,
        ReceiptStatus::SkippedBudget,
        ReceiptStatus::Denied,
        ReceiptStatus::Pending,
    ];

    /// The status of a stored name; `None` for a name no release wrote.
    pub fn parse(stored: &str) -> Option<ReceiptStatus> {
        ReceiptStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == stored)
    }

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Ok => "ok",
            ReceiptStatus::Blocked => "blocked",
            ReceiptStatus::Error => "error",
            ReceiptStatus::Timeout => "timeout",
            ReceiptStatus::SkippedBudget => "skipped_budget",
            ReceiptStatus::Denied => "denied",
            ReceiptStatus::Pending => "pending",
        }
    }
}

/// Where plugin code runs; receipts and APIs say it so nobody has to assume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// In the server's own process; permissions are enforced at host-managed API boundaries only.
    #[default]
    InProcess,
    /// In a process of its own: a crash or a hang ends that process, not the server's.
    Isolated,
}

impl ExecutionMode {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::InProcess => "in_process",
            ExecutionMode::Isolated => "isolated",
        }
    }
}

/// One action, as stored in `plugin_events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub plugin_id: Arc<str>,
    pub plugin_version: Option<Arc<str>>,
    pub kind: ReceiptKind,
    pub status: ReceiptStatus,
    /// The hook event, for hook receipts.
    pub hook: Option<HookName>,
    pub work_item_id: Option<Arc<str>>,
    pub job_id: Option<Arc<str>>,
    /// How long the action took, in microseconds.
    pub duration_us: u64,
    pub execution_mode: ExecutionMode,
    /// Structured detail: the error, the refused field, the declared capability and grant state, …
    pub detail: Option<Value>,
    /// Unix time in milliseconds.
    pub created_at_ms: i64,
}

impl Receipt {
    /// A receipt stamped now, with no run context and no detail.
    pub fn new(
        plugin_id: impl Into<Arc<str>>,
        plugin_version: Option<Arc<str>>,
        kind: ReceiptKind,
        status: ReceiptStatus,
    ) -> Self {
        Receipt {
            plugin_id: plugin_id.into(),
            plugin_version,
            kind,
            status,
            hook: None,
            work_item_id: None,
            job_id: None,
            duration_us: 0,
            execution_mode: ExecutionMode::InProcess,
            detail: None,
            created_at_ms: now_ms(),
        }
    }

    /// Sets where the plugin's code ran.
    pub fn with_execution_mode(mut self, mode: ExecutionMode) -> Self {
        self.execution_mode = mode;
        self
    }

    /// Sets the detail.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Duration in whole milliseconds (rounded up, so a receipt of a call that ran is never 0 ms
    /// unless it took no measurable time).
    pub fn duration_ms(&self) -> u64 {
        self.duration_us.div_ceil(1000)
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A boxed future, as returned by [`ReceiptSink::submit`].
pub type SubmitFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where receipts go.
///
/// Implementations never drop a receipt. A sink with a bounded queue applies back-pressure by making
/// `submit` wait until there is room.
pub trait ReceiptSink: Send + Sync + 'static {
    /// Takes a batch of receipts (one dispatch's worth, or a single receipt).
    fn submit(&self, batch: Vec<Receipt>) -> SubmitFuture<'_>;

    /// Waits until every receipt submitted so far is stored.
    fn flush(&self) -> SubmitFuture<'_> {
        Box::pin(async {})
    }

    /// Receipts the caller stored itself, in its own transaction (an accepted webhook delivery's
    /// receipt is written with the work item): sinks that store skip them, sinks that watch
    /// (metrics, the crash-loop guard) see them like any other.
    fn stored(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        drop(batch);
        Box::pin(async {})
    }
}

/// Keeps receipts in memory. For tests, benches and embedding hosts that read receipts themselves.
#[derive(Default)]
pub struct MemorySink {
    receipts: Mutex<Vec<Receipt>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Arc<Self> {
        Arc::new(MemorySink::default())
    }

    /// A copy of every receipt so far, in submission order.
    pub fn receipts(&self) -> Vec<Receipt> {
        self.lock().clone()
    }

    /// Takes every receipt so far, leaving the sink empty.
    pub fn take(&self) -> Vec<Receipt> {
        std::mem::take(&mut *self.lock())
    }

    /// How many receipts are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no receipt is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Receipt>> {
        // A panic while holding this lock cannot leave the Vec half-written; keep going.
        self.receipts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReceiptSink for MemorySink {
    fn submit(&self, mut batch: Vec<Receipt>) -> SubmitFuture<'_> {
        self.lock().append(&mut batch);
        Box::pin(std::future::ready(()))
    }

    /// Kept like submitted ones: this sink is where its owner reads receipts.
    fn stored(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        self.submit(batch)
    }
}

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp (civil-from-days, no time zone database).
pub fn rfc3339_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
