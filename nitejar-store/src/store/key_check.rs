//! Which encryption key a database's secrets were written with.
//!
//! A server started with another `ENCRYPTION_KEY` than the one its secrets were encrypted with
//! would otherwise start fine, answer `/readyz`, show masked configs — and fail on the first
//! delivery that needs a secret. [`check_encryption_key`] catches that at start: the database keeps
//! a fingerprint of the key (an HMAC of a fixed purpose under it; never the key, and nothing that
//! helps guess it), and a key with another fingerprint is refused, naming both fingerprints and the
//! way out. A database written before fingerprints existed (an earlier release, or the TypeScript
//! Nitejar) has none: the key is tried on a stored secret before its fingerprint is recorded.

use crate::crypto::{is_encrypted, Cipher, Key};
use crate::store::{Store, StoreError};

/// The admin setting that holds the fingerprint.
pub const FINGERPRINT_SETTING: &str = "encryption_key_fingerprint";

/// The fingerprint of `key`: 64 hex characters.
///
/// ```
/// use nitejar_store::crypto::Key;
/// use nitejar_store::store::key_fingerprint;
/// let key = Key::generate().expect("random");
/// assert_eq!(key_fingerprint(&key), key_fingerprint(&key));
/// assert_ne!(key_fingerprint(&key), hex::encode(key.derive("sessions")));
/// ```
pub fn key_fingerprint(key: &Key) -> String {
    hex::encode(key.derive("nitejar encryption key fingerprint v1"))
}

/// What [`check_encryption_key`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// The recorded fingerprint is this key's.
    Matches,
    /// No fingerprint was recorded (a new database, or one of an earlier release whose secrets this
    /// key reads); it is now.
    Recorded,
    /// Another key's fingerprint was recorded and the operator accepted the new key: these
    /// integrations hold secrets it cannot read, and need them entered again.
    Replaced {
        /// Ids of the integrations whose stored secrets are unreadable now.
        unreadable: Vec<String>,
    },
}

/// Why the key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The database's secrets were written with another key.
    #[error(
        "ENCRYPTION_KEY is not the key this database's secrets were written with ({}); the server \
         does not start with a key that cannot read them. Start it with the original key \
         (ENCRYPTION_KEY, or <data dir>/encryption.key if the server generated it). If that key is \
         lost, start once with NITEJAR_ACCEPT_NEW_ENCRYPTION_KEY=true: the new key is recorded and \
         every stored secret has to be entered again.",
        match stored {
            Some(stored) => format!(
                "recorded key fingerprint {}…, this key's {}…",
                &stored[..stored.len().min(12)],
                &configured[..configured.len().min(12)]
            ),
            None => format!("it cannot decrypt the secrets of integration {integration}"),
        }
    )]
    WrongKey {
        /// The recorded fingerprint, if one was.
        stored: Option<String>,
        /// This key's fingerprint.
        configured: String,
        /// An integration whose secret this key could not decrypt (no fingerprint recorded).
        integration: String,
    },
    /// The database could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `key` is the key `store`'s secrets were written with, and records its fingerprint
/// when none is. With `accept_new`, a key with another fingerprint is recorded instead of refused,
/// and the integrations it cannot read are listed. See the module docs.
pub async fn check_encryption_key(
    store: &dyn Store,
    key: &Key,
    accept_new: bool,
) -> Result<KeyCheck, KeyCheckError> {
    let configured = key_fingerprint(key);
    let stored = store.get_admin_setting(FINGERPRINT_SETTING).await?;
    if stored.as_deref() == Some(configured.as_str()) {
        return Ok(KeyCheck::Matches);
    }
    let unreadable = unreadable_integrations(store, &Cipher::new(key)).await?;
    let refused = match (&stored, unreadable.first()) {
        (Some(_), _) => true,
        (None, Some(_)) => true,
        (None, None) => false,
    };
    if refused && !accept_new {
        return Err(KeyCheckError::WrongKey {
            stored,
            configured,
            integration: unreadable.first().cloned().unwrap_or_default(),
        });
    }
    // A first record does not overwrite one another server wrote meanwhile (several servers on
    // one Postgres database, starting at once): that one is then checked like any other.
    let written = store
        .put_admin_setting(FINGERPRINT_SETTING, &configured, stored.is_some())
        .await?;
    if !written {
        let now = store.get_admin_setting(FINGERPRINT_SETTING).await?;
        if now.as_deref() != Some(configured.as_str()) && !accept_new {
            return Err(KeyCheckError::WrongKey {
                stored: now,
                configured,
                integration: String::new(),
            });
        }
    }
    Ok(if refused {
        KeyCheck::Replaced { unreadable }
    } else {
        KeyCheck::Recorded
    })
}

/// Integrations holding a secret `cipher` cannot decrypt.
async fn unreadable_integrations(
    store: &dyn Store,
    cipher: &Cipher,
) -> Result<Vec<String>, StoreError> {
    let mut unreadable = Vec::new();
    for row in store.list_integrations(None).await? {
        let Ok(config) = row.config_map() else {
            continue;
        };
        let broken = config.values().any(|v| {
            v.as_str()
                .is_some_and(|s| is_encrypted(s) && cipher.decrypt(s).is_err())
        });
        if broken {
            unreadable.push(row.id);
        }
    }
    Ok(unreadable)
}
