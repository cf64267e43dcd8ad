//! `GET /metrics`: what a scrape shows after real deliveries, on the API port and on a
//! worker-only process, checked by Prometheus's own `promtool`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

const EVENTS: usize = 5;

#[tokio::test]
async fn a_scrape_counts_what_happened_and_promtool_accepts_it() {
    let db = TestDb::create().await;
    let refresh = [("HOOKD_METRICS_REFRESH_MS", "200")];
    let hookd = Hookd::start(&db, "api", &refresh).await;
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let _worker = Hookd::start(
        &db,
        "worker",
        &[
            refresh[0],
            ("HOOKD_METRICS_LISTEN", metrics_listen.as_str()),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let ok = Receiver::ok().await;
    let failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    api.create_endpoint(&key, json!({"url": ok.url, "event_types": ["order.paid"]}))
        .await;
    api.create_endpoint(
        &key,
        json!({"url": failing.url, "event_types": ["order.failed"], "max_attempts": 1}),
    )
    .await;
    let mut delivered = Vec::new();
    for n in 0..EVENTS {
        let accepted = api.publish(&key, "order.paid", json!({"n": n})).await;
        delivered.push(accepted["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    let accepted = api.publish(&key, "order.failed", json!({})).await;
    let dead = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    for id in &delivered {
        api.wait_for_state(&key, id, "succeeded").await;
    }
    api.wait_for_state(&key, &dead, "dead").await;
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/deliveries/dlv_0193a0a1b2c37d8e9f0a1b2c3d4e5f60",
            &key,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The API process: what it accepted and answered, and the gauges read from the database.
    let api_text = scrape_until(&format!("{}/metrics", api.base), |s| {
        s.value("hookd_deliveries", &[("state", "succeeded")]) == Some(EVENTS as f64)
            && s.value("hookd_deliveries", &[("state", "dead")]) == Some(1.0)
    })
    .await;
    let api_scrape = Scrape::parse(&api_text);
    let published = (EVENTS + 1) as f64;
    assert_eq!(
        api_scrape.value("hookd_events_published_total", &[]),
        Some(published)
    );
    assert_eq!(
        api_scrape.value("hookd_deliveries_created_total", &[]),
        Some(published)
    );
    assert_eq!(
        api_scrape.value(
            "hookd_http_requests_total",
            &[
                ("route", "/v1/events"),
                ("method", "POST"),
                ("status", "202")
            ]
        ),
        Some(published)
    );
    assert_eq!(
        api_scrape.value(
            "hookd_http_requests_total",
            &[
                ("route", "/v1/deliveries/{id}"),
                ("method", "GET"),
                ("status", "404")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        api_scrape.value("hookd_deliveries", &[("state", "pending")]),
        Some(0.0)
    );
    assert_eq!(
        api_scrape.value("hookd_oldest_due_delivery_age_seconds", &[]),
        Some(0.0)
    );
    assert!(
        !api_text.contains("dlv_") && !api_text.contains("ep_"),
        "ids must never become labels"
    );

    // The worker-only process, on its own metrics address: what it sent and how it woke up.
    let worker_text = scrape_until(&format!("http://{metrics_listen}/metrics"), |s| {
        s.value("hookd_delivery_transitions_total", &[("to", "dead")]) == Some(1.0)
    })
    .await;
    let worker = Scrape::parse(&worker_text);
    assert_eq!(
        worker.value(
            "hookd_delivery_attempts_total",
            &[("result", "success"), ("error_class", "none")]
        ),
        Some(EVENTS as f64)
    );
    assert_eq!(
        worker.value(
            "hookd_delivery_attempts_total",
            &[("result", "failure"), ("error_class", "http_status")]
        ),
        Some(1.0)
    );
    assert_eq!(
        worker.value("hookd_delivery_transitions_total", &[("to", "succeeded")]),
        Some(EVENTS as f64)
    );
    assert_eq!(
        worker.value("hookd_delivery_publish_to_delivered_seconds_count", &[]),
        Some(EVENTS as f64)
    );
    // The worker may start listening after the publishes: then its first scan finds the work
    // and no NOTIFY is needed. Either way the series exist from the start.
    assert!(
        worker
            .value("hookd_worker_wakeups_total", &[("cause", "notify")])
            .is_some(),
        "{worker_text}"
    );
    assert!(
        worker
            .value("hookd_worker_wakeups_total", &[("cause", "scan")])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        worker
            .value("hookd_worker_claim_batch_size_count", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        worker
            .value("hookd_db_pool_connections", &[("state", "max")])
            .is_some_and(|n| n >= 1.0)
    );

    for text in [&api_text, &worker_text] {
        promtool_accepts(text).await;
    }
}

/// Scrapes `url` until `ready` holds of the exposition (the gauges refresh on an interval).
async fn scrape_until(url: &str, ready: impl Fn(&Scrape) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = response.text().await.unwrap();
        if ready(&Scrape::parse(&text)) {
            return text;
        }
        assert!(Instant::now() < deadline, "never ready:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `promtool check metrics` reads an exposition on stdin and lints it (names, units, help).
async fn promtool_accepts(exposition: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is missing: scripts/test installs Debian's prometheus package");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(exposition.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The samples of a Prometheus text exposition.
struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        Some((k.to_owned(), v.trim_matches('"').to_owned()))
                    })
                    .collect();
                Some((name.to_owned(), labels, value.parse().ok()?))
            })
            .collect();
        Self { samples }
    }

    /// The value of the one series of `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }
}
