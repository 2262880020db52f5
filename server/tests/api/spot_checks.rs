//! Spot checks, server re-execution and backtracking: a result that contradicts an answer the
//! server computed itself blacklists its volunteer and withdraws its undecided results; spot
//! checks look like any other lease, earn no credit, and catch cheaters too.

use cyclepool_shared::ErrorCode;
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::Inputs;
use reqwest::StatusCode;

use crate::helpers::{
    TestApp, compute, expect_error, spawn_app, submission, test_job_request, test_policy, volunteer,
};

/// Adds a job of `units` three-byte units with `policy` to `app` and returns its id.
async fn job_with(app: &TestApp, units: u8, policy: JobPolicy) -> u64 {
    let inputs = Inputs::List((0..units).map(|i| vec![i, i + 1, i + 2]).collect());
    app.create_test_job(inputs, policy).await
}

fn checked(min_quorum: u32, spot_check_rate: f64) -> JobPolicy {
    JobPolicy {
        min_quorum,
        initial_replicas: min_quorum,
        use_verify: false,
        // Every unit's answer is computed by the server (small jobs: before creation answers).
        reexecution_rate: 1.0,
        spot_check_rate,
        ..test_policy()
    }
}

#[tokio::test]
async fn a_contradicted_result_blacklists_and_backtracks() {
    let app = spawn_app(0).await;
    let job = job_with(&app, 2, checked(2, 0.0)).await;
    let (cheat, a, b, c) = (volunteer(1), volunteer(2), volunteer(3), volunteer(4));
    // The cheater first answers one unit correctly: an undecided replica (quorum is two).
    let first = app.lease_one(cheat).await;
    app.submit(&compute(cheat, &first)).await;
    // Then lies on the other unit: the server knows that answer.
    let second = app.lease_one(cheat).await;
    assert_ne!(second.unit, first.unit);
    // Caught and blacklisted: no more leases, no more results.
    app.expect_caught(cheat, &second, b"lie".to_vec()).await;

    // Backtracking withdrew the cheater's undecided replica of the first unit: one honest
    // result no longer makes a quorum there; two do.
    for worker in [a, b, c] {
        let leases = app.lease(worker, 2).await.leases;
        for lease in &leases {
            app.submit(&compute(worker, lease)).await;
        }
    }
    assert_eq!(app.job_counts(job).await.0, 2);
    let board = app.leaderboard().await;
    assert!(
        board
            .iter()
            .all(|(volunteer, _)| *volunteer != cheat.to_string()),
        "the cheater earns nothing: {board:?}"
    );
}

#[tokio::test]
async fn spot_checks_look_like_units_earn_nothing_and_catch_liars() {
    let app = spawn_app(0).await;
    // Every lease is a spot check while the job has work.
    let job = job_with(&app, 3, checked(1, 1.0)).await;
    let (honest, liar) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(honest).await;
    // Nothing in the lease marks it: same job, a real unit's input, a nonce, a deadline.
    assert_eq!(lease.job_id.0, job);
    assert!(lease.unit < 3);
    app.submit(&compute(honest, &lease)).await;
    assert_eq!(
        app.job_counts(job).await.0,
        0,
        "a spot check is not a replica"
    );
    let board = app.leaderboard().await;
    assert!(board.is_empty(), "a spot check earns no credit: {board:?}");

    let lease = app.lease_one(liar).await;
    app.expect_caught(liar, &lease, b"lie".to_vec()).await;
}

#[tokio::test]
async fn rates_outside_zero_to_one_are_refused() {
    let app = spawn_app(0).await;
    app.upload_test_module().await;
    for policy in [
        JobPolicy {
            spot_check_rate: 1.5,
            ..test_policy()
        },
        JobPolicy {
            reexecution_rate: -0.1,
            ..test_policy()
        },
    ] {
        let request = test_job_request(Inputs::List(vec![vec![1]]), policy);
        let response = app.create_job_response(&request).await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
}

#[tokio::test]
async fn credibility_earned_on_checks_lets_one_result_decide() {
    let app = spawn_app(0).await;
    // Job A: every answer known (re-execution), one replica each: a veteran earns ten checks.
    let job_a = job_with(&app, 10, checked(1, 0.0)).await;
    let (veteran, newcomer) = (volunteer(1), volunteer(2));
    for lease in app.lease(veteran, 10).await.leases {
        assert_eq!(lease.job_id.0, job_a);
        app.submit(&compute(veteran, &lease)).await;
    }
    // Job B: credibility-based, target error rate 1 %, nothing known.
    let job_b = job_with(
        &app,
        2,
        JobPolicy {
            target_error_rate: 0.01,
            assumed_saboteur_fraction: 0.2,
            initial_replicas: 1,
            max_total_results: 6,
            use_verify: false,
            ..test_policy()
        },
    )
    .await;
    // The veteran (1 - Cr ≈ 0.009) decides its unit alone.
    let lease = app.lease_one(veteran).await;
    assert_eq!(lease.job_id.0, job_b);
    app.submit(&compute(veteran, &lease)).await;
    assert_eq!(app.job_counts(job_b).await.0, 1);
    // A newcomer's result (1 - Cr = 0.2) is not enough: its unit wants another replica.
    let lease = app.lease_one(newcomer).await;
    app.submit(&compute(newcomer, &lease)).await;
    assert_eq!(app.job_counts(job_b).await.0, 1);
    let again = app.lease_one(volunteer(3)).await;
    assert_eq!(again.unit, lease.unit);
}

#[tokio::test]
async fn a_caught_cheaters_decided_results_are_reopened_and_recomputed() {
    let app = spawn_app(0).await;
    let unchecked = JobPolicy {
        use_verify: false,
        ..test_policy()
    };
    let job_a = job_with(&app, 1, unchecked).await;
    let (cheat, honest) = (volunteer(1), volunteer(2));
    // Nothing can check job A: the cheater's wrong answer decides its unit (quorum one).
    let lease = app.lease_one(cheat).await;
    assert_eq!(lease.job_id.0, job_a);
    app.submit(&submission(cheat, &lease, b"wrong".to_vec()))
        .await;
    assert_eq!(app.job_counts(job_a).await.0, 1);

    // Job B's answers are known: the cheater lies there too and is caught.
    let job_b = job_with(&app, 1, checked(1, 0.0)).await;
    let lease = app.lease_one(cheat).await;
    assert_eq!(lease.job_id.0, job_b);
    app.expect_caught(cheat, &lease, b"lie".to_vec()).await;

    // Backtracking reopened job A's unit: it is undecided again, and goes to someone honest.
    assert_eq!(app.job_counts(job_a).await.0, 0);
    let again = app.lease_one(honest).await;
    assert_eq!(again.job_id.0, job_a);
    app.submit(&compute(honest, &again)).await;
    assert_eq!(app.job_counts(job_a).await.0, 1);
    let lines = app.results(job_a).await;
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    let line = &lines[0];
    assert_eq!(
        line["volunteer"].as_str(),
        Some(honest.to_string().as_str())
    );
    // The cheater's credit is void.
    let board = app.leaderboard().await;
    assert!(
        board
            .iter()
            .all(|(volunteer, _)| *volunteer != cheat.to_string()),
        "{board:?}"
    );
}

#[tokio::test]
async fn colluders_false_quorum_is_undone_when_one_of_them_is_caught() {
    let app = spawn_app(0).await;
    // Job A: two-replica voting, nothing known. Two colluders agree on the same lie.
    let voting = JobPolicy {
        min_quorum: 2,
        initial_replicas: 2,
        use_verify: false,
        ..test_policy()
    };
    let job_a = job_with(&app, 1, voting).await;
    let (c1, c2, h1, h2) = (volunteer(1), volunteer(2), volunteer(3), volunteer(4));
    let lie = b"agreed lie".to_vec();
    for colluder in [c1, c2] {
        let lease = app.lease_one(colluder).await;
        assert_eq!(lease.job_id.0, job_a);
        app.submit(&submission(colluder, &lease, lie.clone())).await;
    }
    // Voting alone is fooled: a false quorum decided the unit.
    assert_eq!(app.job_counts(job_a).await.0, 1);

    // One colluder is caught where the answer is known.
    let job_b = job_with(&app, 1, checked(1, 0.0)).await;
    let lease = app.lease_one(c1).await;
    assert_eq!(lease.job_id.0, job_b);
    app.expect_caught(c1, &lease, lie.clone()).await;

    // Backtracking withdrew its replica: the other lie alone is no quorum, the unit reopens,
    // and honest volunteers outvote it.
    assert_eq!(app.job_counts(job_a).await.0, 0);
    for honest in [h1, h2] {
        // Whatever they are offered (job B's released unit is queued too), they do honestly.
        for lease in app.lease(honest, 2).await.leases {
            app.submit(&compute(honest, &lease)).await;
        }
    }
    assert_eq!(app.job_counts(job_a).await.0, 1);
    let lines = app.results(job_a).await;
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    let line = &lines[0];
    assert_eq!(line["volunteer"].as_str(), Some(h1.to_string().as_str()));
}
