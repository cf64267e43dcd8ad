//! The dashboard's page and its data: the page and assets hookd serves, `GET /v1/stats` for each
//! kind of key, and the live stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn the_page_and_its_assets_are_served_by_hookd_with_nothing_from_elsewhere() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let response = api
            .http
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(
            header("content-security-policy").contains("default-src 'none'"),
            "{path}"
        );
        let body = response.text().await.unwrap();
        for external in ["http://", "https://", "//cdn"] {
            assert!(
                !body.contains(external),
                "{path} refers to something outside hookd: {external}"
            );
        }
    }
    hookd.terminate().await;
}

/// The demo panel's routes exist on every hookd, so the page can ask without an error; only
/// `hookd demo` has a receiver to switch (the browser test drives that one), and it runs only on
/// a database of its own.
#[tokio::test]
async fn without_a_demo_the_demo_routes_say_so_and_the_demo_refuses_an_apps_database() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;

    let (status, body) = api.call(Method::GET, "/dashboard/demo", &key, None).await;
    assert_eq!((status, &body), (200, &json!({"enabled": false})));
    let (status, body) = api
        .call(Method::GET, "/dashboard/demo", "hk_wrong", None)
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            "/dashboard/demo/receiver",
            &key,
            Some(json!({"mode": "down"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("hookd demo"),
        "{body}"
    );
    hookd.terminate().await;

    // The demo's worker would let this app's endpoints reach private addresses and dead-letter
    // its deliveries after four quick attempts: it refuses the database.
    let refused = db
        .hookd_command_with(
            &["demo"],
            &[
                ("HOOKD_LISTEN", "127.0.0.1:0"),
                ("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN),
                ("HOOKD_MASTER_KEY", MASTER_KEY),
            ],
        )
        .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("needs a database of its own"), "{stderr}");
}

/// Polls `GET /v1/stats` with `key` until `done` holds.
async fn stats_until(api: &Client, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = api.call(Method::GET, "/v1/stats", key, None).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "stats never showed it: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn stats_show_an_app_its_own_figures_and_the_admin_every_app() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let other = api.create_app().await;
    let mut ok = Receiver::ok().await;
    let failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    api.create_endpoint(&key, json!({"url": ok.url, "event_types": ["ok"]}))
        .await;
    api.create_endpoint(
        &key,
        json!({"url": failing.url, "event_types": ["fails"], "max_attempts": 1}),
    )
    .await;
    for _ in 0..3 {
        api.publish(&key, "ok", json!({})).await;
    }
    api.publish(&key, "fails", json!({})).await;
    ok.take(3).await;

    // The receiver answers before the worker commits the outcome: wait until nothing is in
    // flight or pending, so every outcome is in the log.
    let mine = stats_until(&api, &key, |s| {
        let queue = &s["queue"];
        queue["dead"] == 1 && queue["in_flight"] == 0 && queue["pending"] == 0
    })
    .await;
    assert_eq!(mine["scope"], "app");
    assert!(mine["app_id"].as_str().unwrap().starts_with("app_"));
    assert_eq!(mine["window_s"], 10);
    // Four events and three successful attempts within the last ten seconds.
    assert!((mine["rates"]["published"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    assert!((mine["rates"]["delivered"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    assert!((mine["rates"]["dead_lettered"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    assert!((mine["success_ratio"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    assert!(mine["latency_ms"]["p99"].as_f64().unwrap() >= 0.0);
    assert_eq!(mine["queue"]["pending"], 0);
    assert_eq!(mine["queue"]["in_flight"], 0);
    let recent = mine["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 4);
    let states: Vec<&str> = recent.iter().filter_map(|d| d["state"].as_str()).collect();
    assert_eq!(states, ["dead", "succeeded", "succeeded", "succeeded"]);
    assert!(recent[0]["id"].as_str().unwrap().starts_with("dlv_"));

    // Another app sees nothing of it; the admin sees it all.
    let theirs = stats_until(&api, &other, |_| true).await;
    assert_eq!(theirs["queue"]["dead"], 0);
    assert_eq!(theirs["recent"], json!([]));
    assert_eq!(theirs["rates"]["published"], 0.0);
    assert!(theirs.get("latency_ms").is_none() && theirs.get("success_ratio").is_none());
    let all = stats_until(&api, ADMIN_TOKEN, |_| true).await;
    assert_eq!(all["scope"], "all");
    assert!(all.get("app_id").is_none());
    assert_eq!(all["queue"]["dead"], 1);
    assert_eq!(all["recent"][0]["app_id"], mine["app_id"]);

    let (status, body) = api.call(Method::GET, "/v1/stats", "hk_nope", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "urn:hookd:problem:unauthorized");
    hookd.terminate().await;
}

/// The next server-sent event on `response`: (event type, data).
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> (String, String) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut kind = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            // Keep-alive comments carry no data.
            if !data.is_empty() {
                return (kind, data);
            }
            continue;
        }
        let chunk = tokio::time::timeout(PATIENCE, response.chunk())
            .await
            .expect("no event in time")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_stream_sends_a_reading_every_second_and_ends_when_the_key_is_revoked() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let stream = |token: &str| {
        api.http
            .get(format!("{}/v1/stats/stream", api.base))
            .bearer_auth(token)
            .send()
    };

    let refused = stream("hk_nope").await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );

    let mut response = stream(&key).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let started = Instant::now();
    let mut readings = Vec::new();
    for _ in 0..3 {
        let (kind, data) = next_event(&mut response, &mut buffer).await;
        assert_eq!(kind, "stats");
        let reading: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(reading["scope"], "app");
        readings.push(reading["at"].as_str().unwrap().to_owned());
    }
    // The first at once, then one a second.
    assert!(started.elapsed() >= Duration::from_millis(1800));
    assert!(readings[0] < readings[2], "{readings:?}");

    let (status, keys) = api.call(Method::GET, "/v1/api-keys", &key, None).await;
    assert_eq!(status, 200, "{keys}");
    let id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(Method::DELETE, &format!("/v1/api-keys/{id}"), &key, None)
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    loop {
        let (kind, data) = next_event(&mut response, &mut buffer).await;
        if kind == "problem" {
            assert!(data.contains("revoked"), "{data}");
            break;
        }
        assert_eq!(kind, "stats");
    }
    let end = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the stream should end after a revoked key")
        .unwrap();
    assert!(
        end.is_none(),
        "the stream went on after the key was revoked"
    );
    hookd.terminate().await;
}
