//! Job commands: submit (upload the module, then create the job, optionally signed), list,
//! status (with the portal's review), pause/resume/cancel, failures, and results downloads.

use std::io::{self, BufWriter};
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use cyclepool_shared::JobId;
use cyclepool_shared::distributor::{Category, GroupId, JobFailures, JobSummary, Review};
use cyclepool_shared::manifest::JobPolicy;
use cyclepool_shared::protocol::{CreateJob, Inputs, JobCreated, ModuleUploaded};
use reqwest::Method;

use crate::account::{portal_with_token, terms_needed};
use crate::inputs::{self, Declaration, InputsFormat};
use crate::output::{print_answer, shorten, utc};
use crate::results::{self, Written};
use crate::{Context, SubmitArgs, files};

/// The format of `job results`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultsFormat {
    /// JSON lines, each verified (output digest and volunteer signature) before it is written.
    Jsonl,
    /// A tar archive of the raw outputs with a SHA256SUMS file, as the portal sends it.
    Tar,
}

/// The portal's name of a category (its JSON spelling). The match is exhaustive so that a
/// category added to `shared` cannot be forgotten here.
pub fn category_name(category: Category) -> &'static str {
    match category {
        Category::Mathematics => "mathematics",
        Category::Physics => "physics",
        Category::Astronomy => "astronomy",
        Category::Biology => "biology",
        Category::Medicine => "medicine",
        Category::Climate => "climate",
        Category::Cryptography => "cryptography",
        Category::ComputerScience => "computer_science",
        Category::Art => "art",
        Category::Other => "other",
    }
}

/// The category named `name` (the portal's spelling, or with `-` for `_`).
fn category_named(name: &str) -> Result<Category, String> {
    let name = name.replace('-', "_");
    Category::ALL
        .into_iter()
        .find(|category| category_name(*category) == name)
        .ok_or_else(|| format!("{name:?} is not a category"))
}

/// `--category`: the categories as clap's possible values (listed in `--help` and in the
/// message for a wrong one).
pub fn category_parser() -> impl TypedValueParser<Value = Category> {
    let values = Category::ALL.map(|category| {
        let value = PossibleValue::new(category_name(category));
        match category {
            // Other enumerations on this command line are spelled with `-`.
            Category::ComputerScience => value.alias("computer-science"),
            _ => value,
        }
    });
    PossibleValuesParser::new(values).try_map(|name: String| category_named(&name))
}

/// A job's review in a word, for listings.
pub fn review_word(review: &Review) -> &'static str {
    match review {
        Review::Approved => "published",
        Review::Pending => "pending",
        Review::Rejected { .. } => "rejected",
        Review::Withdrawn { .. } => "withdrawn",
    }
}

/// A job's review in a sentence, with the portal's reason and the job's log entry.
pub fn review_text(review: &Review, log_seq: Option<u64>) -> String {
    match (review, log_seq) {
        (Review::Approved, Some(seq)) => format!("published (public log entry {seq})"),
        (Review::Approved, None) => "published".to_owned(),
        (Review::Pending, _) => "waiting for the portal's review".to_owned(),
        (Review::Rejected { reason }, _) => format!("rejected by the portal: {reason}"),
        (Review::Withdrawn { reason }, _) => format!("withdrawn by the portal: {reason}"),
    }
}

/// `cyclepool job submit`.
pub fn submit(context: &Context, args: &SubmitArgs) -> anyhow::Result<()> {
    // Everything local is read and checked before anything is sent.
    let module = std::fs::read(&args.module)
        .with_context(|| format!("reading the module {}", args.module.display()))?;
    let description = match (&args.description, &args.description_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the description {}", path.display()))?,
        (None, None) => String::new(),
    };
    let unit_inputs = match (&args.range, &args.inputs_file) {
        (Some(range), _) => Inputs::Range {
            start: range.start,
            end: range.end,
            step: range.step,
        },
        (None, Some(path)) => Inputs::List(inputs::read_inputs_file(
            path,
            args.inputs_format.unwrap_or(InputsFormat::Raw),
        )?),
        (None, None) => bail!("give the units' inputs with --range or --inputs-file"),
    };
    let policy = match &args.policy {
        Some(path) => inputs::read_policy(path)?,
        None => JobPolicy::default(),
    };
    let expires_in_ms = match args.expires_in {
        Some(seconds) => Some(
            seconds
                .checked_mul(1_000)
                .context("--expires-in is too large")?,
        ),
        None => None,
    };
    let signing_key = if args.sign {
        let path = match &args.key {
            Some(path) => path.clone(),
            None => files::default_key_path()?,
        };
        Some(files::load_key(&path)?)
    } else {
        None
    };
    let portal = portal_with_token(context)?;

    let uploaded: ModuleUploaded = portal
        .send_bytes(Method::PUT, "/modules", "application/wasm", module)?
        .parse()?;
    let signature = match &signing_key {
        Some(key) => Some(inputs::sign(
            key,
            &Declaration {
                module_sha256: uploaded.module_sha256,
                inputs: &unit_inputs,
                title: &args.title,
                description: &description,
                policy: &policy,
            },
        )?),
        None => None,
    };
    let request = CreateJob {
        title: args.title.clone(),
        description,
        module_sha256: uploaded.module_sha256,
        inputs: unit_inputs,
        policy,
        expires_in_ms,
        group: args.group.map(GroupId),
        priority: args.priority,
        weight: args.weight,
        signature,
        category: args.category.unwrap_or_default(),
    };
    let answer = portal
        .send_json(Method::POST, "/jobs", &request)
        .map_err(|err| match err.code() {
            Some("terms_not_accepted") => err.with_hint(terms_needed(&context.portal_url)),
            _ => err.into(),
        })?;
    if context.json {
        return print_answer(&answer);
    }
    let created: JobCreated = answer.parse()?;
    println!("job {}: {} units", created.job_id, created.units);
    match &created.review {
        Review::Approved => println!("published: volunteers can compute it now"),
        Review::Pending => println!(
            "waiting for review: volunteers get its units once the portal's admin approves it \
             (`cyclepool job status {}` shows the decision)",
            created.job_id
        ),
        other => println!("{}", review_text(other, None)),
    }
    println!(
        "module {} ({} bytes{})",
        uploaded.module_sha256,
        uploaded.bytes,
        if uploaded.has_verify {
            ", with verify"
        } else {
            ""
        }
    );
    if let Some(signature) = &request.signature {
        println!(
            "signed by key {}",
            cyclepool_shared::KeyId::of(&signature.public_key)
        );
    }
    Ok(())
}

/// `cyclepool job list`.
pub fn list(context: &Context) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?.get("/jobs")?;
    if context.json {
        return print_answer(&answer);
    }
    let jobs: Vec<JobSummary> = answer.parse()?;
    if jobs.is_empty() {
        println!("no jobs");
        return Ok(());
    }
    println!(
        "{:>6}  {:<9}  {:<9}  {:>6}  {:>15}  {:>6}  TITLE",
        "ID", "STATUS", "REVIEW", "LOG", "VALIDATED/UNITS", "FAILED"
    );
    for job in jobs {
        println!(
            "{:>6}  {:<9}  {:<9}  {:>6}  {:>15}  {:>6}  {}",
            job.job_id,
            status_name(&job),
            review_word(&job.review),
            job.log_seq
                .map_or_else(|| "-".to_owned(), |seq| seq.to_string()),
            format!("{}/{}", job.progress.validated, job.progress.units),
            job.progress.failed,
            shorten(&job.title, 60)
        );
        // The portal's reason on a line of its own: it is what the distributor must act on.
        if let Review::Rejected { reason } | Review::Withdrawn { reason } = &job.review {
            println!("{:>6}  {}: {reason}", "", review_word(&job.review));
        }
    }
    Ok(())
}

fn status_name(job: &JobSummary) -> String {
    // The server's own spelling ("active", "paused", "cancelled").
    serde_json::to_value(job.status)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", job.status))
}

/// `cyclepool job status`.
pub fn status(context: &Context, id: JobId) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?.get(&format!("/jobs/{id}"))?;
    if context.json {
        return print_answer(&answer);
    }
    print_summary(&answer.parse()?);
    Ok(())
}

fn print_summary(job: &JobSummary) {
    let progress = &job.progress;
    println!("job {}: {}", job.job_id, job.title);
    println!("  status             {}", status_name(job));
    println!(
        "  review             {}",
        review_text(&job.review, job.log_seq)
    );
    println!("  category           {}", category_name(job.category));
    println!("  units              {}", progress.units);
    println!("  results            {}", progress.results);
    println!(
        "  validated          {}{}",
        progress.validated,
        percent(progress.validated, progress.units)
    );
    println!("  failed             {}", progress.failed);
    println!("  leased             {}", progress.leased);
    println!("  active volunteers  {}", progress.active_volunteers);
    println!("  priority, weight   {}, {}", job.priority, job.weight);
    if let Some(group) = job.group {
        println!("  group              {group}");
    }
    match job.signed_by {
        Some(key) => println!("  signed by key      {key}"),
        None => println!("  signed by key      (unsigned)"),
    }
    println!("  module             {}", job.module_sha256);
    println!("  created            {}", utc(job.created_ms));
    println!("  expires            {}", utc(job.expires_ms));
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return String::new();
    }
    format!(" ({:.1} %)", part as f64 * 100.0 / whole as f64)
}

/// `cyclepool job pause|resume|cancel`: `action` is the path's last segment.
pub fn change(context: &Context, id: JobId, action: &str) -> anyhow::Result<()> {
    let answer =
        portal_with_token(context)?.send_empty(Method::POST, &format!("/jobs/{id}/{action}"))?;
    if context.json {
        return print_answer(&answer);
    }
    let job: JobSummary = answer.parse()?;
    println!("job {} is {}", job.job_id, status_name(&job));
    Ok(())
}

/// `cyclepool job failures`.
pub fn failures(context: &Context, id: JobId) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?.get(&format!("/jobs/{id}/failures"))?;
    if context.json {
        return print_answer(&answer);
    }
    let failures: JobFailures = answer.parse()?;
    if failures.failed_units.is_empty() {
        println!("no failed units");
    } else {
        let units: Vec<String> = failures.failed_units.iter().map(u64::to_string).collect();
        println!(
            "{} failed unit(s): {}",
            failures.failed_units.len(),
            units.join(", ")
        );
    }
    if failures.reports.is_empty() {
        println!("no reports");
    }
    for report in &failures.reports {
        let kind = serde_json::to_value(report.kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", report.kind));
        println!(
            "{}  unit {}  {}  volunteer {}: {}",
            utc(report.received_ms),
            report
                .unit
                .map_or_else(|| "-".to_owned(), |unit| unit.to_string()),
            kind,
            shorten(&report.volunteer.to_string(), 17),
            report.message
        );
    }
    Ok(())
}

/// `cyclepool job results`.
pub fn results(
    context: &Context,
    id: JobId,
    out: Option<&Path>,
    format: ResultsFormat,
) -> anyhow::Result<()> {
    let portal = portal_with_token(context)?;
    let path = match format {
        ResultsFormat::Jsonl => format!("/jobs/{id}/results"),
        ResultsFormat::Tar => format!("/jobs/{id}/results.tar"),
    };
    let response = portal.download(&path)?;
    let copy = |output: &mut dyn io::Write| match format {
        ResultsFormat::Jsonl => results::copy_verified_lines(response, output),
        ResultsFormat::Tar => results::copy_bytes(response, output),
    };
    let written: Written = match out {
        Some(path) => results::into_file(path, |file| copy(file))?,
        None => copy(&mut BufWriter::new(io::stdout().lock()))?,
    };
    let destination = out.map_or_else(
        || "standard output".to_owned(),
        |path| path.display().to_string(),
    );
    // On standard error: standard output may be the results themselves.
    match format {
        ResultsFormat::Jsonl => eprintln!(
            "{} result(s) of job {id} written to {destination}; every output's SHA-256 and volunteer signature verified",
            written.count
        ),
        ResultsFormat::Tar => eprintln!(
            "{} bytes of job {id}'s results archive written to {destination} (check it with `sha256sum -c SHA256SUMS` after extracting)",
            written.count
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_are_the_portal_s() {
        for category in Category::ALL {
            assert_eq!(
                serde_json::to_value(category).unwrap(),
                category_name(category),
                "{category:?}"
            );
            assert_eq!(category_named(category_name(category)), Ok(category));
        }
        assert_eq!(
            category_named("computer-science"),
            Ok(Category::ComputerScience)
        );
        assert!(category_named("alchemy").is_err());
    }

    #[test]
    fn a_review_reads_as_a_sentence_with_its_reason_and_log_entry() {
        assert_eq!(
            review_text(&Review::Approved, Some(7)),
            "published (public log entry 7)"
        );
        assert_eq!(
            review_text(&Review::Pending, None),
            "waiting for the portal's review"
        );
        let rejected = Review::Rejected {
            reason: "no contact address".into(),
        };
        assert_eq!(
            review_text(&rejected, None),
            "rejected by the portal: no contact address"
        );
        assert_eq!(review_word(&rejected), "rejected");
    }
}
