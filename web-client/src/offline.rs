//! The decisions of offline work, as pure functions: when a unit in hand is too late to
//! compute, which answers to a result end its stay in the queue, and how many units to ask for.
//!
//! Kept apart from the browser glue so that they are tested natively (`cargo test -p
//! cyclepool-web-client`).

use cyclepool_shared::ErrorCode;
use cyclepool_shared::json::{FromJson, Json, JsonError};
use cyclepool_shared::protocol::{
    MAX_EXCHANGE_BODY_BYTES, MAX_OUTPUT_BYTES, MAX_RESULTS_PER_EXCHANGE, MAX_WORK_MS,
    SubmitResponse, SubmitStatus,
};

use crate::http::HttpError;

/// The fewest and most seconds of work a worker may keep in hand (the volunteer's setting).
pub const WORK_BUFFER_RANGE_S: (u32, u32) = (1, 600);
/// The work kept in hand before the page says otherwise: half a minute rides out a short
/// outage, and a tab closed for good holds back little work from others.
pub const DEFAULT_WORK_BUFFER_S: u32 = 30;
/// The most units a worker keeps in hand however short they are: this bounds the queue and a
/// lease answer, and topping up at half of it is still one request for work every 16 units.
pub const MAX_IN_HAND: u32 = 32;
/// Units kept in hand before this worker has timed one: few, since they may be long.
pub const UNTIMED_IN_HAND: u32 = 2;
/// The newest unit's weight in [`Pace`]'s average.
const PACE_WEIGHT: f64 = 0.25;

/// The work buffer setting from the page, in seconds, clamped to [`WORK_BUFFER_RANGE_S`];
/// anything that is not a number gives the default.
pub fn clamp_work_buffer(seconds: f64) -> u32 {
    if !seconds.is_finite() {
        return DEFAULT_WORK_BUFFER_S;
    }
    let (least, most) = WORK_BUFFER_RANGE_S;
    seconds.round().clamp(f64::from(least), f64::from(most)) as u32
}

/// How long this worker's units take, as it has seen them, so that it keeps a time's worth of
/// work in hand (as BOINC's work buffer does) rather than a number of units: four units are
/// under half a second of some jobs and most of an hour of others.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pace {
    /// Wall time per unit (computing, and resting when throttled), averaged over recent units.
    unit_ms: Option<f64>,
    /// The lease time of the last unit's job.
    lease_ms: Option<f64>,
}

impl Pace {
    /// Notes a unit that took `unit_ms` of this worker's wall time, of a job whose leases last
    /// `lease_ttl_ms`.
    pub fn record(&mut self, unit_ms: f64, lease_ttl_ms: u64) {
        if !unit_ms.is_finite() || unit_ms < 0.0 {
            return;
        }
        self.unit_ms = Some(match self.unit_ms {
            Some(average) => average + PACE_WEIGHT * (unit_ms - average),
            None => unit_ms,
        });
        self.lease_ms = Some(lease_ttl_ms as f64);
    }

    /// How many units to keep in hand (beyond those in the sandbox) for `buffer_ms` of work at
    /// this pace: never more than half a lease time's worth, so that the last of them still
    /// starts well before its deadline; at least one, at most [`MAX_IN_HAND`];
    /// [`UNTIMED_IN_HAND`] before any unit was timed.
    pub fn units_to_keep(&self, buffer_ms: f64) -> u32 {
        let Some(unit_ms) = self.unit_ms else {
            return UNTIMED_IN_HAND;
        };
        let horizon_ms = match self.lease_ms {
            Some(lease_ms) => buffer_ms.min(lease_ms / 2.0),
            None => buffer_ms,
        };
        let units = (horizon_ms / unit_ms.max(1.0)).floor();
        units.clamp(1.0, f64::from(MAX_IN_HAND)) as u32
    }
}

/// The computing time to ask the portal for (`work_ms`) with a request for `wanted` of the
/// `keep` units that make the buffer: their share of `buffer_ms`, at the duty cycle (the
/// portal estimates units by their computing time, not by this worker's rests). It bounds what
/// the portal gives when its units turn out longer than this worker's last ones (another job).
pub fn work_wanted_ms(buffer_ms: f64, duty_cycle: f64, wanted: u32, keep: u32) -> u64 {
    let share = f64::from(wanted.min(keep)) / f64::from(keep.max(1));
    let work_ms = buffer_ms * duty_cycle.clamp(0.0, 1.0) * share;
    if work_ms.is_finite() {
        (work_ms as u64).clamp(1, MAX_WORK_MS)
    } else {
        MAX_WORK_MS
    }
}

/// How many units to ask for, given how many the worker wants to keep (`keep`, from
/// [`Pace::units_to_keep`]) and how many wait in hand (not counting the sandbox's), or `None`
/// while there are enough. A worker tops up once half of them are used, so that it asks for
/// several units at a time rather than one request per unit.
pub fn refill_wanted(keep: u32, in_hand: usize) -> Option<u32> {
    let keep = keep.max(1);
    let low_water = keep.div_ceil(2) as usize;
    (in_hand < low_water).then(|| keep - in_hand as u32)
}

/// A unit with less time than this left before its deadline is not started: its result could
/// not reach the portal in time, and a late result is refused.
pub const DEADLINE_MARGIN_MS: f64 = 250.0;

/// When the job's lease time is not known (its manifest could not be loaded), a unit is given
/// up only this long after its deadline by this browser's clock, which may be wrong by minutes.
pub const CLOCK_SKEW_ALLOWANCE_MS: f64 = 60.0 * 60.0 * 1_000.0;

/// Whether a unit in hand can still be computed and returned in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Freshness {
    /// Still time: about this many ms before its deadline.
    Live { remaining_ms: f64 },
    /// Its deadline has passed (or is too close): drop it without computing.
    Expired,
}

/// Decides whether a unit is still worth computing at `now_ms` (this browser's `Date.now()`).
///
/// The deadline is by the portal's clock, which this browser's may differ from by minutes. So
/// when the job's lease time `ttl_ms` is known, only this browser's clock is used: the portal
/// set the deadline `ttl_ms` after granting the lease, and granted it just before the answer
/// arrived at `received_ms`, so the deadline falls at `received_ms + ttl_ms` by this clock
/// (late by the answer's transit time, which [`DEADLINE_MARGIN_MS`] covers). Without it the
/// deadline is read by this clock with a generous allowance for skew: such a unit is kept
/// until its job loads and the exact rule can be applied.
pub fn freshness(
    now_ms: f64,
    received_ms: f64,
    deadline_ms: u64,
    ttl_ms: Option<u64>,
) -> Freshness {
    let remaining_ms = match ttl_ms {
        Some(ttl_ms) => received_ms + ttl_ms as f64 - now_ms - DEADLINE_MARGIN_MS,
        None => deadline_ms as f64 + CLOCK_SKEW_ALLOWANCE_MS - now_ms,
    };
    if remaining_ms > 0.0 {
        Freshness::Live { remaining_ms }
    } else {
        Freshness::Expired
    }
}

/// Results in one exchange: up to the portal's limit.
pub const MAX_BATCH: usize = MAX_RESULTS_PER_EXCHANGE;

/// Output bytes in one exchange, well inside the portal's body limit once base64 (4/3) and
/// each result's envelope are added. Any output the portal takes (at most
/// `MAX_OUTPUT_BYTES`, as much as this) fits in an exchange by itself.
pub const MAX_BATCH_OUTPUT_BYTES: usize = MAX_EXCHANGE_BODY_BYTES / 2;
const _: () = assert!(MAX_BATCH_OUTPUT_BYTES >= MAX_OUTPUT_BYTES);

/// Whether a result with `next_output_bytes` of output joins a batch of `results` results
/// holding `output_bytes` of output. The first always does: any output goes in an exchange,
/// by itself if need be (one the portal would refuse is refused there, like a submission).
pub fn fits_in_batch(results: usize, output_bytes: usize, next_output_bytes: usize) -> bool {
    results == 0
        || (results < MAX_BATCH
            && output_bytes.saturating_add(next_output_bytes) <= MAX_BATCH_OUTPUT_BYTES)
}

/// Fresh results go out at most this often when nothing else calls for an exchange (a request
/// for units, a full batch, a backlog): the first at once, those that follow within this time
/// together in the next. A worker of 100 ms units then makes about one request a second instead
/// of ten, and each request costs the browser (and the portal) far more than a result in it; a
/// result is acknowledged at most this much later, which the page's once-a-second figures
/// would not show anyway.
pub const RESULTS_INTERVAL_MS: f64 = 1_000.0;

/// A fresh result whose deadline (the portal's clock, read with this one) is nearer than this
/// goes at once.
pub const SEND_NOW_BEFORE_DEADLINE_MS: f64 = 60_000.0;

/// How long `fresh` results, all there is to send, may wait for company before they go, or
/// `None` to send them now: when the batch is full, when one is due within
/// [`SEND_NOW_BEFORE_DEADLINE_MS`] of `now_ms` (`nearest_deadline_ms`, the portal's clock),
/// or when no results went out in the last [`RESULTS_INTERVAL_MS`] (`since_sent_ms` ago).
pub fn hold_fresh_ms(
    fresh: usize,
    nearest_deadline_ms: f64,
    now_ms: f64,
    since_sent_ms: f64,
) -> Option<f64> {
    if fresh == 0
        || fresh >= MAX_BATCH
        || nearest_deadline_ms - now_ms < SEND_NOW_BEFORE_DEADLINE_MS
    {
        return None;
    }
    let wait_ms = RESULTS_INTERVAL_MS - since_sent_ms;
    (wait_ms >= 1.0).then_some(wait_ms)
}

/// What the portal's answer to a result means for the stored copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Durable on the portal: remove the stored copy.
    Acknowledged(SubmitStatus),
    /// Refused for good (expired, not this volunteer's, wrong, cancelled...): sending it again
    /// would get the same answer, so remove it and say why.
    Refused { code: String, message: String },
    /// No definitive answer (network down, server failing, an answer from something that is
    /// not the portal): keep it and try again later. A result is never dropped on these.
    Retry(String),
}

/// Judges the answer to one result submission.
pub fn judge(answer: Result<SubmitResponse, HttpError>) -> Verdict {
    match answer {
        Ok(response) => Verdict::Acknowledged(response.status),
        Err(HttpError::Refused {
            status,
            code,
            message,
        }) if is_final(status, &code) => Verdict::Refused { code, message },
        Err(err) => Verdict::Retry(err.to_string()),
    }
}

/// What `POST /api/v1/exchange` answered about one of its results: the portal's
/// `ResultAnswer`, read with only what the client needs (the code by name, as in [`judge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultAnswer {
    pub status: Option<SubmitStatus>,
    pub error: Option<AnswerError>,
}

/// Why the portal refused one result of an exchange (or any request: an `ErrorBody`'s detail,
/// with the code kept as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerError {
    pub code: String,
    pub message: String,
}

impl FromJson for ResultAnswer {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("result answer")?;
        Ok(Self {
            status: fields.opt("status")?,
            error: fields.opt("error")?,
        })
    }
}

impl FromJson for AnswerError {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("error")?;
        Ok(Self {
            code: fields.req("code")?,
            message: fields.req("message")?,
        })
    }
}

/// Judges the portal's answer to one result of an exchange, by the same rules as [`judge`]:
/// each `error` is what `POST /api/v1/results` would have answered with a 4xx.
pub fn judge_answer(answer: ResultAnswer) -> Verdict {
    match answer {
        ResultAnswer {
            status: Some(status),
            ..
        } => Verdict::Acknowledged(status),
        ResultAnswer {
            error: Some(AnswerError { code, message }),
            ..
        } => {
            if is_final_code(&code) {
                Verdict::Refused { code, message }
            } else {
                Verdict::Retry(format!("{code}: {message}"))
            }
        }
        ResultAnswer { .. } => Verdict::Retry("an answer with neither status nor error".into()),
    }
}

/// Whether a 4xx answer to a result is definitive. Only codes the portal gives about the
/// result itself are: a 4xx with another code (or none, as from a proxy or a captive portal)
/// says nothing about the result, which is kept.
fn is_final(status: u16, code: &str) -> bool {
    (400..500).contains(&status) && is_final_code(code)
}

/// Whether a refusal with this code is about the result itself (see [`is_final`]).
fn is_final_code(code: &str) -> bool {
    let code = crate::from_name::<ErrorCode>(code).unwrap_or(ErrorCode::Unknown);
    matches!(
        code,
        ErrorCode::MalformedRequest
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedProtocol
            | ErrorCode::InvalidValue
            | ErrorCode::IntegrityMismatch
            | ErrorCode::UnknownLease
            | ErrorCode::LeaseExpired
            | ErrorCode::LeaseNotYours
            | ErrorCode::NonceMismatch
            | ErrorCode::ConflictingResult
            | ErrorCode::BadSignature
            | ErrorCode::InvalidResult
            | ErrorCode::VolunteerBlacklisted
            | ErrorCode::JobNotActive
            | ErrorCode::Revoked
            | ErrorCode::UnknownJob
    )
}

#[cfg(test)]
mod tests {
    use cyclepool_shared::protocol::PROTOCOL_VERSION;

    use super::*;

    fn refused(status: u16, code: &str) -> Result<SubmitResponse, HttpError> {
        Err(HttpError::Refused {
            status,
            code: code.to_owned(),
            message: format!("{code} says the portal"),
        })
    }

    #[test]
    fn fresh_results_wait_for_company_only_after_results_just_went() {
        let far = 1e12;
        let now = 1e9;
        // Nothing to send, or the first results (none sent yet): at once.
        assert_eq!(hold_fresh_ms(0, far, now, 10.0), None);
        assert_eq!(hold_fresh_ms(1, far, now, f64::INFINITY), None);
        // Results went out 100 ms ago: the next wait the rest of the interval...
        assert_eq!(hold_fresh_ms(1, far, now, 100.0), Some(900.0));
        assert_eq!(hold_fresh_ms(MAX_BATCH - 1, far, now, 0.0), Some(1_000.0));
        // ...unless the interval is up, the batch is full, or one is near its deadline.
        assert_eq!(hold_fresh_ms(3, far, now, 1_000.0), None);
        assert_eq!(hold_fresh_ms(3, far, now, 999.5), None);
        assert_eq!(hold_fresh_ms(MAX_BATCH, far, now, 100.0), None);
        assert_eq!(hold_fresh_ms(2, now + 59_999.0, now, 100.0), None);
        assert_eq!(hold_fresh_ms(2, now - 1.0, now, 100.0), None);
        assert_eq!(hold_fresh_ms(2, now + 60_000.0, now, 100.0), Some(900.0));
    }

    #[test]
    fn work_buffer_is_clamped_and_defaults_on_nonsense() {
        assert_eq!(clamp_work_buffer(0.0), 1);
        assert_eq!(clamp_work_buffer(-3.0), 1);
        assert_eq!(clamp_work_buffer(3.4), 3);
        assert_eq!(clamp_work_buffer(1e9), 600);
        assert_eq!(clamp_work_buffer(f64::NAN), DEFAULT_WORK_BUFFER_S);
        assert_eq!(clamp_work_buffer(f64::INFINITY), DEFAULT_WORK_BUFFER_S);
    }

    const TEN_MINUTES_MS: u64 = 600_000;

    #[test]
    fn a_worker_keeps_a_times_worth_of_units() {
        let buffer_ms = 30_000.0;
        // Before any unit is timed: a couple, whatever the buffer.
        assert_eq!(Pace::default().units_to_keep(buffer_ms), UNTIMED_IN_HAND);
        let mut pace = Pace::default();
        pace.record(10_000.0, TEN_MINUTES_MS);
        assert_eq!(pace.units_to_keep(buffer_ms), 3);
        // Units longer than the buffer: still one in hand.
        let mut long = Pace::default();
        long.record(20.0 * 60_000.0, 3_600_000);
        assert_eq!(long.units_to_keep(buffer_ms), 1);
        // Short units: capped.
        let mut short = Pace::default();
        short.record(100.0, TEN_MINUTES_MS);
        assert_eq!(short.units_to_keep(buffer_ms), MAX_IN_HAND);
        assert_eq!(short.units_to_keep(1_000.0), 10);
        // Instant units count as a millisecond, not as infinitely many.
        let mut instant = Pace::default();
        instant.record(0.0, TEN_MINUTES_MS);
        assert_eq!(instant.units_to_keep(buffer_ms), MAX_IN_HAND);
    }

    #[test]
    fn no_more_than_half_a_lease_time_is_kept() {
        // Leases of a minute: 30 s of 10 s units would be three, half the lease is three too;
        // of 40 s leases only two fit in twenty seconds.
        let mut pace = Pace::default();
        pace.record(10_000.0, 60_000);
        assert_eq!(pace.units_to_keep(30_000.0), 3);
        pace.record(10_000.0, 40_000);
        assert_eq!(pace.units_to_keep(30_000.0), 2);
        // A lease shorter than one unit's time: one, which the deadline check may then drop.
        pace.record(10_000.0, 1_000);
        assert_eq!(pace.units_to_keep(30_000.0), 1);
    }

    #[test]
    fn the_pace_follows_recent_units_and_ignores_nonsense() {
        let mut pace = Pace::default();
        pace.record(1_000.0, TEN_MINUTES_MS);
        pace.record(f64::NAN, TEN_MINUTES_MS);
        pace.record(-5.0, TEN_MINUTES_MS);
        pace.record(f64::INFINITY, TEN_MINUTES_MS);
        assert_eq!(pace.units_to_keep(10_000.0), 10);
        // The job's units get four times longer: within a dozen units the worker keeps a
        // quarter as many.
        for _ in 0..12 {
            pace.record(4_000.0, TEN_MINUTES_MS);
        }
        assert_eq!(pace.units_to_keep(10_000.0), 2);
    }

    #[test]
    fn a_request_asks_for_its_share_of_the_buffers_computing_time() {
        // The whole buffer for the whole hand; at half processor use, half of it computes.
        assert_eq!(work_wanted_ms(30_000.0, 1.0, 32, 32), 30_000);
        assert_eq!(work_wanted_ms(30_000.0, 0.5, 32, 32), 15_000);
        // A top-up of 17 of 32.
        assert_eq!(work_wanted_ms(32_000.0, 1.0, 17, 32), 17_000);
        // Never nothing, never past the portal's limit, never more than the buffer.
        assert_eq!(work_wanted_ms(1_000.0, 0.1, 1, 32), 3);
        assert_eq!(work_wanted_ms(0.0, 1.0, 1, 1), 1);
        assert_eq!(work_wanted_ms(f64::INFINITY, 1.0, 1, 1), MAX_WORK_MS);
        assert_eq!(work_wanted_ms(1e15, 1.0, 1, 1), MAX_WORK_MS);
        assert_eq!(work_wanted_ms(10_000.0, 1.0, 9, 2), 10_000);
        assert_eq!(work_wanted_ms(10_000.0, f64::NAN, 1, 1), MAX_WORK_MS);
    }

    #[test]
    fn refills_once_half_the_units_kept_are_used() {
        // Two in hand: ask again only when the last one waiting is taken (as before the
        // setting existed), for two.
        assert_eq!(refill_wanted(2, 1), None);
        assert_eq!(refill_wanted(2, 0), Some(2));
        // Eight: top up at three waiting, to eight.
        assert_eq!(refill_wanted(8, 4), None);
        assert_eq!(refill_wanted(8, 3), Some(5));
        assert_eq!(refill_wanted(1, 0), Some(1));
        assert_eq!(refill_wanted(1, 1), None);
        // More in hand than it keeps (the setting was lowered, or the units got longer):
        // nothing to ask for.
        assert_eq!(refill_wanted(2, 9), None);
    }

    #[test]
    fn a_known_lease_time_judges_by_this_clock_only() {
        let received = 1_000_000.0;
        // The portal's clock is far ahead (deadline in its time); only elapsed time counts.
        let deadline = 9_000_000_000;
        assert!(matches!(
            freshness(received + 1_000.0, received, deadline, Some(5_000)),
            Freshness::Live { remaining_ms } if (remaining_ms - 3_750.0).abs() < 1e-9
        ));
        assert_eq!(
            freshness(received + 5_000.0, received, deadline, Some(5_000)),
            Freshness::Expired
        );
        // Too close to the deadline to be worth starting.
        assert_eq!(
            freshness(received + 4_800.0, received, deadline, Some(5_000)),
            Freshness::Expired
        );
        // The portal's clock far behind: still expired once the time is up here.
        assert_eq!(
            freshness(received + 6_000.0, received, 0, Some(5_000)),
            Freshness::Expired
        );
    }

    #[test]
    fn without_the_lease_time_a_unit_is_kept_until_surely_expired() {
        let deadline = 2_000_000_u64;
        let now = deadline as f64 + 10.0 * 60_000.0;
        // Ten minutes past the deadline by this clock, which may be wrong: kept.
        assert!(matches!(
            freshness(now, 0.0, deadline, None),
            Freshness::Live { .. }
        ));
        assert_eq!(
            freshness(
                deadline as f64 + CLOCK_SKEW_ALLOWANCE_MS,
                0.0,
                deadline,
                None
            ),
            Freshness::Expired
        );
    }

    #[test]
    fn acknowledged_results_are_removed() {
        let accepted = Ok(SubmitResponse {
            protocol: PROTOCOL_VERSION,
            status: SubmitStatus::Accepted,
        });
        assert_eq!(
            judge(accepted),
            Verdict::Acknowledged(SubmitStatus::Accepted)
        );
        let duplicate = Ok(SubmitResponse {
            protocol: PROTOCOL_VERSION,
            status: SubmitStatus::Duplicate,
        });
        assert_eq!(
            judge(duplicate),
            Verdict::Acknowledged(SubmitStatus::Duplicate)
        );
    }

    #[test]
    fn definitive_refusals_end_the_result() {
        for (status, code) in [
            (410, "lease_expired"),
            (404, "unknown_lease"),
            (403, "lease_not_yours"),
            (403, "nonce_mismatch"),
            (409, "conflicting_result"),
            (409, "job_not_active"),
            (403, "bad_signature"),
            (422, "invalid_result"),
            (403, "volunteer_blacklisted"),
            (400, "integrity_mismatch"),
            (413, "payload_too_large"),
            (422, "malformed_request"),
        ] {
            assert!(
                matches!(judge(refused(status, code)), Verdict::Refused { code: c, .. } if c == code),
                "{status} {code} should be final"
            );
        }
    }

    #[test]
    fn anything_else_keeps_the_result() {
        assert!(matches!(
            judge(Err(HttpError::Network("offline".into()))),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            judge(Err(HttpError::Unavailable {
                status: 503,
                message: "shedding load".into()
            })),
            Verdict::Retry(_)
        ));
        // A proxy's 4xx without the portal's error body, a timeout, a route that is not
        // there, a code this client does not know: none of them judged the result.
        for (status, code) in [
            (400, ""),
            (408, "request_timeout"),
            (404, "not_found"),
            (403, "forbidden"),
            (401, "unauthorized"),
            (418, "some_future_code"),
        ] {
            assert!(
                matches!(judge(refused(status, code)), Verdict::Retry(_)),
                "{status} {code} should keep the result"
            );
        }
        assert!(matches!(
            judge(Err(HttpError::Protocol("not JSON".into()))),
            Verdict::Retry(_)
        ));
    }

    /// The portal's own `ResultAnswer`, as it sends it, read by this client.
    fn as_sent(answer: &cyclepool_shared::protocol::ResultAnswer) -> ResultAnswer {
        let json = serde_json::to_string(answer).expect("serialises");
        cyclepool_shared::json::from_str(&json).expect("the client reads what the portal sends")
    }

    #[test]
    fn an_exchange_answer_is_judged_like_a_submission() {
        use cyclepool_shared::ErrorDetail;
        use cyclepool_shared::protocol::ResultAnswer as Sent;

        for status in [SubmitStatus::Accepted, SubmitStatus::Duplicate] {
            let answer = Sent {
                status: Some(status),
                error: None,
            };
            assert_eq!(
                judge_answer(as_sent(&answer)),
                Verdict::Acknowledged(status)
            );
        }
        let refusal = |code| Sent {
            status: None,
            error: Some(ErrorDetail {
                code,
                message: "says the portal".into(),
            }),
        };
        // About the result itself: dropped, as a 4xx with that code to a submission would be.
        for code in [
            ErrorCode::LeaseExpired,
            ErrorCode::BadSignature,
            ErrorCode::IntegrityMismatch,
            ErrorCode::PayloadTooLarge,
            ErrorCode::InvalidResult,
        ] {
            assert!(
                matches!(
                    judge_answer(as_sent(&refusal(code))),
                    Verdict::Refused { .. }
                ),
                "{code:?} should be final"
            );
        }
        // Later: the key's rate limit says nothing about the result.
        assert!(matches!(
            judge_answer(as_sent(&refusal(ErrorCode::RateLimited))),
            Verdict::Retry(_)
        ));
        // An answer from a newer portal with a code this client does not know, or with
        // neither field: kept.
        let unknown: ResultAnswer = cyclepool_shared::json::from_str(
            r#"{"error": {"code": "some_future_code", "message": "?"}}"#,
        )
        .expect("parses");
        assert!(matches!(judge_answer(unknown), Verdict::Retry(_)));
        let empty: ResultAnswer = cyclepool_shared::json::from_str("{}").expect("parses");
        assert!(matches!(judge_answer(empty), Verdict::Retry(_)));
    }

    #[test]
    fn a_batch_stops_at_the_portals_limits_and_always_takes_its_first() {
        assert!(fits_in_batch(0, 0, MAX_OUTPUT_BYTES));
        assert!(fits_in_batch(0, 0, usize::MAX));
        assert!(fits_in_batch(MAX_BATCH - 1, 0, 10));
        assert!(!fits_in_batch(MAX_BATCH, 0, 0));
        assert!(fits_in_batch(3, MAX_BATCH_OUTPUT_BYTES - 10, 10));
        assert!(!fits_in_batch(3, MAX_BATCH_OUTPUT_BYTES - 10, 11));
        assert!(!fits_in_batch(1, usize::MAX, 1));
    }

    /// The largest batches the rules allow are bodies the portal takes.
    #[test]
    fn the_largest_batches_fit_the_portals_body_limit() {
        use cyclepool_shared::protocol::{Exchange, ResultSubmission};
        use cyclepool_shared::{LeaseId, Nonce, Sha256Digest, Signature, VolunteerId};

        let result = |output: Vec<u8>| ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer: VolunteerId::from_bytes([0xab; 32]),
            lease_id: LeaseId::from_bytes([0xcd; 16]),
            nonce: Nonce::from_bytes([0xef; 16]),
            output_sha256: Sha256Digest::of(&output),
            output,
            signature: Signature::from_bytes([0x12; 64]),
            compute_ms: u64::MAX,
        };
        let body = |results: Vec<ResultSubmission>| {
            serde_json::to_vec(&Exchange {
                protocol: PROTOCOL_VERSION,
                results,
                lease: None,
            })
            .expect("serialises")
            .len()
        };
        // Every byte of output in one result, the rest empty; or the bytes spread evenly.
        let mut one_large = vec![result(vec![0xff; MAX_BATCH_OUTPUT_BYTES])];
        one_large.extend((1..MAX_BATCH).map(|_| result(Vec::new())));
        let share = MAX_BATCH_OUTPUT_BYTES / MAX_BATCH;
        let even = (0..MAX_BATCH).map(|_| result(vec![0xff; share])).collect();
        for size in [body(one_large), body(even)] {
            assert!(size <= MAX_EXCHANGE_BODY_BYTES, "{size} bytes");
        }
    }
}
