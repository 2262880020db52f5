//! HTTP tests of the real server: each test starts its own server on a random port with a
//! temporary store and a paused clock, and talks to it over HTTP like a volunteer (or a
//! distributor, with the admin token) would.

mod auth;
mod distributor;
mod distributors;
mod durability;
mod exchange;
mod expiry;
mod helpers;
mod hostile_input;
mod idempotence;
mod jobs;
mod keys;
mod lease_cycle;
mod modules;
mod openapi;
mod overload;
mod rate_limits;
mod rejections;
mod replication;
mod reports;
mod results;
mod review;
mod security_headers;
mod signatures;
mod sites;
mod slow_clients;
mod spot_checks;
mod test_module;
mod validation;
mod volunteers;
