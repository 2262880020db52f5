//! Fuzzes how a job's inputs are given: the job creation body (`CreateJob`, its `Inputs` list
//! in base64 or range, its policy), the cutting of a range into units ([`RangeUnits`]) and the
//! inputs digest and declaration a distributor signs over them.
//!
//! A decoded job must re-encode to the same value and, above all, to the same declaration
//! bytes: the distributor signs what it encoded and the portal checks what it decoded. Every
//! input is also read as a raw `(start, end, step)` range, so the cutting is fuzzed on the
//! whole `u64` number line, not only on what JSON mutations reach.

#![no_main]

use cyclepool_fuzz::round_trip;
use cyclepool_shared::distributor::{inputs_digest, job_declaration_message, verify_declaration};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{CreateJob, Inputs};
use cyclepool_shared::range::{RangeUnits, decode_range, encode_range};
use cyclepool_shared::signing::is_usable_key;
use libfuzzer_sys::fuzz_target;

/// How many units at each end of a range are checked one by one.
const UNITS_CHECKED: u64 = 64;

fuzz_target!(|bytes: &[u8]| {
    if let Some(job) = round_trip::<CreateJob>(bytes) {
        check_job(&job);
    }
    if let Some(inputs) = round_trip::<Inputs>(bytes) {
        check_inputs(&inputs);
    }
    let _ = round_trip::<JobPolicy>(bytes);
    if let Some(numbers) = bytes.get(..24) {
        let number = |at: usize| {
            let mut le = [0; 8];
            le.copy_from_slice(&numbers[at..at + 8]);
            u64::from_le_bytes(le)
        };
        check_range(number(0), number(8), number(16));
    }
});

/// The declaration a distributor signs over `job` is the one the portal computes from the job
/// it decoded.
fn check_job(job: &CreateJob) {
    let digest = check_inputs(&job.inputs);
    let message = |job: &CreateJob| {
        job_declaration_message(
            &job.module_sha256,
            &digest,
            &job.title,
            &job.description,
            &job.policy,
        )
    };
    let text = serde_json::to_string(job).expect("a decoded job encodes");
    let decoded: CreateJob = serde_json::from_str(&text).expect("checked by round_trip");
    assert_eq!(
        message(&decoded),
        message(job),
        "declaration changed through {text}"
    );
    if let Some(signature) = &job.signature
        && verify_declaration(signature, &message(job)).is_ok()
    {
        assert!(is_usable_key(&signature.public_key));
    }
}

/// Checks the inputs' units and returns the inputs digest of their first units (all of a
/// list's), as the portal would hash them.
fn check_inputs(inputs: &Inputs) -> cyclepool_shared::Sha256Digest {
    match inputs {
        Inputs::List(list) => inputs_digest(list.iter().map(Vec::as_slice)),
        Inputs::Range { start, end, step } => {
            check_range(*start, *end, *step);
            let units = RangeUnits::new(*start, *end, *step);
            let encoded: Vec<Vec<u8>> = units
                .iter()
                .flat_map(|units| units.iter().take(UNITS_CHECKED as usize))
                .map(|(from, to)| encode_range(from, to))
                .collect();
            inputs_digest(encoded.iter().map(Vec::as_slice))
        }
    }
}

/// [`RangeUnits`] cuts `[start, end)` into contiguous, non-empty units of at most `step`
/// numbers each, all but the last exactly `step`, covering the range exactly once.
fn check_range(start: u64, end: u64, step: u64) {
    let Some(units) = RangeUnits::new(start, end, step) else {
        assert!(start >= end || step == 0);
        return;
    };
    assert!(start < end && step > 0);
    let count = units.units();
    assert!(count >= 1);
    assert_eq!(units.get(count), None);
    assert_eq!(units.get(u64::MAX), None);
    assert_eq!(units.get(0).map(|(from, _)| from), Some(start));
    assert_eq!(units.get(count - 1).map(|(_, to)| to), Some(end));
    // The first units as the iterator gives them, the last ones by index, and the seam.
    let first = units.iter().take(UNITS_CHECKED as usize).zip(0..);
    let last = (count.saturating_sub(UNITS_CHECKED).max(UNITS_CHECKED)..count)
        .map(|index| (units.get(index).expect("an index below the count"), index));
    let mut previous: Option<(u64, u64)> = None;
    for ((from, to), index) in first.chain(last) {
        assert_eq!(units.get(index), Some((from, to)));
        assert!(from < to, "unit {index} of {start}..{end}:{step} is empty");
        assert!(to - from <= step);
        if index + 1 < count {
            assert_eq!(to - from, step, "only the last unit may be short");
        }
        assert_eq!(
            u128::from(from),
            u128::from(start) + u128::from(index) * u128::from(step)
        );
        if let Some((previous_index, previous_to)) = previous
            && previous_index + 1 == index
        {
            assert_eq!(
                previous_to, from,
                "units {previous_index} and {index} leave a gap"
            );
        }
        assert_eq!(decode_range(&encode_range(from, to)), Some((from, to)));
        previous = Some((index, to));
    }
    // The count is the exact number of step-sized pieces needed to cover the range.
    let length = u128::from(end - start);
    assert!(u128::from(count) * u128::from(step) >= length);
    assert!(u128::from(count - 1) * u128::from(step) < length);
}
