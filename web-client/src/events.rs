//! Events the worker reports to the page, and the panic hook that reports panics the same way.

use cyclepool_shared::json::{self, Object, ToJson};
use cyclepool_shared::protocol::{ReportKind, SubmitStatus};
use wasm_bindgen::{JsCast, JsValue};

/// One thing that happened in the worker, delivered to the page as a plain object.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A unit was computed; its result is stored in the offline queue until the portal has it.
    UnitComputed {
        job_id: u64,
        unit: u64,
        /// The time in the job's module, as the sandbox measured it (what the portal is told).
        compute_ms: u64,
        /// The time from handing the unit to the sandbox to its answer, with sub-millisecond
        /// resolution, for processor-use figures.
        busy_ms: f64,
    },
    /// A result was acknowledged as durable by the server (also one computed before a reload,
    /// or by another worker of this browser that stopped before sending it).
    UnitDone {
        job_id: u64,
        unit: u64,
        compute_ms: u64,
        /// The computation's time with sub-millisecond resolution, for processor-use figures.
        busy_ms: f64,
        status: SubmitStatus,
    },
    /// A job was loaded and checked: what the volunteer's CPU now works for.
    Job {
        job_id: u64,
        title: String,
        distributor: String,
        module_sha256: String,
        /// The job's publication entry in the transparency log (`/log.html#entry-N`).
        log_seq: u64,
    },
    /// A job was refused (manifest or module failed its checks) and reported to the portal.
    Refused {
        job_id: u64,
        kind: ReportKind,
        reason: String,
    },
    /// A unit produced no output (watchdog, trap, job error) and was reported to the portal.
    UnitFailed {
        job_id: u64,
        unit: u64,
        reason: String,
    },
    /// A unit in hand was dropped without computing: its deadline passed (or was too close)
    /// while it waited, so its result would be refused.
    UnitExpired { job_id: u64, unit: u64 },
    /// The portal refused a result for good (`code`, such as `lease_expired` for a result that
    /// came too late); it was removed from the queue.
    ResultRefused {
        job_id: u64,
        unit: u64,
        code: String,
        message: String,
    },
    /// Whether the portal can be reached: false once a request failed without an answer (or
    /// with 5xx), true again once one is answered. Results wait in the queue meanwhile.
    Connection { reachable: bool },
    /// Where the offline queue lives: IndexedDB (`persistent`), or memory only, for `reason`.
    Queue {
        persistent: bool,
        reason: Option<String>,
    },
    /// No work right now; asking again after `retry_ms`.
    Idle { retry_ms: u64 },
    /// Something went wrong; `retry_ms` is set when the worker will try again by itself.
    Error {
        message: String,
        retry_ms: Option<u64>,
    },
    /// The loop has ended after `stop()`.
    Stopped,
}

impl WorkerEvent {
    pub fn error(message: String, retry_ms: Option<u64>) -> Self {
        Self::Error { message, retry_ms }
    }
}

/// As an object whose `type` names the event (`unit-computed`, …).
impl ToJson for WorkerEvent {
    fn write_json(&self, out: &mut String) {
        let mut object = Object::new(out);
        match self {
            WorkerEvent::UnitComputed {
                job_id,
                unit,
                compute_ms,
                busy_ms,
            } => object
                .field("type", "unit-computed")
                .field("job_id", job_id)
                .field("unit", unit)
                .field("compute_ms", compute_ms)
                .field("busy_ms", busy_ms),
            WorkerEvent::UnitDone {
                job_id,
                unit,
                compute_ms,
                busy_ms,
                status,
            } => object
                .field("type", "unit-done")
                .field("job_id", job_id)
                .field("unit", unit)
                .field("compute_ms", compute_ms)
                .field("busy_ms", busy_ms)
                .field("status", status),
            WorkerEvent::Job {
                job_id,
                title,
                distributor,
                module_sha256,
                log_seq,
            } => object
                .field("type", "job")
                .field("job_id", job_id)
                .field("title", title)
                .field("distributor", distributor)
                .field("module_sha256", module_sha256)
                .field("log_seq", log_seq),
            WorkerEvent::Refused {
                job_id,
                kind,
                reason,
            } => object
                .field("type", "refused")
                .field("job_id", job_id)
                .field("kind", kind)
                .field("reason", reason),
            WorkerEvent::UnitFailed {
                job_id,
                unit,
                reason,
            } => object
                .field("type", "unit-failed")
                .field("job_id", job_id)
                .field("unit", unit)
                .field("reason", reason),
            WorkerEvent::UnitExpired { job_id, unit } => object
                .field("type", "unit-expired")
                .field("job_id", job_id)
                .field("unit", unit),
            WorkerEvent::ResultRefused {
                job_id,
                unit,
                code,
                message,
            } => object
                .field("type", "result-refused")
                .field("job_id", job_id)
                .field("unit", unit)
                .field("code", code)
                .field("message", message),
            WorkerEvent::Connection { reachable } => object
                .field("type", "connection")
                .field("reachable", reachable),
            WorkerEvent::Queue { persistent, reason } => object
                .field("type", "queue")
                .field("persistent", persistent)
                .some("reason", reason),
            WorkerEvent::Idle { retry_ms } => {
                object.field("type", "idle").field("retry_ms", retry_ms)
            }
            WorkerEvent::Error { message, retry_ms } => object
                .field("type", "error")
                .field("message", message)
                .some("retry_ms", retry_ms),
            WorkerEvent::Stopped => object.field("type", "stopped"),
        }
        .end();
    }
}

/// Calls `callback` with the event as a plain JS object.
pub fn emit(callback: &js_sys::Function, event: &WorkerEvent) {
    let json = json::to_string(event);
    let value = js_sys::JSON::parse(&json).unwrap_or_else(|_| JsValue::from_str(&json));
    // A throwing callback is the page's problem; the loop goes on.
    let _ = callback.call1(&JsValue::NULL, &value);
}

/// Reports panics to the page (as a `panic` event via `postMessage`) and the console,
/// so that a bug shows on the page instead of a silently dead worker.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        web_sys_console_error(&message);
        let global = js_sys::global();
        let post = js_sys::Reflect::get(&global, &JsValue::from_str("postMessage"))
            .ok()
            .and_then(|post| post.dyn_into::<js_sys::Function>().ok());
        if let Some(post) = post {
            let event = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&event, &"type".into(), &"panic".into());
            let _ = js_sys::Reflect::set(&event, &"message".into(), &message.into());
            let _ = post.call1(&global, &event);
        }
    }));
}

fn web_sys_console_error(message: &str) {
    let console = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("console"));
    if let Ok(error) = console.and_then(|console| js_sys::Reflect::get(&console, &"error".into())) {
        if let Ok(error) = error.dyn_into::<js_sys::Function>() {
            let _ = error.call1(&JsValue::NULL, &JsValue::from_str(message));
        }
    }
}
