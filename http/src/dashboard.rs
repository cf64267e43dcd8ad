//! The dashboard: a page hookd serves itself (HTML, script and style compiled into the binary: no
//! build step, no CDN), and the live stream it reads. The page signs in with the admin token or an
//! app's API key and calls the REST API with it, so it can see and do exactly what that key can.
//! The stream is the one route it needs beyond the API: `GET /v1/stats/stream`, a reading of
//! `GET /v1/stats` every second as server-sent events. Under `hookd demo`, the page also reads
//! and switches the demo receiver through `/dashboard/demo`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hookd_engine::store::stats::Scope;
use poem::endpoint::make_sync;
use poem::http::header;
use poem::web::sse::{Event, SSE};
use poem::{Endpoint, IntoResponse, Request, Response, Route, get};
use poem_openapi::types::ToJSON;
use tokio_util::sync::CancellationToken;

use crate::api::ApiState;
use crate::demo::{Demo, Mode};
use crate::problem::{ApiError, ProblemKind};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The page loads only its own script and style and talks only to this origin; nothing may frame
/// it. A script injected through data could neither run inline nor send the token elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// How often the stream sends a reading.
const EVERY: Duration = Duration::from_secs(1);

/// The page and its assets, nested under `/dashboard`, and the demo's controls.
pub fn routes(state: Arc<ApiState>, demo: Option<Arc<Demo>>) -> Route {
    let demo_state = (state.clone(), demo.clone());
    Route::new()
        .at("/", get(asset(PAGE, "text/html; charset=utf-8")))
        .at(
            "/dashboard.js",
            get(asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .at(
            "/dashboard.css",
            get(asset(STYLE, "text/css; charset=utf-8")),
        )
        .at(
            "/demo",
            get(poem::endpoint::make(move |request: Request| {
                let (state, demo) = demo_state.clone();
                async move { respond(demo_status(&state, demo.as_deref(), &request).await) }
            })),
        )
        .at(
            "/demo/receiver",
            poem::post(poem::endpoint::make(move |mut request: Request| {
                let (state, demo) = (state.clone(), demo.clone());
                async move {
                    let body = request.take_body().into_bytes().await.unwrap_or_default();
                    respond(set_receiver_mode(&state, demo.as_deref(), &request, &body).await)
                }
            })),
        )
}

fn respond(result: Result<serde_json::Value, ApiError>) -> poem::Result<Response> {
    Ok(match result {
        Ok(body) => Response::builder()
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(body.to_string()),
        Err(problem) => problem.into_response(),
    })
}

/// `GET /dashboard/demo`: the demo receiver's mode and counts, or `{"enabled": false}` when this
/// process runs no demo (so the page can tell without an error). Any valid key may read it.
async fn demo_status(
    state: &ApiState,
    demo: Option<&Demo>,
    request: &Request,
) -> Result<serde_json::Value, ApiError> {
    authorize(state, request).await?;
    Ok(match demo {
        Some(demo) => demo.status(),
        None => serde_json::json!({"enabled": false}),
    })
}

/// `POST /dashboard/demo/receiver` with `{"mode": "up" | "down" | "slow" | "flaky"}`.
async fn set_receiver_mode(
    state: &ApiState,
    demo: Option<&Demo>,
    request: &Request,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    authorize(state, request).await?;
    let demo = demo.ok_or_else(|| {
        ApiError::new(
            ProblemKind::NotFound,
            "this hookd runs no demo receiver (start one with `hookd demo`)",
        )
    })?;
    let mode = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|body| body.get("mode")?.as_str().and_then(Mode::parse))
        .ok_or_else(|| ApiError::invalid(r#"send {"mode": "up" | "down" | "slow" | "flaky"}"#))?;
    demo.receiver.set_mode(mode);
    Ok(demo.status())
}

async fn authorize(state: &ApiState, request: &Request) -> Result<Scope, ApiError> {
    state.scope_of(&presented_token(request)?).await
}

fn presented_token(request: &Request) -> Result<String, ApiError> {
    bearer_token(request).ok_or_else(|| {
        ApiError::new(
            ProblemKind::Unauthorized,
            "send the admin token or an API key as `Authorization: Bearer …`",
        )
    })
}

fn asset(body: &'static str, content_type: &'static str) -> impl Endpoint<Output = Response> {
    make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .header("content-security-policy", CONTENT_SECURITY_POLICY)
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body)
    })
}

/// `GET /v1/stats/stream`: a `stats` event every second, with the body `GET /v1/stats` would
/// give. The key is checked again before every reading, so revoking it ends the stream; so does
/// shutdown. A reading that fails (the database is away) sends a `problem` event instead and the
/// stream goes on.
pub fn stream(
    state: Arc<ApiState>,
    shutdown: CancellationToken,
) -> impl Endpoint<Output = Response> {
    poem::endpoint::make(move |request: Request| {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move {
            Ok::<Response, poem::Error>(match stream_response(state, shutdown, &request).await {
                Ok(response) => response,
                Err(problem) => problem.into_response(),
            })
        }
    })
}

async fn stream_response(
    state: Arc<ApiState>,
    shutdown: CancellationToken,
    request: &Request,
) -> Result<Response, ApiError> {
    let token = presented_token(request)?;
    // Refused keys and an unreachable database answer as any other route does, before the
    // stream starts.
    let scope = state.scope_of(&token).await?;
    state.stats_reading(scope).await?;
    let ticks = tokio::time::interval(EVERY);
    let events = futures_util::stream::unfold(
        (state, token, scope, ticks, false),
        |(state, token, scope, mut ticks, ended)| async move {
            if ended {
                return None;
            }
            ticks.tick().await;
            let (event, ended) = next_event(&state, &token, scope).await;
            Some((event, (state, token, scope, ticks, ended)))
        },
    )
    .take_until(shutdown.cancelled_owned());
    Ok(SSE::new(events)
        .keep_alive(Duration::from_secs(15))
        .into_response())
}

/// The next event, and whether it is the last: a key no longer valid (or no longer of the same
/// app) ends the stream.
async fn next_event(state: &ApiState, token: &str, scope: Scope) -> (Event, bool) {
    match state.scope_of(token).await {
        Ok(now) if now == scope => {}
        Ok(_) | Err(ApiError::Unauthorized(_)) => {
            let revoked = ApiError::new(ProblemKind::Unauthorized, "the key was revoked");
            return (problem_event(&revoked), true);
        }
        Err(e) => return (problem_event(&e), false),
    }
    match state.stats_reading(scope).await {
        Ok(reading) => (
            Event::message(reading.to_json_string()).event_type("stats"),
            false,
        ),
        Err(e) => (problem_event(&e), false),
    }
}

fn problem_event(error: &ApiError) -> Event {
    Event::message(error.problem().to_json_string()).event_type("problem")
}

fn bearer_token(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}
