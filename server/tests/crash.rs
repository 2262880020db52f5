//! Crash safety of the real binary: SIGKILL it while results are in flight, audit the store
//! offline, restart, and repeat; no acknowledged result may be lost and no unit done twice.
//!
//! The job is created through the distributor API with the admin token the binary prints at
//! first start, from the WAT module the API tests use; the audit re-runs it in wasmi and checks
//! every stored result's signature, so the volunteers sign theirs like real clients.

#[path = "api/test_module.rs"]
mod test_module;

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{
    CreateJob, Inputs, JobCreated, LeaseRequest, LeaseResponse, ModuleUploaded, PROTOCOL_VERSION,
    ResultSubmission, StatsResponse,
};
use cyclepool_shared::signing::{Purpose, SecretKey, result_message};
use cyclepool_shared::{LeaseId, Sha256Digest, VolunteerId};
use serde::Deserialize;
use tokio::task::JoinSet;

use test_module::{expected_output, range_input, reverse_module};

const SERVER: &str = env!("CARGO_BIN_EXE_cyclepool-server");
/// The digest every lease must name: the uploaded test module's.
static MODULE_SHA256: LazyLock<Sha256Digest> =
    LazyLock::new(|| Sha256Digest::of(&reverse_module()));
/// Units in the job: enough that the job outlasts every kill cycle.
fn units() -> u64 {
    (kill_cycles() as u64 * 2 * MAX_ACKS_PER_CYCLE as u64).max(400)
}
const LEASE_TTL_MS: u64 = 1_500;
const WORKERS: u8 = 8;
/// Kill cycles: 3 by default (CI); `CYCLEPOOL_CRASH_CYCLES=100` for the long run
/// (`scripts/crash-loop.sh`).
fn kill_cycles() -> usize {
    std::env::var("CYCLEPOOL_CRASH_CYCLES")
        .ok()
        .and_then(|cycles| cycles.parse().ok())
        .unwrap_or(3)
}
/// New acknowledgements to wait for before each kill...
const MAX_ACKS_PER_CYCLE: usize = 60;

/// How many new acknowledgements to wait for before the kill of `cycle`: 10 to 60, varying
/// from cycle to cycle so that kills land at different moments of the work.
fn acks_before_kill(cycle: usize) -> usize {
    10 + (cycle * 37) % (MAX_ACKS_PER_CYCLE - 9)
}
/// ...but never longer than this.
const CYCLE_LIMIT: Duration = Duration::from_secs(20);
/// How long the last server life may take to finish the job, waiting out pre-crash leases.
/// How long finishing the job may take after the last kill (scales with its size).
fn finish_limit() -> Duration {
    Duration::from_secs(25) + Duration::from_millis(units() * 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_results_survive_sigkill_and_the_job_completes_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let shared = Arc::new(Shared::default());

    // First start: the binary prints the admin token once; the job is created with it.
    let server = Server::start(data.path(), &log, true).await;
    let token = server
        .admin_token
        .clone()
        .expect("the first start prints the admin token");
    create_job(&server.base, &token).await;
    let mut server = Some(server);

    for cycle in 1..=kill_cycles() {
        let mut server = match server.take() {
            Some(server) => server,
            None => Server::start(data.path(), &log, false).await,
        };
        let before = shared.acknowledged().len();
        let crew = Crew::start(&server.base, &shared);
        let started = Instant::now();
        while shared.acknowledged().len() < before + acks_before_kill(cycle)
            && started.elapsed() < CYCLE_LIMIT
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // SIGKILL while the crew is still leasing and submitting.
        server.kill();
        let cut_off = crew.stop().await;
        let acknowledged = shared.acknowledged();
        eprintln!(
            "cycle {cycle}: killed after {:?} with {} results acknowledged ({} new), \
             {cut_off} requests cut off",
            started.elapsed(),
            acknowledged.len(),
            acknowledged.len() - before
        );
        assert!(
            acknowledged.len() > before,
            "cycle {cycle}: no result was acknowledged in {CYCLE_LIMIT:?}"
        );

        let report = audit(data.path(), &log).await;
        let job = check_report(&report, &acknowledged, &log);
        eprintln!(
            "cycle {cycle}: audit: {} pending, {} leased, {} done",
            job.pending, job.leased, job.done
        );
    }

    // One more life, this time until the job is done; then a clean stop.
    let mut server = Server::start(data.path(), &log, false).await;
    let crew = Crew::start(&server.base, &shared);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut done = 0;
    let finish_limit = finish_limit();
    let units = units();
    while started.elapsed() < finish_limit {
        let stats: StatsResponse = client
            .get(format!("{}/api/v1/stats", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats.jobs.len(), 1, "{stats:?}");
        done = stats.jobs[0].done;
        if done == units {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        done, units,
        "the job did not finish within {finish_limit:?}"
    );
    crew.stop().await;
    server.terminate().await;

    let acknowledged = shared.acknowledged();
    let report = audit(data.path(), &log).await;
    let job = check_report(&report, &acknowledged, &log);
    assert_eq!((job.pending, job.leased, job.done), (0, 0, units));
    assert_eq!(job.verified, units);
    let results: Vec<u64> = report.results.iter().map(|entry| entry.unit).collect();
    assert_eq!(
        results,
        (0..units).collect::<Vec<_>>(),
        "one result per unit"
    );
    let unexpected = shared.unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
}

/// Uploads the test module and creates the job of [`units`] units, with the admin token.
async fn create_job(base: &str, token: &str) {
    let client = reqwest::Client::new();
    let module = reverse_module();
    let response = client
        .put(format!("{base}/api/v1/modules"))
        .bearer_auth(token)
        .body(module.clone())
        .send()
        .await
        .expect("uploading the module");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let uploaded: ModuleUploaded = response.json().await.expect("parsing the upload answer");
    assert_eq!(uploaded.module_sha256, *MODULE_SHA256);
    let request = CreateJob {
        title: "Crash test".into(),
        description: "Reverses 400 range inputs while the server is killed.".into(),
        module_sha256: uploaded.module_sha256,
        inputs: Inputs::Range {
            start: 0,
            end: units(),
            step: 1,
        },
        policy: JobPolicy {
            lease_ttl_ms: LEASE_TTL_MS,
            unit_budget_ms: 1_000,
            // Every kill expires the leases in flight; a unit unlucky enough to be in flight at
            // several kills must not fail for it (this test is about durability, not limits).
            max_error_results: 1_000,
            ..JobPolicy::default()
        },
        expires_in_ms: None,
        group: None,
        priority: 0,
        weight: 1,
        signature: None,
        category: Default::default(),
    };
    let response = client
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(token)
        .json(&request)
        .send()
        .await
        .expect("creating the job");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let created: JobCreated = response.json().await.expect("parsing the job answer");
    assert_eq!(created.units, units());
}

/// The real server binary, started on a free port.
struct Server {
    child: Child,
    base: String,
    /// The admin token, when this start printed one (the first start on a store).
    admin_token: Option<String>,
    /// Kept open so that the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts the binary; with `expect_token`, also reads the admin token it prints.
    async fn start(data_dir: &Path, log: &Path, expect_token: bool) -> Server {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("opening the server log");
        let mut child = Command::new(SERVER)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--api-only", "--demo-units", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("starting the server binary");
        let stdout = child.stdout.take().expect("piped stdout");
        // The address line and the token line, in whatever order they come; the token only
        // when expected (later starts print none, and would leave this waiting).
        let (lines, address, admin_token, stdout) = tokio::task::spawn_blocking(move || {
            let mut stdout = BufReader::new(stdout);
            let (mut lines, mut address, mut token) = (Vec::new(), None, None);
            while address.is_none() || (expect_token && token.is_none()) {
                let mut line = String::new();
                if stdout.read_line(&mut line)? == 0 {
                    break;
                }
                let text = line.trim();
                if let Some(rest) = text.strip_prefix("listening on ") {
                    address = Some(rest.to_owned());
                } else if text.starts_with("admin token") {
                    token = text.rsplit(' ').next().map(str::to_owned);
                }
                lines.push(line);
            }
            Ok::<_, std::io::Error>((lines, address, token, stdout))
        })
        .await
        .expect("the stdout reader panicked")
        .expect("reading the server's stdout");
        let Some(address) = address.filter(|_| admin_token.is_some() || !expect_token) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not say where it listens, or printed no admin token ({lines:?}); \
                 its log:\n{}",
                read_log(log)
            );
        };
        if let Some(token) = &admin_token {
            assert!(token.starts_with("cp_admin_"), "{lines:?}");
        }
        Server {
            base: address,
            admin_token,
            child,
            _stdout: stdout,
        }
    }

    /// SIGKILL: no graceful shutdown, no final flush.
    fn kill(&mut self) {
        self.child.kill().expect("killing the server");
        self.child.wait().expect("reaping the server");
    }

    /// SIGTERM, and wait for the graceful shutdown to finish.
    async fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                assert!(status.success(), "the server exited with {status}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only matters when a test fails midway: never leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the volunteers learnt, across server lives.
#[derive(Default)]
struct Shared {
    /// Every result answered with 200: (lease, output digest).
    acknowledged: Mutex<Vec<(LeaseId, Sha256Digest)>>,
    /// Answers that should never happen (a 5xx, or a 4xx other than an expired lease).
    unexpected: Mutex<Vec<String>>,
}

impl Shared {
    fn acknowledged(&self) -> Vec<(LeaseId, Sha256Digest)> {
        self.acknowledged.lock().expect("acknowledged lock").clone()
    }
}

/// Volunteers looping lease, compute, submit against one server life.
struct Crew {
    stop: Arc<AtomicBool>,
    cut_off: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
}

impl Crew {
    fn start(base: &str, shared: &Arc<Shared>) -> Crew {
        let stop = Arc::new(AtomicBool::new(false));
        let cut_off = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("building the http client");
        let mut tasks = JoinSet::new();
        for n in 1..=WORKERS {
            let secret = SecretKey::from_seed(&[n; 32]);
            let volunteer = Volunteer {
                id: VolunteerId::from_bytes(*secret.public_key().as_bytes()),
                secret,
                client: client.clone(),
                base: base.to_owned(),
                shared: Arc::clone(shared),
                stop: Arc::clone(&stop),
            };
            let cut_off = Arc::clone(&cut_off);
            tasks.spawn(async move {
                if volunteer.run().await.is_err() {
                    cut_off.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Crew {
            stop,
            cut_off,
            tasks,
        }
    }

    /// Stops the crew; returns how many volunteers lost a request to a dead server.
    async fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(joined) = self.tasks.join_next().await {
                joined.expect("a volunteer task panicked");
            }
        })
        .await
        .expect("the volunteers did not stop");
        self.cut_off.load(Ordering::Relaxed)
    }
}

struct Volunteer {
    /// The public half of `secret`: the audit fails unless every stored result is signed.
    id: VolunteerId,
    secret: SecretKey,
    client: reqwest::Client,
    base: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Volunteer {
    /// Works until told to stop (`Ok`) or until the server stops answering (`Err`).
    async fn run(&self) -> Result<(), reqwest::Error> {
        while !self.stop.load(Ordering::Relaxed) {
            let request = LeaseRequest {
                proof: None,
                protocol: PROTOCOL_VERSION,
                volunteer: self.id,
                max_units: 2,
                exclude_jobs: Vec::new(),
                exclude_categories: Vec::new(),
                site: None,
                work_ms: None,
            };
            let response = self
                .client
                .post(format!("{}/api/v1/lease", self.base))
                .json(&request)
                .send()
                .await?;
            if !response.status().is_success() {
                self.unexpected(format!("lease answered {}", response.status()));
                continue;
            }
            let leases: LeaseResponse = response.json().await?;
            if leases.leases.is_empty() {
                // Everything left is leased (to leases from before a crash, until they expire).
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            for lease in leases.leases {
                assert_eq!(lease.input_sha256, Sha256Digest::of(&lease.input));
                assert_eq!(lease.module_sha256, *MODULE_SHA256);
                assert_eq!(lease.input, range_input(lease.unit, lease.unit + 1));
                let output = expected_output(&lease.input);
                let output_sha256 = Sha256Digest::of(&output);
                let message = result_message(&lease.lease_id, &lease.nonce, &output_sha256);
                let submission = ResultSubmission {
                    protocol: PROTOCOL_VERSION,
                    volunteer: self.id,
                    lease_id: lease.lease_id,
                    nonce: lease.nonce,
                    output,
                    output_sha256,
                    signature: self.secret.sign(Purpose::Result, &message),
                    compute_ms: 1,
                };
                let response = self
                    .client
                    .post(format!("{}/api/v1/results", self.base))
                    .json(&submission)
                    .send()
                    .await?;
                match response.status().as_u16() {
                    // The server answers only once the result is on disk: this is the promise
                    // under test, so it counts from the status line on.
                    200 => self
                        .shared
                        .acknowledged
                        .lock()
                        .expect("acknowledged lock")
                        .push((submission.lease_id, submission.output_sha256)),
                    // A volunteer starved of CPU can miss a 1.5 s deadline; that is allowed.
                    410 => {}
                    status => self.unexpected(format!(
                        "result answered {status}: {}",
                        response.text().await.unwrap_or_default()
                    )),
                }
            }
        }
        Ok(())
    }

    fn unexpected(&self, what: String) {
        self.shared
            .unexpected
            .lock()
            .expect("unexpected lock")
            .push(what);
    }
}

/// The JSON report of `cyclepool-server audit --list-results`.
#[derive(Debug, Deserialize)]
struct Report {
    ok: bool,
    jobs: Vec<JobAudit>,
    problems: Vec<String>,
    results: Vec<ResultEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct JobAudit {
    units: u64,
    units_present: u64,
    pending: u64,
    leased: u64,
    done: u64,
    verified: u64,
    mismatches: Vec<u64>,
}

#[derive(Debug, Deserialize)]
struct ResultEntry {
    unit: u64,
    lease_id: LeaseId,
    output_sha256: Sha256Digest,
}

/// Runs the offline audit on a stopped server's store.
async fn audit(data_dir: &Path, log: &Path) -> Report {
    let data_dir = data_dir.to_owned();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(SERVER)
            .args(["audit", "--list-results", "--data-dir"])
            .arg(&data_dir)
            .output()
            .expect("running the audit")
    })
    .await
    .expect("the audit task panicked");
    eprintln!("audit took {:?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the audit failed ({}): {stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        read_log(log)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("audit report ({err}): {stdout}"))
}

/// Checks what must hold after any crash; returns the job's tally.
fn check_report(report: &Report, acknowledged: &[(LeaseId, Sha256Digest)], log: &Path) -> JobAudit {
    assert!(
        report.ok && report.problems.is_empty(),
        "audit problems: {:?}\nserver log:\n{}",
        report.problems,
        read_log(log)
    );
    assert_eq!(report.jobs.len(), 1, "{:?}", report.jobs);
    let job = report.jobs[0].clone();
    assert_eq!((job.units, job.units_present), (units(), units()));
    assert_eq!(job.pending + job.leased + job.done, units(), "{job:?}");
    assert!(job.mismatches.is_empty(), "{job:?}");
    assert_eq!(job.verified, job.done, "{job:?}");

    // Exactly one result per done unit, and every acknowledged result among them.
    assert_eq!(report.results.len() as u64, job.done);
    let units: HashSet<u64> = report.results.iter().map(|entry| entry.unit).collect();
    assert_eq!(units.len(), report.results.len(), "a unit has two results");
    let stored: HashSet<(LeaseId, Sha256Digest)> = report
        .results
        .iter()
        .map(|entry| (entry.lease_id, entry.output_sha256))
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|ack| !stored.contains(ack))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged results were lost: {lost:?}",
        lost.len()
    );
    job
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_else(|err| format!("(no log: {err})"))
}
