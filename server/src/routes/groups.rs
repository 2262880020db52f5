//! Restricted groups: a distributor's private set of volunteers, joined with a secret
//! invitation or listed by key. A job in a group is leased only to its members, and only to
//! requests that prove they hold the member's key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cyclepool_shared::distributor::{
    AddMembers, CreateGroup, GroupCreated, GroupId, GroupInfo, GroupJoined, JoinGroup, join_message,
};
use cyclepool_shared::manifest::CLOCK_SKEW_MS;
use cyclepool_shared::signing::{self, Purpose};
use cyclepool_shared::{ErrorBody, ErrorCode, PublicKey, Sha256Digest, VolunteerId};

use crate::auth::{self, Caller, INVITE_PREFIX};
use crate::error::{ApiError, ApiJson};
use crate::limits::{Join, RateLimited};
use crate::routes::openapi::{FORBIDDEN, NO_GROUP, NOT_JSON, TOO_LARGE, UNAUTHORIZED};
use crate::routes::{parse_number, text_field};
use crate::state::AppState;
use crate::store::GroupRecord;

/// The most members one request may add.
pub const MAX_MEMBERS_PER_REQUEST: usize = 1_000;
/// The most groups one account may own.
const MAX_GROUPS: usize = 100;

/// `POST /api/v1/groups`: creates a group; its invitation is shown only in this answer.
#[utoipa::path(
    post,
    path = "/groups",
    tag = "groups",
    security(("bearer" = []), ("session" = [])),
    request_body = CreateGroup,
    responses(
        (status = 201, body = GroupCreated, description = "The group and its invitation secret, \
            shown only here"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the name must have 1 to \
            100 characters; `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the account owns as many \
            groups as it may"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn create_group(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateGroup>,
) -> Result<(StatusCode, Json<GroupCreated>), ApiError> {
    let account = caller.account()?;
    let name = text_field("name", &request.name, 1, 100)?;
    if state.store.groups_owned_by(account.id)?.len() >= MAX_GROUPS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("an account may own at most {MAX_GROUPS} groups"),
        ));
    }
    let (invite, invite_sha256) = auth::api_secret(INVITE_PREFIX)?;
    let group = GroupRecord {
        id: GroupId(state.store.new_id()?),
        owner: account.id,
        name,
        created_ms: state.clock.now_ms(),
        invite_sha256,
    };
    state.store.create_group(&group)?;
    state.store.durable().await?;
    Ok((
        StatusCode::CREATED,
        Json(GroupCreated {
            group: group_info(&group, Vec::new()),
            invite,
        }),
    ))
}

/// `GET /api/v1/groups`: the caller's groups with their members.
#[utoipa::path(
    get,
    path = "/groups",
    tag = "groups",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = Vec<GroupInfo>, description = "The caller's groups with their \
            members"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn list_groups(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<GroupInfo>>, ApiError> {
    let account = caller.account()?;
    let mut groups = Vec::new();
    for group in state.store.groups_owned_by(account.id)? {
        let members = state.store.members(group.id)?;
        groups.push(group_info(&group, members));
    }
    Ok(Json(groups))
}

/// `GET /api/v1/groups/{id}`: one of the caller's groups.
#[utoipa::path(
    get,
    path = "/groups/{id}",
    tag = "groups",
    security(("bearer" = []), ("session" = [])),
    params(("id" = GroupId, Path, description = "The group's number")),
    responses(
        (status = 200, description = "The group with its members", body = GroupInfo),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the group id is not a \
            non-negative integer"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_GROUP, body = ErrorBody),
    )
)]
pub async fn group(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GroupInfo>, ApiError> {
    let group = owned_group(&caller, &state, &id)?;
    let members = state.store.members(group.id)?;
    Ok(Json(group_info(&group, members)))
}

/// `POST /api/v1/groups/{id}/members`: adds volunteer keys to one of the caller's groups.
#[utoipa::path(
    post,
    path = "/groups/{id}/members",
    tag = "groups",
    security(("bearer" = []), ("session" = [])),
    params(("id" = GroupId, Path, description = "The group's number")),
    request_body = AddMembers,
    responses(
        (status = 200, description = "The group with its members", body = GroupInfo),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the group id is not a \
            non-negative integer, or `volunteers` is empty, too long or has an unusable key; \
            `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_GROUP, body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn add_members(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddMembers>,
) -> Result<Json<GroupInfo>, ApiError> {
    let group = owned_group(&caller, &state, &id)?;
    if request.volunteers.is_empty() || request.volunteers.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "volunteers must list 1 to {MAX_MEMBERS_PER_REQUEST} keys"
        )));
    }
    if let Some(bad) = request
        .volunteers
        .iter()
        .find(|volunteer| !signing::is_usable_key(&PublicKey::from_bytes(*volunteer.as_bytes())))
    {
        return Err(ApiError::invalid(format!(
            "volunteer {bad} is not a usable ed25519 key"
        )));
    }
    state.store.add_members(group.id, &request.volunteers)?;
    state.store.durable().await?;
    let members = state.store.members(group.id)?;
    Ok(Json(group_info(&group, members)))
}

/// `DELETE /api/v1/groups/{id}/members/{volunteer}`: removes a member.
#[utoipa::path(
    delete,
    path = "/groups/{id}/members/{volunteer}",
    tag = "groups",
    security(("bearer" = []), ("session" = [])),
    params(
        ("id" = GroupId, Path, description = "The group's number"),
        ("volunteer" = VolunteerId, Path, description = "The member's volunteer key"),
    ),
    responses(
        (status = 200, description = "The group with its remaining members", body = GroupInfo),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the group id is not a \
            non-negative integer, or the volunteer is not 64 hex digits"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_GROUP, body = ErrorBody),
    )
)]
pub async fn remove_member(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, volunteer)): Path<(String, String)>,
) -> Result<Json<GroupInfo>, ApiError> {
    let group = owned_group(&caller, &state, &id)?;
    let volunteer: VolunteerId = volunteer
        .parse()
        .map_err(|err| ApiError::invalid(format!("{err}")))?;
    state.store.remove_member(group.id, volunteer)?;
    state.store.durable().await?;
    let members = state.store.members(group.id)?;
    Ok(Json(group_info(&group, members)))
}

/// `POST /api/v1/groups/join`: a volunteer joins a group with its invitation, signing with
/// its key so that nobody can enrol someone else's key.
#[utoipa::path(
    post,
    path = "/groups/join",
    tag = "groups",
    security(),
    request_body = JoinGroup,
    responses(
        (status = 200, body = GroupJoined, description = "Joined: the volunteer key is now a \
            member"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: `at_ms` is too far from \
            the server's time; `malformed_request`"),
        (status = 403, body = ErrorBody, description = "`bad_signature`: the signature does not \
            verify with the volunteer key"),
        (status = 404, body = ErrorBody, description = "`unknown_group`: the invitation is not \
            valid (unknown, or its group is closed)"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many from this address; wait `Retry-After` seconds"),
    )
)]
pub async fn join(
    _limit: RateLimited<Join>,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<JoinGroup>,
) -> Result<Json<GroupJoined>, ApiError> {
    let now = state.clock.now_ms();
    if request.at_ms.abs_diff(now) > CLOCK_SKEW_MS {
        return Err(ApiError::invalid(format!(
            "at_ms must be within {} minutes of the server's time ({now})",
            CLOCK_SKEW_MS / 60_000
        )));
    }
    let key = PublicKey::from_bytes(*request.volunteer.as_bytes());
    let message = join_message(&request.volunteer, &request.invite, request.at_ms);
    if signing::verify(&key, Purpose::JoinGroup, &message, &request.signature).is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
            "the signature does not verify with the volunteer key over the invitation and time",
        ));
    }
    if request.invite.len() > 200 {
        return Err(unknown_invite());
    }
    let group = state
        .store
        .group_by_invite(Sha256Digest::of(request.invite.as_bytes()))?
        .ok_or_else(unknown_invite)?;
    let owner = state.store.account(group.owner)?;
    if owner.as_ref().is_none_or(|owner| owner.suspended) {
        return Err(unknown_invite());
    }
    state.store.add_members(group.id, &[request.volunteer])?;
    state.store.durable().await?;
    Ok(Json(GroupJoined {
        group_id: group.id,
        name: group.name,
        distributor: owner.map(|owner| owner.name).unwrap_or_default(),
    }))
}

/// The group named by `id` if the caller owns it: 404 if there is none, 403 if it is
/// another account's.
pub fn owned_group(caller: &Caller, state: &AppState, id: &str) -> Result<GroupRecord, ApiError> {
    let account = caller.account()?;
    let id = GroupId(parse_number("group id", id)?);
    let group = state.store.group(id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownGroup,
            format!("no group {id}"),
        )
    })?;
    if group.owner != account.id {
        return Err(auth::forbidden(&format!(
            "group {id} belongs to another account"
        )));
    }
    Ok(group)
}

fn group_info(group: &GroupRecord, members: Vec<VolunteerId>) -> GroupInfo {
    GroupInfo {
        group_id: group.id,
        name: group.name.clone(),
        created_ms: group.created_ms,
        members,
    }
}

fn unknown_invite() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownGroup,
        "the invitation is not valid (unknown, or its group is closed)",
    )
}
