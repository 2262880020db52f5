//! The job's side of the ABI, in safe Rust: the buffers handed to the host, dispatch to the
//! job's functions, and the last output.
//!
//! The exports that [`job!`](crate::job) generates are thin wrappers over these functions.
//! Natively the same functions let a test play the host ([`call_run`], [`call_verify`]):
//! addresses are then native addresses, which is why everything here is `usize`.
//!
//! Memory handed to the host is always a `Vec<u8>` this module owns, so no raw pointer is
//! ever dereferenced: an address from the host is looked up among the live buffers and
//! turned into a slice of one of them, or rejected. A module instance is single-threaded,
//! and the state lives in `thread_local!` `Cell`s that are taken and put back, so there is
//! no shared mutable state, no `unsafe`, and no borrow that can fail.

use std::cell::Cell;

use crate::{ERR_BAD_ARGUMENTS, Verdict, run_error_code};

thread_local! {
    /// Buffers returned by [`alloc`] since the last [`run`] or [`verify`], which free them.
    static BUFFERS: Cell<Vec<Vec<u8>>> = const { Cell::new(Vec::new()) };
    /// The output of the last successful [`run`]; empty after a failed one.
    static OUTPUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Allocates `len` zeroed bytes for the host to write into and returns their address, or
/// `None` when memory is exhausted. The buffer lives until the next [`run`] or [`verify`]
/// returns. A zero-length request still gets a distinct, non-zero address.
pub fn alloc(len: usize) -> Option<usize> {
    let mut buffer = Vec::new();
    // Fallible, so that running out of the module's memory maximum returns 0 to the host
    // instead of trapping.
    buffer.try_reserve_exact(len.max(1)).ok()?;
    buffer.resize(len.max(1), 0);
    // The host writes these bytes from outside Rust, so the address is exposed.
    let addr = buffer.as_mut_ptr().expose_provenance();
    let mut buffers = BUFFERS.take();
    let pushed = buffers.try_reserve(1).is_ok();
    if pushed {
        buffers.push(buffer);
    }
    BUFFERS.set(buffers);
    pushed.then_some(addr)
}

/// Runs `job` on the `len` bytes at `addr` (inside a buffer from [`alloc`]), keeps its
/// output for [`output_addr`]/[`output_len`], and frees every allocated buffer.
///
/// Returns 0 on success, the job's error code, or a negative SDK code
/// ([`ERR_BAD_ARGUMENTS`], [`ERR_BAD_ERROR_CODE`](crate::ERR_BAD_ERROR_CODE)).
pub fn run(addr: usize, len: usize, job: impl FnOnce(&[u8]) -> Result<Vec<u8>, u32>) -> i32 {
    // Taking the buffers frees them when this call returns, whatever happens.
    let buffers = BUFFERS.take();
    OUTPUT.set(Vec::new());
    let Some(input) = find(&buffers, addr, len) else {
        return ERR_BAD_ARGUMENTS;
    };
    match job(input) {
        Ok(output) => {
            OUTPUT.set(output);
            0
        }
        Err(code) => run_error_code(code),
    }
}

/// Runs `check` on the input and output the host placed in buffers from [`alloc`], and
/// frees every allocated buffer. Returns the [`Verdict`] code, or [`ERR_BAD_ARGUMENTS`].
/// The last run's output is left alone.
pub fn verify(
    input_addr: usize,
    input_len: usize,
    output_addr: usize,
    output_len: usize,
    check: impl FnOnce(&[u8], &[u8]) -> Verdict,
) -> i32 {
    let buffers = BUFFERS.take();
    match (
        find(&buffers, input_addr, input_len),
        find(&buffers, output_addr, output_len),
    ) {
        (Some(input), Some(output)) => check(input, output).code(),
        _ => ERR_BAD_ARGUMENTS,
    }
}

/// The address of the last successful run's output (meaningless when it is empty).
pub fn output_addr() -> usize {
    with_output(|output| output.as_ptr().expose_provenance())
}

/// The length of the last successful run's output; 0 after a failed run.
pub fn output_len() -> usize {
    with_output(Vec::len)
}

/// Writes `bytes` at `addr`, which must lie inside one buffer from [`alloc`]: what the
/// host does through the module's memory. Returns false, writing nothing, otherwise.
pub fn write(addr: usize, bytes: &[u8]) -> bool {
    let mut buffers = BUFFERS.take();
    let written = match find_mut(&mut buffers, addr, bytes.len()) {
        Some(target) => {
            target.copy_from_slice(bytes);
            true
        }
        None => false,
    };
    BUFFERS.set(buffers);
    written
}

/// A copy of the last successful run's output: what the host reads out.
pub fn output() -> Vec<u8> {
    with_output(Vec::clone)
}

/// Plays the host for one `cyclepool_run`: allocate, copy in, run, copy out.
/// Returns the output, or the code `cyclepool_run` returned.
pub fn call_run(
    job: impl FnOnce(&[u8]) -> Result<Vec<u8>, u32>,
    input: &[u8],
) -> Result<Vec<u8>, i32> {
    let addr = alloc(input.len()).ok_or(ERR_BAD_ARGUMENTS)?;
    if !write(addr, input) {
        return Err(ERR_BAD_ARGUMENTS);
    }
    match run(addr, input.len(), job) {
        0 => Ok(output()),
        code => Err(code),
    }
}

/// Plays the host for one `cyclepool_verify`: allocate both, copy both in, verify.
/// Returns what `cyclepool_verify` returned.
pub fn call_verify(
    check: impl FnOnce(&[u8], &[u8]) -> Verdict,
    input: &[u8],
    output: &[u8],
) -> i32 {
    let (Some(input_addr), Some(output_addr)) = (alloc(input.len()), alloc(output.len())) else {
        return ERR_BAD_ARGUMENTS;
    };
    if !write(input_addr, input) || !write(output_addr, output) {
        return ERR_BAD_ARGUMENTS;
    }
    verify(input_addr, input.len(), output_addr, output.len(), check)
}

fn with_output<R>(f: impl FnOnce(&Vec<u8>) -> R) -> R {
    let output = OUTPUT.take();
    let result = f(&output);
    OUTPUT.set(output);
    result
}

/// The offset range of `len` bytes at `addr` inside `buffer`, if they lie wholly inside it.
fn range_in(buffer: &[u8], addr: usize, len: usize) -> Option<std::ops::Range<usize>> {
    let start = addr.checked_sub(buffer.as_ptr().addr())?;
    let end = start.checked_add(len)?;
    (end <= buffer.len()).then_some(start..end)
}

fn find(buffers: &[Vec<u8>], addr: usize, len: usize) -> Option<&[u8]> {
    if len == 0 {
        return Some(&[]);
    }
    buffers
        .iter()
        .find_map(|buffer| range_in(buffer, addr, len).map(|range| &buffer[range]))
}

fn find_mut(buffers: &mut [Vec<u8>], addr: usize, len: usize) -> Option<&mut [u8]> {
    if len == 0 {
        return Some(&mut []);
    }
    buffers
        .iter_mut()
        .find_map(|buffer| range_in(buffer, addr, len).map(|range| &mut buffer[range]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ERR_BAD_ERROR_CODE;

    fn reverse(input: &[u8]) -> Result<Vec<u8>, u32> {
        if input.is_empty() {
            return Err(7);
        }
        Ok(input.iter().rev().copied().collect())
    }

    fn check_reverse(input: &[u8], output: &[u8]) -> Verdict {
        (reverse(input).ok().as_deref() == Some(output)).into()
    }

    #[test]
    fn run_copies_in_and_out() {
        assert_eq!(call_run(reverse, b"abc"), Ok(b"cba".to_vec()));
        assert_eq!(output_len(), 3);
    }

    #[test]
    fn job_error_codes_pass_through_and_clear_the_output() {
        assert_eq!(call_run(reverse, b"ab"), Ok(b"ba".to_vec()));
        assert_eq!(call_run(reverse, b""), Err(7));
        assert_eq!(output_len(), 0);
    }

    #[test]
    fn error_codes_outside_the_job_range_are_reported_as_a_job_bug() {
        assert_eq!(call_run(|_| Err(0), b"x"), Err(ERR_BAD_ERROR_CODE));
        assert_eq!(call_run(|_| Err(u32::MAX), b"x"), Err(ERR_BAD_ERROR_CODE));
        assert_eq!(call_run(|_| Err(i32::MAX as u32), b"x"), Err(i32::MAX));
    }

    #[test]
    fn run_rejects_addresses_it_did_not_hand_out() {
        let addr = alloc(4).unwrap();
        assert!(write(addr, b"abcd"));
        assert!(
            !write(addr + 1, b"abcd"),
            "a write past the buffer must be refused"
        );
        assert_eq!(run(addr + 1, 4, reverse), ERR_BAD_ARGUMENTS);
        // The failed run freed the buffer, so the address is no longer valid either.
        assert_eq!(run(addr, 4, reverse), ERR_BAD_ARGUMENTS);
    }

    #[test]
    fn run_accepts_a_range_inside_a_buffer() {
        let addr = alloc(6).unwrap();
        assert!(write(addr, b"xxabcx"));
        assert_eq!(run(addr + 2, 3, reverse), 0);
        assert_eq!(output(), b"cba");
    }

    #[test]
    fn zero_length_allocations_are_distinct_and_non_zero() {
        let a = alloc(0).unwrap();
        let b = alloc(0).unwrap();
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(run(a, 0, |input| Ok(input.to_vec())), 0);
        assert_eq!(output_len(), 0);
    }

    #[test]
    fn verify_returns_the_verdict_codes() {
        assert_eq!(call_verify(check_reverse, b"abc", b"cba"), 1);
        assert_eq!(call_verify(check_reverse, b"abc", b"abc"), 0);
        assert_eq!(call_verify(|_, _| Verdict::Unknown, b"abc", b""), 2);
    }

    #[test]
    fn verify_leaves_the_last_output_alone() {
        assert_eq!(call_run(reverse, b"xy"), Ok(b"yx".to_vec()));
        assert_eq!(call_verify(check_reverse, b"abc", b"cba"), 1);
        assert_eq!(output(), b"yx");
    }

    #[test]
    fn alloc_reports_exhaustion_instead_of_aborting() {
        assert_eq!(alloc(usize::MAX), None);
    }
}
