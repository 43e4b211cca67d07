//! Manifest validation as a plugin author meets it: the fixtures under `fixtures/manifests/` are
//! real `nitejar.plugin.json` files; the good ones must validate clean (against our validator and
//! against the shipped JSON Schema with a stock validator, as an editor would), and each bad one
//! shows the exact error list an author reads (snapshots under `snapshots/`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

use std::fs;
use std::path::{Path, PathBuf};

use nitejar_core::manifest::{
    check_contributions, validate_manifest_json, validate_package_dir, ManifestErrors,
    ValidateOptions, ValidatedManifest,
};
use nitejar_sdk::manifest::{Entry, SCHEMA, SCHEMA_ID};
use nitejar_sdk::{Contributions, HookName};
use semver::Version;
use serde_json::{json, Value};

fn fixtures(kind: &str) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(kind);
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Fixed so the snapshots do not depend on the machine or on this crate's version.
fn opts() -> ValidateOptions {
    ValidateOptions::new()
        .running_version(Version::new(0, 1, 0))
        .target(Some("x86_64-unknown-linux-gnu".to_string()))
}

fn validate(text: &str) -> Result<ValidatedManifest, ManifestErrors> {
    validate_manifest_json(text, &opts())
}

fn errors_of(text: &str) -> String {
    match validate(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn good_manifests_validate_clean() {
    for (name, path) in fixtures("good") {
        let text = fs::read_to_string(&path).unwrap();
        match validate(&text) {
            Ok(valid) => assert_eq!(
                serde_json::to_value(&valid.manifest).unwrap()["id"],
                serde_json::from_str::<Value>(&text).unwrap()["id"],
                "{name}"
            ),
            Err(errors) => panic!("{name} should be valid:\n{errors}"),
        }
    }
}

#[test]
fn good_manifests_pass_the_shipped_schema_with_a_stock_validator() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for (name, path) in fixtures("good") {
        let doc: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
}

#[test]
fn the_shipped_schema_is_valid_draft_2020_12() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["$id"], SCHEMA_ID);
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("the schema violates the draft 2020-12 meta-schema: {e}");
    }
}

#[test]
fn bad_manifests_report_every_problem_with_its_path() {
    for (name, path) in fixtures("bad") {
        let text = fs::read_to_string(&path).unwrap();
        let errors = errors_of(&text);
        let mut settings = insta::Settings::clone_current();
        settings.set_input_file(&path);
        settings.bind(|| insta::assert_snapshot!(format!("bad__{name}"), errors));
    }
}

#[test]
fn the_seed_manifest_reads_as_written_with_notes() {
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests/good/seed.json"),
    )
    .unwrap();
    let valid = validate(&text).unwrap();
    assert_eq!(valid.manifest.id, "com.acme.jira");
    assert_eq!(
        valid.manifest.entry,
        Some(Entry::Path("lib/libacme_jira.so".into()))
    );
    assert_eq!(valid.engine.to_string(), ">=0.1.0, <1.0.0");
    assert_eq!(
        valid.contributed_hooks(),
        vec![HookName::ToolPreExec, HookName::ResponsePreDeliver]
    );
    assert_eq!(valid.manifest.engine.other["node"], ">=24");
    let notes: Vec<String> = valid.notes.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("notes__seed", notes.join("\n"));
}

#[test]
fn notes_flag_an_exact_pin_and_a_plugin_that_contributes_nothing() {
    let valid = validate(
        r#"{ "schemaVersion": 1, "id": "com.acme.empty", "name": "Empty", "version": "0.1.0",
             "entry": "lib/libempty.so", "engine": { "nitejar": "0.1.0" } }"#,
    )
    .unwrap();
    let notes: Vec<String> = valid.notes.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("notes__exact_pin_and_nothing_contributed", notes.join("\n"));
}

#[test]
fn the_engine_range_is_checked_against_the_running_version() {
    let text = r#"{ "schemaVersion": 1, "id": "com.acme.next", "name": "Next", "version": "1.0.0",
                    "entry": "lib/libnext.so", "engine": { "nitejar": ">=0.2.0 <0.3 || ^1.4" },
                    "contributes": { "hooks": ["run.pre_prompt"] } }"#;
    let at = |v: Version| validate_manifest_json(text, &opts().running_version(v));
    assert!(at(Version::new(0, 1, 9)).is_err());
    assert!(at(Version::new(0, 2, 0)).is_ok());
    assert!(at(Version::new(0, 2, 99)).is_ok());
    assert!(at(Version::new(0, 3, 0)).is_err());
    assert!(at(Version::new(1, 3, 0)).is_err());
    assert!(at(Version::new(1, 9, 0)).is_ok());
    assert!(at(Version::parse("0.2.1-rc.1").unwrap()).is_err());
    let errors = at(Version::new(2, 0, 0)).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.errors()[0].path, "/engine/nitejar");
}

#[test]
fn the_builtin_prefix_is_for_builtins_only() {
    let text = r#"{ "schemaVersion": 1, "id": "builtin.telegram", "name": "Telegram", "version": "0.1.0",
                    "entry": "lib/x.so", "engine": { "nitejar": "*" },
                    "contributes": { "integrations": ["telegram"] } }"#;
    let refused = validate(text).unwrap_err();
    assert_eq!(refused.errors()[0].path, "/id");
    assert!(refused.errors()[0].message.contains("reserved"));
    assert!(validate_manifest_json(text, &opts().builtin(true)).is_ok());
}

#[test]
fn a_builtin_needs_no_entry_for_its_integrations_and_hooks() {
    // Shaped like the manifests in nitejar-builtins: the code is compiled in, so there is no `entry`.
    let text = r#"{ "schemaVersion": 1, "id": "builtin.echo", "name": "Echo", "version": "0.1.0",
                    "engine": { "nitejar": ">=0.1.0" },
                    "activation": { "onStartup": true, "onIntegrationTypes": ["echo"] },
                    "contributes": { "integrations": ["echo"], "hooks": ["response.post_deliver"] } }"#;
    let valid = validate_manifest_json(text, &opts().builtin(true)).unwrap();
    assert!(!valid.manifest.is_declarative());
    insta::assert_snapshot!("builtin__as_third_party", errors_of(text));
}

#[test]
fn a_per_target_entry_needs_this_platform_only_when_a_target_is_asked_for() {
    let text = r#"{ "schemaVersion": 1, "id": "com.acme.mac", "name": "Mac only", "version": "0.1.0",
                    "entry": { "aarch64-apple-darwin": "lib/libmac.dylib" }, "engine": { "nitejar": "*" },
                    "contributes": { "hooks": ["model.post_call"] } }"#;
    let errors = validate(text).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "/entry: has no library for this platform (x86_64-unknown-linux-gnu); it lists aarch64-apple-darwin. Build the plugin for x86_64-unknown-linux-gnu and add it here\n"
    );
    assert!(validate_manifest_json(text, &opts().target(None)).is_ok());
    let for_mac = opts().target(Some("aarch64-apple-darwin".into()));
    assert!(validate_manifest_json(text, &for_mac).is_ok());
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests/good/minimal.json"),
    )
    .unwrap();
    assert!(validate(&format!("\u{feff}{text}")).is_ok());
}

#[test]
fn errors_serialise_as_a_list_of_path_and_message() {
    let errors = validate(r#"{ "schemaVersion": 1, "id": "x", "name": "X", "version": "1.0.0", "engine": { "nitejar": "*" } }"#)
        .unwrap_err();
    insta::assert_json_snapshot!("json__errors", errors);
}

/// A package directory of its own under Cargo's scratch space for integration tests.
fn package(name: &str, manifest: &Value, files: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("manifest-packages")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("nitejar.plugin.json"),
        serde_json::to_vec_pretty(manifest).unwrap(),
    )
    .unwrap();
    for file in files {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"not really a library").unwrap();
    }
    dir
}

fn code_plugin(entry: Value) -> Value {
    json!({
        "schemaVersion": 1, "id": "com.acme.pkg", "name": "Pkg", "version": "0.1.0",
        "entry": entry, "engine": { "nitejar": ">=0.1.0 <1.0.0" },
        "contributes": { "hooks": ["tool.pre_exec"] }
    })
}

fn package_errors(dir: &Path) -> String {
    match validate_package_dir(dir, &opts()) {
        Ok(_) => panic!("{} should not validate", dir.display()),
        Err(errors) => errors
            .to_string()
            .replace(&dir.display().to_string(), "<package>"),
    }
}

#[test]
fn a_package_on_disk_validates_when_its_files_are_there() {
    let dir = package(
        "good",
        &code_plugin(json!("lib/libpkg.so")),
        &["lib/libpkg.so"],
    );
    let valid = validate_package_dir(&dir, &opts()).unwrap();
    assert_eq!(valid.manifest.id, "com.acme.pkg");

    let per_target = code_plugin(json!({
        "x86_64-unknown-linux-gnu": "lib/linux/libpkg.so",
        "aarch64-apple-darwin": "lib/mac/libpkg.dylib"
    }));
    // Only this platform's library has to be shipped.
    let dir = package("per-target", &per_target, &["lib/linux/libpkg.so"]);
    assert!(validate_package_dir(&dir, &opts()).is_ok());

    let declarative = json!({
        "schemaVersion": 1, "id": "com.acme.skills", "name": "Skills", "version": "0.1.0",
        "engine": { "nitejar": "*" }, "icon": "icon.svg",
        "contributes": { "skills": ["triage"] }
    });
    let dir = package(
        "declarative",
        &declarative,
        &["skills/triage/SKILL.md", "icon.svg"],
    );
    assert!(validate_package_dir(&dir, &opts()).is_ok());
}

#[test]
fn a_package_on_disk_reports_missing_and_escaping_files() {
    let dir = package("missing-entry", &code_plugin(json!("lib/libpkg.so")), &[]);
    let missing = package_errors(&dir);

    let dir = package(
        "entry-is-a-directory",
        &code_plugin(json!("lib")),
        &["lib/libpkg.so"],
    );
    let directory = package_errors(&dir);

    let per_target = code_plugin(json!({ "x86_64-unknown-linux-gnu": "lib/linux/libpkg.so" }));
    let dir = package("per-target-missing", &per_target, &[]);
    let per_target_missing = package_errors(&dir);

    let declarative = json!({
        "schemaVersion": 1, "id": "com.acme.skills", "name": "Skills", "version": "0.1.0",
        "engine": { "nitejar": "*" }, "icon": "icon.png",
        "contributes": { "skills": ["triage", "escalation"] }
    });
    let dir = package(
        "declarative-missing-skill",
        &declarative,
        &["skills/triage/SKILL.md"],
    );
    let skills = package_errors(&dir);

    insta::assert_snapshot!(
        "package__missing_files",
        [missing, directory, per_target_missing, skills].join("---\n")
    );
}

#[cfg(unix)]
#[test]
fn an_entry_that_leaves_the_package_through_a_symlink_is_refused() {
    let outside = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifest-packages/outside.so");
    fs::create_dir_all(outside.parent().unwrap()).unwrap();
    fs::write(&outside, b"someone else's code").unwrap();
    let dir = package("symlink", &code_plugin(json!("lib/libpkg.so")), &[]);
    fs::create_dir_all(dir.join("lib")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("lib/libpkg.so")).unwrap();
    assert_eq!(
        package_errors(&dir),
        "/entry: `lib/libpkg.so` resolves outside the package through a symbolic link; ship the file itself\n"
    );
}

#[test]
fn a_missing_or_unreadable_manifest_is_one_error_for_the_whole_file() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifest-packages");
    let empty = root.join("empty");
    let _ = fs::remove_dir_all(&empty);
    fs::create_dir_all(&empty).unwrap();
    let errors = validate_package_dir(&empty, &opts()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.errors()[0].path, "");
    assert_eq!(
        errors.to_string(),
        format!(
            "there is no nitejar.plugin.json in {}; a plugin package has its manifest at its root\n",
            empty.display()
        )
    );

    let nowhere = root.join("does-not-exist");
    let errors = validate_package_dir(&nowhere, &opts()).unwrap_err();
    assert!(
        errors.to_string().contains("is not a directory"),
        "{errors}"
    );

    let broken = root.join("broken-json");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("nitejar.plugin.json"), "{ \"id\": ").unwrap();
    let errors = validate_package_dir(&broken, &opts()).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "the manifest is not valid JSON: EOF while parsing a value at line 1 column 8\n"
    );

    let binary = root.join("binary");
    fs::create_dir_all(&binary).unwrap();
    fs::write(binary.join("nitejar.plugin.json"), [0xff, 0xfe, 0x00]).unwrap();
    let errors = validate_package_dir(&binary, &opts()).unwrap_err();
    assert!(errors.to_string().contains("is not UTF-8 text"), "{errors}");
}

#[test]
fn contributions_must_match_what_the_library_registers() {
    let valid = validate(
        r#"{ "schemaVersion": 1, "id": "com.acme.jira", "name": "Jira", "version": "1.0.0",
             "entry": "lib/libjira.so", "engine": { "nitejar": "*" },
             "contributes": { "integrations": ["jira"], "hooks": ["tool.pre_exec", "model.pre_call"],
                              "skills": ["jira-triage"] } }"#,
    )
    .unwrap();
    let exact = Contributions::new(
        vec!["jira".into()],
        vec![HookName::ModelPreCall, HookName::ToolPreExec],
        vec![],
    );
    assert_eq!(check_contributions(&valid.manifest, &exact), Ok(()));

    let drifted = Contributions::new(
        vec!["jira-cloud".into()],
        vec![HookName::ToolPreExec, HookName::ResponsePreDeliver],
        vec!["jira-triage".into(), "jira-search".into()],
    );
    let errors = check_contributions(&valid.manifest, &drifted).unwrap_err();
    insta::assert_snapshot!("contributions__drift", errors.to_string());
}

/// Wording the schema pass falls back to when the semantic checks did not explain a value the schema
/// refused. Authors should never see it: each schema rule has a semantic counterpart that says what
/// to write instead.
const GENERIC: [&str; 6] = [
    "does not have the required form",
    "must be one of:",
    "lists the same value more than once",
    "has a key of the wrong form",
    "does not match the manifest schema",
    "must be `1`",
];

#[test]
fn every_value_the_schema_refuses_gets_a_specific_message() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let base = json!({
        "schemaVersion": 1, "id": "com.acme.jira", "name": "Jira", "version": "1.0.0",
        "entry": "lib/libjira.so", "engine": { "nitejar": "*" }, "permissions": {},
        "activation": { "onHooks": ["tool.pre_exec"] },
        "contributes": { "integrations": ["jira"], "hooks": ["tool.pre_exec"], "skills": ["triage"] }
    });
    let cases: Vec<(&str, Value)> = vec![
        ("/schemaVersion", json!(1.5)),
        ("/schemaVersion", json!(0)),
        ("/id", json!("com.acme-")),
        ("/id", json!("1com.x")),
        ("/id", json!("com.ac_me")),
        ("/id", json!("com.acme.")),
        ("/id", json!(".acme")),
        ("/id", json!("com.acme.é")),
        ("/name", json!("")),
        ("/version", json!("1.0.0-01")),
        ("/version", json!("01.0.0")),
        ("/version", json!("1.0.0-")),
        ("/version", json!("1.0.0+")),
        ("/version", json!("1.0.0-a..b")),
        ("/version", json!("1.0.0-é")),
        ("/version", json!(" 1.0.0")),
        ("/engine/nitejar", json!("")),
        ("/entry", json!("")),
        ("/entry", json!({})),
        (
            "/entry",
            json!({ "X86_64-unknown-linux-gnu": "a.so", "x86_64-unknown-linux-gnu": "b.so" }),
        ),
        ("/entry", json!({ "x86_64-unknown-linux-gnu": "" })),
        ("/homepage", json!("https://")),
        ("/homepage", json!("https://exa mple.com")),
        ("/homepage", json!("ftp://example.com")),
        ("/repository", json!("")),
        ("/icon", json!("")),
        ("/permissions/network", json!(["", "a", "a"])),
        (
            "/permissions/network",
            json!(["[::FFFF]", "ä.example", "x.example:", "x.example:1a"]),
        ),
        (
            "/permissions/network",
            json!(["[]", "[::1]:", "a.b.c:123456", "*.", "*.*.example.com"]),
        ),
        ("/permissions/secrets", json!(["ä", "a b", "", "x", "x"])),
        ("/permissions/secrets", json!(["a".repeat(129)])),
        ("/permissions/filesystemRead", json!(["", "x", "x"])),
        (
            "/activation/onHooks",
            json!(["tool.pre_exec", "tool.pre_exec", "Tool.Pre_Exec"]),
        ),
        (
            "/activation/onIntegrationTypes",
            json!(["jira", "jira", "Jira"]),
        ),
        (
            "/contributes/integrations",
            json!(["jira", "jira", "", "a".repeat(65)]),
        ),
        (
            "/contributes/hooks",
            json!(["tool.pre_exec", "tool.pre_exec", "x"]),
        ),
        (
            "/contributes/skills",
            json!(["triage", "triage", "", "_x", "a".repeat(65)]),
        ),
    ];
    for (pointer, value) in cases {
        let mut doc = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = value.clone();
        let refused_by_schema = !validator.is_valid(&doc);
        let errors = match validate_manifest_json(&doc.to_string(), &opts().target(None)) {
            Ok(_) => {
                assert!(
                    !refused_by_schema,
                    "{pointer} = {value}: the schema refuses it, we accept it"
                );
                continue;
            }
            Err(errors) => errors.to_string(),
        };
        for generic in GENERIC {
            assert!(!errors.contains(generic), "{pointer} = {value}:\n{errors}");
        }
    }
}

#[test]
fn no_snapshot_uses_the_generic_fallback_wording() {
    for (name, path) in fixtures("bad") {
        let errors = errors_of(&fs::read_to_string(&path).unwrap());
        for generic in GENERIC {
            assert!(!errors.contains(generic), "{name}:\n{errors}");
        }
    }
}
