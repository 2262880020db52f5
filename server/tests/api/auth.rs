//! The distributor API (uploading modules, creating jobs, reading reports) needs the admin
//! token as `Authorization: Bearer`; the volunteer API needs none; and the token never comes
//! back in a response.

use cyclepool_shared::ErrorCode;
use cyclepool_shared::protocol::SubmitStatus;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use crate::helpers::{
    ADMIN_TOKEN, compute, expect_error, job_request, module_sha256, spawn_app, volunteer,
};
use crate::test_module::reverse_module;

/// The `Authorization` values that must not open the distributor API (`None`: no header).
fn refused_credentials() -> Vec<Option<String>> {
    let mut wrong = ADMIN_TOKEN.to_owned();
    wrong.pop();
    wrong.push('0');
    vec![
        None,
        Some(format!("Bearer {wrong}")),
        Some("Bearer cp_admin_".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some("Basic YWRtaW46YWRtaW4=".to_owned()),
        // The token without its scheme, or in the scheme's place.
        Some(ADMIN_TOKEN.to_owned()),
        Some(format!("{ADMIN_TOKEN} Bearer")),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        Some(format!("Bearer x{ADMIN_TOKEN}")),
    ]
}

#[tokio::test]
async fn distributor_endpoints_refuse_missing_wrong_and_malformed_tokens() {
    let app = spawn_app(0).await;
    let job = serde_json::to_vec(&job_request(3)).unwrap();
    for credentials in refused_credentials() {
        let mut upload = app
            .client
            .put(app.url("/api/v1/modules"))
            .body(reverse_module());
        let mut list = app.client.get(app.url("/api/v1/reports"));
        let mut create = app
            .client
            .post(app.url("/api/v1/jobs"))
            .header("content-type", "application/json")
            .body(job.clone());
        if let Some(value) = &credentials {
            upload = upload.header(AUTHORIZATION, value);
            create = create.header(AUTHORIZATION, value);
            list = list.header(AUTHORIZATION, value);
        }
        let requests = [
            ("upload", upload),
            ("create", create),
            ("list reports", list),
        ];
        for (what, request) in requests {
            let response = request.send().await.unwrap();
            let body =
                expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
            let text = serde_json::to_string(&body).unwrap();
            assert!(
                !text.contains(ADMIN_TOKEN) && !text.contains("cp_admin_0123"),
                "{what} with {credentials:?} leaks the token: {text}"
            );
        }
    }
    // Nothing was stored by the refused calls: no module to fetch, no job to lease from.
    let response = app.module_response(module_sha256()).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownModule).await;
    assert!(app.stats().await.jobs.is_empty());
    assert!(app.lease(volunteer(1), 8).await.leases.is_empty());
}

#[tokio::test]
async fn the_right_token_opens_the_distributor_api_and_is_never_echoed() {
    let app = spawn_app(0).await;
    let response = app.upload_module_response(reverse_module()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.unwrap();
    assert!(!text.contains(ADMIN_TOKEN), "{text}");

    let response = app.create_job_response(&job_request(2)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.unwrap();
    assert!(!text.contains(ADMIN_TOKEN), "{text}");

    // Error answers to an authorised caller do not echo it either.
    let mut bad = job_request(2);
    bad.title = String::new();
    let response = app.create_job_response(&bad).await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    assert!(!body.error.message.contains(ADMIN_TOKEN), "{body:?}");
    let response = app.upload_module_response(b"not wasm".to_vec()).await;
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidModule,
    )
    .await;
    assert!(!body.error.message.contains(ADMIN_TOKEN), "{body:?}");
}

#[tokio::test]
async fn volunteer_endpoints_need_no_token() {
    let app = spawn_app(2).await;
    let alice = volunteer(1);
    // No Authorization header anywhere below: the helpers send none on volunteer calls.
    let lease = app.lease_one(alice).await;
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Accepted
    );
    let manifest = app.manifest(app.job_id()).await;
    assert!(!manifest.manifest.contains(ADMIN_TOKEN));
    assert_eq!(app.keys().await.keys.len(), 1);
    let response = app.module_response(module_sha256()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().to_vec(), reverse_module());
    // A token sent where none is needed changes nothing (and is not echoed).
    let response = app
        .client
        .get(app.url("/api/v1/stats"))
        .header(AUTHORIZATION, "Bearer whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.text().await.unwrap().contains("whatever"));
}

#[tokio::test]
async fn the_scheme_name_is_case_insensitive_but_the_token_is_not() {
    let app = spawn_app(0).await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = app
            .client
            .put(app.url("/api/v1/modules"))
            .header("authorization", format!("{scheme} {ADMIN_TOKEN}"))
            .body(reverse_module())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "scheme {scheme}");
    }
    let response = app
        .client
        .put(app.url("/api/v1/modules"))
        .header(
            "authorization",
            format!("Bearer {}", ADMIN_TOKEN.to_uppercase()),
        )
        .body(reverse_module())
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
}
