//! The HTTP API, one module per resource.

pub mod stats;
pub mod work;
