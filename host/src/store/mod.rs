//! koppel's state in SQLite (through sqlx, migrations embedded, WAL): runs, stream states, the
//! id map with content hashes, the order ledger, failed records, run records with payloads,
//! the activity log, the connectors' key-value entries and the shops registered with koppel's
//! Shopware app (their secrets sealed). Every row carries its tenant and
//! every query filters by it.

mod activity;
mod apps;
mod commit;
mod dashboard;
mod kv;
mod lease;
pub mod mask;
mod notifications;
mod overrides;
mod pauses;
mod records;
mod retention;
mod runs;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use activity::{ActivityRow, ActivityWriter, Carrier, RunSink};
pub use apps::{AppRegistration, Sealer};
pub use commit::{Batch, Counts, LedgerEntry, Mapped, RecordResult};
pub use dashboard::{ActivityFilter, ActivitySummary, RecordFilter, Totals};
pub use lease::FlowLease;
pub use mask::Masker;
pub use notifications::{Incident, NotificationRow};
pub use overrides::FlowOverrideRow;
pub use records::{FailedRecord, RunRecord};
pub use retention::{PurgeCounts, PurgeRow};
pub use runs::{Run, RunStatus};
pub use tokens::token_hash;

/// Something went wrong with the state database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the state database {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the state database up to date")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("state database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("state database holds invalid data: {0}")]
    Corrupt(String),
    #[error(
        "flow `{flow}` of tenant `{tenant}` is running already (in this or another koppel process); it can run again when that run ends"
    )]
    Busy { tenant: String, flow: String },
    #[error("cannot lock {path}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The state database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    leases: lease::Leases,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    millis(SystemTime::now())
}

pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating it when missing) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{shown}"))
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes (kill -9); only a power loss can
            // lose the last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Deleted content (purged personal data) is overwritten, not left in free pages.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: shown,
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            leases: lease::Leases::beside(path),
        })
    }

    /// A private in-memory database (one connection: each connection would get its own).
    pub async fn open_in_memory() -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(|source| {
            StoreError::Open {
                path: ":memory:".into(),
                source,
            }
        })?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: ":memory:".into(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            leases: lease::Leases::default(),
        })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The source cursor of a flow.
    pub async fn stream_state(&self, tenant: &str, flow: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT state FROM stream_states WHERE tenant = ? AND flow = ?")
                .bind(tenant)
                .bind(flow)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(state,)| state))
    }

    /// Forgets a flow's cursor, so the next run reads from the start.
    pub async fn reset_stream_state(&self, tenant: &str, flow: &str) -> Result<()> {
        sqlx::query("DELETE FROM stream_states WHERE tenant = ? AND flow = ?")
            .bind(tenant)
            .bind(flow)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a connection for the dashboard (secrets already shown as set).
    pub async fn save_connection(
        &self,
        tenant: &str,
        name: &str,
        connector: &str,
        redacted_config: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO connections (tenant, name, connector, config, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, name) DO UPDATE SET connector = excluded.connector, config = excluded.config,
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(connector)
        .bind(redacted_config)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a flow's definition and schedule for the dashboard.
    pub async fn save_flow(
        &self,
        tenant: &str,
        name: &str,
        enabled: bool,
        interval: Duration,
        definition: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO flows (tenant, name, enabled, interval_secs, definition, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant, name) DO UPDATE SET enabled = excluded.enabled,
             interval_secs = excluded.interval_secs, definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(enabled)
        .bind(interval.as_secs() as i64)
        .bind(definition)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
