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
use cyclepool_shared::distributor::{
    DeclarationSignature, Review, TERMS_VERSION, inputs_digest, job_declaration_message,
    verify_declaration,
};
use cyclepool_shared::manifest::{JobPolicy, PortalKeys, SignedManifest};
use cyclepool_shared::protocol::{CreateJob, Inputs, JobCreated, ModuleUploaded};
use cyclepool_shared::range::RangeUnits;
use cyclepool_shared::{ErrorBody, ErrorCode, JobId, KeyId, Sha256Digest};

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::module_check::check_module;
use crate::routes::groups::owned_group;
use crate::routes::openapi::{BAD_JOB_ID, FORBIDDEN, NO_GROUP, NOT_JSON, TOO_LARGE, UNAUTHORIZED};
use crate::state::AppState;
use crate::store::{JobInputs, NewJob};

/// The most units one job may have.
pub const MAX_UNITS_PER_JOB: u64 = 10_000_000;
/// How long a manifest stays valid when the distributor does not say.
pub const DEFAULT_JOB_LIFETIME_MS: u64 = 30 * 24 * 60 * 60 * 1_000;
/// The highest job priority.
pub const MAX_PRIORITY: u8 = 9;
/// The largest job weight.
pub const MAX_WEIGHT: u32 = 1_000;
/// The longest a title may be, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// The longest a description may be, in characters.
const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// `PUT /api/v1/modules`: checks a module against the job ABI and stores it by digest.
#[utoipa::path(
    put,
    path = "/modules",
    tag = "modules",
    security(("bearer" = []), ("session" = [])),
    request_body(description = "The module's bytes", content(("application/wasm"))),
    responses(
        (status = 201, body = ModuleUploaded, description = "Checked against the job ABI and \
            stored under its SHA-256"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: the module is larger \
            than the ABI allows"),
        (status = 422, body = ErrorBody, description = "`invalid_module`: the module breaks the \
            job ABI; the message names the rule"),
    )
)]
pub async fn upload_module(
    _caller: Caller,
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
#[utoipa::path(
    post,
    path = "/jobs",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    request_body = CreateJob,
    responses(
        (status = 201, body = JobCreated, description = "The job, its number of units, its \
            signed manifest, and whether it is published or waits for the admin's review"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: a title, description, \
            policy, priority, weight, input or lifetime out of range; `malformed_request`"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`forbidden`: the group is another \
            account's, or as for every distributor endpoint; `csrf_rejected`; `bad_signature`: the \
            declaration's key is not the account's, is revoked, or its signature does not verify; \
            `terms_not_accepted`: the account has not accepted the current terms"),
        (status = 404, description = NO_GROUP, body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 415, description = NOT_JSON, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`unknown_module`: no module with this \
            digest was uploaded"),
    )
)]
pub async fn create_job(
    caller: Caller,
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
    if let Caller::Distributor(account) = &caller
        && account
            .terms_accepted
            .is_none_or(|terms| terms.version != TERMS_VERSION)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::TermsNotAccepted,
            format!(
                "accept the distributor terms (version {TERMS_VERSION}, /terms.html) before \
                 publishing: POST /api/v1/account/terms"
            ),
        ));
    }
    if request.priority > MAX_PRIORITY || !(1..=MAX_WEIGHT).contains(&request.weight) {
        return Err(ApiError::invalid(format!(
            "priority must be 0 to {MAX_PRIORITY} and weight 1 to {MAX_WEIGHT}"
        )));
    }
    let group = match request.group {
        Some(group) => Some(owned_group(&caller, &state, &group.to_string())?.id),
        None => None,
    };
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
    let inputs = check_inputs(request.inputs)?;
    let (inputs, declaration) = check_declaration(
        &caller,
        request.signature,
        inputs,
        Declared {
            module_sha256: request.module_sha256,
            title,
            description: &request.description,
            policy: &request.policy,
        },
    )
    .await?;
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
        distributor: match &caller {
            Caller::Admin => "portal".into(),
            Caller::Distributor(account) => account.name.clone(),
        },
        title: title.to_owned(),
        description: request.description,
        module_sha256: request.module_sha256,
        module_bytes: module.len() as u64,
        policy: request.policy,
        expires_ms,
        owner: caller.account_id(),
        group,
        priority: request.priority,
        weight: request.weight,
        declaration,
        category: request.category,
        // Published (and logged) only by approval, below or by the admin.
        review: Review::Pending,
    };
    let store = state.store.clone();
    let job = tokio::task::spawn_blocking(move || {
        store.create_job(spec, inputs.as_job_inputs(), now, None)
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "job creation task failed");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
    })??
    .ok_or_else(|| ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR))?;
    state.scheduler.add_job(job.clone());
    // The portal's own jobs and a trusted distributor's are published at once; the others
    // wait in the admin's review queue, served to no one.
    let trusted = match &caller {
        Caller::Admin => true,
        Caller::Distributor(account) => account.trusted,
    };
    let job = if trusted {
        crate::review::approve(&state.scheduler, state.keyring.current(), job.id)?.unwrap_or(job)
    } else {
        job
    };
    state.store.durable().await?;
    crate::validator::reexecute_sample(state.store.clone(), state.scheduler.clone(), job.clone())
        .await;
    let manifest = state.manifest(&job);
    Ok((
        StatusCode::CREATED,
        Json(JobCreated {
            job_id: job.id,
            units: job.units,
            manifest,
            review: job.review.clone(),
        }),
    ))
}

/// What a job declaration covers, besides the inputs.
struct Declared<'a> {
    module_sha256: Sha256Digest,
    title: &'a str,
    description: &'a str,
    policy: &'a JobPolicy,
}

/// Checks a distributor's signature over the job's declaration: by a key registered to the
/// caller's account and not revoked, over exactly this module, these inputs, title,
/// description and policy. Returns the inputs (moved through the hashing thread).
async fn check_declaration(
    caller: &Caller,
    signature: Option<DeclarationSignature>,
    inputs: UnitInputs,
    declared: Declared<'_>,
) -> Result<(UnitInputs, Option<DeclarationSignature>), ApiError> {
    let Some(signature) = signature else {
        return Ok((inputs, None));
    };
    let account = caller.account()?;
    let key_id = KeyId::of(&signature.public_key);
    let registered = account
        .keys
        .iter()
        .find(|key| key.public_key == signature.public_key);
    match registered {
        None => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::BadSignature,
                format!(
                    "key {key_id} is not registered to your account; POST it to /api/v1/account/keys"
                ),
            ));
        }
        Some(key) if key.revoked => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::BadSignature,
                format!("key {key_id} is revoked"),
            ));
        }
        Some(_) => {}
    }
    let (inputs, digest) = tokio::task::spawn_blocking(move || {
        let digest = match &inputs {
            UnitInputs::List(list) => inputs_digest(list),
            UnitInputs::Range(range) => inputs_digest(range.inputs()),
        };
        (inputs, digest)
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "hashing inputs failed");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    let message = job_declaration_message(
        &declared.module_sha256,
        &digest,
        declared.title,
        declared.description,
        declared.policy,
    );
    if verify_declaration(&signature, &message).is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
            format!(
                "the declaration signature by key {key_id} does not verify over this module ({}), inputs ({digest}), title, description and policy",
                declared.module_sha256
            ),
        ));
    }
    Ok((inputs, Some(signature)))
}

/// `GET /api/v1/jobs/{id}/manifest`: the job's manifest, signed by the portal's current key.
#[utoipa::path(
    get,
    path = "/jobs/{id}/manifest",
    tag = "jobs",
    security(),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, body = SignedManifest, description = "The manifest's exact JSON text and \
            the portal's signature over it"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`unknown_job`: no such job, or not \
            published (waiting for review, or rejected)"),
        (status = 410, body = ErrorBody, description = "`revoked`: the job was withdrawn (see \
            the transparency log)"),
    )
)]
pub async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SignedManifest>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = state.scheduler.job(id).ok_or_else(|| unknown_job(id))?;
    match &job.review {
        Review::Approved => Ok(Json(state.manifest(&job))),
        // Not published (yet): to the public, no such job.
        Review::Pending | Review::Rejected { .. } => Err(unknown_job(id)),
        Review::Withdrawn { reason } => Err(ApiError::new(
            StatusCode::GONE,
            ErrorCode::Revoked,
            format!("job {id} was withdrawn: {reason}"),
        )),
    }
}

/// `GET /api/v1/modules/{sha256}`: a module's bytes. Immutable: the URL names the content.
#[utoipa::path(
    get,
    path = "/modules/{sha256}",
    tag = "modules",
    security(),
    params(("sha256" = Sha256Digest, Path, description = "The module's SHA-256")),
    responses(
        (status = 200, description = "The module's bytes (cacheable forever: the URL names the \
            content)", content(("application/wasm"))),
        (status = 400, description = "`invalid_value`: not a SHA-256 in hex", body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`unknown_module`: no module with this \
            digest"),
    )
)]
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

/// `GET /.well-known/cyclepool-keys.json`: the portal's public keys and revocations.
#[utoipa::path(
    get,
    path = "/.well-known/cyclepool-keys.json",
    tag = "portal",
    security(),
    responses(
        (status = 200, body = PortalKeys, description = "The keys that sign manifests, and revoked \
            keys; clients pin them"),
    )
)]
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

/// A job's inputs, checked: a list (stored unit by unit) or a range (whose units are made
/// as they are first leased, so a job of ten million units costs one record to create).
enum UnitInputs {
    List(Vec<Vec<u8>>),
    Range(RangeUnits),
}

impl UnitInputs {
    fn as_job_inputs(&self) -> JobInputs<'_> {
        match self {
            Self::List(list) => JobInputs::List(list),
            Self::Range(range) => JobInputs::Range(*range),
        }
    }
}

fn check_inputs(inputs: Inputs) -> Result<UnitInputs, ApiError> {
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
            Ok(UnitInputs::List(list))
        }
        Inputs::Range { start, end, step } => {
            // The same cutting the distributor's CLI digests (`RangeUnits`), so the two agree.
            let units = RangeUnits::new(start, end, step)
                .ok_or_else(|| ApiError::invalid("inputs.range needs start < end and step > 0"))?;
            let count = units.units();
            if count > MAX_UNITS_PER_JOB {
                return Err(ApiError::invalid(format!(
                    "inputs.range makes {count} units; the limit is {MAX_UNITS_PER_JOB}"
                )));
            }
            Ok(UnitInputs::Range(units))
        }
    }
}

/// Parses a job id from a path segment (400 `invalid_value` if it is not one).
pub fn parse_job_id(text: &str) -> Result<JobId, ApiError> {
    crate::routes::parse_number("job id", text).map(JobId)
}

/// 404 `unknown_job`.
pub fn unknown_job(id: JobId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownJob,
        format!("no job {id}"),
    )
}
