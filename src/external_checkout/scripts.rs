//! The mall front's scripts (§6.3): the loader Cafe24's Scripttag API installs (its
//! Subresource Integrity value), the button script it loads, and `GET /script/hmac`, the
//! precreateOrder request HMAC the button asks for (never an oracle).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha384};

use super::REQUEST_TIME_TOLERANCE_SECS;
use crate::cafe24::external_checkout::request_hmac;
use crate::cafe24::Fields;
use crate::error::ApiError;
use crate::i18n::{catalogue, Lang};
use crate::services::Services;

/// The loader installed by Cafe24's Scripttag API; its bytes (for one version and one
/// `PUBLIC_BASE_URL`) are what the registered `integrity` value covers.
const LOADER: &str = include_str!("../../static/external-checkout/loader.js");
/// The button script the loader loads.
const APP: &str = include_str!("../../static/external-checkout/app.js");
const BASE_PLACEHOLDER: &str = "__CAFE24_KOMOJU_BASE__";
const VERSION_PLACEHOLDER: &str = "__CAFE24_KOMOJU_VERSION__";

/// The button's visible texts in one language (the catalogue's `button-*` of
/// `locales/*/pages.ftl`), for `GET /script/data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonTexts {
    /// `ja`, `ko` or `en`.
    pub lang: &'static str,
    /// The button's label.
    pub label: String,
    /// Shown under the button when the payment could not be started.
    pub failed: String,
    /// Shown when Cafe24 could not reserve the order (`precreateOrder`).
    pub reserve: String,
}

/// The button's language: the page's `lang` as the mall's skin declares it (Cafe24 writes
/// the shop's language, `ko_KR` or `ko`), else the buyer's `Accept-Language`, else the
/// shop's `language_code` as Cafe24 lists it, else English.
pub fn button_lang(lang: Option<&str>, accept: Option<&str>, shop_language: &str) -> Lang {
    lang.and_then(Lang::from_tag)
        .or_else(|| accept.and_then(Lang::from_accept_language))
        .or_else(|| Lang::from_tag(shop_language))
        .unwrap_or(Lang::En)
}

/// The button's texts in `lang`.
pub fn button_texts(lang: Lang) -> ButtonTexts {
    let text = |id: &str| catalogue().text(lang, id);
    ButtonTexts {
        lang: lang.code(),
        label: text("button-pay"),
        failed: text("button-failed"),
        reserve: text("button-reserve"),
    }
}

/// The loader script for this deployment: byte-for-byte stable for one version and one
/// `public_base` (no trailing slash).
pub fn loader_script(public_base: &str) -> String {
    LOADER
        .replace(BASE_PLACEHOLDER, public_base)
        .replace(VERSION_PLACEHOLDER, env!("CARGO_PKG_VERSION"))
}

/// The button script, pointed at `public_base`.
pub fn app_script(public_base: &str) -> String {
    APP.replace(BASE_PLACEHOLDER, public_base)
        .replace(VERSION_PLACEHOLDER, env!("CARGO_PKG_VERSION"))
}

/// The Subresource Integrity value of a script: `sha384-` + base64(SHA-384(bytes)).
pub fn integrity(script: &str) -> String {
    format!(
        "sha384-{}",
        STANDARD.encode(Sha384::digest(script.as_bytes()))
    )
}

/// `GET /script/hmac`'s answer: the precreateOrder request HMAC for `q`'s `mall_id`,
/// `request_time` and `member_id`, asked from `peer` (the client address). Not an
/// oracle: at most [`crate::services::Services::hmac_limiter`]'s rate per (address,
/// mall) (`rate_limited`), the mall registered (`unknown_merchant`) and enabled
/// (`merchant_disabled`), `request_time` Unix seconds within
/// [`REQUEST_TIME_TOLERANCE_SECS`] of now, `member_id` at most 100 printable
/// characters, and `client_id` always this app's (a `client_key` that differs is
/// `invalid_request`).
pub async fn signed_request(app: &Services, peer: &str, q: &Fields) -> Result<String, ApiError> {
    let mall_id = crate::cafe24::mall_id_field(q)?;
    if app
        .hmac_limiter
        .check_key(&(peer.to_owned(), mall_id.to_owned()))
        .is_err()
    {
        log::warn!("script/hmac: rate limit hit by {peer} for mall {mall_id}");
        return Err(ApiError::RateLimited);
    }
    let request_time = q.required("request_time")?;
    let seconds: i64 = request_time
        .parse()
        .ok()
        .filter(|_| request_time.len() <= 12 && request_time.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ApiError::invalid("request_time must be Unix seconds"))?;
    if (seconds - app.clock.unix_seconds()).abs() > REQUEST_TIME_TOLERANCE_SECS {
        return Err(ApiError::invalid(
            "request_time is not within 5 minutes of now",
        ));
    }
    let member_id = q.get("member_id").unwrap_or("");
    if member_id.len() > 100 || member_id.chars().any(char::is_control) {
        return Err(ApiError::invalid("member_id is malformed"));
    }
    if q.optional("client_key")
        .is_some_and(|k| k != app.cafe24_client_id)
    {
        return Err(ApiError::invalid("client_key is not this app's client id"));
    }
    let merchant = app.merchants.load(mall_id, None).await?;
    if !merchant.enabled {
        return Err(ApiError::MerchantDisabled);
    }
    Ok(request_hmac(
        app.cafe24_service_key.expose_secret().as_bytes(),
        mall_id,
        request_time,
        &app.cafe24_client_id,
        member_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_is_stable_and_points_at_the_base() {
        let a = loader_script("https://pg.example.com");
        assert_eq!(a, loader_script("https://pg.example.com"));
        assert!(a.contains("https://pg.example.com/api/external-checkout/script/app.js?v="));
        assert!(!a.contains(BASE_PLACEHOLDER) && !a.contains(VERSION_PLACEHOLDER));
        assert!(integrity(&a).starts_with("sha384-"));
        assert_eq!(
            integrity(&a),
            integrity(&loader_script("https://pg.example.com"))
        );
        assert_ne!(
            integrity(&a),
            integrity(&loader_script("https://other.example.com"))
        );
    }
}
