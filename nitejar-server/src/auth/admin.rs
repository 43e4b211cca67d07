//! The admin credential as extractors. A handler that takes [`Admin`] (or [`AdminForm`],
//! [`MetricsReader`], [`SignInForm`]) does not run unless the request carries the credential —
//! checked here, by the extractor itself, whatever path or middleware the request came through.
//! The route table only accepts admin handlers that take one (see `crate::routes`).
//!
//! - [`Admin`]: the bearer admin token, or a live session; a state-changing request made with a
//!   session must come from this site and carry the session's CSRF token in `X-CSRF-Token` or
//!   `?_csrf=` (multipart uploads).
//! - [`AdminForm<T>`]: the same for an HTML form post, whose CSRF token is the form's `_csrf` field;
//!   it reads the form (up to the admin body limit) and hands the handler the parsed `T`.
//! - [`MetricsReader`]: the admin credential or `NITEJAR_METRICS_TOKEN`.
//! - [`SignInForm<T>`]: the sign-in form: from this site, with the sign-in page's CSRF token
//!   (double submit: there is no session yet), from an address that is not locked out.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use super::origin::check_same_site;
use super::throttle::Failure;
use super::{same_secret, AuthError, Session, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::api::body::admin_body_limit;
use crate::api::error::ApiError;
use crate::state::AppState;

/// Someone holding the admin credential.
#[derive(Clone, Debug)]
pub enum Admin {
    /// The bearer admin token (scripts, the CLI).
    Token,
    /// A signed-in admin UI session.
    Session(Session),
}

impl Admin {
    /// The CSRF token forms of this request must carry (empty for bearer requests, which need none).
    pub fn csrf(&self) -> &str {
        match self {
            Admin::Token => "",
            Admin::Session(s) => &s.csrf,
        }
    }
}

/// An admin form post: the credential, checked, and the form.
#[derive(Debug)]
pub struct AdminForm<T> {
    /// Who posted it.
    pub admin: Admin,
    /// The form's fields.
    pub form: T,
}

/// Someone who may read `/metrics`: the admin credential or `NITEJAR_METRICS_TOKEN`.
#[derive(Clone, Copy, Debug)]
pub struct MetricsReader;

/// The sign-in form, checked: from this site, with the sign-in page's CSRF token, from an address
/// that is not locked out. The handler compares the token and reports a wrong one with
/// `record_failure`.
#[derive(Debug)]
pub struct SignInForm<T> {
    /// The client address (for the throttle).
    pub client: IpAddr,
    /// The form's fields.
    pub form: T,
}

/// A refused request: JSON on the API, a redirect to sign-in or a short page on the UI.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable error code.
    pub code: &'static str,
    /// What happened, for the person reading it.
    pub message: String,
    api: bool,
    /// Where a page request goes back to after signing in.
    next: String,
    retry_after: Option<u64>,
}

/// Whether `path` (as the router sees it) answers in JSON.
pub(crate) fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

impl Refusal {
    /// A refusal of `req`, answered the way its surface answers.
    pub(crate) fn new(
        req: &HttpRequest,
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Refusal {
        let next = if req.method() == Method::GET {
            req.path().to_owned()
        } else {
            "/admin".to_owned()
        };
        Refusal {
            status,
            code,
            message: message.into(),
            api: is_api(req.match_info().as_str()),
            next,
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u64) -> Refusal {
        self.retry_after = Some(seconds);
        self
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = if self.api {
            let mut response = HttpResponse::build(self.status)
                .json(ApiError::new(self.status, self.code, self.message.clone()).body());
            if self.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nitejar\""),
                );
            }
            response
        } else if self.status == StatusCode::UNAUTHORIZED {
            let location = format!(
                "/admin/login?next={}",
                url::form_urlencoded::byte_serialize(self.next.as_bytes()).collect::<String>()
            );
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish()
        } else {
            crate::ui::error_page(self.status, &self.message)
        };
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Which credential a route accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Admin,
    Metrics,
}

/// Who a request was verified as.
#[derive(Debug)]
pub(crate) enum Verified {
    Admin(Admin),
    /// `NITEJAR_METRICS_TOKEN` (only where `/metrics` is wanted).
    MetricsToken,
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, Refusal> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            Refusal::new(
                req,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server is not set up to check credentials",
            )
        })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn unauthenticated(req: &HttpRequest) -> Refusal {
    Refusal::new(
        req,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "Sign in, or send Authorization: Bearer <admin token>.",
    )
}

fn unavailable(req: &HttpRequest, e: AuthError) -> Refusal {
    tracing::error!("could not check the admin credential: {e}");
    Refusal::new(
        req,
        StatusCode::SERVICE_UNAVAILABLE,
        "credential_store_unavailable",
        "Credentials cannot be checked right now (the database does not answer); try again.",
    )
}

fn throttled(req: &HttpRequest, state: &AppState, wait: std::time::Duration) -> Refusal {
    state.metrics.admin_auth_throttled();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Refusal::new(
        req,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!("Too many failed credentials from your address; try again in {seconds} s."),
    )
    .retry_after(seconds.max(1))
}

/// Counts a failed credential from `client` (`credential`: `bearer` or `sign_in`); logs once when
/// it locks the address out.
pub(crate) fn record_failure(state: &AppState, client: IpAddr, credential: &'static str) {
    state.metrics.admin_auth_failure(credential);
    if let Failure::LockedOut(lockout) = state.auth.throttle.fail(client, Instant::now()) {
        let policy = state.auth.throttle.policy();
        state.metrics.admin_auth_lockout();
        tracing::warn!(
            target: "nitejar::auth",
            %client,
            "{} failed admin credentials from {client} within {} s; refusing its attempts for {} s",
            policy.max_failures,
            policy.window.as_secs(),
            lockout.as_secs()
        );
    }
}

/// The throttle's verdict on `req`'s address, before any credential it carries is compared.
fn not_locked_out(req: &HttpRequest, state: &AppState) -> Result<IpAddr, Refusal> {
    let client = state.auth.client_addr(req);
    match state.auth.throttle.check(client, Instant::now()) {
        Ok(()) => Ok(client),
        Err(wait) => Err(throttled(req, state, wait)),
    }
}

/// Who `req` is: the bearer token (admin, or metrics where `want` allows it) or a live session.
/// A wrong bearer token is refused even with a session cookie, and counts against the address.
pub(crate) async fn identify(req: &HttpRequest, want: Want) -> Result<Verified, Refusal> {
    let state = app_state(req)?;
    let auth = &state.auth;
    if let Some(token) = bearer(req.headers()) {
        let client = not_locked_out(req, &state)?;
        match auth.is_admin_token(&token).await {
            Ok(true) => return Ok(Verified::Admin(Admin::Token)),
            Ok(false) => {}
            Err(e) => return Err(unavailable(req, e)),
        }
        if want == Want::Metrics && auth.is_metrics_token(&token) {
            return Ok(Verified::MetricsToken);
        }
        record_failure(&state, client, "bearer");
        return Err(Refusal::new(
            req,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The bearer token is not the admin token.",
        ));
    }
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Err(unauthenticated(req));
    };
    match auth.session(cookie.value()).await {
        Ok(Some(session)) => Ok(Verified::Admin(Admin::Session(session))),
        Ok(None) => Err(unauthenticated(req)),
        Err(e) => Err(unavailable(req, e)),
    }
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a request made as `admin` must prove it comes from an admin page.
pub(crate) fn needs_csrf(req: &HttpRequest, admin: &Admin) -> bool {
    matches!(admin, Admin::Session(_)) && is_unsafe(req.method())
}

/// The CSRF token in the `X-CSRF-Token` header or the `_csrf` query parameter.
pub(crate) fn header_or_query_csrf(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.to_owned());
    }
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.into_owned())
}

fn cross_site(req: &HttpRequest, why: String) -> Refusal {
    Refusal::new(
        req,
        StatusCode::FORBIDDEN,
        "cross_site_request",
        format!("Refused: {why}."),
    )
}

/// A state-changing request made with a session: from this site, with the session's CSRF token
/// (from the header, the query, or `form_token`, the form's `_csrf` field).
pub(crate) fn check_csrf(
    req: &HttpRequest,
    admin: &Admin,
    form_token: Option<&str>,
) -> Result<(), Refusal> {
    let Admin::Session(session) = admin else {
        return Ok(());
    };
    if !is_unsafe(req.method()) {
        return Ok(());
    }
    let state = app_state(req)?;
    check_same_site(req.headers(), state.config.public_url.as_ref())
        .map_err(|e| cross_site(req, e.0))?;
    let presented = header_or_query_csrf(req)
        .or_else(|| form_token.map(str::to_owned))
        .unwrap_or_default();
    if same_secret(&session.csrf, &presented) {
        Ok(())
    } else {
        Err(Refusal::new(
            req,
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "This form is out of date or did not come from this admin page; go back, reload and try again.",
        ))
    }
}

/// Whether `headers` say the body is a URL-encoded form.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// Reads a URL-encoded form body of at most `limit` bytes.
async fn read_form(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<Bytes, Refusal> {
    if !is_form(req.headers()) {
        return Err(Refusal::new(
            req,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_a_form",
            "Send this form as application/x-www-form-urlencoded.",
        ));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::new(
                req,
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("The form could not be read: {e}."),
            )
        })?;
        if body.len() + chunk.len() > limit {
            let e = crate::api::body::too_large(limit);
            return Err(Refusal::new(req, e.status, e.code, e.message));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The `_csrf` field of a URL-encoded form.
pub(crate) fn form_field_csrf(body: &[u8]) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn parse_form<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, Refusal> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        Refusal::new(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_form",
            format!("the form could not be read: {e}"),
        )
    })
}

impl FromRequest for Admin {
    type Error = Refusal;
    type Future = LocalBoxFuture<'static, Result<Admin, Refusal>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Verified::Admin(admin) = identify(&req, Want::Admin).await? else {
                return Err(unauthenticated(&req));
            };
            check_csrf(&req, &admin, None)?;
            Ok(admin)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for AdminForm<T> {
    type Error = Refusal;
    type Future = LocalBoxFuture<'static, Result<AdminForm<T>, Refusal>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            // The credential first: nobody's body is read before they are known.
            let Verified::Admin(admin) = identify(&req, Want::Admin).await? else {
                return Err(unauthenticated(&req));
            };
            let state = app_state(&req)?;
            let body = read_form(&req, &mut payload, admin_body_limit(&state.config)).await?;
            check_csrf(&req, &admin, Some(&form_field_csrf(&body)))?;
            let form = parse_form(&req, &body)?;
            Ok(AdminForm { admin, form })
        })
    }
}

impl FromRequest for MetricsReader {
    type Error = Refusal;
    type Future = LocalBoxFuture<'static, Result<MetricsReader, Refusal>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            identify(&req, Want::Metrics).await?;
            Ok(MetricsReader)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for SignInForm<T> {
    type Error = Refusal;
    type Future = LocalBoxFuture<'static, Result<SignInForm<T>, Refusal>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let state = app_state(&req)?;
            check_same_site(req.headers(), state.config.public_url.as_ref())
                .map_err(|e| cross_site(&req, e.0))?;
            let client = not_locked_out(&req, &state)?;
            let body = read_form(&req, &mut payload, admin_body_limit(&state.config)).await?;
            let expected = req
                .cookie(LOGIN_CSRF_COOKIE)
                .map(|c| c.value().to_owned())
                .unwrap_or_default();
            if !same_secret(&expected, &form_field_csrf(&body)) {
                return Err(Refusal::new(
                    &req,
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "The sign-in form expired; reload the page and sign in again.",
                ));
            }
            let form = parse_form(&req, &body)?;
            Ok(SignInForm { client, form })
        })
    }
}

#[cfg(test)]
mod tests {
    //! The first wall alone: every admin handler, served without the guard and without the
    //! canonical-path filter in front of it, refuses a request that lacks the credential.

    use actix_web::http::header;
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::App;

    use crate::config::{Config, Secret};
    use crate::routes::{Access, ROUTES};

    const TOKEN: &str = "unit-test-admin-token-0123456789";
    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn concrete(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn request(verb: &actix_web::http::Method, path: &str) -> TestRequest {
        TestRequest::default()
            .method(verb.clone())
            .uri(path)
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload("confirm=yes&accept_consent=yes")
    }

    #[actix_web::test]
    async fn every_admin_handler_checks_the_credential_itself() {
        nitejar_builtins::link();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::from_env().expect("configuration");
        config.data_dir = dir.path().to_path_buf();
        config.plugins_dir = dir.path().join("plugins");
        config.database_url = dir.path().join("nitejar.db").display().to_string();
        config.encryption_key = Some(KEY_HEX.to_owned());
        config.admin_token = Some(Secret::new(TOKEN));
        config.skills_dirs = Vec::new();
        // Wrong tokens on purpose, one per route.
        config.auth_throttle.max_failures = 1_000_000;
        let engine = crate::serve::assemble(config).await.expect("engine");
        let state = engine.state.clone();
        // The route table and nothing else: no guard, no canonical-path filter.
        let app = init_service(
            App::new()
                .app_data(state.clone())
                .configure(crate::api::error::extractor_configs)
                .configure(crate::routes::configure),
        )
        .await;
        let session = state.auth.sign_in(TOKEN).await.expect("a session");

        let mut checked = 0;
        for r in ROUTES.iter() {
            if !matches!(r.access(), Access::Admin | Access::Metrics) {
                continue;
            }
            checked += 1;
            let path = concrete(r.path);
            let method = r.verb.method();

            let answer = call_service(&app, request(&method, &path).to_request()).await;
            let status = answer.status().as_u16();
            let location = answer
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                status == 401 || (status == 303 && location.starts_with("/admin/login")),
                "{method} {path} without credentials: {status} {location}"
            );

            let wrong = request(&method, &path)
                .insert_header((header::AUTHORIZATION, "Bearer not-the-admin-token-0000"))
                .to_request();
            let status = call_service(&app, wrong).await.status().as_u16();
            assert!(
                matches!(status, 401 | 303),
                "{method} {path} with a wrong token: {status}"
            );

            if method != actix_web::http::Method::GET {
                // A session without the CSRF token, and one from another site: refused.
                let no_csrf = request(&method, &path)
                    .insert_header((
                        header::COOKIE,
                        format!("{}={session}", super::SESSION_COOKIE),
                    ))
                    .to_request();
                let answer = call_service(&app, no_csrf).await;
                let status = answer.status().as_u16();
                let body = String::from_utf8_lossy(&read_body(answer).await).into_owned();
                assert!(
                    status == 403 && (body.contains("csrf_failed") || body.contains("out of date")),
                    "{method} {path} with a session but no CSRF token: {status} {body}"
                );
                let cross = request(&method, &path)
                    .insert_header((
                        header::COOKIE,
                        format!("{}={session}", super::SESSION_COOKIE),
                    ))
                    .insert_header((header::ORIGIN, "http://evil.example"))
                    .to_request();
                let status = call_service(&app, cross).await.status().as_u16();
                assert_eq!(status, 403, "{method} {path} from another site");
            }
        }
        assert!(checked >= 70, "only {checked} admin routes");

        // The control: with the token, the handlers answer.
        let ok = TestRequest::get()
            .uri("/api/admin/runtime")
            .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
            .to_request();
        assert_eq!(call_service(&app, ok).await.status().as_u16(), 200);
    }
}
