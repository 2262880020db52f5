//! The OpenAPI 3.1 document of the HTTP API, generated from the `#[utoipa::path]` annotation of
//! every handler (the same annotations register the routes, see `crate::documented_routes`),
//! and served at `GET /api/v1/openapi.json`.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cyclepool_shared::distributor::SESSION_COOKIE;
use cyclepool_shared::manifest::Manifest;
use cyclepool_shared::{ErrorBody, ErrorCode, ErrorDetail};
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, PartialSchema};

/// The name of the security scheme for `Authorization: Bearer` tokens.
pub const BEARER: &str = "bearer";
/// The name of the security scheme for the dashboard's session cookie.
pub const SESSION: &str = "session";

// Descriptions of error responses that many endpoints share; each body is an `ErrorBody`.
pub const UNAUTHORIZED: &str = "`unauthorized`: no valid bearer token or session";
pub const FORBIDDEN: &str = "`forbidden`: the caller may not do this (another distributor's object, \
     a suspended account, the admin token where an account is needed); `csrf_rejected`: a \
     state-changing request made with the session cookie lacks the session's CSRF token";
pub const TOO_LARGE: &str = "`payload_too_large`: the body is larger than this endpoint accepts";
pub const NOT_JSON: &str =
    "`unsupported_media_type`: the body needs `Content-Type: application/json`";
pub const BAD_JOB_ID: &str = "`invalid_value`: the job id is not a non-negative integer";
pub const NO_JOB: &str = "`unknown_job`: no such job";
pub const NO_GROUP: &str = "`unknown_group`: no such group";

/// The document's metadata, the security schemes, and the schemas no operation names
/// directly (the error codes on their own, and the manifest a `SignedManifest` carries as text).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Cyclepool API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The HTTP API of a Cyclepool portal: the volunteer protocol (lease, \
            results, reports) and the distributor API (accounts, tokens, sessions, keys, \
            modules, jobs, results, groups, embedding sites).\n\n\
            docs/PROTOCOL.md in the Cyclepool repository describes the volunteer protocol's \
            exchange, what each side checks, and the signatures. Every error response (4xx and \
            5xx) carries an `ErrorBody`: `{\"error\": {\"code\", \"message\"}}`; clients branch \
            on the code, never on the message."
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, Manifest)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "volunteer", description = "The volunteer protocol: work, results, reports"),
        (name = "modules", description = "Job modules (WebAssembly)"),
        (name = "jobs", description = "Jobs: creation, management, progress, manifests"),
        (name = "results", description = "Validated results of a job, as downloads"),
        (name = "accounts", description = "Distributor accounts, tokens, sessions, signing keys"),
        (name = "groups", description = "Restricted groups of volunteers"),
        (name = "sites", description = "Embedding sites: the origins whose pages carry the \
            `embed.js` widget, and their credit"),
        (name = "portal", description = "Public information about the portal"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways a distributor (or the admin) authenticates.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`: the portal's admin token (`cp_admin_…`) \
                         or a distributor's API token (`cp_token_…`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                &format!(
                    "The dashboard's session cookie (HttpOnly, SameSite=Strict), made by \
                     `POST /api/v1/session`. Every state-changing request (POST, PUT, DELETE) \
                     made with it must also send the session's `csrf_token` in the \
                     `{CSRF_HEADER_NAME}` header, else 403 `csrf_rejected`."
                ),
            ))),
        );
    }
}

/// [`CSRF_HEADER`](cyclepool_shared::distributor::CSRF_HEADER) as people write it (it is lower
/// case there, as HTTP/2 sends it).
const CSRF_HEADER_NAME: &str = "X-Cyclepool-CSRF";

/// Completes the document with what the common layers, not the handlers, decide: a 5XX
/// answer with an `ErrorBody` on every operation, and the CSRF header on every
/// state-changing operation that accepts the session cookie.
pub fn add_common_parts(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Delete, &mut item.delete),
            (HttpMethod::Patch, &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            add_server_error(operation);
            if method != HttpMethod::Get && accepts_session(operation) {
                add_csrf_header(operation);
            }
        }
    }
}

fn add_server_error(operation: &mut Operation) {
    let response = ResponseBuilder::new()
        .description(
            "`internal`: a server fault, details only in the server log; `unavailable`: the \
             server is shedding load or shutting down",
        )
        .content("application/json", error_content())
        .build();
    operation
        .responses
        .responses
        .entry("5XX".into())
        .or_insert(RefOr::T(response));
}

fn accepts_session(operation: &Operation) -> bool {
    operation.security.iter().flatten().any(|requirement| {
        // A requirement's scheme names are private to utoipa; its JSON form shows them.
        serde_json::to_value(requirement)
            .ok()
            .and_then(|value| value.get(SESSION).cloned())
            .is_some()
    })
}

fn add_csrf_header(operation: &mut Operation) {
    let parameter = ParameterBuilder::new()
        .name(CSRF_HEADER_NAME)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The session's `csrf_token`: required when the request is authenticated with the \
             session cookie (not with a bearer token)",
        ))
        .schema(Some(String::schema()))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(parameter);
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(RefOr::<utoipa::openapi::schema::Schema>::Ref(
            Ref::from_schema_name("ErrorBody"),
        )))
        .build()
}

/// The document as JSON, made once: it depends only on the code.
static DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    // Serializing plain data to a Vec cannot fail.
    serde_json::to_vec_pretty(&crate::openapi()).unwrap_or_default()
});

/// This document: every route of the API, its parameters, bodies, answers and errors.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "portal",
    security(),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API",
            content(("application/json")))
    )
)]
pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_slice(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use cyclepool_shared::distributor::CSRF_HEADER;

    use super::*;

    #[test]
    fn the_documented_csrf_header_is_the_one_checked() {
        assert!(CSRF_HEADER_NAME.eq_ignore_ascii_case(CSRF_HEADER));
    }
}
