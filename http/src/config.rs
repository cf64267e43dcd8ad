//! Configuration: command-line flags, each also read from a `HOOKD_…` environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hookd_engine::circuit::CircuitPolicy;
use hookd_engine::retention::RetentionPolicy;
use hookd_engine::retry::RetryPolicy;
use hookd_engine::vault::Vault;
use hookd_engine::worker::{Wake, WorkerConfig};

const ENVIRONMENT: &str = "\
Environment (each also a flag of the subcommands that use it; see `hookd <command> --help`):
  DATABASE_URL                 PostgreSQL connection URL (required)
  HOOKD_LISTEN                 API address:port                      [default: 127.0.0.1:8080]
  HOOKD_ADMIN_TOKEN            token for admin routes (/v1/apps)      (required by serve, api, demo)
  HOOKD_MASTER_KEY             key sealing endpoint secrets at rest, base64 of 32 bytes
                               (`hookd keygen` makes one)  (required by serve, api, worker, demo)
  HOOKD_PREVIOUS_MASTER_KEYS   earlier master keys, comma-separated, still accepted for opening
  HOOKD_ALLOW_PRIVATE_TARGETS  let endpoints on loopback/private addresses receive [default: false]
  HOOKD_RETRY_BASE_MS          delay after the first failed attempt   [default: 5000]
  HOOKD_RETRY_CAP_MS           longest delay between attempts         [default: 21600000 (6 h)]
  HOOKD_MAX_ATTEMPTS           attempts before dead-lettering         [default: 18 (~35 h)]
  HOOKD_DELIVERY_TIMEOUT_MS    total time an attempt may take         [default: 15000]
  HOOKD_CONNECT_TIMEOUT_MS     time to connect to a receiver          [default: 5000]
  HOOKD_WORKER_CONCURRENCY     webhooks in flight per worker process  [default: 256]
  HOOKD_CLAIM_BATCH            deliveries claimed per query           [default: 128]
  HOOKD_LEASE_MARGIN_MS        lease = attempt timeout + this margin  [default: 30000]
  HOOKD_SHUTDOWN_GRACE_MS      time in-flight sends get on SIGTERM    [default: 10000]
  HOOKD_CIRCUIT_FAILURES       failures in a row that open an endpoint's circuit [default: 20]
  HOOKD_CIRCUIT_COOLDOWN       time an open circuit waits before a probe [default: 30s]
  HOOKD_CIRCUIT_COOLDOWN_CAP   longest cooldown (doubles per failed probe) [default: 10m]
  HOOKD_AUTO_DISABLE_AFTER     disable an endpoint failing this long with no success [default: 5d]
  HOOKD_RETENTION              keep delivered history this long       [default: 30d]
  HOOKD_DEAD_LETTER_RETENTION  keep dead letters this long (>= the above) [default: 90d, or more]
  HOOKD_IDEMPOTENCY_RETENTION  honour an Idempotency-Key at least this long [default: 24h]
  HOOKD_RETENTION_SWEEP_EVERY  time between retention sweeps          [default: 5m]
  HOOKD_DB_POOL_SIZE           database connections per process       [default: 16]
  HOOKD_MAX_BODY_BYTES         largest accepted request body          [default: 262144]
  HOOKD_METRICS_LISTEN         also serve /metrics on this address:port (the only way to
                               scrape a worker-only process)          [default: none]
  HOOKD_METRICS_REFRESH_MS     how often database gauges are re-read  [default: 15000]
  HOOKD_LOG                    log filter (tracing env-filter syntax) [default: info]
  HOOKD_LOG_FORMAT             text, or json (one object per line)    [default: text]
  HOOKD_DEMO_RATE              events/s the demo's producer publishes [default: 5]
  HOOKD_DEMO_RECEIVER_LISTEN   address:port of the demo's receiver    [default: 127.0.0.1:0]";

/// hookd: a webhook delivery engine on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "hookd", version, after_help = ENVIRONMENT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the workers in one process (migrates first).
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        retention: RetentionArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Run only the API (migrates first).
    Api {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Run only a worker (migrates first).
    Worker {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        retention: RetentionArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Run the API and a worker with a demo beside them, on a database of its own: a receiver on
    /// loopback that the dashboard can take down, slow down or make flaky, and a producer
    /// publishing a shop's events to it. The worker's settings are the demo's (private targets
    /// allowed, 4 quick attempts, a quick circuit), not the HOOKD_ worker variables.
    Demo {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        retention: RetentionArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
        #[command(flatten)]
        demo: DemoArgs,
    },
    /// Print a new random master key (for HOOKD_MASTER_KEY) and exit.
    Keygen,
    /// Manage endpoint secrets at rest.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Apply pending migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print the OpenAPI document of the API (as served at /openapi.json) and exit.
    Openapi,
    /// Inspect the delivery projection.
    Projection {
        #[command(subcommand)]
        command: ProjectionCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionCommand {
    /// Fold every delivery's log and report deliveries whose current state differs (exit 1).
    Check {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Seal every endpoint secret with the current master key (after a master key rotation).
    Reseal {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        keys: MasterKeyArgs,
    },
}

#[derive(Debug, Args)]
pub struct MasterKeyArgs {
    /// Master key that seals endpoint secrets in the database: base64 of 32 bytes.
    #[arg(long, env = "HOOKD_MASTER_KEY", hide_env_values = true)]
    pub master_key: String,
    /// Earlier master keys, comma-separated: they still open secrets sealed with them, until
    /// `hookd secrets reseal` has moved every secret to the current key.
    #[arg(
        long,
        env = "HOOKD_PREVIOUS_MASTER_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub previous_master_keys: Vec<String>,
}

impl MasterKeyArgs {
    pub fn vault(&self) -> anyhow::Result<Vault> {
        let previous: Vec<&str> = self
            .previous_master_keys
            .iter()
            .map(String::as_str)
            .filter(|k| !k.trim().is_empty())
            .collect();
        Vault::new(&self.master_key, &previous)
            .map_err(|e| anyhow::anyhow!("HOOKD_MASTER_KEY / HOOKD_PREVIOUS_MASTER_KEYS: {e}"))
    }
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Also serve `GET /metrics` on this address:port. The API port always serves it; a
    /// worker-only process is scraped here.
    #[arg(long, env = "HOOKD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// How often the gauges read from the database (deliveries by state, oldest due age) are
    /// refreshed, in milliseconds.
    #[arg(long, env = "HOOKD_METRICS_REFRESH_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub metrics_refresh_ms: u64,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Database connections per process.
    #[arg(long, env = "HOOKD_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub db_pool_size: u16,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Address and port the API listens on (port 0 picks a free one).
    #[arg(long, env = "HOOKD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Token for admin routes, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "HOOKD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Largest accepted request body, in bytes (larger ones are answered 413).
    #[arg(long, env = "HOOKD_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Let endpoints on loopback and private addresses receive webhooks (development, tests).
    #[arg(long, env = "HOOKD_ALLOW_PRIVATE_TARGETS", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_private_targets: bool,
    /// Delay after the first failed attempt, in ms; it doubles with each further failure.
    #[arg(long, env = "HOOKD_RETRY_BASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_base_ms: u64,
    /// Longest delay between attempts, in ms.
    #[arg(long, env = "HOOKD_RETRY_CAP_MS", default_value_t = 6 * 3600 * 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_cap_ms: u64,
    /// Attempts a delivery gets before it is dead-lettered (the first try counts).
    #[arg(long, env = "HOOKD_MAX_ATTEMPTS", default_value_t = 18, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Total time one attempt may take (connect, send, response), in ms.
    #[arg(long, env = "HOOKD_DELIVERY_TIMEOUT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub delivery_timeout_ms: u64,
    /// Time to establish a connection to a receiver, in ms.
    #[arg(long, env = "HOOKD_CONNECT_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout_ms: u64,
    /// Webhooks in flight at once in this process.
    #[arg(long, env = "HOOKD_WORKER_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub worker_concurrency: u32,
    /// Deliveries claimed per query.
    #[arg(long, env = "HOOKD_CLAIM_BATCH", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub claim_batch: u32,
    /// A lease lasts the attempt's timeout plus this margin, in ms; a dead worker's deliveries
    /// are retried once it expires.
    #[arg(long, env = "HOOKD_LEASE_MARGIN_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_margin_ms: u64,
    /// On SIGTERM, how long in-flight sends may finish before they are released, in ms.
    #[arg(long, env = "HOOKD_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// Failed attempts in a row (5xx, 429, timeouts, connection errors; no success between)
    /// that open an endpoint's circuit: its deliveries then wait, uncharged, for a probe.
    #[arg(long, env = "HOOKD_CIRCUIT_FAILURES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub circuit_failures: u32,
    /// How long an endpoint's circuit stays open before the first probe ("30s").
    #[arg(long, env = "HOOKD_CIRCUIT_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub circuit_cooldown: Duration,
    /// Longest cooldown: it doubles each time a probe fails, up to this ("10m").
    #[arg(long, env = "HOOKD_CIRCUIT_COOLDOWN_CAP", default_value = "10m", value_parser = humantime::parse_duration)]
    pub circuit_cooldown_cap: Duration,
    /// Disable an endpoint that has failed without a single success for this long, and
    /// dead-letter its pending deliveries ("5d").
    #[arg(long, env = "HOOKD_AUTO_DISABLE_AFTER", default_value = "5d", value_parser = humantime::parse_duration)]
    pub auto_disable_after: Duration,
    /// Benchmark only: poll for work every this many ms instead of listening for NOTIFY, so
    /// the benchmark can compare the two with one build. Hidden: nobody should run this way.
    #[arg(long, env = "HOOKD_BENCH_POLL_MS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub bench_poll_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Events the demo's producer publishes per second (0.1 to 1000).
    #[arg(long, env = "HOOKD_DEMO_RATE", default_value_t = 5.0, value_parser = demo_rate)]
    pub demo_rate: f64,
    /// Address and port of the demo's receiver (port 0 picks a free one).
    #[arg(
        long,
        env = "HOOKD_DEMO_RECEIVER_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub demo_receiver_listen: SocketAddr,
}

fn demo_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.1..=1000.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate between 0.1 and 1000 events/s"
        )),
    }
}

/// How long history is kept. Every worker process sweeps; an advisory lock lets one at a time.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Keep events whose deliveries all succeeded or were cancelled this long after their last
    /// change, then remove them with their deliveries and history ("30d", "12h"; "1000y" keeps
    /// them).
    #[arg(long, env = "HOOKD_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Keep dead-lettered deliveries (and their events) this long after they were
    /// dead-lettered, so they can be redriven; at least as long as HOOKD_RETENTION. Default:
    /// 90d, or HOOKD_RETENTION when that is longer.
    #[arg(long, env = "HOOKD_DEAD_LETTER_RETENTION", value_parser = humantime::parse_duration)]
    pub dead_letter_retention: Option<Duration>,
    /// Honour an `Idempotency-Key` at least this long; expired keys are forgotten by the sweep.
    #[arg(long, env = "HOOKD_IDEMPOTENCY_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_retention: Duration,
    /// Time between retention sweeps.
    #[arg(long, env = "HOOKD_RETENTION_SWEEP_EVERY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub retention_sweep_every: Duration,
}

impl RetentionArgs {
    pub fn policy(&self) -> anyhow::Result<RetentionPolicy> {
        const DEAD_LETTERS_DEFAULT: Duration = Duration::from_secs(90 * 24 * 3600);
        RetentionPolicy {
            delivered: self.retention,
            dead: self
                .dead_letter_retention
                .unwrap_or(DEAD_LETTERS_DEFAULT.max(self.retention)),
            idempotency: self.idempotency_retention,
            every: self.retention_sweep_every,
        }
        .validate()
        .map_err(|e| {
            anyhow::anyhow!("HOOKD_DEAD_LETTER_RETENTION / HOOKD_RETENTION_SWEEP_EVERY: {e}")
        })
    }
}

impl WorkerArgs {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: Duration::from_millis(self.retry_base_ms),
            cap: Duration::from_millis(self.retry_cap_ms.max(self.retry_base_ms)),
        }
    }

    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            worker_id: worker_id(),
            concurrency: self.worker_concurrency as usize,
            claim_batch: self.claim_batch as usize,
            lease_margin: Duration::from_millis(self.lease_margin_ms),
            default_timeout: Duration::from_millis(self.delivery_timeout_ms),
            retry: self.retry_policy(),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            wake: self
                .bench_poll_ms
                .map_or(Wake::Notify, |ms| Wake::Poll(Duration::from_millis(ms))),
            circuit: CircuitPolicy {
                failures_to_open: self.circuit_failures,
                cooldown: self.circuit_cooldown,
                cooldown_cap: self.circuit_cooldown_cap.max(self.circuit_cooldown),
                disable_after: self.auto_disable_after,
            },
        }
    }
}

/// Host, process and a random suffix: unique across restarts, readable in the delivery log.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}
