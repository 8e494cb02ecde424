//! ES256 JSON Web Tokens signed with a key derived from the simulator's seed, with the
//! `jsonwebtoken` crate on aws-lc-rs (the one crypto provider of the workspace).

use aws_lc_rs::agreement::{ECDH_P256, PrivateKey};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The IdP's signing key and its public half as a JWK.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
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
    /// The P-256 key for `seed` (the same seed gives the same key, so tokens outlive a
    /// restart): the first SHA-256 of the seed and a counter that is a valid private scalar.
    pub fn from_seed(seed: u64) -> Self {
        let mut counter = 0u32;
        loop {
            let digest = Sha256::new()
                .chain_update(b"layer-sim idp signing key")
                .chain_update(seed.to_be_bytes())
                .chain_update(counter.to_be_bytes())
                .finalize();
            if let Some(keys) = Self::from_scalar(&digest) {
                return keys;
            }
            counter += 1;
        }
    }

    fn from_scalar(scalar: &[u8]) -> Option<Self> {
        let point = PrivateKey::from_private_key(&ECDH_P256, scalar)
            .ok()?
            .compute_public_key()
            .ok()?;
        let pkcs8 = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            point.as_ref(),
        )
        .ok()?
        .to_pkcs8v1()
        .ok()?;
        let kid = format!(
            "sim-{}",
            &crate::ids::hex(&Sha256::digest(point.as_ref()))[..16]
        );
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).ok()?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).ok()?;
        Some(Self {
            encoding,
            decoding,
            jwk,
            kid,
        })
    }

    pub fn jwks(&self) -> Value {
        let set = JwkSet {
            keys: vec![self.jwk.clone()],
        };
        serde_json::to_value(set).unwrap_or_default()
    }

    /// A token with `claims`, signed. Signing with a key that parsed does not fail; if it
    /// did, the token is empty and every verifier refuses it.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not sign a token");
            String::new()
        })
    }

    /// Checks the header and signature and returns the claims; the caller checks the claims.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(JwtError::WrongKey);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        match jsonwebtoken::decode::<Value>(token, &self.decoding, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                Err(JwtError::BadSignature)
            }
            Err(_) => Err(JwtError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let keys = Keys::from_seed(1);
        let token = keys.sign(&json!({"sub": "u1"}));
        assert_eq!(keys.verify(&token).unwrap()["sub"], "u1");
        let tampered = token.replacen('.', ".e30", 1);
        assert!(keys.verify(&tampered).is_err());
        assert_eq!(Keys::from_seed(2).verify(&token), Err(JwtError::WrongKey));
    }

    #[test]
    fn the_seed_fixes_the_key() {
        assert_eq!(Keys::from_seed(7).jwks(), Keys::from_seed(7).jwks());
        assert_ne!(Keys::from_seed(7).jwks(), Keys::from_seed(8).jwks());
        let jwks = Keys::from_seed(7).jwks();
        let key = &jwks["keys"][0];
        assert_eq!(
            (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
            (
                &json!("EC"),
                &json!("P-256"),
                &json!("ES256"),
                &json!("sig")
            )
        );
    }
}
