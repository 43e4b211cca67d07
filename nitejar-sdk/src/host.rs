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
}

/// The answer to an [`HttpRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// What a process run through the host produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
