//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document generated from the handlers'
//! annotations. It must list exactly the routes the server has, describe every error with the
//! one shared `ErrorBody`, and agree with what the server really answers.

use std::collections::BTreeSet;

use cyclepool_shared::protocol::{LeaseRef, PROTOCOL_VERSION, Report, ReportKind};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app, volunteer};

/// Every route of `cyclepool_server::router` (server/src/lib.rs), as (method, path). A route
/// added there must be documented (its `#[utoipa::path]` registers it) and listed here.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/.well-known/cyclepool-keys.json"),
    ("POST", "/api/v1/lease"),
    ("POST", "/api/v1/results"),
    ("POST", "/api/v1/exchange"),
    ("POST", "/api/v1/reports"),
    ("GET", "/api/v1/reports"),
    ("PUT", "/api/v1/modules"),
    ("GET", "/api/v1/modules/{sha256}"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/events"),
    ("GET", "/api/v1/jobs/{id}"),
    ("POST", "/api/v1/jobs/{id}/pause"),
    ("POST", "/api/v1/jobs/{id}/resume"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
    ("GET", "/api/v1/jobs/{id}/failures"),
    ("GET", "/api/v1/jobs/{id}/manifest"),
    ("GET", "/api/v1/jobs/{id}/results"),
    ("GET", "/api/v1/jobs/{id}/results.tar"),
    ("POST", "/api/v1/accounts"),
    ("GET", "/api/v1/account"),
    ("POST", "/api/v1/account/keys"),
    ("DELETE", "/api/v1/account/keys/{key_id}"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("POST", "/api/v1/session"),
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/groups"),
    ("POST", "/api/v1/groups"),
    ("POST", "/api/v1/groups/join"),
    ("GET", "/api/v1/groups/{id}"),
    ("POST", "/api/v1/groups/{id}/members"),
    ("DELETE", "/api/v1/groups/{id}/members/{volunteer}"),
    ("GET", "/api/v1/sites"),
    ("POST", "/api/v1/sites"),
    ("GET", "/api/v1/sites/{id}"),
    ("DELETE", "/api/v1/sites/{id}"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/leaderboard"),
    ("GET", "/api/v1/volunteers/{volunteer}"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/log"),
    ("GET", "/api/v1/log/jobs/{id}"),
    ("POST", "/api/v1/account/terms"),
    ("GET", "/api/v1/admin/review"),
    ("POST", "/api/v1/admin/jobs/{id}/approve"),
    ("POST", "/api/v1/admin/jobs/{id}/reject"),
    ("POST", "/api/v1/admin/jobs/{id}/withdraw"),
    ("GET", "/api/v1/admin/accounts"),
    ("PATCH", "/api/v1/admin/accounts/{id}"),
    ("POST", "/api/v1/admin/keys/{key_id}/revoke"),
    ("GET", "/api/v1/admin/reports"),
    ("POST", "/api/v1/admin/reports/{id}/resolve"),
];

/// The routes anyone may call, without credentials.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/.well-known/cyclepool-keys.json"),
    ("POST", "/api/v1/lease"),
    ("POST", "/api/v1/results"),
    ("POST", "/api/v1/exchange"),
    ("POST", "/api/v1/reports"),
    ("GET", "/api/v1/modules/{sha256}"),
    ("GET", "/api/v1/jobs/{id}/manifest"),
    ("POST", "/api/v1/accounts"),
    ("POST", "/api/v1/groups/join"),
    ("GET", "/api/v1/sites/{id}"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/leaderboard"),
    ("GET", "/api/v1/volunteers/{volunteer}"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/log"),
    ("GET", "/api/v1/log/jobs/{id}"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Fetches the document over HTTP, checking how it is served.
async fn fetch_document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("requesting the document");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .expect("a text content type"),
        "application/json"
    );
    let text = response.text().await.expect("reading the document");
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    spec.validate_version()
        .expect("the document is OpenAPI 3.1");
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Every operation of the document: (upper-case method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut operations = Vec::new();
    let paths = document["paths"].as_object().expect("paths is an object");
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    operations
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|item| item.as_str().expect("a list of strings").to_owned())
        .collect()
}

/// Every `$ref` in `value`, with where it was found.
fn collect_refs(value: &Value, at: &str, refs: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    let target = item.as_str().expect("a $ref is a string");
                    refs.push((at.to_owned(), target.to_owned()));
                } else {
                    collect_refs(item, &format!("{at}/{key}"), refs);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect_refs(item, &format!("{at}/{index}"), refs);
            }
        }
        _ => {}
    }
}

/// Checks that a real answer has the shape of its schema: only the schema's properties, and
/// every required one.
fn assert_has_shape(document: &Value, name: &str, value: &Value) {
    let schema = schema(document, name);
    let properties: BTreeSet<String> = schema["properties"]
        .as_object()
        .expect("an object schema")
        .keys()
        .cloned()
        .collect();
    let keys: BTreeSet<String> = value
        .as_object()
        .expect("an object answer")
        .keys()
        .cloned()
        .collect();
    assert!(
        keys.is_subset(&properties),
        "{name}: the answer has fields the schema lacks: {:?}",
        keys.difference(&properties).collect::<Vec<_>>()
    );
    let required = string_set(&schema["required"]);
    assert!(
        required.is_subset(&keys),
        "{name}: the answer lacks required fields: {:?}",
        required.difference(&keys).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_api_s_title_and_version() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(document["info"]["title"], "Cyclepool API");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        document["info"]["description"]
            .as_str()
            .unwrap()
            .contains("docs/PROTOCOL.md")
    );
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_server_has() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&expected).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not in ROUTES"
    );
    assert_eq!(
        expected.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in ROUTES but not documented"
    );
    let ids: Vec<&str> = operations(&document)
        .iter()
        .map(|(_, _, operation)| operation["operationId"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids repeat: {ids:?}");
}

#[tokio::test]
async fn every_documented_route_is_routed_and_answers_as_documented() {
    let app = spawn_app(1).await;
    let document = fetch_document(&app).await;
    let codes = string_set(&schema(&document, "ErrorCode")["enum"]);
    for (method, path, operation) in operations(&document) {
        // Anonymous requests without a body: each reaches its handler (no 405, no fallback
        // 404) and gets an answer the document lists.
        let concrete = path
            .replace("{id}", "1")
            .replace("{sha256}", &"0".repeat(64))
            .replace("{key_id}", &"0".repeat(16))
            .replace("{volunteer}", &"0".repeat(64));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.request_raw(method.clone(), &concrete, None, "").await;
        let status = response.status();
        let body = response.bytes().await.unwrap();
        let responses = operation["responses"].as_object().unwrap();
        let documented = responses.contains_key(status.as_str())
            || (status.is_server_error() && responses.contains_key("5XX"));
        assert!(
            documented,
            "{method} {path}: {status} is not documented ({:?})",
            responses.keys().collect::<Vec<_>>()
        );
        if status.is_client_error() || status.is_server_error() {
            let error: Value = serde_json::from_slice(&body).unwrap();
            let code = error["error"]["code"].as_str().unwrap();
            assert_ne!(code, "not_found", "{method} {path} is not routed");
            assert!(codes.contains(code), "{method} {path}: undocumented {code}");
        }
    }
}

#[tokio::test]
async fn every_error_response_is_the_shared_error_body() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    let error_body = "#/components/schemas/ErrorBody";
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents no success"
        );
        for (status, response) in responses {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if !is_error {
                continue;
            }
            let content = response["content"].as_object().unwrap();
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/json"],
                "{method} {path} {status}"
            );
            assert_eq!(
                content["application/json"]["schema"]["$ref"], error_body,
                "{method} {path} {status}"
            );
        }
    }
    let error = schema(&document, "ErrorBody");
    assert_eq!(
        string_set(&error["required"]),
        BTreeSet::from(["error".into()])
    );
    let detail = schema(&document, "ErrorDetail");
    assert_eq!(
        string_set(&detail["required"]),
        BTreeSet::from(["code".into(), "message".into()])
    );
    assert_eq!(
        detail["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let codes = string_set(&schema(&document, "ErrorCode")["enum"]);
    for code in [
        "csrf_rejected",
        "forbidden",
        "unauthorized",
        "lease_expired",
    ] {
        assert!(codes.contains(code), "ErrorCode lacks {code}: {codes:?}");
    }
}

#[tokio::test]
async fn security_is_marked_on_every_operation() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["type"], "apiKey");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "cyclepool_session");
    assert!(
        schemes["session"]["description"]
            .as_str()
            .unwrap()
            .contains("X-Cyclepool-CSRF")
    );
    for (method, path, operation) in operations(&document) {
        let security = operation["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} does not say who may call it"));
        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        assert_eq!(security.is_empty(), public, "{method} {path}: {security:?}");
        for requirement in security {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes[scheme].is_object(), "{method} {path}: {scheme}");
            }
        }
        let with_session = security
            .iter()
            .any(|requirement| requirement.get("session").is_some());
        let csrf_header = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|parameter| {
                parameter["in"] == "header" && parameter["name"] == "X-Cyclepool-CSRF"
            });
        assert_eq!(
            csrf_header,
            with_session && method != "GET",
            "{method} {path}: the CSRF header"
        );
    }
}

#[tokio::test]
async fn path_parameters_are_declared_and_typed() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    for (method, path, operation) in operations(&document) {
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let parameters: Vec<&Value> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|parameter| parameter["in"] == "path")
            .collect();
        let declared: BTreeSet<String> = parameters
            .iter()
            .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(declared, in_path, "{method} {path}");
        for parameter in parameters {
            assert_eq!(parameter["required"], true, "{method} {path}");
        }
    }
    let parameter = |path: &str, method: &str, name: &str| {
        document["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(
        parameter("/api/v1/jobs/{id}", "get", "id")["$ref"],
        "#/components/schemas/JobId"
    );
    assert_eq!(
        parameter("/api/v1/modules/{sha256}", "get", "sha256")["$ref"],
        "#/components/schemas/Sha256Digest"
    );
    assert_eq!(
        parameter("/api/v1/account/keys/{key_id}", "delete", "key_id")["$ref"],
        "#/components/schemas/KeyId"
    );
}

#[tokio::test]
async fn bodies_and_media_types_are_documented() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    let paths = &document["paths"];
    let request_schema = |path: &str, method: &str| {
        paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"].clone()
    };
    for (path, method, name) in [
        ("/api/v1/lease", "post", "LeaseRequest"),
        ("/api/v1/results", "post", "ResultSubmission"),
        ("/api/v1/exchange", "post", "Exchange"),
        ("/api/v1/reports", "post", "Report"),
        ("/api/v1/jobs", "post", "CreateJob"),
        ("/api/v1/accounts", "post", "RegisterAccount"),
        ("/api/v1/account/keys", "post", "RegisterKey"),
        ("/api/v1/tokens", "post", "CreateToken"),
        ("/api/v1/groups", "post", "CreateGroup"),
        ("/api/v1/groups/join", "post", "JoinGroup"),
        ("/api/v1/groups/{id}/members", "post", "AddMembers"),
        ("/api/v1/sites", "post", "RegisterSite"),
    ] {
        assert_eq!(
            request_schema(path, method),
            format!("#/components/schemas/{name}"),
            "{method} {path}"
        );
    }
    assert!(
        paths["/api/v1/modules"]["put"]["requestBody"]["content"]["application/wasm"].is_object()
    );
    let success = |path: &str, method: &str, status: &str| {
        paths[path][method]["responses"][status]["content"].clone()
    };
    assert_eq!(
        success("/api/v1/lease", "post", "200")["application/json"]["schema"]["$ref"],
        "#/components/schemas/LeaseResponse"
    );
    assert_eq!(
        success("/api/v1/jobs", "post", "201")["application/json"]["schema"]["$ref"],
        "#/components/schemas/JobCreated"
    );
    assert_eq!(
        success("/api/v1/jobs", "get", "200")["application/json"]["schema"]["items"]["$ref"],
        "#/components/schemas/JobSummary"
    );
    assert!(success("/api/v1/jobs/events", "get", "200")["text/event-stream"].is_object());
    assert_eq!(
        success("/api/v1/jobs/{id}/results", "get", "200")["application/x-ndjson"]["schema"]["$ref"],
        "#/components/schemas/ResultLine"
    );
    assert!(
        success("/api/v1/jobs/{id}/results.tar", "get", "200")["application/x-tar"].is_object()
    );
    assert!(success("/api/v1/modules/{sha256}", "get", "200")["application/wasm"].is_object());
    assert_eq!(
        success("/.well-known/cyclepool-keys.json", "get", "200")["application/json"]["schema"]["$ref"],
        "#/components/schemas/PortalKeys"
    );
    assert!(success("/api/v1/session", "delete", "204").is_null());
}

#[tokio::test]
async fn shared_types_have_their_wire_shapes() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;

    let lease_request = schema(&document, "LeaseRequest");
    assert_eq!(
        string_set(&lease_request["required"]),
        BTreeSet::from(["protocol".into(), "volunteer".into()])
    );
    assert_eq!(lease_request["additionalProperties"], false);

    for (name, digits) in [
        ("LeaseId", 32),
        ("Nonce", 32),
        ("VolunteerId", 64),
        ("PublicKey", 64),
        ("Sha256Digest", 64),
        ("Signature", 128),
        ("KeyId", 16),
    ] {
        let id = schema(&document, name);
        assert_eq!(id["type"], "string", "{name}");
        assert_eq!(
            id["pattern"],
            format!("^[0-9a-fA-F]{{{digits}}}$"),
            "{name}"
        );
        assert_eq!(id["minLength"], digits, "{name}");
        assert_eq!(id["maxLength"], digits, "{name}");
    }
    for name in ["JobId", "AccountId", "GroupId"] {
        assert_eq!(schema(&document, name)["type"], "integer", "{name}");
    }

    let byte_string = serde_json::json!({"type": "string", "format": "byte"});
    assert_eq!(
        schema(&document, "Lease")["properties"]["input"],
        byte_string
    );
    assert_eq!(
        schema(&document, "ResultSubmission")["properties"]["output"],
        byte_string
    );
    assert_eq!(
        schema(&document, "ResultLine")["properties"]["output"],
        byte_string
    );

    // `{"list": [base64, …]}` or `{"range": {"start", "end", "step"}}`.
    let inputs = schema(&document, "Inputs")["oneOf"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    let list = &inputs[0];
    assert_eq!(
        string_set(&list["required"]),
        BTreeSet::from(["list".into()])
    );
    assert_eq!(list["properties"]["list"]["type"], "array");
    assert_eq!(list["properties"]["list"]["items"], byte_string);
    let range = &inputs[1];
    assert_eq!(
        string_set(&range["required"]),
        BTreeSet::from(["range".into()])
    );
    assert_eq!(
        string_set(&range["properties"]["range"]["required"]),
        BTreeSet::from(["start".into(), "end".into(), "step".into()])
    );

    for (name, values) in [
        ("JobStatus", &["active", "paused", "cancelled"][..]),
        ("SubmitStatus", &["accepted", "duplicate"][..]),
        (
            "ReportKind",
            &["unit_timeout", "module_refused", "abuse"][..],
        ),
    ] {
        let listed = string_set(&schema(&document, name)["enum"]);
        for value in values {
            assert!(listed.contains(*value), "{name} lacks {value}: {listed:?}");
        }
    }
}

#[tokio::test]
async fn every_reference_resolves_to_a_component() {
    let app = spawn_app(0).await;
    let document = fetch_document(&app).await;
    let mut refs = Vec::new();
    collect_refs(&document, "#", &mut refs);
    assert!(
        refs.len() > 100,
        "suspiciously few references: {}",
        refs.len()
    );
    for (at, target) in refs {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {target} is not local"));
        assert!(
            pointer.starts_with("/components/"),
            "{at}: {target} is not a component"
        );
        assert!(
            document.pointer(pointer).is_some(),
            "{at}: {target} does not resolve"
        );
    }
}

#[tokio::test]
async fn real_answers_match_their_schemas() {
    let app = spawn_app(1).await;
    let document = fetch_document(&app).await;

    let health: Value = app
        .client
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_has_shape(&document, "Health", &health);

    // A lease and a report about it; then the stored report as the admin lists it.
    let alice = volunteer(1);
    let lease = app.lease_one(alice).await;
    let lease_json = serde_json::to_value(&lease).unwrap();
    assert_has_shape(&document, "Lease", &lease_json);
    app.report(&Report {
        protocol: PROTOCOL_VERSION,
        volunteer: alice,
        job_id: lease.job_id,
        lease: Some(LeaseRef {
            lease_id: lease.lease_id,
            nonce: lease.nonce,
        }),
        kind: ReportKind::UnitTrap,
        message: "unreachable executed".into(),
    })
    .await;
    let reports: Vec<Value> = app
        .client
        .get(app.url("/api/v1/reports"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_has_shape(&document, "ReportRecord", &reports[0]);

    let stats: Value = app
        .client
        .get(app.url("/api/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_has_shape(&document, "StatsResponse", &stats);
    assert_has_shape(&document, "JobStats", &stats["jobs"][0]);
}
