//! GitHub webhook deliveries → work items.
//!
//! - `issue_comment` `created` → a work item (with the `mentions` policy, only when the comment
//!   mentions `@<mentionHandle>`);
//! - `issues` `opened`/`reopened` → a work item when `trackIssueOpen` (default on);
//! - `check_run` `completed` on a pull request → a work item when `trackCheckRun` (default on);
//! - `installation`, `installation_repositories` → an [`InstallationChange`] the integration records;
//! - `ping` and everything else → acknowledged and ignored, with the reason.
//!
//! Comments and issues from bots are ignored (`sender.type == "Bot"` or a `[bot]` login), so the
//! App never answers itself. Check runs are always reported by Apps and are not filtered that way.

use nitejar_sdk::integration::NewWorkItem;
use nitejar_sdk::webhook::{HmacSignature, SignatureError};
use nitejar_sdk::{IntegrationError, WebhookParseResult, WebhookRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{CommentPolicy, GitHubConfig};

/// What a delivery asks of the integration.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// Create a work item, or ignore the delivery with a reason.
    Parsed(WebhookParseResult),
    /// Record a change of an installation; no work item.
    Installation(InstallationChange),
}

/// An `installation` or `installation_repositories` event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallationChange {
    /// `installation.created`, `installation.deleted`, `installation_repositories.added`, …
    pub event: String,
    pub action: String,
    pub installation_id: u64,
    pub account: Option<String>,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    /// Every repository of the installation, when the event lists them all (`created`).
    pub repositories: Option<Vec<String>>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Checks `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the raw body>`) in constant time.
pub fn verify_signature(request: &WebhookRequest, secret: &str) -> Result<(), IntegrationError> {
    HmacSignature::github()
        .verify_header(request, "x-hub-signature-256", secret.as_bytes())
        .map_err(|e| {
            IntegrationError::Unauthorized(match e {
                SignatureError::MissingHeader { .. } => {
                    "the X-Hub-Signature-256 header is missing; set the webhook secret in the \
                     GitHub App's settings"
                        .into()
                }
                SignatureError::Mismatch => "X-Hub-Signature-256 does not match the body signed \
                                             with the integration's webhookSecret"
                    .into(),
                other => format!("X-Hub-Signature-256 is not of the form sha256=<hex>: {other}"),
            })
        })
}

#[derive(Deserialize)]
struct Account {
    login: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

impl Account {
    fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some("Bot") || self.login.ends_with("[bot]")
    }

    fn to_json(&self) -> Value {
        json!({ "login": self.login, "id": self.id, "type": self.kind, "url": self.html_url })
    }
}

#[derive(Deserialize)]
struct Repository {
    name: String,
    full_name: String,
    owner: Account,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    private: bool,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    pull_request: Option<Value>,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: String,
    #[serde(default)]
    html_url: String,
}

#[derive(Deserialize)]
struct CheckRun {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    details_url: Option<String>,
    #[serde(default)]
    head_sha: String,
    #[serde(default)]
    output: CheckOutput,
    #[serde(default)]
    pull_requests: Vec<PullRef>,
    #[serde(default)]
    app: Option<CheckApp>,
}

#[derive(Default, Deserialize)]
struct CheckOutput {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    summary: Option<String>,
}

#[derive(Deserialize)]
struct PullRef {
    number: u64,
    #[serde(default)]
    head: Option<BranchRef>,
    #[serde(default)]
    base: Option<BranchRef>,
}

#[derive(Deserialize)]
struct BranchRef {
    #[serde(default, rename = "ref")]
    name: String,
}

#[derive(Deserialize)]
struct CheckApp {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    slug: Option<String>,
}

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
    #[serde(default)]
    account: Option<Account>,
    #[serde(default)]
    repository_selection: Option<String>,
}

#[derive(Deserialize)]
struct RepoName {
    full_name: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    sender: Option<Account>,
    #[serde(default)]
    repository: Option<Repository>,
    #[serde(default)]
    installation: Option<InstallationRef>,
    #[serde(default)]
    issue: Option<Issue>,
    #[serde(default)]
    comment: Option<Comment>,
    #[serde(default)]
    check_run: Option<CheckRun>,
    #[serde(default)]
    repositories: Option<Vec<RepoName>>,
    #[serde(default)]
    repositories_added: Vec<RepoName>,
    #[serde(default)]
    repositories_removed: Vec<RepoName>,
    #[serde(default)]
    repository_selection: Option<String>,
}

fn bad_request(what: impl Into<String>) -> IntegrationError {
    IntegrationError::BadRequest(what.into())
}

/// Reads a delivery whose signature has been checked.
pub fn parse_delivery(
    request: &WebhookRequest,
    config: &GitHubConfig,
) -> Result<Delivery, IntegrationError> {
    let event = request
        .header("x-github-event")
        .ok_or_else(|| bad_request("the X-GitHub-Event header is missing"))?
        .to_string();
    let payload: Envelope = request
        .json()
        .map_err(|e| bad_request(format!("the body is not a GitHub {event} event: {e}")))?;
    let action = payload.action.clone().unwrap_or_default();
    let ignore = |reason: String| Ok(Delivery::Parsed(WebhookParseResult::ignore(reason)));

    match event.as_str() {
        "ping" => return ignore("ping: the webhook is reachable".into()),
        "installation" | "installation_repositories" => {
            return installation_change(&event, &action, payload).map(Delivery::Installation)
        }
        "issue_comment" | "issues" | "check_run" => {}
        other => return ignore(format!("GitHub event `{other}` is not handled")),
    }
    let delivery = request
        .header("x-github-delivery")
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| bad_request("the X-GitHub-Delivery header is missing"))?
        .trim()
        .to_string();

    let wanted = match event.as_str() {
        "issue_comment" => action == "created",
        "issues" => action == "opened" || action == "reopened",
        _ => action == "completed",
    };
    if !wanted {
        return ignore(format!("{event} action `{action}` is not handled"));
    }
    match event.as_str() {
        "issues" if !config.track_issue_open() => {
            return ignore("issues are not tracked (trackIssueOpen is off)".into())
        }
        "check_run" if !config.track_check_run() => {
            return ignore("check runs are not tracked (trackCheckRun is off)".into())
        }
        _ => {}
    }
    let repository = payload
        .repository
        .as_ref()
        .ok_or_else(|| bad_request(format!("the {event} event has no repository")))?;
    if !config.allows_repo(&repository.full_name) {
        return ignore(format!(
            "repository {} is not in allowedRepos",
            repository.full_name
        ));
    }
    if event != "check_run" && payload.sender.as_ref().is_some_and(Account::is_bot) {
        let login = payload.sender.as_ref().map_or("", |s| s.login.as_str());
        return ignore(format!("{event} from a bot ({login})"));
    }

    let item = match event.as_str() {
        "issue_comment" => issue_comment(&payload, repository, config)?,
        "issues" => opened_issue(&payload, repository)?,
        _ => completed_check(&payload, repository)?,
    };
    let item = match item {
        Ok(item) => item,
        Err(reason) => return ignore(reason),
    };
    let installation_id = payload.installation.as_ref().map(|i| i.id);
    let mut work_item = item.work_item;
    work_item.payload["event"] = json!(event);
    work_item.payload["action"] = json!(action);
    work_item.payload["sender"] = payload
        .sender
        .as_ref()
        .map_or(Value::Null, Account::to_json);
    work_item.payload["repository"] = json!({
        "owner": repository.owner.login,
        "name": repository.name,
        "fullName": repository.full_name,
        "url": repository.html_url,
        "private": repository.private,
    });
    work_item.payload["installationId"] = json!(installation_id);
    Ok(Delivery::Parsed(
        WebhookParseResult::process(work_item)
            .with_idempotency_key(format!("github:{delivery}"))
            .with_response_context(json!({
                "owner": repository.owner.login,
                "repo": repository.name,
                "issueNumber": item.number,
                "installationId": installation_id,
            })),
    ))
}

struct Item {
    number: u64,
    work_item: NewWorkItem,
}

/// A work item, or why the delivery creates none.
type ItemOrSkip = Result<Item, String>;

fn work_item(
    repository: &Repository,
    number: u64,
    source_ref: String,
    title: &str,
    payload: Value,
) -> Item {
    let owner = &repository.owner.login;
    let repo = &repository.name;
    Item {
        number,
        work_item: NewWorkItem::new(
            format!("{owner}/{repo}#issue:{number}"),
            truncate(&format!("[{owner}/{repo}#{number}] {title}"), 200),
        )
        .source("github")
        .source_ref(source_ref)
        .payload(payload),
    }
}

fn issue_json(issue: &Issue) -> Value {
    json!({
        "number": issue.number,
        "title": issue.title,
        "url": issue.html_url,
        "isPullRequest": issue.pull_request.is_some(),
        "state": issue.state,
    })
}

fn issue_comment(
    payload: &Envelope,
    repository: &Repository,
    config: &GitHubConfig,
) -> Result<ItemOrSkip, IntegrationError> {
    let issue = payload
        .issue
        .as_ref()
        .ok_or_else(|| bad_request("the issue_comment event has no issue"))?;
    let comment = payload
        .comment
        .as_ref()
        .ok_or_else(|| bad_request("the issue_comment event has no comment"))?;
    if config.comment_policy() == CommentPolicy::Mentions
        && !mentions(&comment.body, &config.mention_handle())
    {
        return Ok(Err(format!(
            "comment does not mention @{} (commentPolicy is mentions)",
            config.mention_handle()
        )));
    }
    let source_ref = format!(
        "{}/{}#issue:{}#comment:{}",
        repository.owner.login, repository.name, issue.number, comment.id
    );
    let payload = json!({
        "text": comment.body,
        "issue": issue_json(issue),
        "comment": { "id": comment.id, "url": comment.html_url },
    });
    Ok(Ok(work_item(
        repository,
        issue.number,
        source_ref,
        &issue.title,
        payload,
    )))
}

fn opened_issue(
    payload: &Envelope,
    repository: &Repository,
) -> Result<ItemOrSkip, IntegrationError> {
    let issue = payload
        .issue
        .as_ref()
        .ok_or_else(|| bad_request("the issues event has no issue"))?;
    let body = issue.body.as_deref().unwrap_or("").trim();
    let text = if body.is_empty() {
        issue.title.clone()
    } else {
        format!("{}\n\n{body}", issue.title)
    };
    let source_ref = format!(
        "{}/{}#issue:{}",
        repository.owner.login, repository.name, issue.number
    );
    let mut issue_value = issue_json(issue);
    issue_value["body"] = json!(issue.body);
    let payload = json!({ "text": text, "issue": issue_value });
    Ok(Ok(work_item(
        repository,
        issue.number,
        source_ref,
        &issue.title,
        payload,
    )))
}

fn completed_check(
    payload: &Envelope,
    repository: &Repository,
) -> Result<ItemOrSkip, IntegrationError> {
    let run = payload
        .check_run
        .as_ref()
        .ok_or_else(|| bad_request("the check_run event has no check_run"))?;
    let Some(pull) = run.pull_requests.first() else {
        // Runs on branches without a pull request have no conversation to answer in.
        return Ok(Err(format!(
            "check run \"{}\" is not on a pull request",
            run.name
        )));
    };
    let conclusion = run.conclusion.as_deref().unwrap_or("unknown");
    let app = run.app.as_ref().and_then(|a| a.name.clone());
    let mut text = format!(
        "Check run \"{}\" completed with conclusion `{conclusion}` on pull request #{}",
        run.name, pull.number
    );
    if let (Some(head), Some(base)) = (&pull.head, &pull.base) {
        text.push_str(&format!(" ({} → {})", head.name, base.name));
    }
    text.push('.');
    for part in [&run.output.title, &run.output.summary]
        .into_iter()
        .flatten()
    {
        if !part.trim().is_empty() {
            text.push_str("\n\n");
            text.push_str(part.trim());
        }
    }
    if let Some(url) = run.details_url.as_ref().or(run.html_url.as_ref()) {
        text.push_str(&format!("\n\nDetails: {url}"));
    }
    let pr_url = repository
        .html_url
        .as_ref()
        .map(|u| format!("{u}/pull/{}", pull.number));
    let source_ref = format!(
        "{}/{}#pr:{}#check:{}",
        repository.owner.login, repository.name, pull.number, run.id
    );
    let title = format!("CI: {} — {conclusion}", run.name);
    let payload = json!({
        "text": text,
        "issue": {
            "number": pull.number,
            "title": format!("Pull request #{}", pull.number),
            "url": pr_url,
            "isPullRequest": true,
        },
        "checkRun": {
            "id": run.id,
            "name": run.name,
            "conclusion": conclusion,
            "headSha": run.head_sha,
            "url": run.html_url,
            "detailsUrl": run.details_url,
            "app": app,
            "appSlug": run.app.as_ref().and_then(|a| a.slug.clone()),
            "pullRequests": run.pull_requests.iter().map(|p| p.number).collect::<Vec<_>>(),
        },
    });
    Ok(Ok(work_item(
        repository,
        pull.number,
        source_ref,
        &title,
        payload,
    )))
}

fn installation_change(
    event: &str,
    action: &str,
    payload: Envelope,
) -> Result<InstallationChange, IntegrationError> {
    let installation = payload
        .installation
        .ok_or_else(|| bad_request(format!("the {event} event has no installation")))?;
    let names = |repos: Vec<RepoName>| repos.into_iter().map(|r| r.full_name).collect::<Vec<_>>();
    Ok(InstallationChange {
        event: event.into(),
        action: action.into(),
        installation_id: installation.id,
        account: installation.account.map(|a| a.login),
        repository_selection: payload
            .repository_selection
            .or(installation.repository_selection),
        repositories: payload.repositories.map(names),
        added: names(payload.repositories_added),
        removed: names(payload.repositories_removed),
    })
}

/// Whether `body` mentions `@handle` (case-insensitive, as a whole name: `@nitejar` is not in
/// `@nitejar-bot` nor in `me@nitejar.dev`).
pub fn mentions(body: &str, handle: &str) -> bool {
    let needle = format!("@{}", handle.to_ascii_lowercase());
    let haystack = body.to_ascii_lowercase();
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    haystack.match_indices(&needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(|c| name_char(c) || c == '@')
            && !after.is_some_and(|c| name_char(c) || c == '[')
    })
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_is_a_whole_name() {
        assert!(mentions("hey @Nitejar, look", "nitejar"));
        assert!(mentions("@nitejar", "nitejar"));
        assert!(mentions("(@nitejar)", "nitejar"));
        assert!(!mentions("hey @nitejar-bot", "nitejar"));
        assert!(!mentions("mail me@nitejar.dev", "nitejar"));
        assert!(!mentions("nitejar without at", "nitejar"));
        assert!(!mentions("@nitejar[bot] said", "nitejar"));
    }
}
