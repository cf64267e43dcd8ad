//! Sending one webhook over HTTP: signed POST, timeouts, no redirects, a 1 KiB response excerpt.
//!
//! Host names are resolved by [`GuardedResolver`], which drops every address that
//! [`crate::address::is_public`] refuses (unless private targets are allowed) and hands reqwest
//! only the addresses it checked, so the connection goes to a checked address.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};

use crate::address::is_public;
use crate::outcome::{AttemptResult, ErrorClass, parse_retry_after};

/// The most of a response body kept in the delivery log.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// How the sender connects.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub connect_timeout: Duration,
    /// Lets webhooks go to loopback and private addresses (local development and tests).
    pub allow_private_targets: bool,
}

/// The sender could not be built (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct SenderBuildError(#[source] reqwest::Error);

/// One webhook, ready to go.
#[derive(Debug)]
pub struct Webhook<'a> {
    pub url: &'a str,
    pub msg_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: String,
    pub timeout: Duration,
    /// The endpoint's custom headers (validated at registration: none can replace hookd's own).
    pub headers: Vec<(String, String)>,
}

/// A shared HTTP client for webhooks (connections are pooled and kept alive per host).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private_targets: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("`{host}` resolves only to addresses webhooks may not be sent to")]
struct ForbiddenTarget {
    host: String,
}

#[derive(Debug)]
struct GuardedResolver {
    allow_private_targets: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private_targets;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenTarget { host }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Sender {
    pub fn new(config: &SenderConfig) -> Result<Self, SenderBuildError> {
        // Another part of the process may have installed a provider already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("hookd/", env!("CARGO_PKG_VERSION"))),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would be resolved instead of the target, bypassing the address checks.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private_targets: config.allow_private_targets,
            }))
            .build()
            .map_err(SenderBuildError)?;
        Ok(Self {
            client,
            allow_private_targets: config.allow_private_targets,
        })
    }

    /// Sends one webhook and reports what happened; never fails, every failure is a result.
    pub async fn send(&self, webhook: Webhook<'_>) -> (AttemptResult, Duration) {
        let started = Instant::now();
        let result = self.send_inner(webhook).await;
        (result, started.elapsed())
    }

    async fn send_inner(&self, webhook: Webhook<'_>) -> AttemptResult {
        let url = match reqwest::Url::parse(webhook.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                return AttemptResult::Failed {
                    class: ErrorClass::ForbiddenAddress,
                    message: "the endpoint URL is not an http(s) URL".into(),
                };
            }
        };
        // The resolver never sees IP literals; check them here.
        let literal: Option<IpAddr> = url
            .host_str()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|host| host.parse().ok());
        if let Some(ip) = literal
            && !self.allow_private_targets
            && !is_public(ip)
        {
            return AttemptResult::Failed {
                class: ErrorClass::ForbiddenAddress,
                message: format!("{ip} is not a public address"),
            };
        }
        let mut request = self.client.post(url).timeout(webhook.timeout);
        for (name, value) in &webhook.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header("webhook-id", webhook.msg_id)
            .header("webhook-timestamp", webhook.timestamp.to_string())
            .header("webhook-signature", webhook.signature)
            .body(webhook.body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return failure(&e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let mut excerpt = Vec::new();
        // A body that stalls or breaks after the status line still leaves a valid answer: the
        // status decides, the excerpt is only evidence.
        while excerpt.len() < RESPONSE_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_EXCERPT_BYTES - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        AttemptResult::Responded {
            status,
            retry_after,
            excerpt: excerpt_text(&excerpt),
        }
    }
}

fn failure(error: &reqwest::Error) -> AttemptResult {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<ForbiddenTarget>().is_some() {
            return AttemptResult::Failed {
                class: ErrorClass::ForbiddenAddress,
                message: cause.to_string(),
            };
        }
        source = cause.source();
    }
    let class = if error.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Connect
    };
    AttemptResult::Failed {
        class,
        message: error_chain(error),
    }
}

/// The error and its causes on one line, without the URL (it may carry a token the owner put in
/// the query string).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    });
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    truncate_on_char(&mut text, 500);
    text
}

/// At most [`RESPONSE_EXCERPT_BYTES`] bytes of text, invalid UTF-8 replaced.
fn excerpt_text(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    truncate_on_char(&mut text, RESPONSE_EXCERPT_BYTES);
    text
}

fn truncate_on_char(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_never_exceeds_a_kibibyte_even_after_replacement() {
        // Invalid bytes become 3-byte replacement characters: the text grows past the input.
        let invalid = vec![0xffu8; RESPONSE_EXCERPT_BYTES];
        let text = excerpt_text(&invalid);
        assert!(text.len() <= RESPONSE_EXCERPT_BYTES);
        assert!(text.starts_with('\u{fffd}'));
        let multibyte = "é".repeat(600);
        let text = excerpt_text(multibyte.as_bytes());
        assert!(text.len() <= RESPONSE_EXCERPT_BYTES && text.len() >= RESPONSE_EXCERPT_BYTES - 1);
    }
}
