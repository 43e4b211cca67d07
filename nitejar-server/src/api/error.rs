//! The JSON error every API route answers with:
//! `{"error": {"code": "stable_code", "message": "human text", "details": …}}`.
//!
//! `code` is stable (scripts branch on it); `message` is written for the person reading it and may
//! change; `details` (optional) lists field-level problems as `[{"path": "/botToken", "message": …}]`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

/// An API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds field-level details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 400 `bad_request`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500 `internal`: the message is logged; the caller is told where to look.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!("admin API: {message}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{message} (see the server log)"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(details), Some(map)) = (&self.details, error.as_object_mut()) {
            map.insert("details".into(), details.clone());
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body())
    }
}

/// JSON bodies, query strings and path segments that do not parse answer with this shape too.
pub fn extractor_configs(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web::{FormConfig, JsonConfig, PathConfig, QueryConfig};
    cfg.app_data(
        // Admin forms (integration configs hold PEM keys and lists): well past actix's 16 KiB.
        FormConfig::default()
            .limit(1024 * 1024)
            .error_handler(|e, _| {
                ApiError::bad_request("invalid_form", format!("the form could not be read: {e}"))
                    .into()
            }),
    )
    .app_data(
        JsonConfig::default()
            .limit(1024 * 1024)
            .error_handler(|e, _| {
                ApiError::bad_request(
                    "invalid_json",
                    format!("the request body is not the JSON expected: {e}"),
                )
                .into()
            }),
    )
    .app_data(QueryConfig::default().error_handler(|e, _| {
        ApiError::bad_request(
            "invalid_query",
            format!("the query string is not valid: {e}"),
        )
        .into()
    }))
    .app_data(PathConfig::default().error_handler(|e, _| {
        ApiError::bad_request("invalid_path", format!("the URL is not valid: {e}")).into()
    }));
}
