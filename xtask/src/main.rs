//! `cargo xtask`: the one place that builds, serves and tests Cyclepool.
//!
//! - `cargo xtask serve [SERVER FLAGS]`: builds the web client (wasm) and the server
//!   (release), then runs the server (by default on 127.0.0.1:8080 with its store in ./data).
//! - `cargo xtask test`: installs what the tests need (wasm target, Chromium, npm packages),
//!   then runs formatting and lint checks, every Rust test, and the Playwright suite.
//! - `cargo xtask build [--debug]`: builds without running.
//! - `cargo xtask web`: builds only the web client into `static/pkg`.
//! - `cargo xtask jobs`: builds only the example job modules into `jobs/dist`.
//! - `cargo xtask bench-jobs`: job throughput in Chromium against the same Rust natively.
//! - `cargo xtask load [-- FLAGS]`: the distributor's throughput under simulated volunteers.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WEB_CLIENT_CRATE: &str = "cyclepool-web-client";
const WEB_CLIENT_ARTIFACT: &str = "cyclepool_web_client.wasm";
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
        "load" => load(&root, &rest),
        "serve" => serve(&root, &rest),
        "test" => test(&root),
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
                 load [-- FLAGS] simulated volunteers against the release server on loopback\n                  \
                 (`cargo xtask load -- --help` lists the flags)"
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
        .generate(&out_dir)
        .with_context(|| format!("generating bindings for {}", wasm.display()))?;
    eprintln!("xtask: web client built into {}", out_dir.display());
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
