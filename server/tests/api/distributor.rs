//! Distributors in tests: registering (trusted or not), and their authenticated requests.

use cyclepool_shared::JobId;
use cyclepool_shared::distributor::{AccountCreated, JobSummary, RegisterAccount};
use cyclepool_shared::protocol::{CreateJob, Inputs, JobCreated};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::helpers::{ADMIN_TOKEN, TestApp, test_job_request, test_policy};
use crate::test_module::reverse_module;

/// A registered distributor and its API token.
pub struct Distributor {
    pub id: u64,
    pub token: String,
}

/// Registers a distributor that accepted the terms and that the admin trusts (its jobs are
/// published without review).
pub async fn register(app: &TestApp, name: &str) -> Distributor {
    let distributor = register_untrusted(app, name).await;
    // Trusted, so that its jobs are published without review (review has its own tests).
    let trusted = app
        .client
        .patch(app.url(&format!("/api/v1/admin/accounts/{}", distributor.id)))
        .header(AUTHORIZATION, bearer(ADMIN_TOKEN))
        .json(&serde_json::json!({ "trusted": true }))
        .send()
        .await
        .expect("trusting the account");
    assert_eq!(trusted.status(), StatusCode::OK);
    distributor
}

/// Registers a distributor that accepted the terms; its jobs wait for the admin's review.
pub async fn register_untrusted(app: &TestApp, name: &str) -> Distributor {
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&RegisterAccount {
            name: name.into(),
            contact: format!("{name}@example.org"),
            organisation: "A test lab".into(),
            purpose: "Testing the distributor API end to end".into(),
            accept_terms: true,
        })
        .send()
        .await
        .expect("registering");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: AccountCreated = response.json().await.expect("parsing AccountCreated");
    assert_eq!(created.account.name, name);
    assert!(created.token.secret.starts_with("cp_token_"));
    Distributor {
        id: created.account.account_id.0,
        token: created.token.secret,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl Distributor {
    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        app.client
            .get(app.url(path))
            .header(AUTHORIZATION, bearer(&self.token))
            .send()
            .await
            .expect("sending a GET")
    }

    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        app.client
            .post(app.url(path))
            .header(AUTHORIZATION, bearer(&self.token))
            .json(&body)
            .send()
            .await
            .expect("sending a POST")
    }

    pub async fn create_job(&self, app: &TestApp, request: &CreateJob) -> reqwest::Response {
        app.client
            .post(app.url("/api/v1/jobs"))
            .header(AUTHORIZATION, bearer(&self.token))
            .json(request)
            .send()
            .await
            .expect("creating a job")
    }

    /// Uploads the test module.
    pub async fn upload_module(&self, app: &TestApp) {
        let upload = app
            .client
            .put(app.url("/api/v1/modules"))
            .header(AUTHORIZATION, bearer(&self.token))
            .header(CONTENT_TYPE, "application/wasm")
            .body(reverse_module())
            .send()
            .await
            .expect("uploading");
        assert_eq!(upload.status(), StatusCode::CREATED);
    }

    /// Uploads the test module and creates a job of `units` range units; returns its id.
    pub async fn job(&self, app: &TestApp, units: u64) -> JobId {
        self.upload_module(app).await;
        let response = self.create_job(app, &range_job(units)).await;
        let status = response.status();
        let text = response.text().await.expect("reading");
        assert_eq!(status, StatusCode::CREATED, "{text}");
        serde_json::from_str::<JobCreated>(&text)
            .expect("parsing JobCreated")
            .job_id
    }

    pub async fn summary(&self, app: &TestApp, job: JobId) -> JobSummary {
        let response = self.get(app, &format!("/api/v1/jobs/{job}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("parsing JobSummary")
    }
}

pub fn range_job(units: u64) -> CreateJob {
    test_job_request(
        Inputs::Range {
            start: 0,
            end: units,
            step: 1,
        },
        test_policy(),
    )
}
