//! Fuzzes the decoding of every body of the volunteer protocol and the distributor API
//! (`cyclepool_shared::{protocol, distributor, error}`), the hex identifiers and the signature
//! checks the server makes on what it decoded.
//!
//! Each input is tried as JSON of every type: what decodes must re-encode canonically to the
//! same value. As text it is also parsed as each hex identifier, and as bytes hex-encoded and
//! read back as a range input.

#![no_main]

use cyclepool_fuzz::{round_trip, round_trip_all};
use cyclepool_shared::distributor::{
    AbuseReport, AcceptTerms, AccountCreated, AccountId, AccountInfo, AccountSettings, AddMembers,
    Category, CreateGroup, CreateToken, DeclarationSignature, DistributorKeyInfo, FailureReport,
    GroupCreated, GroupId, GroupInfo, GroupJoined, JobFailures, JobProgress, JobStatus, JobSummary,
    JoinGroup, ProgressSample, PublicSite, Reason, RegisterAccount, RegisterKey, RegisterSite,
    ReportAction, Resolution, ResolveReport, Review, SessionInfo, SiteCredit, SiteId, SiteInfo,
    TokenCreated, TokenInfo, join_message,
};
use cyclepool_shared::protocol::{
    DurabilityStats, Exchange, ExchangeResponse, JobCreated, JobStats, Lease, LeaseProof, LeaseRef,
    LeaseRequest, LeaseResponse, ModuleUploaded, Report, ReportKind, ReportResponse, ResultAnswer,
    ResultSubmission, StatsResponse, SubmitResponse, SubmitStatus,
};
use cyclepool_shared::range::{decode_range, encode_range};
use cyclepool_shared::signing::{self, Purpose, is_usable_key, lease_proof_message};
use cyclepool_shared::{
    ErrorBody, ErrorCode, ErrorDetail, JobId, KeyId, LeaseId, Nonce, PublicKey, Sha256Digest,
    Signature, VolunteerId, hex,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The volunteer protocol (job creation's bodies are in the `inputs` target).
    round_trip_all!(bytes;
        LeaseProof, LeaseResponse, Lease, SubmitResponse, SubmitStatus, StatsResponse,
        JobStats, Report, LeaseRef, ReportKind, ReportResponse, ModuleUploaded, JobCreated,
        DurabilityStats, ExchangeResponse, ResultAnswer);
    if let Some(request) = round_trip::<LeaseRequest>(bytes) {
        check_lease_request(&request);
    }
    if let Some(submission) = round_trip::<ResultSubmission>(bytes) {
        check_result(&submission);
    }
    if let Some(exchange) = round_trip::<Exchange>(bytes) {
        exchange.results.iter().for_each(check_result);
        exchange.lease.iter().for_each(check_lease_request);
    }

    // The distributor API.
    round_trip_all!(bytes;
        RegisterAccount, AcceptTerms, AccountInfo, AccountCreated, CreateToken, TokenInfo,
        TokenCreated, SessionInfo, DistributorKeyInfo, DeclarationSignature, JobStatus,
        CreateGroup, GroupInfo, GroupCreated, AddMembers, GroupJoined, JobSummary, JobProgress,
        ProgressSample, JobFailures, FailureReport, RegisterSite, SiteCredit, SiteInfo,
        PublicSite, Review, Category, Reason, AccountSettings, AbuseReport, Resolution,
        ResolveReport, ReportAction);
    if let Some(key) = round_trip::<RegisterKey>(bytes) {
        let _ = is_usable_key(&key.public_key);
    }
    if let Some(join) = round_trip::<JoinGroup>(bytes) {
        let message = join_message(&join.volunteer, &join.invite, join.at_ms);
        check_signature(
            &PublicKey::from_bytes(*join.volunteer.as_bytes()),
            Purpose::JoinGroup,
            &message,
            &join.signature,
        );
    }

    // Errors, which clients decode from any server, newer ones included.
    round_trip_all!(bytes; ErrorBody, ErrorDetail, ErrorCode);

    // Identifiers, as JSON and as the path segments and headers they also travel in.
    round_trip_all!(bytes;
        JobId, LeaseId, Nonce, VolunteerId, Sha256Digest, PublicKey, Signature, KeyId,
        AccountId, GroupId, SiteId);
    if let Ok(text) = std::str::from_utf8(bytes) {
        check_hex::<LeaseId, 16>(text);
        check_hex::<Nonce, 16>(text);
        check_hex::<VolunteerId, 32>(text);
        check_hex::<Sha256Digest, 32>(text);
        check_hex::<PublicKey, 32>(text);
        check_hex::<Signature, 64>(text);
        check_hex::<KeyId, 8>(text);
    }
    let encoded = hex::encode(bytes);
    assert_eq!(encoded.len(), 2 * bytes.len());
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    if let Ok(array) = <[u8; 32]>::try_from(bytes) {
        assert_eq!(hex::decode_array::<32>(&encoded), Some(array));
    }
    match decode_range(bytes) {
        Some((from, to)) => assert_eq!(encode_range(from, to), bytes),
        None => assert_ne!(bytes.len(), 16),
    }
});

/// The server's checks of a lease request's key proof.
fn check_lease_request(request: &LeaseRequest) {
    if let Some(proof) = request.proof {
        let message = lease_proof_message(&request.volunteer, proof.at_ms);
        check_signature(
            &PublicKey::from_bytes(*request.volunteer.as_bytes()),
            Purpose::LeaseProof,
            &message,
            &proof.signature,
        );
    }
}

/// The server's checks of a result: its digest and its volunteer's signature.
fn check_result(submission: &ResultSubmission) {
    let message = signing::result_message(
        &submission.lease_id,
        &submission.nonce,
        &submission.output_sha256,
    );
    check_signature(
        &PublicKey::from_bytes(*submission.volunteer.as_bytes()),
        Purpose::Result,
        &message,
        &submission.signature,
    );
    let _ = Sha256Digest::of(&submission.output) == submission.output_sha256;
}

/// A signature check on decoded, untrusted values: never panics, and only a usable key verifies.
fn check_signature(key: &PublicKey, purpose: Purpose, message: &[u8], signature: &Signature) {
    if signing::verify(key, purpose, message, signature).is_ok() {
        assert!(
            is_usable_key(key),
            "{key:?} verified a signature but is not usable"
        );
    }
}

/// Parses `text` as an identifier of `N` bytes: it parses exactly when it is `2·N` hex digits,
/// and prints back as the same digits in lower case.
fn check_hex<T, const N: usize>(text: &str)
where
    T: std::str::FromStr + std::fmt::Display,
{
    let parsed = text.parse::<T>().ok();
    let raw = hex::decode_array::<N>(text);
    assert_eq!(parsed.is_some(), raw.is_some());
    assert_eq!(
        raw.is_some(),
        text.len() == 2 * N && text.bytes().all(|b| b.is_ascii_hexdigit())
    );
    if let (Some(id), Some(raw)) = (parsed, raw) {
        assert_eq!(id.to_string(), text.to_ascii_lowercase());
        assert_eq!(hex::encode(&raw), text.to_ascii_lowercase());
    }
}
