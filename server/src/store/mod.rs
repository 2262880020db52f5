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
use std::sync::{PoisonError, RwLock};

use cyclepool_shared::distributor::{JobStatus, inputs_digest};
use cyclepool_shared::protocol::DurabilityStats;
use cyclepool_shared::range::RangeUnits;
use cyclepool_shared::{JobId, LeaseId, Sha256Digest, VolunteerId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

mod accounts;
mod commit;
mod listing;
mod records;
mod review;
mod sites;
mod work;

pub use accounts::{AccountRecord, GroupRecord, SessionRecord, TermsAcceptance, TokenRecord};
pub use records::*;
pub use review::AbuseRecord;
pub use sites::{SiteRecord, SiteRegistration};

use commit::GroupCommit;

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

/// The store's page cache unless configured (`--cache-mib`): sled's own default is 1 GiB.
pub const DEFAULT_CACHE_MIB: u64 = 256;

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
    /// Each volunteer's most recent units, for backtracking: volunteer ‖ position (u64 BE) →
    /// unit key. Kept apart from `volunteers` so that a result adds one small record instead of
    /// rewriting a list of thousands.
    recent: sled::Tree,
    accounts: sled::Tree,
    tokens: sled::Tree,
    sessions: sled::Tree,
    groups: sled::Tree,
    invites: sled::Tree,
    members: sled::Tree,
    memberships: sled::Tree,
    sites: sled::Tree,
    site_origins: sled::Tree,
    site_credit: sled::Tree,
    /// The transparency log: entry position (u64 BE) → `LogEntry`.
    log: sled::Tree,
    /// Abuse reports for the admin: report id (u64 BE) → `AbuseRecord`.
    abuse: sled::Tree,
    /// The range jobs, whose units are stored only once first leased (see [`JobInputs`]): a
    /// unit of one of these jobs that is not in `units` is fresh, and made from its range.
    ranges: RwLock<HashMap<JobId, FreshUnits>>,
    commit: GroupCommit,
}

/// How a new job's units are made.
#[derive(Debug, Clone, Copy)]
pub enum JobInputs<'a> {
    /// One unit per input, each stored at creation.
    List(&'a [Vec<u8>]),
    /// The units of a range, each stored only once it is first leased: creating a job of
    /// millions of units writes one record, and a unit nobody has leased yet costs nothing.
    Range(RangeUnits),
}

/// What a range job's units are before they are stored: their inputs, and the replicas each
/// wants at first.
#[derive(Debug, Clone, Copy)]
struct FreshUnits {
    range: RangeUnits,
    wanted: u32,
}

impl FreshUnits {
    fn of(job: &JobRecord) -> Option<Self> {
        job.range.map(|range| Self {
            range,
            wanted: job.policy.initial_replicas,
        })
    }

    fn unit(&self, index: u64) -> Option<UnitRecord> {
        self.range
            .input(index)
            .map(|input| UnitRecord::new(input, self.wanted))
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    /// Opens (or creates) the store in `dir` with the default page cache. Fails if another
    /// process has it open.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MIB << 20)
    }

    /// Opens (or creates) the store in `dir`, its page cache at most `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability comes from explicit group commits; the periodic flush only bounds
            // how much unacknowledged state (leases) a crash can lose.
            .flush_every_ms(Some(500))
            .open()?;
        let jobs = db.open_tree("jobs")?;
        let mut ranges = HashMap::new();
        for value in jobs.iter().values() {
            let job: JobRecord = decode("jobs", &value?)?;
            if let Some(fresh) = FreshUnits::of(&job) {
                ranges.insert(job.id, fresh);
            }
        }
        Ok(Self {
            meta: db.open_tree("meta")?,
            jobs,
            units: db.open_tree("units")?,
            leases: db.open_tree("leases")?,
            results: db.open_tree("results")?,
            modules: db.open_tree("modules")?,
            reports: db.open_tree("reports")?,
            credit: db.open_tree("credit")?,
            known: db.open_tree("known")?,
            volunteers: db.open_tree("volunteers")?,
            recent: db.open_tree("recent")?,
            accounts: db.open_tree("accounts")?,
            tokens: db.open_tree("tokens")?,
            sessions: db.open_tree("sessions")?,
            groups: db.open_tree("groups")?,
            invites: db.open_tree("invites")?,
            members: db.open_tree("members")?,
            memberships: db.open_tree("memberships")?,
            log: db.open_tree("log")?,
            abuse: db.open_tree("abuse")?,
            sites: db.open_tree("sites")?,
            site_origins: db.open_tree("site_origins")?,
            site_credit: db.open_tree("site_credit")?,
            ranges: RwLock::new(ranges),
            commit: GroupCommit::start(db.clone()),
            db,
        })
    }

    /// Creates a job with its units, atomically. With `once`, the job is created only if no
    /// job was ever created under that name (used for the demo job); returns `None` then.
    /// Hashes every input (the job's `inputs_sha256`): for ten million range units, about a
    /// second of one core.
    pub fn create_job(
        &self,
        spec: NewJob,
        inputs: JobInputs<'_>,
        now_ms: u64,
        once: Option<&str>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let wanted = spec.policy.initial_replicas;
        let (list, range): (&[Vec<u8>], _) = match inputs {
            JobInputs::List(list) => (list, None),
            JobInputs::Range(range) => (&[], Some(range)),
        };
        let (units, inputs_sha256) = match range {
            Some(range) => (range.units(), inputs_digest(range.inputs())),
            None => (list.len() as u64, inputs_digest(list)),
        };
        let job = JobRecord {
            id: JobId(self.db.generate_id()?),
            distributor: spec.distributor,
            title: spec.title,
            description: spec.description,
            module_sha256: spec.module_sha256,
            module_bytes: spec.module_bytes,
            policy: spec.policy,
            units,
            created_ms: now_ms,
            expires_ms: spec.expires_ms,
            owner: spec.owner,
            status: JobStatus::Active,
            group: spec.group,
            priority: spec.priority,
            weight: spec.weight,
            inputs_sha256: Some(inputs_sha256),
            declaration: spec.declaration,
            review: spec.review,
            category: spec.category,
            log_seq: None,
            range,
        };
        let encoded_job = encode(&job);
        let encoded_units: Vec<([u8; 16], Vec<u8>)> = list
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
        if !created {
            return Ok(None);
        }
        if let Some(fresh) = FreshUnits::of(&job) {
            self.ranges
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(job.id, fresh);
        }
        Ok(Some(job))
    }

    /// `job`'s fresh units, if it is a range job.
    fn fresh_units(&self, job: JobId) -> Option<FreshUnits> {
        self.ranges
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&job)
            .copied()
    }

    /// The unit at `key` as its range makes it, if its job is a range job that has such a
    /// unit: what a unit not (yet) stored is.
    fn fresh_unit(&self, key: UnitKey) -> Option<UnitRecord> {
        self.fresh_units(key.job)
            .and_then(|fresh| fresh.unit(key.index))
    }

    /// A unit as a transaction sees it: as stored, or fresh if its range job has not stored it
    /// yet (writing it back stores it).
    fn unit_in(&self, units: &TransactionalTree, key: UnitKey) -> TxResult<Option<UnitRecord>> {
        match get::<UnitRecord>(units, "units", &key.to_bytes())? {
            Some(unit) => Ok(Some(unit)),
            None => Ok(self.fresh_unit(key)),
        }
    }

    /// Every job, in creation order.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.jobs
            .iter()
            .values()
            .map(|value| decode("jobs", &value?))
            .collect()
    }

    /// Replaces a job's record (its status, say). A plain insert: durable with the next flush,
    /// or await [`Store::durable`].
    pub fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.jobs.insert(job.id.0.to_be_bytes(), encode(job))?;
        Ok(())
    }

    /// Counts units by state, and the results they hold, per job. Scans every unit: used once
    /// at start.
    pub fn unit_counts(&self) -> Result<HashMap<JobId, UnitCounts>, StoreError> {
        let mut counts: HashMap<JobId, UnitCounts> = HashMap::new();
        for entry in self.units.iter() {
            let (key, value) = entry?;
            let key = UnitKey::from_bytes(&key)?;
            let unit: UnitRecord = decode("units", &value)?;
            let count = counts.entry(key.job).or_default();
            count.leased += unit.active.len() as u64;
            count.results += unit.replicas.len() as u64;
            match unit.state {
                UnitState::Open => {}
                UnitState::Done { .. } => count.done += 1,
                UnitState::Failed => count.failed += 1,
            }
        }
        Ok(counts)
    }

    /// Up to `limit` pending units of `job` after unit index `after` (from its first unit when
    /// `None`), looking at most at `scan_limit` units and never past the job's last unit, so
    /// that one job's feeder neither stalls the caller nor wanders into the next job's units.
    /// A range job's fresh units (not stored: never leased) are pending too.
    pub fn pending_units_of_job(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
        scan_limit: usize,
    ) -> Result<PendingPage, StoreError> {
        let mut page = PendingPage {
            found: Vec::new(),
            last_scanned: after.map(|index| UnitKey { job, index }),
            at_end: false,
        };
        let first = match after {
            None => 0,
            Some(index) => match index.checked_add(1) {
                Some(next) => next,
                None => {
                    page.at_end = true;
                    return Ok(page);
                }
            },
        };
        let start = UnitKey { job, index: first }.to_bytes();
        let end = UnitKey {
            job,
            index: u64::MAX,
        }
        .to_bytes();
        let mut stored = self.units.range(start..=end).peekable();
        // Indices from `next` up to the next stored unit (or the job's end) are fresh units.
        let fresh_end = self.fresh_units(job).map_or(0, |fresh| fresh.range.units());
        let mut next = first;
        let mut scanned = 0;
        while page.found.len() < limit && scanned < scan_limit {
            scanned += 1;
            let next_stored = match stored.peek() {
                Some(Ok((key, _))) => Some(UnitKey::from_bytes(key)?.index),
                Some(Err(_)) => match stored.next() {
                    Some(Err(err)) => return Err(err.into()),
                    _ => None,
                },
                None => None,
            };
            if next < fresh_end && next_stored.is_none_or(|index| next < index) {
                let key = UnitKey { job, index: next };
                page.found.push(key);
                page.last_scanned = Some(key);
                next += 1;
                continue;
            }
            let Some(entry) = stored.next() else {
                page.at_end = true;
                return Ok(page);
            };
            let (key, value) = entry?;
            let key = UnitKey::from_bytes(&key)?;
            let unit: UnitRecord = decode("units", &value)?;
            if unit.wants_replica() {
                page.found.push(key);
            }
            page.last_scanned = Some(key);
            next = key.index.saturating_add(1);
        }
        // Stopped by a limit: at the end only if nothing of the job follows. (A read error
        // here counts as "something follows"; the next page reports it.)
        page.at_end = next >= fresh_end && stored.next().is_none();
        Ok(page)
    }

    /// Every active lease with its record. Used once at start to rebuild the expiry index and
    /// the set of spot checks out.
    pub fn active_lease_records(&self) -> Result<Vec<(LeaseId, LeaseRecord)>, StoreError> {
        let mut active = Vec::new();
        for entry in self.leases.iter() {
            let (key, value) = entry?;
            let lease: LeaseRecord = decode("leases", &value)?;
            if lease.state == LeaseState::Active {
                active.push((lease_id_from_key(&key)?, lease));
            }
        }
        Ok(active)
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

    /// Stores a module under its digest. Storing the same module twice is harmless.
    pub fn put_module(&self, digest: Sha256Digest, bytes: &[u8]) -> Result<(), StoreError> {
        self.modules.insert(digest.as_bytes(), bytes)?;
        Ok(())
    }

    /// A module's bytes, if uploaded.
    pub fn module(&self, digest: Sha256Digest) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.modules.get(digest.as_bytes())?)
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

    /// One unit, if it exists: as stored, or fresh (a range job's unit never leased).
    pub fn unit(&self, key: UnitKey) -> Result<Option<UnitRecord>, StoreError> {
        match self.units.get(key.to_bytes())? {
            Some(value) => decode("units", &value).map(Some),
            None => Ok(self.fresh_unit(key)),
        }
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

    /// One volunteer's credit: zeros for a volunteer with no accepted result.
    pub fn credit_of(&self, volunteer: VolunteerId) -> Result<CreditRecord, StoreError> {
        Ok(self
            .credit
            .get(volunteer.as_bytes())?
            .map(|value| decode("credit", &value))
            .transpose()?
            .unwrap_or_default())
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

    /// Every stored unit with its state, in key order (for the audit tool). A range job's
    /// fresh units are not among them.
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

fn result_key(unit: UnitKey, lease: LeaseId) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&unit.to_bytes());
    key[16..].copy_from_slice(lease.as_bytes());
    key
}

/// The key of a volunteer's `position`th recent unit in the `recent` tree.
fn recent_key(volunteer: VolunteerId, position: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(volunteer.as_bytes());
    key[32..].copy_from_slice(&position.to_be_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use cyclepool_shared::manifest::JobPolicy;

    fn demo_spec() -> NewJob {
        NewJob {
            distributor: "portal".into(),
            title: "t".into(),
            description: "d".into(),
            module_sha256: Sha256Digest::of(b"module"),
            module_bytes: 6,
            policy: JobPolicy::default(),
            expires_ms: u64::MAX,
            owner: None,
            group: None,
            priority: 0,
            weight: 1,
            declaration: None,
            category: cyclepool_shared::distributor::Category::Other,
            review: cyclepool_shared::distributor::Review::Approved,
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
                    .create_job(demo_spec(), JobInputs::List(&inputs), 0, Some("demo"))
                    .unwrap()
                    .is_some()
            );
            assert!(
                store
                    .create_job(demo_spec(), JobInputs::List(&inputs), 0, Some("demo"))
                    .unwrap()
                    .is_none()
            );
            store.flush().unwrap();
        }
        let store = reopen(dir.path());
        assert!(
            store
                .create_job(demo_spec(), JobInputs::List(&inputs), 0, Some("demo"))
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
        let job = store.jobs().unwrap()[0].id;
        let page = store.pending_units_of_job(job, None, 10, 10).unwrap();
        assert_eq!(page.found.len(), 2);
    }

    #[test]
    fn a_jobs_pending_scan_stays_within_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let inputs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i]).collect();
        let first = store
            .create_job(demo_spec(), JobInputs::List(&inputs), 0, None)
            .unwrap()
            .unwrap();
        let second = store
            .create_job(demo_spec(), JobInputs::List(&inputs), 0, None)
            .unwrap()
            .unwrap();
        let page = store
            .pending_units_of_job(first.id, None, 100, 100)
            .unwrap();
        assert_eq!(page.found.len(), 5);
        assert!(page.found.iter().all(|unit| unit.job == first.id));
        assert!(page.at_end);
        let part = store.pending_units_of_job(second.id, None, 2, 100).unwrap();
        assert_eq!(
            part.found.iter().map(|unit| unit.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(!part.at_end);
        let rest = store
            .pending_units_of_job(second.id, part.last_scanned.map(|unit| unit.index), 100, 3)
            .unwrap();
        assert_eq!(
            rest.found.iter().map(|unit| unit.index).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        // Stopped by the scan limit exactly at the job's last unit: at the end all the same.
        assert!(rest.at_end);
        assert!(rest.found.iter().all(|unit| unit.job == second.id));
        let past = store
            .pending_units_of_job(first.id, Some(u64::MAX), 100, 100)
            .unwrap();
        assert!(past.found.is_empty() && past.at_end);
    }

    #[test]
    fn pending_scan_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let inputs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
        let job = store
            .create_job(demo_spec(), JobInputs::List(&inputs), 0, None)
            .unwrap()
            .unwrap()
            .id;
        let first = store.pending_units_of_job(job, None, 4, 100).unwrap();
        assert_eq!(first.found.len(), 4);
        assert!(!first.at_end);
        let after = first.last_scanned.map(|unit| unit.index);
        let rest = store.pending_units_of_job(job, after, 100, 100).unwrap();
        assert_eq!(rest.found.len(), 6);
        assert_eq!(rest.found[0].index, 4);
        assert!(rest.at_end);
        let limited = store.pending_units_of_job(job, None, 100, 3).unwrap();
        assert_eq!(limited.found.len(), 3);
        assert!(!limited.at_end);
    }

    /// A lease record for `unit`, as the scheduler makes one.
    fn lease_on(unit: UnitKey, volunteer: u8) -> LeaseRecord {
        LeaseRecord {
            unit,
            volunteer: VolunteerId::from_bytes([volunteer; 32]),
            nonce: cyclepool_shared::Nonce::from_bytes([volunteer; 16]),
            issued_ms: 0,
            deadline_ms: 1_000,
            state: LeaseState::Active,
            spot_check: false,
            site: None,
        }
    }

    #[test]
    fn a_range_jobs_units_are_stored_only_once_leased() {
        let dir = tempfile::tempdir().unwrap();
        let range = RangeUnits::new(100, 110, 2).unwrap();
        let job = {
            let store = Store::open(dir.path()).unwrap();
            let job = store
                .create_job(demo_spec(), JobInputs::Range(range), 0, None)
                .unwrap()
                .unwrap();
            assert_eq!(job.units, 5);
            assert_eq!(job.range, Some(range));
            // The digest covers every input, as if each had been stored.
            let inputs: Vec<Vec<u8>> = range.inputs().collect();
            assert_eq!(job.inputs_sha256, Some(inputs_digest(&inputs)));
            assert_eq!(store.units().count(), 0, "nothing stored at creation");
            let fresh = store
                .unit(UnitKey {
                    job: job.id,
                    index: 4,
                })
                .unwrap()
                .unwrap();
            assert_eq!(fresh.input, range.input(4).unwrap());
            assert_eq!(fresh.state, UnitState::Open);
            assert_eq!(
                store
                    .unit(UnitKey {
                        job: job.id,
                        index: 5
                    })
                    .unwrap(),
                None
            );
            // Leasing units 1 and 3 stores them, and only them.
            for (index, id) in [(1, 1u8), (3, 3)] {
                let unit = UnitKey { job: job.id, index };
                let grants = store
                    .grant(&[(LeaseId::from_bytes([id; 16]), lease_on(unit, id))])
                    .unwrap();
                let input = range.input(index).unwrap();
                assert!(
                    matches!(grants.as_slice(), [Grant::Granted { input: got, .. }] if *got == input)
                );
            }
            // Two leases on one unit in one call: the second sees the first, and the unit
            // wants only one replica.
            let first = UnitKey {
                job: job.id,
                index: 0,
            };
            let grants = store
                .grant(&[
                    (LeaseId::from_bytes([7; 16]), lease_on(first, 7)),
                    (LeaseId::from_bytes([8; 16]), lease_on(first, 8)),
                ])
                .unwrap();
            assert!(
                matches!(grants.as_slice(), [Grant::Granted { .. }, Grant::NotWanted]),
                "{grants:?}"
            );
            let stored: Vec<u64> = store.units().map(|unit| unit.unwrap().0.index).collect();
            assert_eq!(stored, [0, 1, 3]);
            store.flush().unwrap();
            job
        };
        // After a restart, the gaps and the tail are still fresh, pending units.
        let store = reopen(dir.path());
        let page = store.pending_units_of_job(job.id, None, 100, 100).unwrap();
        let found: Vec<u64> = page.found.iter().map(|unit| unit.index).collect();
        // Units 0, 1 and 3 have their one replica out.
        assert_eq!(found, [2, 4]);
        assert!(page.at_end);
        // In pages, by either limit, resuming where the last one stopped.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.pending_units_of_job(job.id, after, 1, 2).unwrap();
            seen.extend(page.found.iter().map(|unit| unit.index));
            after = page.last_scanned.map(|unit| unit.index);
            if page.at_end {
                break;
            }
        }
        assert_eq!(seen, [2, 4]);
        let none = store
            .pending_units_of_job(job.id, Some(4), 100, 100)
            .unwrap();
        assert!(none.found.is_empty() && none.at_end);
    }

    /// The audit compares every volunteer's credit with its results marked credited, so a
    /// result credited twice (here: a credit record tampered with) is reported.
    #[test]
    fn the_audit_reports_credit_that_is_not_the_credited_results() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut spec = demo_spec();
        spec.policy.initial_replicas = 1;
        spec.policy.min_quorum = 1;
        let policy = spec.policy.clone();
        let job = store
            .create_job(spec, JobInputs::List(&[vec![1, 2, 3]]), 0, None)
            .unwrap()
            .unwrap();
        let unit = UnitKey {
            job: job.id,
            index: 0,
        };
        let lease = lease_on(unit, 5);
        let id = LeaseId::from_bytes([5; 16]);
        store.grant(&[(id, lease.clone())]).unwrap();
        let output = vec![3, 2, 1];
        let result = IncomingResult {
            lease: id,
            volunteer: lease.volunteer,
            nonce: lease.nonce,
            output_sha256: Sha256Digest::of(&output),
            output,
            signature: cyclepool_shared::Signature::from_bytes([0; 64]),
            compute_ms: 7,
        };
        let outcomes = store.submit(&[result], 10, &|_| policy.clone()).unwrap();
        assert!(
            matches!(outcomes.as_slice(), [SubmitOutcome::Accepted { .. }]),
            "{outcomes:?}"
        );
        let credit_problems = |store: &Store| -> Vec<String> {
            crate::audit::audit(store, false)
                .unwrap()
                .problems
                .into_iter()
                .filter(|problem| problem.contains("credit"))
                .collect()
        };
        assert_eq!(credit_problems(&store), Vec::<String>::new());
        let doubled = CreditRecord {
            results: 2,
            compute_ms: 14,
        };
        store
            .credit
            .insert(lease.volunteer.as_bytes(), encode(&doubled))
            .unwrap();
        let problems = credit_problems(&store);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("Some((2, 14))"), "{problems:?}");
        assert!(problems[0].contains("Some((1, 7))"), "{problems:?}");
    }
}
