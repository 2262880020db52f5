//! The volunteer protocol: `POST /api/v1/lease` and `POST /api/v1/results`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cyclepool_shared::ErrorCode;
use cyclepool_shared::distributor::{Category, GroupId, JobStatus};
use cyclepool_shared::manifest::CLOCK_SKEW_MS;
use cyclepool_shared::protocol::{
    Exchange, ExchangeResponse, LeaseRequest, LeaseResponse, MAX_EXCLUDED_JOBS, MAX_OUTPUT_BYTES,
    MAX_RESULTS_PER_EXCHANGE, MAX_UNITS_PER_REQUEST, MAX_WORK_MS, PROTOCOL_VERSION, Report,
    ReportKind, ReportResponse, ResultAnswer, ResultSubmission, SubmitResponse, SubmitStatus,
};
use cyclepool_shared::signing::{self, Purpose, result_message};
use cyclepool_shared::{ErrorBody, JobId, LeaseId, PublicKey, Sha256Digest, VolunteerId};

use crate::error::{ApiError, ApiJson};
use crate::routes::openapi::{NO_JOB, NOT_JSON, TOO_LARGE, UNAUTHORIZED};
use crate::scheduler::{LeaseFilter, Wanted};
use crate::state::AppState;
use crate::store::{IncomingResult, LeaseState, ReportRecord, SubmitOutcome};
use crate::validator::Verdict;

/// How long a volunteer that got no work should wait before asking again.
const RETRY_WHEN_IDLE_MS: u64 = 5_000;

/// Hands out up to `max_units` units.
#[utoipa::path(
    post,
    path = "/lease",
    tag = "volunteer",
    security(),
    request_body = LeaseRequest,
    responses(
        (status = 200, body = LeaseResponse, description = "Zero or more leases; with none, \
            `retry_after_ms` says when to ask again"),
        (status = 400, body = ErrorBody, description = "`unsupported_protocol`: another protocol \
            version; `invalid_value`: `max_units` or `exclude_jobs` out of range, or `volunteer` \
            is not a usable ed25519 key; `malformed_request`: not JSON of the schema"),
        (status = 403, body = ErrorBody, description = "`volunteer_blacklisted`: this key returned \
            a wrong answer to a check; `bad_signature`: the lease proof does not verify"),
        (status = 404, body = ErrorBody, description = "`unknown_site`: `site` names no \
            registered embedding site, or one that was revoked"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn lease(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    lease_units(&state, &request).map(Json)
}

/// Answers a lease request, alone or as part of an exchange.
fn lease_units(state: &AppState, request: &LeaseRequest) -> Result<LeaseResponse, ApiError> {
    check_protocol(request.protocol)?;
    check_volunteer_key(request.volunteer)?;
    if state.store.volunteer(request.volunteer)?.caught {
        return Err(blacklisted(request.volunteer));
    }
    if request.max_units == 0 || request.max_units > MAX_UNITS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "max_units must be between 1 and {MAX_UNITS_PER_REQUEST}, got {}",
            request.max_units
        )));
    }
    if request
        .work_ms
        .is_some_and(|work_ms| work_ms == 0 || work_ms > MAX_WORK_MS)
    {
        return Err(ApiError::invalid(format!(
            "work_ms must be between 1 and {MAX_WORK_MS}, got {}",
            request.work_ms.unwrap_or_default()
        )));
    }
    if request.exclude_categories.len() > Category::ALL.len() {
        return Err(ApiError::invalid(format!(
            "exclude_categories may name at most the {} categories",
            Category::ALL.len()
        )));
    }
    if request.exclude_jobs.len() > MAX_EXCLUDED_JOBS {
        return Err(ApiError::invalid(format!(
            "exclude_jobs may name at most {MAX_EXCLUDED_JOBS} jobs"
        )));
    }
    if let Some(site) = request.site {
        // Only a registered site earns credit; a revoked one's widget stops getting work.
        crate::routes::sites::live_site(state, site)?;
    }
    let groups = match proven_groups(state, request)? {
        Some(groups) => {
            // The key is the sender's: it gets the key's share, and no more.
            state
                .limiters
                .check_volunteer(request.volunteer, state.clock.now_ms())?;
            groups
        }
        None => Vec::new(),
    };
    let leases = state.scheduler.lease(
        request.volunteer,
        Wanted {
            units: request.max_units,
            work_ms: request.work_ms,
        },
        &LeaseFilter {
            exclude_jobs: &request.exclude_jobs,
            groups: &groups,
            exclude_categories: &request.exclude_categories,
        },
        request.site,
    )?;
    let retry_after_ms = leases.is_empty().then_some(RETRY_WHEN_IDLE_MS);
    Ok(LeaseResponse {
        protocol: PROTOCOL_VERSION,
        leases,
        retry_after_ms,
    })
}

/// The restricted groups of the requester's key, if it proved it holds the key with a fresh
/// signature; `None` without a usable proof. A proof whose time is off by more than the
/// allowed skew (a wrong clock) only loses restricted work, never public work; one whose
/// signature does not verify is refused, so a client bug shows.
fn proven_groups(
    state: &AppState,
    request: &LeaseRequest,
) -> Result<Option<Vec<GroupId>>, ApiError> {
    let Some(proof) = request.proof else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    if proof.at_ms.abs_diff(now) > CLOCK_SKEW_MS {
        tracing::debug!(volunteer = %request.volunteer, at_ms = proof.at_ms, "stale lease proof");
        return Ok(None);
    }
    let key = PublicKey::from_bytes(*request.volunteer.as_bytes());
    let message = signing::lease_proof_message(&request.volunteer, proof.at_ms);
    if signing::verify(&key, Purpose::LeaseProof, &message, &proof.signature).is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
            "the lease proof does not verify with the volunteer key over the key and at_ms",
        ));
    }
    Ok(Some(state.store.groups_of(request.volunteer)?))
}

/// Accepts one result; answers only once it is durable.
#[utoipa::path(
    post,
    path = "/results",
    tag = "volunteer",
    security(),
    request_body = ResultSubmission,
    responses(
        (status = 200, body = SubmitResponse, description = "The result is durable on disk \
            (`accepted`), or was already (`duplicate`)"),
        (status = 400, body = ErrorBody, description = "`unsupported_protocol`; \
            `integrity_mismatch`: `output_sha256` is not the output's SHA-256; \
            `malformed_request`"),
        (status = 403, body = ErrorBody, description = "`bad_signature`: the signature does not \
            verify; `lease_not_yours`; `nonce_mismatch`; `volunteer_blacklisted`"),
        (status = 404, description = "`unknown_lease`: no such lease was issued", body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`conflicting_result`: a different result \
            was accepted for this lease; `job_not_active`: the job was cancelled"),
        (status = 410, body = ErrorBody, description = "`lease_expired`: the deadline passed and \
            the unit was re-issued"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: the output (or the \
            body) is over the limit"),
        (status = 415, description = NOT_JSON, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_result`: the output is wrong (the \
            job's `verify` or a known answer says so)"),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    ApiJson(submission): ApiJson<ResultSubmission>,
) -> Result<Json<SubmitResponse>, ApiError> {
    let result = check_result(&state, submission).await?;
    let outcome = state
        .scheduler
        .submit(std::slice::from_ref(&result))
        .await?
        .pop()
        .ok_or_else(|| ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR))?;
    let status = answer(outcome, &result)?;
    Ok(Json(SubmitResponse {
        protocol: PROTOCOL_VERSION,
        status,
    }))
}

/// Checks one result on its own, alone or as part of an exchange, before the store judges it
/// against its lease: protocol, size, digest, signature, the volunteer's rate limit, and the
/// job's `verify` (an output it rejects ends the lease here).
async fn check_result(
    state: &AppState,
    submission: ResultSubmission,
) -> Result<IncomingResult, ApiError> {
    check_protocol(submission.protocol)?;
    if submission.output.len() > MAX_OUTPUT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "output is {} bytes; the limit is {MAX_OUTPUT_BYTES}",
                submission.output.len()
            ),
        ));
    }
    let actual = Sha256Digest::of(&submission.output);
    if actual != submission.output_sha256 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::IntegrityMismatch,
            format!(
                "output_sha256 is {} but the output's sha-256 is {actual}",
                submission.output_sha256
            ),
        ));
    }
    let lease = submission.lease_id;
    let signer = PublicKey::from_bytes(*submission.volunteer.as_bytes());
    let message = result_message(&lease, &submission.nonce, &submission.output_sha256);
    if signing::verify(&signer, Purpose::Result, &message, &submission.signature).is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
            format!(
                "the signature does not verify with volunteer key {} over lease {lease}, its nonce and the output's sha-256",
                submission.volunteer
            ),
        ));
    }
    state
        .limiters
        .check_volunteer(submission.volunteer, state.clock.now_ms())?;
    // A job with a `verify` export has the result checked before it is accepted. Only an open
    // lease of the sender is checked; anything else gets its answer from the store below.
    // The lease is read once here: for the check, and for its job's policy below.
    let record = state.store.lease(lease)?;
    if let Some(record) = &record {
        let open = record.state == LeaseState::Active
            && record.volunteer == submission.volunteer
            && record.nonce == submission.nonce;
        let job = state.scheduler.shared_job(record.unit.job);
        if let Some(job) = job
            .as_ref()
            .filter(|job| job.status == JobStatus::Cancelled)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::JobNotActive,
                format!(
                    "job {} was cancelled by its distributor; drop this unit",
                    job.id
                ),
            ));
        }
        // The unit's input is read only for a job that checks results with `verify`.
        let verifies = job.as_ref().is_some_and(|job| job.policy.use_verify);
        let unit = if open && verifies {
            state.store.unit(record.unit)?
        } else {
            None
        };
        if let (Some(job), Some(unit)) = (job, unit) {
            let verdict = state
                .validator
                .check(&job, unit.input, submission.output.clone())
                .await?;
            if verdict == Verdict::Invalid {
                state.scheduler.reject(
                    record.unit.job,
                    lease,
                    submission.volunteer,
                    submission.nonce,
                    submission.output_sha256,
                )?;
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::InvalidResult,
                    format!(
                        "the job's verify says this output is wrong for unit {} of job {}; the unit goes to someone else",
                        record.unit.index, record.unit.job
                    ),
                ));
            }
        }
    }
    let incoming = IncomingResult {
        lease,
        volunteer: submission.volunteer,
        nonce: submission.nonce,
        output: submission.output,
        output_sha256: submission.output_sha256,
        signature: submission.signature,
        compute_ms: submission.compute_ms,
    };
    Ok(incoming)
}

/// The answer to what the store made of `result`: a status for a result that is (or was
/// already) durable, an error otherwise.
fn answer(outcome: SubmitOutcome, result: &IncomingResult) -> Result<SubmitStatus, ApiError> {
    let lease = result.lease;
    let status = match outcome {
        SubmitOutcome::Accepted { .. } => SubmitStatus::Accepted,
        SubmitOutcome::Duplicate => SubmitStatus::Duplicate,
        SubmitOutcome::UnknownLease => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownLease,
                format!("no lease {lease} was issued by this server"),
            ));
        }
        SubmitOutcome::NotYours => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::LeaseNotYours,
                format!("lease {lease} was issued to another volunteer"),
            ));
        }
        SubmitOutcome::NonceMismatch => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::NonceMismatch,
                format!("the nonce does not match the one issued with lease {lease}"),
            ));
        }
        SubmitOutcome::Expired { deadline_ms } => {
            return Err(ApiError::new(
                StatusCode::GONE,
                ErrorCode::LeaseExpired,
                format!(
                    "lease {lease} expired at {deadline_ms} ms since the epoch; its unit was re-issued"
                ),
            ));
        }
        SubmitOutcome::Caught { unit, .. } => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidResult,
                format!(
                    "this output for unit {} of job {} is wrong; this volunteer key is blacklisted and its undecided results are withdrawn",
                    unit.index, unit.job
                ),
            ));
        }
        SubmitOutcome::Blacklisted => return Err(blacklisted(result.volunteer)),
        SubmitOutcome::Conflict => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::ConflictingResult,
                format!("a different result was already accepted for lease {lease}"),
            ));
        }
    };
    Ok(status)
}

/// Hands in results and asks for more work in one round trip.
#[utoipa::path(
    post,
    path = "/exchange",
    tag = "volunteer",
    security(),
    request_body = Exchange,
    responses(
        (status = 200, body = ExchangeResponse, description = "One answer per result, in order \
            (the accepted ones are durable), then the lease's answer if one was asked"),
        (status = 400, body = ErrorBody, description = "`unsupported_protocol`; \
            `invalid_value`: more than 64 results, or a lease for another volunteer than the \
            results'; `malformed_request`"),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn exchange(
    State(state): State<AppState>,
    ApiJson(exchange): ApiJson<Exchange>,
) -> Result<Json<ExchangeResponse>, ApiError> {
    check_protocol(exchange.protocol)?;
    if exchange.results.len() > MAX_RESULTS_PER_EXCHANGE {
        return Err(ApiError::invalid(format!(
            "an exchange carries at most {MAX_RESULTS_PER_EXCHANGE} results, got {}",
            exchange.results.len()
        )));
    }
    if let Some(lease) = &exchange.lease
        && exchange
            .results
            .iter()
            .any(|result| result.volunteer != lease.volunteer)
    {
        return Err(ApiError::invalid(
            "the lease request and the results must name the same volunteer",
        ));
    }
    // Each result is checked on its own, then those that pass are judged in one transaction
    // and made durable by one flush.
    let checked = futures_util::future::join_all(
        exchange
            .results
            .into_iter()
            .map(|result| check_result(&state, result)),
    )
    .await;
    // The results that passed, and for each result its refusal if it did not.
    let mut passed = Vec::with_capacity(checked.len());
    let mut refusals = Vec::with_capacity(checked.len());
    for check in checked {
        match check {
            Ok(result) => {
                passed.push(result);
                refusals.push(None);
            }
            // A server fault leaves the result's fate unknown: the whole exchange fails, and
            // the client sends it again (a duplicate is answered as such).
            Err(err) if err.status().is_server_error() => return Err(err),
            Err(err) => refusals.push(Some(err)),
        }
    }
    let outcomes = state.scheduler.submit(&passed).await?;
    let mut judged = passed
        .iter()
        .zip(outcomes)
        .map(|(result, outcome)| answer(outcome, result));
    let mut results = Vec::with_capacity(refusals.len());
    for refusal in refusals {
        let answer = match refusal {
            Some(err) => Err(err),
            None => judged
                .next()
                .unwrap_or_else(|| Err(ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR))),
        };
        results.push(match answer {
            Ok(status) => ResultAnswer {
                status: Some(status),
                error: None,
            },
            Err(err) if err.status().is_server_error() => return Err(err),
            Err(err) => ResultAnswer {
                status: None,
                error: Some(err.detail()),
            },
        });
    }
    let (lease, lease_error) = match exchange.lease.map(|request| lease_units(&state, &request)) {
        None => (None, None),
        Some(Ok(leases)) => (Some(leases), None),
        Some(Err(err)) if err.status().is_server_error() => return Err(err),
        Some(Err(err)) => (None, Some(err.detail())),
    };
    Ok(Json(ExchangeResponse {
        protocol: PROTOCOL_VERSION,
        results,
        lease,
        lease_error,
    }))
}

fn blacklisted(volunteer: VolunteerId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::VolunteerBlacklisted,
        format!("volunteer {volunteer} returned a wrong answer to a check and is blacklisted"),
    )
}

/// A volunteer id must be a key that can sign: a valid ed25519 point, not a weak one.
fn check_volunteer_key(volunteer: VolunteerId) -> Result<(), ApiError> {
    if signing::is_usable_key(&PublicKey::from_bytes(*volunteer.as_bytes())) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "volunteer {volunteer} is not a usable ed25519 public key"
    )))
}

fn check_protocol(version: u32) -> Result<(), ApiError> {
    if version == PROTOCOL_VERSION {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedProtocol,
        format!(
            "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
        ),
    ))
}

/// The longest report message kept, in characters.
const MAX_REPORT_CHARS: usize = 1_000;

/// Records what a client could not do; releases the named lease if it is the sender's.
#[utoipa::path(
    post,
    path = "/reports",
    tag = "volunteer",
    security(),
    request_body = Report,
    responses(
        (status = 200, body = ReportResponse, description = "Recorded; `released` says whether the \
            named lease was released"),
        (status = 400, body = ErrorBody, description = "`unsupported_protocol`; `invalid_value`: \
            `volunteer` is not a usable ed25519 key; `malformed_request`"),
        (status = 404, description = NO_JOB, body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    ApiJson(report): ApiJson<Report>,
) -> Result<Json<ReportResponse>, ApiError> {
    check_protocol(report.protocol)?;
    check_volunteer_key(report.volunteer)?;
    if state.scheduler.job(report.job_id).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownJob,
            format!("no job {}", report.job_id),
        ));
    }
    let record = ReportRecord {
        volunteer: report.volunteer,
        job: report.job_id,
        lease: report.lease.map(|lease| lease.lease_id),
        kind: report.kind,
        message: report.message.chars().take(MAX_REPORT_CHARS).collect(),
        received_ms: state.clock.now_ms(),
    };
    let released = state
        .scheduler
        .report(&record, report.lease.map(|lease| lease.nonce))?;
    tracing::info!(job = %report.job_id, kind = ?report.kind, released, "client report");
    Ok(Json(ReportResponse {
        protocol: PROTOCOL_VERSION,
        released,
    }))
}

/// `GET /api/v1/reports` (admin): every client report, oldest first, for review.
#[utoipa::path(
    get,
    path = "/reports",
    tag = "volunteer",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<ReportRecordSchema>, description = "Every client report, oldest \
            first"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: not the admin token", body = ErrorBody),
    )
)]
pub async fn list_reports(
    _admin: crate::auth::Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<ReportRecord>>, ApiError> {
    Ok(Json(state.store.reports()?))
}

// The schema of a [`ReportRecord`], which lives in the store and so derives no schema itself.
// Never built: it only describes the JSON, and `openapi.rs` in the API tests checks that a
// real answer matches it.
/// A client's report, as stored for review.
#[derive(utoipa::ToSchema)]
#[schema(as = ReportRecord)]
#[allow(dead_code)]
pub struct ReportRecordSchema {
    volunteer: VolunteerId,
    job: JobId,
    lease: Option<LeaseId>,
    kind: ReportKind,
    message: String,
    received_ms: u64,
}
