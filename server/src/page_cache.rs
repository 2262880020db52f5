//! The portal's own files (pages, scripts, styles, icons), sent minified (scripts) and
//! compressed at the best levels of brotli and gzip, made once per version of each file and
//! kept in memory.
//!
//! Compressing at brotli's best costs about a hundred times what brotli 5 does (a tenth of a
//! second for the largest script), too much for every visit but nothing once per file: the
//! first request for a file gets a version compressed quickly, and the best one, made in the
//! background, serves the requests after it. Made from the file as it is now, and made again
//! when its modification time or length changes, so an edited page is never sent stale (as a
//! `.br` written beside it could be). The web client's module is compressed at build
//! time instead (`cargo xtask web`): brotli's best takes about a second over its 300 kB.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::error::ApiError;
use crate::minify::minify_js;

/// Files larger than this are sent as they are (the portal's largest is about 45 kB).
const MAX_CACHED_BYTES: u64 = 2 << 20;

/// The versions of the portal's files made so far, by request path. Bounded by the files
/// of the static directory: only a file the server found and sent is kept, one version each.
/// A version is known by the file's Last-Modified and length, as a browser's cache knows it
/// (so an edit within the same second that keeps the length is, for both, the same file).
#[derive(Debug, Default)]
pub struct PageCache {
    files: Mutex<HashMap<String, Arc<Prepared>>>,
}

/// Which version of a file: its `Last-Modified` and length as served.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    last_modified: HeaderValue,
    len: u64,
}

/// One version of one file, ready to send in each encoding.
#[derive(Debug)]
struct Prepared {
    version: Version,
    identity: Bytes,
    brotli: Bytes,
    gzip: Bytes,
}

/// The encodings a client may be sent, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

/// What a file is, as far as preparing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Script,
    Text,
}

impl PageCache {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Prepared>>> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self, path: &str, version: &Version) -> Option<Arc<Prepared>> {
        self.files()
            .get(path)
            .filter(|file| file.version == *version)
            .cloned()
    }

    /// Keeps `quick` for its file unless a version of the same file is kept already (another
    /// request made it meanwhile). Returns the version kept, and whether it is `quick`.
    fn keep_quick(&self, path: String, quick: Arc<Prepared>) -> (Arc<Prepared>, bool) {
        let mut files = self.files();
        match files.get(&path) {
            Some(kept) if kept.version == quick.version => (kept.clone(), false),
            _ => {
                files.insert(path, quick.clone());
                (quick, true)
            }
        }
    }

    /// Replaces the quick version of `best`'s file with it, unless the file changed since.
    fn upgrade(&self, path: String, best: Arc<Prepared>) {
        let mut files = self.files();
        if files
            .get(&path)
            .is_some_and(|quick| quick.version == best.version)
        {
            files.insert(path, best);
        }
    }
}

/// Middleware over the static files: sends the portal's text files prepared by
/// [`PageCache`], everything else as the inner service made it.
pub async fn send_prepared(
    State(cache): State<Arc<PageCache>>,
    mut request: Request,
    next: Next,
) -> Response {
    // A HEAD is answered as the GET would be (hyper sends no body for it), so that its
    // Content-Length is the one the GET's body has.
    if request.method() == Method::HEAD {
        *request.method_mut() = Method::GET;
    } else if request.method() != Method::GET {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    // Only a file's one plain path is prepared: `//app.js`, `/./app.js` or `/%61pp.js` name
    // the same file to the inner service, and keeping a version for each would let anyone
    // make the server compress at brotli's best as often as they like.
    if !is_plain_path(&path) {
        return next.run(request).await;
    }
    let encoding = preferred_encoding(request.headers());
    // A range of a minified file would be bytes of another file than the one its
    // Last-Modified names; these files are small, so they are always sent whole.
    request.headers_mut().remove(header::RANGE);
    let response = next.run(request).await;
    if response.status() != StatusCode::OK
        || response.headers().contains_key(header::CONTENT_ENCODING)
    {
        return response;
    }
    let Some(kind) = kind_of(response.headers()) else {
        return response;
    };
    let (Some(last_modified), Some(len)) = (
        response.headers().get(header::LAST_MODIFIED).cloned(),
        content_length(response.headers()),
    ) else {
        return response;
    };
    let version = Version { last_modified, len };
    if len > MAX_CACHED_BYTES {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let prepared = match cache.current(&path, &version) {
        Some(prepared) => prepared,
        None => {
            let source = match axum::body::to_bytes(body, MAX_CACHED_BYTES as usize).await {
                Ok(source) => source,
                Err(err) => {
                    tracing::error!(error = %err, path, "cannot read a static file");
                    return ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
                }
            };
            // This request gets a version made quickly (brotli 5, what compressing on the fly
            // used); the best one is made meanwhile, for the requests after it.
            let quick = {
                let (source, version) = (source.clone(), version.clone());
                tokio::task::spawn_blocking(move || {
                    Prepared::make(kind, &source, version, Effort::Quick)
                })
                .await
            };
            let Ok(quick) = quick else {
                tracing::error!(path, "preparing a static file failed");
                return ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
            };
            let (prepared, first) = cache.keep_quick(path.clone(), Arc::new(quick));
            // Only the first of requests that missed at once makes the best version.
            if first {
                tokio::task::spawn_blocking(move || {
                    let best = Prepared::make(kind, &source, version, Effort::Best);
                    cache.upgrade(path, Arc::new(best));
                });
            }
            prepared
        }
    };
    let (bytes, content_encoding) = match encoding {
        Encoding::Brotli => (prepared.brotli.clone(), Some("br")),
        Encoding::Gzip => (prepared.gzip.clone(), Some("gzip")),
        Encoding::Identity => (prepared.identity.clone(), None),
    };
    let headers = &mut parts.headers;
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(content_encoding) = content_encoding {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(content_encoding),
        );
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// How hard to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effort {
    /// Brotli 5 and gzip 6: a millisecond or two for the largest page script.
    Quick,
    /// Brotli 11 and gzip 9: about a tenth of a second for it, 2 to 3 kB less on a first visit.
    Best,
}

impl Prepared {
    fn make(kind: Kind, source: &[u8], version: Version, effort: Effort) -> Self {
        let identity = match (kind, std::str::from_utf8(source)) {
            (Kind::Script, Ok(script)) => Bytes::from(minify_js(script)),
            _ => Bytes::copy_from_slice(source),
        };
        let mut brotli = Vec::new();
        let (quality, level) = match effort {
            Effort::Quick => (5, flate2::Compression::default()),
            Effort::Best => (11, flate2::Compression::best()),
        };
        let params = brotli::enc::BrotliEncoderParams {
            quality,
            ..Default::default()
        };
        // Writing into memory cannot fail.
        let _ = brotli::BrotliCompress(&mut identity.as_ref(), &mut brotli, &params);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), level);
        let _ = gzip.write_all(&identity);
        let gzip = gzip.finish().unwrap_or_default();
        Self {
            version,
            identity,
            brotli: Bytes::from(brotli),
            gzip: Bytes::from(gzip),
        }
    }
}

/// Whether `path` is a file's one plain path: segments of letters, digits, `-`, `_`, `.` and
/// `~` (no percent escapes), none empty (but the last, a directory's), `.` or `..`.
fn is_plain_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, segment)| {
        (i == last || !segment.is_empty())
            && *segment != "."
            && *segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    })
}

/// Scripts are minified; pages, styles and SVG are only compressed; the rest is left alone.
fn kind_of(headers: &HeaderMap) -> Option<Kind> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next()?.trim();
    match essence {
        "text/javascript" | "application/javascript" => Some(Kind::Script),
        "text/html" | "text/css" | "image/svg+xml" => Some(Kind::Text),
        _ => None,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The best encoding `Accept-Encoding` allows: brotli, then gzip, else none. A coding with
/// `q=0` is refused; `*` stands for any coding not named.
fn preferred_encoding(headers: &HeaderMap) -> Encoding {
    let accepted = |name: &str| {
        let mut named = None;
        let mut any = false;
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut pieces = item.split(';');
                let coding = pieces.next().unwrap_or_default().trim();
                let refused = pieces.any(|param| {
                    param
                        .trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                if coding.eq_ignore_ascii_case(name) {
                    named = Some(!refused);
                } else if coding == "*" {
                    any = !refused;
                }
            }
        }
        named.unwrap_or(any)
    };
    if accepted("br") {
        Encoding::Brotli
    } else if accepted("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

#[cfg(test)]
mod tests {
    use super::{Encoding, is_plain_path, preferred_encoding};
    use axum::http::{HeaderMap, HeaderValue, header};

    fn accepting(value: &str) -> Encoding {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        preferred_encoding(&headers)
    }

    #[test]
    fn only_plain_paths_are_prepared() {
        for plain in [
            "/",
            "/app.js",
            "/pkg/cyclepool_web_client.js",
            "/docs/",
            "/a.b-c_d~e",
        ] {
            assert!(is_plain_path(plain), "{plain}");
        }
        for other in [
            "",
            "app.js",
            "//app.js",
            "/./app.js",
            "/pkg/../app.js",
            "/%61pp.js",
            "/pkg//x.js",
            "/app.js/..",
            "/ä.js",
            "/a b.js",
            "/a\\b.js",
        ] {
            assert!(!is_plain_path(other), "{other}");
        }
    }

    #[test]
    fn the_best_accepted_encoding_is_chosen() {
        assert_eq!(accepting("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(accepting("gzip"), Encoding::Gzip);
        assert_eq!(accepting("br;q=0, gzip;q=0.5"), Encoding::Gzip);
        assert_eq!(accepting("BR"), Encoding::Brotli);
        assert_eq!(accepting("*"), Encoding::Brotli);
        assert_eq!(accepting("*, br;q=0"), Encoding::Gzip);
        assert_eq!(accepting("identity"), Encoding::Identity);
        assert_eq!(accepting("br;q=nonsense"), Encoding::Brotli);
        assert_eq!(preferred_encoding(&HeaderMap::new()), Encoding::Identity);
    }
}
