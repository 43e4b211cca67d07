//! Encrypted integration config, byte-compatible with the data earlier Nitejar releases wrote.
//!
//! A sensitive value is stored as `"enc:" + base64(IV ‖ TAG ‖ CIPHERTEXT)`: AES-256-GCM with a 16-byte
//! random IV (not the usual 12: earlier releases used 16, and their blobs must keep decrypting), a
//! 16-byte tag, no associated data, standard base64 alphabet with padding.
//!
//! Only top-level string fields named in an integration's `sensitive_fields` are encrypted, and never a
//! value that already starts with `enc:`. What leaves the server (API, admin UI) is [`redact`]ed: every
//! sensitive value reads [`REDACTED`]; an update that sends [`REDACTED`] back keeps the stored secret
//! ([`merge_placeholders`]).
//!
//! The key comes from `ENCRYPTION_KEY` (64 hex chars, 44 base64 chars, or 32 raw bytes). Without it,
//! [`load_or_create_key`] reads or creates `<data_dir>/encryption.key`; there is never a plaintext
//! fallback.
//!
//! ```
//! use nitejar_store::crypto::{Cipher, Key};
//!
//! let key = Key::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
//! let cipher = Cipher::new(&key);
//! let stored = cipher.encrypt("123456789:ABCdefGHI")?;
//! assert!(stored.starts_with("enc:"));
//! assert_eq!(cipher.decrypt(&stored)?, "123456789:ABCdefGHI");
//! # Ok::<(), nitejar_store::crypto::CryptoError>(())
//! ```

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::AeadInOut;
use aes_gcm::aes::cipher::consts::U16;
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

/// The prefix that marks an encrypted value.
pub const ENC_PREFIX: &str = "enc:";

/// What the API and the admin UI show instead of a sensitive value.
pub const REDACTED: &str = "••••••••";

/// The name of the key file created in the data directory when `ENCRYPTION_KEY` is not set.
pub const KEY_FILE_NAME: &str = "encryption.key";

const IV_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// AES-256-GCM with a 16-byte nonce, as earlier releases used.
type Aes256Gcm16 = AesGcm<Aes256, U16>;

/// Why a key could not be had, or a value could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// `ENCRYPTION_KEY` (or the key file) has a shape that is not one of the accepted forms.
    #[error(
        "ENCRYPTION_KEY is malformed ({reason}); accepted forms: 64 hex characters, 44 base64 \
         characters, or 32 raw bytes (generate one with `openssl rand -hex 32`)"
    )]
    MalformedKey {
        /// What was wrong with it (never the key itself).
        reason: String,
    },
    /// The key file could not be read or written.
    #[error("encryption key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The system random source failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// A value marked `enc:` is not valid base64 or is too short to hold an IV and a tag.
    #[error("encrypted value is malformed: {0}")]
    MalformedCiphertext(String),
    /// The tag did not verify: the value was encrypted with another key, or was altered.
    #[error(
        "encrypted value could not be decrypted: wrong ENCRYPTION_KEY, or the value was altered"
    )]
    Decrypt,
    /// Encryption itself failed (only for absurdly long values).
    #[error("value could not be encrypted")]
    Encrypt,
}

/// A 256-bit key. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Parses `ENCRYPTION_KEY`: 64 characters are hex, 44 are base64, 32 are the raw bytes. Anything
    /// else is [`CryptoError::MalformedKey`].
    pub fn parse(text: &str) -> Result<Key, CryptoError> {
        let malformed = |reason: String| CryptoError::MalformedKey { reason };
        let bytes: Vec<u8> = match text.len() {
            64 => hex::decode(text)
                .map_err(|e| malformed(format!("64 characters but not hex: {e}")))?,
            44 => STANDARD
                .decode(text)
                .map_err(|e| malformed(format!("44 characters but not base64: {e}")))?,
            32 => text.as_bytes().to_vec(),
            n => return Err(malformed(format!("it is {n} bytes long"))),
        };
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| malformed(format!("it decodes to {} bytes, not 32", b.len())))?;
        Ok(Key(array))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Key, CryptoError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CryptoError::Random(e.to_string()))?;
        Ok(Key(bytes))
    }

    /// The key as 64 lower-case hex characters (the form written to the key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A key for another purpose, derived from this one (HMAC-SHA256 of `purpose`), so that the
    /// encryption key itself is used for nothing but encryption. The same key and purpose always
    /// give the same bytes; different purposes give unrelated keys.
    ///
    /// ```
    /// use nitejar_store::crypto::Key;
    /// let key = Key::generate().expect("random");
    /// assert_eq!(key.derive("sessions"), key.derive("sessions"));
    /// assert_ne!(key.derive("sessions"), key.derive("other"));
    /// ```
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac as _;
        match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) {
            Ok(mut mac) => {
                mac.update(purpose.as_bytes());
                mac.finalize().into_bytes().into()
            }
            // HMAC takes keys of any length; a 32-byte key cannot be refused.
            Err(_) => {
                <sha2::Sha256 as sha2::Digest>::digest([&self.0[..], purpose.as_bytes()].concat())
                    .into()
            }
        }
    }
}

/// Where the key in use came from. The server says so at start-up; [`KeyOrigin::Generated`] deserves a
/// loud message, because losing that file makes every stored secret unreadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// From the `ENCRYPTION_KEY` environment variable.
    Env,
    /// Read from the key file in the data directory.
    File {
        /// The key file.
        path: PathBuf,
    },
    /// Generated just now and written to the data directory (mode 0600). Back it up.
    Generated {
        /// The new key file.
        path: PathBuf,
    },
}

/// Finds the encryption key: `ENCRYPTION_KEY` when set (`env_value`), else `<data_dir>/encryption.key`,
/// else a new key written there with mode 0600.
///
/// A set but malformed `ENCRYPTION_KEY` is an error, never a reason to fall back to the file: a typo must
/// not silently switch keys. An empty value counts as unset.
pub fn load_or_create_key(
    env_value: Option<&str>,
    data_dir: &Path,
) -> Result<(Key, KeyOrigin), CryptoError> {
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        return Ok((Key::parse(value)?, KeyOrigin::Env));
    }
    let path = data_dir.join(KEY_FILE_NAME);
    let key_file_error = |source| CryptoError::KeyFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        // The file is ours and written with a trailing newline; people editing it add more.
        Ok(text) => return Ok((Key::parse(text.trim())?, KeyOrigin::File { path })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_file_error(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(key_file_error)?;
    let key = Key::generate()?;
    let mut options = std::fs::OpenOptions::new();
    // `create_new`: if another process created the file in between, fail rather than overwrite its key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(key_file_error)?;
    file.write_all(format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(key_file_error)?;
    Ok((key, KeyOrigin::Generated { path }))
}

/// Encrypts and decrypts config values with one key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm16,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// A cipher for `key`.
    pub fn new(key: &Key) -> Cipher {
        Cipher {
            aead: Aes256Gcm16::new(&key.0.into()),
        }
    }

    /// Encrypts `plaintext` with a fresh random IV into the `enc:` form.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, CryptoError> {
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv).map_err(|e| CryptoError::Random(e.to_string()))?;
        self.encrypt_with_iv(plaintext, iv)
    }

    /// Encrypts with a given IV. Exists to reproduce known vectors; an IV must never be used twice with
    /// one key, so production code calls [`Cipher::encrypt`].
    pub fn encrypt_with_iv(
        &self,
        plaintext: &str,
        iv: [u8; IV_LEN],
    ) -> Result<String, CryptoError> {
        let mut ciphertext = plaintext.as_bytes().to_vec();
        let tag = self
            .aead
            .encrypt_inout_detached(&iv.into(), b"", ciphertext.as_mut_slice().into())
            .map_err(|_| CryptoError::Encrypt)?;
        // The stored layout puts the tag before the ciphertext (aes-gcm appends it after).
        let mut blob = Vec::with_capacity(IV_LEN + TAG_LEN + ciphertext.len());
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&tag);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{ENC_PREFIX}{}", STANDARD.encode(blob)))
    }

    /// Decrypts an `enc:` value. A value without the prefix is returned unchanged (it was stored before
    /// its field became sensitive, or is not a secret).
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let Some(encoded) = stored.strip_prefix(ENC_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let blob = STANDARD
            .decode(encoded)
            .map_err(|e| CryptoError::MalformedCiphertext(format!("not base64: {e}")))?;
        if blob.len() < IV_LEN + TAG_LEN {
            return Err(CryptoError::MalformedCiphertext(format!(
                "{} bytes, shorter than IV and tag ({} bytes)",
                blob.len(),
                IV_LEN + TAG_LEN
            )));
        }
        let (iv, rest) = blob.split_at(IV_LEN);
        let (tag, ciphertext) = rest.split_at(TAG_LEN);
        let iv: [u8; IV_LEN] = iv
            .try_into()
            .map_err(|_| CryptoError::MalformedCiphertext("IV length".into()))?;
        let tag: [u8; TAG_LEN] = tag
            .try_into()
            .map_err(|_| CryptoError::MalformedCiphertext("tag length".into()))?;
        let mut plaintext = ciphertext.to_vec();
        self.aead
            .decrypt_inout_detached(
                &iv.into(),
                b"",
                plaintext.as_mut_slice().into(),
                &tag.into(),
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plaintext)
            .map_err(|_| CryptoError::MalformedCiphertext("plaintext is not UTF-8".into()))
    }

    /// Encrypts, in place, every top-level string field of `config` named in `sensitive_fields` that is
    /// not already encrypted. Other fields, nested values and non-string values are left alone.
    pub fn encrypt_config(
        &self,
        config: &mut Map<String, Value>,
        sensitive_fields: &[String],
    ) -> Result<(), CryptoError> {
        for field in sensitive_fields {
            if let Some(Value::String(value)) = config.get_mut(field) {
                if !is_encrypted(value) {
                    *value = self.encrypt(value)?;
                }
            }
        }
        Ok(())
    }

    /// The plaintext config a plugin receives: every top-level sensitive field decrypted.
    pub fn decrypt_config(
        &self,
        config: &Map<String, Value>,
        sensitive_fields: &[String],
    ) -> Result<Map<String, Value>, CryptoError> {
        let mut out = config.clone();
        for field in sensitive_fields {
            if let Some(Value::String(value)) = out.get_mut(field) {
                if is_encrypted(value) {
                    *value = self.decrypt(value)?;
                }
            }
        }
        Ok(out)
    }
}

/// Whether a stored value is in the `enc:` form.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with(ENC_PREFIX)
}

/// A copy of `config` fit to show: any value under a key named in `sensitive_fields`, at any depth, and
/// any `enc:` string anywhere, reads [`REDACTED`]. A sensitive key holding `null` stays `null`, so that
/// the UI can tell "not set" from "set".
///
/// "Any depth" is deliberate: plugin authors list top-level fields, but a nested object that reuses a
/// sensitive name (`{"oauth": {"client_secret": …}}`) is a secret too, and showing it is worse than
/// hiding a harmless value.
pub fn redact(config: &Value, sensitive_fields: &[String]) -> Value {
    match config {
        Value::String(s) if is_encrypted(s) => Value::String(REDACTED.to_owned()),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact(v, sensitive_fields)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = if v.is_null() {
                        Value::Null
                    } else if sensitive_fields.iter().any(|f| f == k) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(v, sensitive_fields)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies the placeholder rule to an incoming config before it is stored: a top-level sensitive field
/// whose incoming value is [`REDACTED`] takes the stored value instead (the form sent the placeholder it
/// was shown, meaning "unchanged"). When nothing is stored for that field, the field is dropped rather
/// than storing the placeholder as a secret.
pub fn merge_placeholders(
    incoming: &mut Map<String, Value>,
    stored: &Map<String, Value>,
    sensitive_fields: &[String],
) {
    for field in sensitive_fields {
        let is_placeholder = matches!(incoming.get(field), Some(Value::String(s)) if s == REDACTED);
        if !is_placeholder {
            continue;
        }
        match stored.get(field) {
            Some(value) => {
                incoming.insert(field.clone(), value.clone());
            }
            None => {
                incoming.remove(field);
            }
        }
    }
}
