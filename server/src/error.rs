//! `ApiError`, the one error every handler returns, and the JSON extractor that uses it.
//!
//! A 4xx says what was wrong in the shared `ErrorBody` shape; a 5xx is opaque to the caller
//! and logged once, here.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cyclepool_shared::{ErrorBody, ErrorCode};

use crate::store::StoreError;

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// A client error (4xx) with a message that says what was wrong.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The same error, telling the client how many seconds to wait (`Retry-After`).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// 400 with [`ErrorCode::InvalidValue`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidValue, message)
    }

    /// The body and status that a response with no body of its own gets for `status`.
    pub fn for_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            status if status.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::MalformedRequest,
        };
        let message = status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase();
        Self::new(status, code, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code and message, for an answer that carries several errors (`/exchange`).
    pub fn detail(&self) -> cyclepool_shared::ErrorDetail {
        cyclepool_shared::ErrorDetail {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "store failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the server log has details",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::MalformedRequest,
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    /// A raw body that could not be read (over the route's limit, or cut off): axum answers
    /// that in plain text, so it is mapped here to the shared JSON shape.
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::MalformedRequest,
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody::new(self.code, self.message)).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// `axum::Json`, except that a rejection is an [`ApiError`] in the shared JSON shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// Gives every error response that has no body of its own (404 from static files, 405,
/// 408 from the timeout layer, 413 from a body limit) the shared JSON error body.
pub async fn ensure_json_errors(response: Response) -> Response {
    let status = response.status();
    let has_body_type = response.headers().contains_key(header::CONTENT_TYPE);
    if (status.is_client_error() || status.is_server_error()) && !has_body_type {
        let mut replacement = ApiError::for_status(status).into_response();
        for (name, value) in response.headers() {
            if name != header::CONTENT_LENGTH {
                replacement
                    .headers_mut()
                    .entry(name)
                    .or_insert(value.clone());
            }
        }
        return replacement;
    }
    response
}
