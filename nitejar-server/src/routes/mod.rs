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
use actix_web::{web, Route};

use crate::{api, ui};

mod health;
mod metrics;
mod webhooks;

/// HTTP methods the table uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }

    /// Lower case, as OpenAPI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
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
    pub access: Access,
    pub doc: Doc,
    build: fn(Route) -> Route,
}

#[allow(clippy::too_many_arguments)]
fn def(
    verb: Verb,
    path: &'static str,
    access: Access,
    tag: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Body,
    answer: Answer,
    build: fn(Route) -> Route,
) -> RouteDef {
    RouteDef {
        verb,
        path,
        access,
        doc: Doc {
            tag,
            summary,
            query,
            body,
            answer,
        },
        build,
    }
}

use Access::{Admin, Public, SignIn};
use Answer::{Html, Json, Redirect};
use Verb::{Delete, Get, Patch, Post};

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
        def(Get, "/healthz", Public, "health", "The process is up.", &[], Body::None, Json("Health"), |r| r.to(health::healthz)),
        def(Get, "/readyz", Public, "health", "The database answers and the plugin registry is built.", &[], Body::None, Json("Ready"), |r| r.to(health::readyz)),
        def(Get, "/metrics", Access::Metrics, "health", "Prometheus metrics (admin token or NITEJAR_METRICS_TOKEN).", &[], Body::None, Answer::Text, |r| r.to(metrics::metrics)),
        // --- webhooks ------------------------------------------------------------------------------
        def(Post, "/api/webhooks/plugins/{type}/{integration_id}", Access::Webhook, "webhooks", "A delivery to an integration; authenticated by the integration's own signature.", &[], Body::Raw, Json("WebhookAnswer"), |r| r.to(webhooks::receive)),
        def(Get, "/api/webhooks/plugins/{type}/{integration_id}", Access::Webhook, "webhooks", "Answers 200 for providers that probe the URL.", &[], Body::None, Json("WebhookProbe"), |r| r.to(webhooks::probe)),
        // --- admin API -----------------------------------------------------------------------------
        def(Get, "/api/openapi.json", Admin, "meta", "This document.", &[], Body::None, Json("OpenApi"), |r| r.to(api::openapi::document)),
        def(Get, "/api/admin/runtime", Admin, "runtime", "Execution mode, trust mode, safe mode, active plugins, loaded libraries, posture texts.", &[], Body::None, Json("Runtime"), |r| r.to(api::runtime::runtime)),
        def(Get, "/api/admin/plugins", Admin, "plugins", "Installed, built-in and active plugins with state, execution mode, limitations and declared capabilities.", &[], Body::None, Json("PluginList"), |r| r.to(api::plugins::list)),
        def(Post, "/api/admin/plugins/upload", Admin, "plugins", "Install an uploaded package (.tgz, multipart field `package`); it stays disabled until enabled with consent.", &[], Body::Multipart("package"), Json("PluginInstalled"), |r| r.to(api::plugins::upload)),
        def(Post, "/api/admin/plugins/install/npm", Admin, "plugins", "Install a package from the npm registry (integrity checked).", &[], Body::Json("InstallNpm"), Json("PluginInstalled"), |r| r.to(api::plugins::install_npm)),
        def(Post, "/api/admin/plugins/install/git", Admin, "plugins", "Install a package from a git repository.", &[], Body::Json("InstallGit"), Json("PluginInstalled"), |r| r.to(api::plugins::install_git)),
        def(Post, "/api/admin/plugins/install/local", Admin, "plugins", "Install a package directory or .tgz from the server's own disk.", &[], Body::Json("InstallLocal"), Json("PluginInstalled"), |r| r.to(api::plugins::install_local)),
        def(Get, "/api/admin/plugins/{id}", Admin, "plugins", "One plugin: versions, declared capabilities with where each is enforced, the consent text.", &[], Body::None, Json("PluginDetail"), |r| r.to(api::plugins::get)),
        def(Delete, "/api/admin/plugins/{id}", Admin, "plugins", "Uninstall; integrations of its types are kept.", &[("purgeFiles", "true: remove its version directories and packages"), ("purgeData", "true: remove its settings, acknowledgements, receipts and data directory")], Body::None, Json("PluginUninstalled"), |r| r.to(api::plugins::uninstall)),
        def(Get, "/api/admin/plugins/{id}/events", Admin, "plugins", "The plugin's receipts, newest first, keyset-paged.", &[("limit", "page size, 1-500 (default 50)"), ("cursor", "nextCursor of the previous page")], Body::None, Json("ReceiptPage"), |r| r.to(api::plugins::events)),
        def(Post, "/api/admin/plugins/{id}/enable", Admin, "plugins", "Enable with explicit consent (428 consent_required without acceptConsent; 428 acknowledgement_required when declared permissions must be acknowledged).", &[], Body::Json("Consent"), Json("PluginEnabled"), |r| r.to(api::plugins::enable)),
        def(Post, "/api/admin/plugins/{id}/disable", Admin, "plugins", "Disable: no more calls into it.", &[], Body::None, Json("PluginDisabled"), |r| r.to(api::plugins::disable)),
        def(Post, "/api/admin/plugins/{id}/upgrade", Admin, "plugins", "Install a newer version beside the current one and switch to it (consent asked again only for new permissions).", &[], Body::Json("Upgrade"), Json("PluginUpgraded"), |r| r.to(api::plugins::upgrade)),
        def(Post, "/api/admin/plugins/{id}/rollback", Admin, "plugins", "Make an installed version current again.", &[], Body::Json("Rollback"), Json("PluginRolledBack"), |r| r.to(api::plugins::rollback)),
        def(Get, "/api/admin/integration-types", Admin, "integrations", "Integration types of the active plugins, with config_schema and ui_schema.", &[], Body::None, Json("IntegrationTypeList"), |r| r.to(api::runtime::integration_types)),
        def(Get, "/api/admin/integrations", Admin, "integrations", "Every integration, secrets masked.", &[("type", "only integrations of this type")], Body::None, Json("IntegrationList"), |r| r.to(api::integrations::list)),
        def(Post, "/api/admin/integrations", Admin, "integrations", "Create an integration: validated against the type's schema and validate_config; setup() registers its webhook.", &[], Body::Json("IntegrationCreate"), Json("IntegrationSaved"), |r| r.to(api::integrations::create)),
        def(Get, "/api/admin/integrations/{id}", Admin, "integrations", "One integration, secrets masked.", &[], Body::None, Json("Integration"), |r| r.to(api::integrations::get)),
        def(Patch, "/api/admin/integrations/{id}", Admin, "integrations", "Change name, config or enabled; a masked secret sent back keeps the stored one.", &[], Body::Json("IntegrationPatch"), Json("IntegrationSaved"), |r| r.to(api::integrations::update)),
        def(Delete, "/api/admin/integrations/{id}", Admin, "integrations", "Delete an integration (its work items stay).", &[], Body::None, Json("Deleted"), |r| r.to(api::integrations::delete)),
        def(Post, "/api/admin/integrations/{id}/test", Admin, "integrations", "Test the connection with the stored config.", &[], Body::None, Json("ConnectionTest"), |r| r.to(api::integrations::test_connection)),
        def(Get, "/api/admin/skills", Admin, "skills", "Skills of every source with their assignments; shadowedBy names the skill that wins a shared name (precedence: admin, plugin, repo).", SKILLS_QUERY, Body::None, Json("SkillList"), |r| r.to(api::skills::list)),
        def(Post, "/api/admin/skills", Admin, "skills", "Create an admin skill with its supporting files; checked in full (slug, paths, sizes, frontmatter) before anything is stored.", &[], Body::Json("SkillCreate"), Json("SkillDetail"), |r| r.to(api::skills::create)),
        def(Post, "/api/admin/skills/import", Admin, "skills", "Import a skill export (format version 2) as an admin skill.", &[("replace", "true replaces the admin skill with the same slug (else 409)")], Body::Json("SkillExport"), Json("SkillDetail"), |r| r.to(api::skills::import)),
        def(Get, "/api/admin/skills/{id}", Admin, "skills", "One skill, by id, name or slug (case-insensitive): text, supporting files, assignments, the skills it shadows.", &[], Body::None, Json("SkillDetail"), |r| r.to(api::skills::get)),
        def(Patch, "/api/admin/skills/{id}", Admin, "skills", "Change an admin skill (by id or slug); files, when sent, replace every supporting file. Repo and plugin skills answer 403.", &[], Body::Json("SkillPatch"), Json("SkillDetail"), |r| r.to(api::skills::update)),
        def(Delete, "/api/admin/skills/{id}", Admin, "skills", "Delete an admin skill (by id or slug) with its files and assignments. Repo and plugin skills answer 403.", &[], Body::None, Json("Deleted"), |r| r.to(api::skills::delete)),
        def(Post, "/api/admin/skills/{id}/enable", Admin, "skills", "Switch a skill of any source on.", &[], Body::None, Json("SkillDetail"), |r| r.to(api::skills::enable)),
        def(Post, "/api/admin/skills/{id}/disable", Admin, "skills", "Switch a skill of any source off: no run gets it, whatever its assignments.", &[], Body::None, Json("SkillDetail"), |r| r.to(api::skills::disable)),
        def(Get, "/api/admin/skills/{id}/assignments", Admin, "skills", "The skill's assignments.", &[("scope", "only the assignment at this scope")], Body::None, Json("SkillAssignmentList"), |r| r.to(api::skills::assignments)),
        def(Post, "/api/admin/skills/{id}/assignments", Admin, "skills", "Assign the skill to a scope, or change the priority and enabled flag of that assignment.", &[], Body::Json("SkillAssignmentInput"), Json("SkillAssignment"), |r| r.to(api::skills::assign)),
        def(Delete, "/api/admin/skills/{id}/assignments", Admin, "skills", "Remove the skill's assignment at a scope.", &[("scope", "the assignment's scope (required)")], Body::None, Json("SkillAssignmentDeleted"), |r| r.to(api::skills::unassign)),
        def(Get, "/api/admin/skills/{id}/export", Admin, "skills", "The skill in the portable JSON format, as a download.", &[], Body::None, Json("SkillExport"), |r| r.to(api::skills::export)),
        def(Get, "/api/admin/receipts", Admin, "receipts", "Receipts across plugins, newest first, keyset-paged.", EVENTS_QUERY, Body::None, Json("ReceiptPage"), |r| r.to(api::receipts::list)),
        // --- admin UI ------------------------------------------------------------------------------
        def(Get, "/", Public, "admin-ui", "Redirects to the admin UI.", &[], Body::None, Redirect, |r| r.to(ui::home)),
        def(Get, "/admin", Public, "admin-ui", "Redirects to the plugins page.", &[], Body::None, Redirect, |r| r.to(ui::home)),
        def(Get, "/admin/assets/{file}", Public, "admin-ui", "The admin stylesheet.", &[], Body::None, Answer::Css, |r| r.to(ui::assets::asset)),
        def(Get, "/admin/login", Public, "admin-ui", "The sign-in page.", &[("next", "where to go after signing in")], Body::None, Html, |r| r.to(ui::login::page)),
        def(Post, "/admin/login", SignIn, "admin-ui", "Sign in with the admin token.", &[], Body::Form, Redirect, |r| r.to(ui::login::submit)),
        def(Post, "/admin/logout", Admin, "admin-ui", "Sign out.", &[], Body::Form, Redirect, |r| r.to(ui::login::logout)),
        def(Get, "/admin/plugins", Admin, "admin-ui", "Installed plugins.", &[], Body::None, Html, |r| r.to(ui::plugins::list)),
        def(Get, "/admin/plugins/install", Admin, "admin-ui", "Install a plugin from npm, git, an upload or a path.", &[], Body::None, Html, |r| r.to(ui::plugins::install_page)),
        def(Post, "/admin/plugins/install/npm", Admin, "admin-ui", "Install from npm, then review.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::install_npm)),
        def(Post, "/admin/plugins/install/git", Admin, "admin-ui", "Install from git, then review.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::install_git)),
        def(Post, "/admin/plugins/install/local", Admin, "admin-ui", "Install from a path on the server, then review.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::install_local)),
        def(Post, "/admin/plugins/upload", Admin, "admin-ui", "Install an uploaded package, then review (CSRF token in the query: `?_csrf=`).", &[("_csrf", "the session's CSRF token")], Body::Multipart("package"), Redirect, |r| r.to(ui::plugins::upload)),
        def(Get, "/admin/plugins/{id}", Admin, "admin-ui", "One plugin: versions, permissions, receipts.", &[], Body::None, Html, |r| r.to(ui::plugins::detail)),
        def(Get, "/admin/plugins/{id}/review", Admin, "admin-ui", "Review what a plugin declares, the in-process warning and the consent text; consent and enable.", &[], Body::None, Html, |r| r.to(ui::plugins::review)),
        def(Post, "/admin/plugins/{id}/enable", Admin, "admin-ui", "Enable with consent and acknowledgements.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::enable)),
        def(Post, "/admin/plugins/{id}/disable", Admin, "admin-ui", "Disable a plugin.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::disable)),
        def(Post, "/admin/plugins/{id}/upgrade", Admin, "admin-ui", "Upgrade from a source (or its own source).", &[], Body::Form, Redirect, |r| r.to(ui::plugins::upgrade)),
        def(Post, "/admin/plugins/{id}/rollback", Admin, "admin-ui", "Roll back to an installed version.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::rollback)),
        def(Post, "/admin/plugins/{id}/uninstall", Admin, "admin-ui", "Uninstall a plugin.", &[], Body::Form, Redirect, |r| r.to(ui::plugins::uninstall)),
        def(Get, "/admin/integrations", Admin, "admin-ui", "Integrations.", &[], Body::None, Html, |r| r.to(ui::integrations::list)),
        def(Get, "/admin/integrations/new", Admin, "admin-ui", "The form for a new integration of a type.", &[("type", "the integration type")], Body::None, Html, |r| r.to(ui::integrations::new_form)),
        def(Post, "/admin/integrations", Admin, "admin-ui", "Create an integration.", &[], Body::Form, Redirect, |r| r.to(ui::integrations::create)),
        def(Get, "/admin/integrations/{id}", Admin, "admin-ui", "Edit an integration.", &[], Body::None, Html, |r| r.to(ui::integrations::edit_form)),
        def(Post, "/admin/integrations/{id}", Admin, "admin-ui", "Save an integration.", &[], Body::Form, Redirect, |r| r.to(ui::integrations::update)),
        def(Post, "/admin/integrations/{id}/enable", Admin, "admin-ui", "Enable an integration.", &[], Body::Form, Redirect, |r| r.to(ui::integrations::enable)),
        def(Post, "/admin/integrations/{id}/disable", Admin, "admin-ui", "Disable an integration.", &[], Body::Form, Redirect, |r| r.to(ui::integrations::disable)),
        def(Post, "/admin/integrations/{id}/delete", Admin, "admin-ui", "Delete an integration.", &[], Body::Form, Redirect, |r| r.to(ui::integrations::delete)),
        def(Post, "/admin/integrations/{id}/test", Admin, "admin-ui", "Test an integration's connection.", &[], Body::Form, Html, |r| r.to(ui::integrations::test_connection)),
        def(Get, "/admin/skills", Admin, "admin-ui", "Skills of every source, which one wins each name, assignments.", SKILLS_QUERY, Body::None, Html, |r| r.to(ui::skills::list)),
        def(Post, "/admin/skills", Admin, "admin-ui", "Create an admin skill.", &[], Body::Form, Redirect, |r| r.to(ui::skill_form::create)),
        def(Get, "/admin/skills/new", Admin, "admin-ui", "The form for a new admin skill.", &[], Body::None, Html, |r| r.to(ui::skill_form::new_form)),
        def(Get, "/admin/skills/import", Admin, "admin-ui", "The import form: paste a skill export.", &[], Body::None, Html, |r| r.to(ui::skill_form::import_form)),
        def(Post, "/admin/skills/import", Admin, "admin-ui", "Import a skill export.", &[], Body::Form, Redirect, |r| r.to(ui::skill_form::import)),
        def(Get, "/admin/skills/{id}", Admin, "admin-ui", "One skill: text, supporting files, assignments.", &[], Body::None, Html, |r| r.to(ui::skills::detail)),
        def(Post, "/admin/skills/{id}", Admin, "admin-ui", "Save an admin skill.", &[], Body::Form, Redirect, |r| r.to(ui::skill_form::save)),
        def(Get, "/admin/skills/{id}/edit", Admin, "admin-ui", "Edit an admin skill.", &[], Body::None, Html, |r| r.to(ui::skill_form::edit_form)),
        def(Post, "/admin/skills/{id}/enable", Admin, "admin-ui", "Switch a skill on.", &[], Body::Form, Redirect, |r| r.to(ui::skills::enable)),
        def(Post, "/admin/skills/{id}/disable", Admin, "admin-ui", "Switch a skill off.", &[], Body::Form, Redirect, |r| r.to(ui::skills::disable)),
        def(Post, "/admin/skills/{id}/delete", Admin, "admin-ui", "Delete an admin skill.", &[], Body::Form, Redirect, |r| r.to(ui::skills::delete)),
        def(Post, "/admin/skills/{id}/assignments", Admin, "admin-ui", "Add or change an assignment of a skill.", &[], Body::Form, Redirect, |r| r.to(ui::skills::assign)),
        def(Post, "/admin/skills/{id}/assignments/remove", Admin, "admin-ui", "Remove an assignment of a skill.", &[], Body::Form, Redirect, |r| r.to(ui::skills::unassign)),
        def(Get, "/admin/receipts", Admin, "admin-ui", "Receipts, filtered and paged.", EVENTS_QUERY, Body::None, Html, |r| r.to(ui::receipts::page)),
        def(Get, "/admin/runtime", Admin, "admin-ui", "Runtime posture and loaded libraries.", &[], Body::None, Html, |r| r.to(ui::runtime::page)),
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
            resource = resource.route((r.build)(web::route().method(r.verb.method())));
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
                return Some(r.access);
            }
            path_match.get_or_insert(r.access);
        }
    }
    if path_match.is_some() {
        return path_match;
    }
    let protected = ["/admin", "/api"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    protected.then_some(Admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_and_api_route_needs_the_admin_credential() {
        for r in ROUTES.iter() {
            let public_ok = matches!(
                (r.access, r.path),
                (
                    Public,
                    "/healthz"
                        | "/readyz"
                        | "/"
                        | "/admin"
                        | "/admin/login"
                        | "/admin/assets/{file}"
                ) | (SignIn, "/admin/login")
                    | (
                        Access::Webhook,
                        "/api/webhooks/plugins/{type}/{integration_id}"
                    )
                    | (Access::Metrics, "/metrics")
            );
            assert!(
                r.access == Admin || public_ok,
                "{} {} is not behind the admin credential",
                r.verb.as_str(),
                r.path
            );
        }
    }

    #[test]
    fn unlisted_paths_under_admin_and_api_need_the_admin_credential() {
        assert_eq!(access_of(&Method::GET, "/api/admin/nope"), Some(Admin));
        assert_eq!(access_of(&Method::GET, "/admin/nope/x"), Some(Admin));
        assert_eq!(access_of(&Method::GET, "/api"), Some(Admin));
        assert_eq!(access_of(&Method::GET, "/favicon.ico"), None);
        assert_eq!(access_of(&Method::PUT, "/admin/login"), Some(Public));
        assert_eq!(
            access_of(&Method::POST, "/api/webhooks/plugins/telegram/1"),
            Some(Access::Webhook)
        );
        assert_eq!(access_of(&Method::POST, "/admin/login"), Some(SignIn));
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
