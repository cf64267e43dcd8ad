//! The demo's receiver: a loopback webhook endpoint that verifies every signature, as a
//! customer's would, and behaves as the dashboard's demo panel says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use hookd_engine::secret::SigningSecret;
use hookd_engine::signing;
use poem::http::StatusCode;
use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use poem::web::Data;
use poem::{EndpointExt as _, Request, Response, Route, Server, handler, post};
use rand::RngExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How long the slow receiver takes to answer.
const SLOW_FOR: Duration = Duration::from_secs(3);

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 204 to every webhook whose signature verifies.
    Up,
    /// 503 to every webhook.
    Down,
    /// 204, after [`SLOW_FOR`].
    Slow,
    /// 500 to half of them, at random.
    Flaky,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Up, Mode::Down, Mode::Slow, Mode::Flaky];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Up => "up",
            Mode::Down => "down",
            Mode::Slow => "slow",
            Mode::Flaky => "flaky",
        }
    }

    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The receiver's state; the server task holds it too.
#[derive(Debug)]
struct Shared {
    secret: SigningSecret,
    /// A [`Mode`] as its `u8`.
    mode: AtomicU8,
    requests: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    bad_signatures: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Mode {
        let stored = usize::from(self.mode.load(Ordering::Relaxed));
        Mode::ALL.get(stored).copied().unwrap_or(Mode::Up)
    }
}

#[derive(Debug, Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
    url: String,
}

impl Receiver {
    /// Binds `listen` and serves until `shutdown`.
    pub async fn start(
        listen: SocketAddr,
        secret: SigningSecret,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let acceptor = TcpListener::bind(listen).into_acceptor().await?;
        let bound = acceptor
            .local_addr()
            .into_iter()
            .find_map(|a| a.as_socket_addr().copied())
            .ok_or_else(|| std::io::Error::other("the receiver has no socket address"))?;
        let shared = Arc::new(Shared {
            secret,
            mode: AtomicU8::new(Mode::Up as u8),
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
        });
        let app = Route::new()
            .at("/webhook", post(receive))
            .data(shared.clone());
        tokio::spawn(async move {
            let served = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    shutdown.cancelled_owned(),
                    Some(Duration::from_secs(1)),
                )
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the demo receiver stopped");
            }
        });
        Ok(Self {
            shared,
            url: format!("http://{bound}/webhook"),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn secret(&self) -> &SigningSecret {
        &self.shared.secret
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::Relaxed);
        tracing::info!(mode = mode.name(), "demo receiver mode changed");
    }

    pub fn status(&self) -> Value {
        let count = |n: &AtomicU64| n.load(Ordering::Relaxed);
        json!({
            "mode": self.mode().name(),
            "url": self.url,
            "requests": count(&self.shared.requests),
            "accepted": count(&self.shared.accepted),
            "refused": count(&self.shared.refused),
            "bad_signatures": count(&self.shared.bad_signatures),
        })
    }
}

#[handler]
async fn receive(
    request: &Request,
    body: poem::Body,
    Data(shared): Data<&Arc<Shared>>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let Ok(body) = body.into_bytes().await else {
        return Response::builder().status(StatusCode::BAD_REQUEST).finish();
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = signing::verify(
        std::slice::from_ref(&shared.secret),
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        now,
    ) {
        // Counted apart from `refused`, which counts what the mode refused.
        shared.bad_signatures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "demo receiver: a webhook failed verification");
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .finish();
    }
    let status = match shared.mode() {
        Mode::Up => StatusCode::NO_CONTENT,
        Mode::Down => StatusCode::SERVICE_UNAVAILABLE,
        Mode::Slow => {
            tokio::time::sleep(SLOW_FOR).await;
            StatusCode::NO_CONTENT
        }
        Mode::Flaky if rand::rng().random_bool(0.5) => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Flaky => StatusCode::NO_CONTENT,
    };
    answer(shared, status)
}

fn answer(shared: &Shared, status: StatusCode) -> Response {
    let counter = if status.is_success() {
        &shared.accepted
    } else {
        &shared.refused
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Response::builder().status(status).finish()
}
