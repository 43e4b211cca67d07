//! No spelling of a path gets around the admin check. For every route of the table (as the API
//! document lists it), many spellings of its path — each character percent-encoded in upper and
//! lower case, case changes, doubled slashes, dot segments, `;x=1`, encoded slashes, a trailing `/`,
//! `%20`, `%00`, backslashes — are sent byte for byte with every method the route takes:
//!
//! - without credentials: no admin data in any answer, no 2xx, redirects only to sign-in, and
//!   nothing changed (plugins, integrations, skills, sessions, receipts: compared before and after);
//! - with the admin token: refused (400 `non_canonical_path`; 404/405 for what is another, unknown
//!   path; the route's own refusal of a parameter value such as `builtin.echo%20`) or exactly the
//!   canonical answer, and again nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::stream::{self, StreamExt as _};
use nitejar_core::store::{AssignmentFilter, EventFilter, PageRequest, Store};
use reqwest::Method;
use serde_json::json;
use support::admin::*;
use support::raw::{send, RawAnswer};
use support::*;

/// Text that only an admin answer holds (set up below, or part of every admin page and document).
const ADMIN_MARKERS: &[&str] = &[
    "zq-marker-integration",
    "zq-marker-skill",
    "zq-marker-secret",
    "aria-label=\"Main\"",
    "Sign out",
    "\"executionMode\"",
    "\"trustMode\"",
    "\"consentText\"",
    "\"openapi\"",
    "nitejar_receipts_total",
    "\"integrations\"",
    "\"skills\"",
];

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Every odd spelling of the canonical `path` this test tries, each marked with whether the server
/// must refuse it as not canonical (`true`), or it is itself a canonical spelling of another path
/// (`false`: a case change, `%2F` data in place of a separator, an escaped space or `?`).
fn spellings(path: &str) -> BTreeMap<String, bool> {
    let bytes = path.as_bytes();
    let mut out = BTreeMap::new();
    let mut add = |spelling: String, refused: bool| {
        out.entry(spelling).or_insert(refused);
    };
    // Each character percent-encoded, with upper- and lower-case hex digits; existing escapes in
    // lower case.
    for (i, &b) in bytes.iter().enumerate() {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if b == b'%' {
            let escape = &path[i..i + 3];
            let lower = escape.to_ascii_lowercase();
            add(format!("{head}{lower}{}", &path[i + 3..]), lower != escape);
            continue;
        }
        if i > 0 && bytes[i - 1] == b'%' || i > 1 && bytes[i - 2] == b'%' {
            continue;
        }
        if is_unreserved(b) || b == b'/' || b == b':' {
            // `%2F` and `%3A` are data (another path); an escaped unreserved character is refused.
            let data = matches!(b, b'/' | b':');
            add(format!("{head}%{b:02X}{tail}"), !data);
            let lower = format!("{head}%{b:02x}{tail}");
            let lower_differs = format!("%{b:02x}") != format!("%{b:02X}");
            add(lower, !data || lower_differs);
        }
    }
    // Case changes.
    add(path.to_ascii_uppercase(), false);
    add(
        path.split('/')
            .map(|s| {
                let mut c = s.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("/"),
        false,
    );
    // Per separator: doubled, a dot segment, a parent segment, parameters, %00, a line feed, a
    // backslash (refused); encoded, or an escaped space or backslash before it (another path).
    for (i, _) in path.match_indices('/') {
        let (head, tail) = (&path[..i], &path[i..]);
        for insert in [
            "/",
            "/.",
            "/x/..",
            "/%2E",
            "/%2e%2e/x",
            ";x=1",
            "%00",
            "%0A",
        ] {
            add(format!("{head}{insert}{tail}"), true);
        }
        add(format!("{head}%20{tail}"), false);
        add(format!("{head}\\{}", &tail[1..]), true);
        add(format!("{head}%5C{}", &tail[1..]), false);
        add(format!("{head}%2F{}", &tail[1..]), false);
        add(format!("{head}%2f{}", &tail[1..]), true);
    }
    // At the end.
    for suffix in [
        "/", "/.", "/..", ";x=1", ";", "%00", "%", "%2", "%zz", "/%2E%2E", "%2e",
    ] {
        add(format!("{path}{suffix}"), true);
    }
    for suffix in ["%20", "%3F", "%23"] {
        add(format!("{path}{suffix}"), false);
    }
    add(format!("/{path}"), true);
    out.remove(path);
    out
}

/// The concrete canonical path of a documented route.
fn concrete(template: &str, integration: &str) -> String {
    let plugin = template.contains("/plugins/{id}");
    let skill = template.contains("/skills/{id}");
    template
        .split('/')
        .map(|s| match s {
            "{id}" if plugin => "builtin.echo".to_owned(),
            "{id}" if skill => "admin%3Azq-probe".to_owned(),
            "{id}" | "{integration_id}" => integration.to_owned(),
            "{type}" => "echo".to_owned(),
            "{file}" => "admin.css".to_owned(),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything an anonymous or misrouted request could change: plugins, their versions and
/// acknowledgements, integrations, skills and assignments, and the receipts of admin actions.
async fn snapshot(store: &Arc<dyn Store>) -> String {
    let plugins = store.list_plugins().await.expect("plugins");
    let integrations = store.list_integrations(None).await.expect("integrations");
    let skills = store.list_skills(None).await.expect("skills");
    let assignments = store
        .list_skill_assignments(&AssignmentFilter::default())
        .await
        .expect("assignments");
    let mut out = format!("{plugins:?}\n{integrations:?}\n{skills:?}\n{assignments:?}\n");
    for p in &plugins {
        out.push_str(&format!(
            "{:?}\n{:?}\n",
            store.list_plugin_versions(&p.id).await,
            store.list_disclosure_acks(&p.id).await
        ));
    }
    for kind in [
        "install",
        "enable",
        "disable",
        "upgrade",
        "rollback",
        "uninstall",
        "skill",
    ] {
        let n = count_receipts(store, kind, None).await;
        out.push_str(&format!("{kind}={n}\n"));
    }
    out
}

async fn count_receipts(store: &Arc<dyn Store>, kind: &str, status: Option<&str>) -> u64 {
    let filter = EventFilter {
        kind: Some(kind.into()),
        status: status.map(str::to_owned),
        ..Default::default()
    };
    let page = store
        .list_events(&filter, PageRequest::first(500))
        .await
        .expect("receipts");
    page.items.len() as u64
}

/// Delivers a canonical webhook and waits until its receipt is written: every receipt of an
/// earlier request has been written by then (the receipt writer keeps their order).
async fn control_delivery(server: &Server, store: &Arc<dyn Store>, integration: &str, nth: u64) {
    let delivered = send(
        server.port,
        "POST",
        &format!("/api/webhooks/plugins/echo/{integration}"),
        &[("content-type", "application/json")],
        format!(r#"{{"text": "control {nth}"}}"#).as_bytes(),
    )
    .await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    let mut count = 0;
    for _ in 0..200 {
        // Accepted (ok) deliveries: a webhook to an unknown id (`…%20`) is refused with its own
        // receipt, and that is as it should be.
        count = count_receipts(store, "webhook_ingress", Some("ok")).await;
        if count >= nth {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        count, nth,
        "accepted deliveries: only the control deliveries"
    );
}

/// A body without what changes from one second to the next (an export's `exportedAt`).
fn stable(body: &str) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("exportedAt");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            strip(&mut v);
            v.to_string()
        }
        Err(_) => body.to_owned(),
    }
}

fn has_admin_data(answer: &RawAnswer) -> Option<&'static str> {
    ADMIN_MARKERS
        .iter()
        .find(|m| answer.body.contains(**m))
        .copied()
}

/// Sends every spelling of every operation, 16 at a time; returns (method, spelling, answer).
async fn send_all(
    port: u16,
    requests: &[(String, String, String)],
    headers: &[(&str, &str)],
) -> Vec<(String, String, String, RawAnswer)> {
    stream::iter(requests.iter().cloned())
        .map(|(method, target, template)| async move {
            let api = template.starts_with("/api") || template == "/metrics";
            let (content_type, body): (&str, &[u8]) = if api {
                ("application/json", b"{}")
            } else {
                ("application/x-www-form-urlencoded", b"confirm=yes")
            };
            let mut all = headers.to_vec();
            all.push(("content-type", content_type));
            let answer = send(port, &method, &target, &all, body).await;
            (method, target, template, answer)
        })
        .buffer_unordered(16)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_path_gets_around_the_admin_check() {
    let data = DataDir::new();
    // Open trust mode: an anonymous upload and enable would be code execution, the worst case.
    let server = start_admin(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".to_owned()),
            // This test sends thousands of credentials on purpose; the throttle has its own test.
            ("NITEJAR_ADMIN_AUTH_MAX_FAILURES", "1000000".to_owned()),
        ],
    );
    let created = api(
        &server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "echo", "name": "zq-marker-integration", "config": {"label": "zq-marker-secret"}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let integration = created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let skill = api(
        &server,
        Method::POST,
        "/api/admin/skills",
        Some(&json!({
            "slug": "zq-probe",
            "name": "zq-marker-skill",
            "description": "zq-marker-skill",
            "content": "---\nname: zq-marker-skill\n---\nzq-marker-skill\n"
        })),
    )
    .await;
    assert_eq!(skill.status, 201, "{}", skill.text);

    let doc = api(&server, Method::GET, "/api/openapi.json", None)
        .await
        .json();
    let mut operations: Vec<(String, String, String)> = Vec::new();
    let mut public = BTreeSet::new();
    let mut public_templates = BTreeSet::new();
    for (template, methods) in doc["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("methods") {
            let path = concrete(template, &integration);
            if op["security"].as_array().is_none_or(|s| s.is_empty()) {
                public.insert(path.clone());
                public_templates.insert(template.clone());
            }
            operations.push((method.to_uppercase(), path, template.clone()));
        }
    }
    // The public pages and the webhooks; everything else needs the admin credential.
    assert!(public.len() <= 8, "public: {public:?}");
    assert!(
        operations.len() >= 80,
        "the document lists {} operations",
        operations.len()
    );

    // The control: the canonical spellings behave as documented (so the spellings below reach a
    // server that would answer them).
    let runtime = send(
        server.port,
        "GET",
        "/api/admin/runtime",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(runtime.status, 200);
    assert!(has_admin_data(&runtime).is_some());
    let anonymous = send(server.port, "GET", "/api/admin/runtime", &[], b"").await;
    assert_eq!(anonymous.status, 401);

    let mut requests = Vec::new();
    let mut canonical_get: Vec<(String, String)> = Vec::new();
    let mut canonical_of = HashMap::new();
    let mut must_refuse = HashMap::new();
    for (method, path, template) in &operations {
        for (spelling, refused) in spellings(path) {
            canonical_of.insert(spelling.clone(), path.clone());
            must_refuse.insert(spelling.clone(), refused);
            requests.push((method.clone(), spelling, template.clone()));
        }
        if method == "GET" {
            canonical_get.push((path.clone(), template.clone()));
        }
    }
    eprintln!(
        "{} spellings of {} operations",
        requests.len(),
        operations.len()
    );

    let store = data.store().await;
    control_delivery(&server, &store, &integration, 1).await;
    let before = snapshot(&store).await;

    // Without credentials.
    for (method, target, template, answer) in send_all(server.port, &requests, &[]).await {
        // A public page or webhook probe may answer (a `%20` in a parameter is data): but never
        // with admin data, checked below.
        let public_route = public_templates.contains(&template);
        assert!(
            public_route || !(200..300).contains(&answer.status),
            "{method} {target} answered {} without credentials: {}",
            answer.status,
            answer.body
        );
        if (300..400).contains(&answer.status) {
            // `/` and `/admin` redirect on; everything else only to sign-in.
            let expected = if public_route {
                "/admin"
            } else {
                "/admin/login"
            };
            assert!(
                answer.header("location").starts_with(expected),
                "{method} {target} redirects to {} without credentials",
                answer.header("location")
            );
        }
        if let Some(marker) = has_admin_data(&answer) {
            panic!("{method} {target} answered admin data ({marker}) without credentials");
        }
    }

    // With the admin token: every spelling that is not canonical is refused whatever the method;
    // the others are other paths (`%20` or `%2F` as data, another case), which answer a GET with
    // a refusal or exactly the canonical answer (a skill looked up by a name with a trailing space
    // is the same skill). Unsafe methods are not sent to those: they would act on what they name.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut canonical_answers = HashMap::new();
    for (path, _) in &canonical_get {
        let answer = send(
            server.port,
            "GET",
            path,
            &[("authorization", bearer.as_str())],
            b"",
        )
        .await;
        canonical_answers.insert(path.clone(), answer);
    }
    let with_token: Vec<_> = requests
        .iter()
        .filter(|(method, target, _)| must_refuse[target] || method == "GET")
        .cloned()
        .collect();
    let refusals = with_token.iter().filter(|(_, t, _)| must_refuse[t]).count();
    assert!(
        refusals * 10 >= requests.len() * 7,
        "{refusals} of {}",
        requests.len()
    );
    for (method, target, _, answer) in send_all(
        server.port,
        &with_token,
        &[("authorization", bearer.as_str())],
    )
    .await
    {
        if must_refuse[&target] {
            // The canonical-path refusal, or the HTTP parser's (no body) for a request target
            // that is not a path at all.
            assert!(
                answer.status == 400
                    && (answer.body.contains("non_canonical_path")
                        || answer.body.contains("not in canonical form")
                        || answer.body.is_empty()),
                "{method} {target} with the token answered {}: {}",
                answer.status,
                answer.body
            );
            continue;
        }
        let same_as_canonical =
            canonical_answers
                .get(&canonical_of[&target])
                .is_some_and(|c: &RawAnswer| {
                    c.status == answer.status
                        && stable(&c.body) == stable(&answer.body)
                        && c.header("location") == answer.header("location")
                });
        assert!(
            (400..500).contains(&answer.status) || same_as_canonical,
            "{method} {target} with the token answered {}: {}",
            answer.status,
            answer.body
        );
    }

    // Nothing changed.
    control_delivery(&server, &store, &integration, 2).await;
    assert_eq!(before, snapshot(&store).await, "state changed");
}
