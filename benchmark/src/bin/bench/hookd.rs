//! A fresh database per scenario and hookd processes running against it, driven over its API.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_postgres::NoTls;

pub const ADMIN_TOKEN: &str = "bench-admin-token";
/// Seals endpoint secrets at rest (base64 of 32 bytes); a benchmark-only key.
const MASTER_KEY: &str = "YmVuY2htYXJrLW1hc3Rlci1rZXktMzItYnl0ZXMhISE=";

/// Lets what earlier scenarios wrote reach the disk before the next one starts: a checkpoint
/// (PostgreSQL's dirty pages) and a sync (the kernel's, mostly WAL). Without it, the end-to-end
/// runs that followed the ingest runs (which write gigabytes) delivered a third less at
/// 5,000/s than on their own, most likely with their commits waiting behind that write-back.
async fn settle(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    admin
        .batch_execute("CHECKPOINT")
        .await
        .context("cannot checkpoint")?;
    let synced = Command::new("sync")
        .status()
        .await
        .context("cannot run sync")?;
    if !synced.success() {
        bail!("sync failed: {synced}");
    }
    Ok(())
}

/// A database of the scenario's own, dropped and created afresh, then migrated.
pub struct Database {
    pub url: String,
    pub client: tokio_postgres::Client,
    admin: tokio_postgres::Client,
    name: String,
}

impl Database {
    pub async fn fresh(admin_url: &str, hookd: &Path, name: &str) -> anyhow::Result<Self> {
        let admin = connect(admin_url).await?;
        let db = format!("hookd_bench_{name}");
        // Two calls: a multi-statement string is one implicit transaction, which DROP DATABASE
        // refuses.
        for statement in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("CREATE DATABASE {db}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .context("cannot create the scenario's database")?;
        }
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        let url = format!("{base}/{db}");
        let output = Command::new(hookd)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("HOOKD_LOG", "warn")
            .output()
            .await
            .with_context(|| format!("cannot run {}", hookd.display()))?;
        if !output.status.success() {
            bail!("hookd migrate: {}", String::from_utf8_lossy(&output.stderr));
        }
        settle(&admin).await?;
        let client = connect(&url).await?;
        Ok(Self {
            url,
            client,
            admin,
            name: db,
        })
    }

    /// Drops the database, so that vacuuming what a finished scenario left behind does not
    /// run during the next one.
    pub async fn remove(self) -> anyhow::Result<()> {
        drop(self.client);
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .context("cannot drop the scenario's database")?;
        Ok(())
    }

    /// Starts PostgreSQL's own account of where its time goes (pg_stat_statements, which
    /// scripts/benchmark preloads) from zero, with the tables' row counters. False when the
    /// extension is not loaded.
    pub async fn reset_statements(&self) -> bool {
        self.client
            .batch_execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
                 SELECT pg_stat_statements_reset();
                 SELECT pg_stat_reset()",
            )
            .await
            .is_ok()
    }

    /// The statements run in this database since [`Database::reset_statements`], costliest
    /// first, with their planning and execution time per call and per delivered event. The
    /// times are the backends' wall clock (CPU, and waits for locks, I/O and the WAL flush of
    /// a commit), summed over every connection.
    pub async fn statements(&self, delivered: usize) -> anyhow::Result<Value> {
        let rows = self
            .client
            .query(
                "SELECT s.query, s.calls, s.total_plan_time, s.total_exec_time
                 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                 WHERE d.datname = current_database()
                 ORDER BY s.total_plan_time + s.total_exec_time DESC",
                &[],
            )
            .await?;
        let per_delivery = |ms: f64| ms / delivered.max(1) as f64;
        let total: f64 = rows
            .iter()
            .map(|r| r.get::<_, f64>(2) + r.get::<_, f64>(3))
            .sum();
        let top: Vec<Value> = rows
            .iter()
            .take(8)
            .map(|r| {
                let calls: i64 = r.get(1);
                let (plan, exec): (f64, f64) = (r.get(2), r.get(3));
                json!({
                    "statement": statement_summary(r.get(0)),
                    "calls": calls,
                    "plan_ms_per_call": plan / calls.max(1) as f64,
                    "exec_ms_per_call": exec / calls.max(1) as f64,
                    "ms_per_delivery": per_delivery(plan + exec),
                    "share": if total > 0.0 { (plan + exec) / total } else { 0.0 },
                })
            })
            .collect();
        // Backends report their row counters at most once a second.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let tables: Vec<Value> = self
            .client
            .query(
                "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
                 FROM pg_stat_user_tables
                 WHERE relname IN ('deliveries', 'delivery_queue', 'delivery_log')
                 ORDER BY relname",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                let per = |n: i64| n as f64 / delivered.max(1) as f64;
                json!({
                    "table": r.get::<_, String>(0),
                    "inserts_per_delivery": per(r.get(1)),
                    "updates_per_delivery": per(r.get(2)),
                    "hot_updates_per_delivery": per(r.get(3)),
                    "deletes_per_delivery": per(r.get(4)),
                })
            })
            .collect();
        Ok(json!({
            "delivered": delivered,
            "total_ms_per_delivery": per_delivery(total),
            "statements": top,
            "tables": tables,
        }))
    }

    /// [`Database::statements`] when the run was profiled (its reset succeeded), else null.
    pub async fn statements_if(&self, profiled: bool, delivered: usize) -> anyhow::Result<Value> {
        match profiled {
            true => self.statements(delivered).await,
            false => Ok(Value::Null),
        }
    }

    pub async fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(self.client.query_one(sql, &[]).await?.get(0))
    }
}

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A hookd child process.
pub struct Hookd {
    child: Child,
    /// The API's base URL; empty for a worker-only process.
    pub base: String,
}

impl Hookd {
    /// Starts `hookd <role>` against `db` with production defaults, except that loopback
    /// receivers are allowed, plus `env`. Its log (at the default level: failed attempts and
    /// warnings) is appended to `log`, so that an outlier in the figures can be explained.
    pub async fn start(
        binary: &Path,
        db: &Database,
        role: &str,
        env: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg(role)
            .env("DATABASE_URL", &db.url)
            .env("HOOKD_LISTEN", "127.0.0.1:0")
            .env("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKD_MASTER_KEY", MASTER_KEY)
            .env("HOOKD_ALLOW_PRIVATE_TARGETS", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut base = String::new();
        if role != "worker" {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .context("hookd did not start listening")??
                .context("hookd exited before listening")?;
            base = line
                .strip_prefix("hookd listening on ")
                .with_context(|| format!("unexpected first line: {line}"))?
                .to_owned();
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, base })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then waits for the graceful shutdown.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        Ok(())
    }
}

/// The API, as the benchmark's clients use it.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(hookd: &Hookd) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .build()?,
            base: hookd.base.clone(),
        })
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    /// An app; returns its API key.
    pub async fn create_app(&self) -> anyhow::Result<String> {
        let app = self
            .post("/v1/apps", ADMIN_TOKEN, &json!({"name": "bench"}))
            .await?;
        app["api_key"]
            .as_str()
            .map(str::to_owned)
            .context("no api_key in the answer")
    }

    /// An endpoint for `event_type` at `url`, signing with `secret`.
    pub async fn create_endpoint(
        &self,
        key: &str,
        url: &str,
        secret: &str,
        event_type: &str,
        timeout_ms: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut body = json!({"url": url, "secret": secret, "event_types": [event_type]});
        if let Some(ms) = timeout_ms {
            body["timeout_ms"] = json!(ms);
        }
        self.post("/v1/endpoints", key, &body).await?;
        Ok(())
    }
}

/// A statement's text without its comments, on one line, cut to a readable length.
fn statement_summary(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect();
    let line = words.join(" ");
    match line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
