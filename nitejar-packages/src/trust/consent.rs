//! Consent: what the operator is told before enabling a third-party plugin, and the permissions
//! they acknowledge one by one.
//!
//! Every declared permission becomes a [`DisclosedPermission`] with its acknowledgement string (the
//! one the permission gate checks: `network:<entry>`, `secret:<NAME>`, `fs.read:<entry>`,
//! `fs.write:<entry>`, `process.spawn`) and where it is enforced. The truth model is stated, not
//! softened: plugins run in-process, and a permission is enforced only when the plugin goes through
//! the host's service for it; code in the plugin can reach around the host.

use std::collections::BTreeSet;

use nitejar_sdk::manifest::{Manifest, Permissions};
use serde::Serialize;

use super::TrustMode;
use nitejar_store::receipts::ExecutionMode;

/// The badge every surface shows.
pub const POSTURE_BADGE: &str = "In-process (No hard sandbox)";

/// The posture sentence for a trust mode, for a plugin that runs in the server's process.
/// `saas_locked` runs third-party plugins isolated only: its sentence says so.
pub fn posture(mode: TrustMode) -> &'static str {
    posture_for(mode, ExecutionMode::InProcess)
}

/// The posture sentence for a trust mode and where the plugin's code runs.
pub fn posture_for(mode: TrustMode, execution: ExecutionMode) -> &'static str {
    match (mode, execution) {
        (TrustMode::SaasLocked, _) => {
            "Only built-in and platform-signed plugins; third-party plugin code runs isolated, in a process of its own under the kernel's controls."
        }
        (TrustMode::SelfHostOpen, ExecutionMode::InProcess) => {
            "Declared capabilities; not sandbox-enforced in this mode."
        }
        (TrustMode::SelfHostGuarded, ExecutionMode::InProcess) => {
            "Partially enforced in current execution mode; plugin code still runs in-process."
        }
        (TrustMode::SelfHostOpen, ExecutionMode::Isolated) => {
            "Declared capabilities, checked by the host; the plugin runs isolated, and the kernel refuses what its process tries around the host."
        }
        (TrustMode::SelfHostGuarded, ExecutionMode::Isolated) => {
            "Signed or allowlisted plugins; each runs isolated, and the kernel refuses what its process tries around the host."
        }
    }
}

/// One declared permission, as disclosed to the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisclosedPermission {
    /// The acknowledgement string (`network:api.example.com`, `secret:TOKEN`, …).
    pub ack: String,
    /// The manifest field (`network`, `secrets`, `filesystemRead`, `filesystemWrite`,
    /// `allowProcessSpawn`).
    pub scope: &'static str,
    /// The declared value.
    pub value: String,
    /// Where it is enforced: always `host_boundary` in this release.
    pub enforcement: &'static str,
    /// What it lets the plugin do, and what the host checks.
    pub description: String,
}

/// The permissions a manifest declares, in manifest order.
pub fn disclose(permissions: &Permissions) -> Vec<DisclosedPermission> {
    let mut out = Vec::new();
    let mut push = |scope, ack: String, value: String, description: String| {
        out.push(DisclosedPermission {
            ack,
            scope,
            value,
            enforcement: "host_boundary",
            description,
        })
    };
    for entry in &permissions.network {
        push(
            "network",
            format!("network:{entry}"),
            entry.clone(),
            format!(
                "HTTP requests to {entry} through the host (checked on every request and redirect)"
            ),
        );
    }
    for name in &permissions.secrets {
        push(
            "secrets",
            format!("secret:{name}"),
            name.clone(),
            format!(
                "read the secret {name} through the host (the server reads it from {})",
                crate::secret_env_var(name)
            ),
        );
    }
    for path in &permissions.filesystem_read {
        push(
            "filesystemRead",
            format!("fs.read:{path}"),
            path.clone(),
            format!("read files under {path} through the host"),
        );
    }
    for path in &permissions.filesystem_write {
        push(
            "filesystemWrite",
            format!("fs.write:{path}"),
            path.clone(),
            format!("write files under {path} through the host"),
        );
    }
    if permissions.allow_process_spawn {
        push(
            "allowProcessSpawn",
            "process.spawn".into(),
            "true".into(),
            "start processes through the host".into(),
        );
    }
    out
}

/// The acknowledgement strings of every declared permission.
pub fn ack_strings(permissions: &Permissions) -> BTreeSet<String> {
    disclose(permissions).into_iter().map(|p| p.ack).collect()
}

/// The permissions `new` declares that `old` did not: what an upgrade must ask consent for again.
pub fn added_permissions(old: &Permissions, new: &Permissions) -> Vec<DisclosedPermission> {
    let before = ack_strings(old);
    disclose(new)
        .into_iter()
        .filter(|p| !before.contains(&p.ack))
        .collect()
}

/// Everything a version asks the operator to accept, as one sorted set: the acknowledgement string
/// of each declared permission, and what it contributes — `hook:<event>`, `integration:<type>`,
/// `skill:<id>`. Consent is to this set: an upgrade that adds to it is reviewed again, whatever it
/// adds (a new hook can read every payload of its event; a new integration type receives messages).
pub fn consent_set(manifest: &Manifest) -> BTreeSet<String> {
    let mut set = ack_strings(&manifest.permissions);
    let c = &manifest.contributes;
    set.extend(c.hooks.iter().map(|h| format!("hook:{h}")));
    set.extend(c.integrations.iter().map(|t| format!("integration:{t}")));
    set.extend(c.skills.iter().map(|k| format!("skill:{k}")));
    set
}

/// What one consented set adds to and drops from another.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConsentDiff {
    /// In the new set only: needs consent.
    pub added: Vec<String>,
    /// In the old set only.
    pub removed: Vec<String>,
}

impl ConsentDiff {
    /// Whether the new set asks for nothing the old one did not.
    pub fn adds_nothing(&self) -> bool {
        self.added.is_empty()
    }

    /// `+ x` and `− y` lines, for texts and terminals.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for a in &self.added {
            out.push_str(&format!("  + {a}\n"));
        }
        for r in &self.removed {
            out.push_str(&format!("  \u{2212} {r}\n"));
        }
        out
    }
}

/// `new` against `old` (sets from [`consent_set`]).
pub fn consent_diff(old: &BTreeSet<String>, new: &BTreeSet<String>) -> ConsentDiff {
    ConsentDiff {
        added: new.difference(old).cloned().collect(),
        removed: old.difference(new).cloned().collect(),
    }
}

/// The consent text for making `manifest` current in place of a version whose consent covered
/// less: the whole text, then what changed.
pub fn upgrade_consent_text(manifest: &Manifest, mode: TrustMode, diff: &ConsentDiff) -> String {
    upgrade_consent_text_for(manifest, mode, ExecutionMode::InProcess, diff)
}

/// [`upgrade_consent_text`] for a plugin that runs as `execution` says.
pub fn upgrade_consent_text_for(
    manifest: &Manifest,
    mode: TrustMode,
    execution: ExecutionMode,
    diff: &ConsentDiff,
) -> String {
    let mut text = consent_text_for(manifest, mode, execution);
    text.push_str("Compared with what was consented to before:\n");
    text.push_str(&diff.lines());
    text
}

/// The consent text for enabling `manifest` under `mode`: what the operator accepts with
/// `--accept-consent` (the API's `acceptConsent`). Stable for a given manifest and mode, so its
/// hash in the enable receipt identifies exactly what was accepted.
pub fn consent_text(manifest: &Manifest, mode: TrustMode) -> String {
    consent_text_for(manifest, mode, ExecutionMode::InProcess)
}

/// [`consent_text`] for a plugin that runs as `execution` says.
pub fn consent_text_for(manifest: &Manifest, mode: TrustMode, execution: ExecutionMode) -> String {
    let isolated = execution == ExecutionMode::Isolated;
    let mut text = if isolated {
        format!(
            "Enable {} ({}) version {}.\n\
             Isolated process: this plugin's code runs in a process of its own, under the kernel's \
             controls: no sockets or programs of its own, files only beneath its version and data \
             directories, at most 1 GiB of address space. {}\n",
            manifest.name,
            manifest.id,
            manifest.version,
            posture_for(mode, execution),
        )
    } else {
        format!(
            "Enable {} ({}) version {}.\n\
             {POSTURE_BADGE}: this plugin's code runs inside the Nitejar server process with the server's own \
             operating-system rights. {}\n",
            manifest.name,
            manifest.id,
            manifest.version,
            posture_for(mode, execution),
        )
    };
    let disclosed = disclose(&manifest.permissions);
    if disclosed.is_empty() {
        text.push_str("It declares no permissions: every host service call it makes is refused.\n");
    } else {
        text.push_str(
            "It declares these permissions, enforced only at the host boundary (when it uses the host's service):\n",
        );
        for p in &disclosed {
            text.push_str(&format!("  - {} — {}\n", p.ack, p.description));
        }
    }
    let c = &manifest.contributes;
    let mut contributions = Vec::new();
    if !c.hooks.is_empty() {
        contributions.push(format!(
            "handlers on {} (they see and may change what those events carry)",
            c.hooks.join(", ")
        ));
    }
    if !c.integrations.is_empty() {
        contributions.push(format!(
            "the integration type{} {} (it receives the messages of those channels)",
            if c.integrations.len() == 1 { "" } else { "s" },
            c.integrations.join(", ")
        ));
    }
    if !c.skills.is_empty() {
        contributions.push(format!("the skills {}", c.skills.join(", ")));
    }
    if !contributions.is_empty() {
        text.push_str("It contributes:\n");
        for line in contributions {
            text.push_str(&format!("  - {line}\n"));
        }
    }
    text.push_str(if isolated {
        "Its process cannot reach around the host for the network, other files or programs; what it declares is what the host lets it do. Enable it only if you trust its publisher.\n"
    } else {
        "Code running in-process can reach around the host. Enable it only if you trust its publisher.\n"
    });
    text
}

/// `sha256:<hex>` of a consent text, recorded with the acceptance.
pub fn consent_digest(text: &str) -> String {
    format!(
        "sha256:{}",
        crate::install::digest::sha256_hex(text.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permissions(json: &str) -> Permissions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_permission_is_disclosed_with_its_ack() {
        let p = permissions(
            r#"{"network":["api.x.com"],"secrets":["TOKEN"],"filesystemRead":["assets"],
                "filesystemWrite":["/tmp/out"],"allowProcessSpawn":true}"#,
        );
        let acks: Vec<_> = disclose(&p).into_iter().map(|d| d.ack).collect();
        assert_eq!(
            acks,
            [
                "network:api.x.com",
                "secret:TOKEN",
                "fs.read:assets",
                "fs.write:/tmp/out",
                "process.spawn"
            ]
        );
    }

    fn manifest(json: &str) -> Manifest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_consented_set_covers_permissions_and_contributions() {
        let old = manifest(
            r#"{"schemaVersion":1,"id":"com.acme.x","name":"X","version":"1.0.0",
                "engine":{"nitejar":"*"},"permissions":{"network":["api.x.com"]},
                "contributes":{"hooks":["tool.pre_exec"]}}"#,
        );
        let new = manifest(
            r#"{"schemaVersion":1,"id":"com.acme.x","name":"X","version":"2.0.0",
                "engine":{"nitejar":"*"},"permissions":{"network":["api.x.com"]},
                "contributes":{"hooks":["model.pre_call"],"integrations":["jira"],"skills":["triage"]}}"#,
        );
        let diff = consent_diff(&consent_set(&old), &consent_set(&new));
        assert_eq!(
            diff.added,
            ["hook:model.pre_call", "integration:jira", "skill:triage"]
        );
        assert_eq!(diff.removed, ["hook:tool.pre_exec"]);
        assert!(!diff.adds_nothing());
        assert!(
            consent_diff(&consent_set(&new), &consent_set(&old)).added == ["hook:tool.pre_exec"]
        );
        let text = upgrade_consent_text(&new, TrustMode::SelfHostOpen, &diff);
        assert!(
            text.contains("  + integration:jira") && text.contains("\u{2212} hook:tool.pre_exec")
        );
        assert!(
            text.contains("the integration type jira (it receives the messages of those channels)")
        );
    }

    #[test]
    fn an_upgrade_asks_only_for_what_is_new() {
        let old = permissions(r#"{"network":["api.x.com"]}"#);
        let new = permissions(r#"{"network":["api.x.com","api.y.com"],"secrets":["T"]}"#);
        let added: Vec<_> = added_permissions(&old, &new)
            .into_iter()
            .map(|d| d.ack)
            .collect();
        assert_eq!(added, ["network:api.y.com", "secret:T"]);
    }
}
