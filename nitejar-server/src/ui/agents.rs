//! `/admin/agents`: the agents, and what each may do to plugins through its tools (none by
//! default). The operator ticks capabilities per agent; a change applies to the agent's next run
//! and its next tool call, and is receipted (`agent_grant`). A refused change comes back with the
//! reason and nothing changed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use nitejar_core::lifecycle::agent_ops::PluginCapability;

use super::{redirect, render, Chrome};
use crate::api::trust::changed_by;
use crate::auth::{Admin, AdminForm};
use crate::state::AppState;

/// One capability's box on an agent's form.
pub struct Choice {
    pub capability: &'static str,
    pub tool: &'static str,
    pub granted: bool,
    /// Why it cannot be granted in this version (the box is disabled), if so.
    pub unavailable: Option<&'static str>,
}

/// One agent on the page.
pub struct AgentLine {
    pub id: String,
    pub name: String,
    pub handle: String,
    pub choices: Vec<Choice>,
    /// A refused change to this agent, and why.
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    chrome: Chrome,
    agents: Vec<AgentLine>,
    /// Agents' requests waiting for the operator.
    pending: Vec<nitejar_core::store::PluginRequestRow>,
}

async fn show(
    admin: &Admin,
    state: &AppState,
    notice: Option<&str>,
    refused: Option<(&str, String)>,
) -> HttpResponse {
    let agents = match state.store.list_agents().await {
        Ok(agents) => agents,
        Err(e) => {
            return super::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("The agents could not be read: {e}"),
            )
        }
    };
    let mut lines = Vec::with_capacity(agents.len());
    for agent in agents {
        let grants = match state.plugins.agent_grants(&agent.id).await {
            Ok(grants) => grants,
            Err(e) => {
                return super::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("The grants of agent {} could not be read: {e}", agent.id),
                )
            }
        };
        let error = refused
            .as_ref()
            .filter(|(id, _)| *id == agent.id)
            .map(|(_, why)| why.clone());
        lines.push(AgentLine {
            choices: PluginCapability::ALL
                .iter()
                .map(|c| Choice {
                    capability: c.as_str(),
                    tool: c.tool_name(),
                    granted: grants.capabilities.contains(c),
                    unavailable: grants.unavailable(*c),
                })
                .collect(),
            id: agent.id,
            name: agent.name,
            handle: agent.handle.unwrap_or_default(),
            error,
        });
    }
    let pending = match state.plugins.plugin_requests(Some("pending")).await {
        Ok(pending) => pending,
        Err(e) => {
            return super::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("The agents' requests could not be read: {e}"),
            )
        }
    };
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = AgentsPage {
        chrome: Chrome::new(state, admin, "Agents", "agents").with_notice(notice),
        agents: lines,
        pending,
    };
    render(status, &page)
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

pub async fn page(
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    show(&admin, &state, query.notice.as_deref(), None).await
}

/// Saves the ticked capabilities (`capability`, repeated) as the agent's grants.
pub async fn save_grants(
    post: AdminForm<Vec<(String, String)>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let ticked: Result<Vec<PluginCapability>, String> = post
        .form
        .iter()
        .filter(|(k, _)| k == "capability")
        .map(|(_, v)| {
            PluginCapability::parse(v).ok_or_else(|| format!("`{v}` is not a capability"))
        })
        .collect();
    let result = match ticked {
        Ok(capabilities) => state
            .plugins
            .set_agent_grants(&id, &capabilities, &changed_by(&post.admin))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => redirect("/admin/agents?notice=grants_saved".to_string()),
        Err(why) => {
            show(
                &post.admin,
                &state,
                None,
                Some((id.as_str(), format!("Nothing was changed: {why}"))),
            )
            .await
        }
    }
}
