//! Sign-in and sign-out.
//!
//! The sign-in form carries a CSRF token that is also set in a short-lived cookie (double submit:
//! there is no session yet to tie it to); [`SignInForm`] checks both, that the post comes from this
//! site, and that its address is not locked out. A wrong token answers the form again and counts
//! against the address (see `crate::auth::throttle`).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{redirect, render, Chrome};
use crate::auth::admin::record_failure;
use crate::auth::guard::{is_https, session_cookie};
use crate::auth::{random_token, Admin, AdminForm, SignInForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

/// Only local admin paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/admin/plugins".to_owned(),
    }
}

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    next: String,
    error: Option<String>,
    notice: Option<&str>,
) -> HttpResponse {
    let csrf = match random_token() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("{e}");
            return super::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "No random token could be made; see the server log.",
            );
        }
    };
    let page = LoginPage {
        chrome: Chrome::public("Sign in", Some(state)).with_notice(notice),
        csrf: csrf.clone(),
        next,
        error,
    };
    let mut response = render(status, &page);
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, csrf)
        .path("/admin/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(is_https(req, &state.auth))
        .max_age(actix_web::cookie::time::Duration::hours(2))
        .finish();
    if let Err(e) = response.add_cookie(&cookie) {
        tracing::error!("could not set the sign-in cookie: {e}");
    }
    response
}

pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    login_page(
        &state,
        &req,
        StatusCode::OK,
        next,
        None,
        query.notice.as_deref(),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn submit(
    post: SignInForm<LoginForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let SignInForm { client, form } = post;
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim();
    let right = match state.auth.is_admin_token(token).await {
        Ok(right) => right,
        Err(e) => {
            tracing::error!("admin sign-in could not check the token: {e}");
            return super::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in failed: the database does not answer; see the server log.",
            );
        }
    };
    if !right {
        tracing::info!(target: "nitejar::auth", %client, "admin sign-in refused: wrong token");
        record_failure(&state, client, "sign_in");
        return login_page(
            &state,
            &req,
            StatusCode::UNAUTHORIZED,
            next,
            Some("That is not the admin token.".into()),
            None,
        );
    }
    match state.auth.sign_in(token).await {
        Ok(token) => {
            tracing::info!(target: "nitejar::auth", "admin signed in");
            let mut response = redirect(next);
            let secure = is_https(&req, &state.auth);
            let mut expired = Cookie::build(LOGIN_CSRF_COOKIE, "")
                .path("/admin/login")
                .finish();
            expired.make_removal();
            for cookie in [session_cookie(token, secure), expired] {
                if let Err(e) = response.add_cookie(&cookie) {
                    tracing::error!("could not set a cookie: {e}");
                }
            }
            response
        }
        Err(e) => {
            tracing::error!("admin sign-in failed: {e}");
            super::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in failed; see the server log.",
            )
        }
    }
}

pub async fn logout(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Admin::Session(session) = &post.admin {
        if let Err(e) = state.auth.sign_out(&session.id).await {
            tracing::error!("could not end the admin session: {e}");
        }
    }
    let mut response = redirect("/admin/login?notice=signed_out");
    let mut removal = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    removal.make_removal();
    if let Err(e) = response.add_cookie(&removal) {
        tracing::error!("could not clear the session cookie: {e}");
    }
    response
}
