//! Cross-cutting HTTP layers: security headers on every response, static files, timeouts,
//! compression, and JSON bodies on every error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ensure_json_errors;
use crate::page_cache::{PageCache, send_prepared};

/// The Content-Security-Policy on every response, scripts and worker scripts included
/// (a worker obeys the CSP of its own script response, not the page's).
/// Connections go to the origin only; wasm may compile; only the portal itself may frame
/// its pages (the embed widget's page alone is framed by its site's registered origin,
/// `embed.rs`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
     script-src 'self' 'wasm-unsafe-eval'; \
     connect-src 'self'; \
     worker-src 'self'; \
     img-src 'self'; \
     style-src 'self'; \
     font-src 'self'; \
     frame-src 'self'; \
     object-src 'none'; \
     base-uri 'none'; \
     form-action 'self'; \
     frame-ancestors 'self'";

/// The file whose absence means the web client was never built.
pub const WEB_CLIENT_WASM: &str = "pkg/cyclepool_web_client_bg.wasm";

/// The pages and the web client are not where the server was told to look.
#[derive(Debug, thiserror::Error)]
#[error("web client not built: {missing} is missing; run `cargo xtask build` (or pass --api-only)")]
pub struct WebAssetsMissing {
    missing: PathBuf,
}

/// Checks that `static_dir` holds the pages and the built web client.
pub fn check_web_assets(static_dir: &Path) -> Result<(), WebAssetsMissing> {
    for file in ["index.html", "worker.js", WEB_CLIENT_WASM] {
        let path = static_dir.join(file);
        if !path.is_file() {
            return Err(WebAssetsMissing { missing: path });
        }
    }
    Ok(())
}

/// Serves the files of `static_dir` for every path the API does not claim.
pub fn with_static_files(router: Router, static_dir: &Path, pages: Arc<PageCache>) -> Router {
    // The web client's module comes with `.br` and `.gz` beside it (`cargo xtask web`), made
    // at the best levels, which compressing on the fly cannot afford.
    let files = ServeDir::new(static_dir)
        .append_index_html_on_directories(true)
        .precompressed_br()
        .precompressed_gzip();
    router.fallback_service(
        ServiceBuilder::new()
            // The pages, scripts and styles are minified and compressed once per version
            // (`page_cache`); the layer leaves what is sent precompressed alone.
            .layer(middleware::from_fn_with_state(pages, send_prepared))
            // Pages change with every deploy; revalidating is cheap (Last-Modified).
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ))
            .service(files),
    )
}

/// Wraps the whole app in the layers every response goes through.
/// `request_timeout` bounds reading the request and making the response's head (408 after it).
pub fn with_common_layers(router: Router, request_timeout: Duration) -> Router {
    let security_headers = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ),
    ];
    // The JSON error layer wraps the timeout, so that a 408 gets its JSON body too.
    let mut router = router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::map_response(ensure_json_errors))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http());
    for (name, value) in security_headers {
        let value = HeaderValue::from_static(value);
        // The embed widget's files (`embed.rs`) set their own frame-ancestors and resource
        // policy; no other handler sets these two, so everything else gets the defaults.
        router = if name == header::CONTENT_SECURITY_POLICY
            || name == HeaderName::from_static("cross-origin-resource-policy")
        {
            router.layer(SetResponseHeaderLayer::if_not_present(name, value))
        } else {
            router.layer(SetResponseHeaderLayer::overriding(name, value))
        };
    }
    router
}
