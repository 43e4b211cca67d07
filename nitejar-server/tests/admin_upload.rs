//! Plugin uploads are received into a file in the staging directory, never into memory: the install
//! limit is enforced on every chunk as the body arrives, a package that is not an archive is refused
//! by the installer streaming from that file, and the received file is gone when the answer comes.
//! Against a real server process, whose peak resident memory (`VmHWM` in `/proc/<pid>/status`) must
//! not grow by what was uploaded. The uploads are generated while they are sent, so the test does
//! not hold them either.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

// Memory is read from /proc.
#![cfg(target_os = "linux")]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use support::admin::*;
use support::packages::{signed_webhook, tgz};
use support::*;
use tokio::sync::Notify;

const MIB: u64 = 1024 * 1024;
/// `NITEJAR_PLUGIN_MAX_BYTES` of these servers.
const LIMIT: u64 = 128 * MIB;
/// How far the server's peak memory may grow during one large upload: the buffers of one request.
/// Buffering the upload grows it by at least the bytes accepted (up to the limit, 128 MiB here) and
/// again by the installer's copy of them.
const MAX_GROWTH: u64 = 48 * MIB;
const BOUNDARY: &str = "----nitejar-upload-boundary-5e2a";
const ID: &str = "dev.nitejar.examples.signed-webhook";

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// Peak resident set since the process started (`VmHWM`).
    hwm: u64,
    /// Resident set now (`VmRSS`).
    rss: u64,
}

fn memory(server: &Server) -> Memory {
    let path = format!("/proc/{}/status", server.pid());
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let kib = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in {path}:\n{status}"))
    };
    Memory {
        hwm: kib("VmHWM:") * 1024,
        rss: kib("VmRSS:") * 1024,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// Asserts the server's peak memory grew by less than [`MAX_GROWTH`] since `before`, and says by
/// how much (run with `--nocapture` to see the figures).
fn assert_memory_kept(server: &Server, before: Memory, what: &str) {
    let after = memory(server);
    let growth = after.hwm.saturating_sub(before.hwm);
    eprintln!(
        "{what}: VmHWM {} -> {} (+{}), VmRSS {} -> {}",
        mib(before.hwm),
        mib(after.hwm),
        mib(growth),
        mib(before.rss),
        mib(after.rss)
    );
    assert!(
        growth < MAX_GROWTH,
        "{what}: the server's peak memory grew by {} (VmHWM {} -> {}); an upload must not be held in memory",
        mib(growth),
        mib(before.hwm),
        mib(after.hwm)
    );
}

/// The server's peak memory once it is warm (the first admin request initialises what a request
/// needs), before the upload under test.
async fn warm_memory(server: &Server) -> Memory {
    let list = api(server, Method::GET, "/api/admin/plugins", None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    memory(server)
}

/// An upload body being generated, and what the test can see of it while it is sent.
struct StreamedPackage {
    body: reqwest::Body,
    /// File bytes handed to the client so far.
    produced: Arc<AtomicU64>,
    /// Ends a pause (see [`streamed_package`]).
    resume: Arc<Notify>,
}

/// A streamed multipart body with one file field `package` of `size` bytes of `fill`, produced
/// 1 MiB at a time while it is sent. With `hold_after`, the stream pauses before the chunk holding
/// that offset until `resume` is notified (or 20 s passed), so that the test can see whether the
/// server answered before the rest was sent.
fn streamed_package(size: u64, fill: u8, hold_after: Option<u64>) -> StreamedPackage {
    let produced = Arc::new(AtomicU64::new(0));
    let resume = Arc::new(Notify::new());
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"big.tgz\"\r\nContent-Type: application/gzip\r\n\r\n"
    )
    .into_bytes();
    let tail = format!("\r\n--{BOUNDARY}--\r\n").into_bytes();
    let (counter, wake) = (produced.clone(), resume.clone());
    let file = futures::stream::iter(0..size.div_ceil(MIB)).then(move |i| {
        let (counter, wake) = (counter.clone(), wake.clone());
        async move {
            let offset = i * MIB;
            if hold_after.is_some_and(|hold| offset <= hold && hold < offset + MIB) {
                let _ = tokio::time::timeout(Duration::from_secs(20), wake.notified()).await;
            }
            let chunk = vec![fill; (size - offset).min(MIB) as usize];
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            chunk
        }
    });
    let parts = futures::stream::once(async { head })
        .chain(file)
        .chain(futures::stream::once(async { tail }))
        .map(Ok::<_, std::io::Error>);
    StreamedPackage {
        body: reqwest::Body::wrap_stream(parts),
        produced,
        resume,
    }
}

/// Posts `body` as an API upload.
async fn post_upload(server: &Server, body: reqwest::Body) -> Answer {
    let resp = client()
        .post(server.url("/api/admin/plugins/upload"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the server did not answer the upload: {e:?}"));
    read(resp).await
}

/// A multipart body with the whole `package` file in it (small packages).
fn multipart(file_name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"{file_name}\"\r\nContent-Type: application/gzip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Uploads through the admin UI's form route, as a signed-in browser.
async fn ui_upload(server: &Server, session: &Session, file_name: &str, bytes: &[u8]) -> Answer {
    let resp = client()
        .post(server.url(&format!("/admin/plugins/upload?_csrf={}", session.csrf)))
        .header("cookie", format!("nitejar_session={}", session.cookie))
        .header("origin", &session.origin)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(file_name, bytes))
        .send()
        .await
        .expect("UI upload");
    read(resp).await
}

fn code(a: &Answer) -> String {
    a.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// What is left in `<data>/plugins/_staging` (nothing, or no directory at all, once every install
/// has finished).
fn staging_leftovers(data: &DataDir) -> Vec<String> {
    std::fs::read_dir(data.path.join("plugins/_staging"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn third_party_plugins(server: &Server) -> Vec<Value> {
    let list = api(server, Method::GET, "/api/admin/plugins", None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["origin"] != "builtin")
        .collect()
}

#[tokio::test]
async fn an_upload_past_the_limit_is_refused_as_it_arrives_without_filling_memory() {
    let data = DataDir::new();
    let server = start_admin(&data, &[("NITEJAR_PLUGIN_MAX_BYTES", LIMIT.to_string())]);
    let before = warm_memory(&server).await;

    // 200 MiB, paused 8 MiB past the limit: the refusal must come while the client still holds
    // the rest (a server that read everything before judging would answer only after the pause).
    let size = 200 * MIB;
    let upload = streamed_package(size, b'Z', Some(LIMIT + 8 * MIB));
    let answer = post_upload(&server, upload.body).await;
    let produced_at_answer = upload.produced.load(Ordering::SeqCst);
    // Let the client send the rest (the server reads and discards it before closing).
    upload.resume.notify_one();

    assert_eq!(answer.status, 413, "{}", answer.text);
    assert_eq!(code(&answer), "too_large", "{}", answer.text);
    assert!(
        answer
            .text
            .contains("limit of 134217728 bytes (NITEJAR_PLUGIN_MAX_BYTES)"),
        "{}",
        answer.text
    );
    assert!(
        produced_at_answer < size,
        "refused only after all {} were sent ({} produced)",
        mib(size),
        mib(produced_at_answer)
    );
    assert_memory_kept(&server, before, "200 MiB upload past a 128 MiB limit");
    assert!(third_party_plugins(&server).await.is_empty());
    assert_eq!(staging_leftovers(&data), Vec::<String>::new());
}

#[tokio::test]
async fn garbage_under_the_limit_is_refused_by_the_installer_without_filling_memory() {
    let data = DataDir::new();
    let server = start_admin(&data, &[("NITEJAR_PLUGIN_MAX_BYTES", LIMIT.to_string())]);
    let before = warm_memory(&server).await;

    let upload = streamed_package(100 * MIB, b'Z', None);
    let answer = post_upload(&server, upload.body).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(code(&answer), "invalid_package", "{}", answer.text);
    assert!(
        answer.text.contains("not a readable .tgz archive"),
        "{}",
        answer.text
    );
    assert_memory_kept(&server, before, "100 MiB of garbage under the limit");
    assert!(third_party_plugins(&server).await.is_empty());
    assert_eq!(staging_leftovers(&data), Vec::<String>::new());
}

#[tokio::test]
async fn a_valid_upload_installs_over_the_api_and_the_ui_and_leaves_no_file() {
    let data = DataDir::new();
    let package = tgz(&signed_webhook(
        &data.path.join("packages"),
        "hooks.example.com",
    ));
    let server = start_admin(&data, &[("NITEJAR_PLUGIN_MAX_BYTES", LIMIT.to_string())]);

    let resp = client()
        .post(server.url("/api/admin/plugins/upload"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("signed-webhook-0.1.0.tgz", &package))
        .send()
        .await
        .expect("upload");
    let installed = read(resp).await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    let body = installed.json();
    assert_eq!(body["installed"]["id"], ID);
    assert_eq!(body["installed"]["sourceKind"], "upload");
    assert_eq!(body["installed"]["sourceRef"], "signed-webhook-0.1.0.tgz");
    assert_eq!(body["plugin"]["state"], "disabled");
    let listed = third_party_plugins(&server).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], ID);
    assert_eq!(staging_leftovers(&data), Vec::<String>::new());
    // The stored package is the uploaded file, byte for byte.
    let artifact = data
        .store()
        .await
        .get_plugin_artifact(ID, "0.1.0")
        .await
        .expect("read the artifact")
        .expect("an artifact");
    assert_eq!(artifact.bytes, package);

    // The admin UI's upload form takes the same path: garbage is refused on the form, the package
    // leads to its review page, and neither leaves a file behind.
    let session = Session::sign_in(&server).await;
    let junk = ui_upload(&server, &session, "junk.tgz", b"this is not gzip").await;
    assert_eq!(junk.status, 422, "{}", junk.text);
    assert!(
        junk.text.contains("not a readable .tgz archive"),
        "{}",
        junk.text
    );
    assert_eq!(staging_leftovers(&data), Vec::<String>::new());
    let again = ui_upload(&server, &session, "signed-webhook-0.1.0.tgz", &package).await;
    assert_eq!(again.status, 303, "{}", again.text);
    assert_eq!(
        again.header("location"),
        format!("/admin/plugins/{ID}/review?notice=installed")
    );
    assert_eq!(staging_leftovers(&data), Vec::<String>::new());
}
