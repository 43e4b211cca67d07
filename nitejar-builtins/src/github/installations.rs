//! Which installations the App has, and on which repositories, kept in the plugin's data directory.
//!
//! `installation` and `installation_repositories` events keep `installations.json` up to date
//! (the TypeScript Nitejar kept the same facts in its `github_installations` and `github_repos`
//! tables). A reply uses it to find the installation of a repository when its work item did not
//! carry one. Every GitHub integration row shares the plugin's data directory, so the file is keyed
//! by integration id:
//!
//! ```json
//! { "integrations": { "<integration id>": { "<installation id>": {
//!     "account": "octo-org", "repositorySelection": "selected",
//!     "repositories": ["octo-org/app"], "suspended": false, "updatedAt": 1767225600 } } } }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use nitejar_sdk::{Host, HostError, IntegrationError};
use serde::{Deserialize, Serialize};

use super::events::InstallationChange;

/// The file, relative to the plugin's data directory.
pub const FILE: &str = "installations.json";

/// One read-modify-write at a time within this process.
static WRITE: Mutex<()> = Mutex::new(());

/// What is known about one installation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_selection: Option<String>,
    #[serde(default)]
    pub repositories: BTreeSet<String>,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub updated_at: u64,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installations {
    /// Integration id → installation id → installation.
    #[serde(default)]
    pub integrations: BTreeMap<String, BTreeMap<String, Installation>>,
}

impl Installations {
    /// Reads the file; a file that does not exist yet is empty. The host reports a missing file as
    /// a plain failure, so any `Failed` read counts as "not there yet"; refusals and timeouts are
    /// errors, so that a transient problem never overwrites what was recorded.
    pub fn load(host: &dyn Host) -> Result<Self, IntegrationError> {
        match host.read_file(FILE) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                IntegrationError::Other(format!(
                    "{FILE} in the plugin's data directory is not valid JSON ({e}); remove it and \
                     it is rebuilt from the next installation events"
                ))
            }),
            Err(HostError::Failed(_)) => Ok(Installations::default()),
            Err(e) => Err(IntegrationError::Other(format!(
                "{FILE} cannot be read: {e}"
            ))),
        }
    }

    fn save(&self, host: &dyn Host) -> Result<(), IntegrationError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| IntegrationError::Other(format!("{FILE} cannot be written: {e}")))?;
        host.write_file(FILE, &bytes)
            .map_err(|e| IntegrationError::Other(format!("{FILE} cannot be written: {e}")))
    }

    /// The installation of `integration_id` that covers repository `full_name`.
    pub fn installation_for(&self, integration_id: &str, full_name: &str) -> Option<u64> {
        self.integrations
            .get(integration_id)?
            .iter()
            .filter(|(_, i)| !i.suspended)
            .find(|(_, i)| {
                i.repositories
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(full_name))
            })
            .and_then(|(id, _)| id.parse().ok())
    }
}

/// Applies an installation event to the file; returns the line for the ingress receipt.
pub fn record(
    host: &dyn Host,
    integration_id: &str,
    change: &InstallationChange,
    now: u64,
) -> Result<String, IntegrationError> {
    let _guard = WRITE.lock().unwrap_or_else(|p| p.into_inner());
    let mut file = Installations::load(host)?;
    let installations = file
        .integrations
        .entry(integration_id.to_string())
        .or_default();
    let key = change.installation_id.to_string();
    let id = change.installation_id;
    let summary = match (change.event.as_str(), change.action.as_str()) {
        ("installation", "deleted") => {
            installations.remove(&key);
            format!("installation {id} deleted")
        }
        (event, action) => {
            let entry = installations.entry(key).or_default();
            if let Some(account) = &change.account {
                entry.account = Some(account.clone());
            }
            if let Some(selection) = &change.repository_selection {
                entry.repository_selection = Some(selection.clone());
            }
            if let Some(all) = &change.repositories {
                entry.repositories = all.iter().cloned().collect();
            }
            for repo in &change.added {
                entry.repositories.insert(repo.clone());
            }
            for repo in &change.removed {
                entry.repositories.remove(repo);
            }
            match action {
                "suspend" => entry.suspended = true,
                "unsuspend" | "created" => entry.suspended = false,
                _ => {}
            }
            entry.updated_at = now;
            format!(
                "{event} {action}: installation {id}{} now has {} repositories",
                entry
                    .account
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                entry.repositories.len()
            )
        }
    };
    file.save(host)?;
    Ok(summary)
}
