//! The database: which one, and how many connections to it.

use clap::Args;

use super::ConfigError;
use crate::storage::{DEFAULT_POOL_SIZE, PoolOptions};

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sluice.db";

/// The database URL and the pool.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Database URL: postgres://… or sqlite://path. Falls back to DATABASE_URL, then to
    /// sqlite://sluice.db.
    #[arg(long, env = "SLUICE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Connections in the database pool, at least 1.
    #[arg(long, env = "SLUICE_DB_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE, global = true)]
    pub db_pool_size: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            db_pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

impl DatabaseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.db_pool_size == 0 {
            return Err(ConfigError::new("SLUICE_DB_POOL_SIZE must be at least 1"));
        }
        Ok(())
    }

    /// The database URL in force: flag/SLUICE_DATABASE_URL, then DATABASE_URL, then the default.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| {
                std::env::var("DATABASE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
    }

    pub fn pool(&self) -> PoolOptions {
        PoolOptions {
            max_size: self.db_pool_size,
            ..PoolOptions::default()
        }
    }
}
