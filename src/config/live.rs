//! Live analytics: how many viewers, and how long one may stall.

use std::time::Duration;

use clap::Args;

use super::ConfigError;
use crate::api::live::{DEFAULT_MAX_VIEWERS, DEFAULT_STALL_TIMEOUT_SECONDS, LiveSettings};

/// Limits on live viewers (SSE, tRPC subscriptions, JSON-RPC subscriptions together).
#[derive(Debug, Clone, Args)]
pub struct LiveConfig {
    /// Most live viewers connected at once on this node; the next is refused with
    /// TOO_MANY_REQUESTS.
    #[arg(long, env = "SLUICE_LIVE_MAX_VIEWERS", default_value_t = DEFAULT_MAX_VIEWERS, global = true)]
    pub live_max_viewers: usize,

    /// A viewer with events waiting that has not taken any for this long is dropped.
    #[arg(long, env = "SLUICE_LIVE_STALL_TIMEOUT_SECONDS", default_value_t = DEFAULT_STALL_TIMEOUT_SECONDS, global = true)]
    pub live_stall_timeout_seconds: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            live_max_viewers: DEFAULT_MAX_VIEWERS,
            live_stall_timeout_seconds: DEFAULT_STALL_TIMEOUT_SECONDS,
        }
    }
}

impl LiveConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.live_stall_timeout_seconds == 0 {
            return Err(ConfigError::new(
                "SLUICE_LIVE_STALL_TIMEOUT_SECONDS must be at least 1",
            ));
        }
        Ok(())
    }

    pub fn settings(&self) -> LiveSettings {
        LiveSettings {
            max_viewers: self.live_max_viewers,
            stall_timeout: Duration::from_secs(self.live_stall_timeout_seconds),
        }
    }
}
