//! The simulated volunteers' traffic: HTTP clients bound to many loopback source addresses,
//! requests answered 503 or 429 waited out as the real client does, the closed loop of one
//! volunteer, and the open-loop arrivals of the overload phase.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cyclepool_shared::ErrorCode;
use cyclepool_shared::protocol::{
    Exchange, ExchangeResponse, Lease, LeaseRequest, LeaseResponse, PROTOCOL_VERSION,
    ResultSubmission, SubmitResponse, SubmitStatus,
};
use cyclepool_shared::signing::{Purpose, SecretKey, result_message};
use cyclepool_shared::{Sha256Digest, VolunteerId};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::common::correct_output;

/// The first source address; client `i` binds `FIRST_SOURCE + i`. All of 127.0.0.0/8 is
/// loopback on Linux, so every one of them reaches the server on 127.0.0.1 and the server
/// sees each as a different client.
const FIRST_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);

/// At most this many source addresses (127.1.0.1 to 127.2.0.0).
pub const MAX_ADDRESSES: usize = 65_536;

/// The real client waits `retry_after_ms` after an empty answer; the generator waits less, so
/// that it notices new work soon, but not so little that idle volunteers flood the server.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// After a failure that says nothing about when to come back (a transport error, a 5xx other
/// than 503), a volunteer waits this long (with jitter) rather than retrying at once.
const FAILURE_WAIT: Duration = Duration::from_millis(250);

/// When the server sends no `Retry-After` with a 503 or 429.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the open-loop driver starts the cycles that have come due.
const ARRIVAL_TICK: Duration = Duration::from_millis(1);

/// Connections opened at once while warming up: well under the server's accept queue (1,024
/// deep in tokio's listener).
const WARM_UP_CONNECTIONS: usize = 256;

/// How many failure messages a phase prints before it only counts them.
const FAILURES_SHOWN: u64 = 5;

/// The source address of client `index`.
pub fn source_address(index: usize) -> Ipv4Addr {
    let offset = u32::try_from(index).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(FIRST_SOURCE).saturating_add(offset))
}

/// One keep-alive client per source address.
pub fn clients(addresses: usize, idle_per_client: usize) -> anyhow::Result<Vec<reqwest::Client>> {
    (0..addresses)
        .map(|index| {
            let address = source_address(index);
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(address))
                .pool_max_idle_per_host(idle_per_client)
                .timeout(Duration::from_secs(60))
                .build()
                .with_context(|| format!("building the http client on {address}"))
        })
        .collect()
}

/// A simulated volunteer: its key, and which client (so which address) it sends from.
pub struct Volunteer {
    pub key: SecretKey,
    pub id: VolunteerId,
    pub client: usize,
}

/// What every phase shares: the clients, the volunteers, the server's address and the budget.
pub struct Load {
    pub clients: Vec<reqwest::Client>,
    pub volunteers: Vec<Volunteer>,
    pub lease_url: String,
    pub results_url: String,
    pub exchange_url: String,
    pub max_units: u32,
    /// The closed loop hands in its results and asks for more work in one request
    /// (`POST /api/v1/exchange`) instead of a lease request and a submission per unit.
    pub exchange: bool,
    /// Keep-alive connections each client pools.
    pub connections_per_client: usize,
    /// Per client, `connections_per_client` places for requests in flight, which open-loop
    /// requests take, so that they never need a connection beyond the pooled ones.
    pub slots: Vec<tokio::sync::Semaphore>,
    /// Lease and submit requests together, across all volunteers and phases.
    pub max_requests: u64,
    pub requests: AtomicU64,
}

impl Load {
    /// Opens `per_client` connections in each client's pool before they are needed, as a
    /// population of volunteers that has been connected for a while has them: as many
    /// concurrent health checks per client (the health check is never shed or limited), a
    /// few clients at a time so that the server's accept queue never overflows.
    pub async fn warm_up(&self, health_url: &str, per_client: usize) -> anyhow::Result<()> {
        let per_client = per_client.min(self.connections_per_client).max(1);
        let clients_at_once = (WARM_UP_CONNECTIONS / per_client).max(1);
        for batch in self.clients.chunks(clients_at_once) {
            let mut checks = tokio::task::JoinSet::new();
            for client in batch {
                for _ in 0..per_client {
                    let check = client.get(health_url).send();
                    checks.spawn(async move {
                        let response = check.await.context("warming up a connection")?;
                        // Read to the end, so that the connection goes back to the pool.
                        response.bytes().await.context("warming up a connection")?;
                        anyhow::Ok(())
                    });
                }
            }
            while let Some(check) = checks.join_next().await {
                check.context("a warm-up task panicked")??;
            }
        }
        Ok(())
    }
}

/// Latencies of one kind of answer, in microseconds.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<u32>>);

impl Recorder {
    fn record(&self, since: Instant) {
        self.record_duration(since.elapsed());
    }

    pub fn record_duration(&self, duration: Duration) {
        let micros = u32::try_from(duration.as_micros()).unwrap_or(u32::MAX);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(micros);
    }

    pub fn sorted(&self) -> Vec<u32> {
        let mut values = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        values.sort_unstable();
        values
    }
}

/// What happened in one phase.
#[derive(Default)]
pub struct Tally {
    /// Lease and submit requests sent, retries included.
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub empty_leases: AtomicU64,
    /// 4xx other than 429: the server understood and refused.
    pub refused: AtomicU64,
    /// 503: shed.
    pub shed: AtomicU64,
    /// 429: rate-limited.
    pub limited: AtomicU64,
    /// 5xx other than 503, and successful answers that did not parse.
    pub server_errors: AtomicU64,
    /// No answer: connection refused or reset, timeout.
    pub transport_errors: AtomicU64,
    /// Submissions that got no answer: the server may or may not have accepted them.
    pub unknown_outcomes: AtomicU64,
    /// Open loop: cycles that came due.
    pub cycles: AtomicU64,
    /// Open loop: cycles not started because `max_cycles` were already running, or whose
    /// lease request still waited for a connection when the phase ended.
    pub dropped: AtomicU64,
    /// Open loop: cycles whose lease was answered 503 or 429.
    pub turned_away: AtomicU64,
    /// Failures printed so far.
    shown: AtomicU64,
    pub lease: Recorder,
    pub submit: Recorder,
    /// Exchanges (results handed in and a lease asked for, in one request).
    pub exchange: Recorder,
    pub shed_latency: Recorder,
    pub limited_latency: Recorder,
    /// How late the generator's own timer fired: its runtime's queueing, which every latency
    /// above includes.
    pub lag: Recorder,
    /// Open loop: how long requests waited for one of their client's connections.
    pub connection_wait: Recorder,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How a request ended.
enum Answer<T> {
    Served(T),
    /// 503 or 429: come back after this long.
    Busy(Duration),
    /// 4xx other than 429: understood and refused (counted and shown already).
    Refused,
    /// No answer, or a 5xx other than 503: the request may or may not have taken effect
    /// (counted and shown already).
    Unanswered,
    /// Not sent: its deadline passed while it waited for a connection.
    Late,
}

/// An error and its causes (reqwest's own message names only the request).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A wait stretched by up to half again, so that clients turned away together do not all
/// come back together (the web client's backoff has jitter for the same reason).
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(1.0 + 0.5 * rand::random::<f64>())
}

/// One phase of a run: its tally and until when its volunteers ask for work.
pub struct Phase {
    pub load: Arc<Load>,
    pub tally: Tally,
    pub deadline: Instant,
    /// Requests take a connection slot (an open loop, whose requests in flight are not
    /// bounded by the number of volunteers).
    slotted: bool,
}

impl Phase {
    pub fn new(load: Arc<Load>, deadline: Instant, slotted: bool) -> Self {
        Self {
            load,
            tally: Tally::default(),
            deadline,
            slotted,
        }
    }

    /// Takes one request from the budget; false once `deadline` or the budget has passed.
    fn may_send(&self, deadline: Instant) -> bool {
        Instant::now() < deadline
            && self.load.requests.fetch_add(1, Ordering::Relaxed) < self.load.max_requests
    }

    fn failure(&self, counter: &AtomicU64, message: impl FnOnce() -> String) {
        count(counter);
        if self.tally.shown.fetch_add(1, Ordering::Relaxed) < FAILURES_SHOWN {
            eprintln!("{}", message());
        }
    }

    /// Sleeps `wait` with jitter, but not past `deadline`.
    async fn back_off(wait: Duration, deadline: Instant) {
        let until = (Instant::now() + jittered(wait)).min(deadline);
        tokio::time::sleep_until(until.into()).await;
    }

    /// POSTs `body` as JSON from client `client` and sorts the answer; `served` records a
    /// success's latency (from the moment the request had a connection). A request still
    /// waiting for a connection at `deadline` is not sent.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        client: usize,
        (url, body): (&str, &B),
        served: &Recorder,
        what: &str,
        deadline: Instant,
    ) -> Answer<T> {
        let _slot = if self.slotted {
            let waiting = Instant::now();
            let slot = self.load.slots[client].acquire().await.ok();
            self.tally.connection_wait.record(waiting);
            if Instant::now() >= deadline {
                return Answer::Late;
            }
            slot
        } else {
            None
        };
        let client = &self.load.clients[client];
        count(&self.tally.requests);
        let sent = Instant::now();
        let response = match client.post(url).json(body).send().await {
            Ok(response) => response,
            Err(err) => {
                self.failure(&self.tally.transport_errors, || {
                    format!("{what}: {}", with_causes(&err))
                });
                return Answer::Unanswered;
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.trim().parse().ok())
            .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => {
                self.failure(&self.tally.transport_errors, || {
                    format!("{what}: reading the answer: {}", with_causes(&err))
                });
                return Answer::Unanswered;
            }
        };
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                count(&self.tally.shed);
                self.tally.shed_latency.record(sent);
                Answer::Busy(retry_after)
            }
            StatusCode::TOO_MANY_REQUESTS => {
                count(&self.tally.limited);
                self.tally.limited_latency.record(sent);
                Answer::Busy(retry_after)
            }
            status if status.is_success() => match serde_json::from_str(&text) {
                Ok(answer) => {
                    served.record(sent);
                    Answer::Served(answer)
                }
                Err(err) => {
                    self.failure(&self.tally.server_errors, || {
                        format!("{what}: unexpected answer {text}: {err}")
                    });
                    Answer::Unanswered
                }
            },
            status if status.is_server_error() => {
                self.failure(&self.tally.server_errors, || {
                    format!("{what}: {status}: {text}")
                });
                Answer::Unanswered
            }
            status => {
                self.failure(&self.tally.refused, || format!("{what}: {status}: {text}"));
                Answer::Refused
            }
        }
    }

    /// What every simulated volunteer asks for: `max_units` units of any public job.
    fn lease_request(&self, volunteer: &Volunteer) -> LeaseRequest {
        LeaseRequest {
            proof: None,
            protocol: PROTOCOL_VERSION,
            volunteer: volunteer.id,
            max_units: self.load.max_units,
            exclude_jobs: Vec::new(),
            exclude_categories: Vec::new(),
            site: None,
            work_ms: None,
        }
    }

    async fn lease(&self, volunteer: &Volunteer) -> Answer<LeaseResponse> {
        let request = self.lease_request(volunteer);
        let client = volunteer.client;
        let url = &self.load.lease_url;
        let served = &self.tally.lease;
        self.call(client, (url, &request), served, "lease", self.deadline)
            .await
    }

    /// Computes `lease`'s result and submits it until it is answered, waiting out 503 and 429
    /// as the web client's outbox does (it keeps the result); false once `deadline` or the
    /// budget has passed.
    async fn submit(&self, volunteer: &Volunteer, lease: &Lease, deadline: Instant) -> bool {
        let submission = compute_and_sign(&volunteer.key, volunteer.id, lease);
        let client = volunteer.client;
        loop {
            if !self.may_send(deadline) {
                return false;
            }
            let answer = self
                .call::<_, SubmitResponse>(
                    client,
                    (&self.load.results_url, &submission),
                    &self.tally.submit,
                    "submit",
                    deadline,
                )
                .await;
            match answer {
                Answer::Served(answer) => {
                    match answer.status {
                        SubmitStatus::Accepted => count(&self.tally.accepted),
                        SubmitStatus::Duplicate => count(&self.tally.duplicates),
                    }
                    return true;
                }
                Answer::Busy(wait) => Self::back_off(wait, deadline).await,
                Answer::Refused => return true,
                Answer::Late => return false,
                Answer::Unanswered => {
                    // A submission sent but unanswered may have been accepted all the same.
                    count(&self.tally.unknown_outcomes);
                    return true;
                }
            }
        }
    }

    /// One simulated volunteer's closed loop (lease, compute, submit, again) until the
    /// phase's deadline or the budget runs out.
    pub async fn volunteer(self: Arc<Self>, index: usize) {
        if self.load.exchange {
            return self.exchanging_volunteer(index).await;
        }
        let volunteer = &self.load.volunteers[index];
        'work: while self.may_send(self.deadline) {
            let answer = match self.lease(volunteer).await {
                Answer::Served(answer) => answer,
                Answer::Busy(wait) => {
                    Self::back_off(wait, self.deadline).await;
                    continue;
                }
                Answer::Refused | Answer::Unanswered => {
                    Self::back_off(FAILURE_WAIT, self.deadline).await;
                    continue;
                }
                Answer::Late => break,
            };
            if answer.leases.is_empty() {
                count(&self.tally.empty_leases);
                tokio::time::sleep(IDLE_WAIT).await;
                continue;
            }
            // Units leased but not submitted when the phase ends stay out: the job is far
            // larger than a run, so they cost nothing but the lease.
            for lease in &answer.leases {
                if !self.submit(volunteer, lease, self.deadline).await {
                    break 'work;
                }
            }
        }
    }

    /// The closed loop over exchanges: each request hands in the results of the units the
    /// last one leased and asks for as many more, until the deadline or the budget runs out.
    /// Results answered `rate_limited` or lost with a 503 or 429 are handed in again with the
    /// next exchange, as a volunteer would; results still in hand at the end are not counted.
    async fn exchanging_volunteer(self: Arc<Self>, index: usize) {
        let volunteer = &self.load.volunteers[index];
        let mut results: Vec<ResultSubmission> = Vec::new();
        while self.may_send(self.deadline) {
            let exchange = Exchange {
                protocol: PROTOCOL_VERSION,
                results: std::mem::take(&mut results),
                lease: Some(self.lease_request(volunteer)),
            };
            let url = &self.load.exchange_url;
            let answer: Answer<ExchangeResponse> = self
                .call(
                    volunteer.client,
                    (url, &exchange),
                    &self.tally.exchange,
                    "exchange",
                    self.deadline,
                )
                .await;
            let answer = match answer {
                Answer::Served(answer) => answer,
                Answer::Busy(wait) => {
                    results = exchange.results;
                    Self::back_off(wait, self.deadline).await;
                    continue;
                }
                // Refused whole (a 4xx, counted by `call`): none of its results was taken.
                Answer::Refused => {
                    Self::back_off(FAILURE_WAIT, self.deadline).await;
                    continue;
                }
                Answer::Unanswered => {
                    // Sent but unanswered: accepted or not, the server's store will say.
                    self.tally
                        .unknown_outcomes
                        .fetch_add(exchange.results.len() as u64, Ordering::Relaxed);
                    Self::back_off(FAILURE_WAIT, self.deadline).await;
                    continue;
                }
                Answer::Late => break,
            };
            for (result, answer) in exchange.results.into_iter().zip(&answer.results) {
                match (answer.status, &answer.error) {
                    (Some(SubmitStatus::Accepted), _) => count(&self.tally.accepted),
                    (Some(SubmitStatus::Duplicate), _) => count(&self.tally.duplicates),
                    (None, Some(error)) if error.code == ErrorCode::RateLimited => {
                        count(&self.tally.limited);
                        results.push(result);
                    }
                    (None, error) => self.failure(&self.tally.refused, || {
                        format!("exchange: result refused: {error:?}")
                    }),
                }
            }
            if let Some(error) = &answer.lease_error {
                self.failure(&self.tally.refused, || {
                    format!("exchange: lease refused: {error:?}")
                });
            }
            let leases = answer.lease.map(|lease| lease.leases).unwrap_or_default();
            if leases.is_empty() && results.is_empty() {
                count(&self.tally.empty_leases);
                tokio::time::sleep(IDLE_WAIT).await;
            }
            results.extend(
                leases
                    .iter()
                    .map(|lease| compute_and_sign(&volunteer.key, volunteer.id, lease)),
            );
        }
    }

    /// One open-loop cycle: a volunteer arrives, asks for work once, and submits what it got
    /// until `submit_deadline`. A lease answered 503 or 429 ends the cycle: its retry is one of
    /// the later arrivals, so that the arrival rate is the rate the server is offered.
    async fn cycle(self: Arc<Self>, index: usize, submit_deadline: Instant) {
        let volunteer = &self.load.volunteers[index];
        if !self.may_send(self.deadline) {
            return;
        }
        let answer = match self.lease(volunteer).await {
            Answer::Served(answer) => answer,
            Answer::Busy(_) => {
                count(&self.tally.turned_away);
                return;
            }
            Answer::Refused | Answer::Unanswered => return,
            Answer::Late => {
                count(&self.tally.dropped);
                return;
            }
        };
        if answer.leases.is_empty() {
            count(&self.tally.empty_leases);
        }
        for lease in &answer.leases {
            if !self.submit(volunteer, lease, submit_deadline).await {
                break;
            }
        }
    }

    /// Starts `cycles_per_s` cycles a second until the deadline, each its own task, at most
    /// `max_cycles` at once (a cycle that cannot start is dropped and counted), then waits
    /// for the running ones; they may submit until `grace` after the deadline. Returns how
    /// long that wait took.
    pub async fn open_loop(
        self: Arc<Self>,
        cycles_per_s: f64,
        max_cycles: u32,
        grace: Duration,
    ) -> Duration {
        let places = Arc::new(tokio::sync::Semaphore::new(max_cycles as usize));
        let volunteers = self.load.volunteers.len();
        let started = Instant::now();
        let submit_deadline = self.deadline + grace;
        let mut due_so_far = 0_u64;
        let mut ticker = tokio::time::interval(ARRIVAL_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            let now = Instant::now();
            if now >= self.deadline {
                break;
            }
            // Cycles come due evenly; a late tick starts all that came due meanwhile.
            let due = (now.duration_since(started).as_secs_f64() * cycles_per_s) as u64;
            while due_so_far < due {
                let index = (due_so_far % volunteers as u64) as usize;
                due_so_far += 1;
                count(&self.tally.cycles);
                match Arc::clone(&places).try_acquire_owned() {
                    Ok(place) => {
                        let phase = Arc::clone(&self);
                        tokio::spawn(async move {
                            phase.cycle(index, submit_deadline).await;
                            drop(place);
                        });
                    }
                    Err(_) => count(&self.tally.dropped),
                }
            }
        }
        let draining = Instant::now();
        // Every place back means every cycle has ended.
        let _all = places.acquire_many(max_cycles).await;
        draining.elapsed()
    }
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
