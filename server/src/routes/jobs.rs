//! Jobs and their code: upload a module, create a job (distributor API, admin token), and
//! the public documents a client needs before it runs anything: the job's signed manifest,
//! the module's bytes, and the portal's keys.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cyclepool_shared::abi::MAX_INPUT_BYTES;
use cyclepool_shared::manifest::{JobPolicy, PortalKeys, SignedManifest};
use cyclepool_shared::protocol::{CreateJob, Inputs, JobCreated, ModuleUploaded};
use cyclepool_shared::range::encode_range;
use cyclepool_shared::{ErrorCode, JobId, Sha256Digest};

use crate::auth::Admin;
use crate::error::{ApiError, ApiJson};
use crate::module_check::check_module;
use crate::state::AppState;
use crate::store::NewJob;

/// The most units one job may have.
pub const MAX_UNITS_PER_JOB: u64 = 10_000_000;
/// How long a manifest stays valid when the distributor does not say.
pub const DEFAULT_JOB_LIFETIME_MS: u64 = 30 * 24 * 60 * 60 * 1_000;
/// The longest a title may be, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// The longest a description may be, in characters.
const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// `PUT /api/v1/modules`: checks a module against the job ABI and stores it by digest.
pub async fn upload_module(
    _admin: Admin,
    State(state): State<AppState>,
    // Taken as a `Result` so that a body over the limit gets the JSON error, not axum's text.
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleUploaded>), ApiError> {
    let body = body?;
    let info = check_module(&body).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidModule,
            err.to_string(),
        )
    })?;
    state.store.put_module(info.sha256, &body)?;
    state.store.durable().await?;
    Ok((
        StatusCode::CREATED,
        Json(ModuleUploaded {
            module_sha256: info.sha256,
            bytes: info.bytes as u64,
            has_verify: info.has_verify,
            memory_max_pages: info.memory_max_pages,
        }),
    ))
}

/// `POST /api/v1/jobs`: creates a job from an uploaded module, inputs and a policy.
pub async fn create_job(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateJob>,
) -> Result<(StatusCode, Json<JobCreated>), ApiError> {
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::invalid(format!(
            "title must have 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    if request.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(format!(
            "description must have at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    check_policy(&request.policy)?;
    let module = state.store.module(request.module_sha256)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::UnknownModule,
            format!(
                "no module {} was uploaded; PUT it to /api/v1/modules first",
                request.module_sha256
            ),
        )
    })?;
    let inputs = expand_inputs(request.inputs)?;
    let now = state.clock.now_ms();
    let lifetime = request.expires_in_ms.unwrap_or(DEFAULT_JOB_LIFETIME_MS);
    let key_not_after = state
        .keyring
        .current_entry()
        .map_or(u64::MAX, |key| key.not_after_ms);
    let expires_ms = now.saturating_add(lifetime);
    if lifetime == 0 || expires_ms > key_not_after {
        return Err(ApiError::invalid(format!(
            "expires_in_ms must be positive and end before the signing key expires ({key_not_after})"
        )));
    }
    let spec = NewJob {
        distributor: "portal".into(),
        title: title.to_owned(),
        description: request.description,
        module_sha256: request.module_sha256,
        module_bytes: module.len() as u64,
        policy: request.policy,
        expires_ms,
        owner: None,
        group: None,
        priority: 0,
        weight: 1,
        declaration: None,
    };
    let store = state.store.clone();
    let job = tokio::task::spawn_blocking(move || store.create_job(spec, &inputs, now, None))
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "job creation task failed");
            ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
        })??
        .ok_or_else(|| ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR))?;
    state.store.durable().await?;
    state.scheduler.add_job(job.clone());
    crate::validator::reexecute_sample(state.store.clone(), state.scheduler.clone(), job.clone())
        .await;
    let manifest = state.manifest(&job);
    Ok((
        StatusCode::CREATED,
        Json(JobCreated {
            job_id: job.id,
            units: job.units,
            manifest,
        }),
    ))
}

/// `GET /api/v1/jobs/{id}/manifest`: the job's manifest, signed by the portal's current key.
pub async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SignedManifest>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = state.scheduler.job(id).ok_or_else(|| unknown_job(id))?;
    Ok(Json(state.manifest(&job)))
}

/// `GET /api/v1/modules/{sha256}`: a module's bytes. Immutable: the URL names the content.
pub async fn module(
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest: Sha256Digest = digest.parse().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            format!("{err}"),
        )
    })?;
    let bytes = state.store.module(digest)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownModule,
            format!("no module {digest}"),
        )
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/wasm"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        bytes.to_vec(),
    )
        .into_response())
}

/// `GET /api/v1/jobs/{id}/results` (admin): every accepted result of the job as JSON lines,
/// one unit per line, in unit order: `{"unit", "lease_id", "nonce", "signature", "input",
/// "output", "output_sha256", "volunteer", "received_ms"}` with `input` and `output` in base64.
pub async fn results(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    state.scheduler.job(id).ok_or_else(|| unknown_job(id))?;
    let store = state.store.clone();
    let lines = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let mut lines = Vec::new();
        for entry in store.job_results(id) {
            let (unit, record, result) = entry?;
            let nonce = store.lease(result.lease)?.map(|lease| lease.nonce);
            let line = ResultLine {
                unit,
                lease_id: result.lease,
                nonce,
                signature: result.signature,
                input: &record.input,
                output: &result.output,
                output_sha256: result.output_sha256,
                volunteer: result.volunteer,
                received_ms: result.received_ms,
            };
            serde_json::to_writer(&mut lines, &line).map_err(|err| {
                tracing::error!(error = %err, "encoding a result line");
                ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
            })?;
            lines.push(b'\n');
        }
        Ok(lines)
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "results task failed");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
    })??;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        lines,
    )
        .into_response())
}

/// One line of a results download.
#[derive(serde::Serialize)]
struct ResultLine<'a> {
    unit: u64,
    lease_id: cyclepool_shared::LeaseId,
    nonce: Option<cyclepool_shared::Nonce>,
    /// The volunteer's signature over lease id, nonce and `output_sha256`, so that the
    /// distributor can check who computed what without trusting the portal.
    signature: cyclepool_shared::Signature,
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    input: &'a [u8],
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    output: &'a [u8],
    output_sha256: Sha256Digest,
    volunteer: cyclepool_shared::VolunteerId,
    received_ms: u64,
}

/// `GET /.well-known/cyclepool-keys.json`: the portal's public keys and revocations.
pub async fn keys(State(state): State<AppState>) -> Json<PortalKeys> {
    Json(state.keyring.public().clone())
}

fn check_policy(policy: &JobPolicy) -> Result<(), ApiError> {
    let checks = [
        (
            (1_000..=30 * 24 * 3_600_000).contains(&policy.lease_ttl_ms),
            "policy.lease_ttl_ms must be between 1 s and 30 days",
        ),
        (
            (100..=3_600_000).contains(&policy.unit_budget_ms),
            "policy.unit_budget_ms must be between 100 ms and 1 hour",
        ),
        (
            policy.unit_budget_ms <= policy.lease_ttl_ms,
            "policy.unit_budget_ms must not exceed policy.lease_ttl_ms",
        ),
        (
            (1..=16).contains(&policy.min_quorum) && (1..=16).contains(&policy.initial_replicas),
            "policy.min_quorum and policy.initial_replicas must be between 1 and 16",
        ),
        (
            policy.max_total_results >= policy.initial_replicas && policy.max_total_results <= 64,
            "policy.max_total_results must be at least initial_replicas and at most 64",
        ),
        (
            policy.max_success_results >= policy.initial_replicas
                && policy.max_success_results <= 64,
            "policy.max_success_results must be at least initial_replicas and at most 64",
        ),
        (
            (1..=1_000).contains(&policy.max_error_results),
            "policy.max_error_results must be between 1 and 1000",
        ),
    ];
    let rates = [
        (policy.reexecution_rate, "policy.reexecution_rate"),
        (policy.spot_check_rate, "policy.spot_check_rate"),
        (policy.target_error_rate, "policy.target_error_rate"),
        (
            policy.assumed_saboteur_fraction,
            "policy.assumed_saboteur_fraction",
        ),
    ];
    if let Some((_, name)) = rates.iter().find(|(rate, _)| !(0.0..=1.0).contains(rate)) {
        return Err(ApiError::invalid(format!("{name} must be between 0 and 1")));
    }
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, message)) => Err(ApiError::invalid(*message)),
        None => Ok(()),
    }
}

fn expand_inputs(inputs: Inputs) -> Result<Vec<Vec<u8>>, ApiError> {
    match inputs {
        Inputs::List(list) => {
            if list.is_empty() || list.len() as u64 > MAX_UNITS_PER_JOB {
                return Err(ApiError::invalid(format!(
                    "inputs.list must have 1 to {MAX_UNITS_PER_JOB} inputs"
                )));
            }
            if let Some(index) = list.iter().position(|input| input.len() > MAX_INPUT_BYTES) {
                return Err(ApiError::invalid(format!(
                    "inputs.list[{index}] is larger than {MAX_INPUT_BYTES} bytes"
                )));
            }
            Ok(list)
        }
        Inputs::Range { start, end, step } => {
            if step == 0 || start >= end {
                return Err(ApiError::invalid(
                    "inputs.range needs start < end and step > 0",
                ));
            }
            let units = (end - start).div_ceil(step);
            if units > MAX_UNITS_PER_JOB {
                return Err(ApiError::invalid(format!(
                    "inputs.range makes {units} units; the limit is {MAX_UNITS_PER_JOB}"
                )));
            }
            Ok((0..units)
                .map(|index| {
                    let from = start + index * step;
                    encode_range(from, from.saturating_add(step).min(end))
                })
                .collect())
        }
    }
}

fn parse_job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<u64>().map(JobId).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            format!(
                "job id must be a non-negative integer, got {:?}",
                truncate(text)
            ),
        )
    })
}

fn unknown_job(id: JobId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownJob,
        format!("no job {id}"),
    )
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}
