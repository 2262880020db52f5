//! Replication and quorum through the real API: replicas go to different volunteers, a unit is
//! decided when enough results agree, disagreement asks for more replicas, limits fail a
//! unit, and credit goes only to the volunteers whose results agreed with the quorum.

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{CreateJob, Inputs};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use crate::helpers::{
    ADMIN_TOKEN, TestApp, compute, module_sha256, spawn_app, submission, test_policy, volunteer,
};

/// Adds a one-unit job with `policy` to `app` (whose first job is left alone) and returns its id.
async fn job_with(app: &TestApp, policy: JobPolicy) -> u64 {
    app.upload_test_module().await;
    let request = CreateJob {
        title: "replicated".into(),
        description: String::new(),
        module_sha256: module_sha256(),
        inputs: Inputs::List(vec![b"abc".to_vec()]),
        policy,
        expires_in_ms: None,
    };
    let response = app
        .client
        .post(app.url("/api/v1/jobs"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .json(&request)
        .send()
        .await
        .expect("creating the job");
    assert_eq!(response.status(), StatusCode::CREATED);
    response
        .json::<serde_json::Value>()
        .await
        .expect("reading the created job")["job_id"]
        .as_u64()
        .expect("a job id")
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

async fn leaderboard(app: &TestApp) -> Vec<(String, u64)> {
    let rows: Vec<serde_json::Value> = app
        .client
        .get(app.url("/api/v1/leaderboard"))
        .send()
        .await
        .expect("reading the leaderboard")
        .json()
        .await
        .expect("reading the leaderboard");
    rows.iter()
        .map(|row| {
            (
                row["volunteer"]
                    .as_str()
                    .expect("reading the leaderboard")
                    .to_owned(),
                row["results"].as_u64().expect("reading the leaderboard"),
            )
        })
        .collect()
}

async fn job_stats(app: &TestApp, job: u64) -> (u64, u64, u64) {
    let stats = app.stats().await;
    let job = stats
        .jobs
        .iter()
        .find(|j| j.job_id.0 == job)
        .expect("the job in the stats");
    (job.done, job.leased, job.failed)
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
    assert_eq!(job_stats(&app, job).await, (0, 1, 0));
    app.submit(&compute(b, &leases_b[0])).await;
    assert_eq!(job_stats(&app, job).await, (1, 0, 0));
    let board = leaderboard(&app).await;
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
    assert_eq!(job_stats(&app, job).await, (0, 0, 0));
    assert!(app.lease(honest, 5).await.leases.is_empty());
    assert!(app.lease(cheat, 5).await.leases.is_empty());
    let third = app.lease_one(referee).await;
    assert_eq!(third.unit, first.unit);
    app.submit(&compute(referee, &third)).await;
    assert_eq!(job_stats(&app, job).await, (1, 0, 0));
    let board = leaderboard(&app).await;
    let names: Vec<&str> = board.iter().map(|(v, _)| v.as_str()).collect();
    assert!(names.contains(&honest.to_string().as_str()));
    assert!(names.contains(&referee.to_string().as_str()));
    assert!(!names.contains(&cheat.to_string().as_str()), "{board:?}");
    // The download holds the canonical (agreed) result.
    let lines = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{job}/results")))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line: serde_json::Value = serde_json::from_str(lines.trim()).unwrap();
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
    assert_eq!(job_stats(&app, job).await, (0, 0, 1));
    assert!(app.lease(volunteer(4), 5).await.leases.is_empty());
    assert!(leaderboard(&app).await.is_empty());
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
    assert_eq!(job_stats(&app, job).await, (0, 0, 1));
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
    assert_eq!(job_stats(&app, job).await, (1, 0, 0));
}
