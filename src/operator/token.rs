//! The operator API's bearer token: an HS256 JWT keyed from `APP_SECRET` (HKDF-SHA256,
//! info `cafe24-komoju/operator-token/v1`), audience `cafe24-komoju/operator`, issuer
//! `cafe24-komoju`, expiry required and checked against the service clock, the
//! algorithm pinned. It carries no secret.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The audience of operator tokens.
pub const AUDIENCE: &str = "cafe24-komoju/operator";
const ISSUER: &str = "cafe24-komoju";

#[derive(Serialize, Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    iat: i64,
    exp: i64,
    sub: String,
}

/// Issues and verifies operator tokens.
#[derive(Clone)]
pub struct OperatorKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for OperatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorKeys(..)")
    }
}

impl OperatorKeys {
    /// Derives the HS256 key from `APP_SECRET` (HKDF-SHA256, info
    /// `cafe24-komoju/operator-token/v1`).
    pub fn new(app_secret: &SecretString) -> OperatorKeys {
        let key = crate::secrets::derive_key(app_secret, "cafe24-komoju/operator-token/v1");
        OperatorKeys {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    /// A token valid for `ttl_secs` from `now` (Unix seconds). Errors: signing failed.
    pub fn issue(&self, now: i64, ttl_secs: i64) -> Result<String, ApiError> {
        let claims = Claims {
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            sub: "operator".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            log::error!("operator token could not be signed: {e}");
            ApiError::Internal
        })
    }

    /// Checks an `Authorization` header value at `now`: `Bearer <token>`, HS256 only,
    /// this audience and issuer, not expired. Errors: `unauthorized`, with no detail.
    pub fn verify(&self, authorization: Option<&str>, now: i64) -> Result<(), ApiError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 2048)
            .ok_or(ApiError::Unauthorized)?;
        let validation = crate::secrets::hs256_validation(AUDIENCE, ISSUER);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::Unauthorized)?;
        if data.claims.exp <= now {
            return Err(ApiError::Unauthorized);
        }
        Ok(())
    }
}
