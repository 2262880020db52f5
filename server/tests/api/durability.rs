//! Durability: concurrent submissions share flushes (group commit), and what was
//! acknowledged, leased or created survives a restart on the same store.

use std::sync::Arc;

use cyclepool_shared::protocol::{MAX_UNITS_PER_REQUEST, SubmitStatus};
use cyclepool_shared::{ErrorCode, LeaseId};
use reqwest::StatusCode;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::helpers::{LEASE_TTL_MS, compute, expect_error, sign, spawn_app, volunteer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_share_flushes() {
    const UNITS: usize = MAX_UNITS_PER_REQUEST as usize;
    let app = Arc::new(spawn_app(UNITS as u64).await);
    let alice = volunteer(1);
    let leases = app.lease(alice, MAX_UNITS_PER_REQUEST).await.leases;
    assert_eq!(leases.len(), UNITS);

    // Compute everything first, so that the submissions really arrive together.
    let mut computing = JoinSet::new();
    for lease in leases {
        computing.spawn_blocking(move || compute(alice, &lease));
    }
    let results = computing.join_all().await;

    let before = app.stats().await.durability;
    let barrier = Arc::new(Barrier::new(UNITS));
    let mut submitting = JoinSet::new();
    for result in results {
        let (app, barrier) = (Arc::clone(&app), Arc::clone(&barrier));
        submitting.spawn(async move {
            barrier.wait().await;
            app.submit(&result).await
        });
    }
    let statuses = submitting.join_all().await;
    assert!(
        statuses
            .iter()
            .all(|&status| status == SubmitStatus::Accepted),
        "{statuses:?}"
    );
    let after = app.stats().await;
    assert_eq!(
        (after.jobs[0].done, after.jobs[0].leased),
        (UNITS as u64, 0)
    );
    let writes = after.durability.durable_writes - before.durable_writes;
    let flushes = after.durability.flushes - before.flushes;
    assert!(writes >= UNITS as u64, "only {writes} durable writes");
    assert!(
        flushes < writes,
        "{writes} durable writes took {flushes} flushes: no batching"
    );
}

#[tokio::test]
async fn results_and_leases_survive_a_restart() {
    let app = spawn_app(4).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    let done = app.lease_one(alice).await;
    let open = app.lease_one(bob).await;
    let accepted = compute(alice, &done);
    assert_eq!(app.submit(&accepted).await, SubmitStatus::Accepted);
    let job = app.stats().await.jobs[0].job_id;

    let app = app.restart().await;
    let stats = app.stats().await;
    assert_eq!(stats.jobs.len(), 1, "the job was created again");
    assert_eq!(stats.jobs[0].job_id, job);
    assert_eq!((stats.jobs[0].done, stats.jobs[0].leased), (1, 1));

    // The accepted result is remembered, and bob's lease is still his.
    assert_eq!(app.submit(&accepted).await, SubmitStatus::Duplicate);
    let mut unknown = compute(bob, &open);
    unknown.lease_id = LeaseId::from_bytes([9; 16]);
    sign(&mut unknown);
    let response = app.submit_response(&unknown).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownLease).await;
    assert_eq!(
        app.submit(&compute(bob, &open)).await,
        SubmitStatus::Accepted
    );

    // Only the two units never leased are handed out.
    let rest = app.lease(alice, MAX_UNITS_PER_REQUEST).await.leases;
    let mut units: Vec<u64> = rest.iter().map(|lease| lease.unit).collect();
    units.sort_unstable();
    let mut expected: Vec<u64> = (0..4)
        .filter(|&u| u != done.unit && u != open.unit)
        .collect();
    expected.sort_unstable();
    assert_eq!(units, expected);
    assert_eq!(app.progress().await, (2, 2));
}

#[tokio::test]
async fn a_lease_from_before_a_restart_still_expires_and_is_reissued() {
    let app = spawn_app(2).await;
    let alice = volunteer(1);
    let old = app.lease_one(alice).await;

    let app = app.restart().await;
    // Not yet due: the other unit comes out, not this one.
    app.clock.advance(10);
    let other = app.lease_one(alice).await;
    assert_ne!(other.unit, old.unit);
    // Now only the lease from before the restart is past its deadline.
    app.clock.advance(LEASE_TTL_MS - 10 + 1);
    let new = app.lease_one(volunteer(2)).await;
    assert_eq!((new.job_id, new.unit), (old.job_id, old.unit));
    assert_ne!(new.lease_id, old.lease_id);
    let late = app.submit_response(&compute(alice, &old)).await;
    expect_error(late, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    assert_eq!(
        app.submit(&compute(volunteer(2), &new)).await,
        SubmitStatus::Accepted
    );
}
