//! What can be checked without sandboxing the test process. The controls themselves are exercised
//! in child processes by the workspace test `tests/sandbox.rs`.

use std::path::{Path, PathBuf};

use super::*;

#[test]
fn control_names_are_the_stable_machine_names() {
    let names = serde_json::to_value(Control::ALL).unwrap();
    assert_eq!(
        names,
        serde_json::json!([
            "no_new_privs",
            "rlimit_as",
            "rlimit_cpu",
            "rlimit_nofile",
            "rlimit_core",
            "landlock_fs",
            "landlock_net",
            "landlock_scope",
            "seccomp",
            "capabilities"
        ])
    );
    for control in Control::ALL {
        assert_eq!(serde_json::to_value(control).unwrap(), control.name());
        assert_eq!(control.to_string(), control.name());
    }
}

#[test]
fn a_missing_required_control_is_named_with_its_reason() {
    let mut support = SandboxSupport::none("not on this test's kernel");
    support.controls.insert(
        Control::Seccomp,
        Availability {
            available: true,
            detail: "here".into(),
        },
    );
    let missing = support.missing(&[Control::Seccomp, Control::LandlockNet, Control::LandlockNet]);
    assert_eq!(
        missing,
        vec![MissingControl {
            control: Control::LandlockNet,
            reason: "not on this test's kernel".into()
        }]
    );
    let error = SandboxError::Unavailable { missing };
    assert_eq!(
        error.to_string(),
        "isolated execution needs kernel controls this system does not offer: landlock_net (not \
         on this test's kernel); nothing was applied (run on a kernel and container that offer \
         them, or do not require them)"
    );
}

#[test]
fn the_probe_reports_every_control_with_a_reason() {
    let support = Sandbox::probe();
    let probed: Vec<Control> = support.controls.keys().copied().collect();
    assert_eq!(probed, Control::ALL.to_vec());
    for (control, availability) in &support.controls {
        assert!(!availability.detail.is_empty(), "{control} has no detail");
    }
    let json = serde_json::to_value(&support).unwrap();
    assert!(json["controls"]["landlock_fs"]["available"].is_boolean());
    if !cfg!(target_os = "linux") {
        assert!(Control::ALL.iter().all(|&c| !support.is_available(c)));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn apply_refuses_a_process_with_threads_and_changes_nothing() {
    // libtest runs this on a thread of its own: the process has at least two already. Hold a
    // third so the count cannot be one whatever the harness does.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        let _ = stopped.recv();
    });
    let nnp_before = rustix::thread::no_new_privs().unwrap();
    let nofile_before = rustix::process::getrlimit(rustix::process::Resource::Nofile);

    let policy = SandboxPolicy {
        read_only: vec![PathBuf::from("/nonexistent-so-nothing-can-be-opened")],
        read_write: vec![],
        network: Network::None,
        memory_bytes: 1 << 20,
        cpu_seconds: 1,
        max_open_files: 3,
    };
    let error = Sandbox::apply(&policy, &Control::ALL).unwrap_err();
    assert!(
        matches!(error, SandboxError::Threads { threads } if threads >= 3),
        "{error}"
    );
    assert_eq!(rustix::thread::no_new_privs().unwrap(), nnp_before);
    assert_eq!(
        rustix::process::getrlimit(rustix::process::Resource::Nofile),
        nofile_before
    );
    drop(stop);
    helper.join().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn library_roots_are_the_directories_of_mapped_shared_objects() {
    let maps = "\
55d0c0a00000-55d0c0a2c000 r--p 00000000 fd:01 1234 /usr/local/bin/nitejar
7f0000000000-7f0000001000 r--p 00000000 fd:01 11 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000001000-7f0000002000 r-xp 00001000 fd:01 11 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000002000-7f0000003000 r--p 00000000 fd:01 12 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f0000003000-7f0000004000 r--p 00000000 fd:01 13 /opt/my libs/libextra.so
7f0000004000-7f0000005000 r--p 00000000 fd:01 14 /usr/lib/locale/locale-archive
7f0000005000-7f0000006000 rw-s 00000000 00:01 15 /memfd:ring (deleted)
7f0000006000-7f0000007000 rw-p 00000000 00:00 0 [heap]
7f0000007000-7f0000008000 rw-p 00000000 00:00 0
";
    let dirs = libraries::library_dirs(maps, Some(Path::new("/usr/local/bin/nitejar")));
    assert_eq!(
        dirs,
        vec![
            PathBuf::from("/opt/my libs"),
            PathBuf::from("/usr/lib/x86_64-linux-gnu"),
        ]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_plugin_policy_reads_its_version_dir_and_the_loaded_libraries() {
    let policy = SandboxPolicy::for_plugin("/plugins/p/versions/1.0.0", "/plugins/p/data").unwrap();
    assert_eq!(policy.read_only[0], Path::new("/plugins/p/versions/1.0.0"));
    assert_eq!(policy.read_write, vec![PathBuf::from("/plugins/p/data")]);
    assert_eq!(policy.network, Network::None);
    // The directory libc was loaded from, whatever the distribution calls it.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let libc = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so"))
        .expect("this test binary links libc dynamically");
    let libc_dir = Path::new(libc).parent().unwrap();
    assert!(policy.read_only.iter().any(|r| r == libc_dir), "{policy:?}");
    if Path::new("/etc/ld.so.cache").exists() {
        assert!(policy
            .read_only
            .contains(&PathBuf::from("/etc/ld.so.cache")));
    }
    // Not the test binary's own directory.
    let exe = std::env::current_exe().unwrap();
    assert!(!policy
        .read_only
        .iter()
        .any(|r| Some(r.as_path()) == exe.parent()));
}

#[cfg(target_os = "linux")]
#[test]
fn the_filters_compile_and_refuse_what_the_docs_list() {
    let filters = seccomp::filters().unwrap();
    assert_eq!(
        filters.len(),
        if cfg!(target_arch = "x86_64") { 3 } else { 2 }
    );
    assert!(filters.iter().all(|f| !f.is_empty()));

    let refused = refused_syscalls();
    let errno = |name: &str| {
        refused
            .iter()
            .find(|r| r.syscall == name)
            .map(|r| r.errno)
            .unwrap_or_else(|| panic!("{name} is not refused"))
    };
    for name in [
        "socket",
        "execve",
        "execveat",
        "clone",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "keyctl",
        "io_uring_setup",
        "prlimit64",
    ] {
        assert_eq!(errno(name), "EPERM", "{name}");
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(errno("fork"), "EPERM");
        assert_eq!(errno("vfork"), "EPERM");
    }
    assert_eq!(errno("clone3"), "ENOSYS");
    assert!(!refused.iter().any(|r| r.syscall == "socketpair"));
}

#[cfg(not(target_os = "linux"))]
#[test]
fn apply_refuses_outside_linux() {
    let policy = SandboxPolicy::for_plugin("/v", "/d").unwrap();
    assert!(matches!(
        Sandbox::apply(&policy, &[]),
        Err(SandboxError::Unsupported)
    ));
}
