//! Writes the seed corpora in `fuzz/corpus/<target>/`: small valid examples of what each target
//! decodes, signed with the fixed keys the targets trust, so that fuzzing starts past the
//! signature checks. Deterministic; run again when a wire type changes:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::fs;
use std::path::{Path, PathBuf};

use cyclepool_shared::distributor::{
    AccountId, AccountSettings, Category, CreateGroup, DeclarationSignature, GroupId, JobProgress,
    JobStatus, JobSummary, JoinGroup, ProgressSample, RegisterAccount, RegisterKey, RegisterSite,
    Review, inputs_digest, job_declaration_message, join_message, sign_declaration,
};
use cyclepool_shared::manifest::{
    JobPolicy, MANIFEST_FORMAT, Manifest, PortalKey, PortalKeys, RevokedKey, SignedManifest,
};
use cyclepool_shared::protocol::{
    CreateJob, Exchange, ExchangeResponse, Inputs, Lease, LeaseProof, LeaseRef, LeaseRequest,
    LeaseResponse, PROTOCOL_VERSION, Report, ReportKind, ResultAnswer, ResultSubmission,
    SubmitStatus,
};
use cyclepool_shared::range::encode_range;
use cyclepool_shared::signing::{Purpose, SecretKey, lease_proof_message, result_message};
use cyclepool_shared::transparency::{LogEntry, LogEvent, LogPage};
use cyclepool_shared::{ErrorBody, ErrorCode, JobId, LeaseId, Nonce, Sha256Digest, VolunteerId};
use serde::Serialize;

/// The issue time of the seeds' manifests: inside the `manifest` target's current portal key's
/// validity and before its clock (1,800,000,000,000).
const ISSUED_MS: u64 = 1_700_000_000_000;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    module_check(&corpus.join("module_check"));
    manifest(&corpus.join("manifest"));
    protocol(&corpus.join("protocol"));
    inputs(&corpus.join("inputs"));
    eprintln!("seeds written under {}", corpus.display());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("creating the corpus directory");
    let path: PathBuf = dir.join(name);
    fs::write(&path, bytes).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) {
    let text = serde_json::to_string_pretty(value).expect("seeds encode");
    write(dir, &format!("{name}.json"), text.as_bytes());
}

fn portal() -> SecretKey {
    SecretKey::from_seed(&[1; 32])
}

fn retired_portal() -> SecretKey {
    SecretKey::from_seed(&[2; 32])
}

fn distributor() -> SecretKey {
    SecretKey::from_seed(&[3; 32])
}

fn volunteer() -> SecretKey {
    SecretKey::from_seed(&[5; 32])
}

fn volunteer_id() -> VolunteerId {
    VolunteerId::from_bytes(*volunteer().public_key().as_bytes())
}

/// The ABI exports around a memory, as WAT.
const ABI_FUNCS: &str = r#"
    (func (export "cyclepool_abi_version") (result i32) i32.const 1)
    (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 1024)
    (func (export "cyclepool_run") (param i32 i32) (result i32) i32.const 0)
    (func (export "cyclepool_output_ptr") (result i32) i32.const 1024)
    (func (export "cyclepool_output_len") (result i32) i32.const 0)"#;

fn module_check(dir: &Path) {
    let modules = [
        (
            "minimal",
            format!(r#"(memory (export "memory") 1 16) {ABI_FUNCS}"#),
        ),
        (
            "with_verify",
            format!(
                r#"(memory (export "memory") 1 1024) {ABI_FUNCS}
                (func (export "cyclepool_verify") (param i32 i32 i32 i32) (result i32) i32.const 1)"#
            ),
        ),
        (
            "table_global_data",
            format!(
                r#"(memory (export "memory") 2 32) (table 4 funcref) (global (mut i32) (i32.const 7))
                (data (i32.const 16) "cyclepool") (elem (i32.const 0) $f) (func $f)
                {ABI_FUNCS}"#
            ),
        ),
        (
            "imports",
            format!(
                r#"(import "env" "memcpy" (func (param i32 i32 i32) (result i32)))
                (memory (export "memory") 1 16) {ABI_FUNCS}"#
            ),
        ),
        (
            "start",
            format!(r#"(memory (export "memory") 1 16) (func $s) (start $s) {ABI_FUNCS}"#),
        ),
        (
            "unbounded_memory",
            format!(r#"(memory (export "memory") 1) {ABI_FUNCS}"#),
        ),
        (
            "wrong_signature",
            r#"(memory (export "memory") 1 16)
            (func (export "cyclepool_abi_version") (result i64) i64.const 1)"#
                .to_owned(),
        ),
    ];
    for (name, body) in modules {
        let bytes = wat::parse_str(format!("(module {body})")).expect("seed modules are valid WAT");
        write(dir, &format!("{name}.wasm"), &bytes);
    }
    // A real job, built by `cargo xtask jobs`, when it is there.
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jobs/dist/hostile.wasm");
    if let Ok(bytes) = fs::read(&built) {
        write(dir, "hostile.wasm", &bytes);
    }
}

fn policy() -> JobPolicy {
    JobPolicy {
        min_quorum: 2,
        initial_replicas: 2,
        reexecution_rate: 0.05,
        spot_check_rate: 0.1,
        target_error_rate: 0.001,
        ..JobPolicy::default()
    }
}

/// A manifest and the job declaration its distributor signed.
fn declared_manifest() -> Manifest {
    let inputs = inputs_digest([encode_range(0, 10).as_slice()]);
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT,
        job_id: JobId(7),
        distributor: "Example Lab".into(),
        title: "Primes".into(),
        description: "Counts primes in ranges.".into(),
        module_sha256: Sha256Digest::of(b"module"),
        module_bytes: 6,
        policy: policy(),
        issued_ms: ISSUED_MS,
        expires_ms: ISSUED_MS * 2,
        inputs_sha256: Some(inputs),
        declaration: None,
    };
    let message = manifest.declaration_message(&inputs);
    manifest.declaration = Some(sign_declaration(&distributor(), &message));
    manifest
}

fn portal_keys() -> PortalKeys {
    let current = PortalKey::new(
        &portal(),
        1_000_000_000_000,
        2_000_000_000_000,
        Some(&retired_portal()),
    );
    let retired = PortalKey::new(&retired_portal(), 0, 1_000_000_000_000, None);
    PortalKeys {
        revoked: vec![RevokedKey {
            key_id: retired.key_id,
            revoked_ms: 1_500_000_000_000,
            reason: "rotated".into(),
        }],
        keys: vec![current, retired],
    }
}

fn manifest(dir: &Path) {
    let declared = declared_manifest();
    let plain = Manifest {
        declaration: None,
        inputs_sha256: None,
        ..declared.clone()
    };
    write_json(dir, "signed", &SignedManifest::sign(&plain, &portal()));
    write_json(
        dir,
        "signed_declared",
        &SignedManifest::sign(&declared, &portal()),
    );
    write_json(
        dir,
        "signed_by_retired_key",
        &SignedManifest::sign(&plain, &retired_portal()),
    );
    // The manifest's text alone: the target signs it itself.
    write_json(dir, "manifest_declared", &declared);
    let keys = portal_keys();
    write_json(dir, "keys", &keys);
    let first_use = PortalKeys {
        keys: vec![keys.keys[1].clone()],
        revoked: Vec::new(),
    };
    write_json(
        dir,
        "pin_rotation",
        &serde_json::json!({ "pinned": first_use, "offered": keys }),
    );

    let events = [
        LogEvent::Published {
            job: JobId(7),
            title: declared.title.clone(),
            distributor: declared.distributor.clone(),
            owner: Some(AccountId(3)),
            module_sha256: declared.module_sha256,
            inputs_sha256: declared.inputs_sha256,
            declared_by: Some(distributor().public_key()),
        },
        LogEvent::Revoked {
            job: JobId(6),
            reason: "abuse".into(),
        },
        LogEvent::KeyRevoked {
            key: SecretKey::from_seed(&[9; 32]).public_key(),
            account: AccountId(4),
            reason: "stolen".into(),
        },
    ];
    let mut entries: Vec<LogEntry> = Vec::new();
    for (seq, event) in (0..).zip(events) {
        let prev = entries
            .last()
            .map_or(Sha256Digest::from_bytes([0; 32]), LogEntry::digest);
        entries.push(LogEntry::sign(seq, prev, ISSUED_MS + seq, event, &portal()));
    }
    write_json(
        dir,
        "log",
        &serde_json::json!({ "entries": entries, "manifest": declared }),
    );
    write_json(
        dir,
        "log_after",
        &serde_json::json!({ "entries": entries[1..], "after": entries[0].head() }),
    );
    // A run continuing a head one before the last position a log can hold.
    let last = LogEntry::sign(
        u64::MAX - 1,
        Sha256Digest::from_bytes([7; 32]),
        ISSUED_MS,
        entries[1].event.clone(),
        &portal(),
    );
    let end = LogEntry::sign(
        u64::MAX,
        last.digest(),
        ISSUED_MS,
        entries[2].event.clone(),
        &portal(),
    );
    write_json(
        dir,
        "log_at_the_end",
        &serde_json::json!({ "entries": [end.clone(), end], "after": last.head() }),
    );
    write_json(dir, "log_page", &LogPage { entries, size: 3 });
}

fn protocol(dir: &Path) {
    let volunteer = volunteer();
    let id = volunteer_id();
    let at_ms = ISSUED_MS;
    write_json(
        dir,
        "lease_request",
        &LeaseRequest {
            protocol: PROTOCOL_VERSION,
            volunteer: id,
            max_units: 4,
            exclude_jobs: vec![JobId(2)],
            proof: Some(LeaseProof {
                at_ms,
                signature: volunteer.sign(Purpose::LeaseProof, &lease_proof_message(&id, at_ms)),
            }),
            exclude_categories: vec![Category::Cryptography],
            site: None,
            work_ms: Some(15_000),
        },
    );
    let (lease_id, nonce) = (LeaseId::from_bytes([1; 16]), Nonce::from_bytes([2; 16]));
    let input = encode_range(0, 100);
    write_json(
        dir,
        "lease_response",
        &LeaseResponse {
            protocol: PROTOCOL_VERSION,
            leases: vec![Lease {
                lease_id,
                nonce,
                job_id: JobId(7),
                unit: 0,
                module_sha256: Sha256Digest::of(b"module"),
                input_sha256: Sha256Digest::of(&input),
                input,
                deadline_ms: at_ms + 600_000,
            }],
            retry_after_ms: None,
        },
    );
    let output = b"\x00\x01\x02\xff".to_vec();
    let output_sha256 = Sha256Digest::of(&output);
    let result = ResultSubmission {
        protocol: PROTOCOL_VERSION,
        volunteer: id,
        lease_id,
        nonce,
        output,
        output_sha256,
        signature: volunteer.sign(
            Purpose::Result,
            &result_message(&lease_id, &nonce, &output_sha256),
        ),
        compute_ms: 12,
    };
    write_json(dir, "result", &result);
    write_json(
        dir,
        "exchange",
        &Exchange {
            protocol: PROTOCOL_VERSION,
            results: vec![result],
            lease: Some(LeaseRequest {
                protocol: PROTOCOL_VERSION,
                volunteer: id,
                max_units: 2,
                exclude_jobs: Vec::new(),
                proof: None,
                exclude_categories: Vec::new(),
                site: None,
                work_ms: None,
            }),
        },
    );
    write_json(
        dir,
        "exchange_response",
        &ExchangeResponse {
            protocol: PROTOCOL_VERSION,
            results: vec![
                ResultAnswer {
                    status: Some(SubmitStatus::Duplicate),
                    error: None,
                },
                ResultAnswer {
                    status: None,
                    error: Some(ErrorBody::new(ErrorCode::LeaseExpired, "lease expired").error),
                },
            ],
            lease: None,
            lease_error: Some(ErrorBody::new(ErrorCode::RateLimited, "slow down").error),
        },
    );
    write_json(
        dir,
        "report",
        &Report {
            protocol: PROTOCOL_VERSION,
            volunteer: id,
            job_id: JobId(7),
            lease: Some(LeaseRef { lease_id, nonce }),
            kind: ReportKind::UnitTrap,
            message: "unreachable executed".into(),
        },
    );
    let invite = "invitation-secret";
    write_json(
        dir,
        "join_group",
        &JoinGroup {
            volunteer: id,
            invite: invite.into(),
            at_ms,
            signature: volunteer.sign(Purpose::JoinGroup, &join_message(&id, invite, at_ms)),
        },
    );
    write_json(
        dir,
        "register_account",
        &RegisterAccount {
            name: "Example Lab".into(),
            contact: "lab@example.org".into(),
            organisation: "University".into(),
            purpose: "Number theory".into(),
            accept_terms: true,
        },
    );
    write_json(
        dir,
        "register_key",
        &RegisterKey {
            public_key: distributor().public_key(),
            label: "laptop".into(),
        },
    );
    write_json(
        dir,
        "register_site",
        &RegisterSite {
            name: "Blog".into(),
            origin: "https://example.org".into(),
        },
    );
    write_json(dir, "create_group", &CreateGroup { name: "lab".into() });
    write_json(
        dir,
        "account_settings",
        &AccountSettings {
            trusted: Some(false),
            suspended: Some(true),
            reason: Some("spam".into()),
        },
    );
    write_json(
        dir,
        "review",
        &Review::Withdrawn {
            reason: "key revoked".into(),
        },
    );
    write_json(
        dir,
        "job_summary",
        &JobSummary {
            job_id: JobId(7),
            title: "Primes".into(),
            description: String::new(),
            distributor: "Example Lab".into(),
            owner: Some(AccountId(3)),
            status: JobStatus::Paused,
            module_sha256: Sha256Digest::of(b"module"),
            created_ms: at_ms,
            expires_ms: at_ms * 2,
            group: Some(GroupId(1)),
            priority: 3,
            weight: 10,
            policy: policy(),
            signed_by: None,
            progress: JobProgress {
                units: 10,
                results: 4,
                validated: 2,
                history: vec![ProgressSample {
                    at_ms,
                    validated: 2,
                }],
                ..JobProgress::default()
            },
            review: Review::Approved,
            category: Category::Mathematics,
            log_seq: Some(0),
        },
    );
    write_json(
        dir,
        "error",
        &ErrorBody::new(ErrorCode::LeaseExpired, "lease expired"),
    );
    write(
        dir,
        "error_from_newer_server.json",
        br#"{"error":{"code":"from_the_future","message":"x"}}"#,
    );
    write(
        dir,
        "public_key.txt",
        volunteer.public_key().to_string().as_bytes(),
    );
}

fn inputs(dir: &Path) {
    let title = "Primes";
    let description = "Counts primes.";
    let module_sha256 = Sha256Digest::of(b"module");
    let list = vec![b"first".to_vec(), Vec::new(), vec![0, 255]];
    let digest = inputs_digest(list.iter().map(Vec::as_slice));
    let message = job_declaration_message(&module_sha256, &digest, title, description, &policy());
    let signature: DeclarationSignature = sign_declaration(&distributor(), &message);
    write_json(
        dir,
        "create_job_list_signed",
        &CreateJob {
            title: title.into(),
            description: description.into(),
            module_sha256,
            inputs: Inputs::List(list),
            policy: policy(),
            expires_in_ms: Some(86_400_000),
            group: None,
            priority: 0,
            weight: 1,
            signature: Some(signature),
            category: Category::Mathematics,
        },
    );
    write_json(
        dir,
        "create_job_range",
        &CreateJob {
            title: title.into(),
            description: String::new(),
            module_sha256,
            inputs: Inputs::Range {
                start: 5,
                end: 100,
                step: 10,
            },
            policy: JobPolicy::default(),
            expires_in_ms: None,
            group: Some(GroupId(2)),
            priority: 9,
            weight: 1_000,
            signature: None,
            category: Category::Other,
        },
    );
    write_json(
        dir,
        "range_to_the_top",
        &Inputs::Range {
            start: u64::MAX - 100,
            end: u64::MAX,
            step: 7,
        },
    );
    write(
        dir,
        "policy.json",
        br#"{"min_quorum":3,"reexecution_rate":0.30000000000000004,"spot_check_rate":1e-7}"#,
    );
    // Raw (start, end, step) triples, little-endian.
    let raw = |start: u64, end: u64, step: u64| {
        [start, end, step]
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    write(dir, "raw_range_small", &raw(3, 10, 3));
    write(dir, "raw_range_top", &raw(u64::MAX - 5, u64::MAX, 4));
    write(dir, "raw_range_whole", &raw(0, u64::MAX, 1 << 40));
}
