//! Per-client rate limits.

use clap::Args;

use super::ConfigError;
use crate::api::rate_limit::{DEFAULT_BURST, DEFAULT_PER_SECOND, MIN_BURST, RateLimitSettings};

/// How many events one client may send.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// Sustained events per second one client may send (by user, else session, else IP);
    /// 0 turns rate limiting off.
    #[arg(long, env = "SLUICE_RATE_LIMIT_PER_SECOND", default_value_t = DEFAULT_PER_SECOND, global = true)]
    pub rate_limit_per_second: u32,

    /// Events one client may send in a burst (at least 50, one full trackBatch).
    #[arg(long, env = "SLUICE_RATE_LIMIT_BURST", default_value_t = DEFAULT_BURST, global = true)]
    pub rate_limit_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_second: DEFAULT_PER_SECOND,
            rate_limit_burst: DEFAULT_BURST,
        }
    }
}

impl LimitsConfig {
    /// A burst below one full trackBatch would refuse every full batch; with limiting off,
    /// the burst is not used.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_limit_per_second > 0 && self.rate_limit_burst < MIN_BURST {
            return Err(ConfigError::new(format!(
                "SLUICE_RATE_LIMIT_BURST must be at least {MIN_BURST}, one full trackBatch (got {})",
                self.rate_limit_burst
            )));
        }
        Ok(())
    }

    pub fn settings(&self) -> RateLimitSettings {
        RateLimitSettings {
            per_second: self.rate_limit_per_second,
            burst: self.rate_limit_burst,
        }
    }
}
