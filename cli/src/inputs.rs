//! What `job submit` sends: unit inputs from a range or a file, the policy from a JSON file,
//! and the distributor's signature over the job's declaration, computed exactly as the
//! server checks it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cyclepool_shared::Sha256Digest;
use cyclepool_shared::distributor::{
    DeclarationSignature, inputs_digest, job_declaration_message, sign_declaration,
};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::Inputs;
use cyclepool_shared::range::RangeUnits;
use cyclepool_shared::signing::SecretKey;

/// The most units the server accepts in one job (`MAX_UNITS_PER_JOB` in
/// server/src/routes/jobs.rs). Checked here only before signing, so that a mistyped range
/// fails at once instead of hashing for minutes before the server refuses it.
const MAX_UNITS_TO_SIGN: u64 = 10_000_000;

/// `--range START..END[:STEP]`: units covering `[START, END)`, `STEP` numbers each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitRange {
    pub start: u64,
    pub end: u64,
    pub step: u64,
}

/// A `--range` that is not `START..END[:STEP]` with `START < END` and `STEP > 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRange(String);

impl fmt::Display for BadRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (expected START..END[:STEP], e.g. 0..1000:10)",
            self.0
        )
    }
}

impl std::error::Error for BadRange {}

impl FromStr for UnitRange {
    type Err = BadRange;

    fn from_str(text: &str) -> Result<Self, BadRange> {
        let (bounds, step) = match text.split_once(':') {
            Some((bounds, step)) => (bounds, Some(step)),
            None => (text, None),
        };
        let (start, end) = bounds
            .split_once("..")
            .ok_or_else(|| BadRange(format!("{text:?} has no `..`")))?;
        let number = |what: &str, digits: &str| {
            digits
                .trim()
                .parse::<u64>()
                .map_err(|_| BadRange(format!("{what} {digits:?} is not a non-negative integer")))
        };
        let range = UnitRange {
            start: number("START", start)?,
            end: number("END", end)?,
            step: step.map_or(Ok(1), |step| number("STEP", step))?,
        };
        if range.start >= range.end {
            return Err(BadRange(format!("START must be less than END in {text:?}")));
        }
        if range.step == 0 {
            return Err(BadRange(format!("STEP must be positive in {text:?}")));
        }
        Ok(range)
    }
}

impl UnitRange {
    /// How many units the range makes.
    pub fn units(&self) -> u64 {
        (self.end - self.start).div_ceil(self.step)
    }
}

/// How each line of `--inputs-file` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputsFormat {
    /// Each line's bytes, without the newline, are one unit's input.
    Raw,
    /// Each line is one unit's input in standard base64.
    Base64,
}

/// Reads `--inputs-file`: one unit per line. A final newline does not make an empty unit;
/// every other line, empty ones included, is a unit.
pub fn read_inputs_file(path: &Path, format: InputsFormat) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the inputs {}", path.display()))?;
    parse_inputs(&bytes, format).with_context(|| format!("in {}", path.display()))
}

fn parse_inputs(bytes: &[u8], format: InputsFormat) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        bail!("the inputs file has no lines: a job needs at least one unit");
    }
    bytes
        .split(|&byte| byte == b'\n')
        .enumerate()
        .map(|(index, line)| match format {
            InputsFormat::Raw => Ok(line.to_vec()),
            InputsFormat::Base64 => {
                // Tolerates files written on Windows (CRLF) and stray spaces.
                let text = line.trim_ascii();
                STANDARD
                    .decode(text)
                    .with_context(|| format!("line {} is not valid base64", index + 1))
            }
        })
        .collect()
}

/// Reads `--policy`: a JSON object with any of `JobPolicy`'s fields. Unknown fields are
/// refused, since a misspelt field would otherwise silently keep the portal's default.
pub fn read_policy(path: &Path) -> anyhow::Result<JobPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the policy {}", path.display()))?;
    parse_policy(&text).with_context(|| format!("in the policy {}", path.display()))
}

fn parse_policy(text: &str) -> anyhow::Result<JobPolicy> {
    let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
    let Some(fields) = value.as_object() else {
        bail!("the policy must be a JSON object");
    };
    let defaults = serde_json::to_value(JobPolicy::default()).context("listing policy fields")?;
    let known: Vec<&str> = defaults
        .as_object()
        .map(|defaults| defaults.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(unknown) = fields.keys().find(|field| !known.contains(&field.as_str())) {
        bail!(
            "unknown field {unknown:?}; the fields are {}",
            known.join(", ")
        );
    }
    serde_json::from_value(value).context("a field has the wrong type")
}

/// What a job declaration covers.
#[derive(Debug)]
pub struct Declaration<'a> {
    pub module_sha256: Sha256Digest,
    pub inputs: &'a Inputs,
    pub title: &'a str,
    pub description: &'a str,
    pub policy: &'a JobPolicy,
}

/// Signs the job's declaration with `key`, over what the server will hash: the inputs unit by
/// unit (a range expanded as the server expands it) and the trimmed title.
pub fn sign(
    key: &SecretKey,
    declaration: &Declaration<'_>,
) -> anyhow::Result<DeclarationSignature> {
    let digest = match declaration.inputs {
        Inputs::List(list) => inputs_digest(list.iter().map(Vec::as_slice)),
        Inputs::Range { start, end, step } => range_inputs_digest(UnitRange {
            start: *start,
            end: *end,
            step: *step,
        })?,
    };
    let message = job_declaration_message(
        &declaration.module_sha256,
        &digest,
        declaration.title.trim(),
        declaration.description,
        declaration.policy,
    );
    Ok(sign_declaration(key, &message))
}

/// The inputs digest of a range job, its units cut as the portal cuts them ([`RangeUnits`]).
fn range_inputs_digest(range: UnitRange) -> anyhow::Result<Sha256Digest> {
    let Some(units) = RangeUnits::new(range.start, range.end, range.step) else {
        bail!("the range is empty or its step is 0");
    };
    let count = units.units();
    if count > MAX_UNITS_TO_SIGN {
        bail!("the range makes {count} units; a portal accepts at most {MAX_UNITS_TO_SIGN}");
    }
    Ok(inputs_digest(units.inputs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_with_an_optional_step() {
        assert_eq!(
            "0..10".parse::<UnitRange>(),
            Ok(UnitRange {
                start: 0,
                end: 10,
                step: 1
            })
        );
        let range: UnitRange = "5..100:10".parse().unwrap();
        assert_eq!((range.start, range.end, range.step), (5, 100, 10));
        assert_eq!(range.units(), 10);
        for bad in [
            "", "10", "10..5", "5..5", "0..10:0", "a..b", "-1..5", "0..10:x",
        ] {
            assert!(bad.parse::<UnitRange>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn an_inputs_file_has_one_unit_per_line() {
        assert_eq!(
            parse_inputs(b"ab\n\ncd\n", InputsFormat::Raw).unwrap(),
            vec![b"ab".to_vec(), Vec::new(), b"cd".to_vec()]
        );
        assert_eq!(
            parse_inputs(b"ab\ncd", InputsFormat::Raw).unwrap(),
            vec![b"ab".to_vec(), b"cd".to_vec()]
        );
        assert_eq!(
            parse_inputs(b"AAEC\r\n/w==\n", InputsFormat::Base64).unwrap(),
            vec![vec![0, 1, 2], vec![255]]
        );
        let err = parse_inputs(b"AAEC\n***\n", InputsFormat::Base64).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(parse_inputs(b"", InputsFormat::Raw).is_err());
        assert!(parse_inputs(b"\n", InputsFormat::Raw).is_err());
    }

    #[test]
    fn policies_refuse_unknown_fields() {
        let policy = parse_policy(r#"{"min_quorum": 2}"#).unwrap();
        assert_eq!(policy.min_quorum, 2);
        assert_eq!(policy.lease_ttl_ms, JobPolicy::default().lease_ttl_ms);
        let err = parse_policy(r#"{"min_qorum": 2}"#).unwrap_err();
        assert!(format!("{err:#}").contains("min_qorum"), "{err:#}");
        assert!(parse_policy("[1]").is_err());
        assert!(parse_policy(r#"{"min_quorum": "two"}"#).is_err());
    }

    #[test]
    fn a_range_digest_matches_the_units_expanded_one_by_one() {
        use cyclepool_shared::range::encode_range;
        let range = UnitRange {
            start: 3,
            end: 10,
            step: 3,
        };
        let expected = inputs_digest([
            encode_range(3, 6).as_slice(),
            encode_range(6, 9).as_slice(),
            encode_range(9, 10).as_slice(),
        ]);
        assert_eq!(range_inputs_digest(range).unwrap(), expected);
    }
}
