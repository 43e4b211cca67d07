//! One way to assemble the engine: the database, the durable receipt sink, the permission gate,
//! the runtime and the plugin manager, wired alike for every host — the server, the CLI, a
//! program that embeds Nitejar.
//!
//! ```no_run
//! # async fn open() -> Result<(), nitejar_core::store::StoreError> {
//! use nitejar_core::crypto::Key;
//! use nitejar_core::engine::{Engine, EngineConfig};
//! use nitejar_core::lifecycle::ManagerOptions;
//!
//! let key = Key::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
//!     .expect("a key");
//! let engine = Engine::builder(EngineConfig::new(
//!     "sqlite://./data/nitejar.db",
//!     key,
//!     ManagerOptions::new("./data"),
//! ))
//! .runs_plugins()
//! .open()
//! .await?;
//! let report = engine.plugins.boot().await;
//! println!("loaded {:?}", report.loaded);
//! engine.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! Once the plugins are booted, [`Engine::start_agents`] starts what answers messages: the skill
//! index, the runner and its tools, the run queue and the webhook ingress. What it does not do:
//! serve HTTP or hold an admin credential — the server adds those on top of the handles an
//! [`Engine`] gives.

use std::sync::Arc;

use ipnet::IpNet;

use crate::changes::{ChangeFeed, SAFETY_NET};
use crate::crypto::{Cipher, Key};
use crate::ingress::Ingress;
use crate::integrations::Integrations;
use crate::lifecycle::agent_ops::{AgentOpsLimit, PluginOpsTools};
use crate::lifecycle::{self, CrashGuard, ManagerOptions, PluginManager};
use crate::permissions::PermissionGate;
use crate::receipts::ReceiptSink;
use crate::runner::model::ModelProvider;
use crate::runner::queue::{RunQueue, RunQueueConfig};
use crate::runner::tools::{CurrentTime, ToolSet};
use crate::runner::{Runner, RunnerConfig};
use crate::runtime::Runtime;
use crate::skills::{Skills, SkillsConfig, UseSkill};
use crate::store::AgentRow;
use crate::store::{self, DbReceiptSink, SinkOptions, Store, StoreError};

/// What opening an engine needs.
pub struct EngineConfig {
    /// The database: a SQLite path or URL, or `postgres://…`.
    pub database_url: String,
    /// The key integration secrets (and stored plugin secrets) are encrypted with.
    pub key: Key,
    /// The plugin manager's settings: data directory, trust policy, limits, npm, execution.
    pub plugins: ManagerOptions,
    /// Private ranges that host names declared in a plugin's `permissions.network` may resolve
    /// into (none by default: public addresses only).
    pub egress_allow_private: Vec<IpNet>,
}

impl EngineConfig {
    /// A configuration with no private egress ranges.
    pub fn new(database_url: impl Into<String>, key: Key, plugins: ManagerOptions) -> Self {
        EngineConfig {
            database_url: database_url.into(),
            key,
            plugins,
            egress_allow_private: Vec::new(),
        }
    }
}

/// A layer every receipt goes through on its way to the database (e.g. counted for metrics).
type ReceiptLayer = Box<dyn Fn(Arc<dyn ReceiptSink>) -> Arc<dyn ReceiptSink> + Send + Sync>;

/// Where the engine's database comes from.
enum Database {
    /// Opened (and migrated) by [`EngineBuilder::open`].
    Url { url: String, key: Key },
    /// Opened already by the host.
    Open(Arc<dyn Store>),
}

/// Builds an [`Engine`]; see the module docs.
pub struct EngineBuilder {
    database: Database,
    plugins: ManagerOptions,
    egress_allow_private: Vec<IpNet>,
    layer: Option<ReceiptLayer>,
    runs_plugins: bool,
}

impl EngineBuilder {
    /// Every receipt (the gate's and the runtime's) passes through `layer` on its way to the
    /// database.
    pub fn receipts_through(
        mut self,
        layer: impl Fn(Arc<dyn ReceiptSink>) -> Arc<dyn ReceiptSink> + Send + Sync + 'static,
    ) -> Self {
        self.layer = Some(Box::new(layer));
        self
    }

    /// This process runs plugins' calls (a server, not a one-off command): the crash-loop guard
    /// ([`ManagerOptions::crash`]) watches the runtime's receipts and disables a plugin that keeps
    /// failing.
    pub fn runs_plugins(mut self) -> Self {
        self.runs_plugins = true;
        self
    }

    /// Opens the database (running its migrations), starts the receipt sink and wires the gate,
    /// the runtime and the plugin manager. Nothing is loaded yet: [`PluginManager::boot`] does
    /// that.
    pub async fn open(self) -> Result<Engine, StoreError> {
        let EngineBuilder {
            database,
            plugins,
            egress_allow_private,
            layer,
            runs_plugins,
        } = self;
        let store = match database {
            Database::Url { url, key } => store::open(&url, Cipher::new(&key)).await?,
            Database::Open(store) => store,
        };
        let receipts = DbReceiptSink::start(store.clone(), SinkOptions::default());
        let layered = |inner: Arc<dyn ReceiptSink>| match &layer {
            Some(layer) => layer(inner),
            None => inner,
        };
        let gate = Arc::new(
            PermissionGate::new(plugins.layout.data_dir(), layered(receipts.clone()))
                .with_private_networks(egress_allow_private),
        );
        // The crash-loop guard sees the runtime's receipts first, then the layer.
        let guard = runs_plugins.then(|| CrashGuard::new(plugins.crash));
        let runtime_sink = match &guard {
            Some(guard) => guard.wrap(receipts.clone()),
            None => receipts.clone(),
        };
        let runtime = Arc::new(
            Runtime::builder()
                .sink(layered(runtime_sink))
                .services(gate.clone())
                .build(),
        );
        let plugins = PluginManager::new(
            store.clone(),
            runtime.clone(),
            gate.clone(),
            plugins,
            guard.as_ref(),
        );
        let changes = ChangeFeed::open(store.clone()).await?;
        let integrations = Arc::new(
            Integrations::new(runtime.clone(), store.clone(), layered(receipts.clone()))
                .following(changes.clone()),
        );
        Ok(Engine {
            integrations,
            store,
            changes,
            receipts,
            gate,
            runtime,
            plugins,
            tasks: std::sync::Mutex::new(Vec::new()),
        })
    }
}

/// What answering messages needs.
pub struct AgentsConfig {
    /// The model agents answer with.
    pub model: Arc<dyn ModelProvider>,
    /// Where repo skills are, and how the index is kept.
    pub skills: SkillsConfig,
    /// The runner's settings.
    pub runner: RunnerConfig,
    /// How many runs at once, and their lease.
    pub queue: RunQueueConfig,
    /// This server's id: the owner of the runs it leases.
    pub server_id: String,
    /// Plugin operations one agent may make through its tools in an hour.
    pub agent_ops: AgentOpsLimit,
    /// Safe mode: ingress serves built-ins only.
    pub safe_mode: bool,
}

/// What answers messages, started by [`Engine::start_agents`].
pub struct Agents {
    /// The skill index and its operations.
    pub skills: Arc<Skills>,
    /// The run queue (and the runner behind it).
    pub runs: Arc<RunQueue>,
    /// Webhook deliveries → stored work items → queued runs.
    pub ingress: Ingress,
    /// The agent that answers integrations no agent is assigned to (created on first start).
    pub default_agent: AgentRow,
}

/// The assembled engine's handles.
pub struct Engine {
    /// The database.
    pub store: Arc<dyn Store>,
    /// What changed in the database, whoever changed it (started by [`Engine::start_agents`] or
    /// [`Engine::follow_database`]).
    pub changes: Arc<ChangeFeed>,
    /// The durable receipt sink (close it with [`Engine::close`]).
    pub receipts: Arc<DbReceiptSink>,
    /// The permission gate behind the host services.
    pub gate: Arc<PermissionGate>,
    /// Active plugins and hook dispatch.
    pub runtime: Arc<Runtime>,
    /// The plugin lifecycle.
    pub plugins: Arc<PluginManager>,
    /// Integration rows: create, change, enable, hand over, test, delete.
    pub integrations: Arc<Integrations>,
    /// Tasks that end when the engine closes.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Engine {
    /// A builder of an engine with `config`.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            database: Database::Url {
                url: config.database_url,
                key: config.key,
            },
            plugins: config.plugins,
            egress_allow_private: config.egress_allow_private,
            layer: None,
            runs_plugins: false,
        }
    }

    /// A builder of an engine over a database the host opened already (tests, a host that shares
    /// its store), with the plugin manager's settings `plugins`.
    pub fn builder_on(store: Arc<dyn Store>, plugins: ManagerOptions) -> EngineBuilder {
        EngineBuilder {
            database: Database::Open(store),
            plugins,
            egress_allow_private: Vec::new(),
            layer: None,
            runs_plugins: false,
        }
    }

    /// Starts what answers messages: the skill index (following the registry), the runner with
    /// the built-in tools, `use_skill` and each agent's plugin tools, the run queue (taking over the
    /// runs a previous process left) and the webhook ingress. Boot the plugins first.
    pub async fn start_agents(&self, config: AgentsConfig) -> Result<Agents, StoreError> {
        // The caches below serve what they read until the feed says it changed: it must run.
        self.changes.start(SAFETY_NET);
        let skills = Arc::new(
            Skills::new(self.store.clone(), config.skills)
                .with_runtime(self.runtime.clone())
                .following(self.changes.clone()),
        );
        skills.watch_registry();
        let runner = Arc::new(
            Runner::new(
                self.runtime.clone(),
                self.store.clone(),
                config.model,
                ToolSet::new()
                    .with(CurrentTime)
                    .with(UseSkill::new(skills.clone())),
                config.runner,
            )
            .following(self.changes.clone())
            .with_skills(skills.clone())
            // What each agent may do to plugins, as the operator granted it.
            .with_agent_tools(Arc::new(PluginOpsTools::new(
                self.plugins.clone(),
                config.agent_ops,
            ))),
        );
        let default_agent = runner.ensure_default_agent().await?;
        let runs =
            RunQueue::start(runner, self.store.clone(), config.server_id, config.queue).await;
        let ingress = Ingress::new(self.runtime.clone(), self.store.clone(), runs.waker())
            .following(self.changes.clone())
            .in_safe_mode(config.safe_mode);
        // A run another server queued (Postgres) wakes this server's queue too.
        let (queued, waker) = (self.changes.runs_queued(), runs.waker());
        self.lock_tasks().push(tokio::spawn(async move {
            loop {
                queued.notified().await;
                waker.notify_one();
            }
        }));
        Ok(Agents {
            skills,
            runs,
            ingress,
            default_agent,
        })
    }

    /// Follows the database from now on: the change feed runs, and every change to plugins or trust
    /// settings (by this process, the CLI or another server) is reconciled as soon as the feed sees
    /// it ([`lifecycle::follow`]). Boot the plugins first. The reconciler runs until the engine
    /// closes.
    pub fn follow_database(&self) {
        self.changes.start(SAFETY_NET);
        let task = lifecycle::follow(self.plugins.clone(), self.changes.clone(), SAFETY_NET);
        self.lock_tasks().push(task);
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        // Only whole handles are pushed or drained under this lock.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the receipts still queued and closes the database; how many receipts could not be
    /// written.
    pub async fn close(&self) -> u64 {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
        self.changes.stop();
        self.plugins.stopping();
        let report = self.receipts.shutdown().await;
        let _ = self.store.close().await;
        report.lost
    }
}
