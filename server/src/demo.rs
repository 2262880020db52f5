//! The demo job created at first start, so that a newcomer who opens the page sees real work.

use cyclepool_shared::Kernel;
use cyclepool_shared::kernel::encode_range;

use crate::store::{JobRecord, NewJob, Store, StoreError};

/// The demo counts primes from one trillion upwards...
pub const DEMO_START: u64 = 1_000_000_000_000;
/// ...in ranges of two million numbers per unit (about 15 ms of work in a browser).
pub const DEMO_UNIT_WIDTH: u64 = 2_000_000;

/// Creates the demo job unless it was created before (even if it has since finished).
pub fn ensure_demo_job(
    store: &Store,
    units: u64,
    lease_ttl_ms: u64,
    now_ms: u64,
) -> Result<Option<JobRecord>, StoreError> {
    if units == 0 {
        return Ok(None);
    }
    let inputs: Vec<Vec<u8>> = (0..units)
        .map(|unit| {
            let start = DEMO_START + unit * DEMO_UNIT_WIDTH;
            encode_range(start, start + DEMO_UNIT_WIDTH)
        })
        .collect();
    let spec = NewJob {
        title: "Counting primes above one trillion".into(),
        description: format!(
            "Counts the primes in [{DEMO_START}, {}) in ranges of {DEMO_UNIT_WIDTH}, \
             checking the prime-counting function far from where tables are common.",
            DEMO_START + units * DEMO_UNIT_WIDTH
        ),
        kernel: Kernel::CountPrimes,
        lease_ttl_ms,
    };
    store.create_job(spec, &inputs, now_ms, Some("demo-job"))
}
