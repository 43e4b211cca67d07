//! Every HTTP route, in one table.
//!
//! The table is the only place a route is registered ([`configure`]), the place the auth guard
//! looks up who may call it ([`access_of`]), and the source of the OpenAPI document
//! (`/api/openapi.json`). A route cannot be served without being listed here, so it cannot be served
//! without an access rule or without appearing in the API document. The default for anything under
//! `/admin` or `/api` that is not listed is "admin only".

use std::sync::LazyLock;

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::web;

use crate::{api, ui};

pub mod canonical;
mod endpoint;
mod health;
mod metrics;
mod webhooks;

pub use endpoint::{
    AdminAccess, Credential, CredentialFirst, Endpoint, MetricsAccess, SignInAccess,
};

/// HTTP methods the table uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }

    /// Lower case, as OpenAPI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, the sign-in page, stylesheets.
    Public,
    /// The sign-in form: anyone, but only from this site and with the form's CSRF token.
    SignIn,
    /// Anyone; the integration checks the request's own signature.
    Webhook,
    /// The admin credential, or `NITEJAR_METRICS_TOKEN`.
    Metrics,
    /// The admin credential: a session cookie (with CSRF token on changes) or the bearer token.
    Admin,
}

/// What a request body is.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    None,
    /// JSON of a schema in the OpenAPI components.
    Json(&'static str),
    /// An HTML form (`application/x-www-form-urlencoded`).
    Form,
    /// Whatever the integration's provider sends.
    Raw,
    /// `multipart/form-data` with a file in this field.
    Multipart(&'static str),
}

/// What a route answers.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// JSON of a schema in the OpenAPI components.
    Json(&'static str),
    /// An HTML page.
    Html,
    /// A redirect (303) to a page.
    Redirect,
    /// Plain text (Prometheus exposition).
    Text,
    /// A stylesheet.
    Css,
}

/// Documentation of a route.
#[derive(Clone, Copy, Debug)]
pub struct Doc {
    pub tag: &'static str,
    pub summary: &'static str,
    /// Query parameters: name and description.
    pub query: &'static [(&'static str, &'static str)],
    pub body: Body,
    pub answer: Answer,
}

/// One route.
pub struct RouteDef {
    pub verb: Verb,
    pub path: &'static str,
    /// The handler, and who may call it (the two are built together: see [`Endpoint`]).
    pub endpoint: Endpoint,
    pub doc: Doc,
}

impl RouteDef {
    /// Who may call this route.
    pub fn access(&self) -> Access {
        self.endpoint.access()
    }
}

#[allow(clippy::too_many_arguments)]
fn def(
    verb: Verb,
    path: &'static str,
    endpoint: Endpoint,
    tag: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Body,
    answer: Answer,
) -> RouteDef {
    RouteDef {
        verb,
        path,
        endpoint,
        doc: Doc {
            tag,
            summary,
            query,
            body,
            answer,
        },
    }
}

use Answer::{Html, Json, Redirect};
use Verb::{Delete, Get, Patch, Post, Put};

const EVENTS_QUERY: &[(&str, &str)] = &[
    ("plugin", "only this plugin's receipts"),
    (
        "kind",
        "only this kind (hook, webhook_ingress, install, ...)",
    ),
    (
        "status",
        "only this status (ok, error, timeout, blocked, denied, ...)",
    ),
    (
        "integration",
        "only receipts naming this integration id (its webhook deliveries, hand-overs)",
    ),
    ("limit", "page size, 1-500 (default 50)"),
    ("cursor", "nextCursor of the previous page"),
];

const RUNS_QUERY: &[(&str, &str)] = &[
    ("integration", "only work items that came through this integration (id)"),
    (
        "plugin",
        "only work items with a receipt of this plugin: the plugin of their integration (its webhook_ingress receipt) or one whose hooks or integration calls ran on them",
    ),
    (
        "status",
        "only runs in this state: queued, running (leased, or a job still running), or a status of any of their jobs (completed, failed, blocked, abandoned)",
    ),
    ("since", "only work items created at or after this time: Unix milliseconds, or a UTC date and time (2026-05-01T12:00)"),
    ("until", "only work items created before this time (same forms as since)"),
    ("limit", "page size, 1-500 (default 50)"),
    ("cursor", "nextCursor of the previous page"),
];

const SKILLS_QUERY: &[(&str, &str)] = &[
    ("source", "only skills of this source: repo, plugin or admin"),
    (
        "scope",
        "only skills assigned at this scope: global, team:<id>, agent:<id> or integration_type:<type>",
    ),
];

/// The route table. Static paths come before parameterised ones that could match them.
fn table() -> Vec<RouteDef> {
    vec![
        // --- health, metrics -----------------------------------------------------------------------
        def(Get, "/healthz", Endpoint::public(health::healthz), "health", "The process is up.", &[], Body::None, Json("Health")),
        def(Get, "/readyz", Endpoint::public(health::readyz), "health", "The database answers and the plugin registry is built.", &[], Body::None, Json("Ready")),
        def(Get, "/metrics", Endpoint::metrics(metrics::metrics), "health", "Prometheus metrics (admin token or NITEJAR_METRICS_TOKEN).", &[], Body::None, Answer::Text),
        // --- webhooks ------------------------------------------------------------------------------
        def(Post, "/api/webhooks/plugins/{type}/{integration_id}", Endpoint::webhook(webhooks::receive), "webhooks", "A delivery to an integration; authenticated by the integration's own signature.", &[], Body::Raw, Json("WebhookAnswer")),
        def(Get, "/api/webhooks/plugins/{type}/{integration_id}", Endpoint::webhook(webhooks::probe), "webhooks", "Answers 200 for providers that probe the URL.", &[], Body::None, Json("WebhookProbe")),
        // --- admin API -----------------------------------------------------------------------------
        def(Get, "/api/openapi.json", Endpoint::admin(api::openapi::document), "meta", "This document.", &[], Body::None, Json("OpenApi")),
        def(Get, "/api/admin/runtime", Endpoint::admin(api::runtime::runtime), "runtime", "Execution mode, trust mode, safe mode, active plugins, loaded libraries, posture texts.", &[], Body::None, Json("Runtime")),
        def(Get, "/api/admin/plugins", Endpoint::admin(api::plugins::list), "plugins", "Installed, built-in and active plugins with state, execution mode, limitations and declared capabilities.", &[], Body::None, Json("PluginList")),
        def(Post, "/api/admin/plugins/upload", Endpoint::admin(api::plugins::upload), "plugins", "Install an uploaded package (.tgz, multipart field `package`); it stays disabled until enabled with consent.", &[], Body::Multipart("package"), Json("PluginInstalled")),
        def(Post, "/api/admin/plugins/install/npm", Endpoint::admin(api::plugins::install_npm), "plugins", "Install a package from the npm registry (integrity checked).", &[], Body::Json("InstallNpm"), Json("PluginInstalled")),
        def(Post, "/api/admin/plugins/install/git", Endpoint::admin(api::plugins::install_git), "plugins", "Install a package from a git repository.", &[], Body::Json("InstallGit"), Json("PluginInstalled")),
        def(Post, "/api/admin/plugins/install/local", Endpoint::admin(api::plugins::install_local), "plugins", "Install a package directory or .tgz from the server's own disk.", &[], Body::Json("InstallLocal"), Json("PluginInstalled")),
        def(Get, "/api/admin/plugins/{id}", Endpoint::admin(api::plugins::get), "plugins", "One plugin: versions, declared capabilities with where each is enforced, the consent text.", &[], Body::None, Json("PluginDetail")),
        def(Delete, "/api/admin/plugins/{id}", Endpoint::admin(api::plugins::uninstall), "plugins", "Uninstall; integrations of its types are kept.", &[("purgeFiles", "true: remove its version directories and packages"), ("purgeData", "true: remove its settings, acknowledgements, receipts and data directory")], Body::None, Json("PluginUninstalled")),
        def(Get, "/api/admin/plugins/{id}/events", Endpoint::admin(api::plugins::events), "plugins", "The plugin's receipts, newest first, keyset-paged.", &[("limit", "page size, 1-500 (default 50)"), ("cursor", "nextCursor of the previous page")], Body::None, Json("ReceiptPage")),
        def(Get, "/api/admin/plugins/{id}/stats", Endpoint::admin(api::plugin_stats::get), "plugins", "The plugin's hook calls per UTC hour over the last `hours` (the last bucket is the current hour): `calls` (hook receipts except skipped_budget), `errors` (error, timeout, denied), `p50Ms` and `p99Ms` (nearest rank; null without calls), `durationsRead` (the durations the percentiles come from; fewer than calls only past 100000 in the window), and `total` over the window. 400 invalid_hours.", &[("hours", "1-168 (default 24)")], Body::None, Json("PluginStats")),
        def(Post, "/api/admin/plugins/{id}/enable", Endpoint::admin(api::plugins::enable), "plugins", "Enable with explicit consent (428 consent_required without acceptConsent; 428 acknowledgement_required when declared permissions must be acknowledged).", &[], Body::Json("Consent"), Json("PluginEnabled")),
        def(Post, "/api/admin/plugins/{id}/disable", Endpoint::admin(api::plugins::disable), "plugins", "Disable: no more calls into it.", &[], Body::None, Json("PluginDisabled")),
        def(Post, "/api/admin/plugins/{id}/upgrade", Endpoint::admin(api::plugins::upgrade), "plugins", "Install a newer version beside the current one and switch to it (consent asked again only for new permissions).", &[], Body::Json("Upgrade"), Json("PluginUpgraded")),
        def(Post, "/api/admin/plugins/{id}/rollback", Endpoint::admin(api::plugins::rollback), "plugins", "Make an installed version current again.", &[], Body::Json("Rollback"), Json("PluginRolledBack")),
        def(Get, "/api/admin/plugins/{id}/config", Endpoint::admin(api::plugin_config::get), "plugins", "The plugin's settings: the config schema its manifest declares, the stored config, and every declared secret masked with where its value comes from (stored, environment, unset).", &[], Body::None, Json("PluginSettings")),
        def(Put, "/api/admin/plugins/{id}/config", Endpoint::admin(api::plugin_config::put), "plugins", "Change the plugin's config and/or declared secrets; checked first (422 invalid_config with a problem per field, 422 undeclared_secret; nothing written), then the running plugin is re-instantiated with them (409 changed_meanwhile when another operation changed the plugin while the new instance loaded; nothing written).", &[], Body::Json("PluginConfigUpdate"), Json("PluginConfigured")),
        def(Put, "/api/admin/plugins/{id}/execution", Endpoint::admin(api::plugin_config::put_execution), "plugins", "Where the plugin's code runs: isolated (a process of its own, under the kernel's controls), in_process, or null for the server's default (NITEJAR_PLUGIN_EXECUTION). An active plugin is re-activated in the new mode at once; 409 execution_refused for a built-in, in_process under saas_locked, or isolated without a plugin host.", &[], Body::Json("PluginExecutionUpdate"), Json("PluginExecutionSet")),
        def(Get, "/api/admin/agents/{id}/plugin-grants", Endpoint::admin(api::agent_grants::get), "agents", "What the agent may do to plugins through its tools: each capability (plugins.install, plugins.enable (a request the operator approves), plugins.disable, plugins.uninstall, …) with its tool, whether it is granted, and whether this version offers it. 404 unknown_agent.", &[], Body::None, Json("AgentPluginGrants")),
        def(Put, "/api/admin/agents/{id}/plugin-grants", Endpoint::admin(api::agent_grants::put), "agents", "Set the agent's grants (the whole list; [] withdraws all). 422 invalid_capability for a name not spelled exactly as a capability, 409 grant_refused for one this version cannot grant (plugins.upgrade, plugins.edit_source), 404 unknown_agent; nothing changes on an error. Applies to its next run and its next tool call; receipted (agent_grant).", &[], Body::Json("AgentPluginGrantsUpdate"), Json("AgentPluginGrants")),
        def(Get, "/api/admin/plugin-requests", Endpoint::admin(api::agent_grants::requests), "agents", "What agents asked the operator to do to plugins (an enable, an upgrade that adds to the consent, a source edit), newest first: the plugin, the agent, its job and work item, its reason, the status and who decided. 400 invalid_status.", &[("status", "pending, approved or rejected (default: all)")], Body::None, Json("PluginRequests")),
        def(Post, "/api/admin/plugin-requests/{id}/approve", Endpoint::admin(api::agent_grants::approve), "agents", "Approve an agent's request with the operator's consent: an enable exactly as an enable, an upgrade or edit as an upgrade installing exactly the package reviewed (428 consent_required / acknowledgement_required without it, 409 not_what_was_reviewed when its source now gives other bytes; the request stays pending). The receipt names the agent, its job, the request and who approved. 404 unknown_request, 409 request_decided.", &[], Body::Json("Consent"), Json("PluginRequestDecision")),
        def(Post, "/api/admin/plugin-requests/{id}/reject", Endpoint::admin(api::agent_grants::reject), "agents", "Reject an agent's request; receipted (denied) in the agent's name. 404 unknown_request, 409 request_decided.", &[], Body::None, Json("PluginRequestDecision")),
        def(Get, "/api/admin/trust", Endpoint::admin(api::trust::get), "trust", "The trusted keys and allowlist entries plugins are judged with: each with its source (environment: not removable here; stored: added by an operator), whether it applies in this trust mode, who added it.", &[], Body::None, Json("TrustSettings")),
        def(Post, "/api/admin/trust/keys", Endpoint::admin(api::trust::add_key), "trust", "Trust a minisign public key (its base64 line, or the minisign.pub text); 422 invalid_trusted_key names what is wrong, 409 already_trusted / key_id_taken / trust_settings_locked (saas_locked). Applies at once, and in every server sharing the database within a second; receipted.", &[], Body::Json("TrustKeyAdd"), Json("TrustChanged")),
        def(Delete, "/api/admin/trust/keys/{key_id}", Endpoint::admin(api::trust::remove_key), "trust", "Stop trusting a stored key (by its key id); a plugin trusted only by it stops running. 409 set_by_environment for a key of NITEJAR_PLUGIN_TRUSTED_KEYS, 404 when there is none.", &[], Body::None, Json("TrustChanged")),
        def(Post, "/api/admin/trust/allowlist", Endpoint::admin(api::trust::add_allow), "trust", "Allow a plugin id, or one build of it (`id@sha256:<digest>`); 422 invalid_allowlist_entry names what is wrong. Applies at once; receipted.", &[], Body::Json("TrustAllowAdd"), Json("TrustChanged")),
        def(Delete, "/api/admin/trust/allowlist/{entry}", Endpoint::admin(api::trust::remove_allow), "trust", "Remove a stored allowlist entry; a plugin allowed only by it stops running. 409 set_by_environment for an entry of NITEJAR_PLUGIN_ALLOWLIST.", &[], Body::None, Json("TrustChanged")),
        def(Get, "/api/admin/integration-types", Endpoint::admin(api::runtime::integration_types), "integrations", "Integration types of the active plugins, with config_schema and ui_schema.", &[], Body::None, Json("IntegrationTypeList")),
        def(Get, "/api/admin/integrations", Endpoint::admin(api::integrations::list), "integrations", "Every integration, secrets masked.", &[("type", "only integrations of this type")], Body::None, Json("IntegrationList")),
        def(Post, "/api/admin/integrations", Endpoint::admin(api::integrations::create), "integrations", "Create an integration: validated against the type's schema and validate_config; setup() registers its webhook.", &[], Body::Json("IntegrationCreate"), Json("IntegrationSaved")),
        def(Get, "/api/admin/integrations/{id}", Endpoint::admin(api::integrations::get), "integrations", "One integration, secrets masked.", &[], Body::None, Json("Integration")),
        def(Patch, "/api/admin/integrations/{id}", Endpoint::admin(api::integrations::update), "integrations", "Change name, config or enabled; a masked secret sent back keeps the stored one.", &[], Body::Json("IntegrationPatch"), Json("IntegrationSaved")),
        def(Delete, "/api/admin/integrations/{id}", Endpoint::admin(api::integrations::delete), "integrations", "Delete an integration (its work items stay).", &[], Body::None, Json("Deleted")),
        def(Post, "/api/admin/integrations/{id}/test", Endpoint::admin(api::integrations::test_connection), "integrations", "Test the connection with the stored config.", &[], Body::None, Json("ConnectionTest")),
        def(Post, "/api/admin/integrations/{id}/handover", Endpoint::admin(api::integrations::hand_over), "integrations", "Give an integration to the plugin that provides its type now (its own plugin is gone or replaced); acceptHandover consents to that plugin reading its config and secrets.", &[], Body::Json("IntegrationHandOver"), Json("IntegrationHandedOver")),
        def(Get, "/api/admin/skills", Endpoint::admin(api::skills::list), "skills", "Skills of every source with their assignments; shadowedBy names the skill that wins a shared name (precedence: admin, plugin, repo).", SKILLS_QUERY, Body::None, Json("SkillList")),
        def(Post, "/api/admin/skills", Endpoint::admin(api::skills::create), "skills", "Create an admin skill with its supporting files; checked in full (slug, paths, sizes, frontmatter) before anything is stored.", &[], Body::Json("SkillCreate"), Json("SkillDetail")),
        def(Post, "/api/admin/skills/import", Endpoint::admin(api::skills::import), "skills", "Import a skill export (format version 2) as an admin skill.", &[("replace", "true replaces the admin skill with the same slug (else 409)")], Body::Json("SkillExport"), Json("SkillDetail")),
        def(Get, "/api/admin/skills/{id}", Endpoint::admin(api::skills::get), "skills", "One skill, by id, name or slug (case-insensitive): text, supporting files, assignments, the skills it shadows.", &[], Body::None, Json("SkillDetail")),
        def(Patch, "/api/admin/skills/{id}", Endpoint::admin(api::skills::update), "skills", "Change an admin skill (by id or slug); files, when sent, replace every supporting file. Repo and plugin skills answer 403.", &[], Body::Json("SkillPatch"), Json("SkillDetail")),
        def(Delete, "/api/admin/skills/{id}", Endpoint::admin(api::skills::delete), "skills", "Delete an admin skill (by id or slug) with its files and assignments. Repo and plugin skills answer 403.", &[], Body::None, Json("Deleted")),
        def(Post, "/api/admin/skills/{id}/enable", Endpoint::admin(api::skills::enable), "skills", "Switch a skill of any source on.", &[], Body::None, Json("SkillDetail")),
        def(Post, "/api/admin/skills/{id}/disable", Endpoint::admin(api::skills::disable), "skills", "Switch a skill of any source off: no run gets it, whatever its assignments.", &[], Body::None, Json("SkillDetail")),
        def(Get, "/api/admin/skills/{id}/assignments", Endpoint::admin(api::skills::assignments), "skills", "The skill's assignments.", &[("scope", "only the assignment at this scope")], Body::None, Json("SkillAssignmentList")),
        def(Post, "/api/admin/skills/{id}/assignments", Endpoint::admin(api::skills::assign), "skills", "Assign the skill to a scope, or change the priority and enabled flag of that assignment.", &[], Body::Json("SkillAssignmentInput"), Json("SkillAssignment")),
        def(Delete, "/api/admin/skills/{id}/assignments", Endpoint::admin(api::skills::unassign), "skills", "Remove the skill's assignment at a scope.", &[("scope", "the assignment's scope (required)")], Body::None, Json("SkillAssignmentDeleted")),
        def(Get, "/api/admin/skills/{id}/export", Endpoint::admin(api::skills::export), "skills", "The skill in the portable JSON format, as a download.", &[], Body::None, Json("SkillExport")),
        def(Get, "/api/admin/receipts", Endpoint::admin(api::receipts::list), "receipts", "Receipts across plugins, newest first, keyset-paged.", EVENTS_QUERY, Body::None, Json("ReceiptPage")),
        def(Get, "/api/admin/runs", Endpoint::admin(api::runs::list), "runs", "Work items with what their runs did (queue state, jobs, delivery or the reason they failed), newest first, keyset-paged.", RUNS_QUERY, Body::None, Json("RunPage")),
        def(Get, "/api/admin/runs/{id}", Endpoint::admin(api::runs::get), "runs", "One work item's run: its jobs with their spans (model calls, tools, hooks, delivery) and its receipts.", &[], Body::None, Json("RunDetail")),
        // --- admin UI ------------------------------------------------------------------------------
        def(Get, "/", Endpoint::public(ui::home), "admin-ui", "Redirects to the admin UI.", &[], Body::None, Redirect),
        def(Get, "/admin", Endpoint::public(ui::home), "admin-ui", "Redirects to the plugins page.", &[], Body::None, Redirect),
        def(Get, "/admin/assets/{file}", Endpoint::public(ui::assets::asset), "admin-ui", "The admin stylesheet.", &[], Body::None, Answer::Css),
        def(Get, "/admin/login", Endpoint::public(ui::login::page), "admin-ui", "The sign-in page.", &[("next", "where to go after signing in")], Body::None, Html),
        def(Post, "/admin/login", Endpoint::sign_in(ui::login::submit), "admin-ui", "Sign in with the admin token.", &[], Body::Form, Redirect),
        def(Post, "/admin/logout", Endpoint::admin(ui::login::logout), "admin-ui", "Sign out.", &[], Body::Form, Redirect),
        def(Get, "/admin/plugins", Endpoint::admin(ui::plugins::list), "admin-ui", "Installed plugins.", &[], Body::None, Html),
        def(Get, "/admin/plugins/install", Endpoint::admin(ui::plugins::install_page), "admin-ui", "Install a plugin from npm, git, an upload or a path.", &[], Body::None, Html),
        def(Post, "/admin/plugins/install/npm", Endpoint::admin(ui::plugins::install_npm), "admin-ui", "Install from npm, then review.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/install/git", Endpoint::admin(ui::plugins::install_git), "admin-ui", "Install from git, then review.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/install/local", Endpoint::admin(ui::plugins::install_local), "admin-ui", "Install from a path on the server, then review.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/upload", Endpoint::admin(ui::plugins::upload), "admin-ui", "Install an uploaded package, then review (CSRF token in the query: `?_csrf=`).", &[("_csrf", "the session's CSRF token")], Body::Multipart("package"), Redirect),
        def(Get, "/admin/plugins/{id}", Endpoint::admin(ui::plugins::detail), "admin-ui", "One plugin: versions, permissions, receipts.", &[], Body::None, Html),
        def(Get, "/admin/plugins/{id}/review", Endpoint::admin(ui::plugins::review), "admin-ui", "Review what a plugin declares, the in-process warning and the consent text; consent and enable.", &[], Body::None, Html),
        def(Post, "/admin/plugins/{id}/enable", Endpoint::admin(ui::plugins::enable), "admin-ui", "Enable with consent and acknowledgements.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/disable", Endpoint::admin(ui::plugins::disable), "admin-ui", "Disable a plugin.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/execution", Endpoint::admin(ui::plugins::execution), "admin-ui", "Choose where a plugin's code runs.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/upgrade", Endpoint::admin(ui::plugins::upgrade), "admin-ui", "Upgrade from a source (or its own source).", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/upgrade/upload", Endpoint::admin(ui::plugins::upgrade_upload), "admin-ui", "Upgrade from an uploaded package (consent boxes before the file; CSRF token in the query: `?_csrf=`).", &[("_csrf", "the session's CSRF token")], Body::Multipart("package"), Redirect),
        def(Post, "/admin/plugins/{id}/rollback", Endpoint::admin(ui::plugins::rollback), "admin-ui", "Roll back to an installed version.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/config", Endpoint::admin(ui::plugin_config::save), "admin-ui", "Save a plugin's settings (the form generated from its config schema, and its secrets).", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/uninstall", Endpoint::admin(ui::plugins::uninstall), "admin-ui", "Uninstall a plugin.", &[], Body::Form, Redirect),
        def(Get, "/admin/integrations", Endpoint::admin(ui::integrations::list), "admin-ui", "Integrations.", &[], Body::None, Html),
        def(Get, "/admin/integrations/new", Endpoint::admin(ui::integrations::new_form), "admin-ui", "The form for a new integration of a type.", &[("type", "the integration type")], Body::None, Html),
        def(Post, "/admin/integrations", Endpoint::admin(ui::integrations::create), "admin-ui", "Create an integration.", &[], Body::Form, Redirect),
        def(Get, "/admin/integrations/{id}", Endpoint::admin(ui::integrations::edit_form), "admin-ui", "Edit an integration.", &[], Body::None, Html),
        def(Post, "/admin/integrations/{id}", Endpoint::admin(ui::integrations::update), "admin-ui", "Save an integration.", &[], Body::Form, Redirect),
        def(Post, "/admin/integrations/{id}/enable", Endpoint::admin(ui::integrations::enable), "admin-ui", "Enable an integration.", &[], Body::Form, Redirect),
        def(Post, "/admin/integrations/{id}/disable", Endpoint::admin(ui::integrations::disable), "admin-ui", "Disable an integration.", &[], Body::Form, Redirect),
        def(Post, "/admin/integrations/{id}/delete", Endpoint::admin(ui::integrations::delete), "admin-ui", "Delete an integration.", &[], Body::Form, Redirect),
        def(Post, "/admin/integrations/{id}/test", Endpoint::admin(ui::integrations::test_connection), "admin-ui", "Test an integration's connection.", &[], Body::Form, Html),
        def(Post, "/admin/integrations/{id}/handover", Endpoint::admin(ui::integrations::hand_over), "admin-ui", "Give an integration to the plugin that provides its type now.", &[], Body::Form, Redirect),
        def(Get, "/admin/skills", Endpoint::admin(ui::skills::list), "admin-ui", "Skills of every source, which one wins each name, assignments.", SKILLS_QUERY, Body::None, Html),
        def(Post, "/admin/skills", Endpoint::admin(ui::skill_form::create), "admin-ui", "Create an admin skill.", &[], Body::Form, Redirect),
        def(Get, "/admin/skills/new", Endpoint::admin(ui::skill_form::new_form), "admin-ui", "The form for a new admin skill.", &[], Body::None, Html),
        def(Get, "/admin/skills/import", Endpoint::admin(ui::skill_form::import_form), "admin-ui", "The import form: paste a skill export.", &[], Body::None, Html),
        def(Post, "/admin/skills/import", Endpoint::admin(ui::skill_form::import), "admin-ui", "Import a skill export.", &[], Body::Form, Redirect),
        def(Get, "/admin/skills/{id}", Endpoint::admin(ui::skills::detail), "admin-ui", "One skill: text, supporting files, assignments.", &[], Body::None, Html),
        def(Post, "/admin/skills/{id}", Endpoint::admin(ui::skill_form::save), "admin-ui", "Save an admin skill.", &[], Body::Form, Redirect),
        def(Get, "/admin/skills/{id}/edit", Endpoint::admin(ui::skill_form::edit_form), "admin-ui", "Edit an admin skill.", &[], Body::None, Html),
        def(Post, "/admin/skills/{id}/enable", Endpoint::admin(ui::skills::enable), "admin-ui", "Switch a skill on.", &[], Body::Form, Redirect),
        def(Post, "/admin/skills/{id}/disable", Endpoint::admin(ui::skills::disable), "admin-ui", "Switch a skill off.", &[], Body::Form, Redirect),
        def(Post, "/admin/skills/{id}/delete", Endpoint::admin(ui::skills::delete), "admin-ui", "Delete an admin skill.", &[], Body::Form, Redirect),
        def(Post, "/admin/skills/{id}/assignments", Endpoint::admin(ui::skills::assign), "admin-ui", "Add or change an assignment of a skill.", &[], Body::Form, Redirect),
        def(Post, "/admin/skills/{id}/assignments/remove", Endpoint::admin(ui::skills::unassign), "admin-ui", "Remove an assignment of a skill.", &[], Body::Form, Redirect),
        def(Get, "/admin/receipts", Endpoint::admin(ui::receipts::page), "admin-ui", "Receipts, filtered and paged.", EVENTS_QUERY, Body::None, Html),
        def(Get, "/admin/runs", Endpoint::admin(ui::runs::page), "admin-ui", "Runs: work items, their jobs and outcomes, filtered and paged.", RUNS_QUERY, Body::None, Html),
        def(Get, "/admin/runs/{id}", Endpoint::admin(ui::runs::detail), "admin-ui", "One run: its jobs, a timeline of their spans, its receipts.", &[], Body::None, Html),
        def(Post, "/admin/plugins/{id}/requests/{request}/approve", Endpoint::admin(ui::plugins::approve_request), "admin-ui", "Approve an agent's request from the plugin's review page, with the consent and acknowledgements ticked there.", &[], Body::Form, Redirect),
        def(Post, "/admin/plugins/{id}/requests/{request}/reject", Endpoint::admin(ui::plugins::reject_request), "admin-ui", "Reject an agent's request.", &[], Body::Form, Redirect),
        def(Get, "/admin/agents", Endpoint::admin(ui::agents::page), "admin-ui", "Agents, and what each may do to plugins through its tools.", &[], Body::None, Html),
        def(Post, "/admin/agents/{id}/plugin-grants", Endpoint::admin(ui::agents::save_grants), "admin-ui", "Save an agent's plugin grants (the ticked capabilities).", &[], Body::Form, Redirect),
        def(Get, "/admin/trust", Endpoint::admin(ui::trust::page), "admin-ui", "Trust settings: trusted keys and allowlist entries, from the environment and added here.", &[], Body::None, Html),
        def(Post, "/admin/trust/keys", Endpoint::admin(ui::trust::add_key), "admin-ui", "Trust a minisign public key.", &[], Body::Form, Redirect),
        def(Post, "/admin/trust/keys/remove", Endpoint::admin(ui::trust::remove_key), "admin-ui", "Stop trusting a stored key.", &[], Body::Form, Redirect),
        def(Post, "/admin/trust/allowlist", Endpoint::admin(ui::trust::add_allow), "admin-ui", "Add an allowlist entry.", &[], Body::Form, Redirect),
        def(Post, "/admin/trust/allowlist/remove", Endpoint::admin(ui::trust::remove_allow), "admin-ui", "Remove a stored allowlist entry.", &[], Body::Form, Redirect),
        def(Get, "/admin/runtime", Endpoint::admin(ui::runtime::page), "admin-ui", "Runtime posture and loaded libraries.", &[], Body::None, Html),
    ]
}

/// The route table, built once.
pub static ROUTES: LazyLock<Vec<RouteDef>> = LazyLock::new(table);

static PATTERNS: LazyLock<Vec<ResourceDef>> =
    LazyLock::new(|| ROUTES.iter().map(|r| ResourceDef::new(r.path)).collect());

/// Registers every route of the table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // One resource per path, holding every method of that path, in table order.
    let mut paths: Vec<&'static str> = Vec::new();
    for r in ROUTES.iter() {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path);
        for r in ROUTES.iter().filter(|r| r.path == path) {
            resource = resource.route(r.endpoint.attach(web::route().method(r.verb.method())));
        }
        cfg.service(resource);
    }
}

/// Who may call `method path`: the access of the listed route (any method of a listed path when
/// the method is not listed, so that a 405 is not an open door); `Admin` for unlisted paths under
/// `/admin` or `/api`; `None` (nothing to protect: a 404) elsewhere.
pub fn access_of(method: &Method, path: &str) -> Option<Access> {
    let mut path_match = None;
    for (r, pattern) in ROUTES.iter().zip(PATTERNS.iter()) {
        if pattern.is_match(path) {
            if r.verb.method() == *method {
                return Some(r.access());
            }
            path_match.get_or_insert(r.access());
        }
    }
    if path_match.is_some() {
        return path_match;
    }
    let protected = ["/admin", "/api"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    protected.then_some(Access::Admin)
}

/// The paths that may answer without the admin credential, and how. Anything else under `/admin`,
/// `/api` or at `/metrics` must be an admin route.
const OPEN_PATHS: &[(Access, &str)] = &[
    (Access::Public, "/admin"),
    (Access::Public, "/admin/login"),
    (Access::Public, "/admin/assets/{file}"),
    (Access::SignIn, "/admin/login"),
    (
        Access::Webhook,
        "/api/webhooks/plugins/{type}/{integration_id}",
    ),
    (Access::Metrics, "/metrics"),
];

/// Checks the table before the server serves anything: every route under `/admin` or `/api` (and
/// `/metrics`) is an admin route unless it is one of the few open ones, and no method of a path is
/// registered twice. The server refuses to start when this fails.
pub fn check_table(routes: &[RouteDef]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let protected_path = r.path == "/metrics"
            || ["/admin", "/api"]
                .iter()
                .any(|p| r.path == *p || r.path.starts_with(&format!("{p}/")));
        if protected_path
            && r.access() != Access::Admin
            && !OPEN_PATHS.contains(&(r.access(), r.path))
        {
            problems.push(format!(
                "{} {} is registered as {:?}; routes here need the admin credential (Endpoint::admin)",
                r.verb.as_str(),
                r.path,
                r.access()
            ));
        }
        if routes[..i]
            .iter()
            .any(|o| o.path == r.path && o.verb == r.verb)
        {
            problems.push(format!(
                "{} {} is registered twice",
                r.verb.as_str(),
                r.path
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_passes_its_own_check() {
        assert_eq!(check_table(&ROUTES), Ok(()));
        // Every route, in the table's order, has exactly the rule it is registered with.
        for r in ROUTES.iter() {
            assert_eq!(
                access_of(&r.verb.method(), &r.path.replace('{', "x").replace('}', "")),
                Some(r.access()),
                "{} {}",
                r.verb.as_str(),
                r.path
            );
        }
    }

    async fn leak() -> &'static str {
        "admin data"
    }

    #[test]
    fn a_public_route_under_admin_or_api_is_refused_at_start_up() {
        for path in ["/api/admin/runtime", "/admin/plugins", "/api/x", "/metrics"] {
            let table = vec![def(
                Get,
                path,
                Endpoint::public(leak),
                "t",
                "s",
                &[],
                Body::None,
                Answer::Text,
            )];
            let refused = check_table(&table).err().unwrap_or_default();
            assert!(
                refused.contains(path) && refused.contains("admin credential"),
                "{path}: {refused}"
            );
        }
        // A webhook route elsewhere under /api is refused too.
        let table = vec![def(
            Post,
            "/api/admin/open",
            Endpoint::webhook(leak),
            "t",
            "s",
            &[],
            Body::None,
            Answer::Text,
        )];
        assert!(check_table(&table).is_err());
        // The same path twice with one method would make one of them unreachable.
        let table = vec![
            def(
                Get,
                "/healthz",
                Endpoint::public(leak),
                "t",
                "s",
                &[],
                Body::None,
                Answer::Text,
            ),
            def(
                Get,
                "/healthz",
                Endpoint::public(leak),
                "t",
                "s",
                &[],
                Body::None,
                Answer::Text,
            ),
        ];
        assert!(check_table(&table).is_err_and(|e| e.contains("twice")));
    }

    #[test]
    fn unlisted_paths_under_admin_and_api_need_the_admin_credential() {
        assert_eq!(
            access_of(&Method::GET, "/api/admin/nope"),
            Some(Access::Admin)
        );
        assert_eq!(
            access_of(&Method::GET, "/admin/nope/x"),
            Some(Access::Admin)
        );
        assert_eq!(access_of(&Method::GET, "/api"), Some(Access::Admin));
        assert_eq!(access_of(&Method::GET, "/favicon.ico"), None);
        assert_eq!(
            access_of(&Method::PUT, "/admin/login"),
            Some(Access::Public)
        );
        assert_eq!(
            access_of(&Method::POST, "/api/webhooks/plugins/telegram/1"),
            Some(Access::Webhook)
        );
        assert_eq!(
            access_of(&Method::POST, "/admin/login"),
            Some(Access::SignIn)
        );
    }

    #[test]
    fn no_route_is_registered_outside_the_table() {
        // Registration anywhere else would bypass the access rules and the API document.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.ends_with("routes/mod.rs") || path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for needle in [
                    ".route(",
                    "web::resource(",
                    "web::scope(",
                    ".service(",
                    "#[get(",
                    "#[post(",
                ] {
                    assert!(
                        !text.contains(needle),
                        "{} registers a route ({needle}); add it to the table in routes/mod.rs",
                        path.display()
                    );
                }
            }
        }
    }
}
