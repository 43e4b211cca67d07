//! The few GitHub REST calls the integration makes, through the host's HTTP service.

use nitejar_sdk::{Host, HostError, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// The public REST API. GitHub Enterprise Server: `https://<host>/api/v3`.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";

/// The REST API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";

/// GitHub's limit on a comment body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// Why a REST call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The host refused or could not make the request, or brought back no answer.
    #[error("GitHub {action}: the request could not be made: {detail}")]
    Host {
        action: String,
        detail: String,
        /// What kind of failure it was: whether GitHub may have acted on the request.
        cause: Unanswered,
    },
    /// GitHub answered with an error status.
    #[error("GitHub {action} failed (HTTP {status}): {message}")]
    Status {
        action: String,
        status: u16,
        message: String,
        /// A rate limit: trying later works.
        rate_limited: bool,
    },
    /// The answer was not the JSON expected.
    #[error("GitHub {action}: unexpected answer (HTTP {status}): {detail}")]
    Decode {
        action: String,
        status: u16,
        detail: String,
    },
}

/// Why the host brought back no answer from GitHub, as far as it matters for trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// The host would not make the request (a permission, a service it does not offer): it never
    /// left, and trying again meets the same refusal.
    Refused,
    /// No answer in time: GitHub may have received the request and acted on it.
    TimedOut,
    /// A network failure: name resolution, a refused or reset connection, TLS. Usually the request
    /// never reached GitHub; the host cannot tell a connection lost after GitHub read the request.
    Network,
}

impl Unanswered {
    fn of(error: &HostError) -> Self {
        match error {
            HostError::Denied { .. } | HostError::Unavailable(_) => Unanswered::Refused,
            HostError::Timeout | HostError::Cancelled => Unanswered::TimedOut,
            HostError::Failed(_) => Unanswered::Network,
            // A kind of refusal this build does not know: not retried, as a refusal is not.
            _ => Unanswered::Refused,
        }
    }
}

impl ApiError {
    /// Whether trying the same request again may succeed without GitHub acting on it twice: a rate
    /// limit (429, or 403 with the rate-limit signs), a server error (5xx), a network failure. Not
    /// a timeout (the comment may have been created), not a refusal by the host, not another 4xx
    /// (the same request meets the same answer). A 5xx may still come after GitHub created the
    /// comment; that is rare, and GitHub gives no way to tell.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Host { cause, .. } => *cause == Unanswered::Network,
            ApiError::Status {
                status,
                rate_limited,
                ..
            } => *rate_limited || *status == 429 || *status >= 500,
            ApiError::Decode { status, .. } => *status >= 500,
        }
    }

    /// Whether no answer came in time (GitHub may have acted on the request).
    pub fn timed_out(&self) -> bool {
        matches!(
            self,
            ApiError::Host {
                cause: Unanswered::TimedOut,
                ..
            }
        )
    }

    /// Whether GitHub refused the credentials (a revoked token, a wrong key).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Status { status: 401, .. })
    }
}

/// An installation access token as GitHub returns it.
#[derive(Clone, Debug, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    /// RFC 3339, e.g. `2026-01-01T12:00:00Z`.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The REST API at a base URL.
pub struct RestApi<'a> {
    base: &'a str,
    host: &'a dyn Host,
}

impl<'a> RestApi<'a> {
    pub fn new(base: &'a str, host: &'a dyn Host) -> Self {
        RestApi {
            base: base.trim_end_matches('/'),
            host,
        }
    }

    fn send(
        &self,
        action: &str,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut request = match body {
            Some(body) => HttpRequest::post_json(url, body),
            None => HttpRequest::get(url),
        };
        request.method = method.into();
        let request = request
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "nitejar")
            .header("x-github-api-version", API_VERSION)
            .header("authorization", format!("Bearer {bearer}"));
        let response = self.host.http(&request).map_err(|e| ApiError::Host {
            action: action.into(),
            detail: e.to_string(),
            cause: Unanswered::of(&e),
        })?;
        if !response.is_success() {
            return Err(status_error(action, &response));
        }
        response.json().map_err(|e| ApiError::Decode {
            action: action.into(),
            status: response.status,
            detail: e.to_string(),
        })
    }

    /// `POST /app/installations/{id}/access_tokens` with the App JWT.
    pub fn installation_token(
        &self,
        jwt: &str,
        installation_id: u64,
    ) -> Result<InstallationToken, ApiError> {
        let action = "installation token";
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let answer = self.send(action, "POST", &path, jwt, Some(&json!({})))?;
        serde_json::from_value(answer).map_err(|e| ApiError::Decode {
            action: action.into(),
            status: 201,
            detail: e.to_string(),
        })
    }

    /// `POST /repos/{owner}/{repo}/issues/{number}/comments`; returns the comment's id.
    pub fn create_comment(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<u64, ApiError> {
        let action = "create comment";
        let path = format!("/repos/{owner}/{repo}/issues/{number}/comments");
        let answer = self.send(action, "POST", &path, token, Some(&json!({ "body": body })))?;
        answer["id"].as_u64().ok_or_else(|| ApiError::Decode {
            action: action.into(),
            status: 201,
            detail: "the created comment has no id".into(),
        })
    }

    /// `GET /app` with the App JWT: the App's own description.
    pub fn app(&self, jwt: &str) -> Result<Value, ApiError> {
        self.send("get app", "GET", "/app", jwt, None)
    }
}

fn status_error(action: &str, response: &HttpResponse) -> ApiError {
    let message = response
        .json::<Value>()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let text = response.text();
            let text = text.trim();
            if text.is_empty() {
                "no message given".to_string()
            } else {
                text.chars().take(300).collect()
            }
        });
    let rate_limited = response.status == 403
        && (response.header("x-ratelimit-remaining") == Some("0")
            || message.to_ascii_lowercase().contains("rate limit"));
    ApiError::Status {
        action: action.into(),
        status: response.status,
        message,
        rate_limited,
    }
}

/// Splits a comment that is longer than GitHub accepts into several, at line breaks where it can.
pub fn split_comment(body: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for line in body.split_inclusive('\n') {
        let mut line = line;
        loop {
            let line_len = line.chars().count();
            if current_len + line_len <= limit {
                current.push_str(line);
                current_len += line_len;
                break;
            }
            if current_len > 0 {
                parts.push(std::mem::take(&mut current));
                current_len = 0;
                continue;
            }
            // A single line longer than a whole comment: cut it.
            let cut = line
                .char_indices()
                .nth(limit)
                .map_or(line.len(), |(i, _)| i);
            parts.push(line[..cut].to_string());
            line = &line[cut..];
        }
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Whether `name` can go into a REST path as an owner or repository name.
pub fn is_path_segment(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_split_at_lines_and_keep_every_character() {
        let body = "aaaa\nbbbb\ncccccccccccc\nd";
        let parts = split_comment(body, 10);
        assert!(parts.iter().all(|p| p.chars().count() <= 10), "{parts:?}");
        assert_eq!(parts.concat(), body);
        assert_eq!(parts[0], "aaaa\nbbbb\n");
        assert_eq!(split_comment("short", 10), vec!["short".to_string()]);
    }

    #[test]
    fn path_segments() {
        assert!(is_path_segment("octo-org"));
        assert!(is_path_segment("repo.rs"));
        assert!(!is_path_segment(".."));
        assert!(!is_path_segment("a/b"));
        assert!(!is_path_segment(""));
    }
}
