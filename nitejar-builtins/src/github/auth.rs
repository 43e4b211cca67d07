//! GitHub App authentication: the App's RSA key, the JWT it signs, and installation tokens.
//!
//! A GitHub App proves who it is with a short-lived JWT (RS256, `iss` = the App ID) and trades it
//! for an *installation access token* per installation, valid for an hour. Tokens are cached in
//! memory and renewed five minutes before they expire, so a busy integration mints one token per
//! installation per hour instead of one per reply.
//!
//! Pure Rust (`rsa` + `sha2`), no OpenSSL. Signing uses RSA blinding with the OS's random source
//! (`sign_with_rng`), which is the available mitigation for the `rsa` crate's timing advisory
//! (RUSTSEC-2023-0071) until a constant-time release exists.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::OsRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::RsaPrivateKey;
use serde_json::json;
use sha2::Sha256;

/// How long before its expiry a cached installation token is replaced.
pub const TOKEN_REFRESH_MARGIN_SECS: u64 = 5 * 60;
/// The JWT is dated this far back, for clocks that run ahead of GitHub's.
const JWT_BACKDATE_SECS: u64 = 60;
/// The JWT's lifetime from now (GitHub allows at most 10 minutes).
const JWT_LIFETIME_SECS: u64 = 9 * 60;

/// Why the App key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The key is not a PEM RSA private key.
    #[error("{0}")]
    InvalidKey(String),
    /// Signing the JWT failed.
    #[error("the App JWT could not be signed: {0}")]
    Signing(String),
}

/// A GitHub App's private key.
#[derive(Clone)]
pub struct AppKey(RsaPrivateKey);

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(<private>)")
    }
}

impl AppKey {
    /// Reads a PEM RSA private key, PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or
    /// PKCS#8 (`BEGIN PRIVATE KEY`). A key pasted with literal `\n` sequences, as environment
    /// variables and JSON strings often carry it, is accepted too.
    pub fn from_pem(pem: &str) -> Result<Self, AuthError> {
        let pem = pem
            .trim()
            .trim_matches('"')
            .replace("\\n", "\n")
            .replace("\r\n", "\n");
        let pem = pem.trim();
        let key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| {
                AuthError::InvalidKey(format!("the PKCS#1 RSA key cannot be read: {e}"))
            })?
        } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| {
                AuthError::InvalidKey(format!("the PKCS#8 key cannot be read as an RSA key: {e}"))
            })?
        } else if pem.contains("-----BEGIN") {
            return Err(AuthError::InvalidKey(
                "not an RSA private key; a GitHub App key is the RSA .pem file generated on the \
                 App's settings page"
                    .into(),
            ));
        } else {
            return Err(AuthError::InvalidKey(
                "not a PEM file; paste the whole .pem, from -----BEGIN RSA PRIVATE KEY----- to \
                 -----END RSA PRIVATE KEY-----"
                    .into(),
            ));
        };
        Ok(AppKey(key))
    }

    /// The App JWT at `now` (Unix seconds): RS256, `iss` = the App ID, `iat` = now − 60 s,
    /// `exp` = now + 9 min.
    pub fn app_jwt(&self, app_id: &str, now: u64) -> Result<String, AuthError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({
            "iat": now.saturating_sub(JWT_BACKDATE_SECS),
            "exp": now + JWT_LIFETIME_SECS,
            "iss": app_id,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signer = SigningKey::<Sha256>::new(self.0.clone());
        let signature = signer
            .try_sign_with_rng(&mut OsRng, signing_input.as_bytes())
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// An installation access token and when to stop using it (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedToken {
    pub token: String,
    pub renew_at: u64,
}

/// Installation tokens by App and installation.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<(String, u64), CachedToken>>,
}

impl TokenCache {
    /// A token for this installation that is still good at `now`.
    pub fn get(&self, app_id: &str, installation_id: u64, now: u64) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&(app_id.to_string(), installation_id))
            .filter(|t| now < t.renew_at)
            .map(|t| t.token.clone())
    }

    /// Keeps a token until `renew_at`.
    pub fn put(&self, app_id: &str, installation_id: u64, token: CachedToken) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert((app_id.to_string(), installation_id), token);
    }

    /// Forgets an installation's token (GitHub refused it, or the installation is gone).
    pub fn forget(&self, app_id: &str, installation_id: u64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.remove(&(app_id.to_string(), installation_id));
    }

    /// Forgets every token of every App for this installation.
    pub fn forget_installation(&self, installation_id: u64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|(_, id), _| *id != installation_id);
    }
}

/// When to renew a token that GitHub says expires at `expires_at` (Unix seconds): five minutes
/// before, and no later than `max_ttl` seconds from `now` when the config caps it.
pub fn renew_at(now: u64, expires_at: u64, max_ttl: Option<u64>) -> u64 {
    let by_expiry = expires_at.saturating_sub(TOKEN_REFRESH_MARGIN_SECS);
    match max_ttl {
        Some(ttl) => by_expiry.min(now + ttl),
        None => by_expiry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_five_minutes_early_and_capped_by_ttl() {
        assert_eq!(renew_at(1_000, 4_600, None), 4_300);
        assert_eq!(renew_at(1_000, 4_600, Some(600)), 1_600);
        assert_eq!(renew_at(1_000, 100, None), 0);
    }

    #[test]
    fn cache_serves_until_renewal() {
        let cache = TokenCache::default();
        cache.put(
            "1",
            7,
            CachedToken {
                token: "t".into(),
                renew_at: 100,
            },
        );
        assert_eq!(cache.get("1", 7, 99).as_deref(), Some("t"));
        assert_eq!(cache.get("1", 7, 100), None);
        assert_eq!(cache.get("2", 7, 50), None);
        cache.forget_installation(7);
        assert_eq!(cache.get("1", 7, 50), None);
    }

    #[test]
    fn non_keys_are_explained() {
        let err = AppKey::from_pem("hello").unwrap_err().to_string();
        assert!(err.contains("not a PEM file"), "{err}");
        let err = AppKey::from_pem(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an RSA private key"), "{err}");
        let err = AppKey::from_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nnot base64!\n-----END RSA PRIVATE KEY-----",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PKCS#1"), "{err}");
    }
}
