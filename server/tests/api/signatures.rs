//! Signed results: a result counts only with its volunteer's signature over its lease, nonce
//! and output digest; forged, moved, re-signed and malformed signatures are refused before
//! anything is stored, and the offline audit re-checks every stored signature.

use cyclepool_server::audit::audit;
use cyclepool_server::store::{IncomingResult, SubmitOutcome};
use cyclepool_shared::protocol::{PROTOCOL_VERSION, ResultSubmission, SubmitStatus};
use cyclepool_shared::signing::{self, Purpose, SignatureError, result_message};
use cyclepool_shared::{ErrorCode, PublicKey, Sha256Digest, Signature, VolunteerId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    START_MS, TestApp, compute, expect_error, secret_for, signature_by, spawn_app, test_policy,
    volunteer,
};
use crate::test_module::expected_output;

/// Submits `submission`, expecting 403 `bad_signature`.
async fn expect_bad_signature(app: &TestApp, submission: &ResultSubmission) {
    let response = app.submit_response(submission).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::BadSignature).await;
}

#[tokio::test]
async fn a_forged_signature_is_refused_and_stores_nothing() {
    let app = spawn_app(1).await;
    let (alice, mallory) = (volunteer(1), volunteer(0x66));
    let lease = app.lease_one(alice).await;
    let honest = compute(alice, &lease);
    let mut flipped = *honest.signature.as_bytes();
    flipped[10] ^= 0x01;
    let forgeries = [
        Signature::from_bytes([0x5a; 64]),
        Signature::from_bytes([0; 64]),
        Signature::from_bytes(flipped),
        // Mallory's own, valid signature over exactly what alice would sign.
        signature_by(mallory, &honest),
    ];
    let before = app.stats().await.durability;
    for signature in forgeries {
        let forged = ResultSubmission {
            signature,
            ..honest.clone()
        };
        expect_bad_signature(&app, &forged).await;
    }
    let stats = app.stats().await;
    assert_eq!((stats.jobs[0].done, stats.jobs[0].leased), (0, 1));
    // Refused before the store: nothing waited for a durable write.
    assert_eq!(stats.durability, before);

    assert_eq!(app.submit(&honest).await, SubmitStatus::Accepted);
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_result_re_signed_by_another_volunteer_is_refused_either_way() {
    let app = spawn_app(1).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(alice).await;

    // Bob takes alice's lease id, nonce and output and signs them as himself: the signature
    // is good, but the lease is not his.
    let as_bob = compute(bob, &lease);
    let response = app.submit_response(&as_bob).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::LeaseNotYours).await;

    // Sent in alice's name, bob's signature does not verify with her key.
    let mut as_alice = compute(alice, &lease);
    as_alice.signature = as_bob.signature;
    expect_bad_signature(&app, &as_alice).await;
    assert_eq!(app.progress().await, (0, 1));

    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
    // The completed lease still is not bob's, however he signs.
    let response = app.submit_response(&as_bob).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::LeaseNotYours).await;
}

#[tokio::test]
async fn a_signature_does_not_carry_over_to_another_lease() {
    let app = spawn_app(2).await;
    let alice = volunteer(1);
    let leases = app.lease(alice, 2).await.leases;
    let (first, second) = (&leases[0], &leases[1]);
    let signed = compute(alice, first);
    assert_eq!(app.submit(&signed).await, SubmitStatus::Accepted);

    // The same signed result, moved to alice's other lease: by id alone, and with that
    // lease's nonce too (everything the signature covers that an attacker can see).
    let moved = ResultSubmission {
        lease_id: second.lease_id,
        ..signed.clone()
    };
    expect_bad_signature(&app, &moved).await;
    let moved_with_nonce = ResultSubmission {
        nonce: second.nonce,
        ..moved
    };
    expect_bad_signature(&app, &moved_with_nonce).await;
    assert_eq!(app.progress().await, (1, 1));

    assert_eq!(
        app.submit(&compute(alice, second)).await,
        SubmitStatus::Accepted
    );
    assert_eq!(app.progress().await, (2, 0));
}

#[tokio::test]
async fn replaying_an_accepted_signed_result_is_a_duplicate_but_a_broken_copy_is_not() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let signed = compute(alice, &lease);
    assert_eq!(app.submit(&signed).await, SubmitStatus::Accepted);
    assert_eq!(app.submit(&signed).await, SubmitStatus::Duplicate);

    // The same result with a broken signature is not a retry of it: the signature is checked
    // before the store is asked whether it has the result.
    let mut broken = *signed.signature.as_bytes();
    broken[63] ^= 0x40;
    let unsigned = ResultSubmission {
        signature: Signature::from_bytes(broken),
        ..signed.clone()
    };
    expect_bad_signature(&app, &unsigned).await;

    let app = app.restart().await;
    assert_eq!(app.submit(&signed).await, SubmitStatus::Duplicate);
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_signature_does_not_cover_another_output() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let honest = compute(alice, &lease);
    // Tampered in transit, with a digest that matches the new output: only the signature
    // tells.
    let mut output = honest.output.clone();
    output[0] ^= 0xff;
    let tampered = ResultSubmission {
        output_sha256: Sha256Digest::of(&output),
        output,
        ..honest.clone()
    };
    expect_bad_signature(&app, &tampered).await;
    assert_eq!(app.progress().await, (0, 1));

    assert_eq!(app.submit(&honest).await, SubmitStatus::Accepted);
    // Once a result is accepted, the tampered one is still refused for its signature, not
    // reported as a conflicting result.
    expect_bad_signature(&app, &tampered).await;
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_signature_that_is_not_64_bytes_of_hex_is_a_malformed_request() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let honest = compute(alice, &lease);
    let hex = honest.signature.to_string();
    assert_eq!(hex.len(), 128);
    let bad_values = [
        json!(hex[..126]),
        json!(hex[..127]),
        json!(format!("{hex}00")),
        json!(format!("zz{}", &hex[2..])),
        json!(format!("0x{}", &hex[2..])),
        json!(format!(" {}", &hex[1..])),
        json!(""),
        json!(null),
        json!(42),
        json!(honest.signature.as_bytes().to_vec()),
    ];
    for value in bad_values {
        let mut body = serde_json::to_value(&honest).expect("encoding the submission");
        body["signature"] = value.clone();
        let response = app
            .post_raw(
                "/api/v1/results",
                Some("application/json"),
                body.to_string(),
            )
            .await;
        let error = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MalformedRequest,
        )
        .await;
        assert!(
            error.error.message.contains("signature"),
            "signature {value}: {error:?}"
        );
    }
    assert_eq!(app.progress().await, (0, 1));

    // Hex digits of either case decode to the same signature.
    let mut body = serde_json::to_value(&honest).expect("encoding the submission");
    body["signature"] = json!(hex.to_uppercase());
    let response = app
        .post_raw(
            "/api/v1/results",
            Some("application/json"),
            body.to_string(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn a_volunteer_id_that_is_no_usable_key_gets_bad_signature_not_a_server_error() {
    let app = spawn_app(3).await;

    // y = 2 is not the y-coordinate of any point on the curve: no key at all.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    // The neutral element (y = 1): a valid encoding, but of a small-order ("weak") key, for
    // which R = neutral, s = 0 satisfies the unstrict verification equation for every message.
    let mut neutral = [0u8; 32];
    neutral[0] = 1;
    let mut forged_for_neutral = [0u8; 64];
    forged_for_neutral[0] = 1;

    let cases = [
        (
            not_a_point,
            Signature::from_bytes([0x42; 64]),
            SignatureError::BadKey,
        ),
        (
            neutral,
            Signature::from_bytes(forged_for_neutral),
            SignatureError::Mismatch,
        ),
    ];
    for (key, signature, why) in cases {
        let id = VolunteerId::from_bytes(key);
        // Such a key cannot lease (see `validation.rs`); it can still name a real lease of
        // someone else in a submission, which must be refused on its signature, never with a 5xx.
        let lease = app.lease_one(volunteer(9)).await;
        let output = b"anything".to_vec();
        let submission = ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer: id,
            lease_id: lease.lease_id,
            nonce: lease.nonce,
            output_sha256: Sha256Digest::of(&output),
            output,
            signature,
            compute_ms: 1,
        };
        // The reason it is refused, checked where it can be told apart.
        let message = result_message(&lease.lease_id, &lease.nonce, &submission.output_sha256);
        assert_eq!(
            signing::verify(
                &PublicKey::from_bytes(key),
                Purpose::Result,
                &message,
                &signature
            ),
            Err(why),
            "{id:?}"
        );
        expect_bad_signature(&app, &submission).await;
    }
    assert_eq!(app.progress().await, (0, 2));
    app.assert_still_serving().await;
}

#[tokio::test]
async fn the_audit_verifies_every_stored_signature() {
    let mut app = spawn_app(3).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    for who in [alice, bob] {
        let lease = app.lease_one(who).await;
        assert_eq!(
            app.submit(&compute(who, &lease)).await,
            SubmitStatus::Accepted
        );
    }
    let held = app.lease_one(alice).await;

    let store = app.stop_and_open_store().await;
    let report = audit(&store, true).expect("auditing the store");
    assert!(
        report.ok && report.problems.is_empty(),
        "{:?}",
        report.problems
    );
    assert_eq!(report.jobs.len(), 1);
    assert_eq!((report.jobs[0].done, report.jobs[0].verified), (2, 2));
    assert_eq!(report.results.as_ref().map(Vec::len), Some(2));

    // A result that reached the store without going through the handler's check (an older
    // server, say), signed by someone other than its volunteer: the audit must notice.
    let output = expected_output(&held.input);
    let output_sha256 = Sha256Digest::of(&output);
    let message = result_message(&held.lease_id, &held.nonce, &output_sha256);
    let incoming = IncomingResult {
        lease: held.lease_id,
        volunteer: alice,
        nonce: held.nonce,
        output,
        output_sha256,
        signature: secret_for(bob).sign(Purpose::Result, &message),
        compute_ms: 1,
    };
    let outcomes = store
        .submit(std::slice::from_ref(&incoming), START_MS, &|_| {
            test_policy()
        })
        .expect("storing the result");
    assert!(
        matches!(outcomes.as_slice(), [SubmitOutcome::Accepted { .. }]),
        "{outcomes:?}"
    );
    let report = audit(&store, false).expect("auditing the store");
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains(&format!("unit {}", held.unit))
            && report.problems[0].contains("signature"),
        "{:?}",
        report.problems
    );
    // The output itself is right: only the signature is wrong.
    assert_eq!(report.jobs[0].verified, 3);
}
