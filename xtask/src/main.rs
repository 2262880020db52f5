//! `cargo xtask`: the one place that builds, serves and tests Cyclepool.
//!
//! - `cargo xtask serve [SERVER FLAGS]`: builds the web client (wasm) and the server
//!   (release), then runs the server (by default on 127.0.0.1:8080 with its store in ./data).
//! - `cargo xtask test`: installs what the tests need (wasm target, Chromium, npm packages),
//!   then runs formatting and lint checks, every Rust test, a short run of each fuzz target,
//!   and the Playwright suite.
//! - `cargo xtask build [--debug]`: builds without running.
//! - `cargo xtask web`: builds only the web client into `static/pkg`.
//! - `cargo xtask jobs`: builds only the example job modules into `jobs/dist`.
//! - `cargo xtask bench-jobs`: job throughput in Chromium against the same Rust natively.
//! - `cargo xtask bench-browser [-- FLAGS]`: the volunteer page in Chromium: click to first
//!   unit, worker utilisation, page weight.
//! - `cargo xtask load [-- FLAGS]`: the distributor's throughput under simulated volunteers.
//! - `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the libFuzzer targets in `fuzz/` with
//!   stable Rust and runs each for N seconds (default 60) on a copy of its seed corpus.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WEB_CLIENT_CRATE: &str = "cyclepool-web-client";
const WEB_CLIENT_ARTIFACT: &str = "cyclepool_web_client.wasm";
/// What wasm-bindgen writes into `static/pkg`: the JS bindings and the module.
const WEB_CLIENT_BINDINGS: &str = "cyclepool_web_client.js";
const WEB_CLIENT_WASM: &str = "cyclepool_web_client_bg.wasm";
/// The size-tuned profile defined in the workspace `Cargo.toml`.
const WASM_PROFILE: &str = "wasm-release";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The example jobs (`jobs/<name>`, package `cyclepool-job-<name>`), built into
/// `jobs/dist/<name>.wasm`, and `hostile`, a misbehaving module for the tests.
const EXAMPLE_JOBS: [&str; 4] = ["factor", "mandelbrot", "keysearch", "hostile"];

fn main() -> anyhow::Result<()> {
    let mut args = env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = workspace_root();
    match command.as_str() {
        "build" => build(&root, !rest.iter().any(|arg| arg == "--debug")),
        "web" => build_web_client(&root),
        "jobs" => build_jobs(&root),
        "bench-jobs" => bench_jobs(&root),
        "bench-browser" => bench_browser(&root, &rest),
        "load" => load(&root, &rest),
        "serve" => serve(&root, &rest),
        "test" => test(&root),
        "fuzz" => fuzz(&root, &rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 serve [FLAGS]   build everything and run the server (flags go to cyclepool-server;\n                  \
                 see `cargo run -p cyclepool-server -- --help`)\n  \
                 test            install test prerequisites and run every check and test\n  \
                 build [--debug] build the web client and the server\n  \
                 web             build only the web client into static/pkg\n  \
                 jobs            build only the example job modules into jobs/dist\n  \
                 bench-jobs      job throughput in Chromium against the same Rust natively\n  \
                 bench-browser [-- FLAGS]\n                  \
                 click to first unit, worker utilisation, page weight and requests per\n                  \
                 result in Chromium (flags: --runs N, --window SECONDS,\n                  \
                 --only latency,utilisation,weight,requests)\n  \
                 load [-- FLAGS] simulated volunteers against the release server on loopback\n                  \
                 (`cargo xtask load -- --help` lists the flags)\n  \
                 fuzz [--seconds N] [TARGET...]\n                  \
                 run the fuzz targets in fuzz/ (all by default) for N seconds each (default 60)"
            );
            if command.is_empty() || command == "help" || command == "--help" {
                Ok(())
            } else {
                bail!("unknown command `{command}`")
            }
        }
    }
}

fn workspace_root() -> PathBuf {
    // xtask lives in <root>/xtask; cargo sets CARGO_MANIFEST_DIR when building it.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn build(root: &Path, release: bool) -> anyhow::Result<()> {
    build_web_client(root)?;
    build_jobs(root)?;
    let mut cargo = cargo(root);
    cargo.args(["build", "--package", "cyclepool-server"]);
    if release {
        cargo.arg("--release");
    }
    run(&mut cargo)
}

fn serve(root: &Path, server_args: &[String]) -> anyhow::Result<()> {
    build(root, true)?;
    let server = target_dir(root).join("release/cyclepool-server");
    let static_dir = root.join("static");
    let mut command = Command::new(&server);
    command.current_dir(root).args(server_args);
    if env::var_os("CYCLEPOOL_STATIC_DIR").is_none() {
        command.env("CYCLEPOOL_STATIC_DIR", &static_dir);
    }
    // Ctrl-C reaches the server too (same process group); it shuts down gracefully.
    run(&mut command)
}

/// Builds the web client to wasm and generates its JS bindings into `static/pkg`.
fn build_web_client(root: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    run(cargo(root).args([
        "build",
        "--package",
        WEB_CLIENT_CRATE,
        "--target",
        WASM_TARGET,
        "--profile",
        WASM_PROFILE,
    ]))?;
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let wasm = target_dir
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join(WEB_CLIENT_ARTIFACT);
    let out_dir = root.join("static/pkg");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        // Without this, `init()` with no argument cannot find the .wasm (the CLI's default
        // differs from the library's).
        .omit_default_module_path(false)
        .typescript(false)
        // Function names serve only debuggers; they were a quarter of the module.
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&out_dir)
        .with_context(|| format!("generating bindings for {}", wasm.display()))?;
    // The bindings are minified and compressed by the server, like the pages' own scripts
    // (`server/src/page_cache.rs`); a `.br` left by an older build would be sent instead.
    for suffix in [".br", ".gz"] {
        let stale = out_dir.join(format!("{WEB_CLIENT_BINDINGS}{suffix}"));
        if stale.exists() {
            std::fs::remove_file(&stale)
                .with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    precompress(&out_dir.join(WEB_CLIENT_WASM))?;
    eprintln!("xtask: web client built into {}", out_dir.display());
    Ok(())
}

/// Writes `<file>.br` (brotli, best) and `<file>.gz` (gzip, best) beside `file`, which the
/// server sends instead of compressing on the fly (a faster, weaker brotli). Rewritten with
/// every build, so they never lag the file.
fn precompress(file: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let with_suffix = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    let mut br = Vec::new();
    brotli::BrotliCompress(&mut bytes.as_slice(), &mut br, &params)
        .with_context(|| format!("compressing {}", file.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)
        .with_context(|| format!("compressing {}", file.display()))?;
    for (path, compressed) in [(with_suffix(".br"), br), (with_suffix(".gz"), gz.finish()?)] {
        std::fs::write(&path, compressed).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Builds the example job modules exactly as a distributor would
/// (`cargo build --target wasm32-unknown-unknown --release`) and copies them to `jobs/dist`.
fn build_jobs(root: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    let mut cargo = cargo(root);
    cargo.args(["build", "--release", "--target", WASM_TARGET]);
    for job in EXAMPLE_JOBS {
        cargo.args(["--package", &format!("cyclepool-job-{job}")]);
    }
    run(&mut cargo)?;
    let built = target_dir(root).join(WASM_TARGET).join("release");
    let dist = root.join("jobs/dist");
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    for job in EXAMPLE_JOBS {
        let from = built.join(format!("cyclepool_job_{job}.wasm"));
        let to = dist.join(format!("{job}.wasm"));
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    eprintln!("xtask: example jobs built into {}", dist.display());
    Ok(())
}

/// Measures each example job in Chromium against the same Rust compiled natively, in one run.
fn bench_jobs(root: &Path) -> anyhow::Result<()> {
    build_jobs(root)?;
    ensure_chromium()?;
    ensure_npm_packages(root)?;
    let out_dir = target_dir(root).join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let native = output(cargo(root).args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "cyclepool-bench",
        "--bin",
        "job-throughput",
    ]))?;
    let native_report = out_dir.join("job-throughput-native.json");
    std::fs::write(&native_report, native)
        .with_context(|| format!("writing {}", native_report.display()))?;
    run(Command::new("node")
        .current_dir(root.join("playwright"))
        .arg("bench/job-throughput.js")
        .arg(&native_report)
        .arg(root.join("jobs/dist"))
        .env("CHROMIUM_PATH", CHROMIUM))
}

/// Measures the volunteer page in Chromium against the release server on loopback
/// (`playwright/bench/browser.js`): click to first unit, worker utilisation, page weight.
fn bench_browser(root: &Path, args: &[String]) -> anyhow::Result<()> {
    build_web_client(root)?;
    build_jobs(root)?;
    run(cargo(root).args(["build", "--release", "--package", "cyclepool-server"]))?;
    ensure_chromium()?;
    ensure_npm_packages(root)?;
    let out_dir = target_dir(root).join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    run(Command::new("node")
        .current_dir(root.join("playwright"))
        .arg("bench/browser.js")
        .arg("--json")
        .arg(out_dir.join("browser.json"))
        .args(args)
        .env(
            "CYCLEPOOL_SERVER_BIN",
            target_dir(root).join("release/cyclepool-server"),
        )
        .env("CYCLEPOOL_STATIC_DIR", root.join("static"))
        .env("CHROMIUM_PATH", CHROMIUM))
}

/// Runs the load generator (`bench/src/load.rs`) against the release server, both built in
/// release: the server as its own process, so its CPU and memory are measured apart.
fn load(root: &Path, args: &[String]) -> anyhow::Result<()> {
    run(cargo(root).args([
        "build",
        "--release",
        "--package",
        "cyclepool-server",
        "--package",
        "cyclepool-bench",
        "--bin",
        "cyclepool-server",
        "--bin",
        "load",
    ]))?;
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let release = target_dir(root).join("release");
    run(Command::new(release.join("load"))
        .current_dir(root)
        .arg("--server")
        .arg(release.join("cyclepool-server"))
        .args(args))
}

fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn test(root: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    ensure_chromium()?;
    ensure_npm_packages(root)?;

    step("formatting");
    run(cargo(root).args(["fmt", "--all", "--", "--check"]))?;
    step("clippy (native)");
    run(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("clippy (wasm32)");
    run(cargo(root).args([
        "clippy",
        "--package",
        WEB_CLIENT_CRATE,
        "--package",
        "cyclepool-shared",
        "--target",
        WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ]))?;
    step("example job modules");
    build_jobs(root)?;
    step("rust tests");
    run(cargo(root).args(["test", "--workspace"]))?;
    // The built modules meet the ABI: no imports, the exports, a bounded memory.
    run(cargo(root).args([
        "test",
        "--package",
        "cyclepool-job-sdk",
        "--test",
        "module_check",
        "--",
        "--ignored",
    ]))?;
    // A short run replays every seed and regression input and explores a little; the build
    // (libFuzzer itself, instrumented dependencies) is most of this step's time. Long runs are
    // `cargo xtask fuzz --seconds 600`, recorded in docs/RELIABILITY.md.
    step("fuzzing (10 s per target)");
    check_fuzz_crate(root)?;
    fuzz(root, &["--seconds".to_owned(), CI_FUZZ_SECONDS.to_string()])?;
    step("browser tests");
    build_web_client(root)?;
    // The server, and the distributor CLI the browser tests use to sign a job's declaration.
    run(cargo(root).args([
        "build",
        "--package",
        "cyclepool-server",
        "--package",
        "cyclepool-cli",
    ]))?;
    // The distributor's tool that turns a downloaded Mandelbrot job into a picture.
    run(cargo(root).args([
        "build",
        "--package",
        "cyclepool-job-mandelbrot",
        "--example",
        "assemble",
    ]))?;
    let playwright = root.join("playwright");
    run(Command::new("npx")
        .current_dir(&playwright)
        .args(["playwright", "test"])
        .env(
            "CYCLEPOOL_SERVER_BIN",
            target_dir(root).join("debug/cyclepool-server"),
        )
        .env(
            "CYCLEPOOL_ASSEMBLE_BIN",
            target_dir(root).join("debug/examples/assemble"),
        )
        .env("CYCLEPOOL_STATIC_DIR", root.join("static"))
        .env("CHROMIUM_PATH", CHROMIUM))?;
    step("all checks and tests passed");
    Ok(())
}

/// The flags `cargo fuzz` passes to instrument code for libFuzzer (its `project.rs`), minus the
/// sanitizer, which needs nightly: the targets are safe Rust, so a crash is a panic, an
/// overflow or a failed assertion, and all three abort. Sanitizer coverage itself is stable.
/// Also minus its `-Ccodegen-units=1` and `-Clink-dead-code`, which made the build slower for
/// about 6 % more executions per second here.
const FUZZ_RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// How long `cargo xtask test` runs each fuzz target.
const CI_FUZZ_SECONDS: u64 = 10;

/// libFuzzer's limits for one run: memory, and the time one input may take before it counts
/// as a hang (inputs are small and take microseconds; 30 s leaves room for a loaded machine).
const FUZZ_LIMITS: &[&str] = &["-rss_limit_mb=2048", "-timeout=30"];

/// `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the fuzz targets with the stable
/// toolchain and runs each for N seconds, failing if any crashes. Each runs on a copy of its
/// seeds in `target/fuzz/work/<target>/corpus` (kept between runs), so what it finds never
/// lands in the committed `fuzz/corpus`; a crashing input goes to `.../artifacts`.
fn fuzz(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut seconds: u64 = 60;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--seconds") {
            Some("") => args.next().map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => {
                chosen.push(arg.clone());
                continue;
            }
        };
        seconds = value
            .and_then(|value| value.parse().ok())
            .filter(|&seconds| seconds > 0)
            .context("--seconds needs a positive number of seconds")?;
    }
    let targets = fuzz_targets(root)?;
    if let Some(unknown) = chosen.iter().find(|name| !targets.contains(name)) {
        bail!(
            "no fuzz target `{unknown}`; the targets are {}",
            targets.join(", ")
        );
    }
    if chosen.is_empty() {
        chosen = targets;
    }
    let binaries = build_fuzz_targets(root)?;
    let mut crashed = Vec::new();
    for target in &chosen {
        if !run_fuzz_target(root, &binaries, target, seconds)? {
            crashed.push(target.as_str());
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzz targets crashed: {} (inputs in {})",
            crashed.join(", "),
            target_dir(root)
                .join("fuzz/work/<target>/artifacts")
                .display()
        );
    }
    Ok(())
}

/// The names of the `[[bin]]` targets in `fuzz/Cargo.toml`.
fn fuzz_targets(root: &Path) -> anyhow::Result<Vec<String>> {
    let manifest = root.join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut in_bin = false;
    let mut targets = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            targets.push(value.trim().trim_matches('"').to_owned());
        }
    }
    if targets.is_empty() {
        bail!("no [[bin]] targets in {}", manifest.display());
    }
    Ok(targets)
}

/// Builds every fuzz target, instrumented, into `target/fuzz` (apart from the workspace's own
/// builds, whose cache the flags would otherwise invalidate). Returns the binaries' directory.
fn build_fuzz_targets(root: &Path) -> anyhow::Result<PathBuf> {
    // With an explicit --target, RUSTFLAGS reach only the targets' code, not build scripts and
    // proc macros (which could not link the coverage hooks).
    let version =
        output(Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into())).args(["-vV"]))?;
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .context("rustc -vV names no host")?
        .to_owned();
    let mut rustflags = FUZZ_RUSTFLAGS.join(" ");
    if let Ok(extra) = env::var("RUSTFLAGS") {
        rustflags.push(' ');
        rustflags.push_str(&extra);
    }
    let dir = target_dir(root).join("fuzz");
    run(cargo(root)
        .args(["build", "--release", "--bins", "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        .args(["--target", &host, "--target-dir"])
        .arg(&dir)
        .env("RUSTFLAGS", rustflags))?;
    Ok(dir.join(host).join("release"))
}

/// Formatting and lints of the fuzz crate, which `--workspace` does not reach. Linted in the
/// workspace's target directory, whose checked dependencies it mostly shares: a few seconds.
fn check_fuzz_crate(root: &Path) -> anyhow::Result<()> {
    let manifest = root.join("fuzz/Cargo.toml");
    run(cargo(root)
        .args(["fmt", "--manifest-path"])
        .arg(&manifest)
        .args(["--", "--check"]))?;
    run(cargo(root)
        .args(["clippy", "--all-targets", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir(root))
        .args(["--", "-D", "warnings"]))
}

/// Runs one fuzz target for `seconds` and prints what it did. Returns whether it ran without
/// a crash.
fn run_fuzz_target(
    root: &Path,
    binaries: &Path,
    target: &str,
    seconds: u64,
) -> anyhow::Result<bool> {
    let work = target_dir(root).join("fuzz/work").join(target);
    let corpus = work.join("corpus");
    let artifacts = work.join("artifacts");
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let seeds = root.join("fuzz/corpus").join(target);
    if seeds.is_dir() {
        for seed in
            std::fs::read_dir(&seeds).with_context(|| format!("reading {}", seeds.display()))?
        {
            let seed = seed?.path();
            if let Some(name) = seed.file_name() {
                std::fs::copy(&seed, corpus.join(name))
                    .with_context(|| format!("copying {}", seed.display()))?;
            }
        }
    }
    let log_path = work.join("fuzz.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!(
        "xtask: fuzzing {target} for {seconds} s (log: {})",
        log_path.display()
    );
    let mut artifact_prefix = std::ffi::OsString::from("-artifact_prefix=");
    artifact_prefix.push(&artifacts);
    artifact_prefix.push("/");
    let status = Command::new(binaries.join(target))
        .arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .args(FUZZ_LIMITS)
        .arg("-print_final_stats=1")
        .arg(artifact_prefix)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("running {}", binaries.join(target).display()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stat = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("stat::{name}:")))
            .map_or("?", str::trim)
    };
    // libFuzzer's last status line ("#N DONE cov: C ft: F corp: …") says how far it got.
    let coverage = text
        .lines()
        .rev()
        .find(|line| line.contains(" cov: "))
        .and_then(|line| line.split_once(" cov: "))
        .map_or("?", |(_, rest)| rest.split(" lim: ").next().unwrap_or(rest));
    eprintln!(
        "xtask: {target}: {} runs, {}/s, cov: {coverage}",
        stat("number_of_executed_units"),
        stat("average_exec_per_sec"),
    );
    if !status.success() {
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("{}", lines[lines.len().saturating_sub(60)..].join("\n"));
        eprintln!(
            "xtask: {target} crashed ({status}); the input is in {}",
            artifacts.display()
        );
    }
    Ok(status.success())
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm target")?;
    if !installed.lines().any(|line| line.trim() == WASM_TARGET) {
        step("adding the wasm32 target");
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    step("installing Chromium from apt");
    apt_install(&["chromium"])
}

fn ensure_npm_packages(root: &Path) -> anyhow::Result<()> {
    if output(Command::new("npm").arg("--version")).is_err() {
        step("installing Node.js and npm from apt");
        apt_install(&["nodejs", "npm"])?;
    }
    let playwright = root.join("playwright");
    if playwright.join("node_modules/@playwright/test").is_dir() {
        return Ok(());
    }
    step("installing npm packages");
    // `npm ci` installs exactly the lock file; @playwright/test downloads no browser.
    run(Command::new("npm")
        .current_dir(&playwright)
        .args(["ci", "--no-audit", "--no-fund"]))
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let as_root = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let sudo = |program: &str| {
        if as_root {
            Command::new(program)
        } else {
            let mut command = Command::new("sudo");
            command.arg(program);
            command
        }
    };
    run(sudo("apt-get").arg("update"))?;
    run(sudo("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root);
    command
}

fn step(what: &str) {
    eprintln!("\nxtask: == {what} ==");
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed with {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
