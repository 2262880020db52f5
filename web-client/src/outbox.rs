//! Sends finished results to the portal from the offline queue, oldest first, one at a time,
//! until each is acknowledged or refused for good.
//!
//! Every worker runs one of these beside its work loop. They share the queue: each claims the
//! oldest result no live worker is sending, so a result computed before a reload, or by a
//! worker that stopped, is sent by whichever worker is free. A result leaves the queue only on
//! a definitive answer ([`offline::judge`]); without one it is released for a later try and
//! the sender backs off, which is what keeps it from hammering a portal that is down.

use std::rc::Rc;

use cyclepool_shared::protocol::SubmitResponse;
use futures_channel::oneshot;

use crate::events::WorkerEvent;
use crate::http::post_json;
use crate::offline::{self, Verdict};
use crate::queue::{Queue, StoredResult};
use crate::{Backoff, Shared, now_ms};

const RESULTS_URL: &str = "/api/v1/results";

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

/// Sends results until the worker stops. `first_pass_done` fires once the results waiting at
/// start are sent (or the portal cannot be reached), so that the work loop leases nothing new
/// before the old results had their chance.
pub async fn run(shared: Rc<Shared>, queue: Rc<Queue>, first_pass_done: oneshot::Sender<()>) {
    let mut first_pass_done = Some(first_pass_done);
    let mut backoff = Backoff::default();
    while !shared.stopped() {
        let unsaved = shared.unsaved.borrow_mut().pop_front();
        let next = match unsaved {
            Some(result) => Some((result, Source::Memory)),
            None => match queue.claim_result().await {
                Ok(found) => found.map(|result| (result, Source::Queue)),
                Err(err) => {
                    shared.emit(&WorkerEvent::error(err, None));
                    None
                }
            },
        };
        let Some((result, source)) = next else {
            if let Some(done) = first_pass_done.take() {
                let _ = done.send(());
            }
            shared.outbox_wake.wait(IDLE_LOOK_MS).await;
            shared.outbox_nudged.set(false);
            continue;
        };
        let unit = format!("unit {} of job {}", result.unit, result.job_id);
        let answer = post_json::<_, SubmitResponse>(RESULTS_URL, &result.submission).await;
        match offline::judge(answer) {
            Verdict::Acknowledged(status) => {
                backoff.reset();
                shared.set_reachable(true);
                forget(&shared, &queue, &result, &source).await;
                shared.emit(&WorkerEvent::UnitDone {
                    job_id: result.job_id,
                    unit: result.unit,
                    compute_ms: result.submission.compute_ms,
                    busy_ms: result.busy_ms,
                    status,
                });
            }
            Verdict::Refused { code, message } => {
                backoff.reset();
                shared.set_reachable(true);
                forget(&shared, &queue, &result, &source).await;
                shared.emit(&WorkerEvent::ResultRefused {
                    job_id: result.job_id,
                    unit: result.unit,
                    code,
                    message,
                });
            }
            Verdict::Retry(err) => {
                let wait_ms = backoff.next_ms();
                shared.set_reachable(false);
                let lease_id = result.lease_id;
                match source {
                    Source::Queue => {
                        if let Err(err) = queue.release_result(lease_id).await {
                            shared.emit(&WorkerEvent::error(err, None));
                        }
                    }
                    Source::Memory => shared.unsaved.borrow_mut().push_front(result),
                }
                if let Some(done) = first_pass_done.take() {
                    let _ = done.send(());
                }
                shared.emit(&WorkerEvent::error(
                    format!("sending {unit}: {err}; the result is kept and sent later"),
                    Some(wait_ms),
                ));
                back_off(&shared, wait_ms).await;
            }
        }
    }
    // Stopped: any result claimed is either sent or released above; unsaved ones die with the
    // worker (the queue could not keep them).
    if let Some(done) = first_pass_done.take() {
        let _ = done.send(());
    }
}

/// Removes a result that got a definitive answer.
async fn forget(shared: &Shared, queue: &Queue, result: &StoredResult, source: &Source) {
    if let Source::Queue = source {
        // If this fails the result is sent again later and answered `duplicate`: harmless.
        if let Err(err) = queue.remove_result(result.lease_id).await {
            shared.emit(&WorkerEvent::error(err, None));
        }
    }
}

/// Waits `wait_ms`, or less if the portal is known to be back (a nudge). New results arriving
/// meanwhile do not cut the wait short: while the portal is out of reach they just pile up.
async fn back_off(shared: &Shared, wait_ms: u64) {
    let until = now_ms() + wait_ms as f64;
    loop {
        let left = until - now_ms();
        if left < 1.0 || shared.stopped() {
            return;
        }
        shared.outbox_wake.wait(left as u64).await;
        if shared.outbox_nudged.replace(false) {
            return;
        }
    }
}
