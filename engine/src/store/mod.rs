//! The store: every SQL statement hookd runs, one function per statement, named
//! `<entity>_<verb>`. It is the only code that writes deliveries and their log, and every
//! function that changes a delivery's state appends the log row and updates the projection in
//! the same statement.
//!
//! - [`lanes`]: ordered delivery: moving an ordered endpoint's lane on.
//! - [`migrate`]: applying `migrations/*.sql`.
//! - [`apps`]: apps (tenants) and API keys.
//! - [`endpoints`]: where webhooks go.
//! - [`ingest`]: events, idempotency records and the deliveries they fan out to.
//! - [`circuits`]: endpoints' circuit breakers: counting attempts, reading them.
//! - [`deliveries`]: the queue: every change of a delivery's state (claim, outcomes, release,
//!   redrive, cancel).
//! - [`delivery_reads`]: reads of deliveries, their history and an endpoint's figures.
//! - [`events`]: reads of events.
//! - [`check`]: folding the log and comparing it with the projection.
//! - [`retention`]: removing history past its retention age, and expiring idempotency records.
//! - [`secrets`]: rotating endpoint secrets and resealing them under a new master key.

pub mod apps;
pub mod check;
pub mod circuits;
pub mod deliveries;
pub mod delivery_reads;
pub mod endpoints;
pub mod events;
pub mod ingest;
pub mod lanes;
pub mod migrate;
pub mod retention;
pub mod secrets;
pub mod stats;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::ids::EndpointId;
use crate::secret::SigningSecret;
use crate::vault::Vault;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No connection could be had in time: the database is down, restarting or unreachable.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("database error: {}", describe_database_error(.0))]
    Database(#[source] tokio_postgres::Error),
    /// The database holds a value this build cannot read (a newer schema?).
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    /// `DATABASE_URL` could not be parsed.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    /// A secret must be sealed or opened, and no master key is configured.
    #[error("no master key is configured (HOOKD_MASTER_KEY)")]
    NoMasterKey,
    /// A stored secret does not open with the configured master keys.
    #[error("a stored secret cannot be opened: {0}")]
    Sealed(#[from] crate::vault::VaultError),
}

/// tokio-postgres prints a server's error as "db error", keeping the message in its source;
/// logs need the message, its code and where it arose.
fn describe_database_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(context) = db.where_() {
                text.push_str(&format!("; at {context}"));
            }
            text
        }
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

impl StoreError {
    /// Whether retrying later may succeed (the database went away) rather than the request itself
    /// being wrong.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(e) => {
                // Connection exceptions (08), operator intervention such as a shutdown or a
                // terminated backend (57), and insufficient resources (53) pass with time.
                e.is_closed()
                    || e.as_db_error().is_none_or(|db| {
                        let code = db.code().code();
                        code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
                    })
            }
            _ => false,
        }
    }
}

// Every database failure passes through one of these two conversions: they count it.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let error = Self::Database(e);
        crate::metrics::db_error(error.is_unavailable());
        error
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        let error = match e {
            deadpool_postgres::PoolError::Backend(db) => Self::Database(db),
            other => Self::Unavailable(other.to_string()),
        };
        crate::metrics::db_error(error.is_unavailable());
        error
    }
}

impl From<crate::delivery::UnknownValue> for StoreError {
    fn from(e: crate::delivery::UnknownValue) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// A pool of connections to hookd's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Seals endpoint secrets on the way in and opens them on the way out; only the store sees
    /// them sealed.
    vault: Option<Vault>,
}

impl Store {
    /// Builds a pool; connections are opened lazily, so this succeeds while the database is down.
    pub fn connect(database_url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = database_url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("hookd");
        }
        config.connect_timeout(Duration::from_secs(5));
        // JIT compiles any plan whose estimated cost passes a threshold, as the claim statement's
        // does over a large backlog: most of a second of compiling for a statement that runs in
        // milliseconds. Options in the URL come after, so a user's own setting wins.
        let options = match config.get_options() {
            Some(theirs) => format!("-c jit=off {theirs}"),
            None => "-c jit=off".to_owned(),
        };
        config.options(&options);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Waiting longer than this for a connection means the database is away: callers answer
        // "unavailable" instead of hanging.
        let wait = Duration::from_secs(5);
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            config,
            vault: None,
        })
    }

    /// The master keys that seal and open endpoint secrets.
    pub fn with_vault(mut self, vault: Vault) -> Self {
        self.vault = Some(vault);
        self
    }

    fn vault(&self) -> Result<&Vault, StoreError> {
        self.vault.as_ref().ok_or(StoreError::NoMasterKey)
    }

    /// Seals an endpoint's signing secret for its row.
    pub(crate) fn seal_secret(
        &self,
        endpoint_id: EndpointId,
        secret: &SigningSecret,
    ) -> Result<String, StoreError> {
        Ok(self
            .vault()?
            .seal(secret.expose().as_bytes(), endpoint_id.0.as_bytes()))
    }

    /// Opens a stored signing secret. Rows written before secrets were sealed hold the plain
    /// `whsec_` text; they open as they are until `hookd secrets reseal` seals them.
    pub(crate) fn open_secret(
        &self,
        endpoint_id: EndpointId,
        stored: &str,
    ) -> Result<SigningSecret, StoreError> {
        let text = if stored.starts_with(crate::secret::SIGNING_SECRET_PREFIX) {
            stored.to_owned()
        } else {
            let bytes = self.vault()?.open(stored, endpoint_id.0.as_bytes())?;
            String::from_utf8(bytes)
                .map_err(|_| StoreError::Corrupt("secret is not text".into()))?
        };
        SigningSecret::parse(&text).map_err(|e| StoreError::Corrupt(format!("secret: {e}")))
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// The connection settings, for the dedicated LISTEN connection.
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Pool figures, for readiness and metrics.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}

/// Milliseconds for a statement, capped at a thousand years: "for ever" is a very long duration,
/// and PostgreSQL's intervals and timestamps end long before `i64::MAX` milliseconds.
/// A read-only transaction over one snapshot, for reads made of several statements that must
/// agree with each other.
pub(crate) async fn snapshot_read(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

pub(crate) fn millis(d: Duration) -> i64 {
    const THOUSAND_YEARS_MS: i64 = 1_000 * 365 * 24 * 3_600 * 1_000;
    i64::try_from(d.as_millis()).map_or(THOUSAND_YEARS_MS, |ms| ms.min(THOUSAND_YEARS_MS))
}

/// Reads a text column into one of the engine's enums.
pub(crate) fn parse_text<T>(row: &tokio_postgres::Row, column: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = crate::delivery::UnknownValue>,
{
    let text: &str = row.try_get(column)?;
    Ok(text.parse()?)
}
