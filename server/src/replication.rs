//! The life of a unit under replication: how many replicas it wants, who may compute one,
//! and what a result or a lost lease does to it. Pure logic over a [`UnitRecord`]; the store
//! calls it inside its transactions, so every decision is made and written atomically.
//!
//! A unit starts wanting `initial_replicas` results. It is decided when `min_quorum` results
//! agree (same output digest): the first of them becomes canonical and every agreeing
//! volunteer earns credit. If all wanted results are in without a quorum, one more replica is
//! wanted. As in BOINC, the unit fails after `max_success_results` results without a decision,
//! `max_error_results` leases that ended without a result, or `max_total_results` of both. A volunteer never holds two replicas of one unit, nor gets
//! a replica of a unit it has already returned a result for.

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::{LeaseId, Sha256Digest, VolunteerId};
use serde::{Deserialize, Serialize};

use crate::store::{UnitRecord, UnitState};

/// One result received for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub lease: LeaseId,
    pub volunteer: VolunteerId,
    pub output_sha256: Sha256Digest,
    pub compute_ms: u64,
    /// Whether its volunteer has been credited for it: never twice, even if the unit is
    /// reopened by backtracking and decided again.
    #[serde(default)]
    pub credited: bool,
}

/// What a change did to the unit, for the scheduler's queue and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitChange {
    /// Nothing the scheduler needs to know.
    Unchanged,
    /// The unit wants another replica: queue it.
    WantsReplica,
    /// A quorum agreed; these replicas (volunteer, compute ms) earn credit.
    Decided { credited: Vec<Replica> },
    /// A result arrived after the decision; it earns credit if it agrees with the canonical one.
    Late { credited: Option<Replica> },
    /// The unit failed: too many errors, or too many results without a quorum.
    Failed,
    /// A decided unit lost the replicas that decided it (their volunteer was caught): it is
    /// open again and wants a replica.
    Reopened,
}

/// A volunteer's credibility: the probability that its result is right, given that it has
/// passed `checks_passed` spot checks (or re-executed units) and that saboteurs, at most a
/// fraction `assumed_saboteurs` of volunteers, are blacklisted when caught. Sarmenta's bound
/// for spot-checking with blacklisting: `1 - f / ((1 - f) k e)`; a newcomer (`k = 0`) gets
/// `1 - f`.
pub fn credibility(checks_passed: u32, assumed_saboteurs: f64) -> f64 {
    let f = assumed_saboteurs.clamp(0.0, 0.99);
    if checks_passed == 0 {
        return 1.0 - f;
    }
    let doubt = f / ((1.0 - f) * f64::from(checks_passed) * std::f64::consts::E);
    (1.0 - doubt).clamp(1.0 - f, 1.0)
}

impl UnitRecord {
    /// Whether the unit wants another replica leased out now.
    pub fn wants_replica(&self) -> bool {
        self.state == UnitState::Open
            && self.active.len() + self.replicas.len() < self.wanted as usize
    }

    /// Whether `volunteer` may get a replica: it holds none, has returned none, and its lease
    /// on the unit never failed.
    pub fn may_go_to(&self, volunteer: VolunteerId) -> bool {
        !self.failed_by.contains(&volunteer)
            && !self.active.iter().any(|(_, holder)| *holder == volunteer)
            && !self
                .replicas
                .iter()
                .any(|replica| replica.volunteer == volunteer)
    }

    /// Records a lease granted on the unit.
    pub fn lease_granted(&mut self, lease: LeaseId, volunteer: VolunteerId) {
        self.active.push((lease, volunteer));
        self.issued = self.issued.saturating_add(1);
    }

    /// Records a lease that failed (its holder reported an error, or its output was rejected):
    /// as [`Self::lease_lost`], and the holder is not given the unit again.
    pub fn lease_failed(&mut self, lease: LeaseId, policy: &JobPolicy) -> UnitChange {
        let holder = self
            .active
            .iter()
            .find(|(active, _)| *active == lease)
            .map(|(_, holder)| *holder);
        if let Some(holder) = holder.filter(|holder| !self.failed_by.contains(holder)) {
            self.failed_by.push(holder);
        }
        self.lease_lost(lease, policy)
    }

    /// Records a lease that ended without a result: expired, given up, or its output rejected.
    pub fn lease_lost(&mut self, lease: LeaseId, policy: &JobPolicy) -> UnitChange {
        let before = self.active.len();
        self.active.retain(|(active, _)| *active != lease);
        if self.active.len() == before {
            return UnitChange::Unchanged;
        }
        self.errors = self.errors.saturating_add(1);
        if self.state != UnitState::Open {
            return UnitChange::Unchanged;
        }
        let total = self.errors as usize + self.replicas.len();
        if self.errors >= policy.max_error_results || total >= policy.max_total_results as usize {
            self.state = UnitState::Failed;
            return UnitChange::Failed;
        }
        if self.wants_replica() {
            UnitChange::WantsReplica
        } else {
            UnitChange::Unchanged
        }
    }

    /// Records a result for one of the unit's active leases and decides what follows.
    /// `credibility` gives each volunteer's credibility (see [`credibility`]); it is used when
    /// the policy sets a target error rate.
    pub fn result_received(
        &mut self,
        replica: Replica,
        policy: &JobPolicy,
        credibility: &dyn Fn(VolunteerId) -> f64,
    ) -> UnitChange {
        self.active.retain(|(active, _)| *active != replica.lease);
        self.replicas.push(replica);
        match self.state {
            UnitState::Done { canonical } => {
                let agrees = self
                    .replicas
                    .iter()
                    .any(|r| r.lease == canonical && r.output_sha256 == replica.output_sha256);
                let credited = if agrees {
                    self.credit_agreeing(replica.output_sha256)
                        .into_iter()
                        .next()
                } else {
                    None
                };
                UnitChange::Late { credited }
            }
            UnitState::Failed => UnitChange::Late { credited: None },
            UnitState::Open => {
                let agreeing: Vec<Replica> = self
                    .replicas
                    .iter()
                    .filter(|r| r.output_sha256 == replica.output_sha256)
                    .copied()
                    .collect();
                if Self::accepts(&agreeing, &self.replicas, policy, credibility) {
                    self.state = UnitState::Done {
                        canonical: agreeing[0].lease,
                    };
                    let credited = self.credit_agreeing(replica.output_sha256);
                    return UnitChange::Decided { credited };
                }
                let all_in = self.active.is_empty() && self.replicas.len() >= self.wanted as usize;
                if !all_in {
                    return UnitChange::Unchanged;
                }
                let total = self.errors as usize + self.replicas.len();
                if self.replicas.len() >= policy.max_success_results as usize
                    || total >= policy.max_total_results as usize
                {
                    self.state = UnitState::Failed;
                    return UnitChange::Failed;
                }
                // Disagreement (or too few so far): ask one more volunteer.
                self.wanted = self.wanted.saturating_add(1);
                UnitChange::WantsReplica
            }
        }
    }

    /// Whether a group of agreeing replicas decides the unit: by fixed quorum, or, with a
    /// target error rate, when the chance that every one of them is wrong (independent
    /// saboteurs) is at most the target and no other group is as large.
    fn accepts(
        agreeing: &[Replica],
        all: &[Replica],
        policy: &JobPolicy,
        credibility: &dyn Fn(VolunteerId) -> f64,
    ) -> bool {
        if policy.target_error_rate <= 0.0 {
            return agreeing.len() >= policy.min_quorum.max(1) as usize;
        }
        let all_wrong: f64 = agreeing
            .iter()
            .map(|replica| 1.0 - credibility(replica.volunteer))
            .product();
        let largest = all.iter().all(|other| {
            all.iter()
                .filter(|r| r.output_sha256 == other.output_sha256)
                .count()
                <= agreeing.len()
        });
        largest && all_wrong <= policy.target_error_rate
    }

    /// Marks every not yet credited replica with output `digest` as credited, and returns them.
    fn credit_agreeing(&mut self, digest: Sha256Digest) -> Vec<Replica> {
        let mut credited = Vec::new();
        for replica in &mut self.replicas {
            if replica.output_sha256 == digest && !replica.credited {
                replica.credited = true;
                credited.push(*replica);
            }
        }
        credited
    }

    /// Withdraws `volunteer`'s replica, decided or not (its volunteer was caught cheating:
    /// backtracking), and decides the unit again from the replicas that remain. Also returns
    /// the replicas that now earn credit (a group that had been outvoted and now decides).
    pub fn withdraw(
        &mut self,
        volunteer: VolunteerId,
        policy: &JobPolicy,
        credibility: &dyn Fn(VolunteerId) -> f64,
    ) -> (UnitChange, Vec<Replica>) {
        let before = self.replicas.len();
        self.replicas
            .retain(|replica| replica.volunteer != volunteer);
        if self.replicas.len() == before {
            return (UnitChange::Unchanged, Vec::new());
        }
        let change = match self.state {
            UnitState::Failed => UnitChange::Unchanged,
            UnitState::Open if self.wants_replica() => UnitChange::WantsReplica,
            UnitState::Open => UnitChange::Unchanged,
            UnitState::Done { .. } => {
                // Is there still a group that decides the unit without the withdrawn replica?
                let standing = self.replicas.iter().find_map(|candidate| {
                    let group: Vec<Replica> = self
                        .replicas
                        .iter()
                        .filter(|r| r.output_sha256 == candidate.output_sha256)
                        .copied()
                        .collect();
                    Self::accepts(&group, &self.replicas, policy, credibility)
                        .then(|| group[0].lease)
                });
                match standing {
                    Some(canonical) => {
                        self.state = UnitState::Done { canonical };
                        let digest = self
                            .replicas
                            .iter()
                            .find(|r| r.lease == canonical)
                            .map(|r| r.output_sha256);
                        let credited = digest.map(|d| self.credit_agreeing(d)).unwrap_or_default();
                        return (UnitChange::Unchanged, credited);
                    }
                    None => {
                        self.state = UnitState::Open;
                        self.wanted = self.wanted.max(self.replicas.len() as u32 + 1);
                        UnitChange::Reopened
                    }
                }
            }
        };
        (change, Vec::new())
    }

    /// The canonical result's lease, once decided.
    pub fn canonical(&self) -> Option<LeaseId> {
        match self.state {
            UnitState::Done { canonical } => Some(canonical),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(wanted: u32) -> UnitRecord {
        UnitRecord::new(vec![1], wanted)
    }

    fn policy(min_quorum: u32, max_error_results: u32, max_total_results: u32) -> JobPolicy {
        JobPolicy {
            min_quorum,
            initial_replicas: min_quorum,
            max_error_results,
            max_total_results,
            max_success_results: max_total_results,
            ..JobPolicy::default()
        }
    }

    fn replica(lease: u8, volunteer: u8, output: &[u8]) -> Replica {
        Replica {
            lease: LeaseId::from_bytes([lease; 16]),
            volunteer: VolunteerId::from_bytes([volunteer; 32]),
            output_sha256: Sha256Digest::of(output),
            compute_ms: 10,
            credited: false,
        }
    }

    /// Every volunteer as credible as a newcomer (unused under fixed quorum).
    const NEWCOMER: fn(VolunteerId) -> f64 = |_| credibility(0, 0.2);

    /// The replicas as they look once credited.
    fn credited(replicas: &[Replica]) -> Vec<Replica> {
        replicas
            .iter()
            .map(|r| Replica {
                credited: true,
                ..*r
            })
            .collect()
    }

    fn grant(unit: &mut UnitRecord, r: &Replica) {
        assert!(unit.wants_replica() && unit.may_go_to(r.volunteer));
        unit.lease_granted(r.lease, r.volunteer);
    }

    #[test]
    fn a_single_replica_decides_at_once() {
        let mut u = unit(1);
        let r = replica(1, 1, b"x");
        grant(&mut u, &r);
        assert!(!u.wants_replica());
        assert_eq!(
            u.result_received(r, &policy(1, 3, 10), &NEWCOMER),
            UnitChange::Decided {
                credited: credited(&[r])
            }
        );
        assert_eq!(u.canonical(), Some(r.lease));
    }

    #[test]
    fn a_quorum_of_two_decides_when_two_agree_and_asks_again_on_disagreement() {
        let p = policy(2, 3, 4);
        let mut u = unit(2);
        let (a, b, c) = (
            replica(1, 1, b"x"),
            replica(2, 2, b"y"),
            replica(3, 3, b"x"),
        );
        grant(&mut u, &a);
        grant(&mut u, &b);
        assert!(!u.wants_replica());
        assert_eq!(u.result_received(a, &p, &NEWCOMER), UnitChange::Unchanged);
        // Disagreement: a third replica is wanted, and nobody who returned one may take it.
        assert_eq!(
            u.result_received(b, &p, &NEWCOMER),
            UnitChange::WantsReplica
        );
        assert!(!u.may_go_to(a.volunteer) && !u.may_go_to(b.volunteer));
        grant(&mut u, &c);
        assert_eq!(
            u.result_received(c, &p, &NEWCOMER),
            UnitChange::Decided {
                credited: credited(&[a, c])
            }
        );
        assert_eq!(u.canonical(), Some(a.lease));
    }

    #[test]
    fn late_results_earn_credit_only_when_they_agree() {
        let p = policy(1, 3, 4);
        let mut u = unit(2);
        let (a, b, c) = (
            replica(1, 1, b"x"),
            replica(2, 2, b"x"),
            replica(3, 3, b"x"),
        );
        grant(&mut u, &a);
        grant(&mut u, &b);
        assert_eq!(
            u.result_received(a, &p, &NEWCOMER),
            UnitChange::Decided {
                credited: credited(&[a])
            }
        );
        assert_eq!(
            u.result_received(b, &p, &NEWCOMER),
            UnitChange::Late {
                credited: credited(&[b]).first().copied()
            }
        );
        let mut u2 = unit(2);
        let wrong = replica(4, 4, b"z");
        grant(&mut u2, &c);
        grant(&mut u2, &wrong);
        u2.result_received(c, &p, &NEWCOMER);
        assert_eq!(
            u2.result_received(wrong, &p, &NEWCOMER),
            UnitChange::Late { credited: None }
        );
    }

    #[test]
    fn a_volunteer_whose_lease_failed_does_not_get_the_unit_again() {
        let p = policy(1, 3, 6);
        let mut u = unit(1);
        let (a, b) = (replica(1, 1, b"x"), replica(2, 2, b"x"));
        grant(&mut u, &a);
        assert_eq!(u.lease_failed(a.lease, &p), UnitChange::WantsReplica);
        assert!(!u.may_go_to(a.volunteer), "failed once, not again");
        assert!(u.may_go_to(b.volunteer));
        // One volunteer cannot use up the error allowance alone: it is not offered the unit,
        // so the unit stays open for someone else.
        assert_eq!(u.errors, 1);
        assert_eq!(u.state, UnitState::Open);
        // An expired lease is no one's fault: its holder may try again.
        grant(&mut u, &b);
        assert_eq!(u.lease_lost(b.lease, &p), UnitChange::WantsReplica);
        assert!(u.may_go_to(b.volunteer));
        assert_eq!(u.failed_by, vec![a.volunteer]);
    }

    #[test]
    fn a_unit_fails_past_its_limits() {
        // Too many lost leases.
        let p = policy(1, 2, 4);
        let mut u = unit(1);
        let (a, b) = (replica(1, 1, b"x"), replica(2, 2, b"x"));
        grant(&mut u, &a);
        assert_eq!(u.lease_lost(a.lease, &p), UnitChange::WantsReplica);
        // The same volunteer may try again after losing its lease: it returned nothing.
        assert!(u.may_go_to(a.volunteer));
        grant(&mut u, &b);
        assert_eq!(u.lease_lost(b.lease, &p), UnitChange::Failed);
        assert!(!u.wants_replica());
        // Losing an unknown lease changes nothing.
        assert_eq!(
            u.lease_lost(LeaseId::from_bytes([9; 16]), &p),
            UnitChange::Unchanged
        );

        // Too many results without a quorum.
        let p = policy(2, 5, 3);
        let mut u = unit(2);
        let rs = [
            replica(1, 1, b"x"),
            replica(2, 2, b"y"),
            replica(3, 3, b"z"),
        ];
        grant(&mut u, &rs[0]);
        grant(&mut u, &rs[1]);
        u.result_received(rs[0], &p, &NEWCOMER);
        assert_eq!(
            u.result_received(rs[1], &p, &NEWCOMER),
            UnitChange::WantsReplica
        );
        grant(&mut u, &rs[2]);
        assert_eq!(u.result_received(rs[2], &p, &NEWCOMER), UnitChange::Failed);
    }

    #[test]
    fn credibility_grows_with_checks_passed() {
        assert!((credibility(0, 0.2) - 0.8).abs() < 1e-12);
        assert!(credibility(1, 0.2) < credibility(10, 0.2));
        // 1 - 0.2 / (0.8 · 10 · e) ≈ 0.9908
        assert!((credibility(10, 0.2) - (1.0 - 0.25 / (10.0 * std::f64::consts::E))).abs() < 1e-12);
        assert!(credibility(u32::MAX, 0.2) < 1.0 + 1e-12);
    }

    #[test]
    fn credible_results_need_fewer_replicas() {
        let p = JobPolicy {
            target_error_rate: 0.01,
            assumed_saboteur_fraction: 0.2,
            initial_replicas: 1,
            max_total_results: 6,
            ..JobPolicy::default()
        };
        // A newcomer's result (1 - Cr = 0.2) is not enough; two agreeing (0.04) neither;
        // three (0.008) are.
        let mut u = unit(1);
        let rs = [
            replica(1, 1, b"x"),
            replica(2, 2, b"x"),
            replica(3, 3, b"x"),
        ];
        grant(&mut u, &rs[0]);
        assert_eq!(
            u.result_received(rs[0], &p, &NEWCOMER),
            UnitChange::WantsReplica
        );
        grant(&mut u, &rs[1]);
        assert_eq!(
            u.result_received(rs[1], &p, &NEWCOMER),
            UnitChange::WantsReplica
        );
        grant(&mut u, &rs[2]);
        assert!(matches!(
            u.result_received(rs[2], &p, &NEWCOMER),
            UnitChange::Decided { .. }
        ));
        // A volunteer that passed ten checks (1 - Cr ≈ 0.0092) decides alone.
        let veteran = |_| credibility(10, 0.2);
        let mut u = unit(1);
        let r = replica(4, 4, b"x");
        grant(&mut u, &r);
        assert!(matches!(
            u.result_received(r, &p, &veteran),
            UnitChange::Decided { .. }
        ));
        // A credible result that disagrees with a larger group does not win.
        let mut u = unit(3);
        let (a, b, c) = (
            replica(5, 5, b"x"),
            replica(6, 6, b"x"),
            replica(7, 7, b"y"),
        );
        for r in [&a, &b, &c] {
            grant(&mut u, r);
        }
        let cred = |v: VolunteerId| {
            if v == c.volunteer {
                credibility(1000, 0.2)
            } else {
                credibility(0, 0.2)
            }
        };
        assert_eq!(u.result_received(a, &p, &cred), UnitChange::Unchanged);
        assert_eq!(u.result_received(b, &p, &cred), UnitChange::Unchanged);
        assert!(matches!(
            u.result_received(c, &p, &cred),
            UnitChange::WantsReplica
        ));
    }

    #[test]
    fn withdrawing_a_cheaters_replica_reopens_what_it_decided() {
        let p = policy(1, 3, 6);
        // Decided by the cheater alone: reopened, and wants a replica again.
        let mut u = unit(1);
        let cheat = replica(1, 1, b"wrong");
        grant(&mut u, &cheat);
        u.result_received(cheat, &p, &NEWCOMER);
        assert_eq!(
            u.withdraw(cheat.volunteer, &p, &NEWCOMER).0,
            UnitChange::Reopened
        );
        assert!(u.wants_replica() && u.canonical().is_none());
        // Decided with another agreeing replica still standing: stays decided, by that one.
        let p2 = policy(1, 3, 6);
        let mut u = unit(2);
        let (a, b) = (replica(2, 2, b"x"), replica(3, 3, b"x"));
        grant(&mut u, &a);
        grant(&mut u, &b);
        u.result_received(a, &p2, &NEWCOMER);
        u.result_received(b, &p2, &NEWCOMER);
        assert_eq!(
            u.withdraw(a.volunteer, &p2, &NEWCOMER).0,
            UnitChange::Unchanged
        );
        assert_eq!(u.canonical(), Some(b.lease));
        // A volunteer with no replica here changes nothing.
        assert_eq!(
            u.withdraw(VolunteerId::from_bytes([9; 32]), &p2, &NEWCOMER)
                .0,
            UnitChange::Unchanged
        );
    }

    #[test]
    fn success_and_total_limits_are_separate() {
        // Two successes without agreement reach max_success_results = 2 ...
        let p = JobPolicy {
            min_quorum: 2,
            initial_replicas: 2,
            max_success_results: 2,
            max_total_results: 10,
            ..JobPolicy::default()
        };
        let mut u = unit(2);
        let (a, b) = (replica(1, 1, b"x"), replica(2, 2, b"y"));
        grant(&mut u, &a);
        grant(&mut u, &b);
        u.result_received(a, &p, &NEWCOMER);
        assert_eq!(u.result_received(b, &p, &NEWCOMER), UnitChange::Failed);
        // ... while errors and successes together reach max_total_results = 2.
        let p = JobPolicy {
            min_quorum: 2,
            initial_replicas: 2,
            max_success_results: 10,
            max_total_results: 2,
            max_error_results: 10,
            ..JobPolicy::default()
        };
        let mut u = unit(2);
        let (a, b) = (replica(1, 1, b"x"), replica(2, 2, b"y"));
        grant(&mut u, &a);
        grant(&mut u, &b);
        assert_eq!(u.lease_lost(a.lease, &p), UnitChange::WantsReplica);
        assert_eq!(u.result_received(b, &p, &NEWCOMER), UnitChange::Unchanged);
        let c = replica(3, 3, b"z");
        grant(&mut u, &c);
        assert_eq!(u.lease_lost(c.lease, &p), UnitChange::Failed);
    }

    #[test]
    fn reopened_units_never_credit_anyone_twice() {
        let p = policy(2, 3, 6);
        let mut u = unit(2);
        let (honest, cheat, other) = (
            replica(1, 1, b"x"),
            replica(2, 2, b"x"),
            replica(3, 3, b"x"),
        );
        grant(&mut u, &honest);
        grant(&mut u, &cheat);
        u.result_received(honest, &p, &NEWCOMER);
        // The cheater happened to agree; both are credited once.
        assert!(
            matches!(u.result_received(cheat, &p, &NEWCOMER), UnitChange::Decided { ref credited } if credited.len() == 2)
        );
        // Caught elsewhere: the unit reopens; the honest replica keeps its (one) credit.
        assert_eq!(
            u.withdraw(cheat.volunteer, &p, &NEWCOMER).0,
            UnitChange::Reopened
        );
        grant(&mut u, &other);
        // Decided again: only the newcomer is credited, not the honest replica a second time.
        assert_eq!(
            u.result_received(other, &p, &NEWCOMER),
            UnitChange::Decided {
                credited: credited(&[other])
            }
        );
    }

    #[test]
    fn an_outvoted_group_that_decides_after_backtracking_is_credited() {
        let p = policy(1, 3, 6);
        let mut u = unit(2);
        let (cheat, honest) = (replica(1, 1, b"lie"), replica(2, 2, b"x"));
        grant(&mut u, &cheat);
        grant(&mut u, &honest);
        u.result_received(cheat, &p, &NEWCOMER);
        // The honest result came late and disagreed: no credit then.
        assert_eq!(
            u.result_received(honest, &p, &NEWCOMER),
            UnitChange::Late { credited: None }
        );
        // Without the cheater, the honest result decides, and earns its credit now.
        let (change, newly) = u.withdraw(cheat.volunteer, &p, &NEWCOMER);
        assert_eq!(change, UnitChange::Unchanged);
        assert_eq!(newly, credited(&[honest]));
        assert_eq!(u.canonical(), Some(honest.lease));
    }

    #[test]
    fn a_volunteer_never_holds_two_replicas() {
        let mut u = unit(3);
        let a = replica(1, 1, b"x");
        grant(&mut u, &a);
        assert!(u.wants_replica());
        assert!(!u.may_go_to(a.volunteer));
    }
}
