//! JSON Web Tokens: the gateway's ES256 access tokens (signed with a key ring that rotates)
//! and verification of the identity provider's id tokens (RS256 or ES256, from its JWKS).
//! Written against aws-lc-rs directly: the handful of JOSE operations needed here are small,
//! and one crypto provider for the process avoids global provider selection.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::{EncryptionKey, random_bytes};
use crate::model::{SigningKeyRecord, UnixMillis};

/// Why a JWT was not accepted. The messages are safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token uses an unsupported algorithm")]
    Algorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's nonce does not match the login")]
    Nonce,
}

/// A JSON Web Key (public part only): EC P-256 or RSA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    pub fn find(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            // No kid: acceptable only when the set has a single key.
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
}

/// A JWT split into its parts, signature not yet checked.
struct Parts<'a> {
    header: Header,
    claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let mut it = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::Malformed)?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|_| JwtError::Malformed)?;
    if !claims.is_object() {
        return Err(JwtError::Malformed);
    }
    Ok(Parts {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature: decode(s)?,
    })
}

/// The claims of a JWT without any verification: only to route a token (is it one of ours?)
/// before verifying it properly.
pub fn peek_claims(token: &str) -> Option<Value> {
    split(token).ok().map(|p| p.claims)
}

fn verify_with_jwk(jwk: &Jwk, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), JwtError> {
    let b64 = |v: &Option<String>| {
        v.as_deref()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or(JwtError::UnknownKey)
    };
    match (alg, jwk.kty.as_str()) {
        ("ES256", "EC") if jwk.crv.as_deref() == Some("P-256") => {
            let mut point = vec![4u8];
            point.extend(b64(&jwk.x)?);
            point.extend(b64(&jwk.y)?);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input, sig)
                .map_err(|_| JwtError::Signature)
        }
        ("RS256", "RSA") => {
            let n = b64(&jwk.n)?;
            let e = b64(&jwk.e)?;
            RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, input, sig)
            .map_err(|_| JwtError::Signature)
        }
        ("ES256" | "RS256", _) => Err(JwtError::UnknownKey),
        _ => Err(JwtError::Algorithm),
    }
}

fn check_time(claims: &Value, now_secs: i64, leeway: i64) -> Result<(), JwtError> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(JwtError::Malformed)?;
    if exp + leeway <= now_secs {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf - leeway > now_secs
    {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

fn audience_contains(claims: &Value, expected: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected)),
        _ => false,
    }
}

/// Verifies an id token from the identity provider: signature against its JWKS, `iss`,
/// `aud` containing our client id, `exp`, and the `nonce` of this login. Returns its claims.
pub fn verify_id_token(
    token: &str,
    jwks: &JwkSet,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now_secs: i64,
) -> Result<Value, JwtError> {
    let parts = split(token)?;
    let jwk = jwks
        .find(parts.header.kid.as_deref())
        .ok_or(JwtError::UnknownKey)?;
    verify_with_jwk(
        jwk,
        &parts.header.alg,
        parts.signing_input.as_bytes(),
        &parts.signature,
    )?;
    let claims = parts.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(JwtError::Issuer);
    }
    if !audience_contains(&claims, client_id) {
        return Err(JwtError::Audience);
    }
    check_time(&claims, now_secs, 60)?;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(JwtError::Nonce);
    }
    Ok(claims)
}

/// The claims of the gateway's access tokens (RFC 9068 profile, plus the grant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The grant the token was issued from: revoking it stops the token at once.
    pub grant_id: String,
}

/// The media type in the header of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// One signing key, private part unsealed in memory.
pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    jwk: Jwk,
    retired_at: Option<UnixMillis>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("signing key {0} cannot be opened with the configured encryption key")]
    Unseal(String),
    #[error("signing key {0} is not a valid P-256 key")]
    Invalid(String),
    #[error("could not generate a signing key")]
    Generate,
}

impl SigningKey {
    /// A new P-256 key and its sealed record.
    pub fn generate(
        key: &EncryptionKey,
        now: UnixMillis,
    ) -> Result<(SigningKey, SigningKeyRecord), KeyRingError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyRingError::Generate)?;
        let kid = URL_SAFE_NO_PAD.encode(random_bytes(12));
        let record = SigningKeyRecord {
            sealed_private: key.seal(&format!("signing-key:{kid}"), pkcs8.as_ref()),
            kid,
            created_at: now,
            retired_at: None,
        };
        let signing = SigningKey::open(key, &record)?;
        Ok((signing, record))
    }

    /// Unseals a stored key.
    pub fn open(key: &EncryptionKey, record: &SigningKeyRecord) -> Result<Self, KeyRingError> {
        let pkcs8 = key
            .open(
                &format!("signing-key:{}", record.kid),
                &record.sealed_private,
            )
            .map_err(|_| KeyRingError::Unseal(record.kid.clone()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| KeyRingError::Invalid(record.kid.clone()))?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(KeyRingError::Invalid(record.kid.clone()));
        }
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some(record.kid.clone()),
            use_: Some("sig".into()),
            alg: Some("ES256".into()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
            n: None,
            e: None,
        };
        Ok(Self {
            kid: record.kid.clone(),
            pair,
            jwk,
            retired_at: record.retired_at,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The keys in use: one active key signs; retired keys still verify until every token they
/// signed has expired, and stay in the JWKS that long.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// Builds the ring from stored records. The newest unretired key signs.
    pub fn from_records(
        key: &EncryptionKey,
        records: &[SigningKeyRecord],
    ) -> Result<Self, KeyRingError> {
        let mut keys = records
            .iter()
            .map(|r| SigningKey::open(key, r))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|k| k.retired_at.is_none());
        Ok(Self { keys })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> Option<&SigningKey> {
        self.keys.iter().rev().find(|k| k.retired_at.is_none())
    }

    /// The public keys to publish: the active one and those retired less than
    /// `keep_retired_ms` ago.
    pub fn jwks(&self, now: UnixMillis, keep_retired_ms: i64) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter(|k| k.retired_at.is_none_or(|r| r + keep_retired_ms > now))
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// Kids of retired keys no token can need any more.
    pub fn expired_kids(&self, now: UnixMillis, keep_retired_ms: i64) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.retired_at.is_some_and(|r| r + keep_retired_ms <= now))
            .map(|k| k.kid.clone())
            .collect()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Signs access-token claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Option<String> {
        let key = self.active()?;
        let header = serde_json::json!({"alg": "ES256", "typ": ACCESS_TOKEN_TYP, "kid": key.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?)
        );
        let sig = key.pair.sign(&SystemRandom::new(), input.as_bytes()).ok()?;
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// Verifies one of our access tokens: signature by a published key, `typ`, `iss`, `aud`,
    /// `exp`. (Whether its grant is still live is the caller's check.)
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: UnixMillis,
        keep_retired_ms: i64,
    ) -> Result<AccessClaims, JwtError> {
        let parts = split(token)?;
        if parts.header.alg != "ES256" {
            return Err(JwtError::Algorithm);
        }
        if parts.header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(JwtError::Malformed);
        }
        let kid = parts.header.kid.as_deref().ok_or(JwtError::UnknownKey)?;
        let jwks = self.jwks(now, keep_retired_ms);
        let jwk = jwks.find(Some(kid)).ok_or(JwtError::UnknownKey)?;
        verify_with_jwk(
            jwk,
            "ES256",
            parts.signing_input.as_bytes(),
            &parts.signature,
        )?;
        let claims: AccessClaims =
            serde_json::from_value(parts.claims.clone()).map_err(|_| JwtError::Malformed)?;
        if claims.iss != issuer {
            return Err(JwtError::Issuer);
        }
        if claims.aud != audience {
            return Err(JwtError::Audience);
        }
        check_time(&parts.claims, now / 1000, 0)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://gw.example".into(),
            sub: "user-1".into(),
            aud: "https://gw.example/mcp".into(),
            exp,
            iat: exp - 3600,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "layer".into(),
            grant_id: "g".into(),
        }
    }

    fn ring(key: &EncryptionKey) -> (KeyRing, Vec<SigningKeyRecord>) {
        let (_, record) = SigningKey::generate(key, 0).unwrap();
        let records = vec![record];
        (KeyRing::from_records(key, &records).unwrap(), records)
    }

    #[test]
    fn signs_and_verifies() {
        let key = EncryptionKey::generate();
        let (ring, _) = ring(&key);
        let now = 1_000_000_000_000;
        let token = ring.sign(&claims(now / 1000 + 60)).unwrap();
        let got = ring
            .verify(
                &token,
                "https://gw.example",
                "https://gw.example/mcp",
                now,
                0,
            )
            .unwrap();
        assert_eq!(got.sub, "user-1");
        let v = |t: &str, iss: &str, aud: &str, now: i64| ring.verify(t, iss, aud, now, 0);
        assert_eq!(
            v(&token, "https://other", "https://gw.example/mcp", now),
            Err(JwtError::Issuer)
        );
        assert_eq!(
            v(&token, "https://gw.example", "https://other/mcp", now),
            Err(JwtError::Audience)
        );
        assert_eq!(
            v(
                &token,
                "https://gw.example",
                "https://gw.example/mcp",
                now + 61_000
            ),
            Err(JwtError::Expired)
        );
        // Tampered claims.
        let mut pieces: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c = claims(now / 1000 + 60);
        c.sub = "admin".into();
        pieces[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(
            v(
                &pieces.join("."),
                "https://gw.example",
                "https://gw.example/mcp",
                now
            ),
            Err(JwtError::Signature)
        );
        // Signed by another key with the same kid layout.
        let (other, _) = super::tests::ring(&key);
        let foreign = other.sign(&claims(now / 1000 + 60)).unwrap();
        assert_eq!(
            v(
                &foreign,
                "https://gw.example",
                "https://gw.example/mcp",
                now
            ),
            Err(JwtError::UnknownKey)
        );
    }

    #[test]
    fn retired_keys_verify_until_their_tokens_expire() {
        let key = EncryptionKey::generate();
        let (old, mut old_record) = SigningKey::generate(&key, 0).unwrap();
        let token = KeyRing::from_records(&key, std::slice::from_ref(&old_record))
            .unwrap()
            .sign(&claims(10_000))
            .unwrap();
        let (_, new_record) = SigningKey::generate(&key, 1000).unwrap();
        old_record.retired_at = Some(2000);
        let ring = KeyRing::from_records(&key, &[old_record, new_record.clone()]).unwrap();
        assert_eq!(ring.active().unwrap().kid(), new_record.kid);
        assert_eq!(ring.jwks(3000, 3_600_000).keys.len(), 2);
        assert!(
            ring.verify(
                &token,
                "https://gw.example",
                "https://gw.example/mcp",
                3000,
                3_600_000
            )
            .is_ok()
        );
        assert_eq!(ring.jwks(2000 + 3_600_000, 3_600_000).keys.len(), 1);
        assert_eq!(
            ring.expired_kids(2000 + 3_600_000, 3_600_000),
            vec![old.kid().to_owned()]
        );
    }
}
