//! Native side of the job-throughput benchmark: runs each example job's Rust code, compiled
//! natively, over a fixed set of inputs, and prints the inputs, the best time of a pass and a
//! checksum of the outputs as JSON. `playwright/bench/job-throughput.js` then runs the same
//! inputs through the same jobs' `.wasm` modules in Chromium and compares
//! (`cargo xtask bench-jobs` runs both).

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Passes over the inputs; the best one counts (the least disturbed by the machine).
const PASSES: usize = 5;

type Job = fn(&[u8]) -> Result<Vec<u8>, u32>;

fn main() {
    let jobs: [(&str, Job, Vec<Vec<u8>>); 3] = [
        ("factor", cyclepool_job_factor::run, factor_inputs()),
        (
            "mandelbrot",
            cyclepool_job_mandelbrot::run,
            mandelbrot_inputs(),
        ),
        (
            "keysearch",
            cyclepool_job_keysearch::run,
            keysearch_inputs(),
        ),
    ];
    let report: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(name, run, inputs)| {
            let mut best_ms = f64::INFINITY;
            let mut checksum = 0;
            for _ in 0..PASSES {
                let started = Instant::now();
                let outputs: Vec<Vec<u8>> = inputs
                    .iter()
                    .map(|input| run(std::hint::black_box(input)).unwrap_or_default())
                    .collect();
                best_ms = best_ms.min(started.elapsed().as_secs_f64() * 1_000.0);
                checksum = fnv1a(&outputs);
            }
            serde_json::json!({
                "job": name,
                "inputs": inputs.iter().map(|input| STANDARD.encode(input)).collect::<Vec<_>>(),
                "passes": PASSES,
                "native_best_ms": best_ms,
                "checksum": format!("{checksum:016x}"),
            })
        })
        .collect();
    println!("{}", serde_json::Value::Array(report));
}

/// Products of two primes near 2^31: trial division is hopeless, Pollard's rho has to work.
fn factor_inputs() -> Vec<Vec<u8>> {
    let primes = [
        2_147_483_647u64,
        2_147_483_629,
        2_147_483_587,
        2_147_483_579,
        2_147_483_563,
    ];
    let mut inputs = Vec::new();
    for (i, a) in primes.iter().enumerate() {
        for b in &primes[i..] {
            inputs.push((a * b).to_le_bytes().to_vec());
        }
    }
    inputs
}

/// Sixteen 64 × 64 tiles around the main cardioid's edge, up to 2,000 iterations.
fn mandelbrot_inputs() -> Vec<Vec<u8>> {
    use cyclepool_job_mandelbrot::{TileSpec, fixed};
    let step = fixed(1, 1_024);
    (0..16)
        .map(|tile| {
            let spec = TileSpec {
                x0: fixed(-3, 4) + (tile % 4) * 64 * step,
                y0: fixed(1, 4) - (tile / 4) * 64 * step,
                step,
                width: 64,
                height: 64,
                max_iter: 2_000,
            };
            spec.encode().to_vec()
        })
        .collect()
}

/// Eight searches of 50,000 keys each for a 20-bit prefix (mostly "not found": the full range
/// is hashed).
fn keysearch_inputs() -> Vec<Vec<u8>> {
    use cyclepool_job_keysearch::Search;
    let target = [0x5a, 0xc3, 0x90];
    (0..8)
        .map(|i| Search::for_prefix_of(&target, 20, i * 50_000, 50_000).encode())
        .collect()
}

fn fnv1a(outputs: &[Vec<u8>]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in outputs.iter().flatten() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
