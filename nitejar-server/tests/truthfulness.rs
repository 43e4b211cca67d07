//! The product says what it is and nothing more: the posture texts of `docs/design.md` (*Claims
//! match enforcement*) appear where an operator decides (API responses, the plugin and runtime pages), and nothing an operator reads
//! (README, docs, page templates, the texts the server sends) claims a sandbox or an isolation that
//! the code does not provide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::path::{Path, PathBuf};

use reqwest::Method;
use support::admin::*;
use support::*;

const BADGE: &str = "In-process (No hard sandbox)";
const ISOLATED_BADGE: &str =
    "Plugins isolated by default (kernel-enforced; each plugin's page says where it runs)";
const OPEN: &str = "Declared capabilities; not sandbox-enforced in this mode.";
const GUARDED: &str =
    "Partially enforced in current execution mode; plugin code still runs in-process.";
const GUARDED_ISOLATED: &str =
    "Signed or allowlisted plugins; each runs isolated, and the kernel refuses what its process tries around the host.";

/// Words that claim containment. "Isolated" is not among them: isolated execution (a plugin in a
/// process of its own) exists, and the word is the mode's name in code, API values and forms.
const CLAIMS: &[&str] = &["sandbox", "jail", "confine", "contained"];
/// What the kernel enforces exists only where the operator chooses isolated execution: a sentence
/// may claim it when it names that mode. The same claim about plugins in general (they run
/// in-process by default) is caught. Code spans (`sandbox`, a module's name) are not claims.
const MODE_NAMED: &[&str] = &[
    "isolated execution",
    "isolated plugin",
    "isolated mode",
    "runs isolated",
    "run isolated",
    "isolated by default",
    "isolated only",
    "isolated process:",
    "isolated: a process of its own",
    "not start isolated",
];
/// Words that deny it, when they come shortly before the claim in the same sentence.
const NEGATIONS: &[&str] = &[
    "no", "not", "never", "without", "nor", "cannot", "isn't", "aren't", "doesn't", "don't",
    "won't", "none", "neither",
];
/// How many words before a claim a negation may stand ("no hard sandbox", "never claims a sandbox").
const WINDOW: usize = 5;

/// Claims of containment in `text` that no nearby negation takes back, as the sentences holding
/// them.
fn unqualified_claims(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    // Sentences wrap across lines (Markdown, comments, string continuations): join the lines, with
    // comment markers and continuation backslashes dropped; a blank line ends a sentence.
    let joined: String = text
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = ["//!", "///", "//"]
                .iter()
                .find_map(|m| l.strip_prefix(m))
                .unwrap_or(l);
            let l = l.trim().trim_end_matches('\\');
            if l.is_empty() {
                ".".to_owned()
            } else {
                format!("{l} ")
            }
        })
        .collect();
    // Code spans name things, they claim nothing.
    let joined: String = joined
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ");
    for sentence in joined.split(['.', '!', '?', ';', ':', '(', ')', '"', '<', '>']) {
        let lower = sentence.to_lowercase();
        if MODE_NAMED.iter().any(|m| lower.contains(m)) {
            continue;
        }
        let words: Vec<String> = sentence
            .split(|c: char| c.is_whitespace() || c == ',' || c == '`' || c == '*')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase())
            .collect();
        for (i, word) in words.iter().enumerate() {
            if !CLAIMS.iter().any(|c| word.contains(c)) {
                continue;
            }
            let from = i.saturating_sub(WINDOW);
            let negated = words[from..i].iter().any(|w| {
                let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
                NEGATIONS.contains(&w) || w.ends_with("n't")
            }) || word.starts_with("no-")
                || word.starts_with("non-");
            if !negated {
                found.push(sentence.trim().to_owned());
            }
        }
    }
    found
}

#[test]
fn the_claim_checker_catches_claims_and_lets_the_required_copy_through() {
    for claim in [
        "Plugins are sandboxed.",
        "Each plugin runs in a sandboxed process.",
        "Plugins are isolated and sandboxed.",
        "A secure sandbox protects your server",
        "Plugin code is fully contained by the host",
        "Isolation: every plugin in its own jail",
        "Plugins are confined to their files",
        "All plugins run under a kernel sandbox",
        "No configuration needed. Plugins run sandboxed",
    ] {
        assert!(!unqualified_claims(claim).is_empty(), "not caught: {claim}");
    }
    for fine in [
        BADGE,
        OPEN,
        GUARDED,
        "There is no hard sandbox: code that bypasses those services is not contained.",
        "the product never claims a sandbox it does not have",
        "in-process, no sandbox",
        "Plugins run in-process (no hard sandbox).",
        "Isolated plugins run under the kernel sandbox: no sockets of their own.",
        "The `sandbox` module applies the controls.",
    ] {
        assert_eq!(
            unqualified_claims(fine),
            Vec::<String>::new(),
            "wrongly caught: {fine}"
        );
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn files_under(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files_under(&path, extensions, out);
            }
        } else if extensions.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

#[test]
fn nothing_an_operator_reads_claims_a_sandbox() {
    let root = workspace();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    // Every Markdown document in the repository (docs, example READMEs, …).
    files_under(&root, &[".md"], &mut files);
    // Every page template, and the texts the server sends about its posture.
    files_under(
        &root.join("nitejar-server/templates"),
        &[".html"],
        &mut files,
    );
    files.push(root.join("nitejar-server/src/posture.rs"));
    files.push(root.join("nitejar-server/src/api/openapi_components.json"));
    files.push(root.join("nitejar-server/src/ui/mod.rs"));
    // The consent text operators read before they enable a plugin: required, so that a move of
    // the file cannot make this check skip it.
    let consent = root.join("nitejar-packages/src/trust/consent.rs");
    assert!(consent.is_file(), "{} is not there", consent.display());
    files.push(consent);
    files.sort();
    files.dedup();
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for claim in unqualified_claims(&text) {
            problems.push(format!("{}: \"{claim}\"", file.display()));
        }
    }
    assert!(files.len() >= 10, "scanned only {files:?}");
    assert!(
        problems.is_empty(),
        "claims of containment the code does not provide (say \"no hard sandbox\" / \"not \
         sandbox-enforced\", or remove them):\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn the_posture_copy_is_in_the_api_and_on_the_pages() {
    // (trust mode, where third-party plugins run by default, their posture, the badge, the
    // built-ins' posture: they always run in the server's process).
    for (mode, execution, text, badge, builtin_text) in [
        ("self_host_open", "in_process", OPEN, BADGE, OPEN),
        (
            "self_host_guarded",
            "isolated",
            GUARDED_ISOLATED,
            ISOLATED_BADGE,
            GUARDED,
        ),
    ] {
        let data = DataDir::new();
        let server = start_admin(&data, &[("NITEJAR_PLUGIN_TRUST_MODE", mode.into())]);
        let runtime = api(&server, Method::GET, "/api/admin/runtime", None)
            .await
            .json();
        assert_eq!(runtime["posture"], text, "{mode}");
        assert_eq!(runtime["badge"], badge);
        assert_eq!(runtime["executionMode"], execution);

        // A third-party plugin, installed and not yet enabled: its review (enable) page, its
        // detail page and its API answers carry the same words.
        let package = support::packages::package_dir(
            &data.path,
            "greeter",
            "tests/fixtures/plugins/greeter-v1",
            "greeter_v1",
            |_| {},
        );
        let installed = api(
            &server,
            Method::POST,
            "/api/admin/plugins/install/local",
            Some(&serde_json::json!({ "path": package.to_string_lossy() })),
        )
        .await;
        assert_eq!(installed.status, 201, "{}", installed.text);
        let id = "dev.nitejar.fixtures.greeter";
        let detail = api(
            &server,
            Method::GET,
            &format!("/api/admin/plugins/{id}"),
            None,
        )
        .await
        .json();
        assert_eq!(detail["posture"], text, "{mode}");
        assert_eq!(detail["executionMode"], execution);
        assert!(detail["consentText"]
            .as_str()
            .unwrap_or_default()
            .contains(text));
        assert!(detail["consentText"].as_str().unwrap_or_default().contains(
            if execution == "isolated" {
                "Isolated process:"
            } else {
                BADGE
            }
        ));
        let list = api(&server, Method::GET, "/api/admin/plugins", None)
            .await
            .json();
        for p in list["items"].as_array().expect("items") {
            if p["origin"] == "builtin" {
                assert_eq!(p["posture"], builtin_text, "{mode} {}", p["id"]);
                assert_eq!(p["executionMode"], "in_process");
            } else {
                assert_eq!(p["posture"], text, "{mode} {}", p["id"]);
                assert_eq!(p["executionMode"], execution);
            }
        }

        let session = Session::sign_in(&server).await;
        let review = format!("/admin/plugins/{id}/review");
        let third_party = format!("/admin/plugins/{id}");
        for (page, text) in [
            ("/admin/plugins", text),
            ("/admin/plugins/builtin.telegram", builtin_text),
            ("/admin/runtime", text),
            ("/admin/plugins/install", text),
            (review.as_str(), text),
            (third_party.as_str(), text),
        ] {
            let html = unescaped(&session.get(&server, page).await.text);
            assert!(html.contains(badge), "{mode} {page}: no badge");
            assert!(html.contains(text), "{mode} {page}: no posture text");
        }
        // Where the plugin runs, on the pages that ask to enable it.
        let warning = if execution == "isolated" {
            "will run isolated"
        } else {
            "There is no hard sandbox"
        };
        for page in [
            "/admin/plugins/install",
            review.as_str(),
            third_party.as_str(),
        ] {
            let html = session.get(&server, page).await.text;
            assert!(html.contains(warning), "{mode} {page}: no warning");
        }
        // The badge, and the footer's word on where plugins run, are on every page, signed in
        // or not.
        let footer = if execution == "isolated" {
            "third-party plugins run isolated, each in a process of its own, unless chosen otherwise"
        } else {
            "third-party plugins run in the server's process unless chosen otherwise"
        };
        for page in ["/admin/login", "/admin/integrations", "/admin/receipts"] {
            let html = unescaped(&session.get(&server, page).await.text);
            assert!(html.contains(badge), "{page}: no badge");
            assert!(
                html.contains(footer),
                "{mode} {page}: the footer says {html}"
            );
            assert!(!html.contains("plugins run in-process"), "{mode} {page}");
        }
    }
}

/// A page's text with the apostrophe the templates escape written as itself.
fn unescaped(html: &str) -> String {
    html.replace("&#39;", "'").replace("&#x27;", "'")
}
