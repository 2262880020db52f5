//! The load generator: many simulated volunteers drive the real server, run as a separate
//! process on loopback, through lease → compute → sign → submit cycles for a bounded time, and
//! it reports completed units per second, lease and submit latency, and the server's CPU and
//! peak memory (read from `/proc`, so the generator's own work is counted apart).
//!
//! The server starts on a fresh temporary store with `--api-only --listen 127.0.0.1:0`; its
//! first-start output gives the port and the admin token. The job is a range of units over a
//! module that reverses its input (no `verify` export), with one replica and a quorum of one,
//! so every accepted submission decides a unit. The server answers a submission only once it
//! is on disk, so accepted submissions per second are durable units per second.
//!
//! ```sh
//! cargo xtask load -- --volunteers 1000 --duration 20
//! ```

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cyclepool_shared::protocol::{
    Inputs, Lease, LeaseRequest, LeaseResponse, PROTOCOL_VERSION, ResultSubmission, StatsResponse,
    SubmitResponse, SubmitStatus,
};
use cyclepool_shared::signing::{Purpose, SecretKey, result_message};
use cyclepool_shared::{Sha256Digest, VolunteerId};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use common::{correct_output, json_answer, reverse_no_verify_wat};

mod common;

/// Keys are drawn from this seed, so runs differ only in timing.
const SEED: u64 = 0x10ad_5eed;

/// The real client waits `retry_after_ms` after an empty answer; the generator waits less, so
/// that it notices new work soon, but not so little that idle volunteers flood the server.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// How long the server gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: load [--volunteers N] [--max-units N] [--duration SECONDS] \
[--max-requests N] [--units N] [--server PATH] [--connections N] [--threads N] [--json]";

/// The command line.
#[derive(Debug, Clone)]
struct Options {
    volunteers: usize,
    max_units: u32,
    duration: Duration,
    /// Lease and submit requests together, across all volunteers.
    max_requests: u64,
    units: u64,
    server: PathBuf,
    /// Idle keep-alive connections the shared client keeps to the server.
    connections: usize,
    /// Worker threads of the generator's runtime.
    threads: usize,
    json: bool,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        volunteers: 1_000,
        max_units: 1,
        duration: Duration::from_secs(20),
        max_requests: u64::MAX,
        units: 1_000_000,
        server: PathBuf::from("target/release/cyclepool-server"),
        connections: 0,
        threads: 2,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--json" => {
                options.json = true;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        let context = || format!("invalid value for {flag}: {value}");
        match flag.as_str() {
            "--volunteers" => options.volunteers = value.parse().with_context(context)?,
            "--max-units" => options.max_units = value.parse().with_context(context)?,
            "--duration" => {
                options.duration =
                    Duration::from_secs_f64(value.parse::<f64>().with_context(context)?);
            }
            "--max-requests" => options.max_requests = value.parse().with_context(context)?,
            "--units" => options.units = value.parse().with_context(context)?,
            "--server" => options.server = PathBuf::from(value),
            "--connections" => options.connections = value.parse().with_context(context)?,
            "--threads" => options.threads = value.parse().with_context(context)?,
            _ => bail!("unknown option {flag}; {USAGE}"),
        }
    }
    if options.volunteers == 0 || options.max_units == 0 || options.units == 0 {
        bail!("--volunteers, --max-units and --units must be positive");
    }
    if options.connections == 0 {
        // One connection per volunteer: none waits for another's request to finish.
        options.connections = options.volunteers;
    }
    Ok(options)
}

/// The server as a child process, with what its first start printed.
struct ServerProcess {
    child: Child,
    base: String,
    admin_token: String,
    /// Removed after the server has stopped (fields drop after `Drop::drop`).
    _data_dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start(binary: &PathBuf) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let log = std::fs::File::create(data_dir.path().join("server.log"))
            .context("creating the server's log file")?;
        let mut child = Command::new(binary)
            .args(["--api-only", "--demo-units", "0", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path().join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut base, mut admin_token) = (None, None);
        // The server prints where it listens, then (first start only) its new admin token.
        while base.is_none() || admin_token.is_none() {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!("the server stopped before printing its address and admin token");
            };
            let line = line.context("reading the server's output")?;
            if let Some(address) = line.strip_prefix("listening on ") {
                base = Some(format!("{}/api/v1", address.trim()));
            } else if line.starts_with("admin token") {
                admin_token = line.rsplit(' ').next().map(str::to_owned);
            }
        }
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let (Some(base), Some(admin_token)) = (base, admin_token) else {
            bail!("the server printed no address or no admin token");
        };
        if !base.starts_with("http://127.0.0.1:") {
            bail!("the server listens on {base}, not on loopback");
        }
        Ok(Self {
            child,
            base,
            admin_token,
            _data_dir: data_dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it has not stopped within [`STOP_GRACE`].
    fn stop(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_GRACE {
            if self
                .child
                .try_wait()
                .context("waiting for the server")?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("the server did not stop within {STOP_GRACE:?} of SIGTERM; killing it");
        self.child.kill().context("killing the server")?;
        self.child.wait().context("waiting for the server")?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    /// A run that fails half-way must not leave the server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) of a process, in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start with field 3, so utime (14) and stime (15) are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields.get(index).context("a short /proc stat line")?;
        Ok(field.parse::<u64>().context("a /proc stat field")? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / ticks_per_second)
}

/// A field of `/proc/<pid>/status` in kB (`VmHWM`, `VmRSS`), as MiB.
fn status_mib(pid: &str, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("an empty status line")?
        .parse()
        .context("a status value")?;
    Ok(kib / 1024.0)
}

/// Clock ticks per second, for reading `/proc` CPU times.
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What the volunteers share: the client, the server's address, the limits and the tallies.
struct Shared {
    client: reqwest::Client,
    lease_url: String,
    results_url: String,
    deadline: Instant,
    max_units: u32,
    max_requests: u64,
    requests: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    empty_leases: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    /// Takes one request from the budget; false once time or the budget has run out.
    fn may_send(&self) -> bool {
        Instant::now() < self.deadline
            && self.requests.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }
}

/// Latencies one volunteer measured, in microseconds.
#[derive(Default)]
struct Latencies {
    lease: Vec<u32>,
    submit: Vec<u32>,
}

fn micros(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// One simulated volunteer's loop until time or the request budget runs out.
async fn volunteer(key: SecretKey, shared: Arc<Shared>) -> anyhow::Result<Latencies> {
    let id = VolunteerId::from_bytes(*key.public_key().as_bytes());
    let mut latencies = Latencies::default();
    while shared.may_send() {
        let request = LeaseRequest {
            proof: None,
            protocol: PROTOCOL_VERSION,
            volunteer: id,
            max_units: shared.max_units,
            exclude_jobs: Vec::new(),
            exclude_categories: Vec::new(),
            site: None,
        };
        let sent = Instant::now();
        let response = shared
            .client
            .post(&shared.lease_url)
            .json(&request)
            .send()
            .await
            .context("asking for a lease")?;
        let answer: LeaseResponse = json_answer(response, "asking for a lease").await?;
        latencies.lease.push(micros(sent));
        if answer.leases.is_empty() {
            shared.empty_leases.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(IDLE_WAIT).await;
            continue;
        }
        for lease in &answer.leases {
            // Units leased but not submitted when the budget runs out stay out: the job is
            // far larger than a run, so they cost nothing but the lease.
            if !shared.may_send() {
                break;
            }
            let submission = compute_and_sign(&key, id, lease);
            let sent = Instant::now();
            let response = shared
                .client
                .post(&shared.results_url)
                .json(&submission)
                .send()
                .await
                .context("submitting a result")?;
            if response.status().is_client_error() {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                let text = response.text().await.unwrap_or_default();
                eprintln!("refused: {text}");
                continue;
            }
            let answer: SubmitResponse = json_answer(response, "submitting a result").await?;
            latencies.submit.push(micros(sent));
            match answer.status {
                SubmitStatus::Accepted => shared.accepted.fetch_add(1, Ordering::Relaxed),
                SubmitStatus::Duplicate => shared.duplicates.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
    Ok(latencies)
}

/// The tiny compute (reverse the input) and the signature, as the web client does them.
fn compute_and_sign(key: &SecretKey, id: VolunteerId, lease: &Lease) -> ResultSubmission {
    let output = correct_output(&lease.input);
    let output_sha256 = Sha256Digest::of(&output);
    let message = result_message(&lease.lease_id, &lease.nonce, &output_sha256);
    ResultSubmission {
        protocol: PROTOCOL_VERSION,
        volunteer: id,
        lease_id: lease.lease_id,
        nonce: lease.nonce,
        output_sha256,
        output,
        signature: key.sign(Purpose::Result, &message),
        compute_ms: 1,
    }
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

/// The `p`-th percentile of sorted values, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

async fn run(options: &Options) -> anyhow::Result<Value> {
    let ticks = ticks_per_second();
    let mut server = ServerProcess::start(&options.server)?;
    let pid = server.pid().to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.connections)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the http client")?;
    let rss_before_job = status_mib(&pid, "VmRSS")?;
    let (job, creation) = create_job(&client, &server, options.units).await?;
    let rss_after_job = status_mib(&pid, "VmRSS")?;
    let hwm_after_job = status_mib(&pid, "VmHWM")?;

    let mut rng = StdRng::seed_from_u64(SEED);
    let keys: Vec<SecretKey> = (0..options.volunteers)
        .map(|_| SecretKey::from_seed(&rng.random::<[u8; 32]>()))
        .collect();
    let server_cpu_start = cpu_seconds(&pid, ticks)?;
    let own_cpu_start = cpu_seconds("self", ticks)?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        client: client.clone(),
        lease_url: server.url("/lease"),
        results_url: server.url("/results"),
        deadline: started + options.duration,
        max_units: options.max_units,
        max_requests: options.max_requests,
        requests: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        empty_leases: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|key| tokio::spawn(volunteer(key, Arc::clone(&shared))))
        .collect();
    let mut lease = Vec::new();
    let mut submit = Vec::new();
    let mut failures = 0_u64;
    for task in tasks {
        match task.await.context("a volunteer task panicked")? {
            Ok(latencies) => {
                lease.extend(latencies.lease);
                submit.extend(latencies.submit);
            }
            Err(err) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("a volunteer stopped: {err:#}");
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid, ticks)? - server_cpu_start;
    let own_cpu = cpu_seconds("self", ticks)? - own_cpu_start;
    let rss_end = status_mib(&pid, "VmRSS")?;
    let hwm_end = status_mib(&pid, "VmHWM")?;

    let response = client
        .get(server.url(&format!("/jobs/{job}")))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .context("reading the job's progress")?;
    let progress: Value = json_answer(response, "reading the job's progress").await?;
    let response = client
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

    lease.sort_unstable();
    submit.sort_unstable();
    let accepted = shared.accepted.load(Ordering::Relaxed);
    let durability = stats.durability;
    Ok(json!({
        "volunteers": options.volunteers,
        "max_units": options.max_units,
        "units_in_job": options.units,
        "job_creation_s": creation.as_secs_f64(),
        "seconds": seconds,
        "accepted": accepted,
        "validated": validated,
        "units_per_s": accepted as f64 / seconds,
        "validated_per_s": validated as f64 / seconds,
        "duplicates": shared.duplicates.load(Ordering::Relaxed),
        "refused": shared.refused.load(Ordering::Relaxed),
        "volunteer_errors": failures,
        "empty_leases": shared.empty_leases.load(Ordering::Relaxed),
        "lease_requests": lease.len(),
        "lease_p50_ms": percentile_ms(&lease, 50.0),
        "lease_p99_ms": percentile_ms(&lease, 99.0),
        "submit_p50_ms": percentile_ms(&submit, 50.0),
        "submit_p99_ms": percentile_ms(&submit, 99.0),
        "server_cpu_pct": 100.0 * server_cpu / seconds,
        "generator_cpu_pct": 100.0 * own_cpu / seconds,
        "server_rss_before_job_mib": rss_before_job,
        "server_rss_after_job_mib": rss_after_job,
        "server_peak_rss_after_job_mib": hwm_after_job,
        "server_rss_end_mib": rss_end,
        "server_peak_rss_mib": hwm_end,
        "durable_writes": durability.durable_writes,
        "flushes": durability.flushes,
    }))
}

fn print_table(report: &Value) {
    let number = |key: &str| report[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "| volunteers | max_units | units/s (durable) | validated/s | lease p50 / p99 (ms) | \
         submit p50 / p99 (ms) | server CPU | generator CPU | server peak RSS (MiB) | \
         writes per flush |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let writes = number("durable_writes");
    let flushes = number("flushes");
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} % | {:.0} % | {:.0} | {:.1} |",
        report["volunteers"],
        report["max_units"],
        number("units_per_s"),
        number("validated_per_s"),
        number("lease_p50_ms"),
        number("lease_p99_ms"),
        number("submit_p50_ms"),
        number("submit_p99_ms"),
        number("server_cpu_pct"),
        number("generator_cpu_pct"),
        number("server_peak_rss_mib"),
        if flushes > 0.0 { writes / flushes } else { 0.0 },
    );
    println!(
        "job of {} units created in {:.3} s; server RSS {:.0} MiB before the job, {:.0} MiB \
         after it (peak {:.0}), {:.0} MiB at the end; {} accepted, {} validated in {:.1} s; \
         {} empty leases, {} refused, {} volunteer errors",
        report["units_in_job"],
        number("job_creation_s"),
        number("server_rss_before_job_mib"),
        number("server_rss_after_job_mib"),
        number("server_peak_rss_after_job_mib"),
        number("server_rss_end_mib"),
        report["accepted"],
        report["validated"],
        number("seconds"),
        report["empty_leases"],
        report["refused"],
        report["volunteer_errors"],
    );
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
    } else {
        print_table(&report);
    }
    Ok(())
}
