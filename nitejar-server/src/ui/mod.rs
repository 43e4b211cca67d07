//! The admin UI: server-rendered HTML (askama templates in `nitejar-server/templates/`), one small
//! stylesheet served by the binary, no JavaScript and nothing fetched from elsewhere, so it works
//! offline and in any browser. Every page but an error page carries the posture badge: where
//! third-party plugins run by default (`In-process (No hard sandbox)` or isolated).
//!
//! Forms post to the routes in `crate::routes` with the session's CSRF token (`_csrf`), checked by
//! the auth guard; after a change the browser is redirected (303) to a page showing the result.

pub mod agents;
pub mod assets;
pub mod form;
pub mod hook_chart;
pub mod integrations;
pub mod login;
pub mod plugin_config;
pub mod plugins;
pub mod receipts;
pub mod runs;
pub mod runtime;
pub mod skill_form;
pub mod skills;
pub mod trust;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, Responder};
use askama::Template;

use crate::auth::Admin;
use crate::posture;
use crate::state::AppState;

/// What the layout needs on every page.
pub struct Chrome {
    pub title: String,
    /// Which navigation entry is current: `plugins`, `integrations`, `skills`, `receipts`, `runs`,
    /// `trust`, `agents`, `runtime`, or ``.
    pub nav: &'static str,
    pub csrf: String,
    pub signed_in: bool,
    /// The posture badge (empty on error pages, which do not know the server's settings).
    pub badge: &'static str,
    /// The badge's tooltip.
    pub badge_title: &'static str,
    pub posture: &'static str,
    pub trust_mode: &'static str,
    /// Where third-party plugins run unless the operator chose otherwise for one (footer; empty on
    /// error pages).
    pub execution: &'static str,
    pub version: &'static str,
    pub notice: Option<String>,
}

impl Chrome {
    /// The chrome of a signed-in page.
    pub fn new(
        state: &AppState,
        admin: &Admin,
        title: impl Into<String>,
        nav: &'static str,
    ) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            csrf: admin.csrf().to_owned(),
            signed_in: true,
            badge: posture::badge(state.config.plugin_execution),
            badge_title: posture::badge_title(state.config.plugin_execution),
            posture: nitejar_core::trust::posture_for(
                state.config.trust_mode(),
                state.config.plugin_execution,
            ),
            trust_mode: state.config.trust_mode().as_str(),
            execution: posture::footer(state.config.plugin_execution),
            version: nitejar_core::NITEJAR_VERSION,
            notice: None,
        }
    }

    /// The chrome of a page shown before sign-in (`state`: the server's settings, for the badge
    /// and posture; `None` on error pages, which show neither).
    pub fn public(title: impl Into<String>, state: Option<&AppState>) -> Chrome {
        let (trust_mode, posture, badge, badge_title, execution) = match state {
            Some(state) => {
                let mode = state.config.trust_mode();
                let execution = state.config.plugin_execution;
                (
                    mode.as_str(),
                    nitejar_core::trust::posture_for(mode, execution),
                    posture::badge(execution),
                    posture::badge_title(execution),
                    posture::footer(execution),
                )
            }
            None => ("", "", "", "", ""),
        };
        Chrome {
            title: title.into(),
            nav: "",
            csrf: String::new(),
            signed_in: false,
            badge,
            badge_title,
            posture,
            trust_mode,
            execution,
            version: nitejar_core::NITEJAR_VERSION,
            notice: None,
        }
    }

    /// Shows the notice named by a `notice` query value (fixed texts only: nothing from the URL is
    /// echoed).
    pub fn with_notice(mut self, code: Option<&str>) -> Chrome {
        self.notice = code.and_then(notice_text).map(str::to_owned);
        self
    }
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Integration created.",
        "saved" => "Saved.",
        "enabled" => "Enabled.",
        "disabled" => "Disabled.",
        "execution_changed" => "Saved: the plugin runs there now (or will, once enabled).",
        "deleted" => "Deleted.",
        "handed_over" => {
            "Handed over: the plugin that provides the type now serves this integration."
        }
        "signed_out" => "You are signed out.",
        "installed" => "Installed. Review it below, then enable it.",
        "uninstalled" => "Uninstalled.",
        "rolled_back" => "Rolled back.",
        "upgraded" => "Upgraded.",
        "configured" => "Settings saved: the plugin runs with them now.",
        "configured_disabled" => "Settings saved: the plugin gets them when it is enabled.",
        "settings_unchanged" => "Nothing to save: the settings are as they were.",
        "skill_created" => "Skill created.",
        "skill_imported" => "Skill imported.",
        "assigned" => "Assignment saved.",
        "key_added" => "Key trusted: plugins signed by it can be enabled now.",
        "key_removed" => "Key removed: plugins trusted only by it no longer run.",
        "entry_added" => "Allowlist entry added.",
        "entry_removed" => "Allowlist entry removed: plugins allowed only by it no longer run.",
        "unassigned" => "Assignment removed.",
        "request_approved" => {
            "Approved: the plugin is enabled with your consent; the agent's request is closed."
        }
        "request_rejected" => "Rejected: the plugin stays as it was.",
        "grants_saved" => "Grants saved: the agent's next run is offered the tools it holds now.",
        _ => return None,
    })
}

/// Renders a template into a response.
pub fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("x-frame-options", "DENY"))
            .insert_header(("content-security-policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"))
            .insert_header(("referrer-policy", "same-origin"))
            .body(html),
        Err(e) => {
            tracing::error!("rendering a page failed: {e}");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("This page could not be rendered; see the server log.")
        }
    }
}

/// A 303 redirect.
pub fn redirect(location: impl Into<String>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.into()))
        .finish()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    message: String,
}

/// A short error page (for refusals by the auth guard and pages that do not exist).
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let page = ErrorPage {
        chrome: Chrome::public(status.canonical_reason().unwrap_or("Error"), None),
        status: status.as_u16(),
        message: message.to_owned(),
    };
    render(status, &page)
}

/// `/` and `/admin`: to the plugins page (the guard sends visitors who are not signed in on to the
/// sign-in page).
pub async fn home() -> impl Responder {
    redirect("/admin/plugins")
}

/// `text` as one URL path segment (`repo:ops/deploy` → `repo%3Aops%2Fdeploy`): skill ids hold `:`
/// and `/`, and a link must reach the `{id}` of its route whole.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2026-05-01 12:34:56 UTC` from Unix milliseconds.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn skill_ids_become_one_path_segment() {
        assert_eq!(super::path_segment("admin:deploy"), "admin%3Adeploy");
        assert_eq!(
            super::path_segment("plugin:acme.ops/Run Book"),
            "plugin%3Aacme.ops%2FRun%20Book"
        );
        assert_eq!(super::path_segment("é"), "%C3%A9");
    }

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(super::format_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::format_ms(1_767_225_600_000),
            "2026-01-01 00:00:00 UTC"
        );
        assert_eq!(super::format_ms(951_825_599_000), "2000-02-29 11:59:59 UTC");
    }
}
