//! The records the store keeps, and the outcomes of its transitions: plain data, no sled.

use cyclepool_shared::distributor::{
    AccountId, Category, DeclarationSignature, GroupId, JobStatus, Review, SiteId,
};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{ReportKind, base64_bytes};
use cyclepool_shared::range::RangeUnits;
use cyclepool_shared::transparency::LogEvent;
use cyclepool_shared::{JobId, LeaseId, Nonce, Sha256Digest, Signature, VolunteerId};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::replication::{Replica, UnitChange};

/// The address of one unit: its job and its index within the job. Keys sort by job, then index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitKey {
    pub job: JobId,
    pub index: u64,
}

impl UnitKey {
    pub(super) fn to_bytes(self) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.job.0.to_be_bytes());
        key[8..].copy_from_slice(&self.index.to_be_bytes());
        key
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
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
    /// The distributor account that owns the job; `None` for the portal's own (admin) jobs.
    #[serde(default)]
    pub owner: Option<AccountId>,
    #[serde(default)]
    pub status: JobStatus,
    /// Only members of this group may compute the job.
    #[serde(default)]
    pub group: Option<GroupId>,
    /// Higher priorities are served first.
    #[serde(default)]
    pub priority: u8,
    /// The job's share of volunteers among jobs of its priority.
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub inputs_sha256: Option<Sha256Digest>,
    /// The distributor's signature over the job's declaration.
    #[serde(default)]
    pub declaration: Option<DeclarationSignature>,
    /// The portal's review: only an approved job is served.
    #[serde(default)]
    pub review: Review,
    #[serde(default)]
    pub category: Category,
    /// The job's latest `published` entry in the transparency log.
    #[serde(default)]
    pub log_seq: Option<u64>,
    /// A range job's units: each is stored only once it is first leased, made from the range
    /// until then (`store::JobInputs::Range`). `None` for a job whose units were all stored at
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeUnits>,
}

impl JobRecord {
    /// Whether the job hands out work: active and published (approved in review).
    pub fn is_served(&self) -> bool {
        self.status == JobStatus::Active && self.review == Review::Approved
    }

    /// The transparency log's record of this job's publication.
    pub fn published_event(&self) -> LogEvent {
        LogEvent::Published {
            job: self.id,
            title: self.title.clone(),
            distributor: self.distributor.clone(),
            owner: self.owner,
            module_sha256: self.module_sha256,
            inputs_sha256: self.inputs_sha256,
            declared_by: self.declaration.map(|declaration| declaration.public_key),
        }
    }
}

fn default_weight() -> u32 {
    1
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
    pub owner: Option<AccountId>,
    pub group: Option<GroupId>,
    pub priority: u8,
    pub weight: u32,
    pub declaration: Option<DeclarationSignature>,
    pub category: Category,
    /// Where the job starts in review: `pending` for jobs made through the API, which are
    /// published (and logged) by approval.
    pub review: Review,
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
    /// Volunteers whose lease on the unit failed (they reported an error, or `verify`
    /// rejected their output): the unit does not go to them again, so that no single
    /// volunteer can use up its error allowance and make it fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_by: Vec<VolunteerId>,
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
            failed_by: Vec::new(),
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
    /// The embedding site the lease was asked for through (`embed.js`): when the result is
    /// credited, the site is credited too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteId>,
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
    /// The lease's nonce, kept with the result so that its signature can be checked even once
    /// lease records are forgotten (absent in results stored before it was added).
    #[serde(default)]
    pub nonce: Option<Nonce>,
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
    /// How many replicas this volunteer has handed in: the next position in its list of recent
    /// units (the `recent` tree, whose last [`RECENT_UNITS`] are withdrawn if it is caught).
    #[serde(default)]
    pub recent_count: u64,
    /// The recent units as stores before the `recent` tree kept them: read when the volunteer
    /// is caught, never added to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_units: Vec<UnitKey>,
}

/// How many of a volunteer's most recent units backtracking can reach.
pub const RECENT_UNITS: u64 = 4_096;

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
    /// Results accepted as replicas (spot checks are not replicas). Counted from the stored
    /// replicas at start; replicas withdrawn by backtracking leave it only at the next start.
    pub results: u64,
}
