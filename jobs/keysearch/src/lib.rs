//! Cyclepool example job: search a range of 64-bit keys for one whose SHA-256 starts with a
//! target bit prefix, in the style of distributed.net's key searches, with a verify that
//! needs one hash.
//!
//! A key is hashed as its 8 little-endian bytes: `SHA-256(key.to_le_bytes())`.
//!
//! - **Input** (little-endian): `start: u64`, `count: u64`, `prefix_bits: u16`, then the
//!   target prefix as `ceil(prefix_bits / 8)` bytes. The keys searched are
//!   `start ..= start + count - 1`; `count >= 1`, the range must not pass `u64::MAX`,
//!   `prefix_bits` is in `1..=256`, and the bits of the last target byte past
//!   `prefix_bits` must be zero (so every search has exactly one encoding).
//! - **Output**: `[1]` followed by the key as 8 little-endian bytes, for the *first* key in
//!   the range whose hash starts with the prefix; or `[0]` when no key in the range has.
//! - **Errors**: [`ERR_LENGTH`], [`ERR_PREFIX_BITS`], [`ERR_RANGE`], [`ERR_PADDING`].
//! - **Verify**: for `[1] key`, whether the key lies in the range and its hash has the
//!   prefix: [`Verdict::Right`] or [`Verdict::Wrong`]. It does not check that no earlier
//!   key also matches; any matching key is a solution. For `[0]` it answers
//!   [`Verdict::Unknown`]: proving that nothing matches means redoing the search, so "not
//!   found" must be validated by replication. Anything else is [`Verdict::Wrong`].

use cyclepool_job_sdk::Verdict;
use sha2::{Digest, Sha256};

/// Error code: the input is shorter than its header, or its length does not match
/// `prefix_bits`.
pub const ERR_LENGTH: u32 = 1;
/// Error code: `prefix_bits` is not in `1..=256`.
pub const ERR_PREFIX_BITS: u32 = 2;
/// Error code: `count` is 0, or the range passes `u64::MAX`.
pub const ERR_RANGE: u32 = 3;
/// Error code: bits of the target past `prefix_bits` are not zero.
pub const ERR_PADDING: u32 = 4;

const HEADER_LEN: usize = 18;

/// A search: the job's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    pub start: u64,
    pub count: u64,
    pub prefix_bits: u16,
    /// Exactly `ceil(prefix_bits / 8)` bytes, with the bits past `prefix_bits` zero.
    pub target: Vec<u8>,
}

impl Search {
    /// The search for the first `prefix_bits` bits of `hash` among `count` keys from `start`.
    /// `prefix_bits` must be at most `8 * hash.len()`.
    pub fn for_prefix_of(hash: &[u8], prefix_bits: u16, start: u64, count: u64) -> Self {
        let mut target = hash[..usize::from(prefix_bits).div_ceil(8)].to_vec();
        if let Some(last) = target.last_mut() {
            *last &= padding_mask(prefix_bits);
        }
        Self {
            start,
            count,
            prefix_bits,
            target,
        }
    }

    /// The job input for this search.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.target.len());
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.prefix_bits.to_le_bytes());
        out.extend_from_slice(&self.target);
        out
    }

    /// Decodes and validates a job input; the error is the job's error code.
    pub fn decode(input: &[u8]) -> Result<Self, u32> {
        if input.len() < HEADER_LEN {
            return Err(ERR_LENGTH);
        }
        let (header, target) = input.split_at(HEADER_LEN);
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let (start, count) = (u64_at(0), u64_at(8));
        let prefix_bits = u16::from_le_bytes([header[16], header[17]]);
        if !(1..=256).contains(&prefix_bits) {
            return Err(ERR_PREFIX_BITS);
        }
        if target.len() != usize::from(prefix_bits).div_ceil(8) {
            return Err(ERR_LENGTH);
        }
        if count == 0 || start.checked_add(count - 1).is_none() {
            return Err(ERR_RANGE);
        }
        if target
            .last()
            .is_some_and(|&last| last & !padding_mask(prefix_bits) != 0)
        {
            return Err(ERR_PADDING);
        }
        Ok(Self {
            start,
            count,
            prefix_bits,
            target: target.to_vec(),
        })
    }

    /// The last key in the range (the search must be valid).
    fn end(&self) -> u64 {
        self.start + (self.count - 1)
    }

    /// Whether `key`'s hash starts with the target prefix.
    pub fn matches(&self, key: u64) -> bool {
        let hash = hash_key(key);
        let full = usize::from(self.prefix_bits / 8);
        let mask = padding_mask(self.prefix_bits);
        hash[..full] == self.target[..full]
            && (mask == 0xff || hash[full] & mask == self.target[full])
    }

    /// The first key in the range that matches, if any.
    pub fn first_match(&self) -> Option<u64> {
        (self.start..=self.end()).find(|&key| self.matches(key))
    }
}

/// The mask of the bits of the last target byte that belong to the prefix.
fn padding_mask(prefix_bits: u16) -> u8 {
    match prefix_bits % 8 {
        0 => 0xff,
        rest => 0xff << (8 - rest),
    }
}

/// The SHA-256 of a key, as the job defines it.
pub fn hash_key(key: u64) -> [u8; 32] {
    Sha256::digest(key.to_le_bytes()).into()
}

/// The job output for a search result.
pub fn encode_output(found: Option<u64>) -> Vec<u8> {
    match found {
        Some(key) => [&[1][..], &key.to_le_bytes()].concat(),
        None => vec![0],
    }
}

/// The job's entry point: see the crate documentation for the encodings.
pub fn run(input: &[u8]) -> Result<Vec<u8>, u32> {
    Ok(encode_output(Search::decode(input)?.first_match()))
}

/// Checks a claimed result with one hash; see the crate documentation.
pub fn verify(input: &[u8], output: &[u8]) -> Verdict {
    let Ok(search) = Search::decode(input) else {
        return Verdict::Wrong;
    };
    match output {
        [0] => Verdict::Unknown,
        [1, key @ ..] => match <[u8; 8]>::try_from(key).map(u64::from_le_bytes) {
            Ok(key) => (search.start <= key && key <= search.end() && search.matches(key)).into(),
            Err(_) => Verdict::Wrong,
        },
        _ => Verdict::Wrong,
    }
}

cyclepool_job_sdk::job!(run = run, verify = verify);

#[cfg(test)]
mod tests {
    use super::*;
    use cyclepool_job_sdk::host::{call_run, call_verify};

    /// A plain bit-by-bit reading of the rule, to check the byte-wise one against.
    fn naive_first_match(search: &Search) -> Option<u64> {
        let bit = |bytes: &[u8], i: usize| bytes[i / 8] >> (7 - i % 8) & 1;
        (search.start..=search.start + (search.count - 1)).find(|&key| {
            let hash = hash_key(key);
            (0..usize::from(search.prefix_bits)).all(|i| bit(&hash, i) == bit(&search.target, i))
        })
    }

    #[test]
    fn hashes_keys_as_little_endian_bytes() {
        // SHA-256 of eight zero bytes.
        let expected = "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc";
        let hex: String = hash_key(0).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn finds_the_first_matching_key() {
        let key = 1_000_000_007;
        for bits in [1, 7, 8, 13, 16, 20] {
            let search = Search::for_prefix_of(&hash_key(key), bits, key - 3_000, 6_000);
            let found = search.first_match();
            assert_eq!(found, naive_first_match(&search), "{bits} bits");
            let found = found.unwrap();
            assert!(found <= key);
            assert_eq!(run(&search.encode()), Ok(encode_output(Some(found))));
        }
    }

    #[test]
    fn reports_not_found() {
        let search = Search::for_prefix_of(&hash_key(42), 32, 43, 2_000);
        assert_eq!(naive_first_match(&search), None);
        assert_eq!(run(&search.encode()), Ok(vec![0]));
    }

    #[test]
    fn searches_up_to_the_last_key() {
        let search = Search::for_prefix_of(&hash_key(u64::MAX), 24, u64::MAX - 9, 10);
        assert_eq!(run(&search.encode()), Ok(encode_output(Some(u64::MAX))));
    }

    #[test]
    fn bad_inputs_get_error_codes() {
        let good = Search::for_prefix_of(&hash_key(5), 12, 0, 100);
        assert_eq!(Search::decode(&good.encode()), Ok(good.clone()));
        let mut short = good.encode();
        short.pop();
        assert_eq!(run(&short), Err(ERR_LENGTH));
        assert_eq!(run(&good.encode()[..10]), Err(ERR_LENGTH));
        for (search, code) in [
            (
                Search {
                    prefix_bits: 0,
                    target: vec![],
                    ..good.clone()
                },
                ERR_PREFIX_BITS,
            ),
            (
                Search {
                    prefix_bits: 257,
                    target: vec![0; 33],
                    ..good.clone()
                },
                ERR_PREFIX_BITS,
            ),
            (
                Search {
                    count: 0,
                    ..good.clone()
                },
                ERR_RANGE,
            ),
            (
                Search {
                    start: u64::MAX,
                    count: 2,
                    ..good.clone()
                },
                ERR_RANGE,
            ),
            (
                Search {
                    target: vec![good.target[0], 0x01],
                    ..good.clone()
                },
                ERR_PADDING,
            ),
        ] {
            assert_eq!(run(&search.encode()), Err(code), "{search:?}");
        }
        // The whole hash as a prefix is allowed.
        let full = Search::for_prefix_of(&hash_key(9), 256, 9, 1);
        assert_eq!(run(&full.encode()), Ok(encode_output(Some(9))));
    }

    #[test]
    fn verify_confirms_found_keys_and_rejects_wrong_ones() {
        let key = 77_777;
        let search = Search::for_prefix_of(&hash_key(key), 16, key - 100, 200);
        let input = search.encode();
        let output = run(&input).unwrap();
        assert_eq!(verify(&input, &output), Verdict::Right);
        // A key outside the range, even one that matches, is wrong.
        let outside = Search {
            start: key + 1,
            ..search.clone()
        }
        .encode();
        assert_eq!(verify(&outside, &encode_output(Some(key))), Verdict::Wrong);
        // A key in range whose hash does not match is wrong.
        let wrong_key = (key - 100..key).find(|&k| !search.matches(k)).unwrap();
        assert_eq!(
            verify(&input, &encode_output(Some(wrong_key))),
            Verdict::Wrong
        );
        // Malformed outputs and inputs are wrong.
        assert_eq!(verify(&input, &output[..8]), Verdict::Wrong);
        assert_eq!(verify(&input, &[2]), Verdict::Wrong);
        assert_eq!(verify(&input, &[]), Verdict::Wrong);
        assert_eq!(verify(&input[..5], &output), Verdict::Wrong);
        // "Not found" cannot be checked cheaply.
        assert_eq!(verify(&input, &[0]), Verdict::Unknown);
    }

    #[test]
    fn runs_through_the_abi() {
        let search = Search::for_prefix_of(&hash_key(3), 8, 0, 1_000);
        let input = search.encode();
        let output = call_run(run, &input).unwrap();
        assert_eq!(output, encode_output(naive_first_match(&search)));
        assert_eq!(call_verify(verify, &input, &output), 1);
        assert_eq!(call_verify(verify, &input, &[0]), 2);
        assert_eq!(call_verify(verify, &input, &[1; 9]), 0);
        assert_eq!(call_run(run, &[]), Err(ERR_LENGTH as i32));
    }
}
