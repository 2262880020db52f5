//! JSON over `fetch`, to the origin only, from a worker or a page alike.

use std::fmt;

use cyclepool_shared::json::{self, FromJson, ToJson};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::offline::AnswerError;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`, which exists in windows and workers alike.
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_request(request: &web_sys::Request) -> js_sys::Promise;
}

/// Why a request did not produce the expected answer.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// No answer: the network or the server is down. Worth retrying later.
    Network(String),
    /// The server answered 5xx or 429: worth retrying later.
    Unavailable { status: u16, message: String },
    /// The server answered 4xx: it understood and refused. Retrying the same request is pointless.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The answer was not what the protocol says.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Network(message) => write!(f, "network error: {message}"),
            HttpError::Unavailable { status, message } => {
                write!(f, "server unavailable ({status}): {message}")
            }
            HttpError::Refused {
                status,
                code,
                message,
            } => write!(f, "{code} ({status}): {message}"),
            HttpError::Protocol(message) => write!(f, "unexpected answer: {message}"),
        }
    }
}

/// POSTs `body` as JSON to `url` (a path on the origin) and decodes the JSON answer.
pub async fn post_json<B: ToJson + ?Sized, R: FromJson>(
    url: &str,
    body: &B,
) -> Result<R, HttpError> {
    let body = json::to_string(body);
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body));
    let headers = web_sys::Headers::new().map_err(js_error(HttpError::Network))?;
    headers
        .set("content-type", "application/json")
        .map_err(js_error(HttpError::Network))?;
    init.set_headers(&headers);
    let response = fetch(url, &init).await?;
    let text = text(&response).await?;
    json::from_str(&text).map_err(|err| HttpError::Protocol(err.to_string()))
}

/// GETs `url` and decodes the JSON answer.
pub async fn get_json<R: FromJson>(url: &str) -> Result<R, HttpError> {
    let response = fetch(url, &web_sys::RequestInit::new()).await?;
    let text = text(&response).await?;
    json::from_str(&text).map_err(|err| HttpError::Protocol(err.to_string()))
}

/// GETs `url` as bytes.
pub async fn get_bytes(url: &str) -> Result<Vec<u8>, HttpError> {
    let response = fetch(url, &web_sys::RequestInit::new()).await?;
    let buffer = JsFuture::from(
        response
            .array_buffer()
            .map_err(js_error(HttpError::Network))?,
    )
    .await
    .map_err(js_error(HttpError::Network))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Fetches `url`; a non-2xx answer becomes an error carrying the server's JSON error body.
async fn fetch(url: &str, init: &web_sys::RequestInit) -> Result<web_sys::Response, HttpError> {
    let request =
        web_sys::Request::new_with_str_and_init(url, init).map_err(js_error(HttpError::Network))?;
    let response: web_sys::Response = JsFuture::from(fetch_with_request(&request))
        .await
        .map_err(js_error(HttpError::Network))?
        .dyn_into()
        .map_err(js_error(HttpError::Protocol))?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = text(&response).await.unwrap_or_default();
    // The portal's `ErrorBody`, with the code kept as text: a code this client does not know
    // (from a newer portal) still comes with its message.
    let detail = json::parse(&text).ok().and_then(|body| {
        let error: AnswerError = body.fields("error body").ok()?.req("error").ok()?;
        Some((error.code, error.message))
    });
    let (code, message) = detail.unwrap_or_else(|| (String::new(), format!("HTTP {status}")));
    if status >= 500 || status == 429 {
        Err(HttpError::Unavailable { status, message })
    } else {
        Err(HttpError::Refused {
            status,
            code,
            message,
        })
    }
}

async fn text(response: &web_sys::Response) -> Result<String, HttpError> {
    Ok(
        JsFuture::from(response.text().map_err(js_error(HttpError::Network))?)
            .await
            .map_err(js_error(HttpError::Network))?
            .as_string()
            .unwrap_or_default(),
    )
}

fn js_error(wrap: fn(String) -> HttpError) -> impl Fn(JsValue) -> HttpError {
    move |value| {
        let message = value
            .dyn_ref::<js_sys::Error>()
            .map(|err| String::from(err.message()))
            .or_else(|| value.as_string())
            .unwrap_or_else(|| "unknown error".to_owned());
        wrap(message)
    }
}
