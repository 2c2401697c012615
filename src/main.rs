//! The `sluice` binary: parse configuration, start logging, bind, run until SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sluice::config::{Cli, Command, Config, LogFormat, TokenArgs};
use sluice::domain::Claims;
use sluice::identity::mint_token;
use sluice::server;
use sluice::storage;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: every request allocates and frees many small
/// objects across worker threads, where glibc's malloc spent about a seventh of the CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit`, option 4 of the pinned mimalloc v3 (`mimalloc.h`).
#[cfg(target_os = "linux")]
const MIMALLOC_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Turns mimalloc's eager arena commit off, so that what the allocator frees is decommitted
/// and leaves the resident set: with it on (mimalloc's default on Linux), a server holding a
/// full buffer showed about 50 MiB more RSS. The arena is reserved by the first allocation,
/// which Rust's runtime makes before `main`; this runs earlier, from `.init_array`, as the
/// `ctor` crate would arrange.
#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    // SAFETY: sets a plain option value before any thread or allocation exists.
    unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_ARENA_EAGER_COMMIT, 0) };
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.config.log_format);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config).await,
        Command::Migrate => migrate(&cli.config).await,
        Command::Doctor => doctor(&cli.config).await,
        Command::Token(args) => mint(&cli.config, args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sluice stopped");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`), as text or one JSON object a line.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

async fn serve(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    // Refused settings stop the process before it listens.
    config.validate()?;
    let listener = TcpListener::bind(config.http.bind)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.http.bind))?;
    let report = server::run(config, listener, shutdown_signal()).await?;
    if report.remaining > 0 {
        return Err(format!("{} buffered events could not be written", report.remaining).into());
    }
    Ok(())
}

async fn migrate(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    config.validate()?;
    let url = config.database.url();
    let store = storage::connect(&url, &config.database.pool()).await?;
    let applied = store.run_migrations().await?;
    tracing::info!(database = %storage::redact_url(&url), applied, "migrations complete");
    Ok(())
}

/// Prints a diagnosis of the configured database as JSON.
async fn doctor(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    config.validate()?;
    let url = config.database.url();
    let store = storage::connect(&url, &config.database.pool()).await?;
    let diagnosis = sluice::diagnostics::diagnose(store.as_ref()).await;
    println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    if diagnosis.is_healthy() {
        Ok(())
    } else {
        Err(diagnosis.problems.join("; ").into())
    }
}

/// Prints a token for the configured JWT secret.
fn mint(config: &Config, args: TokenArgs) -> Result<(), Box<dyn std::error::Error>> {
    config.validate()?;
    let secret = config
        .auth
        .jwt_secret()
        .ok_or("set SLUICE_JWT_SECRET (or --jwt-secret) to mint tokens")?;
    let claims = Claims {
        sub: args.sub,
        role: args.role,
        creator_id: args.creator_id,
        brand_id: args.brand_id,
        exp: None,
    };
    let ttl = (args.ttl_seconds > 0).then_some(args.ttl_seconds);
    println!("{}", mint_token(&secret, claims, ttl)?);
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown signal received");
}
