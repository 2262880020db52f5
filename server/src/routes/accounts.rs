//! Distributor accounts: registration, API tokens, dashboard sessions and signing keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cyclepool_shared::distributor::{
    AcceptTerms, AccountCreated, AccountId, AccountInfo, CreateToken, DistributorKeyInfo,
    RegisterAccount, RegisterKey, SESSION_COOKIE, SessionInfo, TERMS_VERSION, TokenCreated,
    TokenInfo,
};
use cyclepool_shared::signing::is_usable_key;
use cyclepool_shared::{ErrorBody, ErrorCode, KeyId, Sha256Digest};

use crate::auth::{self, API_TOKEN_PREFIX, Caller};
use crate::error::{ApiError, ApiJson};
use crate::limits::{RateLimited, Registration, SignIn};
use crate::routes::openapi::{FORBIDDEN, NOT_JSON, TOO_LARGE, UNAUTHORIZED};
use crate::routes::{parse_number, text_field};
use crate::state::AppState;
use crate::store::{AccountRecord, SessionRecord, TermsAcceptance, TokenRecord};

/// How long a dashboard session lasts.
pub const SESSION_LIFETIME_MS: u64 = 12 * 60 * 60 * 1_000;
/// The most tokens (revoked included) and keys one account may have.
const MAX_TOKENS: usize = 100;
const MAX_KEYS: usize = 20;

/// `POST /api/v1/accounts`: registers a distributor and returns its first API token.
#[utoipa::path(
    post,
    path = "/accounts",
    tag = "accounts",
    security(),
    request_body = RegisterAccount,
    responses(
        (status = 201, body = AccountCreated, description = "The account and its first API token, \
            whose secret is shown only here"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: a field is too short, too \
            long or has control characters; `malformed_request`"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many from this address; wait `Retry-After` seconds"),
    )
)]
pub async fn register(
    _limit: RateLimited<Registration>,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterAccount>,
) -> Result<(StatusCode, Json<AccountCreated>), ApiError> {
    let name = text_field("name", &request.name, 1, 100)?;
    let contact = text_field("contact", &request.contact, 3, 200)?;
    let organisation = text_field("organisation", &request.organisation, 1, 200)?;
    let purpose = text_field("purpose", &request.purpose, 10, 2_000)?;
    let now = state.clock.now_ms();
    let account = AccountRecord {
        id: AccountId(state.store.new_id()?),
        name,
        contact,
        organisation,
        purpose,
        created_ms: now,
        suspended: false,
        keys: Vec::new(),
        trusted: false,
        terms_accepted: request.accept_terms.then_some(TermsAcceptance {
            version: TERMS_VERSION,
            at_ms: now,
        }),
    };
    let (secret, hash) = auth::api_secret(API_TOKEN_PREFIX)?;
    let token = TokenRecord {
        token_id: state.store.new_id()?,
        account: account.id,
        label: "first token".into(),
        created_ms: now,
        revoked: false,
    };
    state.store.create_account(&account, hash, &token)?;
    state.store.durable().await?;
    tracing::info!(account = %account.id, name = %account.name, "distributor registered");
    Ok((
        StatusCode::CREATED,
        Json(AccountCreated {
            account: account_info(&account),
            token: TokenCreated {
                info: token_info(&token),
                secret,
            },
        }),
    ))
}

/// `GET /api/v1/account`: the caller's account.
#[utoipa::path(
    get,
    path = "/account",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The caller's account", body = AccountInfo),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn account(caller: Caller) -> Result<Json<AccountInfo>, ApiError> {
    Ok(Json(account_info(caller.account()?)))
}

/// `GET /api/v1/tokens`: the caller's API tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = Vec<TokenInfo>, description = "The caller's API tokens, never their \
            secrets"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn list_tokens(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let account = caller.account()?;
    let tokens = state.store.tokens_of(account.id)?;
    Ok(Json(tokens.iter().map(token_info).collect()))
}

/// `POST /api/v1/tokens`: a new API token, whose secret is shown only in this answer.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, body = TokenCreated, description = "The new token; its secret is shown only \
            here"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the label must have 1 to \
            100 characters; `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the account has as many tokens \
            as it may"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn create_token(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let account = caller.account()?;
    let label = text_field("label", &request.label, 1, 100)?;
    if state.store.tokens_of(account.id)?.len() >= MAX_TOKENS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("an account may have at most {MAX_TOKENS} tokens"),
        ));
    }
    let (secret, hash) = auth::api_secret(API_TOKEN_PREFIX)?;
    let token = TokenRecord {
        token_id: state.store.new_id()?,
        account: account.id,
        label,
        created_ms: state.clock.now_ms(),
        revoked: false,
    };
    state.store.put_token(hash, &token)?;
    state.store.durable().await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: token_info(&token),
            secret,
        }),
    ))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens at once.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    params(("id" = u64, Path, description = "The token's `token_id`")),
    responses(
        (status = 200, body = TokenInfo, description = "The token, now revoked: it stops working \
            at once"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the id is not a \
            non-negative integer"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, body = ErrorBody,
            description = "`not_found`: the account has no such token"),
    )
)]
pub async fn revoke_token(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let account = caller.account()?;
    let id = parse_number("token id", &id)?;
    let token = state.store.revoke_token(account.id, id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("your account has no token {id}"),
        )
    })?;
    state.store.durable().await?;
    Ok(Json(token_info(&token)))
}

/// `POST /api/v1/session`: exchanges an API token (in the `Authorization` header) for a
/// dashboard session cookie. The token itself is not kept by the browser.
#[utoipa::path(
    post,
    path = "/session",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 201, body = SessionInfo, description = "Signed in: the session, its CSRF token \
            and when it ends",
            headers(("Set-Cookie" = String,
                description = "`cyclepool_session=…; Path=/; HttpOnly; SameSite=Strict`"))),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`forbidden`: the admin token has no \
            account, or the account is suspended"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many from this address; wait `Retry-After` seconds"),
    )
)]
pub async fn create_session(
    _limit: RateLimited<SignIn>,
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let account = caller.account()?.clone();
    let (secret, hash) = auth::api_secret("")?;
    let now = state.clock.now_ms();
    let session = SessionRecord {
        account: account.id,
        created_ms: now,
        expires_ms: now.saturating_add(SESSION_LIFETIME_MS),
    };
    state.store.put_session(hash, &session)?;
    // Sign-ins are rare: a good moment to forget sessions that ended.
    state.store.prune_sessions(now)?;
    state.store.durable().await?;
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME_MS / 1_000,
        if state.secure_cookies { "; Secure" } else { "" }
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie)
            .map_err(|_| ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let info = SessionInfo {
        account: account_info(&account),
        csrf_token: auth::csrf_token(&secret),
        expires_ms: session.expires_ms,
    };
    Ok((StatusCode::CREATED, headers, Json(info)).into_response())
}

/// `GET /api/v1/session`: who the session cookie belongs to, and its CSRF token.
#[utoipa::path(
    get,
    path = "/session",
    tag = "accounts",
    security(("session" = [])),
    responses(
        (status = 200, body = SessionInfo, description = "Who the session belongs to, and its CSRF \
            token"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: not signed in, or the \
            session ended"),
        (status = 403, description = "`forbidden`: the account is suspended", body = ErrorBody),
    )
)]
pub async fn session(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let secret = auth::session_cookie(&parts).ok_or_else(|| auth::unauthorized("not signed in"))?;
    let session = auth::live_session(&state, secret)?;
    let account = auth::active_account(&state, session.account)?;
    let info = SessionInfo {
        account: account_info(&account),
        csrf_token: auth::csrf_token(secret),
        expires_ms: session.expires_ms,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response())
}

/// `DELETE /api/v1/session`: signs out (the cookie and the stored session both go).
#[utoipa::path(
    delete,
    path = "/session",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Signed out: the session is deleted and the cookie cleared",
            headers(("Set-Cookie" = String, description = "Clears `cyclepool_session`"))),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn end_session(
    _caller: Caller,
    State(state): State<AppState>,
    parts: Parts,
) -> Result<Response, ApiError> {
    if let Some(secret) = auth::session_cookie(&parts) {
        state
            .store
            .delete_session(Sha256Digest::of(secret.as_bytes()))?;
        state.store.durable().await?;
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `POST /api/v1/account/keys`: registers an ed25519 key that signs the caller's job
/// declarations.
#[utoipa::path(
    post,
    path = "/account/keys",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    request_body = RegisterKey,
    responses(
        (status = 201, body = DistributorKeyInfo, description = "The key, registered to sign the \
            account's job declarations"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: not a usable ed25519 key, \
            or the label is too long; `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the key is already registered, \
            or the account has as many keys as it may"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn register_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterKey>,
) -> Result<(StatusCode, Json<DistributorKeyInfo>), ApiError> {
    let account = caller.account()?;
    if !is_usable_key(&request.public_key) {
        return Err(ApiError::invalid(
            "public_key is not a usable ed25519 key (invalid or small-order point)",
        ));
    }
    let label = text_field("label", &request.label, 0, 100)?;
    let key_id = KeyId::of(&request.public_key);
    if let Some((owner, _)) = state.store.key_owner(key_id)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            if owner.id == account.id {
                format!("key {key_id} is already registered to your account")
            } else {
                format!("key {key_id} is registered to another account")
            },
        ));
    }
    let info = DistributorKeyInfo {
        key_id,
        public_key: request.public_key,
        label,
        created_ms: state.clock.now_ms(),
        revoked: false,
    };
    let added = state
        .store
        .update_account(account.id, |account| {
            if account.keys.len() >= MAX_KEYS {
                return false;
            }
            account.keys.push(info.clone());
            true
        })?
        .is_some_and(|(_, added)| added);
    if !added {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("an account may have at most {MAX_KEYS} keys"),
        ));
    }
    state.store.durable().await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `DELETE /api/v1/account/keys/{key_id}`: revokes one of the caller's keys; new jobs can no
/// longer be declared with it, and the jobs it declared are withdrawn (clients refuse them).
#[utoipa::path(
    delete,
    path = "/account/keys/{key_id}",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    params(("key_id" = KeyId, Path, description = "The key's id")),
    responses(
        (status = 200, body = DistributorKeyInfo, description = "The key, now revoked: new jobs \
            can no longer be declared with it, the jobs it declared are withdrawn, and the \
            revocation is in the public log"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: not a key id (16 hex \
            digits)"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`not_found`: the account has no such key", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    caller: Caller,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> Result<Json<DistributorKeyInfo>, ApiError> {
    let account = caller.account()?;
    let key_id: KeyId = key_id
        .parse()
        .map_err(|err| ApiError::invalid(format!("{err}")))?;
    let revoked = crate::review::revoke_key(
        &state.store,
        &state.scheduler,
        state.keyring.current(),
        account.id,
        key_id,
        "revoked by its distributor",
    )?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("your account has no key {key_id}"),
        )
    })?;
    state.store.durable().await?;
    Ok(Json(revoked))
}

/// `POST /api/v1/account/terms`: the caller accepts the portal's current distributor terms
/// (`/terms.html`), which publishing a job needs.
#[utoipa::path(
    post,
    path = "/account/terms",
    tag = "accounts",
    security(("bearer" = []), ("session" = [])),
    request_body = AcceptTerms,
    responses(
        (status = 200, body = AccountInfo, description = "The account, with the terms accepted"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: not the current version \
            of the terms; `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn accept_terms(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AcceptTerms>,
) -> Result<Json<AccountInfo>, ApiError> {
    let account = caller.account()?;
    if request.version != TERMS_VERSION {
        return Err(ApiError::invalid(format!(
            "the current terms are version {TERMS_VERSION}, not {}; read /terms.html",
            request.version
        )));
    }
    let now = state.clock.now_ms();
    let (updated, ()) = state
        .store
        .update_account(account.id, |account| {
            account.terms_accepted = Some(TermsAcceptance {
                version: TERMS_VERSION,
                at_ms: now,
            });
        })?
        .ok_or_else(|| auth::forbidden("the account no longer exists"))?;
    state.store.durable().await?;
    Ok(Json(account_info(&updated)))
}

/// An account as the API shows it.
pub fn account_info(account: &AccountRecord) -> AccountInfo {
    AccountInfo {
        account_id: account.id,
        name: account.name.clone(),
        contact: account.contact.clone(),
        organisation: account.organisation.clone(),
        purpose: account.purpose.clone(),
        created_ms: account.created_ms,
        suspended: account.suspended,
        keys: account.keys.clone(),
        trusted: account.trusted,
        terms_accepted: account.terms_accepted.map(|terms| terms.version),
    }
}

fn token_info(token: &TokenRecord) -> TokenInfo {
    TokenInfo {
        token_id: token.token_id,
        label: token.label.clone(),
        created_ms: token.created_ms,
        revoked: token.revoked,
    }
}
