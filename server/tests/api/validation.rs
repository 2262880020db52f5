//! Results are validated on arrival with the job's `verify` (run by the server in wasmi), and
//! credit is granted only for accepted results: `GET /api/v1/leaderboard`.

use cyclepool_shared::ErrorCode;
use reqwest::StatusCode;

use crate::helpers::{compute, expect_error, spawn_app, submission, volunteer};

#[tokio::test]
async fn a_wrong_output_is_caught_by_verify_and_its_unit_goes_to_someone_else() {
    let app = spawn_app(1).await;
    let (cheater, honest) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(cheater).await;
    // Signed correctly, but not what the job computes (the test job reverses its input).
    let mut wrong = lease.input.clone();
    wrong.push(0xff);
    let response = app
        .submit_response(&submission(cheater, &lease, wrong))
        .await;
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidResult,
    )
    .await;
    assert!(body.error.message.contains("verify"), "{body:?}");
    // The unit was released at once (no waiting for the deadline) and nothing was accepted.
    let stats = app.stats().await;
    assert_eq!((stats.jobs[0].done, stats.jobs[0].leased), (0, 0));
    // The cheater's lease is over: even the right answer on it is refused now.
    let response = app.submit_response(&compute(cheater, &lease)).await;
    expect_error(response, StatusCode::GONE, ErrorCode::LeaseExpired).await;

    let again = app.lease_one(honest).await;
    assert_eq!((again.job_id, again.unit), (lease.job_id, lease.unit));
    app.submit(&compute(honest, &again)).await;
    assert_eq!(app.stats().await.jobs[0].done, 1);
}

#[tokio::test]
async fn credit_goes_only_to_accepted_results() {
    let app = spawn_app(5).await;
    let (alice, bob, mallory) = (volunteer(1), volunteer(2), volunteer(3));
    for _ in 0..3 {
        let lease = app.lease_one(alice).await;
        app.submit(&compute(alice, &lease)).await;
    }
    let lease = app.lease_one(bob).await;
    let accepted = compute(bob, &lease);
    app.submit(&accepted).await;
    // A duplicate earns nothing more.
    app.submit(&accepted).await;
    // A wrong answer earns nothing.
    let lease = app.lease_one(mallory).await;
    let response = app
        .submit_response(&submission(mallory, &lease, vec![1, 2, 3]))
        .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidResult,
    )
    .await;

    let rows = app.leaderboard().await;
    assert_eq!(rows, vec![(alice.to_string(), 3), (bob.to_string(), 1)]);
    // Credit survives a restart: it is stored with the results it counts.
    let app = app.restart().await;
    let board = app.leaderboard().await;
    assert_eq!(board.len(), 2);
    assert_eq!(board[0].1, 3);
}

#[tokio::test]
async fn a_lease_for_a_key_that_cannot_sign_is_refused() {
    let app = spawn_app(1).await;
    // y = 2 is not on the curve; the identity point is a weak (small-order) key.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for key in [not_a_point, identity] {
        let body = format!(
            r#"{{"protocol":1,"volunteer":"{}"}}"#,
            cyclepool_shared::hex::encode(&key)
        );
        let response = app
            .post_raw("/api/v1/lease", Some("application/json"), body.into_bytes())
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
    assert_eq!(app.stats().await.jobs[0].leased, 0);
}
