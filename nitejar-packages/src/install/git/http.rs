//! A smart-HTTP transport for libgit2 over reqwest (rustls), so https remotes work without
//! libgit2's OpenSSL backend. Fetch only (`git-upload-pack`); pushing is not something an
//! installer does.
//!
//! The protocol is stateless: listing the refs is `GET <url>/info/refs?service=git-upload-pack`,
//! and each negotiation round is one `POST <url>/git-upload-pack` whose body libgit2 writes to the
//! stream before reading the answer.

use std::io::{self, Read, Write};
use std::sync::Once;
use std::time::Duration;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

/// Registers the transport for `http://` and `https://` (once per process).
pub(super) fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        for prefix in ["http", "https"] {
            // SAFETY: `git2::transport::register` must not race with the creation of other
            // transports. It runs inside a `Once`, before this module starts any git operation,
            // and this crate is the only user of git2 in the process.
            let registered = unsafe {
                git2::transport::register(prefix, |remote| {
                    Transport::smart(remote, true, HttpSubtransport::new())
                })
            };
            if let Err(e) = registered {
                tracing::error!("the git {prefix} transport could not be registered: {e}");
            }
        }
    });
}

struct HttpSubtransport {
    client: Result<reqwest::blocking::Client, String>,
}

impl HttpSubtransport {
    fn new() -> Self {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("git/2.0 (nitejar/", env!("CARGO_PKG_VERSION"), ")"))
            .build()
            .map_err(|e| e.to_string());
        HttpSubtransport { client }
    }
}

impl SmartSubtransport for HttpSubtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let client = self
            .client
            .clone()
            .map_err(|e| git2::Error::from_str(&format!("the HTTP client did not start: {e}")))?;
        let base = url.trim_end_matches('/');
        let (method, url, content_type, expect) = match action {
            Service::UploadPackLs => (
                reqwest::Method::GET,
                format!("{base}/info/refs?service=git-upload-pack"),
                None,
                "application/x-git-upload-pack-advertisement",
            ),
            Service::UploadPack => (
                reqwest::Method::POST,
                format!("{base}/git-upload-pack"),
                Some("application/x-git-upload-pack-request"),
                "application/x-git-upload-pack-result",
            ),
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str(
                    "pushing over HTTP is not supported by this transport",
                ))
            }
        };
        Ok(Box::new(HttpStream {
            client,
            method,
            url,
            content_type,
            expect,
            body: Vec::new(),
            response: None,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

struct HttpStream {
    client: reqwest::blocking::Client,
    method: reqwest::Method,
    url: String,
    content_type: Option<&'static str>,
    expect: &'static str,
    body: Vec<u8>,
    response: Option<reqwest::blocking::Response>,
}

impl HttpStream {
    fn send(&mut self) -> io::Result<()> {
        let mut url = reqwest::Url::parse(&self.url).map_err(io::Error::other)?;
        let (user, password) = (
            url.username().to_string(),
            url.password().map(str::to_string),
        );
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut request = self
            .client
            .request(self.method.clone(), url)
            .header("accept", self.expect);
        if !user.is_empty() || password.is_some() {
            request = request.basic_auth(user, password);
        }
        if let Some(content_type) = self.content_type {
            request = request
                .header("content-type", content_type)
                .body(std::mem::take(&mut self.body));
        }
        let response = request.send().map_err(io::Error::other)?;
        let status = response.status();
        if !status.is_success() {
            return Err(io::Error::other(format!(
                "{} answered {}",
                self.url,
                status.as_u16()
            )));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with(self.expect) {
            return Err(io::Error::other(format!(
                "{} is not a smart-HTTP git server (it answered `{content_type}`, not `{}`)",
                self.url, self.expect
            )));
        }
        self.response = Some(response);
        Ok(())
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            self.send()?;
        }
        match &mut self.response {
            Some(response) => response.read(buf),
            None => Ok(0),
        }
    }
}

impl Write for HttpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.body.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
