//! The app launch (PROTOCOL.md §12, "Launch"): Cafe24 opens the App URL with
//! `is_multi_shop, lang, mall_id, nation, shop_no, timestamp, user_id, user_name,
//! user_type, hmac`, where
//! `hmac = base64_standard(HMAC-SHA256(CAFE24_CLIENT_SECRET, the query as received
//! without the hmac pair))`.
//!
//! This module owns that check: the message is the raw query with the `hmac` pair (and
//! the `&` that joins it) cut out, byte for byte, never re-encoded; the tag is compared
//! in constant time; `timestamp` (seconds, or milliseconds when it has 13 digits) must be
//! within the allowed age of now in either direction. It never touches the database.

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::partner_id::is_valid_mall_id;

/// A launch whose signature and age held, with the fields the service uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub mall_id: String,
    /// The shop the operator launched from (1 when absent).
    pub shop_no: i32,
    /// The admin's language, e.g. `ja_JP`, `ko_KR`, `en_US` (as sent; may be empty).
    pub lang: String,
    pub user_id: String,
    /// `P` representative operator, `A` sub-operator, `S` supplier.
    pub user_type: String,
    /// The launch's `timestamp`, in Unix seconds.
    pub timestamp: i64,
    /// The `hmac`, decoded (32 bytes): what makes this launch this launch, however its
    /// percent-encoding was written.
    pub tag: Vec<u8>,
}

/// Why a launch was refused. Each renders as a 403 that changes nothing; the message
/// names the rule, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("the launch carries no hmac")]
    MissingHmac,
    #[error("the launch's hmac does not match")]
    BadHmac,
    #[error("the launch's timestamp is missing or malformed")]
    BadTimestamp,
    #[error("the launch is too old or from the future")]
    Stale,
    #[error("the launch's mall_id is missing or malformed")]
    BadMallId,
    #[error("the launch's query is malformed")]
    Malformed,
}

/// The query without its `hmac` pair, and the pair's value (still percent-encoded).
/// `None` when no pair is named `hmac`; more than one is [`LaunchError::Malformed`].
fn split_hmac(raw_query: &str) -> Result<Option<(String, &str)>, LaunchError> {
    let pairs: Vec<&str> = raw_query.split('&').collect();
    let mut found = None;
    for (i, pair) in pairs.iter().enumerate() {
        if let Some(value) = pair.strip_prefix("hmac=") {
            if found.is_some() {
                return Err(LaunchError::Malformed);
            }
            found = Some((i, value));
        }
    }
    Ok(found.map(|(i, value)| {
        let rest: Vec<&str> = pairs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| *p)
            .collect();
        (rest.join("&"), value)
    }))
}

/// Checks the raw launch query (everything after `?`, exactly as received) at `now`
/// (Unix seconds), allowing `max_age_secs` of clock difference either way.
///
/// Errors: no or repeated `hmac` pair, a tag that does not match, a missing or malformed
/// or out-of-window `timestamp`, a missing or malformed `mall_id` ([`LaunchError`]).
pub fn verify(
    raw_query: &str,
    client_secret: &SecretString,
    now: i64,
    max_age_secs: i64,
) -> Result<Launch, LaunchError> {
    let (message, encoded) = split_hmac(raw_query)?.ok_or(LaunchError::MissingHmac)?;
    let tag = verified_tag(&message, encoded, client_secret)?;
    let field = |name: &str| {
        url::form_urlencoded::parse(message.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let seconds = timestamp_seconds(field("timestamp"))?;
    if (now - seconds).abs() > max_age_secs {
        return Err(LaunchError::Stale);
    }
    let mall_id = field("mall_id").ok_or(LaunchError::BadMallId)?;
    if !is_valid_mall_id(&mall_id) {
        return Err(LaunchError::BadMallId);
    }
    let shop_no = match field("shop_no") {
        None => 1,
        Some(s) => match s.parse::<i32>() {
            Ok(n) if (1..=9999).contains(&n) => n,
            _ => return Err(LaunchError::Malformed),
        },
    };
    let text = |name: &str, max: usize| -> Result<String, LaunchError> {
        let v = field(name).unwrap_or_default();
        crate::text::printable(&v, max)
            .map(str::to_owned)
            .ok_or(LaunchError::Malformed)
    };
    Ok(Launch {
        mall_id,
        shop_no,
        lang: text("lang", 20)?,
        user_id: text("user_id", 100)?,
        user_type: text("user_type", 4)?,
        timestamp: seconds,
        tag,
    })
}

/// The launch's `hmac` (percent-encoded Base64), decoded and checked over `message` (the
/// query without it) with the client secret. Errors: [`LaunchError::BadHmac`].
fn verified_tag(
    message: &str,
    encoded: &str,
    client_secret: &SecretString,
) -> Result<Vec<u8>, LaunchError> {
    let tag_text: String = url::form_urlencoded::parse(format!("h={encoded}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let tag = base64::engine::general_purpose::STANDARD
        // A raw `+` of the Base64 alphabet would read as a space: Base64 has none.
        .decode(tag_text.trim().replace(' ', "+"))
        .map_err(|_| LaunchError::BadHmac)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.expose_secret().as_bytes())
        .map_err(|_| LaunchError::BadHmac)?;
    mac.update(message.as_bytes());
    mac.verify_slice(&tag).map_err(|_| LaunchError::BadHmac)?;
    Ok(tag)
}

/// Unix seconds of the launch's `timestamp`: digits, seconds or (13 digits)
/// milliseconds. Errors: [`LaunchError::BadTimestamp`].
fn timestamp_seconds(timestamp: Option<String>) -> Result<i64, LaunchError> {
    let timestamp = timestamp.ok_or(LaunchError::BadTimestamp)?;
    if timestamp.is_empty()
        || timestamp.len() > 13
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(LaunchError::BadTimestamp);
    }
    let value: i64 = timestamp.parse().map_err(|_| LaunchError::BadTimestamp)?;
    Ok(if timestamp.len() == 13 {
        value / 1000
    } else {
        value
    })
}

/// Signs a launch query as Cafe24 does (the query without `hmac`; returns the Base64
/// tag, not yet percent-encoded). For the CLI and tests.
pub fn sign(query_without_hmac: &str, client_secret: &SecretString) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(client_secret.expose_secret().as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(query_without_hmac.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_600_000;

    fn secret() -> SecretString {
        SecretString::from("client-secret".to_owned())
    }

    fn signed(query: &str) -> String {
        let tag: String =
            url::form_urlencoded::byte_serialize(sign(query, &secret()).as_bytes()).collect();
        format!("{query}&hmac={tag}")
    }

    fn query(ts: &str) -> String {
        format!("is_multi_shop=F&lang=ko_KR&mall_id=demomall&nation=KR&shop_no=1&timestamp={ts}&user_id=admin&user_name=%ED%99%8D%EA%B8%B8%EB%8F%99&user_type=P")
    }

    #[test]
    fn a_signed_launch_is_read() {
        let launch = verify(&signed(&query(&NOW.to_string())), &secret(), NOW, 3600);
        let tag = base64::engine::general_purpose::STANDARD
            .decode(sign(&query(&NOW.to_string()), &secret()))
            .unwrap_or_default();
        assert_eq!(
            launch,
            Ok(Launch {
                mall_id: "demomall".into(),
                shop_no: 1,
                lang: "ko_KR".into(),
                user_id: "admin".into(),
                user_type: "P".into(),
                timestamp: NOW,
                tag,
            })
        );
    }

    /// PROTOCOL.md §12's known-answer vector, from Cafe24's official
    /// `cafe24-app/cafe24_app_discount_sample` (`service/AppService.java`): its client
    /// secret and launch query, checked at the launch's own time (2021-06-01 02:09:20
    /// UTC) and refused an hour and a second later, or with another secret.
    #[test]
    fn cafe24s_official_sample_launch_verifies_at_its_own_time() {
        let secret = SecretString::from("zoQxSUptApmiFLRl2ChaxB".to_owned());
        let query = "is_multi_shop=T&lang=ko_KR&mall_id=jhbaek02&nation=KR&shop_no=1\
                     &timestamp=1622513360&user_id=jhbaek02&user_name=jhbaek02&user_type=P\
                     &hmac=8%2BhYywQW5fBMpfbTlA1puAMpM91N0FYtrpzHYrdodDM%3D";
        let at = 1_622_513_360;
        let launch = verify(query, &secret, at, 3600);
        assert_eq!(
            launch
                .as_ref()
                .map(|l| (l.mall_id.as_str(), l.user_type.as_str(), l.timestamp)),
            Ok(("jhbaek02", "P", at))
        );
        assert_eq!(
            verify(query, &secret, at + 3601, 3600),
            Err(LaunchError::Stale)
        );
        let other = SecretString::from("zoQxSUptApmiFLRl2ChaxC".to_owned());
        assert_eq!(verify(query, &other, at, 3600), Err(LaunchError::BadHmac));
    }

    #[test]
    fn hmac_anywhere_in_the_query_and_milliseconds_are_accepted() {
        let q = query(&(NOW * 1000).to_string());
        let tag: String =
            url::form_urlencoded::byte_serialize(sign(&q, &secret()).as_bytes()).collect();
        let first = format!("hmac={tag}&{q}");
        assert!(verify(&first, &secret(), NOW, 3600).is_ok());
    }

    #[test]
    fn a_reencoded_query_fails() {
        // The same values, with the Korean name encoded differently than signed.
        let good = signed(&query(&NOW.to_string()));
        let reencoded = good.replace("%ED%99%8D", "%ed%99%8d");
        assert_eq!(
            verify(&reencoded, &secret(), NOW, 3600),
            Err(LaunchError::BadHmac)
        );
    }

    #[test]
    fn wrong_key_missing_or_doubled_hmac_fail() {
        let good = signed(&query(&NOW.to_string()));
        let other = SecretString::from("other".to_owned());
        assert_eq!(verify(&good, &other, NOW, 3600), Err(LaunchError::BadHmac));
        assert_eq!(
            verify(&query(&NOW.to_string()), &secret(), NOW, 3600),
            Err(LaunchError::MissingHmac)
        );
        assert_eq!(
            verify(&format!("{good}&hmac=x"), &secret(), NOW, 3600),
            Err(LaunchError::Malformed)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        for ts in [NOW - 3601, NOW + 3601] {
            assert_eq!(
                verify(&signed(&query(&ts.to_string())), &secret(), NOW, 3600),
                Err(LaunchError::Stale)
            );
        }
        assert_eq!(
            verify(&signed(&query("12x")), &secret(), NOW, 3600),
            Err(LaunchError::BadTimestamp)
        );
    }
}
