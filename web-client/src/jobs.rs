//! Loads a job before anything of it runs: its signed manifest, checked against the pinned
//! portal keys (signature, revocation, expiry) and the public transparency log (published,
//! not revoked since), then its module, checked against the manifest's SHA-256, then
//! compiled. The three are fetched at once, and checked in that order; nothing is compiled
//! or instantiated until all of that holds.

use std::fmt;

use cyclepool_shared::manifest::{Manifest, PortalKeys, SignedManifest};
use cyclepool_shared::protocol::ReportKind;
use cyclepool_shared::{JobId, Sha256Digest};
use futures_util::future::join3;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::http::{self, HttpError};
use crate::offline::{self, Freshness};
use crate::queue::StoredUnit;
use crate::transparency::LogCheck;

/// A job ready to run.
pub struct LoadedJob {
    pub manifest: Manifest,
    /// The job's publication entry in the portal's transparency log.
    pub log_seq: u64,
    /// The compiled `WebAssembly.Module`.
    pub module: JsValue,
}

impl LoadedJob {
    /// Whether a unit of this job can still be computed and returned before its deadline, by
    /// this browser's clock (`offline::freshness`).
    pub fn in_time(&self, unit: &StoredUnit) -> bool {
        offline::freshness(
            js_sys::Date::now(),
            unit.received_ms,
            unit.lease.deadline_ms,
            Some(self.manifest.policy.lease_ttl_ms),
        ) != Freshness::Expired
    }
}

/// Why a job was not run. Reported to the portal and shown to the volunteer.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: ReportKind,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What happened when loading a job.
pub enum Load {
    Ready,
    Refused(Refusal),
    /// The network or server failed; worth trying again later.
    Unavailable(HttpError),
}

/// Jobs loaded so far, by id. A worker meets a handful of jobs: a list searched in order is
/// enough, and smaller in the module than a hash map.
#[derive(Default)]
pub struct Jobs {
    loaded: Vec<(JobId, LoadedJob)>,
}

impl Jobs {
    pub fn get(&self, job: JobId) -> Option<&LoadedJob> {
        self.loaded
            .iter()
            .find(|(id, _)| *id == job)
            .map(|(_, loaded)| loaded)
    }

    /// Loads `job` unless it is loaded already. `module_sha256` is what the lease names.
    pub async fn load(
        &mut self,
        job: JobId,
        module_sha256: Sha256Digest,
        trusted: &PortalKeys,
    ) -> Load {
        if let Some(loaded) = self.get(job) {
            if loaded.manifest.module_sha256 == module_sha256 {
                return Load::Ready;
            }
        }
        match fetch_and_check(job, module_sha256, trusted).await {
            Ok(loaded) => {
                // A job whose module changed is loaded again in its place.
                self.loaded.retain(|(id, _)| *id != job);
                self.loaded.push((job, loaded));
                Load::Ready
            }
            Err(outcome) => outcome,
        }
    }
}

async fn fetch_and_check(
    job: JobId,
    lease_module: Sha256Digest,
    trusted: &PortalKeys,
) -> Result<LoadedJob, Load> {
    // The three are fetched at once, but each is used only once everything before it holds.
    let manifest_url = format!("/api/v1/jobs/{job}/manifest");
    let module_url = format!("/api/v1/modules/{lease_module}");
    let (signed, log_page, bytes) = join3(
        http::get_json::<SignedManifest>(&manifest_url),
        crate::transparency::first_page(job),
        http::get_bytes(&module_url),
    )
    .await;
    let signed = signed.map_err(Load::Unavailable)?;
    let refuse_manifest = |reason: String| {
        Load::Refused(Refusal {
            kind: ReportKind::ManifestRefused,
            reason,
        })
    };
    let manifest = signed
        .open(trusted, js_sys::Date::now() as u64)
        .map_err(|err| refuse_manifest(format!("job {job}: {err}")))?;
    if manifest.job_id != job {
        return Err(refuse_manifest(format!(
            "job {job}: the manifest is for job {}",
            manifest.job_id
        )));
    }
    if manifest.module_sha256 != lease_module {
        return Err(refuse_manifest(format!(
            "job {job}: the lease names module {lease_module} but the signed manifest names {}",
            manifest.module_sha256
        )));
    }
    let log_seq = match crate::transparency::check(&manifest, trusted, log_page).await {
        Ok(seq) => seq,
        Err(LogCheck::Refused(reason)) => return Err(refuse_manifest(reason)),
        Err(LogCheck::Unavailable(err)) => return Err(Load::Unavailable(err)),
    };
    // The module the lease names, which the manifest was just checked to name too.
    let bytes = bytes.map_err(Load::Unavailable)?;
    let refuse_module = |reason: String| {
        Load::Refused(Refusal {
            kind: ReportKind::ModuleRefused,
            reason,
        })
    };
    let actual = Sha256Digest::of(&bytes);
    if actual != manifest.module_sha256 {
        return Err(refuse_module(format!(
            "job {job}: the module's sha-256 is {actual}, not {} as signed",
            manifest.module_sha256
        )));
    }
    let compiled = JsFuture::from(js_sys::WebAssembly::compile(&js_sys::Uint8Array::from(
        bytes.as_slice(),
    )))
    .await
    .map_err(|err| {
        refuse_module(format!(
            "job {job}: the module does not compile: {}",
            crate::sandbox::describe(&err)
        ))
    })?;
    Ok(LoadedJob {
        manifest,
        log_seq,
        module: compiled,
    })
}
