//! What the server says about its security posture, word for word (`docs/design.md`, *Claims
//! match enforcement*).
//!
//! A plugin runs in the server's own process or, isolated, in one of its own under the kernel's
//! controls. Declared permissions are enforced where a plugin goes through host services (HTTP,
//! secrets, files, processes); code in the server's process that bypasses them is not contained. Every page, API response and install or enable screen that talks about plugins uses
//! these texts, and `tests/truthfulness.rs` checks that nothing else claims more.

use nitejar_sdk::manifest::Permissions;
use serde::Serialize;

use nitejar_core::loader::isolated::ProcessLimits;
use nitejar_core::receipts::ExecutionMode;
use nitejar_core::trust::consent::posture;
use nitejar_core::trust::TrustMode;

/// The badge on every admin page.
pub const BADGE: &str = nitejar_core::trust::POSTURE_BADGE;
/// Where declared permissions are enforced.
pub const ENFORCEMENT_SCOPE: &str = "host_boundary";
/// The warning on the install review and enable screens.
pub const IN_PROCESS_WARNING: &str =
    "This plugin's code will run inside the Nitejar server process, \
with the server's own access to this machine. There is no hard sandbox: the permissions below are \
checked only when the plugin uses Nitejar's host services (HTTP, secrets, files, processes). Code \
that bypasses those services is not contained. Enable only plugins you trust.";

/// The warning on the install review and enable screens of a plugin that runs isolated.
pub const ISOLATED_WARNING: &str = "This plugin's code will run isolated: in a process of its \
own, as the server's operating-system user, under the kernel's controls (no network and no new \
programs of its own, its own files only, a memory and a processor-time limit). The permissions \
below are what \
it may reach through Nitejar's host services, and the host checks each use. It is still code \
running on this machine. Enable only plugins you trust.";

/// The warning for a plugin whose code runs as `mode`.
pub fn warning(mode: ExecutionMode) -> &'static str {
    match mode {
        ExecutionMode::InProcess => IN_PROCESS_WARNING,
        ExecutionMode::Isolated => ISOLATED_WARNING,
    }
}

/// The badge of a server whose third-party plugins run as `default` unless chosen otherwise.
pub fn badge(default: nitejar_core::receipts::ExecutionMode) -> &'static str {
    match default {
        nitejar_core::receipts::ExecutionMode::InProcess => BADGE,
        nitejar_core::receipts::ExecutionMode::Isolated => ISOLATED_BADGE,
    }
}

/// The footer's words for where third-party plugins run on a server whose default is `default`
/// (the operator may choose otherwise per plugin).
pub fn footer(default: nitejar_core::receipts::ExecutionMode) -> &'static str {
    match default {
        nitejar_core::receipts::ExecutionMode::InProcess => {
            "third-party plugins run in the server's process unless chosen otherwise"
        }
        nitejar_core::receipts::ExecutionMode::Isolated => {
            "third-party plugins run isolated, each in a process of its own, unless chosen otherwise"
        }
    }
}

/// The badge's tooltip for a server whose third-party plugins run as `default`.
pub fn badge_title(default: nitejar_core::receipts::ExecutionMode) -> &'static str {
    match default {
        nitejar_core::receipts::ExecutionMode::InProcess => "Plugins run inside the server process. Declared permissions are checked only at host services.",
        nitejar_core::receipts::ExecutionMode::Isolated => "Third-party plugins run isolated, each in a process of its own under the kernel's controls, unless the operator chose otherwise for one. Built-ins run inside the server process.",
    }
}

/// The badge when third-party plugins run isolated by default.
pub const ISOLATED_BADGE: &str =
    "Plugins isolated by default (kernel-enforced; each plugin's page says where it runs)";

/// The posture text of a trust mode (the core's words, shared with the CLI).
pub fn posture_text(mode: TrustMode) -> &'static str {
    posture(mode)
}

/// What isolated execution does and does not do, for `effectiveLimitations` of an isolated plugin
/// (the kernel controls named here are required: `nitejar_core::loader::isolated::REQUIRED_CONTROLS`).
pub fn isolated_limitations(limits: ProcessLimits) -> Vec<String> {
    vec![
        "Plugin code runs in a process of its own, as the server's operating-system user: a crash, a memory fault or a hang ends that process, not the server, and it is started again.".into(),
        format!("Kernel-enforced in that process (Landlock, seccomp and resource limits; the plugin does not start isolated where the kernel lacks them): no network of its own (every socket is refused; it reaches declared hosts through the host), files only beneath its version directory (read), its data directory (read and write) and the system's shared libraries (read), no new programs or processes, an address space of at most {} MiB and {} s of processor time over the process's life (past either, the process dies and is started again).", limits.memory_mib, limits.cpu_seconds),
        "Not covered by the kernel: which declared host or path a host call may use (the host checks that), the processor time a call takes up to its deadline, and seeing which paths exist.".into(),
        "A call past its deadline stops the plugin's process; other calls in flight in it fail, and it is started again for the next call.".into(),
        "The plugin's process starts with an empty environment: the server's own secrets are not in it; declared secrets come through the host.".into(),
    ]
}

/// The `executionMode` of a plugin running as `mode`.
pub fn execution_mode(mode: nitejar_core::receipts::ExecutionMode) -> &'static str {
    mode.as_str()
}

/// What the in-process execution mode does not do, for `effectiveLimitations`.
pub fn effective_limitations() -> Vec<String> {
    [
        "Plugin code runs in the server process with the server's operating-system permissions.",
        "Permissions are checked only at host services; direct system calls, sockets and file access by plugin code are not intercepted.",
        "A plugin call that never returns cannot be stopped; its thread is abandoned and the plugin is quarantined after repeated timeouts.",
        "Plugin libraries stay loaded until restart; disabling a plugin stops calls into it.",
    ]
    .map(String::from)
    .to_vec()
}

/// What the host does enforce, for `hostEnforcedControls`.
pub fn host_enforced_controls() -> Vec<&'static str> {
    vec![
        "network: host HTTP requests only to declared hosts (redirects re-checked); a declared host name reaches public addresses only, unless the operator allows a private range",
        "secrets: only declared secret names are readable through the host; a secret is the environment variable it reads, whatever its spelling",
        "filesystem: host file reads and writes only beneath declared paths and the plugin's data directory, resolved by the kernel beneath that directory (a symbolic link that leads out is refused); a plugin's own file access is not covered",
        "processes: host process spawning only when declared",
        "timeouts: every plugin call has a deadline; hooks have a chain budget",
        "receipts: every plugin action and every denied host call is recorded",
        "consent: a plugin version runs only with the operator's consent on record; an upgrade or a rollback that adds a permission, hook, integration type or skill waits for it",
        "integrations: an integration's configuration and secrets reach only the plugin it belongs to; another plugin of the same type is given it only by an operator's hand-over",
    ]
}

/// One declared capability with where it is enforced.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredCapability {
    /// The acknowledgement key: `network:<entry>`, `secret:<NAME>`, `fs.read:<entry>`,
    /// `fs.write:<entry>`, `process.spawn`.
    pub permission: String,
    /// `network`, `secret`, `fs.read`, `fs.write`, `process.spawn`.
    pub kind: &'static str,
    /// The declared value (host, secret name, path); empty for `process.spawn`.
    pub value: String,
    /// `kernel_enforced` (the plugin runs isolated: the kernel leaves it no way around the host
    /// service that checks this) or `host_mediated` (checked at host services only).
    pub enforcement: &'static str,
    /// The short label of `enforcement`: `kernel-enforced` or `host-mediated`.
    pub enforcement_pill: &'static str,
    /// The sentence shown next to it.
    pub enforcement_label: &'static str,
    /// Whether the operator acknowledged it.
    pub acknowledged: bool,
}

const HOST_MEDIATED: &str =
    "Checked when the plugin uses the host service; not enforced for code that bypasses it.";

/// Where an isolated plugin's declared capability of `kind` is enforced, in one sentence that
/// names the mode (what `nitejar_core::loader::isolated::REQUIRED_CONTROLS` guarantees: the
/// plugin does not start isolated without them).
fn kernel_enforced(kind: &str) -> &'static str {
    match kind {
        "network" => "Runs isolated: the kernel refuses every socket of the plugin's process, so it reaches this host only through the host service, which checks it.",
        "secret" => "Runs isolated: the plugin's process starts with an empty environment and the kernel keeps it out of the server's files, so it reads this secret only through the host service, which checks the name.",
        "fs.read" | "fs.write" => "Runs isolated: the kernel limits the plugin's own file access to its version directory (read) and data directory (read and write); beyond those it reaches this path only through the host service, which checks it.",
        _ => "Runs isolated: the kernel refuses every program start and new process of the plugin's process, so it starts one only through the host service, which checks this declaration.",
    }
}

/// Where declared permissions of a plugin running as `mode` are enforced, for
/// `enforcementScope`.
pub fn enforcement_scope(mode: ExecutionMode) -> &'static str {
    match mode {
        ExecutionMode::InProcess => ENFORCEMENT_SCOPE,
        ExecutionMode::Isolated => "kernel_and_host_boundary",
    }
}

/// The declared capabilities of a manifest's `permissions` for a plugin running as `mode`, with
/// acknowledgement state from `acknowledged` (permission keys the operator acknowledged).
pub fn declared_capabilities(
    permissions: &Permissions,
    mode: ExecutionMode,
    acknowledged: &dyn Fn(&str) -> bool,
) -> Vec<DeclaredCapability> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str, value: &str| {
        let permission = if value.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}:{value}")
        };
        let (enforcement, enforcement_pill, enforcement_label) = match mode {
            ExecutionMode::InProcess => ("host_mediated", "host-mediated", HOST_MEDIATED),
            ExecutionMode::Isolated => {
                ("kernel_enforced", "kernel-enforced", kernel_enforced(kind))
            }
        };
        out.push(DeclaredCapability {
            acknowledged: acknowledged(&permission),
            permission,
            kind,
            value: value.to_owned(),
            enforcement,
            enforcement_pill,
            enforcement_label,
        });
    };
    for host in &permissions.network {
        push("network", host);
    }
    for name in &permissions.secrets {
        push("secret", name);
    }
    for path in &permissions.filesystem_read {
        push("fs.read", path);
    }
    for path in &permissions.filesystem_write {
        push("fs.write", path);
    }
    if permissions.allow_process_spawn {
        push("process.spawn", "");
    }
    out
}
