//! The operator API's bearer token: an HS256 JWT ([`super::Hs256`], HKDF info
//! `cafe24-komoju/operator-token/v1`), audience `cafe24-komoju/operator`, expiry
//! required. It carries no secret; `cafe24-komoju operator token --ttl 1h` mints one.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Hs256, SignError, TokenError};

/// The audience of operator tokens.
pub const AUDIENCE: &str = "cafe24-komoju/operator";

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
}

/// Issues and verifies operator tokens.
#[derive(Clone, Debug)]
pub struct OperatorKeys {
    key: Hs256,
}

impl OperatorKeys {
    /// Derives the key from `APP_SECRET`.
    pub fn new(app_secret: &SecretString) -> OperatorKeys {
        OperatorKeys {
            key: Hs256::new(app_secret, "cafe24-komoju/operator-token/v1", AUDIENCE),
        }
    }

    /// A token valid for `ttl_secs` from `now` (Unix seconds). Errors: signing failed.
    pub fn issue(&self, now: i64, ttl_secs: i64) -> Result<String, SignError> {
        let claims = Claims {
            sub: "operator".into(),
        };
        self.key.sign(claims, now, ttl_secs)
    }

    /// Checks an `Authorization` header value at `now`: `Bearer <token>`, one of ours, not
    /// expired. Errors: [`TokenError`], to be answered with nothing but "unauthorized".
    pub fn verify(&self, authorization: Option<&str>, now: i64) -> Result<(), TokenError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(TokenError::Invalid)?;
        self.key.verify::<Claims>(token, now).map(|_| ())
    }
}
