//! `job results`: streams a job's validated results to a file or standard output. JSON lines
//! are checked one by one before they are written (the output's SHA-256 and the volunteer's
//! signature), so the distributor need not trust the portal about who computed what.

use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cyclepool_shared::signing::{self, Purpose, result_message};
use cyclepool_shared::{LeaseId, Nonce, PublicKey, Sha256Digest, Signature, VolunteerId};
use serde::Deserialize;

/// The longest result line accepted: a 1 MiB output and a 1 MiB input in base64, with room.
const MAX_LINE_BYTES: u64 = 4 << 20;

/// What the CLI checks in a line of `GET /api/v1/jobs/{id}/results`. The server's type is
/// private to it (`ResultLine` in server/src/routes/downloads.rs), so the CLI reads the
/// documented shape; the other fields (`input`, `received_ms`) are copied, not checked.
#[derive(Debug, Deserialize)]
pub struct ResultLine {
    pub unit: u64,
    pub lease_id: LeaseId,
    /// Absent if the server no longer knows the lease; such a line cannot be checked.
    pub nonce: Option<Nonce>,
    pub signature: Signature,
    #[serde(with = "cyclepool_shared::protocol::base64_bytes")]
    pub output: Vec<u8>,
    pub output_sha256: Sha256Digest,
    pub volunteer: VolunteerId,
}

/// Why a results download cannot be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("line {line}: not a result line: {detail}")]
    Malformed { line: u64, detail: String },
    #[error("unit {unit}: the output's SHA-256 is {actual}, but the line says {claimed}")]
    DigestMismatch {
        unit: u64,
        claimed: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("unit {unit}: the line has no nonce, so the volunteer's signature cannot be checked")]
    MissingNonce { unit: u64 },
    #[error(
        "unit {unit}: the signature is not volunteer {volunteer}'s over this lease, nonce and output"
    )]
    BadSignature { unit: u64, volunteer: VolunteerId },
    #[error(
        "unit {unit} comes after unit {previous}: results must be in increasing unit order, each unit once"
    )]
    OutOfOrder { unit: u64, previous: u64 },
}

/// Checks one result: the output hashes to `output_sha256`, and the volunteer signed the
/// lease, its nonce and that digest.
pub fn verify(line: &ResultLine) -> Result<(), VerifyError> {
    let actual = Sha256Digest::of(&line.output);
    if actual != line.output_sha256 {
        return Err(VerifyError::DigestMismatch {
            unit: line.unit,
            claimed: line.output_sha256,
            actual,
        });
    }
    let nonce = line
        .nonce
        .ok_or(VerifyError::MissingNonce { unit: line.unit })?;
    signing::verify(
        &PublicKey::from_bytes(*line.volunteer.as_bytes()),
        Purpose::Result,
        &result_message(&line.lease_id, &nonce, &line.output_sha256),
        &line.signature,
    )
    .map_err(|_| VerifyError::BadSignature {
        unit: line.unit,
        volunteer: line.volunteer,
    })
}

/// What a download wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Result lines (JSON lines) or bytes (tar).
    pub count: u64,
}

/// Copies JSON lines from `input` to `output`, checking each before writing it. Stops at the
/// first line that fails.
pub fn copy_verified_lines(input: impl Read, mut output: impl Write) -> anyhow::Result<Written> {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let mut previous: Option<u64> = None;
    let mut count = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .context("reading the results from the portal")?;
        if read == 0 {
            break;
        }
        let number = count + 1;
        if line.last() != Some(&b'\n') && read as u64 == MAX_LINE_BYTES {
            return Err(VerifyError::Malformed {
                line: number,
                detail: format!("longer than {MAX_LINE_BYTES} bytes"),
            }
            .into());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let result: ResultLine =
            serde_json::from_slice(text).map_err(|err| VerifyError::Malformed {
                line: number,
                detail: err.to_string(),
            })?;
        if let Some(previous) = previous.filter(|&previous| result.unit <= previous) {
            return Err(VerifyError::OutOfOrder {
                unit: result.unit,
                previous,
            }
            .into());
        }
        verify(&result)?;
        output.write_all(text)?;
        output.write_all(b"\n")?;
        previous = Some(result.unit);
        count += 1;
    }
    output.flush()?;
    Ok(Written { count })
}

/// Copies bytes from `input` to `output` as they arrive.
pub fn copy_bytes(mut input: impl Read, mut output: impl Write) -> anyhow::Result<Written> {
    let count = io::copy(&mut input, &mut output).context("downloading the archive")?;
    output.flush()?;
    Ok(Written { count })
}

/// Runs `copy` into `path` through `<path>.part`, renamed only once everything was written
/// (and checked), so a failed download never leaves a file that looks complete.
pub fn into_file(
    path: &Path,
    copy: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<Written>,
) -> anyhow::Result<Written> {
    let mut partial = PathBuf::from(path);
    partial.as_mut_os_string().push(".part");
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut out = BufWriter::new(file);
    let outcome = copy(&mut out).and_then(|written| {
        let file = out
            .into_inner()
            .map_err(|err| anyhow::anyhow!("writing {}: {}", partial.display(), err.error()))?;
        file.sync_all()
            .with_context(|| format!("writing {}", partial.display()))?;
        fs::rename(&partial, path).with_context(|| format!("creating {}", path.display()))?;
        Ok(written)
    });
    if outcome.is_err() {
        let _ = fs::remove_file(&partial);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use cyclepool_shared::signing::SecretKey;

    /// A correctly signed result line of `unit` with `output`, as JSON.
    fn signed_line(unit: u64, output: &[u8]) -> serde_json::Value {
        let key = SecretKey::from_seed(&[7; 32]);
        let (lease, nonce) = (LeaseId::from_bytes([1; 16]), Nonce::from_bytes([2; 16]));
        let digest = Sha256Digest::of(output);
        let signature = key.sign(Purpose::Result, &result_message(&lease, &nonce, &digest));
        serde_json::json!({
            "unit": unit,
            "lease_id": lease,
            "nonce": nonce,
            "signature": signature,
            "input": STANDARD.encode(b"in"),
            "output": STANDARD.encode(output),
            "output_sha256": digest,
            "volunteer": VolunteerId::from_bytes(*key.public_key().as_bytes()),
            "received_ms": 1,
        })
    }

    fn copy(lines: &[serde_json::Value]) -> (anyhow::Result<Written>, Vec<u8>) {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let mut out = Vec::new();
        let outcome = copy_verified_lines(text.as_bytes(), &mut out);
        (outcome, out)
    }

    fn verify_error(outcome: anyhow::Result<Written>) -> VerifyError {
        outcome
            .expect_err("the download should fail")
            .downcast::<VerifyError>()
            .expect("a verification error")
    }

    #[test]
    fn honest_lines_are_copied_as_they_came() {
        let lines = [signed_line(0, b"abc"), signed_line(2, b"")];
        let (outcome, out) = copy(&lines);
        assert_eq!(outcome.unwrap(), Written { count: 2 });
        assert_eq!(out, format!("{}\n{}\n", lines[0], lines[1]).into_bytes());
    }

    #[test]
    fn a_changed_output_is_caught() {
        let mut line = signed_line(0, b"abc");
        line["output"] = STANDARD.encode(b"abd").into();
        let (outcome, out) = copy(&[line]);
        assert!(matches!(
            verify_error(outcome),
            VerifyError::DigestMismatch { unit: 0, .. }
        ));
        assert!(out.is_empty(), "nothing unchecked is written");
    }

    #[test]
    fn a_changed_output_with_its_digest_fails_the_signature() {
        let mut line = signed_line(0, b"abc");
        line["output"] = STANDARD.encode(b"abd").into();
        line["output_sha256"] = Sha256Digest::of(b"abd").to_string().into();
        let (outcome, _) = copy(&[line]);
        assert!(matches!(
            verify_error(outcome),
            VerifyError::BadSignature { unit: 0, .. }
        ));
    }

    #[test]
    fn another_volunteer_cannot_be_credited() {
        let mut line = signed_line(0, b"abc");
        let other = SecretKey::from_seed(&[8; 32]).public_key();
        line["volunteer"] = other.to_string().into();
        let (outcome, _) = copy(&[line]);
        assert!(matches!(
            verify_error(outcome),
            VerifyError::BadSignature { unit: 0, .. }
        ));
    }

    #[test]
    fn a_missing_nonce_a_repeated_unit_and_garbage_are_refused() {
        let mut line = signed_line(0, b"abc");
        line["nonce"] = serde_json::Value::Null;
        let (outcome, _) = copy(&[line]);
        assert_eq!(verify_error(outcome), VerifyError::MissingNonce { unit: 0 });

        let (outcome, out) = copy(&[signed_line(3, b"x"), signed_line(3, b"x")]);
        assert_eq!(
            verify_error(outcome),
            VerifyError::OutOfOrder {
                unit: 3,
                previous: 3
            }
        );
        assert_eq!(out.iter().filter(|&&byte| byte == b'\n').count(), 1);

        let mut out = Vec::new();
        let outcome = copy_verified_lines(&b"{\"unit\":1}\n"[..], &mut out);
        assert!(matches!(
            verify_error(outcome),
            VerifyError::Malformed { line: 1, .. }
        ));
    }
}
