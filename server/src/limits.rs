//! Rate limits and load shedding: token buckets answered with 429 `rate_limited` and
//! `Retry-After` when empty, and a cap on requests in flight answered with 503.
//!
//! Three layers of buckets, each for what it can see:
//! - per client address, on every API request (`--address-rate`): the only limit an attacker
//!   cannot dodge by minting keys or accounts;
//! - per volunteer key, on requests that prove the key (a lease with a valid proof, a result
//!   with a valid signature; `--volunteer-rate`), so that one key cannot take more than its
//!   share; a request that proves nothing is not counted, or anyone could exhaust a
//!   stranger's bucket by naming its key;
//! - per credential (an API token or a dashboard session, once it is valid; `--token-rate`);
//! - and tighter per-address limits on the endpoints that cost the portal something to keep
//!   (registering an account, signing in, joining a group).
//!
//! The buckets live in memory: a restart forgets them, which only ever lets a client through.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use cyclepool_shared::{ErrorCode, Sha256Digest, VolunteerId};

use crate::error::ApiError;
use crate::state::AppState;

/// How many clients a limiter remembers before it forgets the full buckets.
const MAX_TRACKED: usize = 100_000;

/// A token-bucket limit: `burst` requests at once, refilled at `per_hour` an hour.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub burst: u32,
    pub per_hour: u32,
}

/// How many seconds of its rate a per-second limit lets through at once: enough for a
/// browser that comes back online with a backlog of results to send them without waiting.
const BURST_SECONDS: u32 = 5;

impl Limit {
    /// `rate` requests a second, with a burst of [`BURST_SECONDS`] worth; `None` for 0 (off).
    pub fn per_second(rate: u32) -> Option<Self> {
        (rate > 0).then(|| Self {
            burst: rate.saturating_mul(BURST_SECONDS),
            per_hour: rate.saturating_mul(3_600),
        })
    }
}

/// Registering accounts: a handful per address and hour.
pub const REGISTRATIONS: Limit = Limit {
    burst: 20,
    per_hour: 20,
};
/// Signing in to the dashboard.
pub const SIGN_INS: Limit = Limit {
    burst: 30,
    per_hour: 600,
};
/// Joining groups (each verifies a signature and writes).
pub const JOINS: Limit = Limit {
    burst: 30,
    per_hour: 600,
};

/// Token buckets per client (an address, a key, a credential), for one kind of request.
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    limit: Limit,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `client`; if there is none, how many seconds until there is.
    pub fn take(&self, client: K, now_ms: u64) -> Result<(), u64> {
        let burst = f64::from(self.limit.burst);
        let per_ms = f64::from(self.limit.per_hour) / 3_600_000.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED {
            // Forget the clients whose buckets have refilled: they lose nothing by it.
            buckets.retain(|_, bucket| {
                bucket.tokens + per_ms * (now_ms.saturating_sub(bucket.updated_ms) as f64) < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.updated_ms) as f64;
        bucket.tokens = (bucket.tokens + elapsed * per_ms).min(burst);
        bucket.updated_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - bucket.tokens) / per_ms;
            Err((wait_ms / 1_000.0).ceil().max(1.0) as u64)
        }
    }
}

/// Default of `--address-rate`: API requests a second from one address. A NAT'd office of a
/// hundred volunteers on small units stays under it; one machine flooding does not.
pub const DEFAULT_ADDRESS_RATE: u32 = 2_000;
/// Default of `--volunteer-rate`: proven requests a second from one volunteer key. A browser
/// with 16 workers finishing 100 ms units sends about 200 requests a second.
pub const DEFAULT_VOLUNTEER_RATE: u32 = 400;
/// Default of `--token-rate`: requests a second with one API token or dashboard session.
pub const DEFAULT_TOKEN_RATE: u32 = 50;

/// The rate limiters of one server.
#[derive(Debug)]
pub struct Limiters {
    pub registrations: RateLimiter,
    pub sign_ins: RateLimiter,
    pub joins: RateLimiter,
    /// Every API request, per client address; `None` when turned off.
    pub addresses: Option<RateLimiter>,
    /// Proven volunteer requests, per volunteer key.
    pub volunteers: Option<RateLimiter<VolunteerId>>,
    /// Authenticated distributor requests, per credential (the digest of the token or
    /// session secret presented).
    pub credentials: Option<RateLimiter<Sha256Digest>>,
}

impl Limiters {
    /// The limiters with the given per-second rates (0 turns one off).
    pub fn new(address_rate: u32, volunteer_rate: u32, token_rate: u32) -> Self {
        Self {
            registrations: RateLimiter::new(REGISTRATIONS),
            sign_ins: RateLimiter::new(SIGN_INS),
            joins: RateLimiter::new(JOINS),
            addresses: Limit::per_second(address_rate).map(RateLimiter::new),
            volunteers: Limit::per_second(volunteer_rate).map(RateLimiter::new),
            credentials: Limit::per_second(token_rate).map(RateLimiter::new),
        }
    }

    /// Counts a request that proved it holds `volunteer`'s key; 429 past the key's rate.
    pub fn check_volunteer(&self, volunteer: VolunteerId, now_ms: u64) -> Result<(), ApiError> {
        take_or_refuse(self.volunteers.as_ref(), volunteer, now_ms, || {
            format!("volunteer key {volunteer}")
        })
    }

    /// Counts a request made with a valid credential (its digest); 429 past the token rate.
    pub fn check_credential(&self, digest: Sha256Digest, now_ms: u64) -> Result<(), ApiError> {
        take_or_refuse(self.credentials.as_ref(), digest, now_ms, || {
            "this token or session".to_owned()
        })
    }
}

/// Takes a token from `client`'s bucket, or 429 naming `whom` (a limiter turned off allows).
fn take_or_refuse<K: Hash + Eq + Copy>(
    limiter: Option<&RateLimiter<K>>,
    client: K,
    now_ms: u64,
    whom: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.take(client, now_ms).map_err(|retry_after_s| {
        rate_limited(format!(
            "too many requests from {}; retry in {retry_after_s} s",
            whom()
        ))
        .with_retry_after(retry_after_s)
    })
}

impl Default for Limiters {
    fn default() -> Self {
        Self::new(
            DEFAULT_ADDRESS_RATE,
            DEFAULT_VOLUNTEER_RATE,
            DEFAULT_TOKEN_RATE,
        )
    }
}

/// 429 [`ErrorCode::RateLimited`] with `message` (the caller adds `Retry-After`).
fn rate_limited(message: String) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        message,
    )
}

/// Middleware: counts every API request against its client address (the health check and
/// the progress stream aside, like [`shed_load`]); 429 past `--address-rate`, before the
/// body is read.
pub async fn limit_addresses(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let (Some(limiter), Some(address)) = (&state.limiters.addresses, address) else {
        return next.run(request).await;
    };
    if is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    match limiter.take(address, state.clock.now_ms()) {
        Ok(()) => next.run(request).await,
        Err(retry_after_s) => rate_limited(format!(
            "too many requests from this address; retry in {retry_after_s} s"
        ))
        .with_retry_after(retry_after_s)
        .into_response(),
    }
}

/// Requests no limit counts: everything outside the API, the health check (monitoring must
/// see a busy portal), and the endless progress stream.
fn is_exempt(path: &str) -> bool {
    !path.starts_with("/api/") || path == "/api/v1/health" || path == "/api/v1/jobs/events"
}

/// Which limiter a handler's requests count against.
pub trait Kind {
    fn limiter(limiters: &Limiters) -> &RateLimiter;
    const WHAT: &'static str;
}

/// Extracting this takes a token from the client address's bucket for `K`, or answers 429.
#[derive(Debug)]
pub struct RateLimited<K>(std::marker::PhantomData<K>);

/// Account registrations.
#[derive(Debug)]
pub struct Registration;
/// Dashboard sign-ins.
#[derive(Debug)]
pub struct SignIn;
/// Group joins.
#[derive(Debug)]
pub struct Join;

impl Kind for Registration {
    fn limiter(limiters: &Limiters) -> &RateLimiter {
        &limiters.registrations
    }
    const WHAT: &'static str = "account registrations";
}

impl Kind for SignIn {
    fn limiter(limiters: &Limiters) -> &RateLimiter {
        &limiters.sign_ins
    }
    const WHAT: &'static str = "sign-ins";
}

impl Kind for Join {
    fn limiter(limiters: &Limiters) -> &RateLimiter {
        &limiters.joins
    }
    const WHAT: &'static str = "group joins";
}

impl<K: Kind + Send> FromRequestParts<AppState> for RateLimited<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Served without connection info (a test calling the router directly): no address,
        // nothing to limit by.
        let Some(ConnectInfo(address)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self(std::marker::PhantomData));
        };
        let now = state.clock.now_ms();
        K::limiter(&state.limiters)
            .take(address.ip(), now)
            .map(|()| Self(std::marker::PhantomData))
            .map_err(|retry_after_s| {
                rate_limited(format!(
                    "too many {} from this address; retry in {retry_after_s} s",
                    K::WHAT
                ))
                .with_retry_after(retry_after_s)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(Limit {
            burst: 3,
            per_hour: 3_600,
        });
        let address: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert_eq!(limiter.take(address, 0), Ok(()));
        }
        assert_eq!(limiter.take(address, 0), Err(1));
        // Another address has its own bucket.
        assert_eq!(limiter.take([127, 0, 0, 2].into(), 0), Ok(()));
        // One token a second comes back.
        assert_eq!(limiter.take(address, 1_000), Ok(()));
        assert_eq!(limiter.take(address, 1_000), Err(1));
        assert_eq!(limiter.take(address, 10_000), Ok(()));
    }

    #[test]
    fn retry_after_counts_the_seconds_to_the_next_token() {
        let limiter = RateLimiter::new(Limit {
            burst: 1,
            per_hour: 60,
        });
        let address: IpAddr = [10, 0, 0, 1].into();
        assert_eq!(limiter.take(address, 0), Ok(()));
        assert_eq!(limiter.take(address, 0), Err(60));
        assert_eq!(limiter.take(address, 30_000), Err(30));
        assert_eq!(limiter.take(address, 60_000), Ok(()));
    }
}

/// Sheds load: at most `max_in_flight` API requests are served at once, and one more gets 503
/// `unavailable` with `Retry-After: 1` at once, before its body is read. The health check and
/// the endless progress stream do not count (a stream would hold its place for hours).
#[derive(Clone)]
pub struct LoadShedder {
    permits: Arc<tokio::sync::Semaphore>,
}

impl LoadShedder {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1))),
        }
    }
}

/// Seconds a shed client is told to wait.
const SHED_RETRY_AFTER_S: u64 = 1;

/// The middleware of [`LoadShedder`].
pub async fn shed_load(
    axum::extract::State(shedder): axum::extract::State<LoadShedder>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = shedder.permits.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the portal is at capacity; retry after the time in Retry-After",
        )
        .with_retry_after(SHED_RETRY_AFTER_S)
        .into_response();
    };
    // Held until the response (headers) is ready; a streamed body finishes on its own.
    next.run(request).await
}
