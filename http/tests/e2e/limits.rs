//! Per-endpoint concurrency and rate limits, enforced across three worker processes together:
//! the verdicts are the receiver's observed peak concurrency, and the send times the log gives
//! each rate-limited delivery with the claims that followed them.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// Publishes `count` events of `event_type` in one batch request.
async fn publish_batch(api: &Client, key: &str, event_type: &str, count: usize) {
    let events: Vec<Value> = (0..count)
        .map(|n| json!({"type": event_type, "payload": {"n": n}}))
        .collect();
    api.publish_batch(key, &events).await;
}

/// The most arrivals within any `window` (half-open: (t - window, t]).
fn peak_within(arrivals: &[Received], window: Duration) -> usize {
    arrivals
        .iter()
        .map(|last| {
            arrivals
                .iter()
                .filter(|a| a.at <= last.at && last.at.duration_since(a.at) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn concurrency_and_rate_limits_hold_across_three_workers() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let workers = [
        Hookd::start(&db, "worker", &[]).await,
        Hookd::start(&db, "worker", &[]).await,
        Hookd::start(&db, "worker", &[]).await,
    ];
    let api = Client::new(&api_process);
    let key = api.create_app().await;

    // Each request takes 100 ms, so arrivals less than 100 ms apart were in flight together.
    let busy = Duration::from_millis(100);
    let mut slow = Receiver::start(Arc::new(move |_| (204, busy))).await;
    let (limited, _) = api
        .create_endpoint(
            &key,
            json!({"url": slow.url, "event_types": ["slow"], "max_in_flight": 3}),
        )
        .await;
    let mut fast = Receiver::ok().await;
    let (rated, _) = api
        .create_endpoint(
            &key,
            json!({"url": fast.url, "event_types": ["fast"], "rate_limit_per_s": 20}),
        )
        .await;
    let mut free = Receiver::start(Arc::new(move |_| (204, busy))).await;
    api.create_endpoint(&key, json!({"url": free.url, "event_types": ["slow"]}))
        .await;

    publish_batch(&api, &key, "slow", 30).await;
    publish_batch(&api, &key, "fast", 60).await;

    let slow_arrivals = slow.take(30).await;
    let concurrency = peak_within(&slow_arrivals, busy);
    assert!(
        concurrency <= 3,
        "{concurrency} requests in flight at once, limit 3"
    );
    assert!(
        concurrency >= 2,
        "the limit should still allow parallel requests"
    );
    // Without the limit, the same load runs far wider.
    let free_arrivals = free.take(30).await;
    assert!(peak_within(&free_arrivals, busy) > 3);

    let fast_arrivals = fast.take(60).await;
    // The rate is judged by the send times in the log, not by arrivals: a send a worker starts
    // late (the machine loaded) lands nearer the next one, which keeps its own time.
    let rated_uuid = rated.strip_prefix("ep_").unwrap();
    let sends = db
        .client()
        .await
        .query_one(
            "WITH sends AS (
                 SELECT (SELECT l.next_attempt_at FROM delivery_log l
                         WHERE l.delivery_id = d.id AND l.kind IN ('created', 'resumed')
                           AND l.next_attempt_at IS NOT NULL
                         ORDER BY l.seq DESC LIMIT 1) AS slot,
                        (SELECT min(l.at) FROM delivery_log l
                         WHERE l.delivery_id = d.id AND l.kind = 'claimed') AS claimed_at
                 FROM deliveries d WHERE d.endpoint_id = $1::text::uuid
             ),
             spaced AS (SELECT *, slot - lag(slot) OVER (ORDER BY slot) AS gap FROM sends)
             SELECT count(*),
                    count(*) FILTER (WHERE slot IS NULL OR claimed_at IS NULL OR claimed_at < slot),
                    (extract(epoch FROM min(gap)) * 1000)::float8,
                    (extract(epoch FROM max(claimed_at - slot)) * 1000)::float8
             FROM spaced",
            &[&rated_uuid],
        )
        .await
        .unwrap();
    let (count, off_time, closest_ms, latest_ms): (i64, i64, f64, f64) =
        (sends.get(0), sends.get(1), sends.get(2), sends.get(3));
    assert_eq!(count, 60);
    assert_eq!(
        off_time, 0,
        "deliveries without a send time, unclaimed, or claimed before their time"
    );
    // Late is allowed, within reason: three idle workers on loopback.
    assert!(
        latest_ms < 1_000.0,
        "a claim {latest_ms} ms after its send time"
    );
    assert!(
        closest_ms >= 50.0,
        "two send times {closest_ms} ms apart, limit 20/s"
    );
    let first = fast_arrivals.iter().map(|a| a.at).min().unwrap();
    let last = fast_arrivals.iter().map(|a| a.at).max().unwrap();
    assert!(
        last.duration_since(first) >= Duration::from_millis(2_800),
        "60 deliveries at 20/s took {:?}",
        last.duration_since(first)
    );

    // The limits show on the endpoints, and lifting one releases what waits at once.
    let body = api.endpoint(&key, &limited).await;
    assert_eq!(body["max_in_flight"], 3, "{body}");
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/v1/endpoints/{rated}"),
            &key,
            Some(json!({"rate_limit_per_s": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("rate_limit_per_s").is_none_or(Value::is_null),
        "{body}"
    );
    publish_batch(&api, &key, "fast", 40).await;
    let burst = fast.take(40).await;
    assert!(peak_within(&burst, Duration::from_secs(1)) > 21);

    for worker in workers {
        worker.terminate().await;
    }
    db.assert_projection_consistent().await;
}
