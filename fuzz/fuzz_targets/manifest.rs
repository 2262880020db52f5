//! Fuzzes what a volunteer's browser (and the CLI) checks before trusting a job: signed
//! manifests, key pinning, and the transparency log's chain and job check.
//!
//! Every input is tried as JSON of each type, and as a manifest's text signed by the portal so
//! that the checks after the signature are reached too. A log whose entries do not verify is
//! also re-signed by the portal, so the numbering and link checks are reached with arbitrary
//! positions (up to the last, `u64::MAX`). Whatever verifies must satisfy what the verifier promises.

#![no_main]

use std::sync::OnceLock;

use cyclepool_fuzz::{round_trip, round_trip_all};
use cyclepool_shared::distributor::verify_declaration;
use cyclepool_shared::manifest::{
    CLOCK_SKEW_MS, MANIFEST_FORMAT, Manifest, ManifestError, PinError, PortalKey, PortalKeys,
    RevokedKey, SignedManifest, endorsement_message,
};
use cyclepool_shared::signing::{self, Purpose, SecretKey};
use cyclepool_shared::transparency::{
    LogEntry, LogError, LogEvent, LogHead, LogPage, check_job, verify_chain,
};
use cyclepool_shared::{KeyId, Sha256Digest};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

/// The verifier's clock: 2027-01-15, inside the seeds' validity.
const NOW_MS: u64 = 1_800_000_000_000;

/// The portal as the verifier knows it: a current key, and a revoked one.
struct Portal {
    secret: SecretKey,
    key_id: KeyId,
    keys: PortalKeys,
}

fn portal() -> &'static Portal {
    static PORTAL: OnceLock<Portal> = OnceLock::new();
    PORTAL.get_or_init(|| {
        // The seeds in corpus/manifest are signed with these keys (see README.md).
        let secret = SecretKey::from_seed(&[1; 32]);
        let old = SecretKey::from_seed(&[2; 32]);
        let current = PortalKey::new(&secret, 1_000_000_000_000, 2_000_000_000_000, Some(&old));
        let retired = PortalKey::new(&old, 0, 1_000_000_000_000, None);
        let keys = PortalKeys {
            revoked: vec![RevokedKey {
                key_id: retired.key_id,
                revoked_ms: 1_500_000_000_000,
                reason: "rotated".into(),
            }],
            keys: vec![current.clone(), retired],
        };
        Portal {
            key_id: current.key_id,
            secret,
            keys,
        }
    })
}

/// Two key sets: what a browser pinned before, and what the portal offers now.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PinCase {
    pinned: PortalKeys,
    offered: PortalKeys,
}

/// A run of log entries, the head it continues, and a job to check against it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct LogCase {
    entries: Vec<LogEntry>,
    #[serde(default)]
    after: Option<LogHead>,
    #[serde(default)]
    manifest: Option<Manifest>,
}

fuzz_target!(|bytes: &[u8]| {
    let portal = portal();
    if let Some(signed) = round_trip::<SignedManifest>(bytes) {
        let _ = check_open(&signed, &portal.keys);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let signed = SignedManifest {
            manifest: text.to_owned(),
            key_id: portal.key_id,
            signature: portal.secret.sign(Purpose::Manifest, bytes),
        };
        let opened = check_open(&signed, &portal.keys);
        let decoded = round_trip::<Manifest>(bytes);
        if let Ok(manifest) = opened {
            assert_eq!(Some(&manifest), decoded.as_ref());
            // What the portal signs from the manifest it decoded opens to the same manifest.
            let resigned = SignedManifest::sign(&manifest, &portal.secret);
            assert_eq!(resigned.open(&portal.keys, NOW_MS), Ok(manifest));
        }
    }
    round_trip_all!(bytes; PortalKey, RevokedKey, LogEntry, LogEvent, LogHead, LogPage);
    if let Some(keys) = round_trip::<PortalKeys>(bytes) {
        check_pin(&PortalKeys::default(), &keys);
        check_pin(&portal.keys, &keys);
    }
    if let Some(case) = round_trip::<PinCase>(bytes) {
        check_pin(&case.pinned, &case.offered);
    }
    if let Some(case) = round_trip::<LogCase>(bytes) {
        check_log(&case);
    }
});

/// Opens `signed` and, if it opens, checks every promise of [`SignedManifest::open`].
fn check_open(signed: &SignedManifest, keys: &PortalKeys) -> Result<Manifest, ManifestError> {
    let opened = signed.open(keys, NOW_MS);
    assert_eq!(
        signed.open(keys, NOW_MS),
        opened,
        "open is not deterministic"
    );
    let Ok(manifest) = &opened else {
        return opened;
    };
    assert!(!keys.revoked.iter().any(|r| r.key_id == signed.key_id));
    let key = keys
        .keys
        .iter()
        .find(|k| k.key_id == signed.key_id)
        .expect("opened with a trusted key");
    assert_eq!(
        signing::verify(
            &key.public_key,
            Purpose::Manifest,
            signed.manifest.as_bytes(),
            &signed.signature
        ),
        Ok(())
    );
    assert_eq!(manifest.format, MANIFEST_FORMAT);
    assert!((key.not_before_ms..=key.not_after_ms).contains(&manifest.issued_ms));
    assert!(manifest.issued_ms <= NOW_MS + CLOCK_SKEW_MS);
    assert!(manifest.expires_ms > NOW_MS);
    if let Some(declaration) = &manifest.declaration {
        let inputs = manifest.inputs_sha256.expect("a declaration covers inputs");
        let message = manifest.declaration_message(&inputs);
        assert_eq!(verify_declaration(declaration, &message), Ok(()));
        assert!(signing::is_usable_key(&declaration.public_key));
    }
    opened
}

/// Pins `offered` over `pinned` and checks the result: pinned keys and revocations are kept,
/// only endorsed keys are added (everything on first use), and pinning again changes nothing.
fn check_pin(pinned: &PortalKeys, offered: &PortalKeys) {
    let result = PortalKeys::pin(pinned, offered);
    match &result {
        Ok(trusted) => {
            for key in &offered.keys {
                assert_eq!(KeyId::of(&key.public_key), key.key_id);
                assert!(trusted.keys.iter().any(|k| k.key_id == key.key_id));
            }
            if pinned.keys.is_empty() {
                assert_eq!(trusted.keys, offered.keys);
            } else {
                assert!(trusted.keys.starts_with(&pinned.keys));
                for key in &trusted.keys[pinned.keys.len()..] {
                    assert!(offered.keys.contains(key));
                    let endorsement = key.endorsement.as_ref().expect("a new key is endorsed");
                    let endorser = trusted
                        .keys
                        .iter()
                        .find(|k| k.key_id == endorsement.key_id)
                        .expect("by a trusted key");
                    let message =
                        endorsement_message(&key.public_key, key.not_before_ms, key.not_after_ms);
                    assert_eq!(
                        signing::verify(
                            &endorser.public_key,
                            Purpose::KeyEndorsement,
                            &message,
                            &endorsement.signature
                        ),
                        Ok(())
                    );
                }
            }
            assert!(trusted.revoked.starts_with(&pinned.revoked));
            for revoked in &offered.revoked {
                assert!(trusted.revoked.iter().any(|r| r.key_id == revoked.key_id));
            }
            assert_eq!(PortalKeys::pin(trusted, offered), result, "pinning twice");
        }
        Err(PinError::WrongKeyId(id)) => {
            assert!(
                offered
                    .keys
                    .iter()
                    .any(|k| k.key_id == *id && KeyId::of(&k.public_key) != *id)
            );
        }
        Err(PinError::Substituted(id) | PinError::Unendorsed(id)) => {
            assert!(!pinned.keys.is_empty());
            assert!(offered.keys.iter().any(|k| k.key_id == *id));
        }
    }
}

/// Verifies the case's entries as given, then re-signed by the portal (so only their positions
/// and links can be wrong), then re-linked into a chain that must verify; and checks the job
/// against each run that verified.
fn check_log(case: &LogCase) {
    let portal = portal();
    let _ = check_chain(&case.entries, case.after, case.manifest.as_ref());

    let resigned: Vec<LogEntry> = case
        .entries
        .iter()
        .map(|entry| {
            LogEntry::sign(
                entry.seq,
                entry.prev_sha256,
                entry.at_ms,
                entry.event.clone(),
                &portal.secret,
            )
        })
        .collect();
    if let Err(err) = check_chain(&resigned, case.after, case.manifest.as_ref()) {
        assert!(
            matches!(
                err,
                LogError::OutOfOrder { .. }
                    | LogError::PastTheEnd { .. }
                    | LogError::BrokenLink { .. }
            ),
            "a portal-signed entry refused: {err}"
        );
    }

    // The same events as a proper chain after `after` (or from entry 0), which must verify
    // unless it would run past the last position a log can have.
    let mut head = case.after;
    let mut relinked = Vec::with_capacity(case.entries.len());
    for entry in &case.entries {
        let (seq, prev) = match head {
            Some(head) => match head.seq.checked_add(1) {
                Some(seq) => (seq, head.sha256),
                None => break,
            },
            None => (0, Sha256Digest::from_bytes([0; 32])),
        };
        let entry = LogEntry::sign(seq, prev, entry.at_ms, entry.event.clone(), &portal.secret);
        head = Some(entry.head());
        relinked.push(entry);
    }
    assert_eq!(
        check_chain(&relinked, case.after, case.manifest.as_ref()),
        Ok(head)
    );
}

/// [`verify_chain`] and, when the run verified, its promises and [`check_job`]'s.
fn check_chain(
    entries: &[LogEntry],
    after: Option<LogHead>,
    manifest: Option<&Manifest>,
) -> Result<Option<LogHead>, LogError> {
    let keys = &portal().keys;
    let verified = verify_chain(entries, after, keys);
    if let Some(manifest) = manifest {
        // Never panics, whatever the run; only meaningful on a verified one.
        let _ = check_job(manifest, entries);
    }
    let Ok(head) = verified else {
        return verified;
    };
    assert_eq!(head, entries.last().map(LogEntry::head).or(after));
    let mut previous = after;
    for entry in entries {
        if let Some(previous) = previous {
            assert_eq!(Some(entry.seq), previous.seq.checked_add(1));
            assert_eq!(entry.prev_sha256, previous.sha256);
        } else if entry.seq == 0 {
            assert_eq!(entry.prev_sha256, Sha256Digest::from_bytes([0; 32]));
        }
        previous = Some(entry.head());
    }
    // A run verified in two parts ends at the same head.
    for split in 1..entries.len() {
        let (first, second) = entries.split_at(split);
        let middle = verify_chain(first, after, keys).expect("a prefix of a verified run");
        assert_eq!(verify_chain(second, middle, keys), Ok(head));
    }
    if let Some(manifest) = manifest
        && let Ok(seq) = check_job(manifest, entries)
    {
        let first = &entries[0];
        assert_eq!(seq, first.seq);
        let LogEvent::Published {
            job, module_sha256, ..
        } = &first.event
        else {
            panic!("a job checked against an entry that is not its publication");
        };
        assert_eq!(*job, manifest.job_id);
        assert_eq!(*module_sha256, manifest.module_sha256);
        for entry in &entries[1..] {
            assert!(
                !matches!(&entry.event, LogEvent::Revoked { job, .. } if *job == manifest.job_id)
            );
        }
    }
    Ok(head)
}
