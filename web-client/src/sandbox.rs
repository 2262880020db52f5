//! Runs job modules in a sandbox worker, with a watchdog.
//!
//! The module runs in its own dedicated worker (`/sandbox.js`), instantiated with an empty
//! import object, so it can reach nothing but its own memory. The volunteer loop waits for the
//! unit's answer at most the job's time budget; past it, the sandbox worker is terminated
//! (which stops even an endless loop) and a fresh one takes its place.

use std::time::Duration;

use futures_util::future::{Either, select};
use gloo_events::EventListener;
use gloo_timers::future::sleep;
use wasm_bindgen::{JsCast, JsValue};

const SANDBOX_URL: &str = "/sandbox.js";

/// Why a unit produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitFailure {
    /// It ran past its time budget and was stopped.
    Timeout { budget_ms: u64 },
    /// The module trapped, ran out of memory, or broke the ABI.
    Trap(String),
    /// The module said the input is invalid.
    JobError(i32),
    /// The sandbox itself failed (could not start, or answered nonsense).
    Sandbox(String),
}

impl std::fmt::Display for UnitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitFailure::Timeout { budget_ms } => {
                write!(
                    f,
                    "stopped by the watchdog after its budget of {budget_ms} ms"
                )
            }
            UnitFailure::Trap(message) => write!(f, "the module trapped: {message}"),
            UnitFailure::JobError(code) => {
                write!(f, "the module rejected the input (error {code})")
            }
            UnitFailure::Sandbox(message) => write!(f, "sandbox failure: {message}"),
        }
    }
}

/// One sandbox worker, replaced whenever the watchdog has to kill it.
pub struct Sandbox {
    worker: web_sys::Worker,
}

impl Sandbox {
    pub fn new() -> Result<Self, UnitFailure> {
        Ok(Self { worker: spawn()? })
    }

    /// Runs `module` (a compiled `WebAssembly.Module`) on `input`, for at most `budget_ms`.
    pub async fn run(
        &mut self,
        module: &JsValue,
        module_key: &str,
        input: &[u8],
        budget_ms: u64,
    ) -> Result<Vec<u8>, UnitFailure> {
        let (answer_tx, answer_rx) = futures_channel::oneshot::channel::<JsValue>();
        let mut answer_tx = Some(answer_tx);
        // Owned here and removed on drop, whatever the outcome.
        let _on_message = EventListener::new(&self.worker, "message", move |event| {
            let data = event
                .dyn_ref::<web_sys::MessageEvent>()
                .map_or(JsValue::UNDEFINED, web_sys::MessageEvent::data);
            if let Some(tx) = answer_tx.take() {
                let _ = tx.send(data);
            }
        });
        let request = js_sys::Object::new();
        set(&request, "module", module);
        set(&request, "key", &JsValue::from_str(module_key));
        set(&request, "input", &js_sys::Uint8Array::from(input).into());
        self.worker
            .post_message(&request)
            .map_err(|err| UnitFailure::Sandbox(describe(&err)))?;
        let watchdog = sleep(Duration::from_millis(budget_ms));
        match select(answer_rx, Box::pin(watchdog)).await {
            Either::Left((Ok(answer), _)) => decode_answer(&answer),
            Either::Left((Err(_), _)) => Err(UnitFailure::Sandbox("the sandbox went away".into())),
            Either::Right(((), _)) => {
                self.worker.terminate();
                self.worker = spawn()?;
                Err(UnitFailure::Timeout { budget_ms })
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

fn spawn() -> Result<web_sys::Worker, UnitFailure> {
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name("cyclepool-sandbox");
    web_sys::Worker::new_with_options(SANDBOX_URL, &options)
        .map_err(|err| UnitFailure::Sandbox(describe(&err)))
}

fn decode_answer(answer: &JsValue) -> Result<Vec<u8>, UnitFailure> {
    let get = |name: &str| {
        js_sys::Reflect::get(answer, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
    };
    if let Some(output) = get("output").dyn_ref::<js_sys::Uint8Array>() {
        return Ok(output.to_vec());
    }
    let message = get("message").as_string().unwrap_or_default();
    match get("kind").as_string().as_deref() {
        Some("job_error") => Err(UnitFailure::JobError(
            get("code").as_f64().unwrap_or(0.0) as i32
        )),
        Some("trap") => Err(UnitFailure::Trap(message)),
        _ => Err(UnitFailure::Sandbox(format!(
            "unexpected answer: {message}"
        ))),
    }
}

fn set(target: &js_sys::Object, name: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(name), value);
}

/// A JS exception as text.
pub fn describe(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|err| String::from(err.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}
