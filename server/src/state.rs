//! `AppState`: what every handler can reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cyclepool_shared::manifest::{MANIFEST_FORMAT, Manifest, SignedManifest};
use cyclepool_shared::{JobId, Sha256Digest};

use crate::clock::Clock;
use crate::keys::Keyring;
use crate::scheduler::Scheduler;
use crate::store::{JobRecord, Store};
use crate::validator::Validator;

/// Shared handles, cloned into each request.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub scheduler: Arc<Scheduler>,
    pub keyring: Arc<Keyring>,
    pub validator: Arc<Validator>,
    pub clock: Clock,
    /// The SHA-256 of the admin token; `None` refuses every distributor call.
    pub admin_token_hash: Option<Sha256Digest>,
    /// Whether the session cookie is marked `Secure`.
    pub secure_cookies: bool,
    /// Becomes true when the server starts shutting down, so that endless responses (the
    /// progress stream) end and graceful shutdown can finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Per-address limits on registration, sign-in and group joins.
    pub limiters: Arc<crate::limits::Limiters>,
    /// Manifests signed so far. Signing is deterministic and the key does not change while
    /// the server runs, so each job's manifest is signed once.
    pub manifests: Arc<Mutex<HashMap<JobId, SignedManifest>>>,
}

impl AppState {
    /// The job's manifest, signed with the portal's current key.
    pub fn manifest(&self, job: &JobRecord) -> SignedManifest {
        let mut cache = self
            .manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(job.id)
            .or_insert_with(|| {
                // A job older than the current key is re-issued under it, so that the
                // issue time lies within the key's validity.
                let key_start = self
                    .keyring
                    .current_entry()
                    .map_or(0, |key| key.not_before_ms);
                let manifest = Manifest {
                    format: MANIFEST_FORMAT,
                    job_id: job.id,
                    distributor: job.distributor.clone(),
                    title: job.title.clone(),
                    description: job.description.clone(),
                    module_sha256: job.module_sha256,
                    module_bytes: job.module_bytes,
                    policy: job.policy.clone(),
                    issued_ms: job.created_ms.max(key_start),
                    expires_ms: job.expires_ms,
                    inputs_sha256: job.inputs_sha256,
                    declaration: job.declaration,
                };
                SignedManifest::sign(&manifest, self.keyring.current())
            })
            .clone()
    }
}
