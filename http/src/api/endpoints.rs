//! Endpoints: create, list, get, update, delete, enable and disable.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_engine::custom_headers;
use hookd_engine::endpoint_url::check_endpoint_url;
use hookd_engine::ids::EndpointId;
use hookd_engine::secret::SigningSecret;
use hookd_engine::store::circuits::{Circuit, CircuitState};
use hookd_engine::store::{deliveries, delivery_reads, endpoints as store, secrets};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::deliveries::{BulkRedriveResponse, DeliveryStateOut, Redriven};
use super::{ApiResult, ApiState, AppKey, Tag, page};
use crate::id::Id;
use crate::problem::ApiError;
use crate::text::Text;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct CreateEndpoint {
    /// Where webhooks are POSTed: http or https, no credentials.
    #[oai(validator(max_length = 2048))]
    pub url: Text,
    /// Event types this endpoint receives; omitted or null means every type.
    #[oai(validator(max_items = 100))]
    pub event_types: Option<Vec<Text>>,
    /// A `whsec_` signing secret (base64 of 24–64 bytes); generated when omitted.
    pub secret: Option<Text>,
    #[oai(validator(max_length = 1000))]
    pub description: Option<Text>,
    /// Extra request headers (at most 20; hop-by-hop, framing and signature headers refused).
    pub headers: Option<BTreeMap<String, Text>>,
    /// Free-form string pairs for your bookkeeping (at most 50).
    pub metadata: Option<BTreeMap<String, Text>>,
    /// Overrides `HOOKD_MAX_ATTEMPTS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_attempts: Option<i32>,
    /// Overrides `HOOKD_RETRY_BASE_MS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "86400000")))]
    pub retry_base_ms: Option<i64>,
    /// Overrides `HOOKD_RETRY_CAP_MS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "604800000")))]
    pub retry_cap_ms: Option<i64>,
    /// Overrides `HOOKD_DELIVERY_TIMEOUT_MS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "300000")))]
    pub timeout_ms: Option<i64>,
    /// Deliver in publish order, one at a time: a delivery that is retrying holds the ones
    /// behind it until it is delivered, dead-lettered or cancelled. Default false.
    pub ordered: Option<bool>,
    /// At most this many deliveries active at once (in flight, or waiting for a retry), across
    /// every worker; the rest wait in line. Default: no limit.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub max_in_flight: Option<i32>,
    /// At most this many deliveries sent per second, across every worker. Default: no limit.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000")))]
    pub rate_limit_per_s: Option<i32>,
}

impl Example for CreateEndpoint {
    fn example() -> Self {
        Self {
            url: Text("https://shop.example.com/webhooks/hookd".into()),
            event_types: Some(vec![
                Text("order.paid".into()),
                Text("order.shipped".into()),
            ]),
            secret: None,
            description: Some(Text("order events for the shop backend".into())),
            headers: Some(BTreeMap::from([(
                "X-Shop-Tenant".to_owned(),
                Text("acme".into()),
            )])),
            metadata: None,
            max_attempts: None,
            retry_base_ms: None,
            retry_cap_ms: None,
            timeout_ms: Some(10_000),
            ordered: None,
            max_in_flight: Some(20),
            rate_limit_per_s: None,
        }
    }
}

/// A partial update: omitted fields stay; `null` resets a nullable field to its default.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct UpdateEndpoint {
    #[oai(validator(max_length = 2048))]
    pub url: Option<Text>,
    /// `null` subscribes the endpoint to every event type.
    #[oai(validator(max_items = 100))]
    pub event_types: MaybeUndefined<Vec<Text>>,
    #[oai(validator(max_length = 1000))]
    pub description: Option<Text>,
    /// Replaces all custom headers.
    pub headers: Option<BTreeMap<String, Text>>,
    /// Replaces all metadata.
    pub metadata: Option<BTreeMap<String, Text>>,
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_attempts: MaybeUndefined<i32>,
    #[oai(validator(minimum(value = "1"), maximum(value = "86400000")))]
    pub retry_base_ms: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "604800000")))]
    pub retry_cap_ms: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "300000")))]
    pub timeout_ms: MaybeUndefined<i64>,
    /// Deliveries created from now on go in publish order, one at a time; `false` releases
    /// the ones waiting in line at once.
    pub ordered: Option<bool>,
    /// `null` removes the limit.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub max_in_flight: MaybeUndefined<i32>,
    /// `null` removes the limit.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000")))]
    pub rate_limit_per_s: MaybeUndefined<i32>,
}

impl Example for UpdateEndpoint {
    fn example() -> Self {
        Self {
            url: None,
            event_types: MaybeUndefined::Null,
            description: Some(Text("every event, for the data warehouse".into())),
            headers: None,
            metadata: None,
            max_attempts: MaybeUndefined::Value(5),
            retry_base_ms: MaybeUndefined::Undefined,
            retry_cap_ms: MaybeUndefined::Undefined,
            timeout_ms: MaybeUndefined::Undefined,
            ordered: None,
            max_in_flight: MaybeUndefined::Undefined,
            rate_limit_per_s: MaybeUndefined::Value(50),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Null means every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: bool,
    /// Why the endpoint is disabled (a 410 answer, failing too long, the API).
    pub disabled_reason: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub max_attempts: Option<i32>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    /// Deliveries go in publish order, one at a time.
    pub ordered: bool,
    /// At most this many deliveries active at once (null: no limit).
    pub max_in_flight: Option<i32>,
    /// At most this many deliveries sent per second (null: no limit).
    pub rate_limit_per_s: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub circuit: CircuitOut,
}

/// The endpoint's circuit breaker: after `HOOKD_CIRCUIT_FAILURES` failed attempts in a row it
/// opens and the endpoint's deliveries wait (parked, not charged an attempt) until a probe
/// succeeds.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CircuitOut {
    pub state: CircuitStateOut,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    /// While open: when the next probe may go. While half-open: when the probe's lease ends.
    pub open_until: Option<DateTime<Utc>>,
    /// The first failure after the last success; the endpoint is disabled when this is older
    /// than `HOOKD_AUTO_DISABLE_AFTER`.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the circuit last changed state.
    pub changed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum CircuitStateOut {
    /// Deliveries flow.
    Closed,
    /// Deliveries are parked until the cooldown ends.
    Open,
    /// One probe is in flight; the rest stay parked.
    HalfOpen,
}

fn circuit_out(c: Circuit) -> CircuitOut {
    CircuitOut {
        state: match c.state {
            CircuitState::Closed => CircuitStateOut::Closed,
            CircuitState::Open => CircuitStateOut::Open,
            CircuitState::HalfOpen => CircuitStateOut::HalfOpen,
        },
        consecutive_failures: c.consecutive_failures,
        open_until: c.open_until,
        failing_since: c.failing_since,
        last_success_at: c.last_success_at,
        changed_at: c.changed_at,
    }
}

#[derive(Debug, Object)]
pub struct EndpointCreated {
    #[oai(flatten)]
    pub endpoint: EndpointOut,
    /// The signing secret. Shown at creation only.
    pub secret: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EndpointList {
    pub data: Vec<EndpointOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
pub struct StateCount {
    pub state: DeliveryStateOut,
    pub count: i64,
}

/// What an endpoint's deliveries created in the window did.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EndpointStatsOut {
    pub window_seconds: u32,
    /// Deliveries created in the window, by current state.
    pub deliveries: Vec<StateCount>,
    /// Attempts made for them.
    pub attempts: i64,
    /// Share of those attempts that succeeded (null without attempts).
    pub success_rate: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct Recover {
    /// Redrive the dead letters created at or after this time.
    pub since: DateTime<Utc>,
}

impl Example for Recover {
    fn example() -> Self {
        Self {
            since: chrono::DateTime::parse_from_rfc3339("2026-01-31T08:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct RotateSecret {
    /// The new `whsec_` secret; generated when omitted.
    pub secret: Option<Text>,
}

impl Example for RotateSecret {
    fn example() -> Self {
        Self { secret: None }
    }
}

#[derive(Debug, Object)]
pub struct SecretRotated {
    /// The new signing secret. Shown once.
    pub secret: String,
    /// Until then webhooks carry a signature by the previous secret too.
    pub previous_valid_until: DateTime<Utc>,
}

#[derive(ApiResponse)]
enum EndpointCreatedResponse {
    /// The endpoint and its signing secret (shown once).
    #[oai(status = 201)]
    Created(Json<EndpointCreated>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted; its pending deliveries are cancelled.
    #[oai(status = 204)]
    NoContent,
}

fn endpoint_out(e: store::Endpoint) -> EndpointOut {
    EndpointOut {
        id: e.id.to_string(),
        url: e.url,
        description: e.description,
        event_types: e.event_types,
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        headers: e.headers,
        metadata: e.metadata,
        max_attempts: e.policy.max_attempts,
        retry_base_ms: e.policy.retry_base_ms,
        retry_cap_ms: e.policy.retry_cap_ms,
        timeout_ms: e.policy.timeout_ms,
        ordered: e.ordered,
        max_in_flight: e.policy.max_in_flight,
        rate_limit_per_s: e.policy.rate_limit_per_s,
        created_at: e.created_at,
        updated_at: e.updated_at,
        circuit: circuit_out(e.circuit),
    }
}

fn event_types(types: Vec<Text>) -> ApiResult<Vec<String>> {
    if let Some(bad) = types.iter().find(|t| t.is_empty() || t.len() > 256) {
        return Err(ApiError::invalid(format!(
            "event_types: `{bad}` must be 1 to 256 characters"
        )));
    }
    Ok(types.into_iter().map(String::from).collect())
}

fn headers(map: BTreeMap<String, Text>) -> ApiResult<BTreeMap<String, String>> {
    let map = map.into_iter().map(|(k, v)| (k, v.0)).collect();
    custom_headers::validate(&map).map_err(|e| ApiError::invalid(format!("headers: {e}")))
}

fn metadata(map: BTreeMap<String, Text>) -> ApiResult<BTreeMap<String, String>> {
    if map.len() > 50 {
        return Err(ApiError::invalid("metadata: at most 50 entries"));
    }
    if let Some((key, _)) = map
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > 64 || k.contains('\0') || v.len() > 512)
    {
        return Err(ApiError::invalid(format!(
            "metadata: `{}`: keys must be 1 to 64 characters without NUL, values at most 512",
            key.escape_default()
        )));
    }
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// `MaybeUndefined` as "leave alone" (`None`), "clear" (`Some(None)`) or "set".
fn change<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

pub struct EndpointsApi(pub Arc<ApiState>);

impl EndpointsApi {
    async fn url(&self, url: &str) -> ApiResult<String> {
        check_endpoint_url(url, self.0.allow_private_targets)
            .await
            .map_err(|e| ApiError::invalid(format!("url: {e}")))
    }
}

#[OpenApi]
impl EndpointsApi {
    /// Create an endpoint
    ///
    /// Without `event_types` it receives every event type. Without `secret` one is generated.
    #[oai(path = "/v1/endpoints", method = "post", tag = "Tag::Endpoints")]
    async fn create_endpoint(
        &self,
        auth: AppKey,
        body: Json<CreateEndpoint>,
    ) -> ApiResult<EndpointCreatedResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let body = body.0;
        let secret = match &body.secret {
            Some(text) => {
                SigningSecret::parse(text).map_err(|e| ApiError::invalid(format!("secret: {e}")))?
            }
            None => SigningSecret::generate(),
        };
        let new = store::NewEndpoint {
            app_id,
            url: self.url(&body.url).await?,
            description: body.description.map(String::from).unwrap_or_default(),
            event_types: body.event_types.map(event_types).transpose()?,
            secret: secret.clone(),
            headers: headers(body.headers.unwrap_or_default())?,
            metadata: metadata(body.metadata.unwrap_or_default())?,
            policy: store::EndpointPolicy {
                max_attempts: body.max_attempts,
                retry_base_ms: body.retry_base_ms,
                retry_cap_ms: body.retry_cap_ms,
                timeout_ms: body.timeout_ms,
                max_in_flight: body.max_in_flight,
                rate_limit_per_s: body.rate_limit_per_s,
            },
            ordered: body.ordered.unwrap_or(false),
        };
        let endpoint = store::endpoint_insert(&self.0.store, &new).await?;
        Ok(EndpointCreatedResponse::Created(Json(EndpointCreated {
            endpoint: endpoint_out(endpoint),
            secret: secret.expose(),
        })))
    }

    /// List endpoints
    #[oai(path = "/v1/endpoints", method = "get", tag = "Tag::Endpoints")]
    async fn list_endpoints(
        &self,
        auth: AppKey,
        /// Items per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<EndpointList>> {
        let app_id = self.0.app_of(&auth).await?;
        let (limit, after) = page::params(limit.0, cursor.0.as_deref())?;
        let endpoints = store::endpoints_list(&self.0.store, app_id, after, limit).await?;
        let next_cursor = page::next_cursor(&endpoints, limit, |e| e.id.0);
        Ok(Json(EndpointList {
            data: endpoints.into_iter().map(endpoint_out).collect(),
            next_cursor,
        }))
    }

    /// Get an endpoint
    #[oai(path = "/v1/endpoints/:id", method = "get", tag = "Tag::Endpoints")]
    async fn get_endpoint(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
    ) -> ApiResult<Json<EndpointOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let endpoint = store::endpoint_get(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        Ok(Json(endpoint_out(endpoint)))
    }

    /// Update an endpoint
    ///
    /// Omitted fields stay as they are; `null` resets a nullable field.
    #[oai(path = "/v1/endpoints/:id", method = "patch", tag = "Tag::Endpoints")]
    async fn update_endpoint(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
        body: Json<UpdateEndpoint>,
    ) -> ApiResult<Json<EndpointOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let body = body.0;
        let url = match &body.url {
            Some(url) => Some(self.url(url).await?),
            None => None,
        };
        let patch = store::EndpointPatch {
            url,
            description: body.description.map(String::from),
            event_types: change(body.event_types)
                .map(|types| types.map(event_types).transpose())
                .transpose()?,
            headers: body.headers.map(headers).transpose()?,
            metadata: body.metadata.map(metadata).transpose()?,
            max_attempts: change(body.max_attempts),
            retry_base_ms: change(body.retry_base_ms),
            retry_cap_ms: change(body.retry_cap_ms),
            timeout_ms: change(body.timeout_ms),
            max_in_flight: change(body.max_in_flight),
            rate_limit_per_s: change(body.rate_limit_per_s),
            ordered: body.ordered,
        };
        let endpoint = store::endpoint_update(&self.0.store, app_id, id, &patch)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        Ok(Json(endpoint_out(endpoint)))
    }

    /// Delete an endpoint
    ///
    /// Its pending deliveries are cancelled; its deliveries' history stays readable.
    #[oai(path = "/v1/endpoints/:id", method = "delete", tag = "Tag::Endpoints")]
    async fn delete_endpoint(&self, auth: AppKey, id: Path<Id<EndpointId>>) -> ApiResult<Deleted> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        if store::endpoint_delete(&self.0.store, app_id, id).await? {
            Ok(Deleted::NoContent)
        } else {
            Err(ApiError::not_found("endpoint"))
        }
    }

    /// Enable an endpoint
    ///
    /// New events reach it again (also after a 410 disabled it).
    #[oai(
        path = "/v1/endpoints/:id/enable",
        method = "post",
        tag = "Tag::Endpoints"
    )]
    async fn enable_endpoint(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
    ) -> ApiResult<Json<EndpointOut>> {
        self.set_enabled(auth, id, true).await
    }

    /// Disable an endpoint
    ///
    /// It gets no new deliveries; its pending ones are dead-lettered when due.
    #[oai(
        path = "/v1/endpoints/:id/disable",
        method = "post",
        tag = "Tag::Endpoints"
    )]
    async fn disable_endpoint(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
    ) -> ApiResult<Json<EndpointOut>> {
        self.set_enabled(auth, id, false).await
    }

    /// Rotate an endpoint's signing secret
    ///
    /// The new secret signs from now on; the previous one keeps signing beside it for 24 hours
    /// (two space-separated `v1,` signatures), so receivers can roll over without dropping a
    /// delivery. Send `{}` to have a secret generated. Returns the new secret, once.
    #[oai(
        path = "/v1/endpoints/:id/secret/rotate",
        method = "post",
        tag = "Tag::Endpoints"
    )]
    async fn rotate_secret(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
        body: Json<RotateSecret>,
    ) -> ApiResult<Json<SecretRotated>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let secret = match body.0.secret {
            Some(text) => SigningSecret::parse(&text)
                .map_err(|e| ApiError::invalid(format!("secret: {e}")))?,
            None => SigningSecret::generate(),
        };
        let until = secrets::endpoint_rotate_secret(&self.0.store, app_id, id, &secret)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        Ok(Json(SecretRotated {
            secret: secret.expose(),
            previous_valid_until: until,
        }))
    }

    /// Endpoint statistics
    ///
    /// Deliveries by state, attempt success rate and attempt latency percentiles, over the
    /// deliveries created in the window.
    #[oai(
        path = "/v1/endpoints/:id/stats",
        method = "get",
        tag = "Tag::Endpoints"
    )]
    async fn endpoint_stats(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
        /// How far back, in seconds (1 to 2,592,000 = 30 days; default 86,400 = a day).
        #[oai(validator(minimum(value = "1"), maximum(value = "2592000")))]
        window_seconds: Query<Option<u32>>,
    ) -> ApiResult<Json<EndpointStatsOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        store::endpoint_get(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        let window = window_seconds.0.unwrap_or(86_400);
        let since = Utc::now() - chrono::TimeDelta::seconds(i64::from(window));
        let stats = delivery_reads::endpoint_stats(&self.0.store, id, since).await?;
        #[allow(clippy::cast_precision_loss)]
        let success_rate =
            (stats.attempts > 0).then(|| stats.attempts_succeeded as f64 / stats.attempts as f64);
        Ok(Json(EndpointStatsOut {
            window_seconds: window,
            deliveries: stats
                .by_state
                .into_iter()
                .map(|(state, count)| StateCount {
                    state: state.into(),
                    count,
                })
                .collect(),
            attempts: stats.attempts,
            success_rate,
            latency_p50_ms: stats.latency_p50_ms,
            latency_p95_ms: stats.latency_p95_ms,
            latency_p99_ms: stats.latency_p99_ms,
        }))
    }

    /// Recover an endpoint
    ///
    /// Redrives every dead-lettered delivery of the endpoint created since `since`, e.g. after
    /// the receiver is fixed and the endpoint enabled again. Safe to repeat.
    #[oai(
        path = "/v1/endpoints/:id/recover",
        method = "post",
        tag = "Tag::Endpoints"
    )]
    async fn recover_endpoint(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
        body: Json<Recover>,
    ) -> ApiResult<BulkRedriveResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        store::endpoint_get(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        let filter = deliveries::DeadLetterFilter {
            endpoint_id: Some(id),
            after: Some(body.since),
            ..Default::default()
        };
        let redriven = deliveries::deliveries_redrive_dead(&self.0.store, app_id, &filter).await?;
        Ok(BulkRedriveResponse::Accepted(Json(Redriven { redriven })))
    }
}

impl EndpointsApi {
    async fn set_enabled(
        &self,
        auth: AppKey,
        id: Path<Id<EndpointId>>,
        enabled: bool,
    ) -> ApiResult<Json<EndpointOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let endpoint = store::endpoint_set_enabled(&self.0.store, app_id, id, enabled)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        Ok(Json(endpoint_out(endpoint)))
    }
}
