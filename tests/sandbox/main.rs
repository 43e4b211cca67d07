//! The kernel controls of `nitejar_core::sandbox`, each shown by a child process that applies the
//! sandbox and then tries what it should no longer be able to do.
//!
//! Every case re-executes this test binary with `NITEJAR_SANDBOX_CASE=<case>`. `main` sees the
//! variable before anything has started a thread (the sandbox refuses a process with threads, and
//! libtest's own harness runs each test on a thread: hence libtest-mimic), applies the policy and
//! runs the case's body, which prints one `key=outcome` line per attempt (`ok`, or `errno:<n>`). The
//! parent asserts on those lines, on the exit status and on the files. The test process itself is
//! never sandboxed.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

#[cfg(target_os = "linux")]
mod child;

const CASE: &str = "NITEJAR_SANDBOX_CASE";
/// The child's sandbox base directory: `ro/` (read-only root), `rw/` (read-write), `outside/`.
const BASE: &str = "NITEJAR_SANDBOX_BASE";
const MEMORY: &str = "NITEJAR_SANDBOX_MEMORY";
const CPU: &str = "NITEJAR_SANDBOX_CPU";
const PORT: &str = "NITEJAR_SANDBOX_PORT";
const PLUGIN: &str = "NITEJAR_SANDBOX_PLUGIN";

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    if let Ok(case) = std::env::var(CASE) {
        return child::run(&case);
    }
    let args = Arguments::from_args();
    let trials = if cfg!(target_os = "linux") {
        trials()
    } else {
        Vec::new()
    };
    libtest_mimic::run(&args, trials).exit_code()
}

fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "tcp_connect_to_a_listening_loopback_port_is_refused",
            tcp_connect,
        ),
        Trial::test(
            "socket_of_every_family_is_refused_with_eperm",
            socket_families,
        ),
        Trial::test(
            "files_only_under_the_roots_and_writes_only_in_the_rw_root",
            files,
        ),
        Trial::test("execve_of_bin_sh_is_refused", exec),
        Trial::test(
            "threads_still_start_after_the_filter_and_inherit_it",
            threads,
        ),
        Trial::test("fork_command_and_clone3_are_refused", processes),
        Trial::test(
            "kernel_surface_syscalls_are_refused_with_eperm",
            kernel_surface,
        ),
        Trial::test("memory_past_rlimit_as_aborts_the_allocation", memory),
        Trial::test("cpu_past_rlimit_cpu_is_killed_by_sigxcpu", cpu),
        Trial::test("the_probe_matches_what_apply_enforces", probe_matches_apply),
        Trial::test(
            "a_missing_required_control_is_named_and_nothing_applied",
            missing_control,
        ),
        Trial::test("a_plugin_library_loads_inside_the_sandbox", plugin_loads),
    ]
}

/// A finished child: its status, output, and `key=outcome` lines.
struct Finished {
    status: ExitStatus,
    elapsed: Duration,
    stdout: String,
    stderr: String,
    lines: HashMap<String, String>,
}

impl Finished {
    fn get(&self, key: &str) -> Result<&str, Failed> {
        self.lines
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.failed(&format!("no `{key}=` line")))
    }

    /// `key` ended as `expected` (`ok`, or `errno:<n>`).
    fn expect(&self, key: &str, expected: &str) -> Result<(), Failed> {
        let got = self.get(key)?;
        let got_outcome = got.split(' ').next().unwrap_or_default();
        if got_outcome != expected {
            return Err(self.failed(&format!("{key}: expected {expected}, got {got}")));
        }
        Ok(())
    }

    fn expect_errno(&self, key: &str, errno: i32) -> Result<(), Failed> {
        self.expect(key, &format!("errno:{errno}"))
    }

    fn expect_success(&self) -> Result<(), Failed> {
        if !self.status.success() {
            return Err(self.failed("the child did not exit successfully"));
        }
        Ok(())
    }

    fn failed(&self, what: &str) -> Failed {
        format!(
            "{what}\nstatus: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
        .into()
    }
}

/// Runs `case` in a re-executed child with `env`, killing it after `timeout`.
fn run_case(case: &str, env: &[(&str, String)], timeout: Duration) -> Result<Finished, Failed> {
    let out = tempfile::tempdir()?;
    let stdout_path = out.path().join("stdout");
    let stderr_path = out.path().join("stderr");
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(CASE, case)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "case {case} still ran after {timeout:?}: killed\n{}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let stdout = std::fs::read_to_string(&stdout_path)?;
    let stderr = std::fs::read_to_string(&stderr_path)?;
    let lines = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Finished {
        status,
        elapsed,
        stdout,
        stderr,
        lines,
    })
}

const QUICK: Duration = Duration::from_secs(60);

/// A base directory laid out for the child: `ro/inside.txt`, `rw/`, `outside/secret.txt`.
fn base_dir() -> Result<tempfile::TempDir, Failed> {
    let base = tempfile::tempdir()?;
    std::fs::create_dir(base.path().join("ro"))?;
    std::fs::create_dir(base.path().join("rw"))?;
    std::fs::create_dir(base.path().join("outside"))?;
    std::fs::write(base.path().join("ro/inside.txt"), "inside")?;
    std::fs::write(base.path().join("outside/secret.txt"), "secret")?;
    Ok(base)
}

fn base_env(base: &Path) -> Vec<(&'static str, String)> {
    vec![(BASE, base.display().to_string())]
}

fn tcp_connect() -> Result<(), Failed> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let base = base_dir()?;
    let mut env = base_env(base.path());
    env.push((PORT, port.to_string()));
    let child = run_case("network", &env, QUICK)?;
    child.expect_success()?;
    // Before the sandbox the port is reachable: the refusals below are the sandbox's.
    child.expect("connect_before", "ok")?;
    // std's connect creates a socket first: seccomp refuses it.
    child.expect_errno("connect_std", libc::EPERM)?;
    // A TCP socket created before the sandbox: Landlock refuses its connect.
    child.expect_errno("connect_presocket", libc::EACCES)?;
    child.expect_errno("bind_presocket", libc::EACCES)?;
    // Exactly one connection ever reached the listener: the one made before.
    let mut accepted = 0;
    loop {
        match listener.accept() {
            Ok(_) => accepted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        }
    }
    if accepted != 1 {
        return Err(child.failed(&format!(
            "the listener accepted {accepted} connections, not 1"
        )));
    }
    Ok(())
}

fn socket_families() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("socket_families", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    for family in ["inet", "inet6", "packet", "netlink", "unix"] {
        child.expect(&format!("{family}_before"), "ok")?;
        child.expect_errno(&format!("{family}_after"), libc::EPERM)?;
    }
    child.expect_errno("udp_bind", libc::EPERM)?;
    child.expect("socketpair_unix", "ok")?;
    Ok(())
}

fn files() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("files", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    child.expect("read_before_outside", "ok")?;
    child.expect("read_inside", "ok")?;
    child.expect("list_inside", "ok")?;
    child.expect_errno("read_outside", libc::EACCES)?;
    child.expect_errno("list_outside", libc::EACCES)?;
    child.expect_errno("read_etc_passwd", libc::EACCES)?;
    child.expect("write_rw", "ok")?;
    child.expect("mkdir_rw", "ok")?;
    child.expect("read_back_rw", "ok")?;
    child.expect_errno("write_ro_new", libc::EACCES)?;
    child.expect_errno("write_ro_existing", libc::EACCES)?;
    child.expect_errno("remove_ro", libc::EACCES)?;
    child.expect_errno("write_outside", libc::EACCES)?;
    // What the operator would find afterwards.
    let read = |p: &str| std::fs::read_to_string(base.path().join(p)).unwrap_or_default();
    if read("rw/written.txt") != "written" || !base.path().join("rw/sub").is_dir() {
        return Err(child.failed("the write in the read-write root did not land"));
    }
    if read("ro/inside.txt") != "inside" || base.path().join("ro/new.txt").exists() {
        return Err(child.failed("the read-only root was changed"));
    }
    if read("outside/secret.txt") != "secret" || base.path().join("outside/new.txt").exists() {
        return Err(child.failed("a file outside the roots was changed"));
    }
    Ok(())
}

fn exec() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("exec", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    // The child calls execve itself (no fork): had it worked, /bin/sh would have replaced it and
    // printed nothing.
    child.expect_errno("execve_bin_sh", libc::EPERM)?;
    Ok(())
}

fn threads() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("threads", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    child.expect("spawn_and_join", "ok")?;
    child.expect("four_threads", "ok")?;
    child.expect_errno("thread_socket", libc::EPERM)?;
    child.expect_errno("thread_read_outside", libc::EACCES)?;
    Ok(())
}

fn processes() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("processes", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    child.expect("command_before", "ok")?;
    child.expect_errno("command_spawn", libc::EPERM)?;
    child.expect_errno("fork", libc::EPERM)?;
    child.expect_errno("clone_process", libc::EPERM)?;
    child.expect_errno("clone3", libc::ENOSYS)?;
    Ok(())
}

fn kernel_surface() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("kernel_surface", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    // Each call's arguments make it harmless; before the sandbox these answer something other than
    // EPERM whatever the privileges, so the EPERM after is the filter's.
    for call in [
        "unshare",
        "setns",
        "keyctl",
        "ptrace",
        "process_vm_readv",
        "prlimit64_set",
    ] {
        let before = child.get(&format!("{call}_before"))?;
        if before.starts_with(&format!("errno:{} ", libc::EPERM)) {
            return Err(child.failed(&format!("{call} was refused before the sandbox")));
        }
        child.expect_errno(&format!("{call}_after"), libc::EPERM)?;
    }
    // These depend on privileges before; after, the filter answers.
    for call in [
        "io_uring_setup",
        "mount",
        "bpf",
        "perf_event_open",
        "setrlimit",
    ] {
        child.expect_errno(&format!("{call}_after"), libc::EPERM)?;
    }
    // Reading a limit still works (prlimit64 without a new limit).
    child.expect("getrlimit_after", "ok")?;
    if cfg!(target_arch = "x86_64") {
        child.expect_errno("x32_getpid_after", libc::ENOSYS)?;
    }
    Ok(())
}

fn memory() -> Result<(), Failed> {
    let base = base_dir()?;
    let mut env = base_env(base.path());
    env.push((MEMORY, (256u64 << 20).to_string()));
    let child = run_case("memory", &env, QUICK)?;
    child.expect("small_allocation", "ok")?;
    if child.status.signal() != Some(libc::SIGABRT) {
        return Err(child.failed("the child was not aborted by the failed allocation"));
    }
    if !child
        .stderr
        .contains("memory allocation of 1073741824 bytes failed")
    {
        return Err(child.failed("the allocator did not report the failed allocation"));
    }
    if child.lines.contains_key("large_allocation") {
        return Err(child.failed("the 1 GiB allocation succeeded under a 256 MiB limit"));
    }
    Ok(())
}

fn cpu() -> Result<(), Failed> {
    let base = base_dir()?;
    let mut env = base_env(base.path());
    env.push((CPU, "1".into()));
    // The loop never ends by itself: only the limit stops it (the timeout fails the test).
    let child = run_case("cpu", &env, Duration::from_secs(30))?;
    child.get("spinning")?;
    let signal = child.status.signal();
    if signal != Some(libc::SIGXCPU) && signal != Some(libc::SIGKILL) {
        return Err(child.failed("the child was not stopped by SIGXCPU or SIGKILL"));
    }
    // One second of CPU on a shared 2-core machine: generous, but bounded.
    if child.elapsed > Duration::from_secs(20) {
        return Err(child.failed(&format!("stopped only after {:?}", child.elapsed)));
    }
    Ok(())
}

fn probe_matches_apply() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("probe", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    let json = |key: &str| -> Result<serde_json::Value, Failed> {
        serde_json::from_str(child.get(key)?).map_err(|e| child.failed(&format!("{key}: {e}")))
    };
    let support = json("support")?;
    let report = json("report")?;
    let controls = support["controls"]
        .as_object()
        .ok_or_else(|| child.failed("no controls in the probe"))?;
    if controls.len() != 10 {
        return Err(child.failed("the probe does not list the ten controls"));
    }
    for (name, availability) in controls {
        let available = availability["available"] == true;
        let state = &report["controls"][name]["state"];
        let expected = if available { "enforced" } else { "absent" };
        if state != expected {
            return Err(child.failed(&format!(
                "{name}: the probe says available={available}, apply says {state}"
            )));
        }
    }
    let abi = support["landlock_abi"].as_u64();
    if report["landlock_abi"].as_u64() != abi.map(|a| a.min(7)) {
        return Err(child.failed("the report's Landlock ABI is not the probe's"));
    }
    // What /proc/self/status says after applying agrees with the report.
    let enforced = |c: &str| report["controls"][c]["state"] == "enforced";
    let status = |field: &str| child.get(field).map(str::to_string);
    if enforced("no_new_privs") && status("NoNewPrivs")? != "1" {
        return Err(child.failed("no_new_privs reported but not set"));
    }
    if enforced("seccomp") && status("Seccomp")? != "2" {
        return Err(child.failed("seccomp reported but not in filter mode"));
    }
    if enforced("capabilities") && status("CapEff")? != "0000000000000000" {
        return Err(child.failed("capabilities reported dropped but some remain"));
    }
    if report["limits"]["core_bytes"] != 0 {
        return Err(child.failed("core dumps still allowed"));
    }
    // This machine's kernel (6.18, Landlock ABI 7) offers every control; the cases above rely on it.
    if let Some(name) = controls.keys().find(|name| !enforced(name)) {
        return Err(child.failed(&format!("{name} is absent on this machine")));
    }
    Ok(())
}

fn missing_control() -> Result<(), Failed> {
    let base = base_dir()?;
    let child = run_case("missing", &base_env(base.path()), QUICK)?;
    child.expect_success()?;
    // The child first hid Landlock behind a filter of its own, as an old container profile does.
    let refused = child.get("required_landlock")?;
    if !refused.starts_with("err:isolated execution needs kernel controls")
        || !refused.contains("landlock_fs (")
        || refused.contains("seccomp (")
    {
        return Err(child.failed("the error does not name exactly the missing control"));
    }
    child.expect("nothing_applied", "ok")?;
    let report: serde_json::Value = serde_json::from_str(child.get("report")?)?;
    for name in ["landlock_fs", "landlock_net", "landlock_scope"] {
        if report["controls"][name]["state"] != "absent" {
            return Err(child.failed(&format!("{name} is not reported absent")));
        }
    }
    if report["controls"]["seccomp"]["state"] != "enforced" {
        return Err(child.failed("seccomp is not reported enforced"));
    }
    // The report is the truth: without Landlock the outside file is readable, and the filter
    // still refuses sockets.
    child.expect("read_outside", "ok")?;
    child.expect_errno("socket_inet", libc::EPERM)?;
    Ok(())
}

fn plugin_loads() -> Result<(), Failed> {
    let data = tempfile::tempdir()?;
    let version_dir = nitejar_suite::plugins::install_package(
        data.path(),
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v1",
        |_| {},
    );
    let plugin_data = data
        .path()
        .join("plugins/dev.nitejar.fixtures.greeter/data");
    std::fs::create_dir_all(&plugin_data)?;
    std::fs::write(data.path().join("nitejar.db"), "not for plugins")?;
    let env = vec![
        (
            PLUGIN,
            version_dir.join("lib/libgreeter.so").display().to_string(),
        ),
        (BASE, data.path().display().to_string()),
    ];
    let child = run_case("plugin", &env, QUICK)?;
    child.expect_success()?;
    child.expect("open_library", "ok")?;
    if child.get("plugin_id")? != "dev.nitejar.fixtures.greeter" {
        return Err(child.failed("the library's manifest was not read"));
    }
    child.expect_errno("read_database", libc::EACCES)?;
    child.expect("write_data_dir", "ok")?;
    Ok(())
}
