//! What the portal publishes: approving, rejecting and withdrawing jobs, the effects of
//! suspending a distributor or revoking its key, each change written with its entry in the
//! transparency log (one transaction), and the reconciliation at start that repairs what a
//! crash between two such steps left undone.

use cyclepool_shared::JobId;
use cyclepool_shared::distributor::{AccountId, DistributorKeyInfo, Review};
use cyclepool_shared::signing::SecretKey;
use cyclepool_shared::transparency::LogEvent;
use cyclepool_shared::{KeyId, PublicKey};

use crate::scheduler::Scheduler;
use crate::store::{JobRecord, Store, StoreError};

/// Publishes `job`: approved, served, and logged. Already published jobs are left as they
/// are (no second entry). Returns the record, or `None` for an unknown job.
pub fn approve(
    scheduler: &Scheduler,
    key: &SecretKey,
    job: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    let records = scheduler.update_jobs(
        &[job],
        None,
        |record| {
            if record.review == Review::Approved && record.log_seq.is_some() {
                return None;
            }
            record.review = Review::Approved;
            Some(record.published_event())
        },
        key,
    )?;
    Ok(records.into_iter().next())
}

/// Takes `jobs` out of service for `reason`: a job never published is rejected, a published
/// one withdrawn with a `revoked` entry in the log. Jobs already rejected or withdrawn keep
/// their first reason. `also` is logged first, in the same transaction (a key revocation: the
/// key is revoked before the jobs it declared).
pub fn withdraw(
    scheduler: &Scheduler,
    key: &SecretKey,
    jobs: &[JobId],
    reason: &str,
    also: Option<LogEvent>,
) -> Result<Vec<JobRecord>, StoreError> {
    scheduler.update_jobs(
        jobs,
        also,
        |record| match record.review {
            Review::Approved => {
                record.review = Review::Withdrawn {
                    reason: reason.to_owned(),
                };
                Some(LogEvent::Revoked {
                    job: record.id,
                    reason: reason.to_owned(),
                })
            }
            Review::Pending => {
                record.review = Review::Rejected {
                    reason: reason.to_owned(),
                };
                None
            }
            Review::Rejected { .. } | Review::Withdrawn { .. } => None,
        },
        key,
    )
}

/// The jobs of `owner`, by id.
pub fn jobs_of(scheduler: &Scheduler, owner: AccountId) -> Vec<JobId> {
    scheduler
        .jobs()
        .into_iter()
        .filter(|job| job.owner == Some(owner))
        .map(|job| job.id)
        .collect()
}

/// The jobs whose declaration `key` signed.
pub fn jobs_declared_by(scheduler: &Scheduler, key: &PublicKey) -> Vec<JobId> {
    scheduler
        .jobs()
        .into_iter()
        .filter(|job| job.declaration.is_some_and(|d| d.public_key == *key))
        .map(|job| job.id)
        .collect()
}

/// Brings the store back to agreement with itself after a crash between two steps, and
/// publishes the portal's own jobs (the demo): every step below is idempotent.
/// - The portal's own jobs waiting in review are approved (the admin made them).
/// - Approved jobs without a log entry (made before the log existed) are logged.
/// - Published jobs of a suspended account, or declared by a revoked key, are withdrawn.
pub fn reconcile(store: &Store, scheduler: &Scheduler, key: &SecretKey) -> Result<(), StoreError> {
    let accounts = store.accounts()?;
    let revoked_keys: Vec<PublicKey> = accounts
        .iter()
        .flat_map(|account| account.keys.iter())
        .filter(|info| info.revoked)
        .map(|info| info.public_key)
        .collect();
    for job in scheduler.jobs() {
        let suspended = job.owner.is_some_and(|owner| {
            accounts
                .iter()
                .any(|account| account.id == owner && account.suspended)
        });
        let key_revoked = job
            .declaration
            .is_some_and(|d| revoked_keys.contains(&d.public_key));
        if job.review == Review::Approved && (suspended || key_revoked) {
            let reason = if suspended {
                "the distributor is suspended"
            } else {
                "the key that declared the job was revoked"
            };
            withdraw(scheduler, key, &[job.id], reason, None)?;
        } else if job.owner.is_none() && job.review == Review::Pending
            || job.review == Review::Approved && job.log_seq.is_none()
        {
            approve(scheduler, key, job.id)?;
        }
    }
    // A key revocation logged but not yet recorded on its account (a crash between the two).
    let mut from = 0;
    loop {
        let entries = store.log_entries(from, 1_000)?;
        let Some(last) = entries.last() else {
            break;
        };
        from = last.seq + 1;
        for entry in entries {
            if let LogEvent::KeyRevoked { key, account, .. } = entry.event {
                let recorded = accounts.iter().any(|record| {
                    record.id == account
                        && record
                            .keys
                            .iter()
                            .all(|info| info.public_key != key || info.revoked)
                });
                if recorded {
                    continue;
                }
                store.update_account(account, |record| {
                    for info in &mut record.keys {
                        if info.public_key == key {
                            info.revoked = true;
                        }
                    }
                })?;
            }
        }
    }
    Ok(())
}

/// Revokes a distributor's signing key for `reason`: logs the revocation and withdraws every
/// job the key declared (one transaction), then marks the key revoked on its account (a crash
/// between the two is repaired by [`reconcile`]). Revoking a revoked key changes nothing.
/// Returns the key as now stored, or `None` if the account has no such key.
pub fn revoke_key(
    store: &Store,
    scheduler: &Scheduler,
    signer: &SecretKey,
    account: AccountId,
    key_id: KeyId,
    reason: &str,
) -> Result<Option<DistributorKeyInfo>, StoreError> {
    let Some(record) = store.account(account)? else {
        return Ok(None);
    };
    let Some(info) = record.keys.iter().find(|info| info.key_id == key_id) else {
        return Ok(None);
    };
    if !info.revoked {
        let jobs = jobs_declared_by(scheduler, &info.public_key);
        withdraw(
            scheduler,
            signer,
            &jobs,
            &format!("the key that declared the job was revoked: {reason}"),
            Some(LogEvent::KeyRevoked {
                key: info.public_key,
                account,
                reason: reason.to_owned(),
            }),
        )?;
    }
    Ok(store
        .update_account(account, |record| {
            let info = record.keys.iter_mut().find(|info| info.key_id == key_id)?;
            info.revoked = true;
            Some(info.clone())
        })?
        .and_then(|(_, info)| info))
}
