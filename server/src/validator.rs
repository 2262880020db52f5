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
