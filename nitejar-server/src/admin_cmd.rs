//! `nitejar admin …` and `nitejar healthcheck`: commands for operators that work without the
//! server (or, for the health check, against it from inside its container, where there is no curl).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use nitejar_core::crypto::{load_or_create_key, Cipher};
use nitejar_core::store;

use crate::auth::AdminAuth;
use crate::config::Config;

/// Admin commands.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Make a new admin token (printed once), replacing the stored one and ending every admin
    /// session. `NITEJAR_ADMIN_TOKEN`, when set, still wins over it.
    ResetToken,
}

pub fn run(cmd: AdminCommand) -> ExitCode {
    let result = match cmd {
        AdminCommand::ResetToken => reset_token(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn reset_token() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    rt.block_on(async {
        let (key, _) = load_or_create_key(config.encryption_key.as_deref(), &config.data_dir)
            .context("ENCRYPTION_KEY")?;
        let store = store::open(&config.database_url, Cipher::new(&key))
            .await
            .context("could not open the database")?;
        let token = AdminAuth::reset_token(&*store).await?;
        store.close().await.ok();
        if config.admin_token.is_some() {
            eprintln!(
                "note: NITEJAR_ADMIN_TOKEN is set, and a server started with it uses that token instead"
            );
        }
        println!("{token}");
        eprintln!(
            "This is the new admin token; it is not shown again. A running server takes it from its \
             next request; the old token and every admin session have ended."
        );
        Ok(())
    })
}

/// `GET /healthz` on the local server; exit 0 when it answers 200. For the image's `HEALTHCHECK`.
pub fn healthcheck(port: u16) -> ExitCode {
    match probe(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn probe(port: u16) -> anyhow::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("nothing answers on {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        anyhow::bail!("/healthz answered `{status}`")
    }
}
