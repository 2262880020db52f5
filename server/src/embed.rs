//! The embedding widget's two files, each with the headers its use needs:
//!
//! - `/embed.js`, the script other sites load with `<script src>`: the only response with
//!   `Cross-Origin-Resource-Policy: cross-origin`, since a cross-origin classic script is a
//!   no-cors load that `same-origin` would block;
//! - `/embed.html?site=N`, the widget page that script frames: its `frame-ancestors` is exactly
//!   the origin registered for site N, so no other site can frame it (or overlay it to trick a
//!   consent click). An unknown or revoked site gets a plain 404 page that nobody may frame.
//!
//! Every other header (the rest of the CSP, `nosniff`, ...) comes from the common layers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cyclepool_shared::distributor::SiteId;
use tower::ServiceBuilder;
use tower_http::services::ServeFile;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::ApiError;
use crate::page_cache::{PageCache, send_prepared};
use crate::routes::sites::live_site;
use crate::state::AppState;
use crate::web::CONTENT_SECURITY_POLICY;

/// The CSP's last directive on every other response, replaced on the widget page.
const DEFAULT_FRAME_ANCESTORS: &str = "frame-ancestors 'self'";

/// The widget page's query: only `site` matters to the server; the page reads the rest.
#[derive(Debug, serde::Deserialize)]
pub struct WidgetQuery {
    site: Option<String>,
}

/// The routes of `/embed.js` and `/embed.html`, serving the files of `static_dir`.
pub fn routes(static_dir: &Path, pages: Arc<PageCache>) -> Router<AppState> {
    let script = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ))
        // Revalidated like the other pages, so a fixed widget reaches every site at once.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        // Minified and compressed like the portal's other scripts.
        .layer(axum::middleware::from_fn_with_state(pages, send_prepared))
        .service(ServeFile::new(static_dir.join("embed.js")));
    let page = static_dir.join("embed.html");
    Router::new().route_service("/embed.js", script).route(
        "/embed.html",
        get(move |state: State<AppState>, query: Query<WidgetQuery>| {
            widget_page(state, query, page.clone())
        }),
    )
}

/// `GET /embed.html?site=N`: the widget, frameable only by site N's registered origin.
async fn widget_page(
    State(state): State<AppState>,
    Query(query): Query<WidgetQuery>,
    page: PathBuf,
) -> Result<Response, ApiError> {
    let Some(site) = query.site.as_deref() else {
        return Ok(refusal(
            StatusCode::BAD_REQUEST,
            "This widget needs a site: embed it with the data-site attribute of the script tag.",
        ));
    };
    let Ok(site) = site.parse::<u64>().map(SiteId) else {
        return Ok(refusal(
            StatusCode::BAD_REQUEST,
            "The site of this widget must be a site number.",
        ));
    };
    let site = match live_site(&state, site) {
        Ok(site) => site,
        Err(err) if err.status() == StatusCode::NOT_FOUND => {
            return Ok(refusal(
                StatusCode::NOT_FOUND,
                "This site is not registered with this portal (or its registration was \
                 revoked), so the widget is not shown here.",
            ));
        }
        Err(err) => return Err(err),
    };
    let html = match tokio::fs::read(&page).await {
        Ok(html) => html,
        Err(err) => {
            tracing::error!(error = %err, path = %page.display(), "cannot read the widget page");
            return Err(ApiError::for_status(StatusCode::NOT_FOUND));
        }
    };
    // The origin passed `check_origin` at registration: only a-z, 0-9, '.', '-', ':' and
    // "://", so it cannot end the directive or add another.
    let csp = HeaderValue::from_str(&widget_csp(&site.origin)).map_err(|err| {
        tracing::error!(error = %err, site = %site.id, "a site origin is not a header value");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
            // The header depends on the registration, which can be revoked at any time.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response())
}

/// The portal's CSP with `frame-ancestors` set to `ancestors`.
fn widget_csp(ancestors: &str) -> String {
    let base = CONTENT_SECURITY_POLICY
        .strip_suffix(DEFAULT_FRAME_ANCESTORS)
        .unwrap_or(CONTENT_SECURITY_POLICY);
    format!("{base}frame-ancestors {ancestors}")
}

/// A plain page saying why there is no widget, which no page may frame: an embedder sees its
/// frame refused, and a person opening the address sees the reason.
fn refusal(status: StatusCode, reason: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <title>Cyclepool widget unavailable</title></head>\n\
         <body><h1>Cyclepool widget unavailable</h1><p>{reason}</p>\
         <p><a href=\"/\">The portal's own page</a> explains what it computes.</p></body>\n\
         </html>\n"
    );
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_str(&widget_csp("'none'"))
                    .unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widget_csp_differs_from_the_portal_s_only_in_frame_ancestors() {
        assert!(CONTENT_SECURITY_POLICY.ends_with(DEFAULT_FRAME_ANCESTORS));
        let csp = widget_csp("https://blog.example");
        assert!(
            csp.ends_with("; frame-ancestors https://blog.example"),
            "{csp}"
        );
        assert_eq!(csp.matches("frame-ancestors").count(), 1);
        assert_eq!(
            csp.replace("https://blog.example", "'self'"),
            CONTENT_SECURITY_POLICY
        );
    }
}
