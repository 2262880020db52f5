//! `AppState`: what every handler can reach.

use std::sync::Arc;

use crate::scheduler::Scheduler;
use crate::store::Store;

/// Shared handles, cloned into each request.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub scheduler: Arc<Scheduler>,
}
