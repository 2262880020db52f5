//! Every response carries the Content-Security-Policy and `nosniff`: successes, every kind
//! of error, and paths no route claims.

use cyclepool_shared::protocol::SubmitStatus;
use reqwest::Method;

use crate::helpers::{LEASE_TTL_MS, assert_security_headers, compute, spawn_app, volunteer};

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app(4).await;
    let alice = volunteer(1);
    let mut seen = Vec::new();

    // Successes.
    for path in ["/api/v1/health", "/api/v1/stats"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        seen.push((
            format!("GET {path}"),
            response.status(),
            response.headers().clone(),
        ));
    }
    let response = app.lease_response(alice, 1).await;
    seen.push((
        "lease".into(),
        response.status(),
        response.headers().clone(),
    ));
    let lease = app.lease_one(alice).await;
    let response = app.submit_response(&compute(alice, &lease)).await;
    seen.push((
        "submit".into(),
        response.status(),
        response.headers().clone(),
    ));

    // Errors of every kind: from the handlers, the extractor, the router and the body limit.
    let old = app.lease_one(alice).await;
    app.clock.advance(LEASE_TTL_MS + 1);
    let response = app.submit_response(&compute(alice, &old)).await;
    seen.push((
        "expired".into(),
        response.status(),
        response.headers().clone(),
    ));
    let raw: [(Method, &str, Option<&str>, Vec<u8>); 7] = [
        (
            Method::POST,
            "/api/v1/lease",
            Some("application/json"),
            b"{".to_vec(),
        ),
        (
            Method::POST,
            "/api/v1/lease",
            Some("application/json"),
            b"[]".to_vec(),
        ),
        (Method::POST, "/api/v1/lease", None, b"{}".to_vec()),
        (
            Method::POST,
            "/api/v1/lease",
            Some("application/json"),
            vec![b' '; 64 << 10],
        ),
        (Method::DELETE, "/api/v1/stats", None, Vec::new()),
        (Method::GET, "/api/v1/missing", None, Vec::new()),
        (Method::GET, "/somewhere/else", None, Vec::new()),
    ];
    for (method, path, content_type, body) in raw {
        let label = format!("{method} {path}");
        let response = app.request_raw(method, path, content_type, body).await;
        seen.push((label, response.status(), response.headers().clone()));
    }

    let statuses: Vec<u16> = seen.iter().map(|(_, status, _)| status.as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 410, 400, 422, 415, 413, 405, 404, 404],
        "{seen:?}"
    );
    for (label, status, headers) in &seen {
        assert_eq!(
            headers.get("content-type").unwrap(),
            "application/json",
            "{label}"
        );
        assert_security_headers(headers);
        assert!(
            headers.contains_key("referrer-policy"),
            "{label} ({status}) lacks referrer-policy"
        );
    }
    assert_eq!(
        app.submit(&compute(alice, &lease)).await,
        SubmitStatus::Duplicate
    );
}
