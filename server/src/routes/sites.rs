//! Embedding sites: a distributor account registers the web origin whose pages carry the
//! `embed.js` widget. Only that origin may frame the widget (`frame-ancestors`, `embed.rs`),
//! and its visitors' validated results are credited to the site as well as to them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cyclepool_shared::distributor::{PublicSite, RegisterSite, SiteCredit, SiteId, SiteInfo};
use cyclepool_shared::{ErrorBody, ErrorCode};

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson};
use crate::routes::openapi::{FORBIDDEN, NOT_JSON, TOO_LARGE, UNAUTHORIZED};
use crate::routes::{parse_number, text_field};
use crate::state::AppState;
use crate::store::{SiteRecord, SiteRegistration};

/// The most sites one account may register (revoked ones included: they keep their credit).
const MAX_SITES: usize = 100;
/// The longest origin, in bytes (an origin is ASCII once checked).
pub const MAX_ORIGIN_CHARS: usize = 200;

const BAD_SITE_ID: &str = "`invalid_value`: the site id is not a non-negative integer";
const NO_SITE: &str = "`unknown_site`: no such site";

/// `POST /api/v1/sites`: registers a site that may embed the widget.
#[utoipa::path(
    post,
    path = "/sites",
    tag = "sites",
    security(("bearer" = []), ("session" = [])),
    request_body = RegisterSite,
    responses(
        (status = 201, body = SiteInfo, description = "The site: put its `site_id` in the \
            `data-site` attribute of the embed script tag"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the name must have 1 to \
            100 characters, or the origin is not an http(s) origin as a browser writes it \
            (lower case, no path, query, fragment, user information or default port, at most \
            200 characters); `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the account already has a \
            site with this origin, or as many sites as it may"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn register_site(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterSite>,
) -> Result<(StatusCode, Json<SiteInfo>), ApiError> {
    let account = caller.account()?;
    let name = text_field("name", &request.name, 1, 100)?;
    check_origin(&request.origin).map_err(ApiError::invalid)?;
    if state.store.sites_owned_by(account.id)?.len() >= MAX_SITES {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("an account may register at most {MAX_SITES} sites"),
        ));
    }
    let site = SiteRecord {
        id: SiteId(state.store.new_id()?),
        owner: account.id,
        name,
        origin: request.origin,
        created_ms: state.clock.now_ms(),
        revoked: false,
    };
    if let SiteRegistration::Duplicate(existing) = state.store.register_site(&site)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "this account already registered {} as site {existing}",
                site.origin
            ),
        ));
    }
    state.store.durable().await?;
    Ok((
        StatusCode::CREATED,
        Json(site_info(&site, SiteCredit::default())),
    ))
}

/// `GET /api/v1/sites`: the caller's sites with their credit.
#[utoipa::path(
    get,
    path = "/sites",
    tag = "sites",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = Vec<SiteInfo>, description = "The caller's sites, revoked ones \
            included, oldest first"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn list_sites(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<SiteInfo>>, ApiError> {
    let account = caller.account()?;
    let mut sites = Vec::new();
    for site in state.store.sites_owned_by(account.id)? {
        let credit = credit_of(&state, site.id)?;
        sites.push(site_info(&site, credit));
    }
    Ok(Json(sites))
}

/// `GET /api/v1/sites/{id}` (public): a site's name, origin and credit. The widget shows it to
/// the site's visitors, and the embedder can check its credit without a token.
#[utoipa::path(
    get,
    path = "/sites/{id}",
    tag = "sites",
    security(),
    params(("id" = SiteId, Path, description = "The site's number")),
    responses(
        (status = 200, body = PublicSite, description = "The site and the credit its visitors \
            earned"),
        (status = 400, description = BAD_SITE_ID, body = ErrorBody),
        (status = 404, description = NO_SITE, body = ErrorBody),
    )
)]
pub async fn site(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PublicSite>, ApiError> {
    let id = SiteId(parse_number("site id", &id)?);
    let site = state.store.site(id)?.ok_or_else(|| unknown_site(id))?;
    let owner = state.store.account(site.owner)?;
    // A suspended (or deleted) account's sites do not take part, as `live_site` decides.
    let revoked = site.revoked || owner.as_ref().is_none_or(|owner| owner.suspended);
    Ok(Json(PublicSite {
        site_id: site.id,
        credit: credit_of(&state, site.id)?,
        name: site.name,
        origin: site.origin,
        registered_by: owner.map(|owner| owner.name).unwrap_or_default(),
        revoked,
    }))
}

/// `DELETE /api/v1/sites/{id}`: revokes one of the caller's sites at once.
#[utoipa::path(
    delete,
    path = "/sites/{id}",
    tag = "sites",
    security(("bearer" = []), ("session" = [])),
    params(("id" = SiteId, Path, description = "The site's number")),
    responses(
        (status = 200, body = SiteInfo, description = "The site, now revoked: its widget is no \
            longer served and leases naming it are refused"),
        (status = 400, description = BAD_SITE_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_SITE, body = ErrorBody),
    )
)]
pub async fn revoke_site(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SiteInfo>, ApiError> {
    let account = caller.account()?;
    let id = SiteId(parse_number("site id", &id)?);
    let site = state.store.site(id)?.ok_or_else(|| unknown_site(id))?;
    if site.owner != account.id {
        return Err(auth::forbidden(&format!(
            "site {id} belongs to another account"
        )));
    }
    let site = state
        .store
        .revoke_site(id)?
        .ok_or_else(|| unknown_site(id))?;
    state.store.durable().await?;
    Ok(Json(site_info(&site, credit_of(&state, id)?)))
}

/// The site `id` if it may take part now: registered, not revoked, and its account neither
/// deleted nor suspended. Else 404 `unknown_site`, which says no more (a revoked site and one
/// never registered look alike to a visitor).
pub fn live_site(state: &AppState, id: SiteId) -> Result<SiteRecord, ApiError> {
    let Some(site) = state.store.site(id)?.filter(|site| !site.revoked) else {
        return Err(unknown_site(id));
    };
    let owner = state.store.account(site.owner)?;
    if owner.is_none_or(|owner| owner.suspended) {
        return Err(unknown_site(id));
    }
    Ok(site)
}

/// Checks that `origin` is an http(s) origin exactly as a browser serializes it
/// (`location.origin`): `scheme://host[:port]`, lower case, without a default port, a path, a
/// query, a fragment or user information. The origin goes verbatim into a
/// `Content-Security-Policy` header, so only characters that cannot end a CSP source
/// expression pass: a–z, 0–9, `.`, `-`, and one `:` before the port.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let example = "write it as a browser does, like https://example.org or http://127.0.0.2:8000";
    if origin.len() > MAX_ORIGIN_CHARS {
        return Err(format!(
            "origin must have at most {MAX_ORIGIN_CHARS} characters"
        ));
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err(format!(
            "origin must start with http:// or https://; {example}"
        ));
    };
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return Err(format!("origin's scheme must be http or https; {example}")),
    };
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "origin must not have a path, query or fragment; {example}"
        ));
    }
    if authority.contains('@') {
        return Err("origin must not contain user information (user@)".into());
    }
    if authority.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("origin must be lower case; {example}"));
    }
    if let Some(bad) = authority
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | ':')))
    {
        return Err(format!(
            "origin's host may contain only a-z, 0-9, '.' and '-' (international names in \
             punycode, xn--…; no IPv6 literals), not {bad:?}"
        ));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port {
        let number = port
            .parse::<u16>()
            .ok()
            .filter(|number| *number > 0 && number.to_string() == port)
            .ok_or_else(|| {
                format!("origin's port must be a number from 1 to 65535, not {port:?}")
            })?;
        if number.to_string() == default_port {
            return Err(format!(
                "origin must omit the default port {default_port} of {scheme}; {example}"
            ));
        }
    }
    check_host(host).map_err(|reason| format!("origin's host {reason}; {example}"))
}

/// Checks a host name of dot-separated labels, or a dotted IPv4 address in its canonical form
/// (a host whose last label is a number is an IPv4 address to a browser, which would rewrite
/// `1.2.3` or `01.2.3.4`, so only the form it writes is accepted).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is missing".into());
    }
    if host.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.iter().any(|label| label.is_empty()) {
        return Err("has an empty label (two dots, or a dot at either end)".into());
    }
    let numeric = |label: &&str| label.chars().all(|c| c.is_ascii_digit());
    if labels.last().is_some_and(numeric) {
        let canonical = labels.len() == 4
            && labels.iter().all(|label| {
                numeric(label)
                    && label
                        .parse::<u8>()
                        .is_ok_and(|octet| octet.to_string() == *label)
            });
        return if canonical {
            Ok(())
        } else {
            Err("is not an IPv4 address of four numbers from 0 to 255".into())
        };
    }
    for label in labels {
        if label.len() > 63 {
            return Err(format!("has a label longer than 63 characters: {label:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has a label that starts or ends with '-': {label:?}"
            ));
        }
    }
    Ok(())
}

fn credit_of(state: &AppState, id: SiteId) -> Result<SiteCredit, ApiError> {
    let credit = state.store.site_credit(id)?;
    Ok(SiteCredit {
        results: credit.results,
        compute_ms: credit.compute_ms,
    })
}

fn site_info(site: &SiteRecord, credit: SiteCredit) -> SiteInfo {
    SiteInfo {
        site_id: site.id,
        name: site.name.clone(),
        origin: site.origin.clone(),
        created_ms: site.created_ms,
        revoked: site.revoked,
        credit,
    }
}

/// 404 [`ErrorCode::UnknownSite`].
pub fn unknown_site(id: SiteId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownSite,
        format!("site {id} is not a registered embedding site (unknown, or revoked)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_as_browsers_write_them_pass() {
        for origin in [
            "https://example.org",
            "http://127.0.0.2:8000",
            "https://blog.example.co.uk",
            "http://localhost:3000",
            "https://xn--bcher-kva.example",
            "https://a-b.example:8443",
            "http://10.0.0.1",
            "https://0.0.0.0:1",
        ] {
            assert_eq!(check_origin(origin), Ok(()), "{origin}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        let long = format!("https://{}.example", "a".repeat(200));
        for (origin, reason) in [
            ("", "http:// or https://"),
            ("example.org", "http:// or https://"),
            ("javascript:alert(1)", "http:// or https://"),
            ("javascript://example.org", "scheme must be http or https"),
            ("ftp://example.org", "scheme must be http or https"),
            ("HTTPS://example.org", "scheme must be http or https"),
            ("https://Example.org", "lower case"),
            ("http://a/b", "path"),
            ("http://a/", "path"),
            ("http://a?x", "path, query or fragment"),
            ("http://a#x", "path, query or fragment"),
            ("http://user@a", "user information"),
            ("http://user:pw@a", "user information"),
            ("https://bücher.example", "only a-z"),
            ("https://*.example", "only a-z"),
            ("http://[::1]", "only a-z"),
            ("https://a.example; script-src *", "only a-z"),
            ("https://a.example 'unsafe-inline'", "only a-z"),
            ("https://a,b", "only a-z"),
            ("https://", "missing"),
            ("https://:8000", "missing"),
            ("https://example.org:", "port"),
            ("https://example.org:0", "port"),
            ("https://example.org:65536", "port"),
            ("https://example.org:080", "port"),
            ("https://example.org:1:2", "port"),
            ("https://example.org:443", "default port"),
            ("http://example.org:80", "default port"),
            ("https://example.org.", "empty label"),
            ("https://a..b", "empty label"),
            ("https://-a.example", "'-'"),
            ("http://1.2.3", "IPv4"),
            ("http://01.2.3.4", "IPv4"),
            ("http://256.1.1.1", "IPv4"),
            ("http://example.123", "IPv4"),
            (long.as_str(), "at most 200"),
        ] {
            let refused = check_origin(origin).expect_err(origin);
            assert!(refused.contains(reason), "{origin}: {refused}");
        }
    }
}
