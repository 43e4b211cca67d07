//! The admin UI in a real browser (headless Chromium over WebDriver) against a real server process:
//! sign in, create an integration through the form generated from its type's schema, send it a
//! webhook, find the receipts; read the runs and why one failed; upload a third-party plugin,
//! review what it declares, consent, enable it and use its integration type. Screenshots go to
//! `target/browser-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use fantoccini::{Client, Locator};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::admin::*;
use support::browser::*;
use support::*;

const TOKEN: &str = "123456789:ABCdefGHIjkl";

fn fake_telegram() -> LocalHttp {
    LocalHttp::start(move |r| {
        if !r.path.starts_with(&format!("/bot{TOKEN}/")) {
            return json_reply(
                401,
                &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        if r.path.ends_with("/sendMessage") {
            return json_reply(
                200,
                &json!({"ok": true, "result": {"message_id": 7, "date": 1, "chat": {"id": 42, "type": "private"}}}),
            );
        }
        json_reply(200, &json!({"ok": true, "result": true}))
    })
}

async fn text_of(browser: &Client) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .expect("text")
}

/// Clicks and waits for the page it loads (the old document's root goes stale).
async fn click(browser: &Client, css: &str) {
    let old = browser.find(Locator::Css("html")).await.expect("page");
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .expect("click");
    for _ in 0..400 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_creates_an_integration_sends_a_webhook_and_reads_the_receipts() {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let server = start_admin(&data, &[("NITEJAR_TELEGRAM_API_BASE", telegram.url(""))]);
    let driver = Driver::start();
    let browser = driver.browser().await;

    // Not signed in: the sign-in page, with the posture badge.
    browser
        .goto(&server.url("/admin/integrations"))
        .await
        .expect("goto");
    let url = browser.current_url().await.expect("url");
    assert_eq!(url.path(), "/admin/login");
    let badge = browser
        .find(Locator::Css(".posture-badge"))
        .await
        .expect("badge");
    // The default trust mode (guarded) runs third-party plugins isolated.
    assert_eq!(
        badge.text().await.expect("text"),
        "Plugins isolated by default (kernel-enforced; each plugin's page says where it runs)"
    );
    screenshot(&browser, "01-sign-in").await;

    type_into(&browser, "#token", "not the token").await;
    click(&browser, "form button[type=submit]").await;
    assert!(text_of(&browser)
        .await
        .contains("That is not the admin token."));
    type_into(&browser, "#token", ADMIN_TOKEN).await;
    click(&browser, "form button[type=submit]").await;
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        "/admin/integrations"
    );

    // A Telegram integration through the generated form.
    browser
        .find(Locator::Css("#new-type"))
        .await
        .expect("type select")
        .select_by_value("telegram")
        .await
        .expect("select");
    click(&browser, "form[action='/admin/integrations/new'] button").await;
    let form_text = text_of(&browser).await;
    for label in [
        "Bot token",
        "Webhook secret",
        "Allowed chats",
        "Use message threads",
    ] {
        assert!(
            form_text.contains(label),
            "the form shows {label}:\n{form_text}"
        );
    }
    let token_type = browser
        .find(Locator::Css("#f-botToken"))
        .await
        .expect("token field")
        .attr("type")
        .await
        .expect("attr");
    assert_eq!(token_type.as_deref(), Some("password"));
    type_into(&browser, "#f-name", "Support bot").await;
    type_into(&browser, "#f-botToken", TOKEN).await;
    type_into(&browser, "#f-allowedChatIds", "42\nnot-a-chat").await;
    screenshot(&browser, "02-integration-form").await;
    click(
        &browser,
        "form[action='/admin/integrations'] button[type=submit]",
    )
    .await;
    // Refused with the field named; the form keeps what was typed.
    let refused = text_of(&browser).await;
    assert!(
        refused.contains("The configuration was not saved"),
        "{refused}"
    );
    assert!(refused.contains("line 2:"), "{refused}");
    assert!(
        !browser.source().await.expect("source").contains(TOKEN),
        "a typed secret is not sent back"
    );
    assert!(
        browser
            .find(Locator::Css(".has-error #f-allowedChatIds"))
            .await
            .is_ok(),
        "the field is marked"
    );
    screenshot(&browser, "03-integration-form-error").await;
    assert!(refused.contains("Type it again"), "{refused}");
    type_into(&browser, "#f-allowedChatIds", "42").await;
    type_into(&browser, "#f-botToken", TOKEN).await;
    click(
        &browser,
        "form[action='/admin/integrations'] button[type=submit]",
    )
    .await;
    let created = text_of(&browser).await;
    assert!(created.contains("Integration created."), "{created}");
    assert!(
        !browser.source().await.expect("source").contains(TOKEN),
        "the token is never sent back"
    );
    let masked = browser
        .find(Locator::Css("#f-botToken"))
        .await
        .expect("token field")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(masked.as_deref(), Some("••••••••"));
    screenshot(&browser, "04-integration-created").await;

    // A webhook signed with the secret setup generated, as Telegram would send it.
    let id = browser
        .current_url()
        .await
        .expect("url")
        .path()
        .trim_start_matches("/admin/integrations/")
        .to_owned();
    let store = data.store().await;
    let row = store
        .get_integration(&id)
        .await
        .expect("read")
        .expect("row");
    let config = row
        .decrypted_config(store.cipher(), &["botToken".into(), "webhookSecret".into()])
        .expect("decrypt");
    let secret = config["webhookSecret"]
        .as_str()
        .expect("generated secret")
        .to_owned();
    let update = json!({"update_id": 9, "message": {"message_id": 3, "date": 1, "text": "hello from the browser test",
        "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "chat": {"id": 42, "type": "private"}}});
    let answer = client()
        .post(server.url(&format!("/api/webhooks/plugins/telegram/{id}")))
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", &secret)
        .body(update.to_string())
        .send()
        .await
        .expect("webhook");
    assert_eq!(answer.status().as_u16(), 200);
    let replied = eventually(20, || {
        telegram
            .received()
            .iter()
            .find(|r| r.path.ends_with("/sendMessage"))
            .map(body_json)
    })
    .await
    .expect("the agent answered through Telegram");
    assert_eq!(replied["chat_id"], Value::from(42));

    // The receipts, filtered to webhook deliveries.
    browser
        .goto(&server.url("/admin/receipts"))
        .await
        .expect("goto");
    browser
        .find(Locator::Css("#r-kind"))
        .await
        .expect("kind filter")
        .select_by_value("webhook_ingress")
        .await
        .expect("select");
    click(&browser, "form.filters button[type=submit]").await;
    let receipts = text_of(&browser).await;
    assert!(
        receipts.contains("builtin.telegram") && receipts.contains("accepted"),
        "{receipts}"
    );
    screenshot(&browser, "05-receipts").await;
    browser
        .goto(&server.url("/admin/receipts"))
        .await
        .expect("goto");
    let all = text_of(&browser).await;
    for kind in ["webhook_ingress", "integration"] {
        assert!(all.contains(kind), "{kind} in\n{all}");
    }

    browser
        .goto(&server.url("/admin/plugins/builtin.telegram"))
        .await
        .expect("goto");
    let detail = text_of(&browser).await;
    assert!(detail.contains(
        "Partially enforced in current execution mode; plugin code still runs in-process."
    ));
    assert!(
        detail.contains("network:api.telegram.org") || detail.contains("network:"),
        "{detail}"
    );
    screenshot(&browser, "06-plugin-detail").await;
    browser
        .goto(&server.url("/admin/runtime"))
        .await
        .expect("goto");
    screenshot(&browser, "07-runtime").await;

    browser.close().await.expect("close");
}

async fn sign_in(browser: &Client, server: &Server) {
    browser
        .goto(&server.url("/admin/login"))
        .await
        .expect("goto");
    type_into(browser, "#token", ADMIN_TOKEN).await;
    click(browser, "form button[type=submit]").await;
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        "/admin/plugins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uploads_reviews_consents_enables_and_uses_a_third_party_plugin() {
    const ID: &str = "dev.nitejar.examples.signed-webhook";
    const SECRET: &str = "browser-signing-secret";
    let data = DataDir::new();
    let callback = LocalHttp::start(|_| json_reply(200, &json!({"ok": true})));
    let callback_host = format!("127.0.0.1:{}", callback.port());
    let package = support::packages::signed_webhook(&data.path.join("src"), &callback_host);
    let archive = data.path.join("signed-webhook-0.1.0.tgz");
    std::fs::write(&archive, support::packages::tgz(&package)).expect("write the .tgz");
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );
    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &server).await;

    // Plugins → Install → upload the package.
    click(&browser, "#install-link").await;
    assert!(text_of(&browser).await.contains("There is no hard sandbox"));
    browser
        .find(Locator::Css("#i-package"))
        .await
        .expect("file field")
        .send_keys(&archive.to_string_lossy())
        .await
        .expect("choose the file");
    screenshot(&browser, "11-plugin-install").await;
    click(&browser, "#install-upload button[type=submit]").await;

    // The review page: the warning, what it declares, the consent text; nothing enabled yet.
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        format!("/admin/plugins/{ID}/review")
    );
    let review = text_of(&browser).await;
    for text in [
        "Installed. Review it below, then enable it.",
        "There is no hard sandbox",
        &format!("network:{callback_host}"),
        "Enable it only if you trust its publisher",
    ] {
        assert!(review.contains(text), "review lacks {text:?}:\n{review}");
    }
    screenshot(&browser, "12-plugin-review").await;

    // Enabling without consent is refused on the same page.
    click(&browser, "#consent-form button[type=submit]").await;
    assert!(text_of(&browser).await.contains("Not enabled."));
    browser
        .find(Locator::Css("#accept-consent"))
        .await
        .expect("consent box")
        .click()
        .await
        .expect("tick");
    click(&browser, "#consent-form button[type=submit]").await;
    let detail = text_of(&browser).await;
    assert!(detail.contains("Enabled."), "{detail}");
    assert!(detail.contains("active"), "{detail}");
    screenshot(&browser, "13-plugin-enabled").await;

    // An integration of the plugin's type, through the form generated from its schema.
    browser
        .goto(&server.url("/admin/integrations"))
        .await
        .expect("goto");
    browser
        .find(Locator::Css("#new-type"))
        .await
        .expect("type select")
        .select_by_value("signed-webhook")
        .await
        .expect("the plugin's type is offered");
    click(&browser, "form[action='/admin/integrations/new'] button").await;
    type_into(&browser, "#f-name", "Partner hooks").await;
    type_into(&browser, "#f-secret", SECRET).await;
    type_into(&browser, "#f-callbackUrl", &callback.url("/hook")).await;
    click(
        &browser,
        "form[action='/admin/integrations'] button[type=submit]",
    )
    .await;
    assert!(text_of(&browser).await.contains("Integration created."));
    let integration = browser
        .current_url()
        .await
        .expect("url")
        .path()
        .trim_start_matches("/admin/integrations/")
        .to_owned();

    // A signed delivery becomes a run whose answer is POSTed to the callback.
    let body = json!({"text": "hello from the browser test", "id": "b-1"}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let answer = client()
        .post(server.url(&format!(
            "/api/webhooks/plugins/signed-webhook/{integration}"
        )))
        .header("content-type", "application/json")
        .header("x-signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(answer.status().as_u16(), 200);
    eventually(20, || callback.received().into_iter().next())
        .await
        .unwrap_or_else(|| panic!("no answer delivered; log:\n{}", server.log()));

    // The plugin's receipts: install, enable, the delivery.
    browser
        .goto(&server.url(&format!("/admin/receipts?plugin={ID}")))
        .await
        .expect("goto");
    let receipts = text_of(&browser).await;
    for kind in ["install", "enable", "webhook_ingress"] {
        assert!(receipts.contains(kind), "{kind} in\n{receipts}");
    }
    screenshot(&browser, "14-plugin-receipts").await;
    browser.close().await.expect("close");
}

/// A Bot API double that refuses to post to chat 13 ("chat not found") and answers everything else.
fn fake_telegram_refusing_chat_13() -> LocalHttp {
    LocalHttp::start(move |r| {
        if !r.path.starts_with(&format!("/bot{TOKEN}/")) {
            return json_reply(
                401,
                &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        if r.path.ends_with("/sendMessage") {
            if body_json(r)["chat_id"] == json!(13) {
                return json_reply(
                    400,
                    &json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
                );
            }
            return json_reply(
                200,
                &json!({"ok": true, "result": {"message_id": 7, "date": 1, "chat": {"id": 42, "type": "private"}}}),
            );
        }
        json_reply(200, &json!({"ok": true, "result": true}))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_the_runs_and_sees_why_one_failed() {
    let data = DataDir::new();
    let telegram = fake_telegram_refusing_chat_13();
    let server = start_admin(&data, &[("NITEJAR_TELEGRAM_API_BASE", telegram.url(""))]);
    let store = data.store().await;
    let integration = create_integration(
        &store,
        "telegram",
        json!({"botToken": TOKEN, "webhookSecret": "s3cret-token"}),
        &["botToken", "webhookSecret"],
    )
    .await;
    for (update_id, chat, text) in [(1, 42, "what is the weather"), (2, 13, "is anyone there")] {
        let update = json!({"update_id": update_id, "message": {"message_id": 5, "date": 1,
            "from": {"id": chat, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": chat, "type": "private"}, "text": text}});
        let resp = reqwest::Client::new()
            .post(server.url(&format!("/api/webhooks/plugins/telegram/{integration}")))
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", "s3cret-token")
            .body(update.to_string())
            .send()
            .await
            .expect("webhook");
        assert_eq!(resp.status().as_u16(), 200);
    }
    // Both runs finished.
    let finished = eventually(15, || {
        let rt = tokio::runtime::Handle::current();
        let page = tokio::task::block_in_place(|| {
            rt.block_on(api(&server, reqwest::Method::GET, "/api/admin/runs", None))
        })
        .json();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2
            && items
                .iter()
                .all(|r| r["queue"].is_null() && r["jobs"][0]["finishedAt"].is_i64()))
        .then_some(())
    })
    .await;
    assert!(finished.is_some(), "runs did not finish:\n{}", server.log());

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser
        .goto(&server.url("/admin/login"))
        .await
        .expect("goto");
    type_into(&browser, "#token", ADMIN_TOKEN).await;
    click(&browser, "form button[type=submit]").await;

    // The nav leads to the runs: both messages, one answered, one failed with its reason.
    click(&browser, "nav a[href='/admin/runs']").await;
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        "/admin/runs"
    );
    let list = text_of(&browser).await;
    assert!(
        list.contains("what is the weather") && list.contains("is anyone there"),
        "{list}"
    );
    assert!(
        list.contains("completed") && list.contains("failed"),
        "{list}"
    );
    assert!(list.contains("chat not found"), "the list says why: {list}");
    screenshot(&browser, "20-runs").await;

    // The status filter.
    browser
        .find(Locator::Css("#r-status"))
        .await
        .expect("status filter")
        .select_by_value("failed")
        .await
        .expect("select");
    click(&browser, "form.filters button[type=submit]").await;
    let filtered = text_of(&browser).await;
    assert!(
        filtered.contains("is anyone there") && !filtered.contains("what is the weather"),
        "{filtered}"
    );
    screenshot(&browser, "21-runs-failed").await;

    // The failed run: its reason on top, the job's timeline, the receipts below.
    click(&browser, "table.runs td.what a").await;
    assert!(browser
        .current_url()
        .await
        .expect("url")
        .path()
        .starts_with("/admin/runs/"));
    let failure = browser
        .find(Locator::Css("#run-failure"))
        .await
        .expect("the failure is shown")
        .text()
        .await
        .expect("text");
    assert!(
        failure.contains("delivery failed") && failure.contains("chat not found"),
        "{failure}"
    );
    let bars = browser
        .find_all(Locator::Css(".timeline-bar"))
        .await
        .expect("bars");
    assert!(
        bars.len() >= 3,
        "job, model call and delivery: {}",
        bars.len()
    );
    let page = text_of(&browser).await;
    assert!(
        page.contains("model call") && page.contains("delivery (post_response)"),
        "{page}"
    );
    assert!(
        page.contains("webhook_ingress"),
        "the receipts are listed: {page}"
    );
    screenshot(&browser, "22-run-failed").await;
    // Tall enough for the whole job in one picture.
    browser.set_window_size(1280, 2400).await.expect("resize");
    let job = browser
        .find(Locator::Css("section.job"))
        .await
        .expect("the job");
    let png = job.screenshot().await.expect("job screenshot");
    std::fs::write(screenshot_dir().join("22-run-failed-timeline.png"), png).expect("write");

    // The answered run.
    browser
        .goto(&server.url("/admin/runs?status=completed"))
        .await
        .expect("goto");
    click(&browser, "table.runs td.what a").await;
    let page = text_of(&browser).await;
    assert!(page.contains("delivered"), "{page}");
    assert!(browser.find(Locator::Css("#run-failure")).await.is_err());
    screenshot(&browser, "23-run-answered").await;
    browser.close().await.expect("close");
}

/// The page, and the settings section on its own (it sits below the fold).
async fn settings_shot(browser: &Client, name: &str) {
    screenshot(browser, name).await;
    // Tall enough for the whole section in one picture.
    let (width, height) = browser.get_window_size().await.expect("size");
    browser.set_window_size(1280, 2400).await.expect("resize");
    let png = browser
        .find(Locator::Css("#settings"))
        .await
        .expect("the settings section")
        .screenshot()
        .await
        .expect("section screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}-section.png")), png).expect("write");
    browser
        .set_window_size(width as u32, height as u32)
        .await
        .expect("resize back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_a_plugins_settings_and_a_secret_through_its_form_and_the_next_run_uses_them(
) {
    use support::redaction::*;
    let run = RedactionRun::start().await;
    let first = run.delivered("browser-1").await;
    assert!(
        first.contains("org-secret-4242"),
        "no settings yet: {first}"
    );

    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &run.server).await;
    browser
        .goto(&run.server.url(&format!("/admin/plugins/{GUARD}")))
        .await
        .expect("goto");
    // The form generated from the manifest's config schema, and the declared secret.
    let page = text_of(&browser).await;
    for label in [
        "Settings",
        "Blocked tools",
        "Redact these texts",
        "Redact these secrets",
        "Redact tokens starting with",
        "OPENAI_API_KEY",
    ] {
        assert!(page.contains(label), "the form shows {label}:\n{page}");
    }
    let shell = browser
        .find(Locator::Css("#f-blockedTools"))
        .await
        .expect("blocked tools")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(shell.as_deref(), Some("shell"), "the declared default");
    let source = browser
        .find(Locator::Css("#settings .secret-source"))
        .await
        .expect("secret source")
        .text()
        .await
        .expect("text");
    assert_eq!(source, "unset");
    let secret_type = browser
        .find(Locator::Css("#s-OPENAI_API_KEY"))
        .await
        .expect("secret field")
        .attr("type")
        .await
        .expect("attr");
    assert_eq!(secret_type.as_deref(), Some("password"));
    settings_shot(&browser, "30-plugin-settings").await;

    // A value the schema refuses: the form comes back with the problem under its field.
    type_into(&browser, "#f-redact", "hunter2").await;
    type_into(&browser, "#f-redactSecrets", "GITHUB_TOKEN").await;
    type_into(&browser, "#s-OPENAI_API_KEY", "org-secret-4242").await;
    click(&browser, "#settings-form button[type=submit]").await;
    let refused = text_of(&browser).await;
    assert!(
        refused.contains("The settings were not saved."),
        "{refused}"
    );
    let error = browser
        .find(Locator::Css("#settings .has-error .field-error"))
        .await
        .expect("a field error")
        .text()
        .await
        .expect("text");
    assert_eq!(
        error,
        "line 1: `GITHUB_TOKEN` is not allowed; use one of: `OPENAI_API_KEY`"
    );
    assert!(
        refused.contains("Type it again: secrets are not sent back to the browser."),
        "{refused}"
    );
    let html = browser.source().await.expect("html");
    assert!(
        !html.contains("org-secret-4242"),
        "the typed secret is not sent back"
    );
    assert_eq!(settings(&run.server).await["revision"], 0, "nothing saved");
    settings_shot(&browser, "31-plugin-settings-refused").await;

    // Fixed and saved: in effect at once, the secret stored and shown masked.
    type_into(&browser, "#f-redactSecrets", "OPENAI_API_KEY").await;
    type_into(&browser, "#s-OPENAI_API_KEY", "org-secret-4242").await;
    click(&browser, "#settings-form button[type=submit]").await;
    let saved = text_of(&browser).await;
    assert!(
        saved.contains("Settings saved: the plugin runs with them now."),
        "{saved}"
    );
    let source = browser
        .find(Locator::Css("#settings .secret-source"))
        .await
        .expect("secret source")
        .text()
        .await
        .expect("text");
    assert_eq!(source, "stored");
    let masked = browser
        .find(Locator::Css("#s-OPENAI_API_KEY"))
        .await
        .expect("secret field")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(masked.as_deref(), Some("••••••••"));
    assert!(saved.contains("configure"), "a configure receipt: {saved}");
    let status = browser
        .find(Locator::Css("#settings-status"))
        .await
        .expect("status")
        .text()
        .await
        .expect("text");
    assert_eq!(
        status,
        "The plugin runs with these settings now (revision 1)."
    );
    settings_shot(&browser, "32-plugin-settings-saved").await;

    // The next run, same server process: the config and the stored secret at work.
    let second = run.delivered("browser-2").await;
    assert!(
        second.contains("The key is [redacted] and the password is [redacted]."),
        "{second}"
    );
    browser.close().await.expect("close");
}

/// Ticks every permission box and the consent box of the review page, then submits it.
async fn consent_and_enable(browser: &Client) {
    for ack in browser
        .find_all(Locator::Css("#consent-form input[name=ack]"))
        .await
        .expect("acknowledgement boxes")
    {
        if !ack.is_selected().await.expect("state") {
            ack.click().await.expect("tick");
        }
    }
    browser
        .find(Locator::Css("#accept-consent"))
        .await
        .expect("consent box")
        .click()
        .await
        .expect("tick");
    click(browser, "#consent-form button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_trusts_a_publishers_key_in_the_admin_and_enables_its_signed_plugin_without_a_restart(
) {
    const ID: &str = "dev.nitejar.examples.signed-webhook";
    let key = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
    let data = DataDir::new();
    let dir = support::packages::signed_webhook(&data.path.join("src"), "hooks.example.com");
    support::packages::sign(&dir, &key);
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded".into()),
            ("NITEJAR_PLUGIN_ALLOWLIST", "com.example.from-env".into()),
        ],
    );
    let installed = api(
        &server,
        reqwest::Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({ "path": dir.to_string_lossy() })),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &server).await;

    // Signed by a key this server does not trust yet: consent is given, enabling is refused.
    browser
        .goto(&server.url(&format!("/admin/plugins/{ID}/review")))
        .await
        .expect("goto");
    consent_and_enable(&browser).await;
    let refused = text_of(&browser).await;
    assert!(refused.contains("Not enabled."), "{refused}");
    assert!(refused.contains("not signed by a trusted key"), "{refused}");
    assert!(refused.contains("admin Trust page"), "{refused}");
    screenshot(&browser, "40-trust-enable-refused").await;

    // The Trust page: the environment's entry is listed, marked as such, with nothing to remove.
    click(&browser, "nav a[href='/admin/trust']").await;
    let page = text_of(&browser).await;
    assert!(page.contains("com.example.from-env"), "{page}");
    assert!(page.contains("set by NITEJAR_PLUGIN_ALLOWLIST"), "{page}");
    assert!(page.contains("No trusted keys."), "{page}");
    let source = browser
        .find(Locator::Css("#allowlist .trust-source"))
        .await
        .expect("source")
        .text()
        .await
        .expect("text");
    assert_eq!(source, "environment");
    let remove_buttons = browser
        .find_all(Locator::Css(
            "#allowlist form[action='/admin/trust/allowlist/remove']",
        ))
        .await
        .expect("forms");
    assert!(
        remove_buttons.is_empty(),
        "an environment entry has no Remove"
    );
    screenshot(&browser, "41-trust-page").await;

    // A key with a lookalike letter: refused under the field, nothing stored.
    let lookalike = key.pk.to_base64().replacen('W', "Ԝ", 1);
    type_into(&browser, "#public-key", &lookalike).await;
    click(&browser, "#key-form button[type=submit]").await;
    let error = browser
        .find(Locator::Css("#keys .field-error"))
        .await
        .expect("the field's error")
        .text()
        .await
        .expect("text");
    assert!(
        error.starts_with("Nothing was changed: the public key contains `Ԝ` (U+051C)"),
        "{error}"
    );
    assert!(text_of(&browser).await.contains("No trusted keys."));
    screenshot(&browser, "42-trust-key-refused").await;

    // The publisher's minisign.pub, pasted whole.
    let file = key.pk.to_box().expect("box").to_string();
    type_into(&browser, "#public-key", &file).await;
    click(&browser, "#key-form button[type=submit]").await;
    let added = text_of(&browser).await;
    assert!(
        added.contains("Key trusted: plugins signed by it can be enabled now."),
        "{added}"
    );
    let key_id = nitejar_core::trust::canonical::key_line(&key.pk.to_base64())
        .expect("key")
        .key_id;
    let row = browser
        .find(Locator::Css(&format!("#keys tr[data-key-id='{key_id}']")))
        .await
        .expect("the key's row")
        .text()
        .await
        .expect("text");
    assert!(row.contains("stored") && row.contains("Remove"), "{row}");
    screenshot(&browser, "43-trust-key-added").await;

    // Same server process, no restart: the signed plugin is enabled and runs.
    browser
        .goto(&server.url(&format!("/admin/plugins/{ID}/review")))
        .await
        .expect("goto");
    consent_and_enable(&browser).await;
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        format!("/admin/plugins/{ID}")
    );
    let detail = text_of(&browser).await;
    assert!(detail.contains("Enabled."), "{detail}");
    assert!(detail.contains("active"), "{detail}");
    assert!(detail.contains("trusted"), "{detail}");
    screenshot(&browser, "44-trust-signed-plugin-enabled").await;

    // The change is a receipt naming who made it.
    browser
        .goto(&server.url("/admin/receipts?kind=trust"))
        .await
        .expect("goto");
    let receipts = text_of(&browser).await;
    assert!(receipts.contains("nitejar.trust"), "{receipts}");
    screenshot(&browser, "45-trust-receipts").await;
    let stored = api(
        &server,
        reqwest::Method::GET,
        "/api/admin/receipts?plugin=nitejar.trust&kind=trust&status=ok",
        None,
    )
    .await
    .json();
    let by = stored["items"][0]["detail"]["by"].as_str().unwrap_or("");
    assert!(by.starts_with("admin UI (session "), "{stored}");
    browser.close().await.expect("close");
}

/// Hook receipts of a known shape: over the last hours, a busy hour with slow calls and failures,
/// and quieter hours around it.
async fn seed_hook_receipts(data: &DataDir) {
    use nitejar_core::receipts::{now_ms, Receipt, ReceiptKind, ReceiptStatus};
    use nitejar_core::store::{StoredReceipt, BUCKET_MS};
    let store = data.store().await;
    let hour = now_ms().div_euclid(BUCKET_MS) * BUCKET_MS;
    let mut receipts = Vec::new();
    for (ago, calls, slow) in [(9i64, 12u64, 40u64), (5, 60, 120), (4, 30, 35), (1, 8, 20)] {
        for n in 0..calls {
            let status = if ago == 5 && n % 20 == 0 {
                ReceiptStatus::Error
            } else {
                ReceiptStatus::Ok
            };
            let mut r = Receipt::new(
                "builtin.echo",
                Some(std::sync::Arc::from("0.1.0")),
                ReceiptKind::Hook,
                status,
            );
            r.hook = Some(nitejar_sdk::HookName::ResponsePreDeliver);
            r.duration_us = (2 + n % 7 + if n == calls - 1 { slow } else { 0 }) * 1000;
            r.created_at_ms = hour - ago * BUCKET_MS + n as i64 * 1000;
            receipts.push(StoredReceipt::new(r));
        }
    }
    store.insert_receipts(&receipts).await.expect("receipts");
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_a_plugins_hook_calls_errors_and_latency_over_the_last_day() {
    let data = DataDir::new();
    seed_hook_receipts(&data).await;
    let server = start_admin(&data, &[]);
    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &server).await;

    browser
        .goto(&server.url("/admin/plugins/builtin.echo"))
        .await
        .expect("goto");
    let page = text_of(&browser).await;
    assert!(page.contains("Hook calls, last 24 h"), "{page}");
    assert!(page.contains("110 calls · 3 errors"), "{page}");
    // Screen readers get the strips' numbers from their labels.
    let strip = browser
        .find(Locator::Css("#hook-calls svg[role=img]"))
        .await
        .expect("chart");
    let label = strip
        .attr("aria-label")
        .await
        .expect("label")
        .unwrap_or_default();
    assert!(label.contains("110 calls, 3 errors"), "{label}");
    browser
        .find(Locator::Css("#hook-calls details summary"))
        .await
        .expect("numbers")
        .click()
        .await
        .expect("open");
    let table = browser
        .find(Locator::Css("#hook-calls table"))
        .await
        .expect("table")
        .text()
        .await
        .expect("text");
    assert!(table.contains("60 3"), "{table}");
    screenshot(&browser, "08-plugin-hook-calls").await;
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reviews_an_agents_request_and_approves_it_with_their_own_consent() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())],
    );
    // The probe, installed and left disabled; an agent's request to enable it, as its
    // `plugins_enable` tool leaves one.
    let dir = support::packages::package_dir(
        packages.path(),
        "probe",
        "tests/fixtures/plugins/probe",
        "probe",
        |_| {},
    );
    let installed = api(
        &server,
        reqwest::Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({"path": dir.to_string_lossy()})),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let store = data.store().await;
    let agent = store.list_agents().await.expect("agents")[0].id.clone();
    let request = nitejar_core::store::PluginRequestRow {
        id: "req-browser-1".into(),
        plugin_id: support::probe::PROBE.into(),
        action: "enable".into(),
        agent_id: agent.clone(),
        job_id: "job-1".into(),
        work_item_id: "wi-1".into(),
        reason: Some("the user wants the probe".into()),
        status: "pending".into(),
        created_at: 1,
        decided_at: None,
        decided_by: None,
        detail: None,
    };
    store
        .create_plugin_request(&request, None)
        .await
        .expect("request");

    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &server).await;
    browser
        .goto(&server.url("/admin/agents"))
        .await
        .expect("goto");
    let page = text_of(&browser).await;
    assert!(page.contains("Requests waiting for you"), "{page}");
    assert!(page.contains("the user wants the probe"), "{page}");
    screenshot(&browser, "61-agent-requests").await;
    click(&browser, "tr[data-request-id='req-browser-1'] a.button").await;

    // The plugin's own review page, with the agent's request above it.
    let review = text_of(&browser).await;
    assert!(review.contains("asked to enable this plugin"), "{review}");
    assert!(review.contains("An agent cannot consent"), "{review}");
    assert!(review.contains("Declared capabilities"), "{review}");
    screenshot(&browser, "62-agent-request-review").await;
    // Approving without ticking consent enables nothing.
    click(&browser, "#consent-form button[type=submit]").await;
    assert!(text_of(&browser).await.contains("Not enabled."));
    let view = api(
        &server,
        reqwest::Method::GET,
        &format!("/api/admin/plugins/{}", support::probe::PROBE),
        None,
    )
    .await
    .json();
    assert_eq!(view["enabled"], false);
    consent_and_enable(&browser).await;
    let done = text_of(&browser).await;
    assert!(
        done.contains("Approved: the plugin is enabled with your consent"),
        "{done}"
    );
    screenshot(&browser, "63-agent-request-approved").await;
    let view = api(
        &server,
        reqwest::Method::GET,
        &format!("/api/admin/plugins/{}", support::probe::PROBE),
        None,
    )
    .await
    .json();
    assert_eq!(view["enabled"], true, "{view}");
    let decided = store
        .get_plugin_request("req-browser-1")
        .await
        .expect("read")
        .expect("request");
    assert_eq!(decided.status, "approved");
    assert!(decided
        .decided_by
        .unwrap_or_default()
        .starts_with("admin UI"));
}
