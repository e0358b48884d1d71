//! The secret: a file of at least [`MIN_KEY_BYTES`] random bytes, from which the two keys are
//! derived (HMAC-SHA-256 of a label under the whole file as key), so a longer file is used
//! whole and neither derived key tells anything about the other.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::AnonymizeError;

/// The shortest key file accepted: 256 bits.
pub const MIN_KEY_BYTES: usize = 32;

/// The derived keys: one for Crypto-PAn (16 bytes of AES key, 16 of pad), one for names.
#[derive(Clone)]
pub struct Key {
    pub(crate) cryptopan: [u8; 32],
    pub(crate) names: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(label.as_bytes());
    m.finalize().into_bytes().into()
}

impl Key {
    /// The keys of `secret`; `None` when it is shorter than [`MIN_KEY_BYTES`].
    pub fn from_secret(secret: &[u8]) -> Option<Key> {
        (secret.len() >= MIN_KEY_BYTES).then(|| Key {
            cryptopan: derive(secret, "gespann anonymize v1: crypto-pan"),
            names: derive(secret, "gespann anonymize v1: names"),
        })
    }

    /// Reads a key file (raw bytes, not text: every byte counts).
    pub fn from_file(path: &Path) -> Result<Key, AnonymizeError> {
        let secret = std::fs::read(path).map_err(|source| AnonymizeError::KeyRead { path: path.to_owned(), source })?;
        Key::from_secret(&secret).ok_or(AnonymizeError::KeyTooShort {
            path: path.to_owned(),
            len: secret.len(),
            min: MIN_KEY_BYTES,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_is_refused_and_the_two_keys_differ() {
        assert!(Key::from_secret(&[7; 31]).is_none());
        let k = Key::from_secret(&[7; 32]).unwrap();
        assert_ne!(k.cryptopan, k.names);
        assert_eq!(k.cryptopan, Key::from_secret(&[7; 32]).unwrap().cryptopan);
        // Every byte of a longer file counts.
        let mut long = vec![7; 64];
        assert_eq!(Key::from_secret(&long).unwrap().names, Key::from_secret(&long).unwrap().names);
        let before = Key::from_secret(&long).unwrap().names;
        long[63] = 8;
        assert_ne!(Key::from_secret(&long).unwrap().names, before);
    }

    #[test]
    fn key_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let e = Key::from_file(&missing).unwrap_err();
        assert!(matches!(e, AnonymizeError::KeyRead { .. }) && e.to_string().contains("missing.key"), "{e}");
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").unwrap();
        let e = Key::from_file(&short).unwrap_err().to_string();
        assert!(e.contains("short.key") && e.contains("9 bytes") && e.contains("/dev/urandom"), "{e}");
    }
}
