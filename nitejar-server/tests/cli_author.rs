//! The author's commands that compile nothing: `plugin new` where the SDK cannot be resolved,
//! `plugin keygen` (unprotected, refusals), keys made by `minisign` itself (both ways),
//! `plugin pack`'s package.json (written, kept, checked)
//! and `plugin schema`. A declarative (skills-only) package stands in for a built one, so these
//! run in seconds; `author_path.rs` walks the same path with a compiled plugin and real npm.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

fn nitejar(data: &DataDir, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nitejar"));
    command
        .current_dir(cwd)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .env("ENCRYPTION_KEY", KEY_HEX);
    for var in ["HOME", "CARGO", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    command.envs(env.iter().copied());
    let out = command.output().expect("run nitejar");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A skills-only package: no library to build.
fn declarative_package(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir.join("skills/tone")).expect("package dir");
    std::fs::write(dir.join("skills/tone/SKILL.md"), "Answer briefly.\n").expect("skill");
    let manifest = json!({
        "$schema": "./nitejar.plugin.schema.json",
        "schemaVersion": 1,
        "id": "com.example.tone",
        "name": "Tone",
        "version": version,
        "description": "Answers briefly.",
        "license": "MIT",
        "repository": "https://example.com/tone.git",
        "keywords": ["tone", "nitejar"],
        "engine": { "nitejar": ">=0.1.0 <1.0.0" },
        "contributes": { "skills": ["tone"] }
    });
    std::fs::write(dir.join("nitejar.plugin.json"), manifest.to_string()).expect("manifest");
}

/// The package.json inside a packed `.tgz` (read with the system's tar, as an operator would).
fn packed_package_json(tgz: &Path) -> Value {
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(tgz)
        .arg("package/package.json")
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "no package/package.json in {}: {}",
        tgz.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("package.json is JSON")
}

#[test]
fn plugin_new_says_what_to_do_when_the_sdk_cannot_be_resolved() {
    let data = DataDir::new();
    let work = data.path.join("author");
    // A cargo whose registry is an empty directory: nothing resolves, and nothing goes online.
    let cargo_home = data.path.join("cargo-home");
    let empty = data.path.join("empty-registry");
    std::fs::create_dir_all(&empty).expect("empty registry");
    std::fs::create_dir_all(&cargo_home).expect("cargo home");
    std::fs::create_dir_all(&work).expect("work");
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"empty\"\n\n[source.empty]\ndirectory = {:?}\n",
            empty.display().to_string()
        ),
    )
    .expect("cargo config");
    let cargo_home = cargo_home.to_string_lossy().into_owned();
    let env = [("CARGO_HOME", cargo_home.as_str())];

    let run = nitejar(&data, &work, &env, &["plugin", "new", "hello-plugin"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        !work.join("hello-plugin").exists(),
        "nothing half-made is left behind"
    );
    insta::assert_snapshot!("sdk_cannot_be_resolved", run.stderr);

    // The flag it offers works from there (and the variable is the same flag).
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nitejar-sdk");
    let sdk = sdk.to_string_lossy().into_owned();
    let mut with_path = env.to_vec();
    with_path.push(("NITEJAR_SDK_PATH", sdk.as_str()));
    let run = nitejar(
        &data,
        &work,
        &with_path,
        &["plugin", "new", "hello-plugin", "--json"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let cargo_toml = std::fs::read_to_string(work.join("hello-plugin/Cargo.toml")).expect("crate");
    assert!(
        cargo_toml.contains("nitejar-sdk = { path = "),
        "{cargo_toml}"
    );

    // A path that is not the SDK is refused, naming it.
    let run = nitejar(
        &data,
        &work,
        &env,
        &["plugin", "new", "other-plugin", "--sdk-path", "."],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is not the nitejar-sdk crate"),
        "{}",
        run.stderr
    );
    assert!(!work.join("other-plugin").exists());
}

#[test]
fn the_scaffold_readme_walks_the_whole_path() {
    let data = DataDir::new();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nitejar-sdk");
    let run = nitejar(
        &data,
        &data.path,
        &[],
        &[
            "plugin",
            "new",
            "hello-plugin",
            "--sdk-path",
            sdk.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let readme = std::fs::read_to_string(data.path.join("hello-plugin/README.md")).expect("README");
    insta::assert_snapshot!("scaffold_readme", readme);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path.join("hello-plugin/nitejar.plugin.json"))
            .expect("manifest"),
    )
    .expect("JSON");
    let validate = nitejar(
        &data,
        &data.path,
        &[],
        &["plugin", "validate", "hello-plugin"],
    );
    // Valid but for the library, which only a build makes.
    assert!(
        validate.stderr.contains("entry") && !validate.stderr.contains("$schema"),
        "the $schema key is accepted: {}",
        validate.stderr
    );
    assert_eq!(
        manifest["config"]["schema"]["properties"]["signature"]["default"],
        "— hello-plugin"
    );
}

#[test]
fn keygen_unprotected_signs_what_a_guarded_install_trusts() {
    let data = DataDir::new();
    let work = data.path.join("author");
    declarative_package(&work.join("tone"), "1.2.0");

    let run = nitejar(
        &data,
        &work,
        &[],
        &["plugin", "keygen", "--out", "keys", "--unprotected"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let public = std::fs::read_to_string(work.join("keys/minisign.pub")).expect("minisign.pub");
    let key_line = public.lines().nth(1).expect("the key line").to_string();
    let key_id = public
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .expect("the key id")
        .to_string();
    let secret = std::fs::read_to_string(work.join("keys/minisign.key")).expect("minisign.key");
    assert!(
        secret.starts_with("untrusted comment: "),
        "a minisign key box"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(work.join("keys/minisign.key"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret key is its owner's only");
    }
    let shown = run
        .stdout
        .replace(&key_line, "[public key line]")
        .replace(&key_id, "[key id]");
    insta::assert_snapshot!("keygen_unprotected", shown);

    // A password in the environment does not get in the way of a key that has none.
    let pack = nitejar(
        &data,
        &work,
        &[("NITEJAR_SIGN_PASSWORD", "unused")],
        &[
            "plugin",
            "pack",
            "tone",
            "--sign",
            "keys/minisign.key",
            "--json",
        ],
    );
    assert_eq!(pack.code, 0, "{}{}", pack.stdout, pack.stderr);
    assert_eq!(pack.json["packed"]["signedBy"], key_id.as_str());
    let file = work.join(pack.json["packed"]["file"].as_str().expect("file"));
    let install = nitejar(
        &data,
        &work,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded"),
            ("NITEJAR_PLUGIN_TRUSTED_KEYS", key_line.as_str()),
        ],
        &["plugin", "install", file.to_str().expect("utf-8"), "--json"],
    );
    assert_eq!(install.code, 0, "{}{}", install.stdout, install.stderr);
    assert_eq!(install.json["installed"]["trustLevel"], "trusted");

    // Keys are not replaced by accident, and a protected key needs a password.
    let again = nitejar(&data, &work, &[], &["plugin", "keygen", "--out", "keys"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("exists already") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    let no_password = nitejar(&data, &work, &[], &["plugin", "keygen", "--out", "other"]);
    assert_eq!(no_password.code, 1);
    assert!(
        no_password.stderr.contains("NITEJAR_SIGN_PASSWORD")
            && no_password.stderr.contains("--unprotected"),
        "{}",
        no_password.stderr
    );
    assert!(!work.join("other/minisign.key").exists());
}

/// `minisign` with its arguments, `input` on its standard input (its password prompts read it
/// when no terminal is attached).
fn minisign(cwd: &Path, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new("minisign")
        .current_dir(cwd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run minisign");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("minisign's input");
    }
    let out = child.wait_with_output().expect("minisign");
    assert!(
        out.status.success(),
        "minisign {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The key id on the first line of a `minisign.pub` and its base64 key line.
fn public_key(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("public key file");
    // minisign writes the id without its leading zeros (`%llX`); nitejar always shows its 16
    // hex digits. One key in 256 starts with a zero byte.
    let id = text
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .map(|id| format!("{id:0>16}"))
        .expect("the key id");
    let line = text.lines().nth(1).expect("the key line").to_string();
    (id, line)
}

/// Keys made by minisign itself: a password-protected one signs `pack --sign` (the password from
/// NITEJAR_SIGN_PASSWORD), its `.pub` line is what a guarded server trusts, and minisign verifies
/// the signature pack wrote. The other way round, minisign signs with a key `plugin keygen`
/// protected with a password. `scripts/install-test-deps.sh` installs minisign.
#[test]
fn keys_made_by_minisign_sign_what_a_guarded_install_trusts() {
    if Command::new("minisign").arg("-v").output().is_err() {
        eprintln!(
            "SKIPPED: `minisign` is not on PATH (scripts/install-test-deps.sh installs it); \
             keys made by minisign itself are not tried"
        );
        return;
    }
    let data = DataDir::new();
    let work = data.path.join("author");
    declarative_package(&work.join("tone"), "1.3.0");
    std::fs::create_dir_all(work.join("keys")).expect("keys dir");
    minisign(
        &work,
        &["-G", "-p", "keys/mini.pub", "-s", "keys/mini.key"],
        "correct horse\ncorrect horse\n",
    );
    let (key_id, key_line) = public_key(&work.join("keys/mini.pub"));

    // The wrong password opens nothing and says where the password comes from.
    let wrong = nitejar(
        &data,
        &work,
        &[("NITEJAR_SIGN_PASSWORD", "battery staple")],
        &["plugin", "pack", "tone", "--sign", "keys/mini.key"],
    );
    assert_eq!(wrong.code, 1, "{}{}", wrong.stdout, wrong.stderr);
    assert!(
        wrong.stderr.contains("NITEJAR_SIGN_PASSWORD"),
        "{}",
        wrong.stderr
    );

    let pack = nitejar(
        &data,
        &work,
        &[("NITEJAR_SIGN_PASSWORD", "correct horse")],
        &[
            "plugin",
            "pack",
            "tone",
            "--sign",
            "keys/mini.key",
            "--json",
        ],
    );
    assert_eq!(pack.code, 0, "{}{}", pack.stdout, pack.stderr);
    assert_eq!(pack.json["packed"]["signedBy"], key_id.as_str());
    let file = work.join(pack.json["packed"]["file"].as_str().expect("file"));

    // minisign accepts the signature: the signed message is the digest text.
    let digest = pack.json["packed"]["digest"].as_str().expect("digest");
    std::fs::write(work.join("digest.txt"), digest).expect("digest file");
    let sig = Command::new("tar")
        .arg("-xzOf")
        .arg(&file)
        .arg("package/nitejar.plugin.sig")
        .output()
        .expect("tar");
    assert!(sig.status.success(), "no nitejar.plugin.sig in the package");
    std::fs::write(work.join("digest.txt.minisig"), &sig.stdout).expect("signature file");
    let verified = minisign(
        &work,
        &["-V", "-p", "keys/mini.pub", "-m", "digest.txt"],
        "",
    );
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        said.contains("Signature and comment signature verified") && said.contains(digest),
        "{said}"
    );

    // A guarded server trusts the package by the `.pub` file's key line...
    let install = nitejar(
        &data,
        &work,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded"),
            ("NITEJAR_PLUGIN_TRUSTED_KEYS", key_line.as_str()),
        ],
        &["plugin", "install", file.to_str().expect("utf-8"), "--json"],
    );
    assert_eq!(install.code, 0, "{}{}", install.stdout, install.stderr);
    assert_eq!(install.json["installed"]["trustLevel"], "trusted");

    // ... and by nothing else: where another key is trusted, it installs untrusted and cannot
    // be enabled.
    minisign(
        &work,
        &["-G", "-W", "-p", "keys/other.pub", "-s", "keys/other.key"],
        "",
    );
    let (_, other_line) = public_key(&work.join("keys/other.pub"));
    let other = DataDir::new();
    let refused = nitejar(
        &other,
        &work,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_guarded"),
            ("NITEJAR_PLUGIN_TRUSTED_KEYS", other_line.as_str()),
        ],
        &["plugin", "install", file.to_str().expect("utf-8"), "--json"],
    );
    assert_eq!(refused.code, 0, "{}{}", refused.stdout, refused.stderr);
    let installed = &refused.json["installed"];
    assert_eq!(installed["trustLevel"], "untrusted");
    let blocker = installed["enableBlocker"].as_str().unwrap_or_default();
    assert!(
        blocker.contains(&format!("signed by key {key_id}, which is not in")),
        "enabling is refused and names the key that signed: {blocker}"
    );

    // The other way round: minisign signs with a key `plugin keygen` protected.
    let keygen = nitejar(
        &data,
        &work,
        &[("NITEJAR_SIGN_PASSWORD", "made by nitejar")],
        &["plugin", "keygen", "--out", "nk"],
    );
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    std::fs::write(work.join("note.txt"), "signed by minisign").expect("note");
    minisign(
        &work,
        &["-S", "-s", "nk/minisign.key", "-m", "note.txt"],
        "made by nitejar\n",
    );
    minisign(
        &work,
        &["-V", "-p", "nk/minisign.pub", "-m", "note.txt"],
        "",
    );
}

#[test]
fn pack_writes_a_package_json_or_keeps_the_authors() {
    let data = DataDir::new();
    let work = data.path.join("author");
    declarative_package(&work.join("tone"), "1.2.0");

    let run = nitejar(&data, &work, &[], &["plugin", "pack", "tone", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json["packed"]["npmName"], "nitejar-plugin-tone");
    let file = work.join(run.json["packed"]["file"].as_str().expect("file"));
    insta::assert_json_snapshot!("generated_package_json", packed_package_json(&file));
    assert!(
        !work.join("tone/package.json").exists(),
        "the author's directory is left as it was"
    );

    let run = nitejar(
        &data,
        &work,
        &[],
        &[
            "plugin",
            "pack",
            "tone",
            "--npm-name",
            "@example/tone",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(packed_package_json(&file)["name"], "@example/tone");
    let bad = nitejar(
        &data,
        &work,
        &[],
        &["plugin", "pack", "tone", "--npm-name", "Not A Name"],
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("is not an npm package name"),
        "{}",
        bad.stderr
    );

    // An author's own package.json is kept as written …
    let own = json!({ "name": "@acme/tone", "version": "1.2.0", "description": "ours", "private": false });
    std::fs::write(work.join("tone/package.json"), own.to_string()).expect("package.json");
    let run = nitejar(&data, &work, &[], &["plugin", "pack", "tone", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json["packed"]["npmName"], "@acme/tone");
    assert_eq!(packed_package_json(&file), own);
    // … and must agree with the manifest and the command line.
    let conflict = nitejar(
        &data,
        &work,
        &[],
        &[
            "plugin",
            "pack",
            "tone",
            "--npm-name",
            "nitejar-plugin-tone",
        ],
    );
    assert_eq!(conflict.code, 1);
    assert!(
        conflict.stderr.contains("drop --npm-name"),
        "{}",
        conflict.stderr
    );
    declarative_package(&work.join("tone"), "1.3.0");
    let stale = nitejar(&data, &work, &[], &["plugin", "pack", "tone"]);
    assert_eq!(stale.code, 1);
    insta::assert_snapshot!("package_json_version_differs", stale.stderr);
}

#[test]
fn plugin_schema_prints_the_manifest_schema() {
    let data = DataDir::new();
    let run = nitejar(&data, &data.path, &[], &["plugin", "schema"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let schema: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(schema["$id"], nitejar_sdk::manifest::SCHEMA_ID);
    assert_eq!(run.stdout, nitejar_sdk::manifest::SCHEMA);
}
