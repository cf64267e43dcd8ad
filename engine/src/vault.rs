//! Sealing endpoint signing secrets at rest with AES-256-GCM under a master key.
//!
//! A sealed value reads `hk1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`; the key id (the first
//! 8 hex digits of the key's SHA-256) says which master key opens it, so keys can be rotated: the
//! current key seals, previous keys still open, and `hookd secrets reseal` moves every value to
//! the current key. The endpoint id is authenticated with each value, so a sealed secret copied to
//! another endpoint's row does not open.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngExt as _;
use sha2::{Digest, Sha256};

const PREFIX: &str = "hk1:";
const NONCE_BYTES: usize = 12;

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("a master key must be the standard base64 of exactly 32 bytes")]
    BadKey,
    #[error("the value is not sealed by hookd")]
    NotSealed,
    #[error("the value is sealed with master key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the sealed value does not open (corrupt, or moved from another row)")]
    Corrupt,
}

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured master keys: one that seals, any number that still open.
#[derive(Clone)]
pub struct Vault {
    current: Arc<MasterKey>,
    previous: Vec<Arc<MasterKey>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn master_key(text: &str) -> Result<MasterKey, VaultError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| VaultError::BadKey)?;
    if bytes.len() != 32 {
        return Err(VaultError::BadKey);
    }
    let digest = Sha256::digest(&bytes);
    let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| VaultError::BadKey)?;
    Ok(MasterKey { id, cipher })
}

impl Vault {
    /// A fresh master key, base64.
    pub fn generate_key() -> String {
        let bytes: [u8; 32] = rand::rng().random();
        STANDARD.encode(bytes)
    }

    pub fn new(current: &str, previous: &[&str]) -> Result<Self, VaultError> {
        Ok(Self {
            current: Arc::new(master_key(current)?),
            previous: previous
                .iter()
                .map(|k| master_key(k).map(Arc::new))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for the row identified by `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> String {
        let nonce: [u8; NONCE_BYTES] = rand::rng().random();
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        // AES-GCM encryption fails only for inputs of gigabytes.
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.current.id, STANDARD.encode(bytes))
    }

    /// Opens a value sealed (with any configured key) for the row identified by `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, VaultError> {
        let rest = sealed.strip_prefix(PREFIX).ok_or(VaultError::NotSealed)?;
        let (key_id, data) = rest.split_once(':').ok_or(VaultError::NotSealed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let bytes = STANDARD.decode(data).map_err(|_| VaultError::Corrupt)?;
        if bytes.len() < NONCE_BYTES {
            return Err(VaultError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        key.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| VaultError::Corrupt)
    }

    /// Whether a value is sealed with the current key (nothing to reseal).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rotates() {
        let old_key = Vault::generate_key();
        let new_key = Vault::generate_key();
        let old = Vault::new(&old_key, &[]).unwrap();
        let sealed = old.seal(b"whsec_secret", b"ep_1");
        assert!(sealed.starts_with("hk1:") && !sealed.contains("secret"));
        assert_eq!(old.open(&sealed, b"ep_1").unwrap(), b"whsec_secret");
        assert_eq!(old.open(&sealed, b"ep_2"), Err(VaultError::Corrupt));

        let rotated = Vault::new(&new_key, &[&old_key]).unwrap();
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(&sealed, b"ep_1").unwrap(), b"whsec_secret");
        let resealed = rotated.seal(b"whsec_secret", b"ep_1");
        assert!(rotated.is_current(&resealed));
        let new_only = Vault::new(&new_key, &[]).unwrap();
        assert!(matches!(
            new_only.open(&sealed, b"ep_1"),
            Err(VaultError::UnknownKey(_))
        ));
        assert_eq!(new_only.open(&resealed, b"ep_1").unwrap(), b"whsec_secret");
    }

    #[test]
    fn refuses_bad_keys_and_values() {
        assert_eq!(Vault::new("short", &[]).unwrap_err(), VaultError::BadKey);
        let key = Vault::generate_key();
        let vault = Vault::new(&key, &[]).unwrap();
        let shown = format!("{vault:?}");
        assert!(shown.contains(vault.current_key_id()) && !shown.contains(&key));
        assert_eq!(vault.open("whsec_plain", b""), Err(VaultError::NotSealed));
        let sealed = vault.seal(b"x", b"");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(vault.open(&tampered, b""), Err(VaultError::Corrupt));
    }
}
