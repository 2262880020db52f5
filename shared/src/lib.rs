//! Plain data and pure logic shared by the Cyclepool server and the browser client.
//!
//! Nothing here does I/O: the crate builds for `wasm32-unknown-unknown` and native alike,
//! so the server and the web client agree on the wire format by construction.

pub mod abi;
pub mod distributor;
pub mod error;
pub mod hex;
pub mod ids;
pub mod json;
pub mod manifest;
pub mod protocol;
pub mod range;
pub mod signing;
pub mod transparency;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use ids::{JobId, KeyId, LeaseId, Nonce, PublicKey, Sha256Digest, Signature, VolunteerId};
