//! The `key` token that names an order in the URLs given to KOMOJU and Cafe24
//! (PROTOCOL.md §6.1): an HS256 JWT with audience `cafe24-komoju/order`.
//!
//! It carries only identifiers (mall, order, flow, attempt), never a secret, and proves
//! that this service issued the URL. Verification pins the algorithm, checks audience
//! and issuer, and checks expiry against the service's [`Clock`](crate::clock::Clock)
//! (so tests can expire tokens). The signing key is derived from `APP_SECRET` with
//! HKDF, separate from the key that seals merchant secrets.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The audience every order key carries.
pub const AUDIENCE: &str = "cafe24-komoju/order";
const ISSUER: &str = "cafe24-komoju";

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    pub mall_id: String,
    pub order_id: String,
    /// `sync`, `async` or `external`.
    pub flow: crate::orders::Flow,
    /// The checkout attempt the key was issued for.
    pub attempt: i32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    order: OrderRef,
}

/// Why a key was refused. Says nothing about the expected signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key is not a valid order key")]
    Invalid,
    #[error("key has expired")]
    Expired,
}

/// An order key could not be signed (the JWT library refused): nothing is handed out
/// rather than an empty key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order key could not be signed")]
pub struct IssueError;

/// Issues and verifies order keys.
#[derive(Clone)]
pub struct OrderKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
}

impl std::fmt::Debug for OrderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderKeys(..)")
    }
}

impl OrderKeys {
    /// Derives the HS256 key from `APP_SECRET`; keys live `ttl`.
    pub fn new(app_secret: &SecretString, ttl: std::time::Duration) -> OrderKeys {
        let key = crate::secrets::derive_key(app_secret, "cafe24-komoju/order-key/v1");
        OrderKeys {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        }
    }

    /// A key for `order`, issued at `now` (Unix seconds): a compact HS256 JWT.
    /// Errors: [`IssueError`] when signing fails.
    pub fn issue(&self, order: &OrderRef, now: i64) -> Result<String, IssueError> {
        let claims = Claims {
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            order: order.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| IssueError)
    }

    /// Verifies `token` at `now` (Unix seconds): HS256 only, audience, issuer, expiry.
    pub fn verify(&self, token: &str, now: i64) -> Result<OrderRef, KeyError> {
        if token.is_empty() || token.len() > 2048 {
            return Err(KeyError::Invalid);
        }
        // Expiry is checked below against the service clock.
        let validation = crate::secrets::hs256_validation(AUDIENCE, ISSUER);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| KeyError::Invalid)?;
        if data.claims.exp <= now {
            return Err(KeyError::Expired);
        }
        Ok(data.claims.order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn keys() -> OrderKeys {
        OrderKeys::new(
            &SecretString::from("an-app-secret-of-at-least-32-bytes!!".to_owned()),
            std::time::Duration::from_secs(3600),
        )
    }

    fn order() -> OrderRef {
        OrderRef {
            mall_id: "demomall".into(),
            order_id: "20220519-0000029".into(),
            flow: crate::orders::Flow::Sync,
            attempt: 1,
        }
    }

    #[test]
    fn issued_key_verifies_until_it_expires() {
        let k = keys();
        let t = k
            .issue(&order(), 1_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.verify(&t, 1_000_001), Ok(order()));
        assert_eq!(k.verify(&t, 1_003_600), Err(KeyError::Expired));
    }

    #[test]
    fn forged_keys_are_refused() {
        let k = keys();
        let t = k
            .issue(&order(), 1_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        // Another secret.
        let other = OrderKeys::new(
            &SecretString::from("another-secret-of-at-least-32-bytes!!".to_owned()),
            std::time::Duration::from_secs(3600),
        );
        assert_eq!(other.verify(&t, 1_000_001), Err(KeyError::Invalid));
        // alg none with the same claims.
        let parts: Vec<&str> = t.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            k.verify(&format!("{none_header}.{}.", parts[1]), 1_000_001),
            Err(KeyError::Invalid)
        );
        // Claims edited (another order) under the old signature.
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default();
        let edited = String::from_utf8(payload)
            .unwrap_or_default()
            .replace("20220519-0000029", "20220519-0000030");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(edited),
            parts[2]
        );
        assert_eq!(k.verify(&forged, 1_000_001), Err(KeyError::Invalid));
        assert_eq!(k.verify("", 1), Err(KeyError::Invalid));
        assert_eq!(k.verify("not.a.jwt", 1), Err(KeyError::Invalid));
    }

    #[test]
    fn wrong_audience_is_refused() {
        use hkdf::Hkdf;
        use sha2::Sha256;
        let k = keys();
        let mut key = [0u8; 32];
        let hk = Hkdf::<Sha256>::new(
            Some(b"cafe24-komoju"),
            b"an-app-secret-of-at-least-32-bytes!!",
        );
        hk.expand(b"cafe24-komoju/order-key/v1", &mut key)
            .unwrap_or_default();
        let claims = serde_json::json!({"aud":"someone-else","iss":"cafe24-komoju","iat":1,"exp":9_999_999_999i64,
            "mall_id":"demomall","order_id":"1","flow":"sync","attempt":1});
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&key),
        )
        .unwrap_or_default();
        assert_eq!(k.verify(&t, 2), Err(KeyError::Invalid));
    }
}
