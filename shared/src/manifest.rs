//! Signed job manifests, the portal's published keys, and key pinning.
//!
//! A manifest says what a job is (who distributes it, what it does, the SHA-256 of its module,
//! its policy, when it was issued and when it expires). The portal signs the manifest's exact
//! JSON bytes; the web client verifies the signature with a key it trusts and the module's
//! hash before it instantiates anything, and refuses expired manifests and revoked keys.
//!
//! Trust in keys is pinned: the first key set a browser sees is trusted on first use; after
//! that a new key is accepted only if a trusted key endorsed it (signed it), so a portal can
//! rotate keys without its volunteers having to trust a stranger.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, KeyId, PublicKey, Sha256Digest, Signature};
use crate::json::{FromJson, Json, JsonError, Object, ToJson};
use crate::signing::{self, Purpose, SecretKey};

/// The manifest format this crate reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// How far a manifest's issue time may lie in the future of the verifier's clock.
pub const CLOCK_SKEW_MS: u64 = 5 * 60 * 1_000;

/// What a job is. Signed as its exact JSON bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    pub format: u32,
    pub job_id: JobId,
    /// Who distributes the job (the portal's own jobs say `portal`).
    pub distributor: String,
    pub title: String,
    pub description: String,
    pub module_sha256: Sha256Digest,
    pub module_bytes: u64,
    pub policy: JobPolicy,
    pub issued_ms: u64,
    pub expires_ms: u64,
    /// The digest of the job's inputs (see `distributor::inputs_digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_sha256: Option<Sha256Digest>,
    /// The distributor's own signature over the job's declaration (module, inputs, title,
    /// description, policy), by a key the portal has registered to that distributor. When
    /// present, clients check it: a portal cannot swap the code its distributor signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration: Option<crate::distributor::DeclarationSignature>,
}

impl Manifest {
    /// The bytes its distributor signs to declare this job (`distributor::job_declaration_message`)
    /// when its inputs digest to `inputs_sha256`.
    pub fn declaration_message(&self, inputs_sha256: &Sha256Digest) -> Vec<u8> {
        crate::distributor::job_declaration_message(
            &self.module_sha256,
            inputs_sha256,
            &self.title,
            &self.description,
            &self.policy,
        )
    }
}

/// How a job's units are handed out and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct JobPolicy {
    /// How long a volunteer has to return a unit.
    pub lease_ttl_ms: u64,
    /// How long one unit may compute in a browser before the watchdog stops it.
    pub unit_budget_ms: u64,
    /// Results that must agree before one is accepted (replication; used by validation).
    pub min_quorum: u32,
    /// Replicas of each unit issued at first.
    pub initial_replicas: u32,
    /// Give up on a unit after this many failed results.
    pub max_error_results: u32,
    /// Give up on a unit after this many results in all, errors included.
    pub max_total_results: u32,
    /// Give up on a unit after this many successful results without a decision.
    pub max_success_results: u32,
    /// Check results with the module's `verify` export where it has one.
    pub use_verify: bool,
    /// The fraction of units whose answer the server computes itself (in its sandbox). A
    /// result that disagrees with a known answer catches its volunteer.
    pub reexecution_rate: f64,
    /// The fraction of leases that are spot checks: units with a known answer, which the client
    /// cannot tell from ordinary ones. A wrong answer blacklists the volunteer and withdraws its
    /// undecided results (backtracking).
    pub spot_check_rate: f64,
    /// Credibility-based acceptance (after Sarmenta): when positive, a unit is decided as soon
    /// as the agreeing results' estimated probability of all being wrong, from their
    /// volunteers' credibility, is at most this; `min_quorum` is then not used. 0: fixed quorum.
    pub target_error_rate: f64,
    /// The fraction of saboteurs that credibility assumes at most (Sarmenta's `f`).
    pub assumed_saboteur_fraction: f64,
}

impl Default for JobPolicy {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 10 * 60 * 1_000,
            unit_budget_ms: 60 * 1_000,
            min_quorum: 1,
            initial_replicas: 1,
            max_error_results: 3,
            max_total_results: 10,
            max_success_results: 6,
            use_verify: true,
            reexecution_rate: 0.0,
            spot_check_rate: 0.0,
            target_error_rate: 0.0,
            assumed_saboteur_fraction: 0.2,
        }
    }
}

/// A manifest with its signature, as served to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedManifest {
    /// The manifest's JSON text, exactly as signed.
    #[cfg_attr(feature = "openapi", schema(content_media_type = "application/json"))]
    pub manifest: String,
    pub key_id: KeyId,
    pub signature: Signature,
}

/// One published portal key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalKey {
    pub key_id: KeyId,
    pub public_key: PublicKey,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    /// The key that vouches for this one (its predecessor), absent for the first key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<Endorsement>,
}

impl PortalKey {
    /// Publishes `key` as valid from `not_before_ms` to `not_after_ms`, endorsed (signed) by
    /// `endorser`, the key it succeeds, if any.
    pub fn new(
        key: &SecretKey,
        not_before_ms: u64,
        not_after_ms: u64,
        endorser: Option<&SecretKey>,
    ) -> Self {
        let public_key = key.public_key();
        let endorsement = endorser.map(|endorser| Endorsement {
            key_id: KeyId::of(&endorser.public_key()),
            signature: endorser.sign(
                Purpose::KeyEndorsement,
                &endorsement_message(&public_key, not_before_ms, not_after_ms),
            ),
        });
        Self {
            key_id: KeyId::of(&public_key),
            public_key,
            not_before_ms,
            not_after_ms,
            endorsement,
        }
    }
}

/// A signature by an older key over a newer key and its validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endorsement {
    pub key_id: KeyId,
    pub signature: Signature,
}

/// A withdrawn key: manifests under it are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedKey {
    pub key_id: KeyId,
    pub revoked_ms: u64,
    pub reason: String,
}

/// The document at `/.well-known/cyclepool-keys.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalKeys {
    pub keys: Vec<PortalKey>,
    pub revoked: Vec<RevokedKey>,
}

/// Why a manifest was refused. The client shows this and reports it to the portal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest signed by unknown key {0}")]
    UnknownKey(KeyId),
    #[error("manifest signed by revoked key {key}: {reason}")]
    RevokedKey { key: KeyId, reason: String },
    #[error("the manifest's signature is invalid")]
    BadSignature,
    #[error("the manifest is not valid JSON of format {MANIFEST_FORMAT}: {0}")]
    Malformed(String),
    #[error("the manifest expired at {expires_ms} ms since the epoch")]
    Expired { expires_ms: u64 },
    #[error("the manifest was issued at {issued_ms}, outside key {key}'s validity")]
    OutsideKeyValidity { key: KeyId, issued_ms: u64 },
    #[error("the manifest claims to be issued in the future ({issued_ms})")]
    IssuedInFuture { issued_ms: u64 },
    #[error("the manifest is for job {found}, not job {expected}")]
    WrongJob { expected: JobId, found: JobId },
    #[error("the distributor's signature over the job's declaration is invalid")]
    BadDeclaration,
}

/// Why an offered key set was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("key {0} is neither pinned nor endorsed by a pinned key")]
    Unendorsed(KeyId),
    #[error("key {0} is published under the wrong id")]
    WrongKeyId(KeyId),
    #[error("key {0} has a different public key than the one pinned under that id")]
    Substituted(KeyId),
}

impl SignedManifest {
    /// Signs `manifest` with `key`.
    pub fn sign(manifest: &Manifest, key: &SecretKey) -> Self {
        // Serializing a plain struct to JSON cannot fail.
        let text = serde_json::to_string(manifest).unwrap_or_default();
        Self {
            signature: key.sign(Purpose::Manifest, text.as_bytes()),
            key_id: KeyId::of(&key.public_key()),
            manifest: text,
        }
    }

    /// Verifies the signature with a trusted key, refuses revoked keys and expired manifests,
    /// and returns the manifest.
    pub fn open(&self, trusted: &PortalKeys, now_ms: u64) -> Result<Manifest, ManifestError> {
        if let Some(revoked) = trusted.revoked.iter().find(|r| r.key_id == self.key_id) {
            return Err(ManifestError::RevokedKey {
                key: self.key_id,
                reason: revoked.reason.clone(),
            });
        }
        let key = trusted
            .keys
            .iter()
            .find(|k| k.key_id == self.key_id)
            .ok_or(ManifestError::UnknownKey(self.key_id))?;
        signing::verify(
            &key.public_key,
            Purpose::Manifest,
            self.manifest.as_bytes(),
            &self.signature,
        )
        .map_err(|_| ManifestError::BadSignature)?;
        let manifest: Manifest = crate::json::from_str(&self.manifest)
            .map_err(|err| ManifestError::Malformed(err.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ManifestError::Malformed(format!(
                "format {}",
                manifest.format
            )));
        }
        if manifest.issued_ms < key.not_before_ms || manifest.issued_ms > key.not_after_ms {
            return Err(ManifestError::OutsideKeyValidity {
                key: key.key_id,
                issued_ms: manifest.issued_ms,
            });
        }
        if manifest.issued_ms > now_ms.saturating_add(CLOCK_SKEW_MS) {
            return Err(ManifestError::IssuedInFuture {
                issued_ms: manifest.issued_ms,
            });
        }
        if manifest.expires_ms <= now_ms {
            return Err(ManifestError::Expired {
                expires_ms: manifest.expires_ms,
            });
        }
        if let Some(declaration) = &manifest.declaration {
            let inputs = manifest
                .inputs_sha256
                .ok_or(ManifestError::BadDeclaration)?;
            let message = manifest.declaration_message(&inputs);
            crate::distributor::verify_declaration(declaration, &message)
                .map_err(|_| ManifestError::BadDeclaration)?;
        }
        Ok(manifest)
    }
}

/// The bytes an endorsement signs: the new key and its validity.
pub fn endorsement_message(key: &PublicKey, not_before_ms: u64, not_after_ms: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(48);
    message.extend_from_slice(key.as_bytes());
    message.extend_from_slice(&not_before_ms.to_le_bytes());
    message.extend_from_slice(&not_after_ms.to_le_bytes());
    message
}

impl PortalKeys {
    /// Decides which keys of `offered` to trust, given the keys pinned before (`pinned`,
    /// empty on first use). Returns the new pinned set: the pinned keys, plus every offered
    /// key endorsed (directly or through a chain) by one of them, with `offered`'s revocation
    /// list merged in (revocations are never forgotten). On first use everything offered is
    /// trusted. Fails if an offered key substitutes a pinned one.
    pub fn pin(pinned: &PortalKeys, offered: &PortalKeys) -> Result<PortalKeys, PinError> {
        for key in &offered.keys {
            if KeyId::of(&key.public_key) != key.key_id {
                return Err(PinError::WrongKeyId(key.key_id));
            }
        }
        let mut revoked = pinned.revoked.clone();
        for entry in &offered.revoked {
            if !revoked.iter().any(|r| r.key_id == entry.key_id) {
                revoked.push(entry.clone());
            }
        }
        if pinned.keys.is_empty() {
            return Ok(PortalKeys {
                keys: offered.keys.clone(),
                revoked,
            });
        }
        let mut trusted = pinned.keys.clone();
        for key in &offered.keys {
            if let Some(known) = trusted.iter().find(|k| k.key_id == key.key_id) {
                if known.public_key != key.public_key {
                    return Err(PinError::Substituted(key.key_id));
                }
            }
        }
        // Accept endorsed keys until nothing changes: a chain old → new → newer works in
        // any order of publication.
        loop {
            let before = trusted.len();
            for key in &offered.keys {
                if trusted.iter().any(|k| k.key_id == key.key_id) {
                    continue;
                }
                let Some(endorsement) = &key.endorsement else {
                    continue;
                };
                let Some(endorser) = trusted.iter().find(|k| k.key_id == endorsement.key_id) else {
                    continue;
                };
                let message =
                    endorsement_message(&key.public_key, key.not_before_ms, key.not_after_ms);
                if signing::verify(
                    &endorser.public_key,
                    Purpose::KeyEndorsement,
                    &message,
                    &endorsement.signature,
                )
                .is_ok()
                {
                    trusted.push(key.clone());
                }
            }
            if trusted.len() == before {
                break;
            }
        }
        if let Some(stranger) = offered
            .keys
            .iter()
            .find(|key| !trusted.iter().any(|k| k.key_id == key.key_id))
        {
            return Err(PinError::Unendorsed(stranger.key_id));
        }
        Ok(PortalKeys {
            keys: trusted,
            revoked,
        })
    }
}

// The browser's codec (`crate::json`): what the web client reads and writes of these, in the
// same form as serde (the tests hold the two to each other).

impl FromJson for Manifest {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("manifest")?;
        Ok(Self {
            format: fields.req("format")?,
            job_id: fields.req("job_id")?,
            distributor: fields.req("distributor")?,
            title: fields.req("title")?,
            description: fields.req("description")?,
            module_sha256: fields.req("module_sha256")?,
            module_bytes: fields.req("module_bytes")?,
            policy: fields.req("policy")?,
            issued_ms: fields.req("issued_ms")?,
            expires_ms: fields.req("expires_ms")?,
            inputs_sha256: fields.opt("inputs_sha256")?,
            declaration: fields.opt("declaration")?,
        })
    }
}

impl FromJson for JobPolicy {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("policy")?;
        let default = Self::default();
        Ok(Self {
            lease_ttl_ms: fields.or_else("lease_ttl_ms", || default.lease_ttl_ms)?,
            unit_budget_ms: fields.or_else("unit_budget_ms", || default.unit_budget_ms)?,
            min_quorum: fields.or_else("min_quorum", || default.min_quorum)?,
            initial_replicas: fields.or_else("initial_replicas", || default.initial_replicas)?,
            max_error_results: fields.or_else("max_error_results", || default.max_error_results)?,
            max_total_results: fields.or_else("max_total_results", || default.max_total_results)?,
            max_success_results: fields
                .or_else("max_success_results", || default.max_success_results)?,
            use_verify: fields.or_else("use_verify", || default.use_verify)?,
            reexecution_rate: fields.or_else("reexecution_rate", || default.reexecution_rate)?,
            spot_check_rate: fields.or_else("spot_check_rate", || default.spot_check_rate)?,
            target_error_rate: fields.or_else("target_error_rate", || default.target_error_rate)?,
            assumed_saboteur_fraction: fields.or_else("assumed_saboteur_fraction", || {
                default.assumed_saboteur_fraction
            })?,
        })
    }
}

impl ToJson for JobPolicy {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .field("unit_budget_ms", &self.unit_budget_ms)
            .field("min_quorum", &self.min_quorum)
            .field("initial_replicas", &self.initial_replicas)
            .field("max_error_results", &self.max_error_results)
            .field("max_total_results", &self.max_total_results)
            .field("max_success_results", &self.max_success_results)
            .field("use_verify", &self.use_verify)
            .field("reexecution_rate", &self.reexecution_rate)
            .field("spot_check_rate", &self.spot_check_rate)
            .field("target_error_rate", &self.target_error_rate)
            .field("assumed_saboteur_fraction", &self.assumed_saboteur_fraction)
            .end();
    }
}

impl FromJson for SignedManifest {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("signed manifest")?;
        Ok(Self {
            manifest: fields.req("manifest")?,
            key_id: fields.req("key_id")?,
            signature: fields.req("signature")?,
        })
    }
}

impl ToJson for PortalKey {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .field("not_before_ms", &self.not_before_ms)
            .field("not_after_ms", &self.not_after_ms)
            .some("endorsement", &self.endorsement)
            .end();
    }
}

impl FromJson for PortalKey {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("portal key")?;
        Ok(Self {
            key_id: fields.req("key_id")?,
            public_key: fields.req("public_key")?,
            not_before_ms: fields.req("not_before_ms")?,
            not_after_ms: fields.req("not_after_ms")?,
            endorsement: fields.opt("endorsement")?,
        })
    }
}

impl ToJson for Endorsement {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("key_id", &self.key_id)
            .field("signature", &self.signature)
            .end();
    }
}

impl FromJson for Endorsement {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("endorsement")?;
        Ok(Self {
            key_id: fields.req("key_id")?,
            signature: fields.req("signature")?,
        })
    }
}

impl ToJson for RevokedKey {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("key_id", &self.key_id)
            .field("revoked_ms", &self.revoked_ms)
            .field("reason", &self.reason)
            .end();
    }
}

impl FromJson for RevokedKey {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("revoked key")?;
        Ok(Self {
            key_id: fields.req("key_id")?,
            revoked_ms: fields.req("revoked_ms")?,
            reason: fields.req("reason")?,
        })
    }
}

impl ToJson for PortalKeys {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("keys", &self.keys)
            .field("revoked", &self.revoked)
            .end();
    }
}

impl FromJson for PortalKeys {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("portal keys")?;
        Ok(Self {
            keys: fields.req("keys")?,
            revoked: fields.req("revoked")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal_key(secret: &SecretKey, endorser: Option<&SecretKey>) -> PortalKey {
        PortalKey::new(secret, 0, 1_000_000_000, endorser)
    }

    fn manifest(issued_ms: u64, expires_ms: u64) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            job_id: JobId(7),
            distributor: "portal".into(),
            title: "t".into(),
            description: "d".into(),
            module_sha256: Sha256Digest::of(b"module"),
            module_bytes: 6,
            policy: JobPolicy::default(),
            issued_ms,
            expires_ms,
            inputs_sha256: None,
            declaration: None,
        }
    }

    #[test]
    fn a_distributor_declaration_is_checked_when_present() {
        let secret = SecretKey::from_seed(&[1; 32]);
        let keys = PortalKeys {
            keys: vec![portal_key(&secret, None)],
            revoked: vec![],
        };
        let distributor = SecretKey::from_seed(&[2; 32]);
        let mut declared = manifest(1_000, 10_000);
        let inputs = crate::distributor::inputs_digest([b"x".as_slice()]);
        declared.inputs_sha256 = Some(inputs);
        let message = declared.declaration_message(&inputs);
        declared.declaration = Some(crate::distributor::sign_declaration(&distributor, &message));
        let signed = SignedManifest::sign(&declared, &secret);
        assert_eq!(signed.open(&keys, 2_000), Ok(declared.clone()));
        // The portal (or anyone holding its key) swaps the module: its own signature is
        // valid, the distributor's is not.
        let mut swapped = declared.clone();
        swapped.module_sha256 = Sha256Digest::of(b"other module");
        let signed = SignedManifest::sign(&swapped, &secret);
        assert_eq!(
            signed.open(&keys, 2_000),
            Err(ManifestError::BadDeclaration)
        );
        let mut no_inputs = declared;
        no_inputs.inputs_sha256 = None;
        let signed = SignedManifest::sign(&no_inputs, &secret);
        assert_eq!(
            signed.open(&keys, 2_000),
            Err(ManifestError::BadDeclaration)
        );
    }

    #[test]
    fn a_signed_manifest_opens_with_its_key() {
        let secret = SecretKey::from_seed(&[1; 32]);
        let keys = PortalKeys {
            keys: vec![portal_key(&secret, None)],
            revoked: vec![],
        };
        let signed = SignedManifest::sign(&manifest(100, 5_000), &secret);
        assert_eq!(signed.open(&keys, 200).unwrap(), manifest(100, 5_000));
    }

    #[test]
    fn tampering_expiry_revocation_and_unknown_keys_are_refused() {
        let secret = SecretKey::from_seed(&[1; 32]);
        let key = portal_key(&secret, None);
        let keys = PortalKeys {
            keys: vec![key.clone()],
            revoked: vec![],
        };
        let signed = SignedManifest::sign(&manifest(100, 5_000), &secret);

        let mut tampered = signed.clone();
        tampered.manifest = tampered
            .manifest
            .replace("\"title\":\"t\"", "\"title\":\"T\"");
        assert_eq!(tampered.open(&keys, 200), Err(ManifestError::BadSignature));

        assert_eq!(
            signed.open(&keys, 5_000),
            Err(ManifestError::Expired { expires_ms: 5_000 })
        );
        assert!(matches!(
            SignedManifest::sign(&manifest(CLOCK_SKEW_MS + 1, 99_999_999), &secret).open(&keys, 0),
            Err(ManifestError::IssuedInFuture { .. })
        ));
        assert!(matches!(
            SignedManifest::sign(&manifest(2_000_000_000, 2_000_000_001), &secret)
                .open(&keys, 2_000_000_000),
            Err(ManifestError::OutsideKeyValidity { .. })
        ));

        let revoked = PortalKeys {
            keys: vec![key.clone()],
            revoked: vec![RevokedKey {
                key_id: key.key_id,
                revoked_ms: 150,
                reason: "leaked".into(),
            }],
        };
        assert!(matches!(
            signed.open(&revoked, 200),
            Err(ManifestError::RevokedKey { .. })
        ));

        let stranger = SecretKey::from_seed(&[2; 32]);
        let forged = SignedManifest::sign(&manifest(100, 5_000), &stranger);
        assert!(matches!(
            forged.open(&keys, 200),
            Err(ManifestError::UnknownKey(_))
        ));
        // A stranger's signature under the trusted key's id.
        let mut relabelled = forged;
        relabelled.key_id = key.key_id;
        assert_eq!(
            relabelled.open(&keys, 200),
            Err(ManifestError::BadSignature)
        );
    }

    #[test]
    fn pinning_trusts_first_use_then_only_endorsed_keys() {
        let first = SecretKey::from_seed(&[1; 32]);
        let second = SecretKey::from_seed(&[2; 32]);
        let third = SecretKey::from_seed(&[3; 32]);
        let stranger = SecretKey::from_seed(&[4; 32]);
        let initial = PortalKeys {
            keys: vec![portal_key(&first, None)],
            revoked: vec![],
        };
        let pinned = PortalKeys::pin(&PortalKeys::default(), &initial).unwrap();
        assert_eq!(pinned, initial);

        // A rotation chain first → second → third, published newest first, is accepted.
        let rotated = PortalKeys {
            keys: vec![
                portal_key(&third, Some(&second)),
                portal_key(&second, Some(&first)),
                portal_key(&first, None),
            ],
            revoked: vec![RevokedKey {
                key_id: KeyId::of(&first.public_key()),
                revoked_ms: 9,
                reason: "rotated out".into(),
            }],
        };
        let pinned = PortalKeys::pin(&pinned, &rotated).unwrap();
        assert_eq!(pinned.keys.len(), 3);
        assert_eq!(pinned.revoked.len(), 1);

        // A key nobody trusted vouches for is refused, even next to good ones.
        let mut hostile = rotated.clone();
        hostile.keys.push(portal_key(&stranger, None));
        assert_eq!(
            PortalKeys::pin(&pinned, &hostile),
            Err(PinError::Unendorsed(KeyId::of(&stranger.public_key())))
        );
        // A key endorsed by itself is not endorsed.
        let mut selfie = rotated.clone();
        selfie.keys.push(portal_key(&stranger, Some(&stranger)));
        assert!(PortalKeys::pin(&pinned, &selfie).is_err());
        // Revocations are never forgotten, even if the server stops listing them.
        let forgetful = PortalKeys {
            keys: rotated.keys.clone(),
            revoked: vec![],
        };
        assert_eq!(
            PortalKeys::pin(&pinned, &forgetful).unwrap().revoked.len(),
            1
        );
        // A different public key under a pinned id is refused.
        let mut substituted = rotated;
        substituted.keys[2].public_key = stranger.public_key();
        assert!(PortalKeys::pin(&pinned, &substituted).is_err());
    }

    #[test]
    fn the_codec_reads_manifests_and_keys_as_serde_does() {
        let portal = SecretKey::from_seed(&[1; 32]);
        let next = SecretKey::from_seed(&[2; 32]);
        let keys = PortalKeys {
            keys: vec![
                PortalKey::new(&portal, 0, 1_000, None),
                PortalKey::new(&next, 500, u64::MAX, Some(&portal)),
            ],
            revoked: vec![RevokedKey {
                key_id: KeyId::of(&portal.public_key()),
                revoked_ms: 900,
                reason: "rotated \"early\"".into(),
            }],
        };
        let text = serde_json::to_string(&keys).unwrap();
        assert_eq!(crate::json::to_string(&keys), text);
        assert_eq!(crate::json::from_str::<PortalKeys>(&text).unwrap(), keys);

        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rate = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for round in 0..200 {
            let manifest = Manifest {
                format: MANIFEST_FORMAT,
                job_id: JobId(round),
                distributor: "lab <i>".into(),
                title: format!("job {round} ✓"),
                description: "line one\nline two".into(),
                module_sha256: Sha256Digest::of(b"module"),
                module_bytes: 1234,
                policy: JobPolicy {
                    min_quorum: 2,
                    reexecution_rate: rate(),
                    spot_check_rate: rate(),
                    target_error_rate: rate() / 1e6,
                    assumed_saboteur_fraction: rate(),
                    use_verify: round % 2 == 0,
                    ..JobPolicy::default()
                },
                issued_ms: 1_700_000_000_000,
                expires_ms: 1_800_000_000_000,
                inputs_sha256: (round % 3 != 0).then(|| Sha256Digest::of(b"inputs")),
                declaration: (round % 2 == 0).then(|| crate::distributor::DeclarationSignature {
                    public_key: next.public_key(),
                    signature: next.sign(Purpose::JobDeclaration, b"declaration"),
                }),
            };
            let signed = SignedManifest::sign(&manifest, &portal);
            let text = serde_json::to_string(&signed).unwrap();
            let read: SignedManifest = crate::json::from_str(&text).unwrap();
            assert_eq!(read, signed);
            assert_eq!(
                crate::json::from_str::<Manifest>(&read.manifest).unwrap(),
                manifest
            );
        }
        // A policy's missing fields take their defaults, as with serde.
        let policy: JobPolicy = crate::json::from_str(r#"{"min_quorum":3}"#).unwrap();
        assert_eq!(policy, serde_json::from_str(r#"{"min_quorum":3}"#).unwrap());
        assert!(crate::json::from_str::<JobPolicy>(r#"{"spot_check_rate":null}"#).is_err());
    }
}
