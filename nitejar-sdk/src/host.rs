//! Host services: what a plugin may ask of the server it runs in.
//!
//! Plugins run in-process, in the same address space as the server. These services are the **host
//! boundary**: every call is checked against the permissions the plugin declared in its manifest and
//! the operator acknowledged. A call outside them returns [`HostError::Denied`] and leaves a receipt.
//! Code a plugin runs directly (its own sockets, files or threads) does not pass this boundary and is
//! not enforced; that is why a plugin is expected to do all its I/O through the host.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Severity of a log line a plugin sends to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detail for tracing a call step by step.
    Trace,
    /// Detail for debugging.
    Debug,
    /// What the plugin did.
    Info,
    /// Something an operator may want to look at.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// An outbound HTTP request made through the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// An absolute `http://` or `https://` URL. Its host (and port) must be declared in
    /// `permissions.network`.
    pub url: String,
    /// Request headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The request body.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub body: Vec<u8>,
    /// Shorter than the call's own deadline, if set.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl HttpRequest {
    /// A request with this method and URL, no headers and no body. The request is
    /// `#[non_exhaustive]`: build it with this, [`get`](Self::get) or
    /// [`post_json`](Self::post_json) and the setters.
    ///
    /// ```
    /// use nitejar_sdk::HttpRequest;
    ///
    /// let request = HttpRequest::new("PUT", "https://api.example.com/items/7")
    ///     .header("content-type", "text/plain")
    ///     .body("seven")
    ///     .timeout_ms(2_000);
    /// assert_eq!(request.method, "PUT");
    /// assert_eq!(request.body, b"seven");
    /// ```
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        HttpRequest {
            method: method.into(),
            url: url.into(),
            ..Default::default()
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            ..Default::default()
        }
    }

    /// A `POST` with a JSON body and `content-type: application/json`.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Self {
        HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap_or_default(),
            timeout_ms: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Gives the request a deadline shorter than the call's own.
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

/// The answer to an [`HttpRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// Response headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The response body.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with this status, no headers and no body: how a host (or a test's
    /// [`TestHost`](crate::testing::TestHost)) answers a request. The response is
    /// `#[non_exhaustive]`, so a later SDK can tell plugins more about it.
    ///
    /// ```
    /// use nitejar_sdk::HttpResponse;
    ///
    /// let response = HttpResponse::new(200)
    ///     .with_header("content-type", "application/json")
    ///     .with_body(r#"{"ok":true}"#);
    /// assert!(response.is_success());
    /// assert_eq!(response.header("Content-Type"), Some("application/json"));
    /// ```
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            ..Default::default()
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body read as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A process to run through the host (needs `permissions.allowProcessSpawn`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessRequest {
    /// The program to run.
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables to set for it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// What it reads on standard input.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub stdin: Vec<u8>,
    /// Shorter than the call's own deadline, if set.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl ProcessRequest {
    /// A run of `program` without arguments, environment, working directory or input. The
    /// request is `#[non_exhaustive]`: build it with this and the setters.
    ///
    /// ```
    /// use nitejar_sdk::host::ProcessRequest;
    ///
    /// let request = ProcessRequest::new("git")
    ///     .args(["status", "--short"])
    ///     .env("GIT_PAGER", "cat")
    ///     .cwd("/srv/repo")
    ///     .timeout_ms(5_000);
    /// assert_eq!(request.args, ["status", "--short"]);
    /// ```
    pub fn new(program: impl Into<String>) -> Self {
        ProcessRequest {
            program: program.into(),
            ..Default::default()
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Sets what the process reads on standard input.
    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
    }

    /// Gives the process a deadline shorter than the call's own.
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

/// What a process run through the host produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessOutput {
    /// The exit code; `None` when it was killed by a signal or the timeout.
    pub code: Option<i32>,
    /// What it wrote on standard output.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub stdout: Vec<u8>,
    /// What it wrote on standard error.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub stderr: Vec<u8>,
}

impl ProcessOutput {
    /// A process that exited with `code` (`None`: killed) and wrote nothing. The output is
    /// `#[non_exhaustive]`; hosts and tests build it with this and the setters.
    ///
    /// ```
    /// use nitejar_sdk::host::ProcessOutput;
    ///
    /// let output = ProcessOutput::new(Some(0)).with_stdout("clean\n");
    /// assert_eq!(output.stdout, b"clean\n");
    /// ```
    pub fn new(code: Option<i32>) -> Self {
        ProcessOutput {
            code,
            ..Default::default()
        }
    }

    /// Sets what it wrote on standard output.
    pub fn with_stdout(mut self, stdout: impl Into<Vec<u8>>) -> Self {
        self.stdout = stdout.into();
        self
    }

    /// Sets what it wrote on standard error.
    pub fn with_stderr(mut self, stderr: impl Into<Vec<u8>>) -> Self {
        self.stderr = stderr.into();
        self
    }
}

/// Why a host service refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostError {
    /// The plugin did not declare (or the operator did not acknowledge) the permission this call needs.
    #[error("permission denied: {permission} ({reason})")]
    Denied {
        /// The permission the call needed (`network:api.example.com`, `secret:TOKEN`, …).
        permission: String,
        /// Why it was refused.
        reason: String,
    },
    /// The call ran past its deadline.
    #[error("timed out")]
    Timeout,
    /// The host cancelled the call (the hook or integration call it belongs to timed out).
    #[error("cancelled by the host")]
    Cancelled,
    /// The service is not offered by this host.
    #[error("not available: {0}")]
    Unavailable(String),
    /// The service failed (network error, missing file, …).
    #[error("{0}")]
    Failed(String),
}

/// Services the host hands to every plugin call.
///
/// Everything is synchronous: plugin calls run on threads the host manages, and the host applies the
/// call's deadline to each service call.
pub trait Host: Send + Sync {
    /// Makes an HTTP request. Only hosts in `permissions.network` are reached; redirects are checked
    /// again at every hop. A declared host *name* reaches public addresses only: when it resolves to
    /// a loopback, private, link-local or other non-public address the call is
    /// [`HostError::Denied`], unless the operator allows that private range. An IP address declared
    /// literally is reached by URLs written with it; `localhost` is the loopback interface.
    fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HostError>;
    /// Reads a secret by a name declared in `permissions.secrets`.
    fn secret(&self, name: &str) -> Result<String, HostError>;
    /// Reads a file under a path declared in `permissions.filesystemRead`, or in the plugin's own data
    /// directory (a relative path).
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError>;
    /// Writes a file under a path declared in `permissions.filesystemWrite`, or in the plugin's own data
    /// directory (a relative path).
    fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), HostError>;
    /// Runs a process (needs `permissions.allowProcessSpawn`).
    fn spawn_process(&self, request: &ProcessRequest) -> Result<ProcessOutput, HostError>;
    /// Writes a line to the plugin's log (`logs/plugins/<id>.log` and the server's log).
    fn log(&self, level: LogLevel, message: &str);
    /// Whether the host has given up on this call (its timeout passed). A long-running plugin call
    /// should check this and return early.
    fn is_cancelled(&self) -> bool;
    /// When the host will give up on this call, if it has a deadline.
    fn deadline(&self) -> Option<Instant>;
}
