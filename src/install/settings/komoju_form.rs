//! Saving the KOMOJU form: the fields checked by the merchant-settings rules
//! ([`crate::merchant::rules`], shared with the command line), the key checked with
//! KOMOJU itself (one `GET /payment_methods`) before anything is stored, the payment
//! types checked against what KOMOJU offers that key, and one transaction that stores
//! the row only while the session is current.

use secrecy::{ExposeSecret, SecretString};

use super::merchant_keys::{merchant_row, open_secret, KomojuSecret};
use super::session::still_current;
use super::webhook::register_endpoint;
use super::{db_error, FieldError, SiteError};
use crate::db::{self, merchants::MerchantRow};
use crate::keys::session::Session;
use crate::komoju::{KomojuError, PaymentMethod};
use crate::merchant::kinds::PaymentTypes;
use crate::merchant::{rules, CancelMode, CaptureMode, Locale};
use crate::services::Services;

/// The KOMOJU form. Empty key fields leave the stored keys as they are.
#[derive(Debug, Default)]
pub struct KomojuForm {
    pub secret_key: SecretString,
    pub webhook_secret: SecretString,
    /// KOMOJU `type_slug`s, e.g. `credit_card`.
    pub payment_types: Vec<String>,
    /// The page showed the payment-type choices (so an empty list is the merchant's
    /// choice, refused, not the absence of a choice).
    pub payment_types_shown: bool,
    /// `sync` or `async`.
    pub cancel_mode: String,
    /// `ja`, `en` or `ko`.
    pub locale: String,
    pub external_review: bool,
    /// `auto` or `manual`; `None` keeps the stored mode.
    pub capture: Option<String>,
    /// Days, 1–29; `None` keeps the stored number.
    pub auto_capture_after_days: Option<String>,
}

/// The form's new secrets, trimmed and checked; empty when the field was left empty.
struct NewSecrets {
    key: String,
    webhook_secret: String,
}

/// Saves the KOMOJU settings. A new secret key must be `sk_live_…`/`sk_test_…`
/// ([`rules::secret_key`]) and is checked with one KOMOJU call (`GET /payment_methods`)
/// before anything is stored; the payment types must be ones KOMOJU offers that key.
/// Errors: a field is wrong ([`SiteError::Field`], nothing saved), KOMOJU unreachable,
/// the session ended meanwhile, the database.
pub async fn save_komoju(
    app: &Services,
    session: &Session,
    form: KomojuForm,
) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let mut row = merchant_row(app, mall_id).await?;
    let new = new_secrets(&form)?;
    let key = match (
        new.key.is_empty(),
        open_secret(app, &row, KomojuSecret::SecretKey)?,
    ) {
        (false, _) => SecretString::from(new.key.clone()),
        (true, Some(stored)) => stored,
        (true, None) => return Err(FieldError::wrong("secret_key", "field-secret-key-missing")),
    };
    let offered = offered_to(app, mall_id, &key).await?;
    let payment_types = chosen_types(&form, &row, &offered)?;
    let cancel_mode = CancelMode::parse(&form.cancel_mode)
        .ok_or_else(|| FieldError::wrong("cancel_mode", "field-cancel-mode"))?;
    let locale =
        Locale::parse(&form.locale).ok_or_else(|| FieldError::wrong("locale", "field-locale"))?;
    let (capture, days) = capture_choice(&form, &row)?;
    seal_into(app, &mut row, &new)?;
    row.capture = capture;
    row.auto_capture_after_days = days;
    row.payment_types = PaymentTypes::from_list(&payment_types);
    row.cancel_mode = cancel_mode;
    row.locale = locale;
    row.external_review = form.external_review;
    row.enabled = true;
    row.updated_at = app.clock.now_naive();
    store_if_current(app, session, row).await?;
    log::info!("merchant {mall_id}: KOMOJU settings saved");
    register_endpoint(app, mall_id).await;
    Ok(())
}

/// The capture mode and days the form chose (the stored ones where it says nothing).
/// Errors: a mode other than `auto`/`manual`, days outside
/// [`crate::merchant::AUTO_CAPTURE_DAYS`].
fn capture_choice(form: &KomojuForm, row: &MerchantRow) -> Result<(CaptureMode, i32), SiteError> {
    let capture = match form.capture.as_deref() {
        None => row.capture,
        Some(mode) => CaptureMode::parse(mode).ok_or_else(|| {
            SiteError::Form("Card payments must be captured auto or manual".into())
        })?,
    };
    let days = match form.auto_capture_after_days.as_deref().map(str::trim) {
        None | Some("") => row.auto_capture_after_days,
        Some(text) => text
            .parse::<i32>()
            .ok()
            .filter(|d| crate::merchant::AUTO_CAPTURE_DAYS.contains(d))
            .ok_or_else(|| {
                FieldError::wrong("auto_capture_after_days", "field-auto-capture-days")
            })?,
    };
    Ok((capture, days))
}

/// The form's secrets, trimmed, each checked by its rule when given.
fn new_secrets(form: &KomojuForm) -> Result<NewSecrets, SiteError> {
    let key = form.secret_key.expose_secret().trim().to_owned();
    let webhook_secret = form.webhook_secret.expose_secret().trim().to_owned();
    if !key.is_empty() {
        rules::secret_key(&key)
            .map_err(|_| FieldError::wrong("secret_key", "field-secret-key-format"))?;
    }
    if !webhook_secret.is_empty() {
        rules::webhook_secret(&webhook_secret)
            .map_err(|_| FieldError::wrong("webhook_secret", "field-webhook-secret-format"))?;
    }
    Ok(NewSecrets {
        key,
        webhook_secret,
    })
}

/// The payment types to store: the form's choice, or on the first save (no list was
/// shown yet, it comes from KOMOJU with the key) the stored default where KOMOJU offers
/// it. Errors: none chosen, or one KOMOJU does not offer `offered`'s key.
fn chosen_types(
    form: &KomojuForm,
    row: &MerchantRow,
    offered: &[PaymentMethod],
) -> Result<Vec<String>, SiteError> {
    let is_offered = |t: &str| offered.iter().any(|m| m.type_slug == t);
    let payment_types: Vec<String> = if form.payment_types_shown {
        form.payment_types.clone()
    } else {
        row.payment_types
            .iter()
            .filter(|t| is_offered(t))
            .map(str::to_owned)
            .collect()
    };
    if payment_types.is_empty() {
        return Err(FieldError::wrong(
            "payment_types",
            "field-payment-types-none",
        ));
    }
    if let Some(t) = payment_types.iter().find(|t| !is_offered(t)) {
        return Err(SiteError::Field(FieldError {
            field: "payment_types",
            message: "field-payment-types-not-offered",
            value: t.clone(),
        }));
    }
    rules::payment_types(&payment_types)
        .map_err(|_| FieldError::wrong("payment_types", "field-payment-types-format"))?;
    Ok(payment_types)
}

/// Seals the new secrets into `row`. Errors: a secret could not be sealed, or the row
/// still has no webhook secret ([`SiteError::Field`]).
fn seal_into(app: &Services, row: &mut MerchantRow, new: &NewSecrets) -> Result<(), SiteError> {
    let mall_id = row.mall_id.clone();
    let seal = |which: KomojuSecret, value: &str| {
        app.secrets
            .seal(
                &mall_id,
                which.column(),
                &SecretString::from(value.to_owned()),
            )
            .map_err(|e| {
                log::error!("sealing a KOMOJU secret of {mall_id}: {e}");
                SiteError::Internal
            })
    };
    if !new.key.is_empty() {
        row.komoju_secret_key = seal(KomojuSecret::SecretKey, &new.key)?;
    }
    if !new.webhook_secret.is_empty() {
        row.komoju_webhook_secret = seal(KomojuSecret::WebhookSecret, &new.webhook_secret)?;
    }
    if row.komoju_webhook_secret.is_empty() {
        return Err(FieldError::wrong(
            "webhook_secret",
            "field-webhook-secret-missing",
        ));
    }
    Ok(())
}

/// What KOMOJU offers `key` (`GET /payment_methods`): the key's check. Errors: KOMOJU
/// refuses the key (a form error), or cannot be reached.
async fn offered_to(
    app: &Services,
    mall_id: &str,
    key: &SecretString,
) -> Result<Vec<PaymentMethod>, SiteError> {
    match app.komoju.payment_methods(key).await {
        Ok(methods) => Ok(methods),
        Err(KomojuError::Api { status: 401, .. }) => {
            log::info!("merchant {mall_id}: KOMOJU refused the secret key; nothing saved");
            Err(FieldError::wrong("secret_key", "field-secret-key-refused"))
        }
        Err(e) => {
            log::warn!("checking the KOMOJU key of {mall_id}: {e}");
            Err(SiteError::Upstream(
                "KOMOJU could not be reached to check the key; nothing was saved".into(),
            ))
        }
    }
}

/// Stores the merchant row in one transaction that first checks the session is still
/// of the mall's generation and the mall connected: a save racing a disconnect enables
/// nothing ([`SiteError::NoSession`]).
async fn store_if_current(
    app: &Services,
    session: &Session,
    row: MerchantRow,
) -> Result<(), SiteError> {
    let current = session.clone();
    let saved = app
        .db
        .run(move |c| {
            db::transaction(c, |c| {
                if !still_current(c, &current)? {
                    return Ok(false);
                }
                db::merchants::update(c, &row)?;
                Ok(true)
            })
        })
        .await
        .map_err(|e| db_error("saving the KOMOJU settings", e))?;
    if !saved {
        log::warn!(
            "merchant {}: KOMOJU settings not saved, the session ended (disconnected)",
            session.mall_id
        );
        return Err(SiteError::NoSession);
    }
    Ok(())
}
