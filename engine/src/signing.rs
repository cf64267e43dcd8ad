//! Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
//! made for every attempt and checked by hookd's own receivers (the demo, the benchmark) as a
//! receiver's library would.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::SigningSecret;

/// How far a `webhook-timestamp` may be from the receiver's clock, as the spec's libraries allow:
/// an older message is refused as a possible replay.
pub const TIMESTAMP_TOLERANCE_S: i64 = 5 * 60;

/// Why a received webhook does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("`webhook-timestamp` is not a number of seconds")]
    BadTimestamp,
    #[error("`webhook-timestamp` is more than five minutes from now")]
    OutsideTolerance,
    #[error("no `v1` signature in `webhook-signature` matches")]
    NoMatch,
}

/// The `webhook-signature` header value for one message.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, msg_id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Checks a received webhook the way the spec's receiver libraries do: the timestamp within
/// [`TIMESTAMP_TOLERANCE_S`] of `now` (seconds since the epoch), and one of the space-separated
/// `v1,` signatures made by one of `secrets` (several while a secret is being rotated), compared
/// in constant time.
pub fn verify(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    // abs_diff: the timestamp comes from the network and may be anything, i64::MIN included.
    if now.abs_diff(timestamp) > TIMESTAMP_TOLERANCE_S.unsigned_abs() {
        return Err(VerifyError::OutsideTolerance);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .collect();
    let matches = secrets.iter().any(|secret| {
        candidates.iter().any(|tag| {
            mac(secret, msg_id, timestamp, body)
                .verify_slice(tag)
                .is_ok()
        })
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

fn mac(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.key_bytes()) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this arm exists only because the API is fallible.
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example published with the Standard Webhooks spec's reference libraries.
    #[test]
    fn matches_the_reference_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verifies_what_it_signs_and_nothing_else() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let other = SigningSecret::generate();
        let (id, ts, body) = ("msg_1", 1_700_000_000, br#"{"a":1}"#.as_slice());
        let signature = sign(&secret, id, ts, body);
        let header = format!("v1,bm90IHRoaXMgb25l {signature}");
        let now = ts + 10;
        let both = [other.clone(), secret.clone()];
        let only = std::slice::from_ref(&secret);
        let check = |secrets: &[SigningSecret], ts: &str, body: &[u8], now| {
            verify(secrets, id, ts, &header, body, now)
        };
        assert_eq!(check(&both, "1700000000", body, now), Ok(()));
        assert_eq!(
            check(&[other], "1700000000", body, now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(only, "1700000000", b"{}", now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(only, "1700000001", body, now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(only, "soon", body, now),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            check(only, &i64::MIN.to_string(), body, now),
            Err(VerifyError::OutsideTolerance)
        );
        assert_eq!(
            check(only, "1700000000", body, ts + TIMESTAMP_TOLERANCE_S + 1),
            Err(VerifyError::OutsideTolerance)
        );
    }
}
