//! `cyclepool admin`: the portal operator's due diligence from a terminal (the review queue,
//! distributor accounts, their signing keys, volunteers' abuse reports), with the admin token.
//!
//! The admin token comes from `CYCLEPOOL_TOKEN` or from `cyclepool admin login` (standard
//! input), never from an argument, and is kept apart from the distributor's token in the
//! credentials file, so that an admin command never sends a distributor's token by accident
//! and the other commands never send the admin's.

use std::io::{self, BufRead as _, IsTerminal as _};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use cyclepool_shared::distributor::{
    AbuseReport, AccountId, AccountInfo, AccountSettings, DistributorKeyInfo, JobSummary, Reason,
    ReportAction, ResolveReport,
};
use cyclepool_shared::{JobId, KeyId};
use reqwest::{Method, StatusCode};

use crate::account::warn_if_cleartext;
use crate::files::{self, Credentials};
use crate::jobs::{category_name, review_text};
use crate::output::{print_answer, shorten, utc};
use crate::portal::{Answer, Portal, PortalError};
use crate::{Context, TOKEN_ENV};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Store the portal's admin token for later admin commands (read from standard input).
    Login,
    /// Forget the stored admin token of this portal.
    Logout,
    /// Jobs waiting for review, oldest first.
    Review,
    /// Publish a job waiting for review (recorded in the public log).
    Approve {
        /// The job's number.
        job: u64,
    },
    /// Refuse a job waiting for review; its distributor sees the reason.
    Reject {
        job: u64,
        /// Why (3 to 500 characters), shown to the distributor.
        #[arg(long)]
        reason: String,
    },
    /// Stop serving a published job; the reason goes to the public log.
    Withdraw {
        job: u64,
        /// Why (3 to 500 characters), shown to the distributor and in the public log.
        #[arg(long)]
        reason: String,
    },
    /// Every distributor account.
    Accounts,
    /// Publish an account's jobs without review (with --off: review them again).
    Trust {
        /// The account's number.
        account: u64,
        /// Stop trusting the account.
        #[arg(long)]
        off: bool,
    },
    /// Suspend an account: it can no longer sign in or use its tokens, its published jobs
    /// are withdrawn (logged) and its waiting ones rejected.
    Suspend {
        account: u64,
        /// Why (3 to 500 characters), written to the public log with each withdrawal.
        #[arg(long)]
        reason: String,
    },
    /// Lift a suspension. Withdrawn jobs stay withdrawn until approved again.
    Reinstate { account: u64 },
    /// Revoke a distributor's signing key: every job it declared is withdrawn (logged).
    RevokeKey {
        /// The key id (16 hex digits), as `admin accounts --json` or the public log shows it.
        key_id: KeyId,
        /// Why (3 to 500 characters), written to the public log.
        #[arg(long)]
        reason: String,
    },
    /// Volunteers' abuse reports, newest first: the open ones, or with --all every one.
    Reports {
        #[arg(long)]
        all: bool,
    },
    /// Decide an abuse report.
    Resolve {
        /// The report's number, as `admin reports` shows it.
        report: u64,
        /// What to do about the report's job.
        #[arg(long, value_enum)]
        action: ResolveAction,
        /// A note kept with the decision (and in the public log with a withdrawal).
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// `admin resolve --action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolveAction {
    /// Nothing wrong found.
    Dismiss,
    /// Withdraw the reported job (logged).
    #[value(alias = "withdraw_job")]
    WithdrawJob,
    /// Suspend the job's distributor, withdrawing all its jobs (logged).
    #[value(alias = "suspend_distributor")]
    SuspendDistributor,
}

impl From<ResolveAction> for ReportAction {
    fn from(action: ResolveAction) -> Self {
        match action {
            ResolveAction::Dismiss => ReportAction::Dismiss,
            ResolveAction::WithdrawJob => ReportAction::WithdrawJob,
            ResolveAction::SuspendDistributor => ReportAction::SuspendDistributor,
        }
    }
}

/// Runs one admin command.
pub fn run(context: &Context, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Login => login(context),
        AdminCommand::Logout => logout(context),
        AdminCommand::Review => review(context),
        AdminCommand::Approve { job } => approve(context, JobId(job)),
        AdminCommand::Reject { job, reason } => {
            take_down(context, JobId(job), "reject", "rejected", &reason)
        }
        AdminCommand::Withdraw { job, reason } => {
            take_down(context, JobId(job), "withdraw", "withdrawn", &reason)
        }
        AdminCommand::Accounts => accounts(context),
        AdminCommand::Trust { account, off } => set_account(
            context,
            AccountId(account),
            AccountSettings {
                trusted: Some(!off),
                ..AccountSettings::default()
            },
        ),
        AdminCommand::Suspend { account, reason } => set_account(
            context,
            AccountId(account),
            AccountSettings {
                suspended: Some(true),
                reason: Some(reason),
                ..AccountSettings::default()
            },
        ),
        AdminCommand::Reinstate { account } => set_account(
            context,
            AccountId(account),
            AccountSettings {
                suspended: Some(false),
                ..AccountSettings::default()
            },
        ),
        AdminCommand::RevokeKey { key_id, reason } => revoke_key(context, key_id, &reason),
        AdminCommand::Reports { all } => reports(context, all),
        AdminCommand::Resolve {
            report,
            action,
            note,
        } => resolve(context, report, action, note),
    }
}

/// A client of the portal carrying the admin token: `CYCLEPOOL_TOKEN`, else the one stored
/// by `admin login` (never the distributor's stored token).
fn admin_portal(context: &Context) -> anyhow::Result<Admin> {
    let token = match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        Ok(_) | Err(std::env::VarError::NotPresent) => stored_admin_token(context)?,
        Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is not valid UTF-8"),
    };
    warn_if_cleartext(&context.portal_url);
    Ok(Admin(Portal::new(&context.portal_url, Some(&token))?))
}

fn stored_admin_token(context: &Context) -> anyhow::Result<String> {
    let path = files::credentials_path()?;
    let credentials = Credentials::load(&path)?;
    match credentials.admin_tokens.get(&context.portal_url) {
        Some(token) => Ok(token.clone()),
        None => bail!(
            "no admin token for {}: set {TOKEN_ENV} to the portal's admin token, or store it with `cyclepool admin login` (credentials are read from {})",
            context.portal_url,
            path.display()
        ),
    }
}

/// The portal with the admin token; its errors say what to do when the token is not the
/// admin's.
struct Admin(Portal);

impl Admin {
    fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.0.get(path).map_err(admin_error)
    }

    fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<Answer> {
        self.0.send_json(method, path, body).map_err(admin_error)
    }

    fn send_empty(&self, method: Method, path: &str) -> anyhow::Result<Answer> {
        self.0.send_empty(method, path).map_err(admin_error)
    }
}

/// Adds advice to the refusals an admin command meets when its token is not the admin's.
fn admin_error(err: PortalError) -> anyhow::Error {
    match err.status() {
        Some(StatusCode::FORBIDDEN) if err.code() == Some("forbidden") => err.with_hint(
            "admin commands need the portal's admin token (printed at the server's first start; \
             `cyclepool-server admin-token` makes a new one), not a distributor's API token",
        ),
        Some(StatusCode::UNAUTHORIZED) => err.with_hint(
            "the admin token is not valid (`cyclepool-server admin-token` makes a new one)",
        ),
        _ => err.into(),
    }
}

/// `cyclepool admin login`: reads the token from standard input, checks it with the portal,
/// and stores it.
fn login(context: &Context) -> anyhow::Result<()> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        // The terminal echoes what is typed: pasting is expected, and piping works too.
        eprint!("admin token for {} (then Enter): ", context.portal_url);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the admin token from standard input")?;
    let token = line.trim();
    if token.is_empty() {
        bail!("no admin token on standard input (e.g. `cyclepool admin login < admin-token.txt`)");
    }
    warn_if_cleartext(&context.portal_url);
    // Checked before it is stored, so that a mistyped token is not kept.
    Admin(Portal::new(&context.portal_url, Some(token))?).get("/admin/review")?;
    let path = files::credentials_path()?;
    let mut credentials = Credentials::load(&path)?;
    credentials
        .admin_tokens
        .insert(context.portal_url.clone(), token.to_owned());
    credentials.save(&path)?;
    println!(
        "stored the admin token for {} in {}",
        context.portal_url,
        path.display()
    );
    Ok(())
}

/// `cyclepool admin logout`.
fn logout(context: &Context) -> anyhow::Result<()> {
    let path = files::credentials_path()?;
    let mut credentials = Credentials::load(&path)?;
    if credentials
        .admin_tokens
        .remove(&context.portal_url)
        .is_none()
    {
        println!("no admin token stored for {}", context.portal_url);
        return Ok(());
    }
    credentials.save(&path)?;
    println!(
        "removed the admin token for {} from {}",
        context.portal_url,
        path.display()
    );
    Ok(())
}

/// `cyclepool admin review`.
fn review(context: &Context) -> anyhow::Result<()> {
    let answer = admin_portal(context)?.get("/admin/review")?;
    if context.json {
        return print_answer(&answer);
    }
    let queue: Vec<JobSummary> = answer.parse()?;
    if queue.is_empty() {
        println!("no jobs waiting for review");
        return Ok(());
    }
    for job in &queue {
        print_pending(job);
    }
    println!(
        "{} job(s) waiting: `cyclepool admin approve ID`, or `cyclepool admin reject ID --reason …`",
        queue.len()
    );
    Ok(())
}

fn print_pending(job: &JobSummary) {
    println!("job {}: {}", job.job_id, job.title);
    println!(
        "  distributor  {}",
        distributor(&job.distributor, job.owner)
    );
    println!(
        "  units        {}, category {}, created {}",
        job.progress.units,
        category_name(job.category),
        utc(job.created_ms)
    );
    println!("  module       {}", job.module_sha256);
    match job.signed_by {
        Some(key) => println!("  declared by  key {key}"),
        None => println!("  declared by  (unsigned)"),
    }
    if let Some(group) = job.group {
        println!("  group        {group} (restricted)");
    }
    if !job.description.trim().is_empty() {
        println!("  description  {}", shorten(job.description.trim(), 200));
    }
}

fn distributor(name: &str, owner: Option<AccountId>) -> String {
    match owner {
        Some(account) => format!("{name} (account {account})"),
        None => format!("{name} (the portal's own)"),
    }
}

/// `cyclepool admin approve`.
fn approve(context: &Context, job: JobId) -> anyhow::Result<()> {
    let answer =
        admin_portal(context)?.send_empty(Method::POST, &format!("/admin/jobs/{job}/approve"))?;
    if context.json {
        return print_answer(&answer);
    }
    let approved: JobSummary = answer.parse()?;
    println!(
        "job {} approved: {}",
        approved.job_id,
        review_text(&approved.review, approved.log_seq)
    );
    Ok(())
}

/// `cyclepool admin reject|withdraw`: `action` is the path's last segment, `done` its past.
fn take_down(
    context: &Context,
    job: JobId,
    action: &str,
    done: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let request = Reason {
        reason: reason.to_owned(),
    };
    let answer = admin_portal(context)?.send_json(
        Method::POST,
        &format!("/admin/jobs/{job}/{action}"),
        &request,
    )?;
    if context.json {
        return print_answer(&answer);
    }
    let summary: JobSummary = answer.parse()?;
    println!("job {} {done}: {}", summary.job_id, reason.trim());
    Ok(())
}

/// `cyclepool admin accounts`.
fn accounts(context: &Context) -> anyhow::Result<()> {
    let answer = admin_portal(context)?.get("/admin/accounts")?;
    if context.json {
        return print_answer(&answer);
    }
    let accounts: Vec<AccountInfo> = answer.parse()?;
    if accounts.is_empty() {
        println!("no accounts");
        return Ok(());
    }
    println!(
        "{:>6}  {:<7}  {:<9}  {:<5}  {:>4}  NAME (ORGANISATION) CONTACT",
        "ID", "TRUSTED", "STATE", "TERMS", "KEYS"
    );
    for account in &accounts {
        println!(
            "{:>6}  {:<7}  {:<9}  {:<5}  {:>4}  {} ({}) {}",
            account.account_id,
            if account.trusted { "yes" } else { "no" },
            if account.suspended {
                "suspended"
            } else {
                "active"
            },
            account
                .terms_accepted
                .map_or_else(|| "-".to_owned(), |version| format!("v{version}")),
            account.keys.iter().filter(|key| !key.revoked).count(),
            shorten(&account.name, 40),
            shorten(&account.organisation, 40),
            account.contact
        );
    }
    Ok(())
}

/// `cyclepool admin trust|suspend|reinstate`.
fn set_account(context: &Context, id: AccountId, settings: AccountSettings) -> anyhow::Result<()> {
    let answer = admin_portal(context)?.send_json(
        Method::PATCH,
        &format!("/admin/accounts/{id}"),
        &settings,
    )?;
    if context.json {
        return print_answer(&answer);
    }
    let account: AccountInfo = answer.parse()?;
    let who = format!("account {} ({})", account.account_id, account.name);
    match (settings.trusted, settings.suspended) {
        (Some(true), _) => println!("{who} is trusted: its new jobs are published without review"),
        (Some(false), _) => println!("{who} is no longer trusted: its new jobs wait for review"),
        (None, Some(true)) => println!(
            "{who} is suspended: its published jobs are withdrawn (logged), its waiting jobs rejected"
        ),
        (None, Some(false)) => {
            println!("{who} is reinstated; its withdrawn jobs stay withdrawn until approved again")
        }
        (None, None) => println!("{who} is unchanged"),
    }
    Ok(())
}

/// `cyclepool admin revoke-key`.
fn revoke_key(context: &Context, key_id: KeyId, reason: &str) -> anyhow::Result<()> {
    let request = Reason {
        reason: reason.to_owned(),
    };
    let answer = admin_portal(context)?.send_json(
        Method::POST,
        &format!("/admin/keys/{key_id}/revoke"),
        &request,
    )?;
    if context.json {
        return print_answer(&answer);
    }
    let key: DistributorKeyInfo = answer.parse()?;
    println!(
        "revoked key {}{}: the jobs it declared are withdrawn and the revocation is in the public log",
        key.key_id,
        if key.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", key.label)
        }
    );
    Ok(())
}

/// `cyclepool admin reports`.
fn reports(context: &Context, all: bool) -> anyhow::Result<()> {
    let answer = admin_portal(context)?.get(&format!("/admin/reports?open={}", !all))?;
    if context.json {
        return print_answer(&answer);
    }
    let reports: Vec<AbuseReport> = answer.parse()?;
    if reports.is_empty() {
        println!("{}", if all { "no reports" } else { "no open reports" });
        return Ok(());
    }
    for report in &reports {
        print_report(report);
    }
    Ok(())
}

fn print_report(report: &AbuseReport) {
    let job = match (&report.job_title, &report.distributor) {
        (Some(title), Some(name)) => format!(
            "job {} \"{}\" by {}",
            report.job_id,
            shorten(title, 60),
            distributor(name, report.owner)
        ),
        _ => format!("job {} (no longer exists)", report.job_id),
    };
    println!(
        "report {}  {}  {job}",
        report.report_id,
        utc(report.received_ms)
    );
    println!(
        "  volunteer {}: {}",
        shorten(&report.volunteer.to_string(), 17),
        report.message
    );
    match &report.resolution {
        None => println!("  open"),
        Some(resolution) => println!(
            "  resolved {}: {}{}",
            utc(resolution.resolved_ms),
            action_name(resolution.action),
            if resolution.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", resolution.note)
            }
        ),
    }
}

fn action_name(action: ReportAction) -> &'static str {
    match action {
        ReportAction::Dismiss => "dismissed",
        ReportAction::WithdrawJob => "job withdrawn",
        ReportAction::SuspendDistributor => "distributor suspended",
    }
}

/// `cyclepool admin resolve`.
fn resolve(
    context: &Context,
    report: u64,
    action: ResolveAction,
    note: String,
) -> anyhow::Result<()> {
    let request = ResolveReport {
        action: action.into(),
        note,
    };
    let answer = admin_portal(context)?.send_json(
        Method::POST,
        &format!("/admin/reports/{report}/resolve"),
        &request,
    )?;
    if context.json {
        return print_answer(&answer);
    }
    let resolved: AbuseReport = answer.parse()?;
    print_report(&resolved);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_actions_are_sent_in_the_portal_s_spelling() {
        for (action, json) in [
            (ResolveAction::Dismiss, "dismiss"),
            (ResolveAction::WithdrawJob, "withdraw_job"),
            (ResolveAction::SuspendDistributor, "suspend_distributor"),
        ] {
            let sent = serde_json::to_value(ReportAction::from(action)).unwrap();
            assert_eq!(sent, json);
        }
    }

    #[test]
    fn a_refusal_of_a_distributor_s_token_says_what_is_needed() {
        let refusal = PortalError::Api {
            status: StatusCode::FORBIDDEN,
            code: "forbidden".into(),
            message: "this endpoint is for the portal's admin".into(),
            method: Method::GET,
            url: "http://127.0.0.1:8080/api/v1/admin/review".into(),
        };
        let message = format!("{:#}", admin_error(refusal));
        assert!(
            message.starts_with("forbidden: this endpoint is for the portal's admin (HTTP 403"),
            "{message}"
        );
        assert!(message.contains("admin token"), "{message}");
        assert_eq!(message.matches("forbidden").count(), 1, "{message}");
        let conflict = PortalError::Api {
            status: StatusCode::CONFLICT,
            code: "conflict".into(),
            message: "job 3 is not published".into(),
            method: Method::POST,
            url: "http://127.0.0.1:8080/api/v1/admin/jobs/3/withdraw".into(),
        };
        let message = format!("{:#}", admin_error(conflict));
        assert!(!message.contains("admin token"), "{message}");
    }
}
