//! Merchant rows: a Cafe24 mall, its KOMOJU credentials (sealed), settings and shops.
//! Reads and writes only; sealing and opening secrets is [`crate::secrets`]'s job.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{merchant_shops, merchants};
use super::{DbConnection, DbError};

/// A `merchants` row as stored (secrets still sealed).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = merchants)]
pub struct MerchantRow {
    pub mall_id: String,
    pub public_ref: String,
    pub komoju_secret_key: String,
    pub komoju_webhook_secret: String,
    pub payment_types: crate::merchant::kinds::PaymentTypes,
    pub locale: crate::merchant::kinds::Locale,
    pub cancel_mode: crate::merchant::kinds::CancelMode,
    pub allowed_hosts: String,
    pub paymethod_codes: String,
    pub enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// `form` or `json`: how notifications to Cafe24 are encoded.
    pub notify_encoding: crate::merchant::kinds::NotifyEncoding,
    /// External checkout sends the buyer to a review page before KOMOJU.
    pub external_review: bool,
    /// A duplicate payment (a second capture for an order already paid) is refunded in
    /// full automatically (§5).
    pub refund_duplicates: bool,
    /// When card payments are captured: `auto` or `manual` (§7 `payment_data.capture`).
    pub capture: crate::merchant::kinds::CaptureMode,
    /// Days after its authorization a manual-capture payment is captured automatically
    /// (1–29: KOMOJU's authorizations "typically expire after 30 days").
    pub auto_capture_after_days: i32,
}

/// A `merchant_shops` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = merchant_shops)]
pub struct ShopRow {
    pub mall_id: String,
    pub shop_no: i32,
    pub enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Shown by the external-checkout button.
    pub shop_name: String,
    /// The shop's currency (ISO code), for the external-checkout button.
    pub currency: String,
    /// What Cafe24 was told about this shop's payment gateway.
    pub gateway_state: Registration,
    /// What Cafe24 was told about this shop's external-checkout script tag.
    pub script_state: Registration,
    /// The script tag's `script_no`, once Cafe24 answered it.
    pub script_no: Option<String>,
    /// The shop's IANA time zone as Cafe24 lists it (`shops[].timezone`, e.g.
    /// `Asia/Tokyo`); empty until the shops were first listed.
    pub timezone: String,
    /// The shop's language as Cafe24 lists it (`shops[].language_code`, e.g. `ja_JP`);
    /// empty until the shops were first listed.
    pub language_code: String,
}

/// A shop as Cafe24's `GET /admin/shops` describes it, to record.
#[derive(Debug, Clone, Copy)]
pub struct ListedShop<'a> {
    pub shop_no: i32,
    pub shop_name: &'a str,
    /// ISO 4217.
    pub currency: &'a str,
    /// IANA zone name (may be empty).
    pub timezone: &'a str,
    /// Cafe24's form, e.g. `ko_KR` (may be empty).
    pub language_code: &'a str,
}

pub use crate::merchant::kinds::Registration;

text_enum_column!(crate::merchant::kinds::Registration);

/// Merchant and shop writes made by this process so far (every writing function of this
/// module counts itself before it writes). A cache of merchants compares it with the
/// value it read with its entry: see `crate::merchant::cache::MerchantCache`.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// How many merchant or shop writes this process has started.
pub fn writes() -> u64 {
    WRITES.load(Ordering::Acquire)
}

fn count_write() {
    WRITES.fetch_add(1, Ordering::AcqRel);
}

/// The merchant of `mall_id`, if registered.
pub fn find(conn: &mut DbConnection, mall_id: &str) -> Result<Option<MerchantRow>, DbError> {
    Ok(merchants::table
        .find(mall_id)
        .select(MerchantRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The `allowed_hosts` (comma-separated) of the merchant of each order in `order_pks`,
/// by order primary key, in one query; an order without a merchant is absent.
pub fn allowed_hosts_of_orders(
    conn: &mut DbConnection,
    order_pks: &[String],
) -> Result<std::collections::HashMap<String, String>, DbError> {
    use super::schema::orders;
    if order_pks.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, String)> = orders::table
        .inner_join(merchants::table.on(merchants::mall_id.eq(orders::mall_id)))
        .filter(orders::id.eq_any(order_pks))
        .select((orders::id, merchants::allowed_hosts))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// The shop `shop_no` of `mall_id`, if registered.
pub fn find_shop(
    conn: &mut DbConnection,
    mall_id: &str,
    shop_no: i32,
) -> Result<Option<ShopRow>, DbError> {
    Ok(merchant_shops::table
        .find((mall_id, shop_no))
        .select(ShopRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Inserts or updates the merchant (keeping its `created_at`) and enables the shop, in
/// one transaction.
pub fn upsert_with_shop(
    conn: &mut DbConnection,
    row: &MerchantRow,
    shop: &ShopRow,
) -> Result<(), DbError> {
    count_write();
    let shop_no = shop.shop_no;
    conn.transaction(|conn| {
        match find(conn, &row.mall_id)? {
            Some(existing) => {
                let mut updated = row.clone();
                updated.created_at = existing.created_at;
                diesel::update(merchants::table.find(&row.mall_id))
                    .set(&updated)
                    .execute(conn)?;
            }
            None => {
                diesel::insert_into(merchants::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
        match find_shop(conn, &row.mall_id, shop_no)? {
            Some(_) => {
                diesel::update(merchant_shops::table.find((&row.mall_id, shop_no)))
                    .set((
                        merchant_shops::enabled.eq(true),
                        merchant_shops::shop_name.eq(&shop.shop_name),
                        merchant_shops::currency.eq(&shop.currency),
                        merchant_shops::updated_at.eq(row.updated_at),
                    ))
                    .execute(conn)?;
            }
            None => {
                diesel::insert_into(merchant_shops::table)
                    .values(shop)
                    .execute(conn)?;
            }
        }
        Ok(())
    })
}

/// Enables or disables a whole mall (`shop_no` None) or one of its shops. Returns the
/// number of rows changed (0 when nothing matched).
pub fn set_enabled(
    conn: &mut DbConnection,
    mall_id: &str,
    shop_no: Option<i32>,
    enabled: bool,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    count_write();
    Ok(match shop_no {
        None => diesel::update(merchants::table.find(mall_id))
            .set((
                merchants::enabled.eq(enabled),
                merchants::updated_at.eq(now),
            ))
            .execute(conn)?,
        Some(no) => diesel::update(merchant_shops::table.find((mall_id, no)))
            .set((
                merchant_shops::enabled.eq(enabled),
                merchant_shops::updated_at.eq(now),
            ))
            .execute(conn)?,
    })
}

/// Every merchant with its shops, ordered by mall id then shop number.
pub fn list(conn: &mut DbConnection) -> Result<Vec<(MerchantRow, Vec<ShopRow>)>, DbError> {
    let all: Vec<MerchantRow> = merchants::table
        .order(merchants::mall_id.asc())
        .select(MerchantRow::as_select())
        .load(conn)?;
    let shops: Vec<ShopRow> = merchant_shops::table
        .order((merchant_shops::mall_id.asc(), merchant_shops::shop_no.asc()))
        .select(ShopRow::as_select())
        .load(conn)?;
    Ok(all
        .into_iter()
        .map(|m| {
            let own = shops
                .iter()
                .filter(|s| s.mall_id == m.mall_id)
                .cloned()
                .collect();
            (m, own)
        })
        .collect())
}

/// Every shop row of `mall_id`, by shop number.
pub fn shops(conn: &mut DbConnection, mall_id: &str) -> Result<Vec<ShopRow>, DbError> {
    Ok(merchant_shops::table
        .filter(merchant_shops::mall_id.eq(mall_id))
        .order(merchant_shops::shop_no.asc())
        .select(ShopRow::as_select())
        .load(conn)?)
}

/// Inserts the shop row (disabled, both registrations `off`) unless it exists, and
/// refreshes its name, currency, time zone and language from Cafe24's `shops` reply.
pub fn ensure_shop(
    conn: &mut DbConnection,
    mall_id: &str,
    shop: &ListedShop<'_>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    count_write();
    match find_shop(conn, mall_id, shop.shop_no)? {
        Some(_) => {
            diesel::update(merchant_shops::table.find((mall_id, shop.shop_no)))
                .set((
                    merchant_shops::shop_name.eq(shop.shop_name),
                    merchant_shops::currency.eq(shop.currency),
                    merchant_shops::timezone.eq(shop.timezone),
                    merchant_shops::language_code.eq(shop.language_code),
                ))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(merchant_shops::table)
                .values(ShopRow {
                    mall_id: mall_id.to_owned(),
                    shop_no: shop.shop_no,
                    enabled: false,
                    created_at: now,
                    updated_at: now,
                    shop_name: shop.shop_name.to_owned(),
                    currency: shop.currency.to_owned(),
                    gateway_state: Registration::Off,
                    script_state: Registration::Off,
                    script_no: None,
                    timezone: shop.timezone.to_owned(),
                    language_code: shop.language_code.to_owned(),
                })
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Records the shop's payment-gateway registration and whether the service takes its
/// checkouts (`enabled`).
pub fn set_gateway(
    conn: &mut DbConnection,
    mall_id: &str,
    shop_no: i32,
    state: Registration,
    enabled: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    count_write();
    diesel::update(merchant_shops::table.find((mall_id, shop_no)))
        .set((
            merchant_shops::gateway_state.eq(state),
            merchant_shops::enabled.eq(enabled),
            merchant_shops::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records the shop's script-tag registration and its `script_no`.
pub fn set_script(
    conn: &mut DbConnection,
    mall_id: &str,
    shop_no: i32,
    state: Registration,
    script_no: Option<&str>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    count_write();
    diesel::update(merchant_shops::table.find((mall_id, shop_no)))
        .set((
            merchant_shops::script_state.eq(state),
            merchant_shops::script_no.eq(script_no),
            merchant_shops::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Inserts a merchant row unless the mall has one; returns whether it inserted.
pub fn insert_if_new(conn: &mut DbConnection, row: &MerchantRow) -> Result<bool, DbError> {
    count_write();
    if find(conn, &row.mall_id)?.is_some() {
        return Ok(false);
    }
    diesel::insert_into(merchants::table)
        .values(row)
        .execute(conn)?;
    Ok(true)
}

/// Replaces the merchant row's settings (everything but `mall_id`, `public_ref` and
/// `created_at`).
pub fn update(conn: &mut DbConnection, row: &MerchantRow) -> Result<(), DbError> {
    count_write();
    diesel::update(merchants::table.find(&row.mall_id))
        .set((
            merchants::komoju_secret_key.eq(&row.komoju_secret_key),
            merchants::komoju_webhook_secret.eq(&row.komoju_webhook_secret),
            merchants::payment_types.eq(&row.payment_types),
            merchants::locale.eq(row.locale),
            merchants::cancel_mode.eq(row.cancel_mode),
            merchants::enabled.eq(row.enabled),
            merchants::external_review.eq(row.external_review),
            merchants::refund_duplicates.eq(row.refund_duplicates),
            merchants::capture.eq(row.capture),
            merchants::auto_capture_after_days.eq(row.auto_capture_after_days),
            merchants::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}
