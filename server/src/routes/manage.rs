//! A distributor's view of its jobs: list, inspect, pause, resume, cancel, failures, and
//! live progress pushed as Server-Sent Events. Every handler checks that the caller owns the
//! job it names (the admin owns them all).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use cyclepool_shared::distributor::{FailureReport, JobFailures, JobStatus, JobSummary};
use cyclepool_shared::{ErrorBody, ErrorCode, JobId, KeyId};
use futures_util::{Stream, StreamExt as _};

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::routes::jobs::{parse_job_id, unknown_job};
use crate::routes::openapi::{BAD_JOB_ID, FORBIDDEN, NO_JOB, UNAUTHORIZED};
use crate::state::AppState;
use crate::store::JobRecord;

/// The most failed units and reports one failures answer lists.
const MAX_FAILURES_LISTED: usize = 1_000;
/// How often the progress stream sends a snapshot.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// `GET /api/v1/jobs`: the caller's jobs (every job for the admin), newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = Vec<JobSummary>, description = "The caller's jobs (every job for the \
            admin), newest first"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn list_jobs(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<JobSummary>>, ApiError> {
    Ok(Json(summaries(&caller, &state)))
}

/// `GET /api/v1/jobs/{id}`: one of the caller's jobs with its progress.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, description = "The job with its progress", body = JobSummary),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
    )
)]
pub async fn job(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    let job = owned_job(&caller, &state, &id)?;
    Ok(Json(summary(&state, &job)))
}

/// `POST /api/v1/jobs/{id}/pause`: stops handing out the job's units.
#[utoipa::path(
    post,
    path = "/jobs/{id}/pause",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, body = JobSummary, description = "Paused: no new leases; results of leases \
            already out are still accepted"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the job is cancelled; a \
            cancelled job cannot run again"),
    )
)]
pub async fn pause(
    caller: Caller,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    change_status(caller, state, id, JobStatus::Paused).await
}

/// `POST /api/v1/jobs/{id}/resume`: hands out the job's units again.
#[utoipa::path(
    post,
    path = "/jobs/{id}/resume",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, description = "Active again", body = JobSummary),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflict`: the job is cancelled; a \
            cancelled job cannot run again"),
    )
)]
pub async fn resume(
    caller: Caller,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    change_status(caller, state, id, JobStatus::Active).await
}

/// `POST /api/v1/jobs/{id}/cancel`: ends the job for good; results still out are refused.
#[utoipa::path(
    post,
    path = "/jobs/{id}/cancel",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, body = JobSummary, description = "Cancelled for good: no leases, and \
            results still out are refused"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
    )
)]
pub async fn cancel(
    caller: Caller,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    change_status(caller, state, id, JobStatus::Cancelled).await
}

async fn change_status(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    status: JobStatus,
) -> Result<Json<JobSummary>, ApiError> {
    let job = owned_job(&caller, &state, &id)?;
    if job.status == JobStatus::Cancelled && status != JobStatus::Cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "job {} is cancelled; a cancelled job cannot run again",
                job.id
            ),
        ));
    }
    let changed = state
        .scheduler
        .set_status(job.id, status)?
        .ok_or_else(|| unknown_job(job.id))?;
    state.store.durable().await?;
    tracing::info!(job = %job.id, ?status, "job status changed");
    Ok(Json(summary(&state, &changed)))
}

/// `GET /api/v1/jobs/{id}/failures`: the job's failed units and the reports about it.
#[utoipa::path(
    get,
    path = "/jobs/{id}/failures",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, body = JobFailures, description = "Units given up on and the reports \
            volunteers filed"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
    )
)]
pub async fn failures(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobFailures>, ApiError> {
    let job = owned_job(&caller, &state, &id)?;
    let store = state.store.clone();
    let failures = tokio::task::spawn_blocking(move || -> Result<JobFailures, ApiError> {
        let failed_units = store.failed_units(job.id, MAX_FAILURES_LISTED)?;
        let mut reports = Vec::new();
        for report in store.reports_of_job(job.id, MAX_FAILURES_LISTED)? {
            let unit = match report.lease {
                Some(lease) => store.lease(lease)?.map(|lease| lease.unit.index),
                None => None,
            };
            reports.push(FailureReport {
                unit,
                kind: report.kind,
                message: report.message,
                volunteer: report.volunteer,
                received_ms: report.received_ms,
            });
        }
        Ok(JobFailures {
            failed_units,
            reports,
        })
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "failures task failed");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
    })??;
    Ok(Json(failures))
}

/// `GET /api/v1/jobs/events`: Server-Sent Events, one `jobs` event a second with the
/// caller's jobs and their progress (the same JSON as `GET /api/v1/jobs`). The caller is
/// re-checked on every tick, so a suspended account's stream ends within a second.
#[utoipa::path(
    get,
    path = "/jobs/events",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "Server-Sent Events: every second an event named `jobs` whose data \
            is the JSON array of `JobSummary` that `GET /api/v1/jobs` answers. The stream ends when the caller's \
            account is suspended."),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
    )
)]
pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold((caller, state, true), |(caller, state, first)| async move {
            if !first {
                let mut stopping = state.stopping.clone();
                tokio::select! {
                    () = tokio::time::sleep(PROGRESS_INTERVAL) => {}
                    // The server is shutting down: end the stream, or graceful shutdown
                    // would wait for the dashboard to go away. EventSource reconnects.
                    _ = stopping.wait_for(|stopping| *stopping) => return None,
                }
            }
            if *state.stopping.borrow() || !still_allowed(&caller, &state) {
                return None;
            }
            let jobs = summaries(&caller, &state);
            let event = Event::default()
                .event("jobs")
                .json_data(&jobs)
                .unwrap_or_else(|_| Event::default().event("error"));
            Some((Ok(event), (caller, state, false)))
        });
    // Fused: the stream ends when the caller loses access, and layers may poll once more.
    Sse::new(stream.fuse()).keep_alive(KeepAlive::default())
}

/// Whether a stream's caller may still see its jobs (its account not suspended).
fn still_allowed(caller: &Caller, state: &AppState) -> bool {
    match caller {
        Caller::Admin => true,
        Caller::Distributor(account) => state
            .store
            .account(account.id)
            .ok()
            .flatten()
            .is_some_and(|account| !account.suspended),
    }
}

fn summaries(caller: &Caller, state: &AppState) -> Vec<JobSummary> {
    let mut jobs: Vec<JobSummary> = state
        .scheduler
        .jobs()
        .iter()
        .filter(|job| caller.owns(job))
        .map(|job| summary(state, job))
        .collect();
    jobs.sort_by_key(|job| std::cmp::Reverse(job.job_id));
    jobs
}

/// A job as its distributor sees it.
pub fn summary(state: &AppState, job: &JobRecord) -> JobSummary {
    JobSummary {
        job_id: job.id,
        title: job.title.clone(),
        description: job.description.clone(),
        distributor: job.distributor.clone(),
        owner: job.owner,
        status: job.status,
        module_sha256: job.module_sha256,
        created_ms: job.created_ms,
        expires_ms: job.expires_ms,
        group: job.group,
        priority: job.priority,
        weight: job.weight,
        policy: job.policy.clone(),
        signed_by: job
            .declaration
            .map(|declaration| KeyId::of(&declaration.public_key)),
        progress: state.scheduler.progress(job.id).unwrap_or_default(),
        review: job.review.clone(),
        category: job.category,
        log_seq: job.log_seq,
    }
}

/// The job named by `id` if the caller may manage it: 400 for a malformed id, 404 if there
/// is no such job, 403 if it is another distributor's.
pub fn owned_job(caller: &Caller, state: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    let id = parse_job_id(id)?;
    let job = state.scheduler.job(id).ok_or_else(|| unknown_job(id))?;
    if !caller.owns(&job) {
        return Err(auth::forbidden(&format!(
            "job {id} belongs to another distributor"
        )));
    }
    Ok(job)
}
