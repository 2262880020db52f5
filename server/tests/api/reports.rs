//! `POST /api/v1/reports`: a client says what it could not do. A report naming the sender's
//! open lease with its nonce releases the unit at once; any other report is only recorded.

use cyclepool_shared::protocol::{
    Lease, LeaseRef, PROTOCOL_VERSION, Report, ReportKind, SubmitStatus,
};
use cyclepool_shared::{ErrorCode, JobId, Nonce, VolunteerId};
use reqwest::StatusCode;

use crate::helpers::{LEASE_TTL_MS, compute, expect_error, job_request, spawn_app, volunteer};
use crate::hostile_input::{JSON, VOLUNTEER, common_cases, post, run_cases};

/// A report by `volunteer` about `lease` (its own id and nonce).
fn report_on(volunteer: VolunteerId, lease: &Lease) -> Report {
    Report {
        protocol: PROTOCOL_VERSION,
        volunteer,
        job_id: lease.job_id,
        lease: Some(LeaseRef {
            lease_id: lease.lease_id,
            nonce: lease.nonce,
        }),
        kind: ReportKind::UnitTrap,
        message: "unreachable executed".into(),
    }
}

#[tokio::test]
async fn a_report_on_the_senders_open_lease_releases_the_unit_at_once() {
    let app = spawn_app(3).await;
    let (alice, bob) = (volunteer(1), volunteer(2));
    let lease = app.lease_one(alice).await;
    assert_eq!(app.progress().await, (0, 1));

    assert!(app.report(&report_on(alice, &lease)).await, "not released");
    assert_eq!(app.progress().await, (0, 0));
    // The released unit is handed out again, to anyone, under a new lease, with no time
    // passing (this is not expiry). It joins the back of the queue, behind the units never
    // leased, so that a unit that fails everywhere cannot starve the rest.
    let leases = app.lease(bob, 8).await.leases;
    let units: Vec<u64> = leases.iter().map(|lease| lease.unit).collect();
    assert_eq!(units.len(), 3, "{units:?}");
    assert_eq!(units.last(), Some(&lease.unit), "{units:?}");
    let again = leases.last().unwrap().clone();
    assert_eq!(again.job_id, lease.job_id);
    assert_ne!(again.lease_id, lease.lease_id);
    assert_ne!(again.nonce, lease.nonce);

    // The released lease is over: a report on it again releases nothing, and its result is
    // refused like a late one.
    assert!(!app.report(&report_on(alice, &lease)).await);
    let late = app.submit_response(&compute(alice, &lease)).await;
    expect_error(late, StatusCode::GONE, ErrorCode::LeaseExpired).await;
    assert_eq!(
        app.submit(&compute(bob, &again)).await,
        SubmitStatus::Accepted
    );
    assert_eq!(app.progress().await, (1, 2));
}

#[tokio::test]
async fn a_released_unit_of_a_one_unit_job_is_leased_again_at_once() {
    let app = spawn_app(1).await;
    let lease = app.lease_one(volunteer(1)).await;
    assert!(app.lease(volunteer(2), 1).await.leases.is_empty());
    assert!(app.report(&report_on(volunteer(1), &lease)).await);
    let again = app.lease_one(volunteer(2)).await;
    assert_eq!(again.unit, lease.unit);
    assert_eq!(again.deadline_ms, lease.deadline_ms, "no time has passed");
}

#[tokio::test]
async fn a_report_with_the_wrong_nonce_or_from_someone_else_releases_nothing() {
    let app = spawn_app(2).await;
    let (alice, mallory) = (volunteer(1), volunteer(0x66));
    let lease = app.lease_one(alice).await;

    let mut wrong_nonce = report_on(alice, &lease);
    let mut nonce = *lease.nonce.as_bytes();
    nonce[0] ^= 1;
    wrong_nonce.lease.as_mut().unwrap().nonce = Nonce::from_bytes(nonce);
    assert!(!app.report(&wrong_nonce).await);
    // Someone else who knows the lease id and even the nonce cannot release it.
    assert!(!app.report(&report_on(mallory, &lease)).await);
    // Nor can the holder by naming it under another job.
    app.upload_test_module().await;
    let other_job = app
        .create_job_response(&job_request(1))
        .await
        .json::<cyclepool_shared::protocol::JobCreated>()
        .await
        .unwrap()
        .job_id;
    let mut elsewhere = report_on(alice, &lease);
    elsewhere.job_id = other_job;
    assert!(!app.report(&elsewhere).await);
    // A report naming no lease is recorded and releases nothing.
    let mut no_lease = report_on(alice, &lease);
    no_lease.lease = None;
    no_lease.kind = ReportKind::ManifestRefused;
    assert!(!app.report(&no_lease).await);
    // Every one of them was recorded for review, refused release or not.
    let recorded = app.reports().await;
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    assert!(
        recorded
            .iter()
            .all(|report| report.lease.is_none_or(|id| id == lease.lease_id))
    );

    // The lease is still alice's: the unit is not handed out again, and her result counts.
    let stats = app.stats().await;
    let first = stats
        .jobs
        .iter()
        .find(|job| job.job_id == lease.job_id)
        .unwrap();
    assert_eq!((first.done, first.leased), (0, 1));
    let others = app.lease(volunteer(2), 64).await.leases;
    assert!(
        others
            .iter()
            .all(|other| (other.job_id, other.unit) != (lease.job_id, lease.unit)),
        "{others:?}"
    );
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
}

#[tokio::test]
async fn a_report_on_a_completed_or_expired_lease_releases_nothing() {
    let app = spawn_app(2).await;
    let alice = volunteer(1);
    let done = app.lease_one(alice).await;
    let result = compute(alice, &done);
    assert_eq!(app.submit(&result).await, SubmitStatus::Accepted);
    assert!(!app.report(&report_on(alice, &done)).await);
    assert_eq!(app.submit(&result).await, SubmitStatus::Duplicate);
    assert_eq!(app.progress().await, (1, 0));

    // A lease that expired and was reclaimed is not open either.
    let expired = app.lease_one(alice).await;
    app.clock.advance(LEASE_TTL_MS + 1);
    let reissued = app.lease_one(volunteer(2)).await;
    assert_eq!(reissued.unit, expired.unit);
    assert!(!app.report(&report_on(alice, &expired)).await);
    assert_eq!(app.progress().await, (1, 1));
}

#[tokio::test]
async fn a_report_for_an_unknown_job_is_refused() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let mut report = report_on(alice, &lease);
    report.job_id = JobId(lease.job_id.0 + 1_000);
    let response = app.report_response(&report).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownJob).await;
    report.job_id = lease.job_id;
    report.protocol = PROTOCOL_VERSION + 1;
    let response = app.report_response(&report).await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedProtocol,
    )
    .await;
    // Neither refused report released the lease.
    assert_eq!(app.progress().await, (0, 1));
}

#[tokio::test]
async fn an_oversized_message_is_truncated_not_rejected() {
    let app = spawn_app(1).await;
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let mut report = report_on(alice, &lease);
    report.lease = None;
    // 5,000 two-byte characters: over the kept length, within the body limit.
    report.message = "é".repeat(5_000);
    assert!(!app.report(&report).await);

    // What was stored: the first 1,000 characters, cut on a character boundary.
    let reports = app.reports().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].message, "é".repeat(1_000));
    assert_eq!(reports[0].volunteer, alice);
    assert_eq!(reports[0].job, lease.job_id);
    assert_eq!(reports[0].kind, ReportKind::UnitTrap);
}

#[tokio::test]
async fn hostile_reports_get_json_client_errors() {
    use ErrorCode::{MalformedRequest, PayloadTooLarge};
    let app = spawn_app(1).await;
    let path = "/api/v1/reports";
    let job = app.job_id();
    let valid = format!(
        r#"{{"protocol":1,"volunteer":"{VOLUNTEER}","job_id":{job},"kind":"unit_trap","message":"x"}}"#
    );
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let mut cases = common_cases(path, &valid);
    let variants = [
        ("unknown kind", valid.replace("unit_trap", "meltdown")),
        ("kind in another case", valid.replace("unit_trap", "UnitTrap")),
        ("job id as a string", valid.replace(&format!("{job}"), &format!("\"{job}\""))),
        ("negative job id", valid.replace(&format!(":{job},"), ":-1,")),
        ("missing message", valid.replace(r#","message":"x""#, "")),
        ("message as a number", valid.replace(r#""message":"x""#, r#""message":7"#)),
        (
            "lease without nonce",
            valid.replace('}', r#","lease":{"lease_id":"42424242424242424242424242424242"}}"#),
        ),
        (
            "lease with an unknown field",
            valid.replace(
                '}',
                r#","lease":{"lease_id":"42424242424242424242424242424242","nonce":"42424242424242424242424242424242","admin":true}}"#,
            ),
        ),
        (
            "lease nonce not hex",
            valid.replace(
                '}',
                r#","lease":{"lease_id":"42424242424242424242424242424242","nonce":"zz"}}"#,
            ),
        ),
    ];
    for (what, body) in variants {
        cases.push(post(
            what,
            path,
            JSON,
            body,
            unprocessable,
            MalformedRequest,
        ));
    }
    cases.push(post(
        "over the body limit",
        path,
        JSON,
        valid.replace(
            r#""message":"x""#,
            &format!(r#""message":"{}""#, "x".repeat(20_000)),
        ),
        StatusCode::PAYLOAD_TOO_LARGE,
        PayloadTooLarge,
    ));
    run_cases(&app, cases).await;
    // None of it touched the job.
    assert_eq!(app.progress().await, (0, 1));
}
