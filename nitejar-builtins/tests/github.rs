//! `builtin.github` against real-shaped deliveries and a REST API double that verifies the App JWT.
//!
//! `tests/fixtures/github/*.pem` are RSA keys generated for these tests only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use hmac::{Hmac, Mac};
use nitejar_builtins::github::installations::{Installations, FILE};
use nitejar_builtins::github::GitHub;
use nitejar_sdk::integration::{PostResponseOptions, PostResponseResult, WebhookParseResult};
use nitejar_sdk::testing::TestHost;
use nitejar_sdk::{Integration, IntegrationError, WebhookRequest};
use serde_json::{json, Value};
use sha2::Sha256;
use support::github_api::{FakeGitHub, APP_ID, BASE, INSTALLATION, T0};
use support::{fixture, fixture_text, instance, webhook};

const SECRET: &str = "It's a Secret to Everybody";

fn config() -> Value {
    json!({
        "appId": APP_ID,
        "privateKey": fixture_text("github/app-key.pem"),
        "webhookSecret": SECRET,
    })
}

fn with(extra: Value) -> Value {
    let mut config = config();
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn delivery(event: &str, name: &str) -> WebhookRequest {
    let body = fixture(&format!("github/{name}.json"));
    let signature = sign(SECRET, &body);
    webhook(
        "github",
        body,
        &[
            ("x-github-event", event),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-hub-signature-256", &signature),
            ("content-type", "application/json"),
        ],
    )
}

fn github() -> GitHub {
    GitHub::with_api_base(BASE).with_clock(|| T0)
}

fn parse_with(
    event: &str,
    name: &str,
    config: Value,
    host: &TestHost,
) -> Result<WebhookParseResult, IntegrationError> {
    github().parse_webhook(&delivery(event, name), &instance("github", config), host)
}

fn parse(event: &str, name: &str) -> WebhookParseResult {
    parse_with(event, name, config(), &TestHost::new()).expect("parses")
}

fn ignored(event: &str, name: &str, config: Value) -> String {
    let result = parse_with(event, name, config, &TestHost::new()).expect("parses");
    assert!(!result.should_process, "{event}/{name} should be ignored");
    result.ignored_reason.expect("a reason")
}

// ---- signatures ------------------------------------------------------------------------------------

#[test]
fn a_valid_signature_is_accepted_and_a_bad_or_missing_one_is_unauthorized() {
    assert!(parse("issue_comment", "issue_comment_created").should_process);

    let body = fixture("github/issue_comment_created.json");
    let event = ("x-github-event", "issue_comment");
    let id = ("x-github-delivery", "d-1");
    let wrong_secret = sign("another secret", &body);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let good_for_original = sign(SECRET, &body);
    type Case<'a> = (Vec<u8>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (body.clone(), vec![event, id]),
        (
            body.clone(),
            vec![event, id, ("x-hub-signature-256", &wrong_secret)],
        ),
        (
            tampered,
            vec![event, id, ("x-hub-signature-256", &good_for_original)],
        ),
        (
            body.clone(),
            vec![event, id, ("x-hub-signature-256", "sha256=zz")],
        ),
        (
            body.clone(),
            vec![event, id, ("x-hub-signature-256", "sha1=0123")],
        ),
    ];
    for (body, headers) in cases {
        let request = webhook("github", body, &headers);
        let err = github()
            .parse_webhook(&request, &instance("github", config()), &TestHost::new())
            .unwrap_err();
        assert!(matches!(err, IntegrationError::Unauthorized(_)), "{err:?}");
    }
}

#[test]
fn without_a_webhook_secret_nothing_is_accepted() {
    let mut config = config();
    config.as_object_mut().unwrap().remove("webhookSecret");
    let err = parse_with(
        "issue_comment",
        "issue_comment_created",
        config,
        &TestHost::new(),
    )
    .unwrap_err();
    assert!(matches!(err, IntegrationError::Unauthorized(m) if m.contains("webhookSecret")));
}

// ---- events ----------------------------------------------------------------------------------------

#[test]
fn a_new_comment_becomes_a_work_item_in_the_issue_session() {
    let result = parse("issue_comment", "issue_comment_created");
    assert!(result.should_process);
    assert_eq!(
        result.idempotency_keys,
        vec!["github:72d3162e-cc78-11e3-81ab-4c9367dc0958"]
    );
    assert_eq!(
        result.response_context,
        Some(
            json!({ "owner": "octo-org", "repo": "hello-world", "issueNumber": 42, "installationId": 51234567 })
        )
    );
    let item = result.work_item.unwrap();
    assert_eq!(item.session_key, "octo-org/hello-world#issue:42");
    assert_eq!(item.source, "github");
    assert_eq!(
        item.source_ref,
        "octo-org/hello-world#issue:42#comment:2566001122"
    );
    assert_eq!(
        item.title,
        "[octo-org/hello-world#42] Speed up the build cache"
    );
    assert_eq!(
        item.payload,
        json!({
            "text": "@nitejar can you review the cache key?",
            "event": "issue_comment",
            "action": "created",
            "sender": { "login": "grace", "id": 1024025, "type": "User", "url": "https://github.com/grace" },
            "repository": {
                "owner": "octo-org", "name": "hello-world", "fullName": "octo-org/hello-world",
                "url": "https://github.com/octo-org/hello-world", "private": false
            },
            "issue": {
                "number": 42, "title": "Speed up the build cache",
                "url": "https://github.com/octo-org/hello-world/pull/42",
                "isPullRequest": true, "state": "open"
            },
            "comment": {
                "id": 2566001122u64,
                "url": "https://github.com/octo-org/hello-world/pull/42#issuecomment-2566001122"
            },
            "installationId": 51234567
        })
    );
}

#[test]
fn an_opened_issue_is_its_title_and_body() {
    let result = parse("issues", "issues_opened");
    let item = result.work_item.unwrap();
    assert_eq!(item.session_key, "octo-org/hello-world#issue:43");
    assert_eq!(item.source_ref, "octo-org/hello-world#issue:43");
    assert_eq!(
        item.payload["text"],
        "Build fails on ARM\n\n`cargo build` stops with a linker error on aarch64."
    );
    assert_eq!(item.payload["issue"]["isPullRequest"], false);
    assert_eq!(item.payload["event"], "issues");
    assert_eq!(item.payload["action"], "opened");
    assert_eq!(result.response_context.unwrap()["issueNumber"], 43);
}

#[test]
fn a_completed_check_run_on_a_pull_request_is_its_summary() {
    // Check runs are reported by Apps (github-actions[bot]); the bot rule does not apply to them.
    let result = parse("check_run", "check_run_completed");
    assert!(result.should_process);
    let item = result.work_item.unwrap();
    assert_eq!(item.session_key, "octo-org/hello-world#issue:42");
    assert_eq!(
        item.source_ref,
        "octo-org/hello-world#pr:42#check:33445566778"
    );
    assert_eq!(
        item.title,
        "[octo-org/hello-world#42] CI: test (ubuntu-latest) — failure"
    );
    let text = item.payload["text"].as_str().unwrap();
    assert!(text.contains("conclusion `failure`"), "{text}");
    assert!(text.contains("fast-cache → main"), "{text}");
    assert!(text.contains("2 tests failed"));
    assert!(text.contains("cache::tests::key_is_stable failed"));
    assert!(
        text.contains("https://github.com/octo-org/hello-world/actions/runs/12345/job/33445566778")
    );
    assert_eq!(
        item.payload["issue"],
        json!({
            "number": 42, "title": "Pull request #42",
            "url": "https://github.com/octo-org/hello-world/pull/42", "isPullRequest": true
        })
    );
    assert_eq!(item.payload["checkRun"]["app"], "GitHub Actions");
    assert_eq!(result.response_context.unwrap()["issueNumber"], 42);
}

#[test]
fn every_drop_rule_says_why() {
    let cases = [
        (
            "issue_comment",
            "issue_comment_edited",
            config(),
            "action `edited`",
        ),
        (
            "issue_comment",
            "issue_comment_from_bot",
            config(),
            "from a bot (nitejar[bot])",
        ),
        (
            "issues",
            "issues_opened",
            with(json!({ "trackIssueOpen": false })),
            "trackIssueOpen",
        ),
        (
            "check_run",
            "check_run_completed",
            with(json!({ "trackCheckRun": false })),
            "trackCheckRun",
        ),
        (
            "check_run",
            "check_run_without_pull_request",
            config(),
            "not on a pull request",
        ),
        (
            "issue_comment",
            "issue_comment_created",
            with(json!({ "allowedRepos": ["octo-org/other"] })),
            "octo-org/hello-world is not in allowedRepos",
        ),
        (
            "issue_comment",
            "issue_comment_no_mention",
            with(json!({ "commentPolicy": "mentions", "mentionHandle": "nitejar" })),
            "does not mention @nitejar",
        ),
        ("ping", "ping", config(), "ping"),
        ("push", "push", config(), "`push` is not handled"),
    ];
    for (event, name, config, reason) in cases {
        let got = ignored(event, name, config);
        assert!(got.contains(reason), "{event}/{name}: {got}");
    }
}

#[test]
fn the_mentions_policy_and_allowed_repos_let_the_right_comments_through() {
    let mentions = with(json!({
        "commentPolicy": "mentions",
        "mentionHandle": "@NiteJar",
        "allowedRepos": ["Octo-Org/Hello-World"]
    }));
    let result = parse_with(
        "issue_comment",
        "issue_comment_created",
        mentions,
        &TestHost::new(),
    )
    .unwrap();
    assert!(result.should_process);

    // A row from the TypeScript version with the mentions policy and no handle: `@nitejar`.
    let legacy = with(json!({ "commentPolicy": "mentions" }));
    assert!(
        parse_with(
            "issue_comment",
            "issue_comment_created",
            legacy,
            &TestHost::new()
        )
        .unwrap()
        .should_process
    );
}

#[test]
fn a_delivery_without_its_headers_is_a_bad_request() {
    let body = fixture("github/issue_comment_created.json");
    let signature = sign(SECRET, &body);
    for headers in [
        vec![
            ("x-hub-signature-256", signature.as_str()),
            ("x-github-delivery", "d"),
        ],
        vec![
            ("x-hub-signature-256", signature.as_str()),
            ("x-github-event", "issue_comment"),
        ],
    ] {
        let err = github()
            .parse_webhook(
                &webhook("github", body.clone(), &headers),
                &instance("github", config()),
                &TestHost::new(),
            )
            .unwrap_err();
        assert!(matches!(err, IntegrationError::BadRequest(_)), "{err:?}");
    }
}

// ---- installations ---------------------------------------------------------------------------------

fn installations(host: &TestHost) -> Value {
    serde_json::from_slice(&host.file(FILE).expect("installations.json written")).unwrap()
}

#[test]
fn installation_events_keep_the_installations_file_up_to_date() {
    let host = TestHost::new();
    let result = parse_with("installation", "installation_created", config(), &host).unwrap();
    assert!(!result.should_process);
    assert!(result
        .ignored_reason
        .unwrap()
        .contains("installation 51234567 (octo-org) now has 2 repositories"));
    let file = installations(&host);
    let entry = &file["integrations"]["int-1"]["51234567"];
    assert_eq!(entry["account"], "octo-org");
    assert_eq!(entry["repositorySelection"], "selected");
    assert_eq!(
        entry["repositories"],
        json!(["octo-org/docs", "octo-org/hello-world"])
    );
    assert_eq!(entry["updatedAt"], T0);

    parse_with(
        "installation_repositories",
        "installation_repositories_added",
        config(),
        &host,
    )
    .unwrap();
    parse_with(
        "installation_repositories",
        "installation_repositories_removed",
        config(),
        &host,
    )
    .unwrap();
    let file = installations(&host);
    assert_eq!(
        file["integrations"]["int-1"]["51234567"]["repositories"],
        json!(["octo-org/api", "octo-org/hello-world"])
    );
    let loaded = Installations::load(&host).unwrap();
    assert_eq!(
        loaded.installation_for("int-1", "octo-org/api"),
        Some(INSTALLATION)
    );
    assert_eq!(loaded.installation_for("int-1", "octo-org/docs"), None);
    assert_eq!(loaded.installation_for("int-2", "octo-org/api"), None);

    let result = parse_with("installation", "installation_deleted", config(), &host).unwrap();
    assert!(result.ignored_reason.unwrap().contains("deleted"));
    assert_eq!(installations(&host)["integrations"]["int-1"], json!({}));
}

#[test]
fn an_unreadable_installations_file_is_an_error_not_an_overwrite() {
    let host = TestHost::new().with_file(FILE, b"{ not json".to_vec());
    let err = parse_with("installation", "installation_created", config(), &host).unwrap_err();
    assert!(
        matches!(&err, IntegrationError::Other(m) if m.contains(FILE)),
        "{err:?}"
    );
    assert_eq!(host.file(FILE).unwrap(), b"{ not json".to_vec());
}

// ---- replies ---------------------------------------------------------------------------------------

fn context() -> Value {
    json!({ "owner": "octo-org", "repo": "hello-world", "issueNumber": 42, "installationId": INSTALLATION })
}

fn reply(gh: &GitHub, host: &TestHost, content: &str, context: Value) -> PostResponseResult {
    gh.post_response(
        &instance("github", config()),
        "wi-1",
        content,
        Some(&context),
        &PostResponseOptions::default(),
        host,
    )
    .expect("delivers")
}

#[test]
fn a_reply_is_a_comment_posted_with_an_installation_token_bought_with_the_app_jwt() {
    let fake = FakeGitHub::new();
    let host = fake.host();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    let result = reply(&gh, &host, "The cache key hashes `Cargo.lock`.", context());
    assert!(result.success, "{result:?}");
    let comments = fake.comments();
    assert_eq!(comments.len(), 1);
    assert_eq!(result.provider_ref, Some(comments[0].id.to_string()));
    assert_eq!(
        comments[0].path,
        "/repos/octo-org/hello-world/issues/42/comments"
    );
    assert_eq!(comments[0].body, "The cache key hashes `Cargo.lock`.");
    assert_eq!(comments[0].token, "ghs_test1");

    // The double verified the JWT's RS256 signature with the App's public key; its claims:
    let claims = fake.jwt_claims();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["iss"], APP_ID);
    assert_eq!(claims[0]["iat"], T0 - 60);
    assert_eq!(claims[0]["exp"], T0 + 540);

    let requests = host.http_requests();
    assert_eq!(
        requests[0].url,
        format!("{BASE}/app/installations/{INSTALLATION}/access_tokens")
    );
    for r in &requests {
        let header = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("accept"), Some("application/vnd.github+json"));
        assert_eq!(header("user-agent"), Some("nitejar"));
        assert_eq!(header("x-github-api-version"), Some("2022-11-28"));
    }
}

#[test]
fn the_installation_token_is_reused_until_five_minutes_before_it_expires() {
    let fake = FakeGitHub::new();
    let host = fake.host();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    assert!(reply(&gh, &host, "one", context()).success);
    fake.advance(30 * 60);
    assert!(reply(&gh, &host, "two", context()).success);
    assert_eq!(fake.minted(), 1, "the second reply reuses the token");

    // 56 minutes after minting: inside the five-minute margin, a new token.
    fake.advance(26 * 60);
    assert!(reply(&gh, &host, "three", context()).success);
    assert_eq!(fake.minted(), 2);
    let tokens: Vec<String> = fake.comments().into_iter().map(|c| c.token).collect();
    assert_eq!(tokens, ["ghs_test1", "ghs_test1", "ghs_test2"]);
}

#[test]
fn a_token_github_no_longer_honours_is_replaced_once() {
    let fake = FakeGitHub::new();
    let host = fake.host();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    assert!(reply(&gh, &host, "one", context()).success);
    fake.revoke_tokens();
    let result = reply(&gh, &host, "two", context());
    assert!(result.success, "{result:?}");
    assert_eq!(fake.minted(), 2);
}

#[test]
fn a_wrong_key_or_unknown_installation_fails_without_posting() {
    let fake = FakeGitHub::new();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    let wrong_key = with(json!({ "privateKey": fixture_text("github/other-key.pem") }));
    let result = gh
        .post_response(
            &instance("github", wrong_key),
            "wi-1",
            "hi",
            Some(&context()),
            &PostResponseOptions::default(),
            &fake.host(),
        )
        .unwrap();
    assert!(!result.success);
    assert!(!result.retryable);
    assert!(result.error.unwrap().contains("401"));

    let mut unknown = context();
    unknown["installationId"] = json!(1);
    let result = reply(&gh, &fake.host(), "hi", unknown);
    assert!(!result.success);
    assert!(result.error.unwrap().contains("404"));
    assert!(fake.comments().is_empty());
}

#[test]
fn a_context_without_installation_uses_the_installations_file() {
    let fake = FakeGitHub::new();
    let host = fake.host();
    // Learn the installation from its event first.
    github()
        .parse_webhook(
            &delivery("installation", "installation_created"),
            &instance("github", config()),
            &host,
        )
        .unwrap();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    let mut ctx = context();
    ctx.as_object_mut().unwrap().remove("installationId");
    assert!(reply(&gh, &host, "found it", ctx).success);

    let elsewhere = json!({ "owner": "someone", "repo": "else", "issueNumber": 1 });
    let result = reply(&gh, &host, "nope", elsewhere);
    assert!(!result.success);
    assert!(result
        .error
        .unwrap()
        .contains("no GitHub App installation is known for someone/else"));
}

#[test]
fn an_answer_longer_than_a_comment_is_posted_in_parts() {
    let fake = FakeGitHub::new();
    let host = fake.host();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    let line = format!("{}\n", "word ".repeat(40));
    let content = line.repeat(500); // ~100k characters
    let result = reply(&gh, &host, &content, context());
    assert!(result.success, "{result:?}");
    let comments = fake.comments();
    assert_eq!(comments.len(), 2);
    assert_eq!(
        comments.iter().map(|c| c.body.as_str()).collect::<String>(),
        content
    );
    assert_eq!(result.provider_ref, Some(comments[1].id.to_string()));
    assert_eq!(fake.minted(), 1);
}

#[test]
fn bad_contexts_and_missing_credentials_are_refused_before_any_request() {
    let fake = FakeGitHub::new();
    let host = fake.host();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    let err = gh
        .post_response(
            &instance("github", config()),
            "wi-1",
            "hi",
            Some(&json!({ "owner": "..", "repo": "x", "issueNumber": 1, "installationId": INSTALLATION })),
            &PostResponseOptions::default(),
            &host,
        )
        .unwrap_err();
    assert!(matches!(err, IntegrationError::BadRequest(_)));
    let err = gh
        .post_response(
            &instance("github", json!({ "webhookSecret": SECRET })),
            "wi-1",
            "hi",
            Some(&context()),
            &PostResponseOptions::default(),
            &host,
        )
        .unwrap_err();
    assert!(matches!(err, IntegrationError::Config(m) if m.contains("appId")));
    assert!(host.http_requests().is_empty());
}

// ---- connection test and config ------------------------------------------------------------------

#[test]
fn connection_test_names_the_app_or_says_the_key_is_wrong() {
    let fake = FakeGitHub::new();
    let gh = GitHub::with_api_base(BASE).with_clock(fake.clock_fn());
    let ok = gh.test_connection(&config(), &fake.host()).unwrap();
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.detail.as_deref(), Some("nitejar"));

    let bad = gh
        .test_connection(
            &with(json!({ "privateKey": fixture_text("github/other-key.pem") })),
            &fake.host(),
        )
        .unwrap();
    assert!(!bad.ok);
    assert!(bad.error.unwrap().contains("check appId and privateKey"));
}

#[test]
fn config_validation_reads_the_key_and_the_policy() {
    let gh = github();
    assert!(gh.validate_config(&config()).valid);
    // PKCS#8, a numeric appId, and a key pasted with literal \n are fine too.
    let pkcs8 =
        with(json!({ "appId": 123456, "privateKey": fixture_text("github/app-key-pkcs8.pem") }));
    assert!(
        gh.validate_config(&pkcs8).valid,
        "{:?}",
        gh.validate_config(&pkcs8)
    );
    let escaped = fixture_text("github/app-key.pem").replace('\n', "\\n");
    assert!(
        gh.validate_config(&with(json!({ "privateKey": escaped })))
            .valid
    );

    let cases = [
        (json!({ "appId": "12ab" }), "appId"),
        (
            json!({ "privateKey": "ssh-rsa AAAA" }),
            "privateKey: not a PEM file",
        ),
        (json!({ "commentPolicy": "some" }), "commentPolicy"),
        (
            json!({ "commentPolicy": "mentions" }),
            "mentionHandle: required",
        ),
        (
            json!({ "allowedRepos": ["just-a-name"] }),
            "allowedRepos[0]",
        ),
        (
            json!({ "clientId": "Iv1.abc" }),
            "clientId and clientSecret",
        ),
        (json!({ "webhookSecret": "" }), "webhookSecret: required"),
    ];
    for (change, expected) in cases {
        let validation = gh.validate_config(&with(change.clone()));
        assert!(!validation.valid, "{change}");
        assert!(
            validation.errors.iter().any(|e| e.contains(expected)),
            "{change}: {:?}",
            validation.errors
        );
    }
    let empty = gh.validate_config(&json!({}));
    assert_eq!(empty.errors.len(), 3, "{:?}", empty.errors);
}

#[test]
fn the_api_base_comes_from_the_environment() {
    std::env::set_var("NITEJAR_GITHUB_API_BASE", "https://ghe.example.com/api/v3/");
    assert_eq!(
        GitHub::from_env().api_base(),
        "https://ghe.example.com/api/v3"
    );
    std::env::remove_var("NITEJAR_GITHUB_API_BASE");
    assert_eq!(GitHub::from_env().api_base(), "https://api.github.com");
}
