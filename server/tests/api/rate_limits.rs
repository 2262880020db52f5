//! Rate limits per client address, per volunteer key and per API token: past each, 429
//! `rate_limited` with `Retry-After`, nothing done; the others' buckets are untouched; the
//! bucket refills with time; and nobody can exhaust a stranger's bucket by naming its key.

use std::net::IpAddr;

use cyclepool_shared::ErrorCode;
use cyclepool_shared::distributor::TokenCreated;
use cyclepool_shared::protocol::{Inputs, LeaseResponse, SubmitStatus};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};

use crate::distributor::{bearer, register};
use crate::helpers::{
    TestApp, compute, expect_error, signature_by, spawn_app_with, test_job_request, test_policy,
    volunteer,
};

/// Every limit in these tests is one request a second, so a burst of five seconds' worth.
const BURST: usize = 5;

async fn expect_rate_limited(response: reqwest::Response) -> String {
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .expect("a Retry-After in seconds");
    assert_eq!(retry_after, 1, "one token a second comes back");
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
    )
    .await
    .error
    .message
}

/// A client whose requests come from `address` (any of 127.0.0.0/8 reaches the server).
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(address))
        .build()
        .expect("building a client")
}

async fn stats_from(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    client
        .get(app.url("/api/v1/stats"))
        .send()
        .await
        .expect("asking for stats")
}

#[tokio::test]
async fn one_address_past_its_rate_gets_429_and_others_do_not() {
    let app = spawn_app_with(|config| config.address_rate = 1).await;
    let flooder = client_from([127, 0, 0, 1]);
    for i in 0..BURST {
        let response = stats_from(&app, &flooder).await;
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
    }
    let body = expect_rate_limited(stats_from(&app, &flooder).await).await;
    assert!(body.contains("this address"), "{body}");
    // Refused before its body is read or any work is done: a lease is refused the same way.
    let response = flooder
        .post(app.url("/api/v1/lease"))
        .json(&serde_json::json!({ "not": "even a lease request" }))
        .send()
        .await
        .expect("leasing");
    expect_rate_limited(response).await;
    // The health check still answers (monitoring must see a busy portal).
    let health = flooder
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    // Another address has its own bucket.
    let neighbour = client_from([127, 0, 0, 2]);
    assert_eq!(stats_from(&app, &neighbour).await.status(), StatusCode::OK);
    // One token a second comes back.
    app.clock.advance(1_000);
    assert_eq!(stats_from(&app, &flooder).await.status(), StatusCode::OK);
    expect_rate_limited(stats_from(&app, &flooder).await).await;
}

#[tokio::test]
async fn the_address_limit_can_be_turned_off() {
    let app = spawn_app_with(|config| config.address_rate = 0).await;
    for i in 0..(10 * BURST) {
        let response = stats_from(&app, &app.client).await;
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
    }
}

#[tokio::test]
async fn a_volunteer_key_past_its_rate_gets_429_on_proven_requests_only() {
    let app = spawn_app_with(|config| config.volunteer_rate = 1).await;
    let job = app
        .create_test_job(
            Inputs::Range {
                start: 0,
                end: 100,
                step: 1,
            },
            test_policy(),
        )
        .await;
    let busy = volunteer(1);
    let mut leases = Vec::new();
    for i in 0..BURST {
        let response = app.lease_with_proof_response(busy, 1).await;
        assert_eq!(response.status(), StatusCode::OK, "lease {i}");
        let mut body: LeaseResponse = response.json().await.expect("parsing");
        leases.append(&mut body.leases);
    }
    assert_eq!(leases.len(), BURST);
    let body = expect_rate_limited(app.lease_with_proof_response(busy, 1).await).await;
    assert!(body.contains("volunteer key"), "{body}");
    // A signed result is refused too, and not stored: the same result goes in later.
    let result = compute(busy, &leases[0]);
    expect_rate_limited(app.submit_response(&result).await).await;
    let (done, _, _) = app.job_counts(job).await;
    assert_eq!(done, 0, "nothing stored");
    // Another key has its own bucket.
    let other = volunteer(2);
    assert_eq!(
        app.lease_with_proof_response(other, 1).await.status(),
        StatusCode::OK
    );
    // A lease without a proof proves nothing about the key, so it is not counted against it
    // (the address limit covers it).
    assert_eq!(app.lease_response(busy, 1).await.status(), StatusCode::OK);
    // The bucket refills: the refused result is accepted a second later.
    app.clock.advance(1_000);
    assert_eq!(app.submit(&result).await, SubmitStatus::Accepted);
}

#[tokio::test]
async fn nobody_can_exhaust_a_strangers_bucket_by_naming_its_key() {
    let app = spawn_app_with(|config| config.volunteer_rate = 1).await;
    app.create_test_job(
        Inputs::Range {
            start: 0,
            end: 100,
            step: 1,
        },
        test_policy(),
    )
    .await;
    let victim = volunteer(3);
    let attacker = volunteer(4);
    let lease = app.lease_one(victim).await;
    // Results naming the victim but signed by someone else: refused on their signature, and
    // not counted against the victim's key.
    let mut forged = compute(victim, &lease);
    forged.signature = signature_by(attacker, &forged);
    for _ in 0..(3 * BURST) {
        expect_error(
            app.submit_response(&forged).await,
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
        )
        .await;
    }
    // Lease requests naming the victim without a proof are not counted either.
    for _ in 0..(3 * BURST) {
        assert_eq!(app.lease_response(victim, 1).await.status(), StatusCode::OK);
    }
    // The victim's own proven requests still have their whole burst.
    for i in 0..BURST {
        assert_eq!(
            app.lease_with_proof_response(victim, 1).await.status(),
            StatusCode::OK,
            "victim's lease {i}"
        );
    }
}

#[tokio::test]
async fn an_api_token_past_its_rate_gets_429_and_the_accounts_other_token_does_not() {
    let app = spawn_app_with(|config| config.token_rate = 1).await;
    let distributor = register(&app, "Busy lab").await;
    // Registration used none of the token's budget; making a second token uses one.
    let second: TokenCreated = distributor
        .post(&app, "/api/v1/tokens", serde_json::json!({ "label": "ci" }))
        .await
        .json()
        .await
        .expect("a second token");
    for i in 1..BURST {
        let response = distributor.get(&app, "/api/v1/jobs").await;
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
    }
    let body = expect_rate_limited(distributor.get(&app, "/api/v1/jobs").await).await;
    assert!(body.contains("this token or session"), "{body}");
    // Nothing is done past the limit: a job created now is refused and not made.
    let created = distributor
        .create_job(
            &app,
            &test_job_request(
                Inputs::Range {
                    start: 0,
                    end: 3,
                    step: 1,
                },
                test_policy(),
            ),
        )
        .await;
    expect_rate_limited(created).await;
    // The account's other token has its own bucket.
    let response = app
        .client
        .get(app.url("/api/v1/jobs"))
        .header(AUTHORIZATION, bearer(&second.secret))
        .send()
        .await
        .expect("listing jobs");
    assert_eq!(response.status(), StatusCode::OK);
    let jobs: Vec<serde_json::Value> = response.json().await.expect("jobs");
    assert!(jobs.is_empty(), "the refused job was not created: {jobs:?}");
    // Unknown tokens are refused as such (401), however many, and fill no bucket.
    for _ in 0..(3 * BURST) {
        let response = app
            .client
            .get(app.url("/api/v1/jobs"))
            .header(AUTHORIZATION, bearer("cp_token_0000"))
            .send()
            .await
            .expect("listing jobs");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    app.clock.advance(1_000);
    assert_eq!(
        distributor.get(&app, "/api/v1/jobs").await.status(),
        StatusCode::OK
    );
}
