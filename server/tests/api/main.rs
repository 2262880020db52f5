//! HTTP tests of the real server: each test starts its own server on a random port with a
//! temporary store and a paused clock, and talks to it over HTTP like a volunteer would.

mod durability;
mod expiry;
mod helpers;
mod hostile_input;
mod idempotence;
mod lease_cycle;
mod rejections;
mod security_headers;
