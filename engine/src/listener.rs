//! The doorbell: one dedicated connection LISTENing on `hookd_work`, turning notifications into
//! wake-ups of the worker loop.
//!
//! After a lost connection it reconnects with backoff, LISTENs again, and then rings once itself,
//! so that work published while it was deaf costs one scan and is never missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, WakeCause};

/// The channel the delivery log's trigger notifies.
pub const WORK_CHANNEL: &str = "hookd_work";

/// Keeps a LISTEN connection up until `shutdown`, ringing `wake` on every notification and after
/// every (re)connect.
pub async fn listen(
    config: tokio_postgres::Config,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen_sql = format!("LISTEN {WORK_CHANNEL}");
                let listen = client.batch_execute(&listen_sql);
                tokio::pin!(listen);
                // The connection must be driven while LISTEN runs: poll both.
                let listening = loop {
                    tokio::select! {
                        result = &mut listen => break result.is_ok(),
                        message = messages.next() => match message {
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => break false,
                        },
                    }
                };
                if listening {
                    backoff = Duration::from_millis(100);
                    tracing::debug!("listening for work notifications");
                    metrics::wakeup(WakeCause::Scan);
                    wake.notify_one();
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            message = messages.next() => match message {
                                Some(Ok(AsyncMessage::Notification(_))) => {
                                    metrics::wakeup(WakeCause::Notify);
                                    wake.notify_one();
                                }
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                                    break;
                                }
                                None => {
                                    tracing::warn!("LISTEN connection closed; reconnecting");
                                    break;
                                }
                            },
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the LISTEN connection; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
