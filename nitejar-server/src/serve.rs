//! `nitejar serve`: boots the engine and serves HTTP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use clap::Args;
use nitejar_core::crypto::{load_or_create_key, KeyOrigin};
use nitejar_core::engine::{AgentsConfig, Engine as CoreEngine};
use nitejar_core::receipts::ReceiptSink;
use nitejar_core::runner::model::{ModelProvider, OfflineModel, OpenAiCompatible};
use nitejar_core::runner::queue::{RunQueue, RunQueueConfig};
use nitejar_core::runner::RunnerConfig;
use nitejar_core::store::{self, DbReceiptSink, Store};

use crate::auth::{AdminAuth, TokenOrigin};
use crate::config::Config;
use crate::data_dir::{self, DataDirLock};
use crate::metrics::{Metrics, MetricsSink};
use crate::state::AppState;
use crate::{access_log, api, auth, plugin_cmd, routes};

/// Options of `nitejar serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "NITEJAR_BIND", default_value = "0.0.0.0")]
    pub bind: String,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(crate::config::log_json()?);
    let config = Config::from_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nitejar")
        .build()
        .context("could not start the async runtime")?;
    let served = rt.block_on(serve(config, args));
    // A plugin thread that never returned (a hung call or load) is abandoned, not waited for.
    rt.shutdown_timeout(Duration::from_secs(1));
    served
}

/// The engine behind the HTTP server, assembled from the configuration.
pub(crate) struct Engine {
    /// What every handler reaches.
    pub state: web::Data<AppState>,
    queue: Arc<RunQueue>,
    sink: Arc<DbReceiptSink>,
    store: Arc<dyn Store>,
    /// Held until the process ends: one server per data directory.
    _lock: DataDirLock,
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    // A route table that would expose an admin handler is a bug: refuse to serve it.
    routes::check_table(&routes::ROUTES)
        .map_err(|e| anyhow::anyhow!("the route table is unsafe to serve: {e}"))?;
    let Engine {
        state,
        queue,
        sink,
        store,
        _lock,
    } = assemble(config.clone()).await?;
    let max_body = config.webhook_max_bytes;
    let (bind, port) = (args.bind, args.port);
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(api::error::extractor_configs)
            .configure(routes::configure)
            // Outermost last: the access log sees every answer; a path that is not canonical is
            // refused before the guard or the router looks at it.
            .wrap(from_fn(auth::guard::guard))
            .wrap(from_fn(routes::canonical::refuse_non_canonical))
            .wrap(from_fn(access_log::log))
    })
    .bind((bind.as_str(), port))
    .with_context(|| format!("could not listen on {bind}:{port}"))?
    .shutdown_timeout(10);
    state.ready.store(true, Ordering::Release);
    tracing::info!(
        "nitejar {} listening on http://{bind}:{port} (data: {}; admin UI at /admin)",
        nitejar_core::NITEJAR_VERSION,
        config.data_dir.display()
    );
    server.run().await.context("server stopped with an error")?;

    tracing::info!(
        "shutting down: no new runs; finishing the runs in progress (up to {} s), then writing \
         receipts",
        config.run_drain.as_secs()
    );
    let left = queue.shutdown(config.run_drain).await;
    if left.released > 0 {
        tracing::warn!(
            "{} runs were still going after {} s; they are run again from the start by the next \
             server to claim them",
            left.released,
            config.run_drain.as_secs()
        );
    }
    tracing::info!(
        "runs left in the queue for the next start: {} (finished during shutdown: {})",
        left.queued,
        left.in_progress - left.released
    );
    let report = sink.shutdown().await;
    tracing::info!(
        "receipts written: {}, lost: {}",
        report.written,
        report.lost
    );
    // From here on a plugin call still running (a stuck handler) is abandoned, not a crash.
    state.plugins.stopping();
    store.close().await.ok();
    Ok(())
}

/// Opens the database, sets up the admin credential, boots the plugins and the runner: everything
/// the HTTP server serves.
pub(crate) async fn assemble(config: Config) -> anyhow::Result<Engine> {
    config.prepare_dirs()?;
    let lock = data_dir::lock(&config.data_dir)?;
    let server_id = data_dir::server_id(&config.data_dir)?;
    let (key, origin) = load_or_create_key(config.encryption_key.as_deref(), &config.data_dir)
        .context("ENCRYPTION_KEY")?;
    match &origin {
        KeyOrigin::Env => tracing::info!("encryption key: from ENCRYPTION_KEY"),
        KeyOrigin::File { path } => tracing::info!("encryption key: {}", path.display()),
        KeyOrigin::Generated { path } => tracing::warn!(
            "ENCRYPTION_KEY is not set: generated a new key in {} (mode 0600). Back this file up: \
             without it, stored integration secrets cannot be read. Set ENCRYPTION_KEY to use your own.",
            path.display()
        ),
    }
    // Every receipt is counted for /metrics on its way to the database.
    let metrics = Metrics::new();
    let counted = metrics.clone();
    nitejar_builtins::link();
    let engine = CoreEngine::builder(plugin_cmd::setup::engine_config(&config, key.clone()))
        .receipts_through(move |inner| -> Arc<dyn ReceiptSink> {
            Arc::new(MetricsSink {
                metrics: counted.clone(),
                inner,
            })
        })
        .runs_plugins()
        .open()
        .await
        .with_context(|| {
            format!(
                "could not open the database ({})",
                store::Backend::of_url(&config.database_url).as_str()
            )
        })?;
    let store = engine.store.clone();
    match store::check_encryption_key(store.as_ref(), &key, config.accept_new_encryption_key)
        .await?
    {
        store::KeyCheck::Matches => {}
        store::KeyCheck::Recorded => {
            tracing::info!("encryption key: its fingerprint is recorded in the database")
        }
        store::KeyCheck::Replaced { unreadable } => tracing::warn!(
            "encryption key: a NEW key is recorded (NITEJAR_ACCEPT_NEW_ENCRYPTION_KEY); the secrets \
             of {} integration(s) were written with the old key and cannot be read: enter them \
             again in the admin ({})",
            unreadable.len(),
            unreadable.join(", ")
        ),
    }
    let (auth, token_origin) = AdminAuth::init(store.clone(), &config, &key)
        .await
        .context("admin token")?;
    log_token_origin(token_origin);
    let sink = engine.receipts.clone();
    if !config.egress_allow_private.is_empty() {
        let ranges: Vec<String> = config
            .egress_allow_private
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(
            "plugin egress: declared host names may also reach {} (NITEJAR_EGRESS_ALLOW_PRIVATE)",
            ranges.join(", ")
        );
    }
    let runtime = engine.runtime.clone();
    // Built-ins, then installed plugins; then the runtime follows the database (CLI changes).
    let plugins = plugin_cmd::setup::start_in_server(&engine).await;

    let model: Arc<dyn ModelProvider> = match (&config.model_base_url, &config.model) {
        (Some(base), Some(model)) => {
            tracing::info!("model: {model} at {base}");
            Arc::new(OpenAiCompatible::new(
                base,
                config.model_api_key.clone(),
                model,
                config.model_timeout,
            ))
        }
        _ => {
            tracing::info!(
                "model: offline (set NITEJAR_MODEL_BASE_URL and NITEJAR_MODEL for a real one)"
            );
            Arc::new(OfflineModel)
        }
    };
    let agents = engine
        .start_agents(AgentsConfig {
            model,
            skills: config.skills_config(),
            runner: RunnerConfig::default(),
            queue: RunQueueConfig {
                concurrency: config.run_concurrency,
                lease: config.run_lease,
                ..RunQueueConfig::default()
            },
            server_id,
            agent_ops: config.agent_ops_limit,
            safe_mode: config.safe_mode,
        })
        .await
        .context("could not create the default agent")?;
    tracing::info!(
        "default agent: {} ({})",
        agents.default_agent.name,
        agents.default_agent.id
    );
    let queue = agents.runs.clone();
    let (ingress, skills) = (agents.ingress, agents.skills);

    let state = web::Data::new(AppState {
        runtime: runtime.clone(),
        ingress,
        store: store.clone(),
        config,
        auth: Arc::new(auth),
        metrics,
        plugins,
        skills,
        runs: queue.clone(),
        receipts: sink.clone(),
        ready: AtomicBool::new(false),
        integrations: engine.integrations.clone(),
        changes: engine.changes.clone(),
    });
    Ok(Engine {
        state,
        queue,
        sink,
        store,
        _lock: lock,
    })
}

fn log_token_origin(origin: TokenOrigin) {
    match origin {
        TokenOrigin::Env => tracing::info!("admin token: from NITEJAR_ADMIN_TOKEN"),
        TokenOrigin::Stored => tracing::info!(
            "admin token: the one generated on first start (only its hash is stored; \
             `nitejar admin reset-token` makes a new one)"
        ),
        TokenOrigin::Generated(token) => tracing::warn!(
            "generated the admin token; it is shown this once and stored only as a hash. \
             Sign in at /admin with: {token}  (set NITEJAR_ADMIN_TOKEN to choose your own, or run \
             `nitejar admin reset-token` if you lose it)"
        ),
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout is for what commands print (a reset token, JSON), and the test
    // support reads the server's log from stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
