//! Validation of results on arrival: a job whose module exports `verify` has every result
//! checked by the server itself, in the wasmi sandbox with the (small) verify fuel budget,
//! before it is accepted. Checking is meant to be far cheaper than computing (a factorisation
//! is checked by multiplying), so a wrong answer is caught at once and its unit re-issued.
//!
//! Replication and quorum, spot checks and credibility build on this (the validation issue).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cyclepool_shared::Sha256Digest;

use crate::sandbox::{CompiledModule, Sandbox, SandboxError, SandboxLimits};
use crate::store::{JobRecord, Store, StoreError};

/// What the job's `verify` said about a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Checked: right.
    Valid,
    /// Checked: wrong.
    Invalid,
    /// Not checked: the job has no `verify`, does not use it, or cannot tell for this output.
    Unchecked,
}

/// Runs jobs' `verify` exports, compiling each module once.
pub struct Validator {
    store: Arc<Store>,
    sandbox: Arc<Sandbox>,
    /// Compiled modules by digest; `None` for a module without a usable `verify`.
    modules: Mutex<HashMap<Sha256Digest, Option<Arc<CompiledModule>>>>,
}

impl Validator {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            sandbox: Arc::new(Sandbox::new(SandboxLimits::for_verify())),
            modules: Mutex::default(),
        }
    }

    /// Checks `output` for `input` with the job's `verify`, if the job uses one.
    pub async fn check(
        &self,
        job: &JobRecord,
        input: Vec<u8>,
        output: Vec<u8>,
    ) -> Result<Verdict, StoreError> {
        if !job.policy.use_verify {
            return Ok(Verdict::Unchecked);
        }
        let Some(module) = self.module(job.module_sha256)? else {
            return Ok(Verdict::Unchecked);
        };
        let sandbox = Arc::clone(&self.sandbox);
        let digest = job.module_sha256;
        let outcome = tokio::task::spawn_blocking(move || sandbox.verify(&module, &input, &output))
            .await
            .map_err(|err| StoreError::Flush(format!("verify task failed: {err}")))?;
        Ok(match outcome {
            Ok(true) => Verdict::Valid,
            Ok(false) => Verdict::Invalid,
            Err(SandboxError::Undecided) => Verdict::Unchecked,
            Err(SandboxError::NoVerify) => {
                self.lock().insert(digest, None);
                Verdict::Unchecked
            }
            Err(err) => {
                // A verify that traps or runs out of fuel is the job's fault, not the
                // volunteer's: accept nothing on its word, refuse nothing either.
                tracing::warn!(module = %digest, error = %err, "verify failed; result not checked");
                Verdict::Unchecked
            }
        })
    }

    fn module(&self, digest: Sha256Digest) -> Result<Option<Arc<CompiledModule>>, StoreError> {
        if let Some(cached) = self.lock().get(&digest) {
            return Ok(cached.clone());
        }
        let compiled = match self.store.module(digest)? {
            Some(bytes) => match self.sandbox.compile(&bytes) {
                Ok(module) => Some(Arc::new(module)),
                Err(err) => {
                    tracing::warn!(module = %digest, error = %err, "module does not compile for verify");
                    None
                }
            },
            None => None,
        };
        self.lock().insert(digest, compiled.clone());
        Ok(compiled)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Sha256Digest, Option<Arc<CompiledModule>>>> {
        self.modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Computes, in the background, the answers of a random sample of `job`'s units (its
/// `reexecution_rate`) with the server's own sandbox, and records them as known answers:
/// results that contradict them catch their volunteer, and they serve as spot checks. The
/// sample is drawn from the OS-seeded generator, so volunteers cannot tell which units it holds.
/// A small sample (up to [`INLINE_SAMPLE`] units) is computed before this returns, so that a
/// small job starts with its known answers; a larger one goes on in the background.
pub async fn reexecute_sample(
    store: Arc<Store>,
    scheduler: Arc<crate::scheduler::Scheduler>,
    job: JobRecord,
) {
    let rate = job.policy.reexecution_rate;
    if rate.is_nan() || rate <= 0.0 || job.units == 0 {
        return;
    }
    let sample_size =
        ((job.units as f64 * rate.min(1.0)).ceil() as usize).clamp(1, job.units as usize);
    let task = tokio::task::spawn_blocking(move || {
        let sandbox = Sandbox::new(SandboxLimits::for_run());
        let module = match store.module(job.module_sha256) {
            Ok(Some(bytes)) => sandbox.compile(&bytes),
            Ok(None) => return tracing::warn!(job = %job.id, "re-execution: module missing"),
            Err(err) => return tracing::error!(job = %job.id, error = %err, "re-execution: store"),
        };
        let Ok(module) = module else {
            return tracing::warn!(job = %job.id, "re-execution: module does not compile");
        };
        let mut rng = rand::rng();
        let indices = rand::seq::index::sample(&mut rng, job.units as usize, sample_size);
        for index in indices {
            let unit = crate::store::UnitKey {
                job: job.id,
                index: index as u64,
            };
            let Ok(Some(record)) = store.unit(unit) else {
                continue;
            };
            match sandbox.run(&module, &record.input) {
                Ok(output) => {
                    if let Err(err) = store.put_known(unit, Sha256Digest::of(&output)) {
                        tracing::error!(error = %err, "re-execution: storing an answer");
                        return;
                    }
                    scheduler.add_known(unit);
                }
                Err(err) => {
                    tracing::warn!(job = %job.id, unit = index, error = %err, "re-execution failed")
                }
            }
        }
        tracing::info!(job = %job.id, units = sample_size, "re-execution sample computed");
    });
    if sample_size <= INLINE_SAMPLE {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "re-execution task failed");
        }
    }
}

/// The largest re-execution sample computed before job creation answers.
pub const INLINE_SAMPLE: usize = 256;
