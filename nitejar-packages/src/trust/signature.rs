//! Package signatures: a minisign signature of the content digest, in `nitejar.plugin.sig`.
//!
//! The signed message is the digest text itself (`sha256:<hex>`, see
//! [`crate::install::digest`]), so a signature covers every file of the package and nothing else;
//! the signature file is the one file the digest leaves out. `nitejar plugin pack --sign <key>`
//! writes it; `minisign -S -m digest.txt` over a file holding the digest text does too.

use std::fmt;

use base64::Engine as _;
use minisign_verify::{PublicKey, Signature};

use super::TrustError;

/// A public key the operator trusts (`NITEJAR_PLUGIN_TRUSTED_KEYS`, or the trust settings).
#[derive(Clone)]
pub struct TrustedKey {
    id: String,
    line: String,
    key: PublicKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey").field("id", &self.id).finish()
    }
}

impl TrustedKey {
    /// Reads a minisign public key: its base64 line (`RW…`) or the whole `minisign.pub` text
    /// (through [`super::canonical::key_line`]).
    pub fn parse(text: &str) -> Result<TrustedKey, TrustError> {
        let canonical = super::canonical::key_line(text).map_err(|p| TrustError::BadKey {
            key: shorten(text.trim()),
            reason: p.problem,
        })?;
        let key = PublicKey::from_base64(&canonical.line).map_err(|e| TrustError::BadKey {
            key: shorten(&canonical.line),
            reason: format!("{e:?}"),
        })?;
        Ok(TrustedKey {
            id: canonical.key_id,
            line: canonical.line,
            key,
        })
    }

    /// The key's canonical base64 line (public: safe to show and store).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The key id, as minisign prints it (16 upper-case hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(24).collect()
}

/// The key id in a minisign key or signature line: bytes 2..10, printed as a little-endian u64.
fn key_id_of(b64_line: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64_line.trim())
        .ok()?;
    let id: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

/// What the signature of a package says, checked against the trusted keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The package has no `nitejar.plugin.sig`.
    Unsigned,
    /// Signed by a trusted key, and the signature matches the package's digest.
    Trusted {
        /// The signing key's id.
        key_id: String,
        /// The signature's trusted comment.
        comment: String,
    },
    /// Signed by a key that is not trusted here (so it proves nothing).
    UnknownKey {
        /// The signing key's id.
        key_id: String,
    },
    /// Signed by a trusted key, but the signature does not match the package: a file was changed
    /// after signing, or the signature belongs to another package.
    Mismatch {
        /// The signing key's id.
        key_id: String,
    },
    /// `nitejar.plugin.sig` is not a minisign signature.
    Malformed {
        /// Why it cannot be read.
        reason: String,
    },
}

impl SignatureCheck {
    /// Checks `signature` (the text of `nitejar.plugin.sig`) over `digest` against `keys`.
    pub fn check(signature: Option<&str>, digest: &str, keys: &[TrustedKey]) -> SignatureCheck {
        let Some(text) = signature else {
            return SignatureCheck::Unsigned;
        };
        let parsed = match Signature::decode(text.trim()) {
            Ok(s) => s,
            Err(e) => {
                return SignatureCheck::Malformed {
                    reason: format!("{e:?}"),
                }
            }
        };
        let key_id = text
            .lines()
            .nth(1)
            .and_then(key_id_of)
            .unwrap_or_else(|| "?".into());
        let Some(key) = keys.iter().find(|k| k.id == key_id) else {
            return SignatureCheck::UnknownKey { key_id };
        };
        match key.key.verify(digest.as_bytes(), &parsed, false) {
            Ok(()) => SignatureCheck::Trusted {
                key_id,
                comment: parsed.trusted_comment().to_string(),
            },
            Err(_) => SignatureCheck::Mismatch { key_id },
        }
    }

    /// A short description for receipts and listings.
    pub fn describe(&self) -> String {
        match self {
            SignatureCheck::Unsigned => "unsigned".into(),
            SignatureCheck::Trusted { key_id, .. } => format!("signed by trusted key {key_id}"),
            SignatureCheck::UnknownKey { key_id } => {
                format!("signed by key {key_id}, which is not in NITEJAR_PLUGIN_TRUSTED_KEYS nor among the trusted keys of the trust settings")
            }
            SignatureCheck::Mismatch { key_id } => format!(
                "signed by trusted key {key_id}, but the signature does not match the package contents"
            ),
            SignatureCheck::Malformed { reason } => {
                format!("nitejar.plugin.sig is not a minisign signature ({reason})")
            }
        }
    }

    /// As JSON for `plugin_versions.signature_json`.
    pub fn to_json(&self) -> serde_json::Value {
        let (status, key_id) = match self {
            SignatureCheck::Unsigned => ("unsigned", None),
            SignatureCheck::Trusted { key_id, .. } => ("trusted", Some(key_id)),
            SignatureCheck::UnknownKey { key_id } => ("unknown_key", Some(key_id)),
            SignatureCheck::Mismatch { key_id } => ("mismatch", Some(key_id)),
            SignatureCheck::Malformed { .. } => ("malformed", None),
        };
        serde_json::json!({ "status": status, "keyId": key_id, "detail": self.describe() })
    }
}
