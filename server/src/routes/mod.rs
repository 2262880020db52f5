//! The HTTP API, one module per resource, and the input checks the handlers share.

pub mod accounts;
pub mod admin;
pub mod downloads;
pub mod groups;
pub mod jobs;
pub mod log;
pub mod manage;
pub mod openapi;
pub mod sites;
pub mod stats;
pub mod work;

use crate::error::ApiError;

/// Trims a text field and checks its length (in characters) and that it has no control
/// characters other than newlines and tabs.
pub fn text_field(name: &str, value: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(ApiError::invalid(format!(
            "{name} must have {min} to {max} characters, got {chars}"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::invalid(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Parses a decimal id from a path segment.
pub fn parse_number(what: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().map_err(|_| {
        ApiError::invalid(format!(
            "{what} must be a non-negative integer, got {:?}",
            text.chars().take(40).collect::<String>()
        ))
    })
}
