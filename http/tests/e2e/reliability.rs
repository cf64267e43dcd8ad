//! "Nothing is lost", under faults: each scenario ends with a verdict computed from the chaotic
//! receiver's record and the database, never from hookd's own counters, and writes its row of
//! docs/RELIABILITY.md (see scripts/reliability). `HOOKD_RELIABILITY=long` runs the long form.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookd_benchmark::receiver::{self, Mix, Receiver, ReceiverConfig};
use hookd_engine::secret::SigningSecret;
use rand::RngExt as _;
use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

use crate::harness::*;

fn long_form() -> bool {
    std::env::var("HOOKD_RELIABILITY").is_ok_and(|v| v == "long")
}

/// One row of the record.
struct Verdict {
    scenario: &'static str,
    events: u64,
    faults: String,
    delivered: u64,
    lost: u64,
    duplicates: u64,
    longest_delay_ms: i64,
}

impl Verdict {
    /// Writes the row where scripts/reliability collects it, when asked to.
    fn record(&self) {
        let Ok(dir) = std::env::var("HOOKD_RELIABILITY_RECORD_DIR") else {
            return;
        };
        let row = json!({
            "scenario": self.scenario, "events": self.events, "faults": self.faults,
            "delivered": self.delivered, "lost": self.lost, "duplicates": self.duplicates,
            "longest_delay_ms": self.longest_delay_ms,
            "form": if long_form() { "long" } else { "short" },
        });
        std::fs::create_dir_all(&dir).unwrap();
        let file = format!("{dir}/{}.json", self.scenario.replace(' ', "_"));
        std::fs::write(file, row.to_string()).unwrap();
    }
}

async fn chaotic_receiver(secret: &SigningSecret, mix: &str) -> Receiver {
    receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        ReceiverConfig {
            secrets: vec![secret.clone()],
            mix: Mix::parse(mix).unwrap(),
            slow: Duration::from_millis(30),
            hang: Duration::from_millis(1500),
            retry_after_secs: 0,
        },
    )
    .await
    .unwrap()
}

/// Publishes `n` events in batches of 100, a few batches at a time; returns their ids.
async fn publish(api: &Client, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let batches: Vec<usize> = (0..n).step_by(100).collect();
    for group in batches.chunks(4) {
        let requests = group.iter().map(|&start| {
            let events: Vec<_> = (start..(start + 100).min(n))
                .map(|i| json!({"type": "chaos", "payload": {"i": i}}))
                .collect();
            api.call(
                Method::POST,
                "/v1/events/batch",
                key,
                Some(json!({"events": events})),
            )
        });
        for (status, body) in futures_util::future::join_all(requests).await {
            assert_eq!(status, 202, "{body}");
            for event in body["data"].as_array().unwrap() {
                ids.push(event["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// Settings for a run under fire: short timeouts, quick retries, a budget that never runs out.
const FAST_FAILOVER: [(&str, &str); 6] = [
    ("HOOKD_DELIVERY_TIMEOUT_MS", "500"),
    ("HOOKD_LEASE_MARGIN_MS", "500"),
    ("HOOKD_RETRY_BASE_MS", "20"),
    ("HOOKD_RETRY_CAP_MS", "500"),
    ("HOOKD_MAX_ATTEMPTS", "100"),
    ("HOOKD_WORKER_CONCURRENCY", "32"),
];

#[tokio::test]
async fn workers_killed_again_and_again_lose_nothing() {
    let events = if long_form() { 10_000 } else { 1_000 };
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&api_process);
    let key = api.create_app().await;
    let secret = SigningSecret::generate();
    let receiver =
        chaotic_receiver(&secret, "ok=70,error=10,throttle=5,slow=5,hang=5,drop=5").await;
    api.create_endpoint(
        &key,
        json!({"url": format!("http://{}/hook", receiver.addr), "secret": secret.expose()}),
    )
    .await;

    let workers = Arc::new(Mutex::new(vec![
        Hookd::start(&db, "worker", &FAST_FAILOVER).await,
        Hookd::start(&db, "worker", &FAST_FAILOVER).await,
    ]));
    let kills = Arc::new(AtomicU64::new(0));
    let killing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let killer = {
        let (workers, kills, killing, db) =
            (workers.clone(), kills.clone(), killing.clone(), db.clone());
        tokio::spawn(async move {
            while killing.load(Ordering::Relaxed) {
                let pause = rand::rng().random_range(200..700);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let mut workers = workers.lock().await;
                let victim = rand::rng().random_range(0..workers.len());
                workers.remove(victim).kill().await;
                kills.fetch_add(1, Ordering::Relaxed);
                workers.push(Hookd::start(&db, "worker", &FAST_FAILOVER).await);
            }
        })
    };

    let published = publish(&api, &key, events).await;
    let deadline = Instant::now() + Duration::from_secs(if long_form() { 900 } else { 180 });
    loop {
        let accepted = receiver.record.lock().unwrap().accepted.len();
        if accepted >= published.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {accepted} of {events} arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    killing.store(false, Ordering::Relaxed);
    killer.await.unwrap();

    // The database agrees: every delivery ends succeeded once the last outcomes are recorded.
    let deadline = Instant::now() + PATIENCE;
    while count(
        &db,
        "SELECT count(*) FROM deliveries WHERE state <> 'succeeded'",
    )
    .await
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "deliveries not all recorded as succeeded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = db.hookd_command(&["projection", "check"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let record = receiver.record.lock().unwrap();
    let missing = published
        .iter()
        .filter(|id| !record.accepted.contains_key(*id))
        .count() as u64;
    let verdict = Verdict {
        scenario: "worker SIGKILL loop",
        events: events as u64,
        faults: format!(
            "{} worker SIGKILLs; receiver: 30% errors, 429s, hangs past the timeout, dropped connections",
            kills.load(Ordering::Relaxed)
        ),
        delivered: record.accepted.len() as u64,
        lost: missing,
        duplicates: record.duplicates(),
        longest_delay_ms: record.max_delay_ms,
    };
    assert_eq!(verdict.lost, 0);
    assert!(
        kills.load(Ordering::Relaxed) >= 1,
        "the run must have killed workers"
    );
    assert_eq!(record.invalid_signatures, 0);
    verdict.record();
}
