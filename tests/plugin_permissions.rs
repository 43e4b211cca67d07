//! The permission gate with a real plugin library: every host service allowed only as declared,
//! each denial a receipt.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nitejar_core::hooks::DispatchContext;
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::permissions::{Grant, MapSecrets, PermissionGate, PermissionSet};
use nitejar_core::receipts::{MemorySink, Receipt, ReceiptKind, ReceiptStatus};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::integration::ConnectionTest;
use nitejar_sdk::HostError;
use nitejar_suite::local_http::{LocalHttp, Reply};
use nitejar_suite::plugins::install_package;
use serde_json::{json, Value};

struct Gated {
    runtime: Runtime,
    sink: Arc<MemorySink>,
    data: tempfile::TempDir,
    package: PathBuf,
}

/// The probe, installed with `network` declared as given, `PROBE_TOKEN` declared, `assets`
/// readable, no process spawning; `adjust` may change the grant.
fn gated(network: &[String], adjust: impl FnOnce(Grant) -> Grant) -> Gated {
    gated_with(network, |gate| gate, adjust)
}

/// [`gated`], with `configure` applied to the gate as it is built.
fn gated_with(
    network: &[String],
    configure: impl FnOnce(PermissionGate) -> PermissionGate,
    adjust: impl FnOnce(Grant) -> Grant,
) -> Gated {
    let data = tempfile::tempdir().unwrap();
    let package = install_package(data.path(), "tests/fixtures/plugins/probe", "probe", |m| {
        m["permissions"]["network"] = json!(network);
    });
    std::fs::create_dir_all(package.join("assets")).unwrap();
    std::fs::write(package.join("assets/hello.txt"), "hello from the package").unwrap();
    let manifest = validate_package_dir(&package, &ValidateOptions::new())
        .unwrap()
        .manifest;
    let sink = MemorySink::new();
    let gate = Arc::new(configure(
        PermissionGate::new(data.path(), sink.clone()).with_secrets(Arc::new(MapSecrets::new([
            ("PROBE_TOKEN", "t0ken"),
            ("OTHER_TOKEN", "not yours"),
        ]))),
    ));
    let permissions = PermissionSet::from(&manifest.permissions);
    let active = loader::load(&PluginPackage::new(&package, manifest), gate.clone()).unwrap();
    gate.grant(active.meta(), adjust(Grant::new(permissions, &package)));
    let runtime = Runtime::builder().services(gate).sink(sink.clone()).build();
    runtime.activate(active).unwrap();
    Gated {
        runtime,
        sink,
        data,
        package,
    }
}

impl Gated {
    async fn act(&self, config: Value) -> ConnectionTest {
        self.runtime
            .call_integration(
                "probe",
                "test_connection",
                &DispatchContext::for_work_item("wi-7"),
                Duration::from_secs(5),
                move |integration, host| integration.test_connection(&config, host),
            )
            .await
            .unwrap()
    }

    /// The one `permission_denied` receipt written since the last call.
    fn denial(&self) -> Receipt {
        let denials: Vec<Receipt> = self
            .sink
            .take()
            .into_iter()
            .filter(|r| r.kind == ReceiptKind::PermissionDenied)
            .collect();
        assert_eq!(denials.len(), 1, "{denials:?}");
        denials.into_iter().next().unwrap()
    }

    fn no_denial(&self) {
        let receipts = self.sink.take();
        assert!(
            receipts
                .iter()
                .all(|r| r.kind != ReceiptKind::PermissionDenied),
            "{receipts:?}"
        );
    }
}

fn host_error(test: &ConnectionTest) -> HostError {
    assert!(!test.ok, "{test:?}");
    serde_json::from_str(test.error.as_deref().unwrap_or_default()).unwrap()
}

fn assert_denied(receipt: &Receipt, permission: &str, scope: &str, declared: bool) {
    assert_eq!(receipt.status, ReceiptStatus::Blocked);
    assert_eq!(receipt.plugin_id.as_ref(), "dev.nitejar.fixtures.probe");
    assert_eq!(receipt.work_item_id.as_deref(), Some("wi-7"));
    let d = receipt.detail.as_ref().unwrap();
    assert_eq!(d["permission"], permission, "{d}");
    assert_eq!(d["scope"], scope);
    assert_eq!(d["enforcement"], "host_boundary");
    assert_eq!(d["declared"], declared);
    assert_eq!(d["acknowledged"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reaches_declared_hosts_only() {
    let allowed = LocalHttp::start(|r| Reply::text(200, &format!("hello {}", r.path)));
    let other = LocalHttp::start(|_| Reply::text(200, "should not be reached"));
    let g = gated(&[format!("127.0.0.1:{}", allowed.port())], |g| g);

    let served = g
        .act(json!({"action": "http", "url": allowed.url("/ping")}))
        .await;
    assert!(served.ok, "{served:?}");
    assert_eq!(served.detail.as_deref(), Some("200 hello /ping"));
    assert_eq!(allowed.received().len(), 1);
    g.no_denial();

    let refused = g
        .act(json!({"action": "http", "url": other.url("/steal")}))
        .await;
    let permission = format!("network:127.0.0.1:{}", other.port());
    assert!(
        matches!(host_error(&refused), HostError::Denied { permission: ref p, .. } if *p == permission)
    );
    assert_denied(&g.denial(), &permission, "network", false);
    assert!(other.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_checked_at_every_hop() {
    let other = LocalHttp::start(|_| Reply::text(200, "should not be reached"));
    let target = other.url("/landing");
    let allowed = LocalHttp::start(move |r| match r.path.as_str() {
        "/here" => Reply::text(200, "arrived"),
        "/inside" => Reply::redirect("/here"),
        _ => Reply::redirect(&target),
    });
    let g = gated(&[format!("127.0.0.1:{}", allowed.port())], |g| g);

    let inside = g
        .act(json!({"action": "http", "url": allowed.url("/inside")}))
        .await;
    assert_eq!(inside.detail.as_deref(), Some("200 arrived"));
    g.no_denial();

    let away = g
        .act(json!({"action": "http", "url": allowed.url("/away")}))
        .await;
    assert!(matches!(host_error(&away), HostError::Denied { .. }));
    let receipt = g.denial();
    assert_denied(
        &receipt,
        &format!("network:127.0.0.1:{}", other.port()),
        "network",
        false,
    );
    let d = receipt.detail.unwrap();
    assert_eq!(d["redirected_from"], allowed.url("/away"));
    assert!(other.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_served_by_declared_name_only() {
    let g = gated(&[], |g| g);
    let token = g
        .act(json!({"action": "secret", "name": "PROBE_TOKEN"}))
        .await;
    assert_eq!(token.detail.as_deref(), Some("t0ken"));
    g.no_denial();

    let other = g
        .act(json!({"action": "secret", "name": "OTHER_TOKEN"}))
        .await;
    assert!(matches!(host_error(&other), HostError::Denied { .. }));
    assert_denied(&g.denial(), "secret:OTHER_TOKEN", "secrets", false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_grants_need_acknowledgement() {
    let g = gated(&[], |g| g.require_acknowledgement(true));
    let token = g
        .act(json!({"action": "secret", "name": "PROBE_TOKEN"}))
        .await;
    assert!(matches!(host_error(&token), HostError::Denied { .. }));
    let receipt = g.denial();
    assert_denied(&receipt, "secret:PROBE_TOKEN", "secrets", true);

    let g = gated(&[], |g| {
        g.require_acknowledgement(true)
            .acknowledged(["secret:PROBE_TOKEN"])
    });
    let token = g
        .act(json!({"action": "secret", "name": "PROBE_TOKEN"}))
        .await;
    assert_eq!(token.detail.as_deref(), Some("t0ken"));
}

/// A secret is what is read (`NITEJAR_SECRET_<NAME>`), not how its name is spelled: another spelling
/// of a declared secret is that secret, judged against its declaration and acknowledgement; a
/// spelling of an undeclared one is refused under the spelling asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_one_secret_whatever_its_spelling() {
    let g = gated(&[], |g| {
        g.require_acknowledgement(true)
            .acknowledged(["secret:PROBE_TOKEN"])
    });
    for spelling in ["probe.token", "probe-token", "Probe_Token"] {
        let token = g.act(json!({"action": "secret", "name": spelling})).await;
        assert_eq!(token.detail.as_deref(), Some("t0ken"), "{spelling}");
    }
    g.no_denial();
    let other = g
        .act(json!({"action": "secret", "name": "other.token"}))
        .await;
    assert!(matches!(host_error(&other), HostError::Denied { .. }));
    assert_denied(&g.denial(), "secret:other.token", "secrets", false);

    // Unacknowledged, every spelling is refused, and the receipt names the declaration.
    let g = gated(&[], |g| g.require_acknowledgement(true));
    let token = g
        .act(json!({"action": "secret", "name": "probe.token"}))
        .await;
    assert!(matches!(host_error(&token), HostError::Denied { .. }));
    assert_denied(&g.denial(), "secret:probe.token", "secrets", true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_read_and_written_under_allowed_paths_only() {
    let g = gated(&[], |g| g);
    let asset = g
        .act(json!({"action": "read_file", "path": "assets/hello.txt"}))
        .await;
    assert_eq!(asset.detail.as_deref(), Some("hello from the package"));

    let written = g
        .act(json!({"action": "write_file", "path": "notes/today.txt", "contents": "kept"}))
        .await;
    assert!(written.ok, "{written:?}");
    let stored = g
        .data
        .path()
        .join("plugins/dev.nitejar.fixtures.probe/data/notes/today.txt");
    assert_eq!(std::fs::read_to_string(stored).unwrap(), "kept");
    let back = g
        .act(json!({"action": "read_file", "path": "notes/today.txt"}))
        .await;
    assert_eq!(back.detail.as_deref(), Some("kept"));
    g.no_denial();

    let secret = g.data.path().join("nitejar.db");
    std::fs::write(&secret, "the server's own data").unwrap();
    let outside = secret.display().to_string();
    let read = g.act(json!({"action": "read_file", "path": outside})).await;
    assert!(matches!(host_error(&read), HostError::Denied { .. }));
    assert_denied(
        &g.denial(),
        &format!("fs.read:{outside}"),
        "filesystemRead",
        false,
    );

    let write = g
        .act(json!({"action": "write_file", "path": outside, "contents": "overwritten"}))
        .await;
    assert!(matches!(host_error(&write), HostError::Denied { .. }));
    assert_denied(
        &g.denial(),
        &format!("fs.write:{outside}"),
        "filesystemWrite",
        false,
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "the server's own data"
    );

    // A link inside an allowed tree that leads out of it.
    std::os::unix::fs::symlink(&secret, g.package.join("assets/escape.txt")).unwrap();
    let escape = g
        .act(json!({"action": "read_file", "path": "assets/escape.txt"}))
        .await;
    assert!(matches!(host_error(&escape), HostError::Denied { .. }));
    assert_denied(
        &g.denial(),
        "fs.read:assets/escape.txt",
        "filesystemRead",
        false,
    );

    let parent = g
        .act(json!({"action": "read_file", "path": "../../../../nitejar.db"}))
        .await;
    assert!(matches!(host_error(&parent), HostError::Denied { .. }));
    g.denial();
}

/// A write (and read) root outside the package, `<tmp>/shared`, and a directory next to it that no
/// grant covers, `<tmp>/outside`.
struct Places {
    _dir: tempfile::TempDir,
    shared: PathBuf,
    outside: PathBuf,
}

impl Places {
    fn new() -> Places {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "not the plugin's").unwrap();
        Places {
            _dir: dir,
            shared,
            outside,
        }
    }

    /// The probe's grant plus `shared` declared readable and writable.
    fn grant(&self, g: Grant) -> Grant {
        let shared = self.shared.display().to_string();
        let permissions = g
            .permissions()
            .clone()
            .filesystem_read([shared.clone()])
            .filesystem_write([shared]);
        Grant::new(permissions, g.package_dir())
    }

    fn in_shared(&self, relative: &str) -> String {
        self.shared.join(relative).display().to_string()
    }
}

fn denial_reason(receipt: &Receipt) -> String {
    receipt.detail.as_ref().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_link_out_of_a_write_root_is_not_followed() {
    let places = Places::new();
    let g = gated(&[], |g| places.grant(g));
    let target = places.outside.join("new.txt");
    std::os::unix::fs::symlink(&target, places.shared.join("link")).unwrap();

    let path = places.in_shared("link");
    let write = g
        .act(json!({"action": "write_file", "path": path, "contents": "escaped"}))
        .await;
    assert!(matches!(host_error(&write), HostError::Denied { .. }));
    let receipt = g.denial();
    assert_denied(
        &receipt,
        &format!("fs.write:{path}"),
        "filesystemWrite",
        false,
    );
    assert_eq!(receipt.detail.as_ref().unwrap()["path"], path.as_str());
    let reason = denial_reason(&receipt);
    assert!(reason.contains("leads outside"), "{reason}");
    assert!(!target.exists(), "the write created {}", target.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_an_outside_directory_mid_path_is_refused() {
    let places = Places::new();
    let g = gated(&[], |g| places.grant(g));
    std::os::unix::fs::symlink(&places.outside, places.shared.join("up")).unwrap();

    let secret = places.in_shared("up/secret.txt");
    let read = g.act(json!({"action": "read_file", "path": secret})).await;
    assert!(matches!(host_error(&read), HostError::Denied { .. }));
    assert_denied(
        &g.denial(),
        &format!("fs.read:{secret}"),
        "filesystemRead",
        false,
    );

    for path in ["up/secret.txt", "up/new.txt", "up/made/new.txt"] {
        let path = places.in_shared(path);
        let write = g
            .act(json!({"action": "write_file", "path": path, "contents": "escaped"}))
            .await;
        assert!(matches!(host_error(&write), HostError::Denied { .. }));
        assert_denied(
            &g.denial(),
            &format!("fs.write:{path}"),
            "filesystemWrite",
            false,
        );
    }
    let outside: Vec<_> = std::fs::read_dir(&places.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(places.outside.join("secret.txt")).unwrap(),
        "not the plugin's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_that_stay_inside_the_root_are_followed() {
    let places = Places::new();
    let g = gated(&[], |g| places.grant(g));
    std::fs::create_dir_all(places.shared.join("real")).unwrap();
    std::fs::write(places.shared.join("real/notes.txt"), "inside").unwrap();
    std::os::unix::fs::symlink("real/notes.txt", places.shared.join("alias.txt")).unwrap();
    std::os::unix::fs::symlink("real", places.shared.join("dir")).unwrap();

    let alias = g
        .act(json!({"action": "read_file", "path": places.in_shared("alias.txt")}))
        .await;
    assert_eq!(alias.detail.as_deref(), Some("inside"), "{alias:?}");
    let written = g
        .act(json!({"action": "write_file", "path": places.in_shared("dir/more.txt"), "contents": "kept"}))
        .await;
    assert!(written.ok, "{written:?}");
    assert_eq!(
        std::fs::read_to_string(places.shared.join("real/more.txt")).unwrap(),
        "kept"
    );
    g.no_denial();
}

/// A directory of the path swapped for a link out of the root, over and over, while the plugin
/// writes through it: no write may ever land outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_link_mid_call_never_leads_out() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let places = Places::new();
    let g = gated(&[], |g| places.grant(g));
    let swap = places.shared.join("swap");
    let link = places.shared.join("swap.link");
    std::fs::create_dir_all(&swap).unwrap();
    std::os::unix::fs::symlink(&places.outside, &link).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            // RENAME_EXCHANGE: `swap` is always there, a directory one instant, a link out the next.
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &swap,
                    rustix::fs::CWD,
                    &link,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let path = places.in_shared("swap/out.txt");
    let escaped = places.outside.join("out.txt");
    let (mut written, mut denied, mut failed) = (0, 0, Vec::new());
    let mut landed_outside = false;
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until && !landed_outside {
        let write = g
            .act(json!({"action": "write_file", "path": path, "contents": "x"}))
            .await;
        let error = write.error.as_deref().unwrap_or_default();
        match serde_json::from_str::<HostError>(error) {
            _ if write.ok => written += 1,
            Ok(HostError::Denied { .. }) => denied += 1,
            _ => failed.push(error.to_string()),
        }
        landed_outside = escaped.exists();
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let swaps = swaps.load(Ordering::Relaxed);

    assert!(
        !landed_outside && !escaped.exists(),
        "a write landed outside the root ({written} written, {denied} denied, {swaps} swaps)"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        written > 0 && denied > 0,
        "the race was not exercised: {written} written, {denied} denied, {swaps} swaps"
    );
    for receipt in g.sink.take() {
        if receipt.kind == ReceiptKind::PermissionDenied {
            let reason = denial_reason(&receipt);
            assert!(reason.contains("leads outside"), "{reason}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_need_allow_process_spawn() {
    let g = gated(&[], |g| g);
    let refused = g
        .act(json!({"action": "spawn", "program": "echo", "args": ["hi"]}))
        .await;
    assert!(matches!(host_error(&refused), HostError::Denied { .. }));
    let receipt = g.denial();
    assert_denied(&receipt, "process.spawn", "allowProcessSpawn", false);
    assert_eq!(receipt.detail.unwrap()["program"], "echo");

    let g = gated(&[], |g| {
        let permissions = g.permissions().clone().allow_process_spawn(true);
        Grant::new(permissions, g.package_dir())
    });
    let ran = g
        .act(json!({"action": "spawn", "program": "echo", "args": ["hi"]}))
        .await;
    assert_eq!(ran.detail.as_deref(), Some("hi\n"));
    g.no_denial();
}

/// A host name other than `localhost` that the system resolver maps to 127.0.0.1 and nothing else,
/// from `/etc/hosts` (no DNS involved): the machine's own name usually is one. The egress check
/// runs on the system resolver's answer, as in production.
fn loopback_name() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address: IpAddr = fields.next()?.parse().ok()?;
            Some((
                address,
                fields.map(str::to_ascii_lowercase).collect::<Vec<_>>(),
            ))
        })
        .filter(|(address, _)| address.is_loopback())
        .flat_map(|(_, names)| names)
        .filter(|name| name != "localhost" && !name.ends_with(".localhost"))
        .find(|name| {
            let resolved: Vec<IpAddr> = (name.as_str(), 80)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .unwrap_or_default();
            !resolved.is_empty() && resolved.iter().all(|ip| loopback.contains(ip))
        })
        .expect(
            "these tests need a name other than localhost that /etc/hosts maps to 127.0.0.1 \
             (e.g. `127.0.0.1 <hostname>`)",
        )
}

fn name_url(name: &str, server: &LocalHttp, path: &str) -> String {
    format!("http://{name}:{}{path}", server.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_names_that_resolve_to_loopback_are_denied() {
    let server = LocalHttp::start(|_| Reply::text(200, "should not be reached"));
    let name = loopback_name();
    let g = gated(&[format!("{name}:{}", server.port())], |g| g);

    let refused = g
        .act(json!({"action": "http", "url": name_url(&name, &server, "/admin")}))
        .await;
    let permission = format!("network:{name}:{}", server.port());
    let HostError::Denied {
        permission: p,
        reason,
    } = host_error(&refused)
    else {
        panic!("{refused:?}");
    };
    assert_eq!(p, permission);
    assert!(
        reason.contains(&format!("{name} resolves to 127.0.0.1 (loopback)")),
        "{reason}"
    );
    let receipt = g.denial();
    assert_denied(&receipt, &permission, "network", true);
    let d = receipt.detail.unwrap();
    assert_eq!(d["addresses"], json!(["127.0.0.1"]));
    assert_eq!(d["url"], name_url(&name, &server, "/admin"));
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("a declared host name reaches public addresses only"),
        "{d}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_private_networks_are_reachable_by_declared_names() {
    let server = LocalHttp::start(|r| Reply::text(200, &format!("internal {}", r.path)));
    let name = loopback_name();
    let g = gated_with(
        &[format!("{name}:{}", server.port())],
        |gate| gate.with_private_networks(["127.0.0.0/8".parse().unwrap()]),
        |g| g,
    );

    let served = g
        .act(json!({"action": "http", "url": name_url(&name, &server, "/status")}))
        .await;
    assert_eq!(served.detail.as_deref(), Some("200 internal /status"));
    assert_eq!(server.received().len(), 1);
    g.no_denial();

    // A listed range is no declaration: an undeclared name is still refused.
    let other = LocalHttp::start(|_| Reply::text(200, "should not be reached"));
    let undeclared = g
        .act(json!({"action": "http", "url": name_url(&name, &other, "/")}))
        .await;
    assert!(matches!(host_error(&undeclared), HostError::Denied { .. }));
    g.denial();
    assert!(other.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_localhost_reaches_loopback() {
    let server = LocalHttp::start(|r| Reply::text(200, &format!("local {}", r.path)));
    let g = gated(&[format!("localhost:{}", server.port())], |g| g);

    let served = g
        .act(json!({"action": "http", "url": name_url("localhost", &server, "/dev")}))
        .await;
    assert_eq!(served.detail.as_deref(), Some("200 local /dev"));
    assert_eq!(server.received().len(), 1);
    g.no_denial();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_spellings_of_a_declared_address_are_that_address() {
    let server = LocalHttp::start(|r| Reply::text(200, &format!("hello {}", r.path)));
    let port = server.port();
    let g = gated(&[format!("127.0.0.1:{port}")], |g| g);

    for spelling in ["2130706433", "0x7f.1", "127.1", "0x7f000001"] {
        let served = g
            .act(json!({"action": "http", "url": format!("http://{spelling}:{port}/x")}))
            .await;
        assert_eq!(served.detail.as_deref(), Some("200 hello /x"), "{spelling}");
    }
    assert_eq!(server.received().len(), 4);
    g.no_denial();

    // An IPv4-mapped IPv6 literal is another host as far as the rules go: not declared.
    let mapped = g
        .act(json!({"action": "http", "url": format!("http://[::ffff:127.0.0.1]:{port}/x")}))
        .await;
    assert!(matches!(host_error(&mapped), HostError::Denied { .. }));
    assert_denied(
        &g.denial(),
        &format!("network:[::ffff:7f00:1]:{port}"),
        "network",
        false,
    );
    assert_eq!(server.received().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_a_name_that_resolves_to_loopback_is_denied() {
    let name = loopback_name();
    let inner = LocalHttp::start(|_| Reply::text(200, "should not be reached"));
    let target = name_url(&name, &inner, "/latest/meta-data");
    let allowed = LocalHttp::start(move |_| Reply::redirect(&target));
    let g = gated(
        &[
            format!("127.0.0.1:{}", allowed.port()),
            format!("{name}:{}", inner.port()),
        ],
        |g| g,
    );

    let away = g
        .act(json!({"action": "http", "url": allowed.url("/away")}))
        .await;
    assert!(matches!(host_error(&away), HostError::Denied { .. }));
    let receipt = g.denial();
    assert_denied(
        &receipt,
        &format!("network:{name}:{}", inner.port()),
        "network",
        true,
    );
    let d = receipt.detail.unwrap();
    assert_eq!(d["redirected_from"], allowed.url("/away"));
    assert_eq!(d["addresses"], json!(["127.0.0.1"]));
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "after a redirect from {}: {name} resolves to 127.0.0.1",
            allowed.url("/away")
        )),
        "{reason}"
    );
    assert_eq!(allowed.received().len(), 1);
    assert!(inner.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_keep_no_credentials_or_queries_of_urls() {
    let other = LocalHttp::start(|_| Reply::text(200, "should not be reached"));
    let target = format!(
        "http://user:hunter2@127.0.0.1:{}/landing?token=secret#secret",
        other.port()
    );
    let allowed = LocalHttp::start(move |_| Reply::redirect(&target));
    let name = loopback_name();
    let g = gated(
        &[
            format!("127.0.0.1:{}", allowed.port()),
            format!("{name}:{}", other.port()),
        ],
        |g| g,
    );
    let leaks = |receipt: &Receipt, test: &ConnectionTest| {
        let text = format!(
            "{}{}",
            serde_json::to_string(receipt).unwrap(),
            test.error.as_deref().unwrap_or_default()
        );
        assert!(
            !text.contains("secret") && !text.contains("hunter2"),
            "{text}"
        );
    };

    // Not declared.
    let undeclared = g
        .act(json!({"action": "http", "url": format!(
            "http://admin:hunter2@127.0.0.1:{}/steal?token=secret#secret", other.port()
        )}))
        .await;
    let receipt = g.denial();
    leaks(&receipt, &undeclared);
    assert_eq!(receipt.detail.as_ref().unwrap()["url"], other.url("/steal"));

    // Declared, resolving to loopback.
    let resolved = g
        .act(json!({"action": "http", "url": format!(
            "http://admin:hunter2@{name}:{}/steal?token=secret", other.port()
        )}))
        .await;
    let receipt = g.denial();
    leaks(&receipt, &resolved);
    assert_eq!(
        receipt.detail.as_ref().unwrap()["url"],
        name_url(&name, &other, "/steal")
    );

    // A redirect, from a URL with a query to one with credentials.
    let redirected = g
        .act(json!({"action": "http", "url": allowed.url("/away?session=secret")}))
        .await;
    let receipt = g.denial();
    leaks(&receipt, &redirected);
    let d = receipt.detail.as_ref().unwrap();
    assert_eq!(d["redirected_from"], allowed.url("/away"));
    assert_eq!(d["url"], other.url("/landing"));
    assert!(other.received().is_empty());
}
