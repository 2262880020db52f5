//! What the bench binaries that drive the real server share: the job module they upload
//! (output = input reversed, no `verify` export), its native twin, and reading JSON answers.

use anyhow::{Context as _, bail};

// The API tests' module, so that the benches upload exactly what the tests check.
#[path = "../../server/tests/api/test_module.rs"]
#[allow(dead_code)] // the tests' input helpers are not needed here
mod test_module;

/// What the module computes, natively: the input reversed.
pub use test_module::expected_output as correct_output;

/// The job module's text: output = input reversed, and deliberately no `cyclepool_verify`.
pub fn reverse_no_verify_wat() -> String {
    test_module::reverse_wat(false)
}

/// Reads a successful JSON answer, or fails with the status and body.
pub async fn json_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{what}: reading the answer"))?;
    if !status.is_success() {
        bail!("{what}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: parsing the answer {text}"))
}
