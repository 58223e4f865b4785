//! Cafe24's OAuth (PROTOCOL.md §12; Cafe24's OAuth guide): the authorization URL, the
//! code exchange and the refresh, the grant they answer (token times without a zone read
//! as Korean time), and whose fault a refusal is: `invalid_client`, and `invalid_grant`
//! with `Invalid client_secret`, are the app's own credentials
//! ([`Cafe24Error::AppCredentials`]); any other refusal is the grant's
//! ([`Cafe24Error::Grant`]). Calls go through the one [`Cafe24Client`].
//!
//! It never logs or returns a token, a code or the client secret.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDateTime};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::admin::{
    pause, trace_of, transport, unreadable, Cafe24Client, Cafe24Error, RATE_LIMIT_RETRIES,
};

/// Lifetimes assumed when a token reply's timestamps cannot be read (shorter than
/// Cafe24's 2 h and 14 days, so the service refreshes early rather than late).
const FALLBACK_ACCESS: Duration = Duration::from_secs(3600);
const FALLBACK_REFRESH: Duration = Duration::from_secs(7 * 86400);
/// Cafe24's clock: token times without a zone are Korean time (PROTOCOL.md §12: a real
/// reply `"issued_at": "2021-07-31T18:00:21.000"` arrived at 09:00:21 UTC).
const KST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => unreachable!(),
};
/// `invalid_grant` with this description is the app's client secret refused
/// (PROTOCOL.md §12; a developer's log of real Cafe24, `kangHo-Jun/web_cadalog_ver10`
/// `docs/web_cadalog_ver10_완전_가이드.md`).
const INVALID_CLIENT_SECRET: &str = "invalid client_secret";

/// What the token endpoint granted. Cafe24's times carry no zone and are read as KST
/// (+09:00), then kept in UTC; the lifetimes (`*_expires_at − issued_at`) are the
/// fallback when an end is unreadable or already past by this service's clock
/// ([`TokenGrant::access_end`]).
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// When the access token ends (UTC), from `expires_at`.
    pub access_expires_at: Option<NaiveDateTime>,
    /// When the refresh token ends (UTC), from `refresh_token_expires_at`.
    pub refresh_expires_at: Option<NaiveDateTime>,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    pub mall_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
}

/// The token endpoint's reply as Cafe24 sends it.
#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    refresh_token: String,
    expires_at: Option<String>,
    refresh_token_expires_at: Option<String>,
    issued_at: Option<String>,
    mall_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

impl TokenGrant {
    /// When the access token ends (UTC), as Cafe24 said; `now` + its lifetime when Cafe24's
    /// time is unreadable or not after `now` (a clock far off).
    pub fn access_end(&self, now: NaiveDateTime) -> NaiveDateTime {
        end_or(self.access_expires_at, now, self.access_lifetime)
    }

    /// When the refresh token ends (UTC), as [`TokenGrant::access_end`].
    pub fn refresh_end(&self, now: NaiveDateTime) -> NaiveDateTime {
        end_or(self.refresh_expires_at, now, self.refresh_lifetime)
    }
}

fn end_or(end: Option<NaiveDateTime>, now: NaiveDateTime, lifetime: Duration) -> NaiveDateTime {
    end.filter(|e| *e > now).unwrap_or_else(|| {
        now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::zero())
    })
}

/// The grant of a token reply: times read as KST, lifetimes as their differences.
fn grant_of(reply: TokenReply) -> TokenGrant {
    let issued = reply.issued_at.as_deref().and_then(parse_time);
    let access_end = reply.expires_at.as_deref().and_then(parse_time);
    let refresh_end = reply
        .refresh_token_expires_at
        .as_deref()
        .and_then(parse_time);
    let lifetime = |end: Option<NaiveDateTime>, fallback: Duration| match (issued, end) {
        (Some(start), Some(end)) if end > start => (end - start).to_std().unwrap_or(fallback),
        _ => fallback,
    };
    TokenGrant {
        access_lifetime: lifetime(access_end, FALLBACK_ACCESS),
        refresh_lifetime: lifetime(refresh_end, FALLBACK_REFRESH),
        access_expires_at: access_end,
        refresh_expires_at: refresh_end,
        access_token: SecretString::from(reply.access_token),
        refresh_token: SecretString::from(reply.refresh_token),
        mall_id: reply.mall_id,
        user_id: reply.user_id.unwrap_or_default(),
        scopes: reply.scopes,
    }
}

/// The token endpoint's refusal `{"error","error_description"}`: whose fault it is.
fn token_refusal(status: u16, bytes: &[u8]) -> Cafe24Error {
    let body = serde_json::from_slice::<Value>(bytes).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let error = crate::text::printable(&field("error"), 64)
        .filter(|e| !e.is_empty())
        .unwrap_or("unreadable")
        .to_owned();
    let description = field("error_description").to_ascii_lowercase();
    let app_at_fault = error == "invalid_client"
        || (error == "invalid_grant" && description.contains(INVALID_CLIENT_SECRET));
    if app_at_fault {
        Cafe24Error::AppCredentials { status, error }
    } else {
        Cafe24Error::Grant { status, error }
    }
}

/// Cafe24's timestamps, in UTC: `2026-12-01T21:00:00.000` is Korean time (KST, +09:00);
/// one with an offset is read with it.
fn parse_time(s: &str) -> Option<NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?
                .and_local_timezone(KST)
                .single()
                .map(|d| d.naive_utc())
        })
}

impl Cafe24Client {
    /// Where the browser is sent to authorize the app for `mall_id` (§12):
    /// `…/api/v2/oauth/authorize?response_type=code&client_id&state&redirect_uri&scope`.
    pub fn authorize_url(
        &self,
        mall_id: &str,
        state: &str,
        redirect_uri: &str,
    ) -> Result<String, Cafe24Error> {
        let url = Cafe24Client::url(&self.browser_base, mall_id, &["oauth", "authorize"])?;
        Ok(crate::urls::with_query(
            url,
            &[
                ("response_type", "code"),
                ("client_id", &self.client_id),
                ("state", state),
                ("redirect_uri", redirect_uri),
                ("scope", &self.scopes),
            ],
        )
        .into())
    }

    /// Exchanges an authorization `code` (§12). Errors: the grant refused
    /// ([`Cafe24Error::Grant`]), or the call failed.
    pub async fn exchange_code(
        &self,
        mall_id: &str,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenGrant, Cafe24Error> {
        self.token(
            mall_id,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
    }

    /// Refreshes with `refresh_token`; the reply carries a new refresh token, which the
    /// caller must store in place of the old one.
    pub async fn refresh(
        &self,
        mall_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, Cafe24Error> {
        self.token(
            mall_id,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ],
        )
        .await
    }

    async fn token(&self, mall_id: &str, form: &[(&str, &str)]) -> Result<TokenGrant, Cafe24Error> {
        let url = Cafe24Client::url(&self.api_base, mall_id, &["oauth", "token"])?;
        let mut attempt = 0;
        let reply = loop {
            let sent = self
                .http
                .post(url.clone())
                .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                .form(form)
                .send()
                .await
                .map_err(transport)?;
            if sent.status() == StatusCode::TOO_MANY_REQUESTS && attempt < RATE_LIMIT_RETRIES {
                attempt += 1;
                tokio::time::sleep(pause(&sent)).await;
                continue;
            }
            break sent;
        };
        let status = reply.status();
        let trace = trace_of(&reply);
        let bytes = reply.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(self.token_failure(mall_id, status, &trace, &bytes));
        }
        let reply: TokenReply =
            serde_json::from_slice(&bytes).map_err(|e| Cafe24Error::Unreadable {
                status: status.as_u16(),
                detail: format!("token reply: {}", unreadable(&e)),
            })?;
        Ok(grant_of(reply))
    }

    /// A failed token request: Cafe24 failing (5xx, 429 after the retries), or refusing
    /// the grant or the app's credentials (counted), each logged with its `X-Trace_ID`.
    fn token_failure(
        &self,
        mall_id: &str,
        status: StatusCode,
        trace: &str,
        bytes: &[u8],
    ) -> Cafe24Error {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            log::warn!(
                "Cafe24's token endpoint for mall {mall_id} answered {status} (X-Trace_ID {trace})"
            );
            return Cafe24Error::Api {
                status: status.as_u16(),
                code: None,
                message: "the token endpoint failed".into(),
            };
        }
        let refusal = token_refusal(status.as_u16(), bytes);
        if let Cafe24Error::AppCredentials { .. } = refusal {
            log::error!("Cafe24 refused the app's client credentials for mall {mall_id} (X-Trace_ID {trace}): {refusal}; no mall is disconnected, fix the setting");
            if let Some(counter) = &self.app_credentials_refused {
                counter.inc();
            }
        } else {
            log::warn!(
                "Cafe24's token endpoint for mall {mall_id}: {refusal} (X-Trace_ID {trace})"
            );
        }
        refusal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()
    }

    #[test]
    fn times_without_zone_are_kst_and_with_offset_are_read() {
        // PROTOCOL.md §12's real reply: issued 18:00:21 KST is 09:00:21 UTC.
        assert_eq!(
            parse_time("2021-07-31T18:00:21.000"),
            utc("2021-07-31T09:00:21")
        );
        assert_eq!(
            parse_time("2026-12-01T21:00:00+09:00"),
            utc("2026-12-01T12:00:00")
        );
        assert_eq!(
            parse_time("2026-12-01T21:00:00Z"),
            utc("2026-12-01T21:00:00")
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn an_end_already_past_falls_back_to_the_lifetime() {
        let now = utc("2026-12-01T12:00:00").unwrap_or_default();
        let grant = TokenGrant {
            access_token: SecretString::from("a"),
            refresh_token: SecretString::from("r"),
            access_expires_at: utc("2026-12-01T13:00:00"),
            refresh_expires_at: utc("2026-12-01T11:00:00"),
            access_lifetime: Duration::from_secs(7200),
            refresh_lifetime: Duration::from_secs(14 * 86400),
            mall_id: "m".into(),
            user_id: "u".into(),
            scopes: vec![],
        };
        assert_eq!(
            grant.access_end(now),
            utc("2026-12-01T13:00:00").unwrap_or_default()
        );
        assert_eq!(
            grant.refresh_end(now),
            utc("2026-12-15T12:00:00").unwrap_or_default()
        );
    }

    #[test]
    fn a_wrong_client_secret_is_the_apps_fault_and_a_used_refresh_token_the_grants() {
        let secret = br#"{"error":"invalid_grant","error_description":"Invalid client_secret"}"#;
        assert!(matches!(
            token_refusal(401, secret),
            Cafe24Error::AppCredentials { .. }
        ));
        let client = br#"{"error":"invalid_client","error_description":"Unknown client"}"#;
        assert!(matches!(
            token_refusal(401, client),
            Cafe24Error::AppCredentials { .. }
        ));
        let used = br#"{"error":"invalid_grant","error_description":"Invalid refresh_token"}"#;
        assert!(matches!(
            token_refusal(400, used),
            Cafe24Error::Grant { .. }
        ));
        assert!(matches!(
            token_refusal(400, b"x"),
            Cafe24Error::Grant { .. }
        ));
    }
}
