//! Embedding sites: registration and its checks, who may see and revoke a site, leases that
//! name a site, the credit a site earns when its visitors' results are validated, and the
//! headers of the widget's two files (`/embed.html` framed only by the registered origin,
//! `/embed.js` loadable from other origins).

use std::path::{Path, PathBuf};

use cyclepool_shared::distributor::{PublicSite, SiteId, SiteInfo};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{Inputs, LeaseResponse, PROTOCOL_VERSION};
use cyclepool_shared::{ErrorCode, VolunteerId};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, START_MS, TestApp, assert_security_headers, compute, expect_error, spawn_app,
    spawn_app_with_pages, volunteer,
};

/// A distributor account: its bearer header value and its id.
struct Account(String, u64);

async fn register_account(app: &TestApp, name: &str) -> Account {
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&json!({
            "name": name, "contact": format!("{name}@example.org"),
            "organisation": "A news site", "purpose": "Lets its readers lend spare processor time",
        }))
        .send()
        .await
        .expect("registering");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.expect("parsing the account");
    Account(
        format!(
            "Bearer {}",
            created["token"]["secret"].as_str().expect("a token")
        ),
        created["account"]["account_id"]
            .as_u64()
            .expect("an account id"),
    )
}

impl Account {
    async fn request(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = app
            .client
            .request(method, app.url(path))
            .header(AUTHORIZATION, &self.0);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("sending a site request")
    }

    async fn register_site_response(
        &self,
        app: &TestApp,
        name: &str,
        origin: &str,
    ) -> reqwest::Response {
        self.request(
            app,
            Method::POST,
            "/api/v1/sites",
            Some(json!({ "name": name, "origin": origin })),
        )
        .await
    }

    async fn register_site(&self, app: &TestApp, name: &str, origin: &str) -> SiteInfo {
        let response = self.register_site_response(app, name, origin).await;
        let status = response.status();
        let text = response.text().await.expect("reading the site");
        assert_eq!(status, StatusCode::CREATED, "registering {origin}: {text}");
        serde_json::from_str(&text).expect("parsing SiteInfo")
    }

    async fn sites(&self, app: &TestApp) -> Vec<SiteInfo> {
        let response = self.request(app, Method::GET, "/api/v1/sites", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("parsing the sites")
    }

    async fn revoke(&self, app: &TestApp, site: SiteId) -> reqwest::Response {
        self.request(app, Method::DELETE, &format!("/api/v1/sites/{site}"), None)
            .await
    }
}

async fn public_site(app: &TestApp, site: SiteId) -> PublicSite {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/sites/{site}")))
        .send()
        .await
        .expect("requesting a site");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("parsing PublicSite")
}

async fn lease_through(
    app: &TestApp,
    volunteer: VolunteerId,
    site: Option<SiteId>,
) -> reqwest::Response {
    let mut request = json!({
        "protocol": PROTOCOL_VERSION, "volunteer": volunteer.to_string(), "max_units": 1,
    });
    if let Some(site) = site {
        request["site"] = json!(site);
    }
    app.client
        .post(app.url("/api/v1/lease"))
        .json(&request)
        .send()
        .await
        .expect("sending a lease request")
}

#[tokio::test]
async fn a_distributor_registers_lists_and_revokes_its_sites() {
    let app = spawn_app(0).await;
    let alice = register_account(&app, "Alice's Blog").await;
    let site = alice
        .register_site(&app, "Alice's blog", "https://blog.example")
        .await;
    assert_eq!(site.name, "Alice's blog");
    assert_eq!(site.origin, "https://blog.example");
    assert_eq!(site.created_ms, START_MS);
    assert!(!site.revoked);
    assert_eq!((site.credit.results, site.credit.compute_ms), (0, 0));

    // One origin once per account; another account may name it (only that origin's pages can
    // frame the widget, whoever registered it).
    let again = alice
        .register_site_response(&app, "Again", "https://blog.example")
        .await;
    expect_error(again, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    let bob = register_account(&app, "Bob").await;
    let bobs = bob
        .register_site(&app, "Bob's copy", "https://blog.example")
        .await;
    assert_ne!(bobs.site_id, site.site_id);
    let other = alice
        .register_site(&app, "Shop", "http://127.0.0.2:8000")
        .await;

    let listed = alice.sites(&app).await;
    assert_eq!(listed, vec![site.clone(), other.clone()]);
    let public = public_site(&app, site.site_id).await;
    assert_eq!(public.name, "Alice's blog");
    assert_eq!(public.origin, "https://blog.example");
    assert_eq!(public.registered_by, "Alice's Blog");
    assert!(!public.revoked);

    let revoked = alice.revoke(&app, site.site_id).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: SiteInfo = revoked.json().await.unwrap();
    assert!(revoked.revoked);
    assert!(public_site(&app, site.site_id).await.revoked);
    // Revoking twice is harmless; the origin may then be registered anew, under a new id.
    assert_eq!(
        alice.revoke(&app, site.site_id).await.status(),
        StatusCode::OK
    );
    let renewed = alice
        .register_site(&app, "Alice's blog", "https://blog.example")
        .await;
    assert_ne!(renewed.site_id, site.site_id);
    let listed = alice.sites(&app).await;
    assert_eq!(listed.len(), 3);
    assert!(listed[0].revoked && !listed[1].revoked && !listed[2].revoked);
}

#[tokio::test]
async fn site_registration_refuses_malformed_hostile_and_oversized_input() {
    let app = spawn_app(0).await;
    let alice = register_account(&app, "Alice").await;
    let long_origin = format!("https://{}.example", "a".repeat(190));
    for origin in [
        "",
        "blog.example",
        "javascript:alert(1)",
        "javascript://blog.example",
        "data:text/html,hi",
        "ftp://blog.example",
        "http://a/b",
        "http://a/",
        "http://a?x=1",
        "http://a#top",
        "http://user@a",
        "http://user:secret@a",
        "https://bücher.example",
        "https://BLOG.example",
        "HTTPS://blog.example",
        "https://*.example",
        "http://[::1]:8000",
        "https://blog.example:443",
        "https://blog.example:99999",
        "https://blog.example; script-src *",
        "https://blog.example 'unsafe-inline'",
        "https://blog.example\r\nset-cookie: x=1",
        "http://1.2.3",
        long_origin.as_str(),
    ] {
        let response = alice.register_site_response(&app, "A site", origin).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
        assert!(
            body.error.message.contains("origin"),
            "{origin:?}: {}",
            body.error.message
        );
    }
    for name in ["", "   ", &"n".repeat(101), "bell\u{7}"] {
        let response = alice
            .register_site_response(&app, name, "https://blog.example")
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    }
    let cases: [(Option<&str>, Vec<u8>, StatusCode, ErrorCode); 5] = [
        (
            Some("application/json"),
            b"{\"name\": \"x\", \"origin\": \"https://a.example\", \"owner\": 1}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MalformedRequest,
        ),
        (
            Some("application/json"),
            b"{\"name\": \"x\"}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MalformedRequest,
        ),
        (
            Some("application/json"),
            b"{\"name\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
        ),
        (
            None,
            b"{\"name\": \"x\", \"origin\": \"https://a.example\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
        ),
        (
            Some("application/json"),
            // Ten megabytes of a name.
            format!(
                "{{\"name\": \"{}\", \"origin\": \"https://a.example\"}}",
                "x".repeat(10 << 20)
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
        ),
    ];
    for (content_type, body, status, code) in cases {
        let mut request = app
            .client
            .post(app.url("/api/v1/sites"))
            .header(AUTHORIZATION, &alice.0);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = request.body(body).send().await.expect("posting");
        expect_error(response, status, code).await;
    }
    // Without an account: anonymous 401, the admin (who has none) 403.
    let anonymous = app
        .client
        .post(app.url("/api/v1/sites"))
        .json(&json!({ "name": "x", "origin": "https://a.example" }))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    let admin = Account(format!("Bearer {ADMIN_TOKEN}"), 0);
    let response = admin
        .register_site_response(&app, "x", "https://a.example")
        .await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    // Nothing was stored by any of it.
    assert_eq!(alice.sites(&app).await, Vec::new());
}

#[tokio::test]
async fn another_account_can_neither_list_nor_revoke_a_site() {
    let app = spawn_app(0).await;
    let alice = register_account(&app, "Alice").await;
    let mallory = register_account(&app, "Mallory").await;
    let site = alice
        .register_site(&app, "Alice's blog", "https://blog.example")
        .await;
    assert_eq!(mallory.sites(&app).await, Vec::new());
    let response = mallory.revoke(&app, site.site_id).await;
    expect_error(response, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;
    let response = mallory.revoke(&app, SiteId(999_999)).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownSite).await;
    let response = mallory
        .request(&app, Method::DELETE, "/api/v1/sites/x1", None)
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidValue).await;
    let anonymous = app
        .client
        .delete(app.url(&format!("/api/v1/sites/{}", site.site_id)))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    // The public view shows no more than name, origin, who registered it and credit.
    let public: Value = app
        .client
        .get(app.url(&format!("/api/v1/sites/{}", site.site_id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut fields: Vec<&str> = public
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "credit",
            "name",
            "origin",
            "registered_by",
            "revoked",
            "site_id"
        ]
    );
    let unknown = app
        .client
        .get(app.url("/api/v1/sites/999999"))
        .send()
        .await
        .unwrap();
    expect_error(unknown, StatusCode::NOT_FOUND, ErrorCode::UnknownSite).await;
    assert!(!alice.sites(&app).await[0].revoked);
}

#[tokio::test]
async fn leases_naming_an_unknown_or_revoked_site_are_refused() {
    let app = spawn_app(8).await;
    let alice = register_account(&app, "Alice").await;
    let site = alice
        .register_site(&app, "Alice's blog", "https://blog.example")
        .await;
    let reader = volunteer(1);
    let response = lease_through(&app, reader, Some(SiteId(424_242))).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownSite).await;
    let response = lease_through(&app, reader, Some(site.site_id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let leased: LeaseResponse = response.json().await.unwrap();
    assert_eq!(leased.leases.len(), 1);

    assert_eq!(
        alice.revoke(&app, site.site_id).await.status(),
        StatusCode::OK
    );
    let response = lease_through(&app, reader, Some(site.site_id)).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownSite).await;
    // The volunteer itself is not refused: without a site it still gets work.
    let response = lease_through(&app, reader, None).await;
    assert_eq!(response.status(), StatusCode::OK);

    // A suspended account's sites stop taking part too.
    let other = alice
        .register_site(&app, "Shop", "https://shop.example")
        .await;
    let response = lease_through(&app, volunteer(2), Some(other.site_id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let admin = Account(format!("Bearer {ADMIN_TOKEN}"), 0);
    let suspended = admin
        .request(
            &app,
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{}", alice.1),
            Some(json!({ "suspended": true, "reason": "Its pages mine without asking." })),
        )
        .await;
    assert_eq!(suspended.status(), StatusCode::OK);
    let response = lease_through(&app, volunteer(2), Some(other.site_id)).await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::UnknownSite).await;
    assert!(public_site(&app, other.site_id).await.revoked);
    // Malformed site ids are the schema's business.
    let response = app
        .post_raw(
            "/api/v1/lease",
            Some("application/json"),
            json!({ "protocol": 1, "volunteer": reader.to_string(), "site": "seven" }).to_string(),
        )
        .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::MalformedRequest,
    )
    .await;
}

#[tokio::test]
async fn a_site_is_credited_only_when_its_visitors_results_are_validated() {
    let app = spawn_app(0).await;
    // Two agreeing results decide each unit, so a lone result earns nothing yet.
    let policy = JobPolicy {
        initial_replicas: 2,
        min_quorum: 2,
        ..crate::helpers::test_policy()
    };
    app.create_test_job(
        Inputs::Range {
            start: 0,
            end: 1,
            step: 1,
        },
        policy,
    )
    .await;
    let alice = register_account(&app, "Alice").await;
    let site = alice
        .register_site(&app, "Alice's blog", "https://blog.example")
        .await;
    let (reader, other) = (volunteer(1), volunteer(2));

    let response = lease_through(&app, reader, Some(site.site_id)).await;
    let mut leased: LeaseResponse = response.json().await.unwrap();
    let readers_lease = leased.leases.remove(0);
    let response = lease_through(&app, other, None).await;
    let mut leased: LeaseResponse = response.json().await.unwrap();
    let others_lease = leased.leases.remove(0);
    assert_eq!(readers_lease.unit, others_lease.unit);

    let readers_result = compute(reader, &readers_lease);
    app.submit(&readers_result).await;
    assert_eq!(public_site(&app, site.site_id).await.credit.results, 0);

    // The second, agreeing result decides the unit: both volunteers are credited, and the site
    // for its visitor's result only.
    app.submit(&compute(other, &others_lease)).await;
    let credit = public_site(&app, site.site_id).await.credit;
    assert_eq!(credit.results, 1);
    assert_eq!(credit.compute_ms, readers_result.compute_ms);
    assert_eq!(alice.sites(&app).await[0].credit, credit);
    for volunteer in [reader, other] {
        let standing: Value = app
            .client
            .get(app.url(&format!("/api/v1/volunteers/{volunteer}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(standing["credit"], 1, "{volunteer}");
    }
    // A retried submission earns nothing more.
    app.submit(&readers_result).await;
    assert_eq!(public_site(&app, site.site_id).await.credit.results, 1);
    // The site's credit is durable: it survives a restart.
    let app = app.restart().await;
    assert_eq!(public_site(&app, site.site_id).await.credit, credit);
}

#[tokio::test]
async fn a_caught_visitor_s_credit_is_taken_back_from_the_site() {
    let app = spawn_app(0).await;
    // The server knows every answer (re-execution), and one result decides a unit.
    let policy = JobPolicy {
        use_verify: false,
        reexecution_rate: 1.0,
        ..crate::helpers::test_policy()
    };
    app.create_test_job(
        Inputs::List((0..3u8).map(|i| vec![i, i + 1, i + 2]).collect()),
        policy,
    )
    .await;
    let alice = register_account(&app, "Alice").await;
    let site = alice
        .register_site(&app, "Alice's blog", "https://blog.example")
        .await;
    let (honest, cheat) = (volunteer(1), volunteer(2));
    let next_lease = async |volunteer| {
        let response = lease_through(&app, volunteer, Some(site.site_id)).await;
        let mut leased: LeaseResponse = response.json().await.unwrap();
        leased.leases.remove(0)
    };
    let lease = next_lease(honest).await;
    app.submit(&compute(honest, &lease)).await;
    // The cheater first answers right (credited, to the site too), then lies and is caught.
    let lease = next_lease(cheat).await;
    app.submit(&compute(cheat, &lease)).await;
    assert_eq!(public_site(&app, site.site_id).await.credit.results, 2);
    let lease = next_lease(cheat).await;
    app.expect_caught(cheat, &lease, b"lie".to_vec()).await;
    // Its credit is void, and the site keeps only what the honest visitor earned.
    let credit = public_site(&app, site.site_id).await.credit;
    assert_eq!((credit.results, credit.compute_ms), (1, 15));
}

/// A static directory with what the server checks for at start (placeholders) and the real
/// widget files.
fn pages_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a static directory");
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
    std::fs::create_dir_all(dir.path().join("pkg")).expect("creating pkg/");
    for placeholder in [
        "index.html",
        "worker.js",
        "pkg/cyclepool_web_client_bg.wasm",
    ] {
        std::fs::write(dir.path().join(placeholder), b"placeholder")
            .expect("writing a placeholder");
    }
    for file in ["embed.html", "embed.js"] {
        std::fs::copy(real.join(file), dir.path().join(file)).expect("copying a widget file");
    }
    dir
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn the_widget_page_may_be_framed_only_by_its_site_s_registered_origin() {
    let pages = pages_dir();
    let app = spawn_app_with_pages(pages.path()).await;
    let alice = register_account(&app, "Alice").await;
    let site = alice
        .register_site(&app, "Alice's shop", "http://127.0.0.2:8000")
        .await;
    let page = |query: String| {
        let url = app.url(&format!("/embed.html{query}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.expect("requesting the widget") }
    };

    let response = page(format!("?site={}&throttle=0.5&jobs=1,2", site.site_id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_security_headers(response.headers());
    let csp = header(&response, "content-security-policy").to_owned();
    assert!(
        csp.ends_with("; frame-ancestors http://127.0.0.2:8000"),
        "{csp}"
    );
    assert_eq!(csp.matches("frame-ancestors").count(), 1, "{csp}");
    assert!(csp.contains("connect-src 'self'") && csp.contains("default-src 'self'"));
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert_eq!(header(&response, CACHE_CONTROL.as_str()), "no-store");
    assert_eq!(
        header(&response, "cross-origin-resource-policy"),
        "same-origin"
    );
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        std::fs::read_to_string(pages.path().join("embed.html")).unwrap()
    );

    // No site, a malformed one, an unknown one: a plain page that nobody may frame.
    for (query, status) in [
        (String::new(), StatusCode::BAD_REQUEST),
        ("?site=abc".to_owned(), StatusCode::BAD_REQUEST),
        ("?site=-1".to_owned(), StatusCode::BAD_REQUEST),
        ("?site=99999999".to_owned(), StatusCode::NOT_FOUND),
    ] {
        let response = page(query.clone()).await;
        assert_eq!(response.status(), status, "{query}");
        assert!(
            header(&response, "content-security-policy").ends_with("frame-ancestors 'none'"),
            "{query}"
        );
        assert!(header(&response, "content-type").starts_with("text/html"));
    }

    // Revoked: the widget is no longer served for the site.
    assert_eq!(
        alice.revoke(&app, site.site_id).await.status(),
        StatusCode::OK
    );
    let response = page(format!("?site={}", site.site_id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(header(&response, "content-security-policy").ends_with("frame-ancestors 'none'"));
    let text = response.text().await.unwrap();
    assert!(text.contains("not registered"), "{text}");
}

#[tokio::test]
async fn embed_js_alone_may_be_loaded_from_other_origins() {
    let pages = pages_dir();
    let app = spawn_app_with_pages(pages.path()).await;
    let script = app.client.get(app.url("/embed.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_security_headers(script.headers());
    assert_eq!(
        header(&script, "cross-origin-resource-policy"),
        "cross-origin"
    );
    assert!(header(&script, "content-type").contains("javascript"));
    assert!(header(&script, "content-security-policy").ends_with("frame-ancestors 'self'"));
    // Minified like the portal's other scripts (`page_cache`).
    let source: PathBuf = pages.path().join("embed.js");
    let sent = script.text().await.unwrap();
    assert!(
        sent == cyclepool_server::minify::minify_js(&std::fs::read_to_string(source).unwrap()),
        "embed.js is not its source, minified"
    );
    // Everything else keeps the portal's own policies.
    for path in [
        "/index.html",
        "/worker.js",
        "/api/v1/health",
        "/no-such-file",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            header(&response, "cross-origin-resource-policy"),
            "same-origin",
            "{path}"
        );
        assert!(
            header(&response, "content-security-policy").ends_with("frame-ancestors 'self'"),
            "{path}"
        );
    }
}
