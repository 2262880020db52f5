//! Runs job modules in a sandbox worker, with a watchdog.
//!
//! The module runs in its own dedicated worker (`/sandbox.js`), instantiated with an empty
//! import object, so it can reach nothing but its own memory. The volunteer loop waits for a
//! unit's answer at most the job's time budget; past it, the sandbox worker is terminated
//! (which stops even an endless loop) and a fresh one takes its place. A loop computing flat
//! out hands over the next unit before the current one ends, so that the sandbox goes on at
//! once instead of waiting for the loop to hear of its answer and answer back.

use std::collections::VecDeque;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt as _;
use futures_util::future::{Either, select};
use gloo_events::EventListener;
use gloo_timers::future::sleep;
use wasm_bindgen::{JsCast, JsValue};

use crate::now_ms;

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

/// A unit's output, and how long it took in the sandbox (instantiation included, the messages
/// to and from the sandbox not), if the sandbox said.
pub struct Computed {
    pub output: Vec<u8>,
    pub ms: Option<f64>,
}

/// What the sandbox did with the oldest unit handed to it.
pub struct Answer {
    /// How long the unit held the sandbox: from when it began (at the latest) to its answer.
    pub held_ms: f64,
    pub result: Result<Computed, UnitFailure>,
}

/// One sandbox worker, replaced whenever the watchdog has to kill it. It runs the units handed
/// to it one after another, in the order they were handed over.
pub struct Sandbox {
    worker: web_sys::Worker,
    answers: mpsc::UnboundedReceiver<JsValue>,
    /// Owned here and removed with the worker it listens to.
    _on_message: EventListener,
    /// Units handed over and not yet answered, oldest first (to be sent again to the fresh
    /// worker that replaces a killed one).
    pending: VecDeque<Pending>,
    /// When the oldest pending unit began, at the latest (`now_ms()`): when it was handed
    /// over, or when the one before it was answered.
    oldest_began_ms: f64,
    /// The module the worker was sent last (by key), which it keeps: a unit of the same module
    /// goes without it.
    sent_module: Option<String>,
}

struct Pending {
    module: JsValue,
    key: String,
    input: js_sys::Uint8Array,
    budget_ms: u64,
}

impl Sandbox {
    pub fn new() -> Result<Self, UnitFailure> {
        let (worker, answers, on_message) = spawn()?;
        Ok(Self {
            worker,
            answers,
            _on_message: on_message,
            pending: VecDeque::new(),
            oldest_began_ms: 0.0,
            sent_module: None,
        })
    }

    /// Hands over a unit: `module` (a compiled `WebAssembly.Module`) on `input`, for at most
    /// `budget_ms` once it begins. It begins once the units handed over before it are answered.
    pub fn post(
        &mut self,
        module: &JsValue,
        module_key: &str,
        input: &[u8],
        budget_ms: u64,
    ) -> Result<(), UnitFailure> {
        let pending = Pending {
            module: module.clone(),
            key: module_key.to_owned(),
            input: js_sys::Uint8Array::from(input),
            budget_ms,
        };
        self.send(&pending)?;
        if self.pending.is_empty() {
            self.oldest_began_ms = now_ms();
        }
        self.pending.push_back(pending);
        Ok(())
    }

    fn send(&mut self, unit: &Pending) -> Result<(), UnitFailure> {
        let request = js_sys::Object::new();
        set(&request, "key", &JsValue::from_str(&unit.key));
        set(&request, "input", &unit.input);
        if self.sent_module.as_deref() != Some(unit.key.as_str()) {
            set(&request, "module", &unit.module);
        }
        self.worker
            .post_message(&request)
            .map_err(|err| UnitFailure::Sandbox(describe(&err)))?;
        self.sent_module = Some(unit.key.clone());
        Ok(())
    }

    /// Waits for the oldest pending unit's answer, at most its budget from when it began; past
    /// it, the worker is terminated (which stops even an endless loop) and a fresh one takes its
    /// place, with the units that were waiting behind.
    ///
    /// A unit begins when the one before it ends, which this side learns a little later: the
    /// budget of a unit that waited is counted from then, so it may run that much longer.
    pub async fn answer(&mut self) -> Answer {
        let Some(budget_ms) = self.pending.front().map(|pending| pending.budget_ms) else {
            return Answer {
                held_ms: 0.0,
                result: Err(UnitFailure::Sandbox("no unit was handed over".into())),
            };
        };
        let left_ms = (budget_ms as f64 - (now_ms() - self.oldest_began_ms)).max(0.0);
        let watchdog = sleep(Duration::from_millis(left_ms.ceil() as u64));
        let answered = match select(self.answers.next(), Box::pin(watchdog)).await {
            Either::Left((answer, _)) => Some(answer),
            Either::Right(((), _)) => None,
        };
        let now = now_ms();
        let held_ms = (now - self.oldest_began_ms).max(0.0);
        self.pending.pop_front();
        self.oldest_began_ms = now;
        let result = match answered {
            Some(Some(answer)) => decode_answer(&answer),
            Some(None) => Err(UnitFailure::Sandbox("the sandbox went away".into())),
            None => self.restart().and(Err(UnitFailure::Timeout { budget_ms })),
        };
        Answer { held_ms, result }
    }

    /// Replaces the worker by a fresh one and hands it the units still pending.
    fn restart(&mut self) -> Result<(), UnitFailure> {
        self.worker.terminate();
        let (worker, answers, on_message) = spawn()?;
        self.worker = worker;
        self.answers = answers;
        self._on_message = on_message;
        self.sent_module = None;
        let pending = std::mem::take(&mut self.pending);
        let sent = pending.iter().try_for_each(|unit| self.send(unit));
        self.pending = pending;
        sent
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

/// A sandbox worker, the channel its answers arrive on, and the listener that feeds it.
fn spawn() -> Result<
    (
        web_sys::Worker,
        mpsc::UnboundedReceiver<JsValue>,
        EventListener,
    ),
    UnitFailure,
> {
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name("cyclepool-sandbox");
    let worker = web_sys::Worker::new_with_options(SANDBOX_URL, &options)
        .map_err(|err| UnitFailure::Sandbox(describe(&err)))?;
    let (answers_tx, answers) = mpsc::unbounded::<JsValue>();
    let on_message = EventListener::new(&worker, "message", move |event| {
        let data = event
            .dyn_ref::<web_sys::MessageEvent>()
            .map_or(JsValue::UNDEFINED, web_sys::MessageEvent::data);
        let _ = answers_tx.unbounded_send(data);
    });
    Ok((worker, answers, on_message))
}

fn decode_answer(answer: &JsValue) -> Result<Computed, UnitFailure> {
    let get = |name: &str| {
        js_sys::Reflect::get(answer, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
    };
    if let Some(output) = get("output").dyn_ref::<js_sys::Uint8Array>() {
        let ms = get("ms").as_f64().filter(|ms| ms.is_finite() && *ms >= 0.0);
        return Ok(Computed {
            output: output.to_vec(),
            ms,
        });
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
