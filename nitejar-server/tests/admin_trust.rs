//! Trust settings over the admin API against a real server: the environment's keys and entries
//! listed and not removable, keys and allowlist entries added and removed (one spelling per key or
//! entry: case, whitespace, a minisign.pub file, a lookalike letter), malformed ones refused with
//! the field and what is wrong, every change and refusal receipted with who made it, a change
//! applied at once (a signed plugin enabled after its key is trusted, taken out when it is
//! removed), and nothing changeable under saas_locked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::packages::{sign, signed_webhook};
use support::*;

const ID: &str = "dev.nitejar.examples.signed-webhook";

fn code(a: &Answer) -> String {
    a.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn key_id(key: &minisign::KeyPair) -> String {
    nitejar_core::trust::canonical::key_line(&key.pk.to_base64())
        .expect("a public key")
        .key_id
}

/// The settings with the random parts (keys, ids, times) replaced by names, for snapshots.
fn shown(doc: &Value, names: &[(&str, &str)]) -> Value {
    let mut text = doc.to_string();
    for (from, to) in names {
        text = text.replace(from, to);
    }
    let mut doc: Value = serde_json::from_str(&text).expect("json");
    for list in ["keys", "allowlist"] {
        if let Some(items) = doc[list].as_array_mut() {
            for item in items {
                if item["addedAt"].is_number() {
                    item["addedAt"] = json!("<time>");
                }
            }
        }
    }
    doc
}

async fn receipts(server: &Server) -> Vec<Value> {
    let page = api(
        server,
        Method::GET,
        "/api/admin/receipts?plugin=nitejar.trust&kind=trust&limit=100",
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.json()["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_entries_are_added_listed_removed_validated_and_receipted() {
    let env_key = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
    let key = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
    let data = DataDir::new();
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded".into()),
            ("NITEJAR_PLUGIN_TRUSTED_KEYS", env_key.pk.to_base64()),
            ("NITEJAR_PLUGIN_ALLOWLIST", "com.env.allowed".into()),
        ],
    );
    let (env_id, id) = (key_id(&env_key), key_id(&key));
    let names = [
        (env_id.as_str(), "<ENV_KEY_ID>"),
        (id.as_str(), "<KEY_ID>"),
        (&*env_key.pk.to_base64(), "<ENV_PUBLIC_KEY>"),
        (&*key.pk.to_base64(), "<PUBLIC_KEY>"),
    ];
    let names: Vec<(&str, &str)> = names.to_vec();

    // The environment's key and entry, listed as such.
    let listed = api(&server, Method::GET, "/api/admin/trust", None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    insta::assert_json_snapshot!("trust_from_the_environment", shown(&listed.json(), &names));

    // Malformed keys: 422 naming the field and what is wrong; nothing stored.
    let lookalike = key.pk.to_base64().replacen('W', "Ԝ", 1); // Cyrillic We
    let cases = [
        (
            json!({ "publicKey": lookalike }),
            422,
            "invalid_trusted_key",
        ),
        (json!({ "publicKey": "RWQf" }), 422, "invalid_trusted_key"),
        (json!({ "publicKey": 42 }), 422, "invalid_trusted_key"),
        (json!({ "key": "RW…" }), 400, "invalid_json"),
    ];
    let mut refusals = Vec::new();
    for (body, status, expected) in cases {
        let a = api(&server, Method::POST, "/api/admin/trust/keys", Some(&body)).await;
        assert_eq!(
            (a.status, code(&a)),
            (status, expected.to_string()),
            "{body}: {}",
            a.text
        );
        refusals.push(a.json());
    }
    assert_eq!(refusals[0]["error"]["details"][0]["path"], "/publicKey");
    insta::assert_json_snapshot!("trust_refused_keys", refusals);

    // A minisign *secret* key pasted by mistake: refused, and never repeated or recorded.
    let secret_line = key
        .sk
        .to_box(None)
        .expect("secret key box")
        .to_string()
        .lines()
        .nth(1)
        .expect("the secret key line")
        .to_owned();
    let a = api(
        &server,
        Method::POST,
        "/api/admin/trust/keys",
        Some(&json!({ "publicKey": secret_line })),
    )
    .await;
    assert_eq!(code(&a), "invalid_trusted_key", "{}", a.text);
    assert!(!a.text.contains(&secret_line[..20]), "{}", a.text);

    // The minisign.pub file, with its comment line and stray whitespace: one key, one spelling.
    let file = format!(
        "untrusted comment: minisign public key {id}\n   {}  \n",
        key.pk.to_base64()
    );
    let added = api(
        &server,
        Method::POST,
        "/api/admin/trust/keys",
        Some(&json!({ "publicKey": file })),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["change"]["ident"], id);
    assert_eq!(added.json()["change"]["value"], key.pk.to_base64());
    let again = api(
        &server,
        Method::POST,
        "/api/admin/trust/keys",
        Some(&json!({ "publicKey": key.pk.to_base64() })),
    )
    .await;
    assert_eq!(
        (again.status, code(&again)),
        (409, "already_trusted".into())
    );
    let env_again = api(
        &server,
        Method::POST,
        "/api/admin/trust/keys",
        Some(&json!({ "publicKey": env_key.pk.to_base64() })),
    )
    .await;
    assert_eq!(code(&env_again), "already_trusted");
    assert!(env_again.text.contains("NITEJAR_PLUGIN_TRUSTED_KEYS"));

    // Allowlist entries: case and whitespace fold to one spelling; a lookalike letter is refused.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let entry = api(
        &server,
        Method::POST,
        "/api/admin/trust/allowlist",
        Some(&json!({ "entry": format!("  COM.Acme.Jira@{}  ", digest.to_uppercase()) })),
    )
    .await;
    assert_eq!(entry.status, 201, "{}", entry.text);
    let canonical = format!("com.acme.jira@{digest}");
    assert_eq!(entry.json()["change"]["ident"], canonical);
    for (text, expected) in [
        (canonical.clone(), "already_trusted"),
        ("com.acme.jirа".to_string(), "invalid_allowlist_entry"),
        (
            "com.acme.jira@md5:00".to_string(),
            "invalid_allowlist_entry",
        ),
        ("com.env.allowed".to_string(), "already_trusted"),
    ] {
        let a = api(
            &server,
            Method::POST,
            "/api/admin/trust/allowlist",
            Some(&json!({ "entry": text })),
        )
        .await;
        assert_eq!(code(&a), expected, "{text}: {}", a.text);
        if expected == "invalid_allowlist_entry" {
            assert_eq!(a.status, 422);
            assert_eq!(a.json()["error"]["details"][0]["path"], "/entry");
        }
    }

    let listed = api(&server, Method::GET, "/api/admin/trust", None).await;
    let doc = listed.json();
    assert_eq!(doc["revision"], 2);
    assert_eq!(doc["keys"][1]["source"], "stored");
    assert_eq!(doc["keys"][1]["addedBy"], "admin API (bearer token)");
    insta::assert_json_snapshot!("trust_with_stored_entries", shown(&doc, &names));

    // The environment's cannot be removed here; the stored ones can, by any spelling.
    let env_remove = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/trust/keys/{env_id}"),
        None,
    )
    .await;
    assert_eq!(
        (env_remove.status, code(&env_remove)),
        (409, "set_by_environment".into())
    );
    let env_remove = api(
        &server,
        Method::DELETE,
        "/api/admin/trust/allowlist/com.env.allowed",
        None,
    )
    .await;
    assert_eq!(code(&env_remove), "set_by_environment");
    let missing = api(
        &server,
        Method::DELETE,
        "/api/admin/trust/keys/0000000000000000",
        None,
    )
    .await;
    assert_eq!(
        (missing.status, code(&missing)),
        (404, "trust_entry_not_found".into())
    );
    let removed = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/trust/keys/{}", id.to_lowercase()),
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    let removed = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/trust/allowlist/COM.ACME.JIRA@{digest}"),
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    let doc = api(&server, Method::GET, "/api/admin/trust", None)
        .await
        .json();
    assert_eq!(doc["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["allowlist"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["revision"], 4);

    // Every change and every refusal is a receipt: who, and what (public parts only).
    let all = receipts(&server).await;
    let oks: Vec<(&str, &str)> = all
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| {
            (
                r["detail"]["action"].as_str().unwrap_or(""),
                r["detail"]["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        oks,
        [
            ("remove", "allow"),
            ("remove", "key"),
            ("add", "allow"),
            ("add", "key")
        ],
        "newest first"
    );
    assert!(all
        .iter()
        .all(|r| r["detail"]["by"] == "admin API (bearer token)"));
    assert!(all.iter().filter(|r| r["status"] == "denied").count() >= 8);
    let text = serde_json::to_string(&all).expect("json");
    assert!(
        !text.contains(&secret_line[..20]),
        "a secret key is never recorded"
    );
    assert!(
        text.contains(&key.pk.to_base64()),
        "the public key is named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_key_applies_at_once_and_its_removal_takes_the_plugin_out() {
    let key = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
    let data = DataDir::new();
    let dir = signed_webhook(&data.path.join("packages"), "hooks.example.com");
    sign(&dir, &key);
    let server = start_admin(
        &data,
        &[("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded".into())],
    );
    let installed = api(
        &server,
        Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({ "path": dir.to_string_lossy() })),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let enable = json!({ "acceptConsent": true, "acknowledgeAll": true });
    let path = format!("/api/admin/plugins/{ID}/enable");
    let refused = api(&server, Method::POST, &path, Some(&enable)).await;
    assert_eq!(
        (refused.status, code(&refused)),
        (403, "trust_refused".into()),
        "{}",
        refused.text
    );

    let added = api(
        &server,
        Method::POST,
        "/api/admin/trust/keys",
        Some(&json!({ "publicKey": key.pk.to_base64() })),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let enabled = api(&server, Method::POST, &path, Some(&enable)).await;
    assert_eq!(enabled.status, 200, "no restart needed: {}", enabled.text);
    let view = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await;
    assert_eq!(view.json()["state"], "active", "{}", view.text);
    assert_eq!(view.json()["trustLevel"], "trusted");

    let removed = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/trust/keys/{}", key_id(&key)),
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.json()["applied"]["deactivated"], json!([ID]));
    let view = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await;
    let plugin = &view.json();
    assert_eq!(plugin["state"], "error", "{}", view.text);
    assert_eq!(plugin["lastErrorKind"], "trust");
    let page = Session::sign_in(&server)
        .await
        .get(&server, &format!("/admin/plugins/{ID}"))
        .await;
    assert!(
        page.text.contains("id=\"trust-link\""),
        "the page points at the fix"
    );
    assert!(plugin["lastLoadError"]
        .as_str()
        .unwrap_or("")
        .contains("not signed by a trusted key"));

    // Trusted again: it comes back by itself (it is still enabled) and the stale error is gone.
    let again = api(
        &server,
        Method::POST,
        "/api/admin/trust/keys",
        Some(&json!({ "publicKey": key.pk.to_base64() })),
    )
    .await;
    assert_eq!(
        again.json()["applied"]["activated"],
        json!([format!("{ID}@0.1.0")])
    );
    let view = api(
        &server,
        Method::GET,
        &format!("/api/admin/plugins/{ID}"),
        None,
    )
    .await;
    assert_eq!(view.json()["state"], "active", "{}", view.text);
    assert_eq!(view.json()["lastLoadError"], Value::Null);
    assert_eq!(view.json()["lastErrorKind"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_can_be_changed_under_saas_locked() {
    let platform = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
    let data = DataDir::new();
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "saas_locked".into()),
            ("NITEJAR_PLUGIN_TRUSTED_KEYS", platform.pk.to_base64()),
        ],
    );
    let other = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
    for (path, body) in [
        (
            "/api/admin/trust/keys",
            json!({ "publicKey": other.pk.to_base64() }),
        ),
        (
            "/api/admin/trust/allowlist",
            json!({ "entry": "com.acme.jira" }),
        ),
    ] {
        let a = api(&server, Method::POST, path, Some(&body)).await;
        assert_eq!(
            (a.status, code(&a)),
            (409, "trust_settings_locked".into()),
            "{}",
            a.text
        );
    }
    let removed = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/trust/keys/{}", key_id(&platform)),
        None,
    )
    .await;
    assert_eq!(code(&removed), "trust_settings_locked");
    let doc = api(&server, Method::GET, "/api/admin/trust", None)
        .await
        .json();
    assert_eq!(doc["editable"], false);
    assert_eq!(doc["allowlistApplies"], false);
    assert_eq!(doc["keys"][0]["source"], "environment");
    assert!(doc["lockedNote"]
        .as_str()
        .unwrap_or("")
        .contains("saas_locked"));
    let page = Session::sign_in(&server)
        .await
        .get(&server, "/admin/trust")
        .await;
    assert_eq!(page.status, 200);
    assert!(
        !page.text.contains("id=\"key-form\""),
        "no form to add a key"
    );
    assert!(page.text.contains("Trust settings cannot be changed here."));
}
