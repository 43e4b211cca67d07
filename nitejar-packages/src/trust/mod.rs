//! Trust: which third-party plugins this server accepts, and what the operator consents to.
//!
//! The trust mode (`NITEJAR_PLUGIN_TRUST_MODE`, alias `SLOPBOT_PLUGIN_TRUST_MODE`) sets the bar:
//!
//! | mode | install | enable |
//! | --- | --- | --- |
//! | `self_host_open` | any source | consent accepted |
//! | `self_host_guarded` (default) | any source | consent accepted, every declared permission acknowledged, and a valid signature by a trusted key or an allowlist entry (`id` or `id@sha256:<digest>`) |
//! | `saas_locked` | npm or git, signed by a trusted (platform) key; uploads and local paths refused | as guarded, and only a trusted signature counts (the allowlist does not) |
//!
//! Trusted keys and allowlist entries come from the environment (`NITEJAR_PLUGIN_TRUSTED_KEYS`,
//! `NITEJAR_PLUGIN_ALLOWLIST`) and, except under `saas_locked`, from the operator's trust settings
//! in the database (added in the admin or with `nitejar plugin trust`, see
//! `nitejar_core::lifecycle::PluginManager::add_trust_entry`). Both are read through [`canonical`], so
//! one key or entry has one spelling wherever it comes from.
//!
//! In every mode a package whose signature is made by a trusted key but does not match its
//! contents is refused: it was changed after signing. Built-ins are trusted: they are part of the
//! binary.
//!
//! Where signatures live and what they sign: see [`signature`]. What consent means and how
//! permissions are disclosed: see [`consent`].
//!
//! ```
//! use nitejar_packages::trust::{SignatureCheck, TrustMode, TrustPolicy};
//!
//! let policy = TrustPolicy::new(TrustMode::SelfHostGuarded)
//!     .with_allowlist(TrustPolicy::parse_allowlist("com.acme.jira").unwrap());
//! let unsigned = SignatureCheck::Unsigned;
//! assert!(policy.judge_enable("com.acme.jira", "sha256:00", &unsigned).is_ok());
//! let refusal = policy.judge_enable("com.acme.other", "sha256:00", &unsigned).unwrap_err();
//! assert!(refusal.to_string().contains("not signed by a trusted key"));
//! ```

pub mod canonical;
pub mod consent;
pub mod signature;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use consent::{
    consent_text, consent_text_for, disclose, posture_for, DisclosedPermission, POSTURE_BADGE,
};
pub use signature::{SignatureCheck, TrustedKey};

/// How much the server trusts third-party plugins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustMode {
    /// Unsigned plugins allowed; permissions are disclosure and acknowledgement.
    SelfHostOpen,
    /// Signed by a trusted key or allowlisted; every permission acknowledged before enable.
    #[default]
    SelfHostGuarded,
    /// Built-ins and platform-signed plugins only.
    SaasLocked,
}

impl TrustMode {
    /// The setting's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TrustMode::SelfHostOpen => "self_host_open",
            TrustMode::SelfHostGuarded => "self_host_guarded",
            TrustMode::SaasLocked => "saas_locked",
        }
    }

    /// Whether a declared permission must be acknowledged to be enabled and used.
    pub fn requires_acknowledgement(self) -> bool {
        !matches!(self, TrustMode::SelfHostOpen)
    }
}

impl fmt::Display for TrustMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrustMode {
    type Err = TrustError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "self_host_open" => Ok(TrustMode::SelfHostOpen),
            "self_host_guarded" => Ok(TrustMode::SelfHostGuarded),
            "saas_locked" => Ok(TrustMode::SaasLocked),
            _ => Err(TrustError::BadMode(s.to_string())),
        }
    }
}

/// A setting that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// An unknown trust mode.
    #[error("NITEJAR_PLUGIN_TRUST_MODE is `{0}`; use self_host_open, self_host_guarded (the default) or saas_locked")]
    BadMode(String),
    /// A key that is not a minisign public key.
    #[error("NITEJAR_PLUGIN_TRUSTED_KEYS: `{key}…` is not a minisign public key ({reason}); give the base64 line of a minisign.pub file, keys separated by commas")]
    BadKey {
        /// The start of the key as given.
        key: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// An allowlist entry that is not `id` or `id@sha256:<hex>`.
    #[error(
        "NITEJAR_PLUGIN_ALLOWLIST: `{0}; give `<plugin id>` or `<plugin id>@sha256:<digest>`, entries separated by commas"
    )]
    BadAllowEntry(String),
}

/// One allowlist entry: a plugin id, or a plugin id pinned to one content digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    /// The plugin id.
    pub id: String,
    /// The digest it is pinned to, if any.
    pub digest: Option<String>,
}

impl AllowEntry {
    fn allows(&self, id: &str, digest: &str) -> bool {
        self.id == id && self.digest.as_deref().is_none_or(|d| d == digest)
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.digest {
            Some(d) => write!(f, "{}@{d}", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// Why a plugin was trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum TrustBasis {
    /// Compiled into the binary.
    Builtin,
    /// A valid signature by a trusted key.
    Signature {
        /// The key id.
        key_id: String,
    },
    /// An allowlist entry.
    Allowlist {
        /// The entry.
        entry: String,
    },
    /// Open mode accepts it without either.
    OpenMode,
}

/// A plugin the policy accepts, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Why.
    pub basis: TrustBasis,
}

impl Verdict {
    /// `builtin`, `trusted` (signature or allowlist) or `untrusted` (accepted by open mode): the
    /// `plugins.trust_level` column.
    pub fn trust_level(&self) -> &'static str {
        match self.basis {
            TrustBasis::Builtin => "builtin",
            TrustBasis::Signature { .. } | TrustBasis::Allowlist { .. } => "trusted",
            TrustBasis::OpenMode => "untrusted",
        }
    }
}

/// Why the policy refuses a plugin, and what the operator can do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; {fix}")]
pub struct Refusal {
    /// What is wrong.
    pub reason: String,
    /// What to do.
    pub fix: String,
}

/// The trust mode with its keys and allowlist.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    mode: TrustMode,
    keys: Vec<TrustedKey>,
    allowlist: Vec<AllowEntry>,
}

impl TrustPolicy {
    /// A policy with no keys and an empty allowlist.
    pub fn new(mode: TrustMode) -> Self {
        TrustPolicy {
            mode,
            keys: Vec::new(),
            allowlist: Vec::new(),
        }
    }

    /// Trusts these keys.
    pub fn with_keys(mut self, keys: Vec<TrustedKey>) -> Self {
        self.keys = keys;
        self
    }

    /// Allows these plugins.
    pub fn with_allowlist(mut self, allowlist: Vec<AllowEntry>) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// Adds keys and entries (the operator's trust settings) to those this policy has; a key whose
    /// id it trusts already, or an entry it has already, is not added twice.
    pub fn with_more(mut self, keys: Vec<TrustedKey>, allowlist: Vec<AllowEntry>) -> Self {
        for key in keys {
            if !self.keys.iter().any(|k| k.id() == key.id()) {
                self.keys.push(key);
            }
        }
        for entry in allowlist {
            if !self.allowlist.contains(&entry) {
                self.allowlist.push(entry);
            }
        }
        self
    }

    /// Reads `NITEJAR_PLUGIN_TRUSTED_KEYS`: minisign public keys (base64 lines) separated by commas.
    pub fn parse_keys(text: &str) -> Result<Vec<TrustedKey>, TrustError> {
        text.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(TrustedKey::parse)
            .collect()
    }

    /// Reads `NITEJAR_PLUGIN_ALLOWLIST`: `id` or `id@sha256:<hex>` separated by commas (each read
    /// through [`canonical::allow_entry`]).
    pub fn parse_allowlist(text: &str) -> Result<Vec<AllowEntry>, TrustError> {
        text.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                canonical::allow_entry(entry)
                    .map_err(|p| TrustError::BadAllowEntry(format!("{entry}` ({p})")))
            })
            .collect()
    }

    /// The mode.
    pub fn mode(&self) -> TrustMode {
        self.mode
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// The allowlist.
    pub fn allowlist(&self) -> &[AllowEntry] {
        &self.allowlist
    }

    /// Checks a package's signature (the text of `nitejar.plugin.sig`) against the trusted keys.
    pub fn check_signature(&self, signature: Option<&str>, digest: &str) -> SignatureCheck {
        SignatureCheck::check(signature, digest, &self.keys)
    }

    fn allowed_by(&self, id: &str, digest: &str) -> Option<&AllowEntry> {
        self.allowlist.iter().find(|e| e.allows(id, digest))
    }

    /// Whether a package from `source_kind` (`local`, `upload`, `npm`, `git`) may be installed.
    pub fn judge_install(
        &self,
        id: &str,
        source_kind: &str,
        digest: &str,
        signature: &SignatureCheck,
    ) -> Result<Verdict, Refusal> {
        broken_signature(signature)?;
        if self.mode == TrustMode::SaasLocked {
            if matches!(source_kind, "local" | "upload") {
                return Err(Refusal {
                    reason: format!(
                        "the server runs in saas_locked mode, which refuses {} installs",
                        if source_kind == "local" { "local-path" } else { "uploaded" }
                    ),
                    fix: "only built-ins and platform-signed plugins from npm or git can be installed here".into(),
                });
            }
            return match signature {
                SignatureCheck::Trusted { key_id, .. } => Ok(Verdict {
                    basis: TrustBasis::Signature {
                        key_id: key_id.clone(),
                    },
                }),
                other => Err(Refusal {
                    reason: format!(
                        "the server runs in saas_locked mode and `{id}` is {}",
                        other.describe()
                    ),
                    fix: "only plugins signed by a platform key in NITEJAR_PLUGIN_TRUSTED_KEYS can be installed".into(),
                }),
            };
        }
        Ok(self.basis(id, digest, signature))
    }

    /// Whether a third-party plugin version may be enabled (and loaded at boot).
    pub fn judge_enable(
        &self,
        id: &str,
        digest: &str,
        signature: &SignatureCheck,
    ) -> Result<Verdict, Refusal> {
        broken_signature(signature)?;
        let verdict = self.basis(id, digest, signature);
        match (self.mode, &verdict.basis) {
            (TrustMode::SelfHostOpen, _) => Ok(verdict),
            (TrustMode::SelfHostGuarded, TrustBasis::Signature { .. } | TrustBasis::Allowlist { .. }) => {
                Ok(verdict)
            }
            (TrustMode::SaasLocked, TrustBasis::Signature { .. }) => Ok(verdict),
            (TrustMode::SelfHostGuarded, _) => Err(Refusal {
                reason: format!(
                    "`{id}` is not signed by a trusted key and not on the allowlist ({}), which self_host_guarded mode requires",
                    signature.describe()
                ),
                fix: format!(
                    "add `{id}@{digest}` (or `{id}`) to the allowlist (admin Trust page, `nitejar plugin trust allow add`, or NITEJAR_PLUGIN_ALLOWLIST), or trust the key that signed it, or install a build signed by a trusted key"
                ),
            }),
            (TrustMode::SaasLocked, _) => Err(Refusal {
                reason: format!(
                    "the server runs in saas_locked mode and `{id}` is {}",
                    signature.describe()
                ),
                fix: "only built-ins and plugins signed by a platform key can be enabled here".into(),
            }),
        }
    }

    fn basis(&self, id: &str, digest: &str, signature: &SignatureCheck) -> Verdict {
        if let SignatureCheck::Trusted { key_id, .. } = signature {
            return Verdict {
                basis: TrustBasis::Signature {
                    key_id: key_id.clone(),
                },
            };
        }
        if let Some(entry) = self.allowed_by(id, digest) {
            return Verdict {
                basis: TrustBasis::Allowlist {
                    entry: entry.to_string(),
                },
            };
        }
        Verdict {
            basis: TrustBasis::OpenMode,
        }
    }
}

/// A signature by a trusted key that does not verify, or an unreadable one, is refused in every
/// mode: the package is not what its signer signed.
fn broken_signature(signature: &SignatureCheck) -> Result<(), Refusal> {
    match signature {
        SignatureCheck::Mismatch { .. } => Err(Refusal {
            reason: format!("the package is {}", signature.describe()),
            fix: "a file was changed after signing (or the signature belongs to another package); get the package again from its publisher".into(),
        }),
        SignatureCheck::Malformed { .. } => Err(Refusal {
            reason: signature.describe(),
            fix: "re-sign the package with `nitejar plugin pack --sign <key>`, or remove the file".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_and_print() {
        for mode in [
            TrustMode::SelfHostOpen,
            TrustMode::SelfHostGuarded,
            TrustMode::SaasLocked,
        ] {
            assert_eq!(mode.as_str().parse::<TrustMode>().unwrap(), mode);
        }
        assert_eq!(TrustMode::default(), TrustMode::SelfHostGuarded);
        assert!("open".parse::<TrustMode>().is_err());
    }

    #[test]
    fn allowlist_entries_pin_ids_or_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let list = TrustPolicy::parse_allowlist(&format!("com.a.b, com.c.d@{digest}")).unwrap();
        let policy = TrustPolicy::new(TrustMode::SelfHostGuarded).with_allowlist(list);
        let unsigned = SignatureCheck::Unsigned;
        assert!(policy
            .judge_enable("com.a.b", "sha256:x", &unsigned)
            .is_ok());
        assert!(policy.judge_enable("com.c.d", &digest, &unsigned).is_ok());
        assert!(policy
            .judge_enable("com.c.d", "sha256:other", &unsigned)
            .is_err());
        assert!(TrustPolicy::parse_allowlist("com.a@md5:x").is_err());
        assert!(TrustPolicy::parse_allowlist("Bad Id").is_err());
    }

    #[test]
    fn locked_mode_refuses_uploads_and_unsigned_packages() {
        let policy = TrustPolicy::new(TrustMode::SaasLocked);
        let unsigned = SignatureCheck::Unsigned;
        let e = policy
            .judge_install("com.a.b", "upload", "sha256:x", &unsigned)
            .unwrap_err();
        assert!(e.reason.contains("refuses uploaded installs"), "{e}");
        assert!(policy
            .judge_install("com.a.b", "npm", "sha256:x", &unsigned)
            .is_err());
        let open = TrustPolicy::new(TrustMode::SelfHostOpen);
        let v = open.judge_enable("com.a.b", "sha256:x", &unsigned).unwrap();
        assert_eq!(v.trust_level(), "untrusted");
        let mismatch = SignatureCheck::Mismatch {
            key_id: "AB".into(),
        };
        assert!(open
            .judge_install("com.a.b", "npm", "sha256:x", &mismatch)
            .is_err());
    }
}
