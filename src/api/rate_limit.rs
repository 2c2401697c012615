//! Per-client rate limiting: a token bucket per client, keyed by user, else session, else IP.
//!
//! A tracked event costs one token, so a 50-event batch costs 50. The defaults (100 events a
//! second sustained, bursts of 1 000) are far above what one visitor's browser sends, so a
//! normal site is never throttled; they stop a single client from flooding the buffer.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How many checks pass between sweeps of idle buckets, which keep memory bounded.
const SWEEP_EVERY: u64 = 4096;

/// Sustained events per second per client by default.
pub const DEFAULT_PER_SECOND: u32 = 100;
/// Events a client may send at once by default.
pub const DEFAULT_BURST: u32 = 1000;
/// The smallest burst that lets one full `trackBatch` through.
pub const MIN_BURST: u32 = crate::api::MAX_BATCH_EVENTS as u32;

/// The rate-limit settings.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    /// Sustained events per second per client; 0 turns limiting off.
    pub per_second: u32,
    /// Events a client may send at once before the sustained rate applies.
    pub burst: u32,
}

/// Why a client's events were turned away; mapped to TOO_MANY_REQUESTS in `api::error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    /// Over the sustained rate: the client may retry after this many seconds.
    #[error("Rate limit exceeded; retry in {retry_after_secs} s")]
    Exceeded { retry_after_secs: u64 },
    /// More events in one call than a whole burst: retrying cannot help.
    #[error("{cost} events at once exceed the rate limit burst")]
    OverBurst { cost: u32 },
}

impl RateLimited {
    /// A stable tag for logs and metrics.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Exceeded { .. } => "rate_limited",
            Self::OverBurst { .. } => "over_burst",
        }
    }
}

/// The keyed token buckets.
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> Self {
        let limiter = NonZeroU32::new(settings.per_second).map(|rate| {
            let burst = NonZeroU32::new(settings.burst.max(settings.per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket, or says how long to wait.
    pub fn check(&self, key: &str, cost: usize) -> Result<(), RateLimited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let cost =
            NonZeroU32::new(u32::try_from(cost).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        let wait = match limiter.check_key_n(&key.to_owned(), cost) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(DefaultClock::default().now()),
            // More than a whole burst at once can never pass: say so instead of "retry".
            Err(_) => {
                return Err(RateLimited::OverBurst { cost: cost.get() });
            }
        };
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(RateLimited::Exceeded {
            retry_after_secs: retry_after.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_burst_is_told_when_to_retry() {
        let limits = RateLimits::new(RateLimitSettings {
            per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            limits.check("ip:1.2.3.4", 1).expect("within burst");
        }
        let error = limits.check("ip:1.2.3.4", 1).expect_err("over");
        assert_eq!(
            error,
            RateLimited::Exceeded {
                retry_after_secs: 1
            }
        );
        limits
            .check("ip:5.6.7.8", 1)
            .expect("another client has its own bucket");
    }

    #[test]
    fn zero_turns_limiting_off() {
        let limits = RateLimits::new(RateLimitSettings {
            per_second: 0,
            burst: 0,
        });
        for _ in 0..10_000 {
            limits.check("k", 50).expect("unlimited");
        }
    }
}
