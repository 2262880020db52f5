//! Validated results, streamed from the store as they are read: JSON lines with everything
//! needed to check them, or the raw outputs as a tar archive with a `SHA256SUMS` file.
//! Memory stays bounded whatever the job's size.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cyclepool_shared::{ErrorBody, JobId, LeaseId, Nonce, Sha256Digest, Signature, VolunteerId};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::manage::owned_job;
use crate::routes::openapi::{BAD_JOB_ID, FORBIDDEN, NO_JOB, UNAUTHORIZED};
use crate::state::AppState;
use crate::store::Store;

/// Bytes gathered before a chunk is handed to the response.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the reading thread and a slow client.
const CHUNKS_IN_FLIGHT: usize = 8;

/// `GET /api/v1/jobs/{id}/results`: every validated result as JSON lines, one unit per line,
/// in unit order: `{"unit", "lease_id", "nonce", "signature", "input", "output",
/// "output_sha256", "volunteer", "received_ms"}` with `input` and `output` in base64.
#[utoipa::path(
    get,
    path = "/jobs/{id}/results",
    tag = "results",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, content_type = "application/x-ndjson", body = ResultLine,
            description = "JSON lines (one `ResultLine` object per line), one per validated \
            unit, in unit order"),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
    )
)]
pub async fn results_json_lines(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&caller, &state, &id)?;
    let body = stream_from_store(state.store.clone(), move |store, out| {
        write_json_lines(store, job.id, out)
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/jobs/{id}/results.tar`: the raw output of every validated unit as
/// `units/<index>.out` (index zero-padded to 12 digits), then `SHA256SUMS` in the format
/// `sha256sum -c` reads.
#[utoipa::path(
    get,
    path = "/jobs/{id}/results.tar",
    tag = "results",
    security(("bearer" = []), ("session" = [])),
    params(("id" = JobId, Path, description = "The job's number")),
    responses(
        (status = 200, description = "A tar archive: `units/<index, 12 digits>.out` with each \
            validated unit's raw output, then `SHA256SUMS`", content(("application/x-tar"))),
        (status = 400, description = BAD_JOB_ID, body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = FORBIDDEN, body = ErrorBody),
        (status = 404, description = NO_JOB, body = ErrorBody),
    )
)]
pub async fn results_archive(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&caller, &state, &id)?;
    let disposition = format!("attachment; filename=\"job-{}-results.tar\"", job.id);
    let body = stream_from_store(state.store.clone(), move |store, out| {
        write_archive(store, job.id, out)
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}

/// Runs `write` on a blocking thread and streams what it writes. A store error mid-way
/// ends the stream with an error, so the client sees a failed (not a short) download.
fn stream_from_store(
    store: std::sync::Arc<Store>,
    write: impl FnOnce(&Store, &mut ChunkWriter) -> Result<(), WriteError> + Send + 'static,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            sender,
        };
        let outcome = write(&store, &mut out).and_then(|()| out.flush());
        if let Err(WriteError::Store(err)) = outcome {
            tracing::error!(error = %err, "reading results for a download");
            let _ = out
                .sender
                .blocking_send(Err(std::io::Error::other("the store failed")));
        }
    });
    // Fused: body layers (compression) may poll again after the end, which a bare `unfold`
    // does not allow.
    Body::from_stream(
        futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        })
        .fuse(),
    )
}

/// Why writing a download stopped.
enum WriteError {
    /// The client went away: nothing to report.
    Gone,
    Store(crate::store::StoreError),
}

impl From<crate::store::StoreError> for WriteError {
    fn from(err: crate::store::StoreError) -> Self {
        WriteError::Store(err)
    }
}

/// Gathers bytes into chunks and hands them to the response, waiting when the client is slow.
struct ChunkWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| WriteError::Gone)
    }
}

/// One line of a results download.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ResultLine<'a> {
    unit: u64,
    lease_id: LeaseId,
    nonce: Option<Nonce>,
    /// The volunteer's signature over lease id, nonce and `output_sha256`, so that the
    /// distributor can check who computed what without trusting the portal.
    signature: Signature,
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    #[schema(value_type = String, format = Byte)]
    input: &'a [u8],
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    #[schema(value_type = String, format = Byte)]
    output: &'a [u8],
    output_sha256: Sha256Digest,
    volunteer: VolunteerId,
    received_ms: u64,
}

fn write_json_lines(store: &Store, job: JobId, out: &mut ChunkWriter) -> Result<(), WriteError> {
    for entry in store.job_results(job) {
        let (unit, record, result) = entry?;
        let nonce = match result.nonce {
            Some(nonce) => Some(nonce),
            None => store.lease(result.lease)?.map(|lease| lease.nonce),
        };
        let line = ResultLine {
            unit,
            lease_id: result.lease,
            nonce,
            signature: result.signature,
            input: &record.input,
            output: &result.output,
            output_sha256: result.output_sha256,
            volunteer: result.volunteer,
            received_ms: result.received_ms,
        };
        // Serializing plain data to a Vec cannot fail.
        let mut text = serde_json::to_vec(&line).unwrap_or_default();
        text.push(b'\n');
        out.write(&text)?;
    }
    Ok(())
}

fn write_archive(store: &Store, job: JobId, out: &mut ChunkWriter) -> Result<(), WriteError> {
    let mut sums = String::new();
    for entry in store.job_results(job) {
        let (unit, _, result) = entry?;
        let name = format!("units/{unit:012}.out");
        out.write(&tar_header(
            &name,
            result.output.len() as u64,
            result.received_ms / 1_000,
        ))?;
        out.write(&result.output)?;
        out.write(&[0u8; 512][..padding(result.output.len())])?;
        sums.push_str(&format!("{}  {name}\n", result.output_sha256));
    }
    out.write(&tar_header("SHA256SUMS", sums.len() as u64, 0))?;
    out.write(sums.as_bytes())?;
    out.write(&[0u8; 512][..padding(sums.len())])?;
    // The end of the archive: two empty blocks.
    out.write(&[0u8; 1024])
}

fn padding(len: usize) -> usize {
    (512 - len % 512) % 512
}

/// A POSIX ustar header for a regular file. Names here are ASCII and under 100 bytes.
fn tar_header(name: &str, size: u64, mtime_s: u64) -> [u8; 512] {
    let mut header = [0u8; 512];
    let put = |header: &mut [u8; 512], at: usize, bytes: &[u8]| {
        header[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(&mut header, 124, format!("{size:011o}\0").as_bytes());
    put(
        &mut header,
        136,
        format!("{:011o}\0", mtime_s.min(0o77777777777)).as_bytes(),
    );
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let checksum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_have_a_valid_checksum_and_octal_size() {
        let header = tar_header("units/000000000001.out", 1234, 1_700_000_000);
        assert_eq!(&header[..22], b"units/000000000001.out");
        assert_eq!(&header[124..136], b"00000002322\0");
        let stored = u32::from_str_radix(
            std::str::from_utf8(&header[148..154]).expect("octal digits"),
            8,
        )
        .expect("an octal checksum");
        let mut blanked = header;
        blanked[148..156].copy_from_slice(b"        ");
        let computed: u32 = blanked.iter().map(|&byte| u32::from(byte)).sum();
        assert_eq!(stored, computed);
        assert_eq!(&header[257..263], b"ustar\0");
    }

    #[test]
    fn padding_rounds_up_to_blocks() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert_eq!(padding(513), 511);
    }
}
