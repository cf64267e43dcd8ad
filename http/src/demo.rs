//! `hookd demo`: hookd with a producer and a receiver beside it on loopback, for a visitor to
//! watch on the dashboard. The demo is a client of hookd like any other: it creates its app and
//! endpoint through the REST API, publishes through it, and its receiver verifies every signature
//! as a customer's would. The dashboard's demo panel switches the receiver between up, down, slow
//! and flaky ([`Demo`] is what it reads and changes), so retries, dead letters, the circuit and a
//! redrive can be watched happening.

mod producer;
mod receiver;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use hookd_engine::circuit::CircuitPolicy;
use hookd_engine::retry::RetryPolicy;
use hookd_engine::secret::SigningSecret;
use hookd_engine::store::{Store, apps};
use hookd_engine::worker::{Wake, WorkerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use receiver::Mode;

/// The name of the app the demo creates.
const DEMO_APP: &str = "demo";

/// The demo endpoint's retry budget: short, so a delivery exhausts it in about two seconds and a
/// dead letter appears soon after the receiver goes down.
const DEMO_MAX_ATTEMPTS: i32 = 4;
const DEMO_RETRY_BASE_MS: i64 = 250;
/// Long enough for the slow receiver (3 s) to succeed.
const DEMO_TIMEOUT_MS: i64 = 5_000;

/// The running demo: its receiver and producer, shared with the dashboard's demo routes.
#[derive(Debug)]
pub struct Demo {
    pub receiver: receiver::Receiver,
    pub producer: producer::Producer,
}

impl Demo {
    /// Starts the receiver on `receiver_listen` (port 0 picks one) until `shutdown`; the
    /// producer waits for [`Demo::run`]. Refuses a database that holds apps other than earlier
    /// demos': the demo's worker lets endpoints reach private addresses and gives up on a
    /// delivery after four quick attempts, which no real app should get.
    pub async fn start(
        store: &Store,
        receiver_listen: SocketAddr,
        rate_per_s: f64,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let others = apps::apps_count_not_named(store, DEMO_APP)
            .await
            .context("cannot read the database's apps")?;
        anyhow::ensure!(
            others == 0,
            "this database holds {others} app(s) besides demos: `hookd demo` needs a database of \
             its own (`scripts/dev demo` makes one)"
        );
        let receiver =
            receiver::Receiver::start(receiver_listen, SigningSecret::generate(), shutdown)
                .await
                .with_context(|| format!("cannot start the demo receiver on {receiver_listen}"))?;
        Ok(Self {
            receiver,
            producer: producer::Producer::new(rate_per_s),
        })
    }

    /// What the dashboard's demo panel shows.
    pub fn status(&self) -> Value {
        json!({
            "enabled": true,
            "receiver": self.receiver.status(),
            "producer": self.producer.status(),
        })
    }

    /// Sets up the demo app and its endpoint through hookd's API at `api`, says how to watch,
    /// then publishes until `shutdown`.
    pub async fn run(
        &self,
        api: SocketAddr,
        admin_token: &str,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let base = format!("http://{api}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the demo's HTTP client")?;
        let app = call(
            &client,
            &format!("{base}/v1/apps"),
            admin_token,
            json!({"name": DEMO_APP}),
        )
        .await
        .context("the demo cannot create its app")?;
        let api_key = app["api_key"]
            .as_str()
            .context("the app's creation answered no api_key")?
            .to_owned();
        call(
            &client,
            &format!("{base}/v1/endpoints"),
            &api_key,
            json!({
                "url": self.receiver.url(),
                "description": "hookd demo receiver (loopback)",
                "secret": self.receiver.secret().expose(),
                "max_attempts": DEMO_MAX_ATTEMPTS,
                "retry_base_ms": DEMO_RETRY_BASE_MS,
                "timeout_ms": DEMO_TIMEOUT_MS,
            }),
        )
        .await
        .context("the demo cannot create its endpoint")?;
        // Scripts (and the browser test) read these lines.
        println!("demo dashboard: {base}/dashboard");
        println!("demo app key: {api_key}");
        println!(
            "demo: publishing {} events/s to {}; sign in to the dashboard with the key above and \
             use its demo panel to take the receiver down, make it slow or flaky, and bring it back",
            self.producer.rate_per_s(),
            self.receiver.url()
        );
        self.producer.run(&client, &base, &api_key, shutdown).await;
        Ok(())
    }
}

/// POSTs `body` with the bearer `token` and returns the JSON answer, or why it failed.
async fn call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// The demo's worker: few slots, and a circuit that opens only after a few seconds of a
/// receiver being down (so some deliveries exhaust their retries first and dead-letter) and
/// probes again within seconds of it coming back.
pub fn worker_config(worker_id: String) -> WorkerConfig {
    WorkerConfig {
        worker_id,
        concurrency: 64,
        claim_batch: 32,
        lease_margin: Duration::from_secs(30),
        default_timeout: Duration::from_millis(DEMO_TIMEOUT_MS.unsigned_abs()),
        retry: RetryPolicy {
            max_attempts: DEMO_MAX_ATTEMPTS.unsigned_abs(),
            base: Duration::from_millis(DEMO_RETRY_BASE_MS.unsigned_abs()),
            cap: Duration::from_secs(5),
        },
        shutdown_grace: Duration::from_secs(2),
        wake: Wake::Notify,
        circuit: CircuitPolicy {
            failures_to_open: 60,
            cooldown: Duration::from_secs(3),
            cooldown_cap: Duration::from_secs(12),
            disable_after: Duration::from_secs(24 * 3600),
        },
    }
}
