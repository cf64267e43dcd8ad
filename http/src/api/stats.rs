//! Live figures: rates, latency, queue depth and the newest deliveries, for the dashboard and for
//! anyone who wants one reading. The admin token sees every app; an app's key, its own. Readings
//! are shared for a moment (a second), so any number of dashboards cost one query set a second
//! per app.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookd_engine::secret::ApiKey;
use hookd_engine::store::apps as app_store;
use hookd_engine::store::stats::{self, Scope, Snapshot};
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, SecurityScheme};
use tokio::sync::Mutex;

use super::deliveries::DeliveryOut;
use super::{ApiResult, ApiState, Tag};
use crate::problem::{ApiError, ProblemKind};

/// Rates are averaged over this window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// How many of the newest deliveries a reading lists.
const RECENT: i64 = 20;

/// A reading younger than this is served again instead of read anew.
const FRESH_FOR: Duration = Duration::from_millis(900);

/// The admin token (every app's figures) or an app's API key (that app's).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AnyKey(pub Bearer);

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ScopeOut {
    /// One app's figures (an app's API key).
    App,
    /// Every app's (the admin token).
    All,
}

/// Per second, over the window.
#[derive(Debug, Clone, Object)]
pub struct RatesOut {
    /// Events published.
    pub published: f64,
    /// Attempts that succeeded.
    pub delivered: f64,
    pub failed_attempts: f64,
    /// Retries scheduled after a failed attempt.
    pub retries: f64,
    pub dead_lettered: f64,
}

/// Attempt latency over the window, in milliseconds.
#[derive(Debug, Clone, Object)]
pub struct LatencyOut {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Deliveries by where they stand, now.
#[derive(Debug, Clone, Object)]
pub struct QueueOut {
    /// Waiting for their turn or their retry.
    pub pending: i64,
    /// Waiting behind an open circuit or in an endpoint's lane.
    pub parked: i64,
    pub in_flight: i64,
    /// Dead letters, until redriven.
    pub dead: i64,
}

/// A delivery and its app.
#[derive(Debug, Clone, Object)]
pub struct RecentDeliveryOut {
    pub app_id: String,
    #[oai(flatten)]
    pub delivery: DeliveryOut,
}

/// One reading of the figures.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StatsOut {
    pub scope: ScopeOut,
    /// The app, for an app's key.
    pub app_id: Option<String>,
    pub at: DateTime<Utc>,
    /// The window the rates and latency cover, in seconds.
    pub window_s: u64,
    pub rates: RatesOut,
    /// Successful attempts of all attempts in the window; absent without attempts.
    pub success_ratio: Option<f64>,
    /// Absent without attempts in the window.
    pub latency_ms: Option<LatencyOut>,
    pub queue: QueueOut,
    /// The newest deliveries, newest first.
    pub recent: Vec<RecentDeliveryOut>,
}

impl StatsOut {
    fn new(scope: Scope, at: DateTime<Utc>, s: &Snapshot) -> Self {
        let a = &s.activity;
        let per_second = |n: i64| n as f64 / WINDOW.as_secs_f64();
        let attempts = a.attempts_succeeded + a.attempts_failed;
        let latency_ms = match (a.latency_p50_ms, a.latency_p95_ms, a.latency_p99_ms) {
            (Some(p50), Some(p95), Some(p99)) => Some(LatencyOut { p50, p95, p99 }),
            _ => None,
        };
        Self {
            scope: match scope {
                Scope::App(_) => ScopeOut::App,
                Scope::All => ScopeOut::All,
            },
            app_id: match scope {
                Scope::App(app) => Some(app.to_string()),
                Scope::All => None,
            },
            at,
            window_s: WINDOW.as_secs(),
            rates: RatesOut {
                published: per_second(a.events_published),
                delivered: per_second(a.attempts_succeeded),
                failed_attempts: per_second(a.attempts_failed),
                retries: per_second(a.retries_scheduled),
                dead_lettered: per_second(a.dead_lettered),
            },
            success_ratio: (attempts > 0).then(|| a.attempts_succeeded as f64 / attempts as f64),
            latency_ms,
            queue: QueueOut {
                pending: s.queue.pending,
                parked: s.queue.parked,
                in_flight: s.queue.in_flight,
                dead: s.queue.dead,
            },
            recent: s
                .recent
                .iter()
                .map(|(app, d)| RecentDeliveryOut {
                    app_id: app.to_string(),
                    delivery: d.clone().into(),
                })
                .collect(),
        }
    }
}

/// Readings shared between requests for [`FRESH_FOR`]. The lock is held while reading, so
/// dashboards that ask at the same moment wait for one reading instead of each making their own.
#[derive(Debug, Default)]
pub struct Readings {
    latest: Mutex<HashMap<Scope, (Instant, Arc<StatsOut>)>>,
}

impl ApiState {
    /// Whose figures a key may see.
    pub async fn scope_of(&self, presented: &str) -> ApiResult<Scope> {
        if self.is_admin_token(presented) {
            return Ok(Scope::All);
        }
        match app_store::api_key_find_app(&self.store, &ApiKey::presented(presented)).await? {
            Some(app) => Ok(Scope::App(app)),
            None => Err(ApiError::new(
                ProblemKind::Unauthorized,
                "neither the admin token nor a valid API key",
            )),
        }
    }

    /// The scope's figures, read at most once per [`FRESH_FOR`].
    pub async fn stats_reading(&self, scope: Scope) -> ApiResult<Arc<StatsOut>> {
        let mut latest = self.readings.latest.lock().await;
        if let Some((taken, reading)) = latest.get(&scope)
            && taken.elapsed() < FRESH_FOR
        {
            return Ok(reading.clone());
        }
        let snapshot = stats::stats_snapshot(&self.store, scope, WINDOW, RECENT).await?;
        let reading = Arc::new(StatsOut::new(scope, Utc::now(), &snapshot));
        // Readings of apps nobody watches any more are dropped as others are taken.
        latest.retain(|_, (taken, _)| taken.elapsed() < WINDOW);
        latest.insert(scope, (Instant::now(), reading.clone()));
        Ok(reading)
    }
}

#[derive(ApiResponse)]
enum StatsResponse {
    #[oai(status = 200)]
    Ok(Json<StatsOut>),
}

pub struct StatsApi(pub Arc<ApiState>);

#[OpenApi]
impl StatsApi {
    /// Live figures: publish and delivery rates, success ratio, retries, dead letters and attempt
    /// latency over the last 10 seconds, queue depth now, and the 20 newest deliveries. The
    /// admin token sees every app's; an app's key, its own. `GET /v1/stats/stream` sends the same
    /// every second as server-sent events.
    #[oai(path = "/v1/stats", method = "get", tag = "Tag::Stats")]
    async fn stats(&self, auth: AnyKey) -> ApiResult<StatsResponse> {
        let scope = self.0.scope_of(&auth.0.token).await?;
        let reading = self.0.stats_reading(scope).await?;
        Ok(StatsResponse::Ok(Json(StatsOut::clone(&reading))))
    }
}
