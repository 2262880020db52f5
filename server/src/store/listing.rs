//! Read-only queries for the distributor dashboard: a job's failed units and its reports.

use cyclepool_shared::JobId;

use super::{ReportRecord, Store, StoreError, UnitKey, UnitRecord, UnitState, decode};

impl Store {
    /// The indexes of a job's failed units, in order, at most `limit` of them.
    pub fn failed_units(&self, job: JobId, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut failed = Vec::new();
        for entry in self.units.scan_prefix(job.0.to_be_bytes()) {
            let (key, value) = entry?;
            let unit: UnitRecord = decode("units", &value)?;
            if unit.state == UnitState::Failed {
                failed.push(UnitKey::from_bytes(&key)?.index);
                if failed.len() >= limit {
                    break;
                }
            }
        }
        Ok(failed)
    }

    /// The reports filed about a job, newest first, at most `limit` of them.
    pub fn reports_of_job(
        &self,
        job: JobId,
        limit: usize,
    ) -> Result<Vec<ReportRecord>, StoreError> {
        let mut reports = Vec::new();
        for value in self.reports.iter().values().rev() {
            let report: ReportRecord = decode("reports", &value?)?;
            if report.job == job {
                reports.push(report);
                if reports.len() >= limit {
                    break;
                }
            }
        }
        Ok(reports)
    }
}
