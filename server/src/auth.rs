//! Who is calling the distributor API: the portal's admin, or a distributor account.
//!
//! Credentials travel in headers only, never in URLs:
//! - `Authorization: Bearer <token>`: the admin token, or one of an account's API tokens
//!   (the CLI, scripts);
//! - the dashboard's session cookie (`HttpOnly; SameSite=Strict`), made by `POST /session`
//!   with a token. A state-changing request made with the cookie must also carry the
//!   session's CSRF token in `X-Cyclepool-CSRF` and, when the browser sends one, an
//!   `Origin` equal to the portal's own: a page on another origin can do neither.
//!
//! Every secret is 32 bytes from the OS CSPRNG; the store keeps only SHA-256 digests.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use cyclepool_shared::distributor::{AccountId, CSRF_HEADER, SESSION_COOKIE};
use cyclepool_shared::{ErrorCode, Sha256Digest, hex};
use rand::TryRngCore as _;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AccountRecord, JobRecord, SessionRecord};

/// The prefix of the admin token, so that a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "cp_admin_";
/// The prefix of distributors' API tokens.
pub const API_TOKEN_PREFIX: &str = "cp_token_";
/// The prefix of group invitations.
pub const INVITE_PREFIX: &str = "cp_invite_";

/// A new random admin token and its hash (to store).
pub fn new_token() -> Result<(String, Sha256Digest), std::io::Error> {
    new_secret(TOKEN_PREFIX)
}

/// A new random secret with `prefix`, and its hash (to store).
pub fn new_secret(prefix: &str) -> Result<(String, Sha256Digest), std::io::Error> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let token = format!("{prefix}{}", hex::encode(&secret));
    let hash = Sha256Digest::of(token.as_bytes());
    Ok((token, hash))
}

/// The CSRF token of a session: derived from the session's secret, so the server keeps
/// nothing more, and only a holder of the cookie can know it.
pub fn csrf_token(session_secret: &str) -> String {
    let mut material = b"cyclepool/csrf/v1\0".to_vec();
    material.extend_from_slice(session_secret.as_bytes());
    Sha256Digest::of(&material).to_string()
}

/// An authenticated caller of the distributor API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The portal's operator: sees and manages every job.
    Admin,
    /// A distributor: sees and manages its own jobs and groups.
    Distributor(AccountRecord),
}

impl Caller {
    /// The caller's account, if it is a distributor.
    pub fn account_id(&self) -> Option<AccountId> {
        match self {
            Caller::Admin => None,
            Caller::Distributor(account) => Some(account.id),
        }
    }

    /// Whether the caller may read and change `job`.
    pub fn owns(&self, job: &JobRecord) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Distributor(account) => job.owner == Some(account.id),
        }
    }

    /// The caller's account, or 403 for the admin (which has none).
    pub fn account(&self) -> Result<&AccountRecord, ApiError> {
        match self {
            Caller::Admin => Err(forbidden(
                "the admin token has no account; use a distributor's token",
            )),
            Caller::Distributor(account) => Ok(account),
        }
    }
}

/// Proof that the request carried the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::Distributor(_) => Err(forbidden("this endpoint is for the portal's admin")),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let now = state.clock.now_ms();
        if let Some(token) = bearer_token(parts)? {
            let caller = caller_for_token(state, token)?;
            // Counted once valid: an unknown token is the address limit's business.
            state
                .limiters
                .check_credential(Sha256Digest::of(token.as_bytes()), now)?;
            return Ok(caller);
        }
        if let Some(secret) = session_cookie(parts) {
            let session = live_session(state, secret)?;
            if !is_safe(&parts.method) {
                check_csrf(parts, secret)?;
            }
            state
                .limiters
                .check_credential(Sha256Digest::of(secret.as_bytes()), now)?;
            return active_account(state, session.account).map(Caller::Distributor);
        }
        Err(unauthorized(
            "this endpoint needs an `Authorization: Bearer` token or a dashboard session",
        ))
    }
}

/// The session secret from the request's cookie, if any.
pub fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The bearer token, if the request has an `Authorization` header; 401 if it is malformed.
fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        // The scheme name is case-insensitive (RFC 7235); the token is not.
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Some(token.trim()))
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// Resolves a bearer token: the admin's, or an unrevoked API token of an active account.
pub fn caller_for_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let presented = Sha256Digest::of(token.as_bytes());
    if state
        .admin_token_hash
        .is_some_and(|expected| constant_time_eq(presented.as_bytes(), expected.as_bytes()))
    {
        return Ok(Caller::Admin);
    }
    // Looked up by digest: the lookup reveals nothing about the secret.
    let record = state
        .store
        .token(presented)?
        .filter(|token| !token.revoked)
        .ok_or_else(|| unauthorized("the token is not valid (unknown or revoked)"))?;
    active_account(state, record.account).map(Caller::Distributor)
}

/// The session whose cookie carries `secret`, if it exists and has not expired; else 401.
pub fn live_session(state: &AppState, secret: &str) -> Result<SessionRecord, ApiError> {
    state
        .store
        .session(Sha256Digest::of(secret.as_bytes()))?
        .filter(|session| session.expires_ms > state.clock.now_ms())
        .ok_or_else(|| unauthorized("the session has ended; sign in again"))
}

/// A new random secret with `prefix` and its hash, for an API answer: a failing OS random
/// number generator is logged and answered with 500.
pub fn api_secret(prefix: &str) -> Result<(String, Sha256Digest), ApiError> {
    new_secret(prefix).map_err(|err| {
        tracing::error!(error = %err, "the OS random number generator failed");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
    })
}

/// The account `id` if it still exists (else 401) and is not suspended (else 403).
pub fn active_account(state: &AppState, id: AccountId) -> Result<AccountRecord, ApiError> {
    let account = state
        .store
        .account(id)?
        .ok_or_else(|| unauthorized("the account no longer exists"))?;
    if account.suspended {
        return Err(forbidden(
            "this account is suspended by the portal; contact its operator",
        ));
    }
    Ok(account)
}

fn check_csrf(parts: &Parts, session_secret: &str) -> Result<(), ApiError> {
    let expected = csrf_token(session_secret);
    let presented = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CsrfRejected,
            format!(
                "a request made with the session cookie must send the session's CSRF token in `{CSRF_HEADER}`"
            ),
        ));
    }
    // Defence in depth: browsers send `Origin` on cross-origin (and most same-origin)
    // state-changing requests; it must name this host.
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or_default();
        if host.is_empty() || origin_host != host {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfRejected,
                "the request comes from another origin",
            ));
        }
    }
    Ok(())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares two byte strings in time that depends only on their length. Timing could
/// reveal little about high-entropy secrets anyway, but this costs nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 401 with [`ErrorCode::Unauthorized`].
pub fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

/// 403 with [`ErrorCode::Forbidden`].
pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
}
