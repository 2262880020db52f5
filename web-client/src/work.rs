//! The work loop: keeps units in hand (written to the offline queue as they arrive, ordered
//! before any later write about them), computes them one after another, and hands each signed
//! result to the queue, from which the outbox sends it.
//!
//! Units come from the queue first (left by this page before a reload, or by a worker that
//! stopped), then from the portal. Topping up the hand happens in the background while a unit
//! computes, so the round trip to the portal hides behind the computation; when the portal is
//! out of reach the units in hand are still computed, and those whose deadline passed while
//! they waited are dropped without computing.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use cyclepool_shared::protocol::{
    Lease, LeaseProof, LeaseRequest, LeaseResponse, PROTOCOL_VERSION, ReportKind, ResultSubmission,
};
use cyclepool_shared::signing::{Purpose, lease_proof_message, result_message};
use cyclepool_shared::{JobId, LeaseId, Sha256Digest};
use futures_channel::oneshot;
use gloo_timers::future::sleep;

use crate::events::WorkerEvent;
use crate::http::HttpError;
use crate::jobs::{Jobs, Load, LoadedJob};
use crate::offline::{self, Freshness};
use crate::queue::{Queue, StoredResult, StoredUnit};
use crate::sandbox::{Answer, Sandbox, UnitFailure};
use crate::wake::Signal;
use crate::{Backoff, Shared, Throttle, now_ms};

/// How often a paused worker looks whether it may go on.
const PAUSE_POLL_MS: u64 = 250;
/// How long the loop waits for a top-up in flight before looking again.
const REFILL_WAIT_MS: u64 = 1_000;
/// Once the queue had no free units, look again only this often: free units appear only when
/// a worker of this origin stops or dies (a tab closed, another tab reloaded), and a look costs
/// a transaction that the writes of every unit would otherwise wait behind. Not much longer,
/// though: a worker that starts just after a reload or Stop may find the old worker's lock not
/// yet released, and its units (leased to this volunteer, so no one else gets them until
/// their deadline) wait for the next look.
const STORED_LOOK_MS: f64 = 5_000.0;

/// The loop's state shared with its background top-ups.
struct Work {
    shared: Rc<Shared>,
    queue: Rc<Queue>,
    /// Units claimed by this worker and waiting to be computed, oldest lease first.
    hand: RefCell<VecDeque<StoredUnit>>,
    /// A top-up is in flight.
    refilling: Cell<bool>,
    /// Fired when a top-up ends.
    refilled: Signal,
    /// Backs off lease requests that failed.
    lease_backoff: RefCell<Backoff>,
    /// When to look for free units in the queue next (`now_ms()`); at once on start.
    look_stored_at: Cell<f64>,
    /// How long this worker's units take: how many make the work buffer.
    pace: Cell<offline::Pace>,
}

/// What asking the portal for work gave.
pub(crate) enum Fetched {
    Leases(Vec<Lease>),
    NoWork { retry_ms: u64 },
    Failed(HttpError),
}

/// Runs the loop until the worker is stopped. `first_pass` fires once the outbox has sent the
/// results waiting from before (or found the portal out of reach). `sandbox` was started first
/// thing, so that its worker loads while the queue opens.
pub async fn run(
    shared: &Rc<Shared>,
    queue: Rc<Queue>,
    first_pass: oneshot::Receiver<()>,
    sandbox: Result<Sandbox, UnitFailure>,
) {
    let mut sandbox = match sandbox {
        Ok(sandbox) => sandbox,
        Err(err) => {
            shared.emit(&WorkerEvent::error(
                format!("cannot start the sandbox: {err}"),
                None,
            ));
            return;
        }
    };
    let work = Rc::new(Work {
        shared: Rc::clone(shared),
        queue,
        hand: RefCell::new(VecDeque::new()),
        refilling: Cell::new(false),
        refilled: Signal::default(),
        lease_backoff: RefCell::new(Backoff::default()),
        look_stored_at: Cell::new(0.0),
        pace: Cell::new(offline::Pace::default()),
    });
    // Results kept from before go out before anything new is leased: they are the closest to
    // their deadlines.
    let _ = first_pass.await;
    let mut jobs = Jobs::default();
    // The jobs the page was told about (a handful: a list, not a hash set).
    let mut announced: Vec<JobId> = Vec::new();
    let mut job_backoff = Backoff::default();
    let mut throttle = Throttle::new(shared.duty_cycle.get());
    // Units handed to the sandbox and not yet answered, oldest first: the one computing, and,
    // flat out, the next one waiting behind it.
    let mut in_sandbox: VecDeque<StoredUnit> = VecDeque::new();
    while !shared.stopped() {
        if in_sandbox.is_empty() {
            if shared.paused.get() {
                sleep(Duration::from_millis(PAUSE_POLL_MS)).await;
                // Time paused is neither busy nor idle.
                throttle = Throttle::new(shared.duty_cycle.get());
                continue;
            }
            if shared.duty_cycle.get() != throttle.duty_cycle {
                throttle = Throttle::new(shared.duty_cycle.get());
            }
            let Some(stored) = work.next_unit().await else {
                continue;
            };
            // With few units left in hand, fetch more while this one computes.
            work.top_up();
            let lease = &stored.lease;
            match jobs
                .load(lease.job_id, lease.module_sha256, &shared.trusted)
                .await
            {
                Load::Ready => job_backoff.reset(),
                Load::Refused(refusal) => {
                    shared.emit(&WorkerEvent::Refused {
                        job_id: lease.job_id.0,
                        kind: refusal.kind,
                        reason: refusal.reason.clone(),
                    });
                    work.drop_unit(lease.lease_id).await;
                    shared
                        .report(lease.job_id, Some(lease), refusal.kind, refusal.reason)
                        .await;
                    // The portal may offer the same job again; do not hammer it.
                    sleep(Duration::from_millis(job_backoff.next_ms())).await;
                    continue;
                }
                Load::Unavailable(err) => {
                    shared.note_failure(&err);
                    // Without its job the exact deadline is unknown; only a unit surely expired
                    // is given up, the others wait for the job to load.
                    let freshness =
                        offline::freshness(js_sys::Date::now(), 0.0, lease.deadline_ms, None);
                    if freshness == Freshness::Expired {
                        work.expire(&stored).await;
                        continue;
                    }
                    let wait_ms = job_backoff.next_ms();
                    shared.emit(&WorkerEvent::error(
                        format!("loading job {}: {err}", lease.job_id),
                        Some(wait_ms),
                    ));
                    work.hand.borrow_mut().push_front(stored);
                    shared.loop_wake.wait(wait_ms).await;
                    continue;
                }
            }
            let Some(job) = jobs.get(lease.job_id) else {
                continue;
            };
            if !announced.contains(&lease.job_id) {
                announced.push(lease.job_id);
                shared.emit(&WorkerEvent::Job {
                    job_id: lease.job_id.0,
                    title: job.manifest.title.clone(),
                    distributor: job.manifest.distributor.clone(),
                    module_sha256: job.manifest.module_sha256.to_string(),
                    log_seq: job.log_seq,
                });
            }
            if !job.in_time(&stored) {
                work.expire(&stored).await;
                continue;
            }
            if let Some(stored) = work.hand_over(&mut sandbox, job, stored).await {
                in_sandbox.push_back(stored);
            }
            continue;
        }
        // Flat out, the next unit waits in the sandbox behind the one computing, if it is ready
        // now (its job loaded, in time); anything else is for the path above. A throttled
        // worker rests between units instead, and a paused one starts none.
        if in_sandbox.len() == 1 && throttle.duty_cycle >= 1.0 && !shared.paused.get() {
            if let Some((stored, job)) = work.ready_unit(&jobs) {
                work.top_up();
                if let Some(stored) = work.hand_over(&mut sandbox, job, stored).await {
                    in_sandbox.push_back(stored);
                }
            }
        }
        let answer = sandbox.answer().await;
        let Some(stored) = in_sandbox.pop_front() else {
            continue;
        };
        let job_id = stored.lease.job_id;
        let busy_ms = work.complete(stored, answer).await;
        let rest_ms = throttle.rest_after(busy_ms);
        if let Some(job) = jobs.get(job_id) {
            work.note_pace(busy_ms + rest_ms.max(0.0), job.manifest.policy.lease_ttl_ms);
        }
        if rest_ms >= 1.0 {
            sleep(Duration::from_millis(rest_ms as u64)).await;
        }
    }
    // Stopped: the unit waiting in the sandbox (the sandbox goes with this loop) and the units
    // in hand go back to the queue for whichever worker runs next.
    let held: Vec<LeaseId> = in_sandbox
        .drain(..)
        .chain(work.hand.borrow_mut().drain(..))
        .map(|unit| unit.lease_id)
        .collect();
    if !held.is_empty() {
        if let Err(err) = work.queue.release_units(&held).await {
            shared.emit(&WorkerEvent::error(err, None));
        }
    }
}

impl Work {
    /// The next unit to compute, or `None` after waiting (for work, a top-up, or a backoff)
    /// so that the loop looks at pause and stop again.
    async fn next_unit(self: &Rc<Self>) -> Option<StoredUnit> {
        if let Some(unit) = self.hand.borrow_mut().pop_front() {
            return Some(unit);
        }
        if self.refilling.get() {
            self.refilled.wait(REFILL_WAIT_MS).await;
            return None;
        }
        let keep = self.units_to_keep();
        if self.claim_stored(keep).await == 0 {
            let wait_ms = self.shared.lease_retry_at.get() - now_ms();
            if wait_ms >= 1.0 {
                self.shared.loop_wake.wait(wait_ms as u64).await;
                return None;
            }
            self.lease(keep).await;
        }
        self.hand.borrow_mut().pop_front()
    }

    /// The work buffer setting, in ms.
    fn buffer_ms(&self) -> f64 {
        f64::from(self.shared.work_buffer_s.get()) * 1_000.0
    }

    /// How many units make this worker's work buffer at the pace of its recent units.
    fn units_to_keep(&self) -> u32 {
        self.pace.get().units_to_keep(self.buffer_ms())
    }

    /// Notes that a unit of a job with `lease_ttl_ms` leases took `unit_ms` of wall time.
    fn note_pace(&self, unit_ms: f64, lease_ttl_ms: u64) {
        let mut pace = self.pace.get();
        pace.record(unit_ms, lease_ttl_ms);
        self.pace.set(pace);
    }

    /// Tops the hand up in the background when it runs low, unless a top-up is in flight or
    /// lease requests are backing off.
    fn top_up(self: &Rc<Self>) {
        let in_hand = self.hand.borrow().len();
        let Some(wanted) = offline::refill_wanted(self.units_to_keep(), in_hand) else {
            return;
        };
        if self.refilling.get() || now_ms() < self.shared.lease_retry_at.get() {
            return;
        }
        self.refilling.set(true);
        let work = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            let claimed = work.claim_stored(wanted).await;
            if claimed < wanted {
                work.lease(wanted - claimed).await;
            }
            work.refilling.set(false);
            work.refilled.notify();
        });
    }

    /// Claims up to `max` units left in the queue by earlier workers; returns how many.
    async fn claim_stored(&self, max: u32) -> u32 {
        let shared = &self.shared;
        if now_ms() < self.look_stored_at.get() {
            return 0;
        }
        // Units whose deadline passed this long ago by this clock cannot be in time whatever
        // the clocks say; they are cleared out, this volunteer's or not.
        let stale_before_ms = js_sys::Date::now() - offline::CLOCK_SKEW_ALLOWANCE_MS;
        match self
            .queue
            .claim_units(shared.volunteer, max, stale_before_ms)
            .await
        {
            Ok(found) => {
                for err in found.unreadable {
                    shared.emit(&WorkerEvent::error(err, None));
                }
                for (job_id, unit) in found.expired {
                    shared.emit(&WorkerEvent::UnitExpired { job_id, unit });
                }
                let claimed = found.units.len() as u32;
                if claimed < max {
                    self.look_stored_at.set(now_ms() + STORED_LOOK_MS);
                }
                self.hand.borrow_mut().extend(found.units);
                claimed
            }
            Err(err) => {
                shared.emit(&WorkerEvent::error(err, None));
                0
            }
        }
    }

    /// Asks the portal for up to `max` units; stores what it gives as it puts it in hand.
    async fn lease(&self, max: u32) {
        let shared = &self.shared;
        let work_ms = offline::work_wanted_ms(
            self.buffer_ms(),
            shared.duty_cycle.get(),
            max,
            self.units_to_keep(),
        );
        match fetch_leases(shared, max, work_ms).await {
            Fetched::Leases(leases) => {
                self.lease_backoff.borrow_mut().reset();
                shared.set_reachable(true);
                let received_ms = js_sys::Date::now();
                let units: Vec<StoredUnit> = leases
                    .into_iter()
                    .map(|lease| StoredUnit {
                        lease_id: lease.lease_id,
                        volunteer: shared.volunteer,
                        received_ms,
                        lease,
                    })
                    .collect();
                // Issued now, awaited in the background: the loop need not wait for the disk,
                // since IndexedDB orders this write before any later one about these units.
                let written = self.queue.add_units(&units);
                self.hand.borrow_mut().extend(units);
                let shared = Rc::clone(shared);
                wasm_bindgen_futures::spawn_local(async move {
                    if let Err(err) = written.await {
                        // They are still computed; only a reload now would lose them (and
                        // then their leases simply expire).
                        shared.emit(&WorkerEvent::error(
                            format!("units in hand not stored: {err}"),
                            None,
                        ));
                    }
                });
            }
            Fetched::NoWork { retry_ms } => {
                self.lease_backoff.borrow_mut().reset();
                shared.set_reachable(true);
                shared.lease_retry_at.set(now_ms() + retry_ms as f64);
                // Only worth saying when there is nothing else to do.
                if self.hand.borrow().is_empty() {
                    shared.emit(&WorkerEvent::Idle { retry_ms });
                }
            }
            // Stopping: nothing to say.
            Fetched::Failed(_) if shared.stopped() => {}
            Fetched::Failed(err) => {
                shared.note_failure(&err);
                let wait_ms = self.lease_backoff.borrow_mut().next_ms();
                shared.lease_retry_at.set(now_ms() + wait_ms as f64);
                shared.emit(&WorkerEvent::error(
                    format!("asking for work: {err}"),
                    Some(wait_ms),
                ));
            }
        }
    }

    /// Forgets a unit that will not be computed.
    async fn drop_unit(&self, lease_id: LeaseId) {
        if let Err(err) = self.queue.drop_unit(lease_id).await {
            self.shared.emit(&WorkerEvent::error(err, None));
        }
    }

    /// Drops a unit whose deadline passed while it waited, and says so.
    async fn expire(&self, stored: &StoredUnit) {
        self.drop_unit(stored.lease_id).await;
        self.shared.emit(&WorkerEvent::UnitExpired {
            job_id: stored.lease.job_id.0,
            unit: stored.lease.unit,
        });
    }

    /// The next unit in hand if it can go to the sandbox at once: its job loaded (the module
    /// the lease names) and its deadline not passed. Otherwise it stays in hand.
    fn ready_unit<'j>(&self, jobs: &'j Jobs) -> Option<(StoredUnit, &'j LoadedJob)> {
        let mut hand = self.hand.borrow_mut();
        let next = hand.front()?;
        let job = jobs
            .get(next.lease.job_id)
            .filter(|job| job.manifest.module_sha256 == next.lease.module_sha256)?;
        if !job.in_time(next) {
            return None;
        }
        hand.pop_front().map(|stored| (stored, job))
    }

    /// Hands a unit to the sandbox, after checking its input; returns it, or `None` if it was
    /// dropped (and reported) instead.
    async fn hand_over(
        &self,
        sandbox: &mut Sandbox,
        job: &LoadedJob,
        stored: StoredUnit,
    ) -> Option<StoredUnit> {
        let shared = &self.shared;
        let lease = &stored.lease;
        let unit = format!("unit {} of job {}", lease.unit, lease.job_id);
        if Sha256Digest::of(&lease.input) != lease.input_sha256 {
            // Corrupted in transit (or in the store): do not compute on it; release it to be
            // sent again.
            let reason = format!("{unit}: input does not match its sha-256; skipped");
            shared.emit(&WorkerEvent::error(reason.clone(), None));
            self.drop_unit(lease.lease_id).await;
            shared
                .report(lease.job_id, Some(lease), ReportKind::InputCorrupt, reason)
                .await;
            return None;
        }
        let key = lease.module_sha256.to_string();
        let budget_ms = job.manifest.policy.unit_budget_ms;
        if let Err(failure) = sandbox.post(&job.module, &key, &lease.input, budget_ms) {
            self.fail(&stored, failure).await;
            return None;
        }
        Some(stored)
    }

    /// Finishes a unit the sandbox answered: a result is finished in the background ([`finish`]:
    /// signed, stored, sent), so that the next unit need not wait for that, nor for the portal;
    /// a failure is reported. Returns how long the unit kept the sandbox busy.
    async fn complete(&self, stored: StoredUnit, answer: Answer) -> f64 {
        let busy_ms = answer.held_ms;
        let computed = match answer.result {
            Ok(computed) => computed,
            Err(failure) => {
                self.fail(&stored, failure).await;
                return busy_ms;
            }
        };
        // The time in the module as the sandbox measured it. This side's measure includes the
        // messages to and from the sandbox, and for a unit that waited behind another, how late
        // this side heard that the other ended.
        let compute_ms = computed.ms.unwrap_or(busy_ms).round() as u64;
        // Spawned tasks run once this one waits, which is once the loop has handed the next
        // unit (if one is ready) to the sandbox.
        self.shared.finishing.set(self.shared.finishing.get() + 1);
        wasm_bindgen_futures::spawn_local(finish(
            Rc::clone(&self.shared),
            Rc::clone(&self.queue),
            stored.lease,
            computed.output,
            Times {
                compute_ms,
                busy_ms,
            },
        ));
        busy_ms
    }

    /// Drops a unit that produced no output, and reports it.
    async fn fail(&self, stored: &StoredUnit, failure: UnitFailure) {
        let lease = &stored.lease;
        let kind = match failure {
            UnitFailure::Timeout { .. } => ReportKind::UnitTimeout,
            UnitFailure::JobError(_) => ReportKind::UnitJobError,
            UnitFailure::Trap(_) | UnitFailure::Sandbox(_) => ReportKind::UnitTrap,
        };
        let reason = format!("unit {} of job {}: {failure}", lease.unit, lease.job_id);
        self.shared.emit(&WorkerEvent::UnitFailed {
            job_id: lease.job_id.0,
            unit: lease.unit,
            reason: reason.clone(),
        });
        self.drop_unit(lease.lease_id).await;
        self.shared
            .report(lease.job_id, Some(lease), kind, reason)
            .await;
    }
}

/// How long a unit took: in the module (whole ms, reported to the portal), and for this worker
/// (from handing the unit to the sandbox to its answer, for the throttle and the page).
struct Times {
    compute_ms: u64,
    busy_ms: f64,
}

/// Signs a computed unit's result, tells the page, stores the result in place of its unit in
/// the queue, and hands it to the outbox.
async fn finish(shared: Rc<Shared>, queue: Rc<Queue>, lease: Lease, output: Vec<u8>, times: Times) {
    let Times {
        compute_ms,
        busy_ms,
    } = times;
    let output_sha256 = Sha256Digest::of(&output);
    // The signature binds this output to this lease and its nonce, under the volunteer's
    // key: stored as it is, it stays valid to send later.
    let signature = shared.secret.sign(
        Purpose::Result,
        &result_message(&lease.lease_id, &lease.nonce, &output_sha256),
    );
    let result = StoredResult {
        lease_id: lease.lease_id,
        job_id: lease.job_id.0,
        unit: lease.unit,
        deadline_ms: lease.deadline_ms,
        finished_ms: js_sys::Date::now(),
        busy_ms,
        submission: ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer: shared.volunteer,
            lease_id: lease.lease_id,
            nonce: lease.nonce,
            output_sha256,
            output,
            signature,
            compute_ms,
        },
    };
    shared.emit(&WorkerEvent::UnitComputed {
        job_id: result.job_id,
        unit: result.unit,
        compute_ms,
        busy_ms,
    });
    // In reach, the result goes from memory in the next exchange and its unit stays in the
    // queue until the portal answers: storing each result cost a queue transaction a unit,
    // which was most of what the browser spent on a unit besides computing it. Out of reach,
    // the result joins the backlog in the queue rather than wait in this worker's memory,
    // which a long outage would fill.
    if shared.reachable.get() {
        shared.fresh.borrow_mut().push_back(result);
    } else {
        store_result(&shared, &queue, result).await;
    }
    shared
        .finishing
        .set(shared.finishing.get().saturating_sub(1));
    shared.outbox_wake.notify();
}

/// Stores a computed unit's result in the queue in place of its unit, free for whichever worker
/// sends next; if the queue fails, the result waits in memory.
pub(crate) async fn store_result(shared: &Shared, queue: &Queue, result: StoredResult) {
    match queue.finish_unit(&result).await {
        Ok(()) => shared.backlog.set(true),
        Err(err) => {
            shared.emit(&WorkerEvent::error(
                format!(
                    "unit {} of job {}: result not stored ({err}); it is sent from memory",
                    result.unit, result.job_id
                ),
                None,
            ));
            shared.unsaved.borrow_mut().push_back(result);
        }
    }
}

/// Asks the portal for up to `max` units, about `work_ms` of computing, in the outbox's next
/// exchange (`POST /api/v1/exchange`), which carries the results at hand with it: one request
/// for both.
async fn fetch_leases(shared: &Shared, max: u32, work_ms: u64) -> Fetched {
    let (answer, answered) = oneshot::channel();
    // One request at a time: the work loop waits for its answer (or a top-up is in flight).
    *shared.lease_want.borrow_mut() = Some(crate::outbox::LeaseWant {
        request: lease_request(shared, max, work_ms),
        answer,
    });
    shared.outbox_wake.notify();
    answered
        .await
        .unwrap_or_else(|_| Fetched::Failed(HttpError::Network("the worker is stopping".into())))
}

/// The request for up to `max` units and `work_ms` of computing, with this key's proof.
fn lease_request(shared: &Shared, max: u32, work_ms: u64) -> LeaseRequest {
    // The proof lets the portal hand out restricted jobs of groups this key joined; it costs
    // one signature per request (a request fetches several units).
    let at_ms = js_sys::Date::now() as u64;
    let proof = LeaseProof {
        at_ms,
        signature: shared.secret.sign(
            Purpose::LeaseProof,
            &lease_proof_message(&shared.volunteer, at_ms),
        ),
    };
    LeaseRequest {
        proof: Some(proof),
        protocol: PROTOCOL_VERSION,
        volunteer: shared.volunteer,
        max_units: max.max(1),
        exclude_jobs: shared.excluded_jobs.borrow().clone(),
        exclude_categories: shared.excluded_categories.borrow().clone(),
        site: shared.site.get(),
        work_ms: Some(work_ms),
    }
}

/// What the portal's answer to a request for units means for the work loop.
pub(crate) fn fetched(response: LeaseResponse) -> Fetched {
    if response.leases.is_empty() {
        Fetched::NoWork {
            retry_ms: response.retry_after_ms.unwrap_or(5_000),
        }
    } else {
        Fetched::Leases(response.leases)
    }
}
