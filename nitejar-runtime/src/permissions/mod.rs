//! The permission gate: host services checked against what a plugin declared.
//!
//! Plugins run in-process. What is enforced is enforced **at the host boundary** only: the
//! [`Host`](nitejar_sdk::Host) services a plugin calls. [`PermissionGate`] implements
//! [`HostServices`](crate::host::HostServices) for every plugin of a runtime; each plugin version
//! is registered with a [`Grant`] (its declared [`PermissionSet`], the operator's acknowledgements,
//! its package directory). A call outside the grant returns
//! [`HostError::Denied`](nitejar_sdk::HostError::Denied) to the plugin and writes a
//! `permission_denied` / `blocked` receipt whose detail says what was asked (`permission`), under
//! which manifest field (`scope`), where it is enforced (`enforcement: "host_boundary"`), and
//! whether it was `declared` and `acknowledged`.
//!
//! # Rules
//!
//! - **network** (`permissions.network`), for requests through the host HTTP service: entries are
//!   `host`, `*.host` (any subdomain, not the host itself), `host:port`, `[v6]:port`. Without a
//!   port an entry allows the default ports, 80 and 443. Host names compare case-insensitively;
//!   addresses compare in the spelling the `url` crate normalises a URL to (`http://2130706433/`
//!   is `127.0.0.1`), declared entries too. Every redirect is followed by the host and checked
//!   again before it is requested; credentials (`authorization`, `cookie`) are dropped when a
//!   redirect changes host.
//!
//!   A declared host **name** reaches **public addresses only**: the host resolves it itself and
//!   refuses it — a denial like any other, with the addresses in the receipt — when any address
//!   it resolves to is loopback, private, link-local (cloud metadata), unique-local, CGNAT,
//!   multicast, reserved or another non-public range, or an IPv6 form of one. The addresses
//!   checked are the ones connected to, and each redirect hop is resolved again. The exceptions:
//!   an IP address declared literally is reachable by an IP-literal URL; `localhost` and
//!   `*.localhost` mean the loopback addresses (never DNS); and private ranges the operator lists
//!   ([`PermissionGate::with_private_networks`], `NITEJAR_EGRESS_ALLOW_PRIVATE` in the server) are
//!   reachable by declared names. The host client uses no proxy from the environment. See
//!   `egress.rs` for the details.
//!
//!   Receipts show URLs without user name, password, query or fragment.
//! - **secrets** (`permissions.secrets`): only declared names. A value the operator stored for the
//!   plugin ([`PermissionGate::set_stored_secrets`]; the lifecycle keeps them in step with the
//!   database) is read first; otherwise it comes from a [`SecretSource`]; the default,
//!   [`EnvSecrets`], reads `NITEJAR_SECRET_<NAME>` (the name upper
//!   cased, every character other than a letter or digit replaced by `_`). That variable is the
//!   secret's identity: two spellings that read the same variable (`api.key`, `API_KEY`) are one
//!   secret — a manifest may not declare both, and a request under either spelling is judged
//!   against the one declaration. The consent screen shows the variable each name reads.
//! - **files** (`permissions.filesystemRead` / `filesystemWrite`): declared paths are absolute or
//!   relative to the package directory, and allow themselves and everything below. A request path
//!   is absolute, or relative: a relative path whose first component is a declared
//!   package-relative entry resolves in the package; any other relative path resolves in the
//!   plugin's own data directory `<data_dir>/plugins/<id>/data/`, which is always readable and
//!   writable. `..` is refused. The request is then opened relative to a handle of the allowed
//!   root it falls under (the longest one), with the kernel resolving it beneath that root:
//!   `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`. A symbolic link that stays
//!   beneath the root is followed; one that leads out of it, dangling or not, is refused by the
//!   kernel, and so is a directory swapped for such a link while the call runs (there is no
//!   check-then-open by name). Missing parent directories of a write are created one at a time
//!   beneath the root. Where `openat2` is unavailable (Linux before 5.6, a seccomp profile that
//!   refuses it) the path is opened one component at a time with `O_NOFOLLOW` instead, and every
//!   symbolic link below the root is refused; which mode applies is logged at the first file call.
//!   A refusal by the kernel is a denial with a receipt. This covers the host file services only:
//!   a plugin's own `std::fs` calls run in the server process and are not checked.
//! - **processes** (`permissions.allowProcessSpawn`): all or nothing. The child gets a cleared
//!   environment (`PATH` plus what the request sets), the plugin's data directory as its default
//!   working directory, and the call's deadline.
//!
//! None of this covers what plugin code does without the host services: a plugin that opens its
//! own sockets is not checked (plugins run in-process; there is no kernel enforcement yet).
//!
//! Acknowledgement strings, as the operator grants them: `network:<entry>`, `secret:<NAME>`,
//! `fs.read:<entry>`, `fs.write:<entry>`, `process.spawn` — one per declared entry. When a grant
//! requires acknowledgement (guarded trust mode), a declared but unacknowledged permission is
//! denied too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod egress;
mod files;
mod gate;
mod net;

pub use gate::{EnvSecrets, MapSecrets, PermissionGate, SecretSource};

/// What a plugin declared in `permissions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionSet {
    network: Vec<NetworkRule>,
    secrets: BTreeSet<String>,
    filesystem_read: Vec<String>,
    filesystem_write: Vec<String>,
    allow_process_spawn: bool,
}

impl PermissionSet {
    /// Nothing declared.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `permissions.network` entries (see the module docs for the forms). An entry that does
    /// not parse allows nothing.
    pub fn network<I, S>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.network
            .extend(entries.into_iter().map(|e| NetworkRule::parse(e.as_ref())));
        self
    }

    /// Adds `permissions.secrets` names.
    pub fn secrets<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secrets.extend(names.into_iter().map(Into::into));
        self
    }

    /// Adds `permissions.filesystemRead` paths.
    pub fn filesystem_read<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filesystem_read
            .extend(paths.into_iter().map(Into::into));
        self
    }

    /// Adds `permissions.filesystemWrite` paths.
    pub fn filesystem_write<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filesystem_write
            .extend(paths.into_iter().map(Into::into));
        self
    }

    /// Sets `permissions.allowProcessSpawn`.
    pub fn allow_process_spawn(mut self, allow: bool) -> Self {
        self.allow_process_spawn = allow;
        self
    }

    /// The declared network rule that allows `host:port`, if any.
    pub fn network_rule(&self, host: &str, port: u16) -> Option<&NetworkRule> {
        self.network.iter().find(|r| r.allows(host, port))
    }

    /// Whether the secret name is declared.
    pub fn declares_secret(&self, name: &str) -> bool {
        self.declared_secret(name).is_some()
    }

    /// The declared name that reads the same secret as `name`, if any. Secrets are told apart by
    /// what is read — the environment variable [`secret_env_var`] names — not by spelling:
    /// `api.key`, `API_KEY` and `api-key` are one secret, and asking for it under any of these
    /// spellings is judged against the one declaration (whose acknowledgement is the one that
    /// counts).
    pub fn declared_secret(&self, name: &str) -> Option<&str> {
        if let Some(exact) = self.secrets.get(name) {
            return Some(exact);
        }
        let wanted = secret_env_var(name);
        self.secrets
            .iter()
            .find(|s| secret_env_var(s) == wanted)
            .map(String::as_str)
    }

    /// Whether process spawning is declared.
    pub fn declares_process_spawn(&self) -> bool {
        self.allow_process_spawn
    }
}

impl From<&nitejar_sdk::manifest::Permissions> for PermissionSet {
    fn from(p: &nitejar_sdk::manifest::Permissions) -> Self {
        PermissionSet::new()
            .network(&p.network)
            .secrets(p.secrets.iter().cloned())
            .filesystem_read(p.filesystem_read.iter().cloned())
            .filesystem_write(p.filesystem_write.iter().cloned())
            .allow_process_spawn(p.allow_process_spawn)
    }
}

/// One `permissions.network` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRule {
    declared: String,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`.
    Subdomains(String),
    Invalid,
}

impl NetworkRule {
    /// Reads an entry: `host`, `*.host`, `host:port`, `[v6]` or `[v6]:port`.
    pub fn parse(entry: &str) -> NetworkRule {
        let declared = entry.to_string();
        let invalid = || NetworkRule {
            declared: declared.clone(),
            host: HostPattern::Invalid,
            port: None,
        };
        let text = entry.trim().to_ascii_lowercase();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return invalid();
            };
            let host = format!("[{}]", &rest[..end]);
            match &rest[end + 1..] {
                "" => (host, None),
                p => match p.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
                    Some(port) => (host, Some(port)),
                    None => return invalid(),
                },
            }
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => match p.parse::<u16>() {
                    Ok(port) => (h.to_string(), Some(port)),
                    Err(_) => return invalid(),
                },
                None => (text.clone(), None),
            }
        };
        if host.is_empty() || host.contains('/') {
            return invalid();
        }
        // Hosts in the spelling the `url` crate gives a request's host, so that both sides of
        // the comparison agree (`[0:0:0:0:0:0:0:1]` is `[::1]`, an IDN is its punycode).
        let host = match host.strip_prefix("*.") {
            Some(suffix) => match url::Host::parse(suffix) {
                Ok(url::Host::Domain(domain)) => HostPattern::Subdomains(format!(".{domain}")),
                _ => return invalid(),
            },
            None => match url::Host::parse(&host) {
                Ok(parsed) => HostPattern::Exact(parsed.to_string()),
                Err(_) => return invalid(),
            },
        };
        NetworkRule {
            declared,
            host,
            port,
        }
    }

    /// The entry as declared.
    pub fn declared(&self) -> &str {
        &self.declared
    }

    /// Whether the entry allows a request to `host` (as in a URL: IPv6 in brackets) on `port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Invalid => false,
        };
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        host_ok && port_ok
    }
}

/// What one plugin version may do: its declared permissions, the operator's acknowledgements and
/// where its package lives.
#[derive(Clone, Debug)]
pub struct Grant {
    permissions: PermissionSet,
    acknowledged: BTreeSet<String>,
    require_acknowledgement: bool,
    package_dir: PathBuf,
}

impl Grant {
    /// A grant of `permissions` to the plugin whose (immutable) version directory is `package_dir`.
    /// Declared permissions are allowed without acknowledgement until
    /// [`Grant::require_acknowledgement`] says otherwise.
    pub fn new(permissions: PermissionSet, package_dir: impl Into<PathBuf>) -> Self {
        Grant {
            permissions,
            acknowledged: BTreeSet::new(),
            require_acknowledgement: false,
            package_dir: package_dir.into(),
        }
    }

    /// The permissions the operator acknowledged (strings as in the module docs).
    pub fn acknowledged<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.acknowledged
            .extend(permissions.into_iter().map(Into::into));
        self
    }

    /// Whether a declared permission must also be acknowledged to be used (guarded trust mode).
    pub fn require_acknowledgement(mut self, require: bool) -> Self {
        self.require_acknowledgement = require;
        self
    }

    /// The declared permissions.
    pub fn permissions(&self) -> &PermissionSet {
        &self.permissions
    }

    /// The package directory.
    pub fn package_dir(&self) -> &Path {
        &self.package_dir
    }

    fn is_acknowledged(&self, declared: &str) -> bool {
        self.acknowledged.contains(declared)
    }

    /// Judges a request against a declared entry (`None`: nothing declared covers it).
    fn judge(&self, declared: Option<String>) -> Judgement {
        match declared {
            None => Judgement {
                declared: false,
                acknowledged: false,
                allowed: false,
            },
            Some(entry) => {
                let acknowledged = self.is_acknowledged(&entry);
                Judgement {
                    declared: true,
                    acknowledged,
                    allowed: acknowledged || !self.require_acknowledgement,
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Judgement {
    declared: bool,
    acknowledged: bool,
    allowed: bool,
}

/// The `permissions` field a denial is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Network,
    Secrets,
    FilesystemRead,
    FilesystemWrite,
    AllowProcessSpawn,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Network => "network",
            Scope::Secrets => "secrets",
            Scope::FilesystemRead => "filesystemRead",
            Scope::FilesystemWrite => "filesystemWrite",
            Scope::AllowProcessSpawn => "allowProcessSpawn",
        }
    }
}

/// Secret names become environment variable suffixes (see [`nitejar_packages::secret_env_var`]).
pub use nitejar_packages::secret_env_var;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_entries() {
        let exact = NetworkRule::parse("API.example.com");
        assert!(exact.allows("api.example.com", 443));
        assert!(exact.allows("api.example.com", 80));
        assert!(!exact.allows("api.example.com", 8443));
        assert!(!exact.allows("x.api.example.com", 443));

        let wild = NetworkRule::parse("*.example.com");
        assert!(wild.allows("a.example.com", 443));
        assert!(wild.allows("a.b.example.com", 443));
        assert!(!wild.allows("example.com", 443));
        assert!(!wild.allows("badexample.com", 443));

        let port = NetworkRule::parse("127.0.0.1:8080");
        assert!(port.allows("127.0.0.1", 8080));
        assert!(!port.allows("127.0.0.1", 80));

        let v6 = NetworkRule::parse("[::1]:9000");
        assert!(v6.allows("[::1]", 9000));
        assert!(!v6.allows("[::1]", 9001));

        // Declared addresses are compared in the spelling a URL's host has.
        let long = NetworkRule::parse("[0:0:0:0:0:0:0:1]:9000");
        assert!(long.allows("[::1]", 9000));
        let mapped = NetworkRule::parse("[::ffff:127.0.0.1]");
        assert!(mapped.allows("[::ffff:7f00:1]", 80));
        assert!(!mapped.allows("127.0.0.1", 80));
        let idn = NetworkRule::parse("*.bücher.example");
        assert!(idn.allows("shop.xn--bcher-kva.example", 443));

        for bad in [
            "",
            "*.",
            "host:http",
            "[::1",
            "a/b",
            "*.[::1]",
            "a b",
            "1.2.3.256",
        ] {
            let r = NetworkRule::parse(bad);
            assert!(!r.allows(bad, 443), "{bad}");
        }
    }

    #[test]
    fn acknowledgement_is_required_only_when_asked() {
        let grant = Grant::new(PermissionSet::new().secrets(["A"]), "/pkg");
        let j = grant.judge(Some("secret:A".into()));
        assert!(j.allowed && j.declared && !j.acknowledged);
        let guarded = grant.clone().require_acknowledgement(true);
        assert!(!guarded.judge(Some("secret:A".into())).allowed);
        let acked = guarded.acknowledged(["secret:A"]);
        assert!(acked.judge(Some("secret:A".into())).allowed);
        assert!(!acked.judge(None).allowed);
    }

    #[test]
    fn secret_names_map_to_env_vars() {
        assert_eq!(secret_env_var("api.key-2"), "NITEJAR_SECRET_API_KEY_2");
    }
}
