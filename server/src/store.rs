//! The store: the only code that touches sled.
//!
//! Jobs, units, leases and results live in sled trees, encoded as JSON so that records can
//! gain fields without a migration. Every state change that spans trees (grant a lease,
//! accept a result, expire a lease) is one sled transaction, so a crash at any instant
//! leaves either the old state or the new one. Durability is a separate step: a writer
//! that must not acknowledge before its write is on disk awaits [`Store::durable`], and a
//! group-commit thread serves all such waiters with one flush.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{DurabilityStats, ReportKind, base64_bytes};
use cyclepool_shared::{JobId, LeaseId, Nonce, Sha256Digest, Signature, VolunteerId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::replication::{Replica, UnitChange};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

/// A storage failure. Never shown to API callers in detail; logged once where it surfaces.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree {tree}: {reason}")]
    Corrupt { tree: &'static str, reason: String },
    #[error("flush to disk failed: {0}")]
    Flush(String),
    #[error("the store's group-commit thread has stopped")]
    CommitThreadGone,
}

/// The address of one unit: its job and its index within the job. Keys sort by job, then index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitKey {
    pub job: JobId,
    pub index: u64,
}

impl UnitKey {
    fn to_bytes(self) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.job.0.to_be_bytes());
        key[8..].copy_from_slice(&self.index.to_be_bytes());
        key
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let bytes: &[u8; 16] = bytes.try_into().map_err(|_| StoreError::Corrupt {
            tree: "units",
            reason: format!("key of {} bytes", bytes.len()),
        })?;
        let (job, index) = bytes.split_at(8);
        Ok(Self {
            job: JobId(u64::from_be_bytes(job.try_into().unwrap_or_default())),
            index: u64::from_be_bytes(index.try_into().unwrap_or_default()),
        })
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    /// Who distributes the job.
    pub distributor: String,
    pub title: String,
    pub description: String,
    pub module_sha256: Sha256Digest,
    pub module_bytes: u64,
    pub policy: JobPolicy,
    pub units: u64,
    pub created_ms: u64,
    /// When the job's manifest stops being valid.
    pub expires_ms: u64,
}

/// What a caller supplies to create a job; the store assigns the id.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub distributor: String,
    pub title: String,
    pub description: String,
    pub module_sha256: Sha256Digest,
    pub module_bytes: u64,
    pub policy: JobPolicy,
    pub expires_ms: u64,
}

/// One unit of work as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    #[serde(with = "base64_bytes")]
    pub input: Vec<u8>,
    pub input_sha256: Sha256Digest,
    pub state: UnitState,
    /// How many leases have been granted for this unit, re-issues included.
    pub issued: u32,
    /// Results wanted now: the policy's initial replicas, plus one per disagreement.
    pub wanted: u32,
    /// Leases out now, with their holders.
    pub active: Vec<(LeaseId, VolunteerId)>,
    /// Results received (decided or not).
    pub replicas: Vec<Replica>,
    /// Leases that ended without a result: expired, given up, or rejected by `verify`.
    pub errors: u32,
}

impl UnitRecord {
    /// A new unit that wants `wanted` results.
    pub fn new(input: Vec<u8>, wanted: u32) -> Self {
        Self {
            input_sha256: Sha256Digest::of(&input),
            input,
            state: UnitState::Open,
            issued: 0,
            wanted: wanted.max(1),
            active: Vec::new(),
            replicas: Vec::new(),
            errors: 0,
        }
    }
}

/// Where a unit is in its life (see `replication.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UnitState {
    /// Wants results.
    Open,
    /// A quorum agreed; `canonical` is the lease whose result stands for the unit.
    Done { canonical: LeaseId },
    /// Gave up: too many errors, or too many results without a quorum.
    Failed,
}

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub unit: UnitKey,
    pub volunteer: VolunteerId,
    pub nonce: Nonce,
    pub issued_ms: u64,
    pub deadline_ms: u64,
    pub state: LeaseState,
    /// A spot check: the unit's answer is known, and the result is compared with it instead
    /// of counting as a replica. Never told to the client.
    #[serde(default)]
    pub spot_check: bool,
}

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LeaseState {
    Active,
    Completed {
        output_sha256: Sha256Digest,
    },
    Expired,
    /// The volunteer reported it could not compute the unit; the unit went back to pending.
    Failed {
        kind: ReportKind,
    },
    /// The job's `verify` rejected the output; the unit went back to pending.
    Rejected {
        output_sha256: Sha256Digest,
    },
}

/// One accepted result as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub lease: LeaseId,
    pub volunteer: VolunteerId,
    #[serde(with = "base64_bytes")]
    pub output: Vec<u8>,
    pub output_sha256: Sha256Digest,
    /// The volunteer's signature over the lease, its nonce and the output's digest.
    pub signature: Signature,
    pub received_ms: u64,
    pub compute_ms: u64,
}

/// A result on its way in, already checked against its own digest.
#[derive(Debug, Clone)]
pub struct IncomingResult {
    pub lease: LeaseId,
    pub volunteer: VolunteerId,
    pub nonce: Nonce,
    pub output: Vec<u8>,
    pub output_sha256: Sha256Digest,
    pub signature: Signature,
    pub compute_ms: u64,
}

/// What happened to a submitted result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Stored now; what it did to the unit.
    Accepted {
        unit: UnitKey,
        change: UnitChange,
    },
    /// The same output was already stored for this lease.
    Duplicate,
    UnknownLease,
    NotYours,
    NonceMismatch,
    Expired {
        deadline_ms: u64,
    },
    /// A different output was already stored for this lease.
    Conflict,
    /// The output contradicts an answer the server knows (a spot check or a re-executed unit):
    /// the volunteer is blacklisted and its recent replicas withdrawn. `requeue` lists open
    /// units that now want a replica again; `reopened` decided units that lost their decision.
    Caught {
        unit: UnitKey,
        requeue: Vec<UnitKey>,
        reopened: Vec<UnitKey>,
    },
    /// The volunteer was caught before and may no longer take part.
    Blacklisted,
}

/// What a grant attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Leased; `wants_more` if the unit still wants further replicas.
    Granted {
        input: Vec<u8>,
        input_sha256: Sha256Digest,
        wants_more: bool,
    },
    /// The unit wants no more replicas (decided, failed, or all out).
    NotWanted,
    /// The unit wants a replica, but not from this volunteer (it has or had one).
    NotForThisVolunteer,
}

/// One step of the feeder's scan over the units tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPage {
    /// Pending units found, in key order.
    pub found: Vec<UnitKey>,
    /// Where the next scan goes on from.
    pub last_scanned: Option<UnitKey>,
    /// True if the scan reached the end of the tree.
    pub at_end: bool,
}

/// A report from a client, as stored for people to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub volunteer: VolunteerId,
    pub job: JobId,
    pub lease: Option<LeaseId>,
    pub kind: ReportKind,
    pub message: String,
    pub received_ms: u64,
}

/// What the portal knows of a volunteer's honesty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerRecord {
    /// Spot checks (and re-executed units) answered right.
    pub checks_passed: u32,
    /// Caught returning a wrong answer to a check: blacklisted.
    pub caught: bool,
    /// The units of this volunteer's most recent replicas (at most [`RECENT_UNITS`]), decided
    /// or not: withdrawn if it is caught (backtracking).
    pub recent_units: Vec<UnitKey>,
}

/// How many of a volunteer's most recent units backtracking can reach.
pub const RECENT_UNITS: usize = 4_096;

/// A volunteer's credit: what it has done that was accepted as valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRecord {
    /// Results accepted.
    pub results: u64,
    /// Computing time those results took, as the volunteer's browser measured it.
    pub compute_ms: u64,
}

/// What happened to a lease named in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The lease was open and is now over; what that did to its unit.
    Released { unit: UnitKey, change: UnitChange },
    /// The lease is not the sender's, or not open: nothing changed.
    NotReleased,
}

/// Unit counts of one job, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitCounts {
    /// Leases out now (a unit under replication may have several).
    pub leased: u64,
    pub done: u64,
    pub failed: u64,
}

/// The sled database and its trees.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    jobs: sled::Tree,
    units: sled::Tree,
    leases: sled::Tree,
    results: sled::Tree,
    modules: sled::Tree,
    reports: sled::Tree,
    credit: sled::Tree,
    known: sled::Tree,
    volunteers: sled::Tree,
    commit: GroupCommit,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    /// Opens (or creates) the store in `dir`. Fails if another process has it open.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Durability comes from explicit group commits; the periodic flush only bounds
            // how much unacknowledged state (leases) a crash can lose.
            .flush_every_ms(Some(500))
            .open()?;
        Ok(Self {
            meta: db.open_tree("meta")?,
            jobs: db.open_tree("jobs")?,
            units: db.open_tree("units")?,
            leases: db.open_tree("leases")?,
            results: db.open_tree("results")?,
            modules: db.open_tree("modules")?,
            reports: db.open_tree("reports")?,
            credit: db.open_tree("credit")?,
            known: db.open_tree("known")?,
            volunteers: db.open_tree("volunteers")?,
            commit: GroupCommit::start(db.clone()),
            db,
        })
    }

    /// Creates a job with one unit per input, atomically. With `once`, the job is created only
    /// if no job was ever created under that name (used for the demo job); returns `None` then.
    pub fn create_job(
        &self,
        spec: NewJob,
        inputs: &[Vec<u8>],
        now_ms: u64,
        once: Option<&str>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let wanted = spec.policy.initial_replicas;
        let job = JobRecord {
            id: JobId(self.db.generate_id()?),
            distributor: spec.distributor,
            title: spec.title,
            description: spec.description,
            module_sha256: spec.module_sha256,
            module_bytes: spec.module_bytes,
            policy: spec.policy,
            units: inputs.len() as u64,
            created_ms: now_ms,
            expires_ms: spec.expires_ms,
        };
        let encoded_job = encode(&job);
        let encoded_units: Vec<([u8; 16], Vec<u8>)> = inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                let key = UnitKey {
                    job: job.id,
                    index: index as u64,
                };
                let record = UnitRecord::new(input.clone(), wanted);
                (key.to_bytes(), encode(&record))
            })
            .collect();
        let created = (&self.meta, &self.jobs, &self.units)
            .transaction(|(meta, jobs, units)| {
                if let Some(name) = once {
                    let marker = format!("once/{name}");
                    if meta.get(marker.as_bytes())?.is_some() {
                        return Ok(false);
                    }
                    meta.insert(marker.as_bytes(), &job.id.0.to_be_bytes())?;
                }
                jobs.insert(&job.id.0.to_be_bytes(), encoded_job.as_slice())?;
                for (key, record) in &encoded_units {
                    units.insert(key, record.as_slice())?;
                }
                Ok(true)
            })
            .map_err(tx_error)?;
        Ok(created.then_some(job))
    }

    /// Every job, in creation order.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.jobs
            .iter()
            .values()
            .map(|value| decode("jobs", &value?))
            .collect()
    }

    /// Counts units by state, per job. Scans every unit: used once at start.
    pub fn unit_counts(&self) -> Result<HashMap<JobId, UnitCounts>, StoreError> {
        let mut counts: HashMap<JobId, UnitCounts> = HashMap::new();
        for entry in self.units.iter() {
            let (key, value) = entry?;
            let key = UnitKey::from_bytes(&key)?;
            let unit: UnitRecord = decode("units", &value)?;
            let count = counts.entry(key.job).or_default();
            count.leased += unit.active.len() as u64;
            match unit.state {
                UnitState::Open => {}
                UnitState::Done { .. } => count.done += 1,
                UnitState::Failed => count.failed += 1,
            }
        }
        Ok(counts)
    }

    /// Up to `limit` pending units after `after` (from the start when `None`), scanning at most
    /// `scan_limit` units, so that a long run of finished units cannot stall the caller.
    pub fn pending_units(
        &self,
        after: Option<UnitKey>,
        limit: usize,
        scan_limit: usize,
    ) -> Result<PendingPage, StoreError> {
        let range = match after {
            Some(key) => self.units.range((
                std::ops::Bound::Excluded(key.to_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.units.iter(),
        };
        let mut page = PendingPage {
            found: Vec::new(),
            last_scanned: after,
            at_end: false,
        };
        let mut range = range.take(scan_limit);
        while page.found.len() < limit {
            let Some(entry) = range.next() else {
                // Stopped by the end of the tree, not by the scan limit?
                page.at_end = page.last_scanned.is_none_or(|last| {
                    self.units
                        .range((
                            std::ops::Bound::Excluded(last.to_bytes()),
                            std::ops::Bound::Unbounded,
                        ))
                        .next()
                        .is_none()
                });
                break;
            };
            let (key, value) = entry?;
            let key = UnitKey::from_bytes(&key)?;
            let unit: UnitRecord = decode("units", &value)?;
            if unit.wants_replica() {
                page.found.push(key);
            }
            page.last_scanned = Some(key);
        }
        Ok(page)
    }

    /// Every active lease with its deadline and job. Used once at start to rebuild the
    /// expiry index.
    pub fn active_leases(&self) -> Result<Vec<(LeaseId, u64, JobId)>, StoreError> {
        let mut active = Vec::new();
        for entry in self.leases.iter() {
            let (key, value) = entry?;
            let lease: LeaseRecord = decode("leases", &value)?;
            if lease.state == LeaseState::Active {
                active.push((lease_id_from_key(&key)?, lease.deadline_ms, lease.unit.job));
            }
        }
        Ok(active)
    }

    /// Grants `lease` on its unit if the unit wants another replica and the volunteer may
    /// compute one.
    pub fn grant(&self, id: LeaseId, lease: &LeaseRecord) -> Result<Grant, StoreError> {
        let encoded_lease = encode(lease);
        (&self.units, &self.leases)
            .transaction(|(units, leases)| {
                let unit_key = lease.unit.to_bytes();
                let Some(mut unit) = get::<UnitRecord>(units, "units", &unit_key)? else {
                    return Ok(Grant::NotWanted);
                };
                if lease.spot_check {
                    // A spot check leaves the unit alone: it is not one of its replicas.
                    if !unit.may_go_to(lease.volunteer) {
                        return Ok(Grant::NotForThisVolunteer);
                    }
                    leases.insert(id.as_bytes(), encoded_lease.as_slice())?;
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
                leases.insert(id.as_bytes(), encoded_lease.as_slice())?;
                Ok(Grant::Granted {
                    input: unit.input,
                    input_sha256: unit.input_sha256,
                    wants_more,
                })
            })
            .map_err(tx_error)
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
                lease.state = ended;
                leases.insert(id.as_bytes(), encode(&lease))?;
                let unit_key = lease.unit.to_bytes();
                let Some(mut unit) = get::<UnitRecord>(units, "units", &unit_key)? else {
                    return Ok(None);
                };
                let change = unit.lease_lost(id, policy);
                units.insert(&unit_key, encode(&unit))?;
                Ok(Some((lease.unit, change)))
            })
            .map_err(tx_error)
    }

    /// Records a result for its lease, checking who sent it, its nonce and the deadline, all in
    /// one transaction. The write is not yet durable: await [`Store::durable`] before
    /// acknowledging it.
    /// `policy` is the lease's job's; `policy_of` gives any job's, for backtracking, which
    /// reaches the caught volunteer's units in every job.
    pub fn submit(
        &self,
        result: &IncomingResult,
        now_ms: u64,
        policy: &JobPolicy,
        policy_of: &dyn Fn(JobId) -> JobPolicy,
    ) -> Result<SubmitOutcome, StoreError> {
        (
            &self.units,
            &self.leases,
            &self.results,
            &self.credit,
            &self.volunteers,
            &self.known,
        )
            .transaction(|(units, leases, results, credit, volunteers, known)| {
                let Some(mut lease) =
                    get::<LeaseRecord>(leases, "leases", result.lease.as_bytes())?
                else {
                    return Ok(SubmitOutcome::UnknownLease);
                };
                // Identity first: someone else's lease reveals nothing about its state.
                if lease.volunteer != result.volunteer {
                    return Ok(SubmitOutcome::NotYours);
                }
                if lease.nonce != result.nonce {
                    return Ok(SubmitOutcome::NonceMismatch);
                }
                match lease.state {
                    LeaseState::Completed { output_sha256 }
                        if output_sha256 == result.output_sha256 =>
                    {
                        return Ok(SubmitOutcome::Duplicate);
                    }
                    LeaseState::Completed { .. } => return Ok(SubmitOutcome::Conflict),
                    // A lease given up on, or whose result was wrong, is over like an expired one.
                    LeaseState::Expired
                    | LeaseState::Failed { .. }
                    | LeaseState::Rejected { .. } => {
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
                        if let Some(mut unit) = get::<UnitRecord>(units, "units", &unit_key)? {
                            if unit.lease_lost(result.lease, policy) == UnitChange::WantsReplica {
                                requeue.push(lease.unit);
                            }
                            units.insert(&unit_key, encode(&unit))?;
                        }
                    }
                    let mut reopened = Vec::new();
                    for recent in std::mem::take(&mut checked.recent_units) {
                        let key = recent.to_bytes();
                        let Some(mut unit) = get::<UnitRecord>(units, "units", &key)? else {
                            continue;
                        };
                        // Each unit is judged again by its own job's policy.
                        let unit_policy = policy_of(recent.job);
                        let checks = checks_passed(volunteers, &unit, None)?;
                        let credibility = credibility_from(&checks, &unit_policy);
                        match unit.withdraw(result.volunteer, &unit_policy, &credibility) {
                            UnitChange::WantsReplica => requeue.push(recent),
                            UnitChange::Reopened => reopened.push(recent),
                            _ => {}
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
                let Some(mut unit) = get::<UnitRecord>(units, "units", &unit_key)? else {
                    return Err(ConflictableTransactionError::Abort(StoreError::Corrupt {
                        tree: "units",
                        reason: format!(
                            "lease {} names missing unit {:?}",
                            result.lease, lease.unit
                        ),
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
                // Remember the unit for backtracking, should this volunteer be caught later.
                checked.recent_units.push(lease.unit);
                if checked.recent_units.len() > RECENT_UNITS {
                    let excess = checked.recent_units.len() - RECENT_UNITS;
                    checked.recent_units.drain(..excess);
                }
                volunteers.insert(result.volunteer.as_bytes(), encode(&checked))?;
                for replica in credited {
                    let mut account =
                        get::<CreditRecord>(credit, "credit", replica.volunteer.as_bytes())?
                            .unwrap_or_default();
                    account.results += 1;
                    account.compute_ms = account.compute_ms.saturating_add(replica.compute_ms);
                    credit.insert(replica.volunteer.as_bytes(), encode(&account))?;
                }
                Ok(SubmitOutcome::Accepted {
                    unit: lease.unit,
                    change,
                })
            })
            .map_err(tx_error)
    }

    /// Stores a module under its digest. Storing the same module twice is harmless.
    pub fn put_module(&self, digest: Sha256Digest, bytes: &[u8]) -> Result<(), StoreError> {
        self.modules.insert(digest.as_bytes(), bytes)?;
        Ok(())
    }

    /// A module's bytes, if uploaded.
    pub fn module(&self, digest: Sha256Digest) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.modules.get(digest.as_bytes())?)
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
        (&self.units, &self.leases, &self.reports)
            .transaction(|(units, leases, reports)| {
                reports.insert(&id.to_be_bytes(), encoded.as_slice())?;
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
                let Some(mut unit) = get::<UnitRecord>(units, "units", &unit_key)? else {
                    return Ok(ReleaseOutcome::NotReleased);
                };
                let change = unit.lease_lost(lease_id, policy);
                units.insert(&unit_key, encode(&unit))?;
                Ok(ReleaseOutcome::Released {
                    unit: lease.unit,
                    change,
                })
            })
            .map_err(tx_error)
    }

    /// Every stored report, oldest first.
    pub fn reports(&self) -> Result<Vec<ReportRecord>, StoreError> {
        self.reports
            .iter()
            .values()
            .map(|value| decode("reports", &value?))
            .collect()
    }

    /// The SHA-256 of the admin token, if one was set.
    pub fn admin_token_hash(&self) -> Result<Option<Sha256Digest>, StoreError> {
        Ok(self
            .meta
            .get(ADMIN_TOKEN_KEY)?
            .and_then(|value| <[u8; 32]>::try_from(value.as_ref()).ok())
            .map(Sha256Digest::from_bytes))
    }

    /// Replaces the admin token's hash (durably, before returning).
    pub fn set_admin_token_hash(&self, hash: Sha256Digest) -> Result<(), StoreError> {
        self.meta.insert(ADMIN_TOKEN_KEY, hash.as_bytes())?;
        self.flush()
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

    /// Records the answer the server computed itself for `unit`.
    pub fn put_known(&self, unit: UnitKey, output_sha256: Sha256Digest) -> Result<(), StoreError> {
        self.known
            .insert(unit.to_bytes(), output_sha256.as_bytes())?;
        Ok(())
    }

    /// Every unit whose answer the server knows.
    pub fn known_units(&self) -> Result<Vec<UnitKey>, StoreError> {
        self.known
            .iter()
            .keys()
            .map(|key| UnitKey::from_bytes(&key?))
            .collect()
    }

    /// What the portal knows of a volunteer (the default for one never seen).
    pub fn volunteer(&self, volunteer: VolunteerId) -> Result<VolunteerRecord, StoreError> {
        Ok(self
            .volunteers
            .get(volunteer.as_bytes())?
            .map(|value| decode("volunteers", &value))
            .transpose()?
            .unwrap_or_default())
    }

    /// One unit, if it exists.
    pub fn unit(&self, key: UnitKey) -> Result<Option<UnitRecord>, StoreError> {
        self.units
            .get(key.to_bytes())?
            .map(|value| decode("units", &value))
            .transpose()
    }

    /// Every volunteer's credit.
    pub fn credit(&self) -> Result<Vec<(VolunteerId, CreditRecord)>, StoreError> {
        self.credit
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let id: [u8; 32] = key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: "credit",
                    reason: format!("key of {} bytes", key.len()),
                })?;
                Ok((VolunteerId::from_bytes(id), decode("credit", &value)?))
            })
            .collect()
    }

    /// Waits until every write made before this call is on disk. Concurrent callers share
    /// flushes (group commit).
    pub async fn durable(&self) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.commit.request(done)?;
        wait.await
            .map_err(|_| StoreError::CommitThreadGone)?
            .map_err(StoreError::Flush)
    }

    /// Flushes everything to disk now, blocking the calling thread.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// How group commit has batched durable writes so far.
    pub fn durability_stats(&self) -> DurabilityStats {
        self.commit.stats()
    }

    /// Every unit with its state, in key order (for the audit tool).
    pub fn units(&self) -> impl Iterator<Item = Result<(UnitKey, UnitRecord), StoreError>> + '_ {
        self.units.iter().map(|entry| {
            let (key, value) = entry?;
            Ok((UnitKey::from_bytes(&key)?, decode("units", &value)?))
        })
    }

    /// Every done unit of `job` with its input and accepted result, in unit order.
    pub fn job_results(
        &self,
        job: JobId,
    ) -> impl Iterator<Item = Result<(u64, UnitRecord, ResultRecord), StoreError>> + '_ {
        self.units
            .scan_prefix(job.0.to_be_bytes())
            .filter_map(move |entry| {
                let found = (|| {
                    let (key, value) = entry?;
                    let key = UnitKey::from_bytes(&key)?;
                    let unit: UnitRecord = decode("units", &value)?;
                    let UnitState::Done { canonical: lease } = unit.state else {
                        return Ok(None);
                    };
                    let result = self
                        .result(key, lease)?
                        .ok_or_else(|| StoreError::Corrupt {
                            tree: "results",
                            reason: format!(
                                "unit {} of job {job} is done without a result",
                                key.index
                            ),
                        })?;
                    Ok(Some((key.index, unit, result)))
                })();
                found.transpose()
            })
    }

    /// One lease, if it exists.
    pub fn lease(&self, id: LeaseId) -> Result<Option<LeaseRecord>, StoreError> {
        self.leases
            .get(id.as_bytes())?
            .map(|value| decode("leases", &value))
            .transpose()
    }

    /// The result stored for `unit` under `lease`, if any.
    pub fn result(
        &self,
        unit: UnitKey,
        lease: LeaseId,
    ) -> Result<Option<ResultRecord>, StoreError> {
        self.results
            .get(result_key(unit, lease))?
            .map(|value| decode("results", &value))
            .transpose()
    }

    /// Every stored result, in unit order (for the audit tool).
    pub fn results(
        &self,
    ) -> impl Iterator<Item = Result<(UnitKey, ResultRecord), StoreError>> + '_ {
        self.results.iter().map(|entry| {
            let (key, value) = entry?;
            Ok((UnitKey::from_bytes(&key[..16])?, decode("results", &value)?))
        })
    }
}

const ADMIN_TOKEN_KEY: &[u8] = b"admin-token-sha256";

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

fn result_key(unit: UnitKey, lease: LeaseId) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&unit.to_bytes());
    key[16..].copy_from_slice(lease.as_bytes());
    key
}

fn lease_id_from_key(key: &[u8]) -> Result<LeaseId, StoreError> {
    let bytes: [u8; 16] = key.try_into().map_err(|_| StoreError::Corrupt {
        tree: "leases",
        reason: format!("key of {} bytes", key.len()),
    })?;
    Ok(LeaseId::from_bytes(bytes))
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serializing these plain records cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_vec(record).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt {
        tree,
        reason: err.to_string(),
    })
}

fn get<T: DeserializeOwned>(
    tree: &TransactionalTree,
    name: &'static str,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(value) => decode(name, &value)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
        None => Ok(None),
    }
}

fn tx_error(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => StoreError::Sled(err),
    }
}

type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Batches durability: one thread flushes sled for every waiter that queued up while the
/// previous flush ran, so N concurrent submissions cost about one fsync, not N.
struct GroupCommit {
    requests: Mutex<Option<mpsc::Sender<Waiter>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<CommitCounters>,
}

#[derive(Default)]
struct CommitCounters {
    durable_writes: AtomicU64,
    flushes: AtomicU64,
}

impl GroupCommit {
    fn start(db: sled::Db) -> Self {
        let (requests, queue) = mpsc::channel::<Waiter>();
        let counters = Arc::new(CommitCounters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("store-group-commit".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    // Everyone queued now made their writes before queueing, hence before
                    // this flush starts: one flush covers them all.
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter());
                    let result = db.flush().map(drop).map_err(|err| err.to_string());
                    thread_counters.flushes.fetch_add(1, Ordering::Relaxed);
                    thread_counters
                        .durable_writes
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for waiter in batch {
                        // A waiter whose request was cancelled no longer listens; that is fine.
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .ok();
        Self {
            requests: Mutex::new(thread.is_some().then_some(requests)),
            thread: Mutex::new(thread),
            counters,
        }
    }

    fn request(&self, waiter: Waiter) -> Result<(), StoreError> {
        let requests = self
            .requests
            .lock()
            .map_err(|_| StoreError::CommitThreadGone)?;
        requests
            .as_ref()
            .ok_or(StoreError::CommitThreadGone)?
            .send(waiter)
            .map_err(|_| StoreError::CommitThreadGone)
    }

    fn stats(&self) -> DurabilityStats {
        DurabilityStats {
            durable_writes: self.counters.durable_writes.load(Ordering::Relaxed),
            flushes: self.counters.flushes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the channel ends the thread after it serves what is queued; joining it
        // releases its handle on the database before the store reports itself closed.
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut thread| thread.take()) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_spec() -> NewJob {
        NewJob {
            distributor: "portal".into(),
            title: "t".into(),
            description: "d".into(),
            module_sha256: Sha256Digest::of(b"module"),
            module_bytes: 6,
            policy: JobPolicy::default(),
            expires_ms: u64::MAX,
        }
    }

    #[test]
    fn unit_keys_sort_by_job_then_index() {
        let a = UnitKey {
            job: JobId(1),
            index: 300,
        }
        .to_bytes();
        let b = UnitKey {
            job: JobId(2),
            index: 0,
        }
        .to_bytes();
        assert!(a < b);
        assert_eq!(
            UnitKey::from_bytes(&a).unwrap(),
            UnitKey {
                job: JobId(1),
                index: 300
            }
        );
    }

    /// Opens a store just closed: sled's background threads let go of the directory's lock
    /// shortly after the last handle is dropped, not always before.
    fn reopen(dir: &Path) -> Store {
        for _ in 0..250 {
            if let Ok(store) = Store::open(dir) {
                return store;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Store::open(dir).unwrap()
    }

    #[test]
    fn a_named_job_is_created_once_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = vec![vec![1], vec![2]];
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(
                store
                    .create_job(demo_spec(), &inputs, 0, Some("demo"))
                    .unwrap()
                    .is_some()
            );
            assert!(
                store
                    .create_job(demo_spec(), &inputs, 0, Some("demo"))
                    .unwrap()
                    .is_none()
            );
            store.flush().unwrap();
        }
        let store = reopen(dir.path());
        assert!(
            store
                .create_job(demo_spec(), &inputs, 0, Some("demo"))
                .unwrap()
                .is_none()
        );
        assert_eq!(store.jobs().unwrap().len(), 1);
        let counts = store.unit_counts().unwrap();
        assert_eq!(
            counts
                .values()
                .map(|c| c.done + c.leased + c.failed)
                .sum::<u64>(),
            0
        );
        assert_eq!(store.pending_units(None, 10, 10).unwrap().found.len(), 2);
    }

    #[test]
    fn pending_scan_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let inputs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
        store.create_job(demo_spec(), &inputs, 0, None).unwrap();
        let first = store.pending_units(None, 4, 100).unwrap();
        assert_eq!(first.found.len(), 4);
        assert!(!first.at_end);
        let rest = store.pending_units(first.last_scanned, 100, 100).unwrap();
        assert_eq!(rest.found.len(), 6);
        assert_eq!(rest.found[0].index, 4);
        assert!(rest.at_end);
        let limited = store.pending_units(None, 100, 3).unwrap();
        assert_eq!(limited.found.len(), 3);
        assert!(!limited.at_end);
    }
}
