//! The HTTP API, one module per resource.

pub mod jobs;
pub mod stats;
pub mod work;
