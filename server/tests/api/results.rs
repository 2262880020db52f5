//! `GET /api/v1/jobs/{id}/results`: the distributor downloads every accepted result as JSON
//! lines, in unit order, with each unit's input; only with the admin token.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cyclepool_shared::{ErrorCode, Sha256Digest};
use reqwest::StatusCode;

use crate::helpers::{compute, expect_error, spawn_app, volunteer};

#[tokio::test]
async fn accepted_results_download_as_json_lines_in_unit_order() {
    let app = spawn_app(5).await;
    let worker = volunteer(1);
    // Complete units 0..5 except one, out of order: the download lists only accepted ones.
    let mut leases = app.lease(worker, 5).await.leases;
    leases.reverse();
    let skipped = leases.remove(2).unit;
    let mut expected = Vec::new();
    for lease in &leases {
        let submission = compute(worker, lease);
        app.submit(&submission).await;
        expected.push((lease.unit, lease.input.clone(), submission.output));
    }
    expected.sort();

    // `results` checks the status and the `application/x-ndjson` content type.
    let lines = app.results(app.job_id().0).await;
    assert_eq!(lines.len(), 4);
    for (line, (unit, input, output)) in lines.iter().zip(&expected) {
        assert_eq!(line["unit"].as_u64(), Some(*unit));
        assert_ne!(*unit, skipped);
        assert_eq!(
            STANDARD.decode(line["input"].as_str().unwrap()).unwrap(),
            *input
        );
        assert_eq!(
            STANDARD.decode(line["output"].as_str().unwrap()).unwrap(),
            *output
        );
        assert_eq!(
            line["output_sha256"].as_str().unwrap(),
            Sha256Digest::of(output).to_string()
        );
        assert_eq!(line["volunteer"].as_str().unwrap(), worker.to_string());
    }

    // Without the token: 401, and nothing leaks.
    let url = app.url(&format!("/api/v1/jobs/{}/results", app.job_id()));
    let response = app.client.get(&url).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    // An unknown job, and a malformed id.
    for (job, status, code) in [
        ("999", StatusCode::NOT_FOUND, ErrorCode::UnknownJob),
        ("x", StatusCode::BAD_REQUEST, ErrorCode::InvalidValue),
    ] {
        let response = app.results_response(job).await;
        expect_error(response, status, code).await;
    }
}
