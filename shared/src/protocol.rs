//! Version 1 of the volunteer protocol: "give me work" and "here is my result".
//!
//! Both are JSON over HTTP POST; binary payloads travel as standard base64 and every payload
//! carries the SHA-256 of its bytes, so corruption in transit is detected on both sides.
//! `docs/PROTOCOL.md` describes the exchange; keep the two in step.

use serde::{Deserialize, Serialize};

use crate::error::ErrorDetail;
use crate::ids::{JobId, LeaseId, Nonce, Sha256Digest, Signature, VolunteerId};
use crate::json::{self, Base64, FromJson, Json, JsonError, Object, ToJson};
use crate::manifest::{JobPolicy, SignedManifest};

/// The protocol version this crate speaks. Requests name it; the server refuses others.
pub const PROTOCOL_VERSION: u32 = 1;

/// The most units one lease request may ask for (a client's prefetch depth).
pub const MAX_UNITS_PER_REQUEST: u32 = 64;

/// The most computing time one lease request may ask for (`work_ms`): a day.
pub const MAX_WORK_MS: u64 = 24 * 60 * 60 * 1_000;

/// The largest output a result may carry, in bytes (before base64).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// `POST /api/v1/lease`: ask for up to `max_units` units of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub protocol: u32,
    pub volunteer: VolunteerId,
    #[serde(default = "one")]
    pub max_units: u32,
    /// Jobs this volunteer chose not to compute (at most [`MAX_EXCLUDED_JOBS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_jobs: Vec<JobId>,
    /// Proof that the sender holds the volunteer key; without it, restricted jobs are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<LeaseProof>,
    /// Categories of jobs this volunteer chose not to compute (at most every category).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_categories: Vec<crate::distributor::Category>,
    /// The embedding site whose visitor computes (through `embed.js`); its leases' accepted
    /// results are credited to that site too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<crate::distributor::SiteId>,
    /// About how much computing the volunteer wants, in ms (1 to [`MAX_WORK_MS`]): the portal
    /// stops adding units once their time by its estimate of each job's units (from the
    /// results it accepted) reaches it, so that a volunteer whose last units were short does
    /// not get as many long ones. At least one unit; a job not yet estimated counts half of it
    /// a unit. Without it, only `max_units` counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_ms: Option<u64>,
}

/// A volunteer's signature over [`crate::signing::lease_proof_message`] with a recent time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseProof {
    pub at_ms: u64,
    pub signature: Signature,
}

/// The most jobs one lease request may exclude.
pub const MAX_EXCLUDED_JOBS: usize = 256;

fn one() -> u32 {
    1
}

/// The answer to a [`LeaseRequest`]: zero or more leases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    pub protocol: u32,
    pub leases: Vec<Lease>,
    /// Set when `leases` is empty: wait this long before asking again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// One unit of work, lent to one volunteer until `deadline_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    pub lease_id: LeaseId,
    pub nonce: Nonce,
    pub job_id: JobId,
    /// The unit's index within its job.
    pub unit: u64,
    /// The job's module. The client runs it only after checking the job's signed manifest
    /// names the same digest and the module's bytes hash to it.
    pub module_sha256: Sha256Digest,
    #[serde(with = "base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub input: Vec<u8>,
    pub input_sha256: Sha256Digest,
    /// Milliseconds since the Unix epoch, by the server's clock.
    pub deadline_ms: u64,
}

/// `POST /api/v1/results`: the output computed for one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResultSubmission {
    pub protocol: u32,
    pub volunteer: VolunteerId,
    pub lease_id: LeaseId,
    pub nonce: Nonce,
    #[serde(with = "base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub output: Vec<u8>,
    pub output_sha256: Sha256Digest,
    /// The volunteer's ed25519 signature (its `volunteer` key) over
    /// [`crate::signing::result_message`]`(lease_id, nonce, output_sha256)`.
    pub signature: Signature,
    /// How long the computation took in the client, for statistics only.
    #[serde(default)]
    pub compute_ms: u64,
}

/// The answer to a [`ResultSubmission`], sent only once the result is durable on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitResponse {
    pub protocol: u32,
    pub status: SubmitStatus,
}

/// Whether this submission stored the result or found it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SubmitStatus {
    Accepted,
    /// The same result was already accepted for this lease (a retried submission).
    Duplicate,
}

/// The most results one [`Exchange`] may carry.
pub const MAX_RESULTS_PER_EXCHANGE: usize = 64;

/// The largest [`Exchange`] body: many small results and a lease request. A large output goes
/// to `POST /api/v1/results` on its own.
pub const MAX_EXCHANGE_BODY_BYTES: usize = 2 * 1024 * 1024;

/// `POST /api/v1/exchange`: hand in finished results and ask for more work in one round
/// trip, as a volunteer with a queue of small units does. Each result is judged exactly as
/// `POST /api/v1/results` would judge it, and the answer comes once the accepted ones are
/// durable; then, if `lease` is present, it is answered as `POST /api/v1/lease` would answer
/// it (its `volunteer` must be the results' sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub protocol: u32,
    /// At most [`MAX_RESULTS_PER_EXCHANGE`]; large outputs are better sent one by one.
    #[serde(default)]
    pub results: Vec<ResultSubmission>,
    #[serde(default)]
    pub lease: Option<LeaseRequest>,
}

/// The answer to an [`Exchange`]: one answer per result, in order, and the lease's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeResponse {
    pub protocol: u32,
    pub results: Vec<ResultAnswer>,
    /// The leases given, when the exchange asked for some and got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseResponse>,
    /// Why the lease request was refused (it would have been a 4xx on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_error: Option<ErrorDetail>,
}

/// What became of one result of an [`Exchange`]: `status` (durable), or `error` (what
/// `POST /api/v1/results` would have answered; `rate_limited` is worth retrying later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SubmitStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `GET /api/v1/stats`: public progress of every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsResponse {
    pub jobs: Vec<JobStats>,
    pub durability: DurabilityStats,
}

/// Progress of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStats {
    pub job_id: JobId,
    pub title: String,
    pub module_sha256: Sha256Digest,
    pub units: u64,
    /// Units decided (a quorum agreed).
    pub done: u64,
    /// Leases out now.
    pub leased: u64,
    /// Units given up on (too many errors, or no quorum within the results allowed).
    #[serde(default)]
    pub failed: u64,
    /// Who distributes the job.
    #[serde(default)]
    pub distributor: String,
    #[serde(default)]
    pub category: crate::distributor::Category,
    /// The job's publication entry in the public transparency log (`GET /api/v1/log`).
    #[serde(default)]
    pub log_seq: Option<u64>,
}

/// `POST /api/v1/reports`: something a client could not do, and why. With a lease, the unit
/// is released at once (and handed to someone else) instead of waiting for its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub protocol: u32,
    pub volunteer: VolunteerId,
    pub job_id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseRef>,
    pub kind: ReportKind,
    /// What the client saw, for people reviewing reports. At most 1,000 characters.
    pub message: String,
}

/// Names a lease and proves it was issued to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub lease_id: LeaseId,
    pub nonce: Nonce,
}

/// What went wrong in the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// The unit ran past the job's time budget and the watchdog stopped it.
    UnitTimeout,
    /// The module trapped (or ran out of memory) on this unit.
    UnitTrap,
    /// The module said the input is invalid (non-zero status).
    UnitJobError,
    /// The unit's input did not match its digest.
    InputCorrupt,
    /// The manifest was refused: bad signature, unknown, untrusted or revoked key, expired.
    ManifestRefused,
    /// The module's bytes did not hash to the manifest's digest, or it would not compile.
    ModuleRefused,
    /// The volunteer reports the job as abusive or unethical, for the portal's review.
    Abuse,
}

/// The answer to a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportResponse {
    pub protocol: u32,
    /// True if the report named a lease of the sender that was still open, now released.
    pub released: bool,
}

/// `PUT /api/v1/modules` answers with what the portal learned from the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleUploaded {
    pub module_sha256: Sha256Digest,
    pub bytes: u64,
    pub has_verify: bool,
    pub memory_max_pages: u64,
}

/// `POST /api/v1/jobs`: a new job from an uploaded module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub title: String,
    pub description: String,
    pub module_sha256: Sha256Digest,
    pub inputs: Inputs,
    #[serde(default)]
    pub policy: JobPolicy,
    /// How long the job's manifest stays valid; the portal's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// Only members of this group (the owner's) may compute the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::distributor::GroupId>,
    /// Jobs of a higher priority are served first; 0 (the default) to 9.
    #[serde(default)]
    pub priority: u8,
    /// Among jobs of one priority, volunteers are shared in proportion to weight (1 to 1000;
    /// default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// The distributor's signature over the job's declaration, by a key registered to the
    /// account; the manifest then carries it for volunteers to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::distributor::DeclarationSignature>,
    /// What field the job serves, so volunteers can choose by subject.
    #[serde(default)]
    pub category: crate::distributor::Category,
}

/// A job's unit inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Inputs {
    /// One unit per listed input (base64 each).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, format = Byte))]
    List(#[serde(with = "base64_list")] Vec<Vec<u8>>),
    /// Units covering `[start, end)` in steps of `step`; each unit's input is its own
    /// `[from, to)` as two little-endian u64s (16 bytes).
    Range { start: u64, end: u64, step: u64 },
}

/// The answer to [`CreateJob`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobCreated {
    pub job_id: JobId,
    pub units: u64,
    pub manifest: SignedManifest,
    /// `approved` when published at once (the admin's jobs, a trusted distributor's);
    /// otherwise `pending` until the portal's admin reviews it.
    #[serde(default)]
    pub review: crate::distributor::Review,
}

/// How the store's group commit has batched durable writes since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurabilityStats {
    /// Submissions that waited for a flush.
    pub durable_writes: u64,
    /// Flushes to disk that served them.
    pub flushes: u64,
}

// The browser's codec (`crate::json`): what the web client writes and reads, in the same
// form as serde above (the tests below hold the two to each other).

impl ToJson for LeaseRequest {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("protocol", &self.protocol)
            .field("volunteer", &self.volunteer)
            .field("max_units", &self.max_units)
            .nonempty("exclude_jobs", &self.exclude_jobs)
            .some("proof", &self.proof)
            .nonempty("exclude_categories", &self.exclude_categories)
            .some("site", &self.site)
            .some("work_ms", &self.work_ms)
            .end();
    }
}

impl ToJson for LeaseProof {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("at_ms", &self.at_ms)
            .field("signature", &self.signature)
            .end();
    }
}

impl FromJson for LeaseResponse {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("lease response")?;
        Ok(Self {
            protocol: fields.req("protocol")?,
            leases: fields.req("leases")?,
            retry_after_ms: fields.opt("retry_after_ms")?,
        })
    }
}

impl FromJson for Lease {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("lease")?;
        Ok(Self {
            lease_id: fields.req("lease_id")?,
            nonce: fields.req("nonce")?,
            job_id: fields.req("job_id")?,
            unit: fields.req("unit")?,
            module_sha256: fields.req("module_sha256")?,
            input: fields.req_with("input", json::base64)?,
            input_sha256: fields.req("input_sha256")?,
            deadline_ms: fields.req("deadline_ms")?,
        })
    }
}

impl ToJson for Lease {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("lease_id", &self.lease_id)
            .field("nonce", &self.nonce)
            .field("job_id", &self.job_id)
            .field("unit", &self.unit)
            .field("module_sha256", &self.module_sha256)
            .field("input", &Base64(&self.input))
            .field("input_sha256", &self.input_sha256)
            .field("deadline_ms", &self.deadline_ms)
            .end();
    }
}

impl FromJson for ResultSubmission {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("result")?;
        fields.only(&[
            "protocol",
            "volunteer",
            "lease_id",
            "nonce",
            "output",
            "output_sha256",
            "signature",
            "compute_ms",
        ])?;
        Ok(Self {
            protocol: fields.req("protocol")?,
            volunteer: fields.req("volunteer")?,
            lease_id: fields.req("lease_id")?,
            nonce: fields.req("nonce")?,
            output: fields.req_with("output", json::base64)?,
            output_sha256: fields.req("output_sha256")?,
            signature: fields.req("signature")?,
            compute_ms: fields.or_default("compute_ms")?,
        })
    }
}

impl ToJson for ResultSubmission {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("protocol", &self.protocol)
            .field("volunteer", &self.volunteer)
            .field("lease_id", &self.lease_id)
            .field("nonce", &self.nonce)
            .field("output", &Base64(&self.output))
            .field("output_sha256", &self.output_sha256)
            .field("signature", &self.signature)
            .field("compute_ms", &self.compute_ms)
            .end();
    }
}

crate::json_names!(SubmitStatus { Accepted => "accepted", Duplicate => "duplicate" });

impl ToJson for Exchange {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("protocol", &self.protocol)
            .field("results", &self.results)
            .field("lease", &self.lease)
            .end();
    }
}

impl ToJson for Report {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("protocol", &self.protocol)
            .field("volunteer", &self.volunteer)
            .field("job_id", &self.job_id)
            .some("lease", &self.lease)
            .field("kind", &self.kind)
            .field("message", &self.message)
            .end();
    }
}

impl ToJson for LeaseRef {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("lease_id", &self.lease_id)
            .field("nonce", &self.nonce)
            .end();
    }
}

crate::json_names!(ReportKind {
    UnitTimeout => "unit_timeout",
    UnitTrap => "unit_trap",
    UnitJobError => "unit_job_error",
    InputCorrupt => "input_corrupt",
    ManifestRefused => "manifest_refused",
    ModuleRefused => "module_refused",
    Abuse => "abuse",
});

impl FromJson for ReportResponse {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("report response")?;
        Ok(Self {
            protocol: fields.req("protocol")?,
            released: fields.req("released")?,
        })
    }
}

/// Serde adapter: `Vec<u8>` as a standard base64 string.
pub mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|err| serde::de::Error::custom(format_args!("invalid base64: {err}")))
    }
}

/// Serde adapter: `Vec<Vec<u8>>` as a list of standard base64 strings.
pub mod base64_list {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(items: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&STANDARD.encode(item))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                STANDARD.decode(text.as_bytes()).map_err(|err| {
                    serde::de::Error::custom(format_args!("input {index}: invalid base64: {err}"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_round_trips_with_base64_output() {
        let submission = ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer: VolunteerId::from_bytes([1; 32]),
            lease_id: LeaseId::from_bytes([2; 16]),
            nonce: Nonce::from_bytes([3; 16]),
            output: vec![0, 1, 2, 255],
            output_sha256: Sha256Digest::of(&[0, 1, 2, 255]),
            signature: Signature::from_bytes([4; 64]),
            compute_ms: 12,
        };
        let json = serde_json::to_string(&submission).unwrap();
        assert!(json.contains(r#""output":"AAEC/w==""#), "{json}");
        assert_eq!(
            serde_json::from_str::<ResultSubmission>(&json).unwrap(),
            submission
        );
    }

    #[test]
    fn lease_request_defaults_to_one_unit_and_rejects_unknown_fields() {
        let request: LeaseRequest = serde_json::from_str(
            r#"{"protocol":1,"volunteer":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}"#,
        )
        .unwrap();
        assert_eq!(request.max_units, 1);
        let err = serde_json::from_str::<LeaseRequest>(
            r#"{"protocol":1,"volunteer":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff","admin":true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `admin`"), "{err}");
    }

    #[test]
    fn bad_base64_is_named() {
        let err = serde_json::from_str::<ResultSubmission>(
            r#"{"protocol":1,"volunteer":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                "lease_id":"00112233445566778899aabbccddeeff",
                "nonce":"00112233445566778899aabbccddeeff",
                "output":"***","output_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }

    #[test]
    fn the_codec_writes_and_reads_the_protocol_as_serde_does() {
        let volunteer = VolunteerId::from_bytes([1; 32]);
        let submission = ResultSubmission {
            protocol: PROTOCOL_VERSION,
            volunteer,
            lease_id: LeaseId::from_bytes([2; 16]),
            nonce: Nonce::from_bytes([3; 16]),
            output: vec![0, 1, 2, 255, 7],
            output_sha256: Sha256Digest::of(&[0, 1, 2, 255, 7]),
            signature: Signature::from_bytes([4; 64]),
            compute_ms: 12,
        };
        let minimal = LeaseRequest {
            protocol: 1,
            volunteer,
            max_units: 4,
            exclude_jobs: Vec::new(),
            proof: None,
            exclude_categories: Vec::new(),
            site: None,
            work_ms: None,
        };
        let full = LeaseRequest {
            exclude_jobs: vec![JobId(3), JobId(u64::MAX)],
            proof: Some(LeaseProof {
                at_ms: 1_700_000_000_000,
                signature: Signature::from_bytes([9; 64]),
            }),
            exclude_categories: vec![
                crate::distributor::Category::ComputerScience,
                crate::distributor::Category::Art,
            ],
            site: Some(crate::distributor::SiteId(6)),
            work_ms: Some(30_000),
            ..minimal.clone()
        };
        let exchanges = [
            Exchange {
                protocol: 1,
                results: vec![submission.clone(), submission.clone()],
                lease: Some(full),
            },
            Exchange {
                protocol: 1,
                results: Vec::new(),
                lease: Some(minimal),
            },
            Exchange {
                protocol: 1,
                results: vec![submission],
                lease: None,
            },
        ];
        for exchange in &exchanges {
            assert_eq!(
                json::to_string(exchange),
                serde_json::to_string(exchange).unwrap()
            );
        }
        for kind in [
            ReportKind::UnitTimeout,
            ReportKind::Abuse,
            ReportKind::InputCorrupt,
        ] {
            for lease in [
                None,
                Some(LeaseRef {
                    lease_id: LeaseId::from_bytes([5; 16]),
                    nonce: Nonce::from_bytes([6; 16]),
                }),
            ] {
                let report = Report {
                    protocol: 1,
                    volunteer,
                    job_id: JobId(8),
                    lease,
                    kind,
                    message: "trap: \"unreachable\"\n".into(),
                };
                assert_eq!(
                    json::to_string(&report),
                    serde_json::to_string(&report).unwrap()
                );
            }
        }

        let lease = Lease {
            lease_id: LeaseId::from_bytes([2; 16]),
            nonce: Nonce::from_bytes([3; 16]),
            job_id: JobId(1),
            unit: 99,
            module_sha256: Sha256Digest::of(b"module"),
            input: b"input bytes".to_vec(),
            input_sha256: Sha256Digest::of(b"input bytes"),
            deadline_ms: 1_700_000_600_000,
        };
        let answers = [
            LeaseResponse {
                protocol: 1,
                leases: vec![lease.clone(), lease],
                retry_after_ms: None,
            },
            LeaseResponse {
                protocol: 1,
                leases: Vec::new(),
                retry_after_ms: Some(5_000),
            },
        ];
        for answer in &answers {
            let text = serde_json::to_string(answer).unwrap();
            assert_eq!(&json::from_str::<LeaseResponse>(&text).unwrap(), answer);
            for lease in &answer.leases {
                assert_eq!(
                    json::to_string(lease),
                    serde_json::to_string(lease).unwrap()
                );
            }
        }
        for exchange in &exchanges {
            for result in &exchange.results {
                let text = serde_json::to_string(result).unwrap();
                assert_eq!(&json::from_str::<ResultSubmission>(&text).unwrap(), result);
            }
        }
        let released = ReportResponse {
            protocol: 1,
            released: true,
        };
        let text = serde_json::to_string(&released).unwrap();
        assert_eq!(json::from_str::<ReportResponse>(&text).unwrap(), released);

        // A newer portal's extra fields are ignored, as serde ignores them; broken values
        // are named.
        let text = r#"{"protocol":1,"leases":[],"retry_after_ms":10,"new":true}"#;
        assert!(json::from_str::<LeaseResponse>(text).is_ok());
        let text = serde_json::to_string(&answers[0])
            .unwrap()
            .replacen("aW5w", "*inp", 1);
        let err = json::from_str::<LeaseResponse>(&text).unwrap_err();
        assert!(err.0.contains("lease.input: invalid base64"), "{err}");
        let err = json::from_str::<LeaseResponse>(r#"{"protocol":1,"leases":{}}"#).unwrap_err();
        assert!(err.0.contains("expected an array"), "{err}");
    }
}
