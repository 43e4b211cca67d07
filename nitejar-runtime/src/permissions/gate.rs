//! [`PermissionGate`]: the host services of every plugin of a runtime, behind the permission checks.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nitejar_sdk::host::{HttpRequest, HttpResponse, LogLevel, ProcessOutput, ProcessRequest};
use nitejar_sdk::HostError;
use serde_json::{json, Value};

use super::egress::{EgressPolicy, EgressRefusal};
use super::files::{self, Access, Refusal};
use super::net::{redacted_url, HttpClient, RedirectHop};
use super::{secret_env_var, Grant, Judgement, NetworkRule, Scope};
use crate::host::{CallScope, HostServices};
use crate::plugin_meta::PluginMeta;
use nitejar_store::receipts::{Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};

/// Where secret values come from.
pub trait SecretSource: Send + Sync + 'static {
    /// The value of `name` for `plugin`, if it is set. Only called for declared names.
    fn secret(&self, plugin: &PluginMeta, name: &str) -> Option<String>;
}

/// Secrets from the environment: `NITEJAR_SECRET_<NAME>` (see [`secret_env_var`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvSecrets;

impl SecretSource for EnvSecrets {
    fn secret(&self, _plugin: &PluginMeta, name: &str) -> Option<String> {
        std::env::var(secret_env_var(name)).ok()
    }
}

/// Secrets from a map (tests, embedding hosts, a server that read them from its database).
#[derive(Clone, Debug, Default)]
pub struct MapSecrets(BTreeMap<String, String>);

impl MapSecrets {
    /// Secrets by name.
    pub fn new<I, K, V>(secrets: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        MapSecrets(
            secrets
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl SecretSource for MapSecrets {
    /// By the name, or else by any name that reads the same environment variable (one secret,
    /// whatever its spelling; see [`secret_env_var`]).
    fn secret(&self, _plugin: &PluginMeta, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| {
            let wanted = secret_env_var(name);
            self.0
                .iter()
                .find(|(k, _)| secret_env_var(k) == wanted)
                .map(|(_, v)| v.clone())
        })
    }
}

type GrantKey = (Arc<str>, Arc<str>);

/// The host services of a runtime, each call checked against the calling plugin's [`Grant`].
/// See the [module docs](super) for the rules.
///
/// ```no_run
/// use std::sync::Arc;
/// use nitejar_runtime::permissions::{Grant, PermissionGate, PermissionSet};
/// use nitejar_store::receipts::MemorySink;
/// use nitejar_runtime::registry::{PluginMeta, PluginOrigin};
/// use nitejar_runtime::runtime::Runtime;
///
/// let sink = MemorySink::new();
/// let gate = Arc::new(PermissionGate::new("./data", sink.clone()));
/// let meta = PluginMeta::new("com.acme.jira", "1.0.0", PluginOrigin::ThirdParty);
/// gate.grant(&meta, Grant::new(PermissionSet::new().network(["*.atlassian.net"]), "./data/plugins/com.acme.jira/versions/1.0.0"));
/// let runtime = Runtime::builder().services(gate.clone()).sink(sink).build();
/// ```
pub struct PermissionGate {
    data_dir: PathBuf,
    grants: RwLock<HashMap<GrantKey, Arc<Grant>>>,
    /// Secrets the operator stored, per plugin id, by environment variable (their identity);
    /// read before `secrets`.
    stored: RwLock<HashMap<String, Arc<BTreeMap<String, String>>>>,
    secrets: Arc<dyn SecretSource>,
    sink: Arc<dyn ReceiptSink>,
    http: HttpClient,
}

impl PermissionGate {
    /// A gate with no grants, writing denial receipts to `sink`. `data_dir` is `$NITEJAR_DATA_DIR`:
    /// plugin data directories are `<data_dir>/plugins/<id>/data/`. Secrets come from the
    /// environment until [`PermissionGate::with_secrets`].
    pub fn new(data_dir: impl Into<PathBuf>, sink: Arc<dyn ReceiptSink>) -> Self {
        PermissionGate {
            data_dir: data_dir.into(),
            grants: RwLock::new(HashMap::new()),
            stored: RwLock::new(HashMap::new()),
            secrets: Arc::new(EnvSecrets),
            sink,
            http: HttpClient::new(EgressPolicy::default()),
        }
    }

    /// Lets declared host names resolve into these private ranges too (the operator's internal
    /// services). Without it a declared name reaches public addresses only; see the
    /// [module docs](super). The server reads the ranges from `NITEJAR_EGRESS_ALLOW_PRIVATE`.
    ///
    /// ```
    /// use nitejar_runtime::permissions::PermissionGate;
    /// use nitejar_store::receipts::MemorySink;
    ///
    /// let gate = PermissionGate::new("./data", MemorySink::new())
    ///     .with_private_networks(["10.20.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()]);
    /// ```
    pub fn with_private_networks(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.http = HttpClient::new(EgressPolicy::new(networks.into_iter().collect()));
        self
    }

    /// Reads secret values from `source` (after the values stored for the plugin, see
    /// [`PermissionGate::set_stored_secrets`]).
    pub fn with_secrets(mut self, source: Arc<dyn SecretSource>) -> Self {
        self.secrets = source;
        self
    }

    /// Sets the secret values the operator stored for a plugin (every version of it), by
    /// environment variable ([`secret_env_var`]): they are read first, `with_secrets`' source (the
    /// environment by default) only for a secret with no stored value. Replaces what was set before.
    pub fn set_stored_secrets(&self, plugin_id: &str, secrets: BTreeMap<String, String>) {
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        if secrets.is_empty() {
            stored.remove(plugin_id);
        } else {
            stored.insert(plugin_id.to_string(), Arc::new(secrets));
        }
    }

    /// The stored secret values set for a plugin (to put them back when a change is undone).
    pub fn stored_secrets(&self, plugin_id: &str) -> BTreeMap<String, String> {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        stored
            .get(plugin_id)
            .map(|s| (**s).clone())
            .unwrap_or_default()
    }

    /// Whether the fallback source (the environment, unless [`PermissionGate::with_secrets`] set
    /// another) has a value for a declared secret of `plugin`. The value is not returned.
    pub fn fallback_secret_is_set(&self, plugin: &PluginMeta, name: &str) -> bool {
        self.secrets.secret(plugin, name).is_some()
    }

    fn stored_secret(&self, plugin_id: &str, env_var: &str) -> Option<String> {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        stored.get(plugin_id)?.get(env_var).cloned()
    }

    /// Grants (or replaces the grant of) a plugin version.
    pub fn grant(&self, plugin: &PluginMeta, grant: Grant) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        grants.insert(key(plugin), Arc::new(grant));
    }

    /// Withdraws a plugin version's grant: every host call of it is denied from now on.
    pub fn revoke(&self, plugin: &PluginMeta) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        grants.remove(&key(plugin));
    }

    /// The plugin's own data directory.
    pub fn plugin_data_dir(&self, plugin_id: &str) -> PathBuf {
        self.data_dir.join("plugins").join(plugin_id).join("data")
    }

    fn grant_of(&self, plugin: &PluginMeta) -> Option<Arc<Grant>> {
        let grants = self.grants.read().unwrap_or_else(|p| p.into_inner());
        grants.get(&key(plugin)).cloned()
    }

    /// Refuses a call: writes the receipt, returns the plugin's error.
    fn deny(
        &self,
        plugin: &PluginMeta,
        scope: Scope,
        permission: String,
        judgement: Judgement,
        reason: String,
        extra: Value,
    ) -> HostError {
        let call = CallScope::current();
        let mut detail = json!({
            "permission": permission,
            "scope": scope.as_str(),
            "enforcement": "host_boundary",
            "declared": judgement.declared,
            "acknowledged": judgement.acknowledged,
            "reason": reason,
        });
        if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            d.extend(extra);
        }
        let mut receipt = Receipt::new(
            plugin.id.clone(),
            Some(plugin.version.clone()),
            ReceiptKind::PermissionDenied,
            ReceiptStatus::Blocked,
        )
        .with_execution_mode(plugin.execution)
        .with_detail(detail);
        if let Some(call) = &call {
            receipt.hook = call.hook();
            receipt.work_item_id = call.work_item_id().cloned();
            receipt.job_id = call.job_id().cloned();
        }
        tracing::warn!(
            plugin.id = %plugin.id,
            plugin.version = %plugin.version,
            permission = %permission,
            "host call denied: {reason}"
        );
        wait(self.sink.submit(vec![receipt]));
        HostError::Denied { permission, reason }
    }

    fn no_grant(&self, plugin: &PluginMeta, scope: Scope, permission: String) -> HostError {
        self.deny(
            plugin,
            scope,
            permission,
            Judgement {
                declared: false,
                acknowledged: false,
                allowed: false,
            },
            "this plugin version has no permission grant".into(),
            Value::Null,
        )
    }

    /// Opens a file for a plugin: the request located under an allowed root, the grant judged,
    /// then the file opened beneath that root (see [`files`]).
    fn open_file(
        &self,
        plugin: &PluginMeta,
        path: &str,
        access: Access,
    ) -> Result<std::fs::File, HostError> {
        let scope = match access {
            Access::Read => Scope::FilesystemRead,
            Access::Write => Scope::FilesystemWrite,
        };
        let permission = || format!("{}:{path}", access.prefix());
        let Some(grant) = self.grant_of(plugin) else {
            return Err(self.no_grant(plugin, scope, permission()));
        };
        let refuse = |refusal: Refusal| match refusal {
            Refusal::Denied { reason } => self.deny(
                plugin,
                scope,
                permission(),
                grant.judge(None),
                reason,
                json!({ "path": path }),
            ),
            Refusal::Failed(e) => e,
        };
        let data_dir = self.plugin_data_dir(&plugin.id);
        let located = files::locate(&grant, &data_dir, path, access).map_err(refuse)?;
        let judgement = match &located.declared_entry {
            Some(entry) => grant.judge(Some(entry.clone())),
            None => Judgement {
                declared: true,
                acknowledged: true,
                allowed: true,
            },
        };
        if !judgement.allowed {
            return Err(self.deny(
                plugin,
                scope,
                permission(),
                judgement,
                "declared but not acknowledged by the operator".into(),
                json!({ "path": path }),
            ));
        }
        files::open(&located, access).map_err(refuse)
    }
}

fn key(plugin: &PluginMeta) -> GrantKey {
    (plugin.id.clone(), plugin.version.clone())
}

/// Polls a future to completion on this thread. Host services run on blocking threads, where this is
/// the way to hand a receipt to an async sink without dropping it; the wait lasts only as long as
/// the sink applies back-pressure.
fn wait<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

impl HostServices for PermissionGate {
    fn http(
        &self,
        plugin: &PluginMeta,
        deadline: Option<Instant>,
        request: &HttpRequest,
    ) -> Result<HttpResponse, HostError> {
        let grant = self.grant_of(plugin);
        let rule_of = |hop: &RedirectHop<'_>| -> Option<NetworkRule> {
            let grant = grant.as_ref()?;
            grant
                .permissions()
                .network_rule(hop.host, hop.port)
                .cloned()
        };
        let permission = |hop: &RedirectHop<'_>| format!("network:{}:{}", hop.host, hop.port);
        // What a network receipt shows of the request: never more of a URL than `redacted_url`.
        let detail = |hop: &RedirectHop<'_>| {
            let mut detail = json!({ "method": request.method, "url": redacted_url(hop.url) });
            if let (Some(from), Some(o)) = (hop.redirected_from, detail.as_object_mut()) {
                o.insert("redirected_from".into(), json!(redacted_url(from)));
            }
            detail
        };
        let check = |hop: &RedirectHop<'_>| -> Result<(), HostError> {
            let Some(grant) = &grant else {
                return Err(self.no_grant(plugin, Scope::Network, permission(hop)));
            };
            let rule = rule_of(hop);
            let judgement = grant.judge(rule.as_ref().map(|r| format!("network:{}", r.declared())));
            if judgement.allowed {
                return Ok(());
            }
            let reason = match (rule, hop.redirected_from) {
                (Some(_), _) => "declared but not acknowledged by the operator".to_string(),
                (None, Some(from)) => format!(
                    "a redirect from {} leads to {}:{}, which permissions.network does not declare",
                    redacted_url(from),
                    hop.host,
                    hop.port
                ),
                (None, None) => format!(
                    "{}:{} is not declared in permissions.network",
                    hop.host, hop.port
                ),
            };
            Err(self.deny(
                plugin,
                Scope::Network,
                permission(hop),
                judgement,
                reason,
                detail(hop),
            ))
        };
        // The hop is declared (`check` let it through), but its name resolved to an address a
        // declared name may not reach.
        let refused = |hop: &RedirectHop<'_>, refusal: &EgressRefusal| -> HostError {
            let declared = rule_of(hop).map(|r| format!("network:{}", r.declared()));
            let judgement = match &grant {
                Some(grant) => grant.judge(declared),
                None => Judgement {
                    declared: false,
                    acknowledged: false,
                    allowed: false,
                },
            };
            let reason = match hop.redirected_from {
                Some(from) => format!("after a redirect from {}: {refusal}", redacted_url(from)),
                None => refusal.to_string(),
            };
            let mut extra = detail(hop);
            if let Some(o) = extra.as_object_mut() {
                let addresses: Vec<String> =
                    refusal.addresses.iter().map(ToString::to_string).collect();
                o.insert("addresses".into(), json!(addresses));
            }
            self.deny(
                plugin,
                Scope::Network,
                permission(hop),
                judgement,
                reason,
                extra,
            )
        };
        self.http.fetch(request, deadline, check, refused)
    }

    fn secret(&self, plugin: &PluginMeta, name: &str) -> Result<String, HostError> {
        let permission = format!("secret:{name}");
        let Some(grant) = self.grant_of(plugin) else {
            return Err(self.no_grant(plugin, Scope::Secrets, permission));
        };
        // Judged and read under the declared spelling: the one the operator consented to.
        let declared = grant.permissions().declared_secret(name).map(str::to_owned);
        let judgement = grant.judge(declared.as_ref().map(|d| format!("secret:{d}")));
        if !judgement.allowed {
            let reason = if judgement.declared {
                "declared but not acknowledged by the operator".to_string()
            } else {
                format!("secret `{name}` is not declared in permissions.secrets")
            };
            return Err(self.deny(
                plugin,
                Scope::Secrets,
                permission,
                judgement,
                reason,
                Value::Null,
            ));
        }
        let name = declared.as_deref().unwrap_or(name);
        let var = secret_env_var(name);
        if let Some(value) = self.stored_secret(&plugin.id, &var) {
            return Ok(value);
        }
        self.secrets.secret(plugin, name).ok_or_else(|| {
            HostError::Failed(format!(
                "secret `{name}` is not set: the operator sets it on the plugin's settings (admin, API or `nitejar plugin config {} set --secret {name}`), or in the environment variable {var}",
                plugin.id
            ))
        })
    }

    fn read_file(&self, plugin: &PluginMeta, path: &str) -> Result<Vec<u8>, HostError> {
        let mut contents = Vec::new();
        self.open_file(plugin, path, Access::Read)?
            .read_to_end(&mut contents)
            .map_err(|e| HostError::Failed(format!("read {path}: {e}")))?;
        Ok(contents)
    }

    fn write_file(
        &self,
        plugin: &PluginMeta,
        path: &str,
        contents: &[u8],
    ) -> Result<(), HostError> {
        self.open_file(plugin, path, Access::Write)?
            .write_all(contents)
            .map_err(|e| HostError::Failed(format!("write {path}: {e}")))
    }

    fn spawn_process(
        &self,
        plugin: &PluginMeta,
        deadline: Option<Instant>,
        request: &ProcessRequest,
    ) -> Result<ProcessOutput, HostError> {
        let permission = "process.spawn".to_string();
        let Some(grant) = self.grant_of(plugin) else {
            return Err(self.no_grant(plugin, Scope::AllowProcessSpawn, permission));
        };
        let judgement = grant.judge(
            grant
                .permissions()
                .declares_process_spawn()
                .then(|| permission.clone()),
        );
        if !judgement.allowed {
            let reason = if judgement.declared {
                "declared but not acknowledged by the operator".to_string()
            } else {
                "permissions.allowProcessSpawn is not set".to_string()
            };
            return Err(self.deny(
                plugin,
                Scope::AllowProcessSpawn,
                permission,
                judgement,
                reason,
                json!({ "program": request.program }),
            ));
        }
        let data_dir = self.plugin_data_dir(&plugin.id);
        run_process(request, deadline, &data_dir)
    }

    fn receipt(&self, receipt: Receipt) {
        wait(self.sink.submit(vec![receipt]));
    }

    fn log(&self, plugin: &PluginMeta, level: LogLevel, message: &str) {
        crate::host::NoServices.log(plugin, level, message);
        // And to the plugin's own log file, which `nitejar plugin logs <id>` shows.
        let level = match level {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        };
        crate::plugin_logs::append(
            &self.data_dir.join("logs").join("plugins"),
            &plugin.id,
            Some(&plugin.version),
            level,
            message,
        );
    }
}

fn run_process(
    request: &ProcessRequest,
    deadline: Option<Instant>,
    data_dir: &std::path::Path,
) -> Result<ProcessOutput, HostError> {
    let limit = request
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let until = match (limit, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let cwd = match &request.cwd {
        Some(dir) => PathBuf::from(dir),
        None => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                HostError::Failed(format!("could not create the plugin data directory: {e}"))
            })?;
            data_dir.to_path_buf()
        }
    };
    let mut command = Command::new(&request.program);
    command
        .args(&request.args)
        .env_clear()
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(&request.env);
    let mut child = command
        .spawn()
        .map_err(|e| HostError::Failed(format!("could not start `{}`: {e}", request.program)))?;
    let stdin = child.stdin.take();
    let input = request.stdin.clone();
    let feeder = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(HostError::Failed(format!("waiting for the process: {e}"))),
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostError::Timeout);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = feeder.join();
    Ok(ProcessOutput::new(status.code())
        .with_stdout(stdout.join().unwrap_or_default())
        .with_stderr(stderr.join().unwrap_or_default()))
}
