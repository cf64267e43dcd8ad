//! Publishing events.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_engine::ids::EventId;
use hookd_engine::store::{delivery_reads, events as store, ingest};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sha2::{Digest, Sha256};

use super::deliveries::DeliveryOut;
use super::{ApiResult, ApiState, AppKey, Tag, page, parse_id};
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
}

impl Example for PublishEvent {
    fn example() -> Self {
        Self {
            event_type: Text("order.paid".into()),
            payload: serde_json::json!({"order_id": "ord_1042", "amount": 4200, "currency": "EUR"}),
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
    /// body is refused with 409. Keys are kept at least 24 hours.
    #[oai(path = "/v1/events", method = "post", tag = "Tag::Events")]
    async fn publish_event(
        &self,
        auth: AppKey,
        /// Makes retries of this request safe: scoped to the app, kept at least 24 hours.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        body: Json<PublishEvent>,
    ) -> ApiResult<EventAcceptedResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let payload = serde_json::to_string(&body.payload)
            .map_err(|e| ApiError::invalid(format!("payload: {e}")))?;
        let request_hash: [u8; 32] = {
            let mut hasher = Sha256::new();
            hasher.update(body.event_type.as_bytes());
            hasher.update([0]);
            hasher.update(payload.as_bytes());
            hasher.finalize().into()
        };
        let idempotency = idempotency_key
            .0
            .as_deref()
            .map(|key| ingest::IdempotencyKey { key, request_hash });
        let outcome = ingest::event_publish(
            &self.0.store,
            &ingest::NewEvent {
                app_id,
                event_type: &body.event_type,
                payload: &payload,
                idempotency,
            },
        )
        .await?;
        let published = match outcome {
            ingest::PublishOutcome::Created(p) | ingest::PublishOutcome::Replayed(p) => p,
            ingest::PublishOutcome::KeyConflict => {
                return Err(ApiError::new(
                    ProblemKind::IdempotencyConflict,
                    "Idempotency-Key: this key was used with a different request body",
                ));
            }
        };
        Ok(EventAcceptedResponse::Accepted(Json(EventAccepted {
            id: published.event_id.to_string(),
            deliveries: published
                .deliveries
                .into_iter()
                .map(|(id, endpoint_id)| DeliveryRef {
                    id: id.to_string(),
                    endpoint_id: endpoint_id.to_string(),
                })
                .collect(),
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
        event_type: Query<Option<String>>,
        /// Published at or after (RFC 3339).
        after: Query<Option<DateTime<Utc>>>,
        /// Published before (RFC 3339).
        before: Query<Option<DateTime<Utc>>>,
        /// Items per page (1–200, default 50).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<EventList>> {
        let app_id = self.0.app_of(&auth).await?;
        let (limit, after_id) = page::params(limit.0, cursor.0.as_deref())?;
        let filter = store::EventFilter {
            event_type: event_type.0,
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
        id: Path<String>,
    ) -> ApiResult<Json<EventWithDeliveries>> {
        let app_id = self.0.app_of(&auth).await?;
        let id = parse_id(EventId::parse, &id)?;
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
