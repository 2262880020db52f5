//! The portal admin's due diligence: the review queue (approve, reject, withdraw), the
//! distributors (trust, suspend), their keys (revoke), and volunteers' abuse reports. Every
//! handler needs the admin token; every change that alters what is served is logged.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cyclepool_shared::distributor::{
    AbuseReport, AccountId, AccountInfo, AccountSettings, DistributorKeyInfo, JobSummary, Reason,
    ReportAction, Resolution, ResolveReport, Review,
};
use cyclepool_shared::{ErrorBody, ErrorCode, JobId, KeyId};
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{ApiError, ApiJson};
use crate::review;
use crate::routes::accounts::account_info;
use crate::routes::jobs::{parse_job_id, unknown_job};
use crate::routes::manage::summary;
use crate::routes::openapi::{BAD_JOB_ID, NO_JOB, NOT_JSON, TOO_LARGE};
use crate::routes::{parse_number, text_field};
use crate::state::AppState;
use crate::store::{AbuseRecord, AccountRecord, JobRecord};

/// The most abuse reports one answer lists.
const MAX_REPORTS_LISTED: usize = 1_000;
/// What every admin endpoint answers without the admin token.
const NOT_ADMIN: &str = "`unauthorized`: no valid token; `forbidden`: a distributor's token or \
    session (these endpoints are the admin's)";

/// `GET /api/v1/admin/review`: jobs waiting for review, oldest first.
#[utoipa::path(
    get,
    path = "/admin/review",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<JobSummary>, description = "Jobs waiting for review, oldest \
            first"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
    )
)]
pub async fn review_queue(_admin: Admin, State(state): State<AppState>) -> Json<Vec<JobSummary>> {
    let queue = state
        .scheduler
        .jobs()
        .iter()
        .filter(|job| job.review == Review::Pending)
        .map(|job| summary(&state, job))
        .collect();
    Json(queue)
}

/// `POST /api/v1/admin/jobs/{id}/approve`: publishes a job (logged).
#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/approve",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, body = JobSummary, description = "The job, published, with its log entry"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the distributor is suspended, \
            or the key that declared the job is revoked"),
    )
)]
pub async fn approve(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    let job = job(&state, &id)?;
    if let Some(owner) = owner_of(&state, &job)? {
        if owner.suspended {
            return Err(conflict(format!(
                "job {} belongs to a suspended distributor; reinstate it first",
                job.id
            )));
        }
        let revoked = job.declaration.is_some_and(|declaration| {
            owner
                .keys
                .iter()
                .any(|key| key.public_key == declaration.public_key && key.revoked)
        });
        if revoked {
            return Err(conflict(format!(
                "job {} was declared with a revoked key; it cannot be published",
                job.id
            )));
        }
    }
    let approved = review::approve(&state.scheduler, state.keyring.current(), job.id)?
        .ok_or_else(|| unknown_job(job.id))?;
    state.store.durable().await?;
    tracing::info!(job = %job.id, "job approved");
    Ok(Json(summary(&state, &approved)))
}

/// `POST /api/v1/admin/jobs/{id}/reject`: refuses a job waiting for review, with a reason
/// its distributor sees.
#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/reject",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    request_body = Reason,
    responses(
        (status = 200, body = JobSummary, description = "The job, rejected"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the job id, or a reason \
            without 3 to 500 characters; `malformed_request`"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the job is not waiting for \
            review (withdraw a published job instead)"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn reject(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<Reason>,
) -> Result<Json<JobSummary>, ApiError> {
    let job = job(&state, &id)?;
    let reason = reason(&request.reason)?;
    if job.review != Review::Pending {
        return Err(conflict(format!(
            "job {} is not waiting for review; withdraw it if it is published",
            job.id
        )));
    }
    take_out_of_service(&state, &[job.id], &reason).await?;
    Ok(Json(summary(&state, &self::job(&state, &id)?)))
}

/// `POST /api/v1/admin/jobs/{id}/withdraw`: stops serving a published job, with a reason
/// written to the public log; clients refuse it from then on.
#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/withdraw",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    request_body = Reason,
    responses(
        (status = 200, body = JobSummary, description = "The job, withdrawn"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the job id, or a reason \
            without 3 to 500 characters; `malformed_request`"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the job is not published"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn withdraw(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<Reason>,
) -> Result<Json<JobSummary>, ApiError> {
    let job = job(&state, &id)?;
    let reason = reason(&request.reason)?;
    if job.review != Review::Approved {
        return Err(conflict(format!("job {} is not published", job.id)));
    }
    take_out_of_service(&state, &[job.id], &reason).await?;
    Ok(Json(summary(&state, &self::job(&state, &id)?)))
}

/// `GET /api/v1/admin/accounts`: every distributor account.
#[utoipa::path(
    get,
    path = "/admin/accounts",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<AccountInfo>, description = "Every account, oldest first"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
    )
)]
pub async fn accounts(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<AccountInfo>>, ApiError> {
    let accounts = state.store.accounts()?;
    Ok(Json(accounts.iter().map(account_info).collect()))
}

/// `PATCH /api/v1/admin/accounts/{id}`: trusts (auto-approval) or suspends a distributor.
/// Suspending withdraws every published job of the account (logged) and rejects its queued
/// ones; reinstating does not republish them: the admin approves each again.
#[utoipa::path(
    patch,
    path = "/admin/accounts/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = AccountId, Path, description = "The account's number")),
    request_body = AccountSettings,
    responses(
        (status = 200, body = AccountInfo, description = "The account as now set"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the account id; a \
            suspension without a reason of 3 to 500 characters; `malformed_request`"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`: no such account"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn update_account(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(settings): ApiJson<AccountSettings>,
) -> Result<Json<AccountInfo>, ApiError> {
    let id = AccountId(parse_number("account id", &id)?);
    let suspend_reason = match (settings.suspended, &settings.reason) {
        (Some(true), Some(text)) => Some(reason(text)?),
        (Some(true), None) => {
            return Err(ApiError::invalid("suspending an account needs a reason"));
        }
        _ => None,
    };
    let (account, ()) = state
        .store
        .update_account(id, |account| {
            if let Some(trusted) = settings.trusted {
                account.trusted = trusted;
            }
            if let Some(suspended) = settings.suspended {
                account.suspended = suspended;
            }
        })?
        .ok_or_else(|| no_account(id))?;
    if let Some(reason) = suspend_reason {
        let jobs = review::jobs_of(&state.scheduler, id);
        let reason = format!("the distributor was suspended: {reason}");
        take_out_of_service(&state, &jobs, &reason).await?;
        tracing::info!(account = %id, "distributor suspended");
    }
    state.store.durable().await?;
    Ok(Json(account_info(&account)))
}

/// `POST /api/v1/admin/keys/{key_id}/revoke`: revokes a distributor's signing key. The
/// revocation is logged, every job the key declared is withdrawn, and clients refuse those
/// jobs' manifests from then on.
#[utoipa::path(
    post,
    path = "/admin/keys/{key_id}/revoke",
    tag = "admin",
    security(("bearer" = [])),
    params(("key_id" = KeyId, Path, description = "The key's id")),
    request_body = Reason,
    responses(
        (status = 200, body = DistributorKeyInfo, description = "The key, now revoked"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: not a key id, or a \
            reason without 3 to 500 characters; `malformed_request`"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`: no distributor has this key"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn revoke_distributor_key(
    _admin: Admin,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    ApiJson(request): ApiJson<Reason>,
) -> Result<Json<DistributorKeyInfo>, ApiError> {
    let key_id: KeyId = key_id
        .parse()
        .map_err(|err| ApiError::invalid(format!("{err}")))?;
    let reason = reason(&request.reason)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no distributor has key {key_id}"),
        )
    };
    let (owner, _) = state.store.key_owner(key_id)?.ok_or_else(not_found)?;
    let revoked = review::revoke_key(
        &state.store,
        &state.scheduler,
        state.keyring.current(),
        owner.id,
        key_id,
        &reason,
    )?
    .ok_or_else(not_found)?;
    state.store.durable().await?;
    tracing::info!(key = %key_id, account = %owner.id, "distributor key revoked by the admin");
    Ok(Json(revoked))
}

/// The query of `GET /api/v1/admin/reports`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    /// Only reports not yet resolved (default true).
    #[serde(default)]
    open: Option<bool>,
}

/// `GET /api/v1/admin/reports`: volunteers' abuse reports, newest first.
#[utoipa::path(
    get,
    path = "/admin/reports",
    tag = "admin",
    security(("bearer" = [])),
    params(ReportsQuery),
    responses(
        (status = 200, body = Vec<AbuseReport>, description = "Abuse reports, newest first (at \
            most 1000)"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: a bad query parameter"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
    )
)]
pub async fn abuse_reports(
    _admin: Admin,
    State(state): State<AppState>,
    query: Result<Query<ReportsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AbuseReport>>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::invalid(err.body_text()))?;
    let reports = state
        .store
        .abuse_reports(query.open.unwrap_or(true), MAX_REPORTS_LISTED)?;
    Ok(Json(
        reports
            .into_iter()
            .map(|(id, record)| abuse_report(&state, id, record))
            .collect(),
    ))
}

/// `POST /api/v1/admin/reports/{id}/resolve`: decides an abuse report: dismiss it, withdraw
/// the job, or suspend its distributor (both logged).
#[utoipa::path(
    post,
    path = "/admin/reports/{id}/resolve",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "The report's number")),
    request_body = ResolveReport,
    responses(
        (status = 200, body = AbuseReport, description = "The report with its resolution"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the report id, or a note \
            over 500 characters; `malformed_request`: not JSON"),
        (status = 401, description = NOT_ADMIN, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`: no such report"),
        (status = 409, body = ErrorBody, description = "`conflict`: already resolved, or the \
            action does not apply (the job is gone or is the portal's own)"),
        (status = 422, body = ErrorBody, description = "`malformed_request`: an unknown action or \
            field"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn resolve_report(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ResolveReport>,
) -> Result<Json<AbuseReport>, ApiError> {
    let id = parse_number("report id", &id)?;
    let note = if request.note.trim().is_empty() {
        String::new()
    } else {
        text_field("note", &request.note, 0, 500)?
    };
    let mut record = state.store.abuse_report(id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no abuse report {id}"),
        )
    })?;
    if record.resolution.is_some() {
        return Err(conflict(format!("report {id} is already resolved")));
    }
    let job_id = record.report.job;
    let why = if note.is_empty() {
        format!("abuse report {id}")
    } else {
        format!("abuse report {id}: {note}")
    };
    match request.action {
        ReportAction::Dismiss => {}
        ReportAction::WithdrawJob => {
            if state.scheduler.job(job_id).is_none() {
                return Err(conflict(format!("job {job_id} does not exist")));
            }
            take_out_of_service(&state, &[job_id], &why).await?;
        }
        ReportAction::SuspendDistributor => {
            let owner = state
                .scheduler
                .job(job_id)
                .and_then(|job| job.owner)
                .ok_or_else(|| {
                    conflict(format!(
                        "job {job_id} has no distributor account to suspend"
                    ))
                })?;
            state
                .store
                .update_account(owner, |account| account.suspended = true)?
                .ok_or_else(|| no_account(owner))?;
            let jobs = review::jobs_of(&state.scheduler, owner);
            take_out_of_service(
                &state,
                &jobs,
                &format!("the distributor was suspended: {why}"),
            )
            .await?;
        }
    }
    record.resolution = Some(Resolution {
        action: request.action,
        note,
        resolved_ms: state.clock.now_ms(),
    });
    state.store.resolve_abuse_report(id, &record)?;
    state.store.durable().await?;
    Ok(Json(abuse_report(&state, id, record)))
}

/// Rejects or withdraws `jobs` (see [`review::withdraw`]) and waits until that is durable.
async fn take_out_of_service(
    state: &AppState,
    jobs: &[JobId],
    reason: &str,
) -> Result<(), ApiError> {
    review::withdraw(
        &state.scheduler,
        state.keyring.current(),
        jobs,
        reason,
        None,
    )?;
    state.store.durable().await?;
    Ok(())
}

fn job(state: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    let id = parse_job_id(id)?;
    state.scheduler.job(id).ok_or_else(|| unknown_job(id))
}

fn owner_of(state: &AppState, job: &JobRecord) -> Result<Option<AccountRecord>, ApiError> {
    match job.owner {
        Some(owner) => Ok(state.store.account(owner)?),
        None => Ok(None),
    }
}

fn abuse_report(state: &AppState, id: u64, record: AbuseRecord) -> AbuseReport {
    let job = state.scheduler.job(record.report.job);
    AbuseReport {
        report_id: id,
        job_id: record.report.job,
        job_title: job.as_ref().map(|job| job.title.clone()),
        distributor: job.as_ref().map(|job| job.distributor.clone()),
        owner: job.and_then(|job| job.owner),
        volunteer: record.report.volunteer,
        message: record.report.message,
        received_ms: record.report.received_ms,
        resolution: record.resolution,
    }
}

/// A reason shown to distributors and written to the public log.
fn reason(text: &str) -> Result<String, ApiError> {
    text_field("reason", text, 3, 500)
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
}

fn no_account(id: AccountId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no account {id}"),
    )
}
