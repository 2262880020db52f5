//! The server's notion of "now", in milliseconds since the Unix epoch.
//!
//! Lease deadlines are wall-clock times because they outlive the process. Tests use a
//! paused clock that moves only when told to, so expiry is tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the time comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A paused clock, moved only by [`Clock::advance`].
    Paused(Arc<AtomicU64>),
}

impl Clock {
    /// A paused clock that reads `start_ms` until advanced.
    pub fn paused(start_ms: u64) -> Self {
        Clock::Paused(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
                }),
            Clock::Paused(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Moves a paused clock forward; the system clock ignores this.
    pub fn advance(&self, by_ms: u64) {
        if let Clock::Paused(now) = self {
            now.fetch_add(by_ms, Ordering::SeqCst);
        }
    }
}
