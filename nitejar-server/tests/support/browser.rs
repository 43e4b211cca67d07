//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, installed
//! by `scripts/install-test-deps.sh`), and where its screenshots go.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::free_port;

/// A chromedriver process on a loopback port.
pub struct Driver {
    child: Child,
    pub port: u16,
    profile: PathBuf,
}

fn find(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(binary))
        .find(|p| p.is_file())
}

impl Driver {
    /// Starts chromedriver. Panics with what to install when it is missing.
    pub fn start() -> Driver {
        let Some(chromedriver) = find("chromedriver") else {
            panic!(
                "chromedriver is not installed: run scripts/install-test-deps.sh (as root) to install \
                 Debian's chromium and chromium-driver"
            );
        };
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!(
            "nitejar-chromium-{}-{}",
            std::process::id(),
            nitejar_core::store::new_id()
        ));
        Driver {
            child,
            port,
            profile,
        }
    }

    /// A new browser session: headless, no sandbox (containers), a fresh empty profile, nothing that
    /// reaches the network by itself.
    pub async fn browser(&self) -> Client {
        let mut caps = Capabilities::new();
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", self.profile.display()),
            ]
        });
        if let (Some(chromium), Some(map)) = (find("chromium"), options.as_object_mut()) {
            map.insert("binary".into(), json!(chromium));
        }
        caps.insert("goog:chromeOptions".into(), options);
        ClientBuilder::rustls()
            .expect("TLS for the WebDriver client")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_browsers(&self.profile);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Ends the Chromium processes of `profile`: a session a test did not close (it failed, or never
/// quit) outlives chromedriver otherwise, and idles on until the machine stops.
fn kill_browsers(profile: &Path) {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes())
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// `<target>/browser-screenshots`, next to the test binaries' output (`target/debug/deps/..`).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Saves a screenshot of the page as `<name>.png`.
pub async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
}
