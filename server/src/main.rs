//! The `cyclepool-server` binary: serve (the default) or audit a stopped server's store.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cyclepool_server::config::Config;
use cyclepool_server::store::Store;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Cyclepool: in-browser volunteer computing, portal and distributor in one server"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the portal and the API (the default).
    Serve(Config),
    /// Check a stopped server's store: re-run every result natively and check invariants.
    /// Prints a JSON report; exits with status 1 if anything is wrong.
    Audit {
        /// Directory of the store.
        #[arg(long, env = "CYCLEPOOL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Include every stored result in the report.
        #[arg(long)]
        list_results: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Audit {
            data_dir,
            list_results,
        }) => audit(&data_dir, list_results),
        Some(Command::Serve(config)) => serve(config),
        None => serve(cli.serve),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        tracing::info!(data_dir = %config.data_dir.display(), "listening on http://{address}");
        // Test harnesses read this line to find the port when started with port 0.
        println!("listening on http://{address}");
        cyclepool_server::run(listener, config, shutdown_signal())
            .await
            .context("server failed")
    })
}

fn audit(data_dir: &std::path::Path, list_results: bool) -> anyhow::Result<()> {
    let store = Store::open(data_dir).with_context(|| {
        format!(
            "opening the store (is a server still running on it?) in {}",
            data_dir.display()
        )
    })?;
    let report =
        cyclepool_server::audit::audit(&store, list_results).context("auditing the store")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("encoding the report")?
    );
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
