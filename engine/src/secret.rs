//! Secrets that never print themselves: endpoint signing secrets (`whsec_…`) and app API keys.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngExt as _;
use sha2::{Digest, Sha256};

/// Endpoint signing secrets carry this prefix, as the Standard Webhooks spec names it.
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";

/// A secret that is not a valid `whsec_` signing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretParseError {
    #[error("a signing secret must start with `whsec_`")]
    MissingPrefix,
    #[error("the part after `whsec_` must be standard base64")]
    NotBase64,
    #[error("a signing secret must hold between 24 and 64 bytes of key material (got {0})")]
    BadLength(usize),
}

/// The key an endpoint's webhooks are signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// A fresh random secret of 32 bytes.
    pub fn generate() -> Self {
        let key: [u8; 32] = rand::rng().random();
        Self { key: key.to_vec() }
    }

    pub fn parse(text: &str) -> Result<Self, SecretParseError> {
        let encoded = text
            .strip_prefix(SIGNING_SECRET_PREFIX)
            .ok_or(SecretParseError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretParseError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretParseError::BadLength(key.len()));
        }
        Ok(Self { key })
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// The `whsec_…` form, for the one response that shows it and for storage.
    pub fn expose(&self) -> String {
        format!("{SIGNING_SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// An app's bearer credential. Only its SHA-256 is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    const PREFIX: &'static str = "hk_";

    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        let mut text = String::with_capacity(Self::PREFIX.len() + 64);
        text.push_str(Self::PREFIX);
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Self(text)
    }

    /// Wraps a presented credential; any string may be presented, only the hash lookup decides.
    pub fn presented(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters: enough to tell keys apart, useless to an attacker.
    pub fn hint(&self) -> String {
        let start = self.0.len().saturating_sub(4);
        self.0.get(start..).unwrap_or_default().to_owned()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_secret_round_trips_and_hides_itself() {
        let secret = SigningSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text), Ok(secret.clone()));
        assert!(!format!("{secret:?}").contains(&text[6..]));
    }

    #[test]
    fn signing_secret_refuses_bad_input() {
        assert_eq!(
            SigningSecret::parse("abc"),
            Err(SecretParseError::MissingPrefix)
        );
        assert_eq!(
            SigningSecret::parse("whsec_!!!"),
            Err(SecretParseError::NotBase64)
        );
        assert_eq!(
            SigningSecret::parse("whsec_c2hvcnQ="),
            Err(SecretParseError::BadLength(5))
        );
    }

    #[test]
    fn api_keys_differ_and_hash_stably() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), ApiKey::presented(a.expose()).hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
