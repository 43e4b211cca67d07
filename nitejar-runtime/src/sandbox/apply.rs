//! Applying a policy: everything that can fail is prepared first (the ruleset, its roots, the
//! filters), then the controls go on in order and each is read back.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use rustix::thread::{
    capabilities, clear_ambient_capability_set, remove_capability_from_bounding_set,
    set_capabilities, CapabilitySet, CapabilitySets,
};

use super::probe;
use super::ruleset::{self, Parts};
use super::seccomp;
use super::{
    AppliedLimits, AppliedReport, Control, ControlState, Enforcement, Network, SandboxError,
    SandboxPolicy,
};

pub(super) fn apply(
    policy: &SandboxPolicy,
    required: &[Control],
) -> Result<AppliedReport, SandboxError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(SandboxError::Threads { threads });
    }
    check(policy)?;
    let support = probe::probe();
    let missing = support.missing(required);
    if !missing.is_empty() {
        return Err(SandboxError::Unavailable { missing });
    }
    let on = |c: Control| support.is_available(c);

    // Everything that can fail without consequence, before the first irreversible step.
    let parts = Parts {
        abi: support.landlock_abi.unwrap_or(0),
        fs: on(Control::LandlockFs),
        net: on(Control::LandlockNet),
        scope: on(Control::LandlockScope),
    };
    let ruleset = if parts.fs || parts.net || parts.scope {
        Some(ruleset::prepare(policy, parts)?)
    } else {
        None
    };
    let filters = if on(Control::Seccomp) {
        Some(seccomp::filters().map_err(|message| SandboxError::Prepare {
            control: Control::Seccomp,
            message,
        })?)
    } else {
        None
    };

    // Landlock keeps /proc out of reach once applied: open what is read afterwards now.
    let mut status = ProcStatus::open()?;
    let cap_last_cap = cap_last_cap();

    let mut controls = BTreeMap::new();
    let mut enforced = |control: Control, detail: String| {
        controls.insert(
            control,
            ControlState {
                state: Enforcement::Enforced,
                detail,
            },
        );
    };

    if on(Control::NoNewPrivs) {
        set_no_new_privs()?;
        enforced(
            Control::NoNewPrivs,
            "no privileges can be gained through execve".into(),
        );
    }

    let cpu_hard = policy.cpu_seconds.saturating_add(1);
    let limits = [
        (
            Control::RlimitAs,
            Resource::As,
            policy.memory_bytes,
            policy.memory_bytes,
        ),
        (
            Control::RlimitCpu,
            Resource::Cpu,
            policy.cpu_seconds,
            cpu_hard,
        ),
        (
            Control::RlimitNofile,
            Resource::Nofile,
            policy.max_open_files,
            policy.max_open_files,
        ),
        (Control::RlimitCore, Resource::Core, 0, 0),
    ];
    for (control, resource, soft, hard) in limits {
        if !on(control) {
            continue;
        }
        let (after, lower_inherited) = lower_limit(control, resource, soft, hard)?;
        let shown = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
        let mut detail = match control {
            Control::RlimitAs => format!("address space limited to {} bytes", shown(after.current)),
            Control::RlimitCpu => format!(
                "SIGXCPU after {} s of CPU time, SIGKILL after {} s, counted over the process's life",
                shown(after.current),
                shown(after.maximum)
            ),
            Control::RlimitNofile => format!("at most {} open descriptors", shown(after.current)),
            _ => "no core dumps".to_string(),
        };
        if lower_inherited {
            detail.push_str(" (the inherited limit was lower than the policy's and is kept)");
        }
        enforced(control, detail);
    }

    if let Some(ruleset) = ruleset {
        let first = [
            (parts.fs, Control::LandlockFs),
            (parts.net, Control::LandlockNet),
            (parts.scope, Control::LandlockScope),
        ]
        .into_iter()
        .find_map(|(on, control)| on.then_some(control))
        .unwrap_or(Control::LandlockFs);
        ruleset::restrict(ruleset).map_err(|message| SandboxError::Apply {
            control: first,
            message,
        })?;
        let abi = parts.abi;
        if parts.fs {
            enforced(
                Control::LandlockFs,
                format!(
                    "Landlock ABI {abi}: read-only under {}; read-write under {}; every other \
                     path refused; handled rights: {}",
                    list(&policy.read_only),
                    list(&policy.read_write),
                    ruleset::handled_fs_rights(abi).join(", ")
                ),
            );
        }
        if parts.net {
            match policy.network {
                Network::None => enforced(
                    Control::LandlockNet,
                    format!("Landlock ABI {abi}: TCP bind and connect refused on every port"),
                ),
            }
        }
        if parts.scope {
            enforced(
                Control::LandlockScope,
                format!(
                    "Landlock ABI {abi}: no signals to, and no abstract Unix sockets of, processes \
                     outside the sandbox"
                ),
            );
        }
    }

    if let Some(filters) = filters {
        let before = status.seccomp_filters();
        for filter in &filters {
            seccompiler::apply_filter(filter).map_err(|e| SandboxError::Apply {
                control: Control::Seccomp,
                message: e.to_string(),
            })?;
        }
        let after = status.seccomp_filters();
        if before.zip(after).map(|(b, a)| a - b) != Some(filters.len() as u64) {
            return Err(SandboxError::Apply {
                control: Control::Seccomp,
                message: format!(
                    "installed {} filters but /proc/self/status counts {before:?} before and \
                     {after:?} after",
                    filters.len()
                ),
            });
        }
        let refused = seccomp::refused_syscalls();
        enforced(
            Control::Seccomp,
            format!(
                "{} filters; refused: {}",
                filters.len(),
                refused
                    .iter()
                    .map(|r| match r.when {
                        "always" => format!("{} ({})", r.syscall, r.errno),
                        when => format!("{} ({} {when})", r.syscall, r.errno),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    if on(Control::Capabilities) {
        let bounding = drop_capabilities(cap_last_cap).map_err(|message| SandboxError::Apply {
            control: Control::Capabilities,
            message,
        })?;
        enforced(
            Control::Capabilities,
            if bounding {
                "no capabilities: effective, permitted, inheritable, ambient and bounding sets empty"
                    .into()
            } else {
                "no capabilities: effective, permitted, inheritable and ambient sets empty (the \
                 bounding set stays, granting nothing under no_new_privs)"
                    .into()
            },
        );
    }

    for control in Control::ALL {
        if let Some(availability) = support.controls.get(&control) {
            controls.entry(control).or_insert_with(|| ControlState {
                state: Enforcement::Absent,
                detail: availability.detail.clone(),
            });
        }
    }
    let limit = |r: Resource| getrlimit(r);
    let landlock_fs = controls
        .get(&Control::LandlockFs)
        .is_some_and(|s| s.state == Enforcement::Enforced);
    Ok(AppliedReport {
        landlock_abi: ruleset_abi(&controls, parts.abi),
        limits: AppliedLimits {
            memory_bytes: limit(Resource::As).current,
            cpu_seconds: limit(Resource::Cpu).current,
            cpu_kill_seconds: limit(Resource::Cpu).maximum,
            open_files: limit(Resource::Nofile).current,
            core_bytes: limit(Resource::Core).current,
        },
        read_only: if landlock_fs {
            policy.read_only.clone()
        } else {
            Vec::new()
        },
        read_write: if landlock_fs {
            policy.read_write.clone()
        } else {
            Vec::new()
        },
        controls,
    })
}

/// The ABI the rules were written for, when any Landlock control is enforced.
fn ruleset_abi(controls: &BTreeMap<Control, ControlState>, abi: u32) -> Option<u32> {
    [
        Control::LandlockFs,
        Control::LandlockNet,
        Control::LandlockScope,
    ]
    .iter()
    .any(|c| {
        controls
            .get(c)
            .is_some_and(|s| s.state == Enforcement::Enforced)
    })
    .then_some(abi.min(probe::TESTED_LANDLOCK_ABI))
}

fn check(policy: &SandboxPolicy) -> Result<(), SandboxError> {
    for (name, value) in [
        ("memory_bytes", policy.memory_bytes),
        ("cpu_seconds", policy.cpu_seconds),
        ("max_open_files", policy.max_open_files),
    ] {
        if value == 0 {
            return Err(SandboxError::Policy(format!(
                "{name} is 0: a process could not run at all under it"
            )));
        }
    }
    for root in policy.read_only.iter().chain(&policy.read_write) {
        if !root.is_absolute() {
            return Err(SandboxError::Policy(format!(
                "root {} is relative; roots must be absolute",
                root.display()
            )));
        }
    }
    Ok(())
}

fn thread_count() -> Result<usize, SandboxError> {
    let path = PathBuf::from("/proc/self/task");
    std::fs::read_dir(&path)
        .map(Iterator::count)
        .map_err(|source| SandboxError::Root { path, source })
}

fn set_no_new_privs() -> Result<(), SandboxError> {
    let failed = |message: String| SandboxError::Apply {
        control: Control::NoNewPrivs,
        message,
    };
    rustix::thread::set_no_new_privs(true).map_err(|e| failed(e.to_string()))?;
    match rustix::thread::no_new_privs() {
        Ok(true) => Ok(()),
        Ok(false) => Err(failed(
            "the kernel reports it unset after setting it".into(),
        )),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Lowers a limit to `soft`/`hard`, never above the inherited hard limit (raising it needs a
/// privilege, and a lower limit is stricter anyway). Returns the limit read back, and whether the
/// inherited one was kept.
fn lower_limit(
    control: Control,
    resource: Resource,
    soft: u64,
    hard: u64,
) -> Result<(Rlimit, bool), SandboxError> {
    let inherited = getrlimit(resource).maximum;
    let cap = |v: u64| inherited.map_or(v, |m| v.min(m));
    let wanted = Rlimit {
        current: Some(cap(soft)),
        maximum: Some(cap(hard)),
    };
    let failed = |message: String| SandboxError::Apply { control, message };
    setrlimit(resource, wanted).map_err(|e| failed(e.to_string()))?;
    let after = getrlimit(resource);
    if after != wanted {
        return Err(failed(format!(
            "set {wanted:?} but the kernel reports {after:?}"
        )));
    }
    Ok((after, inherited.is_some_and(|m| m < hard)))
}

/// `/proc/self/status`, opened before Landlock and read again from the start when asked (the
/// kernel writes it anew at each read from offset 0).
struct ProcStatus(std::fs::File);

impl ProcStatus {
    fn open() -> Result<Self, SandboxError> {
        let path = PathBuf::from("/proc/self/status");
        std::fs::File::open(&path)
            .map(ProcStatus)
            .map_err(|source| SandboxError::Root { path, source })
    }

    fn seccomp_filters(&mut self) -> Option<u64> {
        self.0.seek(SeekFrom::Start(0)).ok()?;
        let mut text = String::new();
        self.0.read_to_string(&mut text).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Seccomp_filters:"))?
            .trim()
            .parse()
            .ok()
    }
}

/// The highest capability number this kernel knows.
fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
        .min(63)
}

/// Clears every capability set; the bounding set too when the process holds `CAP_SETPCAP` (which
/// is cleared last). Returns whether the bounding set was cleared.
fn drop_capabilities(last: u32) -> Result<bool, String> {
    let sets = capabilities(None).map_err(|e| format!("capget: {e}"))?;
    let bounding = sets.effective.contains(CapabilitySet::SETPCAP);
    if bounding {
        for cap in 0..=last {
            match remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << cap)) {
                // A number past the kernel's last capability (when cap_last_cap was unreadable).
                Err(rustix::io::Errno::INVAL) if cap > 40 => break,
                other => other
                    .map_err(|e| format!("dropping capability {cap} from the bounding set: {e}"))?,
            }
        }
    }
    clear_ambient_capability_set().map_err(|e| format!("clearing the ambient set: {e}"))?;
    let empty = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, empty).map_err(|e| format!("capset: {e}"))?;
    let after = capabilities(None).map_err(|e| format!("capget: {e}"))?;
    if after != empty {
        return Err(format!("capabilities remain after capset: {after:?}"));
    }
    Ok(bounding)
}

fn list(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        return "nothing".into();
    }
    roots
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
