//! The admin credential over time, against a real server process: sessions end when the admin
//! token changes (a new `NITEJAR_ADMIN_TOKEN`, or `nitejar admin reset-token` on a running server),
//! and guessing is slow — failed credentials are counted per client address, which is then refused
//! with 429 for a while, longer each time, while other addresses go on as before.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Method;
use support::admin::*;
use support::*;

const OTHER_TOKEN: &str = "another-admin-token-9876543210fedcba";

/// A client whose connections come from `local` (any 127.0.0.0/8 address is this machine).
fn client_from(local: &str) -> reqwest::Client {
    let addr: IpAddr = local.parse().expect("an address");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(addr)
        .build()
        .expect("http client")
}

async fn get(client: &reqwest::Client, server: &Server, path: &str, bearer: &str) -> Answer {
    read(
        client
            .get(server.url(path))
            .header("authorization", format!("Bearer {bearer}"))
            .send()
            .await
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn sessions_end_when_the_admin_token_changes() {
    let data = DataDir::new();
    let server = start_admin(&data, &[]);
    let session = Session::sign_in(&server).await;
    drop(server);

    // A restart with the same token keeps the session.
    let server = start_admin(&data, &[]);
    assert_eq!(session.get(&server, "/admin/plugins").await.status, 200);
    drop(server);

    // Another token: the session has ended, and so has the old token.
    let server = start_admin(&data, &[("NITEJAR_ADMIN_TOKEN", OTHER_TOKEN.to_owned())]);
    let page = session.get(&server, "/admin/plugins").await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert!(page.header("location").starts_with("/admin/login"));
    let old = call(
        &server,
        Method::GET,
        "/api/admin/runtime",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(old.status, 401);
    let new = call(
        &server,
        Method::GET,
        "/api/admin/runtime",
        Some(OTHER_TOKEN),
        None,
    )
    .await;
    assert_eq!(new.status, 200);
    let fresh = Session::sign_in_with(&server, OTHER_TOKEN).await;
    drop(server);

    // Back to the first token: the ended session stays ended; the one opened with the other
    // token ends too.
    let server = start_admin(&data, &[]);
    assert_eq!(session.get(&server, "/admin/plugins").await.status, 303);
    assert_eq!(fresh.get(&server, "/admin/plugins").await.status, 303);
}

#[tokio::test]
async fn reset_token_on_a_running_server_ends_the_old_token_and_every_session() {
    let data = DataDir::new();
    // No NITEJAR_ADMIN_TOKEN: the server generates one and keeps only its hash.
    let server = Server::start(&data, &[]);
    let log = server.log();
    let token = log
        .split_whitespace()
        .find(|w| w.starts_with("njt_"))
        .unwrap_or_else(|| panic!("the generated token in the log:\n{log}"))
        .to_owned();
    let session = Session::sign_in_with(&server, &token).await;

    let reset = std::process::Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .args(["admin", "reset-token"])
        .env_clear()
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .env("ENCRYPTION_KEY", KEY_HEX)
        .output()
        .expect("run nitejar admin reset-token");
    assert!(reset.status.success(), "{reset:?}");
    let new_token = String::from_utf8_lossy(&reset.stdout).trim().to_owned();
    assert!(new_token.starts_with("njt_"), "{new_token}");

    // The same server, no restart: the old token and the session are refused, the new token works.
    let old = call(
        &server,
        Method::GET,
        "/api/admin/runtime",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(old.status, 401, "{}", old.text);
    assert_eq!(session.get(&server, "/admin/plugins").await.status, 303);
    let new = call(
        &server,
        Method::GET,
        "/api/admin/runtime",
        Some(&new_token),
        None,
    )
    .await;
    assert_eq!(new.status, 200, "{}", new.text);
    let signed_in = Session::sign_in_with(&server, &new_token).await;
    assert_eq!(signed_in.get(&server, "/admin/plugins").await.status, 200);
}

#[tokio::test]
async fn repeated_failures_lock_one_address_out_for_longer_each_time() {
    let data = DataDir::new();
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_ADMIN_AUTH_MAX_FAILURES", "3".to_owned()),
            ("NITEJAR_ADMIN_AUTH_LOCKOUT_MS", "2000".to_owned()),
        ],
    );
    let guesser = client_from("127.0.0.2");
    let operator = client_from("127.0.0.3");

    for _ in 0..3 {
        let wrong = get(
            &guesser,
            &server,
            "/api/admin/runtime",
            "guess-0123456789abcdef",
        )
        .await;
        assert_eq!(wrong.status, 401, "{}", wrong.text);
    }
    // Locked out: even the right token is not compared (a 429 tells nothing about a guess).
    let locked = get(&guesser, &server, "/api/admin/runtime", ADMIN_TOKEN).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert_eq!(locked.json()["error"]["code"], "too_many_failures");
    let retry: u64 = locked.header("retry-after").parse().expect("Retry-After");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // The sign-in form from that address is refused too.
    let page = read(
        guesser
            .get(server.url("/admin/login"))
            .send()
            .await
            .expect("sign-in page"),
    )
    .await;
    let csrf = hidden_value(&page.text, "_csrf").expect("csrf");
    let cookie = page.cookie("nitejar_login_csrf").expect("login cookie");
    let sign_in = read(
        guesser
            .post(server.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("nitejar_login_csrf={cookie}"))
            .body(form_body(&[("_csrf", &csrf), ("token", ADMIN_TOKEN)]))
            .send()
            .await
            .expect("sign in"),
    )
    .await;
    assert_eq!(sign_in.status, 429, "{}", sign_in.text);
    assert!(sign_in.text.contains("try again in"), "{}", sign_in.text);

    // Another address is not slowed: its right token works, its wrong one is a plain 401.
    assert_eq!(
        get(&operator, &server, "/api/admin/runtime", ADMIN_TOKEN)
            .await
            .status,
        200
    );
    assert_eq!(
        get(
            &operator,
            &server,
            "/api/admin/runtime",
            "guess-0123456789abcdef"
        )
        .await
        .status,
        401
    );

    // Counted in /metrics; logged once, however many attempts were refused.
    let metrics = get(&operator, &server, "/metrics", ADMIN_TOKEN).await.text;
    for line in [
        "nitejar_admin_auth_failures_total{credential=\"bearer\"} 4",
        "nitejar_admin_auth_lockouts_total 1",
        "nitejar_admin_auth_throttled_total 2",
        "nitejar_admin_auth_locked_out_addresses 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let logged = server
        .log()
        .matches("failed admin credentials from 127.0.0.2")
        .count();
    assert_eq!(logged, 1, "{}", server.log());

    // After the lockout the address may try again; its next lockout is twice as long.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        get(&guesser, &server, "/api/admin/runtime", ADMIN_TOKEN)
            .await
            .status,
        200
    );
    for _ in 0..3 {
        get(
            &guesser,
            &server,
            "/api/admin/runtime",
            "guess-0123456789abcdef",
        )
        .await;
    }
    let locked = get(&guesser, &server, "/api/admin/runtime", ADMIN_TOKEN).await;
    assert_eq!(locked.status, 429);
    let retry: u64 = locked.header("retry-after").parse().expect("Retry-After");
    assert!(
        (3..=4).contains(&retry),
        "the second lockout: Retry-After {retry}"
    );
}

#[tokio::test]
async fn wrong_sign_ins_count_like_wrong_tokens() {
    let data = DataDir::new();
    let server = start_admin(
        &data,
        &[("NITEJAR_ADMIN_AUTH_MAX_FAILURES", "2".to_owned())],
    );
    let guesser = client_from("127.0.0.4");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let page = read(
            guesser
                .get(server.url("/admin/login"))
                .send()
                .await
                .expect("page"),
        )
        .await;
        let csrf = hidden_value(&page.text, "_csrf").expect("csrf");
        let cookie = page.cookie("nitejar_login_csrf").expect("login cookie");
        let answer = read(
            guesser
                .post(server.url("/admin/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("nitejar_login_csrf={cookie}"))
                .body(form_body(&[
                    ("_csrf", &csrf),
                    ("token", "not-the-token-0123456789"),
                ]))
                .send()
                .await
                .expect("sign in"),
        )
        .await;
        statuses.push(answer.status);
    }
    assert_eq!(statuses, vec![401, 401, 429]);
    let metrics = call(&server, Method::GET, "/metrics", Some(ADMIN_TOKEN), None)
        .await
        .text;
    assert!(
        metrics.contains("nitejar_admin_auth_failures_total{credential=\"sign_in\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let data = DataDir::new();
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_ADMIN_AUTH_MAX_FAILURES", "2".to_owned()),
            ("NITEJAR_TRUSTED_PROXIES", "127.0.0.5".to_owned()),
        ],
    );
    let proxy = client_from("127.0.0.5");
    let through = |forwarded: &'static str, bearer: &'static str| {
        let proxy = proxy.clone();
        let url = server.url("/api/admin/runtime");
        async move {
            proxy
                .get(url)
                .header("authorization", format!("Bearer {bearer}"))
                .header("x-forwarded-for", forwarded)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    // Behind the trusted proxy: one client locked out, another one through the same proxy not.
    assert_eq!(through("203.0.113.5", "guess-0123456789abcdef").await, 401);
    assert_eq!(through("203.0.113.5", "guess-0123456789abcdef").await, 401);
    assert_eq!(through("203.0.113.5", ADMIN_TOKEN).await, 429);
    assert_eq!(through("203.0.113.6", ADMIN_TOKEN).await, 200);
    // A forged entry on the left does not help: the proxy appended the real address.
    assert_eq!(through("198.51.100.7, 203.0.113.5", ADMIN_TOKEN).await, 429);

    // From an untrusted peer, X-Forwarded-For is ignored: changing it does not escape.
    let direct = client_from("127.0.0.6");
    for (forwarded, expected) in [("192.0.2.1", 401), ("192.0.2.2", 401), ("192.0.2.3", 429)] {
        let status = direct
            .get(server.url("/api/admin/runtime"))
            .header("authorization", "Bearer guess-0123456789abcdef")
            .header("x-forwarded-for", forwarded)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        assert_eq!(status, expected, "X-Forwarded-For {forwarded}");
    }
}
