//! The scheduler: which unit goes to whom, lease deadlines, re-issue, and progress counts.
//!
//! The store holds the truth; the scheduler keeps in memory only what makes leasing cheap,
//! all of it rebuilt from the store at start: a ready queue fed from the units tree by a
//! cursor (as BOINC's feeder feeds its scheduler), an index of active leases by deadline,
//! and per-job counts. A unit in the ready queue is only a hint: the store's grant
//! transaction decides (does the unit want another replica, may this volunteer have it?), so
//! a stale or duplicated hint can never lease a unit beyond its replicas.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{JobStats, Lease, StatsResponse};
use cyclepool_shared::{JobId, LeaseId, Nonce, Sha256Digest, VolunteerId};
use rand::{Rng, RngCore};

use crate::clock::Clock;
use crate::replication::UnitChange;
use crate::store::{
    Grant, IncomingResult, JobRecord, LeaseRecord, LeaseState, ReleaseOutcome, ReportRecord, Store,
    StoreError, SubmitOutcome, UnitCounts, UnitKey,
};

/// How many pending units one feeder pass moves into the ready queue.
const FEED_BATCH: usize = 512;
/// How many units one feeder pass may scan, so a long run of finished units cannot stall a
/// lease request.
const FEED_SCAN_LIMIT: usize = 8_192;
/// How many feeder passes one lease request may make before answering with what it has.
const FEED_MAX_PAGES: usize = 8;
/// How many queued units one lease request may pass over because the volunteer already has
/// (or had) a replica of them, before answering with what it has.
const MAX_SKIPPED: usize = 256;

/// Leases units and accepts results, keeping the in-memory indexes in step with the store.
pub struct Scheduler {
    store: Arc<Store>,
    clock: Clock,
    inner: Mutex<Inner>,
}

struct Inner {
    jobs: HashMap<JobId, JobRecord>,
    counts: HashMap<JobId, UnitCounts>,
    /// Units that want a replica: one entry per replica wanted (an entry is a hint).
    ready: VecDeque<UnitKey>,
    /// Where the feeder's next scan of the units tree starts; `None` is the beginning.
    feeder_cursor: Option<UnitKey>,
    /// True once the feeder has scanned to the end with nothing new since.
    feeder_at_end: bool,
    /// Active leases by deadline, with their job (whose policy judges the loss).
    deadlines: BTreeSet<(u64, LeaseId, JobId)>,
    /// Units whose answer the server computed itself, by job: the pool of spot checks.
    known: HashMap<JobId, Vec<u64>>,
}

/// Where a unit that wants a replica again joins the queue.
#[derive(Clone, Copy)]
enum Requeue {
    /// Overdue work (an expired lease) goes first.
    Front,
    /// Work that just failed, or a replica asked for after a disagreement, waits its turn:
    /// at the front, a unit that fails every time would starve the rest.
    Back,
}

impl Scheduler {
    /// Loads jobs, counts and active leases from the store.
    pub fn start(store: Arc<Store>, clock: Clock) -> Result<Self, StoreError> {
        let jobs = store.jobs()?.into_iter().map(|job| (job.id, job)).collect();
        let counts = store.unit_counts()?;
        let deadlines = store
            .active_leases()?
            .into_iter()
            .map(|(id, deadline, job)| (deadline, id, job))
            .collect();
        let mut known: HashMap<JobId, Vec<u64>> = HashMap::new();
        for unit in store.known_units()? {
            known.entry(unit.job).or_default().push(unit.index);
        }
        Ok(Self {
            store,
            clock,
            inner: Mutex::new(Inner {
                jobs,
                counts,
                ready: VecDeque::new(),
                feeder_cursor: None,
                feeder_at_end: false,
                deadlines,
                known,
            }),
        })
    }

    /// Makes a newly created job's units available.
    pub fn add_job(&self, job: JobRecord) {
        let mut inner = self.lock();
        inner.counts.insert(job.id, UnitCounts::default());
        // New units sort after every existing key (job ids only grow), so the cursor
        // will reach them; it just has to run again.
        inner.feeder_at_end = false;
        inner.jobs.insert(job.id, job);
    }

    /// Records that the server now knows `unit`'s answer: it can serve as a spot check.
    pub fn add_known(&self, unit: UnitKey) {
        self.lock()
            .known
            .entry(unit.job)
            .or_default()
            .push(unit.index);
    }

    /// Leases up to `max_units` units to `volunteer`, never two replicas of one unit. Expired
    /// leases are reclaimed first, so their units are the first handed out again. Some leases
    /// are spot checks (per the job's `spot_check_rate`); nothing in them says so.
    pub fn lease(
        &self,
        volunteer: VolunteerId,
        max_units: u32,
        exclude_jobs: &[JobId],
    ) -> Result<Vec<Lease>, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        self.expire_due(&mut inner, now)?;
        let mut leases = Vec::new();
        let mut skipped = Vec::new();
        let mut rng = rand::rng();
        let mut attempts = 0;
        while leases.len() < max_units as usize
            && skipped.len() < MAX_SKIPPED
            && attempts < max_units as usize + MAX_SKIPPED
        {
            attempts += 1;
            let (key, spot_check) = match Self::pick_spot_check(&inner, &mut rng, exclude_jobs) {
                Some(key) => (key, true),
                None => match self.next_ready(&mut inner)? {
                    Some(key) => (key, false),
                    None => break,
                },
            };
            if exclude_jobs.contains(&key.job) {
                // The volunteer opted out of this job; the unit keeps its place for others.
                if !spot_check {
                    skipped.push(key);
                }
                continue;
            }
            let Some(job) = inner.jobs.get(&key.job) else {
                continue;
            };
            let mut id = [0u8; 16];
            let mut nonce = [0u8; 16];
            rng.fill_bytes(&mut id);
            rng.fill_bytes(&mut nonce);
            let (id, nonce) = (LeaseId::from_bytes(id), Nonce::from_bytes(nonce));
            let deadline_ms = now.saturating_add(job.policy.lease_ttl_ms);
            let module_sha256 = job.module_sha256;
            let record = LeaseRecord {
                unit: key,
                volunteer,
                nonce,
                issued_ms: now,
                deadline_ms,
                state: LeaseState::Active,
                spot_check,
            };
            let (input, input_sha256) = match self.store.grant(id, &record)? {
                Grant::Granted {
                    input,
                    input_sha256,
                    wants_more,
                } => {
                    if wants_more {
                        // The next replica goes to someone else.
                        inner.ready.push_back(key);
                    }
                    (input, input_sha256)
                }
                Grant::NotWanted => continue,
                Grant::NotForThisVolunteer if spot_check => continue,
                Grant::NotForThisVolunteer => {
                    skipped.push(key);
                    continue;
                }
            };
            inner.deadlines.insert((deadline_ms, id, key.job));
            inner.counts.entry(key.job).or_default().leased += 1;
            leases.push(Lease {
                lease_id: id,
                nonce,
                job_id: key.job,
                unit: key.index,
                module_sha256,
                input,
                input_sha256,
                deadline_ms,
            });
        }
        // Units passed over keep their place for the next volunteer.
        for key in skipped.into_iter().rev() {
            inner.ready.push_front(key);
        }
        Ok(leases)
    }

    /// Records a result and waits until it is durable. The caller acknowledges only after
    /// this returns `Accepted` or `Duplicate`.
    /// `job` is the lease's job, which the caller has read with the lease (`None` for a lease
    /// that does not exist: the store will say so).
    pub async fn submit(
        &self,
        result: &IncomingResult,
        job: Option<JobId>,
    ) -> Result<SubmitOutcome, StoreError> {
        let policy = job.map(|job| self.policy_of_job(job)).unwrap_or_default();
        // The lookup locks the scheduler; it is called inside the store's transaction, while
        // this function holds no lock.
        let policy_of = |job: JobId| self.policy_of_job(job);
        let outcome = self
            .store
            .submit(result, self.clock.now_ms(), &policy, &policy_of)?;
        if let SubmitOutcome::Caught {
            unit,
            requeue,
            reopened,
        } = &outcome
        {
            let mut inner = self.lock();
            let counts = inner.counts.entry(unit.job).or_default();
            counts.leased = counts.leased.saturating_sub(1);
            inner.ready.extend(requeue.iter().copied());
            for key in reopened {
                Self::apply(&mut inner, *key, &UnitChange::Reopened, Requeue::Front);
            }
        }
        if let SubmitOutcome::Accepted { unit, change } = &outcome {
            // Count now, not after the flush: if the client hangs up while we wait, this
            // future is dropped, but the transaction has committed and the counts must follow.
            let mut inner = self.lock();
            let counts = inner.counts.entry(unit.job).or_default();
            counts.leased = counts.leased.saturating_sub(1);
            Self::apply(&mut inner, *unit, change, Requeue::Back);
        }
        if let SubmitOutcome::Accepted { .. } | SubmitOutcome::Duplicate = outcome {
            // A duplicate waits too: the first copy may have been written but not yet flushed
            // when the client gave up waiting and retried.
            self.store.durable().await?;
        }
        Ok(outcome)
    }

    /// Records a client's report; a named open lease of the sender ends, and if its unit wants
    /// a replica again it joins the back of the queue.
    pub fn report(&self, report: &ReportRecord, nonce: Option<Nonce>) -> Result<bool, StoreError> {
        let policy = self.policy_of_job(report.job);
        let outcome = self.store.report(report, nonce, &policy)?;
        Ok(self.lost(outcome))
    }

    /// Ends a lease whose output the job's `verify` rejected; if its unit wants a replica
    /// again it joins the back of the queue, to be computed by someone else.
    pub fn reject(
        &self,
        job: JobId,
        lease: LeaseId,
        volunteer: VolunteerId,
        nonce: Nonce,
        output_sha256: Sha256Digest,
    ) -> Result<bool, StoreError> {
        let policy = self.policy_of_job(job);
        let outcome = self
            .store
            .reject(lease, volunteer, nonce, output_sha256, &policy)?;
        Ok(self.lost(outcome))
    }

    /// A job, if it exists.
    pub fn job(&self, id: JobId) -> Option<JobRecord> {
        self.lock().jobs.get(&id).cloned()
    }

    /// Public progress of every job.
    pub fn stats(&self) -> StatsResponse {
        let inner = self.lock();
        let mut jobs: Vec<JobStats> = inner
            .jobs
            .values()
            .map(|job| {
                let counts = inner.counts.get(&job.id).copied().unwrap_or_default();
                JobStats {
                    job_id: job.id,
                    title: job.title.clone(),
                    module_sha256: job.module_sha256,
                    units: job.units,
                    done: counts.done,
                    leased: counts.leased,
                    failed: counts.failed,
                }
            })
            .collect();
        jobs.sort_by_key(|job| job.job_id);
        StatsResponse {
            jobs,
            durability: self.store.durability_stats(),
        }
    }

    /// Reclaims every lease whose deadline is before `now`.
    fn expire_due(&self, inner: &mut Inner, now: u64) -> Result<(), StoreError> {
        while let Some(&(deadline, id, job)) = inner.deadlines.first() {
            if deadline >= now {
                break;
            }
            inner.deadlines.pop_first();
            let policy = inner
                .jobs
                .get(&job)
                .map(|job| job.policy.clone())
                .unwrap_or_default();
            // `None` means the lease completed (or ended) already: nothing to reclaim.
            if let Some((unit, change)) = self.store.expire(id, now, &policy)? {
                let counts = inner.counts.entry(unit.job).or_default();
                counts.leased = counts.leased.saturating_sub(1);
                Self::apply(inner, unit, &change, Requeue::Front);
            }
        }
        Ok(())
    }

    /// With the probability its job asks for, a unit with a known answer to lease as a spot
    /// check, from a job that still has work (a finished job's volunteers are not kept busy).
    fn pick_spot_check(
        inner: &Inner,
        rng: &mut impl Rng,
        exclude_jobs: &[JobId],
    ) -> Option<UnitKey> {
        for (job_id, units) in &inner.known {
            if exclude_jobs.contains(job_id) {
                continue;
            }
            let Some(job) = inner.jobs.get(job_id) else {
                continue;
            };
            let counts = inner.counts.get(job_id).copied().unwrap_or_default();
            let finished = counts.done + counts.failed >= job.units;
            if units.is_empty() || finished || job.policy.spot_check_rate <= 0.0 {
                continue;
            }
            if rng.random::<f64>() < job.policy.spot_check_rate {
                let index = units[rng.random_range(0..units.len())];
                return Some(UnitKey {
                    job: *job_id,
                    index,
                });
            }
        }
        None
    }

    /// Updates counts and queue after a lease ended without a result.
    fn lost(&self, outcome: ReleaseOutcome) -> bool {
        let ReleaseOutcome::Released { unit, change } = outcome else {
            return false;
        };
        let mut inner = self.lock();
        let counts = inner.counts.entry(unit.job).or_default();
        counts.leased = counts.leased.saturating_sub(1);
        Self::apply(&mut inner, unit, &change, Requeue::Back);
        true
    }

    /// Follows what a transition did to a unit.
    fn apply(inner: &mut Inner, unit: UnitKey, change: &UnitChange, requeue: Requeue) {
        let counts = inner.counts.entry(unit.job).or_default();
        match change {
            UnitChange::Decided { .. } => counts.done += 1,
            UnitChange::Failed => counts.failed += 1,
            UnitChange::Reopened => {
                counts.done = counts.done.saturating_sub(1);
                match requeue {
                    Requeue::Front => inner.ready.push_front(unit),
                    Requeue::Back => inner.ready.push_back(unit),
                }
            }
            UnitChange::WantsReplica => match requeue {
                Requeue::Front => inner.ready.push_front(unit),
                Requeue::Back => inner.ready.push_back(unit),
            },
            UnitChange::Unchanged | UnitChange::Late { .. } => {}
        }
    }

    fn policy_of_job(&self, job: JobId) -> JobPolicy {
        self.lock()
            .jobs
            .get(&job)
            .map(|job| job.policy.clone())
            .unwrap_or_default()
    }

    /// The next unit to try, refilling the ready queue from the store when it runs dry.
    fn next_ready(&self, inner: &mut Inner) -> Result<Option<UnitKey>, StoreError> {
        let mut pages = 0;
        while inner.ready.is_empty() && !inner.feeder_at_end && pages < FEED_MAX_PAGES {
            pages += 1;
            let page =
                self.store
                    .pending_units(inner.feeder_cursor, FEED_BATCH, FEED_SCAN_LIMIT)?;
            inner.ready.extend(page.found);
            inner.feeder_cursor = page.last_scanned;
            // Units behind the cursor become pending again only through expiry, which queues
            // them directly, and new jobs sort after it: at the end, the feeder can rest.
            inner.feeder_at_end = page.at_end;
        }
        Ok(inner.ready.pop_front())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the indexes inconsistent with the store
        // in a way that matters (the store decides every grant), so carry on with the data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
