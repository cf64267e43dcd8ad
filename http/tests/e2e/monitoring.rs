//! The monitoring assets in `grafana/`, checked against a real Prometheus: it scrapes an API and
//! a worker process (with `grafana/prometheus.yml`, targets replaced) while they deliver to
//! chaotic receivers, loads the alert rules, and every PromQL expression of every dashboard panel
//! and rule is evaluated through its query API and must return data.
//!
//! `HOOKD_DASHBOARD_RECORD_DIR` turns it into the recorder behind `scripts/dashboard-images`: a
//! longer run with a receiver outage and a redrive, whose panel data is written for rendering.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hookd_benchmark::receiver::{self, Mix, Receiver, ReceiverConfig};
use hookd_engine::secret::SigningSecret;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::harness::*;

const DASHBOARDS: [&str; 2] = ["delivery-overview.json", "workers-and-database.json"];

/// The main receiver's everyday mix: mostly fine, with the failures every real receiver has.
const HEALTHY: &str = "ok=90,error=4,throttle=2,slow=4";

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

#[tokio::test]
async fn every_dashboard_panel_and_alert_rule_returns_data_from_a_real_prometheus() {
    let record_dir = std::env::var("HOOKD_DASHBOARD_RECORD_DIR").ok();
    // The recording runs with a slower retry schedule so that an outage shows up as retries
    // first and dead letters later, as it would in production.
    let schedule: &[(&str, &str)] = if record_dir.is_some() {
        &[
            ("HOOKD_RETRY_BASE_MS", "1000"),
            ("HOOKD_RETRY_CAP_MS", "8000"),
            ("HOOKD_MAX_ATTEMPTS", "6"),
        ]
    } else {
        &[]
    };
    let db = TestDb::create().await;
    let refresh = ("HOOKD_METRICS_REFRESH_MS", "500");
    let mut api_env = vec![refresh];
    api_env.extend_from_slice(schedule);
    let api_process = Hookd::start(&db, "api", &api_env).await;
    let worker_metrics = format!("127.0.0.1:{}", free_port());
    let mut worker_env = vec![refresh, ("HOOKD_METRICS_LISTEN", worker_metrics.as_str())];
    worker_env.extend_from_slice(schedule);
    let _worker = Hookd::start(&db, "worker", &worker_env).await;
    let api = Client::new(&api_process);
    let key = api.create_app().await;

    // A mostly healthy receiver on the process's retry schedule, and a flaky one whose endpoint
    // gives up after two attempts so that dead letters happen too.
    let healthy = subscribe(&api, &key, "order.paid", HEALTHY, None).await;
    let _flaky = subscribe(&api, &key, "order.flaky", "ok=50,error=50", Some(2)).await;
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = tokio::spawn(publish_until_stopped(
        api.clone(),
        key.clone(),
        publishing.clone(),
    ));

    let api_address = api.base.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&api_address, &worker_metrics).await;
    prometheus
        .wait_until_scraped(&["up{job=\"hookd\"} == 1"], 2)
        .await;

    let rate_interval = if record_dir.is_some() { "20s" } else { "5s" };
    let panels = dashboard_queries(rate_interval);
    assert!(panels.len() >= 20, "{} panel queries", panels.len());
    for query in &panels {
        prometheus.wait_for_data(query).await;
    }
    check_variables(&prometheus, &api_address, &worker_metrics).await;
    check_rules(&prometheus).await;

    if let Some(dir) = record_dir {
        let start = prometheus.started_unix;
        record_story(&api, &key, &healthy).await;
        let end = unix_now();
        write_panel_data(&prometheus, rate_interval, start, end, Path::new(&dir)).await;
    }
    publishing.store(false, Ordering::Relaxed);
    publisher.await.unwrap();
}

/// A chaotic receiver behind an endpoint subscribed to `event_type`.
async fn subscribe(
    api: &Client,
    key: &str,
    event_type: &str,
    mix: &str,
    max_attempts: Option<u32>,
) -> Receiver {
    let secret = SigningSecret::generate();
    let receiver = receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        ReceiverConfig {
            secrets: vec![secret.clone()],
            mix: Mix::parse(mix).unwrap(),
            slow: Duration::from_millis(40),
            hang: Duration::from_secs(3),
            retry_after_secs: 0,
        },
    )
    .await
    .unwrap();
    api.create_endpoint(
        key,
        json!({
            "url": format!("http://{}/hook", receiver.addr),
            "secret": secret.expose(),
            "event_types": [event_type],
            "max_attempts": max_attempts,
        }),
    )
    .await;
    receiver
}

/// About 200 events a second, nine paid orders to one flaky one, until told to stop.
async fn publish_until_stopped(api: Client, key: String, publishing: Arc<AtomicBool>) {
    let mut n = 0u64;
    while publishing.load(Ordering::Relaxed) {
        let events: Vec<_> = (0..20)
            .map(|i| {
                n += 1;
                let kind = if i % 10 == 0 {
                    "order.flaky"
                } else {
                    "order.paid"
                };
                json!({"type": kind, "payload": {"order": n}})
            })
            .collect();
        let (status, body) = api
            .call(
                Method::POST,
                "/v1/events/batch",
                &key,
                Some(json!({ "events": events })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every panel query of every dashboard, with Grafana's variables filled in as "All" would.
fn dashboard_queries(rate_interval: &str) -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    for file in DASHBOARDS {
        let path = grafana_dir().join("dashboards").join(file);
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let panels = dashboard["panels"].as_array().unwrap();
        let mut ids = std::collections::HashSet::new();
        for panel in panels {
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "duplicate panel id"
            );
            // Importable without editing: every panel uses the datasource variable.
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{} has no query", panel["title"]);
            for target in targets {
                let expr = target["expr"].as_str().unwrap();
                assert!(
                    expr.contains("$job") && expr.contains("$instance"),
                    "{expr} ignores the job/instance variables"
                );
                queries.push(PanelQuery {
                    dashboard: dashboard["title"].as_str().unwrap().to_owned(),
                    panel: panel["title"].as_str().unwrap().to_owned(),
                    unit: panel["fieldConfig"]["defaults"]["unit"]
                        .as_str()
                        .unwrap_or("short")
                        .to_owned(),
                    grid: panel["gridPos"].clone(),
                    kind: panel["type"].as_str().unwrap().to_owned(),
                    legend: target["legendFormat"].as_str().unwrap_or("").to_owned(),
                    promql: expr
                        .replace("$__rate_interval", rate_interval)
                        .replace("$job", "hookd")
                        .replace("$instance", ".*"),
                });
            }
        }
    }
    queries
}

struct PanelQuery {
    dashboard: String,
    panel: String,
    unit: String,
    grid: Value,
    kind: String,
    legend: String,
    promql: String,
}

/// The job and instance variables list what Prometheus scrapes.
async fn check_variables(prometheus: &Prometheus, api_address: &str, worker_address: &str) {
    for file in DASHBOARDS {
        let path = grafana_dir().join("dashboards").join(file);
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let names: Vec<_> = variables
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["datasource", "job", "instance"], "{file}");
        for variable in &variables[1..] {
            // label_values(<selector>, <label>): Grafana asks Prometheus's label values API.
            let definition = variable["definition"].as_str().unwrap();
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .unwrap();
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let selector = selector.replace("$job", "hookd");
            let values = prometheus
                .get(
                    &format!("/api/v1/label/{}/values", label.trim()),
                    &[("match[]", selector.as_str())],
                )
                .await;
            let values: Vec<_> = values.as_array().unwrap().iter().collect();
            let expected: &[&str] = if label.trim() == "job" {
                &["hookd"]
            } else {
                &[api_address, worker_address]
            };
            for value in expected {
                assert!(
                    values.iter().any(|v| v == value),
                    "{definition}: {values:?}"
                );
            }
        }
    }
}

/// The rules file loads, every alert evaluates without error, and what each alert compares
/// against its threshold returns data.
async fn check_rules(prometheus: &Prometheus) {
    let rules_file = std::fs::read_to_string(grafana_dir().join("alerts/hookd.rules.yml")).unwrap();
    let expected: Vec<&str> = rules_file
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(expected.len(), 5, "{expected:?}");
    let deadline = Instant::now() + PATIENCE;
    let rules = loop {
        let groups = prometheus.get("/api/v1/rules", &[]).await;
        let rules: Vec<Value> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let evaluated = rules.len() == expected.len()
            && rules
                .iter()
                .all(|r| !r["lastEvaluation"].as_str().unwrap().starts_with("0001"));
        if evaluated {
            break rules;
        }
        assert!(Instant::now() < deadline, "rules never evaluated: {groups}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        assert!(expected.contains(&name), "{name}");
        assert_eq!(rule["health"], "ok", "{rule}");
        let query = rule["query"].as_str().unwrap();
        for signal in signals(query) {
            prometheus
                .wait_for_data(&PanelQuery {
                    dashboard: "alert rules".into(),
                    panel: name.into(),
                    unit: String::new(),
                    grid: Value::Null,
                    kind: String::new(),
                    legend: String::new(),
                    promql: signal,
                })
                .await;
        }
    }
}

/// The operands of a rule's set operators (`unless`, `and`, `or`), each without its threshold
/// comparison: what the alert watches, which returns data even while the alert is quiet.
fn signals(expr: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ if depth == 0 => {
                for op in [" unless ", " and ", " or "] {
                    if expr[i..].starts_with(op) {
                        parts.push(&expr[start..i]);
                        start = i + op.len();
                        i = start - 1;
                        break;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&expr[start..]);
    parts
        .into_iter()
        .map(|part| {
            let part = part.trim();
            // The right operand of `unless on()` starts with its matching clause.
            let part = match part.strip_prefix("on") {
                Some(rest) if rest.trim_start().starts_with('(') => {
                    rest.split_once(')').map_or(part, |(_, r)| r.trim())
                }
                _ => part,
            };
            strip_comparison(part).to_owned()
        })
        .collect()
}

/// `a > 0.9` → `a`: drops the last top-level comparison with a number.
fn strip_comparison(expr: &str) -> &str {
    let mut depth = 0i32;
    let mut cut = None;
    for (i, c) in expr.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '>' | '<' | '=' | '!' if depth == 0 && cut.is_none_or(|(_, end)| i > end) => {
                let op_len = if expr[i + 1..].starts_with('=') { 2 } else { 1 };
                cut = Some((i, i + op_len));
            }
            _ => {}
        }
    }
    match cut {
        Some((at, end)) if expr[end..].trim().parse::<f64>().is_ok() => expr[..at].trim(),
        _ => expr.trim(),
    }
}

#[test]
fn signals_drop_thresholds_and_split_set_operators() {
    assert_eq!(
        signals(r#"sum(increase(x{to="dead"}[15m])) > 0"#),
        [r#"sum(increase(x{to="dead"}[15m]))"#]
    );
    assert_eq!(signals("a / b < 0.9"), ["a / b"]);
    assert_eq!(signals(r#"up{job="hookd"} == 0"#), [r#"up{job="hookd"}"#]);
    assert_eq!(
        signals("max(a) > 60 unless on () sum(rate(b[5m])) > 0"),
        ["max(a)", "sum(rate(b[5m]))"]
    );
    assert_eq!(signals(r#"a{x=~"y"}"#), [r#"a{x=~"y"}"#]);
}

/// The recording's story: steady traffic, the healthy receiver failing every request for a
/// minute, then back, and the dead letters redriven.
async fn record_story(api: &Client, key: &str, healthy: &Receiver) {
    tokio::time::sleep(Duration::from_secs(90)).await;
    healthy.set_mix(Mix::parse("error=1").unwrap());
    tokio::time::sleep(Duration::from_secs(60)).await;
    healthy.set_mix(Mix::parse(HEALTHY).unwrap());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/deliveries/redrive",
            key,
            Some(json!({"event_type": "order.paid"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Writes each dashboard's panels with their series over the run, for scripts/dashboard-images.
async fn write_panel_data(
    prometheus: &Prometheus,
    rate_interval: &str,
    start: f64,
    end: f64,
    dir: &Path,
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut boards: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for query in dashboard_queries(rate_interval) {
        let (start, end) = (start.to_string(), end.to_string());
        let data = prometheus
            .get(
                "/api/v1/query_range",
                &[
                    ("query", query.promql.as_str()),
                    ("start", &start),
                    ("end", &end),
                    ("step", "2"),
                ],
            )
            .await;
        boards.entry(query.dashboard).or_default().push(json!({
            "panel": query.panel, "unit": query.unit, "grid": query.grid, "kind": query.kind,
            "legend": query.legend, "series": data["result"],
        }));
    }
    for (title, queries) in boards {
        let file = dir.join(format!(
            "{}.json",
            title.replace(" / ", "-").replace(' ', "-").to_lowercase()
        ));
        let board = json!({"title": title, "queries": queries});
        std::fs::write(file, board.to_string()).unwrap();
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A Prometheus server on loopback with its data in a temporary directory.
struct Prometheus {
    _child: Child,
    _data: TempDir,
    base: String,
    http: reqwest::Client,
    started_unix: f64,
}

impl Prometheus {
    /// Starts Prometheus with `grafana/prometheus.yml`, scraping every second.
    async fn start(api_address: &str, worker_address: &str) -> Self {
        let data = TempDir::new("prometheus");
        let config = std::fs::read_to_string(grafana_dir().join("prometheus.yml")).unwrap();
        let rules = grafana_dir().join("alerts/hookd.rules.yml");
        let mut replaced = config.clone();
        for (from, to) in [
            ("scrape_interval: 15s", "scrape_interval: 1s"),
            ("evaluation_interval: 15s", "evaluation_interval: 1s"),
            ("alerts/hookd.rules.yml", rules.to_str().unwrap()),
            ("127.0.0.1:8080", api_address),
            ("127.0.0.1:9464", worker_address),
        ] {
            assert!(
                replaced.contains(from),
                "grafana/prometheus.yml lost `{from}`"
            );
            replaced = replaced.replace(from, to);
        }
        let config_path = data.path.join("prometheus.yml");
        std::fs::write(&config_path, replaced).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus is missing: scripts/test installs Debian's prometheus package");
        let prometheus = Self {
            _child: child,
            _data: data,
            base: format!("http://{listen}"),
            http: reqwest::Client::new(),
            started_unix: unix_now(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = prometheus
                .http
                .get(format!("{}/-/ready", prometheus.base))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return prometheus;
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `data` of a successful query API answer; panics on an error answer.
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        body["data"].clone()
    }

    async fn query(&self, promql: &str) -> Vec<Value> {
        self.get("/api/v1/query", &[("query", promql)]).await["result"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until every expression returns at least `series` series.
    async fn wait_until_scraped(&self, exprs: &[&str], series: usize) {
        let deadline = Instant::now() + PATIENCE;
        for expr in exprs {
            while self.query(expr).await.len() < series {
                assert!(Instant::now() < deadline, "never scraped: {expr}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Waits until `query` returns a series with a number (rates need a few scrapes first).
    async fn wait_for_data(&self, query: &PanelQuery) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let result = self.query(&query.promql).await;
            let has_number = result.iter().any(|series| {
                series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            });
            if has_number {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} / {}: `{}` returned no data: {result:?}",
                query.dashboard,
                query.panel,
                query.promql
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A directory removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("hookd-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
