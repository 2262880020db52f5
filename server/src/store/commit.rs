//! Group commit: one thread flushes sled for everyone who waited while the previous flush ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use cyclepool_shared::protocol::DurabilityStats;

use super::StoreError;

pub(super) type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Batches durability: one thread flushes sled for every waiter that queued up while the
/// previous flush ran, so N concurrent submissions cost about one fsync, not N.
pub(super) struct GroupCommit {
    requests: Mutex<Option<mpsc::Sender<Waiter>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<CommitCounters>,
}

#[derive(Default)]
struct CommitCounters {
    durable_writes: AtomicU64,
    flushes: AtomicU64,
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> Self {
        let (requests, queue) = mpsc::channel::<Waiter>();
        let counters = Arc::new(CommitCounters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("store-group-commit".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    // Everyone queued now made their writes before queueing, hence before
                    // this flush starts: one flush covers them all.
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter());
                    let result = db.flush().map(drop).map_err(|err| err.to_string());
                    thread_counters.flushes.fetch_add(1, Ordering::Relaxed);
                    thread_counters
                        .durable_writes
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for waiter in batch {
                        // A waiter whose request was cancelled no longer listens; that is fine.
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .ok();
        Self {
            requests: Mutex::new(thread.is_some().then_some(requests)),
            thread: Mutex::new(thread),
            counters,
        }
    }

    pub(super) fn request(&self, waiter: Waiter) -> Result<(), StoreError> {
        let requests = self
            .requests
            .lock()
            .map_err(|_| StoreError::CommitThreadGone)?;
        requests
            .as_ref()
            .ok_or(StoreError::CommitThreadGone)?
            .send(waiter)
            .map_err(|_| StoreError::CommitThreadGone)
    }

    pub(super) fn stats(&self) -> DurabilityStats {
        DurabilityStats {
            durable_writes: self.counters.durable_writes.load(Ordering::Relaxed),
            flushes: self.counters.flushes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the channel ends the thread after it serves what is queued; joining it
        // releases its handle on the database before the store reports itself closed.
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut thread| thread.take()) {
            let _ = thread.join();
        }
    }
}
