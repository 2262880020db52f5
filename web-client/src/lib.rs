//! The volunteer client, compiled to WebAssembly and run inside a module Web Worker.
//!
//! One opaque handle, [`VolunteerWorker`], crosses the wasm-bindgen boundary. Its loop
//! leases units from the origin, checks each input's digest, runs the unit's kernel,
//! submits the output with its digest, and repeats until stopped, reporting every step to
//! the page as an event object.

mod events;
mod http;

use std::cell::Cell;
use std::rc::Rc;

use cyclepool_shared::protocol::{
    Lease, LeaseRequest, LeaseResponse, PROTOCOL_VERSION, ResultSubmission, SubmitResponse,
};
use cyclepool_shared::{Sha256Digest, VolunteerId};
use gloo_timers::future::sleep;
use std::time::Duration;
use wasm_bindgen::prelude::*;

use crate::events::WorkerEvent;
use crate::http::{HttpError, post_json};

const LEASE_URL: &str = "/api/v1/lease";
const RESULTS_URL: &str = "/api/v1/results";
/// How many times a finished result is offered before it is given up (its lease will
/// expire and the unit will be computed again elsewhere).
const SUBMIT_ATTEMPTS: u32 = 6;

/// A running (or stopped) volunteer loop. Create it with the volunteer's id and a callback
/// that receives event objects; `run()` resolves when `stop()` has been called.
#[wasm_bindgen]
pub struct VolunteerWorker {
    shared: Rc<Shared>,
}

struct Shared {
    volunteer: VolunteerId,
    stopped: Cell<bool>,
    on_event: js_sys::Function,
}

#[wasm_bindgen]
impl VolunteerWorker {
    /// `volunteer` is 32 hex digits; `on_event` is called with one object per event.
    #[wasm_bindgen(constructor)]
    pub fn new(volunteer: &str, on_event: js_sys::Function) -> Result<VolunteerWorker, JsError> {
        events::install_panic_hook();
        let volunteer = volunteer
            .parse()
            .map_err(|err: cyclepool_shared::ids::ParseIdError| JsError::new(&err.to_string()))?;
        Ok(Self {
            shared: Rc::new(Shared {
                volunteer,
                stopped: Cell::new(false),
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
}

impl Shared {
    fn emit(&self, event: &WorkerEvent) {
        events::emit(&self.on_event, event);
    }

    fn stopped(&self) -> bool {
        self.stopped.get()
    }
}

async fn run_loop(shared: &Shared) {
    let mut backoff = Backoff::default();
    while !shared.stopped() {
        let request = LeaseRequest {
            protocol: PROTOCOL_VERSION,
            volunteer: shared.volunteer,
            max_units: 1,
        };
        match post_json::<_, LeaseResponse>(LEASE_URL, &request).await {
            Ok(response) => {
                backoff.reset();
                if response.leases.is_empty() {
                    let wait_ms = response.retry_after_ms.unwrap_or(5_000);
                    shared.emit(&WorkerEvent::Idle { retry_ms: wait_ms });
                    sleep(Duration::from_millis(wait_ms)).await;
                    continue;
                }
                for lease in response.leases {
                    if shared.stopped() {
                        break;
                    }
                    compute_and_submit(shared, lease).await;
                }
            }
            Err(err) => {
                let wait_ms = backoff.next_ms();
                shared.emit(&WorkerEvent::error(
                    format!("asking for work: {err}"),
                    Some(wait_ms),
                ));
                sleep(Duration::from_millis(wait_ms)).await;
            }
        }
    }
}

async fn compute_and_submit(shared: &Shared, lease: Lease) {
    if Sha256Digest::of(&lease.input) != lease.input_sha256 {
        // Corrupted in transit: do not compute on it. The lease expires and the unit is
        // handed out again.
        shared.emit(&WorkerEvent::error(
            format!(
                "unit {} of job {}: input does not match its sha-256; skipped",
                lease.unit, lease.job_id
            ),
            None,
        ));
        return;
    }
    let started = js_sys::Date::now();
    let output = match lease.kernel.run(&lease.input) {
        Ok(output) => output,
        Err(err) => {
            shared.emit(&WorkerEvent::error(
                format!("unit {} of job {}: {err}", lease.unit, lease.job_id),
                None,
            ));
            return;
        }
    };
    let compute_ms = (js_sys::Date::now() - started).max(0.0) as u64;
    let submission = ResultSubmission {
        protocol: PROTOCOL_VERSION,
        volunteer: shared.volunteer,
        lease_id: lease.lease_id,
        nonce: lease.nonce,
        output_sha256: Sha256Digest::of(&output),
        output,
        compute_ms,
    };
    let mut backoff = Backoff::default();
    for attempt in 1..=SUBMIT_ATTEMPTS {
        match post_json::<_, SubmitResponse>(RESULTS_URL, &submission).await {
            Ok(response) => {
                shared.emit(&WorkerEvent::UnitDone {
                    job_id: lease.job_id.0,
                    unit: lease.unit,
                    compute_ms,
                    status: response.status,
                });
                return;
            }
            // The server understood and refused (expired, not ours, ...): retrying cannot help.
            Err(err @ HttpError::Refused { .. }) => {
                shared.emit(&WorkerEvent::error(
                    format!(
                        "unit {} of job {}: result refused: {err}",
                        lease.unit, lease.job_id
                    ),
                    None,
                ));
                return;
            }
            Err(err) if attempt < SUBMIT_ATTEMPTS => {
                let wait_ms = backoff.next_ms();
                shared.emit(&WorkerEvent::error(
                    format!("sending unit {}: {err}; retrying", lease.unit),
                    Some(wait_ms),
                ));
                sleep(Duration::from_millis(wait_ms)).await;
            }
            Err(err) => {
                shared.emit(&WorkerEvent::error(
                    format!("sending unit {}: {err}; giving up", lease.unit),
                    None,
                ));
            }
        }
    }
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
