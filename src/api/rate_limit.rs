//! Per-client rate limiting: a token bucket per client, keyed by user, else session, else IP.
//!
//! A tracked event costs one token, so a 50-event batch costs 50. The defaults (100 events a
//! second sustained, bursts of 1 000) are far above what one visitor's browser sends, so a
//! normal site is never throttled; they stop a single client from flooding the buffer.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How many checks pass between looks at how many clients are held.
const LOOK_EVERY: u64 = 1024;
/// Clients held before the first sweep of idle buckets.
const SWEEP_AT_LEAST: usize = 4096;

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
///
/// A client is held only while its bucket is not full again (at most `burst / per_second`
/// seconds after its last event, 10 s at the defaults). Idle buckets are swept once the
/// clients held have doubled since the last sweep, so a sweep of `n` clients follows at
/// least `n / 2` checks: a few entries a check, however many clients a flood of fresh
/// session ids brings, and memory stays within twice the clients of the last ten seconds.
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
    /// Clients left by the last sweep.
    swept_to: AtomicUsize,
    /// Clients looked at by sweeps so far, for the tests that pin the cost per check.
    swept: AtomicU64,
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
            swept_to: AtomicUsize::new(0),
            swept: AtomicU64::new(0),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket, or says how long to wait.
    pub fn check(&self, key: &str, cost: usize) -> Result<(), RateLimited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % LOOK_EVERY == LOOK_EVERY - 1 {
            self.sweep_if_grown(limiter);
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

    /// Forgets the clients whose buckets are full again, once the clients held have doubled.
    fn sweep_if_grown(&self, limiter: &DefaultKeyedRateLimiter<String>) {
        let held = limiter.len();
        let due = SWEEP_AT_LEAST.max(2 * self.swept_to.load(Ordering::Relaxed));
        if held < due {
            return;
        }
        limiter.retain_recent();
        let left = limiter.len();
        if left < held / 2 {
            limiter.shrink_to_fit();
        }
        self.swept_to.store(left, Ordering::Relaxed);
        self.swept.fetch_add(held as u64, Ordering::Relaxed);
    }

    /// Clients held now.
    pub fn clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
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

    /// A flood of fresh keys (a client sending a new session id with every event) costs at
    /// most two swept entries a check, counted over 300 000 checks, whether the keys linger
    /// (a slow refill keeps them) or leave at once.
    #[test]
    fn a_flood_of_new_clients_costs_the_same_per_check() {
        for per_second in [1, 1_000_000] {
            let limits = RateLimits::new(RateLimitSettings {
                per_second,
                burst: 1000,
            });
            // A sweep of `n` clients follows at least `n / 2` new ones, so at every point the
            // clients swept so far are at most twice the checks so far.
            for chunk in 1..=30u64 {
                for n in (chunk - 1) * 10_000..chunk * 10_000 {
                    limits
                        .check(&format!("session:{n}"), 1)
                        .expect("a fresh client");
                }
                let swept = limits.swept.load(Ordering::Relaxed);
                assert!(
                    swept <= 2 * chunk * 10_000,
                    "{swept} clients swept in {chunk}0 000 checks at {per_second}/s"
                );
            }
            if per_second > 1 {
                assert!(limits.clients() < 20_000, "idle clients are forgotten");
            }
        }
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
