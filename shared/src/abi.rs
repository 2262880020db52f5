//! The job ABI: the names, types and limits every job module must meet.
//!
//! `docs/JOB-ABI.md` explains it for distributors; the SDK generates it; the server's upload
//! check, the server's sandbox and the browser's sandbox all read these constants.

/// The ABI version a module reports from [`VERSION_EXPORT`].
pub const ABI_VERSION: i32 = 1;

/// The module's linear memory.
pub const MEMORY_EXPORT: &str = "memory";
/// `() -> i32`: the ABI version the module was built for.
pub const VERSION_EXPORT: &str = "cyclepool_abi_version";
/// `(len: i32) -> i32`: a pointer to `len` writable bytes, or 0.
pub const ALLOC_EXPORT: &str = "cyclepool_alloc";
/// `(input_ptr: i32, input_len: i32) -> i32`: 0 on success, else the job's error code.
pub const RUN_EXPORT: &str = "cyclepool_run";
/// `() -> i32`: where the last successful run's output starts.
pub const OUTPUT_PTR_EXPORT: &str = "cyclepool_output_ptr";
/// `() -> i32`: how long the last successful run's output is.
pub const OUTPUT_LEN_EXPORT: &str = "cyclepool_output_len";
/// Optional, `(input_ptr, input_len, output_ptr, output_len: i32) -> i32`: [`VERIFY_VALID`],
/// [`VERIFY_INVALID`], or [`VERIFY_UNDECIDED`] when the output cannot be checked cheaply.
pub const VERIFY_EXPORT: &str = "cyclepool_verify";

/// `cyclepool_verify`: the output is right for the input.
pub const VERIFY_VALID: i32 = 1;
/// `cyclepool_verify`: the output is wrong (or malformed).
pub const VERIFY_INVALID: i32 = 0;
/// `cyclepool_verify`: this output cannot be checked cheaply (for example "not found" in a
/// search); validate it by replication instead.
pub const VERIFY_UNDECIDED: i32 = 2;

/// The most linear memory a module may declare as its maximum: 1024 pages of 64 KiB (64 MiB).
pub const MAX_MEMORY_PAGES: u64 = 1024;
/// The largest module the portal accepts, in bytes.
pub const MAX_MODULE_BYTES: usize = 8 * 1024 * 1024;
/// The largest input one unit may have, in bytes.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
