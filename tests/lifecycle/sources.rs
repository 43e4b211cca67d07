//! One pipeline, four sources: a local path, an uploaded .tgz (with and without `package/`, in
//! memory or in a file the server received it into), npm (a local registry speaking the real
//! protocol, correct and wrong integrity) and git (a real repository in a temp dir, over file://
//! and over smart HTTP).

use std::sync::Arc;

use base64::Engine as _;
use nitejar_core::install::archive::ArchiveFile;
use nitejar_core::install::{InstallSource, NpmSpec};
use nitejar_core::lifecycle::LifecycleError;
use nitejar_suite::local_http::{LocalHttp, Received, Reply};
use serde_json::json;
use sha2::{Digest, Sha512};

use crate::on_both_backends;
use crate::support::{greeter, tgz, write_dir, Env, GREETER};
use crate::testdb::TestDb;

async fn assert_installed_disabled(env: &Env, version: &str, kind: &str) {
    let row = env
        .store
        .get_plugin(GREETER)
        .await
        .unwrap()
        .expect("plugin row");
    assert!(!row.enabled, "installed means disabled");
    assert_eq!(row.current_version.as_deref(), Some(version));
    assert_eq!(row.source_kind, kind);
    let dir = env.manager.layout().version_dir(GREETER, version);
    assert!(
        dir.join("nitejar.plugin.json").is_file(),
        "{}",
        dir.display()
    );
    assert_eq!(
        env.manager.layout().current_version(GREETER).as_deref(),
        Some(version)
    );
    let artifact = env
        .store
        .get_plugin_artifact(GREETER, version)
        .await
        .unwrap()
        .expect("artifact");
    assert_eq!(Some(artifact.checksum), row.current_checksum);
    assert!(
        env.runtime.registry().plugin(GREETER).is_none(),
        "nothing runs before enable"
    );
    let receipts = env.receipts_of(GREETER, "install").await;
    assert_eq!(receipts[0].0, "ok");
    assert_eq!(receipts[0].1["sourceKind"], kind);
}

async fn path_and_upload(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    // A local path is copied, never run in place.
    let src = tempfile::tempdir().unwrap();
    let dir = write_dir(src.path(), &greeter(1));
    std::fs::create_dir_all(dir.join("target")).unwrap();
    std::fs::write(
        dir.join("target/huge.bin"),
        b"build output is not part of a package",
    )
    .unwrap();
    let outcome = env
        .manager
        .install(InstallSource::Path(dir.clone()))
        .await
        .unwrap();
    assert_installed_disabled(&env, "1.0.0", "local").await;
    assert!(!outcome.dir.starts_with(&dir));
    assert!(!outcome.dir.join("target").exists());
    // The same package again: nothing to do. Another version: that is an upgrade.
    let again = env.manager.install(InstallSource::Path(dir)).await.unwrap();
    assert!(again.already_installed);
    assert_eq!(again.digest, outcome.digest);
    let other = env
        .manager
        .install(InstallSource::Upload {
            name: "g2.tgz".into(),
            bytes: tgz(&greeter(2)),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(other, LifecycleError::AlreadyInstalled { .. }),
        "{other}"
    );
    assert!(other.to_string().contains("nitejar plugin upgrade"));

    // Uploads, with npm's `package/` prefix and without; same files, same digest.
    purge(&env).await;
    let env2 = Env::new(&db, |_| {}).await;
    let with_prefix = tgz(&greeter(1));
    let a = env2
        .manager
        .install(InstallSource::Upload {
            name: "g.tgz".into(),
            bytes: with_prefix,
        })
        .await
        .unwrap();
    assert_installed_disabled(&env2, "1.0.0", "upload").await;
    assert_eq!(
        a.digest, outcome.digest,
        "the digest does not depend on the source"
    );
    let bare = bare_tgz(&greeter(1));
    purge(&env2).await;
    let env3 = Env::new(&db, |_| {}).await;
    let b = env3
        .manager
        .install(InstallSource::Upload {
            name: "bare.tgz".into(),
            bytes: bare,
        })
        .await
        .unwrap();
    assert_eq!(b.digest, outcome.digest);
}

/// An upload the server has written to a file installs from that file and is recorded exactly as
/// the same upload in memory: same kind, same reference, same digest, same stored package. The file
/// stays the caller's: the installer neither moves nor removes it, whatever the outcome.
async fn upload_from_a_file(db: TestDb) {
    let bytes = tgz(&greeter(1));
    let env = Env::new(&db, |_| {}).await;
    let in_memory = env
        .manager
        .install(InstallSource::Upload {
            name: "g.tgz".into(),
            bytes: bytes.clone(),
        })
        .await
        .unwrap();
    let row_memory = env.store.get_plugin(GREETER).await.unwrap().unwrap();
    let receipt_memory = env.receipts_of(GREETER, "install").await[0].1.clone();
    purge(&env).await;

    let env2 = Env::new(&db, |_| {}).await;
    let received = tempfile::NamedTempFile::new_in(env2.data.path()).unwrap();
    std::fs::write(received.path(), &bytes).unwrap();
    let from_file = env2
        .manager
        .install(InstallSource::UploadFile {
            name: "g.tgz".into(),
            path: received.path().to_path_buf(),
        })
        .await
        .unwrap();
    assert_installed_disabled(&env2, "1.0.0", "upload").await;
    let row_file = env2.store.get_plugin(GREETER).await.unwrap().unwrap();
    assert_eq!(row_file.source_kind, row_memory.source_kind);
    assert_eq!(row_file.source_ref.as_deref(), Some("g.tgz"));
    assert_eq!(row_file.source_ref, row_memory.source_ref);
    assert_eq!(
        (from_file.source_kind, from_file.source_ref.as_str()),
        (in_memory.source_kind, in_memory.source_ref.as_str())
    );
    assert_eq!(from_file.digest, in_memory.digest);
    let receipt_file = env2.receipts_of(GREETER, "install").await[0].1.clone();
    for key in ["source", "sourceKind", "sourceRef", "digest"] {
        assert_eq!(receipt_file[key], receipt_memory[key], "receipt {key}");
    }
    assert_eq!(receipt_file["source"], "upload g.tgz");
    let artifact = env2
        .store
        .get_plugin_artifact(GREETER, "1.0.0")
        .await
        .unwrap()
        .expect("artifact");
    assert_eq!(
        artifact.bytes, bytes,
        "the stored package is the uploaded file"
    );
    assert_eq!(std::fs::read(received.path()).unwrap(), bytes);

    // Not an archive: refused as such, nothing installed, and the file is still the caller's.
    purge(&env2).await;
    let env3 = Env::new(&db, |_| {}).await;
    let garbage = tempfile::NamedTempFile::new_in(env3.data.path()).unwrap();
    std::fs::write(garbage.path(), vec![0x5a; 1024 * 1024]).unwrap();
    let err = env3
        .manager
        .install(InstallSource::UploadFile {
            name: "junk.tgz".into(),
            path: garbage.path().to_path_buf(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LifecycleError::Install(nitejar_core::install::InstallError::NotAnArchive(_))
        ),
        "{err}"
    );
    assert!(env3.store.get_plugin(GREETER).await.unwrap().is_none());
    assert!(garbage.path().is_file());
}

async fn purge(env: &Env) {
    let all = nitejar_core::lifecycle::UninstallOptions {
        purge_files: true,
        purge_data: true,
    };
    env.manager.uninstall(GREETER, all).await.unwrap();
}

/// A .tgz whose entries sit at the root (no `package/`).
fn bare_tgz(files: &[ArchiveFile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.contents.len() as u64);
        header.set_mode(
            if f.kind == nitejar_core::install::digest::FileKind::Executable {
                0o755
            } else {
                0o644
            },
        );
        builder
            .append_data(&mut header, &f.path, f.contents.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn integrity(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes))
    )
}

/// A registry with `greeter` 1.0.0 and 2.0.0 and `broken` whose tarball does not match its
/// integrity. It requires the bearer token `t0ken` for everything.
fn registry() -> LocalHttp {
    let v1 = Arc::new(tgz(&greeter(1)));
    let v2 = Arc::new(tgz(&greeter(2)));
    LocalHttp::start(move |r: &Received| {
        if r.header("authorization") != Some("Bearer t0ken") {
            return Reply::text(401, "unauthorized");
        }
        let host = r.header("host").unwrap_or("127.0.0.1").to_string();
        let tarball = |name: &str| format!("http://{host}/tarballs/{name}");
        let doc = |versions: serde_json::Value, latest: &str| Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({ "name": "x", "dist-tags": { "latest": latest }, "versions": versions })
                .to_string()
                .into_bytes(),
        };
        let bytes = |b: &[u8]| Reply {
            status: 200,
            headers: vec![],
            body: b.to_vec(),
        };
        match r.path.as_str() {
            "/greeter" => doc(
                json!({
                    "1.0.0": { "dist": { "tarball": tarball("g-1.0.0.tgz"), "integrity": integrity(&v1) } },
                    "2.0.0": { "dist": { "tarball": tarball("g-2.0.0.tgz"), "integrity": integrity(&v2) } },
                }),
                "2.0.0",
            ),
            "/broken" => doc(
                json!({ "1.0.0": { "dist": { "tarball": tarball("g-1.0.0.tgz"), "integrity": integrity(b"something else") } } }),
                "1.0.0",
            ),
            "/tarballs/g-1.0.0.tgz" => bytes(&v1),
            "/tarballs/g-2.0.0.tgz" => bytes(&v2),
            _ => Reply::text(404, "not found"),
        }
    })
}

fn npm(spec: &str) -> InstallSource {
    InstallSource::Npm(NpmSpec::parse(spec).unwrap())
}

async fn from_npm(db: TestDb) {
    let server = registry();
    let env = Env::new(&db, |o| {
        o.npm.registry = server.url("/");
        o.npm.token = Some("t0ken".into());
    })
    .await;
    // A range picks the highest matching version, as npm does.
    let outcome = env
        .manager
        .install(npm("greeter@>=1.0.0 <2.0.0"))
        .await
        .unwrap();
    assert_eq!(outcome.version, "1.0.0");
    assert!(
        outcome.source_ref.starts_with("greeter@1.0.0 (sha512-"),
        "{}",
        outcome.source_ref
    );
    assert_installed_disabled(&env, "1.0.0", "npm").await;
    // Upgrade without a source fetches `latest` again.
    let up = env
        .manager
        .upgrade(GREETER, None, Default::default())
        .await
        .unwrap();
    assert_eq!((up.from.as_str(), up.to.as_str()), ("1.0.0", "2.0.0"));

    // A tarball that is not what the registry vouched for: refused, and no trace but a receipt.
    purge(&env).await;
    let env2 = Env::new(&db, |o| {
        o.npm.registry = server.url("");
        o.npm.token = Some("t0ken".into());
    })
    .await;
    let err = env2.manager.install(npm("broken")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match its dist.integrity"),
        "{err}"
    );
    assert!(env2.store.get_plugin(GREETER).await.unwrap().is_none());
    assert!(!env2.manager.layout().plugin_dir(GREETER).exists());
    assert_eq!(
        std::fs::read_dir(env2.manager.layout().staging_dir())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    let receipts = env2.receipts_of("broken", "install").await;
    assert_eq!(receipts[0].0, "error");
    // No token: the registry's refusal says what to set.
    let env3 = Env::new(&db, |o| o.npm.registry = server.url("")).await;
    let err = env3.manager.install(npm("greeter")).await.unwrap_err();
    assert!(err.to_string().contains("NITEJAR_NPM_TOKEN"), "{err}");
    let err = env.manager.install(npm("nope@^1")).await.unwrap_err();
    assert!(err.to_string().contains("not in the npm registry"), "{err}");
}

/// A repository with 1.0.0 tagged `v1` on `main`, and 2.0.0 on branch `next`.
pub(crate) fn git_repo() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let commit = |files: &[ArchiveFile], parent: Option<git2::Oid>, branch: &str| {
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if f.file_name() != ".git" {
                let _ = std::fs::remove_dir_all(f.path());
                let _ = std::fs::remove_file(f.path());
            }
        }
        write_dir(dir.path(), files);
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let parents: Vec<git2::Commit> = parent
            .map(|p| repo.find_commit(p).unwrap())
            .into_iter()
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        let id = repo
            .commit(
                Some(&format!("refs/heads/{branch}")),
                &sig,
                &sig,
                "release",
                &tree,
                &refs,
            )
            .unwrap();
        id
    };
    let first = commit(&greeter(1), None, "main");
    repo.set_head("refs/heads/main").unwrap();
    repo.tag_lightweight("v1", &repo.find_object(first, None).unwrap(), false)
        .unwrap();
    let second = commit(&greeter(2), Some(first), "next");
    (dir, first.to_string(), second.to_string())
}

async fn from_git(db: TestDb) {
    let (repo, first, second) = git_repo();
    let url = format!("file://{}", repo.path().display());
    let env = Env::new(&db, |_| {}).await;
    let outcome = env
        .manager
        .install(InstallSource::detect(&format!("git+{url}#v1")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        outcome.source_ref,
        format!("{url}#{first}"),
        "the resolved commit is recorded"
    );
    assert_installed_disabled(&env, "1.0.0", "git").await;
    assert!(!outcome.dir.join(".git").exists());
    let up = env
        .manager
        .upgrade(
            GREETER,
            Some(InstallSource::detect(&format!("{url}#next")).unwrap()),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(up.to, "2.0.0");
    let row = env.store.get_plugin(GREETER).await.unwrap().unwrap();
    assert_eq!(row.source_ref, Some(format!("{url}#{second}")));
    let err = env
        .manager
        .install(InstallSource::detect(&format!("{url}#no-such-ref")).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no branch, tag or commit `no-such-ref`"),
        "{err}"
    );
}

on_both_backends!(path_and_upload, upload_from_a_file, from_npm, from_git);

/// `git http-backend` behind the local HTTP server: the smart-HTTP transport over reqwest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_over_smart_http() {
    let (repo, first, _) = git_repo();
    let root = repo.path().parent().unwrap().to_path_buf();
    let name = repo
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let server = LocalHttp::start(move |r: &Received| http_backend(&root, r));
    // Bound for the whole test: the database lives in the TestDb's temporary directory.
    let db = TestDb::sqlite();
    let env = Env::new(&db, |_| {}).await;
    let url = server.url(&format!("/{name}#v1"));
    let outcome = env
        .manager
        .install(InstallSource::detect(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(outcome.version, "1.0.0");
    assert!(
        outcome.source_ref.ends_with(&first),
        "{}",
        outcome.source_ref
    );
}

/// Runs `git http-backend` as a CGI program for one request.
fn http_backend(root: &std::path::Path, r: &Received) -> Reply {
    use std::io::Write;
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    let mut child = std::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &r.method)
        .env("CONTENT_TYPE", r.header("content-type").unwrap_or(""))
        .env("CONTENT_LENGTH", r.body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git http-backend");
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, 2))
        })
        .expect("CGI headers");
    let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
    let mut reply = Reply {
        status: 200,
        headers: vec![],
        body: out.stdout[split.0 + split.1..].to_vec(),
    };
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                reply.status = v.trim()[..3].parse().unwrap_or(500);
            } else {
                reply
                    .headers
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    reply
}
