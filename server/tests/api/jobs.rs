//! `POST /api/v1/jobs` and `GET /api/v1/jobs/{id}/manifest`: a job made from an uploaded
//! module gets units and a manifest signed by the portal's published key; a bad request is
//! refused with the field it got wrong.

use cyclepool_server::routes::jobs::MAX_UNITS_PER_JOB;
use cyclepool_shared::abi::MAX_INPUT_BYTES;
use cyclepool_shared::manifest::ManifestError;
use cyclepool_shared::protocol::{CreateJob, Inputs, MAX_UNITS_PER_REQUEST};
use cyclepool_shared::{ErrorCode, Sha256Digest};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use crate::helpers::{
    ADMIN_TOKEN, TestApp, expect_error, job_request, module_sha256, spawn_app, test_policy,
    volunteer,
};
use crate::test_module::{range_input, reverse_module};

/// A server with the test module uploaded and no job yet.
async fn app_with_module() -> TestApp {
    let app = spawn_app(0).await;
    app.upload_test_module().await;
    app
}

#[tokio::test]
async fn a_job_gets_its_units_and_a_manifest_signed_by_the_published_key() {
    let app = app_with_module().await;
    let mut request = job_request(10);
    request.inputs = Inputs::Range {
        start: 100,
        end: 125,
        step: 10,
    };
    let response = app.create_job_response(&request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: cyclepool_shared::protocol::JobCreated = response.json().await.unwrap();
    // [100, 110), [110, 120), [120, 125).
    assert_eq!(created.units, 3);

    let keys = app.keys().await;
    let manifest = created
        .manifest
        .open(&keys, app.clock.now_ms())
        .expect("the manifest opens with the published keys");
    assert_eq!(manifest.job_id, created.job_id);
    assert_eq!(manifest.module_sha256, module_sha256());
    assert_eq!(manifest.module_bytes, reverse_module().len() as u64);
    assert_eq!(manifest.title, request.title);
    assert_eq!(manifest.description, request.description);
    assert_eq!(manifest.policy, test_policy());
    assert_eq!(manifest.issued_ms, app.clock.now_ms());
    assert!(manifest.expires_ms > app.clock.now_ms());
    assert_eq!(created.manifest.key_id, keys.keys[0].key_id);

    // The manifest served later is the very same document.
    assert_eq!(app.manifest(created.job_id).await, created.manifest);

    // The units are the range, in order, and lease under the uploaded module.
    let leases = app.lease(volunteer(1), MAX_UNITS_PER_REQUEST).await.leases;
    let mut inputs: Vec<(u64, Vec<u8>)> = leases
        .iter()
        .map(|lease| {
            assert_eq!(lease.job_id, created.job_id);
            assert_eq!(lease.module_sha256, module_sha256());
            (lease.unit, lease.input.clone())
        })
        .collect();
    inputs.sort();
    assert_eq!(
        inputs,
        vec![
            (0, range_input(100, 110)),
            (1, range_input(110, 120)),
            (2, range_input(120, 125)),
        ]
    );
}

#[tokio::test]
async fn a_list_job_leases_its_inputs_as_given() {
    let app = app_with_module().await;
    let mut request = job_request(1);
    let list = vec![b"abc".to_vec(), Vec::new(), vec![0xff; 300]];
    request.inputs = Inputs::List(list.clone());
    let response = app.create_job_response(&request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let leases = app.lease(volunteer(1), 8).await.leases;
    let mut inputs: Vec<(u64, Vec<u8>)> = leases
        .into_iter()
        .map(|lease| (lease.unit, lease.input))
        .collect();
    inputs.sort();
    assert_eq!(
        inputs,
        list.into_iter()
            .enumerate()
            .map(|(index, input)| (index as u64, input))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_job_on_a_module_never_uploaded_is_refused() {
    let app = spawn_app(0).await;
    let response = app.create_job_response(&job_request(3)).await;
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnknownModule,
    )
    .await;
    assert!(
        body.error.message.contains(&module_sha256().to_string()),
        "{body:?}"
    );
    let mut other = job_request(3);
    other.module_sha256 = Sha256Digest::of(b"another module");
    app.upload_test_module().await;
    let response = app.create_job_response(&other).await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnknownModule,
    )
    .await;
    assert!(app.stats().await.jobs.is_empty());
}

#[tokio::test]
async fn out_of_range_values_are_refused_naming_the_field() {
    let app = app_with_module().await;
    type Edit = Box<dyn Fn(&mut CreateJob)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("title", Box::new(|job| job.title = String::new())),
        ("title", Box::new(|job| job.title = "   ".into())),
        ("title", Box::new(|job| job.title = "t".repeat(201))),
        (
            "description",
            Box::new(|job| job.description = "d".repeat(10_001)),
        ),
        (
            "policy.lease_ttl_ms",
            Box::new(|job| job.policy.lease_ttl_ms = 999),
        ),
        (
            "policy.unit_budget_ms",
            Box::new(|job| job.policy.unit_budget_ms = 99),
        ),
        (
            "policy.unit_budget_ms must not exceed",
            Box::new(|job| {
                job.policy.lease_ttl_ms = 1_000;
                job.policy.unit_budget_ms = 1_001;
            }),
        ),
        (
            "policy.min_quorum",
            Box::new(|job| job.policy.min_quorum = 0),
        ),
        (
            "policy.min_quorum",
            Box::new(|job| job.policy.initial_replicas = 17),
        ),
        (
            "policy.max_total_results",
            Box::new(|job| job.policy.max_total_results = 65),
        ),
        (
            "inputs.list",
            Box::new(|job| job.inputs = Inputs::List(vec![])),
        ),
        (
            "inputs.list[1]",
            Box::new(|job| {
                job.inputs = Inputs::List(vec![vec![1], vec![0; MAX_INPUT_BYTES + 1]]);
            }),
        ),
        (
            "inputs.range",
            Box::new(|job| {
                job.inputs = Inputs::Range {
                    start: 0,
                    end: 10,
                    step: 0,
                };
            }),
        ),
        (
            "inputs.range",
            Box::new(|job| {
                job.inputs = Inputs::Range {
                    start: 10,
                    end: 10,
                    step: 1,
                };
            }),
        ),
        (
            "inputs.range",
            Box::new(|job| {
                job.inputs = Inputs::Range {
                    start: 11,
                    end: 10,
                    step: 1,
                };
            }),
        ),
        (
            "inputs.range",
            Box::new(|job| {
                job.inputs = Inputs::Range {
                    start: 0,
                    end: MAX_UNITS_PER_JOB + 1,
                    step: 1,
                };
            }),
        ),
        (
            "inputs.range",
            Box::new(|job| {
                job.inputs = Inputs::Range {
                    start: 0,
                    end: u64::MAX,
                    step: 1,
                };
            }),
        ),
        ("expires_in_ms", Box::new(|job| job.expires_in_ms = Some(0))),
        (
            "expires_in_ms",
            Box::new(|job| job.expires_in_ms = Some(u64::MAX)),
        ),
    ];
    for (field, edit) in cases {
        let mut request = job_request(4);
        edit(&mut request);
        let response = app.create_job_response(&request).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
        assert!(
            body.error.message.contains(field),
            "{field:?} not named in {:?}",
            body.error.message
        );
    }
    assert!(app.stats().await.jobs.is_empty(), "a refused job was made");
    // The limits themselves are allowed.
    let mut request = job_request(MAX_UNITS_PER_REQUEST.into());
    request.title = "t".repeat(200);
    request.policy.lease_ttl_ms = 1_000;
    request.policy.unit_budget_ms = 1_000;
    request.inputs = Inputs::List(vec![vec![0; MAX_INPUT_BYTES]]);
    let response = app.create_job_response(&request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_job_requests_get_json_client_errors() {
    let app = app_with_module().await;
    let valid = serde_json::to_value(job_request(2)).unwrap();
    let mut unknown_field = valid.clone();
    unknown_field["admin"] = true.into();
    let mut unknown_input_kind = valid.clone();
    unknown_input_kind["inputs"] = serde_json::json!({ "glob": "*" });
    let mut bad_base64 = valid.clone();
    bad_base64["inputs"] = serde_json::json!({ "list": ["***"] });
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("module_sha256");
    let mut bad_digest = valid.clone();
    bad_digest["module_sha256"] = "abc".into();
    let mut negative = valid.clone();
    negative["policy"]["lease_ttl_ms"] = (-1).into();
    // What is wrong, the content type, the body, and the answer it must get.
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        StatusCode,
        ErrorCode,
    );
    let cases: Vec<Case> = vec![
        (
            "not json",
            Some("application/json"),
            b"{".to_vec(),
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
        ),
        (
            "no content type",
            None,
            valid.to_string().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
        ),
    ]
    .into_iter()
    .chain(
        [
            ("unknown field", unknown_field),
            ("unknown input kind", unknown_input_kind),
            ("bad base64", bad_base64),
            ("missing field", missing),
            ("bad digest", bad_digest),
            ("negative number", negative),
            ("an array", serde_json::json!([])),
        ]
        .into_iter()
        .map(|(what, value)| {
            (
                what,
                Some("application/json"),
                value.to_string().into_bytes(),
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::MalformedRequest,
            )
        }),
    )
    .collect();
    for (what, content_type, body, status, code) in cases {
        let mut request = app
            .client
            .post(app.url("/api/v1/jobs"))
            .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let error = expect_error(response, status, code).await;
        assert!(!error.error.message.is_empty(), "{what}");
    }
    assert!(app.stats().await.jobs.is_empty());
}

#[tokio::test]
async fn manifests_of_unknown_or_malformed_job_ids_are_refused() {
    let app = spawn_app(1).await;
    let response = app.manifest_response("999").await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownJob).await;
    for id in ["abc", "-1", "1.5", "18446744073709551616", "%20"] {
        let response = app.manifest_response(id).await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
    // The real one is still there.
    app.manifest(app.job_id()).await;
}

#[tokio::test]
async fn a_tampered_manifest_does_not_open() {
    let app = spawn_app(1).await;
    let keys = app.keys().await;
    let now = app.clock.now_ms();
    let signed = app.manifest(app.job_id()).await;
    signed.open(&keys, now).unwrap();

    let mut tampered = signed.clone();
    tampered.manifest = tampered
        .manifest
        .replace("Reverse some bytes", "Reverse some bytez");
    assert_ne!(tampered.manifest, signed.manifest);
    assert_eq!(tampered.open(&keys, now), Err(ManifestError::BadSignature));

    // One flipped bit anywhere in the text is enough.
    let mut bytes = signed.manifest.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let mut flipped = signed.clone();
    flipped.manifest = String::from_utf8(bytes).unwrap();
    assert_eq!(flipped.open(&keys, now), Err(ManifestError::BadSignature));

    // So is a signature byte.
    let mut signature = serde_json::to_value(signed.signature).unwrap();
    let text = signature.as_str().unwrap().to_owned();
    let replaced = if text.starts_with('0') { "1" } else { "0" };
    signature = format!("{replaced}{}", &text[1..]).into();
    let mut resigned = signed.clone();
    resigned.signature = serde_json::from_value(signature).unwrap();
    assert_eq!(resigned.open(&keys, now), Err(ManifestError::BadSignature));
}
