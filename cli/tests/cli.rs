//! The `cyclepool` binary against the real server over real HTTP: keys, registration and
//! terms, signed and unsigned jobs, volunteers computing them, verified downloads, job
//! control, tokens, groups, the errors a distributor sees, the admin's review and due
//! diligence, and the public log verified and checked against a rewritten history.

mod support;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cyclepool_shared::distributor::{JobSummary, Review};
use cyclepool_shared::manifest::{Manifest, PortalKey, PortalKeys, SignedManifest};
use cyclepool_shared::range::encode_range;
use cyclepool_shared::signing::SecretKey;
use cyclepool_shared::transparency::LogPage;
use cyclepool_shared::{KeyId, PublicKey, Sha256Digest, hex};
use reqwest::StatusCode;

use support::{Server, mode, reversed, volunteer, volunteer_id};

#[test]
fn keygen_writes_a_private_key_and_never_overwrites_one() {
    let server = Server::start();
    let alice = server.distributor();
    let stdout = alice.ok(&["keygen"]);

    let path = alice.cli_dir().join("key.json");
    assert_eq!(mode(&path), 0o600, "the key file is private");
    assert_eq!(mode(&alice.cli_dir()), 0o700, "its directory is private");
    let text = std::fs::read_to_string(&path).expect("reading the key file");
    let file: serde_json::Value = serde_json::from_str(&text).expect("the key file is JSON");
    let seed: [u8; 32] = hex::decode_array(file["seed"].as_str().expect("a seed"))
        .expect("the seed is 64 hex digits");
    let public_key: PublicKey = file["public_key"]
        .as_str()
        .expect("a public key")
        .parse()
        .expect("a valid public key");
    assert_eq!(SecretKey::from_seed(&seed).public_key(), public_key);
    assert!(stdout.contains(&public_key.to_string()), "{stdout}");
    assert!(
        stdout.contains(&KeyId::of(&public_key).to_string()),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&hex::encode(&seed)),
        "the seed is never printed"
    );

    let stderr = alice.fails(&["keygen"]);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("reading the key file again"),
        text,
        "the key is untouched"
    );

    // --out, and two keys are different keys.
    let other = alice.path("second.json");
    alice.ok(&["keygen", "--out", other.to_str().expect("a UTF-8 path")]);
    assert_eq!(mode(&other), 0o600);
    assert_ne!(
        std::fs::read_to_string(&other).expect("reading the second key"),
        text
    );

    // Without XDG_CONFIG_HOME, the key goes under ~/.config.
    let output = alice
        .command(&["keygen"])
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("running cyclepool");
    support::expect_success(output, &["keygen"]);
    assert_eq!(
        mode(&alice.path(".config/cyclepool/key.json")),
        0o600,
        "the key in ~/.config"
    );
}

#[test]
fn a_distributor_submits_jobs_and_downloads_verified_results() {
    let server = Server::start();
    let alice = server.distributor();

    // Registering stores the token privately and does not print it.
    let stdout = alice.ok(&[
        "register",
        "--name",
        "Alice's Lab",
        "--contact",
        "alice@example.org",
        "--organisation",
        "Example University",
        "--purpose",
        "Reversing bytes for science.",
        "--accept-terms",
    ]);
    assert!(stdout.contains("registered account"), "{stdout}");
    assert!(stdout.contains("accepted the portal's terms"), "{stdout}");
    assert!(
        !stdout.contains("cp_token_"),
        "the token is not printed: {stdout}"
    );
    let credentials_path = alice.cli_dir().join("credentials.json");
    assert_eq!(mode(&credentials_path), 0o600);
    let credentials: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&credentials_path).expect("reading the credentials"),
    )
    .expect("the credentials are JSON");
    assert!(
        credentials["portals"][&server.url]["token"]
            .as_str()
            .is_some_and(|token| token.starts_with("cp_token_")),
        "the token is stored under the portal's URL: {credentials}"
    );
    let account = alice.ok(&["account"]);
    assert!(account.contains("Alice's Lab"), "{account}");
    assert!(account.contains("trusted      no"), "{account}");
    // The portal's admin trusts Alice, so her jobs are published without review.
    let account_id = alice.json(&["account"])["account_id"]
        .as_u64()
        .expect("the account's id");
    alice.admin(&["admin", "trust", &account_id.to_string()]);
    let account = alice.ok(&["account"]);
    assert!(account.contains("trusted      yes"), "{account}");

    // A signing key, registered.
    alice.ok(&["keygen"]);
    let registered = alice.ok(&["key", "register", "--label", "laptop"]);
    let key_file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(alice.cli_dir().join("key.json")).expect("reading the key"),
    )
    .expect("the key file is JSON");
    let public_key: PublicKey = key_file["public_key"]
        .as_str()
        .expect("a public key")
        .parse()
        .expect("a valid public key");
    let key_id = KeyId::of(&public_key);
    assert!(registered.contains(&key_id.to_string()), "{registered}");

    // Three jobs: a signed range, unsigned raw lines, signed base64 lines.
    let description = alice.path("description.txt");
    std::fs::write(&description, "Reverses 16-byte ranges.\n").expect("writing");
    let (range_job, range_units) = alice.submit(
        "  Reverse ranges  ",
        &[
            "--range",
            "10..15:2",
            "--description-file",
            description.to_str().expect("a UTF-8 path"),
            "--sign",
            "--priority",
            "3",
            "--weight",
            "5",
        ],
    );
    assert_eq!(range_units, 3, "[10,12) [12,14) [14,15)");
    let lines = alice.path("lines.txt");
    std::fs::write(&lines, "hello\n\nworld\n").expect("writing the inputs");
    let module = alice.module_file();
    let stdout = alice.ok(&[
        "job",
        "submit",
        "--module",
        module.to_str().expect("a UTF-8 path"),
        "--title",
        "Reverse lines",
        "--inputs-file",
        lines.to_str().expect("a UTF-8 path"),
        "--description",
        "Three lines, one empty.",
        "--expires-in",
        "3600",
    ]);
    let lines_job: u64 = stdout
        .strip_prefix("job ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("`job submit` prints the job id first: {stdout}"));
    assert!(stdout.contains("3 units"), "{stdout}");
    let encoded = alice.path("encoded.txt");
    let binary_inputs: [&[u8]; 2] = [&[0, 1, 2, 255], &[10, 13, 0]];
    std::fs::write(
        &encoded,
        format!(
            "{}\r\n{}\n",
            STANDARD.encode(binary_inputs[0]),
            STANDARD.encode(binary_inputs[1])
        ),
    )
    .expect("writing the inputs");
    let policy = alice.path("policy.json");
    std::fs::write(&policy, r#"{"min_quorum": 1, "lease_ttl_ms": 120000}"#).expect("writing");
    let (binary_job, binary_units) = alice.submit(
        "Reverse binary",
        &[
            "--inputs-file",
            encoded.to_str().expect("a UTF-8 path"),
            "--inputs-format",
            "base64",
            "--policy",
            policy.to_str().expect("a UTF-8 path"),
            "--sign",
        ],
    );
    assert_eq!(binary_units, 2);

    // The portal accepted the signatures and publishes them in the manifests.
    for (job, signed) in [(range_job, true), (lines_job, false), (binary_job, true)] {
        let signed_manifest: SignedManifest =
            serde_json::from_value(server.get_json(&format!("/jobs/{job}/manifest")))
                .expect("parsing the manifest");
        let manifest: Manifest =
            serde_json::from_str(&signed_manifest.manifest).expect("parsing the manifest");
        assert_eq!(
            manifest
                .declaration
                .map(|declaration| declaration.public_key),
            signed.then_some(public_key),
            "job {job}'s declaration"
        );
    }
    let range_summary: JobSummary =
        serde_json::from_value(alice.json(&["job", "status", &range_job.to_string()]))
            .expect("parsing the job");
    assert_eq!(
        range_summary.title, "Reverse ranges",
        "the title is trimmed"
    );
    assert_eq!(range_summary.description, "Reverses 16-byte ranges.\n");
    assert_eq!(range_summary.signed_by, Some(key_id));
    assert_eq!((range_summary.priority, range_summary.weight), (3, 5));
    assert_eq!(range_summary.progress.units, 3);
    let binary_summary: JobSummary =
        serde_json::from_value(alice.json(&["job", "status", &binary_job.to_string()]))
            .expect("parsing the job");
    assert_eq!(binary_summary.policy.lease_ttl_ms, 120_000);

    let list = alice.ok(&["job", "list"]);
    for title in ["Reverse ranges", "Reverse lines", "Reverse binary"] {
        assert!(list.contains(title), "{list}");
    }
    let listed = alice.json(&["job", "list"]);
    let ids: Vec<u64> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|job| job["job_id"].as_u64().expect("a job id"))
        .collect();
    assert_eq!(ids, [binary_job, lines_job, range_job], "newest first");

    // A volunteer computes everything.
    let bob = volunteer(0x42);
    assert_eq!(server.compute_everything(&bob), 8);
    let status = alice.ok(&["job", "status", &lines_job.to_string()]);
    for expected in [
        "validated          3 (100.0 %)",
        "units              3",
        "status             active",
        "(unsigned)",
    ] {
        assert!(status.contains(expected), "{expected:?} in {status}");
    }

    // JSON lines, verified, to a file and to standard output.
    let out = alice.path("ranges.jsonl");
    let output = alice.run(&[
        "job",
        "results",
        &range_job.to_string(),
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    support::expect_success(output, &["job", "results"]);
    assert!(stderr.contains("3 result(s)"), "{stderr}");
    assert!(stderr.contains("verified"), "{stderr}");
    let text = std::fs::read_to_string(&out).expect("reading the results");
    let results = parse_lines(&text);
    let expected_inputs = [
        encode_range(10, 12),
        encode_range(12, 14),
        encode_range(14, 15),
    ];
    assert_eq!(results.len(), 3);
    for (unit, (line, input)) in results.iter().zip(&expected_inputs).enumerate() {
        assert_eq!(line["unit"].as_u64(), Some(unit as u64));
        assert_eq!(decode(&line["input"]), *input);
        assert_eq!(decode(&line["output"]), reversed(input));
        assert_eq!(
            line["volunteer"].as_str(),
            Some(volunteer_id(&bob).to_string().as_str())
        );
    }
    let stdout = alice.ok(&["job", "results", &binary_job.to_string()]);
    let results = parse_lines(&stdout);
    let outputs: Vec<Vec<u8>> = results.iter().map(|line| decode(&line["output"])).collect();
    assert_eq!(
        outputs,
        [reversed(binary_inputs[0]), reversed(binary_inputs[1])]
    );
    let stdout = alice.ok(&["job", "results", &lines_job.to_string()]);
    let outputs: Vec<Vec<u8>> = parse_lines(&stdout)
        .iter()
        .map(|line| decode(&line["output"]))
        .collect();
    assert_eq!(outputs, [b"olleh".to_vec(), Vec::new(), b"dlrow".to_vec()]);

    // The archive: every unit's output and SHA256SUMS.
    let archive_path = alice.path("lines.tar");
    alice.ok(&[
        "job",
        "results",
        &lines_job.to_string(),
        "--format",
        "tar",
        "--out",
        archive_path.to_str().expect("a UTF-8 path"),
    ]);
    let files = read_tar(&std::fs::read(&archive_path).expect("reading the archive"));
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "units/000000000000.out",
            "units/000000000001.out",
            "units/000000000002.out"
        ]
    );
    assert_eq!(files["units/000000000000.out"], b"olleh");
    assert_eq!(files["units/000000000002.out"], b"dlrow");
    let sums = String::from_utf8(files["SHA256SUMS"].clone()).expect("SHA256SUMS is text");
    for (name, bytes) in files.iter().filter(|(name, _)| name.starts_with("units/")) {
        let line = format!("{}  {name}", Sha256Digest::of(bytes));
        assert!(sums.lines().any(|sum| sum == line), "{line:?} in {sums}");
    }
    assert!(
        !alice.path("lines.tar.part").exists(),
        "no partial file is left behind"
    );
}

#[test]
fn a_distributor_pauses_resumes_and_cancels_a_job_and_reads_its_failures() {
    let server = Server::start();
    let alice = server.distributor();
    alice.register("Alice");
    let (job, _) = alice.submit("Pausable", &["--range", "0..4"]);
    let id = job.to_string();
    let carol = volunteer(0x07);

    let stdout = alice.ok(&["job", "pause", &id]);
    assert!(stdout.contains(&format!("job {job} is paused")), "{stdout}");
    assert!(
        server.lease(&carol, 4).is_empty(),
        "a paused job hands out nothing"
    );
    assert_eq!(alice.json(&["job", "status", &id])["status"], "paused");

    let stdout = alice.ok(&["job", "resume", &id]);
    assert!(stdout.contains("is active"), "{stdout}");
    let leases = server.lease(&carol, 1);
    assert_eq!(leases.len(), 1, "a resumed job hands out units again");

    // The volunteer's client reports a trap on its unit: the distributor sees it.
    let report = serde_json::json!({
        "protocol": 1,
        "volunteer": volunteer_id(&carol),
        "job_id": job,
        "lease": {"lease_id": leases[0].lease_id, "nonce": leases[0].nonce},
        "kind": "unit_trap",
        "message": "unreachable executed",
    });
    let response = server
        .http
        .post(server.api("/reports"))
        .json(&report)
        .send()
        .expect("sending a report");
    assert_eq!(response.status(), StatusCode::OK);
    let failures = alice.ok(&["job", "failures", &id]);
    assert!(failures.contains("no failed units"), "{failures}");
    assert!(failures.contains("unit_trap"), "{failures}");
    assert!(failures.contains("unreachable executed"), "{failures}");
    let failures = alice.json(&["job", "failures", &id]);
    assert_eq!(failures["reports"][0]["unit"], leases[0].unit);

    let stdout = alice.ok(&["job", "cancel", &id]);
    assert!(stdout.contains("is cancelled"), "{stdout}");
    assert!(
        server.lease(&carol, 4).is_empty(),
        "a cancelled job hands out nothing"
    );
    let stderr = alice.fails(&["job", "resume", &id]);
    assert!(stderr.contains("error: conflict: "), "{stderr}");
    assert!(stderr.contains("HTTP 409"), "{stderr}");
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let server = Server::start();
    let alice = server.distributor();
    let first = alice.register("Alice");
    assert!(first.starts_with("cp_token_"));

    let stdout = alice.ok(&["token", "create", "--label", "CI"]);
    let second = stdout
        .lines()
        .find(|line| line.starts_with("cp_token_"))
        .unwrap_or_else(|| panic!("`token create` prints the secret: {stdout}"))
        .to_owned();
    let tokens = alice.json(&["token", "list"]);
    let tokens = tokens.as_array().expect("a list of tokens");
    assert_eq!(tokens.len(), 2);
    assert!(
        !tokens
            .iter()
            .any(|token| token.to_string().contains("cp_token_")),
        "listing never shows secrets"
    );
    let id_of = |label: &str| {
        tokens
            .iter()
            .find(|token| token["label"] == label)
            .and_then(|token| token["token_id"].as_u64())
            .unwrap_or_else(|| panic!("no token {label:?}"))
            .to_string()
    };
    let (first_id, second_id) = (id_of("first token"), id_of("CI"));
    let listed = alice.ok(&["token", "list"]);
    assert!(
        listed.contains("CI") && listed.contains("active"),
        "{listed}"
    );

    // CYCLEPOOL_TOKEN wins over the stored token: the new token revokes the stored one.
    let stdout = alice.ok_with_token(&second, &["token", "revoke", &first_id]);
    assert!(
        stdout.contains(&format!("revoked token {first_id}")),
        "{stdout}"
    );
    let stderr = alice.fails(&["job", "list"]);
    assert!(stderr.contains("error: unauthorized: "), "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(
        !stderr.contains(&first),
        "the token never appears in messages"
    );
    // The other token still works, and can revoke itself.
    alice.ok_with_token(&second, &["job", "list"]);
    alice.ok_with_token(&second, &["token", "revoke", &second_id]);
    let output = alice
        .command(&["account"])
        .env("CYCLEPOOL_TOKEN", &second)
        .output()
        .expect("running cyclepool");
    let stderr = support::expect_failure(output, &["account"]);
    assert!(stderr.contains("unauthorized"), "{stderr}");
}

#[test]
fn groups_are_created_filled_and_used_by_jobs() {
    let server = Server::start();
    let alice = server.distributor();
    alice.register("Alice");
    let stdout = alice.ok(&["group", "create", "--name", "Lab machines"]);
    assert!(
        stdout.contains("cp_invite_"),
        "the invitation is shown once: {stdout}"
    );
    assert!(stdout.contains("/#join=cp_invite_"), "{stdout}");
    let groups = alice.json(&["group", "list"]);
    let group = groups[0]["group_id"]
        .as_u64()
        .expect("a group id")
        .to_string();

    let (dave, erin) = (volunteer_id(&volunteer(1)), volunteer_id(&volunteer(2)));
    let stdout = alice.ok(&[
        "group",
        "add",
        &group,
        "--volunteer",
        &dave.to_string(),
        "--volunteer",
        &erin.to_string(),
    ]);
    assert!(stdout.contains("2 member(s)"), "{stdout}");
    let listed = alice.ok(&["group", "list"]);
    assert!(listed.contains(&dave.to_string()), "{listed}");
    assert!(listed.contains("Lab machines"), "{listed}");

    let (job, _) = alice.submit("Restricted", &["--range", "0..2", "--group", &group]);
    let summary = alice.json(&["job", "status", &job.to_string()]);
    assert_eq!(
        summary["group"].as_u64().map(|id| id.to_string()),
        Some(group.clone())
    );
    // Without a proof of membership, nobody gets the group's units.
    assert!(server.lease(&volunteer(1), 2).is_empty());

    // Another distributor can neither add to the group nor use it.
    let mallory = server.distributor();
    mallory.register("Mallory");
    let stderr = mallory.fails(&["group", "add", &group, "--volunteer", &dave.to_string()]);
    assert!(stderr.starts_with("error: forbidden: "), "{stderr}");

    // A malformed key is refused before anything is sent.
    let output = alice.run(&["group", "add", &group, "--volunteer", "abc"]);
    assert_eq!(output.status.code(), Some(2), "a usage error");
}

#[test]
fn the_portal_s_errors_are_printed_with_their_code_and_exit_status_1() {
    let server = Server::start();
    let alice = server.distributor();
    alice.register("Alice");
    let (job, _) = alice.submit("Alice's job", &["--range", "0..2"]);
    let mallory = server.distributor();

    // Nothing to authenticate with yet.
    let stderr = mallory.fails(&["job", "list"]);
    assert!(stderr.contains("cyclepool register"), "{stderr}");

    mallory.register("Mallory");
    let stderr = mallory.fails(&["job", "status", &job.to_string()]);
    assert!(stderr.starts_with("error: forbidden: "), "{stderr}");
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    let stderr = mallory.fails(&["job", "results", &job.to_string()]);
    assert!(stderr.starts_with("error: forbidden: "), "{stderr}");
    let stderr = mallory.fails(&["job", "cancel", &job.to_string()]);
    assert!(stderr.starts_with("error: forbidden: "), "{stderr}");
    let stderr = mallory.fails(&["job", "status", "999999"]);
    assert!(stderr.starts_with("error: unknown_job: "), "{stderr}");

    // Registering twice would lose the stored token: refused unless asked for.
    let args = [
        "register",
        "--name",
        "Mallory again",
        "--contact",
        "m@example.org",
        "--organisation",
        "Mallory Inc",
        "--purpose",
        "A second account on purpose.",
    ];
    let stderr = mallory.fails(&args);
    assert!(stderr.contains("--replace"), "{stderr}");
    let mut replacing = args.to_vec();
    replacing.push("--replace");
    mallory.ok(&replacing);

    // The server's validation is shown as is.
    let stderr = alice.fails(&[
        "register",
        "--name",
        "x",
        "--contact",
        "x",
        "--organisation",
        "x",
        "--purpose",
        "short",
        "--replace",
    ]);
    assert!(stderr.starts_with("error: invalid_value: "), "{stderr}");
    let module = alice.module_file();
    let bad_module = alice.path("bad.wasm");
    std::fs::write(&bad_module, b"\0asm not really").expect("writing");
    let stderr = alice.fails(&[
        "job",
        "submit",
        "--module",
        bad_module.to_str().expect("a UTF-8 path"),
        "--title",
        "Broken",
        "--range",
        "0..1",
    ]);
    assert!(stderr.starts_with("error: invalid_module: "), "{stderr}");
    // Signing without a registered key: the portal refuses the signature.
    alice.ok(&["keygen"]);
    let stderr = alice.fails(&[
        "job",
        "submit",
        "--module",
        module.to_str().expect("a UTF-8 path"),
        "--title",
        "Unregistered key",
        "--range",
        "0..1",
        "--sign",
    ]);
    assert!(stderr.starts_with("error: bad_signature: "), "{stderr}");
    // Local mistakes are caught before anything is sent.
    let policy = alice.path("policy.json");
    std::fs::write(&policy, r#"{"min_qourum": 2}"#).expect("writing");
    let stderr = alice.fails(&[
        "job",
        "submit",
        "--module",
        module.to_str().expect("a UTF-8 path"),
        "--title",
        "Typo",
        "--range",
        "0..1",
        "--policy",
        policy.to_str().expect("a UTF-8 path"),
    ]);
    assert!(stderr.contains("min_qourum"), "{stderr}");

    // A portal that is not there: the message names the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let address = closed.local_addr().expect("reading the address");
    drop(closed);
    let output = alice
        .command(&["job", "list"])
        .env("CYCLEPOOL_PORTAL", format!("http://{address}"))
        .env("CYCLEPOOL_TOKEN", "cp_token_unused")
        .output()
        .expect("running cyclepool");
    let stderr = support::expect_failure(output, &["job", "list"]);
    assert!(
        stderr.contains(&format!("GET http://{address}/api/v1/jobs failed")),
        "{stderr}"
    );
}

#[test]
fn terms_must_be_accepted_before_publishing() {
    let server = Server::start();
    let alice = server.distributor();
    let args = [
        "register",
        "--name",
        "Alice",
        "--contact",
        "alice@example.org",
        "--organisation",
        "Example Lab",
        "--purpose",
        "Reversing bytes for science.",
    ];
    let stdout = alice.ok(&args);
    assert!(
        stdout.contains(&format!("read {}/terms.html", server.url)),
        "{stdout}"
    );
    assert!(stdout.contains("`cyclepool terms accept`"), "{stdout}");
    let account = alice.ok(&["account"]);
    assert!(account.contains("terms        not accepted"), "{account}");

    // The portal refuses the job, and the CLI says what to do.
    let module = alice.module_file();
    let submit = [
        "job",
        "submit",
        "--module",
        module.to_str().expect("a UTF-8 path"),
        "--title",
        "Too early",
        "--range",
        "0..1",
    ];
    let stderr = alice.fails(&submit);
    assert!(
        stderr.starts_with("error: terms_not_accepted: "),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    assert!(stderr.contains("`cyclepool terms accept`"), "{stderr}");

    let stdout = alice.ok(&["terms", "accept"]);
    assert!(
        stdout.contains("accepted the portal's terms (version 1, "),
        "{stdout}"
    );
    let account = alice.ok(&["account"]);
    assert!(
        account.contains("terms        version 1 accepted"),
        "{account}"
    );
    assert_eq!(alice.json(&["account"])["terms_accepted"], 1);
    // Now the job is created; untrusted, it waits for review.
    let stdout = alice.ok(&submit);
    assert!(stdout.contains("waiting for review"), "{stdout}");
}

#[test]
fn a_job_of_an_untrusted_distributor_waits_for_review_until_the_admin_approves_it() {
    let server = Server::start();
    let lab = server.distributor();
    let (_, account) = lab.register_untrusted("Unknown Lab");
    let module = lab.module_file();
    let stdout = lab.ok(&[
        "job",
        "submit",
        "--module",
        module.to_str().expect("a UTF-8 path"),
        "--title",
        "Reverse for review",
        "--range",
        "0..4",
        "--category",
        "mathematics",
    ]);
    let job = submitted_job(&stdout);
    let id = job.to_string();
    assert!(stdout.contains("waiting for review"), "{stdout}");
    let status = lab.ok(&["job", "status", &id]);
    assert!(
        status.contains("review             waiting for the portal's review"),
        "{status}"
    );
    assert!(
        status.contains("category           mathematics"),
        "{status}"
    );
    assert!(
        server.lease(&volunteer(9), 4).is_empty(),
        "nobody is given a job waiting for review"
    );

    // The admin's queue names the job, its distributor, its units and its module.
    let queue = lab.admin(&["admin", "review"]);
    let module_sha256 = Sha256Digest::of(&support::reverse_module()).to_string();
    for expected in [
        format!("job {job}: Reverse for review"),
        format!("distributor  Unknown Lab (account {account})"),
        "units        4, category mathematics".to_owned(),
        format!("module       {module_sha256}"),
        "declared by  (unsigned)".to_owned(),
        "1 job(s) waiting".to_owned(),
    ] {
        assert!(queue.contains(&expected), "{expected:?} in {queue}");
    }
    let queued = lab.admin(&["--json", "admin", "review"]);
    let queued: Vec<JobSummary> = serde_json::from_str(&queued).expect("the queue as JSON");
    assert_eq!(
        queued.iter().map(|job| job.job_id.0).collect::<Vec<_>>(),
        [job]
    );

    // Approved: published with a log entry, and computed.
    let stdout = lab.admin(&["admin", "approve", &id]);
    assert!(
        stdout.contains(&format!("job {job} approved: published (public log entry ")),
        "{stdout}"
    );
    let summary: JobSummary =
        serde_json::from_value(lab.json(&["job", "status", &id])).expect("parsing the job");
    assert_eq!(summary.review, Review::Approved);
    let seq = summary.log_seq.expect("a log entry");
    let status = lab.ok(&["job", "status", &id]);
    assert!(
        status.contains(&format!("published (public log entry {seq})")),
        "{status}"
    );
    let list = lab.ok(&["job", "list"]);
    assert!(list.contains("published"), "{list}");
    let queue = lab.admin(&["admin", "review"]);
    assert!(queue.contains("no jobs waiting for review"), "{queue}");
    assert_eq!(server.compute_everything(&volunteer(9)), 4);
}

#[test]
fn rejected_and_withdrawn_jobs_show_the_portal_s_reason() {
    let server = Server::start();
    let lab = server.distributor();
    lab.register_untrusted("Unknown Lab");
    let (rejected, _) = lab.submit("Unwanted", &["--range", "0..2"]);
    let rejected = rejected.to_string();
    let reason = "No contact address on the lab's site";
    let stdout = lab.admin(&["admin", "reject", &rejected, "--reason", reason]);
    assert!(
        stdout.contains(&format!("job {rejected} rejected: {reason}")),
        "{stdout}"
    );
    let status = lab.ok(&["job", "status", &rejected]);
    assert!(
        status.contains(&format!(
            "review             rejected by the portal: {reason}"
        )),
        "{status}"
    );
    let list = lab.ok(&["job", "list"]);
    assert!(list.contains(&format!("rejected: {reason}")), "{list}");
    // It was never published: there is nothing to withdraw, and nothing in the log.
    let args = [
        "admin",
        "withdraw",
        &rejected,
        "--reason",
        "Changed my mind",
    ];
    let output = lab
        .command(&args)
        .env("CYCLEPOOL_TOKEN", support::ADMIN_TOKEN)
        .output()
        .expect("running cyclepool");
    let stderr = support::expect_failure(output, &args);
    assert!(stderr.starts_with("error: conflict: "), "{stderr}");
    let stderr = lab.fails(&["log", "show", "--job", &rejected]);
    assert!(stderr.contains("not in the public log"), "{stderr}");

    let (withdrawn, _) = lab.submit("Approved, then withdrawn", &["--range", "0..2"]);
    let withdrawn = withdrawn.to_string();
    lab.admin(&["admin", "approve", &withdrawn]);
    let shown = lab.ok(&["log", "show", "--job", &withdrawn]);
    assert!(
        shown.contains("manifest matches its publication"),
        "{shown}"
    );
    let reason = "It computes something else than it declares";
    let stdout = lab.admin(&["admin", "withdraw", &withdrawn, "--reason", reason]);
    assert!(stdout.contains("withdrawn"), "{stdout}");
    let status = lab.ok(&["job", "status", &withdrawn]);
    assert!(
        status.contains(&format!("withdrawn by the portal: {reason}")),
        "{status}"
    );
    // The withdrawal is public, with its reason.
    let shown = lab.ok(&["log", "show", "--job", &withdrawn]);
    for expected in [
        format!("published job {withdrawn} \"Approved, then withdrawn\" by Unknown Lab (account"),
        format!("revoked job {withdrawn}: {reason}"),
        format!("job {withdrawn}'s manifest is not served now"),
    ] {
        assert!(shown.contains(&expected), "{expected:?} in {shown}");
    }
    let entries = lab.json(&["log", "show", "--job", &withdrawn]);
    assert_eq!(entries.as_array().map(Vec::len), Some(2), "{entries}");
}

#[test]
fn log_verify_pins_the_keys_remembers_the_head_and_detects_a_rewritten_log() {
    let server = Server::start();
    let alice = server.distributor();
    alice.register("Alice");

    // The log is public: no account needed. The first use pins the portal's keys.
    let carol = server.distributor();
    let stdout = carol.ok(&["log", "verify"]);
    assert!(
        stdout.contains(&format!("first use of {}", server.url)),
        "{stdout}"
    );
    assert!(stdout.contains("is empty"), "{stdout}");
    let keys_path = carol.cli_dir().join("portal-keys.json");
    assert_eq!(mode(&keys_path), 0o600);

    for n in 0..3 {
        alice.submit(&format!("Job {n}"), &["--range", "0..1"]);
    }
    let stdout = carol.ok(&["log", "verify"]);
    assert!(!stdout.contains("first use"), "{stdout}");
    assert!(stdout.contains("3 entries, all checked"), "{stdout}");
    let log: LogPage = serde_json::from_value(server.get_json("/log")).expect("the log");
    let head = log.entries[2].head();
    assert!(
        stdout.contains(&format!("head: entry 2, sha256 {}", head.sha256)),
        "{stdout}"
    );
    let heads_path = carol.cli_dir().join("log-heads.json");
    assert_eq!(mode(&heads_path), 0o600);
    let read_heads = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&heads_path).expect("reading the heads"))
            .expect("the heads are JSON")
    };
    assert_eq!(
        read_heads()["portals"][&server.url],
        serde_json::to_value(head).expect("a head as JSON")
    );

    // Later runs check the head verified before, then what follows it.
    alice.submit("Job 3", &["--range", "0..1"]);
    let stdout = carol.ok(&["log", "verify"]);
    assert!(
        stdout.contains("4 entries (1 checked now); it still holds entry 2 as verified before"),
        "{stdout}"
    );
    let stdout = carol.ok(&["log", "verify", "--from-start"]);
    assert!(stdout.contains("4 entries (4 checked now)"), "{stdout}");
    let answer = carol.json(&["log", "verify"]);
    assert_eq!(answer["entries"], 4);
    assert_eq!(answer["checked"], 0);
    assert_eq!(answer["head"]["seq"], 3);
    let shown = carol.ok(&["log", "show"]);
    assert!(shown.contains("\"Job 0\" by Alice (account"), "{shown}");
    assert!(shown.contains("4 entries, verified"), "{shown}");

    // A head this machine verified that the portal's log no longer has at its place: the
    // portal forked or rewrote its history.
    let mut heads = read_heads();
    let genuine = heads["portals"][&server.url].clone();
    heads["portals"][&server.url]["sha256"] =
        serde_json::Value::String(Sha256Digest::of(b"another history").to_string());
    let tampered = serde_json::to_string(&heads).expect("encoding");
    std::fs::write(&heads_path, &tampered).expect("writing the heads");
    for args in [
        &["log", "verify"][..],
        &["log", "verify", "--from-start"],
        &["log", "show"],
    ] {
        let stderr = carol.fails(args);
        assert!(
            stderr.contains("log entry 3 now has digest"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("the portal forked or rewrote its log"),
            "{stderr}"
        );
        assert!(stderr.contains("log-heads.json"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(&heads_path).expect("reading the heads"),
        tampered,
        "the head verified before is kept, so the alarm does not go away by itself"
    );
    // A head beyond the log's end: entries were dropped.
    heads["portals"][&server.url] = genuine;
    heads["portals"][&server.url]["seq"] = 9.into();
    std::fs::write(&heads_path, heads.to_string()).expect("writing the heads");
    let stderr = carol.fails(&["log", "verify"]);
    assert!(
        stderr.contains("the log now holds 4 entries, but this machine verified entry 9"),
        "{stderr}"
    );

    // Keys the portal serves that the pinned keys do not endorse are refused.
    let stranger = SecretKey::from_seed(&[0x55; 32]);
    let pinned = serde_json::json!({"portals": {&server.url: PortalKeys {
        keys: vec![PortalKey::new(&stranger, 0, u64::MAX, None)],
        revoked: Vec::new(),
    }}});
    std::fs::write(&keys_path, pinned.to_string()).expect("writing the pinned keys");
    let stderr = carol.fails(&["log", "verify"]);
    assert!(stderr.contains("are not the ones pinned"), "{stderr}");
    assert!(stderr.contains("portal-keys.json"), "{stderr}");
}

#[test]
fn admin_commands_need_the_admin_token() {
    let server = Server::start();
    let alice = server.distributor();
    let token = alice.register("Alice");

    // Alice's stored token is never sent as the admin's.
    let stderr = alice.fails(&["admin", "review"]);
    assert!(stderr.contains("no admin token for"), "{stderr}");
    assert!(stderr.contains("cyclepool admin login"), "{stderr}");
    // Given as CYCLEPOOL_TOKEN, a distributor's token is refused, and the CLI says why.
    let output = alice
        .command(&["admin", "review"])
        .env("CYCLEPOOL_TOKEN", &token)
        .output()
        .expect("running cyclepool");
    let stderr = support::expect_failure(output, &["admin", "review"]);
    assert!(stderr.starts_with("error: forbidden: "), "{stderr}");
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    assert!(stderr.contains("need the portal's admin token"), "{stderr}");
    assert!(
        !stderr.contains(&token),
        "the token never appears in messages"
    );

    // `admin login` reads the token from standard input, checks it, and stores it apart.
    let login = |secret: &str| {
        let mut child = alice
            .command(&["admin", "login"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running cyclepool");
        child
            .stdin
            .take()
            .expect("a pipe")
            .write_all(format!("{secret}\n").as_bytes())
            .expect("writing the token");
        child.wait_with_output().expect("waiting for cyclepool")
    };
    let stderr = support::expect_failure(login("cp_admin_not_the_right_one"), &["admin", "login"]);
    assert!(stderr.starts_with("error: unauthorized: "), "{stderr}");
    let stdout = support::expect_success(login(support::ADMIN_TOKEN), &["admin", "login"]);
    assert!(stdout.contains("stored the admin token"), "{stdout}");
    let credentials_path = alice.cli_dir().join("credentials.json");
    assert_eq!(mode(&credentials_path), 0o600);
    let accounts = alice.ok(&["admin", "accounts"]);
    assert!(accounts.contains("Alice"), "{accounts}");
    // The distributor's commands still use the distributor's token.
    assert_eq!(
        alice.json(&["account"])["name"],
        "Alice",
        "not the admin's token"
    );
    let stdout = alice.ok(&["admin", "logout"]);
    assert!(stdout.contains("removed the admin token"), "{stdout}");
    let stderr = alice.fails(&["admin", "review"]);
    assert!(stderr.contains("no admin token for"), "{stderr}");
}

#[test]
fn the_admin_revokes_keys_resolves_reports_and_suspends_and_reinstates_accounts() {
    let server = Server::start();
    let alice = server.distributor();
    alice.register("Alice");
    let account = alice.json(&["account"])["account_id"]
        .as_u64()
        .expect("an account id")
        .to_string();
    alice.ok(&["keygen"]);
    alice.ok(&["key", "register", "--label", "laptop"]);
    let key_id = alice.json(&["account"])["keys"][0]["key_id"]
        .as_str()
        .expect("a key id")
        .to_owned();
    let (signed, _) = alice.submit("Signed job", &["--range", "0..2", "--sign"]);
    let (reported, _) = alice.submit("Reported job", &["--range", "0..2"]);

    let accounts = alice.admin(&["admin", "accounts"]);
    let line = accounts
        .lines()
        .find(|line| line.contains("Alice"))
        .unwrap_or_else(|| panic!("Alice in {accounts}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns[..5],
        [account.as_str(), "yes", "active", "v1", "1"],
        "{line}"
    );

    // Revoking the key withdraws the job it declared, publicly.
    let stdout = alice.admin(&[
        "admin",
        "revoke-key",
        &key_id,
        "--reason",
        "The key was leaked",
    ]);
    assert!(
        stdout.contains(&format!("revoked key {key_id} (laptop)")),
        "{stdout}"
    );
    let status = alice.ok(&["job", "status", &signed.to_string()]);
    assert!(status.contains("withdrawn by the portal: "), "{status}");
    let shown = alice.ok(&["log", "show"]);
    assert!(
        shown.contains(&format!(
            "revoked key {key_id} of account {account}: The key was leaked"
        )),
        "{shown}"
    );

    // A volunteer's abuse report, resolved by withdrawing the job.
    let report = serde_json::json!({
        "protocol": 1,
        "volunteer": volunteer_id(&volunteer(3)),
        "job_id": reported,
        "lease": null,
        "kind": "abuse",
        "message": "It mines coins",
    });
    let response = server
        .http
        .post(server.api("/reports"))
        .json(&report)
        .send()
        .expect("sending a report");
    assert_eq!(response.status(), StatusCode::OK);
    let reports = alice.admin(&["admin", "reports"]);
    for expected in [
        format!("job {reported} \"Reported job\" by Alice (account {account})"),
        ": It mines coins".to_owned(),
        "  open".to_owned(),
    ] {
        assert!(reports.contains(&expected), "{expected:?} in {reports}");
    }
    let listed: serde_json::Value =
        serde_json::from_str(&alice.admin(&["--json", "admin", "reports"])).expect("JSON");
    let report_id = listed[0]["report_id"]
        .as_u64()
        .expect("a report id")
        .to_string();
    let stdout = alice.admin(&[
        "admin",
        "resolve",
        &report_id,
        "--action",
        "withdraw-job",
        "--note",
        "Confirmed",
    ]);
    assert!(stdout.contains("job withdrawn (Confirmed)"), "{stdout}");
    assert!(
        alice
            .admin(&["admin", "reports"])
            .contains("no open reports")
    );
    assert!(
        alice
            .admin(&["admin", "reports", "--all"])
            .contains("It mines coins")
    );
    let status = alice.ok(&["job", "status", &reported.to_string()]);
    assert!(
        status.contains(&format!(
            "withdrawn by the portal: abuse report {report_id}: Confirmed"
        )),
        "{status}"
    );

    // No longer trusted: a new job waits for review.
    let stdout = alice.admin(&["admin", "trust", &account, "--off"]);
    assert!(stdout.contains("no longer trusted"), "{stdout}");
    let (waiting, _) = alice.submit("Waiting job", &["--range", "0..2"]);
    assert_eq!(
        alice.json(&["job", "status", &waiting.to_string()])["review"]["state"],
        "pending"
    );

    // Suspended: the account's tokens stop working and its waiting job is rejected.
    let stdout = alice.admin(&[
        "admin",
        "suspend",
        &account,
        "--reason",
        "Repeated abuse reports",
    ]);
    assert!(stdout.contains("is suspended"), "{stdout}");
    let stderr = alice.fails(&["job", "list"]);
    assert!(stderr.contains("suspended"), "{stderr}");
    assert!(alice.admin(&["admin", "accounts"]).contains("suspended"));
    let stdout = alice.admin(&["admin", "reinstate", &account]);
    assert!(stdout.contains("is reinstated"), "{stdout}");
    let status = alice.ok(&["job", "status", &waiting.to_string()]);
    assert!(
        status.contains(
            "rejected by the portal: the distributor was suspended: Repeated abuse reports"
        ),
        "{status}"
    );
}

/// The job id `job submit` prints first (`job 3: 4 units`).
fn submitted_job(stdout: &str) -> u64 {
    stdout
        .strip_prefix("job ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("`job submit` prints the job id first: {stdout}"))
}

/// Parses JSON lines.
fn parse_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Decodes a base64 JSON string.
fn decode(value: &serde_json::Value) -> Vec<u8> {
    STANDARD
        .decode(value.as_str().expect("a base64 string"))
        .expect("valid base64")
}

/// The files of a tar archive by name.
fn read_tar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("reading the archive") {
        let mut entry = entry.expect("reading an archive entry");
        let name = entry
            .path()
            .expect("an entry's path")
            .to_string_lossy()
            .into_owned();
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).expect("reading an entry");
        files.insert(name, contents);
    }
    files
}
