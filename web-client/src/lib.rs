//! The volunteer client, compiled to WebAssembly and run inside a module Web Worker.
//!
//! One opaque handle, [`VolunteerWorker`], crosses the wasm-bindgen boundary (plus
//! [`pin_portal_keys`], which the page calls once before starting workers). The loop leases
//! units (a time's worth ahead: the work buffer setting), loads each unit's job (signed
//! manifest checked against the pinned portal keys, module checked against the manifest's
//! SHA-256, compiled), checks the input's digest, runs the unit in a sandbox worker under a
//! watchdog, and stores the signed result in the offline queue; a second task sends stored
//! results, oldest first, until the portal acknowledges them. Units and results live in IndexedDB (`queue.rs`), so
//! work goes on while the network is down and survives a reload. Every step is reported to the
//! page as an event object; everything that goes wrong is also reported to the portal.

mod events;
mod http;
mod jobs;
mod offline;
mod outbox;
mod queue;
mod sandbox;
mod transparency;
mod wake;
mod work;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use cyclepool_shared::distributor::{Category, SiteId};
use cyclepool_shared::distributor::{JoinGroup, join_message};
use cyclepool_shared::json;
use cyclepool_shared::manifest::PortalKeys;
use cyclepool_shared::protocol::{
    Lease, LeaseRef, MAX_EXCLUDED_JOBS, PROTOCOL_VERSION, Report, ReportKind, ReportResponse,
};
use cyclepool_shared::signing::{Purpose, SecretKey};
use cyclepool_shared::{JobId, VolunteerId};
use wasm_bindgen::prelude::*;

use crate::events::WorkerEvent;
use crate::http::{HttpError, post_json};
use crate::queue::{Queue, StoredResult};
use crate::wake::Signal;

const REPORTS_URL: &str = "/api/v1/reports";

/// The least share of time a worker may be set to compute.
const MIN_DUTY_CYCLE: f64 = 0.1;

/// Decides which portal keys to trust: `pinned` is what this browser trusted before (JSON, or
/// empty on first use), `offered` what the portal publishes now. Returns the new pinned set
/// as JSON, or throws if the portal offers a key that no pinned key endorsed.
#[wasm_bindgen]
pub fn pin_portal_keys(pinned: &str, offered: &str) -> Result<String, JsError> {
    let pinned: PortalKeys = if pinned.trim().is_empty() {
        PortalKeys::default()
    } else {
        json::from_str(pinned).map_err(|err| JsError::new(&format!("pinned keys: {err}")))?
    };
    let offered: PortalKeys =
        json::from_str(offered).map_err(|err| JsError::new(&format!("portal keys: {err}")))?;
    let trusted =
        PortalKeys::pin(&pinned, &offered).map_err(|err| JsError::new(&err.to_string()))?;
    Ok(json::to_string(&trusted))
}

/// Verifies a run of transparency log entries (JSON array, as `GET /api/v1/log` serves them)
/// with the pinned portal keys (JSON); `after` is the head (JSON `{seq, sha256}`) the run
/// continues, or empty for a run taken on its own. Returns the new head as JSON (`null` for an
/// empty run without `after`); throws, naming the entry, if the chain is broken.
#[wasm_bindgen]
pub fn verify_log(entries: &str, trusted_keys: &str, after: &str) -> Result<String, JsError> {
    transparency::verify_entries(entries, trusted_keys, after).map_err(|err| JsError::new(&err))
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
    Ok(json::to_string(&request))
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
    /// Seconds of work to keep in hand beyond the sandbox's units (the work buffer setting).
    work_buffer_s: Cell<u32>,
    /// Jobs the volunteer chose not to compute, sent with every lease request.
    excluded_jobs: RefCell<Vec<JobId>>,
    /// Categories of jobs the volunteer chose not to compute, sent with every lease request.
    excluded_categories: RefCell<Vec<Category>>,
    /// The embedding site this worker computes for (`embed.js`), sent with every lease request.
    site: Cell<Option<SiteId>>,
    /// Whether the portal answered this worker's last request (told to the page on change).
    reachable: Cell<bool>,
    /// No lease request before this time (`now_ms()`): backing off after a failure, or waiting
    /// as the portal asked when it had no work.
    lease_retry_at: Cell<f64>,
    /// Results this worker just computed while the portal was in reach, held in memory only:
    /// sent straight away, their units staying in the queue (claimed by this worker) until the
    /// portal answers, so that a result costs no queue transaction of its own. A closed tab
    /// loses these results but not their units, which are computed again. Stored in the queue
    /// if the portal gives no definitive answer, or when the worker stops.
    fresh: RefCell<VecDeque<StoredResult>>,
    /// Results the queue could not store (IndexedDB failed): sent from memory.
    unsaved: RefCell<VecDeque<StoredResult>>,
    /// The queue may hold free results, to be claimed oldest first before fresh ones: at
    /// start, after a result was given back or stored while the portal was out of reach, and
    /// now and then in case a worker that died left some.
    backlog: Cell<bool>,
    /// Wakes the task that sends results: a result was stored, or the portal is back.
    outbox_wake: Signal,
    /// Set with `outbox_wake` when the portal is back: retry at once, not after the backoff.
    outbox_nudged: Cell<bool>,
    /// The work loop's request for units, set with `outbox_wake`: the outbox carries it in its
    /// next exchange, with the results at hand, and answers it there.
    lease_want: RefCell<Option<outbox::LeaseWant>>,
    /// Results being signed and stored, not yet handed to the outbox: a request for units
    /// waits a moment for them, to travel in the same exchange.
    finishing: Cell<usize>,
    /// Wakes the work loop from a backoff when the portal is back.
    loop_wake: Signal,
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
        let trusted = json::from_str(trusted_keys)
            .map_err(|err| JsError::new(&format!("trusted keys: {err}")))?;
        Ok(Self {
            shared: Rc::new(Shared {
                volunteer: VolunteerId::from_bytes(*secret.public_key().as_bytes()),
                secret,
                trusted,
                stopped: Cell::new(false),
                paused: Cell::new(false),
                duty_cycle: Cell::new(1.0),
                work_buffer_s: Cell::new(offline::DEFAULT_WORK_BUFFER_S),
                excluded_jobs: RefCell::new(Vec::new()),
                excluded_categories: RefCell::new(Vec::new()),
                site: Cell::new(None),
                reachable: Cell::new(true),
                lease_retry_at: Cell::new(0.0),
                fresh: RefCell::new(VecDeque::new()),
                unsaved: RefCell::new(VecDeque::new()),
                backlog: Cell::new(true),
                outbox_wake: Signal::default(),
                outbox_nudged: Cell::new(false),
                lease_want: RefCell::new(None),
                finishing: Cell::new(0),
                loop_wake: Signal::default(),
                on_event,
            }),
        })
    }

    /// Starts the loop. The promise resolves once the loop has stopped.
    ///
    /// Work kept in the offline queue comes first: results not yet acknowledged are sent
    /// before anything new is leased, and units in hand that are still in time are computed
    /// before new ones are leased.
    pub fn run(&self) -> js_sys::Promise {
        let shared = Rc::clone(&self.shared);
        wasm_bindgen_futures::future_to_promise(async move {
            // Its worker starts loading now; it is first needed only once a unit is in hand.
            let sandbox = sandbox::Sandbox::new();
            let queue = match Queue::open().await {
                Ok(queue) => Rc::new(queue),
                Err(err) => {
                    shared.emit(&WorkerEvent::error(
                        format!("cannot open the offline queue: {err}"),
                        None,
                    ));
                    shared.emit(&WorkerEvent::Stopped);
                    return Ok(JsValue::UNDEFINED);
                }
            };
            shared.emit(&WorkerEvent::Queue {
                persistent: queue.persistent(),
                reason: queue.reason(),
            });
            let (first_pass_done, first_pass) = futures_channel::oneshot::channel();
            wasm_bindgen_futures::spawn_local(outbox::run(
                Rc::clone(&shared),
                Rc::clone(&queue),
                first_pass_done,
            ));
            work::run(&shared, queue, first_pass, sandbox).await;
            shared.emit(&WorkerEvent::Stopped);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Asks the loop to stop after the current step.
    pub fn stop(&self) {
        self.shared.stopped.set(true);
        // Neither task should sleep through the stop.
        self.shared.outbox_wake.notify();
        self.shared.loop_wake.notify();
    }

    /// Sets how many seconds of work this worker keeps in hand beyond what its sandbox holds
    /// (clamped to 1–600), at the pace of its recent units and within half their lease time:
    /// more rides out longer outages, less holds back less work from others. Takes effect from
    /// the next request for work.
    pub fn set_work_buffer(&self, seconds: f64) {
        self.shared
            .work_buffer_s
            .set(offline::clamp_work_buffer(seconds));
    }

    /// Tells the worker the network is back (the page's `online` event, or a request of the
    /// page that succeeded): waiting results are sent and work is asked for at once, instead
    /// of at the end of the current backoff.
    pub fn network_online(&self) {
        self.shared.lease_retry_at.set(0.0);
        self.shared.nudge();
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

    /// Sets the job categories this volunteer chose not to compute: an array of category names
    /// (`mathematics`, `computer_science`, …). Takes effect from the next lease request.
    /// Throws, keeping the previous choice, if a name is not a category.
    pub fn set_excluded_categories(&self, names: &js_sys::Array) -> Result<(), JsError> {
        let mut excluded = Vec::new();
        for value in names.iter() {
            let name = value.as_string().unwrap_or_default();
            let category: Category = from_name(&name)
                .ok_or_else(|| JsError::new(&format!("{name:?} is not a job category")))?;
            if !excluded.contains(&category) {
                excluded.push(category);
            }
        }
        *self.shared.excluded_categories.borrow_mut() = excluded;
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

/// A field-less enum's value from its name as serialized (`computer_science`, `lease_expired`).
fn from_name<T: json::FromJson>(name: &str) -> Option<T> {
    T::from_json(&json::Json::String(name.to_owned())).ok()
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

    /// Wakes both tasks from their backoffs: the portal is (probably) reachable again.
    fn nudge(&self) {
        self.outbox_nudged.set(true);
        self.outbox_wake.notify();
        self.loop_wake.notify();
    }

    /// Records whether the portal answered; tells the page on a change. When it answers again
    /// after an outage, waiting results go at once.
    fn set_reachable(&self, reachable: bool) {
        if self.reachable.replace(reachable) != reachable {
            self.emit(&WorkerEvent::Connection { reachable });
            if reachable {
                self.nudge();
            }
        }
    }

    /// Notes what a failed request says about the network: no answer or a 5xx means the portal
    /// is out of reach; a 4xx is an answer.
    fn note_failure(&self, err: &HttpError) {
        let unreachable = matches!(err, HttpError::Network(_) | HttpError::Unavailable { .. });
        self.set_reachable(!unreachable);
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
            self.note_failure(&err);
            self.emit(&WorkerEvent::error(
                format!("reporting to the portal: {err}"),
                None,
            ));
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

#[cfg(test)]
mod tests {
    use cyclepool_shared::ErrorCode;
    use cyclepool_shared::distributor::Category;

    use super::from_name;

    #[test]
    fn enum_values_are_read_from_their_serialized_names_only() {
        assert_eq!(
            from_name::<Category>("computer_science"),
            Some(Category::ComputerScience)
        );
        assert_eq!(
            from_name::<ErrorCode>("lease_expired"),
            Some(ErrorCode::LeaseExpired)
        );
        assert_eq!(from_name::<Category>("ComputerScience"), None);
        assert_eq!(from_name::<Category>("\"art\""), None);
        // A code this client does not know (from a newer portal) is `Unknown`, as in a body.
        assert_eq!(
            from_name::<ErrorCode>("a_newer_code"),
            Some(ErrorCode::Unknown)
        );
    }
}
