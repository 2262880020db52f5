//! Load shedding: past its limit of requests in flight the portal answers 503 with
//! `Retry-After` and the JSON error at once (it neither queues without bound nor times out),
//! keeps answering its health check, and serves normally again as soon as load falls.

use std::time::Duration;

use cyclepool_shared::ErrorCode;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{expect_error, spawn_app_with};

/// The limit of this test's server: small, so that a handful of slow clients reach it.
const MAX_IN_FLIGHT: usize = 3;

/// A client that sends a result request's headers and then nothing: the server holds its
/// place while it waits for the body.
async fn slow_client(app: &crate::helpers::TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.address).await.expect("connecting");
    let head = format!(
        "POST /api/v1/results HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{",
        app.address
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("sending the head");
    stream
}

#[tokio::test]
async fn past_its_limit_the_portal_sheds_load_with_503_and_recovers() {
    let app = spawn_app_with(|config| config.max_in_flight = MAX_IN_FLIGHT).await;
    let mut slow = Vec::new();
    for _ in 0..MAX_IN_FLIGHT {
        slow.push(slow_client(&app).await);
    }
    // The slow clients hold every place (their requests reached the handler and wait there).
    let mut shed = None;
    for _ in 0..100 {
        let response = app
            .client
            .get(app.url("/api/v1/stats"))
            .send()
            .await
            .expect("asking for stats");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = shed.expect("a request past the limit is shed");
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    let body = expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
    )
    .await;
    assert!(
        body.error.message.contains("capacity"),
        "{}",
        body.error.message
    );
    // Volunteer endpoints are shed alike, at once (not after a timeout).
    let started = std::time::Instant::now();
    let response = app
        .post_raw("/api/v1/lease", Some("application/json"), "{}")
        .await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    // The health check still answers.
    let health = app
        .client
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);

    // Load falls (the slow clients go away): the portal serves again.
    drop(slow);
    let mut recovered = false;
    for _ in 0..100 {
        let response = app
            .client
            .get(app.url("/api/v1/stats"))
            .send()
            .await
            .expect("asking for stats");
        if response.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recovered, "the portal serves again once load falls");
    let lease = app.lease(crate::helpers::volunteer(1), 1).await;
    assert!(lease.leases.is_empty(), "no job, so no work, but an answer");
}
