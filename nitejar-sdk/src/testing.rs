//! A test kit for plugin authors: unit test a plugin without a server.
//!
//! [`TestHost`] is a [`Host`] double. It records every call, answers `http` with canned responses
//! (by exact URL, or from a closure), serves secrets from a map and files from memory. [`run_hook`]
//! runs a plugin's handlers of one event the way the server orders them (priority, then
//! registration order), applying changes and stopping at a block.
//!
//! ```
//! use nitejar_sdk::hooks::{HookResult, ToolPreExec};
//! use nitejar_sdk::testing::{run_hook, TestHost};
//! use nitejar_sdk::{HttpResponse, Plugin};
//!
//! let plugin = Plugin::builder()
//!     .on(|ctx, call: &ToolPreExec| {
//!         let allowed = ctx.host.http(&nitejar_sdk::HttpRequest::get("https://policy.example/tools"));
//!         match allowed {
//!             Ok(r) if r.text().contains(&call.tool_name) => HookResult::proceed(),
//!             _ => HookResult::block("not on the allow list"),
//!         }
//!     })
//!     .build();
//!
//! let host = TestHost::new().with_http_response(
//!     "https://policy.example/tools",
//!     HttpResponse::new(200).with_body("search,calc"),
//! );
//! let mut call = ToolPreExec::default();
//! call.tool_name = "shell".into();
//! let run = run_hook(&plugin, &host, call);
//! assert_eq!(run.blocked.as_deref(), Some("not on the allow list"));
//! assert_eq!(host.http_requests().len(), 1);
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;

use crate::hooks::{HookContext, HookEvent, HookResult};
use crate::host::{ProcessOutput, ProcessRequest};
use crate::integration::IntegrationInstance;
use crate::{Host, HostError, HttpRequest, HttpResponse, LogLevel, Plugin};

/// One call a plugin made on a [`TestHost`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostCall {
    /// An HTTP request.
    Http(HttpRequest),
    /// A secret read, by name.
    Secret(String),
    /// A file read, by path.
    ReadFile(String),
    /// A file written.
    WriteFile {
        /// The path written.
        path: String,
        /// The bytes written.
        contents: Vec<u8>,
    },
    /// A process run.
    SpawnProcess(ProcessRequest),
    /// A log line.
    Log {
        /// Its severity.
        level: LogLevel,
        /// Its text.
        message: String,
    },
}

type HttpHandler = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, HostError> + Send + Sync>;
type ProcessHandler =
    Box<dyn Fn(&ProcessRequest) -> Result<ProcessOutput, HostError> + Send + Sync>;

/// A [`Host`] double for unit tests. See the [module docs](self).
#[derive(Default)]
pub struct TestHost {
    calls: Mutex<Vec<HostCall>>,
    responses: Mutex<BTreeMap<String, HttpResponse>>,
    http_handler: Option<HttpHandler>,
    secrets: BTreeMap<String, String>,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    process_handler: Option<ProcessHandler>,
    cancelled: AtomicBool,
    deadline: Option<Instant>,
}

impl TestHost {
    /// A host that answers nothing: every `http`, `secret`, file or process call fails as
    /// unavailable until it is given an answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers requests to exactly this URL (any method) with `response`.
    pub fn with_http_response(self, url: impl Into<String>, response: HttpResponse) -> Self {
        lock(&self.responses).insert(url.into(), response);
        self
    }

    /// Answers requests that no canned response matches.
    pub fn with_http_handler(
        mut self,
        handler: impl Fn(&HttpRequest) -> Result<HttpResponse, HostError> + Send + Sync + 'static,
    ) -> Self {
        self.http_handler = Some(Box::new(handler));
        self
    }

    /// Serves a secret.
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Puts a file in the in-memory file system.
    pub fn with_file(self, path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        lock(&self.files).insert(path.into(), contents.into());
        self
    }

    /// Answers `spawn_process`.
    pub fn with_process_handler(
        mut self,
        handler: impl Fn(&ProcessRequest) -> Result<ProcessOutput, HostError> + Send + Sync + 'static,
    ) -> Self {
        self.process_handler = Some(Box::new(handler));
        self
    }

    /// Gives calls a deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Marks the call cancelled, as the server does when a call times out.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<HostCall> {
        lock(&self.calls).clone()
    }

    /// The HTTP requests so far, in order.
    pub fn http_requests(&self) -> Vec<HttpRequest> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                HostCall::Http(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The log lines so far, in order.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                HostCall::Log { level, message } => Some((level, message)),
                _ => None,
            })
            .collect()
    }

    /// A file of the in-memory file system (including what the plugin wrote).
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        lock(&self.files).get(path).cloned()
    }

    fn record(&self, call: HostCall) {
        lock(&self.calls).push(call);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock cannot leave these maps half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(what: String) -> HostError {
    HostError::Unavailable(format!("the TestHost has no answer for {what}"))
}

impl Host for TestHost {
    fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        self.record(HostCall::Http(request.clone()));
        if let Some(r) = lock(&self.responses).get(&request.url) {
            return Ok(r.clone());
        }
        match &self.http_handler {
            Some(h) => h(request),
            None => Err(unavailable(format!("{} {}", request.method, request.url))),
        }
    }

    fn secret(&self, name: &str) -> Result<String, HostError> {
        self.record(HostCall::Secret(name.into()));
        self.secrets
            .get(name)
            .cloned()
            .ok_or_else(|| unavailable(format!("secret `{name}`")))
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        self.record(HostCall::ReadFile(path.into()));
        lock(&self.files)
            .get(path)
            .cloned()
            .ok_or_else(|| HostError::Failed(format!("no such file: {path}")))
    }

    fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.record(HostCall::WriteFile {
            path: path.into(),
            contents: contents.to_vec(),
        });
        lock(&self.files).insert(path.into(), contents.to_vec());
        Ok(())
    }

    fn spawn_process(&self, request: &ProcessRequest) -> Result<ProcessOutput, HostError> {
        self.record(HostCall::SpawnProcess(request.clone()));
        match &self.process_handler {
            Some(h) => h(request),
            None => Err(unavailable(format!("process `{}`", request.program))),
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.record(HostCall::Log {
            level,
            message: message.into(),
        });
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// An integration row for tests: id `test-integration`, the given type and config.
pub fn instance(kind: impl Into<String>, config: Value) -> IntegrationInstance {
    IntegrationInstance {
        id: "test-integration".into(),
        kind: kind.into(),
        name: "Test".into(),
        config,
    }
}

/// What [`run_hook`] ended with.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HookRun<E> {
    /// The payload with every change applied.
    pub payload: E,
    /// The reason of the handler that blocked the event, if one did.
    pub blocked: Option<String>,
}

/// Runs `plugin`'s handlers of event `E` in dispatch order (priority high → low, then registration
/// order), as the server does, but without timeouts or receipts.
pub fn run_hook<E: HookEvent>(plugin: &Plugin, host: &dyn Host, payload: E) -> HookRun<E> {
    let mut handlers: Vec<_> = plugin
        .hooks()
        .iter()
        .filter_map(|r| r.handler::<E>().map(|h| (r.options().priority, h)))
        .collect();
    handlers.sort_by_key(|h| std::cmp::Reverse(h.0));
    let mut payload = payload;
    for (_, handler) in handlers {
        let ctx = HookContext::new(E::NAME, "test", host);
        match handler(&ctx, &payload) {
            HookResult::Continue => {}
            HookResult::Change(patch) => payload.apply(patch),
            HookResult::Block(reason) => {
                return HookRun {
                    payload,
                    blocked: Some(reason),
                }
            }
        }
    }
    HookRun {
        payload,
        blocked: None,
    }
}
