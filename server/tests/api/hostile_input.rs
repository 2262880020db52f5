//! Malformed and hostile requests on every endpoint: each gets a JSON 4xx with the shared
//! error body and the security headers, never a 5xx, and the server keeps serving.

use cyclepool_shared::{ErrorBody, ErrorCode};
use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, assert_json_with_security_headers, spawn_app};

pub(crate) const JSON: Option<&str> = Some("application/json");
pub(crate) const VOLUNTEER: &str =
    "0101010101010101010101010101010101010101010101010101010101010101";
const HEX_16: &str = "42424242424242424242424242424242";
/// A well-formed signature (64 bytes) that no key made.
const SIGNATURE: &str = "42424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242";
/// The SHA-256 of the empty string.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// One hostile request and the error it must get.
pub(crate) struct Case {
    what: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: ErrorCode,
}

pub(crate) fn post(
    what: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
    code: ErrorCode,
) -> Case {
    Case {
        what,
        method: Method::POST,
        path,
        content_type,
        body: body.into(),
        status,
        code,
    }
}

/// Sends every case and checks its answer, then checks that the server still works.
pub(crate) async fn run_cases(app: &TestApp, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    for case in cases {
        let response = app
            .request_raw(case.method.clone(), case.path, case.content_type, case.body)
            .await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("reading the body");
        let text = String::from_utf8_lossy(&bytes);
        let label = format!("{} {} ({})", case.method, case.path, case.what);
        assert!(
            !status.is_server_error(),
            "{label}: server error {status}: {text}"
        );
        assert_eq!(status, case.status, "{label}: body {text}");
        assert_json_with_security_headers(&headers);
        let body: ErrorBody = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("{label}: not an ErrorBody ({err}): {text}"));
        assert_eq!(body.error.code, case.code, "{label}: body {text}");
        assert!(!body.error.message.is_empty(), "{label}: empty message");
    }
    app.assert_still_serving().await;
}

fn lease_body(fields: &str) -> String {
    format!(r#"{{"protocol":1,"volunteer":"{VOLUNTEER}",{fields}}}"#)
}

fn result_body(lease_id: &str, nonce: &str, output: &str, sha256: &str) -> String {
    format!(
        r#"{{"protocol":1,"volunteer":"{VOLUNTEER}","lease_id":"{lease_id}","nonce":"{nonce}","output":{output},"output_sha256":"{sha256}","signature":"{SIGNATURE}"}}"#
    )
}

/// A result body that is well-formed but for a lease that does not exist, with `extra`
/// spliced in before the closing brace.
fn result_with(extra: &str) -> String {
    let body = result_body(HEX_16, HEX_16, r#""""#, EMPTY_SHA256);
    format!("{}{extra}}}", &body[..body.len() - 1])
}

/// Cases that mean the same on every volunteer POST endpoint: not JSON, not the right JSON, not JSON
/// at all by Content-Type.
pub(crate) fn common_cases(path: &'static str, valid: &str) -> Vec<Case> {
    use ErrorCode::{MalformedRequest, UnsupportedMediaType};
    let bad = StatusCode::BAD_REQUEST;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let truncated = &valid[..valid.len() / 2];
    vec![
        // Not JSON.
        post("empty body", path, JSON, "", bad, MalformedRequest),
        post("plain text", path, JSON, "hello", bad, MalformedRequest),
        post("truncated", path, JSON, truncated, bad, MalformedRequest),
        post("only an open brace", path, JSON, "{", bad, MalformedRequest),
        post(
            "single quotes",
            path,
            JSON,
            "{'protocol':1}",
            bad,
            MalformedRequest,
        ),
        post(
            "trailing comma",
            path,
            JSON,
            r#"{"protocol":1,}"#,
            bad,
            MalformedRequest,
        ),
        post(
            "trailing garbage",
            path,
            JSON,
            format!("{valid} x"),
            bad,
            MalformedRequest,
        ),
        post(
            "two documents",
            path,
            JSON,
            format!("{valid}{valid}"),
            bad,
            MalformedRequest,
        ),
        post(
            "raw invalid utf-8",
            path,
            JSON,
            b"\xff\xfe\xfd".to_vec(),
            bad,
            MalformedRequest,
        ),
        post(
            "invalid utf-8 in a string",
            path,
            JSON,
            b"{\"protocol\":1,\"volunteer\":\"\xc3\x28\xa0\xa1\"}".to_vec(),
            bad,
            MalformedRequest,
        ),
        post(
            "lone surrogate escape",
            path,
            JSON,
            r#"{"protocol":1,"volunteer":"\ud800"}"#,
            bad,
            MalformedRequest,
        ),
        post(
            "nul bytes",
            path,
            JSON,
            vec![0u8; 64],
            bad,
            MalformedRequest,
        ),
        post(
            "number too large for json",
            path,
            JSON,
            r#"{"protocol":1e400}"#,
            bad,
            MalformedRequest,
        ),
        // JSON, but not the request's shape.
        post(
            "an array",
            path,
            JSON,
            "[]",
            unprocessable,
            MalformedRequest,
        ),
        post(
            "an array of values",
            path,
            JSON,
            r#"[1,"x",null]"#,
            unprocessable,
            MalformedRequest,
        ),
        post(
            "a string",
            path,
            JSON,
            r#""lease""#,
            unprocessable,
            MalformedRequest,
        ),
        post("null", path, JSON, "null", unprocessable, MalformedRequest),
        post(
            "a number",
            path,
            JSON,
            "42",
            unprocessable,
            MalformedRequest,
        ),
        post(
            "a boolean",
            path,
            JSON,
            "true",
            unprocessable,
            MalformedRequest,
        ),
        post(
            "an empty object",
            path,
            JSON,
            "{}",
            unprocessable,
            MalformedRequest,
        ),
        post(
            "only a protocol",
            path,
            JSON,
            r#"{"protocol":1}"#,
            unprocessable,
            MalformedRequest,
        ),
        post(
            "protocol as a string",
            path,
            JSON,
            valid.replacen(r#""protocol":1"#, r#""protocol":"1""#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "protocol beyond u64",
            path,
            JSON,
            valid.replacen(r#""protocol":1"#, r#""protocol":99999999999999999999"#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "protocol beyond u32",
            path,
            JSON,
            valid.replacen(r#""protocol":1"#, r#""protocol":4294967297"#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "negative protocol",
            path,
            JSON,
            valid.replacen(r#""protocol":1"#, r#""protocol":-1"#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "fractional protocol",
            path,
            JSON,
            valid.replacen(r#""protocol":1"#, r#""protocol":1.5"#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "unknown field",
            path,
            JSON,
            valid.replacen('{', r#"{"admin":true,"#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "duplicate field",
            path,
            JSON,
            valid.replacen('{', r#"{"protocol":1,"#, 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "volunteer too short",
            path,
            JSON,
            valid.replacen(VOLUNTEER, "0101", 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "volunteer not hex",
            path,
            JSON,
            valid.replacen(VOLUNTEER, &format!("zz{}", &VOLUNTEER[2..]), 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "volunteer with a 0x prefix",
            path,
            JSON,
            valid.replacen(VOLUNTEER, &format!("0x{}", &VOLUNTEER[2..]), 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "volunteer with multi-byte characters",
            path,
            JSON,
            // As many bytes as the id has hex digits, fewer characters.
            valid.replacen(VOLUNTEER, &format!("éé{}", &VOLUNTEER[4..]), 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "volunteer as a number",
            path,
            JSON,
            valid.replacen(&format!(r#""{VOLUNTEER}""#), "12345", 1),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "volunteer null",
            path,
            JSON,
            valid.replacen(&format!(r#""{VOLUNTEER}""#), "null", 1),
            unprocessable,
            MalformedRequest,
        ),
        // Not JSON by Content-Type, although the body is fine.
        post(
            "no content type",
            path,
            None,
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
        post(
            "text/plain",
            path,
            Some("text/plain"),
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
        post(
            "text/json",
            path,
            Some("text/json"),
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
        post(
            "a form",
            path,
            Some("application/x-www-form-urlencoded"),
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
        post(
            "multipart",
            path,
            Some("multipart/form-data; boundary=x"),
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
        post(
            "a near miss",
            path,
            Some("application/jsonx"),
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
        post(
            "garbage",
            path,
            Some(";;;/"),
            valid,
            unsupported,
            UnsupportedMediaType,
        ),
    ]
}

#[tokio::test]
async fn hostile_lease_requests_get_json_client_errors() {
    use ErrorCode::{InvalidValue, MalformedRequest, PayloadTooLarge};
    let app = spawn_app(4).await;
    let path = "/api/v1/lease";
    let valid = lease_body(r#""max_units":1"#);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let mut cases = common_cases(path, &valid);
    cases.extend([
        post(
            "max_units beyond f64",
            path,
            JSON,
            lease_body(r#""max_units":1e400"#),
            StatusCode::BAD_REQUEST,
            MalformedRequest,
        ),
        post(
            "max_units as a float",
            path,
            JSON,
            lease_body(r#""max_units":1e3"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "negative max_units",
            path,
            JSON,
            lease_body(r#""max_units":-1"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "max_units beyond u32",
            path,
            JSON,
            lease_body(r#""max_units":4294967296"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "max_units as a string",
            path,
            JSON,
            lease_body(r#""max_units":"64""#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "max_units null",
            path,
            JSON,
            lease_body(r#""max_units":null"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "max_units zero",
            path,
            JSON,
            lease_body(r#""max_units":0"#),
            StatusCode::BAD_REQUEST,
            InvalidValue,
        ),
        post(
            "work_ms zero",
            path,
            JSON,
            lease_body(r#""max_units":4,"work_ms":0"#),
            StatusCode::BAD_REQUEST,
            InvalidValue,
        ),
        post(
            "work_ms beyond a day",
            path,
            JSON,
            lease_body(r#""max_units":4,"work_ms":86400001"#),
            StatusCode::BAD_REQUEST,
            InvalidValue,
        ),
        post(
            "work_ms beyond u64",
            path,
            JSON,
            lease_body(r#""work_ms":18446744073709551616"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "negative work_ms",
            path,
            JSON,
            lease_body(r#""work_ms":-30000"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "work_ms as a string",
            path,
            JSON,
            lease_body(r#""work_ms":"30 s""#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "an unknown job category",
            path,
            JSON,
            lease_body(r#""exclude_categories":["cryptomining"]"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "more categories than there are",
            path,
            JSON,
            lease_body(&format!(
                r#""exclude_categories":[{}]"#,
                [r#""art""#; 11].join(",")
            )),
            StatusCode::BAD_REQUEST,
            InvalidValue,
        ),
        post(
            "a category that is not a string",
            path,
            JSON,
            lease_body(r#""exclude_categories":[{"art":1}]"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "no volunteer",
            path,
            JSON,
            r#"{"protocol":1,"max_units":1}"#,
            unprocessable,
            MalformedRequest,
        ),
        post(
            "no protocol",
            path,
            JSON,
            format!(r#"{{"volunteer":"{VOLUNTEER}"}}"#),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "a valid request padded past 16 KiB",
            path,
            JSON,
            format!("{valid}{}", " ".repeat(16 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            PayloadTooLarge,
        ),
        post(
            "a megabyte of garbage",
            path,
            JSON,
            vec![b'x'; 1 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
            PayloadTooLarge,
        ),
    ]);
    run_cases(&app, cases).await;
    // Nothing above leased anything.
    assert_eq!(app.progress().await, (0, 1));
}

#[tokio::test]
async fn hostile_result_submissions_get_json_client_errors() {
    use ErrorCode::{MalformedRequest, PayloadTooLarge};
    let app = spawn_app(4).await;
    let path = "/api/v1/results";
    let valid = result_body(HEX_16, HEX_16, r#""""#, EMPTY_SHA256);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let malformed =
        |what, body: String| post(what, path, JSON, body, unprocessable, MalformedRequest);
    let mut cases = common_cases(path, &valid);
    cases.extend([
        malformed("bad base64", result_body(HEX_16, HEX_16, r#""***""#, EMPTY_SHA256)),
        malformed("base64 without padding", result_body(HEX_16, HEX_16, r#""AAE""#, EMPTY_SHA256)),
        malformed("base64 padding inside", result_body(HEX_16, HEX_16, r#""AA=A""#, EMPTY_SHA256)),
        malformed("url-safe base64", result_body(HEX_16, HEX_16, r#""-_-_""#, EMPTY_SHA256)),
        malformed("output as a number", result_body(HEX_16, HEX_16, "7", EMPTY_SHA256)),
        malformed("output as an array", result_body(HEX_16, HEX_16, "[1,2,3]", EMPTY_SHA256)),
        malformed("output null", result_body(HEX_16, HEX_16, "null", EMPTY_SHA256)),
        malformed("lease id not hex", result_body("g0000000000000000000000000000000", HEX_16, r#""""#, EMPTY_SHA256)),
        malformed("lease id too long", result_body("424242424242424242424242424242424", HEX_16, r#""""#, EMPTY_SHA256)),
        malformed("lease id empty", result_body("", HEX_16, r#""""#, EMPTY_SHA256)),
        malformed("nonce too short", result_body(HEX_16, "42", r#""""#, EMPTY_SHA256)),
        malformed("nonce with a space", result_body(HEX_16, " 4242424242424242424242424242424", r#""""#, EMPTY_SHA256)),
        malformed("digest one digit short", result_body(HEX_16, HEX_16, r#""""#, &EMPTY_SHA256[1..])),
        malformed("digest of the wrong size", result_body(HEX_16, HEX_16, r#""""#, HEX_16)),
        malformed("negative compute_ms", result_with(r#","compute_ms":-5"#)),
        malformed("compute_ms beyond u64", result_with(r#","compute_ms":18446744073709551616"#)),
        malformed("compute_ms as a string", result_with(r#","compute_ms":"5""#)),
        malformed("unknown trailing field", result_with(r#","attestation":"00""#)),
        malformed("signature repeated", result_with(&format!(r#","signature":"{SIGNATURE}""#))),
        malformed(
            "no signature",
            valid.replacen(&format!(r#","signature":"{SIGNATURE}""#), "", 1),
        ),
        malformed(
            "no lease id",
            format!(r#"{{"protocol":1,"volunteer":"{VOLUNTEER}","nonce":"{HEX_16}","output":"","output_sha256":"{EMPTY_SHA256}","signature":"{SIGNATURE}"}}"#),
        ),
        malformed(
            "no output",
            format!(r#"{{"protocol":1,"volunteer":"{VOLUNTEER}","lease_id":"{HEX_16}","nonce":"{HEX_16}","output_sha256":"{EMPTY_SHA256}","signature":"{SIGNATURE}"}}"#),
        ),
        // The body most cases above vary is itself well-formed: it gets as far as the
        // signature check, so each variation is refused for its own fault.
        post(
            "the base case: well-formed, but signed by no key",
            path,
            JSON,
            valid.clone(),
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
        ),
        post(
            "compute_ms beyond f64",
            path,
            JSON,
            result_with(r#","compute_ms":1e400"#),
            StatusCode::BAD_REQUEST,
            MalformedRequest,
        ),
        post(
            "a valid request padded past 2 MiB",
            path,
            JSON,
            format!("{valid}{}", " ".repeat(2 << 20)),
            StatusCode::PAYLOAD_TOO_LARGE,
            PayloadTooLarge,
        ),
        post(
            "a 2 MiB output",
            path,
            JSON,
            result_body(HEX_16, HEX_16, &format!(r#""{}""#, "A".repeat(2 << 20)), EMPTY_SHA256),
            StatusCode::PAYLOAD_TOO_LARGE,
            PayloadTooLarge,
        ),
    ]);
    run_cases(&app, cases).await;
    assert_eq!(app.progress().await, (0, 1));
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_exhausting_the_stack() {
    use ErrorCode::{MalformedRequest, PayloadTooLarge};
    let app = spawn_app(4).await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let open = |depth: usize| "[".repeat(depth);
    let balanced = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let cases = vec![
        // Within the lease body limit.
        post(
            "10k open brackets",
            "/api/v1/lease",
            JSON,
            open(10_000),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "5k balanced brackets",
            "/api/v1/lease",
            JSON,
            balanced(5_000),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "2k nested objects",
            "/api/v1/lease",
            JSON,
            r#"{"a":"#.repeat(2_000),
            unprocessable,
            MalformedRequest,
        ),
        // Past it.
        post(
            "100k open brackets",
            "/api/v1/lease",
            JSON,
            open(100_000),
            StatusCode::PAYLOAD_TOO_LARGE,
            PayloadTooLarge,
        ),
        // The result body limit is larger.
        post(
            "100k open brackets",
            "/api/v1/results",
            JSON,
            open(100_000),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "100k balanced brackets",
            "/api/v1/results",
            JSON,
            balanced(100_000),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "100k brackets as a field value",
            "/api/v1/results",
            JSON,
            format!(r#"{{"protocol":1,"volunteer":{}"#, open(100_000)),
            unprocessable,
            MalformedRequest,
        ),
        post(
            "100k brackets as the output",
            "/api/v1/results",
            JSON,
            result_body(HEX_16, HEX_16, &balanced(100_000), EMPTY_SHA256),
            unprocessable,
            MalformedRequest,
        ),
    ];
    run_cases(&app, cases).await;
}

#[tokio::test]
async fn wrong_methods_get_json_405s() {
    let app = spawn_app(4).await;
    let mut cases = Vec::new();
    let routes = [
        (
            "/api/v1/lease",
            [Method::GET, Method::PUT, Method::DELETE, Method::PATCH],
        ),
        (
            "/api/v1/results",
            [Method::GET, Method::PUT, Method::DELETE, Method::PATCH],
        ),
        (
            "/api/v1/stats",
            [Method::POST, Method::PUT, Method::DELETE, Method::PATCH],
        ),
        (
            "/api/v1/health",
            [Method::POST, Method::PUT, Method::DELETE, Method::PATCH],
        ),
    ];
    for (path, methods) in routes {
        for method in methods {
            cases.push(Case {
                what: "wrong method",
                method,
                path,
                content_type: JSON,
                body: lease_body(r#""max_units":1"#).into_bytes(),
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: ErrorCode::MethodNotAllowed,
            });
        }
    }
    run_cases(&app, cases).await;
}

#[tokio::test]
async fn unknown_paths_get_json_404s() {
    let app = spawn_app(4).await;
    let mut cases = Vec::new();
    let paths = [
        "/api/v1/nope",
        "/api/v1/lease/extra",
        "/api/v1/LEASE",
        "/api/v1/",
        "/api/v2/lease",
        "/api",
        "/api/v1/%00",
        "/api/v1/..%2fsecret",
        "/",
        "/index.html",
    ];
    for path in paths {
        for method in [Method::GET, Method::POST] {
            cases.push(Case {
                what: "unknown path",
                method,
                path,
                content_type: JSON,
                body: Vec::new(),
                status: StatusCode::NOT_FOUND,
                code: ErrorCode::NotFound,
            });
        }
    }
    run_cases(&app, cases).await;
}

#[tokio::test]
async fn stats_and_health_ignore_junk_they_do_not_read() {
    let app = spawn_app(4).await;
    for path in ["/api/v1/stats", "/api/v1/health"] {
        let junk: [(Option<&str>, Vec<u8>); 4] = [
            (None, b"\xff\xfe".to_vec()),
            (Some("text/plain"), b"{".to_vec()),
            (JSON, "[".repeat(100_000).into_bytes()),
            (Some(";;;"), vec![0; 1 << 16]),
        ];
        for (content_type, body) in junk {
            let response = app.request_raw(Method::GET, path, content_type, body).await;
            assert_eq!(response.status(), StatusCode::OK, "GET {path}");
            assert_json_with_security_headers(response.headers());
            let value: serde_json::Value = response.json().await.expect("json");
            assert!(value.is_object(), "GET {path}: {value}");
        }
        let query = format!("{path}?x=%ff%00&y={}", "z".repeat(4_000));
        let response = app.client.get(app.url(&query)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {query}");
        assert_json_with_security_headers(response.headers());
    }
    app.assert_still_serving().await;
}
