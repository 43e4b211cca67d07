//! `nitejar plugin validate <dir>`: prints every problem, exits non-zero on any.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

use std::path::Path;
use std::process::Command;

fn nitejar(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .args(args)
        .output()
        .expect("run nitejar");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn package(dir: &Path, manifest: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("nitejar.plugin.json"), manifest).unwrap();
}

#[test]
fn a_valid_package_passes() {
    let dir = std::env::temp_dir().join(format!("nj-validate-ok-{}", std::process::id()));
    package(
        &dir,
        r#"{"schemaVersion":1,"id":"com.acme.skills","name":"Acme skills","version":"1.2.0",
            "engine":{"nitejar":"^0.1"},"contributes":{"skills":["triage"]}}"#,
    );
    std::fs::create_dir_all(dir.join("skills/triage")).unwrap();
    std::fs::write(
        dir.join("skills/triage/SKILL.md"),
        "---\nname: triage\n---\nSort.",
    )
    .unwrap();
    let (code, stdout, stderr) = nitejar(&["plugin", "validate", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("com.acme.skills 1.2.0: valid"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_problem_is_printed_and_the_exit_code_is_non_zero() {
    let dir = std::env::temp_dir().join(format!("nj-validate-bad-{}", std::process::id()));
    package(
        &dir,
        r#"{"schemaVersion":1,"id":"builtin.mine","name":"x","version":"1.0",
            "engine":{"nitejar":">=9.0.0"},"entry":"../lib.so",
            "contributes":{"hooks":["tool.pre_run"]}}"#,
    );
    let (code, _stdout, stderr) = nitejar(&["plugin", "validate", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    for path in [
        "/id:",
        "/version:",
        "/engine/nitejar:",
        "/entry:",
        "/contributes/hooks/0:",
    ] {
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
    }
    let (code, stdout, _) = nitejar(&["plugin", "validate", "--json", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["valid"], false);
    assert!(out["errors"].as_array().unwrap().len() >= 5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn version_is_printed() {
    let (code, stdout, _) = nitejar(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("nitejar {}", env!("CARGO_PKG_VERSION"))
    );
}
