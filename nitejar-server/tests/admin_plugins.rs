//! The plugin lifecycle over the admin API and the admin UI, against a real server process: upload
//! a package built from `examples/signed-webhook`, read what it declares, be refused without
//! consent, enable, use it, upgrade, roll back, disable, uninstall; and every refusal with its
//! stable code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use support::admin::*;
use support::packages::{package_dir, signed_webhook, tgz};
use support::*;

const ID: &str = "dev.nitejar.examples.signed-webhook";
const SECRET: &str = "admin-plugins-secret";

/// A multipart body with one file field.
fn multipart(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----nitejar-test-boundary-7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/gzip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(server: &Server, field: &str, name: &str, bytes: &[u8]) -> Answer {
    let (content_type, body) = multipart(field, name, bytes);
    let resp = client()
        .post(server.url("/api/admin/plugins/upload"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    read(resp).await
}

/// Installs the package directory `dir` from the server's disk and enables plugin `id` with consent.
async fn install_and_enable(server: &Server, dir: &std::path::Path, id: &str) {
    let installed = api(
        server,
        Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({"path": dir.to_string_lossy()})),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let enabled = api(
        server,
        Method::POST,
        &format!("/api/admin/plugins/{id}/enable"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn code(a: &Answer) -> String {
    a.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn upload_review_consent_enable_use_disable_and_uninstall_over_the_api() {
    let data = DataDir::new();
    let callback = LocalHttp::start(|_| json_reply(200, &json!({"ok": true})));
    let callback_host = format!("127.0.0.1:{}", callback.port());
    let packages = data.path.join("packages");
    let v1 = signed_webhook(&packages, &callback_host);
    let tgz = tgz(&v1);

    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );

    // Upload: installed, disabled, with what it declares and the words an operator consents to.
    let a = upload(&server, "package", "signed-webhook-0.1.0.tgz", &tgz).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let body = a.json();
    assert_eq!(body["installed"]["id"], ID);
    assert_eq!(body["installed"]["sourceKind"], "upload");
    let plugin = &body["plugin"];
    assert_eq!(plugin["state"], "disabled");
    assert_eq!(plugin["enabled"], false);
    assert_eq!(plugin["executionMode"], "in_process");
    assert_eq!(plugin["enforcementScope"], "host_boundary");
    assert!(!plugin["effectiveLimitations"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!plugin["hostEnforcedControls"]
        .as_array()
        .unwrap()
        .is_empty());
    let declared = plugin["declaredCapabilities"].as_array().unwrap();
    assert_eq!(declared.len(), 1, "{declared:?}");
    assert_eq!(
        declared[0]["permission"],
        format!("network:{callback_host}")
    );
    assert_eq!(declared[0]["enforcement"], "host_mediated");
    assert_eq!(declared[0]["acknowledged"], false);
    let consent = plugin["consentText"].as_str().unwrap();
    assert!(
        consent.contains("In-process (No hard sandbox)"),
        "{consent}"
    );
    assert!(
        consent.contains(&format!("network:{callback_host}")),
        "{consent}"
    );

    // The same upload again is not a second install.
    let again = upload(&server, "package", "signed-webhook-0.1.0.tgz", &tgz).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["installed"]["alreadyInstalled"], true);

    // Listed, disabled, nothing active.
    let list = api(&server, Method::GET, "/api/admin/plugins", None).await;
    assert_eq!(list.status, 200);
    let items = list.json()["items"].as_array().cloned().unwrap();
    let listed = items.iter().find(|p| p["id"] == ID).expect("listed");
    assert_eq!(listed["state"], "disabled");
    assert!(items
        .iter()
        .any(|p| p["id"] == "builtin.telegram" && p["origin"] == "builtin"));

    // No consent, no enable: 428 with the text to read.
    let path = format!("/api/admin/plugins/{ID}/enable");
    let refused = api(&server, Method::POST, &path, None).await;
    assert_eq!(refused.status, 428, "{}", refused.text);
    assert_eq!(code(&refused), "consent_required");
    // In the API's terms: the field to send, not the CLI flag.
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("\"acceptConsent\": true"), "{message}");
    assert!(!message.contains("--accept-consent"), "{message}");
    assert!(refused.json()["error"]["details"]["consentText"]
        .as_str()
        .unwrap()
        .contains("In-process"));
    let bad_ack = api(
        &server,
        Method::POST,
        &path,
        Some(&json!({"acceptConsent": true, "acknowledge": ["network:evil.example"]})),
    )
    .await;
    assert_eq!(bad_ack.status, 422, "{}", bad_ack.text);
    assert_eq!(code(&bad_ack), "unknown_acknowledgement");
    let malformed = client()
        .post(server.url(&path))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body("{\"acceptConsent\": tru")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status().as_u16(), 400);

    let enabled = api(
        &server,
        Method::POST,
        &path,
        Some(&json!({"acceptConsent": true, "acknowledgeAll": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.json()["enabled"]["active"], true);
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await;
    assert_eq!(detail.json()["state"], "active", "{}", detail.text);
    assert_eq!(
        detail.json()["declaredCapabilities"][0]["acknowledged"],
        true
    );

    // Its integration type works through the integrations API and the webhook route.
    let created = api(
        &server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "signed-webhook", "name": "hooks",
            "config": {"secret": SECRET, "callbackUrl": callback.url("/hook")}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let integration = created.json()["integration"]["id"]
        .as_str()
        .expect("integration id")
        .to_owned();
    let delivery = json!({"text": "hello", "id": "d-1"}).to_string();
    let sent = client()
        .post(server.url(&format!(
            "/api/webhooks/plugins/signed-webhook/{integration}"
        )))
        .header("content-type", "application/json")
        .header("x-signature-256", sign(delivery.as_bytes()))
        .body(delivery)
        .send()
        .await
        .expect("webhook");
    assert_eq!(sent.status().as_u16(), 200);
    eventually(20, || callback.received().into_iter().next())
        .await
        .unwrap_or_else(|| panic!("no reply delivered; log:\n{}", server.log()));

    // Its receipts: install, enable, the webhook.
    let events = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}/events?limit=50"),
        None,
    )
    .await;
    assert_eq!(events.status, 200, "{}", events.text);
    let kinds: Vec<String> = events.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in ["install", "enable", "webhook_ingress"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing in {kinds:?}"
        );
    }
    let paged = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}/events?limit=1"),
        None,
    )
    .await;
    let cursor = paged.json()["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let next = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}/events?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(next.status, 200);
    assert_ne!(
        next.json()["items"][0]["id"],
        paged.json()["items"][0]["id"]
    );

    // Disable, uninstall with files; the integration row stays.
    let off = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{ID}/disable"),
        None,
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.text);
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await;
    assert_eq!(detail.json()["state"], "disabled");
    let gone = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/plugins/{ID}?purgeFiles=true"),
        None,
    )
    .await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_eq!(gone.json()["uninstalled"]["purgedFiles"], true);
    assert!(!data.path.join("plugins").join(ID).join("versions").exists());
    let still = api(
        &server,
        Method::GET,
        &format!("/api/admin/integrations/{integration}"),
        None,
    )
    .await;
    assert_eq!(
        still.status, 200,
        "the integration row is kept: {}",
        still.text
    );
}

const GREETER: &str = "dev.nitejar.fixtures.greeter";

#[tokio::test]
async fn upgrade_keeps_the_old_version_for_rollback() {
    let data = DataDir::new();
    let packages = data.path.join("packages");
    let v1 = package_dir(
        &packages,
        "v1",
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v1",
        |_| {},
    );
    let v2 = package_dir(
        &packages,
        "v2",
        "tests/fixtures/plugins/greeter-v2",
        "greeter_v2",
        |_| {},
    );
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );
    install_and_enable(&server, &v1, GREETER).await;

    // Upgrade from a path, roll back, refuse a version that is not installed.
    let up = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/upgrade"),
        Some(&json!({"source": v2.to_string_lossy()})),
    )
    .await;
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!(up.json()["upgraded"]["from"], "1.0.0");
    assert_eq!(up.json()["upgraded"]["to"], "2.0.0");
    let versions = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{GREETER}"),
        None,
    )
    .await
    .json()["versions"]
        .clone();
    assert_eq!(versions[0]["version"], "2.0.0");
    assert_eq!(versions[0]["current"], true);
    assert_eq!(versions[1]["version"], "1.0.0");
    let rollback = format!("/api/admin/plugins/{GREETER}/rollback");
    let back = api(
        &server,
        Method::POST,
        &rollback,
        Some(&json!({"version": "1.0.0"})),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.text);
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{GREETER}"),
        None,
    )
    .await;
    assert_eq!(detail.json()["version"], "1.0.0", "{}", detail.text);
    // On the page, going to a newer installed version is not called a roll back.
    let page = Session::sign_in(&server)
        .await
        .get(&server, &format!("/admin/plugins/{GREETER}"))
        .await;
    assert!(page.text.contains("Switch to 2.0.0"), "{}", page.text);
    assert!(!page.text.contains("Roll back to 2.0.0"));
    let missing = api(
        &server,
        Method::POST,
        &rollback,
        Some(&json!({"version": "9.9.9"})),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(code(&missing), "version_not_installed");
    assert_eq!(
        missing.json()["error"]["details"]["installed"],
        json!(["1.0.0", "2.0.0"])
    );

    let not_up = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/upgrade"),
        Some(&json!({"source": v1.to_string_lossy(), "acceptConsent": true})),
    )
    .await;
    assert_eq!(not_up.status, 409, "{}", not_up.text);
    assert_eq!(code(&not_up), "not_an_upgrade");
    assert!(not_up.text.contains("Nothing to do"), "{}", not_up.text);

    // Going backwards by "upgrading": the API names its rollback request, the page its button;
    // neither a CLI flag.
    let forward = api(
        &server,
        Method::POST,
        &rollback,
        Some(&json!({"version": "2.0.0"})),
    )
    .await;
    assert_eq!(forward.status, 200, "{}", forward.text);
    let back_by_api = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/upgrade"),
        Some(&json!({"source": v1.to_string_lossy(), "acceptConsent": true})),
    )
    .await;
    assert_eq!(back_by_api.status, 409, "{}", back_by_api.text);
    let message = back_by_api.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(&format!("POST /api/admin/plugins/{GREETER}/rollback")),
        "{message}"
    );
    assert!(!message.contains("--"), "{message}");
    let session = Session::sign_in(&server).await;
    let back_by_ui = session
        .post_form(
            &server,
            &format!("/admin/plugins/{GREETER}/upgrade"),
            &[("source", &v1.to_string_lossy()), ("accept_consent", "yes")],
        )
        .await;
    assert_eq!(back_by_ui.status, 409, "{}", back_by_ui.text);
    assert!(
        back_by_ui
            .text
            .contains("use its “Roll back to” button under Versions on this plugin"),
        "{}",
        back_by_ui.text
    );
    assert!(!back_by_ui.text.contains("--to"), "{}", back_by_ui.text);
    assert!(
        !back_by_ui.text.contains("nitejar plugin"),
        "{}",
        back_by_ui.text
    );
    let unknown_field = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/upgrade"),
        Some(&json!({"sauce": "x"})),
    )
    .await;
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.text);
}

#[tokio::test]
async fn refusals_have_stable_codes() {
    let data = DataDir::new();
    let packages = data.path.join("packages");
    let v1 = signed_webhook(&packages, "hooks.example.com");
    let empty = packages.join("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    // Default trust mode (guarded): an unsigned, unlisted plugin installs but cannot be enabled.
    let server = start_admin(&data, &[]);

    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::GET,
            "/api/admin/plugins/com.example.nope".into(),
            None,
            404,
            "plugin_not_found",
        ),
        (
            Method::GET,
            "/api/admin/plugins/com.example.nope/events".into(),
            None,
            404,
            "plugin_not_found",
        ),
        (
            Method::POST,
            "/api/admin/plugins/com.example.nope/enable".into(),
            Some(json!({"acceptConsent": true})),
            404,
            "plugin_not_found",
        ),
        (
            Method::DELETE,
            "/api/admin/plugins/builtin.telegram".into(),
            None,
            409,
            "builtin_plugin",
        ),
        (
            Method::POST,
            "/api/admin/plugins/builtin.telegram/rollback".into(),
            Some(json!({"version": "0.1.0"})),
            409,
            "builtin_plugin",
        ),
        (
            Method::POST,
            "/api/admin/plugins/install/npm".into(),
            Some(json!({"spec": "Not A Package!"})),
            422,
            "invalid_source",
        ),
        (
            Method::POST,
            "/api/admin/plugins/install/npm".into(),
            Some(json!({"package": "x"})),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/admin/plugins/install/local".into(),
            Some(json!({"path": "relative/dir"})),
            422,
            "invalid_source",
        ),
        (
            Method::POST,
            "/api/admin/plugins/install/local".into(),
            Some(json!({"path": "/no/such/dir/anywhere"})),
            422,
            "invalid_source",
        ),
        (
            Method::POST,
            "/api/admin/plugins/install/git".into(),
            Some(json!({"url": "file:///no/such/repo.git"})),
            502,
            "source_unreachable",
        ),
        (
            Method::POST,
            "/api/admin/plugins/install/local".into(),
            Some(json!({"path": empty.to_string_lossy()})),
            422,
            "invalid_package",
        ),
    ];
    for (method, path, body, status, expected) in cases {
        let a = api(&server, method.clone(), &path, body.as_ref()).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.text);
        assert_eq!(code(&a), expected, "{method} {path}: {}", a.text);
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{method} {path}: a human message: {}",
            a.text
        );
    }

    // Uploads: no file, an empty file, not an archive.
    let no_file = upload(&server, "other", "x.tgz", b"abc").await;
    assert_eq!(
        (no_file.status, code(&no_file).as_str()),
        (422, "missing_package"),
        "{}",
        no_file.text
    );
    let empty = upload(&server, "package", "x.tgz", b"").await;
    assert_eq!(
        (empty.status, code(&empty).as_str()),
        (422, "empty_upload"),
        "{}",
        empty.text
    );
    let junk = upload(&server, "package", "x.tgz", b"this is not gzip").await;
    assert_eq!(junk.status, 422, "{}", junk.text);
    assert_eq!(code(&junk), "invalid_package", "{}", junk.text);

    // Installed from a path, then refused by the trust policy with the reason.
    let local = api(
        &server,
        Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({"path": v1.to_string_lossy()})),
    )
    .await;
    assert_eq!(local.status, 201, "{}", local.text);
    assert!(
        local.json()["installed"]["enableBlocker"].is_string(),
        "{}",
        local.text
    );
    let refused = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{ID}/enable"),
        Some(&json!({"acceptConsent": true, "acknowledgeAll": true})),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(code(&refused), "trust_refused");
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await;
    assert_eq!(detail.json()["enabled"], false);
}

#[tokio::test]
async fn saas_locked_mode_refuses_uploads_and_paths() {
    let data = DataDir::new();
    let package = signed_webhook(&data.path.join("packages"), "hooks.example.com");
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "saas_locked".into())],
    );
    let uploaded = upload(&server, "package", "signed-webhook.tgz", &tgz(&package)).await;
    assert_eq!(uploaded.status, 403, "{}", uploaded.text);
    assert_eq!(code(&uploaded), "trust_refused");
    assert!(uploaded.text.contains("saas_locked"), "{}", uploaded.text);
    let local = api(
        &server,
        Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({"path": package.to_string_lossy()})),
    )
    .await;
    assert_eq!(
        (local.status, code(&local).as_str()),
        (403, "trust_refused"),
        "{}",
        local.text
    );
    let list = api(&server, Method::GET, "/api/admin/plugins", None)
        .await
        .json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["origin"] == "builtin"),
        "nothing was installed: {list}"
    );
}

#[tokio::test]
async fn the_admin_ui_installs_reviews_and_enables_with_consent() {
    let data = DataDir::new();
    let packages = data.path.join("packages");
    let v1 = signed_webhook(&packages, "hooks.example.com");
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded".into()),
            ("NITEJAR_PLUGIN_ALLOWLIST", ID.into()),
        ],
    );
    let session = Session::sign_in(&server).await;

    let page = session.get(&server, "/admin/plugins/install").await;
    assert_eq!(page.status, 200);
    // Guarded runs third-party plugins isolated by default, and the install page says so.
    assert!(page.text.contains("Plugins isolated by default"));
    assert!(
        page.text.contains("will run isolated"),
        "the isolated warning"
    );

    // A path that is not there: the form again, with the reason, nothing installed.
    let bad = session
        .post_form(
            &server,
            "/admin/plugins/install/local",
            &[("path", "/no/such/plugin")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("nothing exists at"), "{}", bad.text);
    assert!(bad.text.contains("/no/such/plugin"));

    let path = v1.to_string_lossy().into_owned();
    let installed = session
        .post_form(&server, "/admin/plugins/install/local", &[("path", &path)])
        .await;
    assert_eq!(installed.status, 303, "{}", installed.text);
    let review_url = installed.header("location");
    assert_eq!(
        review_url,
        format!("/admin/plugins/{ID}/review?notice=installed")
    );

    let review = session.get(&server, &review_url).await;
    assert_eq!(review.status, 200);
    // Guarded runs it isolated: the warning and each permission say what the kernel enforces.
    for text in [
        "will run isolated",
        "network:hooks.example.com",
        "kernel-enforced",
        "the kernel refuses every socket of the plugin",
        "I have read this and consent",
        "Enable it only if you trust its publisher",
    ] {
        assert!(review.text.contains(text), "review page lacks {text:?}");
    }

    let enable = format!("/admin/plugins/{ID}/enable");
    let no_consent = session
        .post_form(&server, &enable, &[("ack", "network:hooks.example.com")])
        .await;
    assert_eq!(no_consent.status, 428);
    assert!(no_consent.text.contains("Tick"), "{}", no_consent.text);
    let no_ack = session
        .post_form(&server, &enable, &[("accept_consent", "yes")])
        .await;
    assert_eq!(no_ack.status, 428);
    assert!(
        no_ack.text.contains("network:hooks.example.com"),
        "{}",
        no_ack.text
    );
    let detail = session.get(&server, &format!("/admin/plugins/{ID}")).await;
    assert!(detail.text.contains("Review and enable"), "still disabled");

    let ok = session
        .post_form(
            &server,
            &enable,
            &[
                ("accept_consent", "yes"),
                ("ack", "network:hooks.example.com"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    assert_eq!(
        ok.header("location"),
        format!("/admin/plugins/{ID}?notice=enabled")
    );
    let detail = session.get(&server, &format!("/admin/plugins/{ID}")).await;
    assert!(detail.text.contains("pill-ok\">active"), "{}", detail.text);
    assert!(detail.text.contains("will run isolated"));

    // Disable from the page, then uninstall.
    let off = session
        .post_form(&server, &format!("/admin/plugins/{ID}/disable"), &[])
        .await;
    assert_eq!(off.status, 303);
    let gone = session
        .post_form(&server, &format!("/admin/plugins/{ID}/uninstall"), &[])
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(gone.header("location"), "/admin/plugins?notice=uninstalled");
}

/// An upgrade that asks for more than was consented: 428 with the difference over the API, nothing
/// installed; in the admin, a page that shows the difference and completes the upgrade once the
/// operator consents; the versions list says which version has a consent on record.
#[tokio::test]
async fn an_upgrade_asking_for_more_shows_the_difference_and_waits_for_consent() {
    let data = DataDir::new();
    let packages = data.path.join("packages");
    let v1 = package_dir(
        &packages,
        "v1",
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v1",
        |_| {},
    );
    let v2 = package_dir(
        &packages,
        "v2",
        "tests/fixtures/plugins/greeter-v2",
        "greeter_v2",
        |m| m["permissions"] = json!({"allowProcessSpawn": true, "secrets": ["API_TOKEN"]}),
    );
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );
    install_and_enable(&server, &v1, GREETER).await;

    let refused = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/upgrade"),
        Some(&json!({"source": v2.to_string_lossy()})),
    )
    .await;
    assert_eq!(refused.status, 428, "{}", refused.text);
    let body = refused.json();
    assert_eq!(body["error"]["code"], "consent_required");
    assert_eq!(
        body["error"]["details"]["diff"]["added"],
        json!(["process.spawn", "secret:API_TOKEN"])
    );
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{GREETER}"),
        None,
    )
    .await
    .json();
    assert_eq!(
        detail["versions"].as_array().map(Vec::len),
        Some(1),
        "nothing of 2.0.0"
    );
    assert_eq!(detail["versions"][0]["consent"]["basis"], "accepted");

    // In the admin: the upgrade form without consent leads to the consent page…
    let session = Session::sign_in(&server).await;
    let page = session
        .post_form(
            &server,
            &format!("/admin/plugins/{GREETER}/upgrade"),
            &[("source", v2.to_string_lossy().as_ref())],
        )
        .await;
    assert_eq!(page.status, 428, "{}", page.text);
    assert!(page.text.contains("id=\"consent-diff\""), "{}", page.text);
    assert!(page.text.contains("<code>process.spawn</code>"));
    assert!(page.text.contains("In-process (No hard sandbox)"));
    // …whose form, ticked, upgrades.
    let source = hidden_value(&page.text, "source").expect("the source goes along");
    let done = session
        .post_form(
            &server,
            &format!("/admin/plugins/{GREETER}/upgrade"),
            &[
                ("source", &source),
                ("accept_consent", "yes"),
                ("ack_new", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{GREETER}"),
        None,
    )
    .await
    .json();
    assert_eq!(detail["version"], "2.0.0");
    assert_eq!(detail["versions"][0]["consent"]["basis"], "accepted");
    let page = session
        .get(&server, &format!("/admin/plugins/{GREETER}"))
        .await;
    assert!(page.text.contains("<th>Consent</th>"), "{}", page.text);
}

/// Rows follow their plugin, never a type name: the plugin that provides an integration type now is
/// given none of the integrations of another plugin of that type (nor their secrets) until the
/// operator hands one over, having been told which secrets it will read.
#[tokio::test]
async fn a_plugin_providing_the_same_type_gets_no_rows_until_they_are_handed_over() {
    const RETIRED: &str = "dev.example.retired";
    let data = DataDir::new();
    let callback = LocalHttp::start(|_| json_reply(200, &json!({"ok": true})));
    let packages = data.path.join("packages");
    let callback_host = format!("127.0.0.1:{}", callback.port());
    let package = signed_webhook(&packages, &callback_host);
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );
    install_and_enable(&server, &package, ID).await;

    // Its own integration, and one of another plugin of the same type (since uninstalled).
    let created = api(
        &server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({
            "type": "signed-webhook", "name": "Builds",
            "config": {"secret": "its own", "callbackUrl": callback.url("/own")}
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["integration"]["owner"], ID);
    assert_eq!(created.json()["integration"]["served"], true);
    let store = data.store().await;
    let id = create_plugin_integration(
        &store,
        RETIRED,
        "signed-webhook",
        json!({"secret": SECRET, "callbackUrl": callback.url("/theirs")}),
        &["secret"],
    )
    .await;
    let path = format!("/api/admin/integrations/{id}");
    let seen = api(&server, Method::GET, &path, None).await.json();
    assert_eq!(seen["owner"], RETIRED);
    assert_eq!(seen["provider"], ID);
    assert_eq!(seen["served"], false);

    let body = json!({"text": "deploy", "id": "d-1"}).to_string();
    let deliver = || {
        client()
            .post(server.url(&format!("/api/webhooks/plugins/signed-webhook/{id}")))
            .header("content-type", "application/json")
            .header("x-signature-256", sign(body.as_bytes()))
            .body(body.clone())
            .send()
    };
    let refused = read(deliver().await.expect("webhook")).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.json()["code"], "integration_not_served");
    assert!(refused.text.contains(RETIRED), "{}", refused.text);
    for (method, suffix, body) in [
        (
            Method::PATCH,
            "",
            Some(
                json!({"config": {"secret": "••••••••", "callbackUrl": "https://attacker.example/"}}),
            ),
        ),
        (Method::POST, "/test", None),
    ] {
        let answer = api(&server, method, &format!("{path}{suffix}"), body.as_ref()).await;
        assert_eq!(answer.status, 409, "{suffix}: {}", answer.text);
        assert_eq!(code(&answer), "integration_not_served");
    }
    let session = Session::sign_in(&server).await;
    let page = session
        .get(&server, &format!("/admin/integrations/{id}"))
        .await;
    assert!(page.text.contains("not served"), "{}", page.text);
    let unticked = session
        .post_form(
            &server,
            &format!("/admin/integrations/{id}/handover"),
            &[("plugin", ID)],
        )
        .await;
    assert_eq!(unticked.status, 422, "{}", unticked.text);
    assert!(unticked.text.contains("Nothing was changed"));
    assert!(page.text.contains("<code>secret</code>"), "{}", page.text);
    assert!(
        !page.text.contains("f-callbackUrl"),
        "no config form for another plugin's row"
    );

    // Handing over asks for consent, naming the secrets; with it, the provider serves the row.
    let handover = format!("{path}/handover");
    let asked = api(
        &server,
        Method::POST,
        &handover,
        Some(&json!({"plugin": ID})),
    )
    .await;
    assert_eq!(asked.status, 428, "{}", asked.text);
    assert_eq!(code(&asked), "handover_consent_required");
    assert_eq!(
        asked.json()["error"]["details"]["secretFields"],
        json!(["secret"])
    );
    let wrong = api(
        &server,
        Method::POST,
        &handover,
        Some(&json!({"plugin": RETIRED, "acceptHandover": true})),
    )
    .await;
    assert_eq!(wrong.status, 409, "{}", wrong.text);
    assert_eq!(code(&wrong), "handover_target_unavailable");
    assert!(
        callback.received().is_empty(),
        "nothing of the row reached the plugin"
    );
    let handed = api(
        &server,
        Method::POST,
        &handover,
        Some(&json!({"plugin": ID, "acceptHandover": true})),
    )
    .await;
    assert_eq!(handed.status, 200, "{}", handed.text);
    assert_eq!(handed.json()["integration"]["owner"], ID);
    assert_eq!(handed.json()["integration"]["served"], true);
    let accepted = read(deliver().await.expect("webhook")).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.json()["code"], "accepted");

    let receipts = store
        .list_plugin_events(ID, nitejar_core::store::PageRequest::first(100))
        .await
        .expect("receipts")
        .items;
    assert!(
        receipts.iter().any(|r| r.kind == "integration"
            && r.detail()
                .is_some_and(|d| d["operation"] == "handover" && d["from"] == RETIRED)),
        "{receipts:?}"
    );
}

/// In safe mode an enabled third-party plugin is not loaded, and every surface says why: the API
/// and the plugin page name safe mode, and a webhook of its type is told to restart without it
/// rather than to "enable its plugin", which is enabled.
#[tokio::test]
async fn safe_mode_is_named_wherever_it_explains_a_state() {
    let data = DataDir::new();
    let callback = LocalHttp::start(|_| json_reply(200, &json!({"ok": true})));
    let package = signed_webhook(
        &data.path.join("packages"),
        &format!("127.0.0.1:{}", callback.port()),
    );
    let open = [("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_string())];
    let server = start_admin(&data, &open);
    install_and_enable(&server, &package, ID).await;
    let created = api(
        &server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({
            "type": "signed-webhook", "name": "Builds",
            "config": {"secret": SECRET, "callbackUrl": callback.url("/hook")}
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    server.stop();

    let safe = start_admin(
        &data,
        &[open[0].clone(), ("NITEJAR_SAFE_MODE", "1".to_string())],
    );
    let plugin = api(
        &safe,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await
    .json();
    assert_eq!(plugin["state"], "enabled_not_active", "{plugin}");
    assert!(
        plugin["notLoadedReason"]
            .as_str()
            .is_some_and(|r| r.contains("safe mode")),
        "{plugin}"
    );
    let page = Session::sign_in(&safe)
        .await
        .get(&safe, &format!("/admin/plugins/{ID}"))
        .await;
    assert!(
        page.text.contains("safe mode (NITEJAR_SAFE_MODE)"),
        "{}",
        page.text
    );
    let body = json!({"text": "deploy"}).to_string();
    let answer = read(
        client()
            .post(safe.url(&format!("/api/webhooks/plugins/signed-webhook/{id}")))
            .header("content-type", "application/json")
            .header("x-signature-256", sign(body.as_bytes()))
            .body(body.clone())
            .send()
            .await
            .expect("webhook"),
    )
    .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.text.contains("safe mode"), "{}", answer.text);
    assert!(
        !answer.text.contains("enable its plugin"),
        "{}",
        answer.text
    );
}

/// A browser-only operator upgrades an uploaded plugin by uploading the new package on its page;
/// a version that asks for more shows the consent page, which takes the package again with the
/// boxes ticked.
#[tokio::test]
async fn the_admin_ui_upgrades_by_upload_with_consent() {
    let data = DataDir::new();
    let packages = data.path.join("packages");
    let v1 = package_dir(
        &packages,
        "v1",
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v1",
        |_| {},
    );
    let v2 = package_dir(
        &packages,
        "v2",
        "tests/fixtures/plugins/greeter-v2",
        "greeter_v2",
        |m| m["permissions"] = json!({"secrets": ["API_TOKEN"]}),
    );
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );
    let installed = upload(&server, "package", "greeter-1.tgz", &tgz(&v1)).await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let enabled = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/enable"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);

    let session = Session::sign_in(&server).await;
    let page = session
        .get(&server, &format!("/admin/plugins/{GREETER}"))
        .await;
    assert!(
        page.text.contains("id=\"upgrade-upload-form\""),
        "{}",
        page.text
    );
    let send = |boxes: &'static [(&'static str, &'static str)]| {
        let (server, session, bytes) = (&server, &session, tgz(&v2));
        async move {
            let boundary = "----nitejar-upgrade-7d1f";
            let mut body = Vec::new();
            for (name, value) in boxes {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"greeter-2.tgz\"\r\nContent-Type: application/gzip\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&bytes);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let resp = client()
                .post(server.url(&format!(
                    "/admin/plugins/{GREETER}/upgrade/upload?_csrf={}",
                    session.csrf
                )))
                .header("cookie", format!("nitejar_session={}", session.cookie))
                .header("origin", &session.origin)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body)
                .send()
                .await
                .expect("upgrade upload");
            read(resp).await
        }
    };
    let asked = send(&[]).await;
    assert_eq!(asked.status, 428, "{}", asked.text);
    assert!(
        asked.text.contains("<code>secret:API_TOKEN</code>"),
        "{}",
        asked.text
    );
    assert!(
        asked.text.contains("name=\"package\""),
        "the consent form takes the file again"
    );
    let versions = || async {
        api(
            &server,
            Method::GET,
            &format!("/api/admin/plugins/{GREETER}"),
            None,
        )
        .await
        .json()["version"]
            .clone()
    };
    assert_eq!(
        versions().await,
        "1.0.0",
        "nothing of 2.0.0 without consent"
    );

    let done = send(&[("accept_consent", "yes"), ("ack_new", "yes")]).await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(versions().await, "2.0.0");
}

/// A plugin that hangs while loading does not keep the server from listening, nor from stopping:
/// boot marks it `error` after NITEJAR_PLUGIN_LOAD_TIMEOUT_MS and carries on.
#[tokio::test]
async fn a_plugin_hanging_while_loading_does_not_hold_the_server() {
    const PROBE: &str = "dev.nitejar.fixtures.probe";
    let data = DataDir::new();
    let probe = package_dir(
        &data.path.join("packages"),
        "probe",
        "tests/fixtures/plugins/probe",
        "probe",
        |_| {},
    );
    let open = ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_string());
    let server = start_admin(&data, std::slice::from_ref(&open));
    install_and_enable(&server, &probe, PROBE).await;
    server.stop();
    // Its config now makes loading it take a minute.
    let store = data.store().await;
    store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: PROBE.into(),
            config_json: Some(Some(r#"{"loadSleepMs": 60000}"#.into())),
            ..Default::default()
        })
        .await
        .expect("write");

    let started = std::time::Instant::now();
    let server = start_admin(
        &data,
        &[open, ("NITEJAR_PLUGIN_LOAD_TIMEOUT_MS", "500".to_string())],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let plugin = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{PROBE}"),
        None,
    )
    .await
    .json();
    assert_eq!(plugin["state"], "error", "{plugin}");
    assert!(
        plugin["lastLoadError"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish loading within 500 ms")),
        "{plugin}"
    );
    let stopping = std::time::Instant::now();
    server.stop();
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(15),
        "the abandoned loading thread is not waited for: {:?}",
        stopping.elapsed()
    );
}

/// While the running server waits for a plugin whose code hangs while loading (picked up from the
/// database, as a CLI change is), other changes still apply within about a second: loads run
/// outside the lifecycle lock and the next round skips the plugin being loaded.
#[tokio::test]
async fn a_hanging_load_in_the_running_server_holds_up_no_other_change() {
    const PROBE: &str = "dev.nitejar.fixtures.probe";
    let data = DataDir::new();
    let probe = package_dir(
        &data.path.join("packages"),
        "probe",
        "tests/fixtures/plugins/probe",
        "probe",
        |_| {},
    );
    let env = [
        ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_string()),
        ("NITEJAR_PLUGIN_LOAD_TIMEOUT_MS", "60000".to_string()),
    ];
    let server = start_admin(&data, &env);
    install_and_enable(&server, &probe, PROBE).await;
    server.stop();
    // Restarted with the probe disabled and a config that makes its load hang for a minute.
    let store = data.store().await;
    store
        .write_plugin_settings(&nitejar_core::store::SettingsWrite {
            plugin_id: PROBE.into(),
            config_json: Some(Some(r#"{"loadSleepMs": 60000}"#.into())),
            ..Default::default()
        })
        .await
        .expect("write");
    let mut row = store.get_plugin(PROBE).await.expect("read").expect("row");
    row.enabled = false;
    store.upsert_plugin(&row).await.expect("write");
    let server = start_admin(&data, &env);

    // As the CLI would: enable it in the database; the server starts loading it.
    row.enabled = true;
    store.upsert_plugin(&row).await.expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // Then another change: the echo built-in disabled in the database.
    let mut echo = store
        .get_plugin("builtin.echo")
        .await
        .expect("read")
        .expect("row");
    echo.enabled = false;
    store.upsert_plugin(&echo).await.expect("write");
    let changed = std::time::Instant::now();
    loop {
        let view = api(
            &server,
            Method::GET,
            "/api/admin/plugins/builtin.echo",
            None,
        )
        .await
        .json();
        if view["active"] == false {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(3),
            "the change waited for the hanging load: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let probe_view = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{PROBE}"),
        None,
    )
    .await
    .json();
    assert_eq!(probe_view["active"], false, "{probe_view}");
    assert!(probe_view["lastLoadError"].is_null(), "{probe_view}");
}
