//! Every response carries the Content-Security-Policy and `nosniff`: successes, every kind
//! of error, and paths no route claims, static files sent precompressed included.

use cyclepool_server::web::WEB_CLIENT_WASM;
use cyclepool_shared::protocol::SubmitStatus;
use reqwest::Method;

use crate::helpers::{
    LEASE_TTL_MS, assert_security_headers, compute, spawn_app, spawn_app_with_pages, volunteer,
};

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

/// The web client's files go precompressed (`cargo xtask web` writes `.br` and `.gz` beside
/// them) to a browser that accepts it, with the file's type and the security headers; to one
/// that accepts neither, as they are.
#[tokio::test]
async fn the_web_client_goes_precompressed_where_accepted() {
    let pages = tempfile::tempdir().expect("creating a static directory");
    let pkg = pages.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("creating pkg/");
    std::fs::write(pages.path().join("index.html"), b"placeholder").unwrap();
    std::fs::write(pages.path().join("worker.js"), b"placeholder").unwrap();
    let wasm = pkg.join("cyclepool_web_client_bg.wasm");
    std::fs::write(&wasm, b"\0asm the module as built").unwrap();
    std::fs::write(wasm.with_extension("wasm.br"), b"the module, brotli").unwrap();
    std::fs::write(wasm.with_extension("wasm.gz"), b"the module, gzip").unwrap();
    let app = spawn_app_with_pages(pages.path()).await;

    for (accepted, encoding, body) in [
        // What Chromium sends, on loopback HTTP too.
        (
            "gzip, deflate, br, zstd",
            Some("br"),
            &b"the module, brotli"[..],
        ),
        ("gzip", Some("gzip"), b"the module, gzip"),
        ("identity", None, b"\0asm the module as built"),
    ] {
        let response = app
            .client
            .get(app.url("/pkg/cyclepool_web_client_bg.wasm"))
            .header("accept-encoding", accepted)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "accepting {accepted}");
        let headers = response.headers().clone();
        assert_security_headers(&headers);
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        assert_eq!(header("content-type"), Some("application/wasm"));
        assert_eq!(header("content-encoding"), encoding, "accepting {accepted}");
        assert_eq!(
            &response.bytes().await.unwrap()[..],
            body,
            "accepting {accepted}"
        );
    }
}

/// The pages' own files are compressed as they are sent, at a better brotli quality than the
/// default, and decompress to the file.
#[tokio::test]
async fn the_pages_go_compressed_better_than_by_default() {
    let pages = tempfile::tempdir().expect("creating a static directory");
    let static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
    let app_js = std::fs::read(static_dir.join("app.js")).expect("reading static/app.js");
    std::fs::write(pages.path().join("app.js"), &app_js).unwrap();
    std::fs::write(pages.path().join("index.html"), b"placeholder").unwrap();
    std::fs::write(pages.path().join("worker.js"), b"placeholder").unwrap();
    std::fs::create_dir_all(pages.path().join("pkg")).unwrap();
    std::fs::write(pages.path().join(WEB_CLIENT_WASM), b"\0asm").unwrap();
    let app = spawn_app_with_pages(pages.path()).await;

    let response = app
        .client
        .get(app.url("/app.js"))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_security_headers(&headers);
    assert_eq!(headers.get("content-encoding").unwrap(), "br");
    assert_eq!(headers.get("content-type").unwrap(), "text/javascript");
    let sent = response.bytes().await.unwrap();
    let mut decompressed = Vec::new();
    brotli::BrotliDecompress(&mut &sent[..], &mut decompressed).expect("valid brotli");
    assert_eq!(decompressed, app_js);
    // Quality 4 is what compressing on the fly does by default.
    let mut at_default = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 4,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &app_js[..], &mut at_default, &params).unwrap();
    assert!(
        sent.len() < at_default.len(),
        "{} bytes sent, {} at quality 4",
        sent.len(),
        at_default.len()
    );
}
