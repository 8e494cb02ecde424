//! ES256 JSON Web Tokens signed with a key derived from the simulator's seed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The IdP's signing key and its public half as a JWK.
pub struct Keys {
    signing: SigningKey,
    verifying: VerifyingKey,
    kid: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    WrongKey,
    BadSignature,
}

impl Keys {
    pub fn from_seed(seed: u64) -> Self {
        let mut counter = 0u32;
        let signing = loop {
            let digest = Sha256::new()
                .chain_update(b"layer-sim idp signing key")
                .chain_update(seed.to_be_bytes())
                .chain_update(counter.to_be_bytes())
                .finalize();
            if let Ok(key) = SigningKey::from_slice(&digest) {
                break key;
            }
            counter += 1;
        };
        let verifying = *signing.verifying_key();
        let point = verifying.to_encoded_point(false);
        let thumb = Sha256::digest(point.as_bytes());
        let kid = format!("sim-{}", &crate::ids::hex(&thumb)[..16]);
        Self {
            signing,
            verifying,
            kid,
        }
    }

    pub fn jwks(&self) -> Value {
        let point = self.verifying.to_encoded_point(false);
        let x = point.x().map(|x| B64.encode(x)).unwrap_or_default();
        let y = point.y().map(|y| B64.encode(y)).unwrap_or_default();
        json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": x,
                "y": y,
                "use": "sig",
                "alg": "ES256",
                "kid": self.kid,
            }]
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }

    /// Checks the header and signature and returns the claims; the caller checks the claims.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header["alg"] != "ES256" || header["kid"] != self.kid.as_str() {
            return Err(JwtError::WrongKey);
        }
        let sig_bytes = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let signature = Signature::from_slice(&sig_bytes).map_err(|_| JwtError::Malformed)?;
        self.verifying
            .verify(format!("{h}.{c}").as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        B64.decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let keys = Keys::from_seed(1);
        let token = keys.sign(&json!({"sub": "u1"}));
        assert_eq!(keys.verify(&token).unwrap()["sub"], "u1");
        let tampered = token.replacen('.', ".e30", 1);
        assert!(keys.verify(&tampered).is_err());
        assert_eq!(Keys::from_seed(2).verify(&token), Err(JwtError::WrongKey));
    }
}
