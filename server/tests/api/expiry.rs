//! Lease deadlines on the paused clock: a late result is refused, the unit is re-issued under
//! a new lease id and nonce, and the deadline itself is still in time.

use cyclepool_shared::ErrorCode;
use cyclepool_shared::protocol::SubmitStatus;
use reqwest::StatusCode;

use crate::helpers::{LEASE_TTL_MS, START_MS, compute, expect_error, spawn_app, volunteer};

#[tokio::test]
async fn an_expired_unit_is_reissued_under_a_new_lease_and_the_old_one_is_refused() {
    // Three units, so that re-issue has to prefer the expired unit over fresh ones.
    let app = spawn_app(3).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    let old = app.lease_one(alice).await;

    app.clock.advance(LEASE_TTL_MS + 1);
    let new = app.lease_one(bob).await;
    assert_eq!((new.job_id, new.unit), (old.job_id, old.unit));
    assert_ne!(new.lease_id, old.lease_id);
    assert_ne!(new.nonce, old.nonce);
    assert_eq!(new.deadline_ms, START_MS + LEASE_TTL_MS + 1 + LEASE_TTL_MS);
    assert_eq!(new.input, old.input);
    assert_eq!(app.progress().await, (0, 1));

    let late = app.submit_response(&compute(alice, &old)).await;
    expect_error(late, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    assert_eq!(
        app.submit(&compute(bob, &new)).await,
        SubmitStatus::Accepted
    );
    assert_eq!(app.progress().await, (1, 0));

    // The refused late result changed nothing, and stays refused.
    let again = app.submit_response(&compute(alice, &old)).await;
    expect_error(again, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn the_same_volunteer_can_get_its_expired_unit_back_under_a_new_lease() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let old = app.lease_one(alice).await;
    app.clock.advance(LEASE_TTL_MS + 1);
    let new = app.lease_one(alice).await;
    assert_eq!((new.job_id, new.unit), (old.job_id, old.unit));
    assert_ne!((new.lease_id, new.nonce), (old.lease_id, old.nonce));
    let stale = app.submit_response(&compute(alice, &old)).await;
    expect_error(stale, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    assert_eq!(
        app.submit(&compute(alice, &new)).await,
        SubmitStatus::Accepted
    );
}

#[tokio::test]
async fn a_result_exactly_at_the_deadline_is_accepted() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    app.clock.advance(LEASE_TTL_MS);
    assert_eq!(app.clock.now_ms(), lease.deadline_ms);
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_lease_is_not_reclaimed_at_its_deadline_only_after_it() {
    let app = spawn_app(1).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(alice).await;

    // At the deadline the lease is still alice's: bob gets nothing, alice's result counts.
    app.clock.advance(LEASE_TTL_MS);
    let response = app.lease(bob, 1).await;
    assert!(
        response.leases.is_empty(),
        "re-issued at the deadline: {response:?}"
    );
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_result_one_millisecond_late_is_refused_even_before_the_unit_is_reissued() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    app.clock.advance(LEASE_TTL_MS + 1);
    let late = app.submit_response(&compute(alice, &lease)).await;
    expect_error(late, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    assert_eq!(app.progress().await.0, 0);
    // The unit goes out again.
    let again = app.lease_one(volunteer(2)).await;
    assert_eq!(again.unit, lease.unit);
}

#[tokio::test]
async fn only_leases_past_their_deadline_are_reissued() {
    let app = spawn_app(5).await;
    let alice = volunteer(1);
    let early = app.lease(alice, 2).await.leases;
    assert_eq!(early.len(), 2);
    app.clock.advance(LEASE_TTL_MS / 2);
    let later = app.lease_one(alice).await;

    // The first two are now past their deadline; the third is not.
    app.clock.advance(LEASE_TTL_MS / 2 + 1);
    let reissued = app.lease(volunteer(2), 2).await.leases;
    let mut units: Vec<u64> = reissued.iter().map(|lease| lease.unit).collect();
    units.sort_unstable();
    let mut expected: Vec<u64> = early.iter().map(|lease| lease.unit).collect();
    expected.sort_unstable();
    assert_eq!(units, expected, "the expired units come back first");
    assert!(!units.contains(&later.unit));
    assert_eq!(
        app.submit(&compute(alice, &later)).await,
        SubmitStatus::Accepted
    );
    for lease in &early {
        let late = app.submit_response(&compute(alice, lease)).await;
        expect_error(late, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    }
}

#[tokio::test]
async fn a_completed_lease_is_never_reissued() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
    app.clock.advance(10 * LEASE_TTL_MS);
    let response = app.lease(volunteer(2), 64).await;
    assert!(response.leases.is_empty(), "{response:?}");
    assert_eq!(app.progress().await, (1, 0));
}
