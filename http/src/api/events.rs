//! Publishing events.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_engine::ids::{EndpointId, EventId};
use hookd_engine::publisher::EventToPublish;
use hookd_engine::store::{delivery_reads, events as store, ingest};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sha2::{Digest, Sha256};

use super::deliveries::DeliveryOut;
use super::{ApiResult, ApiState, AppKey, Tag, page};
use crate::id::Id;
use crate::problem::{ApiError, ProblemKind};
use crate::text::Text;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct PublishEvent {
    /// The event type, matched against endpoints' `event_types`.
    #[oai(rename = "type", validator(min_length = 1, max_length = 256))]
    pub event_type: Text,
    /// Any JSON value; delivered as the webhook body's `data`.
    pub payload: serde_json::Value,
    /// Deliver to exactly these endpoints (disabled ones are skipped) instead of every endpoint
    /// subscribed to the type.
    #[oai(validator(max_items = 100))]
    pub endpoint_ids: Option<Vec<Id<EndpointId>>>,
}

/// One event of a batch.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BatchEvent {
    #[oai(rename = "type", validator(min_length = 1, max_length = 256))]
    pub event_type: Text,
    pub payload: serde_json::Value,
    #[oai(validator(max_items = 100))]
    pub endpoint_ids: Option<Vec<Id<EndpointId>>>,
    /// This event's own idempotency key (same rules as the `Idempotency-Key` header).
    #[oai(validator(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct PublishBatch {
    /// 1 to 1,000 events, committed together or not at all.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub events: Vec<BatchEvent>,
}

impl Example for PublishBatch {
    fn example() -> Self {
        let event = |order: &str, key: &str| BatchEvent {
            event_type: Text("order.paid".into()),
            payload: serde_json::json!({"order_id": order}),
            endpoint_ids: None,
            idempotency_key: Some(Text(key.into())),
        };
        Self {
            events: vec![
                event("ord_1042", "ord_1042-paid"),
                event("ord_1043", "ord_1043-paid"),
            ],
        }
    }
}

#[derive(Debug, Object)]
pub struct BatchAccepted {
    /// One entry per event, in request order.
    pub data: Vec<EventAccepted>,
}

impl Example for PublishEvent {
    fn example() -> Self {
        Self {
            event_type: Text("order.paid".into()),
            payload: serde_json::json!({"order_id": "ord_1042", "amount": 4200, "currency": "EUR"}),
            endpoint_ids: None,
        }
    }
}

#[derive(Debug, Object)]
pub struct DeliveryRef {
    pub id: String,
    pub endpoint_id: String,
}

#[derive(Debug, Object)]
pub struct EventAccepted {
    /// The event id; receivers see it as `webhook-id`.
    pub id: String,
    /// One delivery per subscribed endpoint.
    pub deliveries: Vec<DeliveryRef>,
}

#[derive(Debug, Object)]
pub struct EventOut {
    pub id: String,
    #[oai(rename = "type")]
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct EventWithDeliveries {
    #[oai(flatten)]
    pub event: EventOut,
    /// Its deliveries, newest first (the first 1,000; page through the rest with
    /// `GET /v1/deliveries?event_id=`).
    pub deliveries: Vec<DeliveryOut>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventList {
    pub data: Vec<EventOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn event_out(event: store::Event) -> ApiResult<EventOut> {
    let payload = serde_json::from_str(&event.payload).map_err(|e| {
        ApiError::from(hookd_engine::store::StoreError::Corrupt(format!(
            "event payload: {e}"
        )))
    })?;
    Ok(EventOut {
        id: event.id.to_string(),
        event_type: event.event_type,
        payload,
        created_at: event.created_at,
    })
}

/// The most deliveries an event shows inline.
const EVENT_DELIVERIES_SHOWN: i64 = 1000;

/// Checks one event of a request; `field` prefixes error details (`events[3].` in a batch).
fn prepare(
    field: &str,
    event_type: Text,
    payload: &serde_json::Value,
    endpoint_ids: Option<Vec<Id<EndpointId>>>,
    idempotency_key: Option<String>,
) -> ApiResult<EventToPublish> {
    let payload = serde_json::to_string(payload)
        .map_err(|e| ApiError::invalid(format!("{field}payload: {e}")))?;
    let endpoint_ids: Option<Vec<EndpointId>> =
        endpoint_ids.map(|ids| ids.into_iter().map(|Id(id)| id).collect());
    // The hash covers everything that decides what the request does.
    let mut hasher = Sha256::new();
    hasher.update(event_type.as_bytes());
    hasher.update([0]);
    hasher.update(payload.as_bytes());
    for id in endpoint_ids.iter().flatten() {
        hasher.update([0]);
        hasher.update(id.0.as_bytes());
    }
    let request_hash: [u8; 32] = hasher.finalize().into();
    Ok(EventToPublish {
        event_type: event_type.0,
        payload,
        endpoint_ids,
        idempotency: idempotency_key.map(|key| (key, request_hash)),
    })
}

fn accepted(published: ingest::Published) -> EventAccepted {
    EventAccepted {
        id: published.event_id.to_string(),
        deliveries: published
            .deliveries
            .into_iter()
            .map(|(id, endpoint_id)| DeliveryRef {
                id: id.to_string(),
                endpoint_id: endpoint_id.to_string(),
            })
            .collect(),
    }
}

impl EventsApi {
    /// Publishes prepared events; `batch` says how error details name an event's fields.
    async fn publish(
        &self,
        app_id: hookd_engine::ids::AppId,
        prepared: Vec<EventToPublish>,
        batch: bool,
    ) -> ApiResult<Vec<EventAccepted>> {
        let prefix = |i: usize| {
            if batch {
                format!("events[{i}].")
            } else {
                String::new()
            }
        };
        match self.0.publisher.publish(app_id, prepared).await? {
            ingest::PublishOutcome::Published(published) => {
                Ok(published.into_iter().map(accepted).collect())
            }
            ingest::PublishOutcome::KeyConflict { index } => Err(ApiError::new(
                ProblemKind::IdempotencyConflict,
                if batch {
                    format!(
                        "{}idempotency_key: this key was used with a different request",
                        prefix(index)
                    )
                } else {
                    "Idempotency-Key: this key was used with a different request".to_owned()
                },
            )),
            ingest::PublishOutcome::UnknownEndpoints { index, ids } => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                Err(ApiError::invalid(format!(
                    "{}endpoint_ids: not endpoints of this app: {}",
                    prefix(index),
                    ids.join(", ")
                )))
            }
        }
    }
}

#[derive(ApiResponse)]
enum BatchAcceptedResponse {
    /// Every event and its deliveries are committed.
    #[oai(status = 202)]
    Accepted(Json<BatchAccepted>),
}

#[derive(ApiResponse)]
enum EventAcceptedResponse {
    /// The event and its deliveries are committed.
    #[oai(status = 202)]
    Accepted(Json<EventAccepted>),
}

pub struct EventsApi(pub Arc<ApiState>);

#[OpenApi]
impl EventsApi {
    /// Publish an event
    ///
    /// Answered 202 once the event and its deliveries are committed. With an `Idempotency-Key`,
    /// repeating the same request returns the original answer; reusing the key with another
    /// body is refused with 409. Keys are kept at least 24 hours (the default of
    /// `HOOKD_IDEMPOTENCY_RETENTION`).
    #[oai(path = "/v1/events", method = "post", tag = "Tag::Events")]
    async fn publish_event(
        &self,
        auth: AppKey,
        /// Makes retries of this request safe: scoped to the app, kept at least 24 hours by default.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        body: Json<PublishEvent>,
    ) -> ApiResult<EventAcceptedResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let body = body.0;
        let prepared = prepare(
            "",
            body.event_type,
            &body.payload,
            body.endpoint_ids,
            idempotency_key.0,
        )?;
        let mut accepted = self.publish(app_id, vec![prepared], false).await?;
        let accepted = accepted
            .pop()
            .ok_or_else(|| ApiError::new(ProblemKind::Internal, "publishing returned nothing"))?;
        Ok(EventAcceptedResponse::Accepted(Json(accepted)))
    }

    /// Publish a batch of events
    ///
    /// Up to 1,000 events in one transaction: all are committed (202) or none is. Each event
    /// may carry its own idempotency key and explicit endpoints.
    #[oai(path = "/v1/events/batch", method = "post", tag = "Tag::Events")]
    async fn publish_batch(
        &self,
        auth: AppKey,
        body: Json<PublishBatch>,
    ) -> ApiResult<BatchAcceptedResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let prepared = body
            .0
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                prepare(
                    &format!("events[{i}]."),
                    e.event_type,
                    &e.payload,
                    e.endpoint_ids,
                    e.idempotency_key.map(String::from),
                )
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let data = self.publish(app_id, prepared, true).await?;
        Ok(BatchAcceptedResponse::Accepted(Json(BatchAccepted {
            data,
        })))
    }

    /// List events
    ///
    /// Newest first; every filter narrows the list.
    #[oai(path = "/v1/events", method = "get", tag = "Tag::Events")]
    async fn list_events(
        &self,
        auth: AppKey,
        /// Only events of this type.
        #[oai(name = "type")]
        event_type: Query<Option<Text>>,
        /// Published at or after (RFC 3339).
        after: Query<Option<DateTime<Utc>>>,
        /// Published before (RFC 3339).
        before: Query<Option<DateTime<Utc>>>,
        /// Items per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<EventList>> {
        let app_id = self.0.app_of(&auth).await?;
        let (limit, after_id) = page::params(limit.0, cursor.0.as_deref())?;
        let filter = store::EventFilter {
            event_type: event_type.0.map(String::from),
            after: after.0,
            before: before.0,
        };
        let events = store::events_list(&self.0.store, app_id, &filter, after_id, limit).await?;
        let next_cursor = page::next_cursor(&events, limit, |e| e.id.0);
        Ok(Json(EventList {
            data: events
                .into_iter()
                .map(event_out)
                .collect::<ApiResult<_>>()?,
            next_cursor,
        }))
    }

    /// Get an event with its deliveries
    #[oai(path = "/v1/events/:id", method = "get", tag = "Tag::Events")]
    async fn get_event(
        &self,
        auth: AppKey,
        id: Path<Id<EventId>>,
    ) -> ApiResult<Json<EventWithDeliveries>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let event = store::event_get(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("event"))?;
        let filter = delivery_reads::DeliveryFilter {
            event_id: Some(id),
            ..Default::default()
        };
        let deliveries = delivery_reads::deliveries_list(
            &self.0.store,
            app_id,
            &filter,
            None,
            EVENT_DELIVERIES_SHOWN,
        )
        .await?;
        Ok(Json(EventWithDeliveries {
            event: event_out(event)?,
            deliveries: deliveries.into_iter().map(DeliveryOut::from).collect(),
        }))
    }
}
