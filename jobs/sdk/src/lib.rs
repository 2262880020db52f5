//! The Cyclepool job SDK: write a job as a plain Rust function, add [`job!`], and build a
//! WebAssembly module that follows the job ABI (`docs/JOB-ABI.md`).
//!
//! ```ignore
//! /// Errors: 1 = the input is empty.
//! pub fn run(input: &[u8]) -> Result<Vec<u8>, u32> {
//!     if input.is_empty() {
//!         return Err(1);
//!     }
//!     Ok(input.iter().rev().copied().collect())
//! }
//!
//! pub fn verify(input: &[u8], output: &[u8]) -> bool {
//!     run(input).is_ok_and(|expected| expected == output)
//! }
//!
//! cyclepool_job_sdk::job!(run = run, verify = verify);
//! ```
//!
//! The macro only generates the exports when compiling for `wasm32`; natively the job is
//! a set of ordinary functions to test with `cargo test`. [`host`] drives a job through
//! the same allocation and dispatch code the exports use, so tests cover that too.

pub mod host;

/// The ABI version this SDK implements, returned by the `cyclepool_abi_version` export.
pub const ABI_VERSION: i32 = 1;

/// The largest linear memory a job module may declare, in bytes (1024 pages of 64 KiB).
pub const MAX_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// `cyclepool_run`/`cyclepool_verify` result: the pointer and length the host passed do
/// not lie inside one buffer returned by `cyclepool_alloc` since the last run or verify.
pub const ERR_BAD_ARGUMENTS: i32 = -1;

/// `cyclepool_run` result: the job returned an error code outside `1..=i32::MAX`, which
/// is a bug in the job, not a statement about the input.
pub const ERR_BAD_ERROR_CODE: i32 = -2;

/// A job's entry point: the output for `input`, or an error code in `1..=i32::MAX` that
/// says the input is invalid (the job documents what each code means).
pub type RunFn = fn(&[u8]) -> Result<Vec<u8>, u32>;

/// What a job's `verify` says about an output, as returned by `cyclepool_verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The output is right for the input (returned as 1).
    Right,
    /// The output is wrong for the input, or malformed (returned as 0).
    Wrong,
    /// The output is well formed but cannot be checked cheaply; the host must validate it
    /// by replication instead (returned as 2).
    Unknown,
}

impl Verdict {
    /// The value `cyclepool_verify` returns for this verdict.
    pub const fn code(self) -> i32 {
        match self {
            Self::Wrong => 0,
            Self::Right => 1,
            Self::Unknown => 2,
        }
    }
}

impl From<bool> for Verdict {
    fn from(right: bool) -> Self {
        if right { Self::Right } else { Self::Wrong }
    }
}

/// Turns a job's error code into the value `cyclepool_run` returns.
pub fn run_error_code(code: u32) -> i32 {
    match i32::try_from(code) {
        Ok(code) if code > 0 => code,
        _ => ERR_BAD_ERROR_CODE,
    }
}

/// Generates the job ABI exports around a job's functions.
///
/// `job!(run = path)` or `job!(run = path, verify = path)`, where `run` is a [`RunFn`] and
/// `verify` is `fn(&[u8], &[u8]) -> V` with `V` either `bool` or [`Verdict`]. Use it once
/// per crate, at the top level of a `cdylib` crate.
#[macro_export]
macro_rules! job {
    (run = $run:path $(,)?) => {
        $crate::job!(@run $run);
    };
    (run = $run:path, verify = $verify:path $(,)?) => {
        $crate::job!(@run $run);
        // Natively this checks the signature and keeps `verify` alive for the dead-code lint.
        const _: fn(&[u8], &[u8]) -> $crate::Verdict = |input, output| $verify(input, output).into();
        #[cfg(target_arch = "wasm32")]
        // `no_mangle` counts as unsafe code: the export names must be exact and unique.
        #[allow(unsafe_code)]
        const _: () = {
            #[unsafe(no_mangle)]
            pub extern "C" fn cyclepool_verify(
                input_ptr: i32,
                input_len: i32,
                output_ptr: i32,
                output_len: i32,
            ) -> i32 {
                $crate::host::verify(
                    $crate::__private::addr(input_ptr),
                    $crate::__private::addr(input_len),
                    $crate::__private::addr(output_ptr),
                    $crate::__private::addr(output_len),
                    |input, output| $verify(input, output).into(),
                )
            }
        };
    };
    (@run $run:path) => {
        // Natively this checks the signature and keeps `run` alive for the dead-code lint.
        const _: $crate::RunFn = $run;
        #[cfg(target_arch = "wasm32")]
        // `no_mangle` counts as unsafe code: the export names must be exact and unique.
        #[allow(unsafe_code)]
        const _: () = {
            #[unsafe(no_mangle)]
            pub extern "C" fn cyclepool_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn cyclepool_alloc(len: i32) -> i32 {
                match usize::try_from(len) {
                    Ok(len) => $crate::host::alloc(len).map_or(0, $crate::__private::wasm_ptr),
                    Err(_) => 0,
                }
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn cyclepool_run(input_ptr: i32, input_len: i32) -> i32 {
                $crate::host::run(
                    $crate::__private::addr(input_ptr),
                    $crate::__private::addr(input_len),
                    $run,
                )
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn cyclepool_output_ptr() -> i32 {
                $crate::__private::wasm_ptr($crate::host::output_addr())
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn cyclepool_output_len() -> i32 {
                $crate::__private::wasm_ptr($crate::host::output_len())
            }
        };
    };
}

/// Conversions used by the code [`job!`] generates; not part of the API.
#[doc(hidden)]
pub mod __private {
    /// A wasm32 `i32` pointer or length as an address. The ABI's values are unsigned.
    pub fn addr(value: i32) -> usize {
        value as u32 as usize
    }

    /// An address or length as a wasm32 `i32`. On wasm32 `usize` is 32 bits, so this is
    /// exact there; it is never called with native addresses.
    pub fn wasm_ptr(value: usize) -> i32 {
        value as u32 as i32
    }
}
