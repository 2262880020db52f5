//! The `cyclepool` binary against the real server over real HTTP: keys, registration,
//! signed and unsigned jobs, volunteers computing them, verified downloads, job control,
//! tokens, groups, and the errors a distributor sees.

mod support;

use std::collections::BTreeMap;
use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cyclepool_shared::distributor::JobSummary;
use cyclepool_shared::manifest::{Manifest, SignedManifest};
use cyclepool_shared::range::encode_range;
use cyclepool_shared::signing::SecretKey;
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
    ]);
    assert!(stdout.contains("registered account"), "{stdout}");
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
