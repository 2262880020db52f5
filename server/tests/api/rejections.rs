//! Well-formed requests that are wrong get their specific error code, and leave the lease
//! usable by its rightful holder.

use cyclepool_shared::protocol::{MAX_OUTPUT_BYTES, PROTOCOL_VERSION, SubmitStatus};
use cyclepool_shared::{ErrorCode, LeaseId, Nonce, Sha256Digest};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{compute, expect_error, sign, spawn_app, submission, volunteer};

#[tokio::test]
async fn a_result_for_a_lease_never_issued_is_unknown() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let mut result = compute(alice, &lease);
    result.lease_id = LeaseId::from_bytes([0x42; 16]);
    sign(&mut result);
    let response = app.submit_response(&result).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownLease).await;
}

#[tokio::test]
async fn a_result_from_another_volunteer_is_not_theirs_to_send() {
    let app = spawn_app(1).await;
    let (alice, mallory) = (volunteer(1), volunteer(0x66));
    let lease = app.lease_one(alice).await;
    let stolen = compute(mallory, &lease);
    let response = app.submit_response(&stolen).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::LeaseNotYours).await;

    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
    // Once completed, the lease still reveals nothing to someone else: same answer.
    let response = app.submit_response(&stolen).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::LeaseNotYours).await;
}

#[tokio::test]
async fn a_result_with_the_wrong_nonce_is_refused() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let mut result = compute(alice, &lease);
    let mut nonce = *lease.nonce.as_bytes();
    nonce[15] ^= 0x80;
    result.nonce = Nonce::from_bytes(nonce);
    sign(&mut result);
    let response = app.submit_response(&result).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::NonceMismatch).await;
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
}

#[tokio::test]
async fn an_output_that_does_not_match_its_digest_is_refused() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let mut result = compute(alice, &lease);
    result.output_sha256 = Sha256Digest::of(b"something else");
    // Signed as sent, so that the digest is the only thing wrong.
    sign(&mut result);
    let response = app.submit_response(&result).await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        ErrorCode::IntegrityMismatch,
    )
    .await;
    assert_eq!(app.progress().await, (0, 1));
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
}

#[tokio::test]
async fn an_output_over_the_limit_is_too_large() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    // Just over the output limit, but within the body limit: the handler's own check.
    let result = submission(alice, &lease, vec![7; MAX_OUTPUT_BYTES + 1]);
    let response = app.submit_response(&result).await;
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
    )
    .await;
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
}

#[tokio::test]
async fn other_protocol_versions_are_refused_on_both_endpoints() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    for version in [0, PROTOCOL_VERSION + 1, u32::MAX] {
        let request = json!({ "protocol": version, "volunteer": alice, "max_units": 1 });
        let response = app
            .post_raw(
                "/api/v1/lease",
                Some("application/json"),
                request.to_string(),
            )
            .await;
        let body = expect_error(
            response,
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedProtocol,
        )
        .await;
        assert!(
            body.error.message.contains(&version.to_string()),
            "{body:?}"
        );
    }
    let lease = app.lease_one(alice).await;
    for version in [0, PROTOCOL_VERSION + 1] {
        let mut result = compute(alice, &lease);
        result.protocol = version;
        let response = app.submit_response(&result).await;
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedProtocol,
        )
        .await;
    }
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
}

#[tokio::test]
async fn max_units_outside_one_to_sixty_four_is_an_invalid_value() {
    let app = spawn_app(100).await;
    for max_units in [0, 65, 1_000, u32::MAX] {
        let response = app.lease_response(volunteer(1), max_units).await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
    // Nothing was leased by the refused requests; the bounds themselves are fine.
    assert_eq!(app.progress().await, (0, 0));
    assert_eq!(app.lease(volunteer(1), 1).await.leases.len(), 1);
    assert_eq!(app.lease(volunteer(1), 64).await.leases.len(), 64);
}
