//! A webhook receiver that verifies signatures, misbehaves on purpose, and keeps the record.
//!
//! Each request draws a [`Behavior`] from a weighted [`Mix`]. Only webhooks answered 2xx in time
//! count as accepted: a hang answers after the sender gave up, and a dropped connection answers
//! nothing. The [`Record`] is the evidence a run's verdict is computed from, independent of
//! hookd's own view: what arrived, what arrived twice, what arrived while another copy was still
//! in progress, and the longest delay from publish to arrival.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookd_engine::secret::SigningSecret;
use hookd_engine::signing;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::RngExt as _;
use serde_json::json;
use tokio::net::TcpListener;

/// What the receiver does with one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behavior {
    /// 204 at once.
    Ok,
    /// 500.
    Error,
    /// 429 with `Retry-After`.
    Throttle,
    /// 410: the sender should disable the endpoint.
    Gone,
    /// 204 after the slow delay (within the sender's timeout).
    Slow,
    /// 204 after the hang delay (past the sender's timeout): never counted as accepted.
    Hang,
    /// Close the connection without answering.
    Drop,
}

impl Behavior {
    const ALL: [Behavior; 7] = [
        Self::Ok,
        Self::Error,
        Self::Throttle,
        Self::Gone,
        Self::Slow,
        Self::Hang,
        Self::Drop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Throttle => "throttle",
            Self::Gone => "gone",
            Self::Slow => "slow",
            Self::Hang => "hang",
            Self::Drop => "drop",
        }
    }
}

/// A mix spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad mix `{0}`: expected name=weight pairs from ok, error, throttle, gone, slow, hang, drop"
)]
pub struct MixError(String);

/// Weighted behaviours, e.g. `ok=70,error=10,drop=5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(Vec<(Behavior, u32)>);

impl Mix {
    pub fn parse(spec: &str) -> Result<Self, MixError> {
        let bad = || MixError(spec.to_owned());
        let mut weights = Vec::new();
        for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = pair.split_once('=').ok_or_else(bad)?;
            let behavior = Behavior::ALL
                .into_iter()
                .find(|b| b.name() == name.trim())
                .ok_or_else(bad)?;
            let weight: u32 = weight.trim().parse().map_err(|_| bad())?;
            weights.push((behavior, weight));
        }
        if weights.iter().all(|(_, w)| *w == 0) {
            return Err(bad());
        }
        Ok(Self(weights))
    }

    /// Only successes.
    pub fn always_ok() -> Self {
        Self(vec![(Behavior::Ok, 1)])
    }

    fn draw(&self, roll: u32) -> Behavior {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut point = roll % total.max(1);
        for (behavior, weight) in &self.0 {
            if point < *weight {
                return *behavior;
            }
            point -= weight;
        }
        Behavior::Ok
    }
}

/// How the receiver behaves.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Signatures by any of these secrets verify (several during a rotation).
    pub secrets: Vec<SigningSecret>,
    pub mix: Mix,
    pub slow: Duration,
    pub hang: Duration,
    pub retry_after_secs: u64,
}

/// What the receiver saw.
#[derive(Debug, Default)]
pub struct Record {
    pub requests: u64,
    /// Accepted webhook-ids, with how often each was accepted.
    pub accepted: HashMap<String, u32>,
    pub invalid_signatures: u64,
    /// Requests that arrived while another copy of the same webhook-id was in progress.
    pub overlapping: u64,
    pub max_delay_ms: i64,
    pub answers: HashMap<&'static str, u64>,
    /// Accepted webhooks whose payload carried the benchmark's `sent_at_us`: when the publisher
    /// sent the event and when it arrived here, in µs since the Unix epoch (one clock, one box).
    pub arrivals: Vec<Arrival>,
    in_progress: HashMap<String, u32>,
}

/// One accepted webhook's publish and arrival times, µs since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub sent_us: i64,
    pub arrived_us: i64,
}

impl Record {
    pub fn accepted_total(&self) -> u64 {
        self.accepted.values().map(|n| u64::from(*n)).sum()
    }

    /// Acceptances beyond the first of each webhook-id.
    pub fn duplicates(&self) -> u64 {
        self.accepted_total() - self.accepted.len() as u64
    }

    pub fn stats(&self) -> serde_json::Value {
        json!({
            "requests": self.requests,
            "accepted": self.accepted.len(),
            "accepted_total": self.accepted_total(),
            "duplicates": self.duplicates(),
            "invalid_signatures": self.invalid_signatures,
            "overlapping": self.overlapping,
            "max_delay_ms": self.max_delay_ms,
            "answers": self.answers,
        })
    }
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub record: Arc<Mutex<Record>>,
    mix: Arc<Mutex<Mix>>,
}

impl Receiver {
    /// Changes how the receiver behaves from the next request on (an outage ends, say).
    pub fn set_mix(&self, mix: Mix) {
        *self
            .mix
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mix;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
struct Dropped;

struct State {
    config: ReceiverConfig,
    mix: Arc<Mutex<Mix>>,
    record: Arc<Mutex<Record>>,
}

/// Binds `listen` and serves until the process ends.
pub async fn start(listen: SocketAddr, config: ReceiverConfig) -> std::io::Result<Receiver> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let record = Arc::new(Mutex::new(Record::default()));
    let mix = Arc::new(Mutex::new(config.mix.clone()));
    let state = Arc::new(State {
        config,
        mix: mix.clone(),
        record: record.clone(),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(state.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Receiver { addr, record, mix })
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    // A panic while holding the lock leaves counts that are still counts.
    record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    if request.method() == Method::GET {
        let record = lock(&state.record);
        let body = match request.uri().path() {
            "/_stats" => record.stats(),
            "/_accepted" => json!(record.accepted),
            _ => return Ok(respond(StatusCode::NOT_FOUND, "")),
        };
        return Ok(respond(StatusCode::OK, body.to_string()));
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let now = chrono::Utc::now().timestamp();
    let verified = signing::verify(
        &state.config.secrets,
        &id,
        &timestamp,
        &signatures,
        &body,
        now,
    )
    .is_ok();
    let behavior = state
        .mix
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .draw(rand::rng().random());
    {
        let mut record = lock(&state.record);
        record.requests += 1;
        if !verified {
            record.invalid_signatures += 1;
            return Ok(respond(StatusCode::UNAUTHORIZED, "bad signature"));
        }
        *record.answers.entry(behavior.name()).or_default() += 1;
        let copies = record.in_progress.entry(id.clone()).or_default();
        *copies += 1;
        if *copies > 1 {
            record.overlapping += 1;
        }
    }
    let answer = answer(&state, behavior).await;
    let mut record = lock(&state.record);
    if let Some(copies) = record.in_progress.get_mut(&id) {
        *copies -= 1;
    }
    if matches!(behavior, Behavior::Ok | Behavior::Slow) {
        *record.accepted.entry(id).or_default() += 1;
        let times = publish_times(&body);
        if let Some(delay) = times.delay_ms {
            record.max_delay_ms = record.max_delay_ms.max(delay);
        }
        if let Some(arrival) = times.arrival {
            record.arrivals.push(arrival);
        }
    }
    answer
}

async fn answer(state: &State, behavior: Behavior) -> Result<Response<Full<Bytes>>, Dropped> {
    Ok(match behavior {
        Behavior::Ok => respond(StatusCode::NO_CONTENT, ""),
        Behavior::Error => respond(StatusCode::INTERNAL_SERVER_ERROR, "chaos: error"),
        Behavior::Throttle => {
            let mut response = respond(StatusCode::TOO_MANY_REQUESTS, "chaos: throttled");
            response.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from(state.config.retry_after_secs),
            );
            response
        }
        Behavior::Gone => respond(StatusCode::GONE, "chaos: gone"),
        Behavior::Slow => {
            tokio::time::sleep(state.config.slow).await;
            respond(StatusCode::NO_CONTENT, "")
        }
        Behavior::Hang => {
            tokio::time::sleep(state.config.hang).await;
            respond(StatusCode::NO_CONTENT, "")
        }
        Behavior::Drop => return Err(Dropped),
    })
}

/// What a webhook's body says about when its event was published.
struct PublishTimes {
    /// Milliseconds from the event's publish time (the body's `timestamp`) to now.
    delay_ms: Option<i64>,
    /// When the benchmark sent it (`data.sent_at_us`), and now.
    arrival: Option<Arrival>,
}

fn publish_times(body: &[u8]) -> PublishTimes {
    let now = chrono::Utc::now();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return PublishTimes {
            delay_ms: None,
            arrival: None,
        };
    };
    let delay_ms = value["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|published| (now - published.with_timezone(&chrono::Utc)).num_milliseconds());
    let arrival = value["data"]["sent_at_us"].as_i64().map(|sent_us| Arrival {
        sent_us,
        arrived_us: now.timestamp_micros(),
    });
    PublishTimes { delay_ms, arrival }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_draw_by_weight() {
        let mix = Mix::parse("ok=2, error=1,drop=0").unwrap();
        assert_eq!(mix.draw(0), Behavior::Ok);
        assert_eq!(mix.draw(1), Behavior::Ok);
        assert_eq!(mix.draw(2), Behavior::Error);
        assert_eq!(mix.draw(3), Behavior::Ok);
        for bad in ["", "ok", "ok=x", "nope=1", "ok=0"] {
            assert!(Mix::parse(bad).is_err(), "{bad}");
        }
    }

    async fn post(
        client: &reqwest::Client,
        receiver: &Receiver,
        secret: &SigningSecret,
        id: &str,
    ) -> Result<u16, reqwest::Error> {
        let body = format!(
            r#"{{"type":"t","timestamp":"{}","data":{{}}}}"#,
            chrono::Utc::now().to_rfc3339()
        );
        let ts = chrono::Utc::now().timestamp();
        let signature = signing::sign(secret, id, ts, body.as_bytes());
        let response = client
            .post(format!("http://{}/hook", receiver.addr))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    #[tokio::test]
    async fn verifies_records_and_misbehaves() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secret = SigningSecret::generate();
        let config = |mix: &str| ReceiverConfig {
            secrets: vec![secret.clone()],
            mix: Mix::parse(mix).unwrap(),
            slow: Duration::from_millis(1),
            hang: Duration::from_millis(1),
            retry_after_secs: 3,
        };
        let client = reqwest::Client::new();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();

        let ok = start(listen, config("ok=1")).await.unwrap();
        assert_eq!(post(&client, &ok, &secret, "evt_1").await.unwrap(), 204);
        assert_eq!(post(&client, &ok, &secret, "evt_1").await.unwrap(), 204);
        assert_eq!(
            post(&client, &ok, &SigningSecret::generate(), "evt_2")
                .await
                .unwrap(),
            401
        );
        {
            let record = lock(&ok.record);
            assert_eq!((record.accepted.len(), record.duplicates()), (1, 1));
            assert_eq!(record.invalid_signatures, 1);
            assert!(record.max_delay_ms >= 0);
        }
        let stats: serde_json::Value = client
            .get(format!("http://{}/_stats", ok.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["duplicates"], 1);

        let gone = start(listen, config("gone=1")).await.unwrap();
        assert_eq!(post(&client, &gone, &secret, "evt_3").await.unwrap(), 410);
        let dropping = start(listen, config("drop=1")).await.unwrap();
        assert!(post(&client, &dropping, &secret, "evt_4").await.is_err());
        let hanging = start(listen, config("hang=1")).await.unwrap();
        assert_eq!(
            post(&client, &hanging, &secret, "evt_5").await.unwrap(),
            204
        );
        assert!(
            lock(&hanging.record).accepted.is_empty(),
            "a hang is never accepted"
        );
    }
}
