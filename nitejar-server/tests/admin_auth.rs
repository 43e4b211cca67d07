//! Authentication of the admin surface against a real server process: every route the API document
//! lists refuses missing and wrong credentials; sessions, cookies, CSRF tokens and same-site checks;
//! the generated admin token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::*;

/// Every operation of the OpenAPI document, with its path parameters filled in.
fn operations(doc: &Value) -> Vec<(Method, String, bool)> {
    let mut out = Vec::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("methods") {
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let protected = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            out.push((method, concrete, protected));
        }
    }
    out
}

fn refused(answer: &Answer, path: &str) -> bool {
    if path.starts_with("/api") || path == "/metrics" {
        answer.status == 401 && answer.json()["error"]["code"].is_string()
    } else {
        answer.status == 303 && answer.header("location").starts_with("/admin/login")
    }
}

#[tokio::test]
async fn every_protected_route_refuses_missing_and_wrong_credentials() {
    let data = DataDir::new();
    // Wrong tokens on purpose, many: the throttle has its own test.
    let server = start_admin(
        &data,
        &[("NITEJAR_ADMIN_AUTH_MAX_FAILURES", "1000000".to_owned())],
    );
    // The document itself is protected.
    assert_eq!(
        call(&server, Method::GET, "/api/openapi.json", None, None)
            .await
            .status,
        401
    );
    let doc = api(&server, Method::GET, "/api/openapi.json", None)
        .await
        .json();
    let ops = operations(&doc);
    assert!(
        ops.len() >= 30,
        "the document lists {} operations",
        ops.len()
    );
    let mut protected = 0;
    for (method, path, is_protected) in &ops {
        if !is_protected {
            // Only these may answer without credentials.
            assert!(
                [
                    "/healthz",
                    "/readyz",
                    "/",
                    "/admin",
                    "/admin/login",
                    "/admin/assets/x1",
                    "/api/webhooks/plugins/x1/x1"
                ]
                .contains(&path.as_str()),
                "{method} {path} is documented as public"
            );
            continue;
        }
        protected += 1;
        let body = json!({});
        let with_body = (*method != Method::GET).then_some(&body);
        let none = call(&server, method.clone(), path, None, with_body).await;
        assert!(
            refused(&none, path),
            "{method} {path} without credentials: {} {}",
            none.status,
            none.text
        );
        let wrong = call(
            &server,
            method.clone(),
            path,
            Some("not-the-token-0123456789"),
            with_body,
        )
        .await;
        assert!(
            refused(&wrong, path) || wrong.status == 401,
            "{method} {path} with a wrong token: {} {}",
            wrong.status,
            wrong.text
        );
        // A session cookie that was never issued is no session.
        let forged = client()
            .request(method.clone(), server.url(path))
            .header("cookie", "nitejar_session=forged")
            .send()
            .await
            .expect("request");
        let forged = Answer {
            status: forged.status().as_u16(),
            headers: forged.headers().clone(),
            text: forged.text().await.unwrap_or_default(),
        };
        assert!(
            refused(&forged, path),
            "{method} {path} with a forged cookie: {}",
            forged.status
        );
    }
    assert!(protected >= 25);
    // Paths nobody listed are closed too.
    for path in ["/api/admin/nothing-here", "/admin/nothing-here"] {
        let answer = call(&server, Method::GET, path, None, None).await;
        assert!(refused(&answer, path), "{path}: {}", answer.status);
    }
    // With the token, the API answers.
    let runtime = api(&server, Method::GET, "/api/admin/runtime", None).await;
    assert_eq!(runtime.status, 200, "{}", runtime.text);
}

/// Every state-changing route, with a valid session and its CSRF token, refuses a request sent from
/// another site (an `Origin` of another site, or `Sec-Fetch-Site: cross-site`) and one without the
/// token: nothing behind a cookie can be driven from elsewhere.
#[tokio::test]
async fn every_state_changing_route_refuses_cross_site_and_tokenless_requests() {
    let data = DataDir::new();
    let server = start_admin(&data, &[]);
    let session = Session::sign_in(&server).await;
    let doc = api(&server, Method::GET, "/api/openapi.json", None)
        .await
        .json();
    let mut checked = 0;
    for (method, path, is_protected) in operations(&doc) {
        if !is_protected || method == Method::GET || path == "/metrics" {
            continue;
        }
        checked += 1;
        for (origin, fetch_site, csrf, what) in [
            (
                Some("http://evil.example"),
                None,
                true,
                "another site's Origin",
            ),
            (Some("null"), None, true, "an opaque Origin"),
            (None, Some("cross-site"), true, "Sec-Fetch-Site: cross-site"),
            (None, None, false, "no CSRF token"),
        ] {
            let mut req = client()
                .request(method.clone(), server.url(&path))
                .header("cookie", format!("nitejar_session={}", session.cookie))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin.unwrap_or(session.origin.as_str()));
            if let Some(site) = fetch_site {
                req = req.header("sec-fetch-site", site);
            }
            let token = if csrf { session.csrf.as_str() } else { "" };
            if csrf {
                req = req.header("x-csrf-token", token);
            }
            let answer = req
                .body(form_body(&[("_csrf", token)]))
                .send()
                .await
                .expect("request");
            assert_eq!(
                answer.status().as_u16(),
                403,
                "{method} {path} with {what} must be refused"
            );
        }
    }
    assert!(checked >= 20, "only {checked} state-changing routes");
    // The control: the same requests from this site with the token get through the guard.
    let through = client()
        .post(server.url("/api/admin/plugins/x1/disable"))
        .header("cookie", format!("nitejar_session={}", session.cookie))
        .header("origin", session.origin.as_str())
        .header("x-csrf-token", session.csrf.as_str())
        .send()
        .await
        .expect("request");
    assert_eq!(
        through.status().as_u16(),
        404,
        "past the guard: no such plugin"
    );
    let out = session.post_form(&server, "/admin/logout", &[]).await;
    assert_eq!(out.status, 303, "{}", out.text);
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session() {
    let data = DataDir::new();
    let server = start_admin(&data, &[]);

    // A wrong token is refused on the form.
    let page = client()
        .get(server.url("/admin/login"))
        .send()
        .await
        .expect("page");
    let login_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("nitejar_login_csrf=")
                .and_then(|c| c.split(';').next())
                .map(str::to_owned)
        })
        .expect("login csrf cookie");
    let html = page.text().await.unwrap_or_default();
    let csrf = hidden_value(&html, "_csrf").expect("csrf field");
    let wrong = client()
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("nitejar_login_csrf={login_cookie}"))
        .body(form_body(&[
            ("_csrf", &csrf),
            ("token", "wrong-token-0123456789"),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong
        .headers()
        .get("set-cookie")
        .is_none_or(|c| !c.to_str().unwrap_or("").starts_with("nitejar_session=")));
    // Without the form's token the sign-in is refused.
    let no_csrf = client()
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", ADMIN_TOKEN)]))
        .send()
        .await
        .expect("post");
    assert_eq!(no_csrf.status().as_u16(), 403);

    let session = Session::sign_in(&server).await;
    let page = session.get(&server, "/admin/integrations").await;
    assert_eq!(page.status, 200);
    // The default trust mode (guarded) runs third-party plugins isolated.
    assert!(page.text.contains("Plugins isolated by default"));

    let out = session.post_form(&server, "/admin/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(out.header("location").starts_with("/admin/login"));
    let after = session.get(&server, "/admin/integrations").await;
    assert_eq!(after.status, 303, "the session must be gone after sign-out");
    // The session row is gone from the database.
    let store = data.store().await;
    let hash = hex_sha256(&session.cookie);
    assert!(store
        .get_admin_session(&hash)
        .await
        .expect("read")
        .is_none());
}

fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn session_cookies_are_secure_behind_https() {
    let data = DataDir::new();
    let server = start_admin(&data, &[]);
    let set_cookie_of = |answer: &Answer| {
        answer
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("nitejar_session="))
            .expect("session cookie")
    };
    // Plain http on loopback: HttpOnly and SameSite=Strict, not Secure (the browser would drop it).
    let signed = sign_in_raw(&server, None).await;
    let cookie = set_cookie_of(&signed);
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Behind a TLS-terminating proxy: Secure too.
    let signed = sign_in_raw(&server, Some("https")).await;
    let cookie = set_cookie_of(&signed);
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    drop(server);
    // NITEJAR_PUBLIC_URL https: always Secure.
    let server = start_admin(
        &data,
        &[("NITEJAR_PUBLIC_URL", "https://nitejar.example.com".into())],
    );
    let cookie = set_cookie_of(&sign_in_raw(&server, None).await);
    assert!(cookie.contains("Secure"), "{cookie}");
}

async fn sign_in_raw(server: &Server, forwarded_proto: Option<&str>) -> Answer {
    let page = client()
        .get(server.url("/admin/login"))
        .send()
        .await
        .expect("page");
    let login_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("nitejar_login_csrf=")
                .and_then(|c| c.split(';').next())
                .map(str::to_owned)
        })
        .expect("login csrf cookie");
    let csrf = hidden_value(&page.text().await.unwrap_or_default(), "_csrf").expect("csrf");
    let mut req = client()
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("nitejar_login_csrf={login_cookie}"))
        .body(form_body(&[("_csrf", &csrf), ("token", ADMIN_TOKEN)]));
    if let Some(proto) = forwarded_proto {
        req = req.header("x-forwarded-proto", proto);
    }
    let resp = req.send().await.expect("sign in");
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap_or_default(),
    }
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_a_same_site_origin() {
    let data = DataDir::new();
    let server = start_admin(&data, &[]);
    let session = Session::sign_in(&server).await;
    let created = api(
        &server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "echo", "name": "Echo", "config": {}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let disable = format!("/admin/integrations/{id}/disable");
    let enabled = |store: std::sync::Arc<dyn nitejar_core::store::Store>, id: String| async move {
        store
            .get_integration(&id)
            .await
            .expect("read")
            .expect("row")
            .enabled
    };

    // No token, a wrong token, another session's token: refused, nothing changed.
    for body in [String::new(), form_body(&[("_csrf", "wrong")])] {
        let answer = session
            .post_raw(&server, &disable, &body, Some(&session.origin))
            .await;
        assert_eq!(answer.status, 403, "{}", answer.text);
        assert!(answer.text.contains("out of date"), "{}", answer.text);
    }
    let other = Session::sign_in(&server).await;
    let answer = session
        .post_raw(
            &server,
            &disable,
            &form_body(&[("_csrf", &other.csrf)]),
            Some(&session.origin),
        )
        .await;
    assert_eq!(answer.status, 403);
    // The right token from another site: refused.
    for origin in ["http://evil.example", "null"] {
        let answer = session
            .post_raw(
                &server,
                &disable,
                &form_body(&[("_csrf", &session.csrf)]),
                Some(origin),
            )
            .await;
        assert_eq!(answer.status, 403, "{origin}: {}", answer.text);
    }
    let cross = client()
        .post(server.url(&disable))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("nitejar_session={}", session.cookie))
        .header("sec-fetch-site", "cross-site")
        .body(form_body(&[("_csrf", &session.csrf)]))
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status().as_u16(), 403);
    // The JSON API with a session cookie follows the same rules (X-CSRF-Token header).
    let patch = client()
        .patch(server.url(&format!("/api/admin/integrations/{id}")))
        .header("cookie", format!("nitejar_session={}", session.cookie))
        .header("content-type", "application/json")
        .body(r#"{"enabled": false}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(patch.status().as_u16(), 403);
    assert_eq!(
        patch.text().await.map(|t| t.contains("csrf_failed")).ok(),
        Some(true)
    );
    assert!(
        enabled(data.store().await, id.clone()).await,
        "nothing may have changed"
    );

    // Same site, right token: done.
    let answer = session.post_form(&server, &disable, &[]).await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    assert!(!enabled(data.store().await, id.clone()).await);
    let patch = client()
        .patch(server.url(&format!("/api/admin/integrations/{id}")))
        .header("cookie", format!("nitejar_session={}", session.cookie))
        .header("x-csrf-token", &session.csrf)
        .header("content-type", "application/json")
        .body(r#"{"enabled": true}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(patch.status().as_u16(), 200);
    assert!(enabled(data.store().await, id).await);
}

#[tokio::test]
async fn a_generated_admin_token_is_shown_once_and_stored_hashed() {
    let data = DataDir::new();
    let server = Server::start(&data, &[]);
    let log = server.log();
    let token = log
        .split_whitespace()
        .find(|w| w.starts_with("njt_"))
        .unwrap_or_else(|| panic!("the generated token in the log:\n{log}"))
        .to_owned();
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/api/admin/runtime",
            Some(&token),
            None
        )
        .await
        .status,
        200
    );
    drop(server);
    let store = data.store().await;
    let stored = store
        .get_admin_setting("admin_token_sha256")
        .await
        .expect("read")
        .expect("stored hash");
    assert_eq!(stored, hex_sha256(&token));
    assert!(
        !std::fs::read_dir(&data.path)
            .expect("dir")
            .flatten()
            .any(|e| {
                e.path().extension().is_none_or(|x| x != "log")
                    && std::fs::read(e.path())
                        .is_ok_and(|b| String::from_utf8_lossy(&b).contains(&token))
            }),
        "the token itself is stored nowhere"
    );

    // A restart keeps the token and does not show it again.
    let server = Server::start(&data, &[]);
    assert!(!server.log().contains(&token));
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/api/admin/runtime",
            Some(&token),
            None
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn a_short_admin_token_stops_the_server_with_a_reason() {
    let data = DataDir::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .env_clear()
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("ENCRYPTION_KEY", KEY_HEX)
        .env("NITEJAR_ADMIN_TOKEN", "short")
        .env("PORT", free_port().to_string())
        .output()
        .expect("run nitejar");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NITEJAR_ADMIN_TOKEN is shorter than 16 characters"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_metrics_token_opens_metrics_and_nothing_else() {
    let data = DataDir::new();
    let server = start_admin(
        &data,
        &[("NITEJAR_METRICS_TOKEN", "metrics-token-0123456789".into())],
    );
    let scrape = call(
        &server,
        Method::GET,
        "/metrics",
        Some("metrics-token-0123456789"),
        None,
    )
    .await;
    assert_eq!(scrape.status, 200);
    assert!(scrape
        .text
        .contains("# TYPE nitejar_webhooks_total counter"));
    assert_eq!(
        call(&server, Method::GET, "/metrics", None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/api/admin/runtime",
            Some("metrics-token-0123456789"),
            None
        )
        .await
        .status,
        401
    );
    assert_eq!(
        api(&server, Method::GET, "/metrics", None).await.status,
        200
    );
}
