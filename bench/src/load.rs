//! The load generator: many simulated volunteers drive the real server, run as a separate
//! process on loopback, through lease → compute → sign → submit cycles for a bounded time, and
//! it reports completed units per second, latencies, 503 and 429 answers, and the server's CPU
//! and peak memory (read from `/proc`, so the generator's own work is counted apart).
//!
//! The server starts on a fresh temporary store with `--api-only --listen 127.0.0.1:0` (and
//! any `--server-arg`s); its first-start output gives the port and the admin token. The job is
//! a range of units over a module that reverses its input (no `verify` export), with one
//! replica and a quorum of one, so every accepted submission decides a unit. The server
//! answers a submission only once it is on disk, so accepted submissions per second are
//! durable units per second; at the end the job's `done` count must equal them.
//!
//! The volunteers send from many loopback addresses (127.1.0.1, 127.1.0.2, …: all of
//! 127.0.0.0/8 is loopback on Linux), one keep-alive client per address, as real volunteers
//! come from many addresses; the server's per-address rate limit would otherwise see one
//! address flooding. They wait out 503 and 429 for `Retry-After` (with jitter) and retry.
//!
//! `--overload-factor F` runs three phases of a third of `--duration` each: the closed loop
//! (measures capacity: the median of its seconds), an open loop offering F × that many units a
//! second, and the closed loop again (did it recover?). In the open loop each lease → submit
//! cycle is its own task, arriving whether or not the server keeps up; a lease answered 503 or
//! 429 ends its cycle (the volunteer's retry is one of the later arrivals), a result is
//! submitted until it is answered (as the web client keeps it). The generator bounds its own
//! memory and connections: at most `--max-cycles` cycles at once and `--connections` requests
//! in flight (over pooled keep-alive connections, opened beforehand); a cycle that cannot
//! start, or whose lease request still waits for a connection when the phase ends, is
//! dropped by the generator and counted.
//!
//! ```sh
//! cargo xtask load -- --volunteers 1000 --duration 20
//! cargo xtask load -- --volunteers 200 --overload-factor 10 --duration 30 \
//!     --server-arg=--max-in-flight=256
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cyclepool_shared::VolunteerId;
use cyclepool_shared::protocol::{Inputs, StatsResponse};
use cyclepool_shared::signing::SecretKey;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use common::{json_answer, reverse_no_verify_wat};
use phase::{Probe, Workload, recovery, run_phase};
use server::{ServerProcess, status_mib, ticks_per_second};
use traffic::{Load, Volunteer};

mod common;
// The binary's modules, in a folder of their own beside the other benches.
#[path = "load/phase.rs"]
mod phase;
#[path = "load/report.rs"]
mod report;
#[path = "load/server.rs"]
mod server;
#[path = "load/traffic.rs"]
mod traffic;

/// Keys are drawn from this seed, so runs differ only in timing.
const SEED: u64 = 0x10ad_5eed;

/// Connections of an overload run when `--connections` is not given: half the server's default
/// `--max-connections`.
const OVERLOAD_CONNECTIONS: usize = 4_096;

/// Source addresses when `--addresses` is not given: one per volunteer, up to this many.
const DEFAULT_ADDRESSES: usize = 256;

const USAGE: &str = "usage: load [--volunteers N] [--addresses N] [--max-units N] \
[--duration SECONDS] [--max-requests N] [--units N] [--server PATH] [--server-arg FLAG]... \
[--overload-factor F] [--max-cycles N] [--connections N] [--no-warm-up] [--exchange] [--threads N]
[--json]

  --addresses N        loopback source addresses the volunteers send from (127.1.0.1 on;
                       default: one per volunteer, at most 256)
  --server-arg FLAG    passed to the server, repeatable: --server-arg=--max-in-flight=256
  --overload-factor F  three phases of a third of --duration each: closed loop (capacity),
                       open loop offering F × capacity, closed loop again (recovery)
  --max-cycles N       open-loop cycles running at once (waiting included); arrivals past it
                       are dropped by the generator and counted (default 16384)
  --connections N      keep-alive connections in all, at least one per volunteer (default: in
                       an overload run 4096); open-loop requests wait for a free one
  --exchange           the closed loop hands in results and asks for --max-units more in one
                       request (POST /api/v1/exchange) instead of a lease and a submission each
  --no-warm-up         do not open the connections before a phase (volunteers then connect
                       all at once, which can overflow the server's accept queue)";

/// The command line.
#[derive(Debug, Clone)]
struct Options {
    volunteers: usize,
    /// Source addresses; 0 until parsed, then at least 1.
    addresses: usize,
    max_units: u32,
    duration: Duration,
    /// Lease and submit requests together, across all volunteers.
    max_requests: u64,
    units: u64,
    server: PathBuf,
    server_args: Vec<String>,
    overload_factor: Option<f64>,
    max_cycles: u32,
    /// Keep-alive connections in all clients' pools; 0 until parsed.
    connections: usize,
    /// Open the clients' connections just before each phase that needs them.
    warm_up: bool,
    /// The closed loop uses exchanges.
    exchange: bool,
    /// Worker threads of the generator's runtime.
    threads: usize,
    json: bool,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        volunteers: 1_000,
        addresses: 0,
        max_units: 1,
        duration: Duration::from_secs(20),
        max_requests: u64::MAX,
        units: 1_000_000,
        server: PathBuf::from("target/release/cyclepool-server"),
        server_args: Vec::new(),
        overload_factor: None,
        max_cycles: 16_384,
        connections: 0,
        warm_up: true,
        exchange: false,
        threads: 2,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // `--flag=value` or `--flag value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--json" => {
                options.json = true;
                continue;
            }
            "--no-warm-up" => {
                options.warm_up = false;
                continue;
            }
            "--exchange" => {
                options.exchange = true;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(value) => value.to_owned(),
            None => args
                .next()
                .with_context(|| format!("{flag} needs a value; {USAGE}"))?,
        };
        let context = || format!("invalid value for {flag}: {value}");
        match flag.as_str() {
            "--volunteers" => options.volunteers = value.parse().with_context(context)?,
            "--addresses" => options.addresses = value.parse().with_context(context)?,
            "--max-units" => options.max_units = value.parse().with_context(context)?,
            "--duration" => {
                options.duration =
                    Duration::from_secs_f64(value.parse::<f64>().with_context(context)?);
            }
            "--max-requests" => options.max_requests = value.parse().with_context(context)?,
            "--units" => options.units = value.parse().with_context(context)?,
            "--server" => options.server = PathBuf::from(value),
            "--server-arg" => options.server_args.push(value),
            "--overload-factor" => {
                options.overload_factor = Some(value.parse().with_context(context)?);
            }
            "--max-cycles" => options.max_cycles = value.parse().with_context(context)?,
            "--connections" => options.connections = value.parse().with_context(context)?,
            "--threads" => options.threads = value.parse().with_context(context)?,
            _ => bail!("unknown option {flag}; {USAGE}"),
        }
    }
    if options.volunteers == 0 || options.max_units == 0 || options.units == 0 {
        bail!("--volunteers, --max-units and --units must be positive");
    }
    if options.addresses == 0 {
        options.addresses = options.volunteers.min(DEFAULT_ADDRESSES);
    }
    if options.addresses > traffic::MAX_ADDRESSES {
        bail!("--addresses may be at most {}", traffic::MAX_ADDRESSES);
    }
    if options
        .overload_factor
        .is_some_and(|factor| !(factor.is_finite() && factor > 0.0))
    {
        bail!("--overload-factor must be a positive number");
    }
    if !(1..=1_000_000).contains(&options.max_cycles) {
        bail!("--max-cycles must be between 1 and 1,000,000");
    }
    if options.connections == 0 {
        // One per volunteer (none waits for another's request), and in an overload run
        // enough for the open loop's requests in flight.
        options.connections = options.volunteers;
        if options.overload_factor.is_some() {
            options.connections = options.connections.max(OVERLOAD_CONNECTIONS);
        }
    }
    // At least one per volunteer, so that the closed loop needs none beyond the pooled ones.
    options.connections = options.connections.max(options.volunteers);
    // A connection costs a file descriptor on both sides; the server accepts 8,192 by default.
    if options.connections > 16_384 {
        bail!("--connections may be at most 16,384");
    }
    Ok(options)
}
/// Uploads the module and creates the range job; returns its id and how long creation took.
async fn create_job(
    client: &reqwest::Client,
    server: &ServerProcess,
    units: u64,
) -> anyhow::Result<(u64, Duration)> {
    let module = wat::parse_str(reverse_no_verify_wat()).context("assembling the module")?;
    let response = client
        .put(server.url("/modules"))
        .bearer_auth(&server.admin_token)
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(module)
        .send()
        .await
        .context("uploading the module")?;
    let uploaded: Value = json_answer(response, "uploading the module").await?;
    let request = json!({
        "title": "Load generator",
        "description": "Each unit reverses its 16-byte range input.",
        "module_sha256": uploaded["module_sha256"],
        "inputs": Inputs::Range { start: 0, end: units, step: 1 },
        "policy": {
            "use_verify": false,
            "initial_replicas": 1,
            "min_quorum": 1,
            "lease_ttl_ms": 3_600_000,
            "unit_budget_ms": 60_000,
        },
    });
    let started = Instant::now();
    let response = client
        .post(server.url("/jobs"))
        .bearer_auth(&server.admin_token)
        .json(&request)
        .send()
        .await
        .context("creating the job")?;
    let created: Value = json_answer(response, "creating the job").await?;
    let took = started.elapsed();
    let job = created["job_id"]
        .as_u64()
        .with_context(|| format!("no job id in {created}"))?;
    Ok((job, took))
}

async fn run(options: &Options) -> anyhow::Result<Value> {
    let mut server = ServerProcess::start(&options.server, &options.server_args)?;
    let probe = Arc::new(Probe {
        pid: server.pid().to_string(),
        port: server.port(),
        ticks: ticks_per_second(),
    });
    let admin = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the http client")?;
    let rss_before_job = status_mib(&probe.pid, "VmRSS")?;
    let (job, creation) = create_job(&admin, &server, options.units).await?;
    let rss_after_job = status_mib(&probe.pid, "VmRSS")?;
    let hwm_after_job = status_mib(&probe.pid, "VmHWM")?;

    let mut rng = StdRng::seed_from_u64(SEED);
    let volunteers: Vec<Volunteer> = (0..options.volunteers)
        .map(|index| {
            let key = SecretKey::from_seed(&rng.random::<[u8; 32]>());
            let id = VolunteerId::from_bytes(*key.public_key().as_bytes());
            Volunteer {
                key,
                id,
                client: index % options.addresses,
            }
        })
        .collect();
    let connections_per_client = options.connections.div_ceil(options.addresses);
    let load = Arc::new(Load {
        clients: traffic::clients(options.addresses, connections_per_client)?,
        volunteers,
        lease_url: server.url("/lease"),
        results_url: server.url("/results"),
        exchange_url: server.url("/exchange"),
        max_units: options.max_units,
        exchange: options.exchange,
        connections_per_client,
        slots: (0..options.addresses)
            .map(|_| tokio::sync::Semaphore::new(connections_per_client))
            .collect(),
        max_requests: options.max_requests,
        requests: AtomicU64::new(0),
    });
    // The server closes a connection idle for its header timeout (10 s by default), so each
    // warm-up comes just before the phase that needs it.
    let health = server.url("/health");
    let mut warm_ups = Vec::new();
    let mut warm_up = async |before: &str, per_client: usize| -> anyhow::Result<()> {
        if options.warm_up {
            let started = Instant::now();
            load.warm_up(&health, per_client).await?;
            warm_ups.push(json!({
                "before": before,
                "connections": server::connections(probe.port)?.0,
                "seconds": started.elapsed().as_secs_f64(),
            }));
        }
        Ok(())
    };
    let per_volunteer = options.volunteers.div_ceil(options.addresses);

    let mut phases = Vec::new();
    let mut verdict = Value::Null;
    if let Some(factor) = options.overload_factor {
        let third = options.duration / 3;
        warm_up("1 capacity", per_volunteer).await?;
        let capacity = run_phase("1 capacity", &load, &probe, Workload::Closed, third).await?;
        if capacity.median_units_per_s <= 0.0 {
            bail!("phase 1 completed no units, so there is no capacity to multiply");
        }
        let cycles_per_s = factor * capacity.median_units_per_s / f64::from(options.max_units);
        let overload = Workload::Open {
            cycles_per_s,
            max_cycles: options.max_cycles,
        };
        warm_up("2 overload", connections_per_client).await?;
        let overloaded = run_phase("2 overload", &load, &probe, overload, third).await?;
        let after = run_phase("3 recovery", &load, &probe, Workload::Closed, third).await?;
        verdict = recovery(&capacity, &after);
        phases.extend([capacity, overloaded, after]);
    } else {
        warm_up("run", per_volunteer).await?;
        phases.push(run_phase("run", &load, &probe, Workload::Closed, options.duration).await?);
    }
    let hwm_end = status_mib(&probe.pid, "VmHWM")?;

    let response = admin
        .get(server.url(&format!("/jobs/{job}")))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .context("reading the job's progress")?;
    let progress: Value = json_answer(response, "reading the job's progress").await?;
    let response = admin
        .get(server.url("/stats"))
        .send()
        .await
        .context("reading the stats")?;
    let stats: StatsResponse = json_answer(response, "reading the stats").await?;
    let validated = progress["done"]
        .as_u64()
        .or_else(|| {
            stats
                .jobs
                .iter()
                .find(|stats| stats.job_id.0 == job)
                .map(|stats| stats.done)
        })
        .context("no progress for the job")?;
    server.stop()?;

    let accepted: u64 = phases.iter().map(|phase| phase.accepted).sum();
    let unknown: u64 = phases.iter().map(|phase| phase.unknown_outcomes).sum();
    let seconds: f64 = phases
        .iter()
        .map(|phase| phase.report["seconds"].as_f64().unwrap_or(0.0))
        .sum();
    let mut report = json!({
        "volunteers": options.volunteers,
        "addresses": options.addresses,
        "max_units": options.max_units,
        "exchange": options.exchange,
        "server_args": options.server_args,
        "units_in_job": options.units,
        "job_creation_s": creation.as_secs_f64(),
        "warm_ups": warm_ups,
        "accepted": accepted,
        "validated": validated,
        // Acknowledged results the store does not have; submissions left unanswered may
        // account for validated units beyond the accepted ones, never for fewer.
        "lost": accepted.saturating_sub(validated),
        "validated_per_s": validated as f64 / seconds,
        "server_rss_before_job_mib": rss_before_job,
        "server_rss_after_job_mib": rss_after_job,
        "server_peak_rss_after_job_mib": hwm_after_job,
        "server_peak_rss_run_mib": hwm_end,
        "durable_writes": stats.durability.durable_writes,
        "flushes": stats.durability.flushes,
    });
    if validated > accepted + unknown {
        eprintln!(
            "the job has {validated} units done, more than the {accepted} accepted and \
             {unknown} unanswered submissions"
        );
    }
    if options.overload_factor.is_some() {
        report["overload_factor"] = json!(options.overload_factor);
        report["phases"] = phases.into_iter().map(|phase| phase.report).collect();
        report["recovery"] = verdict;
    } else if let (Some(fields), Some(phase)) = (
        report.as_object_mut(),
        phases.pop().and_then(|phase| match phase.report {
            Value::Object(fields) => Some(fields),
            _ => None,
        }),
    ) {
        // One phase: its figures at the top level, as before phases existed.
        fields.extend(phase);
    }
    Ok(report)
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(run(&options))?;
    if options.json {
        println!("{report}");
    } else if report.get("phases").is_some() {
        report::print_overload(&report);
    } else {
        report::print_table(&report);
    }
    if report["lost"].as_u64() != Some(0) {
        bail!(
            "{} acknowledged results are not in the store",
            report["lost"]
        );
    }
    if report["recovery"]["recovered"].as_bool() == Some(false) {
        bail!("the server did not recover after the overload");
    }
    Ok(())
}
