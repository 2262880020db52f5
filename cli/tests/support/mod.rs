//! The harness of the CLI's tests: the real server on `127.0.0.1:0` (API only, temporary
//! store) on a background thread, a distributor running the built `cyclepool` binary with its
//! own configuration directory, and a volunteer speaking the volunteer protocol over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

use cyclepool_server::config::Config;
use cyclepool_shared::protocol::{
    Lease, LeaseRequest, LeaseResponse, PROTOCOL_VERSION, ResultSubmission, SubmitResponse,
};
use cyclepool_shared::signing::{Purpose, SecretKey, result_message};
use cyclepool_shared::{Sha256Digest, VolunteerId};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use tempfile::TempDir;

/// The admin token of every test server (given to `cyclepool admin` as `CYCLEPOOL_TOKEN`).
pub const ADMIN_TOKEN: &str =
    "cp_admin_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The test module: its output is its input reversed.
pub fn reverse_module() -> Vec<u8> {
    wat::parse_str(include_str!("reverse.wat")).expect("the test module's WAT is valid")
}

/// What the test module computes, done natively.
pub fn reversed(input: &[u8]) -> Vec<u8> {
    input.iter().rev().copied().collect()
}

/// A server running on a thread of its own, stopped (and its store flushed) on drop.
pub struct Server {
    pub url: String,
    pub http: Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Kept alive for as long as the server uses it.
    _data_dir: TempDir,
}

impl Server {
    /// Starts a server with an empty store and waits until it answers.
    pub fn start() -> Server {
        let data_dir = tempfile::tempdir().expect("creating the data directory");
        let mut config = Config::for_data_dir(data_dir.path());
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        let (address_sender, address) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("building the server's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding a free port");
                address_sender
                    .send(listener.local_addr().expect("reading the bound address"))
                    .expect("sending the address to the test");
                cyclepool_server::run(listener, config, async {
                    let _ = stop.await;
                })
                .await
                .expect("the server stopped with an error");
            });
        });
        let address = address
            .recv_timeout(Duration::from_secs(30))
            .expect("the server did not bind");
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the test's http client");
        let server = Server {
            url: format!("http://{address}"),
            http,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _data_dir: data_dir,
        };
        server.wait_until_healthy();
        server
    }

    fn wait_until_healthy(&self) {
        for _ in 0..250 {
            let health = self.http.get(self.api("/health")).send();
            if health.is_ok_and(|response| response.status() == StatusCode::OK) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not become healthy at {}", self.url);
    }

    /// The absolute URL of an API path.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// A distributor with a fresh configuration directory, talking to this server.
    pub fn distributor(&self) -> Distributor {
        Distributor::new(&self.url)
    }

    /// `GET` a public JSON document.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.http.get(self.api(path)).send().expect("sending a GET");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().expect("parsing the answer")
    }

    /// Leases up to `max_units` units as `volunteer`.
    pub fn lease(&self, volunteer: &SecretKey, max_units: u32) -> Vec<Lease> {
        let request = LeaseRequest {
            protocol: PROTOCOL_VERSION,
            volunteer: volunteer_id(volunteer),
            max_units,
            exclude_jobs: Vec::new(),
            exclude_categories: Vec::new(),
            site: None,
            proof: None,
            work_ms: None,
        };
        let response = self
            .http
            .post(self.api("/lease"))
            .json(&request)
            .send()
            .expect("sending a lease request");
        let status = response.status();
        let text = response.text().expect("reading the lease answer");
        assert_eq!(status, StatusCode::OK, "lease refused: {text}");
        let answer: LeaseResponse = serde_json::from_str(&text).expect("parsing the leases");
        answer.leases
    }

    /// Computes `lease` honestly (the input reversed) and submits it signed by `volunteer`.
    pub fn submit(&self, volunteer: &SecretKey, lease: &Lease) {
        let output = reversed(&lease.input);
        let output_sha256 = Sha256Digest::of(&output);
        let submission = ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer: volunteer_id(volunteer),
            lease_id: lease.lease_id,
            nonce: lease.nonce,
            output,
            output_sha256,
            signature: volunteer.sign(
                Purpose::Result,
                &result_message(&lease.lease_id, &lease.nonce, &output_sha256),
            ),
            compute_ms: 1,
        };
        let response = self
            .http
            .post(self.api("/results"))
            .json(&submission)
            .send()
            .expect("sending a result");
        let status = response.status();
        let text = response.text().expect("reading the submit answer");
        assert_eq!(status, StatusCode::OK, "result refused: {text}");
        let _: SubmitResponse = serde_json::from_str(&text).expect("parsing the answer");
    }

    /// Computes every unit on offer as `volunteer`; returns how many.
    pub fn compute_everything(&self, volunteer: &SecretKey) -> usize {
        let mut computed = 0;
        loop {
            let leases = self.lease(volunteer, 16);
            if leases.is_empty() {
                return computed;
            }
            for lease in &leases {
                self.submit(volunteer, lease);
            }
            computed += leases.len();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server's thread fails the test, unless the test already panicked.
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the server's thread panicked");
            }
        }
    }
}

/// The test volunteer whose key's seed is `byte` repeated.
pub fn volunteer(byte: u8) -> SecretKey {
    SecretKey::from_seed(&[byte; 32])
}

/// A volunteer's id: its public key.
pub fn volunteer_id(key: &SecretKey) -> VolunteerId {
    VolunteerId::from_bytes(*key.public_key().as_bytes())
}

/// Someone running `cyclepool` on their machine: a home and configuration directory of their
/// own, and the portal in `CYCLEPOOL_PORTAL`.
pub struct Distributor {
    pub home: TempDir,
    pub portal: String,
}

impl Distributor {
    fn new(portal: &str) -> Distributor {
        Distributor {
            home: tempfile::tempdir().expect("creating a home directory"),
            portal: portal.to_owned(),
        }
    }

    /// `$XDG_CONFIG_HOME` of this distributor.
    pub fn config_home(&self) -> PathBuf {
        self.home.path().join("config")
    }

    /// The CLI's directory of this distributor.
    pub fn cli_dir(&self) -> PathBuf {
        self.config_home().join("cyclepool")
    }

    /// A path in the home directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// The command, with this distributor's environment and nothing inherited that matters.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cyclepool"));
        command
            .args(args)
            .current_dir(self.home.path())
            .env("CYCLEPOOL_PORTAL", &self.portal)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env_remove("CYCLEPOOL_TOKEN");
        command
    }

    /// Runs the CLI with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running cyclepool")
    }

    /// Runs the CLI, expecting success; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        expect_success(self.run(args), args)
    }

    /// Runs the CLI with `CYCLEPOOL_TOKEN` set, expecting success; returns standard output.
    pub fn ok_with_token(&self, token: &str, args: &[&str]) -> String {
        let output = self
            .command(args)
            .env("CYCLEPOOL_TOKEN", token)
            .output()
            .expect("running cyclepool");
        expect_success(output, args)
    }

    /// Runs the CLI with `--json`, expecting success; returns the parsed answer.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let stdout = self.ok(&with_json);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|err| panic!("`{}` printed no JSON ({err}): {stdout}", args.join(" ")))
    }

    /// Runs the CLI, expecting it to fail with status 1; returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        expect_failure(self.run(args), args)
    }

    /// Registers an account named `name` that accepts the terms, and has the portal's admin
    /// trust it, so that its jobs are published at once; returns its first token's secret.
    pub fn register(&self, name: &str) -> String {
        let (token, account) = self.register_untrusted(name);
        let stdout = self.admin(&["admin", "trust", &account.to_string()]);
        assert!(stdout.contains("is trusted"), "{stdout}");
        token
    }

    /// Registers an account named `name` that accepts the terms but is not trusted: its jobs
    /// wait for the admin's review. Returns its first token's secret and the account's id.
    pub fn register_untrusted(&self, name: &str) -> (String, u64) {
        let answer = self.json(&[
            "register",
            "--name",
            name,
            "--contact",
            "ops@example.org",
            "--organisation",
            "Example Lab",
            "--purpose",
            "Testing the command line end to end.",
            "--show-token",
            "--accept-terms",
        ]);
        let token = answer["token"]["secret"]
            .as_str()
            .expect("the token's secret with --show-token")
            .to_owned();
        let account = answer["account"]["account_id"]
            .as_u64()
            .expect("the account's id");
        (token, account)
    }

    /// Runs the CLI as the portal's admin (the admin token in `CYCLEPOOL_TOKEN`), expecting
    /// success; returns standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        self.ok_with_token(ADMIN_TOKEN, args)
    }

    /// Writes the test module into the home directory; returns its path.
    pub fn module_file(&self) -> PathBuf {
        let path = self.path("reverse.wasm");
        std::fs::write(&path, reverse_module()).expect("writing the module");
        path
    }

    /// Submits a job with `extra` arguments (inputs, signing) through `--json`; returns
    /// `(job id, units)`.
    pub fn submit(&self, title: &str, extra: &[&str]) -> (u64, u64) {
        let module = self.module_file();
        let module = module.to_str().expect("a UTF-8 path");
        let mut args = vec!["job", "submit", "--module", module, "--title", title];
        args.extend_from_slice(extra);
        let created = self.json(&args);
        (
            created["job_id"].as_u64().expect("a job id"),
            created["units"].as_u64().expect("a unit count"),
        )
    }
}

/// Asserts a successful run; returns standard output.
pub fn expect_success(output: Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`cyclepool {}` failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" "),
        output.status
    );
    stdout
}

/// Asserts a run that failed with exit status 1 and said why; returns standard error.
pub fn expect_failure(output: Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "`cyclepool {}` should fail with status 1:\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" ")
    );
    assert!(
        stderr.starts_with("error: "),
        "the failure says why: {stderr}"
    );
    stderr
}

/// The Unix permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("reading the file's metadata")
        .permissions()
        .mode()
        & 0o777
}
