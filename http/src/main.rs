//! The `hookd` binary: `serve` (API and workers), `api`, `worker`, `demo`, `migrate`,
//! `projection check`. Configuration is in [`config`]; routes in [`api`]; error mapping in
//! [`problem`].

mod api;
mod config;
mod dashboard;
mod demo;
mod id;
mod problem;
mod spec_routes;
mod telemetry;
mod text;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use hookd_engine::handoff::{self, Handoff, HandoffInbox};
use hookd_engine::publisher::Publisher;
use hookd_engine::retention::RetentionPolicy;
use hookd_engine::sender::{Sender, SenderConfig};
use hookd_engine::store::{Store, check, migrate, secrets};
use hookd_engine::vault::Vault;
use hookd_engine::worker::{Wake, WorkerConfig};
use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::listener::{Acceptor as _, Listener as _, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt as _, IntoResponse as _, Request, Response, Route, Server};
use tokio_util::sync::CancellationToken;

use crate::config::{
    ApiArgs, Cli, Command, DatabaseArgs, MasterKeyArgs, MetricsArgs, ProjectionCommand,
    SecretsCommand, WorkerArgs,
};
use crate::demo::Demo;

/// mimalloc rather than glibc's malloc: at 5,000 events/s, glibc's allocation and free paths
/// took a sixth of hookd's CPU (`perf`), and hookd shares the machine's cores with PostgreSQL.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Publish transactions an API process runs at once. Two keep the database busy, one committing
/// (waiting for its WAL flush) while the other runs the next group; more only split the waiting
/// requests into smaller groups, paying a transaction's fixed cost more often (measured in
/// docs/PERFORMANCE.md: two took more events per second than four, with less database CPU).
/// The rest of the pool stays free for key lookups and reads.
const PUBLISH_COMMITTERS: usize = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging() {
        eprintln!("hookd: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hookd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, as text or, with `HOOKD_LOG_FORMAT=json`, one JSON object per line whose
/// fields (`delivery_id`, `event_id`, `endpoint_id`, `attempt`…) sit at the top level.
fn init_logging() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("HOOKD_LOG_FORMAT").as_deref() {
        Err(_) | Ok("text") => logs.init(),
        Ok("json") => logs.json().flatten_event(true).init(),
        Ok(other) => {
            return Err(format!(
                "HOOKD_LOG_FORMAT: `{other}` is neither text nor json"
            ));
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            database,
            keys,
            api,
            worker,
            retention,
            metrics,
        } => {
            let retention = retention.policy()?;
            let store = open_store(&database, &keys).await?;
            let shutdown = shutdown_on_signal();
            let handle = start_metrics(&store, &metrics, &shutdown)?;
            let (sender, config) = worker_parts(&worker)?;
            let (handoff, inbox) = handoff_for(&config);
            let workers = tokio::spawn(run_worker(
                store.clone(),
                (sender, config),
                inbox,
                retention,
                shutdown.clone(),
            ));
            let acceptor = bind_api(api.listen).await?;
            let served = serve_api(
                store,
                acceptor,
                &api,
                worker.allow_private_targets,
                handle,
                shutdown.clone(),
                (None, handoff),
            )
            .await;
            // Whatever ended the API also ends the workers.
            shutdown.cancel();
            workers.await.context("worker task failed")?;
            served?;
        }
        Command::Demo {
            database,
            keys,
            api,
            retention,
            metrics,
            demo,
        } => {
            let retention = retention.policy()?;
            let store = open_store(&database, &keys).await?;
            let shutdown = shutdown_on_signal();
            let handle = start_metrics(&store, &metrics, &shutdown)?;
            // Everything that can refuse to start does so before the worker runs.
            let demo = Arc::new(
                Demo::start(
                    &store,
                    demo.demo_receiver_listen,
                    demo.demo_rate,
                    shutdown.clone(),
                )
                .await?,
            );
            let acceptor = bind_api(api.listen).await?;
            let sender = Sender::new(&SenderConfig {
                connect_timeout: Duration::from_secs(2),
                allow_private_targets: true,
            })?;
            let config = demo::worker_config(config::worker_id());
            let (handoff, inbox) = handoff_for(&config);
            let workers = tokio::spawn(run_worker(
                store.clone(),
                (sender, config),
                inbox,
                retention,
                shutdown.clone(),
            ));
            let producer = tokio::spawn({
                let (demo, admin_token, shutdown) =
                    (demo.clone(), api.admin_token.clone(), shutdown.clone());
                let bound = acceptor.bound;
                async move {
                    let ran = demo.run(bound, &admin_token, shutdown.clone()).await;
                    // A demo that cannot set itself up has nothing to show: stop.
                    if ran.is_err() {
                        shutdown.cancel();
                    }
                    ran
                }
            });
            let served = serve_api(
                store,
                acceptor,
                &api,
                true,
                handle,
                shutdown.clone(),
                (Some(demo), handoff),
            )
            .await;
            shutdown.cancel();
            workers.await.context("worker task failed")?;
            producer.await.context("demo task failed")??;
            served?;
        }
        Command::Api {
            database,
            keys,
            api,
            worker,
            metrics,
        } => {
            let store = open_store(&database, &keys).await?;
            let shutdown = shutdown_on_signal();
            let handle = start_metrics(&store, &metrics, &shutdown)?;
            let acceptor = bind_api(api.listen).await?;
            serve_api(
                store,
                acceptor,
                &api,
                worker.allow_private_targets,
                handle,
                shutdown,
                (None, None),
            )
            .await?;
        }
        Command::Worker {
            database,
            keys,
            worker,
            retention,
            metrics,
        } => {
            let retention = retention.policy()?;
            let store = open_store(&database, &keys).await?;
            let shutdown = shutdown_on_signal();
            start_metrics(&store, &metrics, &shutdown)?;
            run_worker(store, worker_parts(&worker)?, None, retention, shutdown).await;
        }
        Command::Keygen => println!("{}", Vault::generate_key()),
        Command::Secrets {
            command: SecretsCommand::Reseal { database, keys },
        } => {
            let vault = keys.vault()?;
            let key_id = vault.current_key_id().to_owned();
            let store = Store::connect(&database.database_url, 1)?.with_vault(vault);
            let report = secrets::secrets_reseal(&store).await?;
            println!(
                "resealed the secrets of {} of {} endpoints with master key {key_id}",
                report.resealed, report.endpoints
            );
        }
        Command::Openapi => {
            // The document describes routes only; the pool is never used, so nothing connects.
            let store = Store::connect("postgres://localhost/hookd", 1)?;
            let service = api::service(Arc::new(api::ApiState {
                publisher: Publisher::start(store.clone(), 1, None),
                store,
                admin_token: String::new(),
                allow_private_targets: false,
                readings: Default::default(),
                keys: Default::default(),
            }));
            println!("{}", api::document(&service.spec()));
        }
        Command::Migrate { database } => {
            let store = Store::connect(&database.database_url, 1)?;
            let applied = migrate::migrate(&store).await?;
            if applied.is_empty() {
                println!(
                    "database is up to date (version {})",
                    migrate::latest_version()
                );
            }
            for name in applied {
                println!("applied {name}");
            }
        }
        Command::Projection {
            command: ProjectionCommand::Check { database },
        } => {
            let store = Store::connect(&database.database_url, 1)?;
            let report = check::projection_check(&store).await?;
            for m in &report.mismatches {
                println!("{}: {}", m.delivery_id, m.problem);
            }
            println!(
                "checked {} deliveries: {} differ from their log or their queue row",
                report.deliveries_checked,
                report.mismatches.len()
            );
            if report.orphan_log_rows > 0 {
                println!("{} log rows belong to no delivery", report.orphan_log_rows);
            }
            if report.orphan_queue_rows > 0 {
                println!(
                    "{} queue rows belong to no delivery",
                    report.orphan_queue_rows
                );
            }
            if report.orphan_deliveries > 0 {
                println!(
                    "{} deliveries name an event, endpoint or app that is gone",
                    report.orphan_deliveries
                );
            }
            if !report.is_clean() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Installs the metrics recorder; with `HOOKD_METRICS_LISTEN`, also serves `/metrics` there.
fn start_metrics(
    store: &Store,
    args: &MetricsArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<PrometheusHandle> {
    let handle = telemetry::install(
        store,
        Duration::from_millis(args.metrics_refresh_ms),
        shutdown,
    )?;
    if let Some(listen) = args.metrics_listen {
        let (handle, shutdown) = (handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = telemetry::serve_alone(listen, handle, shutdown).await {
                tracing::error!(error = %format!("{e:#}"), "metrics endpoint stopped");
            }
        });
    }
    Ok(handle)
}

/// Connects and migrates; waits for a database that is still starting.
async fn open_store(database: &DatabaseArgs, keys: &MasterKeyArgs) -> anyhow::Result<Store> {
    let store = Store::connect(&database.database_url, usize::from(database.db_pool_size))?
        .with_vault(keys.vault()?);
    let mut delay = Duration::from_millis(200);
    for attempt in 1.. {
        match migrate::migrate(&store).await {
            Ok(applied) => {
                for name in applied {
                    tracing::info!(migration = name, "applied migration");
                }
                return Ok(store);
            }
            Err(e) if e.is_unavailable() && attempt < 30 => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e).context("cannot migrate the database"),
        }
    }
    unreachable!("the loop above returns")
}

fn worker_parts(args: &WorkerArgs) -> anyhow::Result<(Sender, hookd_engine::worker::WorkerConfig)> {
    let sender = Sender::new(&SenderConfig {
        connect_timeout: Duration::from_millis(args.connect_timeout_ms),
        allow_private_targets: args.allow_private_targets,
    })?;
    Ok((sender, args.worker_config()))
}

/// The hand-off between the publisher and the worker of one process (engine/src/handoff.rs),
/// unless the worker polls: the benchmark's polling worker must wait for its poll.
fn handoff_for(config: &WorkerConfig) -> (Option<Handoff>, Option<HandoffInbox>) {
    if config.wake != Wake::Notify {
        return (None, None);
    }
    let (handoff, inbox) = handoff::handoff(
        &config.worker_id,
        config.default_timeout,
        config.lease_margin,
    );
    (Some(handoff), Some(inbox))
}

/// Runs a worker and the retention sweep beside it until `shutdown`.
async fn run_worker(
    store: Store,
    (sender, config): (Sender, WorkerConfig),
    handoff: Option<HandoffInbox>,
    retention: RetentionPolicy,
    shutdown: CancellationToken,
) {
    tracing::info!(worker_id = %config.worker_id, concurrency = config.concurrency, "worker started");
    let sweeper = tokio::spawn(hookd_engine::retention::run(
        store.clone(),
        retention,
        shutdown.clone(),
    ));
    hookd_engine::worker::run(store, sender, config, handoff, shutdown).await;
    if let Err(e) = sweeper.await {
        tracing::error!(error = %e, "retention sweep task failed");
    }
    tracing::info!("worker stopped");
}

/// The API's listening socket, bound before anything that needs its address starts.
struct BoundApi {
    acceptor: TcpAcceptor,
    bound: SocketAddr,
}

async fn bind_api(listen: SocketAddr) -> anyhow::Result<BoundApi> {
    let acceptor = TcpListener::bind(listen)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .context("the listener has no socket address")?;
    // Tests and scripts read this line to find the port.
    println!("hookd listening on http://{bound}");
    tracing::info!(%bound, "API listening");
    Ok(BoundApi { acceptor, bound })
}

async fn serve_api(
    store: Store,
    api: BoundApi,
    args: &ApiArgs,
    allow_private_targets: bool,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
    (demo, handoff): (Option<Arc<Demo>>, Option<Handoff>),
) -> anyhow::Result<()> {
    let max_body_bytes = args.max_body_bytes;
    let state = Arc::new(api::ApiState {
        publisher: Publisher::start(store.clone(), PUBLISH_COMMITTERS, handoff),
        store,
        admin_token: args.admin_token.clone(),
        allow_private_targets,
        readings: Default::default(),
        keys: Default::default(),
    });
    let service = api::service(state.clone());
    let document = api::document(&service.spec());
    let routes = Arc::new(spec_routes::SpecRoutes::from_spec(&document));
    let counted_routes = routes.clone();
    let app = Route::new()
        .at(
            "/openapi.json",
            poem::get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(document.clone())
            })),
        )
        .at("/metrics", telemetry::endpoint(metrics))
        .at(
            "/v1/stats/stream",
            poem::get(dashboard::stream(state.clone(), shutdown.clone())),
        )
        .nest("/dashboard", dashboard::routes(state, demo))
        .nest("/docs", service.swagger_ui())
        .nest("/", service)
        .around(move |endpoint, request| {
            guard_body(endpoint, request, max_body_bytes, routes.clone())
        })
        .around(move |endpoint, request| {
            let routes = counted_routes.clone();
            async move { telemetry::count_request(&endpoint, request, &routes).await }
        })
        .catch_all_error(problem::problem_response);
    Server::new_with_acceptor(api.acceptor)
        .run_with_graceful_shutdown(
            app,
            shutdown.cancelled_owned(),
            Some(Duration::from_secs(10)),
        )
        .await
        .context("the API server failed")
}

/// Refuses bodies over the limit with 413, whether they announce their length or are chunked
/// (poem's own `SizeLimit` also demands a `Content-Length` on requests that have no body), names
/// the field at fault when the API refuses a JSON body's shape, and lists the allowed methods on
/// a 405.
async fn guard_body<E: Endpoint>(
    endpoint: Arc<E>,
    mut request: Request,
    limit: usize,
    routes: Arc<spec_routes::SpecRoutes>,
) -> poem::Result<Response> {
    let announced = request
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(poem::Error::from_status(
            poem::http::StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    let body = request.take_body().into_bytes_limit(limit).await?;
    request.set_body(body.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match endpoint.call(request).await {
        Ok(response) => Ok(response.into_response()),
        Err(e) if e.is::<poem_openapi::error::ParseRequestPayloadError>() => {
            match routes.explain(&method, &path, &body) {
                Some(detail) => Err(poem::Error::from_response(
                    problem::ApiError::invalid(detail).into_response(),
                )),
                None => Err(e),
            }
        }
        Err(e) if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
            let mut response = problem::ApiError::new(
                problem::ProblemKind::MethodNotAllowed,
                format!("{path} does not take {method}"),
            )
            .into_response();
            let allowed = routes.allowed_methods(&path);
            let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            // RFC 9110: a 405 names the methods the resource does take. Routes outside the
            // OpenAPI document (the dashboard's) are not in the table: no header beats an
            // empty one.
            if !allowed.is_empty()
                && let Ok(value) = HeaderValue::from_str(&allowed.join(", "))
            {
                response.headers_mut().insert(header::ALLOW, value);
            }
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// A token cancelled on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        tracing::info!("shutting down: no new work is claimed");
        trigger.cancel();
    });
    token
}
