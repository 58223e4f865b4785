//! Every token this service signs and checks itself, and the keys they are signed with,
//! each derived from `APP_SECRET` with HKDF-SHA256 under its own name (so one kind of
//! token can never stand for another):
//! - [`order`]: the `key` that names an order in the URLs given to KOMOJU and Cafe24
//!   (PROTOCOL.md §6.1), audience `cafe24-komoju/order`;
//! - [`operator`]: the operator API's bearer token, audience `cafe24-komoju/operator`;
//! - [`session`]: the settings site's session cookie and its CSRF tokens (§12), audience
//!   `cafe24-komoju/merchant`;
//! - [`form_key`]: the key of external checkout's review-page form token.
//!
//! All three tokens are HS256 JWTs made by one holder, [`Hs256`]: the algorithm pinned,
//! audience and issuer checked, expiry required and checked against the time the caller
//! gives (the service clock, so tests can expire tokens). A token carries identifiers,
//! never a secret. This module does no I/O and knows no use case.

pub mod operator;
pub mod order;
pub mod session;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The issuer of every token.
const ISSUER: &str = "cafe24-komoju";
/// Longest token read, in bytes; longer ones are refused unread.
const MAX_TOKEN_LEN: usize = 4096;

/// Why a token was refused. Says nothing about the expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not one of ours: malformed, another key, another audience or issuer, another
    /// algorithm, no expiry, or edited claims.
    #[error("token is not valid")]
    Invalid,
    /// Ours, but past its expiry.
    #[error("token has expired")]
    Expired,
}

/// A token could not be signed (the JWT library refused): nothing is handed out rather
/// than an empty token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token could not be signed")]
pub struct SignError;

/// The registered claims around a token's own claims `C`.
#[derive(Serialize, Deserialize)]
struct Envelope<C> {
    aud: String,
    iss: String,
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    claims: C,
}

/// An HS256 key for one audience: signs and checks the tokens of one kind.
#[derive(Clone)]
pub struct Hs256 {
    audience: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Hs256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hs256({})", self.audience)
    }
}

impl Hs256 {
    /// The key derived from `app_secret` under `info` (e.g.
    /// `cafe24-komoju/order-key/v1`), for tokens of `audience`.
    pub fn new(app_secret: &SecretString, info: &str, audience: &'static str) -> Hs256 {
        let key = crate::secrets::derive_key(app_secret, info);
        Hs256 {
            audience,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    /// A compact JWT of `claims`, issued at `now` (Unix seconds), valid `ttl_secs`.
    pub fn sign<C: Serialize>(
        &self,
        claims: C,
        now: i64,
        ttl_secs: i64,
    ) -> Result<String, SignError> {
        let envelope = Envelope {
            aud: self.audience.to_owned(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            claims,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &envelope, &self.encoding)
            .map_err(|_| SignError)
    }

    /// The claims of `token` at `now` (Unix seconds): HS256 only, this audience and
    /// issuer, an expiry after `now`.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, now: i64) -> Result<C, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let envelope =
            jsonwebtoken::decode::<Envelope<C>>(token, &self.decoding, &validation(self.audience))
                .map_err(|_| TokenError::Invalid)?
                .claims;
        if envelope.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(envelope.claims)
    }
}

/// HS256 only, `audience` and the issuer required, `exp` required; the expiry itself is
/// checked by [`Hs256::verify`] against the caller's clock, not the system's.
fn validation(audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[audience]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    v.validate_exp = false;
    v.leeway = 0;
    v
}

/// The key of external checkout's review-page form token (HKDF info
/// `cafe24-komoju/review-form/v1`).
pub fn form_key(app_secret: &SecretString) -> [u8; 32] {
    crate::secrets::derive_key(app_secret, "cafe24-komoju/review-form/v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Name {
        name: String,
    }

    fn key(audience: &'static str) -> Hs256 {
        Hs256::new(
            &SecretString::from("an-app-secret-of-at-least-32-bytes!!".to_owned()),
            "test/v1",
            audience,
        )
    }

    fn name() -> Name {
        Name { name: "a".into() }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let k = key("aud");
        let t = k.sign(name(), 1_000, 60).unwrap_or_default();
        assert_eq!(k.verify::<Name>(&t, 1_059), Ok(name()));
        assert_eq!(k.verify::<Name>(&t, 1_060), Err(TokenError::Expired));
    }

    #[test]
    fn another_audience_key_algorithm_or_edit_is_invalid() {
        let k = key("aud");
        let t = k.sign(name(), 1_000, 60).unwrap_or_default();
        assert_eq!(
            key("other").verify::<Name>(&t, 1_001),
            Err(TokenError::Invalid)
        );
        let other_key = Hs256::new(
            &SecretString::from("another-secret-of-at-least-32-bytes!".to_owned()),
            "test/v1",
            "aud",
        );
        assert_eq!(
            other_key.verify::<Name>(&t, 1_001),
            Err(TokenError::Invalid)
        );
        let parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            k.verify::<Name>(&format!("{none}.{}.", parts[1]), 1_001),
            Err(TokenError::Invalid)
        );
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
            .unwrap_or_default()
            .replace("\"a\"", "\"b\"");
        let edited = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload),
            parts[2]
        );
        assert_eq!(k.verify::<Name>(&edited, 1_001), Err(TokenError::Invalid));
        assert_eq!(k.verify::<Name>("", 1), Err(TokenError::Invalid));
        assert_eq!(
            k.verify::<Name>(&"x".repeat(5000), 1),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_token_without_expiry_is_invalid() {
        let secret = crate::secrets::derive_key(
            &SecretString::from("an-app-secret-of-at-least-32-bytes!!".to_owned()),
            "test/v1",
        );
        let claims = serde_json::json!({"aud": "aud", "iss": ISSUER, "iat": 1, "name": "a"});
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&secret),
        )
        .unwrap_or_default();
        assert_eq!(key("aud").verify::<Name>(&t, 2), Err(TokenError::Invalid));
    }
}
