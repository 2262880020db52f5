//! A wake-up call between the worker's tasks (single-threaded: the worker's event loop).
//!
//! `notify` wakes whoever waits; when nobody does, the call is kept for the next wait, so a
//! notification that lands between "nothing to do" and "wait" is not lost.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{Either, select};
use gloo_timers::future::sleep;

#[derive(Default)]
pub struct Signal {
    pending: Cell<bool>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

impl Signal {
    /// Wakes every waiter, or the next one to wait if there is none.
    pub fn notify(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        // A waiter that gave up (timed out, or woken by another signal) has dropped its end.
        let delivered = waiters
            .into_iter()
            .map(|waiter| waiter.send(()))
            .filter(Result::is_ok)
            .count();
        if delivered == 0 {
            self.pending.set(true);
        }
    }

    /// Waits until notified or `timeout_ms` has passed; true if notified.
    pub async fn wait(&self, timeout_ms: u64) -> bool {
        if self.pending.replace(false) {
            return true;
        }
        let (sender, woken) = oneshot::channel::<()>();
        {
            let mut waiters = self.waiters.borrow_mut();
            // Waiters that timed out have dropped their end; do not let them pile up.
            waiters.retain(|waiter| !waiter.is_canceled());
            waiters.push(sender);
        }
        match select(woken, Box::pin(sleep(Duration::from_millis(timeout_ms)))).await {
            Either::Left((woken, _)) => woken.is_ok(),
            Either::Right(((), _)) => false,
        }
    }
}
