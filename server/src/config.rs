//! Server configuration: command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::clock::Clock;

/// How the server runs. `main` parses it from flags and the environment; tests build it.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CYCLEPOOL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory of the embedded store; created if missing.
    #[arg(long, env = "CYCLEPOOL_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Directory of the pages and the built web client (`cargo xtask build` fills `pkg/`).
    #[arg(long, env = "CYCLEPOOL_STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,

    /// Serve only the API, not the pages (no built web client needed).
    #[arg(long, env = "CYCLEPOOL_API_ONLY")]
    pub api_only: bool,

    /// Tiles in the demo job created at first start: a square number (0: no demo job).
    #[arg(long, env = "CYCLEPOOL_DEMO_UNITS", default_value_t = 4_096)]
    pub demo_units: u64,

    /// The demo job's module (`cargo xtask build` builds it).
    #[arg(
        long,
        env = "CYCLEPOOL_DEMO_MODULE",
        default_value = "jobs/dist/mandelbrot.wasm"
    )]
    pub demo_module: PathBuf,

    /// How long a volunteer has to return a demo unit before it is handed to someone else.
    #[arg(long, env = "CYCLEPOOL_LEASE_TTL_MS", default_value_t = 10 * 60 * 1_000)]
    pub lease_ttl_ms: u64,

    /// Mark the dashboard's session cookie `Secure` (sent over HTTPS only). Turn on whenever
    /// the portal is reached over TLS (directly or through a proxy).
    #[arg(long, env = "CYCLEPOOL_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// The most API requests served at once; beyond it the portal sheds load, answering 503
    /// with `Retry-After` (volunteers back off and return), so that an overload degrades
    /// into waiting instead of timeouts and memory growth. The health check and the
    /// progress stream are exempt.
    #[arg(long, env = "CYCLEPOOL_MAX_IN_FLIGHT", default_value_t = 2_048)]
    pub max_in_flight: usize,

    /// The most open connections; past it the server stops accepting until one closes.
    #[arg(long, env = "CYCLEPOOL_MAX_CONNECTIONS", default_value_t = 8_192)]
    pub max_connections: usize,

    /// How long a client has to send a request's head once its connection is ready for one;
    /// also how long an idle keep-alive connection stays open.
    #[arg(long, env = "CYCLEPOOL_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,

    /// How long a request may take to arrive and be answered (its body included; a streamed
    /// response's body is not counted); past it, 408.
    #[arg(long, env = "CYCLEPOOL_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// API requests a second allowed from one client address (bursts of five seconds' worth);
    /// past it, 429 with `Retry-After`. 0 turns the limit off.
    #[arg(long, env = "CYCLEPOOL_ADDRESS_RATE", default_value_t = crate::limits::DEFAULT_ADDRESS_RATE)]
    pub address_rate: u32,

    /// Requests a second allowed from one volunteer key, counting those that prove the key
    /// (a lease with a proof, a signed result). 0 turns the limit off.
    #[arg(long, env = "CYCLEPOOL_VOLUNTEER_RATE", default_value_t = crate::limits::DEFAULT_VOLUNTEER_RATE)]
    pub volunteer_rate: u32,

    /// Requests a second allowed with one API token or dashboard session. 0 turns it off.
    #[arg(long, env = "CYCLEPOOL_TOKEN_RATE", default_value_t = crate::limits::DEFAULT_TOKEN_RATE)]
    pub token_rate: u32,

    /// Where time comes from; tests substitute a paused clock.
    /// The store's page cache in MiB: the memory the server's data may take, whatever the
    /// size of its jobs (what does not fit is read back from disk).
    #[arg(long, env = "CYCLEPOOL_CACHE_MIB", default_value_t = crate::store::DEFAULT_CACHE_MIB, value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
    pub cache_mib: u64,
    #[arg(skip)]
    pub clock: Clock,

    /// Sets the admin token instead of generating one at first start (tests and tools).
    /// From the command line use `cyclepool-server admin-token`, which prints a new one.
    #[arg(skip)]
    pub admin_token: Option<String>,
}

impl Config {
    /// A configuration for tests and tools: API only, no demo job, system clock.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            static_dir: PathBuf::from("static"),
            api_only: true,
            demo_units: 0,
            demo_module: PathBuf::from("jobs/dist/mandelbrot.wasm"),
            admin_token: None,
            lease_ttl_ms: 10 * 60 * 1_000,
            clock: Clock::System,
            secure_cookies: false,
            max_in_flight: 2_048,
            max_connections: 8_192,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            address_rate: crate::limits::DEFAULT_ADDRESS_RATE,
            volunteer_rate: crate::limits::DEFAULT_VOLUNTEER_RATE,
            token_rate: crate::limits::DEFAULT_TOKEN_RATE,
            cache_mib: crate::store::DEFAULT_CACHE_MIB,
        }
    }
}
