//! Who may use the admin surface.
//!
//! One credential, the **admin token**: `NITEJAR_ADMIN_TOKEN`, or — when that is unset — a token
//! generated on first start, printed once in the log and stored only as its SHA-256 in
//! `admin_settings` (several servers sharing a Postgres database share it; the first to start wins).
//! SHA-256 rather than a password hash: a generated token carries 256 random bits and an operator's
//! token must have at least 16 characters, so there is nothing to slow down, and every API call
//! checks it.
//!
//! - The JSON API takes `Authorization: Bearer <admin token>`.
//! - The admin UI signs in with the token and gets a session: a random token in an `HttpOnly`,
//!   `SameSite=Strict` cookie (`Secure` behind https), stored as its SHA-256 in `admin_sessions`.
//!   Sessions end after 12 idle hours or 7 days, at sign-out, or as soon as the admin token is no
//!   longer the one they were opened with (each carries a keyed fingerprint of it).
//! - Every state-changing request made with a session cookie carries the session's CSRF token (a
//!   form field `_csrf`, the `X-CSRF-Token` header, or `?_csrf=` on multipart forms) and must not
//!   come from another site (`Origin`, `Referer`, `Sec-Fetch-Site`).
//! - `/metrics` also accepts `NITEJAR_METRICS_TOKEN`, which opens nothing else.
//! - Failed tokens are counted per client address ([`throttle`]); an address that keeps failing
//!   gets 429 for a while.
//! - Webhook routes are not behind any of this: each integration checks its own signature.
//!
//! Two walls check all of it. Every admin handler takes an [`Admin`] (or [`AdminForm`],
//! [`MetricsReader`], [`SignInForm`]) extractor that verifies the credential itself, and the route
//! table only registers an admin route whose handler does ([`crate::routes`]); in front of the
//! router, [`guard`] applies the same checks to every path the table marks as protected.

pub mod admin;
mod client;
pub mod guard;
mod origin;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::HttpRequest;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use nitejar_core::crypto::Key;
use nitejar_core::store::{new_id, AdminSessionRow, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;

pub use admin::{Admin, AdminForm, MetricsReader, Refusal, SignInForm};
pub use client::parse_trusted_proxies;
use throttle::Throttle;

/// The `admin_settings` key of a generated admin token's SHA-256.
pub const TOKEN_HASH_SETTING: &str = "admin_token_sha256";
/// The session cookie.
pub const SESSION_COOKIE: &str = "nitejar_session";
/// The cookie that carries the sign-in form's CSRF token before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "nitejar_login_csrf";
/// A session ends this long after sign-in, however active.
const SESSION_MAX_MS: i64 = 7 * 24 * 3600 * 1000;
/// A session ends after this long without a request.
const SESSION_IDLE_MS: i64 = 12 * 3600 * 1000;
/// `last_seen_at` is written at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// Why the admin credential could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the admin token could not be read or stored: {0}")]
    Store(#[from] StoreError),
    #[error("could not generate a random token: {0}")]
    Random(String),
}

/// Where the admin token came from, for the startup log.
pub enum TokenOrigin {
    /// `NITEJAR_ADMIN_TOKEN`.
    Env,
    /// A token generated on an earlier start (its hash is stored).
    Stored,
    /// Generated now: the only time it is ever shown.
    Generated(String),
}

/// A signed-in session.
#[derive(Clone, Debug)]
pub struct Session {
    /// `admin_sessions.id`.
    pub id: String,
    /// The CSRF token of this session: an HMAC of the session token, so it needs no storage and
    /// changes with every sign-in.
    pub csrf: String,
}

/// Where the admin token is kept.
enum TokenSource {
    /// `NITEJAR_ADMIN_TOKEN`: its SHA-256, fixed for the life of the process.
    Env([u8; 32]),
    /// The stored hash of a generated token, read at every check, so that
    /// `nitejar admin reset-token` on a running server takes effect at the next request.
    Stored,
}

/// The admin credential and sessions.
pub struct AdminAuth {
    token: TokenSource,
    metrics_token_hash: Option<[u8; 32]>,
    store: Arc<dyn Store>,
    /// Keys the token fingerprints sessions carry (derived from the encryption key, so a copy of
    /// the database alone cannot be used to test guesses of an operator's token).
    fingerprint_key: [u8; 32],
    /// Session cookies are always `Secure` (the public URL is https).
    pub always_secure: bool,
    /// Failed credentials per client address.
    pub throttle: Throttle,
    /// `NITEJAR_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<IpNet>,
}

/// The purpose the fingerprint key is derived for (see [`nitejar_core::crypto::Key::derive`]).
const FINGERPRINT_PURPOSE: &str = "nitejar admin session token fingerprint v1";

/// SHA-256 of a token.
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A new random token: 32 bytes, base64url.
pub fn random_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn csrf_of(session_token: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(session_token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(b"nitejar admin csrf v1");
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm cannot be reached, and an empty token fails
        // every comparison anyway.
        Err(_) => String::new(),
    }
}

/// Compares two strings in constant time (for tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl AdminAuth {
    /// Sets up the admin credential: `NITEJAR_ADMIN_TOKEN`, the stored hash of a generated token,
    /// or a new generated token. `key` is the encryption key (session fingerprints are keyed by a
    /// key derived from it).
    pub async fn init(
        store: Arc<dyn Store>,
        config: &Config,
        key: &Key,
    ) -> Result<(AdminAuth, TokenOrigin), AuthError> {
        let (token, origin) = match &config.admin_token {
            Some(token) => (TokenSource::Env(sha256(token.expose())), TokenOrigin::Env),
            None => (
                TokenSource::Stored,
                Self::stored_or_generated(&*store).await?.1,
            ),
        };
        let auth = AdminAuth {
            token,
            metrics_token_hash: config.metrics_token.as_ref().map(|t| sha256(t.expose())),
            store,
            fingerprint_key: key.derive(FINGERPRINT_PURPOSE),
            always_secure: config
                .public_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https"),
            throttle: Throttle::new(config.auth_throttle),
            trusted_proxies: config.trusted_proxies.clone(),
        };
        Ok((auth, origin))
    }

    async fn stored_or_generated(store: &dyn Store) -> Result<([u8; 32], TokenOrigin), AuthError> {
        if let Some(hash) = Self::stored_hash(store).await? {
            return Ok((hash, TokenOrigin::Stored));
        }
        let token = format!("njt_{}", random_token()?);
        let hash = sha256(&token);
        if store
            .put_admin_setting(TOKEN_HASH_SETTING, &hex::encode(hash), false)
            .await?
        {
            return Ok((hash, TokenOrigin::Generated(token)));
        }
        // Another server sharing the database stored its token first: that one is the token.
        match Self::stored_hash(store).await? {
            Some(hash) => Ok((hash, TokenOrigin::Stored)),
            None => Ok((hash, TokenOrigin::Generated(token))),
        }
    }

    async fn stored_hash(store: &dyn Store) -> Result<Option<[u8; 32]>, AuthError> {
        let stored = store.get_admin_setting(TOKEN_HASH_SETTING).await?;
        Ok(stored
            .and_then(|h| hex::decode(h.trim()).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()))
    }

    /// Replaces the stored admin token with a new one and ends every session; returns the token.
    /// (`nitejar admin reset-token`; `NITEJAR_ADMIN_TOKEN`, when set, still wins.)
    pub async fn reset_token(store: &dyn Store) -> Result<String, AuthError> {
        let token = format!("njt_{}", random_token()?);
        store
            .put_admin_setting(TOKEN_HASH_SETTING, &hex::encode(sha256(&token)), true)
            .await?;
        store
            .delete_stale_admin_sessions(i64::MAX, i64::MAX)
            .await?;
        Ok(token)
    }

    /// The SHA-256 of the admin token now: the configured one, or the stored one as it is in the
    /// database at this moment (`None` if it has been removed: then no token is the admin token).
    async fn token_hash(&self) -> Result<Option<[u8; 32]>, AuthError> {
        match &self.token {
            TokenSource::Env(hash) => Ok(Some(*hash)),
            TokenSource::Stored => Self::stored_hash(&*self.store).await,
        }
    }

    /// Whether `presented` is the admin token.
    pub async fn is_admin_token(&self, presented: &str) -> Result<bool, AuthError> {
        if presented.is_empty() {
            return Ok(false);
        }
        Ok(self
            .token_hash()
            .await?
            .is_some_and(|hash| bool::from(sha256(presented).ct_eq(&hash))))
    }

    /// The fingerprint sessions opened with the token of this hash carry.
    fn fingerprint(&self, token_hash: &[u8; 32]) -> String {
        match Hmac::<Sha256>::new_from_slice(&self.fingerprint_key) {
            Ok(mut mac) => {
                mac.update(token_hash);
                hex::encode(mac.finalize().into_bytes())
            }
            // HMAC takes keys of any length; this arm cannot be reached, and an empty fingerprint
            // matches no session.
            Err(_) => String::new(),
        }
    }

    /// The client address of a request: the peer, or per `X-Forwarded-For` behind a trusted proxy.
    pub fn client_addr(&self, req: &HttpRequest) -> IpAddr {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        client::client_addr(
            req.peer_addr().map(|a| a.ip()),
            &forwarded,
            &self.trusted_proxies,
        )
    }

    /// Whether `presented` is the metrics token.
    pub fn is_metrics_token(&self, presented: &str) -> bool {
        match &self.metrics_token_hash {
            Some(hash) => !presented.is_empty() && bool::from(sha256(presented).ct_eq(hash)),
            None => false,
        }
    }

    /// Starts a session for someone who presented `admin_token` (already checked); returns the
    /// cookie value (the session token).
    pub async fn sign_in(&self, admin_token: &str) -> Result<String, AuthError> {
        let token = random_token()?;
        let now = nitejar_core::receipts::now_ms();
        self.store
            .create_admin_session(&AdminSessionRow {
                id: new_id(),
                token_hash: hex::encode(sha256(&token)),
                created_at: now,
                expires_at: now + SESSION_MAX_MS,
                last_seen_at: Some(now),
                token_fingerprint: self.fingerprint(&sha256(admin_token)),
            })
            .await?;
        // Sweep what has ended meanwhile; sign-ins are rare enough to pay for it.
        if let Err(e) = self
            .store
            .delete_stale_admin_sessions(now, now - SESSION_IDLE_MS)
            .await
        {
            tracing::warn!("could not delete ended admin sessions: {e}");
        }
        Ok(token)
    }

    /// The live session of a cookie value, stamping its last use.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, AuthError> {
        if cookie.is_empty() || cookie.len() > 128 {
            return Ok(None);
        }
        let Some(row) = self
            .store
            .get_admin_session(&hex::encode(sha256(cookie)))
            .await?
        else {
            return Ok(None);
        };
        let now = nitejar_core::receipts::now_ms();
        let last_seen = row.last_seen_at.unwrap_or(row.created_at);
        if now >= row.expires_at || now - last_seen >= SESSION_IDLE_MS {
            return Ok(None);
        }
        // A session lasts only as long as the token it was opened with is the admin token.
        let current = match self.token_hash().await? {
            Some(hash) => self.fingerprint(&hash),
            None => String::new(),
        };
        if !same_secret(&current, &row.token_fingerprint) {
            self.store.delete_admin_session(&row.id).await?;
            tracing::info!(
                target: "nitejar::auth",
                "an admin session opened with an earlier admin token has ended"
            );
            return Ok(None);
        }
        if now - last_seen >= TOUCH_EVERY_MS {
            self.store.touch_admin_session(&row.id, now).await?;
        }
        Ok(Some(Session {
            id: row.id,
            csrf: csrf_of(cookie),
        }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, session_id: &str) -> Result<(), AuthError> {
        self.store.delete_admin_session(session_id).await?;
        Ok(())
    }
}
