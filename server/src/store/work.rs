//! The transitions of leases and results, each one sled transaction: grant a lease, expire
//! it, record a result (with spot checks, catching and backtracking, quorum, and credit to
//! volunteers and embedding sites), and end a lease on a report or a rejected output.

use std::collections::HashMap;

use cyclepool_shared::distributor::SiteId;
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::ReportKind;
use cyclepool_shared::{JobId, LeaseId, Nonce, Sha256Digest, VolunteerId};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{
    CreditRecord, Grant, IncomingResult, LeaseRecord, LeaseState, RECENT_UNITS, ReleaseOutcome,
    ReportRecord, ResultRecord, Store, StoreError, SubmitOutcome, TxResult, UnitKey, UnitRecord,
    VolunteerRecord, encode, get, recent_key, result_key, tx_error,
};
use crate::replication::{Replica, UnitChange};

/// The trees a submission touches: units, leases, results, credit, volunteers, known answers,
/// site credit, recent units.
type SubmitTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

impl Store {
    /// Grants each lease on its unit if the unit wants another replica and the volunteer may
    /// compute one: one transaction for them all, each judged after the ones before it.
    pub fn grant(&self, grants: &[(LeaseId, LeaseRecord)]) -> Result<Vec<Grant>, StoreError> {
        let encoded: Vec<Vec<u8>> = grants.iter().map(|(_, lease)| encode(lease)).collect();
        (&self.units, &self.leases)
            .transaction(|(units, leases)| {
                grants
                    .iter()
                    .zip(&encoded)
                    .map(|((id, lease), encoded)| self.grant_in(units, leases, *id, lease, encoded))
                    .collect()
            })
            .map_err(tx_error)
    }

    /// One lease of [`Store::grant`], inside its transaction.
    fn grant_in(
        &self,
        units: &TransactionalTree,
        leases: &TransactionalTree,
        id: LeaseId,
        lease: &LeaseRecord,
        encoded_lease: &[u8],
    ) -> TxResult<Grant> {
        let unit_key = lease.unit.to_bytes();
        let Some(mut unit) = self.unit_in(units, lease.unit)? else {
            return Ok(Grant::NotWanted);
        };
        if lease.spot_check {
            // A spot check leaves the unit alone: it is not one of its replicas.
            if !unit.may_go_to(lease.volunteer) {
                return Ok(Grant::NotForThisVolunteer);
            }
            leases.insert(id.as_bytes(), encoded_lease)?;
            return Ok(Grant::Granted {
                input: unit.input,
                input_sha256: unit.input_sha256,
                wants_more: false,
            });
        }
        if !unit.wants_replica() {
            return Ok(Grant::NotWanted);
        }
        if !unit.may_go_to(lease.volunteer) {
            return Ok(Grant::NotForThisVolunteer);
        }
        unit.lease_granted(id, lease.volunteer);
        let wants_more = unit.wants_replica();
        units.insert(&unit_key, encode(&unit))?;
        leases.insert(id.as_bytes(), encoded_lease)?;
        Ok(Grant::Granted {
            input: unit.input,
            input_sha256: unit.input_sha256,
            wants_more,
        })
    }

    /// Expires `id` if it is active and its deadline is before `now_ms`. The deadline itself
    /// is still in time, as in [`Store::submit`].
    pub fn expire(
        &self,
        id: LeaseId,
        now_ms: u64,
        policy: &JobPolicy,
    ) -> Result<Option<(UnitKey, UnitChange)>, StoreError> {
        self.end_lease(id, policy, |lease| {
            (lease.state == LeaseState::Active && lease.deadline_ms < now_ms)
                .then_some(LeaseState::Expired)
        })
    }

    /// Ends an active lease without a result, in one transaction: `decide` says whether (and
    /// into which state) the lease ends; the unit records the loss.
    fn end_lease(
        &self,
        id: LeaseId,
        policy: &JobPolicy,
        decide: impl Fn(&LeaseRecord) -> Option<LeaseState>,
    ) -> Result<Option<(UnitKey, UnitChange)>, StoreError> {
        (&self.units, &self.leases)
            .transaction(|(units, leases)| {
                let Some(mut lease) = get::<LeaseRecord>(leases, "leases", id.as_bytes())? else {
                    return Ok(None);
                };
                let Some(ended) = decide(&lease) else {
                    return Ok(None);
                };
                // Expiry is no one's fault (a closed tab); a rejected output is its holder's.
                let holder_failed = !matches!(ended, LeaseState::Expired);
                lease.state = ended;
                leases.insert(id.as_bytes(), encode(&lease))?;
                let unit_key = lease.unit.to_bytes();
                let Some(mut unit) = self.unit_in(units, lease.unit)? else {
                    return Ok(None);
                };
                let change = if holder_failed {
                    unit.lease_failed(id, policy)
                } else {
                    unit.lease_lost(id, policy)
                };
                units.insert(&unit_key, encode(&unit))?;
                Ok(Some((lease.unit, change)))
            })
            .map_err(tx_error)
    }

    /// Records results for their leases, checking for each who sent it, its nonce and the
    /// deadline, all in one transaction, each judged as if submitted alone after the ones
    /// before it. The writes are not yet durable: await [`Store::durable`] before
    /// acknowledging them. `policy_of` gives a job's policy: the lease's, and for backtracking
    /// any job's, since it reaches the caught volunteer's units in every job.
    pub fn submit(
        &self,
        results: &[IncomingResult],
        now_ms: u64,
        policy_of: &dyn Fn(JobId) -> JobPolicy,
    ) -> Result<Vec<SubmitOutcome>, StoreError> {
        (
            &self.units,
            &self.leases,
            &self.results,
            &self.credit,
            &self.volunteers,
            &self.known,
            &self.site_credit,
            &self.recent,
        )
            .transaction(|trees| {
                results
                    .iter()
                    .map(|result| self.submit_in(trees, result, now_ms, policy_of))
                    .collect()
            })
            .map_err(tx_error)
    }

    /// One result of [`Store::submit`], inside its transaction.
    fn submit_in(
        &self,
        trees: &SubmitTrees,
        result: &IncomingResult,
        now_ms: u64,
        policy_of: &dyn Fn(JobId) -> JobPolicy,
    ) -> TxResult<SubmitOutcome> {
        let (units, leases, results, credit, volunteers, known, sites, recent) = trees;
        let Some(mut lease) = get::<LeaseRecord>(leases, "leases", result.lease.as_bytes())? else {
            return Ok(SubmitOutcome::UnknownLease);
        };
        let policy = &policy_of(lease.unit.job);
        // Identity first: someone else's lease reveals nothing about its state.
        if lease.volunteer != result.volunteer {
            return Ok(SubmitOutcome::NotYours);
        }
        if lease.nonce != result.nonce {
            return Ok(SubmitOutcome::NonceMismatch);
        }
        match lease.state {
            LeaseState::Completed { output_sha256 } if output_sha256 == result.output_sha256 => {
                return Ok(SubmitOutcome::Duplicate);
            }
            LeaseState::Completed { .. } => return Ok(SubmitOutcome::Conflict),
            // A lease given up on, or whose result was wrong, is over like an expired one.
            LeaseState::Expired | LeaseState::Failed { .. } | LeaseState::Rejected { .. } => {
                return Ok(SubmitOutcome::Expired {
                    deadline_ms: lease.deadline_ms,
                });
            }
            LeaseState::Active if now_ms > lease.deadline_ms => {
                return Ok(SubmitOutcome::Expired {
                    deadline_ms: lease.deadline_ms,
                });
            }
            LeaseState::Active => {}
        }
        let mut checked =
            get::<VolunteerRecord>(volunteers, "volunteers", result.volunteer.as_bytes())?
                .unwrap_or_default();
        if checked.caught {
            return Ok(SubmitOutcome::Blacklisted);
        }
        let answer = known
            .get(lease.unit.to_bytes())?
            .and_then(|value| <[u8; 32]>::try_from(value.as_ref()).ok())
            .map(Sha256Digest::from_bytes);
        let contradicts = answer.is_some_and(|answer| answer != result.output_sha256);
        if contradicts {
            // Caught: end the lease, blacklist the volunteer, and withdraw its recent
            // replicas, decided or not (backtracking).
            lease.state = LeaseState::Rejected {
                output_sha256: result.output_sha256,
            };
            leases.insert(result.lease.as_bytes(), encode(&lease))?;
            let mut requeue = Vec::new();
            if !lease.spot_check {
                let unit_key = lease.unit.to_bytes();
                if let Some(mut unit) = self.unit_in(units, lease.unit)? {
                    if unit.lease_lost(result.lease, policy) == UnitChange::WantsReplica {
                        requeue.push(lease.unit);
                    }
                    units.insert(&unit_key, encode(&unit))?;
                }
            }
            let mut reopened = Vec::new();
            let mut recent_units = std::mem::take(&mut checked.recent_units);
            let first = checked.recent_count.saturating_sub(RECENT_UNITS);
            for position in first..checked.recent_count {
                let key = recent_key(result.volunteer, position);
                if let Some(value) = recent.remove(&key[..])? {
                    recent_units.push(
                        UnitKey::from_bytes(&value).map_err(ConflictableTransactionError::Abort)?,
                    );
                }
            }
            for recent in recent_units {
                let key = recent.to_bytes();
                let Some(mut unit) = self.unit_in(units, recent)? else {
                    continue;
                };
                // The caught volunteer's credit is void below; the share its
                // credited replica gave a site goes too.
                let credited = unit
                    .replicas
                    .iter()
                    .find(|replica| replica.volunteer == result.volunteer && replica.credited);
                if let Some(replica) = credited {
                    take_back_site_credit(sites, leases, replica)?;
                }
                // Each unit is judged again by its own job's policy.
                let unit_policy = policy_of(recent.job);
                let checks = checks_passed(volunteers, &unit, None)?;
                let credibility = credibility_from(&checks, &unit_policy);
                let (change, newly_credited) =
                    unit.withdraw(result.volunteer, &unit_policy, &credibility);
                match change {
                    UnitChange::WantsReplica => requeue.push(recent),
                    UnitChange::Reopened => reopened.push(recent),
                    _ => {}
                }
                for replica in &newly_credited {
                    grant_credit(credit, sites, leases, replica)?;
                }
                units.insert(&key, encode(&unit))?;
            }
            // Credit is for validated work; a cheater's is void.
            credit.remove(result.volunteer.as_bytes())?;
            checked.caught = true;
            volunteers.insert(result.volunteer.as_bytes(), encode(&checked))?;
            return Ok(SubmitOutcome::Caught {
                unit: lease.unit,
                requeue,
                reopened,
            });
        }
        if answer.is_some() {
            checked.checks_passed = checked.checks_passed.saturating_add(1);
        }
        if lease.spot_check {
            // A passed spot check: recorded, but no replica and no credit.
            lease.state = LeaseState::Completed {
                output_sha256: result.output_sha256,
            };
            leases.insert(result.lease.as_bytes(), encode(&lease))?;
            volunteers.insert(result.volunteer.as_bytes(), encode(&checked))?;
            return Ok(SubmitOutcome::Accepted {
                unit: lease.unit,
                change: UnitChange::Unchanged,
            });
        }
        let unit_key = lease.unit.to_bytes();
        let Some(mut unit) = self.unit_in(units, lease.unit)? else {
            return Err(ConflictableTransactionError::Abort(StoreError::Corrupt {
                tree: "units",
                reason: format!("lease {} names missing unit {:?}", result.lease, lease.unit),
            }));
        };
        if !unit
            .active
            .iter()
            .any(|(active, _)| *active == result.lease)
        {
            // Only reachable if an expiry raced this submission: the lease is over.
            return Ok(SubmitOutcome::Expired {
                deadline_ms: lease.deadline_ms,
            });
        }
        // Credibility of everyone with a replica here, read in this transaction.
        let checks = checks_passed(
            volunteers,
            &unit,
            Some((result.volunteer, checked.checks_passed)),
        )?;
        let credibility = credibility_from(&checks, policy);
        let change = unit.result_received(
            Replica {
                lease: result.lease,
                volunteer: result.volunteer,
                output_sha256: result.output_sha256,
                compute_ms: result.compute_ms,
                credited: false,
            },
            policy,
            &credibility,
        );
        lease.state = LeaseState::Completed {
            output_sha256: result.output_sha256,
        };
        let record = ResultRecord {
            lease: result.lease,
            volunteer: result.volunteer,
            output: result.output.clone(),
            output_sha256: result.output_sha256,
            signature: result.signature,
            nonce: Some(result.nonce),
            received_ms: now_ms,
            compute_ms: result.compute_ms,
        };
        units.insert(&unit_key, encode(&unit))?;
        leases.insert(result.lease.as_bytes(), encode(&lease))?;
        results.insert(&result_key(lease.unit, result.lease), encode(&record))?;
        // Credit moves with validation, in the same transaction: credit always equals
        // the validated work on record.
        let credited: &[Replica] = match &change {
            UnitChange::Decided { credited } => credited,
            UnitChange::Late {
                credited: Some(replica),
            } => std::slice::from_ref(replica),
            _ => &[],
        };
        // Remember the unit for backtracking, should this volunteer be caught later, and
        // forget the one that falls out of reach.
        let position = checked.recent_count;
        recent.insert(
            &recent_key(result.volunteer, position)[..],
            &lease.unit.to_bytes(),
        )?;
        if let Some(old) = position.checked_sub(RECENT_UNITS) {
            recent.remove(&recent_key(result.volunteer, old)[..])?;
        }
        checked.recent_count = position + 1;
        volunteers.insert(result.volunteer.as_bytes(), encode(&checked))?;
        for replica in credited {
            grant_credit(credit, sites, leases, replica)?;
        }
        Ok(SubmitOutcome::Accepted {
            unit: lease.unit,
            change,
        })
    }

    /// Records a client's report and, if it names an open lease of the sender with the right
    /// nonce, ends that lease (`failed`); both in one transaction.
    pub fn report(
        &self,
        report: &ReportRecord,
        nonce: Option<Nonce>,
        policy: &JobPolicy,
    ) -> Result<ReleaseOutcome, StoreError> {
        let id = self.db.generate_id()?;
        let encoded = encode(report);
        // An abuse report also joins the admin's queue, under the same id.
        let abuse_record = (report.kind == ReportKind::Abuse).then(|| {
            encode(&super::AbuseRecord {
                report: report.clone(),
                resolution: None,
            })
        });
        (&self.units, &self.leases, &self.reports, &self.abuse)
            .transaction(|(units, leases, reports, abuse)| {
                reports.insert(&id.to_be_bytes(), encoded.as_slice())?;
                if let Some(record) = &abuse_record {
                    abuse.insert(&id.to_be_bytes(), record.as_slice())?;
                }
                let (Some(lease_id), Some(nonce)) = (report.lease, nonce) else {
                    return Ok(ReleaseOutcome::NotReleased);
                };
                let Some(mut lease) = get::<LeaseRecord>(leases, "leases", lease_id.as_bytes())?
                else {
                    return Ok(ReleaseOutcome::NotReleased);
                };
                if lease.volunteer != report.volunteer
                    || lease.nonce != nonce
                    || lease.state != LeaseState::Active
                    || lease.unit.job != report.job
                {
                    return Ok(ReleaseOutcome::NotReleased);
                }
                lease.state = LeaseState::Failed { kind: report.kind };
                leases.insert(lease_id.as_bytes(), encode(&lease))?;
                let unit_key = lease.unit.to_bytes();
                let Some(mut unit) = self.unit_in(units, lease.unit)? else {
                    return Ok(ReleaseOutcome::NotReleased);
                };
                let change = unit.lease_failed(lease_id, policy);
                units.insert(&unit_key, encode(&unit))?;
                Ok(ReleaseOutcome::Released {
                    unit: lease.unit,
                    change,
                })
            })
            .map_err(tx_error)
    }

    /// Ends `lease` because the job's `verify` rejected its output. Nothing happens unless the
    /// lease is the sender's, with its nonce, and still open.
    pub fn reject(
        &self,
        lease_id: LeaseId,
        volunteer: VolunteerId,
        nonce: Nonce,
        output_sha256: Sha256Digest,
        policy: &JobPolicy,
    ) -> Result<ReleaseOutcome, StoreError> {
        let ended = self.end_lease(lease_id, policy, |lease| {
            (lease.volunteer == volunteer
                && lease.nonce == nonce
                && lease.state == LeaseState::Active)
                .then_some(LeaseState::Rejected { output_sha256 })
        })?;
        Ok(match ended {
            Some((unit, change)) => ReleaseOutcome::Released { unit, change },
            None => ReleaseOutcome::NotReleased,
        })
    }
}

/// The checks passed by every volunteer with a replica of `unit` (and by `extra`, whose record
/// the caller holds), read inside the caller's transaction.
fn checks_passed(
    volunteers: &TransactionalTree,
    unit: &UnitRecord,
    extra: Option<(VolunteerId, u32)>,
) -> TxResult<HashMap<VolunteerId, u32>> {
    let mut checks: HashMap<VolunteerId, u32> = extra.into_iter().collect();
    for replica in &unit.replicas {
        if checks.contains_key(&replica.volunteer) {
            continue;
        }
        let record =
            get::<VolunteerRecord>(volunteers, "volunteers", replica.volunteer.as_bytes())?
                .unwrap_or_default();
        checks.insert(replica.volunteer, record.checks_passed);
    }
    Ok(checks)
}

/// Credibility per volunteer from checks passed, under `policy`'s assumed saboteur fraction.
fn credibility_from<'a>(
    checks: &'a HashMap<VolunteerId, u32>,
    policy: &JobPolicy,
) -> impl Fn(VolunteerId) -> f64 + 'a {
    let assumed = policy.assumed_saboteur_fraction;
    move |volunteer| {
        crate::replication::credibility(checks.get(&volunteer).copied().unwrap_or(0), assumed)
    }
}

/// Credits `replica`'s volunteer with one validated result and its compute time, and so the
/// embedding site its lease was asked for through, if any (read from `leases` in the same
/// transaction, which already holds this submission's own lease).
fn grant_credit(
    credit: &TransactionalTree,
    site_credit: &TransactionalTree,
    leases: &TransactionalTree,
    replica: &Replica,
) -> TxResult<()> {
    let key = replica.volunteer.as_bytes();
    let mut account = get::<CreditRecord>(credit, "credit", key)?.unwrap_or_default();
    account.results += 1;
    account.compute_ms = account.compute_ms.saturating_add(replica.compute_ms);
    credit.insert(key, encode(&account))?;
    if let Some(site) = site_of(leases, replica)? {
        let key = site.0.to_be_bytes();
        let mut account =
            get::<CreditRecord>(site_credit, "site_credit", &key)?.unwrap_or_default();
        account.results += 1;
        account.compute_ms = account.compute_ms.saturating_add(replica.compute_ms);
        site_credit.insert(&key, encode(&account))?;
    }
    Ok(())
}

/// Takes one credited replica's result and compute time back from the site it was credited to.
fn take_back_site_credit(
    site_credit: &TransactionalTree,
    leases: &TransactionalTree,
    replica: &Replica,
) -> TxResult<()> {
    let Some(site) = site_of(leases, replica)? else {
        return Ok(());
    };
    let key = site.0.to_be_bytes();
    let mut account = get::<CreditRecord>(site_credit, "site_credit", &key)?.unwrap_or_default();
    account.results = account.results.saturating_sub(1);
    account.compute_ms = account.compute_ms.saturating_sub(replica.compute_ms);
    site_credit.insert(&key, encode(&account))?;
    Ok(())
}

/// The embedding site `replica`'s lease was asked for through.
fn site_of(leases: &TransactionalTree, replica: &Replica) -> TxResult<Option<SiteId>> {
    Ok(
        get::<LeaseRecord>(leases, "leases", replica.lease.as_bytes())?
            .and_then(|lease| lease.site),
    )
}
