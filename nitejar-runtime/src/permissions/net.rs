//! The host's HTTP client: redirects followed by hand so that every hop is checked, host names
//! resolved by [`GuardedResolver`] so that a declared name reaches public addresses only (see
//! [`super::egress`]), no proxy taken from the environment, deadlines applied, and the work done on
//! a small runtime of its own.
//!
//! Host services run on blocking threads and may be reached from any program that embeds the core,
//! whether or not it runs tokio with I/O enabled. Requests therefore run on a dedicated one-thread
//! runtime (created on first use, never dropped) and the calling thread waits for the answer no
//! longer than the call's deadline.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nitejar_sdk::host::{HttpRequest, HttpResponse};
use nitejar_sdk::HostError;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::egress::{EgressPolicy, EgressRefusal, GuardedResolver};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;
/// The largest response body handed to a plugin.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// One request about to be made: the first, or one a redirect leads to.
pub(super) struct RedirectHop<'a> {
    pub(super) url: &'a Url,
    /// As in the URL (normalised by the `url` crate): a lower-case name, a dotted IPv4 address or
    /// a bracketed IPv6 address.
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) redirected_from: Option<&'a Url>,
}

/// A URL as receipts and logs may show it: scheme, host, port and path. User name, password,
/// query and fragment are dropped — they are where tokens and credentials travel.
///
/// `https://user:pw@api.example.com:8443/v1/x?token=abc#f` → `https://api.example.com:8443/v1/x`
pub(super) fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have credentials (no host), which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Why sending a request failed: a host name that resolved to an address it may not reach, or
/// anything else.
enum SendError {
    Refused(EgressRefusal),
    Host(HostError),
}

impl From<HostError> for SendError {
    fn from(e: HostError) -> Self {
        SendError::Host(e)
    }
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
    egress: Arc<EgressPolicy>,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpClient {
    /// A client whose host names reach what `egress` allows.
    pub(super) fn new(egress: EgressPolicy) -> Self {
        HttpClient {
            egress: Arc::new(egress),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<reqwest::Client, HostError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    // A proxy would resolve names on its side, past the egress check.
                    .no_proxy()
                    .dns_resolver(GuardedResolver::new(self.egress.clone()))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| HostError::Unavailable(format!("the host HTTP client did not start: {e}")))
    }

    /// Makes `request`, following redirects. `check` is asked before every hop; when a hop's host
    /// name resolves to an address it may not reach, `refused` makes the error.
    pub(super) fn fetch(
        &self,
        request: &HttpRequest,
        deadline: Option<Instant>,
        check: impl Fn(&RedirectHop<'_>) -> Result<(), HostError>,
        refused: impl Fn(&RedirectHop<'_>, &EgressRefusal) -> HostError,
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
                    "`{}` is not an http or https URL",
                    redacted_url(&url)
                )));
            }
            let host = url.host_str().unwrap_or_default().to_string();
            let port = url.port_or_known_default().unwrap_or(0);
            let hop = RedirectHop {
                url: &url,
                host: &host,
                port,
                redirected_from: from.as_ref(),
            };
            check(&hop)?;
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
            let response = match self.send(method.clone(), url.clone(), &headers, &body, timeout) {
                Ok(response) => response,
                Err(SendError::Refused(refusal)) => return Err(refused(&hop, &refusal)),
                Err(SendError::Host(e)) => return Err(e),
            };
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
    ) -> Result<HttpResponse, SendError> {
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
            .map_err(|e| HostError::Failed(e.without_url().to_string()))?;
        let (tx, rx) = mpsc::sync_channel(1);
        let task = io_runtime()?.spawn(async move {
            let _ = tx.send(execute(client, request).await);
        });
        let answer = match timeout {
            Some(t) => rx.recv_timeout(t).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => SendError::Host(HostError::Timeout),
                mpsc::RecvTimeoutError::Disconnected => {
                    SendError::Host(HostError::Failed("the request was dropped".into()))
                }
            }),
            None => rx
                .recv()
                .map_err(|_| SendError::Host(HostError::Failed("the request was dropped".into()))),
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
) -> Result<HttpResponse, SendError> {
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
            return Err(SendError::Host(HostError::Failed(format!(
                "the response is larger than {} MiB",
                MAX_BODY / (1024 * 1024)
            ))));
        }
        body.extend_from_slice(&chunk);
    }
    let mut answer = HttpResponse::new(status).with_body(body);
    answer.headers = headers;
    Ok(answer)
}

/// The egress refusal behind a failed request, if that is what failed it; otherwise the error for
/// the plugin, its causes spelled out (reqwest's own message is only "error sending request") and
/// without the URL, which the plugin knows and which may carry credentials.
fn map_error(e: reqwest::Error) -> SendError {
    let mut source = std::error::Error::source(&e);
    let mut causes = Vec::new();
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<EgressRefusal>() {
            return SendError::Refused(refusal.clone());
        }
        causes.push(cause.to_string());
        source = cause.source();
    }
    if e.is_timeout() {
        return SendError::Host(HostError::Timeout);
    }
    let mut message = e.without_url().to_string();
    for cause in causes {
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    SendError::Host(HostError::Failed(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(url: &str) -> String {
        redacted_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn receipts_see_scheme_host_port_and_path_only() {
        assert_eq!(
            redacted("https://user:pw@api.example.com:8443/v1/x?token=abc#f"),
            "https://api.example.com:8443/v1/x"
        );
        assert_eq!(
            redacted("http://token@example.com/?secret=1"),
            "http://example.com/"
        );
        assert_eq!(
            redacted("https://example.com:443/a%20b?q"),
            "https://example.com/a%20b"
        );
        assert_eq!(redacted("http://[::1]:8080/p#frag"), "http://[::1]:8080/p");
        assert_eq!(
            redacted("http://example.com/path;params"),
            "http://example.com/path;params"
        );
    }

    /// Other spellings of an address come out of the `url` crate as the spelling rules compare.
    #[test]
    fn address_spellings_are_normalised_before_the_rule_sees_them() {
        for (spelling, host) in [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]"),
            ("http://[0:0:0:0:0:0:0:1]/", "[::1]"),
            ("http://LOCALHOST/", "localhost"),
            ("http://169.254.169.254/", "169.254.169.254"),
            ("http://0xa9fea9fe/", "169.254.169.254"),
        ] {
            let url = Url::parse(spelling).unwrap();
            assert_eq!(url.host_str(), Some(host), "{spelling}");
        }
        let declared = super::super::NetworkRule::parse("127.0.0.1");
        for spelling in ["http://2130706433/", "http://0x7f.1/", "http://127.1/"] {
            let url = Url::parse(spelling).unwrap();
            assert!(declared.allows(url.host_str().unwrap(), 80), "{spelling}");
        }
        let mapped = Url::parse("http://[::ffff:127.0.0.1]/").unwrap();
        assert!(!declared.allows(mapped.host_str().unwrap(), 80));
        let named = super::super::NetworkRule::parse("evil.example.com");
        assert!(!named.allows(mapped.host_str().unwrap(), 80));
    }
}
