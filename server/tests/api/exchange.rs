//! `POST /api/v1/exchange`: results handed in and work asked for in one round trip. Each
//! result is judged alone, exactly as `/results` would judge it; accepted ones are durable
//! when the answer comes; a bad one does not spoil the others.

use cyclepool_shared::ErrorCode;
use cyclepool_shared::protocol::{
    Exchange, ExchangeResponse, LeaseRequest, MAX_RESULTS_PER_EXCHANGE, PROTOCOL_VERSION,
    ResultSubmission, SubmitStatus,
};
use cyclepool_shared::{LeaseId, Sha256Digest};
use reqwest::StatusCode;

use crate::helpers::{
    TestApp, compute, expect_error, signature_by, spawn_app, submission, volunteer,
};

fn exchange(results: Vec<ResultSubmission>, lease: Option<LeaseRequest>) -> Exchange {
    Exchange {
        protocol: PROTOCOL_VERSION,
        results,
        lease,
    }
}

fn more_work(volunteer: cyclepool_shared::VolunteerId, max_units: u32) -> LeaseRequest {
    LeaseRequest {
        protocol: PROTOCOL_VERSION,
        volunteer,
        max_units,
        exclude_jobs: Vec::new(),
        exclude_categories: Vec::new(),
        site: None,
        proof: None,
        work_ms: None,
    }
}

async fn exchange_response(app: &TestApp, body: &impl serde::Serialize) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/exchange"))
        .json(body)
        .send()
        .await
        .expect("sending an exchange")
}

async fn exchange_ok(app: &TestApp, body: &Exchange) -> ExchangeResponse {
    let response = exchange_response(app, body).await;
    let status = response.status();
    let text = response.text().await.expect("reading");
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("parsing ExchangeResponse")
}

#[tokio::test]
async fn results_and_more_work_in_one_round_trip_durable_and_idempotent() {
    let app = spawn_app(20).await;
    let alice = volunteer(1);
    let leases = app.lease(alice, 8).await.leases;
    assert_eq!(leases.len(), 8);
    let results: Vec<_> = leases.iter().map(|lease| compute(alice, lease)).collect();
    let answer = exchange_ok(&app, &exchange(results.clone(), Some(more_work(alice, 4)))).await;
    assert_eq!(answer.protocol, PROTOCOL_VERSION);
    assert_eq!(answer.results.len(), 8);
    for result in &answer.results {
        assert_eq!(result.status, Some(SubmitStatus::Accepted), "{result:?}");
        assert_eq!(result.error, None);
    }
    let next = answer.lease.expect("the lease's answer");
    assert_eq!(next.leases.len(), 4);
    assert!(answer.lease_error.is_none());
    let (done, leased) = app.progress().await;
    assert_eq!((done, leased), (8, 4));
    // Sent again (the client never saw the answer): duplicates, counted once.
    let again = exchange_ok(&app, &exchange(results, None)).await;
    assert!(
        again
            .results
            .iter()
            .all(|result| result.status == Some(SubmitStatus::Duplicate)),
        "{again:?}"
    );
    assert!(again.lease.is_none());
    // Acknowledged means durable: all eight are there after a restart.
    let app = app.restart().await;
    assert_eq!(app.progress().await.0, 8);
    assert_eq!(app.results(app.job_id().0).await.len(), 8);
}

#[tokio::test]
async fn each_result_is_judged_alone() {
    let app = spawn_app(10).await;
    let alice = volunteer(1);
    let leases = app.lease(alice, 4).await.leases;
    let good = compute(alice, &leases[0]);
    let mut forged = compute(alice, &leases[1]);
    forged.signature = signature_by(volunteer(2), &forged);
    let mut corrupted = compute(alice, &leases[2]);
    corrupted.output_sha256 = Sha256Digest::of(b"something else");
    let mut unknown = submission(alice, &leases[3], b"x".to_vec());
    unknown.lease_id = LeaseId::from_bytes([7; 16]);
    crate::helpers::sign(&mut unknown);
    let answer = exchange_ok(
        &app,
        &exchange(vec![good, forged, corrupted, unknown], None),
    )
    .await;
    let codes: Vec<_> = answer
        .results
        .iter()
        .map(|result| (result.status, result.error.as_ref().map(|error| error.code)))
        .collect();
    assert_eq!(
        codes,
        vec![
            (Some(SubmitStatus::Accepted), None),
            (None, Some(ErrorCode::BadSignature)),
            (None, Some(ErrorCode::IntegrityMismatch)),
            (None, Some(ErrorCode::UnknownLease)),
        ]
    );
    for error in answer
        .results
        .iter()
        .filter_map(|result| result.error.as_ref())
    {
        assert!(!error.message.is_empty());
    }
    assert_eq!(app.progress().await.0, 1);
}

/// The results of one exchange are judged in one transaction, each after the ones before it:
/// the same result twice (a client that lost track) is accepted, then a duplicate.
#[tokio::test]
async fn results_of_one_exchange_are_judged_in_order() {
    let app = spawn_app(10).await;
    let alice = volunteer(1);
    let leases = app.lease(alice, 2).await.leases;
    let first = compute(alice, &leases[0]);
    let second = compute(alice, &leases[1]);
    let answer = exchange_ok(&app, &exchange(vec![first.clone(), first, second], None)).await;
    let statuses: Vec<_> = answer.results.iter().map(|result| result.status).collect();
    assert_eq!(
        statuses,
        [
            Some(SubmitStatus::Accepted),
            Some(SubmitStatus::Duplicate),
            Some(SubmitStatus::Accepted)
        ]
    );
    let app = app.restart().await;
    assert_eq!(app.progress().await.0, 2);
    assert_eq!(app.results(app.job_id().0).await.len(), 2);
}

#[tokio::test]
async fn a_refused_lease_request_does_not_lose_the_results_answers() {
    let app = spawn_app(10).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let mut asking = more_work(alice, 1);
    asking.max_units = 0;
    let answer = exchange_ok(&app, &exchange(vec![compute(alice, &lease)], Some(asking))).await;
    assert_eq!(answer.results[0].status, Some(SubmitStatus::Accepted));
    assert!(answer.lease.is_none());
    assert_eq!(
        answer.lease_error.map(|error| error.code),
        Some(ErrorCode::InvalidValue)
    );
    // An empty exchange is a plain lease request.
    let answer = exchange_ok(&app, &exchange(Vec::new(), Some(more_work(alice, 2)))).await;
    assert!(answer.results.is_empty());
    assert_eq!(answer.lease.expect("leases").leases.len(), 2);
}

#[tokio::test]
async fn hostile_exchanges_get_a_clear_4xx() {
    let app = spawn_app(200).await;
    let alice = volunteer(1);
    let leases = app.lease(alice, 64).await.leases;
    let mut results: Vec<_> = leases.iter().map(|lease| compute(alice, lease)).collect();
    results.push(results[0].clone());
    assert_eq!(results.len(), MAX_RESULTS_PER_EXCHANGE + 1);
    let body = expect_error(
        exchange_response(&app, &exchange(results, None)).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidValue,
    )
    .await;
    assert!(body.error.message.contains("at most 64"), "{body:?}");
    // Results of one volunteer, work for another.
    let lease = app.lease_one(alice).await;
    expect_error(
        exchange_response(
            &app,
            &exchange(
                vec![compute(alice, &lease)],
                Some(more_work(volunteer(2), 1)),
            ),
        )
        .await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidValue,
    )
    .await;
    // Another protocol, unknown fields, wrong types, broken JSON, too large a body.
    let mut other = serde_json::to_value(exchange(Vec::new(), None)).expect("json");
    other["protocol"] = 2.into();
    expect_error(
        exchange_response(&app, &other).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedProtocol,
    )
    .await;
    for body in [
        r#"{"protocol":1,"results":[],"extra":true}"#,
        r#"{"protocol":1,"results":{}}"#,
        r#"{"protocol":1,"results":[{"protocol":1}]}"#,
        r#"{"protocol":18446744073709551616}"#,
    ] {
        expect_error(
            app.post_raw("/api/v1/exchange", Some("application/json"), body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MalformedRequest,
        )
        .await;
    }
    expect_error(
        app.post_raw(
            "/api/v1/exchange",
            Some("application/json"),
            "{\"protocol\":1,",
        )
        .await,
        StatusCode::BAD_REQUEST,
        ErrorCode::MalformedRequest,
    )
    .await;
    let huge = format!(
        "{{\"protocol\":1,\"results\":[],\"padding\":\"{}\"}}",
        "a".repeat(3 << 20)
    );
    expect_error(
        app.post_raw("/api/v1/exchange", Some("application/json"), huge)
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
    )
    .await;
    app.assert_still_serving().await;
}
