//! The volunteer client, compiled to WebAssembly and run inside a module Web Worker.
//!
//! One opaque handle, [`VolunteerWorker`], crosses the wasm-bindgen boundary (plus
//! [`pin_portal_keys`], which the page calls once before starting workers). The loop leases a
//! unit, loads its job (signed manifest checked against the pinned portal keys, module checked
//! against the manifest's SHA-256, compiled), checks the input's digest, runs the unit in a
//! sandbox worker under a watchdog, submits the output with its digest, and repeats until
//! stopped. Every step is reported to the page as an event object; everything that goes wrong
//! is also reported to the portal.

mod events;
mod http;
mod jobs;
mod sandbox;

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use cyclepool_shared::distributor::SiteId;
use cyclepool_shared::distributor::{JoinGroup, join_message};
use cyclepool_shared::manifest::PortalKeys;
use cyclepool_shared::protocol::{
    Lease, LeaseProof, LeaseRef, LeaseRequest, LeaseResponse, MAX_EXCLUDED_JOBS, PROTOCOL_VERSION,
    Report, ReportKind, ReportResponse, ResultSubmission, SubmitResponse,
};
use cyclepool_shared::signing::{Purpose, SecretKey, lease_proof_message, result_message};
use cyclepool_shared::{JobId, Sha256Digest, VolunteerId};
use futures_util::future::join;
use gloo_timers::future::sleep;
use wasm_bindgen::prelude::*;

use crate::events::WorkerEvent;
use crate::http::{HttpError, post_json};
use crate::jobs::{Jobs, Load};
use crate::sandbox::{Sandbox, UnitFailure};

const LEASE_URL: &str = "/api/v1/lease";
const RESULTS_URL: &str = "/api/v1/results";
const REPORTS_URL: &str = "/api/v1/reports";
/// How many units a worker keeps in hand: one computing, one ready, so that leasing the next
/// never leaves the processor waiting.
const PREFETCH: u32 = 2;

/// The least share of time a worker may be set to compute.
const MIN_DUTY_CYCLE: f64 = 0.1;
/// How often a paused worker looks whether it may go on.
const PAUSE_POLL_MS: u64 = 250;

/// How many times a finished result is offered before it is given up (its lease will
/// expire and the unit will be computed again elsewhere).
const SUBMIT_ATTEMPTS: u32 = 6;

/// Decides which portal keys to trust: `pinned` is what this browser trusted before (JSON, or
/// empty on first use), `offered` what the portal publishes now. Returns the new pinned set
/// as JSON, or throws if the portal offers a key that no pinned key endorsed.
#[wasm_bindgen]
pub fn pin_portal_keys(pinned: &str, offered: &str) -> Result<String, JsError> {
    let pinned: PortalKeys = if pinned.trim().is_empty() {
        PortalKeys::default()
    } else {
        serde_json::from_str(pinned).map_err(|err| JsError::new(&format!("pinned keys: {err}")))?
    };
    let offered: PortalKeys = serde_json::from_str(offered)
        .map_err(|err| JsError::new(&format!("portal keys: {err}")))?;
    let trusted =
        PortalKeys::pin(&pinned, &offered).map_err(|err| JsError::new(&err.to_string()))?;
    serde_json::to_string(&trusted).map_err(|err| JsError::new(&err.to_string()))
}

/// The volunteer id (public key, 64 hex digits) of the key with this seed, for the page to show.
#[wasm_bindgen]
pub fn volunteer_id(secret_seed: &str) -> Result<String, JsError> {
    Ok(parse_seed(secret_seed)?.public_key().to_string())
}

/// The body of `POST /api/v1/groups/join` (JSON): the volunteer's key, the invitation and
/// the time, signed with the key so the portal knows the key's holder asked to join.
#[wasm_bindgen]
pub fn group_join_request(secret_seed: &str, invite: &str, at_ms: f64) -> Result<String, JsError> {
    let secret = parse_seed(secret_seed)?;
    let volunteer = VolunteerId::from_bytes(*secret.public_key().as_bytes());
    let at_ms = at_ms.max(0.0) as u64;
    let request = JoinGroup {
        volunteer,
        invite: invite.to_owned(),
        at_ms,
        signature: secret.sign(Purpose::JoinGroup, &join_message(&volunteer, invite, at_ms)),
    };
    serde_json::to_string(&request).map_err(|err| JsError::new(&err.to_string()))
}

fn parse_seed(secret_seed: &str) -> Result<SecretKey, JsError> {
    let seed: [u8; 32] = cyclepool_shared::hex::decode_array(secret_seed.trim())
        .ok_or_else(|| JsError::new("the volunteer key must be 64 hex digits"))?;
    Ok(SecretKey::from_seed(&seed))
}

/// A running (or stopped) volunteer loop. Create it with the volunteer's key seed, the pinned
/// portal keys (JSON from [`pin_portal_keys`]) and a callback that receives event objects;
/// `run()` resolves when `stop()` has been called.
#[wasm_bindgen]
pub struct VolunteerWorker {
    shared: Rc<Shared>,
}

struct Shared {
    volunteer: VolunteerId,
    /// The volunteer's signing key; its public half is `volunteer`.
    secret: SecretKey,
    trusted: PortalKeys,
    stopped: Cell<bool>,
    /// Paused by the page (tab hidden, on battery): no new unit starts until resumed.
    paused: Cell<bool>,
    /// The share of wall time this worker may compute, 0.1 to 1.
    duty_cycle: Cell<f64>,
    /// Jobs the volunteer chose not to compute, sent with every lease request.
    excluded_jobs: RefCell<Vec<JobId>>,
    /// The embedding site this worker computes for (`embed.js`), sent with every lease request.
    site: Cell<Option<SiteId>>,
    on_event: js_sys::Function,
}

#[wasm_bindgen]
impl VolunteerWorker {
    /// `secret_seed` is the volunteer's ed25519 seed (64 hex digits, generated once by the page
    /// from the browser's CSPRNG and kept in IndexedDB); `trusted_keys` the pinned portal key
    /// set as JSON; `on_event` is called with one object per event.
    #[wasm_bindgen(constructor)]
    pub fn new(
        secret_seed: &str,
        trusted_keys: &str,
        on_event: js_sys::Function,
    ) -> Result<VolunteerWorker, JsError> {
        events::install_panic_hook();
        let secret = parse_seed(secret_seed)?;
        let trusted = serde_json::from_str(trusted_keys)
            .map_err(|err| JsError::new(&format!("trusted keys: {err}")))?;
        Ok(Self {
            shared: Rc::new(Shared {
                volunteer: VolunteerId::from_bytes(*secret.public_key().as_bytes()),
                secret,
                trusted,
                stopped: Cell::new(false),
                paused: Cell::new(false),
                duty_cycle: Cell::new(1.0),
                excluded_jobs: RefCell::new(Vec::new()),
                site: Cell::new(None),
                on_event,
            }),
        })
    }

    /// Starts the loop. The promise resolves once the loop has stopped.
    pub fn run(&self) -> js_sys::Promise {
        let shared = Rc::clone(&self.shared);
        wasm_bindgen_futures::future_to_promise(async move {
            run_loop(&shared).await;
            shared.emit(&WorkerEvent::Stopped);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Asks the loop to stop after the current step.
    pub fn stop(&self) {
        self.shared.stopped.set(true);
    }

    /// Sets the share of time this worker computes (clamped to 0.1–1): after a unit that took
    /// `t` ms, the worker rests until its whole cycle (lease, compute, submit, rest) has lasted
    /// `t / duty_cycle`. Takes effect from the next unit.
    pub fn set_duty_cycle(&self, duty_cycle: f64) {
        let duty_cycle = if duty_cycle.is_finite() {
            duty_cycle
        } else {
            1.0
        };
        self.shared
            .duty_cycle
            .set(duty_cycle.clamp(MIN_DUTY_CYCLE, 1.0));
    }

    /// Pauses (no new unit starts; the current one finishes) or resumes the loop.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.set(paused);
    }

    /// Sets the jobs this volunteer chose not to compute: an array of job ids (numbers).
    /// Takes effect from the next lease request; units already in hand are still computed.
    /// Throws, keeping the previous choice, if an entry is not a job id or there are more
    /// than the protocol allows (256), since the portal would refuse every lease request.
    pub fn set_excluded_jobs(&self, job_ids: &js_sys::Array) -> Result<(), JsError> {
        let mut excluded = Vec::new();
        for value in job_ids.iter() {
            let job = value
                .as_f64()
                .and_then(job_id_from_number)
                .ok_or_else(|| JsError::new("an excluded job must be a job id (a whole number)"))?;
            if !excluded.contains(&job) {
                excluded.push(job);
            }
            if excluded.len() > MAX_EXCLUDED_JOBS {
                return Err(JsError::new(&format!(
                    "at most {MAX_EXCLUDED_JOBS} jobs can be excluded"
                )));
            }
        }
        *self.shared.excluded_jobs.borrow_mut() = excluded;
        Ok(())
    }

    /// Sets the registered embedding site this worker computes for (a site id, a whole
    /// number), or none. Takes effect from the next lease request.
    pub fn set_site(&self, site: Option<f64>) -> Result<(), JsError> {
        let site = match site {
            None => None,
            Some(number) => Some(SiteId(
                job_id_from_number(number)
                    .ok_or_else(|| JsError::new("a site must be a site id (a whole number)"))?
                    .0,
            )),
        };
        self.shared.site.set(site);
        Ok(())
    }
}

/// A job id from a JS number: a whole number that JS holds exactly.
fn job_id_from_number(number: f64) -> Option<JobId> {
    // 2^53: beyond it JS numbers skip integers, so the id would not be the one meant.
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    let exact = number.is_finite() && number.fract() == 0.0 && (0.0..MAX_EXACT).contains(&number);
    exact.then_some(JobId(number as u64))
}

impl Shared {
    fn emit(&self, event: &WorkerEvent) {
        events::emit(&self.on_event, event);
    }

    fn stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Tells the portal what went wrong; with a lease, the unit is released to someone else.
    async fn report(
        &self,
        job_id: JobId,
        lease: Option<&Lease>,
        kind: ReportKind,
        message: String,
    ) {
        let report = Report {
            protocol: PROTOCOL_VERSION,
            volunteer: self.volunteer,
            job_id,
            lease: lease.map(|lease| LeaseRef {
                lease_id: lease.lease_id,
                nonce: lease.nonce,
            }),
            kind,
            message,
        };
        if let Err(err) = post_json::<_, ReportResponse>(REPORTS_URL, &report).await {
            self.emit(&WorkerEvent::error(
                format!("reporting to the portal: {err}"),
                None,
            ));
        }
    }
}

async fn run_loop(shared: &Rc<Shared>) {
    let mut sandbox = match Sandbox::new() {
        Ok(sandbox) => sandbox,
        Err(err) => {
            shared.emit(&WorkerEvent::error(
                format!("cannot start the sandbox: {err}"),
                None,
            ));
            return;
        }
    };
    let mut jobs = Jobs::default();
    let mut announced = HashSet::new();
    let mut backoff = Backoff::default();
    let mut throttle = Throttle::new(shared.duty_cycle.get());
    let mut queue: VecDeque<Lease> = VecDeque::new();
    while !shared.stopped() {
        if shared.paused.get() {
            sleep(Duration::from_millis(PAUSE_POLL_MS)).await;
            // Time paused is neither busy nor idle.
            throttle = Throttle::new(shared.duty_cycle.get());
            continue;
        }
        if shared.duty_cycle.get() != throttle.duty_cycle {
            throttle = Throttle::new(shared.duty_cycle.get());
        }
        if queue.is_empty() {
            match fetch_leases(shared).await {
                Fetched::Leases(leases) => {
                    backoff.reset();
                    queue.extend(leases);
                }
                Fetched::NoWork { retry_ms } => {
                    backoff.reset();
                    shared.emit(&WorkerEvent::Idle { retry_ms });
                    sleep(Duration::from_millis(retry_ms)).await;
                    continue;
                }
                Fetched::Failed(err) => {
                    let wait_ms = backoff.next_ms();
                    shared.emit(&WorkerEvent::error(
                        format!("asking for work: {err}"),
                        Some(wait_ms),
                    ));
                    sleep(Duration::from_millis(wait_ms)).await;
                    continue;
                }
            }
        }
        {
            let Some(lease) = queue.pop_front() else {
                continue;
            };
            match jobs
                .load(lease.job_id, lease.module_sha256, &shared.trusted)
                .await
            {
                Load::Ready => backoff.reset(),
                Load::Refused(refusal) => {
                    shared.emit(&WorkerEvent::Refused {
                        job_id: lease.job_id.0,
                        kind: refusal.kind,
                        reason: refusal.reason.clone(),
                    });
                    shared
                        .report(lease.job_id, Some(&lease), refusal.kind, refusal.reason)
                        .await;
                    // The portal may offer the same job again; do not hammer it.
                    sleep(Duration::from_millis(backoff.next_ms())).await;
                    continue;
                }
                Load::Unavailable(err) => {
                    let wait_ms = backoff.next_ms();
                    shared.emit(&WorkerEvent::error(
                        format!("loading job {}: {err}", lease.job_id),
                        Some(wait_ms),
                    ));
                    sleep(Duration::from_millis(wait_ms)).await;
                    continue;
                }
            }
            let Some(job) = jobs.get(lease.job_id) else {
                continue;
            };
            if announced.insert(lease.job_id) {
                shared.emit(&WorkerEvent::Job {
                    job_id: lease.job_id.0,
                    title: job.manifest.title.clone(),
                    distributor: job.manifest.distributor.clone(),
                    module_sha256: job.manifest.module_sha256.to_string(),
                });
            }
            let budget_ms = job.manifest.policy.unit_budget_ms;
            let module = job.module.clone();
            let compute = compute_and_submit(shared, &mut sandbox, &module, budget_ms, lease);
            // With the last lease in hand, fetch the next ones while this unit computes, so
            // the round trip to the portal hides behind the computation.
            let busy_ms = if queue.is_empty() {
                let (busy_ms, fetched) = join(compute, fetch_leases(shared)).await;
                if let Fetched::Leases(leases) = fetched {
                    queue.extend(leases);
                }
                busy_ms
            } else {
                compute.await
            };
            let rest_ms = throttle.rest_after(busy_ms);
            if rest_ms >= 1.0 {
                sleep(Duration::from_millis(rest_ms as u64)).await;
            }
        }
    }
}

/// What asking the portal for work gave.
enum Fetched {
    Leases(Vec<Lease>),
    NoWork { retry_ms: u64 },
    Failed(HttpError),
}

/// Asks the portal for up to [`PREFETCH`] units.
async fn fetch_leases(shared: &Shared) -> Fetched {
    // The proof lets the portal hand out restricted jobs of groups this key joined; it costs
    // one signature per request (a request fetches up to PREFETCH units).
    let at_ms = js_sys::Date::now() as u64;
    let proof = LeaseProof {
        at_ms,
        signature: shared.secret.sign(
            Purpose::LeaseProof,
            &lease_proof_message(&shared.volunteer, at_ms),
        ),
    };
    let request = LeaseRequest {
        proof: Some(proof),
        protocol: PROTOCOL_VERSION,
        volunteer: shared.volunteer,
        max_units: PREFETCH,
        exclude_jobs: shared.excluded_jobs.borrow().clone(),
        site: shared.site.get(),
    };
    match post_json::<_, LeaseResponse>(LEASE_URL, &request).await {
        Ok(response) if response.leases.is_empty() => Fetched::NoWork {
            retry_ms: response.retry_after_ms.unwrap_or(5_000),
        },
        Ok(response) => Fetched::Leases(response.leases),
        Err(err) => Fetched::Failed(err),
    }
}

/// Computes one unit and starts submitting its result in the background (the next unit need
/// not wait for the server to make this one durable); returns how long the computation took
/// (the time the processor was busy), also when the unit failed.
async fn compute_and_submit(
    shared: &Rc<Shared>,
    sandbox: &mut Sandbox,
    module: &JsValue,
    budget_ms: u64,
    lease: Lease,
) -> f64 {
    let unit = format!("unit {} of job {}", lease.unit, lease.job_id);
    if Sha256Digest::of(&lease.input) != lease.input_sha256 {
        // Corrupted in transit: do not compute on it; release it to be sent again.
        let reason = format!("{unit}: input does not match its sha-256; skipped");
        shared.emit(&WorkerEvent::error(reason.clone(), None));
        shared
            .report(lease.job_id, Some(&lease), ReportKind::InputCorrupt, reason)
            .await;
        return 0.0;
    }
    let started = now_ms();
    let key = lease.module_sha256.to_string();
    let output = match sandbox.run(module, &key, &lease.input, budget_ms).await {
        Ok(output) => output,
        Err(failure) => {
            let busy_ms = (now_ms() - started).max(0.0);
            let kind = match failure {
                UnitFailure::Timeout { .. } => ReportKind::UnitTimeout,
                UnitFailure::JobError(_) => ReportKind::UnitJobError,
                UnitFailure::Trap(_) | UnitFailure::Sandbox(_) => ReportKind::UnitTrap,
            };
            let reason = format!("{unit}: {failure}");
            shared.emit(&WorkerEvent::UnitFailed {
                job_id: lease.job_id.0,
                unit: lease.unit,
                reason: reason.clone(),
            });
            shared
                .report(lease.job_id, Some(&lease), kind, reason)
                .await;
            return busy_ms;
        }
    };
    let busy_ms = (now_ms() - started).max(0.0);
    let compute_ms = busy_ms.round() as u64;
    let output_sha256 = Sha256Digest::of(&output);
    // The signature binds this output to this lease and its nonce, under the volunteer's key.
    let signature = shared.secret.sign(
        Purpose::Result,
        &result_message(&lease.lease_id, &lease.nonce, &output_sha256),
    );
    let submission = ResultSubmission {
        protocol: PROTOCOL_VERSION,
        volunteer: shared.volunteer,
        lease_id: lease.lease_id,
        nonce: lease.nonce,
        output_sha256,
        output,
        signature,
        compute_ms,
    };
    let shared = Rc::clone(shared);
    wasm_bindgen_futures::spawn_local(async move {
        submit(&shared, &submission, &lease, &unit, busy_ms).await;
    });
    busy_ms
}

/// Offers a result until the server acknowledges it as durable, refuses it, or the attempts
/// run out (then its lease expires and the unit is computed again elsewhere).
async fn submit(
    shared: &Shared,
    submission: &ResultSubmission,
    lease: &Lease,
    unit: &str,
    busy_ms: f64,
) {
    let mut backoff = Backoff::default();
    for attempt in 1..=SUBMIT_ATTEMPTS {
        match post_json::<_, SubmitResponse>(RESULTS_URL, submission).await {
            Ok(response) => {
                shared.emit(&WorkerEvent::UnitDone {
                    job_id: lease.job_id.0,
                    unit: lease.unit,
                    compute_ms: submission.compute_ms,
                    busy_ms,
                    status: response.status,
                });
                return;
            }
            // The server understood and refused (expired, not ours, ...): retrying cannot help.
            Err(err @ HttpError::Refused { .. }) => {
                shared.emit(&WorkerEvent::error(
                    format!("{unit}: result refused: {err}"),
                    None,
                ));
                return;
            }
            Err(err) if attempt < SUBMIT_ATTEMPTS => {
                let wait_ms = backoff.next_ms();
                shared.emit(&WorkerEvent::error(
                    format!("sending {unit}: {err}; retrying"),
                    Some(wait_ms),
                ));
                sleep(Duration::from_millis(wait_ms)).await;
            }
            Err(err) => {
                shared.emit(&WorkerEvent::error(
                    format!("sending {unit}: {err}; giving up"),
                    None,
                ));
            }
        }
    }
}

/// Keeps a worker's busy time at its duty cycle: after each unit it rests until, since the
/// throttle started, busy time / elapsed time is back at the duty cycle. Counting totals, not
/// single cycles, repays what timers round away (a worker's short timeouts are clamped to a
/// few ms, and units can be shorter than that).
struct Throttle {
    duty_cycle: f64,
    started_ms: f64,
    busy_ms: f64,
}

impl Throttle {
    fn new(duty_cycle: f64) -> Self {
        Self {
            duty_cycle,
            started_ms: now_ms(),
            busy_ms: 0.0,
        }
    }

    /// How long to rest after a unit that kept the processor busy for `busy_ms`.
    fn rest_after(&mut self, busy_ms: f64) -> f64 {
        self.busy_ms += busy_ms;
        let due_ms = self.busy_ms / self.duty_cycle;
        due_ms - (now_ms() - self.started_ms)
    }
}

/// A monotonic clock in milliseconds with sub-millisecond resolution (`performance.now()`),
/// in a worker or a page alike; `Date.now()` where it is missing.
fn now_ms() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &JsValue::from_str("performance"))
        .ok()
        .and_then(|performance| {
            let now = js_sys::Reflect::get(&performance, &JsValue::from_str("now")).ok()?;
            let now: js_sys::Function = now.dyn_into().ok()?;
            now.call0(&performance).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// Exponential backoff with full jitter, so that workers that failed together do not retry
/// together.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const BASE_MS: f64 = 250.0;
    const MAX_MS: f64 = 30_000.0;

    fn next_ms(&mut self) -> u64 {
        self.failures = self.failures.saturating_add(1);
        let ceiling = (Self::BASE_MS * 2f64.powi(self.failures.min(16) as i32)).min(Self::MAX_MS);
        (ceiling * (0.5 + 0.5 * js_sys::Math::random())) as u64
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
