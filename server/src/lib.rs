//! The Cyclepool server: portal (pages, volunteer protocol) and distributor (jobs, units,
//! leases, results) in one axum app over an embedded sled store.
//!
//! `main.rs` parses flags and calls [`run`]; tests call [`run`] on `127.0.0.1:0`.

pub mod audit;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod routes;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::ApiError;
use crate::scheduler::Scheduler;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Largest lease request body. A lease request is a few dozen bytes of JSON.
const LEASE_BODY_LIMIT: usize = 16 * 1024;
/// Largest result body: the output limit, base64-encoded, plus the envelope.
const RESULT_BODY_LIMIT: usize = cyclepool_shared::protocol::MAX_OUTPUT_BYTES * 4 / 3 + 16 * 1024;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    WebAssets(#[from] web::WebAssetsMissing),
    #[error("could not open the store in {dir}: {source}")]
    OpenStore { dir: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("serving http failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("a start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Builds the app: the API under `/api/v1`, the pages everywhere else (unless API-only).
pub fn router(state: AppState, config: &Config) -> Router {
    let api = Router::new()
        .route(
            "/lease",
            post(routes::work::lease).layer(DefaultBodyLimit::max(LEASE_BODY_LIMIT)),
        )
        .route(
            "/results",
            post(routes::work::submit).layer(DefaultBodyLimit::max(RESULT_BODY_LIMIT)),
        )
        .route("/stats", get(routes::stats::stats))
        .route("/health", get(routes::stats::health))
        .fallback(|| async { ApiError::for_status(axum::http::StatusCode::NOT_FOUND) })
        .with_state(state);
    let app = Router::new().nest("/api/v1", api);
    let app = if config.api_only {
        app.fallback(|| async { ApiError::for_status(axum::http::StatusCode::NOT_FOUND) })
    } else {
        web::with_static_files(app, &config.static_dir)
    };
    web::with_common_layers(app)
}

/// Opens the store, creates the demo job on first start, and serves on `listener` until
/// `shutdown` resolves; then finishes in-flight requests and flushes the store.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if !config.api_only {
        web::check_web_assets(&config.static_dir)?;
    }
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir)
            .map_err(|err| StoreError::Flush(format!("cannot create the data directory: {err}")))
            .and_then(|()| Store::open(&data_dir))
            .map_err(|source| ServerError::OpenStore {
                dir: data_dir.display().to_string(),
                source,
            })
    })
    .await??;
    let store = Arc::new(store);
    if let Some(job) = demo::ensure_demo_job(
        &store,
        config.demo_units,
        config.lease_ttl_ms,
        config.clock.now_ms(),
    )? {
        tracing::info!(job = %job.id, units = job.units, "created the demo job");
        store.durable().await?;
    }
    let scheduler = Arc::new(Scheduler::start(Arc::clone(&store), config.clock.clone())?);
    let state = AppState {
        store: Arc::clone(&store),
        scheduler,
    };
    let app = router(state, &config);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}
