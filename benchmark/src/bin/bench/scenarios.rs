//! The scenarios. Each starts from a fresh database and fresh hookd processes, and returns its
//! figures as JSON (the report turns them into tables).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hookd_benchmark::receiver::{self, Arrival, Mix, Receiver, ReceiverConfig};
use hookd_engine::fairness::FAIR_HORIZON;
use hookd_engine::secret::SigningSecret;
use hookd_engine::store::deliveries::{CLAIM_DUE_SQL, RECORD_OUTCOMES_SQL};
use serde_json::{Value, json};

use crate::hookd::{Api, Database, Hookd, connect};
use crate::load::{self, Latency, Published, Shape};
use crate::resources::Sampler;

pub struct Bench {
    pub hookd: PathBuf,
    pub admin_url: String,
    pub scale: Scale,
    /// Where each hookd process's log goes, as `<scenario>-<role>.log`.
    pub logs: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Quick,
    Full,
}

impl Bench {
    /// `full` normally, `quick` in a smoke run.
    fn pick<T>(&self, full: T, quick: T) -> T {
        match self.scale {
            Scale::Full => full,
            Scale::Quick => quick,
        }
    }

    fn secs(&self, full: u64, quick: u64) -> Duration {
        Duration::from_secs(self.pick(full, quick))
    }

    fn log(&self, scenario: &str, role: &str) -> PathBuf {
        self.logs.join(format!("{scenario}-{role}.log"))
    }
}

pub const ALL: &[&str] = &[
    "ingest",
    "end_to_end",
    "wake_up",
    "backlog",
    "long_reader",
    "fan_out",
    "fairness",
];

pub async fn run(bench: &Bench, name: &str) -> anyhow::Result<Value> {
    match name {
        "ingest" => ingest(bench).await,
        "end_to_end" => end_to_end(bench).await,
        "wake_up" => wake_up(bench).await,
        "backlog" => backlog(bench).await,
        "long_reader" => long_reader(bench).await,
        "fan_out" => fan_out(bench).await,
        "fairness" => fairness(bench).await,
        other => bail!("no scenario {other}"),
    }
}

/// A scenario's world: its database, hookd processes, an app and receivers.
struct World {
    name: String,
    db: Database,
    processes: Vec<Hookd>,
    api: Api,
    key: String,
    secret: SigningSecret,
}

impl World {
    /// A fresh database with `roles` started (the first must serve the API).
    async fn start(
        bench: &Bench,
        name: &str,
        roles: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let db = Database::fresh(&bench.admin_url, &bench.hookd, name).await?;
        let mut processes = Vec::new();
        for role in roles {
            processes
                .push(Hookd::start(&bench.hookd, &db, role, env, &bench.log(name, role)).await?);
        }
        let api = Api::new(processes.first().context("no API process")?)?;
        let key = api.create_app().await?;
        Ok(Self {
            name: name.to_owned(),
            db,
            processes,
            api,
            key,
            secret: SigningSecret::generate(),
        })
    }

    async fn add_process(
        &mut self,
        bench: &Bench,
        role: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let log = bench.log(&self.name, role);
        self.processes
            .push(Hookd::start(&bench.hookd, &self.db, role, env, &log).await?);
        Ok(())
    }

    /// A receiver with `mix`, verifying this world's secret.
    async fn receiver(&self, mix: Mix, hang: Duration) -> anyhow::Result<Receiver> {
        Ok(receiver::start(
            "127.0.0.1:0".parse()?,
            ReceiverConfig {
                secrets: vec![self.secret.clone()],
                mix,
                slow: Duration::ZERO,
                hang,
                retry_after_secs: 0,
            },
        )
        .await?)
    }

    async fn endpoint(
        &self,
        receiver: &Receiver,
        path: &str,
        event_type: &str,
        timeout_ms: Option<u64>,
    ) -> anyhow::Result<()> {
        self.api
            .create_endpoint(
                &self.key,
                &format!("http://{}/{path}", receiver.addr),
                &self.secret.expose(),
                event_type,
                timeout_ms,
            )
            .await
    }

    async fn sampler(&self) -> anyhow::Result<Sampler> {
        let backend = self
            .db
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get::<_, i32>(0);
        let pids = self.processes.iter().filter_map(Hookd::pid).collect();
        Ok(Sampler::start(pids, u32::try_from(backend).ok()))
    }

    /// Bytes of the event, delivery, queue and log tables (with indexes and TOAST).
    async fn table_bytes(&self) -> anyhow::Result<i64> {
        self.db
            .scalar(
                "SELECT (pg_total_relation_size('events') + pg_total_relation_size('deliveries') \
                 + pg_total_relation_size('delivery_queue') \
                 + pg_total_relation_size('delivery_log'))::bigint",
            )
            .await
    }

    async fn stop(self) -> anyhow::Result<()> {
        for process in self.processes {
            process.stop().await?;
        }
        self.db.remove().await
    }
}

/// Takes the arrivals recorded so far.
fn take_arrivals(receiver: &Receiver) -> Vec<Arrival> {
    std::mem::take(
        &mut receiver
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .arrivals,
    )
}

fn arrived(receiver: &Receiver) -> usize {
    receiver
        .record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .arrivals
        .len()
}

/// Waits until `count` webhooks arrived (or `patience` passed) and takes them.
async fn wait_for_arrivals(
    receiver: &Receiver,
    count: usize,
    patience: Duration,
) -> anyhow::Result<Vec<Arrival>> {
    let deadline = Instant::now() + patience;
    while arrived(receiver) < count {
        if Instant::now() > deadline {
            bail!(
                "only {} of {count} webhooks arrived within {patience:?}",
                arrived(receiver)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(take_arrivals(receiver))
}

/// Delivery figures from the receiver's arrivals.
fn delivered(arrivals: &[Arrival]) -> Value {
    let latency = Latency::of_us(
        arrivals
            .iter()
            .map(|a| (a.arrived_us - a.sent_us).max(0) as u64)
            .collect(),
    );
    let first_sent = arrivals.iter().map(|a| a.sent_us).min().unwrap_or(0);
    let last_arrived = arrivals.iter().map(|a| a.arrived_us).max().unwrap_or(0);
    let span = (last_arrived - first_sent).max(1) as f64 / 1e6;
    json!({
        "delivered": arrivals.len(),
        "deliveries_per_s": arrivals.len() as f64 / span,
        "publish_to_arrival": latency,
    })
}

fn published(p: &Published) -> Value {
    json!({
        "events": p.events,
        "errors": p.errors,
        "events_per_s": p.rate(),
        "ack": Latency::of_us(p.acks_us.clone()),
    })
}

fn fast() -> Mix {
    Mix::always_ok()
}

const HANG: Duration = Duration::from_secs(3600);

/// Scenario 1: acknowledged publishes per second, single events and batches, API only.
async fn ingest(bench: &Bench) -> anyhow::Result<Value> {
    let world = World::start(bench, "ingest", &["api"], &[]).await?;
    let receiver = world.receiver(fast(), HANG).await?;
    world
        .endpoint(&receiver, "in", "bench.ingest", None)
        .await?;
    let run = bench.secs(10, 1);
    let mut runs = Vec::new();
    for clients in [1, 16, 64] {
        // Where PostgreSQL's time goes per event at the concurrency the target is set for.
        let profiled = clients == 64 && world.db.reset_statements().await;
        let sampler = world.sampler().await?;
        let p = load::closed_loop(
            &world.api,
            &world.key,
            "bench.ingest",
            Shape::Single,
            clients,
            run,
        )
        .await;
        let resources = sampler.finish();
        let statements = world.db.statements_if(profiled, p.events as usize).await?;
        runs.push(json!({
            "form": format!("single, concurrency {clients}"), "result": published(&p),
            "resources": resources, "statements": statements,
        }));
    }
    let sampler = world.sampler().await?;
    let p = load::at_rate(
        &world.api,
        &world.key,
        &types("bench.ingest"),
        2000,
        run,
        512,
    )
    .await;
    runs.push(json!({
        "form": "single, 2,000/s offered", "result": published(&p),
        "resources": sampler.finish(),
    }));
    for (size, requests, clients) in [(100, bench.pick(400, 10), 4), (1000, bench.pick(60, 2), 2)] {
        // The largest batches, for the batch target's profile.
        let profiled = size == 1000 && world.db.reset_statements().await;
        let sampler = world.sampler().await?;
        let p = load::batches(
            &world.api,
            &world.key,
            "bench.ingest",
            size,
            requests,
            clients,
        )
        .await;
        let resources = sampler.finish();
        let statements = world.db.statements_if(profiled, p.events as usize).await?;
        runs.push(json!({
            "form": format!("batch of {size}, {clients} clients"), "result": published(&p),
            "resources": resources, "statements": statements,
        }));
    }
    world.stop().await?;
    Ok(json!({ "runs": runs }))
}

fn types(one: &str) -> Vec<String> {
    vec![one.to_owned()]
}

/// Scenario 2: publish at fixed rates and as fast as possible; time arrivals at the receiver.
async fn end_to_end(bench: &Bench) -> anyhow::Result<Value> {
    let world = World::start(bench, "end_to_end", &["serve"], &[]).await?;
    let receiver = world.receiver(fast(), HANG).await?;
    world.endpoint(&receiver, "e2e", "bench.e2e", None).await?;
    let run = bench.secs(20, 2);
    let mut runs = Vec::new();
    let rates: &[u64] = bench.pick(&[100, 1000, 5000], &[100, 1000]);
    for &rate in rates {
        // Where PostgreSQL's time goes, at the rates the latency targets are set for: one with
        // room to spare, one where publishing and delivery share the cores.
        let profiled = rate >= 1000 && world.db.reset_statements().await;
        let sampler = world.sampler().await?;
        let p = load::at_rate(&world.api, &world.key, &types("bench.e2e"), rate, run, 1024).await;
        let arrivals =
            wait_for_arrivals(&receiver, p.events as usize, Duration::from_secs(120)).await?;
        let statements = world.db.statements_if(profiled, arrivals.len()).await?;
        runs.push(json!({
            "form": format!("{rate}/s offered"), "published": published(&p),
            "delivery": delivered(&arrivals), "resources": sampler.finish(),
            "statements": statements,
        }));
    }
    // As fast as possible: batches of 100 from four clients, deliveries counted while ingesting.
    let sampler = world.sampler().await?;
    let bytes_before = world.table_bytes().await?;
    let requests = bench.pick(1500, 20);
    let p = load::batches(&world.api, &world.key, "bench.e2e", 100, requests, 4).await;
    let during = arrived(&receiver);
    let ingest_secs = p.elapsed.as_secs_f64();
    let arrivals =
        wait_for_arrivals(&receiver, p.events as usize, Duration::from_secs(600)).await?;
    let bytes = world.table_bytes().await? - bytes_before;
    runs.push(json!({
        "form": "as fast as possible (batches of 100, 4 clients)", "published": published(&p),
        "delivery": delivered(&arrivals),
        "deliveries_per_s_while_ingesting": during as f64 / ingest_secs,
        "table_bytes_per_delivered_event": bytes as f64 / arrivals.len().max(1) as f64,
        "resources": sampler.finish(),
    }));
    world.stop().await?;
    Ok(json!({ "runs": runs }))
}

/// Scenario 3: the same low-rate run woken by NOTIFY and forced to poll, the API and the worker
/// in separate processes so that the worker learns of new work only by its wake-up; then, for
/// comparison, one `serve` process, whose publishes lease to its own worker when it is idle.
async fn wake_up(bench: &Bench) -> anyhow::Result<Value> {
    let run = bench.secs(20, 2);
    let mut runs = Vec::new();
    for (form, roles, poll) in [
        ("NOTIFY", &["api", "worker"][..], None),
        ("poll every 1 s", &["api", "worker"][..], Some(1000)),
        ("poll every 100 ms", &["api", "worker"][..], Some(100)),
        ("one process, leased at publish", &["serve"][..], None),
    ] {
        let env: Vec<(&str, String)> = poll
            .map(|ms: u64| ("HOOKD_BENCH_POLL_MS", ms.to_string()))
            .into_iter()
            .collect();
        let world = World::start(bench, "wake_up", roles, &env).await?;
        let receiver = world.receiver(fast(), HANG).await?;
        world.endpoint(&receiver, "w", "bench.wake", None).await?;
        // Where the NOTIFY run's latency goes: the publish's ack (its commit) is the first part,
        // the claim statement that the wake-up runs is in PostgreSQL's profile.
        let profiled = form == "NOTIFY" && world.db.reset_statements().await;
        let sampler = world.sampler().await?;
        let p = load::at_rate(&world.api, &world.key, &types("bench.wake"), 10, run, 16).await;
        let arrivals =
            wait_for_arrivals(&receiver, p.events as usize, Duration::from_secs(60)).await?;
        let resources = sampler.finish();
        let statements = world.db.statements_if(profiled, arrivals.len()).await?;
        runs.push(json!({
            "form": form, "published": published(&p), "delivery": delivered(&arrivals),
            "resources": resources, "statements": statements,
        }));
        world.stop().await?;
    }
    let p50 = |i: usize| runs[i]["delivery"]["publish_to_arrival"]["p50_ms"].as_f64();
    let ratio = match (p50(0), p50(1)) {
        (Some(notify), Some(poll)) if notify > 0.0 => poll / notify,
        _ => 0.0,
    };
    Ok(json!({"runs": runs, "p50_ratio_poll_1s_to_notify": ratio}))
}

/// Loads `count` due deliveries through the API with no worker running, then starts a worker
/// and times the drain.
async fn load_and_drain(
    bench: &Bench,
    world: &mut World,
    receiver: &Receiver,
    count: usize,
) -> anyhow::Result<Value> {
    let loaded = load::batches(
        &world.api,
        &world.key,
        "bench.backlog",
        1000,
        count / 1000,
        2,
    )
    .await;
    if loaded.errors > 0 {
        bail!("{} batch requests failed while loading", loaded.errors);
    }
    let plans = explain_hot_statements(&world.db).await?;
    let started = Instant::now();
    let metrics_at = format!("127.0.0.1:{}", free_port()?);
    world
        .add_process(
            bench,
            "worker",
            &[("HOOKD_METRICS_LISTEN", metrics_at.clone())],
        )
        .await?;
    // After the worker starts, so that it is among the processes sampled.
    let sampler = world.sampler().await?;
    let arrivals = wait_for_arrivals(receiver, count, Duration::from_secs(3600)).await?;
    let drain_secs = started.elapsed().as_secs_f64();
    let claim = claim_duration(&world.api.http, &metrics_at).await?;
    // Let the other backends flush their statistics (at most once a second).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dead_tuples = world
        .db
        .scalar(
            "SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables \
             WHERE relname IN ('deliveries', 'delivery_queue', 'delivery_log')",
        )
        .await?;
    let usage = sampler.finish();
    if let Some(worker) = world.processes.pop() {
        worker.stop().await?;
    }
    Ok(json!({
        "loaded": count, "load_events_per_s": loaded.rate(),
        "drained": arrivals.len(), "drain_deliveries_per_s": count as f64 / drain_secs,
        "dead_tuples_after": dead_tuples, "claim": claim, "plans": plans,
        "resources": usage,
    }))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the workers' two hot statements at the head of the loaded
/// queue, in one transaction rolled back afterwards (ANALYZE runs them): the claim of 64
/// deliveries from the head, the next claim from the floor the first left, then the outcome
/// statement recording the first 64 as delivered.
async fn explain_hot_statements(db: &Database) -> anyhow::Result<Value> {
    let client = &db.client;
    client
        .batch_execute(&format!(
            "PREPARE bench_claim(text, bigint, bigint, bigint, uuid[], bigint[], bigint,
                                 timestamptz, timestamptz)
                 AS {claim};
             PREPARE bench_record(text, uuid[], int[], text[], int[], int[], text[], text[],
                                  text[], text[], text[], text[], bigint[])
                 AS {RECORD_OUTCOMES_SQL};
             BEGIN;
             -- Workers' connections settle on the claim's cached generic plan after five
             -- claims: show that one, not the first executions' custom plans.
             SET LOCAL plan_cache_mode = force_generic_plan",
            claim = CLAIM_DUE_SQL.as_str()
        ))
        .await?;
    let plans = async {
        let claim = first_column(
            client
                .simple_query(&format!(
                    "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim('explain', 64, 15000, 30000, '{{}}', '{{}}', {}, NULL, NULL)",
                    FAIR_HORIZON.as_millis()
                ))
                .await?,
        );
        // The claim that follows it, as workers run it: from the floor the first one left
        // (the head of what is still pending, as a full claim reports it, and its start).
        // (EXECUTE takes no subquery for a parameter: the head is read first.)
        let head = first_column(
            client
                .simple_query(
                    "SELECT min(greatest(fair_key, due_at))::text FROM delivery_queue \
                     WHERE state = 'pending' AND due_at IS NOT NULL",
                )
                .await?,
        );
        let reached = head
            .first()
            .map_or_else(|| "NULL".to_owned(), |at| format!("'{at}'"));
        let claim_floored = first_column(
            client
                .simple_query(&format!(
                    "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim('explain-floored', 64, 15000, \
                     30000, '{{}}', '{{}}', {}, {reached}, now())",
                    FAIR_HORIZON.as_millis()
                ))
                .await?,
        );
        client
            .batch_execute("SET LOCAL plan_cache_mode = auto")
            .await?;
        let leased = first_column(
            client
                .simple_query(
                    "SELECT delivery_id::text || ',' || attempts FROM delivery_queue \
                     WHERE lease_owner = 'explain'",
                )
                .await?,
        );
        let (ids, attempts): (Vec<&str>, Vec<&str>) =
            leased.iter().filter_map(|l| l.split_once(',')).unzip();
        let n = ids.len();
        let array = |value: &str| format!("'{{{}}}'", vec![value; n].join(","));
        let record = first_column(
            client
                .simple_query(&format!(
                    "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_record('explain', '{{{}}}', \
                     '{{{}}}', {}, {}, {}, {nulls}, {nulls}, {nulls}, {nulls}, {nulls}, {nulls}, \
                     {nulls})",
                    ids.join(","),
                    attempts.join(","),
                    array("attempt_succeeded"),
                    array("200"),
                    array("1"),
                    nulls = array("NULL"),
                ))
                .await?,
        );
        anyhow::Ok(json!({
            "claim": claim, "claim_floored": claim_floored, "record_outcomes": record,
        }))
    }
    .await;
    client
        .batch_execute("ROLLBACK; DEALLOCATE bench_claim; DEALLOCATE bench_record")
        .await?;
    plans
}

/// The first column of every row of a simple query's answer.
fn first_column(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The claim statement's p50 and p99 over the worker's life, from its own histogram
/// (`hookd_worker_claim_duration_seconds`, interpolated within a bucket as Prometheus's
/// `histogram_quantile` does), and the share of claims that took at most 5 ms, which needs no
/// interpolation.
async fn claim_duration(http: &reqwest::Client, metrics_at: &str) -> anyhow::Result<Value> {
    let text = http
        .get(format!("http://{metrics_at}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("hookd_worker_claim_duration_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        bail!("the worker recorded no claims");
    }
    let quantile = |q: f64| {
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &buckets {
            if count >= rank {
                if le.is_infinite() {
                    return lower.0;
                }
                let share = (rank - lower.1) / (count - lower.1).max(1e-9);
                return lower.0 + (le - lower.0) * share;
            }
            lower = (le, count);
        }
        lower.0
    };
    let within_5ms = buckets
        .iter()
        .find(|b| (b.0 - 0.005).abs() < 1e-9)
        .map_or(0.0, |b| b.1 / total);
    Ok(json!({
        "claims": total, "p50_ms": quantile(0.5) * 1000.0, "p99_ms": quantile(0.99) * 1000.0,
        "share_within_5_ms": within_5ms,
    }))
}

/// Scenario 4: a large backlog drains nearly as fast as a small one.
async fn backlog(bench: &Bench) -> anyhow::Result<Value> {
    let mut world = World::start(bench, "backlog", &["api"], &[]).await?;
    let receiver = world.receiver(fast(), HANG).await?;
    world
        .endpoint(&receiver, "b", "bench.backlog", None)
        .await?;
    let small = load_and_drain(bench, &mut world, &receiver, bench.pick(50_000, 1000)).await?;
    let large = load_and_drain(bench, &mut world, &receiver, bench.pick(1_000_000, 2000)).await?;
    let ratio = large["drain_deliveries_per_s"].as_f64().unwrap_or(0.0)
        / small["drain_deliveries_per_s"].as_f64().unwrap_or(1.0);
    world.stop().await?;
    Ok(json!({"small": small, "large": large, "large_to_small_rate": ratio}))
}

/// Scenario 5: end-to-end throughput with and without a REPEATABLE READ transaction held open
/// for the whole run (120 s): its snapshot pins every row version deleted or updated after it,
/// so vacuum can reclaim nothing on the queue tables while it lasts.
async fn long_reader(bench: &Bench) -> anyhow::Result<Value> {
    let run = bench.secs(120, 2);
    let mut runs = Vec::new();
    for with_reader in [false, true] {
        let world = World::start(bench, "long_reader", &["serve"], &[]).await?;
        let receiver = world.receiver(fast(), HANG).await?;
        world.endpoint(&receiver, "l", "bench.reader", None).await?;
        let reader = connect(&world.db.url).await?;
        if with_reader {
            reader
                .batch_execute(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM deliveries",
                )
                .await?;
        }
        // Where PostgreSQL's time goes with and without the reader (in the JSON only).
        let profiled = world.db.reset_statements().await;
        let sampler = world.sampler().await?;
        // Publishing outpaces delivery, so what arrives within the run is delivery capacity.
        let p = load::closed_loop(
            &world.api,
            &world.key,
            "bench.reader",
            Shape::Batch(100),
            2,
            run,
        )
        .await;
        let arrivals = take_arrivals(&receiver);
        let statements = world.db.statements_if(profiled, arrivals.len()).await?;
        if with_reader {
            reader.batch_execute("COMMIT").await?;
        }
        let secs = p.elapsed.as_secs_f64();
        runs.push(json!({
            "form": if with_reader { "reader open" } else { "no reader" },
            "seconds": secs, "published": published(&p),
            "deliveries_per_s": arrivals.len() as f64 / secs,
            "delivery": delivered(&arrivals), "resources": sampler.finish(),
            "statements": statements,
        }));
        world.stop().await?;
    }
    let rate = |i: usize| runs[i]["deliveries_per_s"].as_f64().unwrap_or(0.0);
    let loss = 1.0 - rate(1) / rate(0).max(1e-9);
    Ok(json!({"runs": runs, "throughput_loss": loss}))
}

/// Scenario 6: one event to many endpoints.
async fn fan_out(bench: &Bench) -> anyhow::Result<Value> {
    let world = World::start(bench, "fan_out", &["serve"], &[]).await?;
    let receiver = world.receiver(fast(), HANG).await?;
    let endpoints = bench.pick(100, 10);
    for n in 0..endpoints {
        world
            .endpoint(&receiver, &format!("f{n}"), "bench.fan", None)
            .await?;
    }
    let events = bench.pick(1000, 20);
    let sampler = world.sampler().await?;
    let p = load::batches(&world.api, &world.key, "bench.fan", 10, events / 10, 2).await;
    let arrivals = wait_for_arrivals(
        &receiver,
        p.events as usize * endpoints,
        Duration::from_secs(600),
    )
    .await?;
    let result = json!({
        "endpoints": endpoints, "events": p.events, "published": published(&p),
        "delivery": delivered(&arrivals), "resources": sampler.finish(),
    });
    world.stop().await?;
    Ok(result)
}

/// Scenario 7: healthy endpoints' latency while 10% of endpoints hang until the timeout, and an
/// app's latency while another app's flood drains.
async fn fairness(bench: &Bench) -> anyhow::Result<Value> {
    let run = bench.secs(30, 2);
    let timeout_ms = bench.pick(5000, 1000);
    let mut runs = Vec::new();
    for hanging in [0usize, 2] {
        let world = World::start(bench, "fairness", &["serve"], &[]).await?;
        let healthy = world.receiver(fast(), HANG).await?;
        let stuck = world.receiver(Mix::parse("hang=1")?, HANG).await?;
        let mut event_types = Vec::new();
        for n in 0..20 {
            let event_type = format!("bench.fair.{n}");
            let target = if n < hanging { &stuck } else { &healthy };
            world
                .endpoint(target, &format!("f{n}"), &event_type, Some(timeout_ms))
                .await?;
            event_types.push(event_type);
        }
        let sampler = world.sampler().await?;
        let p = load::at_rate(&world.api, &world.key, &event_types, 200, run, 256).await;
        let healthy_events = p.events as usize * (20 - hanging) / 20;
        let arrivals = wait_for_arrivals(&healthy, healthy_events, Duration::from_secs(300))
            .await
            .unwrap_or_else(|_| take_arrivals(&healthy));
        runs.push(json!({
            "form": format!("{hanging} of 20 endpoints hang"),
            "healthy_delivery": delivered(&arrivals), "resources": sampler.finish(),
        }));
        world.stop().await?;
    }
    runs.push(flood_fairness(bench).await?);
    Ok(json!({ "runs": runs }))
}

/// One app's flood is committed, then another app publishes at a steady rate while it drains:
/// the other app's publish-to-arrival latency, and the flood's own delivery rate (fairness
/// orders the claims, it must not slow the flood down).
async fn flood_fairness(bench: &Bench) -> anyhow::Result<Value> {
    let flood = bench.pick(100_000, 2_000);
    let world = World::start(bench, "fairness", &["serve"], &[]).await?;
    let flooded = world.receiver(fast(), HANG).await?;
    let other = world.receiver(fast(), HANG).await?;
    world
        .endpoint(&flooded, "flood", "bench.flood", None)
        .await?;
    let other_key = world.api.create_app().await?;
    world
        .api
        .create_endpoint(
            &other_key,
            &format!("http://{}/other", other.addr),
            &world.secret.expose(),
            "bench.other",
            None,
        )
        .await?;
    let sampler = world.sampler().await?;
    load::batches(&world.api, &world.key, "bench.flood", 1000, flood / 1000, 4).await;
    let p = load::at_rate(
        &world.api,
        &other_key,
        &["bench.other".to_owned()],
        50,
        bench.secs(15, 2),
        64,
    )
    .await;
    let other_arrivals =
        wait_for_arrivals(&other, p.events as usize, Duration::from_secs(300)).await?;
    let flood_arrivals = wait_for_arrivals(&flooded, flood, Duration::from_secs(600)).await?;
    let result = json!({
        "form": format!(
            "another app's flood of {} drains (its rate) while an app publishes 50/s (its latency)",
            crate::report::thousands(flood as u64)
        ),
        "healthy_delivery": delivered(&other_arrivals),
        "flood_delivery": delivered(&flood_arrivals),
        "deliveries_per_s": delivered(&flood_arrivals)["deliveries_per_s"],
        "resources": sampler.finish(),
    });
    world.stop().await?;
    Ok(result)
}
