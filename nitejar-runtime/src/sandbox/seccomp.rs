//! The seccomp filters: the system calls a sandboxed plugin host is refused (see the module docs of
//! [`sandbox`](super) for the list and the reasons).

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use serde::Serialize;

/// One refused system call, as documented and as compiled into the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefusedSyscall {
    /// The system call's name.
    pub syscall: &'static str,
    /// The error the caller gets: `EPERM`, or `ENOSYS` where a fallback must kick in.
    pub errno: &'static str,
    /// When it is refused: `always`, or the argument condition.
    pub when: &'static str,
    /// Why.
    pub why: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    /// `clone` making a process (no `CLONE_THREAD`) or entering a new namespace.
    NewProcess,
    /// `prlimit64` setting a limit (its third argument, the new limit, not NULL).
    NewLimit,
}

impl When {
    fn text(self) -> &'static str {
        match self {
            When::Always => "always",
            When::NewProcess => "without CLONE_THREAD, or with a CLONE_NEW* namespace flag",
            When::NewLimit => "when it sets a limit (new_limit not NULL)",
        }
    }
}

struct Refusal {
    name: &'static str,
    nr: i64,
    when: When,
    why: &'static str,
}

const PROCESS: &str = "no new process or program: spawning goes through the host";
const OTHER_PROCESS: &str = "no access to another process's memory or descriptors";
const MOUNT: &str = "no change to what the process sees of the filesystem";
const NAMESPACE: &str = "no new or foreign namespace";
const SURFACE: &str = "a large kernel attack surface no plugin needs";
const URING: &str = "io_uring performs socket, connect and open without these system calls";
const LIMITS: &str = "the resource limits stay as applied";

/// Refused with `EPERM`.
#[rustfmt::skip]
const REFUSALS: &[Refusal] = &[
    Refusal {
        name: "socket",
        nr: libc::SYS_socket,
        when: When::Always,
        why: "no direct network, and no Unix socket to connect to services: the host services \
              are reached over the descriptor the process was started with",
    },
    Refusal { name: "execve", nr: libc::SYS_execve, when: When::Always, why: PROCESS },
    Refusal { name: "execveat", nr: libc::SYS_execveat, when: When::Always, why: PROCESS },
    #[cfg(target_arch = "x86_64")]
    Refusal { name: "fork", nr: libc::SYS_fork, when: When::Always, why: PROCESS },
    #[cfg(target_arch = "x86_64")]
    Refusal { name: "vfork", nr: libc::SYS_vfork, when: When::Always, why: PROCESS },
    Refusal { name: "clone", nr: libc::SYS_clone, when: When::NewProcess, why: PROCESS },
    Refusal { name: "ptrace", nr: libc::SYS_ptrace, when: When::Always, why: OTHER_PROCESS },
    Refusal {
        name: "process_vm_readv",
        nr: libc::SYS_process_vm_readv,
        when: When::Always,
        why: OTHER_PROCESS,
    },
    Refusal {
        name: "process_vm_writev",
        nr: libc::SYS_process_vm_writev,
        when: When::Always,
        why: OTHER_PROCESS,
    },
    Refusal { name: "pidfd_getfd", nr: libc::SYS_pidfd_getfd, when: When::Always, why: OTHER_PROCESS },
    Refusal { name: "mount", nr: libc::SYS_mount, when: When::Always, why: MOUNT },
    Refusal { name: "umount2", nr: libc::SYS_umount2, when: When::Always, why: MOUNT },
    Refusal { name: "pivot_root", nr: libc::SYS_pivot_root, when: When::Always, why: MOUNT },
    Refusal { name: "open_tree", nr: libc::SYS_open_tree, when: When::Always, why: MOUNT },
    Refusal { name: "move_mount", nr: libc::SYS_move_mount, when: When::Always, why: MOUNT },
    Refusal { name: "fsopen", nr: libc::SYS_fsopen, when: When::Always, why: MOUNT },
    Refusal { name: "fsconfig", nr: libc::SYS_fsconfig, when: When::Always, why: MOUNT },
    Refusal { name: "fsmount", nr: libc::SYS_fsmount, when: When::Always, why: MOUNT },
    Refusal { name: "fspick", nr: libc::SYS_fspick, when: When::Always, why: MOUNT },
    Refusal { name: "mount_setattr", nr: libc::SYS_mount_setattr, when: When::Always, why: MOUNT },
    Refusal { name: "unshare", nr: libc::SYS_unshare, when: When::Always, why: NAMESPACE },
    Refusal { name: "setns", nr: libc::SYS_setns, when: When::Always, why: NAMESPACE },
    Refusal { name: "bpf", nr: libc::SYS_bpf, when: When::Always, why: SURFACE },
    Refusal {
        name: "perf_event_open",
        nr: libc::SYS_perf_event_open,
        when: When::Always,
        why: SURFACE,
    },
    Refusal { name: "keyctl", nr: libc::SYS_keyctl, when: When::Always, why: SURFACE },
    Refusal { name: "add_key", nr: libc::SYS_add_key, when: When::Always, why: SURFACE },
    Refusal { name: "request_key", nr: libc::SYS_request_key, when: When::Always, why: SURFACE },
    Refusal { name: "io_uring_setup", nr: libc::SYS_io_uring_setup, when: When::Always, why: URING },
    Refusal { name: "io_uring_enter", nr: libc::SYS_io_uring_enter, when: When::Always, why: URING },
    Refusal {
        name: "io_uring_register",
        nr: libc::SYS_io_uring_register,
        when: When::Always,
        why: URING,
    },
    Refusal { name: "setrlimit", nr: libc::SYS_setrlimit, when: When::Always, why: LIMITS },
    Refusal { name: "prlimit64", nr: libc::SYS_prlimit64, when: When::NewLimit, why: LIMITS },
];

const CLONE3_WHY: &str = "its flags are out of a filter's reach, so threads and processes look \
                          alike; on ENOSYS glibc creates threads with clone instead";
#[cfg(target_arch = "x86_64")]
const X32_WHY: &str = "the x32 ABI reaches socket and execve under numbers not listed here";

/// Every system call the filters refuse, with the error, the condition and the reason.
pub fn refused_syscalls() -> Vec<RefusedSyscall> {
    let mut all: Vec<RefusedSyscall> = REFUSALS
        .iter()
        .map(|r| RefusedSyscall {
            syscall: r.name,
            errno: "EPERM",
            when: r.when.text(),
            why: r.why,
        })
        .collect();
    all.push(RefusedSyscall {
        syscall: "clone3",
        errno: "ENOSYS",
        when: When::Always.text(),
        why: CLONE3_WHY,
    });
    #[cfg(target_arch = "x86_64")]
    all.push(RefusedSyscall {
        syscall: "x32 ABI (any)",
        errno: "ENOSYS",
        when: "system call number with bit 30 set",
        why: X32_WHY,
    });
    all
}

/// The architecture the filters are compiled for, when seccompiler knows it.
pub(super) fn target_arch() -> Option<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Some(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(TargetArch::aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Some(TargetArch::riscv64)
    } else {
        None
    }
}

/// The filters to install, in order: the `EPERM` refusals, `clone3` → `ENOSYS`, and on x86-64 the
/// x32 guard. Each is a separate filter because one seccompiler filter has one action; the kernel
/// runs them all and the strictest answer wins (here at most one of them refuses any call).
pub(super) fn filters() -> Result<Vec<BpfProgram>, String> {
    let arch = target_arch().ok_or("seccompiler has no filter for this architecture")?;
    let eperm = compile(
        REFUSALS
            .iter()
            .map(|r| Ok((r.nr, rules(r.when)?)))
            .collect::<Result<_, seccompiler::BackendError>>()
            .map_err(|e| e.to_string())?,
        libc::EPERM,
        arch,
    )?;
    let enosys = compile(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        libc::ENOSYS,
        arch,
    )?;
    #[allow(unused_mut)]
    let mut programs = vec![eperm, enosys];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    Ok(programs)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| e.to_string())?;
    Ok(filter)
}

/// An empty list means "whatever the arguments"; several rules are alternatives.
fn rules(when: When) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    // The kernel reads clone's flags as 32 bits; compare those.
    let flags = |mask: i32, value: i32| {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(mask as u32 as u64),
            value as u32 as u64,
        )?])
    };
    match when {
        When::Always => Ok(Vec::new()),
        When::NewProcess => {
            let mut rules = vec![flags(libc::CLONE_THREAD, 0)?];
            for ns in [
                libc::CLONE_NEWNS,
                libc::CLONE_NEWCGROUP,
                libc::CLONE_NEWUTS,
                libc::CLONE_NEWIPC,
                libc::CLONE_NEWUSER,
                libc::CLONE_NEWPID,
                libc::CLONE_NEWNET,
            ] {
                rules.push(flags(ns, ns)?);
            }
            Ok(rules)
        }
        When::NewLimit => Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            2,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::Ne,
            0,
        )?])?]),
    }
}

/// x86-64 only: refuses every x32 system call (`nr & __X32_SYSCALL_BIT`) with `ENOSYS`, what a
/// kernel built without x32 answers. seccompiler compares numbers for equality only, so this small
/// program is written by hand.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, BPF_JMP | BPF_JGE | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    const ARCH_OFFSET: u32 = 4;
    const NR_OFFSET: u32 = 0;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, ARCH_OFFSET),
        op(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(LD_W_ABS, 0, 0, NR_OFFSET),
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}
