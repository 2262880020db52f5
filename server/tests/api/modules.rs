//! `PUT /api/v1/modules` and `GET /api/v1/modules/{sha256}`: a module that meets the job ABI
//! is stored by digest and served byte for byte; one that breaks it is refused with the rule.

use cyclepool_shared::abi::MAX_MODULE_BYTES;
use cyclepool_shared::{ErrorCode, Sha256Digest};
use reqwest::StatusCode;

use crate::helpers::{
    assert_json_with_security_headers, assert_security_headers, expect_error, module_sha256,
    spawn_app,
};
use crate::test_module::reverse_module;

/// The ABI exports, for building broken modules around.
const ABI_FUNCS: &str = r#"
    (func (export "cyclepool_abi_version") (result i32) i32.const 1)
    (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 1024)
    (func (export "cyclepool_run") (param i32 i32) (result i32) i32.const 0)
    (func (export "cyclepool_output_ptr") (result i32) i32.const 1024)
    (func (export "cyclepool_output_len") (result i32) i32.const 0)
"#;

fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {body})")).expect("the test's WAT is valid")
}

#[tokio::test]
async fn a_valid_module_is_stored_by_digest_and_served_byte_for_byte() {
    let app = spawn_app(0).await;
    let bytes = reverse_module();
    let first = app.upload_test_module().await;
    assert_eq!(first.module_sha256, Sha256Digest::of(&bytes));
    assert_eq!(first.bytes, bytes.len() as u64);
    assert!(first.has_verify);
    assert_eq!(first.memory_max_pages, 16);
    // Uploading again is harmless and answers the same.
    assert_eq!(app.upload_test_module().await, first);

    let response = app.module_response(module_sha256()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_security_headers(response.headers());
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/wasm"
    );
    assert!(
        response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("immutable")),
        "{:?}",
        response.headers()
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn unknown_and_malformed_digests_are_refused() {
    let app = spawn_app(0).await;
    app.upload_test_module().await;
    let unknown = Sha256Digest::of(b"no such module");
    let response = app.module_response(unknown).await;
    let body = expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownModule).await;
    assert!(
        body.error.message.contains(&unknown.to_string()),
        "{body:?}"
    );

    let valid = module_sha256().to_string();
    let malformed = [
        "xyz".to_owned(),
        valid[..63].to_owned(),
        format!("{valid}0"),
        valid.replace(|c: char| c.is_ascii_digit(), "g"),
        "%00".to_owned(),
    ];
    for digest in malformed {
        let response = app.module_response(digest).await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
}

#[tokio::test]
async fn modules_that_break_the_abi_are_refused_with_the_reason() {
    let app = spawn_app(0).await;
    let memory = r#"(memory (export "memory") 1 16)"#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an import",
            module(&format!(
                r#"(import "env" "memcpy" (func (param i32 i32 i32) (result i32))) {memory} {ABI_FUNCS}"#
            )),
            "env.memcpy",
        ),
        (
            "a start function",
            module(&format!("{memory} {ABI_FUNCS} (func $init) (start $init)")),
            "start function",
        ),
        (
            "no memory maximum",
            module(&format!(r#"(memory (export "memory") 1) {ABI_FUNCS}"#)),
            "maximum",
        ),
        (
            "a missing export",
            module(&format!(
                "{memory} {}",
                ABI_FUNCS.replace(r#"(export "cyclepool_output_len")"#, "")
            )),
            "cyclepool_output_len",
        ),
        (
            "garbage bytes",
            b"\0asm garbage, not a module".to_vec(),
            "not a valid WebAssembly module",
        ),
        (
            "an empty body",
            Vec::new(),
            "not a valid WebAssembly module",
        ),
    ];
    for (what, bytes, reason) in cases {
        let response = app.upload_module_response(bytes.clone()).await;
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidModule,
        )
        .await;
        assert!(
            body.error.message.contains(reason),
            "{what}: {reason:?} not in {:?}",
            body.error.message
        );
        // Nothing was stored under the refused module's digest.
        let response = app.module_response(Sha256Digest::of(&bytes)).await;
        expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownModule).await;
    }
}

#[tokio::test]
async fn a_module_over_the_size_limit_is_too_large() {
    let app = spawn_app(0).await;
    let response = app
        .upload_module_response(vec![0u8; MAX_MODULE_BYTES + 1])
        .await;
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
    )
    .await;
    // The server still accepts a module afterwards.
    let response = app.upload_module_response(reverse_module()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_json_with_security_headers(response.headers());
}
