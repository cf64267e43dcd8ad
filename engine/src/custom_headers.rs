//! Which extra request headers an endpoint may ask for.
//!
//! Pure. Refused: hop-by-hop and framing headers (they would break or smuggle the request), the
//! headers hookd sets itself (a signature must not be forgeable by configuration), and any value
//! that could inject a header line (CR, LF, NUL, other control characters).

use std::collections::BTreeMap;

/// The most custom headers an endpoint may carry.
pub const MAX_HEADERS: usize = 20;

const RESERVED: &[&str] = &[
    // hop-by-hop and framing
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    // set by hookd
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A header an endpoint may not carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("at most {MAX_HEADERS} custom headers are allowed")]
    TooMany,
    #[error("`{0}` is not a valid header name")]
    BadName(String),
    #[error("`{0}` is set by hookd or by HTTP itself and cannot be overridden")]
    Reserved(String),
    #[error("the value of `{0}` must be visible ASCII or spaces, at most 4096 bytes")]
    BadValue(String),
}

/// Checks a set of custom headers; names are returned in lower case.
pub fn validate(
    headers: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, HeaderError> {
    if headers.len() > MAX_HEADERS {
        return Err(HeaderError::TooMany);
    }
    let mut checked = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let is_token = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            return Err(HeaderError::BadName(name.chars().take(64).collect()));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(HeaderError::Reserved(lower));
        }
        let value_ok = value.len() <= 4096
            && value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
        if !value_ok {
            return Err(HeaderError::BadValue(lower));
        }
        checked.insert(lower, value.clone());
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<BTreeMap<String, String>, HeaderError> {
        validate(&BTreeMap::from([(name.to_owned(), value.to_owned())]))
    }

    #[test]
    fn header_table() {
        assert_eq!(
            one("X-Api-Key", "abc 123")
                .unwrap()
                .get("x-api-key")
                .map(String::as_str),
            Some("abc 123")
        );
        type Expect = fn(&HeaderError) -> bool;
        let table: [(&str, &str, Expect); 9] = [
            ("Transfer-Encoding", "chunked", |e| {
                matches!(e, HeaderError::Reserved(_))
            }),
            ("host", "evil", |e| matches!(e, HeaderError::Reserved(_))),
            ("Webhook-Signature", "v1,x", |e| {
                matches!(e, HeaderError::Reserved(_))
            }),
            ("Content-Length", "0", |e| {
                matches!(e, HeaderError::Reserved(_))
            }),
            ("X-A", "ok\r\nX-Injected: 1", |e| {
                matches!(e, HeaderError::BadValue(_))
            }),
            ("X-A", "nul\0", |e| matches!(e, HeaderError::BadValue(_))),
            ("X-A", "é", |e| matches!(e, HeaderError::BadValue(_))),
            ("Bad Name", "x", |e| matches!(e, HeaderError::BadName(_))),
            ("X-A:B", "x", |e| matches!(e, HeaderError::BadName(_))),
        ];
        for (name, value, expected) in table {
            let err = one(name, value).unwrap_err();
            assert!(expected(&err), "{name}: {value:?} gave {err:?}");
        }
        let many: BTreeMap<String, String> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-{i}"), "v".into()))
            .collect();
        assert_eq!(validate(&many), Err(HeaderError::TooMany));
    }
}
