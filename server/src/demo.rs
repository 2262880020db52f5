//! The demo job created at first start, so that a newcomer who opens the page sees real work:
//! a 4096 × 4096 picture of the Mandelbrot set, computed in tiles by the example job
//! `jobs/mandelbrot` (whose module `cargo xtask build` puts in `jobs/dist/`).

use std::path::Path;

use cyclepool_shared::manifest::JobPolicy;

use crate::module_check::check_module;
use crate::store::{JobInputs, JobRecord, NewJob, Store, StoreError};

/// Pixels along one side of a tile.
pub const TILE_SIDE: u32 = 64;
/// Iterations before a point counts as inside the set.
pub const MAX_ITER: u32 = 1_000;
/// Fractional bits of the Mandelbrot job's Q8.56 fixed-point coordinates.
const FRACTION_BITS: u32 = 56;

/// The demo job could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo module {path} is missing; run `cargo xtask build` (or pass --demo-units 0)")]
    ModuleMissing { path: String },
    #[error("demo module {path} is not a valid job module: {reason}")]
    ModuleInvalid { path: String, reason: String },
    #[error("--demo-units must be a square number of tiles, got {0}")]
    NotSquare(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the demo job unless it was created before (even if it has since finished).
pub fn ensure_demo_job(
    store: &Store,
    tiles: u64,
    module_path: &Path,
    lease_ttl_ms: u64,
    now_ms: u64,
) -> Result<Option<JobRecord>, DemoError> {
    if tiles == 0
        || store
            .jobs()?
            .iter()
            .any(|job| job.distributor == "portal-demo")
    {
        return Ok(None);
    }
    let side = tiles.isqrt();
    if side * side != tiles {
        return Err(DemoError::NotSquare(tiles));
    }
    let path = module_path.display().to_string();
    let module =
        std::fs::read(module_path).map_err(|_| DemoError::ModuleMissing { path: path.clone() })?;
    let info = check_module(&module).map_err(|err| DemoError::ModuleInvalid {
        path,
        reason: err.to_string(),
    })?;
    store.put_module(info.sha256, &module)?;
    let pixels = side * u64::from(TILE_SIDE);
    // The picture spans re ∈ [-2.0, 0.5] and im ∈ [-1.25, 1.25].
    let step = fixed(5, 2 * pixels as i64);
    let (left, top) = (fixed(-2, 1), fixed(5, 4));
    let inputs: Vec<Vec<u8>> = (0..tiles)
        .map(|tile| {
            let (column, row) = ((tile % side) as i64, (tile / side) as i64);
            let span = i64::from(TILE_SIDE) * step;
            tile_input(left + column * span, top - row * span, step)
        })
        .collect();
    let spec = NewJob {
        distributor: "portal-demo".into(),
        title: format!("The Mandelbrot set, {pixels} × {pixels}"),
        description: format!(
            "Computes a {pixels} × {pixels} picture of the Mandelbrot set in {tiles} tiles of \
             {TILE_SIDE} × {TILE_SIDE} pixels, up to {MAX_ITER} iterations per pixel, in \
             fixed-point integer arithmetic so that every browser returns identical bytes."
        ),
        module_sha256: info.sha256,
        module_bytes: info.bytes as u64,
        policy: JobPolicy {
            lease_ttl_ms,
            unit_budget_ms: 30_000.min(lease_ttl_ms),
            ..JobPolicy::default()
        },
        expires_ms: now_ms.saturating_add(crate::routes::jobs::DEFAULT_JOB_LIFETIME_MS),
        owner: None,
        group: None,
        priority: 0,
        weight: 1,
        declaration: None,
        category: cyclepool_shared::distributor::Category::Mathematics,
        // Approved and logged at start (`review::reconcile`).
        review: cyclepool_shared::distributor::Review::Pending,
    };
    Ok(store.create_job(spec, JobInputs::List(&inputs), now_ms, Some("demo-job"))?)
}

/// `numerator / denominator` in Q8.56.
fn fixed(numerator: i64, denominator: i64) -> i64 {
    ((i128::from(numerator) << FRACTION_BITS) / i128::from(denominator)) as i64
}

/// The Mandelbrot job's 36-byte input: x0, y0, step (i64), width, height, max_iter (u32).
fn tile_input(x0: i64, y0: i64, step: i64) -> Vec<u8> {
    let mut input = Vec::with_capacity(36);
    for value in [x0, y0, step] {
        input.extend_from_slice(&value.to_le_bytes());
    }
    for value in [TILE_SIDE, TILE_SIDE, MAX_ITER] {
        input.extend_from_slice(&value.to_le_bytes());
    }
    input
}
