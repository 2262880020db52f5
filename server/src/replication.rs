//! The life of a unit under replication: how many replicas it wants, who may compute one,
//! and what a result or a lost lease does to it. Pure logic over a [`UnitRecord`]; the store
//! calls it inside its transactions, so every decision is made and written atomically.
//!
//! A unit starts wanting `initial_replicas` results. It is decided when `min_quorum` results
//! agree (same output digest): the first of them becomes canonical and every agreeing
//! volunteer earns credit. If all wanted results are in without a quorum, one more replica is
//! wanted, up to `max_total_results`; past that, or after `max_error_results` leases ended
//! without a result, the unit fails. A volunteer never holds two replicas of one unit, nor gets
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
}

impl UnitRecord {
    /// Whether the unit wants another replica leased out now.
    pub fn wants_replica(&self) -> bool {
        self.state == UnitState::Open
            && self.active.len() + self.replicas.len() < self.wanted as usize
    }

    /// Whether `volunteer` may get a replica: it holds none and has returned none.
    pub fn may_go_to(&self, volunteer: VolunteerId) -> bool {
        !self.active.iter().any(|(_, holder)| *holder == volunteer)
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
        if self.errors >= policy.max_error_results {
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
    pub fn result_received(&mut self, replica: Replica, policy: &JobPolicy) -> UnitChange {
        self.active.retain(|(active, _)| *active != replica.lease);
        self.replicas.push(replica);
        match self.state {
            UnitState::Done { canonical } => {
                let agrees = self
                    .replicas
                    .iter()
                    .any(|r| r.lease == canonical && r.output_sha256 == replica.output_sha256);
                UnitChange::Late {
                    credited: agrees.then_some(replica),
                }
            }
            UnitState::Failed => UnitChange::Late { credited: None },
            UnitState::Open => {
                let agreeing: Vec<Replica> = self
                    .replicas
                    .iter()
                    .filter(|r| r.output_sha256 == replica.output_sha256)
                    .copied()
                    .collect();
                if agreeing.len() >= policy.min_quorum.max(1) as usize {
                    self.state = UnitState::Done {
                        canonical: agreeing[0].lease,
                    };
                    return UnitChange::Decided { credited: agreeing };
                }
                let all_in = self.active.is_empty() && self.replicas.len() >= self.wanted as usize;
                if !all_in {
                    return UnitChange::Unchanged;
                }
                if self.replicas.len() >= policy.max_total_results as usize {
                    self.state = UnitState::Failed;
                    return UnitChange::Failed;
                }
                // Disagreement (or too few so far): ask one more volunteer.
                self.wanted = self.wanted.saturating_add(1);
                UnitChange::WantsReplica
            }
        }
    }

    /// Withdraws `volunteer`'s undecided replica (its volunteer was caught cheating). Returns
    /// whether the unit now wants a replica again.
    pub fn withdraw(&mut self, volunteer: VolunteerId) -> bool {
        if self.state != UnitState::Open {
            return false;
        }
        self.replicas
            .retain(|replica| replica.volunteer != volunteer);
        self.wants_replica()
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
            ..JobPolicy::default()
        }
    }

    fn replica(lease: u8, volunteer: u8, output: &[u8]) -> Replica {
        Replica {
            lease: LeaseId::from_bytes([lease; 16]),
            volunteer: VolunteerId::from_bytes([volunteer; 32]),
            output_sha256: Sha256Digest::of(output),
            compute_ms: 10,
        }
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
            u.result_received(r, &policy(1, 3, 10)),
            UnitChange::Decided { credited: vec![r] }
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
        assert_eq!(u.result_received(a, &p), UnitChange::Unchanged);
        // Disagreement: a third replica is wanted, and nobody who returned one may take it.
        assert_eq!(u.result_received(b, &p), UnitChange::WantsReplica);
        assert!(!u.may_go_to(a.volunteer) && !u.may_go_to(b.volunteer));
        grant(&mut u, &c);
        assert_eq!(
            u.result_received(c, &p),
            UnitChange::Decided {
                credited: vec![a, c]
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
            u.result_received(a, &p),
            UnitChange::Decided { credited: vec![a] }
        );
        assert_eq!(
            u.result_received(b, &p),
            UnitChange::Late { credited: Some(b) }
        );
        let mut u2 = unit(2);
        let wrong = replica(4, 4, b"z");
        grant(&mut u2, &c);
        grant(&mut u2, &wrong);
        u2.result_received(c, &p);
        assert_eq!(
            u2.result_received(wrong, &p),
            UnitChange::Late { credited: None }
        );
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
        u.result_received(rs[0], &p);
        assert_eq!(u.result_received(rs[1], &p), UnitChange::WantsReplica);
        grant(&mut u, &rs[2]);
        assert_eq!(u.result_received(rs[2], &p), UnitChange::Failed);
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
