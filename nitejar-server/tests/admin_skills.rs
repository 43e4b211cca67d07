//! The skills API and pages against a real server process: every route behind the admin
//! credential; an admin skill created, read by id, name and slug, assigned, listed by scope,
//! exported, deleted and imported back; the precedence between sources as the operator sees it;
//! refusals with stable codes (404, 409, 422 for unsafe paths and sizes, 403 for repo skills, 413)
//! that store nothing; and the pages with their CSRF-protected forms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::*;

/// Per-file limit the test servers run with, so that "too large" is cheap to send.
const MAX_FILE: usize = 4096;
/// Whole-skill limit of the test servers.
const MAX_SKILL: usize = 16384;

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A server whose skills root holds two repo skills: `Deploy` (with a supporting file) and
/// `Triage`.
fn start(data: &DataDir) -> Server {
    let root = data.path.join("skills-root");
    write(
        &root,
        "deploy/SKILL.md",
        "---\nname: Deploy\ndescription: Ship it (repo).\n---\n# Deploy from the repo\n",
    );
    write(&root, "deploy/steps/check.md", "Check the build.\n");
    write(&root, "triage/SKILL.md", "# Triage\n");
    start_admin(
        data,
        &[
            ("NITEJAR_SKILLS_DIRS", root.display().to_string()),
            ("NITEJAR_SKILL_MAX_FILE_BYTES", MAX_FILE.to_string()),
            ("NITEJAR_SKILL_MAX_BYTES", MAX_SKILL.to_string()),
            // Some tests send wrong tokens on purpose; the throttle has its own test.
            ("NITEJAR_ADMIN_AUTH_MAX_FAILURES", "1000000".to_owned()),
        ],
    )
}

/// `text` as one URL path segment, in canonical form (unreserved characters as themselves).
fn seg(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn notes_skill() -> Value {
    json!({
        "slug": "ops-notes",
        "name": "Ops Notes",
        "description": "What on-call needs.",
        "tags": ["ops"],
        "content": "---\nname: Ops Notes\n---\n# Ops notes\nRead refs/pager.md first.\n",
        "files": [
            {"path": "refs/pager.md", "content": "Page the on-call.\n", "contentType": "text/markdown"}
        ]
    })
}

fn ids(listing: &Value) -> Vec<String> {
    listing["skills"]
        .as_array()
        .expect("skills")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect()
}

fn code(answer: &Answer) -> String {
    answer.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn message(answer: &Answer) -> String {
    answer.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Every skill route of the API, with a concrete path.
const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/admin/skills"),
    ("POST", "/api/admin/skills"),
    ("POST", "/api/admin/skills/import"),
    ("GET", "/api/admin/skills/admin:ops-notes"),
    ("PATCH", "/api/admin/skills/admin:ops-notes"),
    ("DELETE", "/api/admin/skills/admin:ops-notes"),
    ("POST", "/api/admin/skills/admin:ops-notes/enable"),
    ("POST", "/api/admin/skills/admin:ops-notes/disable"),
    ("GET", "/api/admin/skills/admin:ops-notes/assignments"),
    ("POST", "/api/admin/skills/admin:ops-notes/assignments"),
    (
        "DELETE",
        "/api/admin/skills/admin:ops-notes/assignments?scope=global",
    ),
    ("GET", "/api/admin/skills/admin:ops-notes/export"),
];

#[tokio::test]
async fn every_skill_route_is_documented_and_needs_the_admin_credential() {
    let data = DataDir::new();
    let server = start(&data);
    let created = api(
        &server,
        Method::POST,
        "/api/admin/skills",
        Some(&notes_skill()),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let doc = api(&server, Method::GET, "/api/openapi.json", None)
        .await
        .json();
    for (method, path) in API_ROUTES {
        let documented = path
            .split('?')
            .next()
            .unwrap_or_default()
            .replace("admin:ops-notes", "{id}");
        let op = &doc["paths"][&documented][method.to_lowercase()];
        assert!(op.is_object(), "{method} {documented} is not documented");
        assert!(
            op["security"].as_array().is_some_and(|s| !s.is_empty()),
            "{method} {documented} is documented as public"
        );
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let body = json!({});
        let body = (method != Method::GET).then_some(&body);
        for bearer in [None, Some("not-the-admin-token-0123456789")] {
            let answer = call(&server, method.clone(), path, bearer, body).await;
            assert_eq!(answer.status, 401, "{method} {path}: {}", answer.text);
            assert!(
                ["unauthenticated", "invalid_token"].contains(&code(&answer).as_str()),
                "{method} {path}: {}",
                answer.text
            );
        }
    }
    // Nothing changed without the credential.
    let skill = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes",
        None,
    )
    .await;
    assert_eq!(skill.status, 200);
    assert_eq!(skill.json()["enabled"], true);
    assert_eq!(skill.json()["assignments"], json!([]));
    // The pages are closed too: to the sign-in page.
    for path in [
        "/admin/skills",
        "/admin/skills/new",
        "/admin/skills/import",
        "/admin/skills/admin%3Aops-notes",
        "/admin/skills/admin%3Aops-notes/edit",
    ] {
        let answer = call(&server, Method::GET, path, None, None).await;
        assert_eq!(answer.status, 303, "{path}");
        assert!(answer.header("location").starts_with("/admin/login"));
    }
}

#[tokio::test]
async fn an_admin_skill_round_trips_create_get_assign_list_export_delete_import() {
    let data = DataDir::new();
    let server = start(&data);

    let created = api(
        &server,
        Method::POST,
        "/api/admin/skills",
        Some(&notes_skill()),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let skill = created.json();
    assert_eq!(skill["id"], "admin:ops-notes");
    assert_eq!(skill["source"], "admin");
    assert_eq!(
        skill["files"],
        json!([{"path": "refs/pager.md", "sizeBytes": 18}])
    );

    // By id (raw and encoded), by name in any case, by slug.
    for query in [
        "admin:ops-notes",
        "admin%3Aops-notes",
        "ops%20notes",
        "OPS%20NOTES",
        "ops-notes",
    ] {
        let got = api(
            &server,
            Method::GET,
            &format!("/api/admin/skills/{query}"),
            None,
        )
        .await;
        assert_eq!(got.status, 200, "{query}: {}", got.text);
        assert_eq!(got.json()["id"], "admin:ops-notes", "{query}");
        assert!(got.json()["content"]
            .as_str()
            .is_some_and(|c| c.contains("Read refs/pager.md first.")));
    }

    // Assign to a team; listed by that scope, and only there.
    let assigned = api(
        &server,
        Method::POST,
        "/api/admin/skills/Ops%20Notes/assignments",
        Some(&json!({"scope": "team:support", "priority": 5})),
    )
    .await;
    assert_eq!(assigned.status, 200, "{}", assigned.text);
    assert_eq!(assigned.json()["skillId"], "admin:ops-notes");
    assert_eq!(assigned.json()["scope"], "team:support");
    assert_eq!(assigned.json()["enabled"], true);
    let repo = api(
        &server,
        Method::POST,
        "/api/admin/skills/repo:triage/assignments",
        Some(&json!({"scope": "agent:a1", "enabled": false})),
    )
    .await;
    assert_eq!(repo.status, 200, "{}", repo.text);

    let team = api(
        &server,
        Method::GET,
        "/api/admin/skills?scope=team:support",
        None,
    )
    .await;
    assert_eq!(team.status, 200, "{}", team.text);
    assert_eq!(ids(&team.json()), ["admin:ops-notes"]);
    assert_eq!(team.json()["skills"][0]["assignments"][0]["priority"], 5);
    let agent = api(
        &server,
        Method::GET,
        "/api/admin/skills?scope=agent:a1",
        None,
    )
    .await;
    assert_eq!(ids(&agent.json()), ["repo:triage"]);
    let nobody = api(&server, Method::GET, "/api/admin/skills?scope=global", None).await;
    assert_eq!(ids(&nobody.json()), Vec::<String>::new());
    let admin_only = api(&server, Method::GET, "/api/admin/skills?source=admin", None).await;
    assert_eq!(ids(&admin_only.json()), ["admin:ops-notes"]);
    let repo_only = api(&server, Method::GET, "/api/admin/skills?source=repo", None).await;
    assert_eq!(ids(&repo_only.json()), ["repo:deploy", "repo:triage"]);
    let assignments = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes/assignments",
        None,
    )
    .await;
    assert_eq!(
        assignments.json()["items"].as_array().map(Vec::len),
        Some(1)
    );

    // Change it: name and files (replaced), then switch it off and on.
    let patched = api(
        &server,
        Method::PATCH,
        "/api/admin/skills/admin:ops-notes",
        Some(&json!({
            "name": "Ops Handbook",
            "files": [
                {"path": "refs/pager.md", "content": "Page the on-call twice.\n"},
                {"path": "refs/escalate.md", "content": "Then the lead.\n"}
            ]
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["name"], "Ops Handbook");
    assert_eq!(patched.json()["files"].as_array().map(Vec::len), Some(2));
    let off = api(
        &server,
        Method::POST,
        "/api/admin/skills/admin:ops-notes/disable",
        None,
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(off.json()["enabled"], false);
    let on = api(
        &server,
        Method::POST,
        "/api/admin/skills/admin:ops-notes/enable",
        None,
    )
    .await;
    assert_eq!(on.json()["enabled"], true);

    // Export: a download in the portable format, with the files' text.
    let export = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes/export",
        None,
    )
    .await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(
        export.header("content-disposition"),
        "attachment; filename=\"ops-notes.skill.json\""
    );
    let doc = export.json();
    assert_eq!(doc["formatVersion"], 2);
    assert_eq!(doc["skill"]["slug"], "ops-notes");
    assert_eq!(doc["skill"]["name"], "Ops Handbook");
    assert_eq!(doc["metadata"]["sourceId"], "admin:ops-notes");
    let files: Vec<(String, String)> = doc["skill"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_owned(),
                f["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("refs/escalate.md".into(), "Then the lead.\n".into()),
            ("refs/pager.md".into(), "Page the on-call twice.\n".into())
        ]
    );
    // A repo skill exports too, supporting file included.
    let repo_export = api(
        &server,
        Method::GET,
        "/api/admin/skills/repo:deploy/export",
        None,
    )
    .await;
    assert_eq!(repo_export.status, 200, "{}", repo_export.text);
    assert_eq!(
        repo_export.json()["skill"]["files"][0]["content"],
        "Check the build.\n"
    );

    // Remove the assignment; a second time there is none.
    let removed = api(
        &server,
        Method::DELETE,
        "/api/admin/skills/admin:ops-notes/assignments?scope=team:support",
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    let again = api(
        &server,
        Method::DELETE,
        "/api/admin/skills/admin:ops-notes/assignments?scope=team:support",
        None,
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert_eq!(code(&again), "assignment_not_found");

    // Delete, then it is gone (and a second delete says so).
    let deleted = api(
        &server,
        Method::DELETE,
        "/api/admin/skills/admin:ops-notes",
        None,
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json()["deleted"], true);
    let gone = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes",
        None,
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(code(&gone), "skill_not_found");
    let twice = api(
        &server,
        Method::DELETE,
        "/api/admin/skills/admin:ops-notes",
        None,
    )
    .await;
    assert_eq!(twice.status, 404);

    // Import the export back: the same skill, files and all.
    let imported = api(
        &server,
        Method::POST,
        "/api/admin/skills/import",
        Some(&doc),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.text);
    assert_eq!(imported.json()["id"], "admin:ops-notes");
    assert_eq!(imported.json()["name"], "Ops Handbook");
    assert_eq!(imported.json()["files"].as_array().map(Vec::len), Some(2));
    let again = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes/export",
        None,
    )
    .await;
    assert_eq!(
        again.json()["skill"],
        doc["skill"],
        "the round trip is exact"
    );

    // Importing over it needs replace=true.
    let mut changed = doc.clone();
    changed["skill"]["name"] = json!("Ops Handbook 2");
    let conflict = api(
        &server,
        Method::POST,
        "/api/admin/skills/import",
        Some(&changed),
    )
    .await;
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(code(&conflict), "skill_exists");
    let replaced = api(
        &server,
        Method::POST,
        "/api/admin/skills/import?replace=true",
        Some(&changed),
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.json()["name"], "Ops Handbook 2");
}

#[tokio::test]
async fn the_listing_shows_which_source_wins_a_shared_name() {
    let data = DataDir::new();
    let server = start(&data);
    let mut mine = notes_skill();
    mine["slug"] = json!("deploy");
    mine["name"] = json!("deploy"); // the repo skill's name, in another case
    mine["files"] = json!([]);
    let created = api(&server, Method::POST, "/api/admin/skills", Some(&mine)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["shadows"], json!(["repo:deploy"]));

    let listing = api(&server, Method::GET, "/api/admin/skills", None)
        .await
        .json();
    assert_eq!(listing["precedence"], json!(["admin", "plugin", "repo"]));
    let find = |id: &str| {
        listing["skills"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("repo:deploy")["shadowedBy"], "admin:deploy");
    assert_eq!(find("admin:deploy")["shadowedBy"], Value::Null);
    // The name reaches the winner; the loser stays reachable by id.
    let by_name = api(&server, Method::GET, "/api/admin/skills/Deploy", None).await;
    assert_eq!(by_name.json()["id"], "admin:deploy");
    let by_id = api(&server, Method::GET, "/api/admin/skills/repo:deploy", None).await;
    assert_eq!(by_id.json()["shadowedBy"], "admin:deploy");

    // Switched off, the admin skill no longer competes: the repo skill has its name back.
    let off = api(
        &server,
        Method::POST,
        "/api/admin/skills/admin:deploy/disable",
        None,
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.text);
    let by_name = api(&server, Method::GET, "/api/admin/skills/Deploy", None).await;
    assert_eq!(by_name.json()["id"], "repo:deploy");
    assert_eq!(by_name.json()["shadowedBy"], Value::Null);
}

#[tokio::test]
async fn refusals_have_stable_codes_name_the_problem_and_store_nothing() {
    let data = DataDir::new();
    let server = start(&data);
    let create = |body: Value| {
        let server = &server;
        async move { api(server, Method::POST, "/api/admin/skills", Some(&body)).await }
    };

    // 404: the message lists what is there.
    let missing = api(&server, Method::GET, "/api/admin/skills/nope", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(code(&missing), "skill_not_found");
    assert!(message(&missing).contains("Deploy"), "{}", missing.text);

    // 422: unsafe paths, named.
    for (path, why) in [
        ("../x", "`..`"),
        ("/etc/passwd", "absolute"),
        ("refs/../../x", "`..`"),
    ] {
        let mut bad = notes_skill();
        bad["files"] = json!([{"path": path, "content": "x"}]);
        let answer = create(bad).await;
        assert_eq!(answer.status, 422, "{path}: {}", answer.text);
        assert_eq!(code(&answer), "unsafe_path", "{path}");
        assert!(
            message(&answer).contains(path) && message(&answer).contains(why),
            "{path}: {}",
            answer.text
        );
        assert_eq!(answer.json()["error"]["details"][0]["path"], path);
    }

    // 422: a file over the per-file limit, named with its size and the limit.
    let mut big = notes_skill();
    big["files"] = json!([{"path": "refs/big.md", "content": "x".repeat(MAX_FILE + 1)}]);
    let answer = create(big).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(code(&answer), "skill_too_large");
    assert!(
        message(&answer).contains("refs/big.md")
            && message(&answer).contains(&(MAX_FILE + 1).to_string())
            && message(&answer).contains(&MAX_FILE.to_string()),
        "{}",
        answer.text
    );
    let mut many = notes_skill();
    many["files"] = json!((0..5)
        .map(|i| json!({"path": format!("refs/{i}.md"), "content": "m".repeat(4000)}))
        .collect::<Vec<_>>());
    let answer = create(many).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(code(&answer), "skill_too_large");
    assert!(
        message(&answer).contains("skill `ops-notes`")
            && message(&answer).contains(&MAX_SKILL.to_string()),
        "{}",
        answer.text
    );
    let mut big_text = notes_skill();
    big_text["content"] = json!("y".repeat(MAX_FILE + 1));
    let answer = create(big_text).await;
    assert_eq!(code(&answer), "skill_too_large");
    assert!(message(&answer).contains("SKILL.md"), "{}", answer.text);

    // 422: fields, pointed at.
    let mut bad_slug = notes_skill();
    bad_slug["slug"] = json!("Not A Slug");
    let answer = create(bad_slug).await;
    assert_eq!(answer.status, 422);
    assert_eq!(code(&answer), "invalid_field");
    assert_eq!(answer.json()["error"]["details"][0]["path"], "/slug");
    let mut bad_tag = notes_skill();
    bad_tag["tags"] = json!(["ok", "Bad Tag"]);
    let answer = create(bad_tag).await;
    assert_eq!(answer.json()["error"]["details"][0]["path"], "/tags/1");
    let mut bad_front = notes_skill();
    bad_front["content"] = json!("---\nname: [unclosed\n---\n");
    let answer = create(bad_front).await;
    assert_eq!(answer.status, 422);
    assert_eq!(code(&answer), "invalid_frontmatter");
    // Not the JSON expected: 400.
    let answer = create(json!({"name": "no slug"})).await;
    assert_eq!(answer.status, 400);
    assert_eq!(code(&answer), "invalid_json");

    // Nothing of the refused skills was stored.
    let admin = api(&server, Method::GET, "/api/admin/skills?source=admin", None).await;
    assert_eq!(ids(&admin.json()), Vec::<String>::new());

    // 409: the slug is taken.
    assert_eq!(create(notes_skill()).await.status, 201);
    let answer = create(notes_skill()).await;
    assert_eq!(answer.status, 409);
    assert_eq!(code(&answer), "skill_exists");
    assert!(message(&answer).contains("ops-notes"));

    // An update is checked in full too: the stored skill is untouched.
    let answer = api(
        &server,
        Method::PATCH,
        "/api/admin/skills/admin:ops-notes",
        Some(&json!({"name": "Renamed", "files": [{"path": "../x", "content": "x"}]})),
    )
    .await;
    assert_eq!(answer.status, 422);
    assert_eq!(code(&answer), "unsafe_path");
    let kept = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes",
        None,
    )
    .await;
    assert_eq!(kept.json()["name"], "Ops Notes");
    assert_eq!(kept.json()["files"][0]["path"], "refs/pager.md");

    // 403: repo skills are not the operator's to change or delete (assigned or not).
    for id in ["repo:deploy", "repo:triage"] {
        let patch = api(
            &server,
            Method::PATCH,
            &format!("/api/admin/skills/{id}"),
            Some(&json!({"name": "Mine now"})),
        )
        .await;
        assert_eq!(patch.status, 403, "{id}: {}", patch.text);
        assert_eq!(code(&patch), "not_admin_skill");
        assert!(message(&patch).contains(id), "{}", patch.text);
        let delete = api(
            &server,
            Method::DELETE,
            &format!("/api/admin/skills/{id}"),
            None,
        )
        .await;
        assert_eq!(delete.status, 403, "{id}: {}", delete.text);
        assert_eq!(code(&delete), "not_admin_skill");
    }
    // Assigned, a repo skill has a row of its own: still not the operator's to change.
    let assigned = api(
        &server,
        Method::POST,
        &format!("/api/admin/skills/{}/assignments", seg("repo:deploy")),
        Some(&json!({"scope": "global"})),
    )
    .await;
    assert_eq!(assigned.status, 200, "{}", assigned.text);
    let patch = api(
        &server,
        Method::PATCH,
        "/api/admin/skills/repo:deploy",
        Some(&json!({"name": "Mine now"})),
    )
    .await;
    assert_eq!(patch.status, 403, "{}", patch.text);
    let still = api(&server, Method::GET, "/api/admin/skills/repo:deploy", None).await;
    assert_eq!(still.json()["name"], "Deploy");

    // 422: scopes and sources, in the CLI's syntax.
    for path in [
        "/api/admin/skills?scope=planet:earth",
        "/api/admin/skills?scope=team:",
        "/api/admin/skills?source=db",
    ] {
        let answer = api(&server, Method::GET, path, None).await;
        assert_eq!(answer.status, 422, "{path}: {}", answer.text);
        assert_eq!(code(&answer), "invalid_field", "{path}");
    }
    let answer = api(
        &server,
        Method::POST,
        "/api/admin/skills/admin:ops-notes/assignments",
        Some(&json!({"scope": "everyone"})),
    )
    .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(code(&answer), "invalid_field");
    assert!(message(&answer).contains("everyone"));
    let answer = api(
        &server,
        Method::DELETE,
        "/api/admin/skills/admin:ops-notes/assignments",
        None,
    )
    .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    let answer = api(
        &server,
        Method::POST,
        "/api/admin/skills/nope/assignments",
        Some(&json!({"scope": "global"})),
    )
    .await;
    assert_eq!(answer.status, 404);

    // 422: import documents that are not exports, or carry unsafe paths.
    for doc in [
        json!({"formatVersion": 1, "skill": {"name": "x", "slug": "x", "content": "x"}}),
        json!({"hello": "world"}),
        json!({"formatVersion": 2, "skill": {"name": "X", "slug": "x", "content": "x",
            "files": [{"path": "a.bin", "content": "//79/A==", "encoding": "base64"}]}}),
    ] {
        let answer = api(
            &server,
            Method::POST,
            "/api/admin/skills/import",
            Some(&doc),
        )
        .await;
        assert_eq!(answer.status, 422, "{doc}: {}", answer.text);
        assert!(
            ["invalid_export", "invalid_field"].contains(&code(&answer).as_str()),
            "{}",
            answer.text
        );
    }
    let not_json = call(
        &server,
        Method::POST,
        "/api/admin/skills/import",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(not_json.status, 422, "{}", not_json.text);
    assert_eq!(code(&not_json), "invalid_export");
    let unsafe_import = json!({"formatVersion": 2, "skill": {"name": "X", "slug": "x",
        "content": "x", "files": [{"path": "../../etc/cron.d/x", "content": "x"}]}});
    let answer = api(
        &server,
        Method::POST,
        "/api/admin/skills/import",
        Some(&unsafe_import),
    )
    .await;
    assert_eq!(answer.status, 422);
    assert_eq!(code(&answer), "unsafe_path");

    // 413: a body over the admin body limit (1 MiB with these skill limits) is refused before it
    // is parsed.
    let huge = json!({"slug": "huge", "name": "Huge", "content": "z".repeat(2 * 1024 * 1024)});
    let answer = create(huge).await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert_eq!(code(&answer), "body_too_large");

    let admin = api(&server, Method::GET, "/api/admin/skills?source=admin", None).await;
    assert_eq!(
        ids(&admin.json()),
        ["admin:ops-notes"],
        "only the one created"
    );
}

/// A skill's JSON with what changes from run to run taken out, for the snapshot.
fn stable(mut v: Value) -> Value {
    for a in v["assignments"].as_array_mut().into_iter().flatten() {
        for key in ["id", "createdAt", "updatedAt"] {
            a[key] = json!("[varies]");
        }
    }
    v
}

#[tokio::test]
async fn a_skill_and_an_error_have_a_stable_json_shape() {
    let data = DataDir::new();
    let server = start(&data);
    api(
        &server,
        Method::POST,
        "/api/admin/skills",
        Some(&notes_skill()),
    )
    .await;
    api(
        &server,
        Method::POST,
        "/api/admin/skills/admin:ops-notes/assignments",
        Some(&json!({"scope": "integration_type:telegram", "priority": 3})),
    )
    .await;
    let skill = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:ops-notes",
        None,
    )
    .await;
    insta::assert_json_snapshot!("skill_detail", stable(skill.json()));
    let mut bad = notes_skill();
    bad["files"] = json!([{"path": "../x", "content": "x"}]);
    let refused = api(&server, Method::POST, "/api/admin/skills", Some(&bad)).await;
    insta::assert_json_snapshot!("skill_unsafe_path", refused.json());
}

#[tokio::test]
async fn the_pages_show_skills_and_their_forms_change_them_only_with_the_csrf_token() {
    let data = DataDir::new();
    let server = start(&data);
    let session = Session::sign_in(&server).await;

    // The list: every source, the precedence rule, the nav entry; filters.
    let list = session.get(&server, "/admin/skills").await;
    assert_eq!(list.status, 200, "{}", list.text);
    for text in [
        "href=\"/admin/skills\" aria-current=\"page\">Skills</a>",
        "an admin skill wins over a plugin skill",
        "repo:deploy",
        "repo:triage",
        "not assigned",
        "href=\"/admin/skills/repo%3Adeploy\"",
    ] {
        assert!(list.text.contains(text), "list lacks {text:?}");
    }
    let plugins = session.get(&server, "/admin/plugins").await;
    assert!(
        plugins.text.contains("href=\"/admin/skills\""),
        "nav on every page"
    );
    let filtered = session.get(&server, "/admin/skills?source=admin").await;
    assert_eq!(filtered.status, 200);
    assert!(!filtered.text.contains("repo:deploy"));
    assert!(filtered.text.contains("No skill matches the filter."));
    let bad_filter = session
        .get(&server, "/admin/skills?scope=planet%3Aearth")
        .await;
    assert_eq!(bad_filter.status, 422);
    assert!(
        bad_filter.text.contains("`planet` is not a scope kind"),
        "{}",
        bad_filter.text
    );

    // A repo skill's page: text, supporting file, no edit or delete.
    let repo = session.get(&server, "/admin/skills/repo%3Adeploy").await;
    assert_eq!(repo.status, 200, "{}", repo.text);
    for text in [
        "# Deploy from the repo",
        "steps/check.md",
        "Check the build.",
        "This skill comes from repo",
        "/api/admin/skills/repo%3Adeploy/export",
    ] {
        assert!(repo.text.contains(text), "repo page lacks {text:?}");
    }
    assert!(!repo.text.contains("Delete skill"));
    let edit_repo = session
        .get(&server, "/admin/skills/repo%3Adeploy/edit")
        .await;
    assert_eq!(edit_repo.status, 403, "{}", edit_repo.text);

    // The new-skill form, posted with the token: created, and the browser sent to it.
    let form = session.get(&server, "/admin/skills/new").await;
    assert_eq!(form.status, 200);
    assert_eq!(
        hidden_value(&form.text, "_csrf").as_deref(),
        Some(session.csrf.as_str())
    );
    for field in ["name=\"slug\"", "name=\"content\"", "name=\"file_path.0\""] {
        assert!(form.text.contains(field), "form lacks {field}");
    }
    let fields = [
        ("slug", "pager"),
        ("name", "Pager"),
        ("category", "ops"),
        ("tags", "ops, oncall"),
        ("content", "# Pager\r\nPage people.\r\n"),
        ("enabled", "true"),
        ("file_path.0", "refs/who.md"),
        ("file_content.0", "The on-call.\r\n"),
        ("file_path.1", ""),
        ("file_content.1", ""),
    ];
    let created = session.post_form(&server, "/admin/skills", &fields).await;
    assert_eq!(created.status, 303, "{}", created.text);
    assert_eq!(
        created.header("location"),
        "/admin/skills/admin%3Apager?notice=skill_created"
    );
    let page = session
        .get(&server, "/admin/skills/admin%3Apager?notice=skill_created")
        .await;
    assert_eq!(page.status, 200);
    for text in [
        "Skill created.",
        "Page people.",
        "refs/who.md",
        "The on-call.",
        "Delete skill",
    ] {
        assert!(page.text.contains(text), "skill page lacks {text:?}");
    }
    let stored = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:pager/export",
        None,
    )
    .await
    .json();
    assert_eq!(
        stored["skill"]["content"], "# Pager\nPage people.\n",
        "LF line ends"
    );
    assert_eq!(stored["skill"]["tags"], json!(["ops", "oncall"]));

    // Without the token, or with another one: refused, nothing created.
    let mut other = fields.to_vec();
    other[0] = ("slug", "sneaky");
    let no_token = session
        .post_raw(
            &server,
            "/admin/skills",
            &form_body(&other),
            Some(&session.origin),
        )
        .await;
    assert_eq!(no_token.status, 403, "{}", no_token.text);
    let mut wrong = vec![("_csrf", "not-the-token")];
    wrong.extend_from_slice(&other);
    let wrong_token = session
        .post_raw(
            &server,
            "/admin/skills",
            &form_body(&wrong),
            Some(&session.origin),
        )
        .await;
    assert_eq!(wrong_token.status, 403);
    let sneaky = api(&server, Method::GET, "/api/admin/skills/admin:sneaky", None).await;
    assert_eq!(sneaky.status, 404, "nothing was created without the token");

    // A refused form comes back with the reason and what was typed; nothing is stored.
    let mut unsafe_fields = fields.to_vec();
    unsafe_fields[0] = ("slug", "escape");
    unsafe_fields[6] = ("file_path.0", "../x");
    let refused = session
        .post_form(&server, "/admin/skills", &unsafe_fields)
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("The skill was not saved."));
    assert!(
        refused.text.contains("path `../x` is refused"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"escape\""),
        "the slug typed is kept"
    );
    assert!(
        refused.text.contains("Page people."),
        "the text typed is kept"
    );
    let escape = api(&server, Method::GET, "/api/admin/skills/admin:escape", None).await;
    assert_eq!(escape.status, 404);
    let mut big_fields = fields.to_vec();
    big_fields[0] = ("slug", "big");
    let big = "b".repeat(MAX_FILE + 1);
    big_fields[7] = ("file_content.0", big.as_str());
    let refused = session
        .post_form(&server, "/admin/skills", &big_fields)
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text.contains("over the limit of 4096 bytes"),
        "{}",
        refused.text
    );
    // A form over the admin body limit is refused as too large (not as an out-of-date form).
    let huge = "h".repeat(2 * 1024 * 1024);
    let too_big = session
        .post_form(
            &server,
            "/admin/skills",
            &[
                ("slug", "huge"),
                ("name", "Huge"),
                ("content", huge.as_str()),
            ],
        )
        .await;
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    assert!(
        too_big.text.contains("larger than 1048576 bytes"),
        "{}",
        too_big.text
    );

    // Edit: the form holds the files; saving replaces them.
    let edit = session
        .get(&server, "/admin/skills/admin%3Apager/edit")
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    assert!(edit.text.contains("The on-call."));
    let saved = session
        .post_form(
            &server,
            "/admin/skills/admin%3Apager",
            &[
                ("name", "Pager Duty"),
                ("content", "# Pager\nPage people, politely.\n"),
                ("file_path.0", "refs/who.md"),
                ("file_content.0", "x"),
                ("file_remove.0", "yes"),
                ("file_path.1", "refs/when.md"),
                ("file_content.1", "At night.\n"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    assert_eq!(
        saved.header("location"),
        "/admin/skills/admin%3Apager?notice=saved"
    );
    let after = api(&server, Method::GET, "/api/admin/skills/admin:pager", None)
        .await
        .json();
    assert_eq!(after["name"], "Pager Duty");
    assert_eq!(
        after["files"],
        json!([{"path": "refs/when.md", "sizeBytes": 10}])
    );

    // Assign, see it, remove it; a bad scope is shown on the page.
    let assigned = session
        .post_form(
            &server,
            "/admin/skills/admin%3Apager/assignments",
            &[
                ("scope", "agent:night-bot"),
                ("priority", "7"),
                ("enabled", "true"),
            ],
        )
        .await;
    assert_eq!(assigned.status, 303, "{}", assigned.text);
    let page = session
        .get(&server, "/admin/skills/admin%3Apager?notice=assigned")
        .await;
    assert!(page.text.contains("Assignment saved."));
    assert!(page.text.contains("<code>agent:night-bot</code>"));
    let listed = session
        .get(&server, "/admin/skills?scope=agent%3Anight-bot")
        .await;
    assert!(listed.text.contains("admin:pager") && !listed.text.contains("repo:deploy"));
    assert!(listed.text.contains("agent:night-bot (priority 7, on)"));
    let bad = session
        .post_form(
            &server,
            "/admin/skills/admin%3Apager/assignments",
            &[("scope", "galaxy"), ("priority", "1")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("`galaxy` is not a scope"), "{}", bad.text);
    assert!(bad.text.contains("value=\"galaxy\""));
    let removed = session
        .post_form(
            &server,
            "/admin/skills/admin%3Apager/assignments/remove",
            &[("scope", "agent:night-bot")],
        )
        .await;
    assert_eq!(removed.status, 303);
    let assignments = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:pager/assignments",
        None,
    )
    .await;
    assert_eq!(assignments.json()["items"], json!([]));

    // Switch a repo skill off and on from its page.
    let off = session
        .post_form(&server, "/admin/skills/repo%3Atriage/disable", &[])
        .await;
    assert_eq!(off.status, 303);
    assert_eq!(
        off.header("location"),
        "/admin/skills/repo%3Atriage?notice=disabled"
    );
    let triage = api(&server, Method::GET, "/api/admin/skills/repo:triage", None).await;
    assert_eq!(triage.json()["enabled"], false);
    session
        .post_form(&server, "/admin/skills/repo%3Atriage/enable", &[])
        .await;
    let triage = api(&server, Method::GET, "/api/admin/skills/repo:triage", None).await;
    assert_eq!(triage.json()["enabled"], true);

    // Import: a pasted export; a broken one comes back with the reason.
    let import_form = session.get(&server, "/admin/skills/import").await;
    assert_eq!(import_form.status, 200);
    assert!(import_form.text.contains("name=\"document\""));
    let mut doc = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:pager/export",
        None,
    )
    .await
    .json();
    doc["skill"]["slug"] = json!("pager-copy");
    doc["skill"]["name"] = json!("Pager Copy");
    let document = doc.to_string();
    let imported = session
        .post_form(
            &server,
            "/admin/skills/import",
            &[("document", document.as_str())],
        )
        .await;
    assert_eq!(imported.status, 303, "{}", imported.text);
    assert_eq!(
        imported.header("location"),
        "/admin/skills/admin%3Apager-copy?notice=skill_imported"
    );
    let copy = api(
        &server,
        Method::GET,
        "/api/admin/skills/admin:pager-copy",
        None,
    )
    .await;
    assert_eq!(copy.json()["files"][0]["path"], "refs/when.md");
    let broken = session
        .post_form(
            &server,
            "/admin/skills/import",
            &[("document", "{\"formatVersion\": 2")],
        )
        .await;
    assert_eq!(broken.status, 422);
    assert!(
        broken.text.contains("not a Nitejar skill export"),
        "{}",
        broken.text
    );
    assert!(broken.text.contains("Nothing was imported."));

    // Delete: only with the box ticked.
    let unticked = session
        .post_form(&server, "/admin/skills/admin%3Apager-copy/delete", &[])
        .await;
    assert_eq!(unticked.status, 422);
    assert_eq!(
        api(
            &server,
            Method::GET,
            "/api/admin/skills/admin:pager-copy",
            None
        )
        .await
        .status,
        200
    );
    let deleted = session
        .post_form(
            &server,
            "/admin/skills/admin%3Apager-copy/delete",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(deleted.header("location"), "/admin/skills?notice=deleted");
    assert_eq!(
        api(
            &server,
            Method::GET,
            "/api/admin/skills/admin:pager-copy",
            None
        )
        .await
        .status,
        404
    );
    let repo_delete = session
        .post_form(
            &server,
            "/admin/skills/repo%3Adeploy/delete",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(repo_delete.status, 403, "{}", repo_delete.text);
}

#[tokio::test]
async fn the_list_page_shows_the_winner_of_a_shared_name() {
    let data = DataDir::new();
    let server = start(&data);
    let session = Session::sign_in(&server).await;
    let mut mine = notes_skill();
    mine["slug"] = json!("my-deploy");
    mine["name"] = json!("Deploy");
    mine["files"] = json!([]);
    let created = api(&server, Method::POST, "/api/admin/skills", Some(&mine)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let list = session.get(&server, "/admin/skills").await;
    assert!(
        list.text.contains(
            "by <a href=\"/admin/skills/admin%3Amy-deploy\"><code>admin:my-deploy</code></a>, which wins the name"
        ),
        "{}",
        list.text
    );
    assert!(list.text.contains(
        "wins the name over <a href=\"/admin/skills/repo%3Adeploy\"><code>repo:deploy</code></a>"
    ));
    // Filtered to repo skills, the winner is still named.
    let repo = session.get(&server, "/admin/skills?source=repo").await;
    assert!(repo
        .text
        .contains("<code>admin:my-deploy</code></a>, which wins the name"));
    let loser = session.get(&server, "/admin/skills/repo%3Adeploy").await;
    assert!(loser.text.contains("has the same name and wins it"));
}
