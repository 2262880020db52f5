//! Sends finished results to the portal from the offline queue until each is acknowledged or
//! refused for good, several to a request.
//!
//! Every worker runs one of these beside its work loop. A result this worker just computed is
//! stored claimed by it and sent straight away. Results left free in the queue (computed
//! before a reload, by a worker that stopped, while the portal was out of reach, or given back
//! after a failed try) form the backlog, which is claimed oldest first and goes before fresh
//! results. The results at hand when a request goes out travel together in one `POST
//! /api/v1/exchange`, which the portal judges one by one and makes durable with one flush: a
//! tab of small units, or a backlog sent after an outage, costs a request per batch, not per
//! result. A result leaves the queue only on a definitive answer ([`offline::judge`]); without
//! one it is given back to the queue and the sender backs off, which keeps it from hammering a
//! portal that is down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use cyclepool_shared::protocol::{
    MAX_EXCHANGE_BODY_BYTES, MAX_RESULTS_PER_EXCHANGE, PROTOCOL_VERSION, ResultSubmission,
    SubmitResponse,
};
use futures_channel::oneshot;
use serde::{Deserialize, Serialize};

use crate::events::WorkerEvent;
use crate::http::{HttpError, post_json};
use crate::offline::{self, ResultAnswer, Verdict};
use crate::queue::{Queue, StoredResult};
use crate::{Backoff, Shared, now_ms};

const EXCHANGE_URL: &str = "/api/v1/exchange";
const RESULTS_URL: &str = "/api/v1/results";

/// Requests in flight at once per worker. The portal acknowledges a result only once it is on
/// disk, and makes concurrent requests durable together (group commit), so a few in flight
/// keep up with small units where one at a time would fall behind.
const MAX_IN_FLIGHT: usize = 4;

/// Results in one exchange: up to the portal's limit.
const MAX_BATCH: usize = MAX_RESULTS_PER_EXCHANGE;

/// Output bytes in one exchange, well inside the portal's body limit once base64 (4/3) and
/// each result's envelope are added. A result whose output alone is larger goes to
/// `POST /api/v1/results` by itself.
const MAX_BATCH_OUTPUT_BYTES: usize = MAX_EXCHANGE_BODY_BYTES / 2;

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

/// Results sent together, with where each is kept.
type Batch = Vec<(StoredResult, Source)>;

/// The body of `POST /api/v1/exchange` this client sends: results only (the work loop asks for
/// units on its own).
#[derive(Serialize)]
struct ExchangeRequest<'a> {
    protocol: u32,
    results: Vec<&'a ResultSubmission>,
}

/// The part of the portal's answer to an exchange this client reads: one answer per result,
/// in order.
#[derive(Deserialize)]
struct ExchangeAnswers {
    results: Vec<ResultAnswer>,
}

struct Outbox {
    shared: Rc<Shared>,
    queue: Rc<Queue>,
    in_flight: Cell<usize>,
    backoff: RefCell<Backoff>,
    /// No sending before this time (`now_ms()`): backing off after a try without an answer.
    retry_at: Cell<f64>,
    /// A result taken for a batch it would have overflowed: the first of the next one.
    held_over: RefCell<Option<(StoredResult, Source)>>,
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
        held_over: RefCell::new(None),
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
        let Some(batch) = outbox.next_batch().await else {
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
        wasm_bindgen_futures::spawn_local(Rc::clone(&outbox).send(batch));
    }
    if let Some(done) = first_pass_done.take() {
        let _ = done.send(());
    }
    // Stopped: fresh results not yet sent (and one held over for the next batch) go back to the
    // queue for the next worker (sends in flight finish by themselves).
    let held_over = outbox.held_over.borrow_mut().take();
    let mut fresh: Vec<StoredResult> = shared.fresh.borrow_mut().drain(..).collect();
    match held_over {
        Some((result, Source::Queue)) => fresh.push(result),
        Some((result, Source::Memory)) => shared.unsaved.borrow_mut().push_front(result),
        None => {}
    }
    for result in fresh {
        if let Err(err) = outbox.queue.release_result(result.lease_id).await {
            shared.emit(&WorkerEvent::error(err, None));
        }
    }
}

impl Outbox {
    /// The results to send next: as many as are at hand, up to [`MAX_BATCH`] and
    /// [`MAX_BATCH_OUTPUT_BYTES`] of output (a result too large for that goes alone, and one
    /// that would overflow this batch starts the next).
    async fn next_batch(&self) -> Option<Batch> {
        let held_over = self.held_over.borrow_mut().take();
        let first = match held_over {
            Some(held) => held,
            None => self.next().await?,
        };
        let mut output_bytes = first.0.submission.output.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && output_bytes < MAX_BATCH_OUTPUT_BYTES {
            let Some(more) = self.next().await else {
                break;
            };
            let size = more.0.submission.output.len();
            if output_bytes + size > MAX_BATCH_OUTPUT_BYTES {
                *self.held_over.borrow_mut() = Some(more);
                break;
            }
            output_bytes += size;
            batch.push(more);
        }
        Some(batch)
    }

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

    /// Offers a batch of results and deals with the answers.
    async fn send(self: Rc<Self>, batch: Batch) {
        let alone = batch.len() == 1 && batch[0].0.submission.output.len() > MAX_BATCH_OUTPUT_BYTES;
        if alone {
            self.send_alone(batch).await;
        } else {
            let request = ExchangeRequest {
                protocol: PROTOCOL_VERSION,
                results: batch.iter().map(|(result, _)| &result.submission).collect(),
            };
            let answer = post_json::<_, ExchangeAnswers>(EXCHANGE_URL, &request).await;
            match answer {
                Ok(answers) if answers.results.len() == batch.len() => {
                    // Settled at once: each is its own queue transaction, which the browser
                    // overlaps, and each is announced as soon as its own is done.
                    let settled =
                        batch
                            .into_iter()
                            .zip(answers.results)
                            .map(|((result, source), answer)| {
                                self.settle(result, source, offline::judge_answer(answer))
                            });
                    futures_util::future::join_all(settled).await;
                }
                Ok(answers) => {
                    let err = format!(
                        "unexpected answer: {} answers to {} results",
                        answers.results.len(),
                        batch.len()
                    );
                    self.retry_all(batch, &err).await;
                }
                // The exchange as a whole was refused, which says nothing definite about each
                // result (something between us and the portal, or a portal without exchanges):
                // each is offered on its own, and judged by its own answer.
                Err(HttpError::Refused { .. }) => self.send_alone(batch).await,
                Err(err) => self.retry_all(batch, &err.to_string()).await,
            }
        }
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.shared.outbox_wake.notify();
    }

    /// Gives every result of `batch` back for a later try, saying why.
    async fn retry_all(&self, batch: Batch, err: &str) {
        let settled = batch
            .into_iter()
            .map(|(result, source)| self.settle(result, source, Verdict::Retry(err.to_owned())));
        futures_util::future::join_all(settled).await;
    }

    /// Offers each result by itself (`POST /api/v1/results`), one after another.
    async fn send_alone(&self, batch: Batch) {
        for (result, source) in batch {
            let answer = post_json::<_, SubmitResponse>(RESULTS_URL, &result.submission).await;
            self.settle(result, source, offline::judge(answer)).await;
        }
    }

    /// Deals with the verdict on one result: forgotten once acknowledged or refused for good,
    /// given back (and the sender backs off) otherwise.
    async fn settle(&self, result: StoredResult, source: Source, verdict: Verdict) {
        let shared = &self.shared;
        match verdict {
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
