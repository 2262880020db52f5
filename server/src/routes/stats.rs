//! Public, read-only progress: `GET /api/v1/stats`, `GET /api/v1/health`, the leaderboard,
//! and one volunteer's credit (`GET /api/v1/volunteers/{volunteer}`).

use axum::Json;
use axum::extract::{Path, State};
use cyclepool_shared::protocol::StatsResponse;
use cyclepool_shared::{ErrorBody, VolunteerId};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Progress of every job, and how durability has been batched.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "portal",
    security(),
    responses((status = 200, description = "Public progress of every job", body = StatsResponse))
)]
pub async fn stats(State(state): State<AppState>) -> Json<StatsResponse> {
    Json(state.scheduler.stats())
}

/// Liveness: the server is up and routing.
#[utoipa::path(
    get,
    path = "/health",
    tag = "portal",
    security(),
    responses((status = 200, description = "The server is up and routing", body = Health))
)]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

// Never built: [`health`] answers with `json!`; this only describes the JSON, and
// `openapi.rs` in the API tests checks that the real answer matches it.
/// The liveness answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// How many volunteers the leaderboard lists.
const LEADERBOARD_SIZE: usize = 100;

/// One line of the leaderboard.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LeaderboardEntry {
    pub volunteer: cyclepool_shared::VolunteerId,
    /// Results accepted as valid.
    pub results: u64,
    /// Computing time those results took.
    pub compute_ms: u64,
}

/// `GET /api/v1/leaderboard`: the volunteers with the most accepted results. Credit is granted
/// only for results accepted as valid, in the same transaction that accepts them.
#[utoipa::path(
    get,
    path = "/leaderboard",
    tag = "portal",
    security(),
    responses((status = 200, body = Vec<LeaderboardEntry>,
        description = "The volunteers with the most accepted results, most first"))
)]
pub async fn leaderboard(
    State(state): State<AppState>,
) -> Result<Json<Vec<LeaderboardEntry>>, crate::error::ApiError> {
    let store = state.store.clone();
    let mut credit = tokio::task::spawn_blocking(move || store.credit())
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "leaderboard task failed");
            crate::error::ApiError::for_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        })??;
    credit.sort_by(|(a_id, a), (b_id, b)| {
        (b.results, b.compute_ms, b_id).cmp(&(a.results, a.compute_ms, a_id))
    });
    Ok(Json(
        credit
            .into_iter()
            .take(LEADERBOARD_SIZE)
            .map(|(volunteer, record)| LeaderboardEntry {
                volunteer,
                results: record.results,
                compute_ms: record.compute_ms,
            })
            .collect(),
    ))
}

/// What one volunteer key has been credited with, for the volunteer page.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct VolunteerCredit {
    pub volunteer: VolunteerId,
    /// Results accepted as valid.
    pub credit: u64,
    /// Computing time those accepted results took, as the volunteer's browser measured it.
    pub compute_ms: u64,
    /// Spot checks (and re-executed units) this volunteer answered right.
    pub checks_passed: u32,
    /// Caught returning a wrong answer: this key gets no more work.
    pub blacklisted: bool,
}

/// `GET /api/v1/volunteers/{volunteer}`: one volunteer key's credit. Public like the
/// leaderboard (which already lists the top keys); a key the portal has never seen has
/// earned nothing, so it answers zeros rather than 404, and the page needs no special case.
#[utoipa::path(
    get,
    path = "/volunteers/{volunteer}",
    tag = "portal",
    security(),
    params(("volunteer" = VolunteerId, Path, description = "The volunteer's key")),
    responses(
        (status = 200, body = VolunteerCredit, description = "The key's credit (zeros for a \
            key with no accepted result)"),
        (status = 400, body = ErrorBody, description = "`invalid_value`: the volunteer is not \
            64 hex digits"),
    )
)]
pub async fn volunteer(
    State(state): State<AppState>,
    Path(volunteer): Path<String>,
) -> Result<Json<VolunteerCredit>, ApiError> {
    let volunteer: VolunteerId = volunteer
        .parse()
        .map_err(|err| ApiError::invalid(format!("{err}")))?;
    // Two point reads: cheap enough to do on the async thread, as other handlers do.
    let credit = state.store.credit_of(volunteer)?;
    let record = state.store.volunteer(volunteer)?;
    Ok(Json(VolunteerCredit {
        volunteer,
        credit: credit.results,
        compute_ms: credit.compute_ms,
        checks_passed: record.checks_passed,
        blacklisted: record.caught,
    }))
}
