//! Configuration from the environment.
//!
//! Every `NITEJAR_*` variable also answers to the earlier `SLOPBOT_*` name (the `NITEJAR_` one wins
//! when both are set). `DATABASE_URL`, `ENCRYPTION_KEY` and `PORT` keep their plain names.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use ipnet::IpNet;
use nitejar_core::skills::{SkillLimits, SkillsConfig};
use nitejar_core::trust::{TrustMode, TrustPolicy};

use crate::auth::throttle::ThrottlePolicy;

/// Reads `NITEJAR_<name>`, falling back to `SLOPBOT_<name>`. Empty values count as unset.
pub fn var(name: &str) -> Option<String> {
    [format!("NITEJAR_{name}"), format!("SLOPBOT_{name}")]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .filter(|v| !v.trim().is_empty())
}

/// Reads a plain (unprefixed) variable. Empty values count as unset.
pub fn plain(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("NITEJAR_{name} must be a whole number, not `{v}`")),
    }
}

/// Reads a yes/no setting (`1`, `true`, `yes`, `on` / `0`, `false`, `no`, `off`); unset is no.
fn flag(name: &str) -> anyhow::Result<bool> {
    match var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => bail!("NITEJAR_{name} must be 1 or 0, not `{v}`"),
    }
}

/// Where third-party plugins run unless the operator chose for the plugin:
/// `NITEJAR_PLUGIN_EXECUTION`, else isolated where plugins must be trusted before they run
/// (`self_host_guarded`, `saas_locked`) and in the server's process under `self_host_open`.
/// Isolated never falls back: a plugin whose process cannot get the kernel's controls does not
/// start, and its error names the missing control.
fn plugin_execution(mode: TrustMode) -> anyhow::Result<nitejar_core::receipts::ExecutionMode> {
    use nitejar_core::receipts::ExecutionMode;
    Ok(match var("PLUGIN_EXECUTION").as_deref().map(str::trim) {
        None | Some("") => match mode {
            TrustMode::SelfHostOpen => ExecutionMode::InProcess,
            TrustMode::SelfHostGuarded | TrustMode::SaasLocked => ExecutionMode::Isolated,
        },
        Some("in_process") => ExecutionMode::InProcess,
        Some("isolated") => ExecutionMode::Isolated,
        Some(other) => {
            bail!("NITEJAR_PLUGIN_EXECUTION must be `in_process` or `isolated`, not `{other}`")
        }
    })
}

/// How many plugin operations an agent may make in any hour, from
/// `NITEJAR_AGENT_PLUGIN_OPS_PER_HOUR` (1 to 10000; default 20).
fn agent_ops_limit() -> anyhow::Result<nitejar_core::lifecycle::agent_ops::AgentOpsLimit> {
    use nitejar_core::lifecycle::agent_ops::AgentOpsLimit;
    let per_hour: u64 = number(
        "AGENT_PLUGIN_OPS_PER_HOUR",
        u64::from(AgentOpsLimit::default().per_hour),
    )?;
    if !(1..=10_000).contains(&per_hour) {
        bail!("NITEJAR_AGENT_PLUGIN_OPS_PER_HOUR must be between 1 and 10000, not {per_hour}");
    }
    Ok(AgentOpsLimit {
        per_hour: per_hour as u32,
    })
}

/// The default limits of an isolated plugin's process, from `NITEJAR_PLUGIN_MEMORY_MIB` and
/// `NITEJAR_PLUGIN_CPU_SECONDS`, each within what a plugin's process can run under.
fn process_limits() -> anyhow::Result<nitejar_core::loader::isolated::ProcessLimits> {
    use nitejar_core::loader::isolated::ProcessLimits;
    let default = ProcessLimits::default();
    let limits = ProcessLimits {
        memory_mib: number("PLUGIN_MEMORY_MIB", default.memory_mib)?,
        cpu_seconds: number("PLUGIN_CPU_SECONDS", default.cpu_seconds)?,
    };
    for (name, value, range) in [
        (
            "PLUGIN_MEMORY_MIB",
            limits.memory_mib,
            ProcessLimits::MEMORY_MIB,
        ),
        (
            "PLUGIN_CPU_SECONDS",
            limits.cpu_seconds,
            ProcessLimits::CPU_SECONDS,
        ),
    ] {
        if !range.contains(&value) {
            bail!(
                "NITEJAR_{name} must be between {} and {}, not {value}",
                range.start(),
                range.end()
            );
        }
    }
    Ok(limits)
}

/// The plugin trust policy from `NITEJAR_PLUGIN_TRUST_MODE`, `_TRUSTED_KEYS` and `_ALLOWLIST`.
fn trust_policy() -> anyhow::Result<TrustPolicy> {
    let mode = match var("PLUGIN_TRUST_MODE") {
        Some(text) => text.parse::<TrustMode>()?,
        None => TrustMode::default(),
    };
    let keys = match var("PLUGIN_TRUSTED_KEYS") {
        Some(text) => TrustPolicy::parse_keys(&text)?,
        None => Vec::new(),
    };
    let allowlist = match var("PLUGIN_ALLOWLIST") {
        Some(text) => TrustPolicy::parse_allowlist(&text)?,
        None => Vec::new(),
    };
    Ok(TrustPolicy::new(mode)
        .with_keys(keys)
        .with_allowlist(allowlist))
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `NITEJAR_DATA_DIR`: where the database, plugins and logs live (default `./data`).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: a SQLite path or `sqlite:` URL, or a `postgres://` URL
    /// (default `<data_dir>/nitejar.db`).
    pub database_url: String,
    /// `NITEJAR_PLUGINS_DIR` (default `<data_dir>/plugins`).
    pub plugins_dir: PathBuf,
    /// `ENCRYPTION_KEY`: 64 hex characters, 44 base64 characters, or 32 raw characters. When unset the
    /// key is read from (or generated into) `<data_dir>/encryption.key`.
    pub encryption_key: Option<String>,
    /// `NITEJAR_WEBHOOK_MAX_BYTES`: the largest webhook body accepted (default 1 MiB).
    pub webhook_max_bytes: usize,
    /// `NITEJAR_RUN_CONCURRENCY`: runs in parallel at most (default 4).
    pub run_concurrency: usize,
    /// `NITEJAR_RUN_LEASE_MS`: how long a claimed run stays this server's without renewal; a run of
    /// a server that died is claimed again after this (default 30 000).
    pub run_lease: Duration,
    /// `NITEJAR_RUN_DRAIN_MS`: how long a shutdown waits for runs in progress; the rest stay queued
    /// for the next start (default 20 000).
    pub run_drain: Duration,
    /// `NITEJAR_MODEL_BASE_URL`: an OpenAI-compatible endpoint; unset means the offline model.
    pub model_base_url: Option<String>,
    /// `NITEJAR_MODEL_API_KEY`.
    pub model_api_key: Option<String>,
    /// `NITEJAR_MODEL`: the model name for the OpenAI-compatible endpoint.
    pub model: Option<String>,
    /// `NITEJAR_MODEL_TIMEOUT_MS` (default 120 000).
    pub model_timeout: Duration,
    /// `NITEJAR_ADMIN_TOKEN`: the admin credential. When unset, one is generated on first start,
    /// shown once in the log and stored hashed.
    pub admin_token: Option<Secret>,
    /// `NITEJAR_METRICS_TOKEN`: a bearer token that may read `/metrics` and nothing else.
    pub metrics_token: Option<Secret>,
    /// `NITEJAR_PUBLIC_URL`: where operators and providers reach this server (`https://nitejar.example.com`).
    /// Webhook URLs handed to integrations start with it; `https` marks session cookies `Secure`.
    pub public_url: Option<url::Url>,
    /// `NITEJAR_PLUGIN_TRUST_MODE` (default `self_host_guarded`), with `NITEJAR_PLUGIN_TRUSTED_KEYS`
    /// (minisign public keys, comma-separated) and `NITEJAR_PLUGIN_ALLOWLIST` (`id` or
    /// `id@sha256:<digest>`, comma-separated).
    pub trust: TrustPolicy,
    /// `NITEJAR_SAFE_MODE=1`: load built-ins only.
    pub safe_mode: bool,
    /// `NITEJAR_ACCEPT_NEW_ENCRYPTION_KEY=true`: start with an `ENCRYPTION_KEY` other than the one
    /// the database's secrets were written with (the old key is lost); those secrets have to be
    /// entered again. Without it such a key stops the server at start.
    pub accept_new_encryption_key: bool,
    /// `NITEJAR_NPM_REGISTRY` (default https://registry.npmjs.org).
    pub npm_registry: String,
    /// `NITEJAR_NPM_TOKEN`: a bearer token for the registry.
    pub npm_token: Option<String>,
    /// `NITEJAR_PLUGIN_MAX_BYTES`: the largest plugin package, unpacked (default 256 MiB).
    pub plugin_max_bytes: u64,
    /// `NITEJAR_PLUGIN_MAX_FILES`: the most files in a plugin package (default 10 000).
    pub plugin_max_files: u64,
    /// `NITEJAR_PLUGIN_CRASH_THRESHOLD`: failed calls that auto-disable a plugin (default 5) …
    pub crash_threshold: u32,
    /// … within `NITEJAR_PLUGIN_CRASH_WINDOW_MS` (default 300 000).
    pub crash_window: Duration,
    /// `NITEJAR_PLUGIN_EXECUTION`: where third-party plugins' code runs, `in_process` or
    /// `isolated` (a process of its own per plugin); by default isolated unless the trust mode is
    /// `self_host_open`.
    pub plugin_execution: nitejar_core::receipts::ExecutionMode,
    /// `NITEJAR_PLUGIN_MEMORY_MIB` (default 1024) and `NITEJAR_PLUGIN_CPU_SECONDS` (default 3600):
    /// the limits of an isolated plugin's process unless the operator chose others for it.
    pub plugin_process_limits: nitejar_core::loader::isolated::ProcessLimits,
    /// `NITEJAR_AGENT_PLUGIN_OPS_PER_HOUR` (default 20): plugin operations one agent may make
    /// through its tools in any hour.
    pub agent_ops_limit: nitejar_core::lifecycle::agent_ops::AgentOpsLimit,
    /// `NITEJAR_AGENT_EDIT_SOURCE` (default off): whether the operator may grant agents
    /// `plugins.edit_source` at all (never under `saas_locked`).
    pub agent_edit_source: bool,
    /// `NITEJAR_PLUGIN_CRASH_STRIKES`: deaths of the server's process with a plugin's calls
    /// running that disable it at the next boot (default 3) …
    pub crash_strikes: u32,
    /// … within `NITEJAR_PLUGIN_CRASH_STRIKE_WINDOW_MS` (default 3 600 000).
    pub crash_strike_window: Duration,
    /// `NITEJAR_PLUGIN_LOAD_TIMEOUT_MS`: how long loading one plugin may take before it is marked
    /// `error` and boot, reconcile and the other plugins carry on (default 10 000).
    pub load_timeout: Duration,
    /// `NITEJAR_SKILLS_DIRS`: roots of repo skills (`<root>/<dir>/SKILL.md`), separated by `:`, in
    /// order of precedence. Default: `./skills` when that directory exists, else none.
    pub skills_dirs: Vec<PathBuf>,
    /// `NITEJAR_SKILL_MAX_FILE_BYTES`: the largest skill file (default 256 KiB).
    pub skill_max_file_bytes: u64,
    /// `NITEJAR_SKILL_MAX_BYTES`: the largest skill, all its files together (default 1 MiB).
    pub skill_max_bytes: u64,
    /// `NITEJAR_ADMIN_AUTH_MAX_FAILURES` failed credentials (default 10) from one address within
    /// `NITEJAR_ADMIN_AUTH_WINDOW_MS` (default 300 000) lock it out for
    /// `NITEJAR_ADMIN_AUTH_LOCKOUT_MS` (default 60 000), doubling with each further lockout.
    pub auth_throttle: ThrottlePolicy,
    /// `NITEJAR_TRUSTED_PROXIES`: addresses or CIDR ranges of reverse proxies whose
    /// `X-Forwarded-For` names the client (default none: the header is ignored).
    pub trusted_proxies: Vec<IpNet>,
    /// `NITEJAR_EGRESS_ALLOW_PRIVATE`: private CIDR ranges (comma-separated, like
    /// `10.0.0.0/8,fd00::/8`) that host names a plugin declares in `permissions.network` may
    /// resolve into — the operator's internal services. By default a declared name reaches public
    /// addresses only (see `nitejar_core::permissions`).
    pub egress_allow_private: Vec<IpNet>,
}

/// A configured secret: kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The shortest `NITEJAR_ADMIN_TOKEN` accepted: it is the only thing between the network and the
/// admin API.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

fn public_url() -> anyhow::Result<Option<url::Url>> {
    let Some(text) = var("PUBLIC_URL") else {
        return Ok(None);
    };
    let parsed = url::Url::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!("NITEJAR_PUBLIC_URL `{text}` is not a URL ({e}); write it like https://nitejar.example.com")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("NITEJAR_PUBLIC_URL must be an http(s) URL with a host, like https://nitejar.example.com, not `{text}`");
    }
    Ok(Some(parsed))
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = plain("DATABASE_URL")
            .unwrap_or_else(|| data_dir.join("nitejar.db").to_string_lossy().into_owned());
        let plugins_dir = var("PLUGINS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("plugins"));
        let model_base_url = var("MODEL_BASE_URL");
        let model = var("MODEL");
        if model_base_url.is_some() && model.is_none() {
            bail!("NITEJAR_MODEL_BASE_URL is set but NITEJAR_MODEL is not; name the model to use");
        }
        let trust = trust_policy()?;
        Ok(Config {
            data_dir,
            database_url,
            plugins_dir,
            encryption_key: plain("ENCRYPTION_KEY"),
            webhook_max_bytes: number("WEBHOOK_MAX_BYTES", 1024 * 1024)?,
            run_concurrency: number("RUN_CONCURRENCY", 4)?,
            run_lease: Duration::from_millis(number("RUN_LEASE_MS", 30_000u64)?.max(300)),
            run_drain: Duration::from_millis(number("RUN_DRAIN_MS", 20_000)?),
            model_base_url,
            model_api_key: var("MODEL_API_KEY"),
            model,
            model_timeout: Duration::from_millis(number("MODEL_TIMEOUT_MS", 120_000)?),
            admin_token: admin_token()?,
            metrics_token: var("METRICS_TOKEN").map(Secret),
            public_url: public_url()?,
            plugin_execution: plugin_execution(trust.mode())?,
            plugin_process_limits: process_limits()?,
            agent_ops_limit: agent_ops_limit()?,
            agent_edit_source: flag("AGENT_EDIT_SOURCE")?,
            trust,
            safe_mode: flag("SAFE_MODE")?,
            accept_new_encryption_key: flag("ACCEPT_NEW_ENCRYPTION_KEY")?,
            npm_registry: var("NPM_REGISTRY")
                .unwrap_or_else(|| nitejar_core::install::npm::DEFAULT_REGISTRY.to_string()),
            npm_token: var("NPM_TOKEN"),
            plugin_max_bytes: number("PLUGIN_MAX_BYTES", 256 * 1024 * 1024)?,
            plugin_max_files: number("PLUGIN_MAX_FILES", 10_000)?,
            crash_threshold: number("PLUGIN_CRASH_THRESHOLD", 5)?.max(1),
            crash_window: Duration::from_millis(number("PLUGIN_CRASH_WINDOW_MS", 300_000)?),
            crash_strikes: number("PLUGIN_CRASH_STRIKES", 3)?.max(1),
            crash_strike_window: Duration::from_millis(number(
                "PLUGIN_CRASH_STRIKE_WINDOW_MS",
                3_600_000,
            )?),
            load_timeout: Duration::from_millis(number("PLUGIN_LOAD_TIMEOUT_MS", 10_000)?.max(1)),
            skills_dirs: skills_dirs(),
            skill_max_file_bytes: number(
                "SKILL_MAX_FILE_BYTES",
                SkillLimits::default().max_file_bytes,
            )?,
            skill_max_bytes: number("SKILL_MAX_BYTES", SkillLimits::default().max_skill_bytes)?,
            auth_throttle: auth_throttle()?,
            trusted_proxies: match var("TRUSTED_PROXIES") {
                Some(text) => crate::auth::parse_trusted_proxies(&text)
                    .map_err(|e| anyhow::anyhow!("NITEJAR_TRUSTED_PROXIES: {e}"))?,
                None => Vec::new(),
            },
            egress_allow_private: match var("EGRESS_ALLOW_PRIVATE") {
                Some(text) => parse_private_networks(&text)?,
                None => Vec::new(),
            },
        })
    }

    /// The skill service's settings.
    pub fn skills_config(&self) -> SkillsConfig {
        SkillsConfig {
            roots: self.skills_dirs.clone(),
            limits: SkillLimits {
                max_file_bytes: self.skill_max_file_bytes,
                max_skill_bytes: self.skill_max_bytes,
                ..SkillLimits::default()
            },
        }
    }

    /// The base URL (no trailing slash) webhook URLs start with, when `NITEJAR_PUBLIC_URL` is set.
    pub fn public_base_url(&self) -> Option<String> {
        let url = self.public_url.as_ref()?;
        let base = url.as_str().trim_end_matches('/');
        Some(base.to_owned())
    }

    /// The trust mode.
    pub fn trust_mode(&self) -> TrustMode {
        self.trust.mode()
    }

    /// Creates the data and plugin directories.
    /// Creates the data and plugin directories. The data directory holds the database, the
    /// encryption key and every plugin's data: it is the owner's alone (`0700`), narrowed if an
    /// earlier start or an operator left it open to others.
    pub fn prepare_dirs(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| not_ours(&self.data_dir, e))
            .with_context(|| format!("could not create {}", self.data_dir.display()))?;
        // A directory the server cannot write (a host directory mounted into the container that
        // belongs to another user) is named now, with the fix, not at the first write.
        let probe = self.data_dir.join(".nitejar-write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| not_ours(&self.data_dir, e))
            .with_context(|| format!("could not write in {}", self.data_dir.display()))?;
        std::fs::create_dir_all(&self.plugins_dir)
            .map_err(|e| not_ours(&self.plugins_dir, e))
            .with_context(|| format!("could not create {}", self.plugins_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let dir = &self.data_dir;
            let mode = std::fs::metadata(dir)
                .with_context(|| format!("could not read {}", dir.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("could not make {} private (0700)", dir.display()))?;
                tracing::warn!(
                    "the data directory {} was open to other users (mode {:o}); narrowed to 700",
                    dir.display(),
                    mode & 0o777
                );
            }
        }
        Ok(())
    }
}

/// `e`, with the way out when it is a permission problem: which user the server runs as, and what
/// to do about a directory owned by another.
fn not_ours(dir: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        return e.into();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(me) = std::fs::metadata("/proc/self") {
            let owner = std::fs::metadata(dir)
                .map(|m| format!(" (it belongs to uid {})", m.uid()))
                .unwrap_or_default();
            return anyhow::anyhow!(
                "{e}: this server runs as uid {uid} and cannot write in {}{owner}; give the \
                 directory to that user (`chown -R {uid} <dir>` on the host, for a directory \
                 mounted into the container), or use a volume",
                dir.display(),
                uid = me.uid()
            );
        }
    }
    e.into()
}

/// Parses `NITEJAR_EGRESS_ALLOW_PRIVATE`: CIDR ranges (a bare address is a range of one),
/// separated by commas.
fn parse_private_networks(text: &str) -> anyhow::Result<Vec<IpNet>> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "NITEJAR_EGRESS_ALLOW_PRIVATE: `{entry}` is not a CIDR range; write ranges \
                         like 10.0.0.0/8 or fd00::/8, separated by commas"
                    )
                })
        })
        .collect()
}

fn auth_throttle() -> anyhow::Result<ThrottlePolicy> {
    let default = ThrottlePolicy::default();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let policy = ThrottlePolicy {
        max_failures: number("ADMIN_AUTH_MAX_FAILURES", default.max_failures)?,
        window: Duration::from_millis(number("ADMIN_AUTH_WINDOW_MS", millis(default.window))?),
        lockout: Duration::from_millis(number("ADMIN_AUTH_LOCKOUT_MS", millis(default.lockout))?),
    };
    if policy.max_failures == 0 || policy.window.is_zero() || policy.lockout.is_zero() {
        bail!(
            "NITEJAR_ADMIN_AUTH_MAX_FAILURES, _WINDOW_MS and _LOCKOUT_MS must be more than 0 \
             (failed admin credentials are always counted)"
        );
    }
    Ok(policy)
}

fn admin_token() -> anyhow::Result<Option<Secret>> {
    match var("ADMIN_TOKEN") {
        None => Ok(None),
        Some(token) if token.trim().len() < MIN_ADMIN_TOKEN_LEN => bail!(
            "NITEJAR_ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LEN} characters; use a long random \
             value (e.g. `openssl rand -hex 32`), or unset it to have one generated"
        ),
        Some(token) => Ok(Some(Secret(token.trim().to_owned()))),
    }
}

/// `NITEJAR_LOG_FORMAT`: read before the rest of the configuration, because logging starts first.
pub fn log_json() -> anyhow::Result<bool> {
    match var("LOG_FORMAT").as_deref().map(str::trim) {
        None | Some("text") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => bail!("NITEJAR_LOG_FORMAT must be text or json, not `{other}`"),
    }
}

/// `NITEJAR_SKILLS_DIRS` split on `:` (empty entries skipped), or `./skills` when it exists.
fn skills_dirs() -> Vec<PathBuf> {
    match var("SKILLS_DIRS") {
        Some(value) => std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => {
            let default = PathBuf::from("./skills");
            if default.is_dir() {
                vec![default]
            } else {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_networks_are_cidr_ranges_separated_by_commas() {
        let nets = parse_private_networks(" 10.0.0.0/8, fd00::/8,,192.168.1.7 ").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8", "192.168.1.7/32"]);

        let err = parse_private_networks("10.0.0.0/8, 10.0.0.0/33").unwrap_err();
        assert_eq!(
            err.to_string(),
            "NITEJAR_EGRESS_ALLOW_PRIVATE: `10.0.0.0/33` is not a CIDR range; write ranges like \
             10.0.0.0/8 or fd00::/8, separated by commas"
        );
        assert!(parse_private_networks("internal.example.com")
            .unwrap_err()
            .to_string()
            .contains("`internal.example.com`"));
    }
}
