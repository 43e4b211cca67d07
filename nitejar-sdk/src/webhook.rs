//! Webhook signatures: was this delivery signed with the integration's shared secret?
//!
//! Most webhook senders sign the raw body with HMAC under a secret both sides know and send the
//! result in a header: GitHub as `X-Hub-Signature-256: sha256=<hex>`, Stripe-like and Slack-like
//! senders in hex or base64 with their own prefixes, older senders with SHA-1. [`HmacSignature`]
//! describes such a scheme once and checks a delivery against it:
//!
//! ```
//! use nitejar_sdk::webhook::HmacSignature;
//! use nitejar_sdk::WebhookRequest;
//!
//! let scheme = HmacSignature::github();
//! let body = br#"{"action":"opened"}"#.to_vec();
//! let request = WebhookRequest::new("POST", "/api/webhooks/plugins/github/row-1")
//!     .with_header("x-hub-signature-256", scheme.sign(b"s3cret", &body))
//!     .with_body(body);
//! assert!(scheme.verify_header(&request, "x-hub-signature-256", b"s3cret").is_ok());
//! assert!(scheme.verify_header(&request, "x-hub-signature-256", b"other").is_err());
//! ```
//!
//! The comparison is constant-time (it does not stop at the first differing byte, so the time a
//! check takes says nothing about how close a forged signature was). A [`SignatureError`] turns
//! into [`IntegrationError::Unauthorized`], which the server answers with HTTP 401.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::integration::{IntegrationError, WebhookRequest};

/// The hash function of an HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA256 (32-byte signatures): what new senders use.
    Sha256,
    /// HMAC-SHA1 (20-byte signatures): GitHub's older `X-Hub-Signature` and other long-lived
    /// senders. Prefer SHA-256 where the sender offers both.
    Sha1,
}

impl Algorithm {
    /// The length of a signature in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha1 => 20,
        }
    }

    fn mac(self, secret: &[u8], body: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], body: &[u8]) -> Option<Vec<u8>> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret).ok()?;
            mac.update(body);
            Some(mac.finalize().into_bytes().to_vec())
        }
        // HMAC takes keys of any length, so keying cannot fail; an empty result would only
        // ever fail to match.
        match self {
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(secret, body),
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(secret, body),
        }
        .unwrap_or_default()
    }
}

/// How a signature is written as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// Hexadecimal, either case (signing writes lower case).
    Hex,
    /// Standard base64 with padding (RFC 4648 section 4).
    Base64,
}

impl Encoding {
    fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                bytes
                    .iter()
                    .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
                    .map(char::from)
                    .collect()
            }
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => {
                let digits = text.as_bytes();
                if digits.len() % 2 != 0 {
                    return None;
                }
                digits
                    .chunks(2)
                    .map(|pair| {
                        let nibble = |c: u8| (c as char).to_digit(16);
                        Some((nibble(pair[0])? << 4 | nibble(pair[1])?) as u8)
                    })
                    .collect()
            }
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }
}

/// An HMAC webhook signature scheme: the hash, how the signature is written, and the prefix the
/// sender puts before it (`sha256=` for GitHub).
///
/// ```
/// use nitejar_sdk::webhook::{Algorithm, HmacSignature};
///
/// // Hex HMAC-SHA256, with or without GitHub's `sha256=` in front.
/// let scheme = HmacSignature::new(Algorithm::Sha256).optional_prefix("sha256=");
/// let signature = scheme.sign(b"key", b"The quick brown fox jumps over the lazy dog");
/// assert_eq!(signature, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
/// assert!(scheme.verify(b"key", b"The quick brown fox jumps over the lazy dog", &signature).is_ok());
/// assert!(scheme
///     .verify(b"key", b"The quick brown fox jumps over the lazy dog", &format!("sha256={signature}"))
///     .is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacSignature {
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: Option<(String, bool)>,
}

impl HmacSignature {
    /// A scheme of this hash, written in hex, without a prefix.
    pub fn new(algorithm: Algorithm) -> HmacSignature {
        HmacSignature {
            algorithm,
            encoding: Encoding::Hex,
            prefix: None,
        }
    }

    /// Hex HMAC-SHA256 without a prefix.
    pub fn sha256() -> HmacSignature {
        HmacSignature::new(Algorithm::Sha256)
    }

    /// Hex HMAC-SHA1 without a prefix.
    pub fn sha1() -> HmacSignature {
        HmacSignature::new(Algorithm::Sha1)
    }

    /// GitHub's `X-Hub-Signature-256`: `sha256=` followed by the hex HMAC-SHA256 of the body.
    pub fn github() -> HmacSignature {
        HmacSignature::sha256().prefix("sha256=")
    }

    /// The signature is written in base64 instead.
    pub fn base64(mut self) -> HmacSignature {
        self.encoding = Encoding::Base64;
        self
    }

    /// The signature is written in this encoding.
    pub fn encoding(mut self, encoding: Encoding) -> HmacSignature {
        self.encoding = encoding;
        self
    }

    /// The signature starts with `prefix`, which must be there. [`sign`](Self::sign) writes it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> HmacSignature {
        self.prefix = Some((prefix.into(), true));
        self
    }

    /// The signature may start with `prefix` (accepted with and without it). [`sign`](Self::sign)
    /// does not write it.
    pub fn optional_prefix(mut self, prefix: impl Into<String>) -> HmacSignature {
        self.prefix = Some((prefix.into(), false));
        self
    }

    /// The hash.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signature of `body` under `secret`, written as this scheme writes it (with a required
    /// prefix). For signing what a plugin sends, and for tests.
    pub fn sign(&self, secret: &[u8], body: &[u8]) -> String {
        let encoded = self.encoding.encode(&self.algorithm.mac(secret, body));
        match &self.prefix {
            Some((prefix, true)) => format!("{prefix}{encoded}"),
            _ => encoded,
        }
    }

    /// Checks `signature` (surrounding whitespace ignored) against `body` under `secret`, in
    /// constant time.
    pub fn verify(
        &self,
        secret: &[u8],
        body: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let signature = signature.trim();
        let encoded = match &self.prefix {
            Some((prefix, required)) => match signature.strip_prefix(prefix.as_str()) {
                Some(rest) => rest,
                None if *required => {
                    return Err(SignatureError::MissingPrefix {
                        prefix: prefix.clone(),
                    })
                }
                None => signature,
            },
            None => signature,
        };
        let given = self
            .encoding
            .decode(encoded)
            .ok_or(SignatureError::Malformed {
                encoding: self.encoding,
            })?;
        let expected = self.algorithm.mac(secret, body);
        // The length of a signature is public (it is fixed by the algorithm): saying it is wrong
        // gives nothing away, and tells the sender's author they chose the wrong hash.
        if given.len() != expected.len() {
            return Err(SignatureError::WrongLength {
                expected: expected.len(),
                found: given.len(),
            });
        }
        if bool::from(given.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Checks the signature in `request`'s header `header` (case-insensitive) against its raw
    /// body. A missing header is [`SignatureError::MissingHeader`].
    pub fn verify_header(
        &self,
        request: &WebhookRequest,
        header: &str,
        secret: &[u8],
    ) -> Result<(), SignatureError> {
        let signature = request
            .header(header)
            .ok_or_else(|| SignatureError::MissingHeader {
                header: header.to_ascii_lowercase(),
            })?;
        self.verify(secret, &request.body, signature)
    }
}

/// Why a webhook signature was refused. Every case means: do not trust this delivery.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The request has no signature header.
    #[error("the {header} header is missing; the sender must sign every delivery with the shared secret")]
    MissingHeader {
        /// The header, lower case.
        header: String,
    },
    /// The signature does not start with the prefix the scheme requires.
    #[error("the signature does not start with `{prefix}`")]
    MissingPrefix {
        /// The prefix expected, e.g. `sha256=`.
        prefix: String,
    },
    /// The signature is not written in the scheme's encoding.
    #[error("the signature is not {}", encoding.name())]
    Malformed {
        /// The encoding expected.
        encoding: Encoding,
    },
    /// The signature has the wrong length for the scheme's hash.
    #[error(
        "the signature is {found} bytes long, not {expected}; is the sender using another hash?"
    )]
    WrongLength {
        /// Bytes of the scheme's hash.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The signature is well-formed but is not the body's signature under the secret.
    #[error("the signature does not match the body signed with the shared secret")]
    Mismatch,
}

impl From<SignatureError> for IntegrationError {
    fn from(e: SignatureError) -> Self {
        IntegrationError::Unauthorized(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOX: &[u8] = b"The quick brown fox jumps over the lazy dog";

    #[test]
    fn known_vectors() {
        // The HMAC examples published for SHA-256 and SHA-1 (key "key", the fox sentence).
        assert_eq!(
            HmacSignature::sha256().sign(b"key", FOX),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            HmacSignature::sha1().sign(b"key", FOX),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe").
        assert_eq!(
            HmacSignature::sha256().sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 2202 test case 2 (HMAC-SHA1, key "Jefe").
        assert_eq!(
            HmacSignature::sha1().sign(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // RFC 4231 test case 6: a key longer than the block size is hashed first.
        assert_eq!(
            HmacSignature::sha256().sign(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        assert_eq!(
            HmacSignature::github().sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn hex_and_base64_are_accepted_as_written() {
        let hex = HmacSignature::sha256();
        let b64 = HmacSignature::sha256().base64();
        assert_eq!(
            b64.sign(b"key", FOX),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
        assert_eq!(
            b64.verify(b"key", FOX, "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="),
            Ok(())
        );
        let upper = hex.sign(b"key", FOX).to_ascii_uppercase();
        assert_eq!(hex.verify(b"key", FOX, &format!("  {upper}\n")), Ok(()));
        // Each encoding refuses the other.
        assert_eq!(
            hex.verify(b"key", FOX, &b64.sign(b"key", FOX)),
            Err(SignatureError::Malformed {
                encoding: Encoding::Hex
            })
        );
        assert_eq!(
            b64.verify(b"key", FOX, "not base64!"),
            Err(SignatureError::Malformed {
                encoding: Encoding::Base64
            })
        );
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let scheme = HmacSignature::sha256();
        let right = scheme.sign(b"key", FOX);
        assert_eq!(
            scheme.verify(b"other key", FOX, &right),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            scheme.verify(b"key", b"another body", &right),
            Err(SignatureError::Mismatch)
        );
        // One bit off in the last byte.
        let mut flipped = right.clone();
        let last = flipped.pop().and_then(|c| c.to_digit(16)).unwrap_or(0) ^ 1;
        flipped.push(char::from_digit(last, 16).unwrap_or('0'));
        assert_eq!(
            scheme.verify(b"key", FOX, &flipped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_signature_of_the_wrong_length_is_refused() {
        let sha256 = HmacSignature::sha256();
        let sha1_signature = HmacSignature::sha1().sign(b"key", FOX);
        assert_eq!(
            sha256.verify(b"key", FOX, &sha1_signature),
            Err(SignatureError::WrongLength {
                expected: 32,
                found: 20
            })
        );
        let right = sha256.sign(b"key", FOX);
        assert_eq!(
            sha256.verify(b"key", FOX, &right[..right.len() - 2]),
            Err(SignatureError::WrongLength {
                expected: 32,
                found: 31
            })
        );
        assert_eq!(
            sha256.verify(b"key", FOX, ""),
            Err(SignatureError::WrongLength {
                expected: 32,
                found: 0
            })
        );
        assert_eq!(
            sha256.verify(b"key", FOX, &right[..right.len() - 1]),
            Err(SignatureError::Malformed {
                encoding: Encoding::Hex
            })
        );
    }

    #[test]
    fn prefixes_required_or_optional() {
        let github = HmacSignature::github();
        let signed = github.sign(b"key", FOX);
        assert!(signed.starts_with("sha256="));
        assert_eq!(github.verify(b"key", FOX, &signed), Ok(()));
        assert_eq!(
            github.verify(b"key", FOX, signed.trim_start_matches("sha256=")),
            Err(SignatureError::MissingPrefix {
                prefix: "sha256=".into()
            })
        );
        let optional = HmacSignature::sha256().optional_prefix("sha256=");
        assert_eq!(optional.verify(b"key", FOX, &signed), Ok(()));
        assert_eq!(
            optional.verify(b"key", FOX, signed.trim_start_matches("sha256=")),
            Ok(())
        );
        assert!(!optional.sign(b"key", FOX).starts_with("sha256="));
    }

    #[test]
    fn headers_are_read_case_insensitively_and_a_missing_one_is_named() {
        let scheme = HmacSignature::sha1().prefix("sha1=");
        let request = WebhookRequest {
            headers: vec![("X-Hub-Signature".into(), scheme.sign(b"key", FOX))],
            body: FOX.to_vec(),
            ..Default::default()
        };
        assert_eq!(
            scheme.verify_header(&request, "x-hub-signature", b"key"),
            Ok(())
        );
        let missing = scheme
            .verify_header(&request, "X-Hub-Signature-256", b"key")
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the x-hub-signature-256 header is missing; the sender must sign every delivery with the shared secret"
        );
        assert!(matches!(
            IntegrationError::from(missing),
            IntegrationError::Unauthorized(_)
        ));
    }
}
