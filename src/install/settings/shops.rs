//! The mall's shops: listed by Cafe24 (the truth about them) and recorded here.

use super::refusal::admin_error;
use super::{db_error, SiteError};
use crate::cafe24::admin::Shop;
use crate::db::{self, merchants::ShopRow};
use crate::install::tokens::{self, AdminError};
use crate::services::Services;

/// The currency a shop Cafe24 lists without one is recorded with.
const DEFAULT_CURRENCY: &str = "JPY";

/// The mall's shops from Cafe24 (one `GET /admin/shops`), each recorded locally (name
/// currency, time zone, language). Errors: [`AdminError`], as the caller reports it.
pub(super) async fn cafe24_shops(app: &Services, mall_id: &str) -> Result<Vec<Shop>, AdminError> {
    let shops = tokens::shops(app, mall_id).await?;
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    let recorded = shops.clone();
    app.db
        .run(move |c| {
            for s in &recorded {
                let currency = if s.currency_code.is_empty() {
                    DEFAULT_CURRENCY
                } else {
                    &s.currency_code
                };
                let listed = db::merchants::ListedShop {
                    shop_no: s.shop_no,
                    shop_name: &s.shop_name,
                    currency,
                    timezone: &s.timezone,
                    language_code: &s.language_code,
                };
                db::merchants::ensure_shop(c, &mall, &listed, now)?;
            }
            Ok(())
        })
        .await?;
    Ok(shops)
}

/// The shop as recorded here and as Cafe24 lists it now (one `GET /admin/shops`).
/// Errors: not one of the mall's shops ([`SiteError::UnknownShop`]), Cafe24, the
/// database.
pub(super) async fn shop_row(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
) -> Result<(ShopRow, Shop), SiteError> {
    let shops = cafe24_shops(app, mall_id)
        .await
        .map_err(|e| admin_error("listing the shops", mall_id, e))?;
    let listed = shops
        .into_iter()
        .find(|s| s.shop_no == shop_no)
        .ok_or(SiteError::UnknownShop)?;
    let mall = mall_id.to_owned();
    let row = app
        .db
        .run(move |c| db::merchants::find_shop(c, &mall, shop_no))
        .await
        .map_err(|e| db_error("loading the shop", e))?
        .ok_or(SiteError::UnknownShop)?;
    Ok((row, listed))
}
