//! A real `nitejar` server process on a loopback port, with its own data directory and database, for
//! the end-to-end tests.

#![allow(dead_code, unused_imports)] // each test file uses its own part of this module

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::store::{self, NewIntegration, Store};
use serde_json::{Map, Value};

pub use nitejar_suite::local_http::{LocalHttp, Received, Reply};

pub mod admin;
pub mod browser;
pub mod npm;
pub mod packages;
pub mod probe;
pub mod raw;
pub mod redaction;
pub mod tmpfs;

/// The key every test server and test store use (the key of the test vectors in `docs/design.md`).
pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn cipher() -> Cipher {
    Cipher::new(&Key::parse(KEY_HEX).expect("test key"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A data directory that outlives nothing but the test.
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "nitejar-e2e-{}-{}",
            std::process::id(),
            nitejar_core::store::new_id()
        ));
        std::fs::create_dir_all(&path).expect("data dir");
        DataDir { path }
    }

    pub fn database_url(&self) -> String {
        self.path.join("nitejar.db").to_string_lossy().into_owned()
    }

    /// Opens the server's database from the test (SQLite in WAL mode takes a second connection).
    pub async fn store(&self) -> Arc<dyn Store> {
        store::open(&self.database_url(), cipher())
            .await
            .expect("open the test database")
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running server.
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `nitejar serve` on `data` with extra environment, and waits until `/healthz` answers.
    pub fn start(data: &DataDir, env: &[(&str, String)]) -> Server {
        let command = || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_nitejar"));
            cmd.arg("serve");
            cmd
        };
        Server::start_command(command, data, env)
    }

    /// Starts the server `command` makes on a free port. A port that another test's server took
    /// between our look and the server's bind is not a failure of the test: the server says it
    /// could not listen, and it is started again on another port.
    pub(crate) fn start_command(
        command: impl Fn() -> Command,
        data: &DataDir,
        env: &[(&str, String)],
    ) -> Server {
        for _ in 0..5 {
            if let Some(server) = Server::try_start(command(), data, env) {
                return server;
            }
        }
        panic!("nitejar could not listen on five free ports in a row");
    }

    fn try_start(mut cmd: Command, data: &DataDir, env: &[(&str, String)]) -> Option<Server> {
        let port = free_port();
        let log = data.path.join(format!("server-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("NITEJAR_BIND", "127.0.0.1")
            .env("NITEJAR_DATA_DIR", &data.path)
            .env("DATABASE_URL", data.database_url())
            .env("ENCRYPTION_KEY", KEY_HEX)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file.try_clone().expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start nitejar");
        let mut server = Server { child, port, log };
        server.wait_healthy().then_some(server)
    }

    /// Waits until this server (its own log says so, not just anything on the port) listens;
    /// `false` when its port was taken.
    fn wait_healthy(&mut self) -> bool {
        let listening = format!("listening on http://127.0.0.1:{} ", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                if log.contains("could not listen") && log.contains("ddress already in use") {
                    return false;
                }
                panic!("nitejar exited with {status}:\n{log}");
            }
            if self.log().contains(&listening)
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nitejar did not start within 30 s:\n{}", self.log());
    }

    /// The server's process id (to read its `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server with SIGKILL (no shutdown at all) and waits for it to be gone.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }

    /// Waits up to `secs` for the server to exit by itself (e.g. a plugin took it down); its exit
    /// status and log.
    pub fn wait_exit(mut self, secs: u64) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {secs} s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM and waits for it (graceful shutdown).
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an enabled integration row through the store as an earlier release wrote it: no plugin
/// recorded, so it belongs to the built-in that provides its type (if any).
pub async fn create_integration(
    store: &Arc<dyn Store>,
    kind: &str,
    config: Value,
    sensitive: &[&str],
) -> String {
    insert_integration(store, None, kind, config, sensitive).await
}

/// Creates an enabled integration row of plugin `plugin` through the store, as the admin API does.
pub async fn create_plugin_integration(
    store: &Arc<dyn Store>,
    plugin: &str,
    kind: &str,
    config: Value,
    sensitive: &[&str],
) -> String {
    insert_integration(store, Some(plugin), kind, config, sensitive).await
}

async fn insert_integration(
    store: &Arc<dyn Store>,
    plugin: Option<&str>,
    kind: &str,
    config: Value,
    sensitive: &[&str],
) -> String {
    let Value::Object(config) = config else {
        panic!("config must be an object");
    };
    let sensitive: Vec<String> = sensitive.iter().map(|s| s.to_string()).collect();
    let mut new = NewIntegration::new(kind, format!("{kind} test"), config);
    new.plugin_id = plugin.map(str::to_string);
    store
        .create_integration(new, &sensitive)
        .await
        .expect("create integration")
        .id
}

/// Waits until `probe` returns `Some`, for at most `secs` seconds.
pub async fn eventually<T>(secs: u64, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = probe() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A JSON reply.
pub fn json_reply(status: u16, body: &Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// The body of a received request as JSON.
pub fn body_json(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

pub fn empty() -> Map<String, Value> {
    Map::new()
}
