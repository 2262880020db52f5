//! Slow and idle clients cannot hold the portal: a connection that sends nothing, a head sent
//! a byte at a time, a body that never finishes, and more connections than the cap allows.
//! The limits here are shortened (`--header-timeout-ms`, `--request-timeout-ms`,
//! `--max-connections`); the defaults are 10 s, 30 s and 8,192.

use std::time::{Duration, Instant};

use cyclepool_shared::{ErrorBody, ErrorCode};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app_with};

const HEADER_TIMEOUT_MS: u64 = 300;

/// Reads until the server closes the connection (or 5 s pass); what it sent and when it
/// closed, measured from `since`.
async fn read_until_closed(stream: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = since + Duration::from_secs(5);
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buffer)).await;
        match read {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!(
                "the server kept the connection open for 5 s; received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        since.elapsed(),
    )
}

/// Asserts that the portal answers a new client as usual.
async fn assert_still_answers(app: &TestApp) {
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/stats"))
        .send()
        .await
        .expect("asking for stats");
    assert_eq!(response.status(), StatusCode::OK);
}

async fn app_with_short_timeouts() -> TestApp {
    spawn_app_with(|config| {
        config.header_timeout_ms = HEADER_TIMEOUT_MS;
        config.request_timeout_ms = 500;
    })
    .await
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = app_with_short_timeouts().await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(app.address).await.expect("connecting");
    let (received, after) = read_until_closed(&mut idle, started).await;
    assert!(received.is_empty(), "{received}");
    assert!(
        after >= Duration::from_millis(HEADER_TIMEOUT_MS),
        "closed too early: {after:?}"
    );
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let app = app_with_short_timeouts().await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(app.address).await.expect("connecting");
    let head = format!(
        "GET /api/v1/stats HTTP/1.1\r\nHost: {}\r\nX-Padding: {}\r\n\r\n",
        app.address,
        "a".repeat(200)
    );
    // One byte every 20 ms: the whole head would take about 5 s.
    for byte in head.bytes() {
        if slow.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(3) {
            panic!("the server still accepted header bytes after 3 s");
        }
    }
    let (received, after) = read_until_closed(&mut slow, started).await;
    assert!(
        !received.contains("200 OK"),
        "a trickled head was answered: {received}"
    );
    assert!(after < Duration::from_secs(3), "cut off after {after:?}");
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_with_a_json_error() {
    let app = app_with_short_timeouts().await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(app.address).await.expect("connecting");
    let head = format!(
        "POST /api/v1/results HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"protocol\":",
        app.address
    );
    slow.write_all(head.as_bytes()).await.expect("sending");
    let (received, after) = read_until_closed(&mut slow, started).await;
    assert!(
        received.starts_with("HTTP/1.1 408"),
        "expected 408, got {received}"
    );
    // The body may come in chunks: the JSON is between its first `{` and its last `}`.
    let body = received
        .find('{')
        .zip(received.rfind('}'))
        .map(|(start, end)| &received[start..=end])
        .unwrap_or_else(|| panic!("no JSON body in {received}"));
    let error: ErrorBody = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(error.error.code, ErrorCode::RequestTimeout);
    assert!(after < Duration::from_secs(3), "answered after {after:?}");
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_a_place_frees() {
    let app = spawn_app_with(|config| config.max_connections = 2).await;
    // Two connections hold both places (idle within the header timeout of 10 s).
    let first = TcpStream::connect(app.address).await.expect("connecting");
    let second = TcpStream::connect(app.address).await.expect("connecting");
    // Let the server accept them before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = reqwest::Client::new();
    let waiting = fresh
        .get(app.url("/api/v1/stats"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        waiting.is_err(),
        "a third connection was served past the cap of two: {waiting:?}"
    );
    drop(first);
    drop(second);
    let response = fresh
        .get(app.url("/api/v1/stats"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("served once a place is free");
    assert_eq!(response.status(), StatusCode::OK);
}
