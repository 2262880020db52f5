//! The distributor API's types: accounts, API tokens, dashboard sessions, distributor keys,
//! job listings and progress, restricted groups, embedding sites, and the job declaration a
//! distributor signs.
//!
//! The server, the `cyclepool` CLI and (as JSON) the dashboard speak these; the volunteer
//! protocol lives in [`crate::protocol`].

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, KeyId, PublicKey, Sha256Digest, Signature, VolunteerId};
use crate::json::{FromJson, Json, JsonError, Object, ToJson};
use crate::manifest::JobPolicy;
use crate::signing::{self, Purpose, SecretKey};

/// An account's number, assigned by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct AccountId(pub u64);

/// A restricted group's number, assigned by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A registered embedding site: a web origin whose visitors compute through `embed.js`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SiteId(pub u64);

impl std::fmt::Display for SiteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The header a dashboard sends with every state-changing request made with its session
/// cookie: the session's CSRF token, which a page on another origin cannot read.
pub const CSRF_HEADER: &str = "x-cyclepool-csrf";

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "cyclepool_session";

/// `POST /api/v1/accounts`: register as a distributor. Open to anyone; what the account may
/// publish is the portal's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterAccount {
    /// The person's or organisation's name, shown to volunteers with every job.
    pub name: String,
    /// How the portal reaches the distributor (an e-mail address or similar).
    pub contact: String,
    /// What the organisation is.
    pub organisation: String,
    /// Why it computes: what the jobs are for.
    pub purpose: String,
    /// Accepts the portal's current terms ([`TERMS_VERSION`], at `/terms.html`), which
    /// publishing a job needs; they can also be accepted later.
    #[serde(default)]
    pub accept_terms: bool,
}

/// The version of the distributor terms at `/terms.html`. A distributor must have accepted
/// this version before it publishes a job.
pub const TERMS_VERSION: u32 = 1;

/// `POST /api/v1/account/terms`: accept a version of the terms (it must be the current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptTerms {
    pub version: u32,
}

/// An account as its owner (and the portal's admin) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountInfo {
    pub account_id: AccountId,
    pub name: String,
    pub contact: String,
    pub organisation: String,
    pub purpose: String,
    pub created_ms: u64,
    /// A suspended account cannot sign in, publish or change jobs.
    pub suspended: bool,
    pub keys: Vec<DistributorKeyInfo>,
    /// Whether the portal publishes this account's jobs without review.
    #[serde(default)]
    pub trusted: bool,
    /// The version of the terms the account accepted, if any.
    #[serde(default)]
    pub terms_accepted: Option<u32>,
}

/// The answer to [`RegisterAccount`]: the account and its first API token, shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountCreated {
    pub account: AccountInfo,
    pub token: TokenCreated,
}

/// `POST /api/v1/tokens`: a new API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for ("laptop CLI", "CI"), to recognise it later.
    pub label: String,
}

/// An API token as listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub token_id: u64,
    pub label: String,
    pub created_ms: u64,
    pub revoked: bool,
}

/// A new token: its secret is in this answer and nowhere else (the server keeps its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    pub info: TokenInfo,
    /// Send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// `POST /api/v1/session` (with a token) and `GET /api/v1/session` (with the cookie): who is
/// signed in, and the CSRF token the dashboard must echo in [`CSRF_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub account: AccountInfo,
    pub csrf_token: String,
    pub expires_ms: u64,
}

/// `POST /api/v1/account/keys`: register an ed25519 key that signs job declarations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterKey {
    pub public_key: PublicKey,
    #[serde(default)]
    pub label: String,
}

/// A distributor's signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistributorKeyInfo {
    pub key_id: KeyId,
    pub public_key: PublicKey,
    pub label: String,
    pub created_ms: u64,
    pub revoked: bool,
}

/// A distributor's signature over a job's [`job_declaration_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeclarationSignature {
    pub public_key: PublicKey,
    pub signature: Signature,
}

/// Where a job stands, as its distributor controls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Units are handed out.
    #[default]
    Active,
    /// No new leases; results of leases already out are still accepted.
    Paused,
    /// Stopped for good: no leases, and results still out are refused.
    Cancelled,
}

/// `POST /api/v1/groups`: a restricted group of volunteers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
}

/// A group as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupInfo {
    pub group_id: GroupId,
    pub name: String,
    pub created_ms: u64,
    pub members: Vec<VolunteerId>,
}

/// The answer to [`CreateGroup`]: the group and its invitation secret, shown only here. A
/// volunteer page opened at `/#join=<invite>` offers to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupCreated {
    pub group: GroupInfo,
    pub invite: String,
}

/// `POST /api/v1/groups/{id}/members`: add volunteer keys to a group (an allowlist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    pub volunteers: Vec<VolunteerId>,
}

/// `POST /api/v1/groups/join`: a volunteer joins a group with its invitation, proving it holds
/// its key by signing [`join_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    pub volunteer: VolunteerId,
    pub invite: String,
    pub at_ms: u64,
    pub signature: Signature,
}

/// The answer to [`JoinGroup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupJoined {
    pub group_id: GroupId,
    pub name: String,
    /// The name of the distributor that owns the group.
    pub distributor: String,
}

/// A job as its distributor sees it, with its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub job_id: JobId,
    pub title: String,
    pub description: String,
    pub distributor: String,
    /// The owning account; `None` for the portal's own jobs.
    pub owner: Option<AccountId>,
    pub status: JobStatus,
    pub module_sha256: Sha256Digest,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub group: Option<GroupId>,
    pub priority: u8,
    pub weight: u32,
    pub policy: JobPolicy,
    /// The distributor key that signed the job's declaration, if one did.
    pub signed_by: Option<KeyId>,
    pub progress: JobProgress,
    /// Where the job stands in the portal's review: only approved jobs are served.
    pub review: Review,
    pub category: Category,
    /// The job's latest publication entry in the transparency log.
    pub log_seq: Option<u64>,
}

/// Live progress of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    pub units: u64,
    /// Results received and accepted for validation (replicas included).
    pub results: u64,
    /// Units decided: their result is validated and downloadable.
    pub validated: u64,
    /// Units given up on.
    pub failed: u64,
    /// Leases out now.
    pub leased: u64,
    /// Distinct volunteers that held a lease or returned a result in the last five minutes.
    pub active_volunteers: u64,
    /// Validated units over time, oldest first, one sample every few seconds.
    pub history: Vec<ProgressSample>,
}

/// One point of a job's throughput chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressSample {
    pub at_ms: u64,
    pub validated: u64,
}

/// `GET /api/v1/jobs/{id}/failures`: what went wrong with a job's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobFailures {
    /// Units given up on, in order (at most the first 1,000).
    pub failed_units: Vec<u64>,
    /// Reports volunteers' clients filed about the job, newest first (at most 1,000).
    pub reports: Vec<FailureReport>,
}

/// One report about a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureReport {
    pub unit: Option<u64>,
    pub kind: crate::protocol::ReportKind,
    pub message: String,
    pub volunteer: VolunteerId,
    pub received_ms: u64,
}

/// The digest of a job's inputs, in unit order: the SHA-256 of the concatenated SHA-256 of
/// each input. A distributor signs it, so the portal cannot change what the units compute.
pub fn inputs_digest(inputs: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Sha256Digest {
    use sha2::{Digest as _, Sha256};
    let mut all = Sha256::new();
    for input in inputs {
        all.update(Sha256Digest::of(input.as_ref()).as_bytes());
    }
    Sha256Digest::from_bytes(all.finalize().into())
}

/// What a distributor signs to declare a job: its module, inputs, title, description and
/// policy. Each field is length-prefixed, so no two declarations share their bytes.
pub fn job_declaration_message(
    module_sha256: &Sha256Digest,
    inputs_sha256: &Sha256Digest,
    title: &str,
    description: &str,
    policy: &JobPolicy,
) -> Vec<u8> {
    // Written by this crate's codec on both sides: its fields in declaration order, floats in
    // shortest round-trip form (the same bytes serde_json writes).
    let policy = crate::json::to_string(policy);
    let policy = policy.as_bytes();
    let mut message = Vec::with_capacity(64 + title.len() + description.len() + policy.len());
    message.extend_from_slice(module_sha256.as_bytes());
    message.extend_from_slice(inputs_sha256.as_bytes());
    for field in [title.as_bytes(), description.as_bytes(), policy] {
        message.extend_from_slice(&(field.len() as u64).to_be_bytes());
        message.extend_from_slice(field);
    }
    message
}

/// Signs a job declaration with a distributor's key.
pub fn sign_declaration(key: &SecretKey, message: &[u8]) -> DeclarationSignature {
    DeclarationSignature {
        public_key: key.public_key(),
        signature: key.sign(Purpose::JobDeclaration, message),
    }
}

/// Checks a distributor's signature over a job declaration.
pub fn verify_declaration(
    signature: &DeclarationSignature,
    message: &[u8],
) -> Result<(), signing::SignatureError> {
    signing::verify(
        &signature.public_key,
        Purpose::JobDeclaration,
        message,
        &signature.signature,
    )
}

/// What a volunteer signs to join a group: its key, the invitation's digest and the time, so
/// the signature proves it holds the key now and cannot be used for another group.
pub fn join_message(volunteer: &VolunteerId, invite: &str, at_ms: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(72);
    message.extend_from_slice(volunteer.as_bytes());
    message.extend_from_slice(Sha256Digest::of(invite.as_bytes()).as_bytes());
    message.extend_from_slice(&at_ms.to_be_bytes());
    message
}

/// `POST /api/v1/sites`: register a site whose pages may embed the portal's widget
/// (`embed.js`). Its visitors' validated work is credited to the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterSite {
    /// The site's name, shown to its visitors in the widget (1 to 100 characters).
    pub name: String,
    /// The web origin whose pages embed the widget, exactly as a browser writes it:
    /// `https://example.org`, `http://127.0.0.2:8000` (lower case, no default port, no path).
    /// Only pages of this origin may frame the widget (`frame-ancestors`).
    pub origin: String,
}

/// What a site's visitors computed that was validated, as credited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteCredit {
    /// Results computed through the site's widget and accepted as valid.
    pub results: u64,
    /// The compute time of those results, as the visitors' browsers measured it.
    pub compute_ms: u64,
}

/// A registered site as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteInfo {
    pub site_id: SiteId,
    pub name: String,
    pub origin: String,
    pub created_ms: u64,
    /// A revoked site's widget is no longer served, and leases naming it are refused.
    pub revoked: bool,
    pub credit: SiteCredit,
}

/// A registered site as anyone sees it (`GET /api/v1/sites/{id}`): what the widget shows its
/// visitors, and the credit the site's visitors earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicSite {
    pub site_id: SiteId,
    pub name: String,
    pub origin: String,
    /// The name of the distributor account that registered the site.
    pub registered_by: String,
    /// The site no longer takes part: its account revoked it, or the portal suspended the
    /// account. Its widget is not served and its leases are refused.
    pub revoked: bool,
    pub credit: SiteCredit,
}

// The browser's codec (`crate::json`) for what the web client reads and writes of these.

crate::json_number_id!(AccountId, GroupId, SiteId);

crate::json_names!(Category {
    Mathematics => "mathematics",
    Physics => "physics",
    Astronomy => "astronomy",
    Biology => "biology",
    Medicine => "medicine",
    Climate => "climate",
    Cryptography => "cryptography",
    ComputerScience => "computer_science",
    Art => "art",
    Other => "other",
});

impl ToJson for DeclarationSignature {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("public_key", &self.public_key)
            .field("signature", &self.signature)
            .end();
    }
}

impl FromJson for DeclarationSignature {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("declaration")?;
        fields.only(&["public_key", "signature"])?;
        Ok(Self {
            public_key: fields.req("public_key")?,
            signature: fields.req("signature")?,
        })
    }
}

impl ToJson for JoinGroup {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("volunteer", &self.volunteer)
            .field("invite", &self.invite)
            .field("at_ms", &self.at_ms)
            .field("signature", &self.signature)
            .end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_signature_binds_every_field() {
        let key = SecretKey::from_seed(&[4; 32]);
        let module = Sha256Digest::of(b"module");
        let inputs = inputs_digest([b"a".as_slice(), b"b".as_slice()]);
        let policy = JobPolicy::default();
        let message = job_declaration_message(&module, &inputs, "title", "text", &policy);
        let signature = sign_declaration(&key, &message);
        assert_eq!(verify_declaration(&signature, &message), Ok(()));
        let changed = [
            job_declaration_message(&Sha256Digest::of(b"x"), &inputs, "title", "text", &policy),
            job_declaration_message(
                &module,
                &inputs_digest([b"a".as_slice()]),
                "title",
                "text",
                &policy,
            ),
            job_declaration_message(&module, &inputs, "titl", "etext", &policy),
            job_declaration_message(
                &module,
                &inputs,
                "title",
                "text",
                &JobPolicy {
                    min_quorum: 2,
                    ..JobPolicy::default()
                },
            ),
        ];
        for message in changed {
            assert!(verify_declaration(&signature, &message).is_err());
        }
    }

    /// Found by the `inputs` fuzz target: with serde_json's default float parsing, this rate
    /// decoded one ulp off its encoding, so the portal's declaration bytes differed from the
    /// distributor's and a correctly signed job was refused (and a browser would refuse its
    /// manifest).
    #[test]
    fn a_policy_survives_json_exactly_so_its_declaration_verifies() {
        let key = SecretKey::from_seed(&[4; 32]);
        let module = Sha256Digest::of(b"module");
        let inputs = inputs_digest([b"a".as_slice()]);
        for rate in [
            0.012_537_345_881_063_615,
            0.001_806_892_057_653_679_4,
            0.1 * 3.0,
        ] {
            let policy = JobPolicy {
                reexecution_rate: rate,
                spot_check_rate: rate / 7.0,
                ..JobPolicy::default()
            };
            let message = job_declaration_message(&module, &inputs, "t", "d", &policy);
            let signature = sign_declaration(&key, &message);
            let decoded: JobPolicy =
                serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
            assert_eq!(decoded, policy);
            let decoded_message = job_declaration_message(&module, &inputs, "t", "d", &decoded);
            assert_eq!(verify_declaration(&signature, &decoded_message), Ok(()));
        }
    }

    #[test]
    fn the_inputs_digest_depends_on_order_and_boundaries() {
        let ab = inputs_digest([b"a".as_slice(), b"b".as_slice()]);
        assert_ne!(ab, inputs_digest([b"b".as_slice(), b"a".as_slice()]));
        assert_ne!(ab, inputs_digest([b"ab".as_slice()]));
    }
}

/// Where a job stands in the portal's review. Only an approved job's manifest is served and
/// its units leased; a job of an untrusted distributor waits as `pending` until the portal's
/// admin decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum Review {
    /// Published (jobs made before reviews existed were published at once).
    #[default]
    Approved,
    /// Waiting in the review queue.
    Pending,
    /// Refused before it was ever served.
    Rejected { reason: String },
    /// Served once, then withdrawn: by the admin, by a suspension, or because the key that
    /// declared it was revoked. The withdrawal is in the transparency log.
    Withdrawn { reason: String },
}

/// The field a job serves. Volunteers may opt out of whole categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Mathematics,
    Physics,
    Astronomy,
    Biology,
    Medicine,
    Climate,
    Cryptography,
    ComputerScience,
    Art,
    #[default]
    Other,
}

impl Category {
    /// Every category, in the order pages list them.
    pub const ALL: [Category; 10] = [
        Category::Mathematics,
        Category::Physics,
        Category::Astronomy,
        Category::Biology,
        Category::Medicine,
        Category::Climate,
        Category::Cryptography,
        Category::ComputerScience,
        Category::Art,
        Category::Other,
    ];
}

/// `POST /api/v1/admin/jobs/{id}/reject`, `POST /api/v1/admin/jobs/{id}/withdraw`, `POST
/// /api/v1/admin/keys/{key}/revoke`: the reason, shown to the distributor and (for a
/// withdrawal or revocation) written to the public log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

/// `PATCH /api/v1/admin/accounts/{id}`: the admin's settings of one distributor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// Publish the account's jobs without review.
    #[serde(default)]
    pub trusted: Option<bool>,
    /// Suspend (or reinstate) the account: suspended, it cannot sign in or use its tokens,
    /// and its published jobs are withdrawn.
    #[serde(default)]
    pub suspended: Option<bool>,
    /// Why (required to suspend; written to the log with each withdrawal).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A volunteer's abuse report, as the admin reviews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AbuseReport {
    pub report_id: u64,
    pub job_id: JobId,
    /// The job's title and distributor, when the job exists.
    pub job_title: Option<String>,
    pub distributor: Option<String>,
    pub owner: Option<AccountId>,
    pub volunteer: crate::ids::VolunteerId,
    pub message: String,
    pub received_ms: u64,
    pub resolution: Option<Resolution>,
}

/// What the admin decided about an abuse report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resolution {
    pub action: ReportAction,
    pub note: String,
    pub resolved_ms: u64,
}

/// `POST /api/v1/admin/reports/{id}/resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveReport {
    pub action: ReportAction,
    #[serde(default)]
    pub note: String,
}

/// The admin's answer to an abuse report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportAction {
    /// Nothing wrong found.
    Dismiss,
    /// Withdraw the job (logged).
    WithdrawJob,
    /// Suspend the job's distributor, withdrawing all its jobs (logged).
    SuspendDistributor,
}
