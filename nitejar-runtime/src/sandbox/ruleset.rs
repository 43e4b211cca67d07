//! The Landlock ruleset: filesystem roots, TCP, scopes.

use std::path::Path;

use landlock::{
    make_bitflags, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use super::probe::TESTED_LANDLOCK_ABI;
use super::{Control, SandboxError, SandboxPolicy};

/// Which parts of Landlock to use (each only where the kernel's ABI offers it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Parts {
    pub abi: u32,
    pub fs: bool,
    pub net: bool,
    pub scope: bool,
}

/// Builds the ruleset and opens every root, changing nothing in the process yet. Every right is a
/// hard requirement: the kernel takes the ruleset as written, or this fails.
pub(super) fn prepare(
    policy: &SandboxPolicy,
    parts: Parts,
) -> Result<RulesetCreated, SandboxError> {
    let abi = ABI::from(parts.abi.min(TESTED_LANDLOCK_ABI) as i32);
    let prepare_error = |control: Control| {
        move |e: landlock::RulesetError| SandboxError::Prepare {
            control,
            message: e.to_string(),
        }
    };
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if parts.fs {
        ruleset = ruleset
            .handle_access(AccessFs::from_all(abi))
            .map_err(prepare_error(Control::LandlockFs))?;
    }
    if parts.net {
        // TCP bind and connect (ABI 4 to 9), handled with no rule: every port refused.
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(prepare_error(Control::LandlockNet))?;
    }
    if parts.scope {
        ruleset = ruleset
            .scope(Scope::from_all(abi))
            .map_err(prepare_error(Control::LandlockScope))?;
    }
    let mut created = ruleset
        .create()
        .map_err(prepare_error(Control::LandlockFs))?;
    if parts.fs {
        for (roots, writable) in [(&policy.read_only, false), (&policy.read_write, true)] {
            for root in roots {
                created = created
                    .add_rule(PathBeneath::new(open_root(root)?, rights(root, writable)?))
                    .map_err(|e| SandboxError::Prepare {
                        control: Control::LandlockFs,
                        message: format!("the rule for {}: {e}", root.display()),
                    })?;
            }
        }
    }
    Ok(created)
}

/// Restricts the calling thread (and every thread and process it creates afterwards).
pub(super) fn restrict(created: RulesetCreated) -> Result<(), String> {
    let status = created.restrict_self().map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        other => Err(format!("the kernel enforces the ruleset only as {other:?}")),
    }
}

/// The names of the filesystem rights handled at `abi`, for the report.
pub(super) fn handled_fs_rights(abi: u32) -> Vec<String> {
    let abi = ABI::from(abi.min(TESTED_LANDLOCK_ABI) as i32);
    AccessFs::from_all(abi)
        .iter()
        .map(|r| format!("{r:?}"))
        .collect()
}

fn open_root(root: &Path) -> Result<PathFd, SandboxError> {
    PathFd::new(root).map_err(|e| SandboxError::Root {
        path: root.to_path_buf(),
        source: match e {
            landlock::PathFdError::OpenCall { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        },
    })
}

/// Read-only: read files and list directories. Read-write adds creating, writing, truncating,
/// renaming and removing files and directories; never executing, nor creating devices, sockets,
/// pipes or symbolic links. A file root gets the file rights only (Landlock refuses directory
/// rights on a file).
fn rights(root: &Path, writable: bool) -> Result<BitFlags<AccessFs>, SandboxError> {
    let meta = std::fs::metadata(root).map_err(|source| SandboxError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let rights = match (meta.is_dir(), writable) {
        (true, false) => make_bitflags!(AccessFs::{ReadFile | ReadDir}),
        (false, false) => make_bitflags!(AccessFs::{ReadFile}),
        (true, true) => make_bitflags!(AccessFs::{
            ReadFile | ReadDir | WriteFile | Truncate | MakeReg | MakeDir | RemoveFile
                | RemoveDir | Refer
        }),
        (false, true) => make_bitflags!(AccessFs::{ReadFile | WriteFile | Truncate}),
    };
    Ok(rights)
}
