//! Sends finished results to the portal from the offline queue until each is acknowledged or
//! refused for good, a few at a time.
//!
//! Every worker runs one of these beside its work loop. A result this worker just computed is
//! stored claimed by it and sent straight away. Results left free in the queue (computed
//! before a reload, by a worker that stopped, while the portal was out of reach, or given back
//! after a failed try) form the backlog, which is claimed oldest first and goes before fresh
//! results. A result leaves the queue only on a definitive answer ([`offline::judge`]);
//! without one it is given back to the queue and the sender backs off, which keeps it from
//! hammering a portal that is down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use cyclepool_shared::protocol::SubmitResponse;
use futures_channel::oneshot;

use crate::events::WorkerEvent;
use crate::http::post_json;
use crate::offline::{self, Verdict};
use crate::queue::{Queue, StoredResult};
use crate::{Backoff, Shared, now_ms};

const RESULTS_URL: &str = "/api/v1/results";

/// Results in flight at once per worker. The portal acknowledges a result only once it is on
/// disk, and makes concurrent results durable together (group commit), so several in flight
/// keep up with small units where one at a time would fall behind.
const MAX_IN_FLIGHT: usize = 16;

/// With nothing to send, look at the queue this often anyway: a worker that died (a closed
/// tab of this portal) may have left results there that no one announced.
const IDLE_LOOK_MS: u64 = 30_000;

/// Where the result being sent is kept.
enum Source {
    /// In the queue, claimed by this worker.
    Queue,
    /// Only in memory (the queue failed to store it).
    Memory,
}

struct Outbox {
    shared: Rc<Shared>,
    queue: Rc<Queue>,
    in_flight: Cell<usize>,
    backoff: RefCell<Backoff>,
    /// No sending before this time (`now_ms()`): backing off after a try without an answer.
    retry_at: Cell<f64>,
}

/// Sends results until the worker stops. `first_pass_done` fires once the results waiting at
/// start are sent (or the portal cannot be reached), so that the work loop leases nothing new
/// before the old results had their chance.
pub async fn run(shared: Rc<Shared>, queue: Rc<Queue>, first_pass_done: oneshot::Sender<()>) {
    let outbox = Rc::new(Outbox {
        shared: Rc::clone(&shared),
        queue,
        in_flight: Cell::new(0),
        backoff: RefCell::new(Backoff::default()),
        retry_at: Cell::new(0.0),
    });
    let mut first_pass_done = Some(first_pass_done);
    while !shared.stopped() {
        if outbox.in_flight.get() >= MAX_IN_FLIGHT {
            // Woken when one of them is answered.
            shared.outbox_wake.wait(IDLE_LOOK_MS).await;
            continue;
        }
        let wait_ms = outbox.retry_at.get() - now_ms();
        if wait_ms >= 1.0 {
            if let Some(done) = first_pass_done.take() {
                let _ = done.send(());
            }
            if back_off(&shared, wait_ms).await {
                outbox.retry_at.set(0.0);
            }
            continue;
        }
        let Some((result, source)) = outbox.next().await else {
            if outbox.in_flight.get() == 0 {
                if let Some(done) = first_pass_done.take() {
                    let _ = done.send(());
                }
            }
            if !shared.outbox_wake.wait(IDLE_LOOK_MS).await {
                shared.backlog.set(true);
            }
            if shared.outbox_nudged.replace(false) {
                shared.backlog.set(true);
            }
            continue;
        };
        outbox.in_flight.set(outbox.in_flight.get() + 1);
        wasm_bindgen_futures::spawn_local(Rc::clone(&outbox).send(result, source));
    }
    if let Some(done) = first_pass_done.take() {
        let _ = done.send(());
    }
    // Stopped: fresh results not yet sent go back to the queue for the next worker (sends in
    // flight finish by themselves).
    let fresh: Vec<StoredResult> = shared.fresh.borrow_mut().drain(..).collect();
    for result in fresh {
        if let Err(err) = outbox.queue.release_result(result.lease_id).await {
            shared.emit(&WorkerEvent::error(err, None));
        }
    }
}

impl Outbox {
    /// The next result to send: one the queue could not store (most at risk), then the
    /// backlog oldest first, then fresh results.
    async fn next(&self) -> Option<(StoredResult, Source)> {
        let shared = &self.shared;
        let unsaved = shared.unsaved.borrow_mut().pop_front();
        if let Some(result) = unsaved {
            return Some((result, Source::Memory));
        }
        if shared.backlog.get() {
            match self.queue.claim_result().await {
                Ok(Some(result)) => return Some((result, Source::Queue)),
                Ok(None) => shared.backlog.set(false),
                Err(err) => shared.emit(&WorkerEvent::error(err, None)),
            }
        }
        let fresh = shared.fresh.borrow_mut().pop_front();
        fresh.map(|result| (result, Source::Queue))
    }

    /// Offers one result and deals with the answer.
    async fn send(self: Rc<Self>, result: StoredResult, source: Source) {
        let shared = &self.shared;
        let answer = post_json::<_, SubmitResponse>(RESULTS_URL, &result.submission).await;
        match offline::judge(answer) {
            Verdict::Acknowledged(status) => {
                self.backoff.borrow_mut().reset();
                shared.set_reachable(true);
                self.forget(&result, &source).await;
                shared.emit(&WorkerEvent::UnitDone {
                    job_id: result.job_id,
                    unit: result.unit,
                    compute_ms: result.submission.compute_ms,
                    busy_ms: result.busy_ms,
                    status,
                });
            }
            Verdict::Refused { code, message } => {
                self.backoff.borrow_mut().reset();
                shared.set_reachable(true);
                self.forget(&result, &source).await;
                shared.emit(&WorkerEvent::ResultRefused {
                    job_id: result.job_id,
                    unit: result.unit,
                    code,
                    message,
                });
            }
            Verdict::Retry(err) => {
                shared.set_reachable(false);
                let unit = format!("unit {} of job {}", result.unit, result.job_id);
                // Given back: free in the queue, for whichever worker tries next.
                match source {
                    Source::Queue => {
                        if let Err(err) = self.queue.release_result(result.lease_id).await {
                            shared.emit(&WorkerEvent::error(err, None));
                        }
                    }
                    Source::Memory => shared.unsaved.borrow_mut().push_front(result),
                }
                shared.backlog.set(true);
                // Several sends fail together when the portal goes away: one backoff for all.
                if now_ms() >= self.retry_at.get() {
                    let wait_ms = self.backoff.borrow_mut().next_ms();
                    self.retry_at.set(now_ms() + wait_ms as f64);
                    shared.emit(&WorkerEvent::error(
                        format!("sending {unit}: {err}; the result is kept and sent later"),
                        Some(wait_ms),
                    ));
                }
            }
        }
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        shared.outbox_wake.notify();
    }

    /// Removes a result that got a definitive answer.
    async fn forget(&self, result: &StoredResult, source: &Source) {
        if let Source::Queue = source {
            // If this fails the result is sent again later and answered `duplicate`: harmless.
            if let Err(err) = self.queue.remove_result(result.lease_id).await {
                self.shared.emit(&WorkerEvent::error(err, None));
            }
        }
    }
}

/// Waits `wait_ms`, or less if the portal is known to be back (a nudge: returns true). New
/// results and answers arriving meanwhile do not cut the wait short: while the portal is out
/// of reach, results just pile up in the queue.
async fn back_off(shared: &Shared, wait_ms: f64) -> bool {
    let until = now_ms() + wait_ms;
    loop {
        let left = until - now_ms();
        if left < 1.0 || shared.stopped() {
            return false;
        }
        shared.outbox_wake.wait(left as u64).await;
        if shared.outbox_nudged.replace(false) {
            return true;
        }
    }
}
