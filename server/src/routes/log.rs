//! The public transparency log: its entries, page by page, and the run of entries a client
//! checks before it runs a job (from the job's publication to the head).

use axum::Json;
use axum::extract::{Path, Query, State};
use cyclepool_shared::transparency::{LogPage, MAX_LOG_PAGE};
use cyclepool_shared::{ErrorBody, JobId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::jobs::{parse_job_id, unknown_job};
use crate::routes::openapi::{BAD_JOB_ID, NO_JOB};
use crate::state::AppState;

/// The query of `GET /api/v1/log`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// The first entry's position (default 0).
    #[serde(default)]
    from: u64,
    /// How many entries at most (default and maximum 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/log`: entries from `from` on, and the log's size.
#[utoipa::path(
    get,
    path = "/log",
    tag = "log",
    security(),
    params(LogQuery),
    responses(
        (status = 200, body = LogPage, description = "Up to `limit` consecutive entries from \
            `from`, and how many entries the log holds; check them with the portal's keys \
            (`cyclepool log verify`, or /log.html)"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: `from` or `limit` \
            is not a non-negative integer, or an unknown parameter"),
    )
)]
pub async fn entries(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::invalid(err.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_LOG_PAGE).clamp(1, MAX_LOG_PAGE);
    Ok(Json(page(&state, query.from, limit)?))
}

/// `GET /api/v1/log/jobs/{id}`: the entries from the job's latest publication to the head
/// (at most one page: `size` tells whether more follow). A client checks the manifest
/// against the first and looks for a revocation in the rest.
#[utoipa::path(
    get,
    path = "/log/jobs/{id}",
    tag = "log",
    security(),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, body = LogPage, description = "The entries from the job's publication on"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
    )
)]
pub async fn job_entries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LogPage>, ApiError> {
    let id = parse_job_id(&id)?;
    let seq = state
        .scheduler
        .job(id)
        .and_then(|job| job.log_seq)
        .ok_or_else(|| unknown_job(id))?;
    Ok(Json(page(&state, seq, MAX_LOG_PAGE)?))
}

fn page(state: &AppState, from: u64, limit: usize) -> Result<LogPage, ApiError> {
    let entries = state.store.log_entries(from, limit)?;
    // Read after the entries, so that it covers every entry of the page.
    let size = state.store.log_size()?;
    Ok(LogPage { entries, size })
}
