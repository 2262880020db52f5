//! The Cyclepool server: portal (pages, volunteer protocol) and distributor (jobs, units,
//! leases, results) in one axum app over an embedded sled store.
//!
//! `main.rs` parses flags and calls [`run`]; tests call [`run`] on `127.0.0.1:0`.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod demo;
pub mod embed;
pub mod error;
pub mod keys;
pub mod limits;
pub mod minify;
pub mod module_check;
pub mod page_cache;
pub mod replication;
pub mod review;
pub mod routes;
pub mod sandbox;
pub mod scheduler;
pub mod serve;
pub mod state;
pub mod store;
pub mod validator;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use cyclepool_shared::abi::MAX_MODULE_BYTES;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::ApiError;
use crate::keys::{KeyError, Keyring};
use crate::scheduler::Scheduler;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Largest lease request body. A lease request is a few dozen bytes of JSON.
const LEASE_BODY_LIMIT: usize = 16 * 1024;
/// Largest result body: the output limit, base64-encoded, plus the envelope.
const RESULT_BODY_LIMIT: usize = cyclepool_shared::protocol::MAX_OUTPUT_BYTES * 4 / 3 + 16 * 1024;
/// Largest exchange body: 64 small results and a lease request. An exchange is for many
/// small units; a large output goes to `/results` on its own.
const EXCHANGE_BODY_LIMIT: usize = cyclepool_shared::protocol::MAX_EXCHANGE_BODY_BYTES;

/// Largest body of the account, token, key and group endpoints.
const SMALL_BODY_LIMIT: usize = 16 * 1024;
/// Largest body adding group members: a thousand hex keys.
const MEMBERS_BODY_LIMIT: usize = 128 * 1024;

/// Largest job creation body: a million base64 inputs of typical size, with room to spare.
const JOB_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    WebAssets(#[from] web::WebAssetsMissing),
    #[error("could not open the store in {dir}: {source}")]
    OpenStore { dir: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("portal keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    #[error("cannot create the admin token: {0}")]
    Token(std::io::Error),
    #[error("serving http failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("a start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Builds the app: the API under `/api/v1`, the pages everywhere else (unless API-only).
pub fn router(state: AppState, config: &Config) -> Router {
    let (app, _) = documented_routes().split_for_parts();
    let pages = page_cache::PageCache::new();
    let app = if config.api_only {
        app
    } else {
        // The embed widget's files need headers of their own, so they have routes of their own.
        app.merge(embed::routes(&config.static_dir, pages.clone()))
    };
    // Load shedding and the per-address limit cover the API only (`limits` exempts the rest).
    // The address limit is the outer layer: a client over its rate takes no place in flight.
    let app = app
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            limits::LoadShedder::new(config.max_in_flight),
            limits::shed_load,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            limits::limit_addresses,
        ));
    let app = if config.api_only {
        app.fallback(|| async { ApiError::for_status(axum::http::StatusCode::NOT_FOUND) })
    } else {
        web::with_static_files(app, &config.static_dir, pages)
    };
    web::with_common_layers(
        app,
        std::time::Duration::from_millis(config.request_timeout_ms),
    )
}

/// The OpenAPI document of the API (served at `GET /api/v1/openapi.json`), generated from the
/// same route list that [`router`] serves, so the two cannot drift apart.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = documented_routes().into_openapi();
    routes::openapi::add_common_parts(&mut openapi);
    openapi
}

/// Every route with a handler, each registered from its handler's `#[utoipa::path]`
/// annotation (which names its method and path and documents it). Register routes here only
/// with `routes!`: one added with a plain `.route` would be served but left out of the document.
fn documented_routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(routes::work::lease).layer(DefaultBodyLimit::max(LEASE_BODY_LIMIT)))
        .routes(routes!(routes::work::submit).layer(DefaultBodyLimit::max(RESULT_BODY_LIMIT)))
        .routes(routes!(routes::work::exchange).layer(DefaultBodyLimit::max(EXCHANGE_BODY_LIMIT)))
        .routes(
            routes!(routes::work::report, routes::work::list_reports)
                .layer(DefaultBodyLimit::max(LEASE_BODY_LIMIT)),
        )
        .routes(routes!(routes::jobs::upload_module).layer(DefaultBodyLimit::max(MAX_MODULE_BYTES)))
        .routes(routes!(routes::jobs::module))
        .routes(routes!(routes::jobs::create_job).layer(DefaultBodyLimit::max(JOB_BODY_LIMIT)))
        .routes(routes!(routes::manage::list_jobs))
        .routes(routes!(routes::manage::events))
        .routes(routes!(routes::manage::job))
        .routes(routes!(routes::manage::pause))
        .routes(routes!(routes::manage::resume))
        .routes(routes!(routes::manage::cancel))
        .routes(routes!(routes::manage::failures))
        .routes(routes!(routes::jobs::manifest))
        .routes(routes!(routes::downloads::results_json_lines))
        .routes(routes!(routes::downloads::results_archive))
        .routes(routes!(routes::accounts::register))
        .routes(routes!(routes::accounts::account))
        .routes(routes!(routes::accounts::register_key))
        .routes(routes!(routes::accounts::revoke_key))
        .routes(routes!(
            routes::accounts::list_tokens,
            routes::accounts::create_token
        ))
        .routes(routes!(routes::accounts::revoke_token))
        .routes(routes!(
            routes::accounts::create_session,
            routes::accounts::session,
            routes::accounts::end_session
        ))
        .routes(routes!(
            routes::groups::list_groups,
            routes::groups::create_group
        ))
        .routes(routes!(routes::groups::join))
        .routes(routes!(routes::groups::group))
        .routes(
            routes!(routes::groups::add_members).layer(DefaultBodyLimit::max(MEMBERS_BODY_LIMIT)),
        )
        .routes(routes!(routes::groups::remove_member))
        .routes(routes!(
            routes::sites::list_sites,
            routes::sites::register_site
        ))
        .routes(routes!(routes::sites::site, routes::sites::revoke_site))
        .routes(routes!(routes::stats::stats))
        .routes(routes!(routes::stats::leaderboard))
        .routes(routes!(routes::stats::volunteer))
        .routes(routes!(routes::stats::health))
        .routes(routes!(routes::log::entries))
        .routes(routes!(routes::log::job_entries))
        .routes(routes!(routes::accounts::accept_terms))
        .routes(routes!(routes::admin::review_queue))
        .routes(routes!(routes::admin::approve))
        .routes(routes!(routes::admin::reject))
        .routes(routes!(routes::admin::withdraw))
        .routes(routes!(routes::admin::accounts))
        .routes(routes!(routes::admin::update_account))
        .routes(routes!(routes::admin::revoke_distributor_key))
        .routes(routes!(routes::admin::abuse_reports))
        .routes(routes!(routes::admin::resolve_report))
        .routes(routes!(routes::openapi::document))
        .fallback(|| async { ApiError::for_status(axum::http::StatusCode::NOT_FOUND) })
        // Account, token, key and group requests are a few hundred bytes.
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT));
    OpenApiRouter::with_openapi(routes::openapi::ApiDoc::openapi())
        .routes(routes!(routes::jobs::keys))
        .nest("/api/v1", api)
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
    let cache_bytes = config.cache_mib.saturating_mul(1 << 20);
    let store = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir)
            .map_err(|err| StoreError::Flush(format!("cannot create the data directory: {err}")))
            .and_then(|()| Store::open_with_cache(&data_dir, cache_bytes))
            .map_err(|source| ServerError::OpenStore {
                dir: data_dir.display().to_string(),
                source,
            })
    })
    .await??;
    let store = Arc::new(store);
    let now = config.clock.now_ms();
    let keyring = Arc::new(Keyring::open_or_create(&config.data_dir, now)?);
    let admin_token_hash = admin_token(&store, config.admin_token.as_deref())?;
    // Skipped when the demo exists: a restart must not need the module file again.
    if let Some(job) = demo::ensure_demo_job(
        &store,
        config.demo_units,
        &config.demo_module,
        config.lease_ttl_ms,
        now,
    )? {
        tracing::info!(job = %job.id, units = job.units, "created the demo job");
        store.durable().await?;
    }
    let scheduler = Arc::new(Scheduler::start(Arc::clone(&store), config.clock.clone())?);
    // Publishes the demo, and repairs what a crash between two review steps left undone.
    review::reconcile(&store, &scheduler, keyring.current())?;
    store.durable().await?;
    let (stop_streams, stopping) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_streams.send(true);
    };
    let state = AppState {
        stopping,
        store: Arc::clone(&store),
        scheduler,
        keyring,
        validator: Arc::new(validator::Validator::new(Arc::clone(&store))),
        clock: config.clock.clone(),
        admin_token_hash,
        secure_cookies: config.secure_cookies,
        limiters: Arc::new(limits::Limiters::new(
            config.address_rate,
            config.volunteer_rate,
            config.token_rate,
        )),
        manifests: Arc::default(),
    };
    let sampler = state.scheduler.spawn_progress_sampler();
    let app = router(state, &config);
    let limits = serve::ConnectionLimits {
        max_connections: config.max_connections,
        header_timeout: std::time::Duration::from_millis(config.header_timeout_ms),
    };
    let served = serve::serve(listener, app, limits, shutdown).await;
    sampler.abort();
    served?;
    store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// The admin token's hash: the one configured, else the stored one, else a new token that is
/// printed once (on standard output, for the person starting the server) and stored hashed.
fn admin_token(
    store: &Store,
    configured: Option<&str>,
) -> Result<Option<cyclepool_shared::Sha256Digest>, ServerError> {
    if let Some(token) = configured {
        let hash = cyclepool_shared::Sha256Digest::of(token.as_bytes());
        store.set_admin_token_hash(hash)?;
        return Ok(Some(hash));
    }
    if let Some(hash) = store.admin_token_hash()? {
        return Ok(Some(hash));
    }
    let (token, hash) = auth::new_token().map_err(ServerError::Token)?;
    store.set_admin_token_hash(hash)?;
    println!("admin token (shown once; `cyclepool-server admin-token` makes a new one): {token}");
    Ok(Some(hash))
}
