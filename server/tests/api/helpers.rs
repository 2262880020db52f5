//! The harness: the real server on `127.0.0.1:0` with a temporary store and a paused clock,
//! and one job created through the distributor API from the WAT module in `test_module.rs`.
//!
//! Tests move time with `app.clock.advance(ms)`; nothing here sleeps to make time pass.
//!
//! A test volunteer is a key pair seeded with one repeated byte: [`volunteer`] gives its id
//! (the public key), [`secret_for`] its secret key, and the submission helpers sign with it.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use cyclepool_server::ServerError;
use cyclepool_server::clock::Clock;
use cyclepool_server::config::Config;
use cyclepool_server::store::{ReportRecord, Store};
use cyclepool_shared::manifest::{JobPolicy, PortalKeys, SignedManifest};
use cyclepool_shared::protocol::{
    CreateJob, Inputs, JobCreated, Lease, LeaseProof, LeaseRequest, LeaseResponse, ModuleUploaded,
    PROTOCOL_VERSION, Report, ReportResponse, ResultSubmission, StatsResponse, SubmitResponse,
    SubmitStatus,
};
use cyclepool_shared::signing::{Purpose, SecretKey, lease_proof_message, result_message};
use cyclepool_shared::{ErrorBody, ErrorCode, JobId, Sha256Digest, Signature, VolunteerId};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::test_module::{expected_output, reverse_module};

/// Where the paused clock starts: an ordinary moment in late 2023, in ms since the epoch.
pub const START_MS: u64 = 1_700_000_000_000;

/// The lease TTL of the test job (its `policy.lease_ttl_ms`).
pub const LEASE_TTL_MS: u64 = 60_000;

/// The admin token every test server is configured with.
pub const ADMIN_TOKEN: &str =
    "cp_admin_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The SHA-256 of the test module (see `test_module.rs`).
pub fn module_sha256() -> Sha256Digest {
    static DIGEST: OnceLock<Sha256Digest> = OnceLock::new();
    *DIGEST.get_or_init(|| Sha256Digest::of(&reverse_module()))
}

/// The policy of the test job: the test lease TTL, everything else as the portal's default.
pub fn test_policy() -> JobPolicy {
    JobPolicy {
        lease_ttl_ms: LEASE_TTL_MS,
        unit_budget_ms: 30_000,
        ..JobPolicy::default()
    }
}

/// A job of `units` range units (`[i, i + 1)` for unit `i`) on the test module.
pub fn job_request(units: u64) -> CreateJob {
    CreateJob {
        title: "Reverse some bytes".into(),
        description: "Each unit reverses its 16-byte input.".into(),
        module_sha256: module_sha256(),
        inputs: Inputs::Range {
            start: 0,
            end: units,
            step: 1,
        },
        policy: test_policy(),
        expires_in_ms: None,
        group: None,
        priority: 0,
        weight: 1,
        signature: None,
        category: Default::default(),
    }
}

/// A job on the test module with `inputs` and `policy`.
pub fn test_job_request(inputs: Inputs, policy: JobPolicy) -> CreateJob {
    CreateJob {
        title: "test job".into(),
        description: String::new(),
        module_sha256: module_sha256(),
        inputs,
        policy,
        expires_in_ms: None,
        group: None,
        priority: 0,
        weight: 1,
        signature: None,
        category: Default::default(),
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The server's clock: paused at [`START_MS`] until a test advances it.
    pub clock: Clock,
    /// Kept alive for as long as the server uses it.
    pub data_dir: TempDir,
    /// The job [`spawn_app`] created, if it was asked for units.
    pub job: Option<JobCreated>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServerError>>>,
}

/// Starts a server with one job of `units` units on the test module, created through the
/// distributor API (no job when 0).
pub async fn spawn_app(units: u64) -> TestApp {
    let data_dir = tempfile::tempdir().expect("creating the data directory");
    let mut app = match start(data_dir, None, Clock::paused(START_MS)).await {
        Ok(app) => app,
        Err((_, err)) => panic!("the server did not start: {err}"),
    };
    if units > 0 {
        app.upload_test_module().await;
        let response = app.create_job_response(&job_request(units)).await;
        let status = response.status();
        let text = response.text().await.expect("reading the job response");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating the job failed: {text}"
        );
        let created: JobCreated = serde_json::from_str(&text).expect("parsing JobCreated");
        assert_eq!(created.units, units);
        app.job = Some(created);
    }
    app
}

/// Starts a server with no job that serves the pages of `static_dir` as well as the API.
pub async fn spawn_app_with_pages(static_dir: &std::path::Path) -> TestApp {
    let static_dir = static_dir.to_owned();
    spawn_app_with(move |config: &mut Config| {
        config.api_only = false;
        config.static_dir = static_dir;
    })
    .await
}

/// Starts a server with no job, its test configuration changed by `configure` first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("creating the data directory");
    match start_with(data_dir, None, Clock::paused(START_MS), configure).await {
        Ok(app) => app,
        Err((_, err)) => panic!("the server did not start: {err}"),
    }
}

/// Starts a server on `data_dir`; on failure, gives the directory back with the reason.
async fn start(
    data_dir: TempDir,
    job: Option<JobCreated>,
    clock: Clock,
) -> Result<TestApp, (TempDir, ServerError)> {
    start_with(data_dir, job, clock, |_| {}).await
}

/// [`start`], with `configure` changing the test configuration first.
async fn start_with(
    data_dir: TempDir,
    job: Option<JobCreated>,
    clock: Clock,
    configure: impl FnOnce(&mut Config),
) -> Result<TestApp, (TempDir, ServerError)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a free port");
    let address = listener.local_addr().expect("reading the bound address");
    let mut config = Config::for_data_dir(data_dir.path());
    config.demo_units = 0;
    config.admin_token = Some(ADMIN_TOKEN.to_owned());
    config.clock = clock.clone();
    configure(&mut config);
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(cyclepool_server::run(listener, config, async {
        let _ = stop.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building the http client");
    let mut app = TestApp {
        address,
        client,
        clock,
        data_dir,
        job,
        shutdown: Some(shutdown),
        server: Some(server),
    };
    match app.wait_until_healthy().await {
        Ok(()) => Ok(app),
        Err(err) => Err((app.data_dir, err)),
    }
}

impl TestApp {
    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn wait_until_healthy(&mut self) -> Result<(), ServerError> {
        // The listener is bound before the server starts, so a request waits in the backlog
        // until the store is open; this loop only guards against a server that failed.
        for _ in 0..100 {
            let health = self.client.get(self.url("/api/v1/health")).send().await;
            if health.is_ok_and(|response| response.status() == StatusCode::OK) {
                return Ok(());
            }
            if self.server.as_ref().is_some_and(JoinHandle::is_finished) {
                let result = self.server.take().expect("server handle").await;
                return match result.expect("the server task panicked") {
                    Ok(()) => panic!("the server stopped during start-up without an error"),
                    Err(err) => Err(err),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not become healthy");
    }

    /// Stops the server gracefully and waits until it has flushed and closed its store.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), server)
                .await
                .expect("the server did not stop within 20 s")
                .expect("the server task panicked");
            result.expect("the server stopped with an error");
        }
    }

    /// Stops the server and starts a new one on the same store and the same clock.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut data_dir = self.data_dir;
        // sled's background threads let go of the directory's lock shortly after the last
        // handle is dropped, not always before `run` returns: the new server may have to wait.
        for _ in 0..250 {
            match start(data_dir, self.job.clone(), self.clock.clone()).await {
                Ok(app) => return app,
                Err((dir, ServerError::OpenStore { .. })) => {
                    data_dir = dir;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((_, err)) => panic!("the server did not restart: {err}"),
            }
        }
        panic!("the store stayed locked for 5 s after the server stopped");
    }

    /// Stops the server and opens its store directly, as `cyclepool-server audit` does.
    pub async fn stop_and_open_store(&mut self) -> Store {
        self.stop().await;
        // As in `restart`: sled may hold the directory's lock a little after `run` returns.
        for _ in 0..250 {
            if let Ok(store) = Store::open(self.data_dir.path()) {
                return store;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the store stayed locked for 5 s after the server stopped");
    }

    /// The id of the job [`spawn_app`] created.
    pub fn job_id(&self) -> JobId {
        self.job.as_ref().expect("this app has no job").job_id
    }

    /// `PUT /api/v1/modules` with the admin token; the raw response.
    pub async fn upload_module_response(&self, bytes: impl Into<Vec<u8>>) -> reqwest::Response {
        self.client
            .put(self.url("/api/v1/modules"))
            .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .header(CONTENT_TYPE, "application/wasm")
            .body(bytes.into())
            .send()
            .await
            .expect("uploading a module")
    }

    /// Uploads the test module, expecting it to be accepted.
    pub async fn upload_test_module(&self) -> ModuleUploaded {
        let response = self.upload_module_response(reverse_module()).await;
        let status = response.status();
        assert_json_with_security_headers(response.headers());
        let text = response.text().await.expect("reading the upload response");
        assert_eq!(status, StatusCode::CREATED, "module refused: {text}");
        let uploaded: ModuleUploaded = serde_json::from_str(&text).expect("parsing the answer");
        assert_eq!(uploaded.module_sha256, module_sha256());
        uploaded
    }

    /// `POST /api/v1/jobs` with the admin token; the raw response.
    pub async fn create_job_response(&self, request: &CreateJob) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/jobs"))
            .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .json(request)
            .send()
            .await
            .expect("creating a job")
    }

    /// Uploads the test module (uploads are idempotent) and creates a job on it with `inputs`
    /// and `policy`, expecting it to be created; returns the new job's id.
    pub async fn create_test_job(&self, inputs: Inputs, policy: JobPolicy) -> u64 {
        self.upload_test_module().await;
        let response = self
            .create_job_response(&test_job_request(inputs, policy))
            .await;
        let status = response.status();
        let text = response.text().await.expect("reading the job response");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating the job failed: {text}"
        );
        let created: JobCreated = serde_json::from_str(&text).expect("parsing JobCreated");
        created.job_id.0
    }

    /// `GET /api/v1/modules/{digest}`; the raw response.
    pub async fn module_response(&self, digest: impl Display) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/modules/{digest}")))
            .send()
            .await
            .expect("requesting a module")
    }

    /// `GET /api/v1/jobs/{job}/results` with the admin token; the raw response.
    pub async fn results_response(&self, job: impl Display) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/jobs/{job}/results")))
            .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .expect("requesting the results")
    }

    /// The results download of `job`, one JSON value per line, expecting it to exist.
    pub async fn results(&self, job: u64) -> Vec<serde_json::Value> {
        let response = self.results_response(job).await;
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let text = response.text().await.expect("reading the results");
        assert_eq!(
            status,
            StatusCode::OK,
            "downloading the results failed: {text}"
        );
        assert_eq!(
            content_type.as_ref().and_then(|value| value.to_str().ok()),
            Some("application/x-ndjson"),
            "the results' content type"
        );
        text.lines()
            .map(|line| serde_json::from_str(line).expect("parsing a result line"))
            .collect()
    }

    /// `GET /api/v1/leaderboard`: each row's volunteer and count of credited results.
    pub async fn leaderboard(&self) -> Vec<(String, u64)> {
        let response = self
            .client
            .get(self.url("/api/v1/leaderboard"))
            .send()
            .await
            .expect("requesting the leaderboard");
        assert_eq!(response.status(), StatusCode::OK);
        let rows: Vec<serde_json::Value> = response.json().await.expect("parsing the leaderboard");
        rows.iter()
            .map(|row| {
                (
                    row["volunteer"]
                        .as_str()
                        .expect("a leaderboard row's volunteer")
                        .to_owned(),
                    row["results"]
                        .as_u64()
                        .expect("a leaderboard row's results"),
                )
            })
            .collect()
    }

    /// `GET /.well-known/cyclepool-keys.json`.
    pub async fn keys(&self) -> PortalKeys {
        let response = self
            .client
            .get(self.url("/.well-known/cyclepool-keys.json"))
            .send()
            .await
            .expect("requesting the keys");
        assert_eq!(response.status(), StatusCode::OK);
        assert_json_with_security_headers(response.headers());
        response.json().await.expect("parsing the keys")
    }

    /// `GET /api/v1/jobs/{id}/manifest`; the raw response.
    pub async fn manifest_response(&self, job: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/jobs/{job}/manifest")))
            .send()
            .await
            .expect("requesting a manifest")
    }

    /// The signed manifest of `job`, expecting it to exist.
    pub async fn manifest(&self, job: JobId) -> SignedManifest {
        let response = self.manifest_response(&job.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_json_with_security_headers(response.headers());
        response.json().await.expect("parsing the manifest")
    }

    /// `POST /api/v1/reports`; the raw response.
    pub async fn report_response(&self, report: &Report) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/reports"))
            .json(report)
            .send()
            .await
            .expect("sending a report")
    }

    /// Sends a report, expecting it to be recorded; returns whether it released a lease.
    pub async fn report(&self, report: &Report) -> bool {
        let response = self.report_response(report).await;
        let status = response.status();
        assert_json_with_security_headers(response.headers());
        let text = response.text().await.expect("reading the report response");
        assert_eq!(status, StatusCode::OK, "report refused: {text}");
        let body: ReportResponse = serde_json::from_str(&text).expect("parsing the response");
        assert_eq!(body.protocol, PROTOCOL_VERSION);
        body.released
    }

    /// `GET /api/v1/reports` with the admin token: every client report, oldest first.
    pub async fn reports(&self) -> Vec<ReportRecord> {
        let response = self
            .client
            .get(self.url("/api/v1/reports"))
            .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .expect("listing reports");
        assert_eq!(response.status(), StatusCode::OK);
        assert_json_with_security_headers(response.headers());
        response.json().await.expect("parsing the reports")
    }

    /// `POST /api/v1/lease` with a well-formed request; the raw response.
    pub async fn lease_response(
        &self,
        volunteer: VolunteerId,
        max_units: u32,
    ) -> reqwest::Response {
        self.post_lease(&lease_request(volunteer, max_units, None))
            .await
    }

    /// `POST /api/v1/lease` with a proof that the sender holds `volunteer`'s key, as the web
    /// client sends it; the raw response.
    pub async fn lease_with_proof_response(
        &self,
        volunteer: VolunteerId,
        max_units: u32,
    ) -> reqwest::Response {
        let at_ms = self.clock.now_ms();
        let proof = LeaseProof {
            at_ms,
            signature: secret_for(volunteer)
                .sign(Purpose::LeaseProof, &lease_proof_message(&volunteer, at_ms)),
        };
        self.post_lease(&lease_request(volunteer, max_units, Some(proof)))
            .await
    }

    /// `POST /api/v1/lease` with `request`; the raw response.
    pub async fn post_lease(&self, request: &LeaseRequest) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/lease"))
            .json(request)
            .send()
            .await
            .expect("sending a lease request")
    }

    /// Leases up to `max_units` units, expecting success.
    pub async fn lease(&self, volunteer: VolunteerId, max_units: u32) -> LeaseResponse {
        let response = self.lease_response(volunteer, max_units).await;
        assert_eq!(response.status(), StatusCode::OK, "lease request failed");
        assert_json_with_security_headers(response.headers());
        let body: LeaseResponse = response.json().await.expect("parsing the lease response");
        assert_eq!(body.protocol, PROTOCOL_VERSION);
        body
    }

    /// Leases exactly one unit, expecting one to be available.
    pub async fn lease_one(&self, volunteer: VolunteerId) -> Lease {
        let mut response = self.lease(volunteer, 1).await;
        assert_eq!(response.leases.len(), 1, "expected one lease: {response:?}");
        response.leases.remove(0)
    }

    /// `POST /api/v1/results`; the raw response.
    pub async fn submit_response(&self, submission: &ResultSubmission) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/results"))
            .json(submission)
            .send()
            .await
            .expect("sending a result")
    }

    /// Submits `output` for `lease` as `volunteer` and expects it caught: refused as a wrong
    /// answer, and the volunteer blacklisted (its next lease request refused).
    pub async fn expect_caught(&self, volunteer: VolunteerId, lease: &Lease, output: Vec<u8>) {
        let response = self
            .submit_response(&submission(volunteer, lease, output))
            .await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidResult,
        )
        .await;
        let response = self.lease_response(volunteer, 1).await;
        expect_error(
            response,
            StatusCode::FORBIDDEN,
            ErrorCode::VolunteerBlacklisted,
        )
        .await;
    }

    /// Submits a result, expecting it to be acknowledged; returns how.
    pub async fn submit(&self, submission: &ResultSubmission) -> SubmitStatus {
        let response = self.submit_response(submission).await;
        let status = response.status();
        assert_json_with_security_headers(response.headers());
        let text = response.text().await.expect("reading the submit response");
        assert_eq!(status, StatusCode::OK, "submission refused: {text}");
        let body: SubmitResponse = serde_json::from_str(&text).expect("parsing the response");
        assert_eq!(body.protocol, PROTOCOL_VERSION);
        body.status
    }

    /// Sends `body` as is, with `content_type` if given.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> reqwest::Response {
        self.request_raw(reqwest::Method::POST, path, content_type, body)
            .await
    }

    /// Sends a request with any method, path, content type and body.
    pub async fn request_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request
            .body(body.into())
            .send()
            .await
            .expect("sending a raw request")
    }

    /// `GET /api/v1/stats`.
    pub async fn stats(&self) -> StatsResponse {
        let response = self
            .client
            .get(self.url("/api/v1/stats"))
            .send()
            .await
            .expect("requesting stats");
        assert_eq!(response.status(), StatusCode::OK);
        assert_json_with_security_headers(response.headers());
        response.json().await.expect("parsing stats")
    }

    /// `(done, leased)` of the one job this server has.
    pub async fn progress(&self) -> (u64, u64) {
        let stats = self.stats().await;
        assert_eq!(stats.jobs.len(), 1, "expected exactly one job: {stats:?}");
        (stats.jobs[0].done, stats.jobs[0].leased)
    }

    /// `(done, leased, failed)` of `job`, expecting it in the stats.
    pub async fn job_counts(&self, job: u64) -> (u64, u64, u64) {
        let stats = self.stats().await;
        let job = stats
            .jobs
            .iter()
            .find(|j| j.job_id.0 == job)
            .unwrap_or_else(|| panic!("job {job} is not in the stats: {stats:?}"));
        (job.done, job.leased, job.failed)
    }

    /// Asserts that the server still hands out work as usual.
    pub async fn assert_still_serving(&self) {
        let response = self.lease(volunteer(0xee), 1).await;
        assert_eq!(
            response.leases.len(),
            1,
            "the server stopped handing out work"
        );
    }
}

/// A lease request for public work (and, with a proof, the key's groups' work).
pub fn lease_request(
    volunteer: VolunteerId,
    max_units: u32,
    proof: Option<LeaseProof>,
) -> LeaseRequest {
    LeaseRequest {
        protocol: PROTOCOL_VERSION,
        volunteer,
        max_units,
        exclude_jobs: Vec::new(),
        exclude_categories: Vec::new(),
        site: None,
        proof,
        work_ms: None,
    }
}

/// The identity of the test volunteer `byte`: the public key of the key pair whose seed is
/// `byte` repeated.
pub fn volunteer(byte: u8) -> VolunteerId {
    let public = SecretKey::from_seed(&[byte; 32]).public_key();
    VolunteerId::from_bytes(*public.as_bytes())
}

/// The secret key of a volunteer made by [`volunteer`].
pub fn secret_for(volunteer: VolunteerId) -> SecretKey {
    // Ids are public keys, so the seed cannot be read back from one: look it up instead.
    static SEEDS: OnceLock<HashMap<VolunteerId, u8>> = OnceLock::new();
    let seeds = SEEDS.get_or_init(|| {
        (0..=u8::MAX)
            .map(|byte| (self::volunteer(byte), byte))
            .collect()
    });
    let byte = seeds
        .get(&volunteer)
        .unwrap_or_else(|| panic!("{volunteer:?} is not the id of a test volunteer"));
    SecretKey::from_seed(&[*byte; 32])
}

/// `signer`'s signature over `submission`'s lease id, nonce and output digest (whoever the
/// submission names as its volunteer).
pub fn signature_by(signer: VolunteerId, submission: &ResultSubmission) -> Signature {
    let message = result_message(
        &submission.lease_id,
        &submission.nonce,
        &submission.output_sha256,
    );
    secret_for(signer).sign(Purpose::Result, &message)
}

/// Signs `submission` with its volunteer's key, as an honest client does last. A test that
/// changes a signed field calls it again, so that only the change is wrong.
pub fn sign(submission: &mut ResultSubmission) {
    submission.signature = signature_by(submission.volunteer, submission);
}

/// Computes the unit natively (what the test module computes), checking first that the lease
/// names the uploaded module, and builds the honest submission.
pub fn compute(volunteer: VolunteerId, lease: &Lease) -> ResultSubmission {
    assert_eq!(
        lease.module_sha256,
        module_sha256(),
        "the lease names another module"
    );
    submission(volunteer, lease, expected_output(&lease.input))
}

/// A submission for `lease` carrying `output` and its true digest, signed by `volunteer`.
pub fn submission(volunteer: VolunteerId, lease: &Lease, output: Vec<u8>) -> ResultSubmission {
    let mut submission = ResultSubmission {
        protocol: PROTOCOL_VERSION,
        volunteer,
        lease_id: lease.lease_id,
        nonce: lease.nonce,
        output_sha256: Sha256Digest::of(&output),
        output,
        signature: Signature::from_bytes([0; 64]),
        compute_ms: 15,
    };
    sign(&mut submission);
    submission
}

/// Asserts the headers every response carries, and a JSON content type.
pub fn assert_json_with_security_headers(headers: &HeaderMap) {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type is {content_type:?}, not json"
    );
    assert_security_headers(headers);
}

/// Asserts the Content-Security-Policy and `nosniff` that every response must carry.
pub fn assert_security_headers(headers: &HeaderMap) {
    let csp = headers
        .get("content-security-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no content-security-policy header in {headers:?}"));
    for directive in [
        "connect-src 'self'",
        "'wasm-unsafe-eval'",
        "frame-ancestors",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert_eq!(
        headers
            .get("x-content-type-options")
            .and_then(|value| value.to_str().ok()),
        Some("nosniff"),
        "x-content-type-options"
    );
}

/// Asserts that `response` is the JSON error `status`/`code` with the security headers, and
/// returns the error body.
pub async fn expect_error(
    response: reqwest::Response,
    status: StatusCode,
    code: ErrorCode,
) -> ErrorBody {
    let actual = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("reading the error body");
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_json_with_security_headers(&headers);
    let body: ErrorBody = serde_json::from_slice(&bytes)
        .unwrap_or_else(|err| panic!("the error body is not an ErrorBody ({err}): {text}"));
    assert_eq!(body.error.code, code, "unexpected error code; body: {text}");
    assert!(!body.error.message.is_empty(), "empty error message");
    body
}
