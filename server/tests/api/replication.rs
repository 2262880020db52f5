//! Replication and quorum through the real API: replicas go to different volunteers, a unit is
//! decided when enough results agree, disagreement asks for more replicas, limits fail a
//! unit, and credit goes only to the volunteers whose results agreed with the quorum.

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::Inputs;

use crate::helpers::{TestApp, compute, spawn_app, submission, test_policy, volunteer};

/// Adds a one-unit job with `policy` to `app` (whose first job is left alone) and returns its id.
async fn job_with(app: &TestApp, policy: JobPolicy) -> u64 {
    app.create_test_job(Inputs::List(vec![b"abc".to_vec()]), policy)
        .await
}

fn quorum(min_quorum: u32, max_total_results: u32) -> JobPolicy {
    JobPolicy {
        min_quorum,
        initial_replicas: min_quorum,
        max_total_results,
        // The test module's verify would catch wrong outputs itself; these tests are about
        // what replication does with outputs nobody can check.
        use_verify: false,
        ..test_policy()
    }
}

#[tokio::test]
async fn replicas_go_to_different_volunteers_and_a_quorum_decides() {
    let app = spawn_app(0).await;
    let job = job_with(&app, quorum(2, 4)).await;
    let (a, b) = (volunteer(1), volunteer(2));
    // Asking for many units, one volunteer still gets only one replica of the unit.
    let leases_a = app.lease(a, 10).await.leases;
    assert_eq!(leases_a.len(), 1);
    assert!(app.lease(a, 10).await.leases.is_empty());
    let leases_b = app.lease(b, 10).await.leases;
    assert_eq!(leases_b.len(), 1);
    assert_eq!(leases_a[0].unit, leases_b[0].unit);
    assert_ne!(leases_a[0].lease_id, leases_b[0].lease_id);
    // Both replicas are out: nobody else gets one.
    assert!(app.lease(volunteer(3), 10).await.leases.is_empty());

    app.submit(&compute(a, &leases_a[0])).await;
    assert_eq!(app.job_counts(job).await, (0, 1, 0));
    app.submit(&compute(b, &leases_b[0])).await;
    assert_eq!(app.job_counts(job).await, (1, 0, 0));
    let board = app.leaderboard().await;
    assert_eq!(
        board.len(),
        2,
        "both agreeing volunteers earn credit: {board:?}"
    );
}

#[tokio::test]
async fn disagreement_asks_another_volunteer_and_only_the_agreeing_earn_credit() {
    let app = spawn_app(0).await;
    let job = job_with(&app, quorum(2, 4)).await;
    let (honest, cheat, referee) = (volunteer(1), volunteer(2), volunteer(3));
    let first = app.lease_one(honest).await;
    let second = app.lease_one(cheat).await;
    app.submit(&compute(honest, &first)).await;
    app.submit(&submission(cheat, &second, b"made up".to_vec()))
        .await;
    // No quorum: a third replica is wanted, and neither earlier volunteer may take it.
    assert_eq!(app.job_counts(job).await, (0, 0, 0));
    assert!(app.lease(honest, 5).await.leases.is_empty());
    assert!(app.lease(cheat, 5).await.leases.is_empty());
    let third = app.lease_one(referee).await;
    assert_eq!(third.unit, first.unit);
    app.submit(&compute(referee, &third)).await;
    assert_eq!(app.job_counts(job).await, (1, 0, 0));
    let board = app.leaderboard().await;
    let names: Vec<&str> = board.iter().map(|(v, _)| v.as_str()).collect();
    assert!(names.contains(&honest.to_string().as_str()));
    assert!(names.contains(&referee.to_string().as_str()));
    assert!(!names.contains(&cheat.to_string().as_str()), "{board:?}");
    // The download holds the canonical (agreed) result.
    let lines = app.results(job).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(
        line["volunteer"].as_str(),
        Some(honest.to_string().as_str())
    );
}

#[tokio::test]
async fn a_unit_without_a_quorum_within_its_limit_fails() {
    let app = spawn_app(0).await;
    let job = job_with(&app, quorum(2, 3)).await;
    for (n, output) in [(1u8, b"x".to_vec()), (2, b"y".to_vec()), (3, b"z".to_vec())] {
        let worker = volunteer(n);
        let lease = app.lease_one(worker).await;
        app.submit(&submission(worker, &lease, output)).await;
    }
    assert_eq!(app.job_counts(job).await, (0, 0, 1));
    assert!(app.lease(volunteer(4), 5).await.leases.is_empty());
    assert!(app.leaderboard().await.is_empty());
}

#[tokio::test]
async fn a_unit_fails_after_too_many_lost_leases() {
    let app = spawn_app(0).await;
    let job = job_with(
        &app,
        JobPolicy {
            max_error_results: 2,
            ..quorum(1, 4)
        },
    )
    .await;
    // Each lease expires; the next volunteer's request reclaims it (an error for the unit).
    let first = app.lease_one(volunteer(1)).await;
    app.clock.advance(test_policy().lease_ttl_ms + 1);
    let second = app.lease_one(volunteer(2)).await;
    assert_eq!(second.unit, first.unit);
    app.clock.advance(test_policy().lease_ttl_ms + 1);
    // The second loss reaches max_error_results: the unit fails and is not handed out.
    assert!(app.lease(volunteer(3), 1).await.leases.is_empty());
    assert_eq!(app.job_counts(job).await, (0, 0, 1));
}

#[tokio::test]
async fn replicated_results_survive_a_restart_mid_quorum() {
    let app = spawn_app(0).await;
    let job = job_with(&app, quorum(2, 4)).await;
    let (a, b) = (volunteer(1), volunteer(2));
    let lease_a = app.lease_one(a).await;
    app.submit(&compute(a, &lease_a)).await;
    let app = app.restart().await;
    // After the restart the unit still wants its second replica, and not from `a`.
    assert!(app.lease(a, 5).await.leases.is_empty());
    let lease_b = app.lease_one(b).await;
    app.submit(&compute(b, &lease_b)).await;
    assert_eq!(app.job_counts(job).await, (1, 0, 0));
}
