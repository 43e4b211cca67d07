//! What the running kernel and container offer, asked without changing the process.

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, RestrictSelfAttr, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetError, Scope, ABI,
};
use rustix::process::{getrlimit, Resource};
use rustix::thread::{capabilities, CapabilitySet};

use super::{Availability, Control, SandboxSupport};

/// The newest Landlock ABI these rules are written and tested for. A newer kernel is used at this
/// ABI (the kernel keeps older ABIs' behaviour).
pub(super) const TESTED_LANDLOCK_ABI: u32 = 7;
/// Filesystem rules need truncation controlled (ABI 3), or a "read-only" root could be truncated.
pub(super) const LANDLOCK_FS_ABI: u32 = 3;
/// TCP bind/connect rules.
pub(super) const LANDLOCK_NET_ABI: u32 = 4;
/// Signal and abstract-Unix-socket scopes.
pub(super) const LANDLOCK_SCOPE_ABI: u32 = 6;

pub(super) fn probe() -> SandboxSupport {
    let mut controls = std::collections::BTreeMap::new();
    let landlock_abi = landlock_abi();

    let nnp = match rustix::thread::no_new_privs() {
        Ok(true) => available("already set for this process"),
        Ok(false) => available("prctl(PR_SET_NO_NEW_PRIVS)"),
        Err(e) => unavailable(&format!("prctl(PR_GET_NO_NEW_PRIVS) failed: {e}")),
    };
    controls.insert(Control::NoNewPrivs, nnp);
    for (control, resource) in [
        (Control::RlimitAs, Resource::As),
        (Control::RlimitCpu, Resource::Cpu),
        (Control::RlimitNofile, Resource::Nofile),
        (Control::RlimitCore, Resource::Core),
    ] {
        // A limit can always be lowered; the current hard limit is what a policy above it gets.
        let hard = getrlimit(resource).maximum;
        let detail = match hard {
            Some(hard) => format!("setrlimit; current hard limit {hard}"),
            None => "setrlimit; current hard limit unlimited".to_string(),
        };
        controls.insert(control, available(&detail));
    }

    let landlock = |needed: u32, covers: &str| match landlock_abi {
        Some(abi) if abi >= needed => available(&format!("Landlock ABI {abi}: {covers}")),
        Some(abi) => unavailable(&format!(
            "Landlock ABI {abi} is too old: {covers} needs ABI {needed} or later"
        )),
        None => unavailable(
            "Landlock is not available (not built into this kernel, not enabled at boot with \
             lsm=...,landlock, or refused by the container's seccomp profile)",
        ),
    };
    controls.insert(
        Control::LandlockFs,
        landlock(
            LANDLOCK_FS_ABI,
            "files readable or writable only under the policy's roots",
        ),
    );
    controls.insert(
        Control::LandlockNet,
        landlock(LANDLOCK_NET_ABI, "no TCP bind or connect"),
    );
    controls.insert(
        Control::LandlockScope,
        landlock(
            LANDLOCK_SCOPE_ABI,
            "no signals or abstract Unix sockets outside the sandbox",
        ),
    );
    controls.insert(Control::Seccomp, seccomp());
    controls.insert(Control::Capabilities, capabilities_support());

    SandboxSupport {
        landlock_abi,
        controls,
    }
}

fn available(detail: &str) -> Availability {
    Availability {
        available: true,
        detail: detail.to_string(),
    }
}

fn unavailable(detail: &str) -> Availability {
    Availability {
        available: false,
        detail: detail.to_string(),
    }
}

/// The kernel's Landlock ABI, found by asking the `landlock` crate for the feature each ABI added,
/// newest first, as a hard requirement: the crate checks them against the ABI the kernel reports,
/// so this is exactly what a ruleset can be built with. Creates at most a throwaway ruleset
/// descriptor; restricts nothing.
fn landlock_abi() -> Option<u32> {
    fn hard() -> Ruleset {
        Ruleset::default().set_compatibility(CompatLevel::HardRequirement)
    }
    fn created_with(
        flag: fn(landlock::RulesetCreated) -> Result<landlock::RulesetCreated, RulesetError>,
    ) -> bool {
        hard()
            .handle_access(AccessFs::Execute)
            .and_then(Ruleset::create)
            .and_then(flag)
            .is_ok()
    }
    let ladder: [(u32, &dyn Fn() -> bool); 10] = [
        (10, &|| hard().handle_access(AccessNet::BindUdp).is_ok()),
        (9, &|| hard().handle_access(AccessFs::ResolveUnix).is_ok()),
        (8, &|| created_with(|r| r.all_threads(true))),
        (7, &|| created_with(|r| r.log_same_exec(false))),
        (6, &|| hard().scope(Scope::from_all(ABI::V6)).is_ok()),
        (5, &|| hard().handle_access(AccessFs::IoctlDev).is_ok()),
        (4, &|| hard().handle_access(AccessNet::BindTcp).is_ok()),
        (3, &|| hard().handle_access(AccessFs::Truncate).is_ok()),
        (2, &|| hard().handle_access(AccessFs::Refer).is_ok()),
        (1, &|| {
            hard()
                .handle_access(AccessFs::Execute)
                .and_then(Ruleset::create)
                .is_ok()
        }),
    ];
    ladder
        .iter()
        .find(|(_, supported)| supported())
        .map(|(abi, _)| *abi)
}

/// Seccomp filters with the `errno` action. `/proc/self/status` has a `Seccomp_filters:` line
/// only in kernels built with filter support; `actions_avail` lists the actions.
fn seccomp() -> Availability {
    if super::seccomp::target_arch().is_none() {
        return unavailable("no seccomp filter is written for this CPU architecture");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .map(str::to_string)
    };
    let Some(filters) = field("Seccomp_filters:") else {
        return unavailable(
            "this kernel has no seccomp filter support (no Seccomp_filters in /proc/self/status)",
        );
    };
    if field("Seccomp:").as_deref() == Some("1") {
        return unavailable("the process runs in seccomp strict mode");
    }
    let actions =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    if !actions.split_whitespace().any(|a| a == "errno") {
        return unavailable(
            "this kernel's seccomp filters cannot return an error (no `errno` action)",
        );
    }
    available(&format!(
        "seccomp filter mode, errno action; {filters} filter(s) already installed (a container \
         runtime's profile stays in force beneath ours)"
    ))
}

fn capabilities_support() -> Availability {
    match capabilities(None) {
        Ok(sets) => {
            let held = (sets.effective | sets.permitted).bits().count_ones();
            let bounding = if sets.effective.contains(CapabilitySet::SETPCAP) {
                "the bounding set is cleared too"
            } else {
                "the bounding set stays (no CAP_SETPCAP); with no_new_privs it grants nothing"
            };
            available(&format!("{held} capabilities held now; {bounding}"))
        }
        Err(e) => unavailable(&format!("capget failed: {e}")),
    }
}
