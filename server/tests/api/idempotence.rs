//! Retried submissions: the same result again is a harmless duplicate, counted once; a
//! different result for a completed lease is a conflict.

use cyclepool_shared::ErrorCode;
use cyclepool_shared::protocol::SubmitStatus;
use reqwest::StatusCode;

use crate::helpers::{LEASE_TTL_MS, compute, expect_error, spawn_app, submission, volunteer};

#[tokio::test]
async fn the_same_result_twice_is_a_duplicate_counted_once() {
    let app = spawn_app(2).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let result = compute(alice, &lease);

    let before = app.stats().await.durability;
    assert_eq!(app.submit(&result).await, SubmitStatus::Accepted);
    assert_eq!(app.submit(&result).await, SubmitStatus::Duplicate);
    assert_eq!(app.submit(&result).await, SubmitStatus::Duplicate);
    let stats = app.stats().await;
    assert_eq!((stats.jobs[0].done, stats.jobs[0].leased), (1, 0));
    // A duplicate is acknowledged only once durable too: the first copy may not have been.
    assert!(
        stats.durability.durable_writes >= before.durable_writes + 3,
        "{before:?} -> {:?}",
        stats.durability
    );
}

#[tokio::test]
async fn a_different_result_for_a_completed_lease_conflicts() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let honest = compute(alice, &lease);
    assert_eq!(app.submit(&honest).await, SubmitStatus::Accepted);

    let mut other_output = honest.output.clone();
    other_output[0] ^= 1;
    let conflicting = submission(alice, &lease, other_output);
    let response = app.submit_response(&conflicting).await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::ConflictingResult).await;

    // The stored result is unchanged: the original is still recognised as a duplicate.
    assert_eq!(app.submit(&honest).await, SubmitStatus::Duplicate);
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_retry_after_the_deadline_of_an_accepted_result_is_still_a_duplicate() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let result = compute(alice, &lease);
    assert_eq!(app.submit(&result).await, SubmitStatus::Accepted);

    app.clock.advance(LEASE_TTL_MS + 1);
    // A lease request runs the expiry scan; the completed lease must be left alone.
    assert!(app.lease(volunteer(2), 1).await.leases.is_empty());
    assert_eq!(app.submit(&result).await, SubmitStatus::Duplicate);
    assert_eq!(app.progress().await, (1, 0));
}
