//! Credentials: the JWT secret and the operator's admin token.

use clap::Args;

use super::ConfigError;
use crate::identity::Secret;

/// The shortest JWT secret accepted: HS256 wants at least as many bytes as its output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Who can authenticate, and how.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthConfig {
    /// Secret for HS256 JWTs (at least 32 bytes). Unset: only anonymous callers and the admin
    /// token are accepted.
    #[arg(long, env = "SLUICE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Static bearer token that grants ADMIN (getStats, forceFlush; at least 16 characters).
    /// Unset: no admin access.
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
}

impl AuthConfig {
    /// Refuses secrets too short to protect anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.jwt_secret
            && secret.len() < MIN_JWT_SECRET_BYTES
        {
            return Err(ConfigError::new(format!(
                "SLUICE_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (got {})",
                secret.len()
            )));
        }
        if let Some(token) = &self.admin_token
            && token.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(ConfigError::new(format!(
                "SLUICE_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters"
            )));
        }
        Ok(())
    }

    pub fn admin_token(&self) -> Option<Secret> {
        self.admin_token.as_deref().map(Secret::new)
    }

    pub fn jwt_secret(&self) -> Option<Secret> {
        self.jwt_secret.as_deref().map(Secret::new)
    }
}
