//! Every response carries the Content-Security-Policy and `nosniff`: successes, every kind
//! of error, and paths no route claims, static files sent precompressed included.

use cyclepool_server::minify::minify_js;
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

/// The pages' own scripts go minified (`minify_js`: the same lines, no comments) and
/// compressed at the best levels, brotli or gzip as accepted; other pages compressed only.
/// An edited file is sent as it is now, a range or a HEAD as the whole file's GET.
#[tokio::test]
async fn the_pages_go_minified_and_compressed_at_the_best_levels() {
    use std::io::Read as _;

    let pages = tempfile::tempdir().expect("creating a static directory");
    let static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
    let app_js = std::fs::read_to_string(static_dir.join("app.js")).expect("reading app.js");
    let index = std::fs::read(static_dir.join("index.html")).expect("reading index.html");
    std::fs::write(pages.path().join("app.js"), &app_js).unwrap();
    std::fs::write(pages.path().join("index.html"), &index).unwrap();
    std::fs::write(pages.path().join("worker.js"), b"placeholder").unwrap();
    std::fs::create_dir_all(pages.path().join("pkg")).unwrap();
    std::fs::write(pages.path().join(WEB_CLIENT_WASM), b"\0asm").unwrap();
    let app = spawn_app_with_pages(pages.path()).await;
    let minified = minify_js(&app_js);
    assert!(
        minified.len() < app_js.len() * 3 / 4,
        "the minifier kept too much"
    );
    assert_eq!(minified.lines().count(), app_js.lines().count());

    let get = |path: &'static str, accepted: &'static str| {
        let request = app
            .client
            .get(app.url(path))
            .header("accept-encoding", accepted);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path} accepting {accepted}");
            let headers = response.headers().clone();
            assert_security_headers(&headers);
            (headers, response.bytes().await.unwrap())
        }
    };
    let header = |headers: &reqwest::header::HeaderMap, name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let unbrotli = |sent: &[u8]| {
        let mut decompressed = Vec::new();
        brotli::BrotliDecompress(&mut &sent[..], &mut decompressed).expect("valid brotli");
        decompressed
    };

    // What Chromium sends. The first answer is compressed quickly, the later ones at brotli's
    // best once the server has made that version.
    let (headers, first) = get("/app.js", "gzip, deflate, br, zstd").await;
    assert_eq!(header(&headers, "content-encoding").as_deref(), Some("br"));
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("text/javascript")
    );
    assert_eq!(header(&headers, "vary").as_deref(), Some("accept-encoding"));
    assert_eq!(
        header(&headers, "content-length"),
        Some(first.len().to_string())
    );
    assert_eq!(unbrotli(&first), minified.as_bytes());
    let mut sent = first.clone();
    for _ in 0..100 {
        sent = get("/app.js", "gzip, deflate, br, zstd").await.1;
        if sent.len() < first.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(sent.len() < first.len(), "the best version never came");
    assert_eq!(unbrotli(&sent), minified.as_bytes());
    // Smaller than the source at brotli's best: the minifying is worth its while.
    let mut source_at_best = Vec::new();
    let best = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut app_js.as_bytes(), &mut source_at_best, &best).unwrap();
    assert!(
        sent.len() * 10 < source_at_best.len() * 9,
        "{} bytes sent, {} for the source at quality 11",
        sent.len(),
        source_at_best.len()
    );

    let (headers, sent) = get("/app.js", "gzip;q=1, br;q=0").await;
    assert_eq!(
        header(&headers, "content-encoding").as_deref(),
        Some("gzip")
    );
    let mut decompressed = String::new();
    flate2::read::GzDecoder::new(&sent[..])
        .read_to_string(&mut decompressed)
        .expect("valid gzip");
    assert_eq!(decompressed, minified);

    let (headers, sent) = get("/app.js", "identity").await;
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(&sent[..], minified.as_bytes());

    // A page is compressed, not rewritten.
    let (headers, sent) = get("/index.html", "br").await;
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("text/html")
    );
    assert_eq!(unbrotli(&sent), index);

    // Other spellings of the path reach the same file, sent as it is: only the plain path has
    // prepared versions, so no one can make the server prepare a file again and again. (A
    // client removes `.` segments itself; `is_plain_path`'s unit test covers them.)
    for spelling in ["//app.js", "/%61pp.js"] {
        let response = app
            .client
            .get(app.url(spelling))
            .header("accept-encoding", "identity")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{spelling}");
        let sent = response.text().await.unwrap();
        assert!(sent == app_js, "{spelling}: not the file as it is");
    }

    // A range is answered with the whole file, a HEAD with the GET's length.
    let response = app
        .client
        .get(app.url("/app.js"))
        .header("accept-encoding", "identity")
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], minified.as_bytes());
    let response = app
        .client
        .head(app.url("/app.js"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "content-length"),
        Some(minified.len().to_string())
    );

    // An edited file is sent as it is now: another length, or the same length a second later.
    let edited = format!("{app_js}\n// edited\nexport const EDITED = 1;\n");
    std::fs::write(pages.path().join("app.js"), &edited).unwrap();
    let (_, sent) = get("/app.js", "br").await;
    assert_eq!(unbrotli(&sent), minify_js(&edited).as_bytes());
    let same_length = edited.replace("EDITED = 1", "EDITED = 2");
    let file = std::fs::File::options()
        .write(true)
        .truncate(true)
        .open(pages.path().join("app.js"))
        .unwrap();
    std::io::Write::write_all(&mut &file, same_length.as_bytes()).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(file);
    let (_, sent) = get("/app.js", "br").await;
    assert_eq!(unbrotli(&sent), minify_js(&same_length).as_bytes());
}
