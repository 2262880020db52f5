//! Public, read-only progress: `GET /api/v1/stats` and `GET /api/v1/health`.

use axum::Json;
use axum::extract::State;
use cyclepool_shared::protocol::StatsResponse;
use serde_json::{Value, json};

use crate::state::AppState;

/// Progress of every job, and how durability has been batched.
pub async fn stats(State(state): State<AppState>) -> Json<StatsResponse> {
    Json(state.scheduler.stats())
}

/// Liveness: the server is up and routing.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
