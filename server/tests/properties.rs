//! Property tests of the scheduler's invariants: random runs of leases, results (right and
//! wrong), reports and clock moves against the real `Store` and `Scheduler`, with the store's
//! records checked after every step.
//!
//! The properties (issue 9): a unit is never leased beyond its replica count, nor twice to
//! one volunteer; leases always expire; credit equals validated work; the progress counts
//! agree with the store. There is no HTTP here: the routes check signatures, the store does
//! not, so results carry an arbitrary one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cyclepool_server::clock::Clock;
use cyclepool_server::scheduler::{LeaseFilter, Scheduler, Wanted};
use cyclepool_server::store::{
    IncomingResult, JobInputs, JobRecord, LeaseState, NewJob, ReportRecord, Store, SubmitOutcome,
    UnitKey, UnitRecord, UnitState,
};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::ReportKind;
use cyclepool_shared::range::RangeUnits;
use cyclepool_shared::{LeaseId, Nonce, Sha256Digest, Signature, VolunteerId};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;

/// Where the paused clock starts.
const START_MS: u64 = 1_700_000_000_000;
/// The job's lease TTL: the smallest the API accepts.
const TTL_MS: u64 = 1_000;
const MAX_VOLUNTEERS: usize = 8;
/// How many rounds of honest work the final drain may take before the run counts as stuck.
const DRAIN_ROUNDS: usize = 64;

/// One step of a run. Indices are taken modulo what exists, so any shrunk sequence is valid.
#[derive(Debug, Clone)]
enum Op {
    /// A volunteer asks for up to `max` units.
    Lease { volunteer: usize, max: u32 },
    /// The holder of a granted lease returns a result: the right output, unless it is a
    /// saboteur (which always returns the colluders' wrong output) or it slips (wrong output
    /// number `slip`). Leases already over are submitted too: they must be refused.
    Submit { lease: usize, slip: Option<u8> },
    /// The holder of a granted lease reports that it could not compute it.
    Report { lease: usize },
    /// Time passes.
    Advance { ms: u64 },
}

#[derive(Debug, Clone)]
struct Scenario {
    volunteers: usize,
    /// Which volunteers always return the same wrong output (only the first `volunteers` count).
    saboteurs: Vec<bool>,
    units: usize,
    /// A range job (units stored only once leased) rather than a list of inputs.
    range: bool,
    policy: JobPolicy,
    ops: Vec<Op>,
}

/// Any policy the API accepts, within small limits, with fixed quorum and no server-side checks.
fn policy() -> impl Strategy<Value = JobPolicy> {
    (1u32..=3)
        .prop_flat_map(|initial| {
            (
                Just(initial),
                1u32..=3,
                initial..=initial + 4,
                initial..=initial + 3,
                1u32..=4,
            )
        })
        .prop_map(|(initial, quorum, total, success, errors)| JobPolicy {
            lease_ttl_ms: TTL_MS,
            unit_budget_ms: TTL_MS,
            min_quorum: quorum,
            initial_replicas: initial,
            max_total_results: total,
            max_success_results: success,
            max_error_results: errors,
            use_verify: false,
            reexecution_rate: 0.0,
            spot_check_rate: 0.0,
            target_error_rate: 0.0,
            ..JobPolicy::default()
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..MAX_VOLUNTEERS, 1u32..=4)
            .prop_map(|(volunteer, max)| Op::Lease { volunteer, max }),
        4 => (0usize..64, prop::option::weighted(0.15, 1u8..=2))
            .prop_map(|(lease, slip)| Op::Submit { lease, slip }),
        1 => (0usize..64).prop_map(|lease| Op::Report { lease }),
        // Around the deadline (which is inclusive) more often than anywhere else.
        2 => prop_oneof![
            Just(1),
            Just(TTL_MS / 2),
            Just(TTL_MS),
            Just(TTL_MS + 1),
            0..3 * TTL_MS,
        ]
        .prop_map(|ms| Op::Advance { ms }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        2..=MAX_VOLUNTEERS,
        prop::collection::vec(prop::bool::weighted(0.25), MAX_VOLUNTEERS),
        1usize..=20,
        any::<bool>(),
        policy(),
        prop::collection::vec(op(), 1..200),
    )
        .prop_map(
            |(volunteers, saboteurs, units, range, policy, ops)| Scenario {
                volunteers,
                saboteurs,
                units,
                range,
                policy,
                ops,
            },
        )
}

fn volunteer_id(volunteer: usize) -> VolunteerId {
    VolunteerId::from_bytes([u8::try_from(volunteer + 1).expect("few volunteers"); 32])
}

/// Unit `unit`'s input in a job of inputs; a range job's unit `i` covers `[i, i + 1)`.
fn input(range: bool, unit: u64) -> Vec<u8> {
    if range {
        cyclepool_shared::range::encode_range(unit, unit + 1)
    } else {
        vec![u8::try_from(unit).expect("few units"), 0x5a, 0xc3]
    }
}

/// The right output of `unit`, or wrong output number `wrong`.
fn output(unit: u64, wrong: Option<u8>) -> Vec<u8> {
    match wrong {
        None => vec![0xc3, 0x5a, u8::try_from(unit).expect("few units")],
        Some(wrong) => vec![0xee, wrong, u8::try_from(unit).expect("few units")],
    }
}

/// A lease the scheduler granted, as the volunteer saw it.
#[derive(Debug, Clone, Copy)]
struct Granted {
    id: LeaseId,
    nonce: Nonce,
    holder: usize,
    unit: UnitKey,
}

/// The store and scheduler under test, and what the test has seen of them.
struct Sim {
    store: Arc<Store>,
    scheduler: Scheduler,
    clock: Clock,
    job: JobRecord,
    volunteers: usize,
    saboteurs: Vec<bool>,
    granted: Vec<Granted>,
    /// The state each granted lease was last seen in (same order as `granted`).
    lease_states: Vec<LeaseState>,
    /// The state each unit was last seen in.
    unit_states: HashMap<UnitKey, UnitState>,
    submissions: u64,
    /// What happened so far, named as a failure report names it: the steps that did anything.
    log: Vec<String>,
    /// Dropped last: the store lives in it.
    _dir: TempDir,
}

impl Sim {
    fn new(scenario: &Scenario) -> Self {
        let dir = tempfile::tempdir().expect("creating the data directory");
        let store = Arc::new(Store::open(dir.path()).expect("opening the store"));
        let inputs: Vec<Vec<u8>> = (0..scenario.units as u64)
            .map(|unit| input(false, unit))
            .collect();
        let range = RangeUnits::new(0, scenario.units as u64, 1).expect("at least one unit");
        let job = store
            .create_job(
                NewJob {
                    distributor: "portal".into(),
                    title: "properties".into(),
                    description: String::new(),
                    module_sha256: Sha256Digest::of(b"module"),
                    module_bytes: 6,
                    policy: scenario.policy.clone(),
                    expires_ms: u64::MAX,
                    owner: None,
                    group: None,
                    priority: 0,
                    weight: 1,
                    declaration: None,
                    category: cyclepool_shared::distributor::Category::Other,
                    review: cyclepool_shared::distributor::Review::Approved,
                },
                if scenario.range {
                    JobInputs::Range(range)
                } else {
                    JobInputs::List(&inputs)
                },
                START_MS,
                None,
            )
            .expect("creating the job")
            .expect("an unnamed job is always created");
        let clock = Clock::paused(START_MS);
        let scheduler =
            Scheduler::start(Arc::clone(&store), clock.clone()).expect("starting the scheduler");
        scheduler.add_job(job.clone());
        Self {
            store,
            scheduler,
            clock,
            job,
            volunteers: scenario.volunteers,
            saboteurs: scenario.saboteurs.clone(),
            granted: Vec::new(),
            lease_states: Vec::new(),
            unit_states: HashMap::new(),
            submissions: 0,
            log: Vec::new(),
            _dir: dir,
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Lease { volunteer, max } => {
                self.lease(volunteer % self.volunteers, max)?;
            }
            Op::Submit { lease, slip } if !self.granted.is_empty() => {
                self.submit(lease % self.granted.len(), slip).await?;
            }
            Op::Report { lease } if !self.granted.is_empty() => {
                self.report(lease % self.granted.len())?;
            }
            Op::Submit { .. } | Op::Report { .. } => {}
            Op::Advance { ms } => {
                self.clock.advance(ms);
                self.log.push(format!("+{ms} ms"));
            }
        }
        self.check()
    }

    /// Every unit of the job, stored or (a range job's, never leased) fresh.
    fn units(&self) -> HashMap<UnitKey, UnitRecord> {
        let stored: HashMap<UnitKey, UnitRecord> = self
            .store
            .units()
            .collect::<Result<_, _>>()
            .expect("reading the units");
        let mut units = HashMap::new();
        for index in 0..self.job.units {
            let key = UnitKey {
                job: self.job.id,
                index,
            };
            if let Some(unit) = self.store.unit(key).expect("reading a unit") {
                units.insert(key, unit);
            }
        }
        // Nothing stored outside the job.
        assert!(
            stored.keys().all(|key| units.contains_key(key)),
            "{stored:?}"
        );
        units
    }

    fn lease_state(&self, id: LeaseId) -> Result<LeaseState, String> {
        Ok(self
            .store
            .lease(id)
            .expect("reading a lease")
            .ok_or_else(|| format!("lease {id} is not in the store"))?
            .state)
    }

    fn deadline(&self, id: LeaseId) -> Result<u64, String> {
        Ok(self
            .store
            .lease(id)
            .expect("reading a lease")
            .ok_or_else(|| format!("lease {id} is not in the store"))?
            .deadline_ms)
    }

    /// Leases to `volunteer` and checks each grant against the units as they were before.
    /// Returns how many leases were granted (the last ones in `granted`).
    fn lease(&mut self, volunteer: usize, max: u32) -> Result<usize, String> {
        let id = volunteer_id(volunteer);
        let now = self.clock.now_ms();
        let before = self.units();
        let leases = self
            .scheduler
            .lease(id, Wanted::units(max), &LeaseFilter::default(), None)
            .expect("leasing");
        if !leases.is_empty() {
            let units: Vec<u64> = leases.iter().map(|lease| lease.unit).collect();
            let first = self.granted.len();
            self.log.push(format!(
                "v{volunteer} leases units {units:?} as #{first}..#{}",
                first + leases.len() - 1
            ));
        }
        if leases.len() > max as usize {
            return Err(format!("asked for {max} units, got {}", leases.len()));
        }
        let mut this_call = HashSet::new();
        for lease in &leases {
            let key = UnitKey {
                job: lease.job_id,
                index: lease.unit,
            };
            let unit = before
                .get(&key)
                .ok_or_else(|| format!("leased unit {} does not exist", key.index))?;
            if !this_call.insert(key) {
                return Err(format!(
                    "unit {} leased twice to volunteer {volunteer} in one call",
                    key.index
                ));
            }
            if unit.state != UnitState::Open {
                return Err(format!("unit {} leased while {:?}", key.index, unit.state));
            }
            if unit.replicas.iter().any(|r| r.volunteer == id) {
                return Err(format!(
                    "unit {} leased to volunteer {volunteer}, which already returned a result for it",
                    key.index
                ));
            }
            for (held, holder) in &unit.active {
                // Holding a lease that this call expired does not count: the unit may go back
                // to the volunteer that lost it.
                if *holder == id && self.deadline(*held)? >= now {
                    return Err(format!(
                        "unit {} leased to volunteer {volunteer}, which still holds lease {held}",
                        key.index
                    ));
                }
            }
            if lease.deadline_ms != now + TTL_MS {
                return Err(format!(
                    "lease deadline {} is not now + TTL ({})",
                    lease.deadline_ms,
                    now + TTL_MS
                ));
            }
            if lease.input != input(self.job.range.is_some(), key.index)
                || lease.input_sha256 != Sha256Digest::of(&lease.input)
            {
                return Err(format!(
                    "lease of unit {} carries the wrong input",
                    key.index
                ));
            }
            self.granted.push(Granted {
                id: lease.lease_id,
                nonce: lease.nonce,
                holder: volunteer,
                unit: key,
            });
            self.lease_states.push(LeaseState::Active);
        }
        let after = self.units();
        // Leases always expire: a lease call first reclaims every lease past its deadline.
        for (key, unit) in &after {
            for (held, _) in &unit.active {
                let deadline = self.deadline(*held)?;
                if deadline < now {
                    return Err(format!(
                        "unit {}: lease {held} is still active at {now}, past its deadline {deadline}",
                        key.index
                    ));
                }
            }
        }
        // Nothing is held back: a short answer means no unit wants this volunteer's replica.
        if leases.len() < max as usize {
            for (key, unit) in &after {
                let wants = unit.state == UnitState::Open
                    && unit.active.len() + unit.replicas.len() < unit.wanted as usize;
                let eligible = !unit.failed_by.contains(&id)
                    && !unit.active.iter().any(|(_, holder)| *holder == id)
                    && !unit.replicas.iter().any(|r| r.volunteer == id);
                if wants && eligible {
                    return Err(format!(
                        "volunteer {volunteer} got {} of {max} units although unit {} wants its replica: {unit:?}",
                        leases.len(),
                        key.index
                    ));
                }
            }
        }
        Ok(leases.len())
    }

    /// Submits a result for granted lease `index` and checks the outcome against the lease's
    /// state before.
    async fn submit(&mut self, index: usize, slip: Option<u8>) -> Result<(), String> {
        let granted = self.granted[index];
        let wrong = if self.saboteurs[granted.holder] {
            Some(0)
        } else {
            slip
        };
        let output = output(granted.unit.index, wrong);
        let output_sha256 = Sha256Digest::of(&output);
        let now = self.clock.now_ms();
        let state = self.lease_state(granted.id)?;
        let deadline = self.deadline(granted.id)?;
        self.submissions += 1;
        let result = IncomingResult {
            lease: granted.id,
            volunteer: volunteer_id(granted.holder),
            nonce: granted.nonce,
            output,
            output_sha256,
            signature: Signature::from_bytes([0; 64]),
            compute_ms: self.submissions,
        };
        let outcome = self
            .scheduler
            .submit(std::slice::from_ref(&result))
            .await
            .expect("submitting")
            .pop()
            .expect("one outcome per result");
        self.log.push(format!(
            "v{} returns {} for #{index} (unit {}): {outcome:?}",
            granted.holder,
            wrong.map_or("right".to_owned(), |wrong| format!("wrong{wrong}")),
            granted.unit.index
        ));
        let as_expected = match state {
            LeaseState::Completed { output_sha256: had } if had == output_sha256 => {
                outcome == SubmitOutcome::Duplicate
            }
            LeaseState::Completed { .. } => outcome == SubmitOutcome::Conflict,
            LeaseState::Active if now <= deadline => {
                matches!(outcome, SubmitOutcome::Accepted { unit, .. } if unit == granted.unit)
            }
            _ => {
                matches!(outcome, SubmitOutcome::Expired { deadline_ms } if deadline_ms == deadline)
            }
        };
        if as_expected {
            Ok(())
        } else {
            Err(format!(
                "result for lease {} ({:?}, deadline {deadline}, now {now}) got {outcome:?}",
                granted.id, state
            ))
        }
    }

    /// Reports granted lease `index` as failed; only an active lease is released.
    fn report(&mut self, index: usize) -> Result<(), String> {
        let granted = self.granted[index];
        let state = self.lease_state(granted.id)?;
        let released = self
            .scheduler
            .report(
                &ReportRecord {
                    volunteer: volunteer_id(granted.holder),
                    job: self.job.id,
                    lease: Some(granted.id),
                    kind: ReportKind::UnitTrap,
                    message: String::new(),
                    received_ms: self.clock.now_ms(),
                },
                Some(granted.nonce),
            )
            .expect("reporting");
        self.log.push(format!(
            "v{} reports #{index} (unit {}): released {released}",
            granted.holder, granted.unit.index
        ));
        if released == (state == LeaseState::Active) {
            Ok(())
        } else {
            Err(format!(
                "report on lease {} ({state:?}) released: {released}",
                granted.id
            ))
        }
    }

    /// The invariants of the store's records, and the scheduler's counts against them.
    fn check(&mut self) -> Result<(), String> {
        let policy = &self.job.policy;
        let units = self.units();
        if units.len() as u64 != self.job.units {
            return Err(format!(
                "{} units stored, {} created",
                units.len(),
                self.job.units
            ));
        }
        let (mut active, mut done, mut failed) = (0u64, 0u64, 0u64);
        let mut validated: HashMap<VolunteerId, (u64, u64)> = HashMap::new();
        for (key, unit) in &units {
            let fail = |what: &str| Err(format!("unit {}: {what}: {unit:?}", key.index));
            // Never beyond its replica count, and the count grows only within the limits.
            if unit.active.len() + unit.replicas.len() > unit.wanted as usize {
                return fail("more replicas out and in than wanted");
            }
            if unit.wanted > policy.initial_replicas.max(policy.max_success_results) {
                return fail("wants more replicas than max_success_results allows");
            }
            // Every lease granted ends in exactly one place: out, a result, or an error.
            if unit.issued as usize
                != unit.active.len() + unit.replicas.len() + unit.errors as usize
            {
                return fail("issued leases are not active + results + errors");
            }
            let mut holders = HashSet::new();
            let volunteers = unit.active.iter().map(|(_, holder)| holder);
            for holder in volunteers.chain(unit.replicas.iter().map(|r| &r.volunteer)) {
                if !holders.insert(*holder) {
                    return fail(&format!(
                        "volunteer {holder} holds or returned two replicas"
                    ));
                }
            }
            for (id, holder) in &unit.active {
                let lease = self
                    .store
                    .lease(*id)
                    .expect("reading a lease")
                    .ok_or_else(|| format!("unit {}: active lease {id} missing", key.index))?;
                if lease.state != LeaseState::Active
                    || lease.volunteer != *holder
                    || lease.unit != *key
                {
                    return fail(&format!("active lease {id} is {lease:?}"));
                }
            }
            for replica in &unit.replicas {
                let lease = self
                    .store
                    .lease(replica.lease)
                    .expect("reading a lease")
                    .ok_or_else(|| {
                        format!("unit {}: lease {} missing", key.index, replica.lease)
                    })?;
                let completed = LeaseState::Completed {
                    output_sha256: replica.output_sha256,
                };
                if lease.state != completed || lease.volunteer != replica.volunteer {
                    return fail(&format!("replica's lease {} is {lease:?}", replica.lease));
                }
            }
            // A unit's state changes only open → (done | failed).
            let seen = self.unit_states.insert(*key, unit.state);
            match (seen, unit.state) {
                (None | Some(UnitState::Open), _)
                | (Some(UnitState::Failed), UnitState::Failed) => {}
                (Some(UnitState::Done { canonical: a }), UnitState::Done { canonical: b })
                    if a == b => {}
                (Some(was), now) => return fail(&format!("went from {was:?} to {now:?}")),
            }
            let agreeing = |digest: Sha256Digest| {
                unit.replicas
                    .iter()
                    .filter(|r| r.output_sha256 == digest)
                    .count()
            };
            let largest = unit
                .replicas
                .iter()
                .map(|r| agreeing(r.output_sha256))
                .max()
                .unwrap_or(0);
            active += unit.active.len() as u64;
            match unit.state {
                UnitState::Open => {
                    if largest >= policy.min_quorum as usize {
                        return fail("open although a quorum agrees");
                    }
                    if unit.errors >= policy.max_error_results {
                        return fail("open past max_error_results");
                    }
                }
                UnitState::Done { canonical } => {
                    done += 1;
                    let Some(canonical) = unit.replicas.iter().find(|r| r.lease == canonical)
                    else {
                        return fail("the canonical result is not among the replicas");
                    };
                    if agreeing(canonical.output_sha256) < policy.min_quorum as usize {
                        return fail("done without a quorum");
                    }
                    for replica in &unit.replicas {
                        if replica.output_sha256 == canonical.output_sha256 {
                            let account = validated.entry(replica.volunteer).or_default();
                            account.0 += 1;
                            account.1 += replica.compute_ms;
                        }
                    }
                }
                UnitState::Failed => {
                    failed += 1;
                    let results = unit.replicas.len();
                    let total = results + unit.errors as usize;
                    if unit.errors < policy.max_error_results
                        && total < policy.max_total_results as usize
                        && results < policy.max_success_results as usize
                    {
                        return fail("failed within every limit");
                    }
                }
            }
        }
        // A lease's state changes only active → (completed | expired | failed | rejected).
        let mut active_leases = 0u64;
        for index in 0..self.granted.len() {
            let id = self.granted[index].id;
            let state = self.lease_state(id)?;
            let seen = self.lease_states[index];
            if seen != LeaseState::Active && seen != state {
                return Err(format!("lease {id} went from {seen:?} to {state:?}"));
            }
            self.lease_states[index] = state;
            active_leases += u64::from(state == LeaseState::Active);
        }
        if active_leases != active {
            return Err(format!(
                "{active_leases} leases are active, but units list {active} active leases"
            ));
        }
        // Credit equals validated work: every result agreeing with a decided unit's canonical
        // one, late ones included, and nothing else.
        let credit: HashMap<VolunteerId, (u64, u64)> = self
            .store
            .credit()
            .expect("reading the credit")
            .into_iter()
            .map(|(volunteer, record)| (volunteer, (record.results, record.compute_ms)))
            .collect();
        if credit != validated {
            return Err(format!(
                "credit (results, compute ms) {credit:?} is not the validated work {validated:?}"
            ));
        }
        // The scheduler's progress counts follow the store.
        let stats = self.scheduler.stats();
        let [job] = stats.jobs.as_slice() else {
            return Err(format!("stats list {} jobs, not one", stats.jobs.len()));
        };
        let counted = (job.units, job.done, job.failed, job.leased);
        let stored = (self.job.units, done, failed, active);
        if counted != stored {
            return Err(format!(
                "stats (units, done, failed, leased) {counted:?}, store {stored:?}"
            ));
        }
        Ok(())
    }

    /// Lets every lease run out, then has every volunteer work until no unit wants anything
    /// any of them may give: the run must end, with nothing left out.
    async fn finish(&mut self) -> Result<(), String> {
        self.clock.advance(TTL_MS + 1);
        self.log.push(format!("+{} ms (finishing)", TTL_MS + 1));
        let granted = self.lease(0, 0)?;
        self.check()?;
        if granted != 0 {
            return Err(format!("asked for 0 units, got {granted}"));
        }
        if let Some(index) =
            (0..self.granted.len()).find(|&index| self.lease_states[index] == LeaseState::Active)
        {
            return Err(format!(
                "lease {} is still active after its deadline passed",
                self.granted[index].id
            ));
        }
        for _ in 0..DRAIN_ROUNDS {
            let mut any = false;
            for volunteer in 0..self.volunteers {
                // More than there are units: a short answer is checked for withheld work.
                let granted = self.lease(volunteer, 32)?;
                any |= granted > 0;
                for index in self.granted.len() - granted..self.granted.len() {
                    self.submit(index, None).await?;
                }
                self.check()?;
            }
            if !any {
                return Ok(());
            }
        }
        Err(format!("work still leased after {DRAIN_ROUNDS} rounds"))
    }
}

async fn run(scenario: &Scenario) -> Result<(), String> {
    let mut sim = Sim::new(scenario);
    sim.check()?;
    for (step, op) in scenario.ops.iter().enumerate() {
        sim.apply(op)
            .await
            .map_err(|err| format!("step {step} ({op:?}): {err}\nlog:\n{}", sim.log.join("\n")))?;
    }
    sim.finish()
        .await
        .map_err(|err| format!("finishing: {err}\nlog:\n{}", sim.log.join("\n")))
}

proptest! {
    // Few cases, each up to 200 steps on a real store: a few seconds in a debug build; a long
    // run sets PROPTEST_CASES. No regression file: a failure prints its minimal scenario,
    // which belongs in a named test.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn scheduler_invariants_hold_for_any_run(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a runtime");
        runtime.block_on(run(&scenario)).map_err(TestCaseError::fail)?;
    }
}
