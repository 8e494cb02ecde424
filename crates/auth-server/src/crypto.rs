//! Randomness, hashing and the AES-256-GCM sealing of data at rest (aws-lc-rs throughout).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// `n` random bytes from the system CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // aws-lc's RNG fails only when the OS has no entropy source at all; a zeroed buffer
    // would be a disaster, so mix in a second source rather than ignore the error.
    if aws_lc_rs::rand::fill(&mut buf).is_err() {
        let mut h = Sha256::new();
        h.update(format!(
            "{:?}{:?}",
            std::time::SystemTime::now(),
            std::thread::current().id()
        ));
        let d = h.finalize();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = d[i % d.len()];
        }
    }
    buf
}

/// A random token: `prefix` followed by 32 random bytes in base64url (256 bits).
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes(32)))
}

/// SHA-256 of `input`, base64url without padding (how tokens and codes are stored).
pub fn sha256_b64(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
}

/// The storage key of a secret token: a domain-separated SHA-256, so the database never
/// holds a usable token.
pub fn token_hash(kind: &str, token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"layer-mcp-auth/");
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(token.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Constant-time equality of two byte strings (for CSRF tokens and client secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The AES-256-GCM key that seals Layer tokens and signing keys at rest.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the encryption key must be 32 bytes, given as base64 (44 characters) or hex (64)")]
    BadLength,
}

#[derive(Debug, thiserror::Error)]
#[error("sealed data could not be opened (wrong encryption key or corrupted data)")]
pub struct OpenError;

impl EncryptionKey {
    /// Parses a key from base64 (standard or url-safe) or hex.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| KeyError::BadLength)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| KeyError::BadLength)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadLength)?;
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&random_bytes(32));
        Self(key)
    }

    /// The key as standard base64 (for writing a generated key to its file).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always valid for AES-256-GCM.
        #[allow(clippy::expect_used)]
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES key"))
    }

    /// Encrypts `plaintext`; `context` (e.g. the grant id) is authenticated but not stored, so
    /// a sealed value copied to another row does not open there. Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(&random_bytes(NONCE_LEN));
        let mut in_out = plaintext.to_vec();
        let sealed = self.aead().seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(context.as_bytes()),
            &mut in_out,
        );
        if sealed.is_err() {
            // Sealing fails only for absurd lengths (> 64 GiB); never the case here.
            return Vec::new();
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&in_out);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut in_out = rest.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(***)")
    }
}

/// PKCE S256: base64url(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    sha256_b64(verifier.as_bytes())
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]` (same alphabet for the challenge).
pub fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_context() {
        let key = EncryptionKey::generate();
        let sealed = key.seal("grant:1", b"layer refresh token");
        assert!(!sealed.windows(5).any(|w| w == b"layer"));
        assert_eq!(
            key.open("grant:1", &sealed).unwrap(),
            b"layer refresh token"
        );
        assert!(key.open("grant:2", &sealed).is_err());
        assert!(EncryptionKey::generate().open("grant:1", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("grant:1", &tampered).is_err());
    }

    #[test]
    fn keys_parse_from_base64_and_hex_only_at_32_bytes() {
        let key = EncryptionKey::generate();
        let parsed = EncryptionKey::parse(&key.to_base64()).unwrap();
        assert_eq!(parsed.0, key.0);
        assert!(EncryptionKey::parse(&"ab".repeat(32)).is_ok());
        assert!(EncryptionKey::parse("c2hvcnQ=").is_err());
        assert_eq!(format!("{key:?}"), "EncryptionKey(***)");
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_string(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!is_pkce_string("short"));
        assert!(!is_pkce_string(&"a+".repeat(30)));
    }
}
