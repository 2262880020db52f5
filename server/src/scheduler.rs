//! The scheduler: which unit goes to whom, lease deadlines, re-issue, and progress counts.
//!
//! The store holds the truth; the scheduler keeps in memory only what makes leasing cheap,
//! rebuilt from the store at start. Each job has its own ready queue, fed from that job's key
//! range of the units tree by its own cursor (as BOINC's feeder feeds its scheduler), so one
//! job's units never stand in front of another's. A unit in a ready queue is only a hint: the
//! store's grant transaction decides (does the unit want another replica, may this volunteer
//! have it?), so a stale or duplicated hint can never lease a unit beyond its replicas.
//!
//! Each lease request names what the volunteer may compute ([`LeaseFilter`]); jobs it may not
//! (paused, cancelled, expired, excluded, or restricted to a group it is not in) are never
//! touched. Among the jobs it may compute that have work, the highest priority is served
//! first, and jobs of one priority share units in proportion to their weight by stride
//! scheduling: each job has a pass, the lowest pass is served, and each unit leased adds
//! `STRIDE / weight` to it.
//!
//! The scheduler also keeps, for the distributor dashboard, each job's recently active
//! volunteers and a short history of its progress; these start empty at every start.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use cyclepool_shared::distributor::{
    Category, GroupId, JobProgress, JobStatus, ProgressSample, Review, SiteId,
};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{JobStats, Lease, StatsResponse};
use cyclepool_shared::signing::SecretKey;
use cyclepool_shared::transparency::LogEvent;
use cyclepool_shared::{JobId, LeaseId, Nonce, Sha256Digest, VolunteerId};
use rand::{Rng, RngCore};

use crate::clock::Clock;
use crate::replication::UnitChange;
use crate::store::{
    Grant, IncomingResult, JobRecord, LeaseRecord, LeaseState, ReleaseOutcome, ReportRecord, Store,
    StoreError, SubmitOutcome, UnitCounts, UnitKey,
};

/// How many pending units one feeder pass moves into a job's ready queue.
const FEED_BATCH: usize = 512;
/// How many units one feeder pass may scan, so a long run of finished units cannot stall a
/// lease request.
const FEED_SCAN_LIMIT: usize = 8_192;
/// How many feeder passes (over all jobs) one lease request may make before answering with
/// what it has.
const FEED_MAX_PAGES: usize = 8;
/// How many queued units one lease request may pass over because the volunteer already has
/// (or had) a replica of them, before answering with what it has.
const MAX_SKIPPED: usize = 256;
/// After passing over this many of one job's units in a request, the job is served only if
/// no other job can be: a volunteer holding replicas of one job's queued units still gets
/// the other jobs' units.
const MAX_SKIPPED_PER_JOB: usize = 64;
/// A weight-1 job's pass grows by this much per unit leased; a weight-`w` job's by
/// `STRIDE / w`.
const STRIDE: u64 = 1 << 20;
/// The largest weight the scheduler honours (the API accepts 1 to 1000).
const MAX_WEIGHT: u32 = 1_000;
/// How far a job's pass may lag behind the most advanced job it competes with. A job that
/// only some volunteers may compute (a group's, or one many exclude) falls behind while
/// others serve the rest; without a bound it would then take every volunteer that may
/// compute it for as long as it lagged.
const MAX_LAG: u64 = 64 * STRIDE;
/// A volunteer counts as active for a job this long after its last lease or result there.
pub const ACTIVE_WINDOW_MS: u64 = 5 * 60 * 1_000;
/// How many progress samples each job keeps (ten minutes at one every five seconds).
pub const HISTORY_SAMPLES: usize = 120;
/// A job whose progress did not change is sampled again after this long, so the chart's
/// time axis keeps moving.
pub const RESAMPLE_UNCHANGED_MS: u64 = 60_000;
/// How often the server samples progress.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(5);

/// The newest result's weight in a job's running estimate of its units' computing time.
const UNIT_TIME_WEIGHT: f64 = 0.05;

/// How much one lease request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// At most this many units.
    pub units: u32,
    /// About this much computing (ms) by each job's estimate of its units, if given: the
    /// request stops once the units picked reach it, after at least one. A unit of a job with
    /// no estimate yet counts as half of it.
    pub work_ms: Option<u64>,
}

impl Wanted {
    /// Just a number of units.
    pub fn units(units: u32) -> Self {
        Self {
            units,
            work_ms: None,
        }
    }
}

/// What one lease request's volunteer may compute.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseFilter<'a> {
    /// Jobs the volunteer opted out of.
    pub exclude_jobs: &'a [JobId],
    /// Restricted groups the volunteer belongs to.
    pub groups: &'a [GroupId],
    /// Categories the volunteer opted out of.
    pub exclude_categories: &'a [Category],
}

impl LeaseFilter<'_> {
    /// Whether this volunteer may be leased units of `job` at `now_ms`.
    pub fn admits(&self, job: &JobRecord, now_ms: u64) -> bool {
        job.is_served()
            && job.expires_ms > now_ms
            && !self.exclude_jobs.contains(&job.id)
            && !self.exclude_categories.contains(&job.category)
            && job.group.is_none_or(|group| self.groups.contains(&group))
    }
}

/// Leases units and accepts results, keeping the in-memory indexes in step with the store.
pub struct Scheduler {
    store: Arc<Store>,
    clock: Clock,
    inner: Mutex<Inner>,
    /// Every job's record as in `inner`, apart from it: the store's submission transaction
    /// looks policies up while it runs, and a lease request holds `inner` while it waits for a
    /// transaction, so looking them up in `inner` could deadlock; and each result's checks
    /// read its job here without waiting for a lease request to finish.
    records: RwLock<HashMap<JobId, Arc<JobRecord>>>,
}

struct Inner {
    /// Every job, by id (so every scan of them is in a fixed order).
    jobs: BTreeMap<JobId, JobState>,
    /// Active leases by deadline, with their job (whose policy judges the loss).
    deadlines: BTreeSet<(u64, LeaseId, JobId)>,
    /// Spot-check leases not yet past their deadline: their results are not replicas.
    spot_checks: HashSet<LeaseId>,
}

/// What the scheduler keeps of one job.
struct JobState {
    record: JobRecord,
    counts: UnitCounts,
    /// Unit indexes that want a replica: one entry per replica wanted (an entry is a hint).
    ready: VecDeque<u64>,
    /// The last unit index the feeder scanned; `None` before the first scan.
    cursor: Option<u64>,
    /// True once the feeder has scanned to the job's last unit. Units behind the cursor want
    /// a replica again only through requeues, which queue them directly, so the feeder rests.
    feeder_at_end: bool,
    /// Units passed over in the current lease request (the volunteer has or had a replica);
    /// they go back to the front of `ready` when the request ends.
    passed_over: Vec<u64>,
    /// The stride scheduler's pass: the lowest among jobs of one priority is served next.
    pass: u64,
    /// Units whose answer the server computed itself: the pool of spot checks.
    known: Vec<u64>,
    /// When each volunteer last got a lease of the job or had a result accepted.
    recent_volunteers: HashMap<VolunteerId, u64>,
    /// Validated units over time, oldest first.
    history: VecDeque<ProgressSample>,
    /// The computing time of this job's units (ms), a running average over the results
    /// accepted since the server started, as their volunteers reported it; `None` before the
    /// first. Only sizes lease requests that give `work_ms`, so a volunteer who lies about its
    /// times changes how many units others get at once, nothing else.
    unit_ms: Option<f64>,
}

impl JobState {
    fn new(record: JobRecord, counts: UnitCounts, pass: u64) -> Self {
        Self {
            record,
            counts,
            ready: VecDeque::new(),
            cursor: None,
            feeder_at_end: false,
            passed_over: Vec::new(),
            pass,
            known: Vec::new(),
            recent_volunteers: HashMap::new(),
            history: VecDeque::new(),
            unit_ms: None,
        }
    }

    /// Notes an accepted result's reported computing time, bounded by the job's unit budget
    /// (the watchdog stops any unit past it).
    fn note_unit_time(&mut self, compute_ms: u64) {
        let budget_ms = self.record.policy.unit_budget_ms.max(1) as f64;
        let unit_ms = (compute_ms as f64).clamp(1.0, budget_ms);
        self.unit_ms = Some(match self.unit_ms {
            Some(average) => average + UNIT_TIME_WEIGHT * (unit_ms - average),
            None => unit_ms,
        });
    }

    /// What one unit of this job takes of a request for `work_ms` of computing.
    fn unit_cost_ms(&self, work_ms: u64) -> f64 {
        self.unit_ms.unwrap_or(work_ms as f64 / 2.0)
    }

    /// Whether the job may have units that want a replica: queued, or not yet scanned.
    fn has_work(&self) -> bool {
        !self.ready.is_empty() || !self.feeder_at_end
    }

    /// Whether the job is served at all now (whoever asks).
    fn is_live(&self, now_ms: u64) -> bool {
        self.record.is_served() && self.record.expires_ms > now_ms
    }

    /// Whether every unit is decided or given up on.
    fn is_finished(&self) -> bool {
        self.counts.done + self.counts.failed >= self.record.units
    }

    /// How much one unit leased adds to the pass.
    fn stride(&self) -> u64 {
        STRIDE / u64::from(self.record.weight.clamp(1, MAX_WEIGHT))
    }
}

/// Where a unit that wants a replica again joins its job's queue.
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
        let counts = store.unit_counts()?;
        let mut jobs: BTreeMap<JobId, JobState> = store
            .jobs()?
            .into_iter()
            .map(|job| {
                let counts = counts.get(&job.id).copied().unwrap_or_default();
                (job.id, JobState::new(job, counts, 0))
            })
            .collect();
        for unit in store.known_units()? {
            if let Some(job) = jobs.get_mut(&unit.job) {
                job.known.push(unit.index);
            }
        }
        let mut deadlines = BTreeSet::new();
        let mut spot_checks = HashSet::new();
        for (id, lease) in store.active_lease_records()? {
            deadlines.insert((lease.deadline_ms, id, lease.unit.job));
            if lease.spot_check {
                spot_checks.insert(id);
            }
        }
        let records = jobs
            .iter()
            .map(|(id, job)| (*id, Arc::new(job.record.clone())))
            .collect();
        Ok(Self {
            store,
            clock,
            records: RwLock::new(records),
            inner: Mutex::new(Inner {
                jobs,
                deadlines,
                spot_checks,
            }),
        })
    }

    /// Makes a newly created job's units available. It starts at the lowest pass among the
    /// jobs of its priority that have work, so it shares with them from the first lease.
    /// Adding a job the scheduler already has only replaces its record.
    pub fn add_job(&self, job: JobRecord) {
        let now = self.clock.now_ms();
        self.publish_record(&job);
        let mut inner = self.lock();
        if let Some(known) = inner.jobs.get_mut(&job.id) {
            known.record = job;
            return;
        }
        let pass = inner.tier_min_pass(job.priority, job.id, now).unwrap_or(0);
        inner
            .jobs
            .insert(job.id, JobState::new(job, UnitCounts::default(), pass));
    }

    /// Records that the server now knows `unit`'s answer: it can serve as a spot check.
    pub fn add_known(&self, unit: UnitKey) {
        if let Some(job) = self.lock().jobs.get_mut(&unit.job) {
            job.known.push(unit.index);
        }
    }

    /// Leases what `wanted` says to `volunteer`, never two replicas of one unit, and only
    /// of jobs `filter` admits. Expired leases are reclaimed first, so their units are the
    /// first of their job handed out again. Some leases are spot checks (per the job's
    /// `spot_check_rate`); nothing in them says so. `site` is the embedding site the request
    /// came through, recorded with each lease for its credit.
    pub fn lease(
        &self,
        volunteer: VolunteerId,
        wanted: Wanted,
        filter: &LeaseFilter<'_>,
        site: Option<SiteId>,
    ) -> Result<Vec<Lease>, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        self.expire_due(&mut inner, now)?;
        let mut leases = Vec::new();
        let (mut inner, leased) =
            self.lease_into(inner, (volunteer, site), wanted, filter, now, &mut leases);
        // Units passed over keep their place for the next volunteer, even if a store error
        // ended the request (the feeder will not scan them again).
        inner.restore_passed_over();
        leased?;
        Ok(leases)
    }

    /// The lease loop: picks, grants, and collects into `leases`. It works in rounds: it picks
    /// as many units as are still wanted, grants them in one store transaction, and picks
    /// again for those not granted. A pick moves its job's pass as a grant would (and a refused
    /// grant moves it back), so the picks of one round interleave between jobs as single
    /// leases would. The lock is let go while the store grants a round (the units picked are
    /// out of their queues, and the store decides every grant), so that results and other
    /// requests are not held up by the transaction; it is given back with the outcome.
    fn lease_into<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        (volunteer, site): (VolunteerId, Option<SiteId>),
        wanted: Wanted,
        filter: &LeaseFilter<'_>,
        now: u64,
        leases: &mut Vec<Lease>,
    ) -> (MutexGuard<'a, Inner>, Result<(), StoreError>) {
        let work_ms = wanted.work_ms;
        let wanted = wanted.units as usize;
        // Computing picked so far by the jobs' estimates, granted or in the round.
        let mut work_picked_ms = 0.0;
        let mut skipped = 0;
        let mut attempts = 0;
        let mut pages_left = FEED_MAX_PAGES;
        let mut rng = rand::rng();
        loop {
            let mut round: Vec<(LeaseId, LeaseRecord)> = Vec::new();
            // What each unit of the round counts against `work_ms`, given back if refused.
            let mut round_cost_ms: Vec<f64> = Vec::new();
            while leases.len() + round.len() < wanted
                && skipped < MAX_SKIPPED
                && attempts < wanted + MAX_SKIPPED
                && work_ms.is_none_or(|work_ms| work_picked_ms < work_ms as f64)
            {
                attempts += 1;
                let (key, spot_check) = match inner.pick_spot_check(&mut rng, filter, now) {
                    Some(key) => (key, true),
                    None => match self.next_unit(&mut inner, filter, now, &mut pages_left) {
                        Ok(Some(key)) => (key, false),
                        Ok(None) => break,
                        Err(err) => return (inner, Err(err)),
                    },
                };
                let Some(job) = inner.jobs.get_mut(&key.job) else {
                    continue;
                };
                let mut id = [0u8; 16];
                let mut nonce = [0u8; 16];
                rng.fill_bytes(&mut id);
                rng.fill_bytes(&mut nonce);
                job.pass = job.pass.saturating_add(job.stride());
                let cost_ms = work_ms.map_or(0.0, |work_ms| job.unit_cost_ms(work_ms));
                work_picked_ms += cost_ms;
                round_cost_ms.push(cost_ms);
                round.push((
                    LeaseId::from_bytes(id),
                    LeaseRecord {
                        unit: key,
                        volunteer,
                        nonce: Nonce::from_bytes(nonce),
                        issued_ms: now,
                        deadline_ms: now.saturating_add(job.record.policy.lease_ttl_ms),
                        state: LeaseState::Active,
                        spot_check,
                        site,
                    },
                ));
            }
            if round.is_empty() {
                return (inner, Ok(()));
            }
            drop(inner);
            let grants = self.store.grant(&round);
            inner = self.lock();
            let grants = match grants {
                Ok(grants) => grants,
                Err(err) => return (inner, Err(err)),
            };
            // One borrow of the guarded data, so that its fields can be borrowed apart.
            let state = &mut *inner;
            for (((id, record), grant), cost_ms) in round.into_iter().zip(grants).zip(round_cost_ms)
            {
                let key = record.unit;
                let Some(job) = state.jobs.get_mut(&key.job) else {
                    continue;
                };
                let (input, input_sha256) = match grant {
                    Grant::Granted {
                        input,
                        input_sha256,
                        wants_more,
                    } => {
                        if wants_more {
                            // The next replica goes to someone else.
                            job.ready.push_back(key.index);
                        }
                        (input, input_sha256)
                    }
                    refused => {
                        job.pass = job.pass.saturating_sub(job.stride());
                        work_picked_ms -= cost_ms;
                        if refused == Grant::NotForThisVolunteer && !record.spot_check {
                            job.passed_over.push(key.index);
                            skipped += 1;
                        }
                        continue;
                    }
                };
                job.counts.leased += 1;
                job.recent_volunteers.insert(volunteer, now);
                state.deadlines.insert((record.deadline_ms, id, key.job));
                if record.spot_check {
                    state.spot_checks.insert(id);
                }
                leases.push(Lease {
                    lease_id: id,
                    nonce: record.nonce,
                    job_id: key.job,
                    unit: key.index,
                    module_sha256: job.record.module_sha256,
                    input,
                    input_sha256,
                    deadline_ms: record.deadline_ms,
                });
            }
        }
    }

    /// Records results, one transaction for them all (see [`Store::submit`]), and brings the
    /// queues and counts up to date; then, if any was accepted or a duplicate, waits until
    /// they are durable. One outcome per result, in order.
    pub async fn submit(
        &self,
        results: &[IncomingResult],
    ) -> Result<Vec<SubmitOutcome>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        // Called inside the store's transaction: it must not take `inner` (see `policies`).
        let policy_of = |job: JobId| self.policy_of_job(job);
        let now = self.clock.now_ms();
        let outcomes = self.store.submit(results, now, &policy_of)?;
        {
            let mut inner = self.lock();
            for (result, outcome) in results.iter().zip(&outcomes) {
                match outcome {
                    SubmitOutcome::Caught {
                        unit,
                        requeue,
                        reopened,
                    } => {
                        inner.spot_checks.remove(&result.lease);
                        if let Some(job) = inner.jobs.get_mut(&unit.job) {
                            job.counts.leased = job.counts.leased.saturating_sub(1);
                        }
                        for key in requeue {
                            inner.requeue(*key, Requeue::Back, now);
                        }
                        for key in reopened {
                            inner.apply(*key, &UnitChange::Reopened, Requeue::Front, now);
                        }
                    }
                    // Counted now, not after the flush: if the client hangs up while we wait,
                    // this future is dropped, but the transaction has committed and the counts
                    // must follow.
                    SubmitOutcome::Accepted { unit, change } => {
                        let spot_check = inner.spot_checks.remove(&result.lease);
                        if let Some(job) = inner.jobs.get_mut(&unit.job) {
                            job.counts.leased = job.counts.leased.saturating_sub(1);
                            if !spot_check {
                                job.counts.results += 1;
                            }
                            job.recent_volunteers.insert(result.volunteer, now);
                            job.note_unit_time(result.compute_ms);
                        }
                        inner.apply(*unit, change, Requeue::Back, now);
                    }
                    _ => {}
                }
            }
        }
        // A duplicate waits too: the first copy may have been written but not yet flushed
        // when the client gave up waiting and retried.
        if outcomes.iter().any(|outcome| {
            matches!(
                outcome,
                SubmitOutcome::Accepted { .. } | SubmitOutcome::Duplicate
            )
        }) {
            self.store.durable().await?;
        }
        Ok(outcomes)
    }

    /// Records a client's report; a named open lease of the sender ends, and if its unit wants
    /// a replica again it joins the back of its job's queue.
    pub fn report(&self, report: &ReportRecord, nonce: Option<Nonce>) -> Result<bool, StoreError> {
        let policy = self.policy_of_job(report.job);
        let outcome = self.store.report(report, nonce, &policy)?;
        Ok(self.lost(outcome))
    }

    /// Ends a lease whose output the job's `verify` rejected; if its unit wants a replica
    /// again it joins the back of its job's queue, to be computed by someone else.
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
        self.shared_job(id).map(|job| (*job).clone())
    }

    /// Every job, by id.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.lock()
            .jobs
            .values()
            .map(|job| job.record.clone())
            .collect()
    }

    /// Changes a job's status, in the store (a plain write: await [`Store::durable`] before
    /// acknowledging) and here; `None` for an unknown job. A paused or cancelled job is not
    /// leased; made active again, it is served from its queue as it was, starting at the
    /// lowest pass among the jobs of its priority that have work (it cannot make up for the
    /// time it was paused).
    pub fn set_status(
        &self,
        job: JobId,
        status: JobStatus,
    ) -> Result<Option<JobRecord>, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let Some(state) = inner.jobs.get(&job) else {
            return Ok(None);
        };
        let mut record = state.record.clone();
        record.status = status;
        // Written while holding the lock, so concurrent changes reach the store in the order
        // they reach memory.
        self.store.put_job(&record)?;
        inner.replace_record(record.clone(), now);
        self.publish_record(&record);
        Ok(Some(record))
    }

    /// Applies `change` to each of `jobs` (unknown ids are skipped) and writes the changed
    /// records together with `leading` and the log entries `change` returns, in one store
    /// transaction
    /// signed by `key` (await [`Store::durable`] before acknowledging), then here (see
    /// `Inner::replace_record` for a job served again). Returns the records as written.
    pub fn update_jobs(
        &self,
        jobs: &[JobId],
        leading: Option<LogEvent>,
        mut change: impl FnMut(&mut JobRecord) -> Option<LogEvent>,
        key: &SecretKey,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let mut records = Vec::new();
        let mut events: Vec<LogEvent> = leading.into_iter().collect();
        for id in jobs {
            let Some(state) = inner.jobs.get(id) else {
                continue;
            };
            let mut record = state.record.clone();
            events.extend(change(&mut record));
            records.push(record);
        }
        // Written while holding the lock, so concurrent changes reach the store in the order
        // they reach memory.
        let (records, _) = self.store.commit_logged(records, events, now, key)?;
        for record in &records {
            inner.replace_record(record.clone(), now);
            self.publish_record(record);
        }
        Ok(records)
    }

    /// A job's live progress for its distributor, if the job exists.
    pub fn progress(&self, job: JobId) -> Option<JobProgress> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        let state = inner.jobs.get(&job)?;
        let active_volunteers = state
            .recent_volunteers
            .values()
            .filter(|seen| now.saturating_sub(**seen) <= ACTIVE_WINDOW_MS)
            .count() as u64;
        Some(JobProgress {
            units: state.record.units,
            results: state.counts.results,
            validated: state.counts.done,
            failed: state.counts.failed,
            leased: state.counts.leased,
            active_volunteers,
            history: state.history.iter().copied().collect(),
        })
    }

    /// Appends a progress sample for every job whose validated count changed since its last
    /// sample, or whose last sample is [`RESAMPLE_UNCHANGED_MS`] old, keeping at most
    /// [`HISTORY_SAMPLES`]; and forgets volunteers no longer active. Called every
    /// [`SAMPLE_PERIOD`] (see [`Scheduler::spawn_progress_sampler`]).
    pub fn sample_progress(&self) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        for job in inner.jobs.values_mut() {
            job.recent_volunteers
                .retain(|_, seen| now.saturating_sub(*seen) <= ACTIVE_WINDOW_MS);
            let validated = job.counts.done;
            let due = job.history.back().is_none_or(|last| {
                last.validated != validated
                    || now.saturating_sub(last.at_ms) >= RESAMPLE_UNCHANGED_MS
            });
            if due {
                if job.history.len() >= HISTORY_SAMPLES {
                    job.history.pop_front();
                }
                job.history.push_back(ProgressSample {
                    at_ms: now,
                    validated,
                });
            }
        }
    }

    /// Samples progress every [`SAMPLE_PERIOD`] on the current tokio runtime. The task holds
    /// the scheduler only while sampling, so it never keeps the store open; it ends when the
    /// scheduler is dropped (or when aborted).
    pub fn spawn_progress_sampler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let scheduler = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_PERIOD);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(scheduler) = scheduler.upgrade() else {
                    break;
                };
                scheduler.sample_progress();
            }
        })
    }

    /// Public progress of every public job (no group) that is published and not cancelled.
    pub fn stats(&self) -> StatsResponse {
        let inner = self.lock();
        let jobs: Vec<JobStats> = inner
            .jobs
            .values()
            .filter(|job| {
                job.record.group.is_none()
                    && job.record.status != JobStatus::Cancelled
                    && job.record.review == Review::Approved
            })
            .map(|job| JobStats {
                job_id: job.record.id,
                title: job.record.title.clone(),
                module_sha256: job.record.module_sha256,
                units: job.record.units,
                done: job.counts.done,
                leased: job.counts.leased,
                failed: job.counts.failed,
                distributor: job.record.distributor.clone(),
                category: job.record.category,
                log_seq: job.record.log_seq,
            })
            .collect();
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
            inner.spot_checks.remove(&id);
            let expired = match inner.jobs.get(&job) {
                Some(job) => self.store.expire(id, now, &job.record.policy)?,
                None => self.store.expire(id, now, &JobPolicy::default())?,
            };
            // `None` means the lease completed (or ended) already: nothing to reclaim.
            if let Some((unit, change)) = expired {
                if let Some(job) = inner.jobs.get_mut(&unit.job) {
                    job.counts.leased = job.counts.leased.saturating_sub(1);
                }
                inner.apply(unit, &change, Requeue::Front, now);
            }
        }
        Ok(())
    }

    /// Updates counts and queue after a lease ended without a result.
    fn lost(&self, outcome: ReleaseOutcome) -> bool {
        let ReleaseOutcome::Released { unit, change } = outcome else {
            return false;
        };
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        if let Some(job) = inner.jobs.get_mut(&unit.job) {
            job.counts.leased = job.counts.leased.saturating_sub(1);
        }
        inner.apply(unit, &change, Requeue::Back, now);
        true
    }

    /// A job's policy (the default for an unknown job). Takes only the `records` lock, so it
    /// may be called inside a store transaction.
    fn policy_of_job(&self, job: JobId) -> JobPolicy {
        self.shared_job(job)
            .map(|job| job.policy.clone())
            .unwrap_or_default()
    }

    /// A job's record, shared, without taking the scheduler's main lock.
    pub fn shared_job(&self, job: JobId) -> Option<Arc<JobRecord>> {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&job)
            .cloned()
    }

    /// Makes `record` the one [`Scheduler::shared_job`] answers with.
    fn publish_record(&self, record: &JobRecord) {
        self.records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record.id, Arc::new(record.clone()));
    }

    /// The next unit to try for this request: from the job whose turn it is, refilling that
    /// job's queue from the store when it runs dry (at most `pages_left` pages in all).
    fn next_unit(
        &self,
        inner: &mut Inner,
        filter: &LeaseFilter<'_>,
        now: u64,
        pages_left: &mut usize,
    ) -> Result<Option<UnitKey>, StoreError> {
        while let Some(id) = inner.pick_job(filter, now, *pages_left > 0) {
            let Some(job) = inner.jobs.get_mut(&id) else {
                break;
            };
            if let Some(index) = job.ready.pop_front() {
                return Ok(Some(UnitKey { job: id, index }));
            }
            // An empty queue is picked only while its feeder may find more and pages are left.
            *pages_left = pages_left.saturating_sub(1);
            let page =
                self.store
                    .pending_units_of_job(id, job.cursor, FEED_BATCH, FEED_SCAN_LIMIT)?;
            job.ready.extend(page.found.iter().map(|unit| unit.index));
            job.cursor = page.last_scanned.map(|unit| unit.index);
            job.feeder_at_end = page.at_end;
        }
        Ok(None)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the indexes inconsistent with the store
        // in a way that matters (the store decides every grant), so carry on with the data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// The job whose turn it is among those `filter` admits that can give a unit now: the
    /// highest priority, then the lowest pass (ties: the lowest id). Jobs this request has
    /// passed over [`MAX_SKIPPED_PER_JOB`] units of come last. A job with an empty queue
    /// counts only if `can_feed` and its feeder may still find units. The picked job's pass
    /// is raised to at most [`MAX_LAG`] behind the most advanced job of its class.
    fn pick_job(&mut self, filter: &LeaseFilter<'_>, now: u64, can_feed: bool) -> Option<JobId> {
        let servable = |job: &JobState| {
            (!job.ready.is_empty() || (can_feed && !job.feeder_at_end))
                && filter.admits(&job.record, now)
        };
        let class = |job: &JobState| {
            (
                job.passed_over.len() < MAX_SKIPPED_PER_JOB,
                job.record.priority,
            )
        };
        let mut best = None;
        let mut leader = 0;
        for job in self.jobs.values().filter(|job| servable(job)) {
            let this = class(job);
            match best {
                Some(best) if this < best => {}
                Some(best) if this == best => leader = job.pass.max(leader),
                _ => {
                    best = Some(this);
                    leader = job.pass;
                }
            }
        }
        let best = best?;
        let floor = leader.saturating_sub(MAX_LAG);
        let mut chosen: Option<(u64, JobId)> = None;
        for (id, job) in &self.jobs {
            if servable(job) && class(job) == best {
                let pass = job.pass.max(floor);
                if chosen.is_none_or(|(lowest, _)| pass < lowest) {
                    chosen = Some((pass, *id));
                }
            }
        }
        let (pass, id) = chosen?;
        if let Some(job) = self.jobs.get_mut(&id) {
            job.pass = pass;
        }
        Some(id)
    }

    /// With the probability its job asks for, a unit with a known answer to lease as a spot
    /// check, from a job `filter` admits that still has work (a finished job's volunteers are
    /// not kept busy).
    fn pick_spot_check(
        &self,
        rng: &mut impl Rng,
        filter: &LeaseFilter<'_>,
        now: u64,
    ) -> Option<UnitKey> {
        for (id, job) in &self.jobs {
            let rate = job.record.policy.spot_check_rate;
            if job.known.is_empty()
                || rate <= 0.0
                || job.is_finished()
                || !filter.admits(&job.record, now)
            {
                continue;
            }
            if rng.random::<f64>() < rate {
                let index = job.known[rng.random_range(0..job.known.len())];
                return Some(UnitKey { job: *id, index });
            }
        }
        None
    }

    /// The lowest pass among the live jobs of `priority` with work, other than `except`.
    fn tier_min_pass(&self, priority: u8, except: JobId, now: u64) -> Option<u64> {
        self.jobs
            .iter()
            .filter(|(id, job)| {
                **id != except
                    && job.record.priority == priority
                    && job.is_live(now)
                    && job.has_work()
            })
            .map(|(_, job)| job.pass)
            .min()
    }

    /// Queues a unit that wants a replica again. A job that had no work left starts again at
    /// the lowest pass of its priority, so its idle time does not let it monopolise.
    /// Replaces a known job's record with one just written to the store. A job that starts
    /// being served again (resumed, approved) restarts at the lowest pass among the jobs of
    /// its priority that have work: it cannot make up for the time it was not served.
    fn replace_record(&mut self, record: JobRecord, now: u64) {
        let Some(state) = self.jobs.get(&record.id) else {
            return;
        };
        let resumes = !state.record.is_served() && record.is_served() && state.has_work();
        let restart_pass = if resumes {
            self.tier_min_pass(record.priority, record.id, now)
        } else {
            None
        };
        if let Some(state) = self.jobs.get_mut(&record.id) {
            state.record = record;
            if let Some(pass) = restart_pass {
                state.pass = pass;
            }
        }
    }

    fn requeue(&mut self, unit: UnitKey, at: Requeue, now: u64) {
        let Some(job) = self.jobs.get(&unit.job) else {
            return;
        };
        let restart_pass = if job.has_work() {
            None
        } else {
            self.tier_min_pass(job.record.priority, unit.job, now)
        };
        let Some(job) = self.jobs.get_mut(&unit.job) else {
            return;
        };
        if let Some(pass) = restart_pass {
            job.pass = pass;
        }
        match at {
            Requeue::Front => job.ready.push_front(unit.index),
            Requeue::Back => job.ready.push_back(unit.index),
        }
    }

    /// Follows what a transition did to a unit.
    fn apply(&mut self, unit: UnitKey, change: &UnitChange, at: Requeue, now: u64) {
        let Some(job) = self.jobs.get_mut(&unit.job) else {
            return;
        };
        match change {
            UnitChange::Decided { .. } => job.counts.done += 1,
            UnitChange::Failed => job.counts.failed += 1,
            UnitChange::Reopened => {
                job.counts.done = job.counts.done.saturating_sub(1);
                self.requeue(unit, at, now);
            }
            UnitChange::WantsReplica => self.requeue(unit, at, now),
            UnitChange::Unchanged | UnitChange::Late { .. } => {}
        }
    }

    /// Puts the units passed over in this request back at the front of their queues, in the
    /// order they were taken.
    fn restore_passed_over(&mut self) {
        for job in self.jobs.values_mut() {
            while let Some(index) = job.passed_over.pop() {
                job.ready.push_front(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{JobInputs, NewJob};
    use cyclepool_shared::Signature;
    use tempfile::TempDir;

    /// Where the paused clock starts.
    const START_MS: u64 = 1_700_000_000_000;
    const TTL_MS: u64 = 1_000;

    /// A store in a temporary directory and a paused clock. The directory is dropped last.
    struct World {
        store: Arc<Store>,
        clock: Clock,
        _dir: TempDir,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("creating the data directory");
        let store = Arc::new(Store::open(dir.path()).expect("opening the store"));
        World {
            store,
            clock: Clock::paused(START_MS),
            _dir: dir,
        }
    }

    impl World {
        fn scheduler(&self) -> Scheduler {
            Scheduler::start(Arc::clone(&self.store), self.clock.clone())
                .expect("starting the scheduler")
        }
    }

    /// One replica per unit, no server-side checks.
    fn policy() -> JobPolicy {
        JobPolicy {
            lease_ttl_ms: TTL_MS,
            unit_budget_ms: TTL_MS,
            min_quorum: 1,
            initial_replicas: 1,
            use_verify: false,
            reexecution_rate: 0.0,
            spot_check_rate: 0.0,
            ..JobPolicy::default()
        }
    }

    fn spec() -> NewJob {
        NewJob {
            distributor: "portal".into(),
            title: "t".into(),
            description: String::new(),
            module_sha256: Sha256Digest::of(b"module"),
            module_bytes: 6,
            policy: policy(),
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

    fn input(index: u64) -> Vec<u8> {
        index.to_be_bytes().to_vec()
    }

    /// Creates a job of `units` units in the store (the caller tells the scheduler, if any).
    fn create(store: &Store, units: u64, spec: NewJob) -> JobRecord {
        let inputs: Vec<Vec<u8>> = (0..units).map(input).collect();
        store
            .create_job(spec, JobInputs::List(&inputs), START_MS, None)
            .expect("creating a job")
            .expect("an unnamed job is always created")
    }

    fn volunteer(n: u32) -> VolunteerId {
        let mut key = [0x5a; 32];
        key[..4].copy_from_slice(&n.to_be_bytes());
        VolunteerId::from_bytes(key)
    }

    const EVERYONE: LeaseFilter<'static> = LeaseFilter {
        exclude_jobs: &[],
        groups: &[],
        exclude_categories: &[],
    };

    fn lease(scheduler: &Scheduler, who: u32, max: u32, filter: &LeaseFilter<'_>) -> Vec<Lease> {
        scheduler
            .lease(volunteer(who), Wanted::units(max), filter, None)
            .expect("leasing")
    }

    /// Lease requests let the scheduler's lock go while the store grants their round, so
    /// they run at once here: eight threads of two-replica leasing, with results handed in
    /// between. No unit goes beyond its replicas or twice to one volunteer, and the counts
    /// the scheduler keeps equal what the store holds.
    #[test]
    fn concurrent_lease_requests_never_over_grant_and_keep_the_counts() {
        let world = world();
        let mut spec = spec();
        spec.policy.initial_replicas = 2;
        spec.policy.min_quorum = 2;
        spec.policy.max_total_results = 4;
        spec.policy.max_success_results = 4;
        let job = create(&world.store, 300, spec);
        let scheduler = Arc::new(world.scheduler());
        scheduler.add_job(job.clone());
        let threads: Vec<_> = (0..8u32)
            .map(|who| {
                let scheduler = Arc::clone(&scheduler);
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("a runtime");
                    let mut leased = Vec::new();
                    for round in 0..20 {
                        let leases = lease(&scheduler, who, 8, &EVERYONE);
                        // Every other round, hand in what was leased (the right output).
                        if round % 2 == 0 {
                            for lease in &leases {
                                runtime.block_on(submit(&scheduler, who, lease, &lease.input));
                            }
                        }
                        leased.extend(leases.into_iter().map(|lease| lease.unit));
                    }
                    leased
                })
            })
            .collect();
        let mut per_volunteer = Vec::new();
        for thread in threads {
            per_volunteer.push(thread.join().expect("a leasing thread panicked"));
        }
        for (who, units) in per_volunteer.iter().enumerate() {
            let distinct: HashSet<u64> = units.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                units.len(),
                "volunteer {who} got a unit twice"
            );
        }
        let (mut active, mut done) = (0u64, 0u64);
        for index in 0..300 {
            let unit = world
                .store
                .unit(UnitKey { job: job.id, index })
                .expect("reading a unit")
                .expect("every unit exists");
            assert!(
                unit.active.len() + unit.replicas.len() <= unit.wanted as usize,
                "unit {index}: {unit:?}"
            );
            active += unit.active.len() as u64;
            done += u64::from(matches!(unit.state, crate::store::UnitState::Done { .. }));
        }
        let stats = scheduler.stats();
        let counted = stats
            .jobs
            .iter()
            .find(|stats| stats.job_id == job.id)
            .expect("the job's stats");
        assert_eq!((counted.leased, counted.done), (active, done));
        assert!(done > 0 && active > 0, "{done} done, {active} leased");
    }

    /// Submits `output` for `lease` on behalf of volunteer `who`.
    async fn submit(
        scheduler: &Scheduler,
        who: u32,
        lease: &Lease,
        output: &[u8],
    ) -> SubmitOutcome {
        let result = IncomingResult {
            lease: lease.lease_id,
            volunteer: volunteer(who),
            nonce: lease.nonce,
            output: output.to_vec(),
            output_sha256: Sha256Digest::of(output),
            signature: Signature::from_bytes([0; 64]),
            compute_ms: 1,
        };
        let mut outcomes = scheduler
            .submit(std::slice::from_ref(&result))
            .await
            .expect("submitting");
        outcomes.pop().expect("one outcome per result")
    }

    fn jobs_of(leases: &[Lease]) -> Vec<JobId> {
        leases.iter().map(|lease| lease.job_id).collect()
    }

    #[test]
    fn weights_share_units_in_proportion_within_a_priority() {
        let world = world();
        let light = create(&world.store, 400, spec());
        let heavy = create(
            &world.store,
            400,
            NewJob {
                weight: 3,
                ..spec()
            },
        );
        let scheduler = world.scheduler();
        let mut light_units = 0;
        let mut heavy_units = 0;
        for who in 0..400 {
            let leases = lease(&scheduler, who, 1, &EVERYONE);
            assert_eq!(leases.len(), 1, "request {who} got no unit");
            if leases[0].job_id == light.id {
                light_units += 1;
            } else {
                assert_eq!(leases[0].job_id, heavy.id);
                heavy_units += 1;
            }
        }
        let light_share = light_units * 100 / 400;
        assert!(
            (22..=28).contains(&light_share),
            "weight 1 got {light_units} of 400 units, weight 3 got {heavy_units}"
        );
        assert_eq!(light_units + heavy_units, 400);
    }

    #[test]
    fn a_higher_priority_is_served_first_until_it_runs_out() {
        let world = world();
        let low = create(&world.store, 20, spec());
        let high = create(
            &world.store,
            5,
            NewJob {
                priority: 1,
                ..spec()
            },
        );
        let scheduler = world.scheduler();
        let first: Vec<JobId> = (0..5)
            .flat_map(|who| jobs_of(&lease(&scheduler, who, 1, &EVERYONE)))
            .collect();
        assert_eq!(first, vec![high.id; 5]);
        // Out of work: the lower priority gets the volunteers.
        assert_eq!(
            jobs_of(&lease(&scheduler, 5, 3, &EVERYONE)),
            vec![low.id; 3]
        );
        // The high-priority leases expire: their units come back, and go first again.
        world.clock.advance(TTL_MS + 1);
        let again = lease(&scheduler, 6, 6, &EVERYONE);
        assert_eq!(jobs_of(&again[..5]), vec![high.id; 5]);
        assert_eq!(again[5].job_id, low.id);
    }

    #[test]
    fn excluded_paused_and_cancelled_jobs_do_not_block_the_others() {
        let world = world();
        let big = create(&world.store, 10_000, spec());
        let small = create(&world.store, 10, spec());
        let cancelled = create(&world.store, 10, spec());
        let scheduler = world.scheduler();
        let cancelled_record = scheduler
            .set_status(cancelled.id, JobStatus::Cancelled)
            .expect("cancelling")
            .expect("the job exists");
        assert_eq!(cancelled_record.status, JobStatus::Cancelled);

        // Opting out of the job at the front costs nothing.
        let excluding = LeaseFilter {
            exclude_jobs: &[big.id],
            groups: &[],
            exclude_categories: &[],
        };
        assert_eq!(
            jobs_of(&lease(&scheduler, 1, 1, &excluding)),
            vec![small.id]
        );

        // Nor does a paused job; and the pause is stored.
        let paused = scheduler
            .set_status(big.id, JobStatus::Paused)
            .expect("pausing")
            .expect("the job exists");
        assert_eq!(paused.status, JobStatus::Paused);
        assert_eq!(jobs_of(&lease(&scheduler, 2, 1, &EVERYONE)), vec![small.id]);
        assert_eq!(
            jobs_of(&lease(&scheduler, 3, 100, &EVERYONE)),
            vec![small.id; 8]
        );
        // Only the paused and the cancelled job have work left: nothing to lease.
        assert!(lease(&scheduler, 4, 100, &EVERYONE).is_empty());
        let restarted = world.scheduler();
        assert_eq!(
            restarted.job(big.id).map(|job| job.status),
            Some(JobStatus::Paused)
        );
        assert_eq!(
            restarted.job(cancelled.id).map(|job| job.status),
            Some(JobStatus::Cancelled)
        );

        // Resumed, the job's queue is where it was.
        scheduler
            .set_status(big.id, JobStatus::Active)
            .expect("resuming")
            .expect("the job exists");
        let resumed = lease(&scheduler, 5, 3, &EVERYONE);
        assert_eq!(jobs_of(&resumed), vec![big.id; 3]);
        assert_eq!(
            resumed.iter().map(|lease| lease.unit).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(
            scheduler
                .set_status(JobId(u64::MAX), JobStatus::Paused)
                .expect("no store error"),
            None
        );
        let listed: Vec<(JobId, JobStatus)> = scheduler
            .jobs()
            .into_iter()
            .map(|job| (job.id, job.status))
            .collect();
        assert_eq!(
            listed,
            vec![
                (big.id, JobStatus::Active),
                (small.id, JobStatus::Active),
                (cancelled.id, JobStatus::Cancelled)
            ]
        );
        let public: Vec<JobId> = scheduler
            .stats()
            .jobs
            .iter()
            .map(|job| job.job_id)
            .collect();
        assert_eq!(public, vec![big.id, small.id]);
    }

    #[test]
    fn a_volunteer_holding_replicas_of_one_job_still_gets_another_jobs_units() {
        let world = world();
        let replicated = create(
            &world.store,
            300,
            NewJob {
                policy: JobPolicy {
                    min_quorum: 2,
                    initial_replicas: 2,
                    ..policy()
                },
                ..spec()
            },
        );
        let scheduler = world.scheduler();
        // Volunteer 1 holds one replica of every unit; each unit's second replica is queued:
        // more of them than one request may pass over.
        assert_eq!(lease(&scheduler, 1, 300, &EVERYONE).len(), 300);
        let other = create(&world.store, 10, spec());
        scheduler.add_job(other.clone());
        assert_eq!(jobs_of(&lease(&scheduler, 1, 1, &EVERYONE)), vec![other.id]);
        // The units passed over kept their place.
        let next = lease(&scheduler, 2, 1, &EVERYONE);
        assert_eq!(
            next.iter()
                .map(|lease| (lease.job_id, lease.unit))
                .collect::<Vec<_>>(),
            vec![(replicated.id, 0)]
        );
    }

    #[test]
    fn group_jobs_go_only_to_members_and_spot_checks_do_not_leak_them() {
        let world = world();
        let group = GroupId(7);
        let restricted = create(
            &world.store,
            5,
            NewJob {
                group: Some(group),
                policy: JobPolicy {
                    spot_check_rate: 1.0,
                    ..policy()
                },
                ..spec()
            },
        );
        let public = create(&world.store, 5, spec());
        let scheduler = world.scheduler();
        scheduler.add_known(UnitKey {
            job: restricted.id,
            index: 0,
        });
        let outsiders = LeaseFilter {
            exclude_jobs: &[],
            groups: &[GroupId(8)],
            exclude_categories: &[],
        };
        assert_eq!(
            jobs_of(&lease(&scheduler, 1, 10, &EVERYONE)),
            vec![public.id; 5]
        );
        // The public job is all out: an outsider gets nothing, not even a spot check.
        assert!(lease(&scheduler, 2, 10, &EVERYONE).is_empty());
        assert!(lease(&scheduler, 3, 10, &outsiders).is_empty());
        let members = LeaseFilter {
            exclude_jobs: &[],
            groups: &[GroupId(8), group],
            exclude_categories: &[],
        };
        let member_leases = lease(&scheduler, 4, 10, &members);
        assert!(!member_leases.is_empty());
        assert!(
            member_leases
                .iter()
                .all(|lease| lease.job_id == restricted.id)
        );
        let listed: Vec<JobId> = scheduler
            .stats()
            .jobs
            .iter()
            .map(|job| job.job_id)
            .collect();
        assert_eq!(listed, vec![public.id]);
    }

    #[test]
    fn an_expired_job_is_not_leased() {
        let world = world();
        let expired = create(
            &world.store,
            5,
            NewJob {
                expires_ms: START_MS - 1,
                ..spec()
            },
        );
        let expiring = create(
            &world.store,
            20,
            NewJob {
                expires_ms: START_MS + 500,
                ..spec()
            },
        );
        let lasting = create(&world.store, 3, spec());
        let scheduler = world.scheduler();
        let early = lease(&scheduler, 1, 4, &EVERYONE);
        assert_eq!(early.len(), 4);
        assert!(early.iter().all(|lease| lease.job_id != expired.id));
        assert!(early.iter().any(|lease| lease.job_id == expiring.id));
        let lasting_left = 3 - early
            .iter()
            .filter(|lease| lease.job_id == lasting.id)
            .count();
        // At its expiry time the job is over: only the lasting job's units are left.
        world.clock.advance(500);
        let late = lease(&scheduler, 2, 30, &EVERYONE);
        assert_eq!(jobs_of(&late), vec![lasting.id; lasting_left]);
    }

    #[tokio::test]
    async fn progress_counts_results_validations_volunteers_and_history() {
        let world = world();
        let job = create(
            &world.store,
            3,
            NewJob {
                policy: JobPolicy {
                    min_quorum: 2,
                    initial_replicas: 2,
                    lease_ttl_ms: 60 * TTL_MS,
                    ..policy()
                },
                ..spec()
            },
        );
        let scheduler = world.scheduler();
        let first = lease(&scheduler, 1, 3, &EVERYONE);
        let second = lease(&scheduler, 2, 3, &EVERYONE);
        assert_eq!((first.len(), second.len()), (3, 3));
        let progress = scheduler.progress(job.id).expect("the job exists");
        assert_eq!(
            (
                progress.units,
                progress.leased,
                progress.results,
                progress.validated
            ),
            (3, 6, 0, 0)
        );
        assert_eq!(progress.active_volunteers, 2);
        assert!(progress.history.is_empty());

        for granted in &first {
            let outcome = submit(&scheduler, 1, granted, b"out").await;
            assert!(
                matches!(outcome, SubmitOutcome::Accepted { .. }),
                "{outcome:?}"
            );
        }
        for granted in &second[..2] {
            submit(&scheduler, 2, granted, b"out").await;
        }
        let progress = scheduler.progress(job.id).expect("the job exists");
        assert_eq!(
            (
                progress.leased,
                progress.results,
                progress.validated,
                progress.failed
            ),
            (1, 5, 2, 0)
        );

        // Sampled when the count changed, or once a minute when it did not.
        scheduler.sample_progress();
        scheduler.sample_progress();
        world.clock.advance(10_000);
        submit(&scheduler, 2, &second[2], b"out").await;
        scheduler.sample_progress();
        world.clock.advance(RESAMPLE_UNCHANGED_MS - 1);
        scheduler.sample_progress();
        world.clock.advance(1);
        scheduler.sample_progress();
        let history = scheduler.progress(job.id).expect("the job exists").history;
        assert_eq!(
            history,
            vec![
                ProgressSample {
                    at_ms: START_MS,
                    validated: 2
                },
                ProgressSample {
                    at_ms: START_MS + 10_000,
                    validated: 3
                },
                ProgressSample {
                    at_ms: START_MS + 10_000 + RESAMPLE_UNCHANGED_MS,
                    validated: 3
                },
            ]
        );
        // Volunteer 1 was last seen at the start, volunteer 2 ten seconds later.
        world
            .clock
            .advance(ACTIVE_WINDOW_MS + 1 - 10_000 - RESAMPLE_UNCHANGED_MS);
        let progress = scheduler.progress(job.id).expect("the job exists");
        assert_eq!(progress.active_volunteers, 1);
        world.clock.advance(10_000);
        assert_eq!(
            scheduler
                .progress(job.id)
                .expect("the job exists")
                .active_volunteers,
            0
        );
        scheduler.sample_progress();
        assert!(
            scheduler
                .lock()
                .jobs
                .get(&job.id)
                .is_some_and(|job| job.recent_volunteers.is_empty()),
            "inactive volunteers are pruned"
        );

        // The history is bounded.
        for _ in 0..2 * HISTORY_SAMPLES {
            world.clock.advance(RESAMPLE_UNCHANGED_MS);
            scheduler.sample_progress();
        }
        let history = scheduler.progress(job.id).expect("the job exists").history;
        assert_eq!(history.len(), HISTORY_SAMPLES);
        assert!(history.windows(2).all(|pair| pair[0].at_ms < pair[1].at_ms));

        // After a restart the counts come from the store.
        let progress = world.scheduler().progress(job.id).expect("the job exists");
        assert_eq!(
            (progress.leased, progress.results, progress.validated),
            (0, 6, 3)
        );
        assert_eq!(scheduler.progress(JobId(u64::MAX)), None);
    }

    #[tokio::test]
    async fn a_spot_check_result_is_not_a_replica() {
        let world = world();
        let job = create(
            &world.store,
            2,
            NewJob {
                policy: JobPolicy {
                    spot_check_rate: 1.0,
                    ..policy()
                },
                ..spec()
            },
        );
        let scheduler = world.scheduler();
        let known = UnitKey {
            job: job.id,
            index: 0,
        };
        scheduler.add_known(known);
        let check = lease(&scheduler, 1, 1, &EVERYONE);
        assert_eq!(check.len(), 1);
        let record = world
            .store
            .lease(check[0].lease_id)
            .expect("reading the lease")
            .expect("the lease exists");
        assert!(record.spot_check);
        // A restart in between: the scheduler still knows the lease is a spot check.
        let scheduler = world.scheduler();
        let outcome = submit(&scheduler, 1, &check[0], b"out").await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        let progress = scheduler.progress(job.id).expect("the job exists");
        assert_eq!((progress.results, progress.active_volunteers), (0, 1));
    }
}
