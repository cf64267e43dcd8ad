//! Classifying what a receiver did with an attempt, and what the queue does next.
//!
//! Pure: the sender reports facts ([`AttemptResult`]), [`classify`] turns them into a verdict.

use std::time::Duration;

/// Why an attempt failed, in the few classes operators filter and alert on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The receiver did not answer within the delivery timeout.
    Timeout,
    /// No connection: refused, reset, DNS failure, TLS failure.
    Connect,
    /// The target address is not allowed (private, loopback, metadata…).
    ForbiddenAddress,
    /// The receiver answered with a non-2xx status.
    HttpStatus,
    /// The endpoint is disabled; the delivery is not attempted.
    EndpointDisabled,
    /// The delivery's lease expired too often without an outcome (a worker died mid-attempt).
    LeaseExpired,
    /// The endpoint's stored signing secret cannot be used.
    InvalidSecret,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::ForbiddenAddress => "forbidden_address",
            Self::HttpStatus => "http_status",
            Self::EndpointDisabled => "endpoint_disabled",
            Self::LeaseExpired => "lease_expired",
            Self::InvalidSecret => "invalid_secret",
        }
    }
}

/// What one HTTP attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Responded {
        status: u16,
        retry_after: Option<Duration>,
        /// At most 1 KiB of the response body, cut on a character boundary.
        excerpt: String,
    },
    Failed {
        class: ErrorClass,
        message: String,
    },
}

/// What the queue does with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Try again later; `retry_after` is the receiver's request, if it made one.
    Retry {
        retry_after: Option<Duration>,
    },
    /// Stop trying; with `disable_endpoint` the receiver said the endpoint is gone (410).
    DeadLetter {
        disable_endpoint: bool,
    },
}

pub fn classify(result: &AttemptResult) -> Verdict {
    match result {
        AttemptResult::Responded { status, .. } if (200..300).contains(status) => {
            Verdict::Succeeded
        }
        AttemptResult::Responded {
            status: status @ (408 | 429 | 500..=599),
            retry_after,
            ..
        } => Verdict::Retry {
            // Retry-After only means something on the statuses that define it.
            retry_after: if matches!(status, 429 | 503) {
                *retry_after
            } else {
                None
            },
        },
        AttemptResult::Responded { status: 410, .. } => Verdict::DeadLetter {
            disable_endpoint: true,
        },
        // Other 4xx: the receiver refuses this message and will keep refusing it. 1xx and 3xx
        // (redirects are not followed) are not a receipt either, and retrying will not change them.
        AttemptResult::Responded { .. } => Verdict::DeadLetter {
            disable_endpoint: false,
        },
        AttemptResult::Failed {
            class:
                ErrorClass::ForbiddenAddress | ErrorClass::EndpointDisabled | ErrorClass::InvalidSecret,
            ..
        } => Verdict::DeadLetter {
            disable_endpoint: false,
        },
        AttemptResult::Failed { .. } => Verdict::Retry { retry_after: None },
    }
}

/// Parses `Retry-After` in either of its forms: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> AttemptResult {
        AttemptResult::Responded {
            status: code,
            retry_after: retry_after.map(Duration::from_secs),
            excerpt: String::new(),
        }
    }

    fn failed(class: ErrorClass) -> AttemptResult {
        AttemptResult::Failed {
            class,
            message: String::new(),
        }
    }

    #[test]
    fn classification_table() {
        let retry = |s: Option<u64>| Verdict::Retry {
            retry_after: s.map(Duration::from_secs),
        };
        let dead = Verdict::DeadLetter {
            disable_endpoint: false,
        };
        let table = [
            (status(200, None), Verdict::Succeeded),
            (status(204, None), Verdict::Succeeded),
            (status(299, None), Verdict::Succeeded),
            (status(500, None), retry(None)),
            (status(502, Some(9)), retry(None)),
            (status(503, Some(9)), retry(Some(9))),
            (status(599, None), retry(None)),
            (status(408, None), retry(None)),
            (status(429, Some(30)), retry(Some(30))),
            (
                status(410, None),
                Verdict::DeadLetter {
                    disable_endpoint: true,
                },
            ),
            (status(400, None), dead),
            (status(401, None), dead),
            (status(404, None), dead),
            (status(422, None), dead),
            (status(301, None), dead),
            (status(101, None), dead),
            (failed(ErrorClass::Timeout), retry(None)),
            (failed(ErrorClass::Connect), retry(None)),
            (failed(ErrorClass::LeaseExpired), retry(None)),
            (failed(ErrorClass::ForbiddenAddress), dead),
            (failed(ErrorClass::EndpointDisabled), dead),
            (failed(ErrorClass::InvalidSecret), dead),
        ];
        for (result, expected) in table {
            assert_eq!(classify(&result), expected, "{result:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let table = [
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("Thu, 01 Jan 2026 00:01:00 GMT", Some(60)),
            ("Wed, 31 Dec 2025 23:00:00 GMT", Some(0)),
            ("soon", None),
            ("-5", None),
        ];
        for (input, expected) in table {
            assert_eq!(
                parse_retry_after(input, now),
                expected.map(Duration::from_secs),
                "{input}"
            );
        }
    }
}
