//! Distributor accounts over HTTP: registration, tokens, dashboard sessions and CSRF, job
//! ownership (no distributor reads or changes another's jobs), pause / resume / cancel,
//! signed job declarations, restricted groups, downloads and the live progress stream.

use cyclepool_shared::distributor::{
    CSRF_HEADER, DeclarationSignature, GroupCreated, GroupInfo, GroupJoined, JobFailures,
    JobStatus, JobSummary, JoinGroup, SessionInfo, TokenCreated, TokenInfo, inputs_digest,
    job_declaration_message, join_message, sign_declaration,
};
use cyclepool_shared::protocol::{CreateJob, JobCreated, LeaseResponse, SubmitStatus};
use cyclepool_shared::range::encode_range;
use cyclepool_shared::signing::{Purpose, SecretKey};
use cyclepool_shared::{ErrorCode, VolunteerId};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};

use crate::distributor::{Distributor, bearer, range_job, register};
use crate::helpers::{
    ADMIN_TOKEN, START_MS, TestApp, compute, expect_error, module_sha256, secret_for, spawn_app,
    test_policy, volunteer,
};

/// Leases with a proof of key possession, as the web client does.
async fn lease_with_proof(app: &TestApp, volunteer: VolunteerId, max_units: u32) -> LeaseResponse {
    let response = app.lease_with_proof_response(volunteer, max_units).await;
    let status = response.status();
    let text = response.text().await.expect("reading");
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("parsing LeaseResponse")
}

#[tokio::test]
async fn registration_validates_every_field_and_shows_the_token_once() {
    let app = spawn_app(0).await;
    let valid = serde_json::json!({
        "name": "Lab", "contact": "lab@example.org", "organisation": "A lab",
        "purpose": "Protein folding for science",
    });
    let mut cases = Vec::new();
    for (field, value) in [
        ("name", serde_json::json!("")),
        ("name", serde_json::json!("x".repeat(101))),
        ("name", serde_json::json!("bell\u{7}")),
        ("contact", serde_json::json!("a")),
        ("purpose", serde_json::json!("too short")),
        ("organisation", serde_json::json!(42)),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        cases.push(body);
    }
    let mut unknown = valid.clone();
    unknown["is_admin"] = serde_json::json!(true);
    cases.push(unknown);
    for body in cases {
        let response = app
            .client
            .post(app.url("/api/v1/accounts"))
            .json(&body)
            .send()
            .await
            .expect("registering");
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY]
                .contains(&response.status()),
            "{body} was accepted: {}",
            response.status()
        );
    }
    let oversized = serde_json::json!({
        "name": "Lab", "contact": "x", "organisation": "y", "purpose": "z".repeat(64 * 1024),
    });
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&oversized)
        .send()
        .await
        .expect("registering");
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
    )
    .await;

    let lab = register(&app, "Lab").await;
    let account = lab.get(&app, "/api/v1/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    let text = account.text().await.expect("reading");
    assert!(
        !text.contains(&lab.token),
        "the account answer repeats the token"
    );
    let tokens = lab
        .get(&app, "/api/v1/tokens")
        .await
        .text()
        .await
        .expect("reading");
    assert!(
        !tokens.contains(&lab.token["cp_token_".len()..]),
        "a token listing shows a secret"
    );
}

#[tokio::test]
async fn tokens_can_be_created_listed_and_revoked() {
    let app = spawn_app(0).await;
    let lab = register(&app, "Lab").await;
    let other = register(&app, "Other").await;
    let response = lab
        .post(&app, "/api/v1/tokens", serde_json::json!({"label": "ci"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: TokenCreated = response.json().await.expect("parsing TokenCreated");
    let second = Distributor {
        id: lab.id,
        token: created.secret.clone(),
    };
    assert_eq!(
        second.get(&app, "/api/v1/account").await.status(),
        StatusCode::OK
    );
    let listed: Vec<TokenInfo> = lab
        .get(&app, "/api/v1/tokens")
        .await
        .json()
        .await
        .expect("parsing tokens");
    assert_eq!(listed.len(), 2);
    // Another account cannot revoke it.
    let path = format!("/api/v1/tokens/{}", created.info.token_id);
    let response = app
        .client
        .delete(app.url(&path))
        .header(AUTHORIZATION, bearer(&other.token))
        .send()
        .await
        .expect("revoking");
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    assert_eq!(
        second.get(&app, "/api/v1/account").await.status(),
        StatusCode::OK
    );
    let response = app
        .client
        .delete(app.url(&path))
        .header(AUTHORIZATION, bearer(&lab.token))
        .send()
        .await
        .expect("revoking");
    assert_eq!(response.status(), StatusCode::OK);
    let response = second.get(&app, "/api/v1/account").await;
    expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    // The first token still works.
    assert_eq!(
        lab.get(&app, "/api/v1/account").await.status(),
        StatusCode::OK
    );
    for bad in ["abc", "-1", "99999999999999999999999"] {
        let response = app
            .client
            .delete(app.url(&format!("/api/v1/tokens/{bad}")))
            .header(AUTHORIZATION, bearer(&lab.token))
            .send()
            .await
            .expect("revoking");
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
}

#[tokio::test]
async fn a_distributor_cannot_read_or_change_another_distributors_jobs() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let mallory = register(&app, "Mallory").await;
    let job = alice.job(&app, 3).await;
    let own = mallory.job(&app, 2).await;

    for path in [
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/jobs/{job}/results"),
        format!("/api/v1/jobs/{job}/results.tar"),
        format!("/api/v1/jobs/{job}/failures"),
    ] {
        let response = mallory.get(&app, &path).await;
        expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    }
    for action in ["pause", "resume", "cancel"] {
        let response = mallory
            .post(
                &app,
                &format!("/api/v1/jobs/{job}/{action}"),
                serde_json::json!(null),
            )
            .await;
        expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    }
    assert_eq!(alice.summary(&app, job).await.status, JobStatus::Active);
    let listed: Vec<JobSummary> = mallory
        .get(&app, "/api/v1/jobs")
        .await
        .json()
        .await
        .expect("parsing jobs");
    assert_eq!(
        listed.iter().map(|job| job.job_id).collect::<Vec<_>>(),
        vec![own],
        "Mallory's list shows only Mallory's job"
    );
    let listed: Vec<JobSummary> = alice
        .get(&app, "/api/v1/jobs")
        .await
        .json()
        .await
        .expect("parsing jobs");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id, job);
    assert_eq!(listed[0].distributor, "Alice");
    // The admin sees both.
    let response = app
        .client
        .get(app.url("/api/v1/jobs"))
        .header(AUTHORIZATION, bearer(ADMIN_TOKEN))
        .send()
        .await
        .expect("listing");
    let listed: Vec<JobSummary> = response.json().await.expect("parsing jobs");
    assert_eq!(listed.len(), 2);
    // Nonexistent and malformed ids.
    expect_error(
        mallory.get(&app, "/api/v1/jobs/999999").await,
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownJob,
    )
    .await;
    expect_error(
        mallory.get(&app, "/api/v1/jobs/..%2F..%2Fetc").await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidValue,
    )
    .await;
}

#[tokio::test]
async fn volunteers_cannot_call_distributor_endpoints() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let job = alice.job(&app, 2).await;
    let gets = [
        "/api/v1/jobs".to_owned(),
        "/api/v1/jobs/events".to_owned(),
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/jobs/{job}/results"),
        format!("/api/v1/jobs/{job}/results.tar"),
        format!("/api/v1/jobs/{job}/failures"),
        "/api/v1/account".to_owned(),
        "/api/v1/tokens".to_owned(),
        "/api/v1/groups".to_owned(),
        "/api/v1/session".to_owned(),
        "/api/v1/reports".to_owned(),
    ];
    for path in gets {
        let response = app.client.get(app.url(&path)).send().await.expect("GET");
        expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    let posts = [
        format!("/api/v1/jobs/{job}/pause"),
        format!("/api/v1/jobs/{job}/cancel"),
        "/api/v1/tokens".to_owned(),
        "/api/v1/groups".to_owned(),
        "/api/v1/account/keys".to_owned(),
        "/api/v1/session".to_owned(),
    ];
    for path in posts {
        let response = app
            .client
            .post(app.url(&path))
            .json(&serde_json::json!({"label": "x", "name": "x"}))
            .send()
            .await
            .expect("POST");
        expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    // A distributor token is not the admin's: the review queue stays closed to it.
    let response = alice.get(&app, "/api/v1/reports").await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
}

/// Signs in with `token`; returns the cookie header value and the session's CSRF token.
async fn sign_in(app: &TestApp, token: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/api/v1/session"))
        .header(AUTHORIZATION, bearer(token))
        .send()
        .await
        .expect("signing in");
    assert_eq!(response.status(), StatusCode::CREATED);
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .expect("a Set-Cookie header")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    let info: SessionInfo = response.json().await.expect("parsing SessionInfo");
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("a name=value pair")
        .to_owned();
    assert!(
        !cookie.contains(token),
        "the cookie must not be the API token"
    );
    (cookie, info.csrf_token)
}

#[tokio::test]
async fn dashboard_sessions_need_the_csrf_token_for_changes() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let job = alice.job(&app, 2).await;
    let (cookie, csrf) = sign_in(&app, &alice.token).await;
    let host = app.address.to_string();

    // Reads need only the cookie.
    let response = app
        .client
        .get(app.url("/api/v1/jobs"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("listing");
    assert_eq!(response.status(), StatusCode::OK);
    let session = app
        .client
        .get(app.url("/api/v1/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("reading the session");
    let session: SessionInfo = session.json().await.expect("parsing SessionInfo");
    assert_eq!(session.csrf_token, csrf);

    let pause = |csrf: Option<&str>, origin: Option<&str>| {
        let mut request = app
            .client
            .post(app.url(&format!("/api/v1/jobs/{job}/pause")))
            .header(COOKIE, &cookie);
        if let Some(csrf) = csrf {
            request = request.header(CSRF_HEADER, csrf);
        }
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    let response = pause(None, None).await.expect("pausing");
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::CsrfRejected).await;
    let mut wrong = csrf.clone();
    wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
    let response = pause(Some(&wrong), None).await.expect("pausing");
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::CsrfRejected).await;
    let response = pause(Some(&csrf), Some("http://evil.example"))
        .await
        .expect("pausing");
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::CsrfRejected).await;
    assert_eq!(alice.summary(&app, job).await.status, JobStatus::Active);
    let response = pause(Some(&csrf), Some(&format!("http://{host}")))
        .await
        .expect("pausing");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(alice.summary(&app, job).await.status, JobStatus::Paused);

    // Signing out ends the session for good.
    let response = app
        .client
        .delete(app.url("/api/v1/session"))
        .header(COOKIE, &cookie)
        .header(CSRF_HEADER, &csrf)
        .send()
        .await
        .expect("signing out");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .client
        .get(app.url("/api/v1/jobs"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("listing");
    expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    // A forged cookie opens nothing.
    let response = app
        .client
        .get(app.url("/api/v1/jobs"))
        .header(COOKIE, "cyclepool_session=00ff")
        .send()
        .await
        .expect("listing");
    expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    // The admin token cannot open a session (it has no account).
    let response = app
        .client
        .post(app.url("/api/v1/session"))
        .header(AUTHORIZATION, bearer(ADMIN_TOKEN))
        .send()
        .await
        .expect("signing in");
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn paused_jobs_hand_out_nothing_and_cancelled_jobs_refuse_results() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let job = alice.job(&app, 4).await;
    let early = app.lease_one(volunteer(1)).await;
    assert_eq!(early.job_id, job);

    let response = alice
        .post(
            &app,
            &format!("/api/v1/jobs/{job}/pause"),
            serde_json::json!(null),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.lease(volunteer(2), 4).await.leases.is_empty());
    // A lease already out may still be returned while the job is paused.
    assert_eq!(
        app.submit(&compute(volunteer(1), &early)).await,
        SubmitStatus::Accepted
    );

    let response = alice
        .post(
            &app,
            &format!("/api/v1/jobs/{job}/resume"),
            serde_json::json!(null),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let late = app.lease_one(volunteer(2)).await;
    let summary = alice.summary(&app, job).await;
    assert_eq!(summary.progress.validated, 1);
    assert_eq!(summary.progress.leased, 1);

    let response = alice
        .post(
            &app,
            &format!("/api/v1/jobs/{job}/cancel"),
            serde_json::json!(null),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.lease(volunteer(3), 4).await.leases.is_empty());
    let response = app.submit_response(&compute(volunteer(2), &late)).await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::JobNotActive).await;
    let response = alice
        .post(
            &app,
            &format!("/api/v1/jobs/{job}/resume"),
            serde_json::json!(null),
        )
        .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    // Cancelled jobs leave the public list.
    assert!(
        app.stats()
            .await
            .jobs
            .iter()
            .all(|stats| stats.job_id != job)
    );
}

#[tokio::test]
async fn signed_declarations_are_checked_and_carried_in_the_manifest() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let mallory = register(&app, "Mallory").await;
    alice.job(&app, 1).await; // uploads the module
    let key = SecretKey::from_seed(&[77; 32]);
    let response = alice
        .post(
            &app,
            "/api/v1/account/keys",
            serde_json::json!({"public_key": key.public_key(), "label": "release key"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // Nobody else can register the same key.
    let response = mallory
        .post(
            &app,
            "/api/v1/account/keys",
            serde_json::json!({"public_key": key.public_key()}),
        )
        .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;

    let signed = |request: &CreateJob, key: &SecretKey| {
        let inputs: Vec<Vec<u8>> = (0..3).map(|i| encode_range(i, i + 1)).collect();
        let message = job_declaration_message(
            &request.module_sha256,
            &inputs_digest(inputs.iter().map(Vec::as_slice)),
            &request.title,
            &request.description,
            &request.policy,
        );
        let mut request = request.clone();
        request.signature = Some(sign_declaration(key, &message));
        request
    };
    let base = range_job(3);
    let response = alice.create_job(&app, &signed(&base, &key)).await;
    let status = response.status();
    let text = response.text().await.expect("reading");
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let created: JobCreated = serde_json::from_str(&text).expect("parsing");
    let manifest = created
        .manifest
        .open(&app.keys().await, START_MS)
        .expect("the manifest opens, its declaration verified");
    assert_eq!(
        manifest.declaration.map(|d| d.public_key),
        Some(key.public_key())
    );
    assert_eq!(manifest.module_sha256, module_sha256());

    // Signed over something else (another title), by an unregistered key, or by Mallory
    // with Alice's key: refused.
    let mut tampered = signed(&base, &key);
    tampered.title = "Another title".into();
    let stranger = SecretKey::from_seed(&[78; 32]);
    let forged = DeclarationSignature {
        public_key: key.public_key(),
        ..signed(&base, &stranger).signature.expect("signed")
    };
    let mut forged_request = base.clone();
    forged_request.signature = Some(forged);
    for (who, request) in [
        (&alice, tampered),
        (&alice, signed(&base, &stranger)),
        (&alice, forged_request),
        (&mallory, signed(&base, &key)),
    ] {
        let response = who.create_job(&app, &request).await;
        expect_error(response, StatusCode::FORBIDDEN, ErrorCode::BadSignature).await;
    }
    // A revoked key signs no more jobs.
    let key_id = cyclepool_shared::KeyId::of(&key.public_key());
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/account/keys/{key_id}")))
        .header(AUTHORIZATION, bearer(&alice.token))
        .send()
        .await
        .expect("revoking");
    assert_eq!(response.status(), StatusCode::OK);
    let response = alice.create_job(&app, &signed(&base, &key)).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::BadSignature).await;
    // Small-order and malformed keys are refused.
    let response = alice
        .post(
            &app,
            "/api/v1/account/keys",
            serde_json::json!({"public_key": "00".repeat(32)}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn create_group(app: &TestApp, owner: &Distributor) -> GroupCreated {
    let response = owner
        .post(
            app,
            "/api/v1/groups",
            serde_json::json!({"name": "Lab machines"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("parsing GroupCreated")
}

fn join_request(volunteer: VolunteerId, invite: &str, at_ms: u64) -> JoinGroup {
    JoinGroup {
        volunteer,
        invite: invite.to_owned(),
        at_ms,
        signature: secret_for(volunteer)
            .sign(Purpose::JoinGroup, &join_message(&volunteer, invite, at_ms)),
    }
}

#[tokio::test]
async fn restricted_jobs_go_only_to_members_who_prove_their_key() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let mallory = register(&app, "Mallory").await;
    alice.job(&app, 1).await;
    let group = create_group(&app, &alice).await;
    let mut request = range_job(6);
    request.group = Some(group.group.group_id);
    // Mallory cannot put a job in Alice's group, nor see it.
    let response = mallory.create_job(&app, &request).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    let response = mallory
        .get(&app, &format!("/api/v1/groups/{}", group.group.group_id))
        .await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    let response = alice.create_job(&app, &request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let restricted: JobCreated = response.json().await.expect("parsing");

    // The public job (1 unit) goes first to whoever asks; then nobody outside the group gets
    // anything, with or without a proof.
    let outsider = volunteer(10);
    let first = app.lease(outsider, 8).await;
    assert_eq!(first.leases.len(), 1);
    assert!(
        first
            .leases
            .iter()
            .all(|lease| lease.job_id != restricted.job_id)
    );
    let status = app.submit(&compute(outsider, &first.leases[0])).await;
    assert_eq!(status, SubmitStatus::Accepted);
    for asker in [outsider, volunteer(11)] {
        assert!(lease_with_proof(&app, asker, 8).await.leases.is_empty());
        assert!(app.lease(asker, 8).await.leases.is_empty());
    }
    assert!(
        app.stats()
            .await
            .jobs
            .iter()
            .all(|job| job.job_id != restricted.job_id)
    );

    // Joining: a bad signature, a stale time, a wrong invitation are refused.
    let member = volunteer(12);
    let now = app.clock.now_ms();
    let mut bad = join_request(member, &group.invite, now);
    bad.signature = join_request(volunteer(13), &group.invite, now).signature;
    let join = |request: JoinGroup| {
        app.client
            .post(app.url("/api/v1/groups/join"))
            .json(&request)
            .send()
    };
    expect_error(
        join(bad).await.expect("joining"),
        StatusCode::FORBIDDEN,
        ErrorCode::BadSignature,
    )
    .await;
    expect_error(
        join(join_request(member, &group.invite, now - 3_600_000))
            .await
            .expect("joining"),
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidValue,
    )
    .await;
    expect_error(
        join(join_request(member, "cp_invite_00", now))
            .await
            .expect("joining"),
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownGroup,
    )
    .await;
    let response = join(join_request(member, &group.invite, now))
        .await
        .expect("joining");
    assert_eq!(response.status(), StatusCode::OK);
    let joined: GroupJoined = response.json().await.expect("parsing");
    assert_eq!(joined.distributor, "Alice");

    // A member without a proof gets nothing: anyone can claim a public key.
    assert!(app.lease(member, 8).await.leases.is_empty());
    let leased = lease_with_proof(&app, member, 8).await;
    assert_eq!(leased.leases.len(), 6);
    assert!(
        leased
            .leases
            .iter()
            .all(|lease| lease.job_id == restricted.job_id)
    );

    // An allowlisted key works the same way.
    let listed = volunteer(14);
    let response = alice
        .post(
            &app,
            &format!("/api/v1/groups/{}/members", group.group.group_id),
            serde_json::json!({"volunteers": [listed]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info: GroupInfo = response.json().await.expect("parsing");
    assert!(info.members.contains(&listed) && info.members.contains(&member));
    let response = mallory
        .post(
            &app,
            &format!("/api/v1/groups/{}/members", group.group.group_id),
            serde_json::json!({"volunteers": [volunteer(15)]}),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    // Every unit is out with the member; expiry hands them back to members only.
    app.clock.advance(test_policy().lease_ttl_ms + 1);
    assert!(app.lease(volunteer(15), 8).await.leases.is_empty());
    assert_eq!(lease_with_proof(&app, listed, 8).await.leases.len(), 6);
}

#[tokio::test]
async fn owners_download_results_as_json_lines_and_tar_and_see_failures() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let job = alice.job(&app, 3).await;
    for byte in 1..=3 {
        let lease = app.lease_one(volunteer(byte)).await;
        assert_eq!(
            app.submit(&compute(volunteer(byte), &lease)).await,
            SubmitStatus::Accepted
        );
    }
    let response = alice
        .get(&app, &format!("/api/v1/jobs/{job}/results"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("reading");
    assert_eq!(text.lines().count(), 3);
    let response = alice
        .get(&app, &format!("/api/v1/jobs/{job}/results.tar"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/x-tar")
    );
    let archive = response.bytes().await.expect("reading");
    assert_eq!(archive.len() % 512, 0);
    let names: Vec<String> = archive
        .chunks(512)
        .filter(|block| block[257..262] == *b"ustar")
        .map(|block| {
            String::from_utf8_lossy(&block[..100])
                .trim_end_matches('\0')
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "units/000000000000.out",
            "units/000000000001.out",
            "units/000000000002.out",
            "SHA256SUMS"
        ]
    );
    // Compressed, the stream must end cleanly too (a body layer polls once more at the end).
    for path in ["results", "results.tar"] {
        let response = app
            .client
            .get(app.url(&format!("/api/v1/jobs/{job}/{path}")))
            .header(AUTHORIZATION, bearer(&alice.token))
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .expect("downloading compressed");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.bytes().await.expect("the whole compressed body");
        assert!(body.starts_with(&[0x1f, 0x8b]), "not gzip");
    }
    let summary = alice.summary(&app, job).await;
    assert_eq!(summary.progress.validated, 3);
    assert_eq!(summary.progress.results, 3);
    assert_eq!(summary.progress.active_volunteers, 3);
    let failures: JobFailures = alice
        .get(&app, &format!("/api/v1/jobs/{job}/failures"))
        .await
        .json()
        .await
        .expect("parsing failures");
    assert!(failures.failed_units.is_empty());
}

#[tokio::test]
async fn the_progress_stream_sends_the_callers_jobs() {
    let app = spawn_app(0).await;
    let alice = register(&app, "Alice").await;
    let job = alice.job(&app, 2).await;
    let mut response = alice.get(&app, "/api/v1/jobs/events").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut received = String::new();
    while !received.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .expect("reading the stream")
            .expect("the stream stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.starts_with("event: jobs\n"), "{received}");
    let data = received
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("a data line");
    let jobs: Vec<JobSummary> = serde_json::from_str(data).expect("parsing the event");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job_id, job);
    assert_eq!(jobs[0].progress.units, 2);
    // An open stream does not hold up a graceful shutdown: it ends, and the server stops.
    let mut app = app;
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops within 10 s with a progress stream open");
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
}

#[tokio::test]
async fn registrations_from_one_address_are_rate_limited_with_retry_after() {
    let app = spawn_app(0).await;
    let body = |i: usize| {
        serde_json::json!({
            "name": format!("Lab {i}"), "contact": "lab@example.org", "organisation": "A lab",
            "purpose": "Registering many accounts",
        })
    };
    let limit = cyclepool_server::limits::REGISTRATIONS.burst as usize;
    for i in 0..limit {
        let response = app
            .client
            .post(app.url("/api/v1/accounts"))
            .json(&body(i))
            .send()
            .await
            .expect("registering");
        assert_eq!(response.status(), StatusCode::CREATED, "registration {i}");
    }
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&body(limit))
        .send()
        .await
        .expect("registering");
    let retry_after: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=3_600).contains(&retry_after), "{retry_after}");
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
    )
    .await;
    // Other endpoints are not affected, and the bucket refills with time.
    assert_eq!(app.lease(volunteer(1), 1).await.leases.len(), 0);
    app.clock.advance(retry_after * 1_000);
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&body(limit + 1))
        .send()
        .await
        .expect("registering");
    assert_eq!(response.status(), StatusCode::CREATED);
}
