//! A generic signed-webhook channel, as a third-party Nitejar plugin.
//!
//! - **In**: `POST /api/webhooks/plugins/signed-webhook/{integration_id}` with a JSON body and a
//!   signature header (default `x-signature-256`) holding the hex HMAC-SHA256 of the raw body under
//!   the integration's `secret` (a `sha256=` prefix is accepted, as GitHub sends it). A missing or
//!   wrong signature is refused as unauthorized (HTTP 401); the comparison is constant-time
//!   ([`nitejar_sdk::webhook::HmacSignature`]).
//! - **Body**: `{"id": "evt-1", "text": "hello", "conversation": "c-42", "sender": "ada", "title": "…"}`;
//!   only `text` is required. `id` makes deliveries idempotent; `conversation` groups messages into
//!   one session.
//! - **Out**: responses are POSTed as JSON to `callbackUrl` through the host's `http` service
//!   (so the callback's host must be declared in `permissions.network`), signed the same way.

use nitejar_sdk::integration::{
    ConfigValidation, ConnectionTest, IntegrationCategory, NewWorkItem, PostResponseOptions,
    PostResponseResult, ResponseMode, WebhookParseResult, WebhookRequest,
};
use nitejar_sdk::serde_json::{self, json, Value};
use nitejar_sdk::webhook::{HmacSignature, SignatureError};
use nitejar_sdk::{
    Host, HostError, HttpRequest, Integration, IntegrationDescriptor, IntegrationError,
    IntegrationInstance, LogLevel, Plugin,
};

/// The integration type.
pub const TYPE: &str = "signed-webhook";
/// The signature header when the config names none.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-signature-256";

/// The integration's config, read from an integration row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub secret: String,
    pub signature_header: String,
    pub callback_url: String,
}

impl Config {
    /// Reads the config; says what is missing.
    pub fn read(config: &Value) -> Result<Config, IntegrationError> {
        let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_string);
        let secret = text("secret")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| IntegrationError::Config("`secret` is required".into()))?;
        let callback_url = text("callbackUrl")
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| {
                IntegrationError::Config("`callbackUrl` must be an http(s) URL".into())
            })?;
        let signature_header = text("signatureHeader")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_SIGNATURE_HEADER.into())
            .to_ascii_lowercase();
        Ok(Config {
            secret,
            signature_header,
            callback_url,
        })
    }
}

/// How deliveries and callbacks are signed: the hex HMAC-SHA256 of the raw body, with or without
/// GitHub's `sha256=` in front.
pub fn scheme() -> HmacSignature {
    HmacSignature::sha256().optional_prefix("sha256=")
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    scheme().sign(secret.as_bytes(), body)
}

/// Checks `signature` (hex, optionally `sha256=`-prefixed) against `body`, in constant time.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> Result<(), SignatureError> {
    scheme().verify(secret.as_bytes(), body, signature)
}

/// The integration.
pub struct SignedWebhook;

impl Integration for SignedWebhook {
    fn descriptor(&self) -> IntegrationDescriptor {
        IntegrationDescriptor::new(
            TYPE,
            "Signed webhook",
            "JSON webhooks signed with HMAC-SHA256; responses are POSTed to a callback URL.",
        )
        .icon("webhook")
        .category(IntegrationCategory::Messaging)
        .response_mode(ResponseMode::Final)
        .sensitive_fields(["secret"])
        .config_schema(json!({
            "type": "object",
            "required": ["secret", "callbackUrl"],
            "properties": {
                "secret": { "type": "string", "minLength": 1, "title": "Signing secret" },
                "signatureHeader": {
                    "type": "string",
                    "default": DEFAULT_SIGNATURE_HEADER,
                    "title": "Signature header"
                },
                "callbackUrl": { "type": "string", "format": "uri", "title": "Callback URL" }
            }
        }))
    }

    fn validate_config(&self, config: &Value) -> ConfigValidation {
        match Config::read(config) {
            Ok(_) => ConfigValidation::ok(),
            Err(e) => ConfigValidation::invalid(vec![e.to_string()]),
        }
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        instance: &IntegrationInstance,
        host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        let config = Config::read(&instance.config)?;
        if let Err(e) =
            scheme().verify_header(request, &config.signature_header, config.secret.as_bytes())
        {
            host.log(LogLevel::Warn, &format!("refused a webhook: {e}"));
            return Err(e.into());
        }
        let body: Value = request
            .json()
            .map_err(|e| IntegrationError::BadRequest(format!("the body is not JSON: {e}")))?;
        let field = |key: &str| body.get(key).and_then(Value::as_str);
        let Some(text) = field("text").filter(|t| !t.trim().is_empty()) else {
            return Ok(WebhookParseResult::ignore("the event has no `text`"));
        };
        let conversation = field("conversation").unwrap_or("default");
        let id = field("id").unwrap_or_default();
        let title = field("title").map(str::to_string).unwrap_or_else(|| {
            text.lines()
                .next()
                .unwrap_or(text)
                .chars()
                .take(80)
                .collect()
        });
        let mut result = WebhookParseResult::process(
            NewWorkItem::new(format!("{TYPE}:{}:{conversation}", instance.id), title)
                .source(TYPE)
                .source_ref(id)
                .payload(json!({ "text": text, "sender": field("sender"), "body": body })),
        )
        .with_response_context(json!({ "conversation": conversation, "reply_to": id }));
        if !id.is_empty() {
            result = result.with_idempotency_key(format!("{TYPE}:{}:{id}", instance.id));
        }
        Ok(result)
    }

    fn post_response(
        &self,
        instance: &IntegrationInstance,
        work_item_id: &str,
        content: &str,
        response_context: Option<&Value>,
        options: &PostResponseOptions,
        host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        let config = Config::read(&instance.config)?;
        let body = json!({
            "work_item_id": work_item_id,
            "content": content,
            "context": response_context,
            "hit_limit": options.hit_limit,
        });
        let bytes =
            serde_json::to_vec(&body).map_err(|e| IntegrationError::Other(e.to_string()))?;
        let mut request = HttpRequest::new("POST", config.callback_url.clone())
            .header("content-type", "application/json")
            .header(
                config.signature_header.clone(),
                format!("sha256={}", sign(&config.secret, &bytes)),
            )
            .body(bytes)
            .timeout_ms(10_000);
        if let Some(key) = &options.idempotency_key {
            request = request.header("idempotency-key", key.clone());
        }
        match host.http(&request) {
            Ok(r) if r.is_success() => {
                let reference = r
                    .json::<Value>()
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
                Ok(PostResponseResult::sent(reference))
            }
            Ok(r) => Ok(PostResponseResult::failed(
                format!("the callback answered {}", r.status),
                r.status >= 500 || r.status == 429,
            )),
            Err(e @ HostError::Denied { .. }) => {
                Ok(PostResponseResult::failed(e.to_string(), false))
            }
            Err(e) => Ok(PostResponseResult::failed(e.to_string(), true)),
        }
    }

    fn test_connection(
        &self,
        config: &Value,
        _host: &dyn Host,
    ) -> Result<ConnectionTest, IntegrationError> {
        let config = Config::read(config)?;
        Ok(ConnectionTest::ok(Some(format!(
            "responses go to {}",
            config.callback_url
        ))))
    }
}

/// The plugin: one integration.
pub fn plugin() -> Plugin {
    Plugin::builder().integration(SignedWebhook).build()
}

nitejar_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_sdk::testing::{instance, HostCall, TestHost};
    use nitejar_sdk::HttpResponse;

    const SECRET: &str = "It's a Secret to Everybody";

    fn config() -> Value {
        json!({ "secret": SECRET, "callbackUrl": "https://hooks.example.com/out" })
    }

    fn request(body: &str, signature: Option<String>) -> WebhookRequest {
        let request =
            WebhookRequest::new("POST", "/api/webhooks/plugins/signed-webhook/1").with_body(body);
        match signature {
            Some(s) => request.with_header("x-signature-256", s),
            None => request,
        }
    }

    #[test]
    fn signs_like_github() {
        // The example from GitHub's webhook documentation.
        assert_eq!(
            sign(SECRET, b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn a_signed_body_becomes_a_work_item() {
        let body = r#"{"id":"evt-1","text":"deploy please","conversation":"ops","sender":"ada"}"#;
        let signed = request(
            body,
            Some(format!("sha256={}", sign(SECRET, body.as_bytes()))),
        );
        let host = TestHost::new();
        let parsed = SignedWebhook
            .parse_webhook(&signed, &instance(TYPE, config()), &host)
            .unwrap();
        let item = parsed.work_item.unwrap();
        assert_eq!(item.title, "deploy please");
        assert_eq!(item.session_key, "signed-webhook:test-integration:ops");
        assert_eq!(
            parsed.idempotency_keys,
            ["signed-webhook:test-integration:evt-1"]
        );
        // Without the prefix too.
        let bare = request(body, Some(sign(SECRET, body.as_bytes())));
        assert!(SignedWebhook
            .parse_webhook(&bare, &instance(TYPE, config()), &host)
            .is_ok());
    }

    #[test]
    fn a_wrong_or_missing_signature_is_unauthorized() {
        let host = TestHost::new();
        let body = r#"{"text":"hi"}"#;
        for signature in [
            None,
            Some("sha256=00".to_string()),
            Some(sign("other", body.as_bytes())),
        ] {
            let err = SignedWebhook
                .parse_webhook(&request(body, signature), &instance(TYPE, config()), &host)
                .unwrap_err();
            assert!(matches!(err, IntegrationError::Unauthorized(_)), "{err}");
        }
    }

    #[test]
    fn responses_are_posted_signed_to_the_callback() {
        let host = TestHost::new().with_http_response(
            "https://hooks.example.com/out",
            HttpResponse::new(201).with_body(r#"{"id":"msg-7"}"#),
        );
        let result = SignedWebhook
            .post_response(
                &instance(TYPE, config()),
                "wi-1",
                "done",
                Some(&json!({"conversation": "ops"})),
                &PostResponseOptions::new(),
                &host,
            )
            .unwrap();
        assert_eq!(result, PostResponseResult::sent(Some("msg-7".into())));
        let calls = host.calls();
        let [HostCall::Http(sent)] = calls.as_slice() else {
            panic!("one http call expected, got {calls:?}");
        };
        let signature = sent
            .headers
            .iter()
            .find(|(k, _)| k == "x-signature-256")
            .unwrap();
        assert_eq!(verify(SECRET, &sent.body, &signature.1), Ok(()));
        assert_eq!(
            serde_json::from_slice::<Value>(&sent.body).unwrap()["content"],
            "done"
        );
    }

    #[test]
    fn config_is_checked() {
        let v = SignedWebhook.validate_config(&json!({ "secret": "x", "callbackUrl": "ftp://x" }));
        assert!(!v.valid);
        assert!(SignedWebhook.validate_config(&config()).valid);
    }
}
