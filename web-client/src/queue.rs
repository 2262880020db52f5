//! The worker's side of the offline queue (`static/offline-queue.js`): the units in hand and the
//! results not yet acknowledged, kept in IndexedDB and shared by every worker of the origin.
//!
//! The store itself is a small JS module: IndexedDB's request-and-callback API and the Web
//! Locks that tell live workers from dead ones are far shorter to drive from JS than through
//! `web-sys`, and a static module file is allowed by the strict CSP (no inline code, no eval).
//! Records cross as JSON text; this side owns their shape.

use cyclepool_shared::json::{self, FromJson, Json, JsonError, Object, ToJson};
use cyclepool_shared::protocol::{Lease, ResultSubmission};
use cyclepool_shared::{LeaseId, VolunteerId};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::sandbox::describe;

// The module sits beside `pkg/`, where the bindings are generated: `../` from the glue file.
#[wasm_bindgen(raw_module = "../offline-queue.js")]
extern "C" {
    #[wasm_bindgen(js_name = openQueue)]
    fn open_queue() -> js_sys::Promise;
}

#[wasm_bindgen]
extern "C" {
    /// The object `openQueue` resolves to (IndexedDB-backed, or in memory).
    type JsQueue;

    #[wasm_bindgen(method, getter)]
    fn persistent(this: &JsQueue) -> bool;
    #[wasm_bindgen(method, getter)]
    fn reason(this: &JsQueue) -> Option<String>;
    #[wasm_bindgen(method, js_name = addUnits)]
    fn add_units(this: &JsQueue, units: &str) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = claimUnits)]
    fn claim_units(
        this: &JsQueue,
        volunteer: &str,
        max: u32,
        stale_before_ms: f64,
    ) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = releaseUnits)]
    fn release_units(this: &JsQueue, lease_ids: &str) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = dropUnit)]
    fn drop_unit(this: &JsQueue, lease_id: &str) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = finishUnit)]
    fn finish_unit(this: &JsQueue, result: &str) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = claimResults)]
    fn claim_results(this: &JsQueue, max: u32) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = releaseResult)]
    fn release_result(this: &JsQueue, lease_id: &str) -> js_sys::Promise;
    #[wasm_bindgen(method, js_name = removeAnswered)]
    fn remove_answered(this: &JsQueue, lease_ids: &str) -> js_sys::Promise;
}

/// A unit in hand, as stored: the lease as the portal sent it and when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUnit {
    /// The store's key.
    pub lease_id: LeaseId,
    /// Only this key can sign the unit's result, so only its workers take the unit.
    pub volunteer: VolunteerId,
    /// `Date.now()` when the lease arrived: the deadline by this browser's clock is this plus
    /// the job's lease time (see [`crate::offline::freshness`]).
    pub received_ms: f64,
    pub lease: Lease,
}

/// A result waiting for the portal's acknowledgement: the signed submission, ready to send as
/// it is, and what the page is told once it is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    /// The store's key (the submission's lease).
    pub lease_id: LeaseId,
    pub job_id: u64,
    pub unit: u64,
    /// The lease's deadline by the portal's clock (for people reading the store).
    pub deadline_ms: u64,
    /// `Date.now()` when the computation ended: results are sent oldest first.
    pub finished_ms: f64,
    /// The computation's time with sub-millisecond resolution.
    pub busy_ms: f64,
    pub submission: ResultSubmission,
}

/// What a claim of stored results found.
#[derive(Debug, Default)]
pub struct ClaimedResults {
    /// Claimed by this worker, oldest first.
    pub results: Vec<StoredResult>,
    /// Why each record that could not be read was removed.
    pub unreadable: Vec<String>,
}

impl ClaimedResults {
    /// Records claimed, readable or not: fewer than asked means the backlog is empty.
    pub fn records(&self) -> usize {
        self.results.len() + self.unreadable.len()
    }
}

/// What a look for stored units found.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Claimed by this worker, oldest first.
    pub units: Vec<StoredUnit>,
    /// Deleted as long expired: (job, unit).
    pub expired: Vec<(u64, u64)>,
    /// Records dropped because they could not be read, with why.
    pub unreadable: Vec<String>,
}

/// This worker's handle on the queue.
pub struct Queue {
    js: JsQueue,
}

impl Queue {
    /// Opens the queue; it falls back to memory (and says why) where IndexedDB is missing.
    pub async fn open() -> Result<Queue, String> {
        let js = JsFuture::from(open_queue())
            .await
            .map_err(|err| describe(&err))?;
        Ok(Queue {
            js: js.unchecked_into(),
        })
    }

    /// Whether the queue outlives this worker (IndexedDB) or not (memory).
    pub fn persistent(&self) -> bool {
        self.js.persistent()
    }

    /// Why the queue is in memory only.
    pub fn reason(&self) -> Option<String> {
        self.js.reason()
    }

    /// Stores units just leased, claimed by this worker. The write is issued at once (not when
    /// the future is first polled), so any later write about these units, such as the
    /// transaction that replaces one by its result, is ordered after it by IndexedDB: the
    /// caller may compute them before this write completes.
    pub fn add_units(
        &self,
        units: &[StoredUnit],
    ) -> impl Future<Output = Result<(), String>> + use<> {
        let written = self.js.add_units(&to_json(units));
        async move { done(written).await }
    }

    /// Claims up to `max` stored units of `volunteer` that no live worker holds, oldest first.
    /// On the way it deletes free units (of any key) whose deadline was `stale_before_ms` or
    /// earlier by the portal's clock, and a record this version cannot read (written by another
    /// version of the client).
    pub async fn claim_units(
        &self,
        volunteer: VolunteerId,
        max: u32,
        stale_before_ms: f64,
    ) -> Result<Claimed, String> {
        let json = text(
            self.js
                .claim_units(&volunteer.to_string(), max, stale_before_ms),
        )
        .await?;
        // Records stay parsed but unread until each is read on its own, so that one this
        // version cannot read is dropped alone.
        let found = parse(json.as_deref().unwrap_or(r#"{"claimed":[],"dropped":[]}"#))?;
        let found = found.fields("claimed units").map_err(unreadable)?;
        let claimed = found
            .req_with("claimed", Json::as_array)
            .map_err(unreadable)?;
        let dropped = found
            .req_with("dropped", Json::as_array)
            .map_err(unreadable)?;
        let (units, unreadable) = self
            .read_claimed(claimed, JsQueue::drop_unit, "unit dropped")
            .await?;
        let mut claimed = Claimed {
            units,
            unreadable,
            ..Claimed::default()
        };
        for record in dropped {
            if let Some(lease) = dropped_lease(record) {
                claimed.expired.push(lease);
            }
        }
        Ok(claimed)
    }

    /// Frees units this worker holds but will not compute.
    pub async fn release_units(&self, lease_ids: &[LeaseId]) -> Result<(), String> {
        done(self.js.release_units(&to_json(lease_ids))).await
    }

    /// Forgets a unit that will not be computed.
    pub async fn drop_unit(&self, lease_id: LeaseId) -> Result<(), String> {
        done(self.js.drop_unit(&lease_id.to_string())).await
    }

    /// Replaces a computed unit by its result in one transaction; the result is left free,
    /// for whichever worker sends next.
    pub async fn finish_unit(&self, result: &StoredResult) -> Result<(), String> {
        done(self.js.finish_unit(&to_json(result))).await
    }

    /// Claims up to `max` of the oldest results no live worker is sending, in one queue
    /// transaction, oldest first. A record this version cannot read could never be sent: it
    /// is removed, and said why in `unreadable`.
    pub async fn claim_results(&self, max: u32) -> Result<ClaimedResults, String> {
        let json = text(self.js.claim_results(max)).await?;
        let records = parse(json.as_deref().unwrap_or("[]"))?;
        let records = records.as_array().map_err(unreadable)?;
        let (results, unreadable) = self
            .read_claimed(records, remove_result, "result removed")
            .await?;
        Ok(ClaimedResults {
            results,
            unreadable,
        })
    }

    /// Reads claimed records; one this version cannot read could never be used, so it is
    /// taken out of the queue with `forget` and said why (`what` became of it).
    async fn read_claimed<T: FromJson>(
        &self,
        records: &[Json],
        forget: fn(&JsQueue, &str) -> js_sys::Promise,
        what: &str,
    ) -> Result<(Vec<T>, Vec<String>), String> {
        let mut read = Vec::with_capacity(records.len());
        let mut unreadable = Vec::new();
        for record in records {
            match T::from_json(record) {
                Ok(value) => read.push(value),
                Err(err) => {
                    if let Some(id) = lease_id_of(record) {
                        done(forget(&self.js, &id)).await?;
                    }
                    unreadable.push(format!("offline queue: unreadable {what}: {err}"));
                }
            }
        }
        Ok((read, unreadable))
    }

    /// Frees a result for a later try (no definitive answer).
    pub async fn release_result(&self, lease_id: LeaseId) -> Result<(), String> {
        done(self.js.release_result(&lease_id.to_string())).await
    }

    /// Removes what the queue holds of leases whose results the portal acknowledged or
    /// refused for good (the stored result, or the unit of a result sent from memory), in one
    /// transaction.
    pub async fn remove_answered(&self, lease_ids: &[LeaseId]) -> Result<(), String> {
        done(self.js.remove_answered(&to_json(lease_ids))).await
    }
}

/// Removes the result stored under `lease_id`.
fn remove_result(js: &JsQueue, lease_id: &str) -> js_sys::Promise {
    // A lease id read from a record is any string: written as JSON, not pasted into it.
    js.remove_answered(&to_json(&[lease_id][..]))
}

/// The store key of a record this version cannot otherwise read, if it has one.
fn lease_id_of(record: &Json) -> Option<String> {
    record.fields("record").ok()?.req("lease_id").ok()
}

/// The (job, unit) of a unit record dropped as long expired, if it can be read.
fn dropped_lease(record: &Json) -> Option<(u64, u64)> {
    let lease = record
        .fields("unit")
        .ok()?
        .get("lease")?
        .fields("lease")
        .ok()?;
    Some((lease.req("job_id").ok()?, lease.req("unit").ok()?))
}

fn to_json<T: ToJson + ?Sized>(value: &T) -> String {
    json::to_string(value)
}

fn parse(text: &str) -> Result<Json, String> {
    json::parse(text).map_err(unreadable)
}

fn unreadable(err: JsonError) -> String {
    format!("offline queue: unreadable record: {err}")
}

impl ToJson for StoredUnit {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("lease_id", &self.lease_id)
            .field("volunteer", &self.volunteer)
            .field("received_ms", &self.received_ms)
            .field("lease", &self.lease)
            .end();
    }
}

impl FromJson for StoredUnit {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("stored unit")?;
        Ok(Self {
            lease_id: fields.req("lease_id")?,
            volunteer: fields.req("volunteer")?,
            received_ms: fields.req("received_ms")?,
            lease: fields.req("lease")?,
        })
    }
}

impl ToJson for StoredResult {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("lease_id", &self.lease_id)
            .field("job_id", &self.job_id)
            .field("unit", &self.unit)
            .field("deadline_ms", &self.deadline_ms)
            .field("finished_ms", &self.finished_ms)
            .field("busy_ms", &self.busy_ms)
            .field("submission", &self.submission)
            .end();
    }
}

impl FromJson for StoredResult {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("stored result")?;
        Ok(Self {
            lease_id: fields.req("lease_id")?,
            job_id: fields.req("job_id")?,
            unit: fields.req("unit")?,
            deadline_ms: fields.req("deadline_ms")?,
            finished_ms: fields.req("finished_ms")?,
            busy_ms: fields.req("busy_ms")?,
            submission: fields.req("submission")?,
        })
    }
}

async fn done(promise: js_sys::Promise) -> Result<(), String> {
    JsFuture::from(promise)
        .await
        .map(drop)
        .map_err(|err| format!("offline queue: {}", describe(&err)))
}

async fn text(promise: js_sys::Promise) -> Result<Option<String>, String> {
    JsFuture::from(promise)
        .await
        .map(|value| value.as_string())
        .map_err(|err| format!("offline queue: {}", describe(&err)))
}
