//! Agent-managed plugin operations: what an agent may do to plugins through its tools, as the
//! operator granted it. Separate from what plugins may do (their declared permissions).
//!
//! - **Grants.** Each capability ([`PluginCapability`]) is granted per agent, none by default, by
//!   the operator ([`PluginManager::set_agent_grants`]; the admin API, UI and CLI call it). Every
//!   change is receipted (`agent_grant`, under [`AGENT_GRANT_RECEIPT_ID`]).
//! - **Tools.** A run offers an agent the tool of a capability only while the agent holds it
//!   ([`PluginOpsTools`]), and the tool checks the grant again when it is called: a grant
//!   withdrawn mid-run stops the next call. A call to a tool the agent does not hold — the model
//!   can name any tool — is refused with a `denied` receipt.
//! - **Same path as the operator.** A tool calls the same [`PluginManager`] operation as the
//!   operator's action (same trust policy, validation and receipts), inside the agent's scope: every
//!   receipt the operation writes names the agent, job and work item (`actor` in its detail, and
//!   the receipt's job and work item).
//! - **Consent is never implied.** An install leaves the plugin disabled, as every install does.
//!   An agent's enable is a *request* (`pending` receipt, a row in `plugin_requests`) that the
//!   operator approves — enabling the plugin with their own consent, as for any enable
//!   ([`PluginManager::approve_request`]) — or rejects; the agent's tool answer says it is
//!   pending. Disabling only reduces what runs and is immediate.
//! - **Upgrades.** An agent's upgrade that adds nothing to what the operator consented to
//!   (permissions, hooks, integration types, skills) is done at once, carrying the consent over
//!   as any such upgrade does; one that adds anything is a request. The request pins exactly what
//!   was read (`name@version`, `url#commit`) and the package's digest: approving it installs that
//!   package or nothing ([`LifecycleError::NotWhatWasReviewed`]).
//! - **Editing source** (`plugins.edit_source`) can be granted only where the host allows it
//!   ([`super::ManagerOptions::agent_edit_source`]) and never under `saas_locked`. An edit never
//!   touches an installed version: it copies the current version, writes the agent's files (text)
//!   into the copy as version `<current>+edit.<n>` (the same code: the loader lets a library serve
//!   a version that differs from its own only in build metadata), drops the author's signature
//!   (it no longer covers the files) and keeps the result, as a package, in the request — which
//!   the operator always has to approve, with the same review as an upgrade.
//! - **Rate limit.** At most [`AgentOpsLimit::per_hour`] plugin operations per agent per hour; the
//!   ones past it are refused with a receipt.
//!
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::EnableRequest;
use super::{LifecycleError, PluginManager, UninstallOptions, UpgradePlan};
use crate::install::{GitSpec, InstallSource, NpmSpec, SIGNATURE_FILE};
use crate::receipts::{now_ms, ReceiptKind, ReceiptStatus};
use crate::runner::model::ToolSpec;
use crate::runner::tools::{AgentTools, Tool, ToolContext, ToolFuture, ToolOutput, ToolSet};
use crate::store::{new_id, PluginRequestRow};
use crate::trust::consent::ConsentDiff;
use crate::trust::TrustMode;

/// The plugin id agent-grant receipts are filed under.
pub const AGENT_GRANT_RECEIPT_ID: &str = "nitejar.agents";

/// Something an agent may be granted to do to plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PluginCapability {
    /// `plugins.install`: install a plugin from npm or git (it stays disabled).
    #[serde(rename = "plugins.install")]
    Install,
    /// `plugins.enable`: a request the operator approves or rejects.
    #[serde(rename = "plugins.enable")]
    Enable,
    /// `plugins.disable`: immediate.
    #[serde(rename = "plugins.disable")]
    Disable,
    /// `plugins.upgrade`.
    #[serde(rename = "plugins.upgrade")]
    Upgrade,
    /// `plugins.uninstall`: its files and data are kept.
    #[serde(rename = "plugins.uninstall")]
    Uninstall,
    /// `plugins.edit_source` (high risk).
    #[serde(rename = "plugins.edit_source")]
    EditSource,
}

impl PluginCapability {
    /// Every capability, in the order they are shown.
    pub const ALL: [PluginCapability; 6] = [
        PluginCapability::Install,
        PluginCapability::Enable,
        PluginCapability::Disable,
        PluginCapability::Upgrade,
        PluginCapability::Uninstall,
        PluginCapability::EditSource,
    ];

    /// Its one spelling (`plugins.disable`).
    pub const fn as_str(self) -> &'static str {
        match self {
            PluginCapability::Install => "plugins.install",
            PluginCapability::Enable => "plugins.enable",
            PluginCapability::Disable => "plugins.disable",
            PluginCapability::Upgrade => "plugins.upgrade",
            PluginCapability::Uninstall => "plugins.uninstall",
            PluginCapability::EditSource => "plugins.edit_source",
        }
    }

    /// The capability spelled exactly `text`; no other spelling is one.
    pub fn parse(text: &str) -> Option<PluginCapability> {
        PluginCapability::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
    }

    /// The tool that uses it (`plugins_disable`).
    pub const fn tool_name(self) -> &'static str {
        match self {
            PluginCapability::Install => "plugins_install",
            PluginCapability::Enable => "plugins_enable",
            PluginCapability::Disable => "plugins_disable",
            PluginCapability::Upgrade => "plugins_upgrade",
            PluginCapability::Uninstall => "plugins_uninstall",
            PluginCapability::EditSource => "plugins_edit_source",
        }
    }

    /// The `action` of a request it makes (`enable`, `upgrade`, `edit_source`).
    pub const fn action(self) -> &'static str {
        match self {
            PluginCapability::Install => "install",
            PluginCapability::Enable => "enable",
            PluginCapability::Disable => "disable",
            PluginCapability::Upgrade => "upgrade",
            PluginCapability::Uninstall => "uninstall",
            PluginCapability::EditSource => "edit_source",
        }
    }

    /// The capability whose requests have `action`.
    pub fn of_action(action: &str) -> Option<PluginCapability> {
        PluginCapability::ALL
            .into_iter()
            .find(|c| c.action() == action)
    }

    fn receipt_kind(self) -> ReceiptKind {
        match self {
            PluginCapability::Install => ReceiptKind::Install,
            PluginCapability::Enable => ReceiptKind::Enable,
            PluginCapability::Disable => ReceiptKind::Disable,
            PluginCapability::Upgrade | PluginCapability::EditSource => ReceiptKind::Upgrade,
            PluginCapability::Uninstall => ReceiptKind::Uninstall,
        }
    }
}

/// The agent, job and work item an operation is done for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentActor {
    /// The agent.
    pub agent_id: String,
    /// Its job.
    pub job_id: String,
    /// The work item the job answers.
    pub work_item_id: String,
    /// The request of the agent's that the operation carries out, when the operator approved
    /// (or rejected) one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who decided that request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

impl AgentActor {
    /// The actor of a tool call.
    pub fn of(ctx: &ToolContext) -> AgentActor {
        AgentActor {
            agent_id: ctx.agent_id.clone(),
            job_id: ctx.job_id.clone(),
            work_item_id: ctx.work_item_id.clone(),
            request_id: None,
            decided_by: None,
        }
    }

    /// The agent of `request`, as the operator `by` decides it.
    fn of_request(request: &PluginRequestRow, by: &str) -> AgentActor {
        AgentActor {
            agent_id: request.agent_id.clone(),
            job_id: request.job_id.clone(),
            work_item_id: request.work_item_id.clone(),
            request_id: Some(request.id.clone()),
            decided_by: Some(by.to_string()),
        }
    }

    /// What receipts say of it (`actor`).
    pub fn detail(&self) -> Value {
        let mut detail = json!({
            "kind": "agent",
            "agentId": self.agent_id,
            "jobId": self.job_id,
            "workItemId": self.work_item_id,
        });
        if let Some(id) = &self.request_id {
            detail["requestId"] = json!(id);
        }
        if let Some(by) = &self.decided_by {
            detail["decidedBy"] = json!(by);
        }
        detail
    }
}

tokio::task_local! {
    /// The agent an operation is done for, while it runs (see [`PluginManager::receipt`]).
    pub(crate) static ACTING_AGENT: AgentActor;
}

/// An agent's grants, as set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentGrants {
    /// The agent.
    pub agent_id: String,
    /// What it holds, in [`PluginCapability::ALL`] order.
    pub capabilities: Vec<PluginCapability>,
    /// The capabilities this server refuses to grant, and why ([`PluginManager::grant_refusal`]).
    /// One held but refused now (the trust mode changed) is neither offered nor usable.
    pub unavailable: BTreeMap<PluginCapability, &'static str>,
}

impl AgentGrants {
    /// Why `capability` cannot be granted here, if it cannot.
    pub fn unavailable(&self, capability: PluginCapability) -> Option<&'static str> {
        self.unavailable.get(&capability).copied()
    }

    /// Whether the agent holds `capability` and may use it.
    pub fn usable(&self, capability: PluginCapability) -> bool {
        self.capabilities.contains(&capability) && self.unavailable(capability).is_none()
    }
}

/// How many plugin operations an agent may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentOpsLimit {
    /// Per agent, in any hour (default 20).
    pub per_hour: u32,
}

impl Default for AgentOpsLimit {
    fn default() -> Self {
        AgentOpsLimit { per_hour: 20 }
    }
}

impl PluginManager {
    /// Why this server refuses to grant `capability` to agents, if it does: editing source is
    /// refused unless the host allows it ([`super::ManagerOptions::agent_edit_source`]), and
    /// always under `saas_locked`.
    pub fn grant_refusal(&self, capability: PluginCapability) -> Option<&'static str> {
        match capability {
            PluginCapability::EditSource if self.policy().mode() == TrustMode::SaasLocked => {
                Some("the saas_locked trust mode never lets an agent edit a plugin's source")
            }
            PluginCapability::EditSource if !self.options.agent_edit_source => Some(
                "this server does not let agents edit plugin source (NITEJAR_AGENT_EDIT_SOURCE is off)",
            ),
            _ => None,
        }
    }

    /// What agent `agent_id` holds. Spellings this version does not know (written by a later
    /// one) grant nothing.
    pub async fn agent_grants(&self, agent_id: &str) -> Result<AgentGrants, LifecycleError> {
        let stored = self.store.agent_plugin_grants(agent_id).await?;
        let mut capabilities: Vec<PluginCapability> = stored
            .iter()
            .filter_map(|c| PluginCapability::parse(c))
            .collect();
        capabilities.sort();
        Ok(AgentGrants {
            agent_id: agent_id.to_string(),
            capabilities,
            unavailable: PluginCapability::ALL
                .into_iter()
                .filter_map(|c| self.grant_refusal(c).map(|why| (c, why)))
                .collect(),
        })
    }

    /// Sets what agent `agent_id` holds (replacing what it held), as `by` (who: the admin API, a
    /// UI session, the CLI user). Receipted (`agent_grant`), refusals too.
    pub async fn set_agent_grants(
        &self,
        agent_id: &str,
        capabilities: &[PluginCapability],
        by: &str,
    ) -> Result<AgentGrants, LifecycleError> {
        let result = self
            .set_agent_grants_inner(agent_id, capabilities, by)
            .await;
        let (status, detail) = match &result {
            Ok((before, after)) => (
                ReceiptStatus::Ok,
                json!({
                    "agentId": agent_id,
                    "by": by,
                    "capabilities": after.capabilities,
                    "granted": after.capabilities.iter().filter(|c| !before.capabilities.contains(c)).collect::<Vec<_>>(),
                    "revoked": before.capabilities.iter().filter(|c| !after.capabilities.contains(c)).collect::<Vec<_>>(),
                }),
            ),
            Err(e) => (
                ReceiptStatus::Denied,
                json!({
                    "agentId": agent_id,
                    "by": by,
                    "asked": capabilities,
                    "error": e.to_string(),
                }),
            ),
        };
        self.receipt(
            AGENT_GRANT_RECEIPT_ID,
            None,
            ReceiptKind::AgentGrant,
            status,
            detail,
        )
        .await;
        result.map(|(_, after)| after)
    }

    async fn set_agent_grants_inner(
        &self,
        agent_id: &str,
        capabilities: &[PluginCapability],
        by: &str,
    ) -> Result<(AgentGrants, AgentGrants), LifecycleError> {
        if self.store.get_agent(agent_id).await?.is_none() {
            return Err(LifecycleError::UnknownAgent(agent_id.to_string()));
        }
        if let Some((capability, reason)) = capabilities
            .iter()
            .find_map(|c| self.grant_refusal(*c).map(|r| (*c, r)))
        {
            return Err(LifecycleError::GrantRefused {
                capability: capability.as_str(),
                reason,
            });
        }
        let before = self.agent_grants(agent_id).await?;
        let mut after: Vec<PluginCapability> = capabilities.to_vec();
        after.sort();
        after.dedup();
        let stored: Vec<String> = after.iter().map(|c| c.as_str().to_string()).collect();
        self.store
            .set_agent_plugin_grants(agent_id, &stored, by, now_ms())
            .await?;
        Ok((before, self.agent_grants(agent_id).await?))
    }

    /// Whether `id` names a built-in or an installed plugin (a store that cannot say: no).
    async fn is_installed(&self, id: &str) -> bool {
        super::operations::builtin(id).is_some()
            || matches!(self.store.get_plugin(id).await, Ok(Some(_)))
    }

    /// Records that `actor` was refused `capability` (on plugin `plugin_id`, if its call named
    /// one), and why.
    async fn refuse_agent(
        &self,
        actor: &AgentActor,
        capability: PluginCapability,
        plugin_id: Option<&str>,
        reason: &str,
    ) {
        // Filed under the plugin the call named only when there is one: the name comes from the
        // model, and a receipt is not to land in another log (or make one) because it says so.
        let named = match plugin_id {
            Some(id) if self.is_installed(id).await => Some(id),
            _ => None,
        };
        let mut detail = json!({
            "capability": capability.as_str(),
            "tool": capability.tool_name(),
            "reason": reason,
        });
        if let (None, Some(asked)) = (named, plugin_id) {
            detail["pluginId"] = json!(asked.chars().take(200).collect::<String>());
        }
        ACTING_AGENT
            .scope(
                actor.clone(),
                self.receipt(
                    named.unwrap_or(AGENT_GRANT_RECEIPT_ID),
                    None,
                    capability.receipt_kind(),
                    ReceiptStatus::Denied,
                    detail,
                ),
            )
            .await;
    }
}

/// How a request was decided.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDecision {
    /// The request as it is now.
    pub request: PluginRequestRow,
    /// What the enable did (an approved enable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<super::EnableOutcome>,
    /// What the upgrade did (an approved upgrade or edit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgraded: Option<super::UpgradeOutcome>,
}

/// What an agent's upgrade or edit request would install, as the operator reviews it (a
/// request's `detail`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRequest {
    /// The current version when the request was made.
    pub from: String,
    /// The version it installs.
    pub to: String,
    /// The package's digest: approving installs this package or nothing.
    pub digest: String,
    /// `npm`, `git` (fetched again, pinned) or `upload` (an edit: the package is kept with the
    /// request).
    pub source_kind: String,
    /// The pinned source (`name@version`, `url#commit`) or the edit's package name.
    pub source: String,
    /// What it adds to and drops from what the operator consented to.
    pub consent_diff: ConsentDiff,
    /// The consent text the operator accepts.
    pub consent_text: String,
    /// Permissions it declares that the current version does not.
    pub added_permissions: Vec<String>,
    /// The files an edit wrote (empty for an upgrade).
    #[serde(default)]
    pub files: Vec<String>,
}

impl VersionRequest {
    fn of(plan: &UpgradePlan, source: String, files: Vec<String>) -> VersionRequest {
        VersionRequest {
            from: plan.from.clone(),
            to: plan.to.clone(),
            digest: plan.digest.clone(),
            source_kind: plan.source_kind.clone(),
            source,
            consent_diff: plan.consent_diff.clone(),
            consent_text: plan.consent_text.clone(),
            added_permissions: plan
                .added_permissions
                .iter()
                .map(|p| p.ack.clone())
                .collect(),
            files,
        }
    }

    /// The request's, when it is an upgrade or an edit.
    pub fn of_request(request: &PluginRequestRow) -> Option<VersionRequest> {
        request
            .detail
            .as_ref()
            .and_then(|d| serde_json::from_value(d.clone()).ok())
    }
}

/// The exact source a plan read, to read again: `name@version` (npm never republishes a version)
/// or `url#commit`. `None` for sources that cannot be read again the same.
fn pinned(plan: &UpgradePlan) -> Option<(InstallSource, String)> {
    match plan.source_kind.as_str() {
        "npm" => {
            let exact = plan.source_ref.split(' ').next().unwrap_or_default();
            let spec = NpmSpec::parse(exact).ok()?;
            Some((InstallSource::Npm(spec), exact.to_string()))
        }
        "git" => {
            let spec = GitSpec::parse(&plan.source_ref).ok()?;
            Some((InstallSource::Git(spec), plan.source_ref.clone()))
        }
        _ => None,
    }
}

/// Limits of one edit: how many files, how large each and all.
const EDIT_MAX_FILES: usize = 20;
const EDIT_MAX_FILE_BYTES: usize = 256 * 1024;
const EDIT_MAX_TOTAL_BYTES: usize = 1024 * 1024;

/// `path` as a file of a package an agent may write: relative, plain names only (no `..`, no
/// root, no `\\`), not the signature.
fn edit_path(path: &str) -> Result<std::path::PathBuf, String> {
    use std::path::{Component, Path};
    let shown: String = path.chars().take(200).collect();
    if path.is_empty() || path.len() > 200 || path.contains('\\') || path.contains('\0') {
        return Err(format!("`{shown}` is not a file path of the package"));
    }
    let relative = Path::new(path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "`{shown}` is not a path inside the package (use a relative path without `..`)"
        ));
    }
    if path == SIGNATURE_FILE {
        return Err(format!(
            "`{SIGNATURE_FILE}` is the author's signature; an edit cannot write it"
        ));
    }
    Ok(relative.to_path_buf())
}

impl PluginManager {
    /// Records an agent's request (inside `actor`'s scope: the `pending` receipt names the
    /// agent), with the package it would install when it carries one.
    async fn create_request(
        &self,
        id: &str,
        capability: PluginCapability,
        actor: &AgentActor,
        reason: Option<&str>,
        detail: Option<&VersionRequest>,
        archive: Option<&[u8]>,
    ) -> Result<PluginRequestRow, LifecycleError> {
        let request = PluginRequestRow {
            id: new_id(),
            plugin_id: id.to_string(),
            action: capability.action().into(),
            agent_id: actor.agent_id.clone(),
            job_id: actor.job_id.clone(),
            work_item_id: actor.work_item_id.clone(),
            reason: reason.map(|r| r.chars().take(2000).collect()),
            status: "pending".into(),
            created_at: now_ms(),
            decided_at: None,
            decided_by: None,
            detail: detail.map(|d| json!(d)),
        };
        self.store.create_plugin_request(&request, archive).await?;
        let mut receipt = json!({ "requestId": request.id, "reason": request.reason });
        if let Some(d) = detail {
            receipt["from"] = json!(d.from);
            receipt["to"] = json!(d.to);
            receipt["digest"] = json!(d.digest);
            receipt["adds"] = json!(d.consent_diff.added);
            if !d.files.is_empty() {
                receipt["files"] = json!(d.files);
            }
        }
        self.receipt(
            id,
            detail.map(|d| d.to.as_str()),
            capability.receipt_kind(),
            ReceiptStatus::Pending,
            receipt,
        )
        .await;
        Ok(request)
    }

    /// Asks the operator to enable plugin `id` for `actor`. An active plugin, or one with a
    /// request pending already, needs no new one. What the agent is told.
    async fn request_enable(
        &self,
        id: &str,
        actor: &AgentActor,
        reason: Option<&str>,
    ) -> Result<String, LifecycleError> {
        if self.runtime.registry().plugin(id).is_some() {
            return Ok(format!("{id} is enabled and running already"));
        }
        let pending = self.store.plugin_requests(Some("pending")).await?;
        if let Some(open) = pending
            .iter()
            .find(|r| r.plugin_id == id && r.action == "enable")
        {
            return Ok(format!(
                "an enable of {id} is pending already (request {}): the operator approves or rejects it in the admin",
                open.id
            ));
        }
        let request = self
            .create_request(id, PluginCapability::Enable, actor, reason, None, None)
            .await?;
        Ok(format!(
            "requested: the enable of {id} is pending (request {}); it stays disabled until the operator reviews what it declares and approves it in the admin",
            request.id
        ))
    }

    /// Upgrades plugin `id` for `actor` from `source` (its own npm or git source when `None`):
    /// at once when the new version adds nothing to what the operator consented to, else as a
    /// request for the pinned package. What the agent is told.
    async fn agent_upgrade(
        &self,
        id: &str,
        source: Option<InstallSource>,
        actor: &AgentActor,
        reason: Option<&str>,
    ) -> Result<String, LifecycleError> {
        let row = self.plugin_row(id).await?;
        if source.is_none() && !matches!(row.source_kind.as_str(), "npm" | "git") {
            return Err(LifecycleError::SourceRequired {
                id: id.to_string(),
                kind: row.source_kind,
            });
        }
        let plan = match self.plan_upgrade(id, source).await {
            Ok(plan) => plan,
            Err(e) => {
                self.refusal_receipt(
                    id,
                    None,
                    ReceiptKind::Upgrade,
                    &e,
                    json!({ "planned": true }),
                )
                .await;
                return Err(e);
            }
        };
        let Some((source, pinned_text)) = pinned(&plan) else {
            return Err(LifecycleError::SourceRequired {
                id: id.to_string(),
                kind: plan.source_kind,
            });
        };
        if !plan.needs_consent {
            let done = self
                .upgrade_checked(
                    id,
                    Some(source),
                    EnableRequest::default(),
                    Some(&plan.digest),
                )
                .await?;
            return Ok(format!(
                "{id} is upgraded from {} to {} ({pinned_text}); it adds nothing to what the operator consented to",
                done.from, done.to
            ));
        }
        let pending = self.store.plugin_requests(Some("pending")).await?;
        if let Some(open) = pending.iter().find(|r| {
            r.plugin_id == id
                && VersionRequest::of_request(r).is_some_and(|d| d.digest == plan.digest)
        }) {
            return Ok(format!(
                "an upgrade of {id} to {} is pending already (request {})",
                plan.to, open.id
            ));
        }
        let detail = VersionRequest::of(&plan, pinned_text, Vec::new());
        let request = self
            .create_request(
                id,
                PluginCapability::Upgrade,
                actor,
                reason,
                Some(&detail),
                None,
            )
            .await?;
        Ok(format!(
            "requested: {id} {} → {} adds {} to what the operator consented to, so the upgrade is pending (request {}); {id} stays at {} until the operator reviews it and approves it in the admin",
            plan.from,
            plan.to,
            plan.consent_diff.added.join(", "),
            request.id,
            plan.from
        ))
    }

    /// Writes `files` into a copy of plugin `id`'s current version, as the next edit of it
    /// (`1.2.0+edit.1`: the same code, other files), and asks the operator to install it (always
    /// a request). Nothing installed is touched. What the agent is told.
    async fn propose_edit(
        &self,
        id: &str,
        files: &BTreeMap<String, String>,
        actor: &AgentActor,
        reason: Option<&str>,
    ) -> Result<String, String> {
        if let Some(why) = self.grant_refusal(PluginCapability::EditSource) {
            return Err(format!("refused: {why}"));
        }
        if files.is_empty() || files.len() > EDIT_MAX_FILES {
            return Err(format!(
                "`files` names from 1 to {EDIT_MAX_FILES} files (path → new text)"
            ));
        }
        let mut total = 0;
        let mut writes = Vec::new();
        for (path, text) in files {
            if text.len() > EDIT_MAX_FILE_BYTES {
                return Err(format!(
                    "`{path}` is {} bytes; one file of an edit is at most {EDIT_MAX_FILE_BYTES}",
                    text.len()
                ));
            }
            total += text.len();
            writes.push((edit_path(path)?, text.clone()));
        }
        if total > EDIT_MAX_TOTAL_BYTES {
            return Err(format!(
                "the edit writes {total} bytes; at most {EDIT_MAX_TOTAL_BYTES}"
            ));
        }
        let row = self.plugin_row(id).await.map_err(|e| e.to_string())?;
        if row.source_kind == "builtin" {
            return Err(format!(
                "{id} is built into the server; its source is not a package"
            ));
        }
        let version = self.next_edit_version(&row).await?;
        let current = self
            .current_version_row(&row)
            .await
            .map_err(|e| e.to_string())?;
        let from = std::path::PathBuf::from(&current.install_path);
        let staging = self.layout().staging_dir();
        let limits = self.options.limits.clone();
        let version_text = version.clone();
        // A copy in the server's own staging directory, gone when this returns.
        let packed = Self::blocking(move || -> Result<Vec<u8>, String> {
            std::fs::create_dir_all(&staging).map_err(|e| format!("staging: {e}"))?;
            let copy = tempfile::Builder::new()
                .prefix("edit-")
                .tempdir_in(&staging)
                .map_err(|e| format!("staging: {e}"))?;
            let root = copy.path().join("package");
            std::fs::create_dir(&root).map_err(|e| format!("staging: {e}"))?;
            crate::install::copy_tree(&from, &root, &limits).map_err(|e| e.to_string())?;
            for (relative, text) in &writes {
                let target = root.join(relative);
                if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
                    return Err(format!(
                        "`{}` is not a file of the package (a directory or a link)",
                        relative.display()
                    ));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("write: {e}"))?;
                }
                std::fs::write(&target, text).map_err(|e| format!("write: {e}"))?;
            }
            // The author's signature covers the author's files, not these.
            let _ = std::fs::remove_file(root.join(SIGNATURE_FILE));
            let manifest_path = root.join(nitejar_sdk::manifest::MANIFEST_FILE);
            let text = std::fs::read_to_string(&manifest_path)
                .map_err(|e| format!("the edited package's manifest: {e}"))?;
            let mut manifest: Value = serde_json::from_str(&text)
                .map_err(|e| format!("the edited {}: {e}", nitejar_sdk::manifest::MANIFEST_FILE))?;
            manifest["version"] = json!(version_text);
            let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
            std::fs::write(&manifest_path, text).map_err(|e| format!("write: {e}"))?;
            crate::install::archive::tgz_of_dir(&root).map_err(|e| format!("pack: {e}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        let name = format!("{id}-{version} (edited by agent {})", actor.agent_id);
        let plan = match self
            .plan_upgrade(
                id,
                Some(InstallSource::Upload {
                    name: name.clone(),
                    bytes: packed.clone(),
                }),
            )
            .await
        {
            Ok(plan) => plan,
            Err(e) => {
                self.refusal_receipt(id, None, ReceiptKind::Upgrade, &e, json!({ "edit": true }))
                    .await;
                return Err(e.to_string());
            }
        };
        let detail = VersionRequest::of(&plan, name, files.keys().cloned().collect());
        let request = self
            .create_request(
                id,
                PluginCapability::EditSource,
                actor,
                reason,
                Some(&detail),
                Some(&packed),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "requested: {id} {} is written as {} (files: {}) and waits for the operator's review (request {}); nothing installed changed",
            plan.from,
            plan.to,
            detail.files.join(", "),
            request.id
        ))
    }

    /// The version an edit of `row`'s current version is written as: `<current>+edit.<n>`, `n`
    /// one past every edit of it installed or requested.
    async fn next_edit_version(&self, row: &crate::store::PluginRow) -> Result<String, String> {
        let current = row.current_version.clone().unwrap_or_default();
        let mut base = semver::Version::parse(&current).map_err(|e| {
            format!(
                "{} is at version {current:?}, which is not semver ({e}); it cannot be edited",
                row.id
            )
        })?;
        base.build = semver::BuildMetadata::EMPTY;
        let edit_of = |version: &str| -> Option<u64> {
            let v = semver::Version::parse(version).ok()?;
            let n = v.build.as_str().strip_prefix("edit.")?.parse().ok()?;
            (v.major == base.major
                && v.minor == base.minor
                && v.patch == base.patch
                && v.pre == base.pre)
                .then_some(n)
        };
        let installed = self
            .store
            .list_plugin_versions(&row.id)
            .await
            .map_err(|e| e.to_string())?;
        let requested = self
            .store
            .plugin_requests(None)
            .await
            .map_err(|e| e.to_string())?;
        let last = installed
            .iter()
            .filter_map(|v| edit_of(&v.version))
            .chain(
                requested
                    .iter()
                    .filter(|r| r.plugin_id == row.id)
                    .filter_map(VersionRequest::of_request)
                    .filter_map(|v| edit_of(&v.to)),
            )
            .max()
            .unwrap_or(0);
        Ok(format!("{base}+edit.{}", last + 1))
    }

    /// Agents' requests with `status` (`pending`, `approved`, `rejected`; any when `None`),
    /// newest first.
    pub async fn plugin_requests(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<PluginRequestRow>, LifecycleError> {
        Ok(self.store.plugin_requests(status).await?)
    }

    async fn pending_request(&self, id: &str) -> Result<PluginRequestRow, LifecycleError> {
        let request = self
            .store
            .get_plugin_request(id)
            .await?
            .ok_or_else(|| LifecycleError::UnknownRequest(id.to_string()))?;
        if request.status != "pending" {
            return Err(LifecycleError::RequestDecided {
                id: id.to_string(),
                status: request.status,
            });
        }
        Ok(request)
    }

    /// Approves an agent's request as the operator `by`: the plugin is enabled with the
    /// operator's `consent` (checked as for any enable: without it, the answer is
    /// `ConsentRequired` and the request stays pending). The enable's receipt names the agent,
    /// the request and who approved it.
    pub async fn approve_request(
        &self,
        id: &str,
        consent: EnableRequest,
        by: &str,
    ) -> Result<RequestDecision, LifecycleError> {
        let request = self.pending_request(id).await?;
        let actor = AgentActor::of_request(&request, by);
        let (enabled, upgraded) = match request.action.as_str() {
            "enable" => {
                let enabled = ACTING_AGENT
                    .scope(actor, self.enable(&request.plugin_id, consent))
                    .await?;
                (Some(enabled), None)
            }
            _ => {
                let asked = VersionRequest::of_request(&request).ok_or_else(|| {
                    LifecycleError::Corrupt {
                        id: request.plugin_id.clone(),
                        what: "request",
                        reason: format!("request {id} does not say what it installs"),
                    }
                })?;
                let source = self.request_source(&request, &asked).await?;
                let upgraded = ACTING_AGENT
                    .scope(
                        actor,
                        self.upgrade_checked(
                            &request.plugin_id,
                            Some(source),
                            consent,
                            Some(&asked.digest),
                        ),
                    )
                    .await?;
                (None, Some(upgraded))
            }
        };
        if !self
            .store
            .decide_plugin_request(id, "approved", by, now_ms())
            .await?
        {
            // Decided by someone else meanwhile; the plugin is enabled all the same.
            tracing::warn!(request = %id, "the request was decided while it was being approved");
        }
        let request = self.plugin_request(id).await?;
        Ok(RequestDecision {
            request,
            enabled,
            upgraded,
        })
    }

    /// Where an approved upgrade or edit reads its package: the pinned source again, or the
    /// package the edit kept with the request.
    async fn request_source(
        &self,
        request: &PluginRequestRow,
        asked: &VersionRequest,
    ) -> Result<InstallSource, LifecycleError> {
        let corrupt = |reason: String| LifecycleError::Corrupt {
            id: request.plugin_id.clone(),
            what: "request",
            reason,
        };
        match asked.source_kind.as_str() {
            "npm" => NpmSpec::parse(&asked.source)
                .map(InstallSource::Npm)
                .map_err(|e| corrupt(e.to_string())),
            "git" => GitSpec::parse(&asked.source)
                .map(InstallSource::Git)
                .map_err(|e| corrupt(e.to_string())),
            "upload" => {
                let bytes = self
                    .store
                    .plugin_request_archive(&request.id)
                    .await?
                    .ok_or_else(|| corrupt(format!("request {} kept no package", request.id)))?;
                Ok(InstallSource::Upload {
                    name: asked.source.clone(),
                    bytes,
                })
            }
            other => Err(corrupt(format!("a request cannot install from `{other}`"))),
        }
    }

    /// Rejects an agent's request as the operator `by`; receipted (`denied`, in the agent's name).
    pub async fn reject_request(
        &self,
        id: &str,
        by: &str,
    ) -> Result<RequestDecision, LifecycleError> {
        let request = self.pending_request(id).await?;
        if !self
            .store
            .decide_plugin_request(id, "rejected", by, now_ms())
            .await?
        {
            return Err(LifecycleError::RequestDecided {
                id: id.to_string(),
                status: self.plugin_request(id).await?.status,
            });
        }
        let actor = AgentActor::of_request(&request, by);
        let capability = PluginCapability::of_action(&request.action);
        ACTING_AGENT
            .scope(
                actor,
                self.receipt(
                    &request.plugin_id,
                    None,
                    capability.map_or(ReceiptKind::Enable, PluginCapability::receipt_kind),
                    ReceiptStatus::Denied,
                    json!({ "requestId": id, "reason": format!("the operator rejected the agent's request ({by})") }),
                ),
            )
            .await;
        Ok(RequestDecision {
            request: self.plugin_request(id).await?,
            enabled: None,
            upgraded: None,
        })
    }

    /// One of agents' requests, whatever its status.
    pub async fn plugin_request(&self, id: &str) -> Result<PluginRequestRow, LifecycleError> {
        self.store
            .get_plugin_request(id)
            .await?
            .ok_or_else(|| LifecycleError::UnknownRequest(id.to_string()))
    }
}

/// The plugin-operation tools of each agent, by its grants (give it to the runner:
/// [`crate::runner::Runner::with_agent_tools`]).
pub struct PluginOpsTools {
    manager: Arc<PluginManager>,
    limit: AgentOpsLimit,
    recent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl PluginOpsTools {
    /// The tools over `manager`, at most `limit` operations per agent.
    pub fn new(manager: Arc<PluginManager>, limit: AgentOpsLimit) -> PluginOpsTools {
        PluginOpsTools {
            manager,
            limit,
            recent: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn tool(&self, capability: PluginCapability) -> PluginOpTool {
        PluginOpTool {
            capability,
            manager: self.manager.clone(),
            limit: self.limit,
            recent: self.recent.clone(),
        }
    }
}

impl AgentTools for PluginOpsTools {
    fn tools_for<'a>(
        &'a self,
        agent_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ToolSet> + Send + 'a>> {
        Box::pin(async move {
            let grants = match self.manager.agent_grants(agent_id).await {
                Ok(grants) => grants,
                Err(e) => {
                    tracing::warn!(agent.id = %agent_id, "could not read the agent's plugin grants; it is offered none: {e}");
                    return ToolSet::new();
                }
            };
            PluginCapability::ALL
                .into_iter()
                .filter(|c| grants.usable(*c))
                .fold(ToolSet::new(), |set, c| set.with(self.tool(c)))
        })
    }

    fn governs(&self, name: &str) -> bool {
        PluginCapability::ALL.iter().any(|c| c.tool_name() == name)
    }

    fn refuse<'a>(
        &'a self,
        ctx: &'a ToolContext,
        name: &'a str,
        input: &'a Value,
    ) -> ToolFuture<'a> {
        Box::pin(async move {
            let Some(capability) = PluginCapability::ALL
                .into_iter()
                .find(|c| c.tool_name() == name)
            else {
                return ToolOutput::failed(format!("there is no tool named `{name}`"));
            };
            let reason = format!(
                "this agent holds no `{}` grant; the operator grants it in the admin",
                capability.as_str()
            );
            let plugin_id = input.get("pluginId").and_then(Value::as_str);
            self.manager
                .refuse_agent(&AgentActor::of(ctx), capability, plugin_id, &reason)
                .await;
            ToolOutput::failed(format!("refused: {reason}"))
        })
    }
}

/// One plugin-operation tool.
struct PluginOpTool {
    capability: PluginCapability,
    manager: Arc<PluginManager>,
    limit: AgentOpsLimit,
    recent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl PluginOpTool {
    /// Counts an operation of `agent_id`; false past its limit.
    fn count(&self, agent_id: &str) -> bool {
        const HOUR: Duration = Duration::from_secs(3600);
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let times = recent.entry(agent_id.to_string()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) > HOUR) {
            times.pop_front();
        }
        if times.len() >= self.limit.per_hour as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    async fn run(&self, ctx: &ToolContext, input: &Value) -> ToolOutput {
        let actor = AgentActor::of(ctx);
        let capability = self.capability;
        let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::trim);
        let plugin_id = text("pluginId").filter(|s| !s.is_empty());
        // Held now, not only when the run started: a grant withdrawn mid-run stops the next call.
        let grants = match self.manager.agent_grants(&actor.agent_id).await {
            Ok(grants) => grants,
            Err(e) => {
                return ToolOutput::failed(format!("could not read this agent's grants: {e}"))
            }
        };
        if !grants.usable(capability) {
            let reason = match grants.unavailable(capability) {
                Some(why) => why.to_string(),
                None => format!(
                    "this agent no longer holds the `{}` grant",
                    capability.as_str()
                ),
            };
            self.manager
                .refuse_agent(&actor, capability, plugin_id, &reason)
                .await;
            return ToolOutput::failed(format!("refused: {reason}"));
        }
        if !self.count(&actor.agent_id) {
            let reason = format!(
                "this agent made {} plugin operations within the last hour, its limit",
                self.limit.per_hour
            );
            self.manager
                .refuse_agent(&actor, capability, plugin_id, &reason)
                .await;
            return ToolOutput::failed(format!("refused: {reason}"));
        }
        let manager = &self.manager;
        if let Some(id) = plugin_id {
            if !manager.is_installed(id).await {
                let reason = "no plugin of this id is installed";
                manager
                    .refuse_agent(&actor, capability, Some(id), reason)
                    .await;
                return ToolOutput::failed(format!("refused: {reason} ({id})"));
            }
        }
        let done = ACTING_AGENT
            .scope(actor.clone(), async move {
                match capability {
                    PluginCapability::Disable => {
                        let id = plugin_id.ok_or_else(|| "`pluginId` is required".to_string())?;
                        manager.disable(id).await.map_err(|e| e.to_string())?;
                        Ok(format!("{id} is disabled: none of its code runs any more"))
                    }
                    PluginCapability::Enable => {
                        let id = plugin_id.ok_or_else(|| "`pluginId` is required".to_string())?;
                        let reason = text("reason").filter(|r| !r.is_empty());
                        manager
                            .request_enable(id, &actor, reason)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    PluginCapability::Uninstall => {
                        let id = plugin_id.ok_or_else(|| "`pluginId` is required".to_string())?;
                        manager
                            .uninstall(id, UninstallOptions::default())
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(format!(
                            "{id} is uninstalled (its files and data are kept; integrations of its types too)"
                        ))
                    }
                    PluginCapability::Upgrade => {
                        let id = plugin_id.ok_or_else(|| "`pluginId` is required".to_string())?;
                        let source = match (input.get("npm"), input.get("git")) {
                            (None, None) => None,
                            _ => Some(install_source(input)?),
                        };
                        let reason = text("reason").filter(|r| !r.is_empty());
                        manager
                            .agent_upgrade(id, source, &actor, reason)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    PluginCapability::EditSource => {
                        let id = plugin_id.ok_or_else(|| "`pluginId` is required".to_string())?;
                        let files: BTreeMap<String, String> = input
                            .get("files")
                            .cloned()
                            .map(serde_json::from_value)
                            .transpose()
                            .map_err(|_| "`files` maps each path in the package to its new text".to_string())?
                            .unwrap_or_default();
                        let reason = text("reason").filter(|r| !r.is_empty());
                        manager
                            .propose_edit(id, &files, &actor, reason)
                            .await
                    }
                    PluginCapability::Install => {
                        let source = install_source(input)?;
                        let outcome = manager.install(source).await.map_err(|e| e.to_string())?;
                        Ok(format!(
                            "{}@{} is installed and disabled; the operator reviews what it declares and enables it in the admin",
                            outcome.id, outcome.version
                        ))
                    }
                }
            })
            .await;
        match done {
            Ok(text) => ToolOutput::ok(text),
            Err(e) => ToolOutput::failed(e),
        }
    }
}

/// What `plugins_install` installs: an npm package (from the operator's registry) or an https
/// git repository, never a path on the server.
fn install_source(input: &Value) -> Result<InstallSource, String> {
    let npm = input.get("npm").and_then(Value::as_str);
    let git = input.get("git").and_then(Value::as_str);
    match (npm, git) {
        (Some(spec), None) => NpmSpec::parse(spec)
            .map(InstallSource::Npm)
            .map_err(|e| e.to_string()),
        (None, Some(spec)) => {
            let spec = GitSpec::parse(spec).map_err(|e| e.to_string())?;
            // Not `file://` (a path on the server) nor plain `http://` (the server's own
            // network, unencrypted): an agent installs from a public https repository only.
            if !spec.url.to_ascii_lowercase().starts_with("https://") {
                return Err(format!(
                    "{}: an agent installs from an https:// repository only",
                    spec.url
                ));
            }
            Ok(InstallSource::Git(spec))
        }
        _ => Err("give exactly one of `npm` (a package, e.g. `name@1.2.0`) or `git` (a repository URL, `#ref` optional)".into()),
    }
}

impl Tool for PluginOpTool {
    fn spec(&self) -> ToolSpec {
        let plugin = json!({"type": "object", "properties": {
            "pluginId": {"type": "string", "description": "the plugin's id, e.g. dev.example.acme"}
        }, "required": ["pluginId"], "additionalProperties": false});
        let (description, parameters) = match self.capability {
            PluginCapability::Disable => (
                "Disable a plugin at once: none of its hooks, integrations or skills run any more. Receipted in your name.",
                plugin,
            ),
            PluginCapability::Uninstall => (
                "Uninstall a plugin (its files, data and integrations are kept). Receipted in your name.",
                plugin,
            ),
            PluginCapability::Enable => (
                "Ask the operator to enable a disabled plugin. You cannot consent for them: this makes a request they approve or reject in the admin; the plugin stays disabled until they approve. Say why in `reason`.",
                json!({"type": "object", "properties": {
                    "pluginId": {"type": "string", "description": "the plugin's id, e.g. dev.example.acme"},
                    "reason": {"type": "string", "description": "why it should be enabled, for the operator"}
                }, "required": ["pluginId"], "additionalProperties": false}),
            ),
            PluginCapability::Install => (
                "Install a plugin from npm or git. It stays disabled until the operator reviews what it declares and enables it. Receipted in your name.",
                json!({"type": "object", "properties": {
                    "npm": {"type": "string", "description": "an npm package, e.g. name@1.2.0"},
                    "git": {"type": "string", "description": "an https:// git repository URL, #ref optional"}
                }, "additionalProperties": false}),
            ),
            PluginCapability::Upgrade => (
                "Upgrade a plugin to a newer version, from its own npm package or git repository, or from `npm`/`git`. Done at once when the new version adds nothing to what the operator consented to; otherwise it becomes a request the operator reviews, and the plugin stays as it is until they approve. Receipted in your name.",
                json!({"type": "object", "properties": {
                    "pluginId": {"type": "string", "description": "the plugin's id, e.g. dev.example.acme"},
                    "npm": {"type": "string", "description": "an npm package, e.g. name@1.3.0 (default: the plugin's own package, latest)"},
                    "git": {"type": "string", "description": "an https:// git repository URL, #ref optional (default: the plugin's own repository)"},
                    "reason": {"type": "string", "description": "why, for the operator"}
                }, "required": ["pluginId"], "additionalProperties": false}),
            ),
            PluginCapability::EditSource => (
                "Write a new version of a plugin from its current one with some files replaced (text only: skills, docs, assets, the manifest; not its compiled code). It is numbered <current>+edit.<n>. Nothing installed changes: the new version is a request the operator reviews and approves like any upgrade. The author's signature does not cover your files and is dropped. Receipted in your name.",
                json!({"type": "object", "properties": {
                    "pluginId": {"type": "string", "description": "the plugin's id, e.g. dev.example.acme"},
                    "files": {"type": "object", "additionalProperties": {"type": "string"}, "description": "path in the package → its new text, e.g. {\"skills/triage/SKILL.md\": \"...\"}"},
                    "reason": {"type": "string", "description": "what the edit changes and why, for the operator"}
                }, "required": ["pluginId", "files"], "additionalProperties": false}),
            ),
        };
        ToolSpec {
            name: self.capability.tool_name().into(),
            description: description.into(),
            parameters,
        }
    }

    fn call<'a>(&'a self, ctx: &'a ToolContext, input: &'a Value) -> ToolFuture<'a> {
        Box::pin(self.run(ctx, input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_has_one_spelling() {
        for c in PluginCapability::ALL {
            assert_eq!(PluginCapability::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()), "{c:?}");
        }
        for odd in [
            "Plugins.Disable",
            "plugins.disable ",
            "plugins_disable",
            "plugins.*",
            "plugins%2Edisable",
            "",
        ] {
            assert_eq!(PluginCapability::parse(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn an_edit_writes_plain_paths_inside_the_package_only() {
        for good in [
            "README.md",
            "skills/triage/SKILL.md",
            "assets/notes.txt",
            "nitejar.plugin.json",
        ] {
            assert!(edit_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../outside.txt",
            "skills/../../x",
            "/etc/passwd",
            "./README.md",
            "a\\b",
            "a\0b",
            SIGNATURE_FILE,
        ] {
            assert!(edit_path(bad).is_err(), "{bad:?}");
        }
        // An edit sorts after the version it edits, and edits after each other.
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert!(v("1.2.0+edit.1") > v("1.2.0"));
        assert!(v("1.2.0+edit.10") > v("1.2.0+edit.9"));
        assert!(v("1.2.1") > v("1.2.0+edit.9"));
    }

    #[test]
    fn an_install_names_one_package_or_repository() {
        assert!(matches!(
            install_source(&json!({"npm": "acme-plugin@1.2.0"})),
            Ok(InstallSource::Npm(_))
        ));
        assert!(matches!(
            install_source(&json!({"git": "https://example.com/acme.git#v1"})),
            Ok(InstallSource::Git(_))
        ));
        for bad in [
            json!({}),
            json!({"npm": "a", "git": "https://example.com/a.git"}),
            json!({"path": "/etc"}),
            json!({"git": "file:///var/lib/nitejar/repo"}),
            json!({"git": "git+FILE:///etc"}),
            json!({"git": "http://127.0.0.1:8080/a.git"}),
            json!({"git": "/srv/repo"}),
        ] {
            assert!(install_source(&bad).is_err(), "{bad}");
        }
    }
}
