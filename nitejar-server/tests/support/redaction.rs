//! A plugin whose settings show in a run: the `policy-guard` example (its redaction reads its
//! config and a secret) and the `signed-webhook` example integration, both enabled on a server whose
//! model answers every prompt with [`MODEL_SAYS`] and whose callback records what is delivered.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use super::admin::{api, client, start_admin};
use super::packages::{package_dir, signed_webhook};
use super::{
    body_json, create_plugin_integration, eventually, json_reply, DataDir, LocalHttp, Server,
};

pub const GUARD: &str = "dev.nitejar.examples.policy-guard";
pub const WEBHOOK: &str = "dev.nitejar.examples.signed-webhook";
pub const SIGNING: &str = "plugin-settings-signing-secret";
/// What the model answers: a secret's value and a literal, for the guard to redact.
pub const MODEL_SAYS: &str = "The key is org-secret-4242 and the password is hunter2.";

pub fn config_path() -> String {
    format!("/api/admin/plugins/{GUARD}/config")
}

pub fn open_mode() -> (&'static str, String) {
    ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into())
}

/// The policy-guard package directory.
pub fn guard_package(data: &DataDir) -> PathBuf {
    package_dir(
        &data.path.join("packages"),
        "policy-guard",
        "examples/policy-guard",
        "policy_guard",
        |_| {},
    )
}

/// Installs the package directory `dir` from the server's disk and enables plugin `id` with consent.
pub async fn install_and_enable(server: &Server, dir: &Path, id: &str) {
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

/// The guard's settings, as the API answers them.
pub async fn settings(server: &Server) -> Value {
    let got = api(server, Method::GET, &config_path(), None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    got.json()
}

/// The running setup.
pub struct RedactionRun {
    pub data: DataDir,
    pub server: Server,
    pub callback: LocalHttp,
    _model: LocalHttp,
    pub integration: String,
}

impl RedactionRun {
    pub async fn start() -> RedactionRun {
        RedactionRun::start_with(&[]).await
    }

    /// As [`RedactionRun::start`], the server with `env` too.
    pub async fn start_with(env: &[(&str, String)]) -> RedactionRun {
        let data = DataDir::new();
        let callback = LocalHttp::start(|_| json_reply(200, &json!({"ok": true})));
        let model = LocalHttp::start(|_| {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": MODEL_SAYS}}]}),
            )
        });
        let packages = data.path.join("packages");
        let webhook = signed_webhook(&packages, &format!("127.0.0.1:{}", callback.port()));
        let guard = guard_package(&data);
        let mut all = vec![
            open_mode(),
            ("NITEJAR_MODEL_BASE_URL", model.url("")),
            ("NITEJAR_MODEL", "gpt-test".into()),
        ];
        all.extend(env.iter().cloned());
        let server = start_admin(&data, &all);
        install_and_enable(&server, &webhook, WEBHOOK).await;
        install_and_enable(&server, &guard, GUARD).await;
        let store = data.store().await;
        let integration = create_plugin_integration(
            &store,
            WEBHOOK,
            "signed-webhook",
            json!({"secret": SIGNING, "callbackUrl": callback.url("/hook")}),
            &["secret"],
        )
        .await;
        RedactionRun {
            data,
            server,
            callback,
            _model: model,
            integration,
        }
    }

    /// Waits until the server runs the guard with the settings of `revision`.
    pub async fn in_effect(&self, revision: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = settings(&self.server).await;
            if now["revision"] == revision && now["inEffect"] == true {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not take revision {revision}: {now}\n{}",
                self.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Delivers a signed message and waits for what the callback receives.
    pub async fn delivered(&self, delivery: &str) -> String {
        let before = self.callback.received().len();
        let body = json!({"text": "what is the key?", "id": delivery}).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let answer = client()
            .post(self.server.url(&format!(
                "/api/webhooks/plugins/signed-webhook/{}",
                self.integration
            )))
            .header("content-type", "application/json")
            .header("x-signature-256", signature)
            .body(body)
            .send()
            .await
            .expect("webhook");
        assert_eq!(answer.status().as_u16(), 200);
        let got = eventually(20, || self.callback.received().into_iter().nth(before))
            .await
            .unwrap_or_else(|| panic!("nothing delivered; log:\n{}", self.server.log()));
        body_json(&got).to_string()
    }
}
