//! Merchants as the service uses them: a Cafe24 mall with its KOMOJU credentials
//! (opened), payment types, locale, cancel mode, extra callback hosts and `paymethod`
//! codes; and the registration rules of `cafe24-komoju merchant add` (PROTOCOL.md §11),
//! whose KOMOJU fields follow [`rules`], shared with the settings form.
//!
//! Sealing and opening secrets is [`crate::secrets`]'s; storage is [`crate::db::merchants`].

use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::cafe24::partner_id::is_valid_mall_id;
use crate::db::merchants::MerchantRow;
use crate::secrets::{SecretBox, SecretError};

pub mod cache;
pub mod kinds;
pub mod rules;

pub use kinds::{CancelMode, CaptureMode, Locale, NotifyEncoding, Registration};

/// Column names used as associated data when sealing.
pub const SECRET_KEY_COLUMN: &str = "komoju_secret_key";
pub const WEBHOOK_SECRET_COLUMN: &str = "komoju_webhook_secret";

/// KOMOJU payment types that settle later (a code is issued, money comes in later).
pub const DEFERRED_PAYMENT_TYPES: [&str; 3] = ["konbini", "bank_transfer", "pay_easy"];

/// A merchant with its secrets opened. `Debug` never shows the secrets.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub mall_id: String,
    pub public_ref: String,
    pub komoju_secret_key: SecretString,
    pub komoju_webhook_secret: SecretString,
    /// KOMOJU payment types offered, e.g. `["credit_card", "konbini"]`.
    pub payment_types: Vec<String>,
    /// The hosted page's language when the request names none.
    pub locale: Locale,
    pub cancel_mode: CancelMode,
    /// Extra callback hosts allowed for this merchant (§10).
    pub allowed_hosts: Vec<String>,
    /// `paymethod` overrides: KOMOJU type → Cafe24 code.
    pub paymethod_codes: BTreeMap<String, String>,
    pub enabled: bool,
    /// How notifications to Cafe24 are encoded: `form` (default) or `json` (§9).
    pub notify_encoding: NotifyEncoding,
    /// External checkout shows a review page before KOMOJU.
    pub external_review: bool,
    /// A duplicate payment is refunded in full automatically (§5; default on).
    pub refund_duplicates: bool,
    /// When card payments are captured (§7 `payment_data.capture`; default `auto`).
    pub capture: CaptureMode,
    /// Days after its authorization a manual-capture payment is captured automatically
    /// ([`AUTO_CAPTURE_DAYS`]; default 7).
    pub auto_capture_after_days: i32,
    /// `(shop_no, language)` of each shop whose Cafe24 `language_code` is one of ours
    /// (filled by the merchant cache from `merchant_shops`; empty from [`Merchant::open`]).
    pub shop_locales: Vec<(i32, Locale)>,
}

/// The days `auto_capture_after_days` may take: at least one, and fewer than KOMOJU's
/// capture window ("Authorizations typically expire after 30 days",
/// doc.komoju.com/docs/two-step-capture), so the automatic capture always comes first.
pub const AUTO_CAPTURE_DAYS: std::ops::RangeInclusive<i32> = 1..=29;

/// Why a merchant row could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error("merchant {mall_id}: {source}")]
    Secret {
        mall_id: String,
        source: SecretError,
    },
}

impl Merchant {
    /// Opens a stored row.
    pub fn open(row: &MerchantRow, secrets: &SecretBox) -> Result<Merchant, MerchantError> {
        let open = |column: &str, sealed: &str| {
            if sealed.is_empty() {
                // Not set yet (a merchant installed from Cafe24 before its KOMOJU keys).
                return Ok(SecretString::from(String::new()));
            }
            secrets
                .open(&row.mall_id, column, sealed)
                .map_err(|source| MerchantError::Secret {
                    mall_id: row.mall_id.clone(),
                    source,
                })
        };
        Ok(Merchant {
            mall_id: row.mall_id.clone(),
            public_ref: row.public_ref.clone(),
            komoju_secret_key: open(SECRET_KEY_COLUMN, &row.komoju_secret_key)?,
            komoju_webhook_secret: open(WEBHOOK_SECRET_COLUMN, &row.komoju_webhook_secret)?,
            payment_types: row.payment_types.to_vec(),
            locale: row.locale,
            cancel_mode: row.cancel_mode,
            allowed_hosts: split_list(&row.allowed_hosts),
            paymethod_codes: parse_codes(&row.paymethod_codes),
            enabled: row.enabled,
            notify_encoding: row.notify_encoding,
            external_review: row.external_review,
            refund_duplicates: row.refund_duplicates,
            capture: row.capture,
            auto_capture_after_days: row.auto_capture_after_days,
            shop_locales: Vec::new(),
        })
    }

    /// The language of KOMOJU's hosted page (`default_locale`) for a checkout of shop
    /// `shop_no`: the request's `lang` (Cafe24's `ko_KR`, `ja_JP`, `en_US`) when it is one
    /// of ours, else the shop's `language_code` as Cafe24 lists it, else the merchant's
    /// `locale` setting.
    pub fn locale_for(&self, shop_no: i32, lang: Option<&str>) -> Locale {
        lang.and_then(Locale::of_lang)
            .or_else(|| {
                self.shop_locales
                    .iter()
                    .find(|(no, _)| *no == shop_no)
                    .map(|(_, l)| *l)
            })
            .unwrap_or(self.locale)
    }

    /// The payment types a checkout of `flow` may offer: synchronous checkout leaves out
    /// the deferred types (§6.1), since Cafe24's synchronous flow cannot hear of money
    /// that arrives later.
    pub fn payment_types_for(&self, synchronous: bool) -> Vec<String> {
        self.payment_types
            .iter()
            .filter(|t| !(synchronous && DEFERRED_PAYMENT_TYPES.contains(&t.as_str())))
            .cloned()
            .collect()
    }

    /// Cafe24's `paymethod` for a KOMOJU payment type: the merchant's override, else
    /// `card` for `credit_card` and `etc` for everything else (§6.1).
    pub fn paymethod(&self, payment_type: Option<&str>) -> String {
        match payment_type {
            Some(t) => self.paymethod_codes.get(t).cloned().unwrap_or_else(|| {
                if t == "credit_card" {
                    "card".into()
                } else {
                    "etc".into()
                }
            }),
            None => "etc".into(),
        }
    }
}

/// The input of `merchant add`, validated by [`MerchantInput::validate`].
#[derive(Debug, Clone)]
pub struct MerchantInput {
    pub mall_id: String,
    pub shop_no: i32,
    pub public_ref: String,
    pub komoju_secret_key: SecretString,
    pub komoju_webhook_secret: SecretString,
    pub payment_types: Vec<String>,
    pub locale: Locale,
    pub cancel_mode: CancelMode,
    pub allowed_hosts: Vec<String>,
    /// `type=code` pairs.
    pub paymethod_codes: Vec<String>,
    pub notify_encoding: NotifyEncoding,
    /// The shop's name and currency, shown by the external-checkout button.
    pub shop_name: String,
    pub currency: String,
    /// The external-checkout review page.
    pub external_review: bool,
    /// Refund duplicate payments automatically.
    pub refund_duplicates: bool,
    /// When card payments are captured.
    pub capture: CaptureMode,
    /// Days before an uncaptured authorization is captured automatically
    /// ([`AUTO_CAPTURE_DAYS`]).
    pub auto_capture_after_days: i32,
}

impl MerchantInput {
    /// Checks every field; the message names the field (its flag), never a secret
    /// value. The KOMOJU fields follow [`rules`], the settings form's rules too.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_identity()?;
        self.validate_komoju()?;
        self.validate_shop()
    }

    /// `--mall-id`, `--shop-no`, `--public-ref`: what the `partner_id` is made of.
    fn validate_identity(&self) -> Result<(), String> {
        if !is_valid_mall_id(&self.mall_id) {
            return Err("--mall-id must be 1-50 characters of a-z, 0-9, '_' or '-'".into());
        }
        if !(1..=9999).contains(&self.shop_no) {
            return Err("--shop-no must be between 1 and 9999".into());
        }
        if self.public_ref.is_empty()
            || self.public_ref.len() > 100
            || !self
                .public_ref
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(
                "--public-ref must be 1-100 characters of A-Z, a-z, 0-9, '_', '.' or '-'".into(),
            );
        }
        Ok(())
    }

    /// The KOMOJU key, webhook secret and payment types, by the shared [`rules`].
    fn validate_komoju(&self) -> Result<(), String> {
        use secrecy::ExposeSecret;
        rules::secret_key(self.komoju_secret_key.expose_secret())
            .map_err(|e| format!("--komoju-secret-key {}", e.rule()))?;
        rules::webhook_secret(self.komoju_webhook_secret.expose_secret())
            .map_err(|e| format!("--komoju-webhook-secret {}", e.rule()))?;
        rules::payment_types(&self.payment_types)
            .map_err(|e| format!("--payment-types {}", e.rule()))
    }

    /// `--allowed-host`, `--currency`, `--shop-name`, `--paymethod`.
    fn validate_shop(&self) -> Result<(), String> {
        for h in &self.allowed_hosts {
            let bare = h.strip_prefix('.').unwrap_or(h);
            if bare.is_empty()
                || url::Host::parse(bare).is_err()
                || h.contains(['/', ':', '@', ','])
            {
                return Err(format!("--allowed-host {h:?} is not a host name"));
            }
        }
        if !AUTO_CAPTURE_DAYS.contains(&self.auto_capture_after_days) {
            return Err(format!(
                "--auto-capture-after-days must be between {} and {} (KOMOJU's authorizations expire after 30 days)",
                AUTO_CAPTURE_DAYS.start(),
                AUTO_CAPTURE_DAYS.end()
            ));
        }
        if crate::money::Currency::parse(&self.currency).is_err() {
            return Err(
                "--currency must be one of the supported currencies (JPY, KRW, USD, EUR, PHP, …)"
                    .into(),
            );
        }
        if self.shop_name.chars().count() > 100 || self.shop_name.chars().any(char::is_control) {
            return Err("--shop-name must be at most 100 printable characters".into());
        }
        for pair in &self.paymethod_codes {
            match pair.split_once('=') {
                Some((t, c)) if !t.is_empty() && !c.is_empty() && !pair.contains(',') => {}
                _ => return Err(format!("--paymethod {pair:?} must be TYPE=CODE")),
            }
        }
        Ok(())
    }

    /// The row to store, secrets sealed. Errors: a secret could not be sealed.
    pub fn to_row(
        &self,
        secrets: &SecretBox,
        now: chrono::NaiveDateTime,
    ) -> Result<MerchantRow, crate::secrets::SecretError> {
        Ok(MerchantRow {
            mall_id: self.mall_id.clone(),
            public_ref: self.public_ref.clone(),
            komoju_secret_key: secrets.seal(
                &self.mall_id,
                SECRET_KEY_COLUMN,
                &self.komoju_secret_key,
            )?,
            komoju_webhook_secret: secrets.seal(
                &self.mall_id,
                WEBHOOK_SECRET_COLUMN,
                &self.komoju_webhook_secret,
            )?,
            payment_types: kinds::PaymentTypes::from_list(&self.payment_types),
            locale: self.locale,
            cancel_mode: self.cancel_mode,
            allowed_hosts: self.allowed_hosts.join(","),
            paymethod_codes: self.paymethod_codes.join(","),
            enabled: true,
            created_at: now,
            updated_at: now,
            notify_encoding: self.notify_encoding,
            external_review: self.external_review,
            refund_duplicates: self.refund_duplicates,
            capture: self.capture,
            auto_capture_after_days: self.auto_capture_after_days,
        })
    }

    /// The shop row to store (enabled).
    pub fn to_shop_row(&self, now: chrono::NaiveDateTime) -> crate::db::merchants::ShopRow {
        crate::db::merchants::ShopRow {
            mall_id: self.mall_id.clone(),
            shop_no: self.shop_no,
            enabled: true,
            created_at: now,
            updated_at: now,
            shop_name: self.shop_name.clone(),
            currency: self.currency.clone(),
            gateway_state: Registration::Off,
            script_state: Registration::Off,
            script_no: None,
            timezone: String::new(),
            language_code: String::new(),
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_codes(s: &str) -> BTreeMap<String, String> {
    split_list(s)
        .iter()
        .filter_map(|p| p.split_once('='))
        .map(|(t, c)| (t.to_owned(), c.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant(types: &[&str]) -> Merchant {
        Merchant {
            mall_id: "demomall".into(),
            public_ref: "demo-public".into(),
            komoju_secret_key: SecretString::from("sk_test_x".to_owned()),
            komoju_webhook_secret: SecretString::from("whsec_x".to_owned()),
            payment_types: types.iter().map(|s| s.to_string()).collect(),
            locale: Locale::Ja,
            cancel_mode: CancelMode::Sync,
            allowed_hosts: vec![],
            paymethod_codes: parse_codes("paypay=pp"),
            enabled: true,
            notify_encoding: NotifyEncoding::Form,
            external_review: false,
            refund_duplicates: true,
            capture: CaptureMode::Auto,
            auto_capture_after_days: 7,
            shop_locales: vec![(2, Locale::Ko)],
        }
    }

    #[test]
    fn the_hosted_pages_language_is_the_requests_then_the_shops_then_the_merchants() {
        let m = merchant(&["credit_card"]);
        assert_eq!(m.locale_for(2, Some("en_US")), Locale::En);
        assert_eq!(m.locale_for(2, Some("zh_CN")), Locale::Ko);
        assert_eq!(m.locale_for(2, None), Locale::Ko);
        assert_eq!(m.locale_for(1, None), Locale::Ja);
    }

    #[test]
    fn synchronous_checkout_never_offers_deferred_types() {
        let m = merchant(&[
            "credit_card",
            "konbini",
            "bank_transfer",
            "pay_easy",
            "paypay",
        ]);
        assert_eq!(m.payment_types_for(true), vec!["credit_card", "paypay"]);
        assert_eq!(m.payment_types_for(false).len(), 5);
    }

    #[test]
    fn paymethod_defaults_and_overrides() {
        let m = merchant(&["credit_card"]);
        assert_eq!(m.paymethod(Some("credit_card")), "card");
        assert_eq!(m.paymethod(Some("konbini")), "etc");
        assert_eq!(m.paymethod(Some("paypay")), "pp");
        assert_eq!(m.paymethod(None), "etc");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?}", merchant(&["credit_card"]));
        assert!(!shown.contains("sk_test_x"));
        assert!(!shown.contains("whsec_x"));
    }
}
