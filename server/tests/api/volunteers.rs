//! `GET /api/v1/volunteers/{volunteer}`: one volunteer key's credit, as the volunteer page
//! shows it. Public; a malformed key is a 400 `ErrorBody`, a key never seen answers zeros.

use std::collections::BTreeSet;

use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::Inputs;
use cyclepool_shared::{ErrorCode, VolunteerId};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_json_with_security_headers, compute, expect_error, spawn_app, test_policy,
    volunteer,
};

/// `GET /api/v1/volunteers/{key}`; the raw response.
async fn credit_response(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/volunteers/{key}")))
        .send()
        .await
        .expect("requesting a volunteer's credit")
}

/// The credit of `volunteer`, expecting a 200 with exactly the documented fields.
async fn credit(app: &TestApp, volunteer: VolunteerId) -> Value {
    let response = credit_response(app, &volunteer.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_json_with_security_headers(response.headers());
    let body: Value = response.json().await.expect("parsing the credit");
    let fields: BTreeSet<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "volunteer",
            "credit",
            "compute_ms",
            "checks_passed",
            "blacklisted"
        ])
    );
    body
}

#[tokio::test]
async fn a_malformed_key_is_refused_with_an_error_body() {
    let app = spawn_app(0).await;
    for key in [
        "abc".to_owned(),
        "g".repeat(64),
        "0".repeat(63),
        "0".repeat(65),
        format!("{}%20", "0".repeat(62)),
    ] {
        let response = credit_response(&app, &key).await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
}

#[tokio::test]
async fn an_unknown_key_has_earned_nothing() {
    let app = spawn_app(1).await;
    let stranger = volunteer(9);
    assert_eq!(
        credit(&app, stranger).await,
        json!({
            "volunteer": stranger.to_string(),
            "credit": 0,
            "compute_ms": 0,
            "checks_passed": 0,
            "blacklisted": false,
        })
    );
    // Either case of hex names the same key; the answer writes it in lower case.
    let upper = stranger.to_string().to_uppercase();
    let response = credit_response(&app, &upper).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["volunteer"], stranger.to_string());
}

#[tokio::test]
async fn an_accepted_result_earns_one_credit_and_its_compute_time() {
    let app = spawn_app(3).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(alice).await;
    // Leased but not returned: nothing yet.
    assert_eq!(credit(&app, alice).await["credit"], 0);
    let submission = compute(alice, &lease);
    app.submit(&submission).await;
    let body = credit(&app, alice).await;
    assert_eq!(body["volunteer"], alice.to_string());
    assert_eq!(body["credit"], 1);
    assert_eq!(body["compute_ms"], submission.compute_ms);
    assert_eq!(body["blacklisted"], false);
    // A duplicate earns nothing more, and another key's work is not this key's.
    app.submit(&submission).await;
    assert_eq!(credit(&app, alice).await["credit"], 1);
    assert_eq!(credit(&app, bob).await["credit"], 0);
    let second = app.lease_one(alice).await;
    let more = compute(alice, &second);
    app.submit(&more).await;
    let body = credit(&app, alice).await;
    assert_eq!(body["credit"], 2);
    assert_eq!(body["compute_ms"], submission.compute_ms + more.compute_ms);
}

#[tokio::test]
async fn spot_checks_count_as_checks_passed_and_a_caught_key_is_blacklisted() {
    let app = spawn_app(0).await;
    // Every lease is a spot check (the server knows every answer): no credit, only checks.
    let policy = JobPolicy {
        use_verify: false,
        reexecution_rate: 1.0,
        spot_check_rate: 1.0,
        ..test_policy()
    };
    let inputs = Inputs::List((0..3u8).map(|i| vec![i, i + 1, i + 2]).collect());
    app.create_test_job(inputs, policy).await;
    let (honest, liar) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(honest).await;
    app.submit(&compute(honest, &lease)).await;
    let body = credit(&app, honest).await;
    assert_eq!(
        (
            &body["credit"],
            &body["checks_passed"],
            &body["blacklisted"]
        ),
        (&json!(0), &json!(1), &json!(false))
    );
    let lease = app.lease_one(liar).await;
    app.expect_caught(liar, &lease, b"lie".to_vec()).await;
    let body = credit(&app, liar).await;
    assert_eq!(
        (&body["credit"], &body["blacklisted"]),
        (&json!(0), &json!(true))
    );
}
