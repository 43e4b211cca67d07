//! Admin request bodies that are larger than the extractors' defaults allow.
//!
//! A skill carries its `SKILL.md` and supporting files (up to `NITEJAR_SKILL_MAX_BYTES` of text), and
//! JSON escaping or form URL-encoding makes that text longer on the wire. The skill routes (API and
//! pages) therefore read their bodies themselves, up to [`admin_body_limit`], so that a skill over its
//! size limit is refused by the skill checks — with a message naming the file and the limit — and not
//! by a body limit that knows nothing about skills. Every admin form ([`crate::auth::AdminForm`]) and
//! the auth guard (looking for a form's CSRF field) read up to the same limit.

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::config::Config;

/// The smallest body limit of admin requests, whatever the skill limits are.
const MIN_BODY_BYTES: usize = 1024 * 1024;

/// How much longer than the text it holds a body may be (worst case of URL-encoding is three times:
/// every byte as `%XX`).
const ENCODING_ROOM: usize = 3;

/// The largest body an admin request may carry: room for a skill at its size limit, encoded, and
/// never less than 1 MiB.
pub fn admin_body_limit(config: &Config) -> usize {
    let skill = usize::try_from(config.skill_max_bytes).unwrap_or(usize::MAX);
    skill
        .saturating_mul(ENCODING_ROOM)
        .saturating_add(64 * 1024)
        .max(MIN_BODY_BYTES)
}

/// The 413 answer for a body over `limit`.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is larger than {limit} bytes; skills are limited by \
             NITEJAR_SKILL_MAX_BYTES and NITEJAR_SKILL_MAX_FILE_BYTES"
        ),
    )
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read(payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::bad_request(
            "unreadable_body",
            format!("the request body could not be read: {e}"),
        )),
        Err(_) => Err(too_large(limit)),
    }
}

/// Parses a JSON body; answers 400 `invalid_json` as the JSON extractor of the other routes does.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not the JSON expected: {e}"),
        )
    })
}
