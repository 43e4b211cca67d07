//! A double of the GitHub REST API for a GitHub App: it verifies the App JWT with the App's public
//! key (RS256, `iss`, `iat`, `exp`), mints installation tokens that expire, checks them on comment
//! requests, and requires the headers GitHub requires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nitejar_sdk::testing::TestHost;
use nitejar_sdk::{HostError, HttpRequest, HttpResponse};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde_json::{json, Value};
use sha2::Sha256;

use super::fixture_text;

pub const BASE: &str = "https://github.test/api/v3";
pub const APP_ID: &str = "123456";
pub const INSTALLATION: u64 = 51234567;
/// The moment the tests start at: 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600;

/// A comment the double accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct PostedComment {
    pub path: String,
    pub body: String,
    pub token: String,
    pub id: u64,
}

#[derive(Default)]
struct State {
    /// token → (installation, expires at)
    tokens: HashMap<String, (u64, u64)>,
    minted: u64,
    comments: Vec<PostedComment>,
    jwt_claims: Vec<Value>,
}

/// The fake REST API, with its own clock shared with the integration under test.
#[derive(Clone)]
pub struct FakeGitHub {
    state: Arc<Mutex<State>>,
    public_key: RsaPublicKey,
    pub clock: Arc<AtomicU64>,
}

fn answer(status: u16, body: Value) -> Result<HttpResponse, HostError> {
    Ok(HttpResponse::new(status)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(serde_json::to_vec(&body).unwrap()))
}

fn message(status: u16, text: &str) -> Result<HttpResponse, HostError> {
    answer(
        status,
        json!({ "message": text, "documentation_url": "https://docs.github.com/rest" }),
    )
}

impl FakeGitHub {
    pub fn new() -> Self {
        let public_key = RsaPublicKey::from_public_key_pem(&fixture_text("github/app-key.pub.pem"))
            .expect("test public key");
        FakeGitHub {
            state: Arc::default(),
            public_key,
            clock: Arc::new(AtomicU64::new(T0)),
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Moves the shared clock forward.
    pub fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    /// A clock function for `GitHub::with_clock`.
    pub fn clock_fn(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let clock = self.clock.clone();
        move || clock.load(Ordering::SeqCst)
    }

    pub fn host(&self) -> TestHost {
        let fake = self.clone();
        TestHost::new().with_http_handler(move |request| fake.handle(request))
    }

    pub fn minted(&self) -> u64 {
        self.state.lock().unwrap().minted
    }

    pub fn comments(&self) -> Vec<PostedComment> {
        self.state.lock().unwrap().comments.clone()
    }

    /// Claims of every JWT that verified.
    pub fn jwt_claims(&self) -> Vec<Value> {
        self.state.lock().unwrap().jwt_claims.clone()
    }

    /// Revokes every installation token issued so far (as an App reinstall does).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    fn verify_jwt(&self, jwt: &str) -> Result<Value, String> {
        let mut parts = jwt.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        if header["alg"] != "RS256" {
            return Err("alg must be RS256".into());
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| e.to_string())?;
        let signature = Signature::try_from(signature.as_slice()).map_err(|e| e.to_string())?;
        VerifyingKey::<Sha256>::new(self.public_key.clone())
            .verify(jwt_prefix(jwt).as_bytes(), &signature)
            .map_err(|_| "signature does not verify with the App's public key".to_string())?;
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let now = self.now();
        let iat = claims["iat"].as_u64().ok_or("iat missing")?;
        let exp = claims["exp"].as_u64().ok_or("exp missing")?;
        let iss = match &claims["iss"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if iss != APP_ID {
            return Err(format!("iss {} is not the App", claims["iss"]));
        }
        if iat > now || exp <= now || exp - iat > 600 {
            return Err(
                "'Expiration time' claim ('exp') is too far in the future or expired".into(),
            );
        }
        self.state.lock().unwrap().jwt_claims.push(claims.clone());
        Ok(claims)
    }

    fn handle(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        let Some(path) = request.url.strip_prefix(BASE) else {
            return Err(HostError::Failed(format!("no route to {}", request.url)));
        };
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if header("user-agent").is_none_or(str::is_empty) {
            return message(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header");
        }
        if header("accept") != Some("application/vnd.github+json")
            || header("x-github-api-version") != Some("2022-11-28")
        {
            return message(400, "expected GitHub's media type and API version headers");
        }
        let bearer = header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["app"]) => match self.verify_jwt(&bearer) {
                Ok(_) => answer(
                    200,
                    json!({ "id": 123456, "slug": "nitejar", "name": "Nitejar", "owner": { "login": "octo-org" } }),
                ),
                Err(e) => message(401, &format!("A JSON web token could not be decoded: {e}")),
            },
            ("POST", ["app", "installations", id, "access_tokens"]) => {
                if let Err(e) = self.verify_jwt(&bearer) {
                    return message(401, &format!("A JSON web token could not be decoded: {e}"));
                }
                let Ok(id) = id.parse::<u64>() else {
                    return message(404, "Not Found");
                };
                if id != INSTALLATION {
                    return message(404, "Not Found");
                }
                let mut state = self.state.lock().unwrap();
                state.minted += 1;
                let token = format!("ghs_test{}", state.minted);
                let expires_at = self.now() + 3600;
                state.tokens.insert(token.clone(), (id, expires_at));
                let expires =
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires_at));
                answer(
                    201,
                    json!({
                        "token": token,
                        "expires_at": expires.to_string(),
                        "permissions": { "issues": "write", "metadata": "read" },
                        "repository_selection": "selected"
                    }),
                )
            }
            ("POST", ["repos", owner, repo, "issues", number, "comments"]) => {
                let mut state = self.state.lock().unwrap();
                let valid = state
                    .tokens
                    .get(&bearer)
                    .is_some_and(|(_, expires_at)| *expires_at > self.now());
                if !valid {
                    return message(401, "Bad credentials");
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let Some(text) = body["body"].as_str().filter(|t| !t.is_empty()) else {
                    return message(422, "Validation Failed");
                };
                if text.chars().count() > 65_536 {
                    return message(
                        422,
                        "Validation Failed: body is too long (maximum is 65536 characters)",
                    );
                }
                let id = 2_566_100_000 + state.comments.len() as u64;
                state.comments.push(PostedComment {
                    path: path.to_string(),
                    body: text.to_string(),
                    token: bearer.clone(),
                    id,
                });
                answer(
                    201,
                    json!({
                        "id": id,
                        "html_url": format!("https://github.test/{owner}/{repo}/issues/{number}#issuecomment-{id}"),
                        "body": text,
                        "user": { "login": "nitejar[bot]", "type": "Bot" }
                    }),
                )
            }
            _ => message(404, "Not Found"),
        }
    }
}

fn jwt_prefix(jwt: &str) -> &str {
    match jwt.rfind('.') {
        Some(i) => &jwt[..i],
        None => jwt,
    }
}
