//! The auth guard: one middleware in front of every route.
//!
//! It looks the request up in the route table (`crate::routes::access_of`) and applies that route's
//! rule. Unlisted paths under `/admin` and `/api` are admin-only, so a route added without thought is
//! closed, not open. For admin routes:
//!
//! 1. `Authorization: Bearer <admin token>` (a wrong bearer token is refused even with a cookie);
//!    otherwise the session cookie.
//! 2. Nobody signed in: the API answers 401 JSON; pages redirect to the sign-in page.
//! 3. A state-changing request made with the session cookie must not come from another site
//!    ([`super::origin`]) and must carry the session's CSRF token: the `X-CSRF-Token` header, a
//!    `_csrf` form field, or `?_csrf=` (multipart forms).
//!
//! The authenticated [`Principal`] is put in the request's extensions for the handlers.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::Cookie;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;

use super::origin::check_same_site;
use super::{same_secret, AdminAuth, Session, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::api::body::admin_body_limit;
use crate::api::error::ApiError;
use crate::routes::{access_of, Access};
use crate::serve::AppState;

/// Who is making an admin request.
#[derive(Clone, Debug)]
pub enum Principal {
    /// The bearer admin token (scripts, the CLI).
    Token,
    /// A signed-in admin UI session.
    Session(Session),
}

impl Principal {
    /// The CSRF token forms of this request must carry (empty for bearer requests, which need none).
    pub fn csrf(&self) -> &str {
        match self {
            Principal::Token => "",
            Principal::Session(s) => &s.csrf,
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in, or send Authorization: Bearer <admin token>",
            )
        }))
    }
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Refusals: JSON for the API, a redirect to sign-in (or a short page) for the UI.
fn refuse(
    req: &ServiceRequest,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> HttpResponse {
    let path = req.path();
    if is_api(path) {
        let mut response =
            HttpResponse::build(status).json(ApiError::new(status, code, message).body());
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nitejar\""),
            );
        }
        return response;
    }
    if status == StatusCode::UNAUTHORIZED {
        let next = if req.method() == Method::GET {
            path
        } else {
            "/admin"
        };
        let location = format!(
            "/admin/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .finish();
    }
    crate::ui::error_page(status, message)
}

/// The middleware (`actix_web::middleware::from_fn(guard)`).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.into_response(HttpResponse::InternalServerError().finish()));
    };
    let access = access_of(req.method(), req.path());
    let public = state.config.public_url.as_ref();
    match access {
        None | Some(Access::Public) | Some(Access::Webhook) => {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(Access::SignIn) => {
            if let Err(e) = check_same_site(req.headers(), public) {
                let r = refuse(
                    &req,
                    StatusCode::FORBIDDEN,
                    "cross_site_request",
                    &format!("Refused: {}.", e.0),
                );
                return Ok(req.into_response(r));
            }
            let expected = req
                .cookie(LOGIN_CSRF_COOKIE)
                .map(|c| c.value().to_owned())
                .unwrap_or_default();
            let presented = match form_csrf(&mut req, admin_body_limit(&state.config)).await {
                Ok(token) => token,
                Err(limit) => return Ok(too_large(req, limit)),
            };
            if !same_secret(&expected, &presented) {
                let r = refuse(
                    &req,
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "The sign-in form expired; reload the page and sign in again.",
                );
                return Ok(req.into_response(r));
            }
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(Access::Metrics) | Some(Access::Admin) => {}
    }

    let auth: &Arc<AdminAuth> = &state.auth;
    let principal = match bearer(&req) {
        Some(token) if auth.is_admin_token(&token) => Some(Principal::Token),
        Some(token) if access == Some(Access::Metrics) && auth.is_metrics_token(&token) => {
            Some(Principal::Token)
        }
        Some(_) => {
            let r = refuse(
                &req,
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The bearer token is not the admin token.",
            );
            return Ok(req.into_response(r));
        }
        None => match req.cookie(SESSION_COOKIE) {
            None => None,
            Some(cookie) => match auth.session(cookie.value()).await {
                Ok(session) => session.map(Principal::Session),
                Err(e) => {
                    tracing::error!("could not read the admin session: {e}");
                    let r = refuse(
                        &req,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "session_store_unavailable",
                        "Sessions cannot be read right now; try again.",
                    );
                    return Ok(req.into_response(r));
                }
            },
        },
    };
    let Some(principal) = principal else {
        let r = refuse(
            &req,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign in, or send Authorization: Bearer <admin token>.",
        );
        return Ok(req.into_response(r));
    };

    if let Principal::Session(session) = &principal {
        if is_unsafe(req.method()) {
            if let Err(e) = check_same_site(req.headers(), public) {
                let r = refuse(
                    &req,
                    StatusCode::FORBIDDEN,
                    "cross_site_request",
                    &format!("Refused: {}.", e.0),
                );
                return Ok(req.into_response(r));
            }
            let presented = match header_or_query_csrf(&req) {
                Some(token) => token,
                None => match form_csrf(&mut req, admin_body_limit(&state.config)).await {
                    Ok(token) => token,
                    Err(limit) => return Ok(too_large(req, limit)),
                },
            };
            if !same_secret(&session.csrf, &presented) {
                let r = refuse(&req, StatusCode::FORBIDDEN, "csrf_failed", "This form is out of date or did not come from this admin page; go back, reload and try again.");
                return Ok(req.into_response(r));
            }
        }
    }
    req.extensions_mut().insert(principal);
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn header_or_query_csrf(req: &ServiceRequest) -> Option<String> {
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

/// The 413 refusal of a form too large to look for its CSRF field in (a form that size is refused
/// by its handler anyway; saying so beats calling it out of date).
fn too_large(req: ServiceRequest, limit: usize) -> ServiceResponse<BoxBody> {
    let error = crate::api::body::too_large(limit);
    let r = refuse(&req, error.status, error.code, &error.message);
    req.into_response(r)
}

/// The `_csrf` field of a URL-encoded form body of at most `limit` bytes (`Err(limit)` when it is
/// larger); the body is put back for the handler.
async fn form_csrf(req: &mut ServiceRequest, limit: usize) -> Result<String, usize> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(String::new());
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(bytes) if body.len() + bytes.len() <= limit => body.extend_from_slice(&bytes),
            Ok(_) => return Err(limit),
            Err(_) => return Ok(String::new()),
        }
    }
    let body = body.freeze();
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    req.set_payload(Payload::from(body));
    Ok(token)
}

/// A `Set-Cookie` for the session: HttpOnly, SameSite=Strict, Secure behind https.
pub fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .secure(secure)
        .finish()
}

/// Whether this request reached us over https (directly, or per `X-Forwarded-Proto`), or the
/// public URL is https.
pub fn is_https(req: &HttpRequest, auth: &AdminAuth) -> bool {
    auth.always_secure
        || req.connection_info().scheme() == "https"
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .next()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
            })
}
