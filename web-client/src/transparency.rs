//! Checks a job against the portal's public transparency log before anything of it runs:
//! the run of entries from the job's publication to the log's head must be a valid chain
//! signed by a pinned portal key, the publication must name the manifest's module, inputs and
//! declaring key, and no later entry may revoke the job or that key. A portal (or anyone
//! between) serving a withdrawn job's old manifest is refused here.

use cyclepool_shared::JobId;
use cyclepool_shared::json;
use cyclepool_shared::manifest::{Manifest, PortalKeys};
use cyclepool_shared::transparency::{LogEntry, LogPage, check_job, verify_chain};

use crate::http::{self, HttpError};

/// How many pages past the job's publication a client reads before giving up: a job
/// published 20,000 entries ago is checked against the first 20,000 after it, and refused if
/// the head lies further (the portal would be logging far more than it publishes).
const MAX_PAGES: usize = 20;

/// Why the log check did not pass.
pub enum LogCheck {
    /// The log refuses the job (or is not a valid log): do not run it.
    Refused(String),
    /// The log could not be fetched; worth trying again later.
    Unavailable(HttpError),
}

/// The first page of a job's run of entries: from its publication on.
pub async fn first_page(job: JobId) -> Result<LogPage, HttpError> {
    http::get_json(&format!("/api/v1/log/jobs/{job}")).await
}

/// Checks `manifest` against the log, given the job's [`first_page`]; returns the job's
/// publication entry number.
pub async fn check(
    manifest: &Manifest,
    trusted: &PortalKeys,
    first: Result<LogPage, HttpError>,
) -> Result<u64, LogCheck> {
    let job = manifest.job_id;
    let first: LogPage = match first {
        Ok(page) => page,
        Err(HttpError::Refused { status: 404, .. }) => {
            return Err(LogCheck::Refused(format!(
                "job {job} has no publication in the portal's public log"
            )));
        }
        Err(err) => return Err(LogCheck::Unavailable(err)),
    };
    let mut size = first.size;
    let mut entries: Vec<LogEntry> = first.entries;
    for _ in 0..MAX_PAGES {
        let next = entries.last().map_or(0, |entry| entry.seq + 1);
        if next >= size {
            break;
        }
        let page: LogPage = http::get_json(&format!("/api/v1/log?from={next}"))
            .await
            .map_err(LogCheck::Unavailable)?;
        if page.entries.is_empty() {
            break;
        }
        size = page.size;
        entries.extend(page.entries);
    }
    if entries.last().is_some_and(|entry| entry.seq + 1 < size) {
        return Err(LogCheck::Refused(format!(
            "job {job}: the public log has more entries after its publication than a client checks"
        )));
    }
    verify_chain(&entries, None, trusted)
        .map_err(|err| LogCheck::Refused(format!("job {job}: the public log is invalid: {err}")))?;
    check_job(manifest, &entries).map_err(|err| LogCheck::Refused(err.to_string()))
}

/// Verifies a run of log entries (JSON array) with the pinned keys (JSON); `after` is the
/// head (JSON, or empty) the run continues. Returns the new head as JSON.
pub fn verify_entries(entries: &str, keys: &str, after: &str) -> Result<String, String> {
    let entries: Vec<LogEntry> =
        json::from_str(entries).map_err(|err| format!("log entries: {err}"))?;
    let keys: PortalKeys = json::from_str(keys).map_err(|err| format!("keys: {err}"))?;
    let after = if after.trim().is_empty() {
        None
    } else {
        Some(json::from_str(after).map_err(|err| format!("head: {err}"))?)
    };
    let head = verify_chain(&entries, after, &keys).map_err(|err| err.to_string())?;
    Ok(json::to_string(&head))
}
