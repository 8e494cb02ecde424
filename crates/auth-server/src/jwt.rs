//! JSON Web Tokens with the `jsonwebtoken` crate on its aws-lc-rs backend (the process's one
//! crypto provider): the gateway's ES256 access tokens, signed with a key ring that rotates,
//! and the identity provider's id tokens (RS256 or ES256, from its JWKS).
//!
//! The crate checks the algorithm against the one allowed, the signature, `iss` and `aud`.
//! Added here: a header naming a key source (`jku`, `x5u`, `jwk`, `x5c`) is refused, since keys
//! come only from our ring or the IdP's JWKS; the key is picked by `kid` and must fit the
//! algorithm (so `HS256` keyed with a public key is refused); `exp` (required) and `nbf` are
//! checked against the caller's clock, because the crate reads the system clock and key
//! rotation is verified against a given one.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::{Error as JoseError, ErrorKind};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use jsonwebtoken::jwk::{Jwk, JwkSet};

use crate::crypto::{EncryptionKey, random_bytes};
use crate::model::{SigningKeyRecord, UnixMillis};

/// Why a JWT was not accepted. The messages are safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token uses an unsupported algorithm")]
    Algorithm,
    #[error("the token names its own key source, which is not accepted")]
    KeySource,
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

/// The refusal a `jsonwebtoken` error stands for.
fn refusal(e: JoseError) -> JwtError {
    match e.kind() {
        ErrorKind::InvalidSignature => JwtError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => JwtError::Algorithm,
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            JwtError::UnknownKey
        }
        ErrorKind::InvalidIssuer => JwtError::Issuer,
        ErrorKind::InvalidAudience => JwtError::Audience,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) if c == "iss" => {
            JwtError::Issuer
        }
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) if c == "aud" => {
            JwtError::Audience
        }
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        _ => JwtError::Malformed,
    }
}

/// The JWK to verify a token with: the one named by `kid`, or with no `kid` the only key.
fn find_key<'a>(jwks: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
}

/// The token's header, its signature not yet checked. An `alg` the crate does not know
/// (`none` in any letter case among them) is an algorithm refusal; any other unreadable
/// header is a malformed token. A header naming where to fetch a key is refused.
fn header(token: &str) -> Result<Header, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        let alg = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
        match alg {
            Some(alg) if alg.parse::<Algorithm>().is_err() => JwtError::Algorithm,
            _ => JwtError::Malformed,
        }
    })?;
    if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some()
    {
        return Err(JwtError::KeySource);
    }
    Ok(header)
}

/// The claims of a JWT without any verification: only to route a token (is it one of ours?)
/// before verifying it properly.
pub fn peek_claims(token: &str) -> Option<Value> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)
        .ok()
        .filter(Value::is_object)
}

/// What the crate checks: the one algorithm allowed, `iss` and `aud` present and ours.
/// The clock is ours ([`check_time`]).
fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.required_spec_claims = ["iss", "aud"].map(String::from).into();
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v
}

/// Verifies the signature, `iss` and `aud` with `key`; returns the claims (a JSON object).
fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Value, JwtError> {
    let claims = jsonwebtoken::decode::<Value>(token, key, validation)
        .map_err(refusal)?
        .claims;
    if !claims.is_object() {
        return Err(JwtError::Malformed);
    }
    Ok(claims)
}

fn check_time(claims: &Value, now_secs: i64, leeway: i64) -> Result<(), JwtError> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(JwtError::Malformed)?;
    if exp.saturating_add(leeway) <= now_secs {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf.saturating_sub(leeway) > now_secs
    {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

/// The IdP's key for `alg`: ES256 with a P-256 key or RS256 with an RSA key; nothing else.
fn idp_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, JwtError> {
    match (alg, &jwk.algorithm) {
        (Algorithm::ES256, AlgorithmParameters::EllipticCurve(p))
            if p.curve == EllipticCurve::P256 => {}
        (Algorithm::RS256, AlgorithmParameters::RSA(_)) => {}
        (Algorithm::ES256 | Algorithm::RS256, _) => return Err(JwtError::UnknownKey),
        _ => return Err(JwtError::Algorithm),
    }
    DecodingKey::from_jwk(jwk).map_err(|_| JwtError::UnknownKey)
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
    let header = header(token)?;
    let jwk = find_key(jwks, header.kid.as_deref()).ok_or(JwtError::UnknownKey)?;
    let key = idp_key(jwk, header.alg)?;
    let claims = decode(token, &key, &validation(header.alg, issuer, client_id))?;
    // One issuer, as a string: the crate would also take a list that contains it.
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(JwtError::Issuer);
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
    encoding: EncodingKey,
    decoding: DecodingKey,
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
        let invalid = |_| KeyRingError::Invalid(record.kid.clone());
        let pkcs8 = key
            .open(
                &format!("signing-key:{}", record.kid),
                &record.sealed_private,
            )
            .map_err(|_| KeyRingError::Unseal(record.kid.clone()))?;
        let encoding = EncodingKey::from_ec_der(&pkcs8);
        // Reading the public half parses the PKCS#8 document: a bad key fails here.
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(invalid)?;
        jwk.common.key_id = Some(record.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(invalid)?;
        Ok(Self {
            kid: record.kid.clone(),
            encoding,
            decoding,
            jwk,
            retired_at: record.retired_at,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Published (and so accepted): active, or retired less than `keep_retired_ms` ago.
    fn published(&self, now: UnixMillis, keep_retired_ms: i64) -> bool {
        self.retired_at.is_none_or(|r| r + keep_retired_ms > now)
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
                .filter(|k| k.published(now, keep_retired_ms))
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// Kids of retired keys no token can need any more.
    pub fn expired_kids(&self, now: UnixMillis, keep_retired_ms: i64) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| !k.published(now, keep_retired_ms))
            .map(|k| k.kid.clone())
            .collect()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Signs access-token claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Option<String> {
        let key = self.active()?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).ok()
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
        let header = header(token)?;
        if header.alg != Algorithm::ES256 {
            return Err(JwtError::Algorithm);
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(JwtError::Malformed);
        }
        let kid = header.kid.as_deref().ok_or(JwtError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid && k.published(now, keep_retired_ms))
            .ok_or(JwtError::UnknownKey)?;
        let claims = decode(
            token,
            &key.decoding,
            &validation(Algorithm::ES256, issuer, audience),
        )?;
        let access: AccessClaims =
            serde_json::from_value(claims.clone()).map_err(|_| JwtError::Malformed)?;
        check_time(&claims, now / 1000, 0)?;
        Ok(access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    // Tokens below are put together by hand, as an attacker would, not with the crate.

    const ISS: &str = "https://gw.example";
    const AUD: &str = "https://gw.example/mcp";
    const NOW: i64 = 1_000_000_000_000;

    fn b64json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    /// `header.claims.signature`, signed over the first two parts by `sign`.
    fn jws(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64json(header), b64json(claims));
        let sig = sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Signs ES256 with the private half of `key` (its PKCS#8 document).
    fn es256(key: &SigningKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
        move |input| {
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.encoding.as_bytes())
                    .unwrap();
            pair.sign(&SystemRandom::new(), input)
                .unwrap()
                .as_ref()
                .to_vec()
        }
    }

    fn hs256(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
        move |input| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec()
        }
    }

    fn access_claims() -> Value {
        serde_json::to_value(claims(NOW / 1000 + 60)).unwrap()
    }

    fn ec_point(jwk: &Jwk) -> Vec<u8> {
        let AlgorithmParameters::EllipticCurve(p) = &jwk.algorithm else {
            panic!("not an EC key")
        };
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(&p.x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(&p.y).unwrap());
        point
    }

    #[test]
    fn access_tokens_refuse_every_forgery() {
        let enc = EncryptionKey::generate();
        let (ring, _) = ring(&enc);
        let key = ring.active().unwrap();
        let kid = key.kid().to_owned();
        let v = |t: &str| ring.verify(t, ISS, AUD, NOW, 0);
        let good_header = json!({"alg": "ES256", "typ": ACCESS_TOKEN_TYP, "kid": kid});
        // The hand-made token is accepted, so each refusal below is about its one change.
        let good = jws(&good_header, &access_claims(), es256(key));
        assert_eq!(v(&good).unwrap().sub, "user-1");

        // `alg: none`, in any letter case, with or without a signature.
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = json!({"alg": alg, "typ": ACCESS_TOKEN_TYP, "kid": kid});
            let unsigned = format!("{}.{}.", b64json(&h), b64json(&access_claims()));
            assert_eq!(v(&unsigned), Err(JwtError::Algorithm), "{alg}");
            assert_eq!(
                v(&jws(&h, &access_claims(), es256(key))),
                Err(JwtError::Algorithm)
            );
        }
        // HS256 keyed with our public key (the point, or the JWK as published).
        let h = json!({"alg": "HS256", "typ": ACCESS_TOKEN_TYP, "kid": kid});
        let point = ec_point(&key.jwk);
        let jwk_json = serde_json::to_vec(&key.jwk).unwrap();
        for secret in [&point[..], &point[1..], &jwk_json[..]] {
            assert_eq!(
                v(&jws(&h, &access_claims(), hs256(secret))),
                Err(JwtError::Algorithm)
            );
        }
        // Another ES algorithm name is refused too.
        let h = json!({"alg": "ES384", "typ": ACCESS_TOKEN_TYP, "kid": kid});
        assert_eq!(
            v(&jws(&h, &access_claims(), es256(key))),
            Err(JwtError::Algorithm)
        );
        // Unknown, missing and path-traversal `kid`.
        for bad_kid in [
            json!("nope"),
            json!("../../../etc/passwd"),
            json!(format!("{kid}/../{kid}")),
            Value::Null,
        ] {
            let h = json!({"alg": "ES256", "typ": ACCESS_TOKEN_TYP, "kid": bad_kid});
            assert_eq!(
                v(&jws(&h, &access_claims(), es256(key))),
                Err(JwtError::UnknownKey),
                "{bad_kid}"
            );
        }
        // A header that says where to fetch the key, even with a good signature and kid.
        for (name, value) in [
            ("jku", json!("https://evil.example/jwks.json")),
            ("x5u", json!("https://evil.example/cert.pem")),
            ("jwk", serde_json::to_value(&key.jwk).unwrap()),
            ("x5c", json!(["MIIB"])),
        ] {
            let mut h = good_header.clone();
            h[name] = value;
            assert_eq!(
                v(&jws(&h, &access_claims(), es256(key))),
                Err(JwtError::KeySource),
                "{name}"
            );
        }
        // Missing `typ`, or another one.
        for typ in [Value::Null, json!("JWT")] {
            let h = json!({"alg": "ES256", "typ": typ, "kid": kid});
            assert_eq!(
                v(&jws(&h, &access_claims(), es256(key))),
                Err(JwtError::Malformed)
            );
        }
        // Truncated or missing signature: cut by bytes, it no longer verifies; cut by
        // characters, it is not even base64url.
        let (input, sig) = good.rsplit_once('.').unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        for len in [63, 32, 1] {
            let cut = URL_SAFE_NO_PAD.encode(&bytes[..len]);
            assert_eq!(
                v(&format!("{input}.{cut}")),
                Err(JwtError::Signature),
                "{len}"
            );
        }
        // 85 characters (86 less one) are never valid base64url: a cut that lands on a valid
        // length would decode or not depending on the signature's last bits.
        assert_eq!(
            v(&format!("{input}.{}", &sig[..sig.len() - 1])),
            Err(JwtError::Malformed)
        );
        assert_eq!(v(&format!("{input}.")), Err(JwtError::Signature));
        assert_eq!(v(input), Err(JwtError::Malformed));
        // Claims: wrong `iss`, wrong `aud`, expired, not yet valid, no `exp`.
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = access_claims();
            f(&mut c);
            v(&jws(&good_header, &c, es256(key)))
        };
        assert_eq!(
            with(&|c| c["iss"] = json!("https://other")),
            Err(JwtError::Issuer)
        );
        assert_eq!(
            with(&|c| c["aud"] = json!("https://other/mcp")),
            Err(JwtError::Audience)
        );
        assert_eq!(
            with(&|c| c["exp"] = json!(NOW / 1000)),
            Err(JwtError::Expired)
        );
        assert_eq!(
            with(&|c| c["nbf"] = json!(NOW / 1000 + 1)),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(JwtError::Malformed)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            Err(JwtError::Issuer)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            Err(JwtError::Audience)
        );
        // Garbage.
        for junk in ["", "a.b", "a.b.c", "a.b.c.d", "not.a.jwt"] {
            assert!(v(junk).is_err(), "{junk}");
        }
    }

    /// An IdP with one ES256 key and one RS256 key in its JWKS.
    struct Idp {
        ec: SigningKey,
        rsa: aws_lc_rs::signature::RsaKeyPair,
        jwks: JwkSet,
    }

    const IDP: &str = "https://idp.example/";
    const CLIENT: &str = "gateway-client";

    impl Idp {
        fn new() -> Self {
            let enc = EncryptionKey::generate();
            let (ec, _) = SigningKey::generate(&enc, 0).unwrap();
            let rsa = aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .unwrap();
            let parts = aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(
                aws_lc_rs::signature::KeyPair::public_key(&rsa),
            );
            let rsa_jwk: Jwk = serde_json::from_value(json!({
                "kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(&parts.n), "e": URL_SAFE_NO_PAD.encode(&parts.e),
            }))
            .unwrap();
            let mut ec_jwk = ec.jwk.clone();
            ec_jwk.common.key_id = Some("ec-1".into());
            Self {
                ec,
                rsa,
                jwks: JwkSet {
                    keys: vec![ec_jwk, rsa_jwk],
                },
            }
        }

        fn rs256(&self) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
            move |input| {
                let mut sig = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(
                        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        input,
                        &mut sig,
                    )
                    .unwrap();
                sig
            }
        }

        fn verify(&self, token: &str) -> Result<Value, JwtError> {
            verify_id_token(token, &self.jwks, IDP, CLIENT, "n0nce", NOW / 1000)
        }
    }

    fn id_claims() -> Value {
        json!({"iss": IDP, "sub": "auth0|alice", "aud": CLIENT, "exp": NOW / 1000 + 600,
               "iat": NOW / 1000, "nonce": "n0nce"})
    }

    #[test]
    fn id_tokens_are_checked_against_the_idp_keys() {
        let idp = Idp::new();
        let es = json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"});
        let rs = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"});
        assert_eq!(
            idp.verify(&jws(&es, &id_claims(), es256(&idp.ec))).unwrap()["sub"],
            "auth0|alice"
        );
        assert_eq!(
            idp.verify(&jws(&rs, &id_claims(), idp.rs256())).unwrap()["sub"],
            "auth0|alice"
        );
        // `aud` may be a list that contains our client id.
        let mut c = id_claims();
        c["aud"] = json!(["someone-else", CLIENT]);
        assert!(idp.verify(&jws(&rs, &c, idp.rs256())).is_ok());
        // No kid: only when the set has a single key.
        let no_kid = json!({"alg": "RS256"});
        assert_eq!(
            idp.verify(&jws(&no_kid, &id_claims(), idp.rs256())),
            Err(JwtError::UnknownKey)
        );
        let single = JwkSet {
            keys: vec![idp.jwks.keys[1].clone()],
        };
        assert!(
            verify_id_token(
                &jws(&no_kid, &id_claims(), idp.rs256()),
                &single,
                IDP,
                CLIENT,
                "n0nce",
                NOW / 1000
            )
            .is_ok()
        );
        // An algorithm that does not fit the key named.
        let mismatched = json!({"alg": "RS256", "kid": "ec-1"});
        assert_eq!(
            idp.verify(&jws(&mismatched, &id_claims(), idp.rs256())),
            Err(JwtError::UnknownKey)
        );
    }

    #[test]
    fn id_tokens_refuse_every_forgery() {
        let idp = Idp::new();
        let es = json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"});
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = json!({"alg": alg, "kid": "ec-1"});
            let unsigned = format!("{}.{}.", b64json(&h), b64json(&id_claims()));
            assert_eq!(idp.verify(&unsigned), Err(JwtError::Algorithm), "{alg}");
        }
        // HS256 keyed with the IdP's public keys, as published.
        for kid in ["ec-1", "rsa-1"] {
            let h = json!({"alg": "HS256", "kid": kid});
            let jwk = idp.jwks.find(kid).unwrap();
            let mut secrets = vec![serde_json::to_vec(jwk).unwrap()];
            if kid == "ec-1" {
                secrets.push(ec_point(jwk));
            } else if let AlgorithmParameters::RSA(p) = &jwk.algorithm {
                secrets.push(URL_SAFE_NO_PAD.decode(&p.n).unwrap());
            }
            for secret in &secrets {
                assert_eq!(
                    idp.verify(&jws(&h, &id_claims(), hs256(secret))),
                    Err(JwtError::Algorithm)
                );
            }
        }
        for bad_kid in ["nope", "../../../etc/passwd", "ec-1/../rsa-1"] {
            let h = json!({"alg": "ES256", "kid": bad_kid});
            assert_eq!(
                idp.verify(&jws(&h, &id_claims(), es256(&idp.ec))),
                Err(JwtError::UnknownKey)
            );
        }
        for (name, value) in [
            ("jku", json!("https://evil.example/jwks.json")),
            ("x5u", json!("https://evil.example/cert.pem")),
        ] {
            let mut h = es.clone();
            h[name] = value;
            assert_eq!(
                idp.verify(&jws(&h, &id_claims(), es256(&idp.ec))),
                Err(JwtError::KeySource)
            );
        }
        let good = jws(&es, &id_claims(), es256(&idp.ec));
        let (input, sig) = good.rsplit_once('.').unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let cut = URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1]);
        assert_eq!(
            idp.verify(&format!("{input}.{cut}")),
            Err(JwtError::Signature)
        );
        assert_eq!(idp.verify(&format!("{input}.")), Err(JwtError::Signature));
        assert_eq!(
            idp.verify(&format!("{input}.{}", &sig[..sig.len() - 1])),
            Err(JwtError::Malformed)
        );
        // Signed by the right kind of key, but not the IdP's.
        let (stranger, _) = SigningKey::generate(&EncryptionKey::generate(), 0).unwrap();
        assert_eq!(
            idp.verify(&jws(&es, &id_claims(), es256(&stranger))),
            Err(JwtError::Signature)
        );
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = id_claims();
            f(&mut c);
            idp.verify(&jws(&es, &c, es256(&idp.ec)))
        };
        let now = NOW / 1000;
        assert_eq!(
            with(&|c| c["iss"] = json!("https://other/")),
            Err(JwtError::Issuer)
        );
        assert_eq!(with(&|c| c["iss"] = json!([IDP])), Err(JwtError::Issuer));
        assert_eq!(
            with(&|c| c["aud"] = json!("someone-else")),
            Err(JwtError::Audience)
        );
        assert_eq!(
            with(&|c| c["aud"] = json!(["someone-else"])),
            Err(JwtError::Audience)
        );
        // 60 s of leeway for the IdP's clock, and not a second more.
        assert!(with(&|c| c["exp"] = json!(now - 59)).is_ok());
        assert_eq!(
            with(&|c| c["exp"] = json!(now - 60)),
            Err(JwtError::Expired)
        );
        assert!(with(&|c| c["nbf"] = json!(now + 60)).is_ok());
        assert_eq!(
            with(&|c| c["nbf"] = json!(now + 61)),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(JwtError::Malformed)
        );
        assert_eq!(with(&|c| c["nonce"] = json!("other")), Err(JwtError::Nonce));
    }
}
