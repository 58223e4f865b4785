//! The `key` that names an order in the URLs given to KOMOJU and Cafe24 (PROTOCOL.md
//! §6.1): an HS256 JWT ([`super::Hs256`], HKDF info `cafe24-komoju/order-key/v1`),
//! audience `cafe24-komoju/order`. It carries only identifiers (mall, order, flow,
//! attempt), never a secret, and proves that this service issued the URL.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Hs256, SignError, TokenError};

/// The audience every order key carries.
pub const AUDIENCE: &str = "cafe24-komoju/order";

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

/// Issues and verifies order keys.
#[derive(Clone, Debug)]
pub struct OrderKeys {
    key: Hs256,
    ttl_secs: i64,
}

impl OrderKeys {
    /// Derives the key from `APP_SECRET`; keys live `ttl` (`ORDER_KEY_TTL_SECS`).
    pub fn new(app_secret: &SecretString, ttl: std::time::Duration) -> OrderKeys {
        OrderKeys {
            key: Hs256::new(app_secret, "cafe24-komoju/order-key/v1", AUDIENCE),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        }
    }

    /// A key for `order`, issued at `now` (Unix seconds). Errors: signing failed.
    pub fn issue(&self, order: &OrderRef, now: i64) -> Result<String, SignError> {
        self.key.sign(order, now, self.ttl_secs)
    }

    /// The order `token` names, at `now` (Unix seconds). Errors: not ours, or expired.
    pub fn verify(&self, token: &str, now: i64) -> Result<OrderRef, TokenError> {
        self.key.verify(token, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = k.issue(&order(), 1_000_000).unwrap_or_default();
        assert_eq!(k.verify(&t, 1_000_001), Ok(order()));
        assert_eq!(k.verify(&t, 1_003_600), Err(TokenError::Expired));
    }

    #[test]
    fn a_key_of_another_kind_is_not_an_order_key() {
        let secret = SecretString::from("an-app-secret-of-at-least-32-bytes!!".to_owned());
        let operator = crate::keys::operator::OperatorKeys::new(&secret)
            .issue(1_000_000, 3600)
            .unwrap_or_default();
        assert_eq!(
            keys().verify(&operator, 1_000_001),
            Err(TokenError::Invalid)
        );
    }
}
