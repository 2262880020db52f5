//! The one JSON error body every failing API response carries.

use serde::{Deserialize, Serialize};

use crate::json::{FromJson, Json, JsonError, Object, ToJson};

/// `{"error": {"code": "...", "message": "..."}}`: what every 4xx and 5xx response carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// Stable, machine-readable error codes. Clients branch on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON, or does not match the request's schema.
    MalformedRequest,
    /// The request needs a JSON body (`Content-Type: application/json`).
    UnsupportedMediaType,
    /// The body is larger than the endpoint accepts.
    PayloadTooLarge,
    /// The request names a protocol version this server does not speak.
    UnsupportedProtocol,
    /// A value is well-formed but out of range (for example `max_units: 0`).
    InvalidValue,
    /// A digest sent with data does not match the data.
    IntegrityMismatch,
    /// No lease with this id was ever issued (or it has been forgotten).
    UnknownLease,
    /// The lease's deadline has passed; its unit goes to someone else.
    LeaseExpired,
    /// The lease was issued to another volunteer.
    LeaseNotYours,
    /// The nonce does not match the one issued with the lease.
    NonceMismatch,
    /// A different result was already accepted for this lease.
    ConflictingResult,
    /// A signature does not verify: a result's with the volunteer's key, a lease proof, a
    /// group join, or a job declaration (also when its key is not the caller's, or revoked).
    BadSignature,
    /// The job's `verify` (or a known answer) says the output is wrong; the unit goes to
    /// someone else.
    InvalidResult,
    /// This volunteer key returned a wrong answer to a check and may no longer take part.
    VolunteerBlacklisted,
    /// The request needs a valid `Authorization: Bearer` token (or a dashboard session).
    Unauthorized,
    /// The caller is known but may not do this (another distributor's object, a suspended
    /// account, a distributor-only endpoint).
    Forbidden,
    /// A state-changing request made with a session cookie lacks the session's CSRF token.
    CsrfRejected,
    /// The job is cancelled: it hands out no work and takes no results.
    JobNotActive,
    /// No such group, or the invitation is not valid.
    UnknownGroup,
    /// No such registered embedding site, or it was revoked.
    UnknownSite,
    /// The request conflicts with the object's state (for example, resuming a cancelled job).
    Conflict,
    /// Too many requests from this client; retry after the time in `Retry-After`.
    RateLimited,
    /// The distributor has not accepted the portal's current terms (`POST
    /// /api/v1/account/terms`), which publishing needs.
    TermsNotAccepted,
    /// The object was revoked: a job withdrawn by the portal, or a revoked key.
    Revoked,
    /// An uploaded module breaks the job ABI; the message names the rule.
    InvalidModule,
    /// No job with this id.
    UnknownJob,
    /// No module with this digest has been uploaded.
    UnknownModule,
    /// No such route or object.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The client took too long to send its request.
    RequestTimeout,
    /// The server is shedding load or shutting down; retry later.
    Unavailable,
    /// Something failed on the server; details are in its log.
    Internal,
    /// A code this client version does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

/// Every code and its name on the wire (`Unknown` stands for any other name).
const ERROR_CODE_NAMES: &[(ErrorCode, &str)] = &[
    (ErrorCode::MalformedRequest, "malformed_request"),
    (ErrorCode::UnsupportedMediaType, "unsupported_media_type"),
    (ErrorCode::PayloadTooLarge, "payload_too_large"),
    (ErrorCode::UnsupportedProtocol, "unsupported_protocol"),
    (ErrorCode::InvalidValue, "invalid_value"),
    (ErrorCode::IntegrityMismatch, "integrity_mismatch"),
    (ErrorCode::UnknownLease, "unknown_lease"),
    (ErrorCode::LeaseExpired, "lease_expired"),
    (ErrorCode::LeaseNotYours, "lease_not_yours"),
    (ErrorCode::NonceMismatch, "nonce_mismatch"),
    (ErrorCode::ConflictingResult, "conflicting_result"),
    (ErrorCode::BadSignature, "bad_signature"),
    (ErrorCode::InvalidResult, "invalid_result"),
    (ErrorCode::VolunteerBlacklisted, "volunteer_blacklisted"),
    (ErrorCode::Unauthorized, "unauthorized"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::CsrfRejected, "csrf_rejected"),
    (ErrorCode::JobNotActive, "job_not_active"),
    (ErrorCode::UnknownGroup, "unknown_group"),
    (ErrorCode::UnknownSite, "unknown_site"),
    (ErrorCode::Conflict, "conflict"),
    (ErrorCode::RateLimited, "rate_limited"),
    (ErrorCode::TermsNotAccepted, "terms_not_accepted"),
    (ErrorCode::Revoked, "revoked"),
    (ErrorCode::InvalidModule, "invalid_module"),
    (ErrorCode::UnknownJob, "unknown_job"),
    (ErrorCode::UnknownModule, "unknown_module"),
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::MethodNotAllowed, "method_not_allowed"),
    (ErrorCode::RequestTimeout, "request_timeout"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::Internal, "internal"),
];

impl ErrorCode {
    /// The code's name on the wire (`unknown` for [`ErrorCode::Unknown`]).
    pub fn name(self) -> &'static str {
        ERROR_CODE_NAMES
            .iter()
            .find(|(code, _)| *code == self)
            .map_or("unknown", |(_, name)| name)
    }

    /// The code of a name on the wire; a name this version does not know is `Unknown`.
    pub fn from_name(name: &str) -> Self {
        ERROR_CODE_NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map_or(Self::Unknown, |(code, _)| *code)
    }
}

impl ToJson for ErrorCode {
    fn write_json(&self, out: &mut String) {
        self.name().write_json(out);
    }
}

impl FromJson for ErrorCode {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        value.as_str().map(Self::from_name)
    }
}

impl ToJson for ErrorDetail {
    fn write_json(&self, out: &mut String) {
        Object::new(out)
            .field("code", &self.code)
            .field("message", &self.message)
            .end();
    }
}

impl FromJson for ErrorDetail {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        let fields = value.fields("error")?;
        Ok(Self {
            code: fields.req("code")?,
            message: fields.req("message")?,
        })
    }
}

impl ToJson for ErrorBody {
    fn write_json(&self, out: &mut String) {
        Object::new(out).field("error", &self.error).end();
    }
}

impl FromJson for ErrorBody {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        Ok(Self {
            error: value.fields("error body")?.req("error")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_to_the_documented_shape() {
        let body = ErrorBody::new(ErrorCode::LeaseExpired, "lease expired");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"lease_expired","message":"lease expired"}}"#
        );
    }

    #[test]
    fn unknown_codes_from_newer_servers_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"from_the_future","message":"x"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn the_codec_names_every_code_as_serde_does() {
        for (code, name) in ERROR_CODE_NAMES {
            assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{name}\""));
            assert_eq!(ErrorCode::from_name(name), *code);
            // Adding a code without a name breaks this match: add it to the table too.
            match code {
                ErrorCode::MalformedRequest => {}
                ErrorCode::UnsupportedMediaType => {}
                ErrorCode::PayloadTooLarge => {}
                ErrorCode::UnsupportedProtocol => {}
                ErrorCode::InvalidValue => {}
                ErrorCode::IntegrityMismatch => {}
                ErrorCode::UnknownLease => {}
                ErrorCode::LeaseExpired => {}
                ErrorCode::LeaseNotYours => {}
                ErrorCode::NonceMismatch => {}
                ErrorCode::ConflictingResult => {}
                ErrorCode::BadSignature => {}
                ErrorCode::InvalidResult => {}
                ErrorCode::VolunteerBlacklisted => {}
                ErrorCode::Unauthorized => {}
                ErrorCode::Forbidden => {}
                ErrorCode::CsrfRejected => {}
                ErrorCode::JobNotActive => {}
                ErrorCode::UnknownGroup => {}
                ErrorCode::UnknownSite => {}
                ErrorCode::Conflict => {}
                ErrorCode::RateLimited => {}
                ErrorCode::TermsNotAccepted => {}
                ErrorCode::Revoked => {}
                ErrorCode::InvalidModule => {}
                ErrorCode::UnknownJob => {}
                ErrorCode::UnknownModule => {}
                ErrorCode::NotFound => {}
                ErrorCode::MethodNotAllowed => {}
                ErrorCode::RequestTimeout => {}
                ErrorCode::Unavailable => {}
                ErrorCode::Internal => {}
                ErrorCode::Unknown => panic!("`unknown` stands for names not in the table"),
            }
        }
        let body = ErrorBody::new(ErrorCode::LeaseExpired, "lease \"expired\"");
        assert_eq!(
            crate::json::to_string(&body),
            serde_json::to_string(&body).unwrap()
        );
        let read: ErrorBody =
            crate::json::from_str(r#"{"error":{"code":"from_the_future","message":"x"}}"#).unwrap();
        assert_eq!(read.error.code, ErrorCode::Unknown);
        assert_eq!(read.error.message, "x");
        assert_eq!(ERROR_CODE_NAMES.len(), 32);
    }
}
