//! The portal's due diligence over HTTP: distributor terms, the review queue (a job of an
//! untrusted distributor is served to no one until approved), rejection and withdrawal,
//! suspension, key revocation, abuse reports, and the transparency log that records every
//! publication and revocation (checked with the same verifier the CLI and browsers use).

use cyclepool_shared::distributor::{
    AbuseReport, AccountInfo, DistributorKeyInfo, JobSummary, Review, inputs_digest,
    job_declaration_message, sign_declaration,
};
use cyclepool_shared::manifest::SignedManifest;
use cyclepool_shared::protocol::{JobCreated, PROTOCOL_VERSION, Report, ReportKind};
use cyclepool_shared::range::encode_range;
use cyclepool_shared::signing::SecretKey;
use cyclepool_shared::transparency::{LogError, LogEvent, LogPage, check_job, verify_chain};
use cyclepool_shared::{ErrorCode, JobId, KeyId};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::json;

use crate::distributor::{Distributor, bearer, range_job, register_untrusted};
use crate::helpers::{ADMIN_TOKEN, START_MS, TestApp, expect_error, spawn_app, volunteer};

/// Sends `method path` with the admin token and a JSON body.
async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .header(AUTHORIZATION, bearer(ADMIN_TOKEN))
        .json(&body)
        .send()
        .await
        .expect("sending an admin request")
}

async fn admin_ok<T: serde::de::DeserializeOwned>(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> T {
    let response = admin(app, method.clone(), path, body).await;
    let status = response.status();
    let text = response.text().await.expect("reading");
    assert_eq!(status, StatusCode::OK, "{method} {path}: {text}");
    serde_json::from_str(&text).expect("parsing the admin answer")
}

/// The admin approves `job`; its summary as now published.
async fn approve(app: &TestApp, job: JobId) -> JobSummary {
    admin_ok(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/jobs/{job}/approve"),
        json!(null),
    )
    .await
}

async fn get_ok<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str) -> T {
    let response = app.client.get(app.url(path)).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.expect("parsing")
}

/// The whole log, checked link by link and signature by signature with the portal's keys.
async fn verified_log(app: &TestApp) -> LogPage {
    let page: LogPage = get_ok(app, "/api/v1/log").await;
    assert_eq!(page.size, page.entries.len() as u64);
    verify_chain(&page.entries, None, &app.keys().await).expect("the log verifies");
    page
}

/// Whether any of several volunteers is ever leased a unit of `job`.
async fn leased_to_anyone(app: &TestApp, job: JobId) -> bool {
    for who in 1..=5 {
        let leases = app.lease(volunteer(who), 16).await;
        if leases.leases.iter().any(|lease| lease.job_id == job) {
            return true;
        }
    }
    false
}

async fn abuse(app: &TestApp, job: JobId, who: u8, message: &str) {
    app.report(&Report {
        protocol: PROTOCOL_VERSION,
        volunteer: volunteer(who),
        job_id: job,
        lease: None,
        kind: ReportKind::Abuse,
        message: message.into(),
    })
    .await;
}

#[tokio::test]
async fn an_unreviewed_job_is_served_to_no_one_until_approved_and_then_logged() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Unknown Lab").await;
    let job = lab.job(&app, 4).await;

    // Waiting: not in the public list, no manifest, no leases, in the admin's queue.
    let summary = lab.summary(&app, job).await;
    assert_eq!(summary.review, Review::Pending);
    assert_eq!(summary.log_seq, None);
    assert!(
        app.stats()
            .await
            .jobs
            .iter()
            .all(|stats| stats.job_id != job)
    );
    let response = app.manifest_response(&job.to_string()).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownJob).await;
    assert!(!leased_to_anyone(&app, job).await);
    let queue: Vec<JobSummary> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/review",
        json!(null),
    )
    .await;
    assert_eq!(
        queue.iter().map(|job| job.job_id).collect::<Vec<_>>(),
        [job]
    );
    let before = verified_log(&app).await.size;

    // Approved: published, logged, served.
    let approved: JobSummary = approve(&app, job).await;
    assert_eq!(approved.review, Review::Approved);
    let log = verified_log(&app).await;
    assert_eq!(log.size, before + 1);
    let entry = log.entries.last().expect("an entry");
    assert_eq!(approved.log_seq, Some(entry.seq));
    match &entry.event {
        LogEvent::Published {
            job: logged,
            distributor,
            owner,
            module_sha256,
            ..
        } => {
            assert_eq!(*logged, job);
            assert_eq!(distributor, "Unknown Lab");
            assert_eq!(owner.map(|owner| owner.0), Some(lab.id));
            assert_eq!(*module_sha256, summary.module_sha256);
        }
        other => panic!("expected a publication, got {other:?}"),
    }
    let manifest = app
        .manifest(job)
        .await
        .open(&app.keys().await, START_MS)
        .expect("opens");
    let from_publication: LogPage = get_ok(&app, &format!("/api/v1/log/jobs/{job}")).await;
    assert_eq!(
        check_job(&manifest, &from_publication.entries),
        Ok(entry.seq)
    );
    let stats = app.stats().await;
    let public = stats
        .jobs
        .iter()
        .find(|stats| stats.job_id == job)
        .expect("listed");
    assert_eq!(public.log_seq, Some(entry.seq));
    assert_eq!(public.distributor, "Unknown Lab");
    assert!(leased_to_anyone(&app, job).await);
    // Approving again adds nothing to the log; the queue is empty.
    approve(&app, job).await;
    assert_eq!(verified_log(&app).await.size, log.size);
    let queue: Vec<JobSummary> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/review",
        json!(null),
    )
    .await;
    assert!(queue.is_empty());
}

#[tokio::test]
async fn rejection_and_withdrawal_say_why_and_clients_refuse_a_withdrawn_job() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Lab").await;
    let rejected = lab.job(&app, 2).await;
    let published = lab.job(&app, 2).await;

    let path = format!("/api/v1/admin/jobs/{rejected}/reject");
    let response = admin(&app, reqwest::Method::POST, &path, json!({"reason": "x"})).await;
    expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    let summary: JobSummary = admin_ok(
        &app,
        reqwest::Method::POST,
        &path,
        json!({"reason": "The description does not say what the results are for."}),
    )
    .await;
    assert!(
        matches!(&summary.review, Review::Rejected { reason } if reason.contains("results are for"))
    );
    assert_eq!(lab.summary(&app, rejected).await.review, summary.review);
    let response = app.manifest_response(&rejected.to_string()).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownJob).await;
    // A rejected job was never published: withdrawing it is a conflict, and so is rejecting
    // a published one.
    let response = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/jobs/{rejected}/withdraw"),
        json!({"reason": "not published"}),
    )
    .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;

    approve(&app, published).await;
    let old_manifest: SignedManifest = app.manifest(published).await;
    let response = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/jobs/{published}/reject"),
        json!({"reason": "too late to reject"}),
    )
    .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    let summary: JobSummary = admin_ok(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/jobs/{published}/withdraw"),
        json!({"reason": "Mining cryptocurrency, against the terms."}),
    )
    .await;
    assert!(matches!(summary.review, Review::Withdrawn { .. }));
    let response = app.manifest_response(&published.to_string()).await;
    expect_error(response, StatusCode::GONE, ErrorCode::Revoked).await;
    assert!(!leased_to_anyone(&app, published).await);
    // The withdrawal is in the log, so a client holding the old manifest refuses it.
    let log = verified_log(&app).await;
    let manifest = old_manifest
        .open(&app.keys().await, START_MS)
        .expect("still signed");
    let publication = summary.log_seq.expect("was published") as usize;
    assert!(matches!(
        check_job(&manifest, &log.entries[publication..]),
        Err(LogError::JobRevoked { reason, .. }) if reason.contains("cryptocurrency")
    ));
}

#[tokio::test]
async fn terms_must_be_accepted_before_publishing() {
    let app = spawn_app(0).await;
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&json!({
            "name": "Hasty", "contact": "hasty@example.org", "organisation": "Hasty Lab",
            "purpose": "Publishing without reading anything",
        }))
        .send()
        .await
        .expect("registering");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: serde_json::Value = response.json().await.expect("parsing");
    assert_eq!(created["account"]["terms_accepted"], json!(null));
    let hasty = Distributor {
        id: created["account"]["account_id"].as_u64().expect("an id"),
        token: created["token"]["secret"]
            .as_str()
            .expect("a token")
            .to_owned(),
    };
    hasty.upload_module(&app).await;
    let response = hasty.create_job(&app, &range_job(2)).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::TermsNotAccepted).await;
    for hostile in [
        json!({"version": 0}),
        json!({"version": 2}),
        json!({"version": "1"}),
        json!({}),
    ] {
        let response = hasty
            .post(&app, "/api/v1/account/terms", hostile.clone())
            .await;
        assert_eq!(response.status().as_u16() / 100, 4, "{hostile}");
    }
    let response = hasty
        .post(&app, "/api/v1/account/terms", json!({"version": 1}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let account: AccountInfo = response.json().await.expect("parsing");
    assert_eq!(account.terms_accepted, Some(1));
    let response = hasty.create_job(&app, &range_job(2)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: JobCreated = response.json().await.expect("parsing");
    assert_eq!(created.review, Review::Pending);
    // The admin's terms endpoint is a distributor's: the admin token has no account.
    let response = admin(
        &app,
        reqwest::Method::POST,
        "/api/v1/account/terms",
        json!({"version": 1}),
    )
    .await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn a_trusted_distributor_is_published_at_once_and_a_suspended_one_is_withdrawn() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Reliable Lab").await;
    let response = admin(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/admin/accounts/{}", lab.id),
        json!({"trusted": true}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let job = lab.job(&app, 3).await;
    let summary = lab.summary(&app, job).await;
    assert_eq!(summary.review, Review::Approved);
    assert!(summary.log_seq.is_some());
    let second = lab.job(&app, 1).await;

    // Suspension needs a reason; then the account is locked out and its jobs withdrawn.
    let path = format!("/api/v1/admin/accounts/{}", lab.id);
    let response = admin(
        &app,
        reqwest::Method::PATCH,
        &path,
        json!({"suspended": true}),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    let account: AccountInfo = admin_ok(
        &app,
        reqwest::Method::PATCH,
        &path,
        json!({"suspended": true, "reason": "Its contact address bounces."}),
    )
    .await;
    assert!(account.suspended);
    let response = lab.get(&app, "/api/v1/jobs").await;
    assert_eq!(response.status().as_u16() / 100, 4);
    for job in [job, second] {
        let response = app.manifest_response(&job.to_string()).await;
        expect_error(response, StatusCode::GONE, ErrorCode::Revoked).await;
        assert!(!leased_to_anyone(&app, job).await);
    }
    let log = verified_log(&app).await;
    let revoked: Vec<JobId> = log
        .entries
        .iter()
        .filter_map(|entry| match &entry.event {
            LogEvent::Revoked { job, reason } if reason.contains("bounces") => Some(*job),
            _ => None,
        })
        .collect();
    assert_eq!(revoked.len(), 2);
    // A suspended distributor's job cannot be approved; reinstated, it can.
    let approve = format!("/api/v1/admin/jobs/{job}/approve");
    let response = admin(&app, reqwest::Method::POST, &approve, json!(null)).await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    admin_ok::<AccountInfo>(
        &app,
        reqwest::Method::PATCH,
        &path,
        json!({"suspended": false}),
    )
    .await;
    admin_ok::<JobSummary>(&app, reqwest::Method::POST, &approve, json!(null)).await;
    assert!(leased_to_anyone(&app, job).await);
    // Unknown fields, a bad id, an unknown account.
    let response = admin(
        &app,
        reqwest::Method::PATCH,
        &path,
        json!({"trusted": true, "admin": true}),
    )
    .await;
    assert_eq!(response.status().as_u16() / 100, 4);
    let response = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/admin/accounts/x",
        json!({}),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    let response = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/admin/accounts/999999",
        json!({}),
    )
    .await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let accounts: Vec<AccountInfo> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/accounts",
        json!(null),
    )
    .await;
    assert!(
        accounts
            .iter()
            .any(|account| account.account_id.0 == lab.id && account.trusted)
    );
}

#[tokio::test]
async fn revoking_a_declaration_key_withdraws_its_jobs_and_clients_refuse_them() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Signing Lab").await;
    lab.upload_module(&app).await;
    let key = SecretKey::from_seed(&[91; 32]);
    let response = lab
        .post(
            &app,
            "/api/v1/account/keys",
            json!({"public_key": key.public_key(), "label": "release"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut request = range_job(3);
    let inputs: Vec<Vec<u8>> = (0..3).map(|i| encode_range(i, i + 1)).collect();
    let message = job_declaration_message(
        &request.module_sha256,
        &inputs_digest(inputs.iter().map(Vec::as_slice)),
        &request.title,
        &request.description,
        &request.policy,
    );
    request.signature = Some(sign_declaration(&key, &message));
    let response = lab.create_job(&app, &request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let job = response.json::<JobCreated>().await.expect("parsing").job_id;
    let unsigned = lab.job(&app, 1).await;
    for job in [job, unsigned] {
        approve(&app, job).await;
    }
    let manifest = app
        .manifest(job)
        .await
        .open(&app.keys().await, START_MS)
        .expect("opens");
    let publication = lab.summary(&app, job).await.log_seq.expect("logged");

    let key_id = KeyId::of(&key.public_key());
    // Hostile key ids and reasons first.
    for (path, body) in [
        (
            "/api/v1/admin/keys/not-a-key/revoke".to_owned(),
            json!({"reason": "a reason"}),
        ),
        (
            format!("/api/v1/admin/keys/{key_id}/revoke"),
            json!({"reason": ""}),
        ),
        (
            format!("/api/v1/admin/keys/{key_id}/revoke"),
            json!({"reason": "a\u{0}b\u{7}c"}),
        ),
        (
            format!("/api/v1/admin/keys/{key_id}/revoke"),
            json!({"reason": "r".repeat(501)}),
        ),
    ] {
        let response = admin(&app, reqwest::Method::POST, &path, body).await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
    let stranger = KeyId::of(&SecretKey::from_seed(&[92; 32]).public_key());
    let response = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/keys/{stranger}/revoke"),
        json!({"reason": "unknown key"}),
    )
    .await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;

    let revoked: DistributorKeyInfo = admin_ok(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/keys/{key_id}/revoke"),
        json!({"reason": "The key leaked in a public repository."}),
    )
    .await;
    assert!(revoked.revoked);
    let response = app.manifest_response(&job.to_string()).await;
    expect_error(response, StatusCode::GONE, ErrorCode::Revoked).await;
    // The job it did not declare is untouched (asked first: a lease request takes every
    // unit on offer).
    assert!(leased_to_anyone(&app, unsigned).await);
    assert!(!leased_to_anyone(&app, job).await);
    let log = verified_log(&app).await;
    assert!(matches!(
        check_job(&manifest, &log.entries[publication as usize..]),
        Err(LogError::DeclarationKeyRevoked { .. } | LogError::JobRevoked { .. })
    ));
    // Only the key revocation and the one withdrawal were logged; revoking again adds nothing.
    let size = log.size;
    admin_ok::<DistributorKeyInfo>(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/keys/{key_id}/revoke"),
        json!({"reason": "again"}),
    )
    .await;
    assert_eq!(verified_log(&app).await.size, size);
    // And the job cannot be approved again.
    let response = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/jobs/{job}/approve"),
        json!(null),
    )
    .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
}

#[tokio::test]
async fn abuse_reports_reach_the_admin_who_can_dismiss_withdraw_or_suspend() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Reported Lab").await;
    let first = lab.job(&app, 2).await;
    let second = lab.job(&app, 2).await;
    for job in [first, second] {
        approve(&app, job).await;
    }
    abuse(
        &app,
        first,
        1,
        "<script>window.__pwned = 1</script> it mines coins",
    )
    .await;
    abuse(&app, first, 2, "same here").await;
    abuse(&app, second, 3, "looks fine actually").await;

    let open: Vec<AbuseReport> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/reports",
        json!(null),
    )
    .await;
    assert_eq!(open.len(), 3);
    assert_eq!(open[0].job_id, second, "newest first");
    assert_eq!(
        open[2].message,
        "<script>window.__pwned = 1</script> it mines coins"
    );
    assert_eq!(open[2].distributor.as_deref(), Some("Reported Lab"));

    let resolve = |id: u64| format!("/api/v1/admin/reports/{id}/resolve");
    let dismissed: AbuseReport = admin_ok(
        &app,
        reqwest::Method::POST,
        &resolve(open[0].report_id),
        json!({"action": "dismiss", "note": "A factoring job, as described."}),
    )
    .await;
    assert!(dismissed.resolution.is_some());
    assert!(leased_to_anyone(&app, second).await);
    let response = admin(
        &app,
        reqwest::Method::POST,
        &resolve(open[0].report_id),
        json!({"action": "dismiss"}),
    )
    .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;

    admin_ok::<AbuseReport>(
        &app,
        reqwest::Method::POST,
        &resolve(open[2].report_id),
        json!({"action": "withdraw_job", "note": "Confirmed: it mines."}),
    )
    .await;
    let response = app.manifest_response(&first.to_string()).await;
    expect_error(response, StatusCode::GONE, ErrorCode::Revoked).await;
    let open_now: Vec<AbuseReport> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/reports",
        json!(null),
    )
    .await;
    assert_eq!(open_now.len(), 1);
    let all: Vec<AbuseReport> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/reports?open=false",
        json!(null),
    )
    .await;
    assert_eq!(all.len(), 3);

    admin_ok::<AbuseReport>(
        &app,
        reqwest::Method::POST,
        &resolve(open_now[0].report_id),
        json!({"action": "suspend_distributor"}),
    )
    .await;
    let accounts: Vec<AccountInfo> = admin_ok(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/accounts",
        json!(null),
    )
    .await;
    assert!(
        accounts
            .iter()
            .any(|account| account.account_id.0 == lab.id && account.suspended)
    );
    assert!(!leased_to_anyone(&app, second).await);

    // Hostile input: unknown action, unknown report, bad id, oversized note.
    for (path, body, status) in [
        (
            resolve(open[1].report_id),
            json!({"action": "delete_everything"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            resolve(u64::MAX),
            json!({"action": "dismiss"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/admin/reports/-1/resolve".to_owned(),
            json!({"action": "dismiss"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            resolve(open[1].report_id),
            json!({"action": "dismiss", "note": "n".repeat(501)}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = admin(&app, reqwest::Method::POST, &path, body).await;
        assert_eq!(response.status(), status, "{path}");
    }
    let response = admin(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/reports?open=maybe",
        json!(null),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
}

#[tokio::test]
async fn admin_endpoints_refuse_distributors_and_strangers() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Curious Lab").await;
    let job = lab.job(&app, 1).await;
    let routes = [
        (reqwest::Method::GET, "/api/v1/admin/review".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/accounts".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/reports".to_owned()),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/jobs/{job}/approve"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/jobs/{job}/reject"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/jobs/{job}/withdraw"),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/admin/accounts/{}", lab.id),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/keys/0011223344556677/revoke".to_owned(),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/reports/1/resolve".to_owned(),
        ),
    ];
    for (method, path) in routes {
        let body = json!({"reason": "I approve my own job", "trusted": true, "action": "dismiss"});
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .header(AUTHORIZATION, bearer(&lab.token))
            .json(&body)
            .send()
            .await
            .expect("sending");
        expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .json(&body)
            .send()
            .await
            .expect("sending");
        expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    assert_eq!(lab.summary(&app, job).await.review, Review::Pending);
    // Oversized bodies are refused before anything else.
    let response = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/jobs/{job}/reject"),
        json!({"reason": "r".repeat(2 * 1024 * 1024)}),
    )
    .await;
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
    )
    .await;
}

#[tokio::test]
async fn the_log_pages_and_survives_a_restart() {
    let app = spawn_app(0).await;
    let lab = register_untrusted(&app, "Paging Lab").await;
    for _ in 0..3 {
        let job = lab.job(&app, 1).await;
        approve(&app, job).await;
    }
    let whole = verified_log(&app).await;
    assert!(whole.size >= 3);
    // Page by page, each page checked against the head of the one before.
    let mut head = None;
    let mut from = 0;
    let keys = app.keys().await;
    while from < whole.size {
        let page: LogPage = get_ok(&app, &format!("/api/v1/log?from={from}&limit=2")).await;
        assert!(page.entries.len() <= 2);
        head = verify_chain(&page.entries, head, &keys).expect("each page links to the last");
        from += page.entries.len() as u64;
    }
    assert_eq!(head, whole.entries.last().map(|entry| entry.head()));
    for query in [
        "from=-1",
        "limit=x",
        "from=1&evil=1",
        "from=99999999999999999999",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/api/v1/log?{query}")))
            .send()
            .await
            .expect("GET");
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
    let past_end: LogPage = get_ok(&app, "/api/v1/log?from=1000000").await;
    assert!(past_end.entries.is_empty());
    let response = app
        .client
        .get(app.url("/api/v1/log/jobs/424242"))
        .send()
        .await
        .expect("GET");
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownJob).await;

    let app = app.restart().await;
    let after = verified_log(&app).await;
    assert_eq!(
        after.entries, whole.entries,
        "a restart neither loses nor adds entries"
    );
}
