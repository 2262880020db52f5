//! Assembles a finished Mandelbrot job into a picture: reads the job's results as downloaded
//! from the portal (JSON lines on standard input) and writes a PGM on standard output.
//!
//! ```sh
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/v1/jobs/0/results \
//!   | cargo run --release -p cyclepool-job-mandelbrot --example assemble > mandelbrot.pgm
//! ```

use std::io::{BufRead as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

fn main() {
    if let Err(message) = assemble() {
        eprintln!("assemble: {message}");
        std::process::exit(1);
    }
}

fn assemble() -> Result<(), String> {
    let mut units = Vec::new();
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|err| format!("reading standard input: {err}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|err| format!("line {}: {err}", number + 1))?;
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let text = value[name]
                .as_str()
                .ok_or_else(|| format!("line {}: no `{name}`", number + 1))?;
            STANDARD
                .decode(text)
                .map_err(|err| format!("line {}: `{name}`: {err}", number + 1))
        };
        units.push((field("input")?, field("output")?));
    }
    let picture =
        cyclepool_job_mandelbrot::assemble_units(&units).map_err(|err| err.to_string())?;
    std::io::stdout()
        .write_all(&picture)
        .map_err(|err| format!("writing standard output: {err}"))
}
