//! `nitejar serve`: boots the runtime with the built-ins and serves HTTP.

use std::sync::Arc;

use actix_web::{get, web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use clap::Args;
use nitejar_core::runtime::Runtime;
use serde_json::json;

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

struct AppState {
    runtime: Arc<Runtime>,
}

#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.runtime.registry();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": nitejar_core::NITEJAR_VERSION,
        "activePlugins": registry.plugins().count(),
    }))
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let (bind, port) = (args.bind, args.port);
    nitejar_builtins::link();
    let runtime = Arc::new(Runtime::builder().build());
    for (id, error) in runtime.activate_builtins() {
        tracing::error!(plugin.id = %id, "built-in plugin could not be activated: {error}");
    }
    let active: Vec<String> = runtime
        .registry()
        .plugins()
        .map(|p| p.meta().to_string())
        .collect();
    tracing::info!("active plugins: {}", active.join(", "));

    let state = web::Data::new(AppState { runtime });
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || App::new().app_data(state.clone()).service(healthz))
            .bind((bind.as_str(), port))
            .with_context(|| format!("could not listen on {bind}:{port}"))?;
        tracing::info!(
            "nitejar {} listening on http://{bind}:{port}",
            nitejar_core::NITEJAR_VERSION
        );
        server.run().await.context("server stopped with an error")
    })
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
