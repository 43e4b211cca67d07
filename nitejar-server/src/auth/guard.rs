//! The auth guard: the second wall, one middleware in front of every route.
//!
//! Every admin handler checks the credential itself (its [`Admin`](super::Admin) extractor); the
//! guard checks it again, earlier, for every path the route table protects — including paths no
//! handler is registered for, so that unlisted paths under `/admin` and `/api` are closed, not open.
//! It looks the request up in the table (`crate::routes::access_of`) by **the path the router
//! matches** (`match_info`, percent-decoded as the router decodes it), never the raw one, so no
//! spelling can make the guard and the router disagree about which route a request is for; and
//! requests whose path is not canonical never reach it (`crate::routes::canonical`).
//!
//! 1. `Authorization: Bearer <admin token>` (a wrong bearer token is refused even with a cookie,
//!    and counts against the address); otherwise the session cookie.
//! 2. Nobody signed in: the API answers 401 JSON; pages redirect to the sign-in page.
//! 3. A state-changing request made with the session cookie must not come from another site and
//!    must carry the session's CSRF token: the `X-CSRF-Token` header, a `_csrf` form field, or
//!    `?_csrf=` (multipart forms).
//! 4. The sign-in form: from this site, with the sign-in page's CSRF token.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::Cookie;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, ResponseError as _};
use futures_util::StreamExt as _;

use super::admin::{
    check_csrf, form_field_csrf, header_or_query_csrf, identify, is_form, needs_csrf, Refusal,
    Verified, Want,
};
use super::origin::check_same_site;
use super::{same_secret, AdminAuth, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::api::body::admin_body_limit;
use crate::routes::{access_of, Access};
use crate::state::AppState;

fn refuse(req: ServiceRequest, refusal: Refusal) -> ServiceResponse<BoxBody> {
    let response = refusal.error_response();
    req.into_response(response)
}

/// The middleware (`actix_web::middleware::from_fn(guard)`).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.into_response(HttpResponse::InternalServerError().finish()));
    };
    let access = access_of(req.method(), req.match_info().as_str());
    let public = state.config.public_url.as_ref();
    let limit = admin_body_limit(&state.config);
    let want = match access {
        None | Some(Access::Public) | Some(Access::Webhook) => {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(Access::SignIn) => {
            if let Err(e) = check_same_site(req.headers(), public) {
                let r = Refusal::new(
                    req.request(),
                    StatusCode::FORBIDDEN,
                    "cross_site_request",
                    format!("Refused: {}.", e.0),
                );
                return Ok(refuse(req, r));
            }
            let expected = req
                .cookie(LOGIN_CSRF_COOKIE)
                .map(|c| c.value().to_owned())
                .unwrap_or_default();
            let presented = match peek_form_csrf(&mut req, limit).await {
                Ok(token) => token,
                Err(r) => return Ok(refuse(req, r)),
            };
            if !same_secret(&expected, &presented) {
                let r = Refusal::new(
                    req.request(),
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "The sign-in form expired; reload the page and sign in again.",
                );
                return Ok(refuse(req, r));
            }
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(Access::Metrics) => Want::Metrics,
        Some(Access::Admin) => Want::Admin,
    };
    let verified = match identify(req.request(), want).await {
        Ok(v) => v,
        Err(r) => return Ok(refuse(req, r)),
    };
    if let Verified::Admin(admin) = &verified {
        let form_token =
            if needs_csrf(req.request(), admin) && header_or_query_csrf(req.request()).is_none() {
                match peek_form_csrf(&mut req, limit).await {
                    Ok(token) => Some(token),
                    Err(r) => return Ok(refuse(req, r)),
                }
            } else {
                None
            };
        if let Err(r) = check_csrf(req.request(), admin, form_token.as_deref()) {
            return Ok(refuse(req, r));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The `_csrf` field of a URL-encoded form body of at most `limit` bytes (empty when the body is
/// not a form); the body is put back for the handler.
async fn peek_form_csrf(req: &mut ServiceRequest, limit: usize) -> Result<String, Refusal> {
    if !is_form(req.headers()) {
        return Ok(String::new());
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(bytes) if body.len() + bytes.len() <= limit => body.extend_from_slice(&bytes),
            Ok(_) => {
                // A form that size is refused by its handler anyway; saying so beats calling it
                // out of date.
                let e = crate::api::body::too_large(limit);
                return Err(Refusal::new(req.request(), e.status, e.code, e.message));
            }
            Err(_) => return Ok(String::new()),
        }
    }
    let body = body.freeze();
    let token = form_field_csrf(&body);
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
