//! `cyclepool-server audit`: checks a stopped server's store offline.
//!
//! It re-runs every stored result's job module natively (in the wasmi sandbox) and compares
//! outputs, checks the volunteer's signature on every result, and checks the invariants that
//! crash safety promises: every unit of every job is present (a range job's units never leased
//! are made from its range, not stored), every done unit has its result, every leased unit has
//! its active lease, and every volunteer's credit is exactly its credited results, each
//! counted once.

use std::collections::HashMap;

use cyclepool_shared::signing::{self, Purpose, result_message};
use cyclepool_shared::{JobId, LeaseId, PublicKey, Sha256Digest, VolunteerId};
use serde::Serialize;

use crate::sandbox::{CompiledModule, Sandbox, SandboxLimits};
use crate::store::{LeaseState, Store, StoreError, UnitKey, UnitState};

/// What the audit found.
#[derive(Debug, Serialize)]
pub struct AuditReport {
    /// True when there are no problems and no mismatches.
    pub ok: bool,
    pub jobs: Vec<JobAudit>,
    /// Invariant violations, one line each.
    pub problems: Vec<String>,
    /// Every stored result, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ResultEntry>>,
}

/// One job's tally.
#[derive(Debug, Default, Serialize)]
pub struct JobAudit {
    pub job_id: u64,
    pub title: String,
    /// Units the job was created with.
    pub units: u64,
    /// Units present: stored, or (a range job's never leased) made from the range.
    pub units_present: u64,
    /// Units stored (a range job stores a unit once it is first leased).
    pub units_stored: u64,
    /// Open units with no lease out.
    pub pending: u64,
    /// Open units with at least one lease out.
    pub leased: u64,
    /// Decided units (a quorum agreed).
    pub done: u64,
    /// Units given up on.
    pub failed: u64,
    /// Done units whose stored output equals a native run of the job's module.
    pub verified: u64,
    /// Done units whose result's signature verifies with its volunteer's key.
    pub signatures_verified: u64,
    /// Done units whose stored output does not.
    pub mismatches: Vec<u64>,
}

/// One stored result.
#[derive(Debug, Serialize)]
pub struct ResultEntry {
    pub job_id: u64,
    pub unit: u64,
    pub lease_id: LeaseId,
    pub output_sha256: Sha256Digest,
}

/// Audits the whole store.
pub fn audit(store: &Store, list_results: bool) -> Result<AuditReport, StoreError> {
    let jobs = store.jobs()?;
    let sandbox = Sandbox::new(SandboxLimits::for_run());
    let mut problems = Vec::new();
    let mut modules: HashMap<JobId, CompiledModule> = HashMap::new();
    for job in &jobs {
        let compiled = match store.module(job.module_sha256)? {
            Some(bytes) => sandbox.compile(&bytes).map_err(|err| err.to_string()),
            None => Err("module missing from the store".to_owned()),
        };
        match compiled {
            Ok(module) => {
                modules.insert(job.id, module);
            }
            Err(reason) => problems.push(format!(
                "job {}: module {}: {reason}",
                job.id, job.module_sha256
            )),
        }
    }
    let mut tallies: HashMap<JobId, JobAudit> = jobs
        .iter()
        .map(|job| {
            let tally = JobAudit {
                job_id: job.id.0,
                title: job.title.clone(),
                units: job.units,
                ..JobAudit::default()
            };
            (job.id, tally)
        })
        .collect();
    // Credit each volunteer should have: its replicas marked credited, (results, compute ms).
    let mut credited: HashMap<VolunteerId, (u64, u64)> = HashMap::new();
    for entry in store.units() {
        let (key, unit) = entry?;
        let Some(tally) = tallies.get_mut(&key.job) else {
            problems.push(format!(
                "unit {} belongs to missing job {}",
                key.index, key.job
            ));
            continue;
        };
        if key.index >= tally.units {
            problems.push(format!(
                "job {} unit {}: past the job's {} units",
                key.job, key.index, tally.units
            ));
        }
        tally.units_stored += 1;
        for replica in unit.replicas.iter().filter(|replica| replica.credited) {
            let account = credited.entry(replica.volunteer).or_default();
            account.0 += 1;
            account.1 = account.1.saturating_add(replica.compute_ms);
        }
        if Sha256Digest::of(&unit.input) != unit.input_sha256 {
            problems.push(format!(
                "job {} unit {}: input does not match its digest",
                key.job, key.index
            ));
        }
        // Every lease the unit counts as out must be an active lease on this unit.
        for (lease, _) in &unit.active {
            match store.lease(*lease)? {
                Some(record) if record.state == LeaseState::Active && record.unit == key => {}
                other => problems.push(format!(
                    "job {} unit {}: leased under {lease}, but that lease is {other:?}",
                    key.job, key.index
                )),
            }
        }
        match unit.state {
            UnitState::Open if unit.active.is_empty() => tally.pending += 1,
            UnitState::Open => tally.leased += 1,
            UnitState::Failed => tally.failed += 1,
            UnitState::Done { canonical: lease } => {
                tally.done += 1;
                let Some(result) = store.result(key, lease)? else {
                    problems.push(format!(
                        "job {} unit {}: done but no result stored",
                        key.job, key.index
                    ));
                    continue;
                };
                match store.lease(lease)? {
                    Some(record) => {
                        let message = result_message(&lease, &record.nonce, &result.output_sha256);
                        let signer = PublicKey::from_bytes(*result.volunteer.as_bytes());
                        if signing::verify(&signer, Purpose::Result, &message, &result.signature)
                            .is_ok()
                        {
                            tally.signatures_verified += 1;
                        } else {
                            problems.push(format!(
                                "job {} unit {}: the result's signature does not verify",
                                key.job, key.index
                            ));
                        }
                    }
                    None => problems.push(format!(
                        "job {} unit {}: the result's lease {lease} is missing",
                        key.job, key.index
                    )),
                }
                let native = modules
                    .get(&key.job)
                    .map(|module| sandbox.run(module, &unit.input));
                match native {
                    Some(Ok(output)) if output == result.output => tally.verified += 1,
                    _ => tally.mismatches.push(key.index),
                }
            }
        }
    }
    for job in &jobs {
        let Some(tally) = tallies.get_mut(&job.id) else {
            continue;
        };
        tally.units_present = tally.units_stored;
        if job.range.is_some() {
            // The units not stored were never leased: pending, as their range makes them.
            let fresh = tally.units.saturating_sub(tally.units_stored);
            tally.units_present += fresh;
            tally.pending += fresh;
        }
    }
    check_credit(store, &credited, &mut problems)?;
    for tally in tallies.values() {
        if tally.units_present != tally.units {
            problems.push(format!(
                "job {}: created with {} units, {} present",
                tally.job_id, tally.units, tally.units_present
            ));
        }
    }
    let results = if list_results {
        let mut entries = Vec::new();
        for entry in store.results() {
            let (UnitKey { job, index }, result) = entry?;
            entries.push(ResultEntry {
                job_id: job.0,
                unit: index,
                lease_id: result.lease,
                output_sha256: result.output_sha256,
            });
        }
        Some(entries)
    } else {
        None
    };
    let mut jobs: Vec<JobAudit> = tallies.into_values().collect();
    jobs.sort_by_key(|job| job.job_id);
    let ok = problems.is_empty() && jobs.iter().all(|job| job.mismatches.is_empty());
    Ok(AuditReport {
        ok,
        jobs,
        problems,
        results,
    })
}

/// Every volunteer's credit record against the replicas marked credited (`credited`): equal
/// for every volunteer in good standing, so no result was credited twice or lost its credit;
/// none at all for a caught one, whose credit is void.
fn check_credit(
    store: &Store,
    credited: &HashMap<VolunteerId, (u64, u64)>,
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    let records: HashMap<VolunteerId, (u64, u64)> = store
        .credit()?
        .into_iter()
        .map(|(volunteer, record)| (volunteer, (record.results, record.compute_ms)))
        .collect();
    let volunteers: std::collections::HashSet<&VolunteerId> =
        records.keys().chain(credited.keys()).collect();
    for volunteer in volunteers {
        let caught = store.volunteer(*volunteer)?.caught;
        let expected = if caught {
            None
        } else {
            credited.get(volunteer).copied()
        };
        let found = records.get(volunteer).copied();
        if found != expected && !(found.is_none() && expected == Some((0, 0))) {
            problems.push(format!(
                "volunteer {volunteer}: credit (results, compute ms) {found:?}, but its credited \
                 results make {expected:?}"
            ));
        }
    }
    Ok(())
}
