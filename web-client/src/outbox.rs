//! Sends finished results to the portal from the offline queue until each is acknowledged or
//! refused for good, several to a request.
//!
//! Every worker runs one of these beside its work loop. A result this worker just computed
//! while the portal was in reach is kept in memory (its unit stays in the queue until the
//! portal answers) and goes in the next exchange, which leaves at once unless results went out
//! less than [`offline::RESULTS_INTERVAL_MS`] ago (then with the next request for units, a full
//! batch, or when that time is up). Results left free in the queue (computed
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

use cyclepool_shared::json::{FromJson, Json, JsonError, Object, ToJson};
use cyclepool_shared::protocol::{LeaseRequest, LeaseResponse, PROTOCOL_VERSION, ResultSubmission};
use futures_channel::oneshot;

use crate::events::WorkerEvent;
use crate::http::{HttpError, post_json};
use crate::offline::{self, AnswerError, ResultAnswer, Verdict};
use crate::queue::{Queue, StoredResult};
use crate::work::{self, Fetched};
use crate::{Backoff, Shared, now_ms};

const EXCHANGE_URL: &str = "/api/v1/exchange";

/// Requests in flight at once per worker. The portal acknowledges a result only once it is on
/// disk, and makes concurrent requests durable together (group commit), so a few in flight
/// keep up with small units where one at a time would fall behind.
const MAX_IN_FLIGHT: usize = 4;

/// How long a request for units waits for a result being signed and stored (a few ms of
/// IndexedDB), so that both go in one exchange.
const FINISHING_WAIT_MS: f64 = 50.0;

/// With nothing to send, look at the queue this often anyway: a worker that died (a closed
/// tab of this portal) may have left results there that no one announced.
const IDLE_LOOK_MS: u64 = 30_000;

/// Where the result being sent is kept.
enum Source {
    /// In the queue, claimed by this worker.
    Queue,
    /// Just computed, in memory: its unit is in the queue, claimed by this worker, and the
    /// result is stored there only if the portal gives no definitive answer.
    Fresh,
    /// Only in memory (the queue failed to store it).
    Memory,
}

/// Results sent together, with where each is kept.
type Batch = Vec<(StoredResult, Source)>;

/// The work loop's request for units, carried by the next exchange.
pub struct LeaseWant {
    pub request: LeaseRequest,
    /// Gets what the portal answered to it.
    pub answer: oneshot::Sender<Fetched>,
}

/// The body of `POST /api/v1/exchange` this client sends.
struct ExchangeRequest<'a> {
    protocol: u32,
    results: Vec<&'a ResultSubmission>,
    lease: Option<&'a LeaseRequest>,
}

impl ToJson for ExchangeRequest<'_> {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("protocol", &self.protocol)
            .field("results", &self.results)
            .some("lease", &self.lease)
            .end();
    }
}

/// The part of the portal's answer to an exchange this client reads: one answer per result,
/// in order, and the answer to its request for units, if it made one.
struct ExchangeAnswers {
    results: Vec<ResultAnswer>,
    lease: Option<LeaseResponse>,
    lease_error: Option<AnswerError>,
}

impl FromJson for ExchangeAnswers {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("exchange answer")?;
        Ok(Self {
            results: fields.req("results")?,
            lease: fields.opt("lease")?,
            lease_error: fields.opt("lease_error")?,
        })
    }
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
    /// When the last exchange carrying results went out (`now_ms()`).
    results_sent_at: Cell<f64>,
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
        results_sent_at: Cell::new(f64::NEG_INFINITY),
    });
    let mut first_pass_done = Some(first_pass_done);
    // When the request for units waiting now began to wait for a finishing result.
    let mut want_held_since: Option<f64> = None;
    while !shared.stopped() {
        let want = shared.lease_want.borrow_mut().take();
        if let Some(want) = want {
            let held_since = *want_held_since.get_or_insert_with(now_ms);
            let left_ms = held_since + FINISHING_WAIT_MS - now_ms();
            if shared.finishing.get() > 0 && shared.fresh.borrow().is_empty() && left_ms >= 1.0 {
                // A result is nearly ready (the unit before this one): take it along.
                *shared.lease_want.borrow_mut() = Some(want);
                shared.outbox_wake.wait(left_ms as u64).await;
                continue;
            }
            want_held_since = None;
            // A request for work goes at once, with the results at hand unless sending is at
            // its limit or backing off (then it goes alone).
            let sending =
                outbox.in_flight.get() < MAX_IN_FLIGHT && outbox.retry_at.get() <= now_ms();
            let batch = if sending {
                outbox.next_batch().await.unwrap_or_default()
            } else {
                Batch::new()
            };
            outbox.in_flight.set(outbox.in_flight.get() + 1);
            wasm_bindgen_futures::spawn_local(Rc::clone(&outbox).send(batch, Some(want)));
            continue;
        }
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
        if let Some(wait_ms) = outbox.hold_fresh_ms() {
            // Woken early by a new result (the batch may be full) or a request for units.
            shared.outbox_wake.wait(wait_ms as u64).await;
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
        wasm_bindgen_futures::spawn_local(Rc::clone(&outbox).send(batch, None));
    }
    // A request for work left unsent is answered "stopping" by dropping it.
    drop(shared.lease_want.borrow_mut().take());
    if let Some(done) = first_pass_done.take() {
        let _ = done.send(());
    }
    // Stopped: fresh results not yet sent are stored, and one held over for the next batch
    // goes back to the queue, for the next worker (sends in flight finish by themselves).
    let held_over = outbox.held_over.borrow_mut().take();
    let fresh: Vec<StoredResult> = shared.fresh.borrow_mut().drain(..).collect();
    match held_over {
        Some((result, Source::Queue)) => {
            if let Err(err) = outbox.queue.release_result(result.lease_id).await {
                shared.emit(&WorkerEvent::error(err, None));
            }
        }
        Some((result, Source::Fresh)) => work::store_result(&shared, &outbox.queue, result).await,
        Some((result, Source::Memory)) => shared.unsaved.borrow_mut().push_front(result),
        None => {}
    }
    for result in fresh {
        work::store_result(&shared, &outbox.queue, result).await;
    }
}

impl Outbox {
    /// How long the fresh results may wait for company before they go
    /// ([`offline::hold_fresh_ms`]), or `None` to send now; never while anything else waits.
    fn hold_fresh_ms(&self) -> Option<f64> {
        let shared = &self.shared;
        if shared.backlog.get()
            || !shared.unsaved.borrow().is_empty()
            || self.held_over.borrow().is_some()
        {
            return None;
        }
        let fresh = shared.fresh.borrow();
        let nearest_deadline_ms = fresh
            .iter()
            .map(|result| result.deadline_ms as f64)
            .fold(f64::INFINITY, f64::min);
        offline::hold_fresh_ms(
            fresh.len(),
            nearest_deadline_ms,
            js_sys::Date::now(),
            now_ms() - self.results_sent_at.get(),
        )
    }

    /// The results to send next, as many as are at hand up to [`offline::fits_in_batch`]:
    /// first those the queue could not store (most at risk), then the backlog oldest first
    /// (claimed in one queue transaction), then fresh results. One that would overflow the
    /// batch is held over to start the next.
    async fn next_batch(&self) -> Option<Batch> {
        let shared = &self.shared;
        let mut batch = Batch::new();
        let held_over = self.held_over.borrow_mut().take();
        batch.extend(held_over);
        while batch.len() < offline::MAX_BATCH {
            let unsaved = shared.unsaved.borrow_mut().pop_front();
            let Some(result) = unsaved else {
                break;
            };
            if !self.add(&mut batch, result, Source::Memory) {
                return Some(batch);
            }
        }
        if shared.backlog.get() && batch.len() < offline::MAX_BATCH {
            let wanted = offline::MAX_BATCH - batch.len();
            match self.queue.claim_results(wanted as u32).await {
                Ok(claimed) => {
                    if claimed.records() < wanted {
                        shared.backlog.set(false);
                    }
                    for err in claimed.unreadable {
                        shared.emit(&WorkerEvent::error(err, None));
                    }
                    let mut results = claimed.results.into_iter();
                    let full = !results
                        .by_ref()
                        .all(|result| self.add(&mut batch, result, Source::Queue));
                    // Claimed without room in this batch: free again, for the next one.
                    for result in results {
                        shared.backlog.set(true);
                        if let Err(err) = self.queue.release_result(result.lease_id).await {
                            shared.emit(&WorkerEvent::error(err, None));
                        }
                    }
                    if full {
                        return Some(batch);
                    }
                }
                Err(err) => shared.emit(&WorkerEvent::error(err, None)),
            }
        }
        while batch.len() < offline::MAX_BATCH {
            let fresh = shared.fresh.borrow_mut().pop_front();
            let Some(result) = fresh else {
                break;
            };
            if !self.add(&mut batch, result, Source::Fresh) {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Adds `result` to `batch` if it fits (the first always does); otherwise holds it over as
    /// the first of the next batch and returns false.
    fn add(&self, batch: &mut Batch, result: StoredResult, source: Source) -> bool {
        let output_bytes: usize = batch
            .iter()
            .map(|(result, _)| result.submission.output.len())
            .sum();
        let fits =
            offline::fits_in_batch(batch.len(), output_bytes, result.submission.output.len());
        if fits {
            batch.push((result, source));
        } else {
            *self.held_over.borrow_mut() = Some((result, source));
        }
        fits
    }

    /// Offers a batch of results, and the work loop's request for units if any, in one
    /// exchange, and deals with the answers.
    async fn send(self: Rc<Self>, batch: Batch, want: Option<LeaseWant>) {
        if !batch.is_empty() {
            self.results_sent_at.set(now_ms());
        }
        // The portal takes a request for units only with results of the same key (results of
        // an earlier key may wait in the queue): otherwise it goes in an exchange of its own.
        let (want, apart) = match want {
            Some(want)
                if batch
                    .iter()
                    .any(|(result, _)| result.submission.volunteer != want.request.volunteer) =>
            {
                (None, Some(want))
            }
            want => (want, None),
        };
        if let Some(apart) = apart {
            lease_alone(apart).await;
        }
        let lease = want.as_ref().map(|want| &want.request);
        match exchange(&batch, lease).await {
            // Refused as a whole, which says nothing definite about each of several results
            // (something between us and the portal): each is offered again in an exchange of
            // its own, and judged by its own answer; the request for units too.
            Err(HttpError::Refused { .. }) if batch.len() > 1 => {
                if let Some(want) = want {
                    lease_alone(want).await;
                }
                for one in batch {
                    let one = vec![one];
                    let answer = exchange(&one, None).await;
                    self.settle_all(one, answer).await;
                }
            }
            answer => {
                let answer = match want {
                    Some(want) => answer_lease(want, answer),
                    None => answer,
                };
                self.settle_all(batch, answer).await;
            }
        }
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.shared.outbox_wake.notify();
    }

    /// Settles each result of `batch` by the exchange's answer: those answered for good leave
    /// the queue together, in one transaction, and are announced once it is done; the others
    /// are given back.
    async fn settle_all(&self, batch: Batch, answer: Result<ExchangeAnswers, HttpError>) {
        let verdicts = match answer {
            Ok(answers) if answers.results.len() == batch.len() => answers
                .results
                .into_iter()
                .map(offline::judge_answer)
                .collect(),
            Ok(answers) => {
                let err = format!(
                    "unexpected answer: {} answers to {} results",
                    answers.results.len(),
                    batch.len()
                );
                vec![Verdict::Retry(err); batch.len()]
            }
            // An exchange of one refused as a whole: judged as a submission of it would be.
            Err(err) if batch.len() == 1 => vec![offline::judge(Err(err))],
            Err(err) => vec![Verdict::Retry(err.to_string()); batch.len()],
        };
        let shared = &self.shared;
        let mut answered = Vec::new();
        let mut stored = Vec::new();
        let mut given_back = Vec::new();
        for ((result, source), verdict) in batch.into_iter().zip(verdicts) {
            let event = match verdict {
                Verdict::Acknowledged(status) => WorkerEvent::UnitDone {
                    job_id: result.job_id,
                    unit: result.unit,
                    compute_ms: result.submission.compute_ms,
                    busy_ms: result.busy_ms,
                    status,
                },
                Verdict::Refused { code, message } => WorkerEvent::ResultRefused {
                    job_id: result.job_id,
                    unit: result.unit,
                    code,
                    message,
                },
                Verdict::Retry(err) => {
                    given_back.push(self.give_back(result, source, err));
                    continue;
                }
            };
            self.backoff.borrow_mut().reset();
            shared.set_reachable(true);
            if let Source::Queue | Source::Fresh = source {
                stored.push(result.lease_id);
            }
            answered.push(event);
        }
        // One after another: they are queue transactions, which IndexedDB runs in turn anyway
        // (and `join_all` would bring a second executor into the module for batches over 30).
        for giving_back in given_back {
            giving_back.await;
        }
        // If this fails the results are sent again later and answered `duplicate` (or their
        // units computed again and answered so): harmless.
        if !stored.is_empty() {
            if let Err(err) = self.queue.remove_answered(&stored).await {
                shared.emit(&WorkerEvent::error(err, None));
            }
        }
        for event in &answered {
            shared.emit(event);
        }
    }

    /// Gives back a result without a definitive answer (free in the queue, for whichever
    /// worker tries next) and backs off.
    async fn give_back(&self, result: StoredResult, source: Source, err: String) {
        let shared = &self.shared;
        shared.set_reachable(false);
        let unit = format!("unit {} of job {}", result.unit, result.job_id);
        match source {
            Source::Queue => {
                if let Err(err) = self.queue.release_result(result.lease_id).await {
                    shared.emit(&WorkerEvent::error(err, None));
                }
            }
            Source::Fresh => work::store_result(shared, &self.queue, result).await,
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

/// Sends the results of `batch`, and `lease` if any, in one `POST /api/v1/exchange`.
async fn exchange(
    batch: &[(StoredResult, Source)],
    lease: Option<&LeaseRequest>,
) -> Result<ExchangeAnswers, HttpError> {
    let request = ExchangeRequest {
        protocol: PROTOCOL_VERSION,
        results: batch.iter().map(|(result, _)| &result.submission).collect(),
        lease,
    };
    post_json(EXCHANGE_URL, &request).await
}

/// Sends a request for units in an exchange of its own, and hands the work loop the answer.
async fn lease_alone(want: LeaseWant) {
    let answer = exchange(&[], Some(&want.request)).await;
    // No results went with it: nothing else in its answer.
    let _ = answer_lease(want, answer);
}

/// Hands the work loop what the exchange answered to its request for units (the lease, a
/// refusal, or the exchange's failure), and gives back the rest of the answer.
fn answer_lease(
    want: LeaseWant,
    mut answer: Result<ExchangeAnswers, HttpError>,
) -> Result<ExchangeAnswers, HttpError> {
    let fetched = match &mut answer {
        Ok(answers) => match (answers.lease.take(), answers.lease_error.take()) {
            (Some(response), _) => work::fetched(response),
            (None, Some(refusal)) => Fetched::Failed(refused_lease(refusal)),
            (None, None) => Fetched::Failed(HttpError::Protocol(
                "an exchange with a request for units answered neither".into(),
            )),
        },
        Err(err) => Fetched::Failed(err.clone()),
    };
    // The work loop may have stopped waiting (it is stopping): nothing to do.
    let _ = want.answer.send(fetched);
    answer
}

/// A request for units the portal refused inside an exchange, as an error of `POST
/// /api/v1/lease` (a key over its rate is worth retrying later). The answer names the code,
/// not the status, and the work loop branches only on the kind of error: a refusal is
/// given 400.
fn refused_lease(refusal: AnswerError) -> HttpError {
    let AnswerError { code, message } = refusal;
    if code == "rate_limited" {
        HttpError::Unavailable {
            status: 429,
            message,
        }
    } else {
        HttpError::Refused {
            status: 400,
            code,
            message,
        }
    }
}
