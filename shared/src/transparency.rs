//! The public transparency log: every job the portal publishes or withdraws, and every
//! distributor key it revokes, as a hash chain of entries each signed by a portal key.
//!
//! Anyone can fetch the log (`GET /api/v1/log`) and check it with [`verify_chain`]: entries
//! are numbered without gaps, each names the digest of the one before, and each is signed by
//! a portal key. A portal that rewrote history would have to fork the chain, which anyone
//! holding an older head detects. Before running a job, a client checks with [`check_job`]
//! that the job's manifest matches its publication entry and that nothing after it revoked
//! the job or the key that declared it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::distributor::AccountId;
use crate::ids::{JobId, KeyId, PublicKey, Sha256Digest, Signature};
use crate::json::{FromJson, Json, JsonError, Object, ToJson};
use crate::manifest::{Manifest, PortalKeys};
use crate::signing::{self, Purpose, SecretKey};

/// The most entries one `GET /api/v1/log` page holds.
pub const MAX_LOG_PAGE: usize = 1_000;

/// One entry of the log, as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// The entry's position: 0 for the first, then without gaps.
    pub seq: u64,
    /// [`LogEntry::digest`] of the entry before (all zeros for the first).
    pub prev_sha256: Sha256Digest,
    /// When the portal appended it (ms since the Unix epoch).
    pub at_ms: u64,
    pub event: LogEvent,
    /// The portal key that signed it.
    pub key_id: KeyId,
    /// The portal's signature over [`entry_message`].
    pub signature: Signature,
}

/// What an entry records, as an object whose `kind` names the variant. The browser reads it
/// with [`FromJson`] and every side writes its canonical form (hashed into [`entry_message`])
/// with [`ToJson`]: serde's derived reader for internally tagged enums buffers each event into
/// a generic tree of values first, machinery that was a twentieth of the web client's module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogEvent {
    /// A job's manifest is served from now on: what runs and who distributes it.
    Published {
        job: JobId,
        title: String,
        distributor: String,
        /// The distributor's account; `None` for the portal's own jobs.
        owner: Option<AccountId>,
        module_sha256: Sha256Digest,
        inputs_sha256: Option<Sha256Digest>,
        /// The distributor key that signed the job's declaration, if one did.
        declared_by: Option<PublicKey>,
    },
    /// A job's manifest is no longer served, and clients must refuse it.
    Revoked { job: JobId, reason: String },
    /// A distributor's signing key is revoked: every job it declared is refused.
    KeyRevoked {
        key: PublicKey,
        account: AccountId,
        reason: String,
    },
}

impl ToJson for LogEvent {
    fn write_json(&self, out: &mut String) {
        let mut object = Object::new(out);
        match self {
            LogEvent::Published {
                job,
                title,
                distributor,
                owner,
                module_sha256,
                inputs_sha256,
                declared_by,
            } => object
                .field("kind", "published")
                .field("job", job)
                .field("title", title)
                .field("distributor", distributor)
                .field("owner", owner)
                .field("module_sha256", module_sha256)
                .field("inputs_sha256", inputs_sha256)
                .field("declared_by", declared_by),
            LogEvent::Revoked { job, reason } => object
                .field("kind", "revoked")
                .field("job", job)
                .field("reason", reason),
            LogEvent::KeyRevoked {
                key,
                account,
                reason,
            } => object
                .field("kind", "key_revoked")
                .field("key", key)
                .field("account", account)
                .field("reason", reason),
        }
        .end();
    }
}

impl FromJson for LogEvent {
    /// Accepts the objects serde's derived reader accepts (unknown fields and another kind's
    /// fields refused) and nothing else.
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("log event")?;
        match fields.req::<String>("kind")?.as_str() {
            "published" => {
                fields.only(&[
                    "kind",
                    "job",
                    "title",
                    "distributor",
                    "owner",
                    "module_sha256",
                    "inputs_sha256",
                    "declared_by",
                ])?;
                Ok(Self::Published {
                    job: fields.req("job")?,
                    title: fields.req("title")?,
                    distributor: fields.req("distributor")?,
                    owner: fields.opt("owner")?,
                    module_sha256: fields.req("module_sha256")?,
                    inputs_sha256: fields.opt("inputs_sha256")?,
                    declared_by: fields.opt("declared_by")?,
                })
            }
            "revoked" => {
                fields.only(&["kind", "job", "reason"])?;
                Ok(Self::Revoked {
                    job: fields.req("job")?,
                    reason: fields.req("reason")?,
                })
            }
            "key_revoked" => {
                fields.only(&["kind", "key", "account", "reason"])?;
                Ok(Self::KeyRevoked {
                    key: fields.req("key")?,
                    account: fields.req("account")?,
                    reason: fields.req("reason")?,
                })
            }
            other => Err(JsonError(format!("log event: unknown kind `{other}`"))),
        }
    }
}

impl FromJson for LogEntry {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("log entry")?;
        fields.only(&[
            "seq",
            "prev_sha256",
            "at_ms",
            "event",
            "key_id",
            "signature",
        ])?;
        Ok(Self {
            seq: fields.req("seq")?,
            prev_sha256: fields.req("prev_sha256")?,
            at_ms: fields.req("at_ms")?,
            event: fields.req("event")?,
            key_id: fields.req("key_id")?,
            signature: fields.req("signature")?,
        })
    }
}

impl FromJson for LogPage {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("log page")?;
        Ok(Self {
            entries: fields.req("entries")?,
            size: fields.req("size")?,
        })
    }
}

impl ToJson for LogHead {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("seq", &self.seq)
            .field("sha256", &self.sha256)
            .end();
    }
}

impl FromJson for LogHead {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("log head")?;
        Ok(Self {
            seq: fields.req("seq")?,
            sha256: fields.req("sha256")?,
        })
    }
}

/// `GET /api/v1/log`: a page of entries, and the log's head when the page was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// How many entries the log holds (the next entry's `seq`).
    pub size: u64,
}

/// The log's last entry as one verifier saw it: enough to detect a fork later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    pub seq: u64,
    pub sha256: Sha256Digest,
}

/// Why a log (or a job against it) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("log entry {found} where entry {expected} was expected (a gap or reordering)")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("log entry {seq} follows entry {}, the last a log can hold", u64::MAX)]
    PastTheEnd { seq: u64 },
    #[error("log entry {seq} does not link to the entry before it (the chain was altered)")]
    BrokenLink { seq: u64 },
    #[error("log entry {seq} is signed by key {key}, which is not a portal key")]
    UnknownKey { seq: u64, key: KeyId },
    #[error("log entry {seq} is signed by key {key}, revoked before the entry was written")]
    RevokedKey { seq: u64, key: KeyId },
    #[error("log entry {seq} has an invalid signature")]
    BadSignature { seq: u64 },
    #[error("the log holds no publication of job {job}")]
    NotPublished { job: JobId },
    #[error("job {job}'s manifest differs from its entry {seq} in the public log ({field})")]
    Mismatch {
        job: JobId,
        seq: u64,
        field: &'static str,
    },
    #[error("job {job} was revoked in the public log (entry {seq}): {reason}")]
    JobRevoked {
        job: JobId,
        seq: u64,
        reason: String,
    },
    #[error(
        "the key that declared job {job} was revoked in the public log (entry {seq}): {reason}"
    )]
    DeclarationKeyRevoked {
        job: JobId,
        seq: u64,
        reason: String,
    },
}

impl LogEntry {
    /// Builds and signs entry `seq` after the entry whose digest is `prev_sha256`.
    pub fn sign(
        seq: u64,
        prev_sha256: Sha256Digest,
        at_ms: u64,
        event: LogEvent,
        key: &SecretKey,
    ) -> Self {
        let message = entry_message(seq, &prev_sha256, at_ms, &event);
        Self {
            seq,
            prev_sha256,
            at_ms,
            event,
            key_id: KeyId::of(&key.public_key()),
            signature: key.sign(Purpose::LogEntry, &message),
        }
    }

    /// The digest the next entry names: over the signed message, the key and the signature,
    /// so that changing any part of an entry breaks every link after it.
    pub fn digest(&self) -> Sha256Digest {
        let mut hasher = Sha256::new();
        hasher.update(entry_message(
            self.seq,
            &self.prev_sha256,
            self.at_ms,
            &self.event,
        ));
        hasher.update(self.key_id.as_bytes());
        hasher.update(self.signature.as_bytes());
        Sha256Digest::from_bytes(hasher.finalize().into())
    }

    /// This entry as a head.
    pub fn head(&self) -> LogHead {
        LogHead {
            seq: self.seq,
            sha256: self.digest(),
        }
    }
}

/// The bytes a portal key signs for one entry: its position, the previous entry's digest,
/// the time and the SHA-256 of the event's JSON (serialized from the typed event, so every
/// side computes the same bytes).
pub fn entry_message(
    seq: u64,
    prev_sha256: &Sha256Digest,
    at_ms: u64,
    event: &LogEvent,
) -> Vec<u8> {
    let event_json = crate::json::to_string(event);
    let mut message = Vec::with_capacity(80);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(prev_sha256.as_bytes());
    message.extend_from_slice(&at_ms.to_be_bytes());
    message.extend_from_slice(Sha256Digest::of(event_json.as_bytes()).as_bytes());
    message
}

/// Checks a run of consecutive entries: numbering, links and signatures. `after` is the
/// entry just before the first (`None` when the run starts at entry 0, whose link is all
/// zeros; for a run starting later without it, the first link is taken on trust). Returns
/// the head after the run (`after` for an empty run).
pub fn verify_chain(
    entries: &[LogEntry],
    after: Option<LogHead>,
    keys: &PortalKeys,
) -> Result<Option<LogHead>, LogError> {
    let mut head = after;
    for entry in entries {
        // Without `after`, the first entry's position is taken as given; every later one
        // must follow the entry checked before it, and nothing follows the last position
        // (a portal signs whatever positions it likes; they must not wrap around to 0).
        let expected_seq = match head {
            Some(head) => head
                .seq
                .checked_add(1)
                .ok_or(LogError::PastTheEnd { seq: entry.seq })?,
            None => entry.seq,
        };
        if entry.seq != expected_seq {
            return Err(LogError::OutOfOrder {
                expected: expected_seq,
                found: entry.seq,
            });
        }
        let expected_link = match head {
            Some(head) => Some(head.sha256),
            None if entry.seq == 0 => Some(Sha256Digest::from_bytes([0; 32])),
            None => None,
        };
        if expected_link.is_some_and(|link| link != entry.prev_sha256) {
            return Err(LogError::BrokenLink { seq: entry.seq });
        }
        check_signature(entry, keys)?;
        head = Some(entry.head());
    }
    Ok(head)
}

fn check_signature(entry: &LogEntry, keys: &PortalKeys) -> Result<(), LogError> {
    let seq = entry.seq;
    if let Some(revoked) = keys.revoked.iter().find(|r| r.key_id == entry.key_id)
        && entry.at_ms >= revoked.revoked_ms
    {
        return Err(LogError::RevokedKey {
            seq,
            key: entry.key_id,
        });
    }
    let key = keys
        .keys
        .iter()
        .find(|key| key.key_id == entry.key_id)
        .ok_or(LogError::UnknownKey {
            seq,
            key: entry.key_id,
        })?;
    let message = entry_message(seq, &entry.prev_sha256, entry.at_ms, &entry.event);
    signing::verify(
        &key.public_key,
        Purpose::LogEntry,
        &message,
        &entry.signature,
    )
    .map_err(|_| LogError::BadSignature { seq })
}

/// Checks `manifest` against the log: `entries` must be a verified run (see
/// [`verify_chain`]) that starts with the job's latest publication and runs to the log's
/// head. The manifest must match the publication (job, module, inputs, declaring key), and
/// no later entry may revoke the job or that key. Returns the publication's `seq`.
pub fn check_job(manifest: &Manifest, entries: &[LogEntry]) -> Result<u64, LogError> {
    let job = manifest.job_id;
    let Some(first) = entries.first() else {
        return Err(LogError::NotPublished { job });
    };
    let LogEvent::Published {
        job: published_job,
        module_sha256,
        inputs_sha256,
        declared_by,
        ..
    } = &first.event
    else {
        return Err(LogError::NotPublished { job });
    };
    let mismatch = |field| LogError::Mismatch {
        job,
        seq: first.seq,
        field,
    };
    if *published_job != job {
        return Err(LogError::NotPublished { job });
    }
    if *module_sha256 != manifest.module_sha256 {
        return Err(mismatch("module"));
    }
    if *inputs_sha256 != manifest.inputs_sha256 {
        return Err(mismatch("inputs"));
    }
    let declared_in_manifest = manifest.declaration.map(|d| d.public_key);
    if *declared_by != declared_in_manifest {
        return Err(mismatch("declaring key"));
    }
    for entry in &entries[1..] {
        match &entry.event {
            LogEvent::Revoked {
                job: revoked,
                reason,
            } if *revoked == job => {
                return Err(LogError::JobRevoked {
                    job,
                    seq: entry.seq,
                    reason: reason.clone(),
                });
            }
            LogEvent::KeyRevoked { key, reason, .. } if Some(*key) == *declared_by => {
                return Err(LogError::DeclarationKeyRevoked {
                    job,
                    seq: entry.seq,
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(first.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{JobPolicy, MANIFEST_FORMAT, PortalKey, RevokedKey};

    fn portal() -> (SecretKey, PortalKeys) {
        let key = SecretKey::from_seed(&[7; 32]);
        let keys = PortalKeys {
            keys: vec![PortalKey::new(&key, 0, u64::MAX, None)],
            revoked: Vec::new(),
        };
        (key, keys)
    }

    fn published(job: u64, declared_by: Option<PublicKey>) -> LogEvent {
        LogEvent::Published {
            job: JobId(job),
            title: format!("job {job}"),
            distributor: "lab".into(),
            owner: Some(AccountId(3)),
            module_sha256: Sha256Digest::of(b"module"),
            inputs_sha256: Some(Sha256Digest::of(b"inputs")),
            declared_by,
        }
    }

    fn chain(key: &SecretKey, events: Vec<LogEvent>) -> Vec<LogEntry> {
        let mut entries: Vec<LogEntry> = Vec::new();
        for (seq, event) in events.into_iter().enumerate() {
            let prev = entries
                .last()
                .map_or(Sha256Digest::from_bytes([0; 32]), LogEntry::digest);
            entries.push(LogEntry::sign(
                seq as u64,
                prev,
                1_000 + seq as u64,
                event,
                key,
            ));
        }
        entries
    }

    fn manifest(job: u64, declared_by: Option<PublicKey>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            job_id: JobId(job),
            distributor: "lab".into(),
            title: format!("job {job}"),
            description: String::new(),
            module_sha256: Sha256Digest::of(b"module"),
            module_bytes: 6,
            policy: JobPolicy::default(),
            issued_ms: 0,
            expires_ms: u64::MAX,
            inputs_sha256: Some(Sha256Digest::of(b"inputs")),
            declaration: declared_by.map(|public_key| crate::distributor::DeclarationSignature {
                public_key,
                signature: Signature::from_bytes([0; 64]),
            }),
        }
    }

    #[test]
    fn an_honest_chain_verifies_whole_and_in_parts() {
        let (key, keys) = portal();
        let entries = chain(&key, vec![published(1, None), published(2, None)]);
        let head = verify_chain(&entries, None, &keys).unwrap().unwrap();
        assert_eq!(head, entries[1].head());
        let first = verify_chain(&entries[..1], None, &keys).unwrap();
        assert_eq!(
            verify_chain(&entries[1..], first, &keys).unwrap(),
            Some(head)
        );
        assert_eq!(verify_chain(&[], first, &keys).unwrap(), first);
    }

    #[test]
    fn any_change_to_history_is_detected() {
        let (key, keys) = portal();
        let entries = chain(
            &key,
            vec![published(1, None), published(2, None), published(3, None)],
        );
        // An edited event: its signature no longer matches.
        let mut edited = entries.clone();
        if let LogEvent::Published { title, .. } = &mut edited[1].event {
            *title = "something else".into();
        }
        assert_eq!(
            verify_chain(&edited, None, &keys),
            Err(LogError::BadSignature { seq: 1 })
        );
        // A re-signed edit: the next entry's link breaks.
        let mut resigned = entries.clone();
        resigned[1] = LogEntry::sign(
            1,
            entries[0].digest(),
            entries[1].at_ms,
            published(9, None),
            &key,
        );
        assert_eq!(
            verify_chain(&resigned, None, &keys),
            Err(LogError::BrokenLink { seq: 2 })
        );
        // A dropped entry.
        let dropped = vec![entries[0].clone(), entries[2].clone()];
        assert_eq!(
            verify_chain(&dropped, None, &keys),
            Err(LogError::OutOfOrder {
                expected: 1,
                found: 2
            })
        );
        // A different first link for entry 0.
        let mut rooted = entries.clone();
        rooted[0].prev_sha256 = Sha256Digest::from_bytes([1; 32]);
        assert!(verify_chain(&rooted, None, &keys).is_err());
    }

    /// Found by the `manifest` fuzz target: an entry after one at position `u64::MAX`
    /// overflowed the expected position (a panic in debug builds; in release it wrapped to 0,
    /// so a portal could number a chain MAX, 0, 1, … and have it verify).
    #[test]
    fn nothing_follows_the_last_position() {
        let (key, keys) = portal();
        let last = LogEntry::sign(
            u64::MAX,
            Sha256Digest::from_bytes([1; 32]),
            1_000,
            published(1, None),
            &key,
        );
        let head = verify_chain(std::slice::from_ref(&last), None, &keys).unwrap();
        assert_eq!(head, Some(last.head()));
        let wrapped = LogEntry::sign(0, last.digest(), 1_001, published(2, None), &key);
        assert_eq!(
            verify_chain(&[last, wrapped.clone()], None, &keys),
            Err(LogError::PastTheEnd { seq: 0 })
        );
        assert_eq!(
            verify_chain(&[wrapped], head, &keys),
            Err(LogError::PastTheEnd { seq: 0 })
        );
    }

    #[test]
    fn entries_by_unknown_or_revoked_keys_are_refused() {
        let (key, mut keys) = portal();
        let stranger = SecretKey::from_seed(&[8; 32]);
        let entries = chain(&stranger, vec![published(1, None)]);
        assert!(matches!(
            verify_chain(&entries, None, &keys),
            Err(LogError::UnknownKey { seq: 0, .. })
        ));
        let entries = chain(&key, vec![published(1, None), published(2, None)]);
        keys.revoked.push(RevokedKey {
            key_id: KeyId::of(&key.public_key()),
            revoked_ms: 1_001,
            reason: "leaked".into(),
        });
        // Entry 0 was written before the revocation; entry 1 at it.
        assert!(matches!(
            verify_chain(&entries, None, &keys),
            Err(LogError::RevokedKey { seq: 1, .. })
        ));
    }

    #[test]
    fn a_job_must_match_its_publication_and_not_be_revoked_since() {
        let (key, _) = portal();
        let declarer = SecretKey::from_seed(&[9; 32]).public_key();
        let entries = chain(&key, vec![published(1, Some(declarer)), published(2, None)]);
        assert_eq!(check_job(&manifest(1, Some(declarer)), &entries), Ok(0));
        assert_eq!(check_job(&manifest(2, None), &entries[1..]), Ok(1));
        // The wrong entry, a different module, a different declaring key.
        assert_eq!(
            check_job(&manifest(2, None), &entries),
            Err(LogError::NotPublished { job: JobId(2) })
        );
        let mut swapped = manifest(1, Some(declarer));
        swapped.module_sha256 = Sha256Digest::of(b"other");
        assert!(matches!(
            check_job(&swapped, &entries),
            Err(LogError::Mismatch {
                field: "module",
                ..
            })
        ));
        assert!(matches!(
            check_job(&manifest(1, None), &entries),
            Err(LogError::Mismatch {
                field: "declaring key",
                ..
            })
        ));
        assert_eq!(
            check_job(&manifest(1, None), &[]),
            Err(LogError::NotPublished { job: JobId(1) })
        );

        let revoked_job = chain(
            &key,
            vec![
                published(1, Some(declarer)),
                LogEvent::Revoked {
                    job: JobId(1),
                    reason: "abuse".into(),
                },
            ],
        );
        assert!(matches!(
            check_job(&manifest(1, Some(declarer)), &revoked_job),
            Err(LogError::JobRevoked { seq: 1, .. })
        ));
        let revoked_key = chain(
            &key,
            vec![
                published(1, Some(declarer)),
                LogEvent::Revoked {
                    job: JobId(7),
                    reason: "another job".into(),
                },
                LogEvent::KeyRevoked {
                    key: declarer,
                    account: AccountId(3),
                    reason: "stolen".into(),
                },
            ],
        );
        assert!(matches!(
            check_job(&manifest(1, Some(declarer)), &revoked_key),
            Err(LogError::DeclarationKeyRevoked { seq: 2, .. })
        ));
    }

    #[test]
    fn the_codec_reads_and_writes_events_as_serde_does() {
        let key = SecretKey::from_seed(&[9; 32]).public_key();
        let digest = Sha256Digest::of(b"module");
        let mut texts = Vec::new();
        // What the portal writes, and the same with the optional fields null or left out,
        // the fields in another order, or the kind last.
        for event in [
            published(1, Some(key)),
            published(2, None),
            LogEvent::Published {
                job: JobId(3),
                title: String::new(),
                distributor: "<b>\"lab\"</b>\n\u{1}é🦀\\".into(),
                owner: None,
                module_sha256: digest,
                inputs_sha256: None,
                declared_by: None,
            },
            LogEvent::Revoked {
                job: JobId(4),
                reason: "abuse".into(),
            },
            LogEvent::KeyRevoked {
                key,
                account: AccountId(5),
                reason: "stolen".into(),
            },
        ] {
            texts.push(serde_json::to_string(&event).unwrap());
        }
        texts.extend(
            [
                r#"{"job":1,"title":"t","distributor":"d","module_sha256":"MOD","kind":"published"}"#,
                r#"{"kind":"published","job":1,"title":"t","distributor":"d","owner":null,"module_sha256":"MOD","inputs_sha256":null,"declared_by":null}"#,
                r#"{"reason":"r","kind":"revoked","job":9}"#,
                r#"{"kind":"key_revoked","key":"KEY","account":2,"reason":"r"}"#,
                // Refused: a field of another kind, an unknown field, a field twice, a
                // required field missing or null, no kind, an unknown kind, not an object.
                r#"{"kind":"revoked","job":9,"reason":"r","title":"t"}"#,
                r#"{"kind":"revoked","job":9,"reason":"r","owner":null}"#,
                r#"{"kind":"key_revoked","key":"KEY","account":2,"reason":"r","job":1}"#,
                r#"{"kind":"published","job":1,"title":"t","distributor":"d","module_sha256":"MOD","reason":"r"}"#,
                r#"{"kind":"revoked","job":9,"reason":"r","extra":1}"#,
                r#"{"kind":"revoked","job":9,"job":10,"reason":"r"}"#,
                r#"{"kind":"revoked","job":9}"#,
                r#"{"kind":"revoked","job":null,"reason":"r"}"#,
                r#"{"kind":"published","job":1,"title":"t","distributor":"d"}"#,
                r#"{"job":9,"reason":"r"}"#,
                r#"{"kind":"withdrawn","job":9,"reason":"r"}"#,
                r#"{"kind":null,"job":9,"reason":"r"}"#,
                r#"{"kind":"revoked","job":"9","reason":"r"}"#,
                r#"["revoked",9,"r"]"#,
                r#""revoked""#,
                "null",
                "{}",
            ]
            .map(|text| {
                text.replace("MOD", &digest.to_string())
                    .replace("KEY", &key.to_string())
            }),
        );
        let mut accepted = 0;
        for text in &texts {
            let ours = crate::json::from_str::<LogEvent>(text);
            let derived = serde_json::from_str::<LogEvent>(text);
            match (&ours, &derived) {
                (Ok(ours), Ok(derived)) => {
                    assert_eq!(ours, derived, "{text}");
                    // Written as serde writes it: the canonical form the log's digests hash.
                    assert_eq!(
                        crate::json::to_string(ours),
                        serde_json::to_string(ours).unwrap(),
                        "{text}"
                    );
                    accepted += 1;
                }
                (Err(_), Err(_)) => {}
                // serde's derived reader also takes an event as an array with the kind first;
                // the portal never writes one, and this reader refuses it.
                (Err(_), Ok(_)) if text.starts_with('[') => {}
                _ => panic!("{text}: ours {ours:?}, derived {derived:?}"),
            }
        }
        assert_eq!(accepted, 9, "every well-formed text is read");
    }
}
