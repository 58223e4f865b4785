//! The settings site's session and CSRF tokens (PROTOCOL.md §12, "Settings site").
//!
//! The session is an HS256 JWT ([`super::Hs256`], HKDF info
//! `cafe24-komoju/merchant-session/v1`) in the cookie [`SESSION_COOKIE`], audience
//! `cafe24-komoju/merchant`, claims `mall_id`, `user_id`, `lang`, the launch's `user_type`
//! (`P` may change settings, `A` only reads them), the mall's session generation `gen` at
//! issue (checked against the stored one on every request) and a random session id `sid`,
//! lifetime 1 h. Every form carries the CSRF token of its session:
//! base64url(HMAC-SHA256(csrf key, `sid` · NUL · `mall_id`)), so a token of another session
//! (or none) is refused. The cookie is `HttpOnly`, `SameSite=Lax`, `Secure` in production
//! (set by the route).

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Hs256;

/// The audience of session tokens.
pub const AUDIENCE: &str = "cafe24-komoju/merchant";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cafe24_komoju_session";
/// The OAuth `state` cookie's name (bound to the browser for the authorization round).
pub const STATE_COOKIE: &str = "cafe24_komoju_oauth";
/// Lifetime of a session, in seconds.
pub const SESSION_TTL_SECS: i64 = 3600;

/// A merchant's session on the settings site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub mall_id: String,
    pub user_id: String,
    /// The launch's `lang` (`ja_JP`, `en_US`, `ko_KR`…): the site speaks Japanese for
    /// `ja…` and English otherwise.
    pub lang: String,
    /// The launch's `user_type`: `P` (representative operator) or `A` (sub-operator);
    /// a supplier (`S`) gets no session.
    pub user_type: String,
    /// The mall's session generation when the session was issued.
    pub gen: i64,
    /// Random per session: the CSRF token is derived from it.
    pub sid: String,
}

impl Session {
    /// Whether this session may change anything (keys, gateways, scripts, disconnect):
    /// only the representative operator's (`P`).
    pub fn may_change(&self) -> bool {
        self.user_type == USER_TYPE_OPERATOR
    }
}

/// `user_type` of the representative operator (PROTOCOL.md §12).
pub const USER_TYPE_OPERATOR: &str = "P";
/// `user_type` of a sub-operator: the pages, read-only.
pub const USER_TYPE_SUB_OPERATOR: &str = "A";

/// What a new session is for.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub mall_id: &'a str,
    pub user_id: &'a str,
    pub lang: &'a str,
    /// `P` or `A`.
    pub user_type: &'a str,
    /// The mall's session generation now.
    pub generation: i64,
}

/// Issues and checks sessions and their CSRF tokens.
#[derive(Clone)]
pub struct SessionKeys {
    key: Hs256,
    csrf_key: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    /// Derives both keys from `APP_SECRET`.
    pub fn new(app_secret: &SecretString) -> SessionKeys {
        SessionKeys {
            key: Hs256::new(app_secret, "cafe24-komoju/merchant-session/v1", AUDIENCE),
            csrf_key: crate::secrets::derive_key(app_secret, "cafe24-komoju/merchant-csrf/v1"),
        }
    }

    /// A new session at `now` (Unix seconds): the cookie value. Errors: signing failed
    /// (logged).
    pub fn issue(&self, new: &NewSession<'_>, now: i64) -> Option<String> {
        let session = Session {
            mall_id: new.mall_id.into(),
            user_id: new.user_id.into(),
            lang: new.lang.into(),
            user_type: new.user_type.into(),
            gen: new.generation,
            sid: crate::secrets::random_token(16),
        };
        self.key
            .sign(session, now, SESSION_TTL_SECS)
            .map_err(|e| log::error!("session token: {e}"))
            .ok()
    }

    /// The session a cookie value carries, if it is one of ours and not expired at `now`.
    pub fn verify(&self, cookie: Option<&str>, now: i64) -> Option<Session> {
        self.key.verify(cookie?, now).ok()
    }

    /// The CSRF token of `session`'s forms.
    pub fn csrf(&self, session: &Session) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.csrf_mac(session).finalize().into_bytes())
    }

    /// Whether `token` is `session`'s CSRF token (constant time).
    pub fn csrf_valid(&self, session: &Session, token: Option<&str>) -> bool {
        let Some(bytes) = token.and_then(|t| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.trim())
                .ok()
        }) else {
            return false;
        };
        self.csrf_mac(session).verify_slice(&bytes).is_ok()
    }

    fn csrf_mac(&self, session: &Session) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.csrf_key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes a key of any length"),
        };
        mac.update(session.sid.as_bytes());
        mac.update(b"\0");
        mac.update(session.mall_id.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::new(&SecretString::from("a".repeat(40)))
    }

    fn new(mall_id: &str) -> NewSession<'_> {
        NewSession {
            mall_id,
            user_id: "admin",
            lang: "ja_JP",
            user_type: "P",
            generation: 3,
        }
    }

    #[test]
    fn a_session_round_trips_until_it_expires() {
        let keys = keys();
        let token = keys.issue(&new("demomall"), 1000).unwrap_or_default();
        let session = keys.verify(Some(&token), 1000 + 3599);
        assert_eq!(
            session.as_ref().map(|s| s.mall_id.as_str()),
            Some("demomall")
        );
        assert_eq!(session.as_ref().map(|s| s.gen), Some(3));
        assert!(session.as_ref().is_some_and(Session::may_change));
        assert_eq!(keys.verify(Some(&token), 1000 + 3600), None);
        let other = SessionKeys::new(&SecretString::from("b".repeat(40)));
        assert_eq!(other.verify(Some(&token), 1000), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let keys = keys();
        let a = keys.verify(keys.issue(&new("m"), 0).as_deref(), 1);
        let b = keys.verify(keys.issue(&new("m"), 0).as_deref(), 1);
        let (Some(a), Some(b)) = (a, b) else {
            panic!("sessions did not verify")
        };
        assert!(keys.csrf_valid(&a, Some(&keys.csrf(&a))));
        assert!(!keys.csrf_valid(&a, Some(&keys.csrf(&b))));
        assert!(!keys.csrf_valid(&a, None));
        assert!(!keys.csrf_valid(&a, Some("")));
    }
}
