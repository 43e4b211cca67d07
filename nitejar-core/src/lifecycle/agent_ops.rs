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
//! - **Rate limit.** At most [`AgentOpsLimit::per_hour`] plugin operations per agent per hour; the
//!   ones past it are refused with a receipt.
//!
//! Upgrading and editing a plugin's source cannot be granted in this version (the refusal says
//! so), so no agent is offered a tool that could not do what it says.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::EnableRequest;
use super::{LifecycleError, PluginManager, UninstallOptions};
use crate::install::{GitSpec, InstallSource, NpmSpec};
use crate::receipts::{now_ms, ReceiptKind, ReceiptStatus};
use crate::runner::model::ToolSpec;
use crate::runner::tools::{AgentTools, Tool, ToolContext, ToolFuture, ToolOutput, ToolSet};
use crate::store::{new_id, PluginRequestRow};

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

    /// Why it cannot be granted in this version, if it cannot.
    pub const fn unavailable(self) -> Option<&'static str> {
        match self {
            PluginCapability::Install
            | PluginCapability::Enable
            | PluginCapability::Disable
            | PluginCapability::Uninstall => None,
            PluginCapability::Upgrade => Some(
                "an agent's upgrade is not available in this version; upgrade plugins yourself",
            ),
            PluginCapability::EditSource => {
                Some("editing a plugin's source is not available in this version")
            }
        }
    }

    fn receipt_kind(self) -> ReceiptKind {
        match self {
            PluginCapability::Install | PluginCapability::EditSource => ReceiptKind::Install,
            PluginCapability::Enable => ReceiptKind::Enable,
            PluginCapability::Disable => ReceiptKind::Disable,
            PluginCapability::Upgrade => ReceiptKind::Upgrade,
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
            .find_map(|c| c.unavailable().map(|r| (*c, r)))
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
        Ok((
            before,
            AgentGrants {
                agent_id: agent_id.to_string(),
                capabilities: after,
            },
        ))
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
    /// What the enable did (approved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<super::EnableOutcome>,
}

impl PluginManager {
    /// Asks the operator to enable plugin `id` for `actor` (inside its scope: the `pending`
    /// receipt names the agent). An active plugin, or one with a request pending already, needs
    /// no new one. What the agent is told.
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
        let request = PluginRequestRow {
            id: new_id(),
            plugin_id: id.to_string(),
            action: "enable".into(),
            agent_id: actor.agent_id.clone(),
            job_id: actor.job_id.clone(),
            work_item_id: actor.work_item_id.clone(),
            reason: reason.map(|r| r.chars().take(2000).collect()),
            status: "pending".into(),
            created_at: now_ms(),
            decided_at: None,
            decided_by: None,
        };
        self.store.create_plugin_request(&request).await?;
        self.receipt(
            id,
            None,
            ReceiptKind::Enable,
            ReceiptStatus::Pending,
            json!({ "requestId": request.id, "reason": request.reason }),
        )
        .await;
        Ok(format!(
            "requested: the enable of {id} is pending (request {}); it stays disabled until the operator reviews what it declares and approves it in the admin",
            request.id
        ))
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
        let enabled = ACTING_AGENT
            .scope(actor, self.enable(&request.plugin_id, consent))
            .await?;
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
            enabled: Some(enabled),
        })
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
        ACTING_AGENT
            .scope(
                actor,
                self.receipt(
                    &request.plugin_id,
                    None,
                    ReceiptKind::Enable,
                    ReceiptStatus::Denied,
                    json!({ "requestId": id, "reason": format!("the operator rejected the agent's request ({by})") }),
                ),
            )
            .await;
        Ok(RequestDecision {
            request: self.plugin_request(id).await?,
            enabled: None,
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
                Ok(grants) => grants.capabilities,
                Err(e) => {
                    tracing::warn!(agent.id = %agent_id, "could not read the agent's plugin grants; it is offered none: {e}");
                    Vec::new()
                }
            };
            grants
                .into_iter()
                .filter(|c| c.unavailable().is_none())
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
        let held = match self.manager.agent_grants(&actor.agent_id).await {
            Ok(grants) => grants.capabilities.contains(&capability),
            Err(e) => {
                return ToolOutput::failed(format!("could not read this agent's grants: {e}"))
            }
        };
        if !held {
            let reason = format!(
                "this agent no longer holds the `{}` grant",
                capability.as_str()
            );
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
                    PluginCapability::Install => {
                        let source = install_source(input)?;
                        let outcome = manager.install(source).await.map_err(|e| e.to_string())?;
                        Ok(format!(
                            "{}@{} is installed and disabled; the operator reviews what it declares and enables it in the admin",
                            outcome.id, outcome.version
                        ))
                    }
                    other => Err(format!("`{}` is not available", other.as_str())),
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
            other => (other.as_str(), json!({"type": "object"})),
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
