//! A policy plugin: a tool guard and a response redactor, as a third-party Nitejar plugin.
//!
//! - `tool.pre_exec` (priority 1000, `fail_closed`): blocks tools whose name is on `blockedTools`
//!   (exact, case-insensitive; a trailing `*` matches a prefix). Because the handler is
//!   `fail_closed`, a guard that errors or times out blocks the tool as well.
//! - `response.pre_deliver` (priority -1000, so it sees the final text; `fail_closed`): replaces
//!   with `[redacted]` every literal in `redact`, the value of every secret named in
//!   `redactSecrets` (read through the host, so each must be declared in `permissions.secrets`),
//!   and every token that starts with one of `redactTokenPrefixes` (`sk-`, `ghp_`, …) followed by at
//!   least 16 token characters.
//!
//! Config (declared in `nitejar.plugin.json` under `config`, so the operator sets it in the admin
//! form, the API or `nitejar plugin config`, checked against that schema before it reaches here):
//!
//! ```json
//! { "blockedTools": ["shell", "fs_*"], "redact": ["hunter2"], "redactSecrets": ["OPENAI_API_KEY"],
//!   "redactTokenPrefixes": ["sk-", "ghp_"] }
//! ```
//!
//! Without a config the guard blocks `shell` and redacts `sk-` and `ghp_` tokens: the defaults the
//! manifest declares, read into [`Policy`] with `nitejar_sdk::config::Config::get`.

use nitejar_sdk::config::{Config, ConfigError};
use nitejar_sdk::hooks::{
    HookOptions, HookResult, ResponsePreDeliver, ResponsePreDeliverPatch, ToolPreExec,
};
use nitejar_sdk::{HookContext, LogLevel, Plugin};
use serde::Deserialize;

/// What replaces a redacted text.
pub const REDACTED: &str = "[redacted]";

/// The plugin's config. The defaults are those `nitejar.plugin.json` declares in `config.schema`
/// (`blockedTools: ["shell"]`, `redactTokenPrefixes: ["sk-", "ghp_"]`); they are not repeated here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub blocked_tools: Vec<String>,
    pub redact: Vec<String>,
    pub redact_secrets: Vec<String>,
    pub redact_token_prefixes: Vec<String>,
}

/// The manifest, whose `config.schema` declares the settings and their defaults.
pub const MANIFEST: &str = include_str!("../nitejar.plugin.json");

impl Policy {
    /// Whether a tool is blocked.
    pub fn blocks(&self, tool: &str) -> bool {
        let tool = tool.to_ascii_lowercase();
        self.blocked_tools.iter().any(|rule| {
            let rule = rule.to_ascii_lowercase();
            match rule.strip_suffix('*') {
                Some(prefix) => tool.starts_with(prefix),
                None => tool == rule,
            }
        })
    }

    /// `text` with every literal and token replaced by [`REDACTED`]; `secrets` are extra literals.
    pub fn redact(&self, text: &str, secrets: &[String]) -> String {
        let mut out = text.to_string();
        for literal in self.redact.iter().chain(secrets) {
            if !literal.is_empty() {
                out = out.replace(literal.as_str(), REDACTED);
            }
        }
        for prefix in &self.redact_token_prefixes {
            out = redact_tokens(&out, prefix);
        }
        out
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Replaces `prefix` + at least 16 token characters.
fn redact_tokens(text: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let len = after
            .char_indices()
            .find(|&(_, c)| !is_token_char(c))
            .map_or(after.len(), |(i, _)| i);
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_token_char(c));
        if len >= 16 && starts_word {
            out.push_str(&rest[..at]);
            out.push_str(REDACTED);
            rest = &after[len..];
        } else {
            out.push_str(&rest[..at + prefix.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Describes the plugin for its settings.
pub fn plugin(config: &Config) -> Result<Plugin, ConfigError> {
    let policy: Policy = config.get()?;
    let guard = policy.clone();
    let redactor = policy;
    Ok(Plugin::builder()
        .hook(
            HookOptions::new()
                .priority(1000)
                .timeout_ms(500)
                .fail_closed(),
            move |ctx: &HookContext<'_>, call: &ToolPreExec| {
                if guard.blocks(&call.tool_name) {
                    ctx.host.log(
                        LogLevel::Info,
                        &format!("blocked tool `{}`", call.tool_name),
                    );
                    HookResult::block(format!(
                        "the tool `{}` is blocked by the server's policy",
                        call.tool_name
                    ))
                } else {
                    HookResult::proceed()
                }
            },
        )
        .hook(
            HookOptions::new().priority(-1000).fail_closed(),
            move |ctx: &HookContext<'_>, response: &ResponsePreDeliver| {
                let mut secrets = Vec::new();
                for name in &redactor.redact_secrets {
                    match ctx.host.secret(name) {
                        Ok(value) => secrets.push(value),
                        // Unset or refused: nothing to redact for it, but say so.
                        Err(e) => ctx
                            .host
                            .log(LogLevel::Warn, &format!("secret `{name}`: {e}")),
                    }
                }
                let content = redactor.redact(&response.content, &secrets);
                if content == response.content {
                    HookResult::proceed()
                } else {
                    HookResult::change(ResponsePreDeliverPatch::new().content(content))
                }
            },
        )
        .build())
}

nitejar_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_sdk::serde_json::{json, Value};
    use nitejar_sdk::testing::{run_hook, TestHost};

    #[test]
    fn blocked_tools_are_blocked() {
        let plugin = plugin(&settings(json!({ "blockedTools": ["shell", "fs_*"] }))).unwrap();
        let host = TestHost::new();
        for (tool, blocked) in [
            ("shell", true),
            ("SHELL", true),
            ("fs_write", true),
            ("search", false),
        ] {
            // Payloads are `#[non_exhaustive]`: start from `Default`, set what the hook reads.
            let mut call = ToolPreExec::default();
            call.tool_name = tool.into();
            let run = run_hook(&plugin, &host, call);
            assert_eq!(run.blocked.is_some(), blocked, "{tool}");
        }
        assert_eq!(host.logs().len(), 3);
    }

    #[test]
    fn responses_are_redacted() {
        let plugin = plugin(&settings(json!({
            "redact": ["hunter2"],
            "redactSecrets": ["OPENAI_API_KEY"],
        })))
        .unwrap();
        let host = TestHost::new().with_secret("OPENAI_API_KEY", "abc-the-real-key");
        let mut response = ResponsePreDeliver::default();
        response.content =
            "pw hunter2, key abc-the-real-key, token sk-ABCDEFGHIJKLMNOPQRST, task-sk-1 ok".into();
        let run = run_hook(&plugin, &host, response);
        assert_eq!(
            run.payload.content,
            "pw [redacted], key [redacted], token [redacted], task-sk-1 ok"
        );
        assert_eq!(run.blocked, None);
    }

    #[test]
    fn a_bad_config_is_refused() {
        let error = plugin(&settings(json!({ "blockedTools": "shell" }))).unwrap_err();
        assert!(
            error.to_string().contains("at `blockedTools`"),
            "the error names the setting: {error}"
        );
        let error = plugin(&settings(json!({ "blokedTools": ["shell"] }))).unwrap_err();
        assert!(error.to_string().contains("blokedTools"), "{error}");
    }

    #[test]
    fn unset_settings_take_the_manifests_defaults() {
        let policy: Policy = settings(Value::Null).get().unwrap();
        assert_eq!(
            policy,
            Policy {
                blocked_tools: vec!["shell".into()],
                redact: vec![],
                redact_secrets: vec![],
                redact_token_prefixes: vec!["sk-".into(), "ghp_".into()],
            }
        );
        let policy: Policy = settings(json!({ "redact": ["x"] })).get().unwrap();
        assert_eq!(policy.redact, ["x"]);
        assert_eq!(policy.blocked_tools, ["shell"]);
    }

    fn settings(value: Value) -> Config {
        Config::declared_in(MANIFEST, value).unwrap()
    }
}
