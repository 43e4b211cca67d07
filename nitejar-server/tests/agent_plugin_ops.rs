//! Agent-managed plugin operations against a real server: a model asks for `plugins_disable`
//! through the echo channel. Without a grant the tool is not offered and the call is refused with a
//! receipt naming the agent and its job; with one, the plugin is disabled at once, receipted in the
//! agent's name; grants are set through the API and the CLI, spelled exactly or refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::probe::*;
use support::*;

/// A model that asks for `plugins_disable` of the probe, then answers with what the tool said.
/// Keeps the tools each request offered.
fn disabling_model(offered: Arc<Mutex<Vec<Vec<String>>>>) -> LocalHttp {
    LocalHttp::start(move |r| {
        let body = body_json(r);
        let tools: Vec<String> = body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
            .collect();
        offered.lock().expect("lock").push(tools);
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        let asked = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        if last["role"] == "tool" {
            let told = last["content"].as_str().unwrap_or_default().to_string();
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": format!("Tool said: {told}")}}]}),
            )
        } else if asked.contains("enable") {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function", "function": {
                    "name": "plugins_enable",
                    "arguments": json!({"pluginId": PROBE, "reason": "the user asked for it"}).to_string()}}]}}]}),
            )
        } else {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function", "function": {
                    "name": "plugins_disable",
                    "arguments": json!({"pluginId": PROBE}).to_string()}},
                  {"id": "c2", "type": "function", "function": {
                    "name": "plugins_disable",
                    "arguments": json!({"pluginId": "../../nobody"}).to_string()}}]}}]}),
            )
        }
    })
}

/// A new integration of the echo channel (the test channel agents answer on); its id.
async fn echo_integration(server: &Server) -> String {
    let created = api(
        server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "echo", "name": "ops"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Sends one message through the echo channel; its work item id.
async fn send(server: &Server, integration: &str, n: u32) -> String {
    send_text(server, integration, n, &format!("message {n}")).await
}

/// Sends `text` as delivery `n` through the echo channel; its work item id.
async fn send_text(server: &Server, integration: &str, n: u32, text: &str) -> String {
    let answer = reqwest::Client::new()
        .post(server.url(&format!("/api/webhooks/plugins/echo/{integration}")))
        .header("content-type", "application/json")
        .body(json!({"text": text, "id": format!("d{n}")}).to_string())
        .send()
        .await
        .expect("request");
    let answer: Value =
        serde_json::from_str(&answer.text().await.unwrap_or_default()).expect("json answer");
    assert_eq!(answer["code"], "accepted", "{answer}");
    answer["workItemId"].as_str().expect("work item").to_owned()
}

/// The run of a work item, once its job has finished.
async fn finished_job(server: &Server, work_item: &str) -> Value {
    for _ in 0..200 {
        let runs = api(server, Method::GET, "/api/admin/runs", None)
            .await
            .json();
        let found = runs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == work_item && r["jobs"][0]["status"] == "COMPLETED")
            .cloned();
        if let Some(run) = found {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no finished run for {work_item}; log:\n{}", server.log())
}

/// The agents' requests still pending, newest first.
async fn pending_requests(server: &Server) -> Value {
    let page = api(
        server,
        Method::GET,
        "/api/admin/plugin-requests?status=pending",
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.json()
}

/// The receipts filed under `plugin`, newest first.
async fn receipts_of_plugin(server: &Server, plugin: &str) -> Vec<Value> {
    let page = api(
        server,
        Method::GET,
        &format!("/api/admin/receipts?plugin={plugin}"),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.json()["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_disables_a_plugin_only_with_its_grant() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let offered = Arc::new(Mutex::new(Vec::new()));
    let model = disabling_model(offered.clone());
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into()),
            ("NITEJAR_MODEL_BASE_URL", model.url("/v1")),
            ("NITEJAR_MODEL", "test".into()),
        ],
    );
    install_probe(&server, packages.path(), "127.0.0.1").await;
    let store = data.store().await;
    let agent = store.list_agents().await.expect("agents")[0].id.clone();
    let integration = echo_integration(&server).await;
    let grants_path = format!("/api/admin/agents/{agent}/plugin-grants");

    // No grant: the tool is not offered, and the model's call is refused with a receipt.
    let none = api(&server, Method::GET, &grants_path, None).await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(none.json()["granted"], json!([]));
    let work_item = send(&server, &integration, 1).await;
    let run = finished_job(&server, &work_item).await;
    assert!(
        !offered.lock().expect("lock")[0].contains(&"plugins_disable".to_string()),
        "{offered:?}"
    );
    assert_eq!(probe_view(&server).await["enabled"], true);
    let refused = receipts_within(&server, "disable", 1).await;
    assert_eq!(refused[0]["status"], "denied", "{refused:?}");
    let detail = &refused[0]["detail"];
    assert_eq!(detail["actor"]["agentId"], agent.as_str(), "{detail}");
    assert_eq!(detail["actor"]["jobId"], run["jobs"][0]["id"], "{detail}");
    assert_eq!(
        detail["actor"]["workItemId"],
        work_item.as_str(),
        "{detail}"
    );
    assert!(
        detail["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("holds no `plugins.disable` grant"),
        "{detail}"
    );

    // A refusal naming no installed plugin is filed under `nitejar.agents`, not under that name.
    let filed = receipts_of_plugin(&server, "nitejar.agents").await;
    assert!(
        filed.iter().any(|r| r["kind"] == "disable"
            && r["status"] == "denied"
            && r["detail"]["pluginId"] == "../../nobody"
            && r["detail"]["actor"]["agentId"] == agent.as_str()),
        "{filed:?}"
    );
    assert!(receipts_of_plugin(&server, "../../nobody").await.is_empty());

    // Odd spellings are no grant, and what this version cannot grant is refused; nothing changes.
    for (body, status, code) in [
        (
            json!({"capabilities": ["Plugins.Disable"]}),
            422,
            "invalid_capability",
        ),
        (
            json!({"capabilities": ["plugins.disable "]}),
            422,
            "invalid_capability",
        ),
        (
            json!({"capabilities": ["plugins_disable"]}),
            422,
            "invalid_capability",
        ),
        (
            json!({"capabilities": ["plugins.disable", "plugins.edit_source"]}),
            409,
            "grant_refused",
        ),
        (
            json!({"capabilities": "plugins.disable"}),
            400,
            "invalid_json",
        ),
    ] {
        let answer = api(&server, Method::PUT, &grants_path, Some(&body)).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(
            answer.json()["error"]["code"],
            code,
            "{body}: {}",
            answer.text
        );
    }
    let unknown = api(
        &server,
        Method::PUT,
        "/api/admin/agents/nobody/plugin-grants",
        Some(&json!({"capabilities": ["plugins.disable"]})),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let (ok, text) = cli(
        &data,
        &[
            "agent",
            "grants",
            &agent,
            "--set",
            "plugins.disable,plugins.enablE",
        ],
    );
    assert!(
        !ok && text.contains("`plugins.enablE` is not a capability"),
        "{text}"
    );
    assert_eq!(
        api(&server, Method::GET, &grants_path, None).await.json()["granted"],
        json!([]),
        "nothing changed"
    );

    // Granted from the CLI: offered in the next run, and the plugin is disabled at once.
    let (ok, text) = cli(
        &data,
        &["agent", "grants", &agent, "--set", "plugins.disable"],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("plugins.disable        plugins_disable        granted"),
        "{text}"
    );
    let work_item = send(&server, &integration, 2).await;
    let run = finished_job(&server, &work_item).await;
    assert!(
        offered.lock().expect("lock")[2].contains(&"plugins_disable".to_string()),
        "{offered:?}"
    );
    let view = probe_view(&server).await;
    assert_eq!(view["enabled"], false, "{view}");
    let disabled = receipts(&server, "disable").await;
    let done = disabled
        .iter()
        .find(|r| r["status"] == "ok")
        .unwrap_or_else(|| panic!("{disabled:?}"));
    assert_eq!(done["detail"]["actor"]["agentId"], agent.as_str());
    assert_eq!(done["detail"]["actor"]["jobId"], run["jobs"][0]["id"]);
    assert!(
        receipts_of_plugin(&server, "../../nobody").await.is_empty(),
        "a call naming no installed plugin leaves no receipt under that name"
    );
    let grants = receipts_of_plugin(&server, "nitejar.agents").await;
    assert!(
        grants.iter().any(|r| r["kind"] == "agent_grant"
            && r["status"] == "ok"
            && r["detail"]["granted"] == json!(["plugins.disable"])),
        "{grants:?}"
    );
    assert!(
        grants
            .iter()
            .any(|r| r["kind"] == "agent_grant" && r["status"] == "denied"),
        "refusals are receipted too: {grants:?}"
    );

    // The admin page shows the grants and changes them (CSRF-checked like every form).
    let session = Session::sign_in(&server).await;
    let page = session.get(&server, "/admin/agents").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains(&agent), "{}", page.text);
    assert!(
        page.text.contains(
            r#"name="capability" value="plugins.disable" aria-label="plugins.disable" checked"#
        ),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("Not available: this server does not let agents edit plugin source"),
        "{}",
        page.text
    );
    let form_path = format!("/admin/agents/{agent}/plugin-grants");
    let saved = session
        .post_form(
            &server,
            &form_path,
            &[
                ("capability", "plugins.uninstall"),
                ("capability", "plugins.install"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    assert_eq!(
        api(&server, Method::GET, &grants_path, None).await.json()["granted"],
        json!(["plugins.install", "plugins.uninstall"])
    );
    let refused = session
        .post_form(
            &server,
            &form_path,
            &[("capability", "plugins.edit_source")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(
        refused.text.contains("Nothing was changed"),
        "{}",
        refused.text
    );
    let forged = session
        .post_raw(
            &server,
            &form_path,
            "capability=plugins.disable",
            Some("http://evil.example"),
        )
        .await;
    assert_ne!(forged.status, 303, "{}", forged.text);
    assert_eq!(
        api(&server, Method::GET, &grants_path, None).await.json()["granted"],
        json!(["plugins.install", "plugins.uninstall"]),
        "nothing changed"
    );

    // An agent's enable is a request: pending until the operator approves it with their consent.
    let set = api(
        &server,
        Method::PUT,
        &grants_path,
        Some(&json!({"capabilities": ["plugins.enable"]})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let work_item = send_text(&server, &integration, 3, "enable the probe").await;
    let run = finished_job(&server, &work_item).await;
    assert_eq!(
        probe_view(&server).await["enabled"],
        false,
        "not enabled by the agent"
    );
    let pending = pending_requests(&server).await;
    let request = pending["items"][0].clone();
    assert_eq!(request["pluginId"], PROBE, "{pending}");
    assert_eq!(request["agentId"], agent.as_str());
    assert_eq!(request["jobId"], run["jobs"][0]["id"]);
    assert_eq!(request["reason"], "the user asked for it");
    let request_id = request["id"].as_str().expect("id").to_owned();
    let asked = receipts(&server, "enable").await;
    assert!(
        asked.iter().any(|r| r["status"] == "pending"
            && r["detail"]["requestId"] == request_id.as_str()
            && r["detail"]["actor"]["agentId"] == agent.as_str()),
        "{asked:?}"
    );
    let approve = format!("/api/admin/plugin-requests/{request_id}/approve");
    let without = api(&server, Method::POST, &approve, None).await;
    assert_eq!(
        without.status, 428,
        "consent is the operator's: {}",
        without.text
    );
    assert_eq!(probe_view(&server).await["enabled"], false);
    let approved = api(
        &server,
        Method::POST,
        &approve,
        Some(&json!({"acceptConsent": true, "acknowledgeAll": true})),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(approved.json()["request"]["status"], "approved");
    assert_eq!(probe_view(&server).await["enabled"], true);
    let enabled = receipts(&server, "enable").await;
    let done = enabled
        .iter()
        .find(|r| r["status"] == "ok" && r["detail"]["actor"]["requestId"] == request_id.as_str())
        .unwrap_or_else(|| panic!("{enabled:?}"));
    assert_eq!(done["detail"]["actor"]["agentId"], agent.as_str());
    assert!(done["detail"]["actor"]["decidedBy"]
        .as_str()
        .unwrap_or_default()
        .starts_with("admin API"));
    let again = api(
        &server,
        Method::POST,
        &approve,
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.json()["error"]["code"], "request_decided");

    // Rejected: the plugin stays as it was, and the agent's request is receipted as denied.
    assert_eq!(post_disable(&server).await, 200);
    let work_item = send_text(&server, &integration, 4, "enable it again").await;
    finished_job(&server, &work_item).await;
    let pending = pending_requests(&server).await;
    let second = pending["items"][0]["id"]
        .as_str()
        .expect("a request")
        .to_owned();
    let (ok, text) = cli(&data, &["agent", "requests", "--status", "pending"]);
    assert!(
        ok && text.contains(&second) && text.contains("the user asked for it"),
        "{text}"
    );
    let (ok, text) = cli(&data, &["agent", "approve", &second]);
    assert!(
        !ok && text.contains("needs your explicit consent"),
        "{text}"
    );
    let (ok, text) = cli(&data, &["agent", "reject", &second]);
    assert!(ok, "{text}");
    let rejected = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugin-requests/{second}/reject"),
        None,
    )
    .await;
    assert_eq!(rejected.status, 409, "rejected already: {}", rejected.text);
    let listed = api(
        &server,
        Method::GET,
        "/api/admin/plugin-requests?status=rejected",
        None,
    )
    .await
    .json();
    assert_eq!(listed["items"][0]["id"], second.as_str(), "{listed}");
    assert!(listed["items"][0]["decidedBy"]
        .as_str()
        .unwrap_or_default()
        .starts_with("CLI"));
    assert_eq!(probe_view(&server).await["enabled"], false);
    let denied = receipts(&server, "enable").await;
    assert!(
        denied.iter().any(
            |r| r["status"] == "denied" && r["detail"]["actor"]["requestId"] == second.as_str()
        ),
        "{denied:?}"
    );
    // From the admin: the Agents page lists a pending request; its review page is the plugin's
    // review page, whose consent form approves it.
    let work_item = send_text(&server, &integration, 5, "enable it, please").await;
    finished_job(&server, &work_item).await;
    let pending = pending_requests(&server).await;
    let third = pending["items"][0]["id"]
        .as_str()
        .expect("a request")
        .to_owned();
    let listed = session.get(&server, "/admin/agents").await;
    let review_link = format!("/admin/plugins/{PROBE}/review?request={third}");
    assert!(listed.text.contains(&review_link), "{}", listed.text);
    let review = session.get(&server, &review_link).await;
    assert_eq!(review.status, 200, "{}", review.text);
    assert!(
        review.text.contains("asked to enable this plugin"),
        "{}",
        review.text
    );
    assert!(
        review.text.contains("An agent cannot consent"),
        "{}",
        review.text
    );
    let approve_path = format!("/admin/plugins/{PROBE}/requests/{third}/approve");
    assert!(review.text.contains(&approve_path), "{}", review.text);
    let unticked = session.post_form(&server, &approve_path, &[]).await;
    assert_eq!(unticked.status, 428, "{}", unticked.text);
    assert!(
        unticked.text.contains("I have read this and consent"),
        "{}",
        unticked.text
    );
    assert_eq!(probe_view(&server).await["enabled"], false);
    let approved = session
        .post_form(&server, &approve_path, &[("accept_consent", "yes")])
        .await;
    assert_eq!(approved.status, 303, "{}", approved.text);
    assert_eq!(probe_view(&server).await["enabled"], true);
    let decided = session.get(&server, &review_link).await;
    assert_eq!(decided.status, 409, "{}", decided.text);
    assert!(
        decided.text.contains("approved already"),
        "{}",
        decided.text
    );
    let bad = api(
        &server,
        Method::GET,
        "/api/admin/plugin-requests?status=maybe",
        None,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let unknown = api(
        &server,
        Method::POST,
        "/api/admin/plugin-requests/nope/reject",
        None,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

async fn post_disable(server: &Server) -> u16 {
    api(
        server,
        Method::POST,
        &format!("/api/admin/plugins/{PROBE}/disable"),
        None,
    )
    .await
    .status
}

/// A model that installs the probe from npm, then asks to enable it, then says it is done.
fn installing_model(npm_name: &'static str) -> LocalHttp {
    LocalHttp::start(move |r| {
        let body = body_json(r);
        let told: Vec<String> = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == "tool")
            .filter_map(|m| m["content"].as_str().map(str::to_owned))
            .collect();
        let call = |name: &str, arguments: Value| {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": format!("c{}", told.len()), "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()}}]}}]}),
            )
        };
        match told.len() {
            0 => call(
                "plugins_install",
                json!({"npm": format!("{npm_name}@1.0.0")}),
            ),
            1 => call(
                "plugins_enable",
                json!({"pluginId": PROBE, "reason": "to probe things"}),
            ),
            _ => json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant",
                    "content": format!("Done: {}", told.join(" | "))}}]}),
            ),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_installs_and_asks_and_the_operator_approves() {
    const NPM_NAME: &str = "nitejar-probe";
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let registry = support::npm::Registry::start();
    let dir = support::packages::package_dir(
        packages.path(),
        "probe",
        "tests/fixtures/plugins/probe",
        "probe",
        |_| {},
    );
    registry.serve(NPM_NAME, "1.0.0", support::packages::tgz(&dir));
    let model = installing_model(NPM_NAME);
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into()),
            ("NITEJAR_MODEL_BASE_URL", model.url("/v1")),
            ("NITEJAR_MODEL", "test".into()),
            ("NITEJAR_NPM_REGISTRY", registry.http.url("/")),
            ("NITEJAR_NPM_TOKEN", "t0ken".into()),
            ("NITEJAR_AGENT_PLUGIN_OPS_PER_HOUR", "2".into()),
        ],
    );
    let store = data.store().await;
    let agent = store.list_agents().await.expect("agents")[0].id.clone();
    let granted = api(
        &server,
        Method::PUT,
        &format!("/api/admin/agents/{agent}/plugin-grants"),
        Some(&json!({"capabilities": ["plugins.install", "plugins.enable"]})),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    let integration = echo_integration(&server).await;

    // The agent installs (disabled) and asks; nothing runs until the operator approves.
    let work_item = send_text(&server, &integration, 1, "get me the probe").await;
    let run = finished_job(&server, &work_item).await;
    let view = probe_view(&server).await;
    assert_eq!(view["enabled"], false, "{view}");
    let installs = receipts(&server, "install").await;
    let install = installs
        .iter()
        .find(|r| r["status"] == "ok")
        .unwrap_or_else(|| panic!("{installs:?}\n{}", server.log()));
    assert_eq!(install["detail"]["actor"]["agentId"], agent.as_str());
    assert_eq!(install["detail"]["actor"]["jobId"], run["jobs"][0]["id"]);
    let pending = pending_requests(&server).await;
    let request = pending["items"][0]["id"]
        .as_str()
        .expect("a request")
        .to_owned();
    assert_eq!(pending["items"][0]["reason"], "to probe things");

    // The operator approves with their own consent: the plugin is live.
    let approved = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugin-requests/{request}/approve"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let view = probe_view(&server).await;
    assert_eq!(view["enabled"], true, "{view}");
    assert_eq!(view["state"], "active", "live: {view}");

    // Its limit (2 an hour here) is spent: the next run's calls are refused, with receipts.
    let work_item = send_text(&server, &integration, 2, "get me the probe again").await;
    finished_job(&server, &work_item).await;
    let filed = receipts_of_plugin(&server, "nitejar.agents").await;
    assert!(
        filed.iter().any(|r| r["kind"] == "install"
            && r["status"] == "denied"
            && r["detail"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("2 plugin operations within the last hour")),
        "{filed:?}"
    );
}

/// A model that makes one tool call chosen by the user's message (`script`), then answers with
/// what the tool said. Keeps what each tool said.
fn scripted_model(
    script: fn(&str) -> (&'static str, Value),
) -> (LocalHttp, Arc<Mutex<Vec<String>>>) {
    let said = Arc::new(Mutex::new(Vec::new()));
    let heard = said.clone();
    let http = LocalHttp::start(move |r| {
        let body = body_json(r);
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let asked = messages
            .iter()
            .rfind(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        match messages.last() {
            Some(last) if last["role"] == "tool" => {
                let text = last["content"].as_str().unwrap_or_default().to_owned();
                heard.lock().expect("lock").push(text.clone());
                json_reply(
                    200,
                    &json!({"choices": [{"message": {"role": "assistant",
                        "content": format!("Tool said: {text}")}}]}),
                )
            }
            _ => {
                let (name, arguments) = script(&asked);
                json_reply(
                    200,
                    &json!({"choices": [{"message": {"role": "assistant", "content": null,
                    "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": name, "arguments": arguments.to_string()}}]}}]}),
                )
            }
        }
    });
    (http, said)
}

/// What the tool said in the run of `work_item`, once it finished.
async fn told(server: &Server, said: &Mutex<Vec<String>>, work_item: &str) -> String {
    finished_job(server, work_item).await;
    said.lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default()
}

const GREETER: &str = "dev.nitejar.fixtures.greeter";
const GREETER_NPM: &str = "nitejar-greeter";

/// The greeter fixture at `version` (1.0.0 or 2.0.0) declaring `network`, as npm's tarball.
fn greeter_tgz(packages: &std::path::Path, version: &str, network: &[&str]) -> Vec<u8> {
    let (crate_dir, lib) = match version {
        "1.0.0" => ("tests/fixtures/plugins/greeter-v1", "greeter_v1"),
        _ => ("tests/fixtures/plugins/greeter-v2", "greeter_v2"),
    };
    let network: Vec<String> = network.iter().map(|h| h.to_string()).collect();
    let dir = support::packages::package_dir(
        packages,
        &format!("greeter-{version}-{}", network.len()),
        crate_dir,
        lib,
        move |m| {
            if !network.is_empty() {
                m["permissions"] = json!({ "network": network });
            }
        },
    );
    support::packages::tgz(&dir)
}

/// The greeter's receipts of `kind`, newest first.
async fn greeter_receipts(server: &Server, kind: &str) -> Vec<Value> {
    receipts_of_plugin(server, GREETER)
        .await
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .collect()
}

async fn greeter_view(server: &Server) -> Value {
    let view = api(
        server,
        Method::GET,
        &format!("/api/admin/plugins/{GREETER}"),
        None,
    )
    .await;
    assert_eq!(view.status, 200, "{}", view.text);
    view.json()
}

/// A server whose operator installed the greeter 1.0.0 from `registry` and enabled it, and whose
/// agent holds `plugins.upgrade`; the server, the agent and an echo integration.
async fn greeter_server(
    data: &DataDir,
    packages: &std::path::Path,
    registry: &support::npm::Registry,
    model: &LocalHttp,
) -> (Server, String, String) {
    registry.serve(GREETER_NPM, "1.0.0", greeter_tgz(packages, "1.0.0", &[]));
    let server = start_admin(
        data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into()),
            ("NITEJAR_MODEL_BASE_URL", model.url("/v1")),
            ("NITEJAR_MODEL", "test".into()),
            ("NITEJAR_NPM_REGISTRY", registry.http.url("/")),
            ("NITEJAR_NPM_TOKEN", "t0ken".into()),
        ],
    );
    let installed = api(
        &server,
        Method::POST,
        "/api/admin/plugins/install/npm",
        Some(&json!({"spec": format!("{GREETER_NPM}@1.0.0")})),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let enabled = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/enable"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let agent = data.store().await.list_agents().await.expect("agents")[0]
        .id
        .clone();
    let granted = api(
        &server,
        Method::PUT,
        &format!("/api/admin/agents/{agent}/plugin-grants"),
        Some(&json!({"capabilities": ["plugins.upgrade"]})),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    let integration = echo_integration(&server).await;
    (server, agent, integration)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_upgrade_that_adds_nothing_is_done_at_once() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let registry = support::npm::Registry::start();
    let (model, said) = scripted_model(|asked| {
        if asked.contains("file") {
            (
                "plugins_upgrade",
                json!({"pluginId": GREETER, "git": "file:///srv/greeter.git"}),
            )
        } else if asked.contains("uninstall") {
            ("plugins_uninstall", json!({"pluginId": GREETER}))
        } else {
            (
                "plugins_upgrade",
                json!({"pluginId": GREETER, "npm": "nitejar-greeter@2.0.0"}),
            )
        }
    });
    let (server, agent, integration) =
        greeter_server(&data, packages.path(), &registry, &model).await;

    // A path on the server is not the agent's to name.
    let work_item = send_text(&server, &integration, 1, "upgrade from file").await;
    let answer = told(&server, &said, &work_item).await;
    assert!(answer.contains("https:// repository only"), "{answer}");

    // A version that adds nothing to the consent: upgraded at once, in the agent's name.
    registry.serve(
        GREETER_NPM,
        "2.0.0",
        greeter_tgz(packages.path(), "2.0.0", &[]),
    );
    let work_item = send_text(&server, &integration, 2, "upgrade to 2.0.0").await;
    let answer = told(&server, &said, &work_item).await;
    assert!(answer.contains("upgraded from 1.0.0 to 2.0.0"), "{answer}");
    let view = greeter_view(&server).await;
    assert_eq!(view["version"], "2.0.0", "{view}");
    assert_eq!(view["state"], "active", "{view}");
    let upgrades = greeter_receipts(&server, "upgrade").await;
    let done = upgrades
        .iter()
        .find(|r| r["status"] == "ok")
        .unwrap_or_else(|| panic!("{upgrades:?}"));
    assert_eq!(done["detail"]["actor"]["agentId"], agent.as_str(), "{done}");
    assert!(pending_requests(&server).await["items"]
        .as_array()
        .is_some_and(Vec::is_empty));

    // Uninstall, once granted: at once, in the agent's name.
    let granted = api(
        &server,
        Method::PUT,
        &format!("/api/admin/agents/{agent}/plugin-grants"),
        Some(&json!({"capabilities": ["plugins.upgrade", "plugins.uninstall"]})),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    let work_item = send_text(&server, &integration, 3, "uninstall it").await;
    let answer = told(&server, &said, &work_item).await;
    assert!(answer.contains("is uninstalled"), "{answer}");
    let view = greeter_view(&server).await;
    assert_eq!(view["state"], "uninstalled", "{view}");
    assert!(view["version"].is_null(), "{view}");
    let current = data.path.join("plugins").join(GREETER).join("current");
    assert!(
        std::fs::symlink_metadata(&current).is_err(),
        "no current version: {}",
        current.display()
    );
    let uninstalls = greeter_receipts(&server, "uninstall").await;
    assert!(
        uninstalls
            .iter()
            .any(|r| r["status"] == "ok" && r["detail"]["actor"]["agentId"] == agent.as_str()),
        "{uninstalls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_upgrade_waits_for_review_when_it_adds_anything() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let registry = support::npm::Registry::start();
    let (model, said) = scripted_model(|_| {
        (
            "plugins_upgrade",
            json!({"pluginId": GREETER, "reason": "it talks to the new API"}),
        )
    });
    let (server, agent, integration) =
        greeter_server(&data, packages.path(), &registry, &model).await;

    // A version that adds a host: a request, pinned to the package read; 1.0.0 keeps running.
    let reviewed = greeter_tgz(packages.path(), "2.0.0", &["api.example.com"]);
    registry.serve(GREETER_NPM, "2.0.0", reviewed.clone());
    let work_item = send_text(&server, &integration, 1, "upgrade it").await;
    let answer = told(&server, &said, &work_item).await;
    assert!(answer.contains("pending"), "{answer}");
    assert_eq!(greeter_view(&server).await["version"], "1.0.0");
    let pending = pending_requests(&server).await;
    let request = &pending["items"][0];
    assert_eq!(request["action"], "upgrade", "{request}");
    assert_eq!(request["detail"]["from"], "1.0.0", "{request}");
    assert_eq!(request["detail"]["to"], "2.0.0", "{request}");
    assert_eq!(
        request["detail"]["source"], "nitejar-greeter@2.0.0",
        "{request}"
    );
    assert!(
        request["detail"]["consentDiff"]["added"]
            .to_string()
            .contains("api.example.com"),
        "{request}"
    );
    let rid = request["id"].as_str().expect("id").to_owned();
    let asked = greeter_receipts(&server, "upgrade").await;
    assert!(
        asked.iter().any(|r| r["status"] == "pending"
            && r["detail"]["requestId"] == rid.as_str()
            && r["detail"]["actor"]["agentId"] == agent.as_str()),
        "{asked:?}"
    );

    // The CLI lists it with its versions.
    let (ok, text) = cli(&data, &["agent", "requests", "--status", "pending"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("upgrade {GREETER} 1.0.0 → 2.0.0")),
        "{text}"
    );

    // The review page shows what it adds and approves that request.
    let session = Session::sign_in(&server).await;
    let review_link = format!("/admin/plugins/{GREETER}/review?request={rid}");
    let listed = session.get(&server, "/admin/agents").await;
    assert!(listed.text.contains(&review_link), "{}", listed.text);
    let review = session.get(&server, &review_link).await;
    assert_eq!(review.status, 200, "{}", review.text);
    assert!(
        review.text.contains("asked to upgrade this plugin"),
        "{}",
        review.text
    );
    assert!(review.text.contains("api.example.com"), "{}", review.text);
    assert!(
        review.text.contains("1.0.0</code> → <code>2.0.0"),
        "{}",
        review.text
    );
    let approve_path = format!("/admin/plugins/{GREETER}/requests/{rid}/approve");
    assert!(review.text.contains(&approve_path), "{}", review.text);

    // The same version published again with other contents is not what was reviewed.
    registry.serve(
        GREETER_NPM,
        "2.0.0",
        greeter_tgz(
            packages.path(),
            "2.0.0",
            &["api.example.com", "evil.example"],
        ),
    );
    let swapped = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugin-requests/{rid}/approve"),
        Some(&json!({"acceptConsent": true, "acknowledgeAll": true})),
    )
    .await;
    assert_eq!(swapped.status, 409, "{}", swapped.text);
    assert_eq!(
        swapped.json()["error"]["code"],
        "not_what_was_reviewed",
        "{}",
        swapped.text
    );
    assert_eq!(greeter_view(&server).await["version"], "1.0.0");
    assert_eq!(
        pending_requests(&server).await["items"][0]["id"],
        rid.as_str()
    );

    let refused = session
        .post_form(
            &server,
            &approve_path,
            &[("accept_consent", "yes"), ("ack_new", "yes")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(
        refused.text.contains("not the one that was reviewed"),
        "{}",
        refused.text
    );

    // The reviewed package again: without consent nothing moves; with it, 2.0.0 is live.
    registry.serve(GREETER_NPM, "2.0.0", reviewed);
    let unticked = session.post_form(&server, &approve_path, &[]).await;
    assert_eq!(unticked.status, 428, "{}", unticked.text);
    assert!(unticked.text.contains("Not approved."), "{}", unticked.text);
    assert_eq!(greeter_view(&server).await["version"], "1.0.0");
    let approved = session
        .post_form(
            &server,
            &approve_path,
            &[("accept_consent", "yes"), ("ack_new", "yes")],
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.text);
    let view = greeter_view(&server).await;
    assert_eq!(view["version"], "2.0.0", "{view}");
    assert_eq!(view["state"], "active", "{view}");
    let upgrades = greeter_receipts(&server, "upgrade").await;
    let approved = upgrades
        .iter()
        .find(|r| r["status"] == "ok" && r["detail"]["to"] == "2.0.0")
        .unwrap_or_else(|| panic!("{upgrades:?}"));
    let actor = &approved["detail"]["actor"];
    assert_eq!(actor["agentId"], agent.as_str(), "{approved}");
    assert_eq!(actor["requestId"], rid.as_str(), "{approved}");
    assert!(actor["decidedBy"].is_string(), "{approved}");
    let again = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugin-requests/{rid}/approve"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.text);
}

/// Every file under `dir` with its contents, by relative path.
fn tree_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .expect("inside")
                    .display()
                    .to_string();
                out.push((name, std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_source_edit_is_off_by_default_and_otherwise_a_reviewed_new_version() {
    let data = DataDir::new();
    let packages = tempfile::tempdir().expect("tempdir");
    let (model, said) = scripted_model(|asked| {
        if asked.contains("built-in") {
            return (
                "plugins_edit_source",
                json!({"pluginId": "builtin.echo", "files": {"README.md": "x"}}),
            );
        }
        let files = if asked.contains("badly") {
            json!({"../outside.txt": "escaped"})
        } else if asked.contains("many") {
            Value::Object((0..21).map(|i| (format!("f{i}.txt"), json!("x"))).collect())
        } else if asked.contains("signature") {
            json!({"nitejar.plugin.sig": "forged"})
        } else {
            json!({"assets/notes.txt": "written by an agent", "README.md": "# Greeter, edited\n"})
        };
        (
            "plugins_edit_source",
            json!({"pluginId": GREETER, "files": files, "reason": "notes for the team"}),
        )
    });
    let env = |edit: &str| {
        vec![
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_string()),
            ("NITEJAR_MODEL_BASE_URL", model.url("/v1")),
            ("NITEJAR_MODEL", "test".into()),
            ("NITEJAR_AGENT_EDIT_SOURCE", edit.into()),
        ]
    };

    // Off unless the server allows it: the grant is refused, and says how to allow it.
    let server = start_admin(&data, &env("off"));
    let dir = support::packages::package_dir(
        packages.path(),
        "greeter",
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v1",
        |_| {},
    );
    let installed = api(
        &server,
        Method::POST,
        "/api/admin/plugins/install/local",
        Some(&json!({"path": dir.to_string_lossy()})),
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let enabled = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugins/{GREETER}/enable"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let agent = data.store().await.list_agents().await.expect("agents")[0]
        .id
        .clone();
    let grants_path = format!("/api/admin/agents/{agent}/plugin-grants");
    let refused = api(
        &server,
        Method::PUT,
        &grants_path,
        Some(&json!({"capabilities": ["plugins.edit_source"]})),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(
        refused.text.contains("NITEJAR_AGENT_EDIT_SOURCE"),
        "{}",
        refused.text
    );
    let shown = api(&server, Method::GET, &grants_path, None).await.json();
    let edit = shown["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["capability"] == "plugins.edit_source")
        .cloned()
        .expect("listed");
    assert_eq!(edit["available"], false, "{shown}");
    server.stop();

    // Allowed by the server: granted, and an edit is a new version waiting for review.
    let server = start_admin(&data, &env("on"));
    let granted = api(
        &server,
        Method::PUT,
        &grants_path,
        Some(&json!({"capabilities": ["plugins.edit_source"]})),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    let integration = echo_integration(&server).await;
    let versions = data.path.join("plugins").join(GREETER).join("versions");
    let before = tree_of(&versions);

    for (n, (asked, refusal)) in [
        ("edit it badly", "not a path inside the package"),
        ("edit too many", "from 1 to 20 files"),
        ("edit the signature", "the author's signature"),
        ("edit the built-in", "built into the server"),
    ]
    .into_iter()
    .enumerate()
    {
        let work_item = send_text(&server, &integration, 10 + n as u32, asked).await;
        let answer = told(&server, &said, &work_item).await;
        assert!(answer.contains(refusal), "{asked}: {answer}");
    }
    assert!(pending_requests(&server).await["items"]
        .as_array()
        .is_some_and(Vec::is_empty));
    let work_item = send_text(&server, &integration, 2, "edit it").await;
    let answer = told(&server, &said, &work_item).await;
    assert!(
        answer.contains("waits for the operator's review"),
        "{answer}"
    );
    assert_eq!(tree_of(&versions), before, "nothing installed changed");
    assert_eq!(greeter_view(&server).await["version"], "1.0.0");
    let pending = pending_requests(&server).await;
    let request = &pending["items"][0];
    assert_eq!(request["action"], "edit_source", "{request}");
    assert_eq!(request["detail"]["to"], "1.0.0+edit.1", "{request}");
    assert_eq!(
        request["detail"]["files"],
        json!(["README.md", "assets/notes.txt"]),
        "{request}"
    );
    let rid = request["id"].as_str().expect("id").to_owned();
    let session = Session::sign_in(&server).await;
    let review = session
        .get(
            &server,
            &format!("/admin/plugins/{GREETER}/review?request={rid}"),
        )
        .await;
    assert_eq!(review.status, 200, "{}", review.text);
    assert!(
        review.text.contains("install its edit of this plugin"),
        "{}",
        review.text
    );
    assert!(review.text.contains("assets/notes.txt"), "{}", review.text);

    // Approved with the operator's consent: the edit runs on the same code, beside 1.0.0.
    let approved = api(
        &server,
        Method::POST,
        &format!("/api/admin/plugin-requests/{rid}/approve"),
        Some(&json!({"acceptConsent": true})),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let view = greeter_view(&server).await;
    assert_eq!(view["version"], "1.0.0+edit.1", "{view}");
    assert_eq!(view["state"], "active", "{view}");
    assert_eq!(
        std::fs::read_to_string(versions.join("1.0.0+edit.1/assets/notes.txt")).expect("edited"),
        "written by an agent"
    );
    assert_eq!(
        tree_of(&versions.join("1.0.0")),
        tree_of(&dir),
        "the edited version was never written in place"
    );
    let upgrades = greeter_receipts(&server, "upgrade").await;
    let done = upgrades
        .iter()
        .find(|r| r["status"] == "ok")
        .unwrap_or_else(|| panic!("{upgrades:?}"));
    assert_eq!(done["detail"]["actor"]["agentId"], agent.as_str(), "{done}");
    assert_eq!(done["detail"]["actor"]["requestId"], rid.as_str(), "{done}");
    server.stop();

    // Never under saas_locked, whatever the server allows.
    let locked_data = DataDir::new();
    let locked = start_admin(
        &locked_data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "saas_locked".to_string()),
            ("NITEJAR_AGENT_EDIT_SOURCE", "on".into()),
        ],
    );
    let agent = locked_data
        .store()
        .await
        .list_agents()
        .await
        .expect("agents")[0]
        .id
        .clone();
    let refused = api(
        &locked,
        Method::PUT,
        &format!("/api/admin/agents/{agent}/plugin-grants"),
        Some(&json!({"capabilities": ["plugins.edit_source"]})),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.text.contains("saas_locked"), "{}", refused.text);
}
