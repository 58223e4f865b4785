//! The merchant row as the settings site reads it, and its KOMOJU secrets opened by
//! column (the column name is the sealing's associated data, [`crate::secrets`]).

use secrecy::SecretString;

use super::{db_error, SiteError};
use crate::db::{self, merchants::MerchantRow};
use crate::services::Services;

/// The merchant row of `mall_id`. Errors: none stored ([`SiteError::NotConnected`]), the
/// database.
pub(super) async fn merchant_row(app: &Services, mall_id: &str) -> Result<MerchantRow, SiteError> {
    let mall = mall_id.to_owned();
    app.db
        .run(move |c| db::merchants::find(c, &mall))
        .await
        .map_err(|e| db_error("loading the merchant", e))?
        .ok_or(SiteError::NotConnected)
}

/// Which sealed KOMOJU secret of the row to open.
#[derive(Debug, Clone, Copy)]
pub(super) enum KomojuSecret {
    /// `komoju_secret_key`: the API key (`sk_live_…`/`sk_test_…`).
    SecretKey,
    /// `komoju_webhook_secret`: keys the webhook signatures.
    WebhookSecret,
}

impl KomojuSecret {
    /// The column, also the sealing's associated data.
    pub(super) fn column(self) -> &'static str {
        match self {
            KomojuSecret::SecretKey => crate::merchant::SECRET_KEY_COLUMN,
            KomojuSecret::WebhookSecret => crate::merchant::WEBHOOK_SECRET_COLUMN,
        }
    }

    fn sealed(self, row: &MerchantRow) -> &str {
        match self {
            KomojuSecret::SecretKey => &row.komoju_secret_key,
            KomojuSecret::WebhookSecret => &row.komoju_webhook_secret,
        }
    }
}

/// The row's `which` secret opened; `None` while none is saved. Errors: the sealed value
/// does not open ([`SiteError::Internal`], logged without the value).
pub(super) fn open_secret(
    app: &Services,
    row: &MerchantRow,
    which: KomojuSecret,
) -> Result<Option<SecretString>, SiteError> {
    let sealed = which.sealed(row);
    if sealed.is_empty() {
        return Ok(None);
    }
    app.secrets
        .open(&row.mall_id, which.column(), sealed)
        .map(Some)
        .map_err(|e| {
            log::error!("merchant {}: {e}", row.mall_id);
            SiteError::Internal
        })
}
