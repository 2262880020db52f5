//! The HTTP side: one blocking client for one portal, the API token in a header (never in a
//! URL), and the portal's JSON errors turned into messages that name their code.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an ordinary request may take; downloads have no limit (they may be large).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A request to the portal failed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The portal refused the request with its JSON error body.
    #[error("{code}: {message} (HTTP {status} from {method} {url})")]
    Api {
        status: StatusCode,
        /// The code exactly as the server sent it (a newer server may send codes that
        /// `cyclepool_shared::ErrorCode` does not know yet).
        code: String,
        message: String,
        method: Method,
        url: String,
    },
    #[error("{method} {url} failed: {detail}")]
    Network {
        method: Method,
        url: String,
        detail: String,
    },
    #[error("{url} redirects to {location}; use that address as --portal")]
    Redirect { url: String, location: String },
    #[error("{method} {url} answered HTTP {status} without a Cyclepool error body: {snippet:?}")]
    Unexpected {
        status: StatusCode,
        method: Method,
        url: String,
        snippet: String,
    },
    #[error("the answer of {method} {url} is not what the CLI expects: {detail}")]
    BadAnswer {
        method: Method,
        url: String,
        detail: String,
    },
}

impl PortalError {
    /// The portal's error code (`forbidden`, `terms_not_accepted`, …), when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PortalError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the portal answered with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            PortalError::Api { status, .. } | PortalError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// This error followed by advice on what to do about it, on the same line, so that the
    /// message still starts with the portal's code.
    pub fn with_hint(self, hint: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Hinted {
            error: self,
            hint: hint.into(),
        })
    }
}

/// A [`PortalError`] with advice. The error is not its `source`, so that `{:#}` does not
/// print it twice.
#[derive(Debug, thiserror::Error)]
#[error("{error}; {hint}")]
struct Hinted {
    error: PortalError,
    hint: String,
}

/// The error body of the API, read with the code as text (see [`PortalError::Api`]).
#[derive(serde::Deserialize)]
struct RawErrorBody {
    error: RawErrorDetail,
}

#[derive(serde::Deserialize)]
struct RawErrorDetail {
    code: String,
    message: String,
}

/// A successful JSON answer, kept as text so that `--json` prints exactly what the server sent.
#[derive(Debug)]
pub struct Answer {
    pub body: String,
    method: Method,
    url: String,
}

impl Answer {
    /// The answer as a shared API type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PortalError> {
        serde_json::from_str(&self.body).map_err(|err| PortalError::BadAnswer {
            method: self.method.clone(),
            url: self.url.clone(),
            detail: err.to_string(),
        })
    }

    /// The answer as generic JSON, for `--json`.
    pub fn value(&self) -> Result<serde_json::Value, PortalError> {
        self.parse()
    }
}

/// The portal's base URL, normalised: `http` or `https`, no query, no trailing slash.
pub fn normalise_portal_url(text: &str) -> anyhow::Result<String> {
    let url = Url::parse(text.trim())
        .map_err(|err| anyhow::anyhow!("--portal {text:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--portal must be an http or https URL, got {text:?}");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        anyhow::bail!("--portal must not carry a query, fragment or user name: {text:?}");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A client of one portal's `/api/v1`.
#[derive(Debug)]
pub struct Portal {
    base: String,
    client: Client,
    /// `Bearer <token>`, marked sensitive so that it never appears in debug output.
    authorization: Option<HeaderValue>,
}

impl Portal {
    /// A client for `base` (already normalised), sending `token` with every request if given.
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let client = Client::builder()
            .user_agent(concat!("cyclepool-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(None)
            // A redirect could carry the request (and its token) somewhere unexpected; the
            // portal's address should be given as it is.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| anyhow::anyhow!("building the http client: {err}"))?;
        let authorization = match token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        anyhow::anyhow!("the API token contains characters a header cannot carry")
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            base: base.to_owned(),
            client,
            authorization,
        })
    }

    /// The absolute URL of an API path such as `/jobs`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// `GET` a JSON answer.
    pub fn get(&self, path: &str) -> Result<Answer, PortalError> {
        self.answer(Method::GET, self.url(path), |request| request)
    }

    /// `GET` a JSON document outside the API, by its path from the portal's root (such as
    /// `/.well-known/cyclepool-keys.json`).
    pub fn get_document(&self, path: &str) -> Result<Answer, PortalError> {
        self.answer(Method::GET, format!("{}{path}", self.base), |request| {
            request
        })
    }

    /// Sends `body` as JSON.
    pub fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Answer, PortalError> {
        self.answer(method, self.url(path), |request| request.json(body))
    }

    /// Sends a request without a body (`POST /jobs/{id}/pause`, `DELETE /tokens/{id}`).
    pub fn send_empty(&self, method: Method, path: &str) -> Result<Answer, PortalError> {
        self.answer(method, self.url(path), |request| request)
    }

    /// Sends raw bytes with `content_type`.
    pub fn send_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<Answer, PortalError> {
        self.answer(method, self.url(path), |request| {
            request
                .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
                .body(bytes)
        })
    }

    /// `GET` a download: the response, once its status says it succeeded, to be read as it
    /// arrives (no overall time limit).
    pub fn download(&self, path: &str) -> Result<Response, PortalError> {
        let url = self.url(path);
        let response = self.request(Method::GET, &url).send();
        self.checked(Method::GET, &url, response)
    }

    fn answer(
        &self,
        method: Method,
        url: String,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Answer, PortalError> {
        let response = build(self.request(method.clone(), &url).timeout(REQUEST_TIMEOUT)).send();
        let response = self.checked(method.clone(), &url, response)?;
        let body = response.text().map_err(|err| PortalError::Network {
            method: method.clone(),
            url: url.clone(),
            detail: describe(&err),
        })?;
        Ok(Answer { body, method, url })
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.client.request(method, url);
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// Turns a failed exchange or an error status into a [`PortalError`].
    fn checked(
        &self,
        method: Method,
        url: &str,
        response: reqwest::Result<Response>,
    ) -> Result<Response, PortalError> {
        let response = response.map_err(|err| PortalError::Network {
            method: method.clone(),
            url: url.to_owned(),
            detail: describe(&err),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("another address")
                .to_owned();
            return Err(PortalError::Redirect {
                url: url.to_owned(),
                location,
            });
        }
        let text = response.text().unwrap_or_default();
        match serde_json::from_str::<RawErrorBody>(&text) {
            Ok(body) => Err(PortalError::Api {
                status,
                code: body.error.code,
                message: body.error.message,
                method,
                url: url.to_owned(),
            }),
            Err(_) => Err(PortalError::Unexpected {
                status,
                method,
                url: url.to_owned(),
                snippet: text.chars().take(200).collect(),
            }),
        }
    }
}

/// What went wrong in a reqwest error, from its innermost causes (its own message repeats
/// the URL, which the caller already names).
fn describe(err: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if err.is_timeout() {
        causes.insert(0, "timed out".to_owned());
    }
    if causes.is_empty() {
        err.to_string()
    } else {
        causes.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_urls_are_normalised_and_checked() {
        assert_eq!(
            normalise_portal_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalise_portal_url("https://example.org/pool/").unwrap(),
            "https://example.org/pool"
        );
        assert!(normalise_portal_url("ftp://example.org").is_err());
        assert!(normalise_portal_url("example.org").is_err());
        assert!(normalise_portal_url("https://example.org/?token=x").is_err());
        assert!(normalise_portal_url("https://me@example.org/").is_err());
    }
}
