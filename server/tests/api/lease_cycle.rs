//! The happy path: lease a unit, compute it, submit it, see it counted; and leasing hands
//! every unit out exactly once while no lease expires.

use std::collections::HashSet;

use cyclepool_server::sandbox::{Sandbox, SandboxLimits};
use cyclepool_shared::Sha256Digest;
use cyclepool_shared::protocol::{MAX_UNITS_PER_REQUEST, PROTOCOL_VERSION, SubmitStatus};

use crate::helpers::{LEASE_TTL_MS, START_MS, compute, module_sha256, spawn_app, volunteer};
use crate::test_module::{expected_output, range_input, reverse_module};

#[tokio::test]
async fn a_computed_unit_is_accepted_and_counted_as_done() {
    let app = spawn_app(4).await;
    let alice = volunteer(1);

    let lease = app.lease_one(alice).await;
    assert_eq!(lease.module_sha256, module_sha256());
    assert_eq!(lease.module_sha256, Sha256Digest::of(&reverse_module()));
    assert_eq!(lease.job_id, app.job_id());
    assert_eq!(lease.input, range_input(lease.unit, lease.unit + 1));
    assert_eq!(lease.input_sha256, Sha256Digest::of(&lease.input));
    assert_eq!(lease.deadline_ms, START_MS + LEASE_TTL_MS);
    let stats = app.stats().await;
    assert_eq!(stats.jobs.len(), 1);
    assert_eq!(stats.jobs[0].job_id, lease.job_id);
    assert_eq!(stats.jobs[0].module_sha256, module_sha256());
    assert_eq!(stats.jobs[0].units, 4);
    assert_eq!((stats.jobs[0].done, stats.jobs[0].leased), (0, 1));

    // The module itself, run in the server's sandbox, agrees with the native computation
    // and accepts it in `verify`, and refuses anything else.
    let sandbox = Sandbox::new(SandboxLimits::for_run());
    let module = sandbox.compile(&reverse_module()).unwrap();
    let output = sandbox.run(&module, &lease.input).unwrap();
    assert_eq!(output, expected_output(&lease.input));
    assert_ne!(
        output, lease.input,
        "a reversed range input differs from the input"
    );
    assert_eq!(sandbox.verify(&module, &lease.input, &output), Ok(true));
    assert_eq!(
        sandbox.verify(&module, &lease.input, &lease.input),
        Ok(false)
    );
    assert_eq!(
        sandbox.verify(&module, &lease.input, &output[1..]),
        Ok(false)
    );
    let submission = compute(alice, &lease);
    assert_eq!(submission.output, output);
    assert_eq!(app.submit(&submission).await, SubmitStatus::Accepted);

    assert_eq!(app.progress().await, (1, 0));
}

#[tokio::test]
async fn leasing_hands_out_every_unit_exactly_once_then_asks_to_retry() {
    const UNITS: u64 = 150;
    let app = spawn_app(UNITS).await;

    let mut units = Vec::new();
    let mut lease_ids = HashSet::new();
    let mut nonces = HashSet::new();
    let mut requests = 0;
    let last = loop {
        requests += 1;
        assert!(requests <= 10, "the job never ran out of units");
        // Alternate volunteers: who asks must not matter to which units remain.
        let response = app
            .lease(volunteer(requests % 3), MAX_UNITS_PER_REQUEST)
            .await;
        if response.leases.is_empty() {
            break response;
        }
        assert!(response.retry_after_ms.is_none(), "retry hint with work");
        for lease in response.leases {
            assert_eq!(lease.input_sha256, Sha256Digest::of(&lease.input));
            assert!(lease_ids.insert(lease.lease_id), "lease id issued twice");
            assert!(nonces.insert(lease.nonce), "nonce issued twice");
            units.push((lease.job_id, lease.unit));
        }
    };

    assert_eq!(last.protocol, PROTOCOL_VERSION);
    assert!(
        last.retry_after_ms.is_some_and(|ms| ms > 0),
        "an empty answer must say when to come back: {last:?}"
    );
    let distinct: HashSet<_> = units.iter().copied().collect();
    assert_eq!(distinct.len(), units.len(), "a unit was handed out twice");
    let mut indices: Vec<u64> = units.iter().map(|&(_, unit)| unit).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..UNITS).collect::<Vec<_>>());
    assert_eq!(app.progress().await, (0, UNITS));

    // Asking again, even much later but within the lease TTL, still finds nothing.
    app.clock.advance(LEASE_TTL_MS - 1);
    let again = app.lease(volunteer(9), 1).await;
    assert!(again.leases.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_lease_request_gets_at_most_max_units() {
    let app = spawn_app(10).await;
    assert_eq!(app.lease(volunteer(1), 3).await.leases.len(), 3);
    assert_eq!(app.lease(volunteer(1), 1).await.leases.len(), 1);
    // Only 6 remain: asking for the maximum gets those.
    assert_eq!(
        app.lease(volunteer(2), MAX_UNITS_PER_REQUEST)
            .await
            .leases
            .len(),
        6
    );
}

#[tokio::test]
async fn a_server_without_jobs_tells_volunteers_to_come_back_later() {
    let app = spawn_app(0).await;
    assert!(app.stats().await.jobs.is_empty());
    let response = app.lease(volunteer(1), 8).await;
    assert!(response.leases.is_empty());
    assert!(response.retry_after_ms.is_some_and(|ms| ms > 0));
}

#[tokio::test]
async fn a_whole_job_computed_by_several_volunteers_is_done() {
    const UNITS: u64 = 12;
    let app = spawn_app(UNITS).await;
    let volunteers = [volunteer(1), volunteer(2), volunteer(3)];
    let mut round = 0;
    loop {
        let who = volunteers[round % volunteers.len()];
        round += 1;
        let leases = app.lease(who, 2).await.leases;
        if leases.is_empty() {
            break;
        }
        for lease in &leases {
            assert_eq!(
                app.submit(&compute(who, lease)).await,
                SubmitStatus::Accepted
            );
        }
    }
    assert_eq!(app.progress().await, (UNITS, 0));
}

#[tokio::test]
async fn a_volunteer_never_gets_units_of_jobs_it_opted_out_of() {
    let app = spawn_app(3).await;
    let first_job = app.job_id();
    let second_job = app
        .create_test_job(
            cyclepool_shared::protocol::Inputs::List(vec![vec![1], vec![2]]),
            crate::helpers::test_policy(),
        )
        .await;
    let lease_excluding = |volunteer, exclude: Vec<cyclepool_shared::JobId>| {
        let request = cyclepool_shared::protocol::LeaseRequest {
            proof: None,
            protocol: cyclepool_shared::protocol::PROTOCOL_VERSION,
            volunteer,
            max_units: 10,
            exclude_jobs: exclude,
            exclude_categories: Vec::new(),
            site: None,
            work_ms: None,
        };
        app.client
            .post(app.url("/api/v1/lease"))
            .json(&request)
            .send()
    };
    let choosy = volunteer(1);
    let response = lease_excluding(choosy, vec![first_job])
        .await
        .expect("lease");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let leases = response
        .json::<cyclepool_shared::protocol::LeaseResponse>()
        .await
        .expect("leases")
        .leases;
    assert_eq!(leases.len(), 2);
    assert!(leases.iter().all(|lease| lease.job_id.0 == second_job));
    // The first job's units kept their place: the next volunteer gets them all.
    let leases = app.lease(volunteer(2), 10).await.leases;
    assert_eq!(leases.len(), 3);
    assert!(leases.iter().all(|lease| lease.job_id == first_job));
    // Too many exclusions are refused.
    let too_many = (0..=cyclepool_shared::protocol::MAX_EXCLUDED_JOBS as u64)
        .map(cyclepool_shared::JobId)
        .collect();
    let response = lease_excluding(volunteer(3), too_many)
        .await
        .expect("lease");
    crate::helpers::expect_error(
        response,
        reqwest::StatusCode::BAD_REQUEST,
        cyclepool_shared::ErrorCode::InvalidValue,
    )
    .await;
}

/// A request that says how much computing it wants (`work_ms`) gets as many units as take that
/// long by the job's estimate of its units, from the times of the results it accepted: two of
/// a job with none yet, at least one always, and never more than `max_units`.
#[tokio::test]
async fn a_request_for_computing_time_gets_units_by_the_jobs_estimate() {
    use cyclepool_shared::protocol::{LeaseRequest, LeaseResponse, MAX_WORK_MS};
    let app = spawn_app(200).await;
    let ask = |volunteer, max_units, work_ms| {
        let request = LeaseRequest {
            work_ms: Some(work_ms),
            ..crate::helpers::lease_request(volunteer, max_units, None)
        };
        let app = &app;
        async move { app.post_lease(&request).await }
    };
    let leased = |response: reqwest::Response| async move {
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response
            .json::<LeaseResponse>()
            .await
            .expect("leases")
            .leases
    };

    let alice = volunteer(1);
    let first = leased(ask(alice, 32, 10_000).await).await;
    assert_eq!(first.len(), 2, "no estimate yet: two units");
    for lease in &first {
        let mut submission = compute(alice, lease);
        submission.compute_ms = 1_000;
        assert_eq!(app.submit(&submission).await, SubmitStatus::Accepted);
    }
    // A second each: ten seconds is ten units, unless fewer are asked for.
    let count = |volunteer, max_units, work_ms| async move {
        leased(ask(volunteer, max_units, work_ms).await).await.len()
    };
    assert_eq!(count(volunteer(2), 32, 10_000).await, 10);
    assert_eq!(count(volunteer(3), 4, 10_000).await, 4);
    assert_eq!(count(volunteer(4), 32, 1).await, 1, "always one");
    assert_eq!(count(volunteer(5), 32, 2_500).await, 3);
    // Without `work_ms`, only the number counts.
    assert_eq!(app.lease(volunteer(6), 32).await.leases.len(), 32);

    for work_ms in [0, MAX_WORK_MS + 1] {
        crate::helpers::expect_error(
            ask(volunteer(7), 4, work_ms).await,
            reqwest::StatusCode::BAD_REQUEST,
            cyclepool_shared::ErrorCode::InvalidValue,
        )
        .await;
    }
}
