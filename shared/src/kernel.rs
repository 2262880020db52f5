//! Built-in compute kernels: the code a unit runs until distributors upload their own modules.
//!
//! A kernel is a pure function from input bytes to output bytes, the same contract a job
//! module will have. The browser runs it compiled to WebAssembly; the server's audit runs
//! the very same function natively, which is how results are checked independently.

use serde::{Deserialize, Serialize};

/// Which built-in computation a job's units run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kernel {
    /// Count the primes in `[start, end)`. Input: `start` and `end` as little-endian `u64`s
    /// (16 bytes). Output: the count as a little-endian `u64` (8 bytes).
    #[serde(rename = "count-primes-v1")]
    CountPrimes,
}

/// The widest range one count-primes unit may cover: bounds memory to 64 MiB of sieve.
pub const MAX_PRIME_RANGE: u64 = 1 << 26;

/// The largest `end` a count-primes unit may name; keeps `p * p` far from overflow.
pub const MAX_PRIME_END: u64 = 1 << 62;

/// A unit's input could not be run by its kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("count-primes input must be 16 bytes, got {0}")]
    InputLength(usize),
    #[error(
        "count-primes range [{start}, {end}) is empty, reversed or wider than {MAX_PRIME_RANGE}"
    )]
    BadRange { start: u64, end: u64 },
    #[error("count-primes range end {0} is above the supported maximum {MAX_PRIME_END}")]
    EndTooLarge(u64),
}

impl Kernel {
    /// Runs the kernel on one unit's input.
    pub fn run(self, input: &[u8]) -> Result<Vec<u8>, KernelError> {
        match self {
            Kernel::CountPrimes => {
                let (start, end) = decode_range(input)?;
                Ok(count_primes(start, end).to_le_bytes().to_vec())
            }
        }
    }
}

/// Encodes a count-primes unit's input.
pub fn encode_range(start: u64, end: u64) -> Vec<u8> {
    let mut input = Vec::with_capacity(16);
    input.extend_from_slice(&start.to_le_bytes());
    input.extend_from_slice(&end.to_le_bytes());
    input
}

/// Decodes and checks a count-primes unit's input.
pub fn decode_range(input: &[u8]) -> Result<(u64, u64), KernelError> {
    let bytes: &[u8; 16] = input
        .try_into()
        .map_err(|_| KernelError::InputLength(input.len()))?;
    let (start, end) = bytes.split_at(8);
    let start = u64::from_le_bytes(start.try_into().unwrap_or_default());
    let end = u64::from_le_bytes(end.try_into().unwrap_or_default());
    if end <= start || end - start > MAX_PRIME_RANGE {
        return Err(KernelError::BadRange { start, end });
    }
    if end > MAX_PRIME_END {
        return Err(KernelError::EndTooLarge(end));
    }
    Ok((start, end))
}

/// Counts the primes `p` with `start <= p < end`, by a segmented sieve of Eratosthenes
/// over odd numbers. Cost: about `sqrt(end)` for the base primes plus `(end - start) * ln ln end`.
pub fn count_primes(start: u64, end: u64) -> u64 {
    if end <= 2 || start >= end {
        return 0;
    }
    let count = u64::from(start <= 2);
    // Only odd numbers from here on: index i stands for `first_odd + 2 * i`.
    let first_odd = start.max(3) | 1;
    if first_odd >= end {
        return count;
    }
    let odd_count = usize::try_from((end - first_odd).div_ceil(2)).unwrap_or(usize::MAX);
    let mut composite = vec![false; odd_count];
    for p in odd_primes_up_to((end - 1).isqrt()) {
        // The first odd multiple of p that is at least max(p * p, first_odd).
        let mut multiple = (p * p).max(first_odd.div_ceil(p) * p);
        if multiple % 2 == 0 {
            multiple += p;
        }
        // Compare in u64 before narrowing: on wasm32 `usize` is 32 bits, and `p * p` can lie
        // far beyond this segment.
        let offset = (multiple - first_odd) / 2;
        if offset >= odd_count as u64 {
            continue;
        }
        let mut index = offset as usize;
        let step = p as usize;
        while index < odd_count {
            composite[index] = true;
            index += step;
        }
    }
    count
        + composite
            .iter()
            .filter(|&&is_composite| !is_composite)
            .count() as u64
}

/// The odd primes `p <= limit`, by a plain sieve.
fn odd_primes_up_to(limit: u64) -> Vec<u64> {
    let limit = limit as usize;
    if limit < 3 {
        return Vec::new();
    }
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    for n in (3..=limit).step_by(2) {
        if composite[n] {
            continue;
        }
        primes.push(n as u64);
        // `n * n` would overflow a 32-bit `usize` (wasm32) long before `n` reaches `limit`.
        if n > limit / n {
            continue;
        }
        for multiple in (n * n..=limit).step_by(2 * n) {
            composite[multiple] = true;
        }
    }
    primes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_prime(n: u64) -> bool {
        n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
    }

    #[test]
    fn matches_known_prime_counts() {
        assert_eq!(count_primes(0, 10), 4);
        assert_eq!(count_primes(0, 1_000_000), 78_498);
        assert_eq!(count_primes(0, 10_000_000), 664_579);
    }

    #[test]
    fn matches_trial_division_on_every_small_range() {
        for start in 0..60 {
            for end in start..60 {
                let expected = (start..end).filter(|&n| is_prime(n)).count() as u64;
                assert_eq!(count_primes(start, end), expected, "[{start}, {end})");
            }
        }
        let start = 1_000_000_000_000;
        let expected = (start..start + 2_000).filter(|&n| is_prime(n)).count() as u64;
        assert_eq!(count_primes(start, start + 2_000), expected);
    }

    #[test]
    fn kernel_encodes_and_checks_its_input() {
        let output = Kernel::CountPrimes.run(&encode_range(0, 100)).unwrap();
        assert_eq!(output, 25u64.to_le_bytes());
        assert_eq!(
            Kernel::CountPrimes.run(&[1, 2, 3]),
            Err(KernelError::InputLength(3))
        );
        assert!(matches!(
            Kernel::CountPrimes.run(&encode_range(10, 5)),
            Err(KernelError::BadRange { .. })
        ));
        assert!(matches!(
            Kernel::CountPrimes.run(&encode_range(0, MAX_PRIME_RANGE + 1)),
            Err(KernelError::BadRange { .. })
        ));
        assert_eq!(
            Kernel::CountPrimes.run(&encode_range(u64::MAX - 5, u64::MAX)),
            Err(KernelError::EndTooLarge(u64::MAX))
        );
    }
}
