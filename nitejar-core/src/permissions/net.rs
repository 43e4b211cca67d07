//! The host's HTTP client: redirects followed by hand so that every hop is checked, deadlines
//! applied, and the work done on a small runtime of its own.
//!
//! Host services run on blocking threads and may be reached from any program that embeds the core,
//! whether or not it runs tokio with I/O enabled. Requests therefore run on a dedicated one-thread
//! runtime (created on first use, never dropped) and the calling thread waits for the answer no
//! longer than the call's deadline.

use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nitejar_sdk::host::{HttpRequest, HttpResponse};
use nitejar_sdk::HostError;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;
/// The largest response body handed to a plugin.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// One request about to be made: the first, or one a redirect leads to.
pub(super) struct RedirectHop<'a> {
    pub(super) url: &'a str,
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) redirected_from: Option<&'a str>,
}

fn io_runtime() -> Result<&'static tokio::runtime::Runtime, HostError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("nitejar-host-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| HostError::Unavailable(format!("the host HTTP runtime did not start: {e}")))
}

pub(super) struct HttpClient {
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpClient {
    pub(super) fn new() -> Self {
        HttpClient {
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<reqwest::Client, HostError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| HostError::Unavailable(format!("the host HTTP client did not start: {e}")))
    }

    /// Makes `request`, following redirects; `check` is asked before every hop.
    pub(super) fn fetch(
        &self,
        request: &HttpRequest,
        deadline: Option<Instant>,
        check: impl Fn(&RedirectHop<'_>) -> Result<(), HostError>,
    ) -> Result<HttpResponse, HostError> {
        let limit = request
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let until = match (limit, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut url = Url::parse(&request.url).map_err(|e| {
            HostError::Failed(format!("`{}` is not an absolute URL: {e}", request.url))
        })?;
        let mut method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                HostError::Failed(format!("`{}` is not an HTTP method", request.method))
            })?;
        let mut headers = request.headers.clone();
        let mut body = request.body.clone();
        let mut from: Option<Url> = None;
        for _ in 0..=MAX_REDIRECTS {
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(HostError::Failed(format!(
                    "`{url}` is not an http or https URL"
                )));
            }
            let host = url.host_str().unwrap_or_default().to_string();
            let port = url.port_or_known_default().unwrap_or(0);
            check(&RedirectHop {
                url: url.as_str(),
                host: &host,
                port,
                redirected_from: from.as_ref().map(Url::as_str),
            })?;
            let timeout = match until {
                Some(u) => {
                    let left = u.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(HostError::Timeout);
                    }
                    Some(left)
                }
                None => None,
            };
            let response = self.send(method.clone(), url.clone(), &headers, &body, timeout)?;
            let location = (300..400)
                .contains(&response.status)
                .then(|| response.header("location").map(str::to_string))
                .flatten();
            let Some(location) = location else {
                return Ok(response);
            };
            let next = url
                .join(&location)
                .map_err(|e| HostError::Failed(format!("bad redirect to `{location}`: {e}")))?;
            if response.status == 303
                || (matches!(response.status, 301 | 302) && method == Method::POST)
            {
                method = Method::GET;
                body.clear();
                headers.retain(|(k, _)| {
                    !k.eq_ignore_ascii_case("content-type")
                        && !k.eq_ignore_ascii_case("content-length")
                });
            }
            if next.host_str() != url.host_str()
                || next.port_or_known_default() != url.port_or_known_default()
            {
                headers.retain(|(k, _)| {
                    !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie")
                });
            }
            from = Some(std::mem::replace(&mut url, next));
        }
        Err(HostError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Option<Duration>,
    ) -> Result<HttpResponse, HostError> {
        let client = self.client()?;
        let mut builder = client.request(method, url);
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| HostError::Failed(format!("bad header name `{k}`")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| HostError::Failed(format!("bad value for header `{k}`")))?;
            builder = builder.header(name, value);
        }
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let request = builder
            .body(body.to_vec())
            .build()
            .map_err(|e| HostError::Failed(e.to_string()))?;
        let (tx, rx) = mpsc::sync_channel(1);
        let task = io_runtime()?.spawn(async move {
            let _ = tx.send(execute(client, request).await);
        });
        let answer = match timeout {
            Some(t) => rx.recv_timeout(t).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => HostError::Timeout,
                mpsc::RecvTimeoutError::Disconnected => {
                    HostError::Failed("the request was dropped".into())
                }
            }),
            None => rx
                .recv()
                .map_err(|_| HostError::Failed("the request was dropped".into())),
        };
        if answer.is_err() {
            task.abort();
        }
        answer?
    }
}

async fn execute(
    client: reqwest::Client,
    request: reqwest::Request,
) -> Result<HttpResponse, HostError> {
    let mut response = client.execute(request).await.map_err(map_error)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_error)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HostError::Failed(format!(
                "the response is larger than {} MiB",
                MAX_BODY / (1024 * 1024)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn map_error(e: reqwest::Error) -> HostError {
    if e.is_timeout() {
        HostError::Timeout
    } else {
        HostError::Failed(e.to_string())
    }
}
