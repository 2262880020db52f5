//! The HTTP API, one module per resource.

pub mod accounts;
pub mod downloads;
pub mod groups;
pub mod jobs;
pub mod manage;
pub mod openapi;
pub mod stats;
pub mod work;
