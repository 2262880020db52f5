//! What the fuzz targets share: the server's module upload check, compiled in from its source,
//! and the JSON round-trip check every decoded wire type must pass.
//!
//! The targets live in `fuzz_targets/`; `cargo xtask fuzz` (stable Rust) or `cargo fuzz run`
//! builds and runs them. See `README.md` beside this crate.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The server's upload check, from its own source file: it depends only on `cyclepool-shared`,
/// `wasmparser` and `thiserror`, and depending on the whole server (wasmtime, sled, axum) would
/// make the instrumented build take many minutes. `bench/src/common.rs` shares it the same way.
#[path = "../../server/src/module_check.rs"]
pub mod module_check;

/// Decodes `bytes` as JSON of `T`; when that succeeds, checks that the value re-encodes to JSON
/// that decodes to the same value and re-encodes to the same text (the encoding is canonical),
/// and returns it.
///
/// Signatures are checked over bytes that one side encodes and the other decodes (a job's
/// policy in its declaration, log events), so a value that changes on the way through JSON is a
/// verification failure waiting to happen, not a cosmetic difference.
///
/// # Panics
///
/// When the round trip changes the value or the text: that is the finding.
pub fn round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value: T = serde_json::from_slice(bytes).ok()?;
    let text = serde_json::to_string(&value).expect("a decoded value encodes");
    let again: T = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{value:?} encodes to {text}, which does not decode: {err}"));
    assert_eq!(again, value, "the value changed through {text}");
    let text_again = serde_json::to_string(&again).expect("a decoded value encodes");
    assert_eq!(text_again, text, "the encoding is not canonical");
    Some(value)
}

/// [`round_trip`] for every type in the list, each on the same bytes.
#[macro_export]
macro_rules! round_trip_all {
    ($bytes:expr; $($ty:ty),+ $(,)?) => {
        $( let _ = $crate::round_trip::<$ty>($bytes); )+
    };
}
