//! Who may call the distributor API: holders of the admin token, sent as
//! `Authorization: Bearer <token>` (never in a URL).
//!
//! The token is 32 bytes from the OS CSPRNG, shown once when created; the store keeps only
//! its SHA-256. Distributor accounts with their own tokens come with the dashboard.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use cyclepool_shared::{ErrorCode, Sha256Digest, hex};
use rand::TryRngCore as _;

use crate::error::ApiError;
use crate::state::AppState;

/// The prefix of every token, so that a leaked one is easy to recognise and search for.
pub const TOKEN_PREFIX: &str = "cp_admin_";

/// A new random token and its hash (to store).
pub fn new_token() -> Result<(String, Sha256Digest), std::io::Error> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(&secret));
    let hash = Sha256Digest::of(token.as_bytes());
    Ok((token, hash))
}

/// Proof that the request carried the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            // The scheme name is case-insensitive (RFC 7235); the token is not.
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| unauthorized("this endpoint needs an `Authorization: Bearer` token"))?;
        let Some(expected) = state.admin_token_hash else {
            return Err(unauthorized("no admin token is set on this server"));
        };
        // Comparing digests of a high-entropy secret: timing reveals nothing useful, but the
        // comparison is constant-time anyway.
        let actual = Sha256Digest::of(presented.trim().as_bytes());
        let difference = actual
            .as_bytes()
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(unauthorized("the token is not valid"));
        }
        Ok(Admin)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}
