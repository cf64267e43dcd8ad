//! Validating an endpoint URL at registration: http(s) only, no credentials, and (unless private
//! targets are allowed) a host that resolves only to public addresses. The sender checks the
//! address again at delivery time; this check gives the operator an early, clear refusal.

use std::net::IpAddr;

use crate::address::is_public;

/// Why a URL cannot be an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointUrlError {
    #[error("not a valid absolute URL: {0}")]
    Malformed(String),
    #[error("the scheme must be http or https, not `{0}`")]
    Scheme(String),
    #[error("the URL must not carry credentials (user:password@)")]
    Credentials,
    #[error("the URL must not be longer than 2048 bytes")]
    TooLong,
    #[error(
        "`{0}` is, or resolves to, an address webhooks may not be sent to (loopback, private, link-local or reserved)"
    )]
    Forbidden(String),
    #[error("`{0}` does not resolve")]
    Unresolvable(String),
}

/// Checks `text` and returns it normalized.
pub async fn check_endpoint_url(
    text: &str,
    allow_private_targets: bool,
) -> Result<String, EndpointUrlError> {
    if text.len() > 2048 {
        return Err(EndpointUrlError::TooLong);
    }
    let url = reqwest::Url::parse(text).map_err(|e| EndpointUrlError::Malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EndpointUrlError::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointUrlError::Credentials);
    }
    let host = url
        .host_str()
        .ok_or_else(|| EndpointUrlError::Malformed("the URL has no host".into()))?
        .to_owned();
    if allow_private_targets {
        return Ok(url.into());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if is_public(ip) {
            Ok(url.into())
        } else {
            Err(EndpointUrlError::Forbidden(host))
        };
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| EndpointUrlError::Unresolvable(host.clone()))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        return Err(EndpointUrlError::Unresolvable(host));
    }
    if addrs.iter().any(|ip| !is_public(*ip)) {
        return Err(EndpointUrlError::Forbidden(host));
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_bad_urls_and_private_hosts() {
        type Expect = fn(&EndpointUrlError) -> bool;
        let table: [(&str, Expect); 7] = [
            ("not a url", |e| matches!(e, EndpointUrlError::Malformed(_))),
            ("ftp://example.com/x", |e| {
                matches!(e, EndpointUrlError::Scheme(_))
            }),
            ("https://u:p@example.com/", |e| {
                *e == EndpointUrlError::Credentials
            }),
            ("http://127.0.0.1:9/hook", |e| {
                matches!(e, EndpointUrlError::Forbidden(_))
            }),
            ("http://[::1]/hook", |e| {
                matches!(e, EndpointUrlError::Forbidden(_))
            }),
            ("http://169.254.169.254/latest", |e| {
                matches!(e, EndpointUrlError::Forbidden(_))
            }),
            ("http://localhost:8080/hook", |e| {
                matches!(e, EndpointUrlError::Forbidden(_))
            }),
        ];
        for (url, expected) in table {
            let err = check_endpoint_url(url, false).await.unwrap_err();
            assert!(expected(&err), "{url}: {err:?}");
        }
    }

    #[tokio::test]
    async fn private_targets_pass_when_allowed() {
        assert_eq!(
            check_endpoint_url("http://127.0.0.1:9/hook", true).await,
            Ok("http://127.0.0.1:9/hook".to_owned())
        );
        assert!(
            check_endpoint_url("http://93.184.216.34/x", false)
                .await
                .is_ok()
        );
    }
}
