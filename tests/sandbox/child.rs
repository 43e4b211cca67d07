//! The sandboxed bodies: each applies the sandbox to this (re-executed, single-threaded) process,
//! then tries what it should no longer be able to do and prints `key=outcome` lines.
//!
//! The raw system calls below use arguments that make them harmless whether or not they are
//! refused; a call that would create a process exits the new process at once.

use std::ffi::c_long;
use std::fs;
use std::hint::black_box;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use nitejar_core::sandbox::{Control, Sandbox, SandboxPolicy};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::{BASE, CPU, MEMORY, PLUGIN, PORT};

pub fn run(case: &str) -> ExitCode {
    let base = PathBuf::from(std::env::var_os(BASE).unwrap_or_default());
    match case {
        "network" => network(&base),
        "socket_families" => socket_families(&base),
        "files" => files(&base),
        "exec" => exec(&base),
        "threads" => threads(&base),
        "processes" => processes(&base),
        "kernel_surface" => kernel_surface(&base),
        "memory" => memory(&base),
        "cpu" => cpu(&base),
        "probe" => probe(&base),
        "missing" => missing(&base),
        "plugin" => plugin(&base),
        other => {
            eprintln!("unknown sandbox case {other}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// `ro/` read-only, `rw/` read-write, the loaded libraries, limits from the environment.
fn policy(base: &Path) -> SandboxPolicy {
    let mut policy = SandboxPolicy::for_plugin(base.join("ro"), base.join("rw"))
        .unwrap_or_else(|e| fail(&format!("policy: {e}")));
    if let Some(memory) = env_u64(MEMORY) {
        policy.memory_bytes = memory;
    }
    if let Some(cpu) = env_u64(CPU) {
        policy.cpu_seconds = cpu;
    }
    policy
}

fn sandbox(policy: &SandboxPolicy) {
    match Sandbox::apply(policy, &Control::ALL) {
        Ok(_) => println!("applied=ok"),
        Err(e) => fail(&format!("apply: {e}")),
    }
}

fn fail(message: &str) -> ! {
    println!("applied=err:{message}");
    std::process::exit(3)
}

fn outcome<T>(result: io::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(n) => format!("errno:{n} ({e})"),
            None => format!("error ({e})"),
        },
    }
}

fn report<T>(key: &str, result: io::Result<T>) {
    println!("{key}={}", outcome(result));
}

/// A raw system call's return value as a result.
fn sys(ret: c_long) -> io::Result<c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn network(base: &Path) {
    let port: u16 = env_u64(PORT).unwrap_or_default() as u16;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    report("connect_before", TcpStream::connect(addr));
    let socket = |_| rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None);
    let (to_connect, to_bind) = match (socket(()), socket(())) {
        (Ok(a), Ok(b)) => (a, b),
        _ => fail("no TCP socket before the sandbox"),
    };
    sandbox(&policy(base));
    report("connect_std", TcpStream::connect(addr));
    report(
        "connect_presocket",
        rustix::net::connect(&to_connect, &addr).map_err(io::Error::from),
    );
    report(
        "bind_presocket",
        rustix::net::bind(&to_bind, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(io::Error::from),
    );
}

fn socket_families(base: &Path) {
    let families = [
        ("inet", AddressFamily::INET, SocketType::STREAM),
        ("inet6", AddressFamily::INET6, SocketType::STREAM),
        ("packet", AddressFamily::PACKET, SocketType::DGRAM),
        ("netlink", AddressFamily::NETLINK, SocketType::DGRAM),
        ("unix", AddressFamily::UNIX, SocketType::STREAM),
    ];
    let open = |family, kind| rustix::net::socket(family, kind, None).map_err(io::Error::from);
    for (name, family, kind) in families {
        report(&format!("{name}_before"), open(family, kind));
    }
    sandbox(&policy(base));
    for (name, family, kind) in families {
        report(&format!("{name}_after"), open(family, kind));
    }
    report("udp_bind", UdpSocket::bind("127.0.0.1:0"));
    report(
        "socketpair_unix",
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::empty(),
            None,
        )
        .map_err(io::Error::from),
    );
}

fn files(base: &Path) {
    let path = |p: &str| base.join(p);
    report("read_before_outside", fs::read(path("outside/secret.txt")));
    sandbox(&policy(base));
    report("read_inside", fs::read_to_string(path("ro/inside.txt")));
    report("list_inside", fs::read_dir(path("ro")).map(Iterator::count));
    report("read_outside", fs::read(path("outside/secret.txt")));
    report(
        "list_outside",
        fs::read_dir(path("outside")).map(Iterator::count),
    );
    report("read_etc_passwd", fs::read("/etc/passwd"));
    report("write_rw", fs::write(path("rw/written.txt"), "written"));
    report("mkdir_rw", fs::create_dir(path("rw/sub")));
    report("read_back_rw", fs::read(path("rw/written.txt")));
    report("write_ro_new", fs::write(path("ro/new.txt"), "x"));
    report(
        "write_ro_existing",
        fs::OpenOptions::new()
            .write(true)
            .open(path("ro/inside.txt")),
    );
    report("remove_ro", fs::remove_file(path("ro/inside.txt")));
    report("write_outside", fs::write(path("outside/new.txt"), "x"));
}

fn exec(base: &Path) {
    sandbox(&policy(base));
    // `exec` calls execve in this process (no fork); it returns only when execve failed.
    let error = Command::new("/bin/sh").args(["-c", "echo escaped"]).exec();
    report::<()>("execve_bin_sh", Err(error));
}

fn threads(base: &Path) {
    sandbox(&policy(base));
    let joined = std::thread::spawn(|| 42).join();
    println!(
        "spawn_and_join={}",
        if matches!(joined, Ok(42)) {
            "ok"
        } else {
            "failed"
        }
    );
    let handles: io::Result<Vec<_>> = (0..4)
        .map(|i| std::thread::Builder::new().spawn(move || i * 2))
        .collect();
    let four = handles.map(|hs| hs.into_iter().map(|h| h.join().unwrap_or(-1)).sum::<i32>());
    println!(
        "four_threads={}",
        if matches!(four, Ok(12)) {
            "ok".to_string()
        } else {
            format!("failed {four:?}")
        }
    );
    let in_thread = |f: fn() -> String| std::thread::spawn(f).join().unwrap_or_default();
    println!(
        "thread_socket={}",
        in_thread(|| outcome(
            rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
                .map_err(io::Error::from)
        ))
    );
    let outside = base.join("outside/secret.txt");
    let read = std::thread::spawn(move || outcome(fs::read(outside)))
        .join()
        .unwrap_or_default();
    println!("thread_read_outside={read}");
}

/// Runs `create` (a process-creating call) and reaps the new process if one was made. In the new
/// process (`create` returned 0) it exits at once.
fn new_process(create: impl FnOnce() -> c_long) -> io::Result<c_long> {
    let pid = sys(create())?;
    if pid == 0 {
        // SAFETY: in the new process, exit without running anything of the parent's state.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the process just created; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    Ok(pid)
}

fn processes(base: &Path) {
    report("command_before", Command::new("/bin/true").status());
    sandbox(&policy(base));
    report("command_spawn", Command::new("/bin/true").spawn());
    // SAFETY: fork in a single-threaded process; the child exits at once (see new_process).
    report("fork", new_process(|| unsafe { libc::fork() } as c_long));
    // SAFETY: raw clone with fork semantics (no new stack, SIGCHLD); the child exits at once.
    report(
        "clone_process",
        new_process(|| unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) }),
    );
    // struct clone_args (CLONE_ARGS_SIZE_VER2): flags 0 and exit_signal SIGCHLD make a fork.
    let mut args = [0u64; 11];
    args[4] = libc::SIGCHLD as u64;
    report(
        "clone3",
        new_process(|| {
            // SAFETY: `args` is a valid clone_args of the size passed; the child exits at once.
            unsafe { libc::syscall(libc::SYS_clone3, args.as_ptr(), size_of_val(&args)) }
        }),
    );
}

/// A raw system call with its arguments bound.
type RawCall = Box<dyn Fn() -> c_long>;

fn kernel_surface(base: &Path) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads the current open-file limit into `limit`.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if got != 0 {
        fail("getrlimit");
    }
    let limit_ptr = &limit as *const libc::rlimit;
    let null = std::ptr::null::<u8>();
    // SAFETY (every call): harmless arguments: flags 0, a bad descriptor, a pid that does not
    // exist, zero-length vectors, NULL structures the kernel reports as faults, and the current
    // limit set again.
    let calls: Vec<(&str, RawCall)> = vec![
        (
            "unshare",
            Box::new(|| unsafe { libc::syscall(libc::SYS_unshare, 0) }),
        ),
        (
            "setns",
            Box::new(|| unsafe { libc::syscall(libc::SYS_setns, -1, 0) }),
        ),
        (
            "keyctl",
            Box::new(|| unsafe { libc::syscall(libc::SYS_keyctl, 0, -2, 0) }),
        ),
        (
            "ptrace",
            Box::new(|| unsafe { libc::syscall(libc::SYS_ptrace, 3, 0x3fff_fff0, 0, 0) }),
        ),
        (
            "process_vm_readv",
            Box::new(move || unsafe {
                libc::syscall(
                    libc::SYS_process_vm_readv,
                    libc::getpid(),
                    null,
                    0,
                    null,
                    0,
                    0,
                )
            }),
        ),
        (
            "io_uring_setup",
            Box::new(move || unsafe { libc::syscall(libc::SYS_io_uring_setup, 0, null) }),
        ),
        (
            "prlimit64_set",
            Box::new(move || unsafe {
                libc::syscall(libc::SYS_prlimit64, 0, libc::RLIMIT_NOFILE, limit_ptr, null)
            }),
        ),
        (
            "mount",
            Box::new(move || unsafe { libc::syscall(libc::SYS_mount, null, null, null, 0, null) }),
        ),
        (
            "bpf",
            Box::new(move || unsafe { libc::syscall(libc::SYS_bpf, 0, null, 0) }),
        ),
        (
            "perf_event_open",
            Box::new(move || unsafe {
                libc::syscall(libc::SYS_perf_event_open, null, 0, -1, -1, 0)
            }),
        ),
        (
            "setrlimit",
            Box::new(move || unsafe {
                libc::syscall(libc::SYS_setrlimit, libc::RLIMIT_NOFILE, limit_ptr)
            }),
        ),
    ];
    for (name, call) in &calls {
        report(&format!("{name}_before"), sys(call()));
    }
    sandbox(&policy(base));
    for (name, call) in &calls {
        report(&format!("{name}_after"), sys(call()));
    }
    let mut out = limit;
    let out_ptr = &mut out as *mut libc::rlimit;
    report(
        "getrlimit_after",
        // SAFETY: reads the limit into `out` (no new limit).
        sys(unsafe { libc::syscall(libc::SYS_prlimit64, 0, libc::RLIMIT_NOFILE, null, out_ptr) }),
    );
    #[cfg(target_arch = "x86_64")]
    report(
        "x32_getpid_after",
        // SAFETY: getpid under the x32 convention: no arguments, no effect.
        sys(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) }),
    );
}

fn memory(base: &Path) {
    sandbox(&policy(base));
    let small = vec![1u8; 16 << 20];
    println!("small_allocation=ok {}", black_box(&small).len());
    // Past RLIMIT_AS: the allocator's mmap fails, and Rust aborts on a failed allocation.
    let large = vec![1u8; 1 << 30];
    println!("large_allocation=ok {}", black_box(&large).len());
}

fn cpu(base: &Path) {
    sandbox(&policy(base));
    println!("spinning=ok");
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn probe(base: &Path) {
    let support = Sandbox::probe();
    println!(
        "support={}",
        serde_json::to_string(&support).unwrap_or_default()
    );
    let available: Vec<Control> = Control::ALL
        .into_iter()
        .filter(|&c| support.is_available(c))
        .collect();
    // /proc is outside the roots: open it now, read it after.
    let mut status = fs::File::open("/proc/self/status").unwrap_or_else(|e| fail(&e.to_string()));
    match Sandbox::apply(&policy(base), &available) {
        Ok(report) => println!(
            "report={}",
            serde_json::to_string(&report).unwrap_or_default()
        ),
        Err(e) => fail(&e.to_string()),
    }
    let mut text = String::new();
    if status.seek(SeekFrom::Start(0)).is_err() || status.read_to_string(&mut text).is_err() {
        fail("/proc/self/status after applying");
    }
    for field in ["NoNewPrivs", "Seccomp", "CapEff"] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(str::trim)
            .unwrap_or("missing");
        println!("{field}={value}");
    }
}

fn seccomp_filters() -> String {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn missing(base: &Path) {
    // What an old container runtime's seccomp profile does to a system call it does not know.
    let hidden = [
        libc::SYS_landlock_create_ruleset,
        libc::SYS_landlock_add_rule,
        libc::SYS_landlock_restrict_self,
    ];
    let filter = seccompiler::SeccompFilter::new(
        hidden.iter().map(|&nr| (nr, Vec::new())).collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        seccompiler::TargetArch::try_from(std::env::consts::ARCH)
            .unwrap_or_else(|e| fail(&e.to_string())),
    )
    .and_then(seccompiler::BpfProgram::try_from)
    .unwrap_or_else(|e| fail(&e.to_string()));
    if let Err(e) = seccompiler::apply_filter(&filter) {
        fail(&e.to_string());
    }

    let policy = policy(base);
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let filters = seccomp_filters();
    let refused = Sandbox::apply(&policy, &[Control::LandlockFs, Control::Seccomp]);
    println!(
        "required_landlock={}",
        match refused {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("err:{e}"),
        }
    );
    let unchanged = rustix::process::getrlimit(rustix::process::Resource::Nofile) == nofile
        && seccomp_filters() == filters;
    println!(
        "nothing_applied={}",
        if unchanged { "ok" } else { "changed" }
    );

    match Sandbox::apply(&policy, &[Control::Seccomp, Control::NoNewPrivs]) {
        Ok(report) => println!(
            "report={}",
            serde_json::to_string(&report).unwrap_or_default()
        ),
        Err(e) => fail(&e.to_string()),
    }
    report("read_outside", fs::read(base.join("outside/secret.txt")));
    report(
        "socket_inet",
        rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).map_err(io::Error::from),
    );
}

fn plugin(base: &Path) {
    let library = PathBuf::from(std::env::var_os(PLUGIN).unwrap_or_default());
    let Some(version_dir) = library.parent().and_then(Path::parent) else {
        fail("no plugin library given");
    };
    let data_dir = base.join("plugins/dev.nitejar.fixtures.greeter/data");
    let policy = SandboxPolicy::for_plugin(version_dir, &data_dir)
        .unwrap_or_else(|e| fail(&format!("policy: {e}")));
    sandbox(&policy);
    match nitejar_core::loader::open(&library) {
        Ok(loaded) => {
            println!("open_library=ok");
            let manifest: serde_json::Value =
                serde_json::from_str(loaded.manifest_json()).unwrap_or_default();
            println!("plugin_id={}", manifest["id"].as_str().unwrap_or_default());
        }
        Err(e) => println!("open_library=error ({e})"),
    }
    report("read_database", fs::read(base.join("nitejar.db")));
    report(
        "write_data_dir",
        fs::write(data_dir.join("state.json"), "{}"),
    );
}
