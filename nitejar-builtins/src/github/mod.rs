//! `builtin.github`: a GitHub App as a channel.
//!
//! Written against `nitejar-sdk` like any third-party plugin: every request to GitHub goes through
//! [`Host::http`], and the installations it learns about are kept with [`Host::write_file`] in the
//! plugin's own data directory.
//!
//! - **In**: the App's webhook points at the integration's URL; each delivery's
//!   `X-Hub-Signature-256` is checked against `webhookSecret`, then [`events`] decides what it is.
//! - **Out**: the App JWT ([`auth`]) buys an installation token (cached until five minutes before
//!   it expires), which posts the answer as an issue or pull-request comment ([`api`]).
//!
//! ## Duplicates
//!
//! GitHub's create-comment endpoint takes no idempotency key, so the
//! [`PostResponseOptions::idempotency_key`] the host passes is not used and GitHub cannot drop a
//! repeated answer. A failure is marked `retryable` only when trying again cannot post twice as far
//! as GitHub lets anyone know: a rate limit (429, or 403 with the rate-limit signs), a server error
//! (5xx), a network failure, or a timeout while minting the installation token (which posts
//! nothing), and only while no comment of a split answer has been posted (another attempt starts
//! from the first). A timeout while posting, any other 4xx, and a refusal by the host are final.
//! Two windows remain:
//!
//! - **a crash**: GitHub created the comment, but the process died before the job recorded the
//!   delivery. The run is retried after the restart and comments again;
//! - **a 5xx or a dropped connection after GitHub created the comment**, which the next attempt
//!   posts again. Rare, and indistinguishable from a comment that was not created.
//!
//! The API base is read from `NITEJAR_GITHUB_API_BASE` (default `https://api.github.com`; GitHub
//! Enterprise Server: `https://<host>/api/v3`) when the plugin is built, i.e. once at startup.

pub mod api;
pub mod auth;
pub mod config;
pub mod events;
pub mod installations;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use nitejar_sdk::host::LogLevel;
use nitejar_sdk::integration::{
    ConfigValidation, ConnectionTest, PostResponseOptions, PostResponseResult,
};
use nitejar_sdk::{
    Host, Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance, Plugin,
    WebhookParseResult, WebhookRequest,
};
use serde::Deserialize;
use serde_json::Value;

use self::api::{ApiError, RestApi, COMMENT_LIMIT, DEFAULT_API_BASE};
use self::auth::{AppKey, CachedToken, TokenCache};
use self::config::GitHubConfig;
use self::events::Delivery;
use self::installations::Installations;

/// The environment variable that overrides the REST API base URL.
pub const API_BASE_ENV: &str = "NITEJAR_GITHUB_API_BASE";

/// How long an installation token lives when GitHub does not say (it says: one hour).
const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The GitHub integration.
pub struct GitHub {
    api_base: String,
    clock: Clock,
    tokens: TokenCache,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl GitHub {
    /// Uses `NITEJAR_GITHUB_API_BASE`, or the public API when it is unset or empty.
    pub fn from_env() -> Self {
        match std::env::var(API_BASE_ENV) {
            Ok(base) if !base.trim().is_empty() => Self::with_api_base(base.trim()),
            _ => Self::with_api_base(DEFAULT_API_BASE),
        }
    }

    /// Talks to the REST API at `base` (e.g. `https://github.example.com/api/v3`).
    pub fn with_api_base(base: impl Into<String>) -> Self {
        GitHub {
            api_base: base.into().trim_end_matches('/').to_string(),
            clock: Arc::new(system_clock),
            tokens: TokenCache::default(),
        }
    }

    /// Replaces the clock (Unix seconds) used for JWTs and token expiry; for tests.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The REST API base URL in use.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    fn rest<'a>(&'a self, host: &'a dyn Host) -> RestApi<'a> {
        RestApi::new(&self.api_base, host)
    }

    /// An installation token: the cached one while it is fresh, else a new one.
    fn installation_token(
        &self,
        config: &GitHubConfig,
        app_id: &str,
        key: &AppKey,
        installation_id: u64,
        host: &dyn Host,
    ) -> Result<String, DeliveryError> {
        let now = self.now();
        if let Some(token) = self.tokens.get(app_id, installation_id, now) {
            return Ok(token);
        }
        let jwt = key.app_jwt(app_id, now).map_err(DeliveryError::auth)?;
        let minted = self
            .rest(host)
            .installation_token(&jwt, installation_id)
            .map_err(DeliveryError::Token)?;
        let expires_at = minted
            .expires_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(now + DEFAULT_TOKEN_LIFETIME_SECS, |d| d.as_secs());
        self.tokens.put(
            app_id,
            installation_id,
            CachedToken {
                token: minted.token.clone(),
                renew_at: auth::renew_at(now, expires_at, config.token_ttl),
            },
        );
        host.log(
            LogLevel::Debug,
            &format!("minted an installation token for installation {installation_id}"),
        );
        Ok(minted.token)
    }
}

impl Default for GitHub {
    fn default() -> Self {
        Self::from_env()
    }
}

/// A failure while delivering, before it becomes a [`PostResponseResult`].
enum DeliveryError {
    /// Minting the installation token failed: nothing was posted by that request.
    Token(ApiError),
    /// Posting a comment failed.
    Api(ApiError),
    Config(String),
}

impl DeliveryError {
    fn auth(e: auth::AuthError) -> Self {
        DeliveryError::Config(format!("privateKey: {e}"))
    }
}

/// Where an answer goes: the `response_context` that [`events::parse_delivery`] produced.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommentTarget {
    owner: String,
    repo: String,
    issue_number: u64,
    #[serde(default)]
    installation_id: Option<u64>,
}

impl Integration for GitHub {
    fn descriptor(&self) -> IntegrationDescriptor {
        config::descriptor()
    }

    fn validate_config(&self, config: &Value) -> ConfigValidation {
        config::validate(config)
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        instance: &IntegrationInstance,
        host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        let config = GitHubConfig::from_value(&instance.config)?;
        let secret = config.secret().ok_or_else(|| {
            IntegrationError::Unauthorized(
                "this integration has no webhookSecret, so no delivery can be verified; set the \
                 same secret here and in the GitHub App's webhook settings"
                    .into(),
            )
        })?;
        events::verify_signature(request, secret)?;
        match events::parse_delivery(request, &config)? {
            Delivery::Parsed(result) => Ok(result),
            Delivery::Installation(change) => {
                if change.action == "deleted" || change.action == "suspend" {
                    self.tokens.forget_installation(change.installation_id);
                }
                let summary = installations::record(host, &instance.id, &change, self.now())?;
                host.log(LogLevel::Info, &summary);
                Ok(WebhookParseResult::ignore(summary))
            }
        }
    }

    fn post_response(
        &self,
        instance: &IntegrationInstance,
        _work_item_id: &str,
        content: &str,
        response_context: Option<&Value>,
        _options: &PostResponseOptions,
        host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        let config = GitHubConfig::from_value(&instance.config)?;
        let (app_id, key) = config.app_credentials()?;
        let target: CommentTarget = response_context
            .cloned()
            .ok_or_else(|| "no response context".to_string())
            .and_then(|c| serde_json::from_value(c).map_err(|e| e.to_string()))
            .map_err(|e| {
                IntegrationError::BadRequest(format!(
                    "the response context does not say which issue to answer: {e}"
                ))
            })?;
        if !api::is_path_segment(&target.owner) || !api::is_path_segment(&target.repo) {
            return Err(IntegrationError::BadRequest(format!(
                "`{}/{}` is not a repository name",
                target.owner, target.repo
            )));
        }
        if content.trim().is_empty() {
            return Ok(PostResponseResult::failed(
                "the response is empty; GitHub does not accept an empty comment",
                false,
            ));
        }
        let full_name = format!("{}/{}", target.owner, target.repo);
        let installation_id = match target.installation_id {
            Some(id) => id,
            None => match Installations::load(host)?.installation_for(&instance.id, &full_name) {
                Some(id) => id,
                None => {
                    return Ok(PostResponseResult::failed(
                        format!(
                            "no GitHub App installation is known for {full_name}; install the App \
                             on the repository"
                        ),
                        false,
                    ))
                }
            },
        };

        let mut last_comment = None;
        for part in api::split_comment(content, COMMENT_LIMIT) {
            let mut refreshed = false;
            let id = loop {
                let token =
                    match self.installation_token(&config, &app_id, &key, installation_id, host) {
                        Ok(token) => token,
                        Err(e) => return Ok(delivery_failure(e, last_comment)),
                    };
                let posted = self.rest(host).create_comment(
                    &token,
                    &target.owner,
                    &target.repo,
                    target.issue_number,
                    &part,
                );
                match posted {
                    Ok(id) => break id,
                    // A cached token GitHub no longer honours (revoked, App reinstalled): mint anew once.
                    Err(e) if e.is_unauthorized() && !refreshed => {
                        self.tokens.forget(&app_id, installation_id);
                        refreshed = true;
                    }
                    Err(e) => return Ok(delivery_failure(DeliveryError::Api(e), last_comment)),
                }
            };
            last_comment = Some(id);
        }
        Ok(PostResponseResult::sent(
            last_comment.map(|id| id.to_string()),
        ))
    }

    fn test_connection(
        &self,
        config: &Value,
        host: &dyn Host,
    ) -> Result<ConnectionTest, IntegrationError> {
        let config = GitHubConfig::from_value(config)?;
        let (app_id, key) = config.app_credentials()?;
        let jwt = key
            .app_jwt(&app_id, self.now())
            .map_err(|e| IntegrationError::Config(format!("privateKey: {e}")))?;
        match self.rest(host).app(&jwt) {
            Ok(app) => {
                let name = app["slug"]
                    .as_str()
                    .or_else(|| app["name"].as_str())
                    .unwrap_or("GitHub App")
                    .to_string();
                Ok(ConnectionTest::ok(Some(name)))
            }
            Err(e) => {
                let error = if e.is_unauthorized() {
                    format!("GitHub rejected the App JWT ({e}); check appId and privateKey")
                } else {
                    e.to_string()
                };
                Ok(ConnectionTest::failed(error))
            }
        }
    }
}

/// The result of a delivery that stopped at `error`, after the comments up to `posted` went out.
fn delivery_failure(error: DeliveryError, posted: Option<u64>) -> PostResponseResult {
    let (message, retryable) = match error {
        // A token request that timed out is safe to repeat: a second token is all it can cost.
        DeliveryError::Token(e) => (e.to_string(), e.retryable() || e.timed_out()),
        DeliveryError::Api(e) => (e.to_string(), e.retryable()),
        DeliveryError::Config(message) => (message, false),
    };
    // Another attempt starts again from the first part of a split answer: once one is posted,
    // trying again would post it twice.
    let mut result = PostResponseResult::failed(message, retryable && posted.is_none());
    result.provider_ref = posted.map(|id| id.to_string());
    result
}

/// The plugin: the GitHub integration, reading its API base from the environment.
pub fn plugin() -> Plugin {
    Plugin::builder().integration(GitHub::from_env()).build()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use nitejar_sdk::testing::{instance, TestHost};
    use nitejar_sdk::{HostError, HttpRequest, HttpResponse};
    use serde_json::json;

    use super::*;

    type Handler =
        Box<dyn Fn(&HttpRequest, usize) -> Result<HttpResponse, HostError> + Send + Sync>;

    fn answer(status: u16, body: Value) -> Result<HttpResponse, HostError> {
        Ok(HttpResponse::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.to_string()))
    }

    fn token() -> Result<HttpResponse, HostError> {
        answer(201, json!({ "token": "ghs_test" }))
    }

    /// Posts `content` to a GitHub whose every request `handler` answers, with the number of
    /// comments asked for before it.
    fn post(content: &str, handler: Handler) -> PostResponseResult {
        let comments = Arc::new(AtomicUsize::new(0));
        let host = TestHost::new().with_http_handler(move |request| {
            let n = if request.url.ends_with("/comments") {
                comments.fetch_add(1, Ordering::SeqCst)
            } else {
                0
            };
            handler(request, n)
        });
        let config = json!({
            "appId": "12345",
            "privateKey": include_str!("../../tests/fixtures/github/app-key.pem"),
        });
        GitHub::with_api_base("https://github.test")
            .post_response(
                &instance("github", config),
                "wi-1",
                content,
                Some(&json!({ "owner": "o", "repo": "r", "issueNumber": 1, "installationId": 9 })),
                &PostResponseOptions::default(),
                &host,
            )
            .unwrap()
    }

    #[test]
    fn a_failure_after_part_of_the_answer_was_posted_is_not_retried() {
        let long = "x".repeat(COMMENT_LIMIT + 10);
        let result = post(
            &long,
            Box::new(|request, n| match (request.url.ends_with("/comments"), n) {
                (false, _) => token(),
                (true, 0) => answer(201, json!({ "id": 11 })),
                (true, _) => answer(502, json!({ "message": "Server Error" })),
            }),
        );
        assert!(!result.success);
        // A 502 on the first comment is worth another attempt; here it would repeat comment 11.
        assert!(!result.retryable, "{result:?}");
        assert_eq!(result.provider_ref.as_deref(), Some("11"));

        let result = post(
            "short",
            Box::new(|request, _| match request.url.ends_with("/comments") {
                false => token(),
                true => answer(502, json!({ "message": "Server Error" })),
            }),
        );
        assert!(result.retryable, "nothing was posted: {result:?}");
    }

    #[test]
    fn a_timeout_is_retried_only_where_it_cannot_have_posted() {
        let minting = post(
            "hi",
            Box::new(|request, _| match request.url.ends_with("/comments") {
                false => Err(HostError::Timeout),
                true => answer(201, json!({ "id": 1 })),
            }),
        );
        assert!(!minting.success);
        assert!(
            minting.retryable,
            "a token costs nothing twice: {minting:?}"
        );

        let posting = post(
            "hi",
            Box::new(|request, _| match request.url.ends_with("/comments") {
                false => token(),
                true => Err(HostError::Timeout),
            }),
        );
        assert!(!posting.success);
        assert!(
            !posting.retryable,
            "the comment may exist, and GitHub cannot drop a second: {posting:?}"
        );
    }
}
