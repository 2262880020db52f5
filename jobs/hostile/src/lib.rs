//! A deliberately hostile job, for tests of the sandboxes and the watchdog. It meets the job
//! ABI (so the portal accepts it) and misbehaves on demand: the first input byte picks how.
//!
//! | input byte | behaviour |
//! |---|---|
//! | [`ENDLESS_LOOP`] | loops forever |
//! | [`TRAP`] | panics, which is a trap in wasm |
//! | [`MEMORY_BOMB`] | allocates until its memory reaches its maximum, then traps |
//! | [`HUGE_OUTPUT`] | returns an output larger than the portal accepts |
//! | [`JOB_ERROR`] | rejects the input with error code 7 |
//! | anything else | behaves: echoes the input |

use std::hint::black_box;

pub const ENDLESS_LOOP: u8 = 0;
pub const TRAP: u8 = 1;
pub const MEMORY_BOMB: u8 = 2;
pub const HUGE_OUTPUT: u8 = 3;
pub const JOB_ERROR: u8 = 4;

/// Bytes in the huge output: twice the portal's 1 MiB limit.
pub const HUGE_OUTPUT_BYTES: usize = 2 << 20;

/// The job: misbehaves as the first input byte says.
pub fn run(input: &[u8]) -> Result<Vec<u8>, u32> {
    match input.first().copied() {
        Some(ENDLESS_LOOP) => {
            let mut counter = 0u64;
            loop {
                // black_box keeps the optimiser from proving the loop has no effect.
                counter = black_box(counter.wrapping_add(1));
            }
        }
        Some(TRAP) => panic!("deliberate trap"),
        Some(MEMORY_BOMB) => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 1 << 20];
                block[0] = 1;
                hoard.push(black_box(block));
            }
        }
        Some(HUGE_OUTPUT) => Ok(vec![0xee; HUGE_OUTPUT_BYTES]),
        Some(JOB_ERROR) => Err(7),
        _ => Ok(input.to_vec()),
    }
}

cyclepool_job_sdk::job!(run = run);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_when_asked_to() {
        assert_eq!(run(&[9, 8]), Ok(vec![9, 8]));
        assert_eq!(run(&[JOB_ERROR]), Err(7));
        assert_eq!(
            run(&[HUGE_OUTPUT]).map(|output| output.len()),
            Ok(HUGE_OUTPUT_BYTES)
        );
    }
}
