//! The `cyclepool-server` binary: serve (the default) or audit a stopped server's store.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cyclepool_server::clock::Clock;
use cyclepool_server::config::Config;
use cyclepool_server::keys;
use cyclepool_server::store::Store;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// Under load, glibc's malloc, free and heap consolidation were a tenth of the server's time
// (docs/BENCHMARKS.md); mimalloc's thread-local heaps take most of that away.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Manage the portal's signing keys (restart the server to apply a change).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// Directory of the store.
        #[arg(
            long,
            env = "CYCLEPOOL_DATA_DIR",
            default_value = "data",
            global = true
        )]
        data_dir: PathBuf,
    },
    /// Replace the admin token with a new random one and print it (the server must be stopped).
    AdminToken {
        /// Directory of the store.
        #[arg(long, env = "CYCLEPOOL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print the published key set.
    List,
    /// Create a new signing key, endorsed by the current one, and make it current.
    Rotate,
    /// Revoke a key: clients refuse manifests signed with it.
    Revoke {
        /// The key's id (16 hex digits, from `keys list`).
        key_id: cyclepool_shared::KeyId,
        /// Why, for the published revocation list.
        #[arg(long, default_value = "revoked by the portal operator")]
        reason: String,
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
        Some(Command::Keys { action, data_dir }) => keys(&data_dir, action),
        Some(Command::AdminToken { data_dir }) => admin_token(&data_dir),
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

fn keys(data_dir: &std::path::Path, action: KeysAction) -> anyhow::Result<()> {
    let now = Clock::System.now_ms();
    match action {
        KeysAction::List => {}
        KeysAction::Rotate => {
            let key = keys::rotate(data_dir, now).context("rotating the portal key")?;
            eprintln!(
                "new current key {}; restart the server to sign with it",
                key.key_id
            );
        }
        KeysAction::Revoke { key_id, reason } => {
            keys::revoke(data_dir, key_id, &reason, now).context("revoking the key")?;
            eprintln!("revoked key {key_id}; restart the server to publish the revocation");
        }
    }
    let keyring = keys::Keyring::open_or_create(data_dir, now).context("reading the keyring")?;
    println!(
        "{}",
        serde_json::to_string_pretty(keyring.public()).context("encoding the keys")?
    );
    Ok(())
}

fn admin_token(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::open(data_dir).with_context(|| {
        format!(
            "opening the store (is a server still running on it?) in {}",
            data_dir.display()
        )
    })?;
    let (token, hash) =
        cyclepool_server::auth::new_token().context("reading the OS random generator")?;
    store
        .set_admin_token_hash(hash)
        .context("storing the token's hash")?;
    println!("{token}");
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
