//! The test harness: a fresh database per test (cloned from the migrated template that
//! `scripts/test` prepares), hookd run as a real child process, and a real webhook receiver.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use poem::{EndpointExt as _, Request, Response, Route, Server, handler, post};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

/// How long a test waits for something that should happen within moments.
pub const PATIENCE: Duration = Duration::from_secs(30);

fn admin_url() -> String {
    std::env::var("HOOKD_TEST_PG_URL")
        .unwrap_or_else(|_| panic!("HOOKD_TEST_PG_URL is not set: run the tests with scripts/test"))
}

/// A database of its own, cloned from the migrated template.
#[derive(Clone)]
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE hookd_template STRATEGY FILE_COPY"
            ))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        Self {
            url: format!("{base}/{name}"),
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// Runs `hookd projection check` and asserts that the projection agrees with the log;
    /// returns its report.
    pub async fn assert_projection_consistent(&self) -> String {
        let output = self.hookd_command(&["projection", "check"]).await;
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "projection check failed: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        report
    }

    /// Runs `hookd <args>` against this database to completion.
    pub async fn hookd_command(&self, args: &[&str]) -> std::process::Output {
        self.hookd_command_with(args, &[]).await
    }

    /// Runs `hookd <args>` with extra environment variables.
    pub async fn hookd_command_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("HOOKD_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap()
    }
}

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The master key test processes seal endpoint secrets with (base64 of 32 bytes).
pub const MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmchISE=";

/// Settings that make a test run fast: millisecond retries, private targets allowed.
pub fn fast_env() -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "true".into()),
        ("HOOKD_RETRY_BASE_MS", "50".into()),
        ("HOOKD_RETRY_CAP_MS", "2000".into()),
        ("HOOKD_MAX_ATTEMPTS", "5".into()),
        ("HOOKD_DELIVERY_TIMEOUT_MS", "2000".into()),
        ("HOOKD_LEASE_MARGIN_MS", "1000".into()),
        ("HOOKD_SHUTDOWN_GRACE_MS", "2000".into()),
        ("HOOKD_DB_POOL_SIZE", "8".into()),
        ("HOOKD_MASTER_KEY", MASTER_KEY.into()),
    ]
}

/// A hookd process.
pub struct Hookd {
    child: Child,
    /// The API's base URL (empty for worker-only processes).
    pub base: String,
}

impl Hookd {
    /// Starts `hookd <role>` (`serve`, `api` or `worker`) with `env` over [`fast_env`].
    pub async fn start(db: &TestDb, role: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(db, role, env, None).await
    }

    /// Like [`Hookd::start`], collecting every line the process logs (stderr) into `logs`.
    pub async fn start_logged(
        db: &TestDb,
        role: &str,
        env: &[(&str, &str)],
        logs: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        Self::spawn(db, role, env, Some(logs)).await
    }

    async fn spawn(
        db: &TestDb,
        role: &str,
        env: &[(&str, &str)],
        logs: Option<Arc<Mutex<Vec<String>>>>,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookd"));
        command
            .arg(role)
            .env("DATABASE_URL", &db.url)
            .env("HOOKD_LISTEN", "127.0.0.1:0")
            .env("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "HOOKD_LOG",
                std::env::var("HOOKD_TEST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if logs.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true);
        for (key, value) in fast_env() {
            command.env(key, value);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        if let (Some(logs), Some(stderr)) = (logs, child.stderr.take()) {
            let mut lines = BufReader::new(stderr).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut base = String::new();
        if role != "worker" {
            let line = tokio::time::timeout(PATIENCE, lines.next_line())
                .await
                .expect("hookd did not start listening in time")
                .unwrap()
                .expect("hookd exited before listening");
            base = line
                .strip_prefix("hookd listening on ")
                .unwrap_or_else(|| panic!("unexpected first line: {line}"))
                .to_owned();
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, base }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().unwrap() as i32
    }

    /// SIGKILL: no cleanup, no release, exactly like a crash.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("hookd did not exit after SIGTERM")
            .unwrap()
    }
}

/// A loopback port nothing listens on right now (for a process told where to listen).
/// A port free to bind now, for a process that will bind it itself. Chosen below Linux's
/// ephemeral range (32768–60999): a port the kernel handed out could be handed out again, to
/// another test's outgoing connection, before the process binds it.
pub fn free_port() -> u16 {
    use rand::RngExt as _;
    loop {
        let port: u16 = rand::rng().random_range(20_000..32_000);
        // The scripts' PostgreSQL clusters listen at 25432–25434.
        if (25_430..25_440).contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An API client bound to one hookd.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(hookd: &Hookd) -> Self {
        // reqwest is built without a default TLS provider (hookd installs its own).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::new(),
            base: hookd.base.clone(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Creates an app; returns its API key.
    pub async fn create_app(&self) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/apps",
                ADMIN_TOKEN,
                Some(json!({"name": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// Creates an endpoint; returns (id, secret).
    pub async fn create_endpoint(&self, key: &str, body: Value) -> (String, String) {
        let (status, body) = self
            .call(reqwest::Method::POST, "/v1/endpoints", key, Some(body))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Publishes an event; returns the response body.
    pub async fn publish(&self, key: &str, event_type: &str, payload: Value) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/events",
                key,
                Some(json!({"type": event_type, "payload": payload})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Publishes `body` with an `Idempotency-Key`; returns the status and the answer.
    pub async fn publish_with_key(
        &self,
        key: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .header("Idempotency-Key", idempotency_key)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Publishes `events` in one batch request.
    pub async fn publish_batch(&self, key: &str, events: &[Value]) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/events/batch",
                key,
                Some(json!({ "events": events })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    pub async fn endpoint(&self, key: &str, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/endpoints/{id}"),
                key,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn delivery(&self, key: &str, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/deliveries/{id}"),
                key,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn history_kinds(&self, key: &str, id: &str) -> Vec<String> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/deliveries/{id}/history"),
                key,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Polls a delivery until it reaches `state` (hookd's own view, for sequencing only; verdicts
    /// come from the receiver and the database).
    pub async fn wait_for_state(&self, key: &str, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let delivery = self.delivery(key, id).await;
            if delivery["state"] == state {
                return delivery;
            }
            assert!(
                Instant::now() < deadline,
                "delivery never reached {state}: {delivery}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One webhook as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// Requests with the same `webhook-id` in progress at the receiver when this one arrived.
    pub concurrent_same_id: usize,
}

/// What the receiver answers: given the 0-based index of the request, a status and a delay.
pub type Behavior = Arc<dyn Fn(usize) -> (u16, Duration) + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    behavior: Arc<Mutex<Behavior>>,
    count: Arc<Mutex<usize>>,
    in_progress: Arc<Mutex<HashMap<String, usize>>>,
    tx: mpsc::UnboundedSender<Received>,
}

/// A real HTTP server on loopback that hands every webhook to the test.
pub struct Receiver {
    pub url: String,
    pub rx: mpsc::UnboundedReceiver<Received>,
    behavior: Arc<Mutex<Behavior>>,
}

impl Receiver {
    pub async fn start(behavior: Behavior) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let behavior = Arc::new(Mutex::new(behavior));
        let state = ReceiverState {
            behavior: behavior.clone(),
            count: Arc::default(),
            in_progress: Arc::default(),
            tx,
        };
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let app = Route::new().at("/*path", post(receive).data(state));
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            url: format!("http://{addr}/hook"),
            rx,
            behavior,
        }
    }

    /// Always 204.
    pub async fn ok() -> Self {
        Self::start(Arc::new(|_| (204, Duration::ZERO))).await
    }

    pub fn set_behavior(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap() = behavior;
    }

    /// The next `count` webhooks, in arrival order.
    pub async fn take(&mut self, count: usize) -> Vec<Received> {
        let mut all = Vec::with_capacity(count);
        while all.len() < count {
            all.push(self.next().await);
        }
        all
    }

    /// The next webhook, or a panic after [`PATIENCE`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("no webhook arrived in time")
            .unwrap()
    }
}

#[handler]
async fn receive(req: &Request, body: String, state: poem::web::Data<&ReceiverState>) -> Response {
    let at = Instant::now();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let concurrent_same_id = {
        let mut in_progress = state.in_progress.lock().unwrap();
        let n = in_progress.entry(id.clone()).or_default();
        *n += 1;
        *n - 1
    };
    let index = {
        let mut count = state.count.lock().unwrap();
        *count += 1;
        *count - 1
    };
    let (status, delay) = (state.behavior.lock().unwrap().clone())(index);
    let _ = state.tx.send(Received {
        headers,
        body,
        at,
        concurrent_same_id,
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    *state.in_progress.lock().unwrap().get_mut(&id).unwrap() -= 1;
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .body(format!("answered {status}"))
}

/// Verifies a webhook with the Standard Webhooks reference library for Python, an
/// implementation independent of hookd's.
pub async fn verify_independently(secret: &str, received: &Received) {
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
case = json.load(sys.stdin)
Webhook(case["secret"]).verify(case["body"], case["headers"])
print("verified")
"#;
    let case = json!({
        "secret": secret,
        "body": received.body,
        "headers": {
            "webhook-id": received.headers["webhook-id"],
            "webhook-timestamp": received.headers["webhook-timestamp"],
            "webhook-signature": received.headers["webhook-signature"],
        },
    });
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(case.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("verified"),
        "independent verification failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of a test's own, for scenarios that stop and restart the server. Started
/// with the project's own scripts/pg.sh, on a free loopback port, data under target/.
pub struct PgCluster {
    data: String,
    port: u16,
}

impl PgCluster {
    /// Runs `script` with scripts/pg.sh sourced, the data directory as `$1`, the port as `$2`.
    fn run_pg_sh(&self, script: &str) -> std::io::Result<std::process::ExitStatus> {
        std::process::Command::new("bash")
            .args([
                "-c",
                &format!(
                    "source {}/../scripts/pg.sh; {script}",
                    env!("CARGO_MANIFEST_DIR")
                ),
                "pg",
                &self.data,
                &self.port.to_string(),
            ])
            .status()
    }

    fn pg_sh(&self, script: &str) {
        let status = self.run_pg_sh(script).unwrap();
        assert!(status.success(), "{script} failed");
    }

    /// Starts a fresh cluster with a `hookd` database (hookd migrates it on start).
    pub async fn start() -> Self {
        let port = free_port();
        let data = format!(
            "{}/../target/test-clusters/{}",
            env!("CARGO_MANIFEST_DIR"),
            uuid::Uuid::new_v4().simple()
        );
        let cluster = Self { data, port };
        cluster.pg_sh(
            r#"pg_start "$1" "$2" fsync=off && pg_psql "$2" postgres "CREATE DATABASE hookd""#,
        );
        cluster
    }

    pub fn db(&self) -> TestDb {
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:{}/hookd", self.port),
        }
    }

    /// Fast shutdown: connections are cut, in-progress transactions roll back.
    pub fn stop(&self) {
        self.pg_sh(r#"pg_stop "$1""#);
    }

    pub fn resume(&self) {
        self.pg_sh(r#"pg_start "$1" "$2" fsync=off"#);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Best effort: a failed cleanup must not turn a passing test into a panic.
        let _ = self.run_pg_sh(r#"pg_stop "$1"; rm -rf "$1""#);
    }
}
