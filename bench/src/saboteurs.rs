//! The saboteur simulation: drives the real server over HTTP on loopback with honest
//! volunteers and saboteurs, and measures how many wrong results the server accepts and how
//! many computations it spends per accepted unit under each validation policy.
//!
//! Each scenario gets a fresh server (in-process, `127.0.0.1:0`, temporary store) and one job
//! whose module has no `verify` export, so only replication (or whatever validation the
//! policy asks for) can catch a wrong output. Volunteers lease one unit at a time, compute,
//! sign and submit until the job has no more work for them. The figures come from the server
//! itself: `GET /api/v1/stats` and the admin results download.
//!
//! ```sh
//! cargo run --release -p cyclepool-bench --bin saboteurs -- --units 2000 --volunteers 100
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use cyclepool_server::ServerError;
use cyclepool_server::config::Config;
use cyclepool_shared::protocol::{
    Inputs, Lease, LeaseRequest, LeaseResponse, PROTOCOL_VERSION, ResultSubmission, StatsResponse,
    SubmitResponse, SubmitStatus,
};
use cyclepool_shared::signing::{Purpose, SecretKey, result_message};
use cyclepool_shared::{Sha256Digest, Signature, VolunteerId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::{correct_output, json_answer, reverse_no_verify_wat};

mod common;

/// Every random choice derives from this seed, so runs are reproducible up to the order in
/// which concurrent volunteers reach the server.
const SEED: u64 = 0x5ab0_7a6e;

/// The admin token of the simulated portal (never leaves loopback).
const ADMIN_TOKEN: &str = "cp_admin_saboteur_simulation_0123456789abcdef0123456789abcdef";

/// What every scenario's policy starts from; the scenario's JSON is merged over it, so new
/// policy fields can be tried without changing this file.
const BASE_POLICY: &str =
    r#"{"use_verify": false, "lease_ttl_ms": 600000, "unit_budget_ms": 60000}"#;

/// A volunteer that got this many empty answers in a row, while no lease was out anywhere,
/// stops: nothing can come back that would create more work.
const EMPTY_ANSWERS_TO_STOP: u32 = 2;

/// The real client waits `retry_after_ms` (seconds) after an empty answer; the simulation
/// compresses that wait so that a scenario ends soon after its job does.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// How often the monitor reads the job's progress.
const MONITOR_PERIOD: Duration = Duration::from_millis(100);

/// Outputs a replaying saboteur may pick from (the most recent submissions).
const REPLAY_POOL: usize = 256;

/// How saboteurs choose their wrong outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Random bytes: no two saboteurs agree.
    Independent,
    /// The same wrong output for the same input (the correct one XOR 0x5a): a false quorum.
    Colluding,
    /// Another volunteer's earlier output for a different unit, first with that volunteer's
    /// signature (which the server must refuse), then signed afresh.
    Replaying,
}

impl Mode {
    fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "off" | "independent" => Ok(Self::Independent),
            "on" | "colluding" => Ok(Self::Colluding),
            "replay" | "replaying" => Ok(Self::Replaying),
            other => bail!("unknown saboteur mode {other:?} (off, on, replay)"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Independent => "off",
            Self::Colluding => "on",
            Self::Replaying => "replay",
        }
    }
}

/// The command line.
#[derive(Debug)]
struct Options {
    units: u64,
    volunteers: usize,
    sabotage_rate: f64,
    /// Saboteur fractions in percent.
    fractions: Vec<u32>,
    modes: Vec<Mode>,
    policies: Vec<(String, Value)>,
    only_policy: Option<String>,
    time_limit: Duration,
}

const USAGE: &str = "usage: saboteurs [--units N] [--volunteers N] [--sabotage-rate P] \
[--fractions 0,5,20,35] [--modes off,on,replay] [--policy NAME=JSON]... [--only-policy NAME] \
[--time-limit SECONDS]";

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        units: 2_000,
        volunteers: 100,
        sabotage_rate: 1.0,
        fractions: vec![0, 5, 20, 35],
        // Replaying saboteurs are cheap to add and show what the result signature refuses.
        modes: vec![Mode::Independent, Mode::Colluding, Mode::Replaying],
        policies: vec![
            (
                "two-replica voting".to_owned(),
                json!({"min_quorum": 2, "initial_replicas": 2, "max_total_results": 6, "max_error_results": 10}),
            ),
            (
                "single replica".to_owned(),
                json!({"min_quorum": 1, "initial_replicas": 1}),
            ),
        ],
        only_policy: None,
        time_limit: Duration::from_secs(120),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        let context = || format!("invalid value for {flag}: {value}");
        match flag.as_str() {
            "--units" => options.units = value.parse().with_context(context)?,
            "--volunteers" => options.volunteers = value.parse().with_context(context)?,
            "--sabotage-rate" => options.sabotage_rate = value.parse().with_context(context)?,
            "--fractions" => {
                options.fractions = value
                    .split(',')
                    .map(|part| part.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .with_context(context)?;
            }
            "--modes" => {
                options.modes = value
                    .split(',')
                    .map(|part| Mode::parse(part.trim()))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--policy" => {
                let (name, text) = value
                    .split_once('=')
                    .with_context(|| format!("--policy wants NAME=JSON, not {value}"))?;
                let policy: Value = serde_json::from_str(text).with_context(context)?;
                if !policy.is_object() {
                    bail!("--policy {name}: the policy must be a JSON object");
                }
                options.policies.push((name.to_owned(), policy));
            }
            "--only-policy" => options.only_policy = Some(value),
            "--time-limit" => {
                options.time_limit = Duration::from_secs(value.parse().with_context(context)?);
            }
            _ => bail!("unknown option {flag}; {USAGE}"),
        }
    }
    if !(0.0..=1.0).contains(&options.sabotage_rate) {
        bail!("--sabotage-rate must lie in [0, 1]");
    }
    if options.fractions.iter().any(|&percent| percent > 100) {
        bail!("--fractions are percentages, at most 100");
    }
    if options.units == 0 || options.volunteers == 0 {
        bail!("--units and --volunteers must be positive");
    }
    if let Some(only) = &options.only_policy {
        options.policies.retain(|(name, _)| name == only);
        if options.policies.is_empty() {
            bail!("no policy is named {only:?}");
        }
    }
    Ok(options)
}

/// One run: a policy, a share of saboteurs, and how they cheat (none when there are none).
#[derive(Debug, Clone)]
struct Scenario {
    policy_name: String,
    policy: Value,
    percent: u32,
    mode: Option<Mode>,
}

fn scenarios(options: &Options) -> Vec<Scenario> {
    let mut list = Vec::new();
    for (policy_name, policy) in &options.policies {
        for &percent in &options.fractions {
            // Without saboteurs the way they cheat makes no difference: run it once.
            let modes: Vec<Option<Mode>> = if percent == 0 {
                vec![None]
            } else {
                options.modes.iter().copied().map(Some).collect()
            };
            for mode in modes {
                list.push(Scenario {
                    policy_name: policy_name.clone(),
                    policy: policy.clone(),
                    percent,
                    mode,
                });
            }
        }
    }
    list
}

/// A server running in-process on a temporary store.
struct Server {
    base: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
    /// Removed when the scenario ends, after the server has stopped.
    _data_dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let address = listener.local_addr().context("reading the bound address")?;
        let mut config = Config::for_data_dir(data_dir.path());
        config.demo_units = 0;
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(cyclepool_server::run(listener, config, async {
            let _ = stop.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the http client")?;
        let server = Self {
            base: format!("http://{address}/api/v1"),
            client,
            shutdown: Some(shutdown),
            task,
            _data_dir: data_dir,
        };
        server.wait_until_healthy().await?;
        Ok(server)
    }

    async fn wait_until_healthy(&self) -> anyhow::Result<()> {
        for _ in 0..250 {
            let health = self.client.get(self.url("/health")).send().await;
            if health.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            if self.task.is_finished() {
                bail!("the server stopped during start-up");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the server did not become healthy within 5 s")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .context("the server did not stop within 30 s")?
            .context("the server task panicked")?
            .context("the server stopped with an error")?;
        Ok(())
    }

    /// Uploads the module and creates the job; returns the job id.
    async fn create_job(&self, inputs: &[Vec<u8>], policy: &Value) -> anyhow::Result<u64> {
        let module = wat::parse_str(reverse_no_verify_wat()).context("assembling the module")?;
        let response = self
            .client
            .put(self.url("/modules"))
            .bearer_auth(ADMIN_TOKEN)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(module)
            .send()
            .await
            .context("uploading the module")?;
        let uploaded: Value = json_answer(response, "uploading the module").await?;
        if uploaded["has_verify"] != json!(false) {
            bail!("the module should have no verify export: {uploaded}");
        }
        let request = json!({
            "title": "Saboteur simulation",
            "description": "Each unit reverses its 8-byte input.",
            "module_sha256": uploaded["module_sha256"],
            "inputs": Inputs::List(inputs.to_vec()),
            "policy": merged_policy(policy)?,
        });
        let response = self
            .client
            .post(self.url("/jobs"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&request)
            .send()
            .await
            .context("creating the job")?;
        let created: Value = json_answer(response, "creating the job").await?;
        created["job_id"]
            .as_u64()
            .with_context(|| format!("no job id in {created}"))
    }

    async fn stats(&self) -> anyhow::Result<StatsResponse> {
        let response = self
            .client
            .get(self.url("/stats"))
            .send()
            .await
            .context("reading the stats")?;
        json_answer(response, "reading the stats").await
    }

    /// The canonical result of every decided unit, from the admin download.
    async fn results(&self, job: u64) -> anyhow::Result<Vec<ResultLine>> {
        let response = self
            .client
            .get(self.url(&format!("/jobs/{job}/results")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .context("downloading the results")?;
        let status = response.status();
        let text = response.text().await.context("reading the results")?;
        if !status.is_success() {
            bail!("downloading the results: {status}: {text}");
        }
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).context("parsing a result line"))
            .collect()
    }
}

/// One line of the results download (the fields the simulation reads).
#[derive(Debug, Deserialize)]
struct ResultLine {
    unit: u64,
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    input: Vec<u8>,
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    output: Vec<u8>,
}

/// The base policy with `policy`'s fields laid over it.
fn merged_policy(policy: &Value) -> anyhow::Result<Value> {
    let mut merged: Value = serde_json::from_str(BASE_POLICY).context("parsing the base policy")?;
    if let (Some(base), Some(extra)) = (merged.as_object_mut(), policy.as_object()) {
        for (key, value) in extra {
            base.insert(key.clone(), value.clone());
        }
    }
    Ok(merged)
}

/// A submission seen on the wire, which a replaying saboteur may reuse for another unit.
#[derive(Debug, Clone)]
struct Seen {
    unit: u64,
    volunteer: VolunteerId,
    output: Vec<u8>,
    signature: Signature,
}

/// What the volunteers of one scenario share.
struct Shared {
    server: Arc<Server>,
    deadline: Instant,
    /// Set by the monitor once every unit is decided or failed.
    finished: AtomicBool,
    /// Leases out, as of the monitor's last reading.
    leased: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    /// Refusals (4xx) by error code.
    refused: Mutex<BTreeMap<String, u64>>,
    /// Recent submissions, for replaying saboteurs.
    seen: Mutex<VecDeque<Seen>>,
}

impl Shared {
    fn refuse(&self, code: String) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused.entry(code).or_default() += 1;
        }
    }

    fn remember(&self, seen: Seen) {
        if let Ok(mut pool) = self.seen.lock() {
            if pool.len() == REPLAY_POOL {
                pool.pop_front();
            }
            pool.push_back(seen);
        }
    }

    /// A recent submission by someone else for another unit, if there is one.
    fn steal(&self, thief: VolunteerId, unit: u64, rng: &mut StdRng) -> Option<Seen> {
        let pool = self.seen.lock().ok()?;
        let candidates: Vec<&Seen> = pool
            .iter()
            .filter(|seen| seen.volunteer != thief && seen.unit != unit)
            .collect();
        candidates
            .get(rng.random_range(0..candidates.len().max(1)))
            .map(|seen| (*seen).clone())
    }
}

/// One simulated volunteer: its key, whether it cheats, and its own random stream.
struct Volunteer {
    key: SecretKey,
    id: VolunteerId,
    saboteur: Option<Mode>,
    sabotage_rate: f64,
    rng: StdRng,
}

/// How the server answered a lease request.
enum LeaseAnswer {
    Work(Lease),
    Empty,
    Refused(String),
}

/// How the server answered a submission.
enum Answer {
    Stored(SubmitStatus),
    Refused(String),
}

impl Volunteer {
    async fn run(mut self, shared: Arc<Shared>) -> anyhow::Result<()> {
        let mut empty_answers = 0;
        while !shared.finished.load(Ordering::Relaxed) && Instant::now() < shared.deadline {
            let lease = match self.lease(&shared).await? {
                LeaseAnswer::Work(lease) => Some(lease),
                LeaseAnswer::Empty => None,
                // Refused work (a blacklisted key, say), the volunteer can do nothing more.
                LeaseAnswer::Refused(code) => {
                    shared.refuse(format!("lease {code}"));
                    break;
                }
            };
            let Some(lease) = lease else {
                empty_answers += 1;
                if empty_answers >= EMPTY_ANSWERS_TO_STOP
                    && shared.leased.load(Ordering::Relaxed) == 0
                {
                    break;
                }
                tokio::time::sleep(IDLE_WAIT).await;
                continue;
            };
            empty_answers = 0;
            self.work(&shared, &lease).await?;
        }
        Ok(())
    }

    async fn lease(&self, shared: &Shared) -> anyhow::Result<LeaseAnswer> {
        let request = LeaseRequest {
            proof: None,
            protocol: PROTOCOL_VERSION,
            volunteer: self.id,
            max_units: 1,
            exclude_jobs: Vec::new(),
            exclude_categories: Vec::new(),
            site: None,
            work_ms: None,
        };
        let response = shared
            .server
            .client
            .post(shared.server.url("/lease"))
            .json(&request)
            .send()
            .await
            .context("asking for a lease")?;
        if response.status().is_client_error() {
            return Ok(LeaseAnswer::Refused(refusal_code(response).await?));
        }
        let answer: LeaseResponse = json_answer(response, "asking for a lease").await?;
        Ok(answer
            .leases
            .into_iter()
            .next()
            .map_or(LeaseAnswer::Empty, LeaseAnswer::Work))
    }

    /// Computes (or fakes) the unit and submits the result.
    async fn work(&mut self, shared: &Shared, lease: &Lease) -> anyhow::Result<()> {
        let correct = correct_output(&lease.input);
        let cheat = self
            .saboteur
            .filter(|_| self.rng.random_bool(self.sabotage_rate));
        let output = match cheat {
            None => correct,
            Some(Mode::Independent) => self.random_wrong(&correct),
            Some(Mode::Colluding) => correct.iter().map(|byte| byte ^ 0x5a).collect(),
            Some(Mode::Replaying) => match shared.steal(self.id, lease.unit, &mut self.rng) {
                Some(stolen) => {
                    // First the stolen submission as it was signed: the signature binds it
                    // to the other volunteer's lease, so the server must refuse it.
                    let verbatim = self.submission(lease, stolen.output.clone(), stolen.signature);
                    self.submit(shared, lease.unit, verbatim).await?;
                    stolen.output
                }
                None => self.random_wrong(&correct),
            },
        };
        let signature = self.sign(lease, &output);
        let submission = self.submission(lease, output, signature);
        self.submit(shared, lease.unit, submission).await
    }

    fn random_wrong(&mut self, correct: &[u8]) -> Vec<u8> {
        loop {
            let mut output = vec![0; correct.len()];
            self.rng.fill(&mut output[..]);
            if output != correct {
                return output;
            }
        }
    }

    fn sign(&self, lease: &Lease, output: &[u8]) -> Signature {
        let message = result_message(&lease.lease_id, &lease.nonce, &Sha256Digest::of(output));
        self.key.sign(Purpose::Result, &message)
    }

    fn submission(&self, lease: &Lease, output: Vec<u8>, signature: Signature) -> ResultSubmission {
        ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer: self.id,
            lease_id: lease.lease_id,
            nonce: lease.nonce,
            output_sha256: Sha256Digest::of(&output),
            output,
            signature,
            compute_ms: 1,
        }
    }

    async fn submit(
        &self,
        shared: &Shared,
        unit: u64,
        submission: ResultSubmission,
    ) -> anyhow::Result<()> {
        let (output, signature) = (submission.output.clone(), submission.signature);
        match post_result(&shared.server, &submission).await? {
            Answer::Stored(SubmitStatus::Accepted) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                shared.remember(Seen {
                    unit,
                    volunteer: self.id,
                    output,
                    signature,
                });
            }
            Answer::Stored(SubmitStatus::Duplicate) => {
                shared.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Answer::Refused(code) => shared.refuse(code),
        }
        Ok(())
    }
}

/// Sends a result; a 4xx is an answer (a refusal), anything else unexpected is an error.
async fn post_result(server: &Server, submission: &ResultSubmission) -> anyhow::Result<Answer> {
    let response = server
        .client
        .post(server.url("/results"))
        .json(submission)
        .send()
        .await
        .context("submitting a result")?;
    if response.status().is_client_error() {
        return Ok(Answer::Refused(refusal_code(response).await?));
    }
    let answer: SubmitResponse = json_answer(response, "submitting a result").await?;
    Ok(Answer::Stored(answer.status))
}

/// The status and error code of a refusal (a 4xx), e.g. `403 bad_signature`.
async fn refusal_code(response: reqwest::Response) -> anyhow::Result<String> {
    let status = response.status().as_u16();
    let body: Value = response
        .json()
        .await
        .context("reading a refusal's error body")?;
    let code = body["error"]["code"].as_str().unwrap_or("unknown");
    Ok(format!("{status} {code}"))
}

/// Reads the job's progress until every unit is decided or failed (or time is up).
async fn monitor(shared: Arc<Shared>, job: u64, units: u64) -> anyhow::Result<()> {
    while Instant::now() < shared.deadline {
        let stats = shared.server.stats().await?;
        let progress = stats
            .jobs
            .iter()
            .find(|stats| stats.job_id.0 == job)
            .context("the job is missing from the stats")?;
        shared.leased.store(progress.leased, Ordering::Relaxed);
        if progress.done + progress.failed >= units {
            shared.finished.store(true, Ordering::Relaxed);
            return Ok(());
        }
        tokio::time::sleep(MONITOR_PERIOD).await;
    }
    Ok(())
}

/// One row of the table.
#[derive(Debug)]
struct Outcome {
    scenario: Scenario,
    accepted_units: u64,
    failed: u64,
    undecided: u64,
    wrong: u64,
    accepted_results: u64,
    duplicates: u64,
    refused: BTreeMap<String, u64>,
    seconds: f64,
}

/// The scenario's seed: from its saboteur share and mode but not its policy, so that every
/// policy faces the same inputs, the same volunteers and the same saboteurs.
fn scenario_seed(scenario: &Scenario) -> u64 {
    let mode = match scenario.mode {
        None => 0,
        Some(Mode::Independent) => 1,
        Some(Mode::Colluding) => 2,
        Some(Mode::Replaying) => 3,
    };
    SEED ^ (u64::from(scenario.percent) << 8 | mode).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

async fn run_scenario(options: &Options, scenario: &Scenario) -> anyhow::Result<Outcome> {
    let mut rng = StdRng::seed_from_u64(scenario_seed(scenario));
    let server = Arc::new(Server::start().await?);
    let inputs = distinct_inputs(options.units, &mut rng);
    let job = server
        .create_job(&inputs, &scenario.policy)
        .await
        .with_context(|| format!("policy {}", scenario.policy_name))?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        server: Arc::clone(&server),
        deadline: started + options.time_limit,
        finished: AtomicBool::new(false),
        leased: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        refused: Mutex::default(),
        seen: Mutex::default(),
    });
    let saboteurs = (options.volunteers * scenario.percent as usize + 50) / 100;
    let mut roles: Vec<bool> = (0..options.volunteers).map(|i| i < saboteurs).collect();
    roles.shuffle(&mut rng);
    let monitor = tokio::spawn(monitor(Arc::clone(&shared), job, options.units));
    let mut tasks = Vec::with_capacity(options.volunteers);
    for is_saboteur in roles {
        let key = SecretKey::from_seed(&rng.random::<[u8; 32]>());
        let volunteer = Volunteer {
            id: VolunteerId::from_bytes(*key.public_key().as_bytes()),
            key,
            saboteur: scenario.mode.filter(|_| is_saboteur),
            sabotage_rate: options.sabotage_rate,
            rng: StdRng::seed_from_u64(rng.random()),
        };
        tasks.push(tokio::spawn(volunteer.run(Arc::clone(&shared))));
    }
    for task in tasks {
        task.await.context("a volunteer task panicked")??;
    }
    shared.finished.store(true, Ordering::Relaxed);
    monitor.await.context("the monitor panicked")??;
    let seconds = started.elapsed().as_secs_f64();
    let outcome = measure(&shared, job, scenario, seconds).await?;
    drop(shared);
    let server = Arc::into_inner(server).ok_or_else(|| anyhow!("the server is still shared"))?;
    server.stop().await?;
    Ok(outcome)
}

/// `units` distinct 8-byte inputs.
fn distinct_inputs(units: u64, rng: &mut StdRng) -> Vec<Vec<u8>> {
    // An odd multiplier makes `i -> i * m + c` a bijection on u64: distinct by construction.
    let multiplier = rng.random::<u64>() | 1;
    let offset = rng.random::<u64>();
    (0..units)
        .map(|i| {
            i.wrapping_mul(multiplier)
                .wrapping_add(offset)
                .to_le_bytes()
                .to_vec()
        })
        .collect()
}

/// Reads the outcome from the server: progress from the stats, correctness from the results.
async fn measure(
    shared: &Shared,
    job: u64,
    scenario: &Scenario,
    seconds: f64,
) -> anyhow::Result<Outcome> {
    let stats = shared.server.stats().await?;
    let progress = stats
        .jobs
        .iter()
        .find(|stats| stats.job_id.0 == job)
        .context("the job is missing from the stats")?;
    let results = shared.server.results(job).await?;
    if results.len() as u64 != progress.done {
        eprintln!(
            "note: the stats say {} units are done but the download has {} results",
            progress.done,
            results.len()
        );
    }
    let wrong = results
        .iter()
        .filter(|line| line.output != correct_output(&line.input))
        .count() as u64;
    let mut units: Vec<u64> = results.iter().map(|line| line.unit).collect();
    units.dedup();
    if units.len() != results.len() {
        eprintln!("note: the download names some units more than once");
    }
    let refused = shared
        .refused
        .lock()
        .map_err(|_| anyhow!("the refusal tally was poisoned"))?
        .clone();
    Ok(Outcome {
        scenario: scenario.clone(),
        accepted_units: progress.done,
        failed: progress.failed,
        undecided: progress
            .units
            .saturating_sub(progress.done + progress.failed),
        wrong,
        accepted_results: shared.accepted.load(Ordering::Relaxed),
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        refused,
        seconds,
    })
}

fn table_header() -> &'static str {
    "| policy | saboteurs | collusion | accepted | failed | error rate | redundancy | refused | seconds |\n\
     |---|---|---|---|---|---|---|---|---|"
}

fn table_row(outcome: &Outcome) -> String {
    let scenario = &outcome.scenario;
    let error_rate = if outcome.accepted_units == 0 {
        "–".to_owned()
    } else {
        let rate = outcome.wrong as f64 / outcome.accepted_units as f64;
        let rate = if outcome.wrong == 0 {
            "0".to_owned()
        } else {
            format!("{rate:.2e}")
        };
        format!("{rate} ({}/{})", outcome.wrong, outcome.accepted_units)
    };
    let redundancy = if outcome.accepted_units == 0 {
        "–".to_owned()
    } else {
        format!(
            "{:.3}",
            outcome.accepted_results as f64 / outcome.accepted_units as f64
        )
    };
    let total_refused: u64 = outcome.refused.values().sum();
    let refused = if total_refused == 0 {
        "0".to_owned()
    } else {
        let codes: Vec<String> = outcome
            .refused
            .iter()
            .map(|(code, count)| format!("{count} × {code}"))
            .collect();
        format!("{total_refused} ({})", codes.join(", "))
    };
    let failed = if outcome.undecided == 0 {
        outcome.failed.to_string()
    } else {
        format!("{} (+{} undecided)", outcome.failed, outcome.undecided)
    };
    format!(
        "| {} | {} % | {} | {} | {} | {} | {} | {} | {:.1} |",
        scenario.policy_name,
        scenario.percent,
        scenario.mode.map_or("–", Mode::label),
        outcome.accepted_units,
        failed,
        error_rate,
        redundancy,
        refused,
        outcome.seconds,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let list = scenarios(&options);
    eprintln!(
        "{} scenarios: {} units, {} volunteers, sabotage rate {}",
        list.len(),
        options.units,
        options.volunteers,
        options.sabotage_rate
    );
    let started = Instant::now();
    let mut rows = Vec::with_capacity(list.len());
    for scenario in &list {
        let outcome = run_scenario(&options, scenario)
            .await
            .with_context(|| format!("scenario {scenario:?}"))?;
        eprintln!(
            "{}  (duplicates: {})",
            table_row(&outcome),
            outcome.duplicates
        );
        rows.push(outcome);
    }
    println!("{}", table_header());
    for outcome in &rows {
        println!("{}", table_row(outcome));
    }
    eprintln!("total: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
