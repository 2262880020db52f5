//! `cyclepool log verify|show`: checks the portal's public transparency log as a volunteer's
//! browser does, and remembers what it checked so that a later run detects a rewritten past.
//!
//! The portal's keys are pinned on first use (`portal-keys.json`, with [`PortalKeys::pin`]:
//! later keys must be endorsed by pinned ones), every entry is checked against them with
//! [`verify_chain`], and the head verified last is kept per portal (`log-heads.json`). A later
//! run must find that head again at the same position: since every entry links to the digest
//! of the one before, an unchanged head vouches for everything before it, and a portal that
//! forked or rewrote its history cannot hide it from anyone holding an older head.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;
use cyclepool_shared::manifest::{PortalKeys, SignedManifest};
use cyclepool_shared::transparency::{
    LogEntry, LogError, LogEvent, LogHead, LogPage, MAX_LOG_PAGE, check_job, verify_chain,
};
use cyclepool_shared::{JobId, KeyId, Sha256Digest};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::files::{self, load_private_json, save_private_json};
use crate::output::{print_value, utc};
use crate::portal::Portal;

/// Where a portal publishes its keys, from its root.
const KEYS_DOCUMENT: &str = "/.well-known/cyclepool-keys.json";

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check the whole log: portal keys pinned, every entry linked and signed, and the head
    /// verified before still in place.
    Verify {
        /// Check every entry from the first, not only those after the head verified before.
        #[arg(long)]
        from_start: bool,
    },
    /// Print the log's entries (checked as `verify` does), or those about one job.
    Show {
        /// Only this job's publication and what revoked it since, checked against the job's
        /// manifest.
        #[arg(long)]
        job: Option<u64>,
    },
}

/// Runs one log command.
pub fn run(context: &Context, command: LogCommand) -> anyhow::Result<()> {
    // The log and the keys are public: no token is sent.
    let portal = Portal::new(&context.portal_url, None)?;
    match command {
        LogCommand::Verify { from_start } => verify(context, &portal, from_start),
        LogCommand::Show { job: None } => show_all(context, &portal),
        LogCommand::Show { job: Some(job) } => show_job(context, &portal, JobId(job)),
    }
}

/// Each portal's pinned keys, by portal URL (`portal-keys.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PinnedKeys {
    #[serde(default)]
    portals: BTreeMap<String, PortalKeys>,
}

/// The head of each portal's log verified last, by portal URL (`log-heads.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct LogHeads {
    #[serde(default)]
    portals: BTreeMap<String, LogHead>,
}

/// The keys the portal offers, pinned as a browser pins them: trusted on first use, and
/// afterwards only the pinned keys and those they endorse. Returns the trusted keys.
fn trusted_keys(context: &Context, portal: &Portal) -> anyhow::Result<PortalKeys> {
    let offered: PortalKeys = portal.get_document(KEYS_DOCUMENT)?.parse()?;
    let path = files::pinned_keys_path()?;
    let mut pinned_file: PinnedKeys = load_private_json(&path, "pinned keys file")?;
    let pinned = pinned_file
        .portals
        .get(&context.portal_url)
        .cloned()
        .unwrap_or_default();
    let trusted = PortalKeys::pin(&pinned, &offered).map_err(|err| {
        anyhow::anyhow!(
            "the keys at {}{KEYS_DOCUMENT} are not the ones pinned for this portal: {err}. \
             A key that no pinned key endorses may mean someone else answers for the portal; \
             if its operator really replaced its keys, remove the portal's entry from {} and \
             run again",
            context.portal_url,
            path.display()
        )
    })?;
    if trusted.keys.is_empty() {
        anyhow::bail!(
            "{}{KEYS_DOCUMENT} lists no keys: nothing the log could be checked with",
            context.portal_url
        );
    }
    if pinned.keys.is_empty() {
        note(
            context,
            &format!(
                "first use of {}: trusting its key(s) {} and pinning them in {}",
                context.portal_url,
                key_ids(&trusted),
                path.display()
            ),
        );
    } else {
        let new: Vec<String> = trusted
            .keys
            .iter()
            .filter(|key| !pinned.keys.iter().any(|old| old.key_id == key.key_id))
            .map(|key| key.key_id.to_string())
            .collect();
        if !new.is_empty() {
            note(
                context,
                &format!(
                    "pinned the portal's new key(s), endorsed by keys pinned before: {}",
                    new.join(", ")
                ),
            );
        }
    }
    if trusted != pinned {
        pinned_file
            .portals
            .insert(context.portal_url.clone(), trusted.clone());
        save_private_json(&path, &pinned_file)?;
    }
    Ok(trusted)
}

fn key_ids(keys: &PortalKeys) -> String {
    let ids: Vec<String> = keys.keys.iter().map(|key| key.key_id.to_string()).collect();
    ids.join(", ")
}

/// A remark that is not the command's answer: on standard output with the summary, on
/// standard error with `--json` (whose output stays one JSON document).
fn note(context: &Context, text: &str) {
    if context.json {
        eprintln!("note: {text}");
    } else {
        println!("{text}");
    }
}

/// Where a check of the log begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Check every entry from this one (from 0: the chain's first link too; from a later
    /// entry, its link to the one before is taken on trust).
    At(u64),
    /// Continue after the head verified before: the first entry fed must be that head.
    AfterKnown(LogHead),
}

/// Why a log was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum LogCheckError {
    #[error("the public log does not verify: {0}")]
    Chain(#[from] LogError),
    #[error("the portal served log entry {found} where entry {expected} was expected")]
    Gap { expected: u64, found: u64 },
    #[error(
        "log entry {seq} now has digest {found}, but this machine verified digest {expected} \
         at that position before: the portal forked or rewrote its log"
    )]
    Fork {
        seq: u64,
        expected: Sha256Digest,
        found: Sha256Digest,
    },
    #[error(
        "the log now holds {size} entries, but this machine verified entry {seq} before: the \
         portal truncated or rewrote its log"
    )]
    Truncated { seq: u64, size: u64 },
}

/// Checks a log fed page by page, in order: numbering, links and signatures (with
/// [`verify_chain`]), and that the head verified before is still where it was. Pure, so
/// that it can be tested without a portal.
struct ChainCheck<'a> {
    keys: &'a PortalKeys,
    /// The head verified on an earlier run, to be found again.
    known: Option<LogHead>,
    /// Whether `known` was found, unchanged.
    known_found: bool,
    /// Whether the first entry fed must be `known` (see [`Start::AfterKnown`]).
    anchored: bool,
    /// The position of the first entry fed.
    start: u64,
    /// The position of the next entry expected.
    next: u64,
    /// The last entry checked.
    head: Option<LogHead>,
    /// Entries checked (the anchor, checked on an earlier run, not counted).
    checked: u64,
}

impl<'a> ChainCheck<'a> {
    fn new(keys: &'a PortalKeys, known: Option<LogHead>, start: Start) -> Self {
        let (start, anchored, known) = match start {
            Start::At(seq) => (seq, false, known),
            Start::AfterKnown(head) => (head.seq, true, Some(head)),
        };
        Self {
            keys,
            known,
            known_found: false,
            anchored,
            start,
            next: start,
            head: None,
            checked: 0,
        }
    }

    /// Checks the next run of entries.
    fn feed(&mut self, entries: &[LogEntry]) -> Result<(), LogCheckError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        // `verify_chain` takes the first entry's position as given when it has no head.
        if first.seq != self.next {
            return Err(LogCheckError::Gap {
                expected: self.next,
                found: first.seq,
            });
        }
        let mut rest = entries;
        if self.anchored && self.head.is_none() {
            self.check_known(first)?;
            self.head = Some(first.head());
            rest = &entries[1..];
        }
        self.head = verify_chain(rest, self.head, self.keys)?;
        if let Some(known) = self.known.filter(|_| !self.known_found)
            && let Some(entry) = rest.iter().find(|entry| entry.seq == known.seq)
        {
            self.check_known(entry)?;
        }
        self.checked += rest.len() as u64;
        self.next = self
            .head
            .map_or(self.next, |head| head.seq.saturating_add(1));
        Ok(())
    }

    fn check_known(&mut self, entry: &LogEntry) -> Result<(), LogCheckError> {
        let Some(known) = self.known else {
            return Ok(());
        };
        let found = entry.digest();
        if entry.seq != known.seq || found != known.sha256 {
            return Err(LogCheckError::Fork {
                seq: known.seq,
                expected: known.sha256,
                found,
            });
        }
        self.known_found = true;
        Ok(())
    }

    /// The head after everything fed, once the log (of `size` entries) is read to its end.
    /// Fails if the head verified before should have been met (it is at or after the start)
    /// but was not: the log no longer reaches it.
    fn finish(&self, size: u64) -> Result<Option<LogHead>, LogCheckError> {
        if let Some(known) = self.known
            && !self.known_found
            && known.seq >= self.start
        {
            return Err(LogCheckError::Truncated {
                seq: known.seq,
                size,
            });
        }
        Ok(self.head)
    }
}

/// What reading the log found.
struct Read {
    /// The log's size when its last page was read.
    size: u64,
    head: Option<LogHead>,
    checked: u64,
}

/// Reads the log from `start` to its end, page by page, checking each page and handing its
/// entries (the anchor excluded) to `visit`.
fn read_log(
    portal: &Portal,
    keys: &PortalKeys,
    known: Option<LogHead>,
    start: Start,
    first_page: Option<LogPage>,
    mut visit: impl FnMut(&LogEntry),
) -> anyhow::Result<Read> {
    let mut check = ChainCheck::new(keys, known, start);
    let mut from = check.next;
    let mut page = first_page;
    loop {
        let current = match page.take() {
            Some(page) => page,
            None => portal
                .get(&format!("/log?from={from}&limit={MAX_LOG_PAGE}"))?
                .parse::<LogPage>()?,
        };
        let before = check.checked;
        check.feed(&current.entries)?;
        let fresh = (check.checked - before) as usize;
        for entry in &current.entries[current.entries.len() - fresh..] {
            visit(entry);
        }
        if current.entries.is_empty() {
            if from < current.size {
                anyhow::bail!(
                    "the portal says its log holds {} entries but served none from entry {from}",
                    current.size
                );
            }
            let head = check.finish(current.size)?;
            return Ok(Read {
                size: current.size,
                head,
                checked: check.checked,
            });
        }
        from = check.next;
        if from >= current.size {
            let head = check.finish(current.size)?;
            return Ok(Read {
                size: current.size,
                head,
                checked: check.checked,
            });
        }
    }
}

fn load_heads(path: &Path) -> anyhow::Result<LogHeads> {
    load_private_json(path, "log heads file")
}

/// Remembers `head` as the portal's verified head.
fn remember(
    context: &Context,
    path: &Path,
    heads: &mut LogHeads,
    head: Option<LogHead>,
) -> anyhow::Result<()> {
    let Some(head) = head else {
        return Ok(());
    };
    if heads.portals.get(&context.portal_url) == Some(&head) {
        return Ok(());
    }
    heads.portals.insert(context.portal_url.clone(), head);
    save_private_json(path, heads)
}

/// Explains where the head that no longer matches is kept.
fn with_heads_file(err: anyhow::Error, path: &Path) -> anyhow::Error {
    match err.downcast_ref::<LogCheckError>() {
        Some(LogCheckError::Fork { .. } | LogCheckError::Truncated { .. }) => anyhow::anyhow!(
            "{err} (the head verified before is kept in {}; it is left as it was)",
            path.display()
        ),
        _ => err,
    }
}

/// `cyclepool log verify`.
fn verify(context: &Context, portal: &Portal, from_start: bool) -> anyhow::Result<()> {
    let keys = trusted_keys(context, portal)?;
    let path = files::log_heads_path()?;
    let mut heads = load_heads(&path)?;
    let known = heads.portals.get(&context.portal_url).copied();
    let start = match known {
        Some(head) if !from_start => Start::AfterKnown(head),
        _ => Start::At(0),
    };
    let read = read_log(portal, &keys, known, start, None, |_| {})
        .map_err(|err| with_heads_file(err, &path))?;
    remember(context, &path, &mut heads, read.head)?;
    if context.json {
        return print_value(&serde_json::json!({
            "portal": context.portal_url,
            "entries": read.size,
            "checked": read.checked,
            "head": read.head,
            "previous_head": known,
        }));
    }
    match (read.head, known) {
        (None, _) => println!(
            "the public log of {} is empty: nothing to verify yet",
            context.portal_url
        ),
        (Some(head), None) => {
            println!(
                "verified the public log of {}: {} entries, all checked",
                context.portal_url, read.size
            );
            println!("head: entry {}, sha256 {}", head.seq, head.sha256);
            println!("remembered in {}", path.display());
        }
        (Some(head), Some(previous)) => {
            println!(
                "verified the public log of {}: {} entries ({} checked now); it still holds entry {} as verified before",
                context.portal_url, read.size, read.checked, previous.seq
            );
            println!("head: entry {}, sha256 {}", head.seq, head.sha256);
        }
    }
    Ok(())
}

/// `cyclepool log show`.
fn show_all(context: &Context, portal: &Portal) -> anyhow::Result<()> {
    let keys = trusted_keys(context, portal)?;
    let path = files::log_heads_path()?;
    let mut heads = load_heads(&path)?;
    let known = heads.portals.get(&context.portal_url).copied();
    let mut entries = Vec::new();
    let read = read_log(portal, &keys, known, Start::At(0), None, |entry| {
        entries.push(entry.clone());
    })
    .map_err(|err| with_heads_file(err, &path))?;
    remember(context, &path, &mut heads, read.head)?;
    if context.json {
        return print_value(&serde_json::to_value(&entries)?);
    }
    for entry in &entries {
        println!("{}", describe(entry));
    }
    match read.head {
        Some(head) => println!(
            "{} entries, verified; head: entry {}, sha256 {}",
            read.size, head.seq, head.sha256
        ),
        None => println!("the public log is empty"),
    }
    Ok(())
}

/// `cyclepool log show --job`: the job's publication and what revoked it (or its key) since,
/// and its manifest checked against them as a browser checks it before running the job.
fn show_job(context: &Context, portal: &Portal, job: JobId) -> anyhow::Result<()> {
    let keys = trusted_keys(context, portal)?;
    let first_page: LogPage = portal
        .get(&format!("/log/jobs/{job}"))
        .map_err(|err| {
            if err.status() == Some(StatusCode::NOT_FOUND) {
                err.with_hint(format!(
                    "job {job} is not in the public log: it was never published (it may be \
                     waiting for review) or does not exist"
                ))
            } else {
                err.into()
            }
        })?
        .parse()?;
    let Some(start) = first_page.entries.first().map(|entry| entry.seq) else {
        anyhow::bail!("the portal served no log entries for job {job}");
    };
    let path = files::log_heads_path()?;
    let known = load_heads(&path)?.portals.get(&context.portal_url).copied();
    let mut entries = Vec::new();
    read_log(
        portal,
        &keys,
        known,
        Start::At(start),
        Some(first_page),
        |entry| entries.push(entry.clone()),
    )
    .map_err(|err| with_heads_file(err, &path))?;
    let relevant = job_entries(job, &entries)?;
    if context.json {
        return print_value(&serde_json::to_value(&relevant)?);
    }
    for entry in &relevant {
        println!("{}", describe(entry));
    }
    match portal.get(&format!("/jobs/{job}/manifest")) {
        Ok(answer) => {
            let signed: SignedManifest = answer.parse()?;
            let manifest = signed
                .open(&keys, now_ms()?)
                .with_context(|| format!("job {job}'s manifest does not verify"))?;
            let seq = check_job(&manifest, &entries)?;
            println!(
                "job {job}'s manifest matches its publication (entry {seq}), and nothing in the log revoked it since"
            );
        }
        // 404 for a job never published, 410 for one withdrawn since.
        Err(err) if matches!(err.status(), Some(StatusCode::NOT_FOUND | StatusCode::GONE)) => {
            println!("job {job}'s manifest is not served now (volunteers are not given it)");
        }
        Err(err) => return Err(err.into()),
    }
    Ok(())
}

/// The entries that concern `job`, from `entries` starting with its publication: the
/// publication, the job's revocations, and revocations of the key that declared it.
fn job_entries(job: JobId, entries: &[LogEntry]) -> anyhow::Result<Vec<LogEntry>> {
    let declared_by = match entries.first().map(|entry| &entry.event) {
        Some(LogEvent::Published {
            job: published,
            declared_by,
            ..
        }) if *published == job => *declared_by,
        _ => anyhow::bail!(
            "the portal's log entries for job {job} do not start with its publication"
        ),
    };
    Ok(entries
        .iter()
        .filter(|entry| match &entry.event {
            LogEvent::Published { job: other, .. } | LogEvent::Revoked { job: other, .. } => {
                *other == job
            }
            LogEvent::KeyRevoked { key, .. } => Some(*key) == declared_by,
        })
        .cloned()
        .collect())
}

/// One line about an entry.
fn describe(entry: &LogEntry) -> String {
    let what = match &entry.event {
        LogEvent::Published {
            job,
            title,
            distributor,
            owner,
            module_sha256,
            declared_by,
            ..
        } => format!(
            "published job {job} {title:?} by {distributor} ({}), module {module_sha256}, {}",
            owner.map_or_else(
                || "the portal's own".to_owned(),
                |owner| format!("account {owner}")
            ),
            declared_by.map_or_else(
                || "unsigned".to_owned(),
                |key| format!("declared by key {}", KeyId::of(&key))
            )
        ),
        LogEvent::Revoked { job, reason } => format!("revoked job {job}: {reason}"),
        LogEvent::KeyRevoked {
            key,
            account,
            reason,
        } => format!(
            "revoked key {} of account {account}: {reason}",
            KeyId::of(key)
        ),
    };
    format!("#{:<5} {}  {what}", entry.seq, utc(entry.at_ms))
}

fn now_ms() -> anyhow::Result<u64> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclepool_shared::distributor::AccountId;
    use cyclepool_shared::manifest::PortalKey;
    use cyclepool_shared::signing::SecretKey;

    fn portal() -> (SecretKey, PortalKeys) {
        let key = SecretKey::from_seed(&[3; 32]);
        let keys = PortalKeys {
            keys: vec![PortalKey::new(&key, 0, u64::MAX, None)],
            revoked: Vec::new(),
        };
        (key, keys)
    }

    fn published(job: u64) -> LogEvent {
        LogEvent::Published {
            job: JobId(job),
            title: format!("job {job}"),
            distributor: "lab".into(),
            owner: Some(AccountId(2)),
            module_sha256: Sha256Digest::of(b"module"),
            inputs_sha256: None,
            declared_by: None,
        }
    }

    fn chain(key: &SecretKey, events: Vec<LogEvent>) -> Vec<LogEntry> {
        let mut entries: Vec<LogEntry> = Vec::new();
        for (seq, event) in events.into_iter().enumerate() {
            let prev = entries
                .last()
                .map_or(Sha256Digest::from_bytes([0; 32]), LogEntry::digest);
            entries.push(LogEntry::sign(seq as u64, prev, 1_000, event, key));
        }
        entries
    }

    /// Feeds `pages` (ranges of `entries`) and finishes with the log's size.
    fn check(
        keys: &PortalKeys,
        known: Option<LogHead>,
        start: Start,
        pages: &[&[LogEntry]],
        size: u64,
    ) -> Result<(Option<LogHead>, u64), LogCheckError> {
        let mut check = ChainCheck::new(keys, known, start);
        for page in pages {
            check.feed(page)?;
        }
        Ok((check.finish(size)?, check.checked))
    }

    #[test]
    fn a_log_checks_page_by_page_and_later_from_the_head_verified_before() {
        let (key, keys) = portal();
        let entries = chain(&key, (0..5).map(published).collect());
        let (head, checked) = check(
            &keys,
            None,
            Start::At(0),
            &[&entries[..2], &entries[2..3]],
            3,
        )
        .unwrap();
        assert_eq!((head, checked), (Some(entries[2].head()), 3));
        // Later: from the head verified before, which is not counted again.
        let known = entries[2].head();
        let (head, checked) = check(
            &keys,
            Some(known),
            Start::AfterKnown(known),
            &[&entries[2..4], &entries[4..]],
            5,
        )
        .unwrap();
        assert_eq!((head, checked), (Some(entries[4].head()), 2));
        // Nothing new since.
        let (head, checked) = check(
            &keys,
            Some(known),
            Start::AfterKnown(known),
            &[&entries[2..3]],
            3,
        )
        .unwrap();
        assert_eq!((head, checked), (Some(known), 0));
        // From the start, finding the head verified before on the way.
        let (head, _) = check(&keys, Some(known), Start::At(0), &[&entries], 5).unwrap();
        assert_eq!(head, Some(entries[4].head()));
        // An empty log.
        assert_eq!(check(&keys, None, Start::At(0), &[], 0).unwrap(), (None, 0));
    }

    #[test]
    fn a_rewritten_or_shortened_history_is_refused() {
        let (key, keys) = portal();
        let entries = chain(&key, (0..4).map(published).collect());
        // The portal signs a different history: it verifies on its own, but not against the
        // head this machine verified before.
        let mut events: Vec<LogEvent> = (0..4).map(published).collect();
        events[1] = published(9);
        let forked = chain(&key, events);
        assert!(verify_chain(&forked, None, &keys).is_ok());
        let known = entries[2].head();
        for start in [Start::AfterKnown(known), Start::At(0)] {
            let pages: &[&[LogEntry]] = match start {
                Start::AfterKnown(_) => &[&forked[2..]],
                Start::At(_) => &[&forked],
            };
            assert!(matches!(
                check(&keys, Some(known), start, pages, 4),
                Err(LogCheckError::Fork { seq: 2, .. })
            ));
        }
        // Entries dropped from the end.
        assert_eq!(
            check(&keys, Some(known), Start::At(0), &[&entries[..2]], 2),
            Err(LogCheckError::Truncated { seq: 2, size: 2 })
        );
        assert_eq!(
            check(&keys, Some(known), Start::AfterKnown(known), &[], 2),
            Err(LogCheckError::Truncated { seq: 2, size: 2 })
        );
        // A gap between pages, and an edited entry.
        assert_eq!(
            check(
                &keys,
                None,
                Start::At(0),
                &[&entries[..1], &entries[2..]],
                4
            ),
            Err(LogCheckError::Gap {
                expected: 1,
                found: 2
            })
        );
        let mut edited = entries.clone();
        edited[3].at_ms += 1;
        assert_eq!(
            check(&keys, None, Start::At(0), &[&edited], 4),
            Err(LogCheckError::Chain(LogError::BadSignature { seq: 3 }))
        );
    }

    #[test]
    fn a_check_from_a_later_entry_tests_the_known_head_only_if_it_is_in_range() {
        let (key, keys) = portal();
        let entries = chain(&key, (0..4).map(published).collect());
        let old = entries[0].head();
        let (head, checked) = check(&keys, Some(old), Start::At(2), &[&entries[2..]], 4).unwrap();
        assert_eq!((head, checked), (Some(entries[3].head()), 2));
        let wrong = LogHead {
            seq: 3,
            sha256: Sha256Digest::of(b"another history"),
        };
        assert!(matches!(
            check(&keys, Some(wrong), Start::At(2), &[&entries[2..]], 4),
            Err(LogCheckError::Fork { seq: 3, .. })
        ));
    }

    #[test]
    fn a_job_s_entries_are_its_publication_and_revocations_of_it_or_its_key() {
        let (key, _) = portal();
        let declarer = SecretKey::from_seed(&[5; 32]).public_key();
        let other = SecretKey::from_seed(&[6; 32]).public_key();
        let mut first = published(1);
        if let LogEvent::Published { declared_by, .. } = &mut first {
            *declared_by = Some(declarer);
        }
        let entries = chain(
            &key,
            vec![
                first,
                published(2),
                LogEvent::Revoked {
                    job: JobId(2),
                    reason: "another job".into(),
                },
                LogEvent::KeyRevoked {
                    key: other,
                    account: AccountId(2),
                    reason: "another key".into(),
                },
                LogEvent::KeyRevoked {
                    key: declarer,
                    account: AccountId(2),
                    reason: "stolen".into(),
                },
                LogEvent::Revoked {
                    job: JobId(1),
                    reason: "abuse".into(),
                },
            ],
        );
        let seqs: Vec<u64> = job_entries(JobId(1), &entries)
            .unwrap()
            .iter()
            .map(|entry| entry.seq)
            .collect();
        assert_eq!(seqs, [0, 4, 5]);
        assert!(job_entries(JobId(2), &entries).is_err());
        let lines: Vec<String> = entries.iter().map(describe).collect();
        assert!(lines[0].contains("published job 1 \"job 1\" by lab (account 2)"));
        assert!(lines[0].contains(&format!("declared by key {}", KeyId::of(&declarer))));
        assert!(lines[1].contains("unsigned"));
        assert!(lines[2].ends_with("revoked job 2: another job"));
        assert!(lines[4].contains(&format!(
            "revoked key {} of account 2: stolen",
            KeyId::of(&declarer)
        )));
    }
}
