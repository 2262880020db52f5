//! The portal's due diligence in the store: the transparency log (appended in the same
//! transaction as the job changes it records) and volunteers' abuse reports.

use cyclepool_shared::Sha256Digest;
use cyclepool_shared::distributor::Resolution;
use cyclepool_shared::signing::SecretKey;
use cyclepool_shared::transparency::{LogEntry, LogEvent, LogHead};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::{JobRecord, ReportRecord, Store, StoreError, decode, encode, get, tx_error};

/// The `meta` key of the log's head (its last entry's position and digest).
const LOG_HEAD_KEY: &[u8] = b"log-head";

/// An abuse report as the admin's queue keeps it: the report and, once handled, what the
/// admin decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbuseRecord {
    pub report: ReportRecord,
    #[serde(default)]
    pub resolution: Option<Resolution>,
}

impl Store {
    /// Writes `jobs` and appends one log entry per event, signed by `key`, in one
    /// transaction: the log never misses a change the store made, nor records one it did
    /// not. A `published` event sets its job's `log_seq` (when the job is among `jobs`).
    /// Returns the records as written and the new entries.
    pub fn commit_logged(
        &self,
        jobs: Vec<JobRecord>,
        events: Vec<LogEvent>,
        at_ms: u64,
        key: &SecretKey,
    ) -> Result<(Vec<JobRecord>, Vec<LogEntry>), StoreError> {
        (&self.meta, &self.log, &self.jobs)
            .transaction(|(meta, log, jobs_tree)| {
                let head: Option<LogHead> = get(meta, "meta", LOG_HEAD_KEY)?;
                let (mut seq, mut prev) = match head {
                    Some(head) => (head.seq + 1, head.sha256),
                    None => (0, Sha256Digest::from_bytes([0; 32])),
                };
                let mut entries = Vec::with_capacity(events.len());
                let mut records = jobs.clone();
                for event in &events {
                    if let LogEvent::Published { job, .. } = event
                        && let Some(record) = records.iter_mut().find(|r| r.id == *job)
                    {
                        record.log_seq = Some(seq);
                    }
                    let entry = LogEntry::sign(seq, prev, at_ms, event.clone(), key);
                    log.insert(&seq.to_be_bytes(), encode(&entry))?;
                    prev = entry.digest();
                    seq += 1;
                    entries.push(entry);
                }
                if let Some(last) = entries.last() {
                    meta.insert(LOG_HEAD_KEY, encode(&last.head()))?;
                }
                for record in &records {
                    jobs_tree.insert(&record.id.0.to_be_bytes(), encode(record))?;
                }
                Ok((records, entries))
            })
            .map_err(tx_error)
    }

    /// Up to `limit` log entries from position `from` on.
    pub fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        self.log
            .range(from.to_be_bytes()..)
            .values()
            .take(limit)
            .map(|value| decode("log", &value?))
            .collect()
    }

    /// How many entries the log holds.
    pub fn log_size(&self) -> Result<u64, StoreError> {
        let head: Option<LogHead> = self
            .meta
            .get(LOG_HEAD_KEY)?
            .map(|value| decode("meta", &value))
            .transpose()?;
        Ok(head.map_or(0, |head| head.seq + 1))
    }

    /// Abuse reports, newest first, at most `limit`; only unresolved ones with `open_only`.
    pub fn abuse_reports(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<(u64, AbuseRecord)>, StoreError> {
        let mut reports = Vec::new();
        for entry in self.abuse.iter().rev() {
            let (key, value) = entry?;
            let record: AbuseRecord = decode("abuse", &value)?;
            if open_only && record.resolution.is_some() {
                continue;
            }
            reports.push((report_id(&key)?, record));
            if reports.len() >= limit {
                break;
            }
        }
        Ok(reports)
    }

    /// One abuse report, if it exists.
    pub fn abuse_report(&self, id: u64) -> Result<Option<AbuseRecord>, StoreError> {
        self.abuse
            .get(id.to_be_bytes())?
            .map(|value| decode("abuse", &value))
            .transpose()
    }

    /// Records the admin's decision on an abuse report.
    pub fn resolve_abuse_report(&self, id: u64, record: &AbuseRecord) -> Result<(), StoreError> {
        self.abuse.insert(id.to_be_bytes(), encode(record))?;
        Ok(())
    }
}

fn report_id(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        tree: "abuse",
        reason: format!("a key of {} bytes", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use cyclepool_shared::JobId;
    use cyclepool_shared::manifest::{PortalKey, PortalKeys};
    use cyclepool_shared::transparency::verify_chain;

    use super::*;

    #[test]
    fn logged_commits_chain_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed(&[5; 32]);
        let keys = PortalKeys {
            keys: vec![PortalKey::new(&key, 0, u64::MAX, None)],
            revoked: Vec::new(),
        };
        let revoked = |job: u64| LogEvent::Revoked {
            job: JobId(job),
            reason: format!("reason {job}"),
        };
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.log_size().unwrap(), 0);
            let (_, first) = store
                .commit_logged(Vec::new(), vec![revoked(1), revoked(2)], 10, &key)
                .unwrap();
            assert_eq!(first.len(), 2);
            store
                .commit_logged(Vec::new(), vec![revoked(3)], 11, &key)
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.log_size().unwrap(), 3);
        let entries = store.log_entries(0, 100).unwrap();
        let head = verify_chain(&entries, None, &keys).unwrap().unwrap();
        assert_eq!(head.seq, 2);
        assert_eq!(store.log_entries(1, 1).unwrap(), entries[1..2].to_vec());
        // A page starting past the end is empty.
        assert!(store.log_entries(3, 10).unwrap().is_empty());
    }
}
