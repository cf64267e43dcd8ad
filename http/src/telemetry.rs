//! The Prometheus side of hookd's metrics (their names and meanings live in
//! `hookd_engine::metrics`): installing the recorder, serving `GET /metrics`, keeping the
//! database gauges fresh, and counting API requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hookd_engine::metrics;
use hookd_engine::store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::listener::TcpListener;
use poem::{Endpoint, IntoResponse, Request, Response, Route, Server};
use tokio_util::sync::CancellationToken;

use crate::spec_routes::SpecRoutes;

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder and starts the tasks that keep it current: the database
/// gauges every `refresh` and the exporter's upkeep.
pub fn install(
    store: &Store,
    refresh: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), metrics::LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(metrics::CLAIM_BATCH.into()),
                metrics::BATCH_BUCKETS,
            )
        })
        .and_then(PrometheusBuilder::install_recorder)
        .context("cannot install the metrics recorder")?;
    metrics::describe();
    metrics::zero_counters();
    tokio::spawn(metrics::refresh_from_database(
        store.clone(),
        refresh,
        shutdown.clone(),
    ));
    let upkeep = handle.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok(handle)
}

/// `GET /metrics` in the Prometheus text format.
pub fn endpoint(handle: PrometheusHandle) -> impl Endpoint {
    poem::get(poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(handle.render())
    }))
}

/// Serves only `/metrics` on `listen`, for processes without an API port (worker-only).
pub async fn serve_alone(
    listen: SocketAddr,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = Route::new().at("/metrics", endpoint(handle));
    let acceptor = poem::listener::Listener::into_acceptor(TcpListener::bind(listen))
        .await
        .with_context(|| format!("cannot listen on {listen} for metrics"))?;
    tracing::info!(%listen, "metrics listening");
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), None)
        .await
        .context("the metrics server failed")
}

/// Counts every API request by route template (never the raw path, so ids do not become
/// series), method and status, with its handling time.
pub async fn count_request<E: Endpoint>(
    endpoint: &E,
    request: Request,
    routes: &SpecRoutes,
) -> poem::Result<Response> {
    let started = Instant::now();
    let route = routes
        .template(request.uri().path())
        .unwrap_or("other")
        .to_owned();
    let method = request.method().as_str().to_owned();
    let result = endpoint
        .call(request)
        .await
        .map(IntoResponse::into_response);
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.status(),
    };
    metrics::http_request(&route, &method, status.as_u16(), started.elapsed());
    result
}
