//! Cyclepool example job: the prime factorisation of a 64-bit integer, with a verify that
//! is far cheaper than factoring.
//!
//! - **Input**: `n` as 8 bytes, little-endian `u64`.
//! - **Output**: the prime factors of `n` with multiplicity, in non-decreasing order, each
//!   as 8 bytes little-endian (so `12` gives `2, 2, 3`). `n = 1` gives an empty output.
//! - **Errors**: [`ERR_LENGTH`] when the input is not 8 bytes, [`ERR_ZERO`] for `n = 0`.
//! - **Verify**: the factors are non-decreasing, each is prime (deterministic Miller–Rabin,
//!   a dozen modular exponentiations) and their product is `n`. That is microseconds, while
//!   factoring a product of two 32-bit primes takes tens of thousands of steps.
//!
//! Factoring is trial division by small primes, then Pollard's rho (Brent's variant) with a
//! deterministic sequence of constants, so every run gives the same bytes.

/// Error code: the input is not exactly 8 bytes.
pub const ERR_LENGTH: u32 = 1;
/// Error code: `n` is 0, which has no factorisation.
pub const ERR_ZERO: u32 = 2;

/// The job's entry point: see the crate documentation for the encodings.
pub fn run(input: &[u8]) -> Result<Vec<u8>, u32> {
    let n = decode_input(input).ok_or(ERR_LENGTH)?;
    if n == 0 {
        return Err(ERR_ZERO);
    }
    Ok(encode_factors(&factorize(n)))
}

/// Whether `output` is the factorisation of the `n` in `input`.
pub fn verify(input: &[u8], output: &[u8]) -> bool {
    let Some(n) = decode_input(input) else {
        return false;
    };
    let Some(factors) = decode_factors(output) else {
        return false;
    };
    let sorted = factors.windows(2).all(|pair| pair[0] <= pair[1]);
    let product = factors
        .iter()
        .try_fold(1u64, |product, &f| product.checked_mul(f));
    n != 0 && sorted && product == Some(n) && factors.iter().all(|&f| is_prime(f))
}

cyclepool_job_sdk::job!(run = run, verify = verify);

/// The job input for `n`.
pub fn encode_input(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

fn decode_input(input: &[u8]) -> Option<u64> {
    input.try_into().ok().map(u64::from_le_bytes)
}

/// The job output for a list of factors.
pub fn encode_factors(factors: &[u64]) -> Vec<u8> {
    factors.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// The factors in a job output, or `None` when its length is not a multiple of 8.
pub fn decode_factors(output: &[u8]) -> Option<Vec<u64>> {
    let chunks = output.chunks_exact(8);
    if !chunks.remainder().is_empty() {
        return None;
    }
    chunks
        .map(|chunk| chunk.try_into().ok().map(u64::from_le_bytes))
        .collect()
}

/// The prime factors of `n` (which must not be 0), with multiplicity, in order.
pub fn factorize(mut n: u64) -> Vec<u64> {
    let mut factors = Vec::new();
    // Trial division removes every factor below 1000, so Pollard's rho only ever sees odd
    // numbers whose factors are all large.
    for p in (2..1000u64).filter(|&p| p < 4 || is_prime(p)) {
        while n % p == 0 {
            factors.push(p);
            n /= p;
        }
    }
    let mut pending = vec![n];
    while let Some(m) = pending.pop() {
        if m == 1 {
            continue;
        }
        if is_prime(m) {
            factors.push(m);
        } else {
            let d = pollard_rho(m);
            pending.push(d);
            pending.push(m / d);
        }
    }
    factors.sort_unstable();
    factors
}

/// Deterministic Miller–Rabin: these twelve bases decide every `u64` correctly.
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for p in BASES {
        if n % p == 0 {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    BASES.iter().all(|&a| {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            return true;
        }
        (1..s).any(|_| {
            x = mul_mod(x, x, n);
            x == n - 1
        })
    })
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

fn pow_mod(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut result = 1 % m;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul_mod(result, base, m);
        }
        base = mul_mod(base, base, m);
        exp >>= 1;
    }
    result
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A non-trivial factor of `n`, an odd composite with no factor below 1000.
fn pollard_rho(n: u64) -> u64 {
    // Brent's cycle finding; the gcd is taken over batches of products to save divisions.
    const BATCH: u64 = 128;
    for c in 1..n {
        let f = |x: u64| ((u128::from(x) * u128::from(x) + u128::from(c)) % u128::from(n)) as u64;
        let (mut x, mut y, mut saved) = (2u64, 2u64, 2u64);
        let (mut g, mut q, mut r) = (1u64, 1u64, 1u64);
        while g == 1 {
            x = y;
            for _ in 0..r {
                y = f(y);
            }
            let mut k = 0;
            while k < r && g == 1 {
                saved = y;
                for _ in 0..BATCH.min(r - k) {
                    y = f(y);
                    q = mul_mod(q, x.abs_diff(y), n);
                }
                g = gcd(q, n);
                k += BATCH;
            }
            r *= 2;
        }
        if g == n {
            // The batch overshot: step through it one value at a time.
            loop {
                saved = f(saved);
                g = gcd(x.abs_diff(saved), n);
                if g > 1 {
                    break;
                }
            }
        }
        if g != n {
            return g;
        }
    }
    // Unreachable for an odd composite: some constant always splits it.
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclepool_job_sdk::host::{call_run, call_verify};

    fn factors_of(n: u64) -> Vec<u64> {
        decode_factors(&run(&encode_input(n)).unwrap()).unwrap()
    }

    #[test]
    fn factors_small_and_awkward_numbers() {
        assert_eq!(factors_of(1), Vec::<u64>::new());
        assert_eq!(factors_of(2), vec![2]);
        assert_eq!(factors_of(12), vec![2, 2, 3]);
        assert_eq!(factors_of(997 * 997), vec![997, 997]);
        assert_eq!(factors_of(1 << 63), vec![2; 63]);
        assert_eq!(
            factors_of(u64::MAX),
            vec![3, 5, 17, 257, 641, 65_537, 6_700_417]
        );
        // The largest prime below 2^64.
        assert_eq!(
            factors_of(18_446_744_073_709_551_557),
            vec![18_446_744_073_709_551_557]
        );
    }

    #[test]
    fn factors_products_of_large_primes() {
        let (p, q) = (4_294_967_279, 4_294_967_291); // the two largest primes below 2^32
        assert_eq!(factors_of(p * q), vec![p, q]);
        let r = 1_000_003;
        assert_eq!(factors_of(r * r * r), vec![r, r, r]);
        assert_eq!(
            factors_of(1_000_003 * 999_999_937),
            vec![1_000_003, 999_999_937]
        );
    }

    #[test]
    fn factorisations_check_out_over_a_range() {
        for n in (1u64..20_000).chain(u64::MAX - 500..=u64::MAX) {
            let output = run(&encode_input(n)).unwrap();
            assert!(verify(&encode_input(n), &output), "n = {n}");
        }
    }

    #[test]
    fn is_prime_matches_a_sieve() {
        let limit = 10_000usize;
        let mut composite = vec![false; limit];
        for i in 2..limit {
            if !composite[i] {
                for j in (i * i..limit).step_by(i) {
                    composite[j] = true;
                }
            }
            assert_eq!(is_prime(i as u64), !composite[i], "{i}");
        }
        // Strong pseudoprimes to several bases must still be found composite.
        assert!(!is_prime(3_215_031_751));
        assert!(!is_prime(3_825_123_056_546_413_051));
    }

    #[test]
    fn bad_inputs_get_error_codes() {
        assert_eq!(run(&[1, 2, 3]), Err(ERR_LENGTH));
        assert_eq!(run(&[0; 9]), Err(ERR_LENGTH));
        assert_eq!(run(&encode_input(0)), Err(ERR_ZERO));
    }

    #[test]
    fn verify_rejects_wrong_outputs() {
        let input = encode_input(360);
        assert!(verify(&input, &encode_factors(&[2, 2, 2, 3, 3, 5])));
        // Right product, but 4 and 9 are not prime.
        assert!(!verify(&input, &encode_factors(&[2, 4, 5, 9])));
        // Primes, wrong product.
        assert!(!verify(&input, &encode_factors(&[2, 2, 3, 3, 5])));
        // Not sorted.
        assert!(!verify(&input, &encode_factors(&[5, 2, 2, 2, 3, 3])));
        // Truncated, and a product that overflows.
        assert!(!verify(&input, &encode_factors(&[2, 2, 2, 3, 3, 5])[..47]));
        assert!(!verify(
            &encode_input(4),
            &encode_factors(&[2, 2, 1 << 62, 4])
        ));
        // n = 1 has the empty factorisation; n = 0 and bad inputs have none.
        assert!(verify(&encode_input(1), &[]));
        assert!(!verify(&encode_input(0), &[]));
        assert!(!verify(&[1, 2], &[]));
    }

    #[test]
    fn runs_through_the_abi() {
        let (p, q) = (4_294_967_279u64, 4_294_967_291u64);
        let input = encode_input(p * q);
        let output = call_run(run, &input).unwrap();
        assert_eq!(output, encode_factors(&[p, q]));
        assert_eq!(call_run(run, &[0; 3]), Err(ERR_LENGTH as i32));
        assert_eq!(call_verify(|i, o| verify(i, o).into(), &input, &output), 1);
        assert_eq!(
            call_verify(|i, o| verify(i, o).into(), &input, &output[..8]),
            0
        );
    }
}
