//! The per-shop ceiling of external checkout (issue 18, item 9): the largest amount, in
//! minor units of the shop's currency, that a reservation Cafe24 could not confirm may
//! carry. Set by `merchant limit`; no row means no such ceiling (only the currency's
//! maximum applies). This module stores it and decides nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::external_checkout_limits;
use super::{DbConnection, DbError};

/// The shop's ceiling in minor units, if one is set.
pub fn external_max(
    conn: &mut DbConnection,
    mall_id: &str,
    shop_no: i32,
) -> Result<Option<i64>, DbError> {
    Ok(external_checkout_limits::table
        .find((mall_id, shop_no))
        .select(external_checkout_limits::max_minor)
        .first::<i64>(conn)
        .optional()?)
}

/// Sets (`Some`, positive) or removes (`None`) the shop's ceiling.
pub fn set_external_max(
    conn: &mut DbConnection,
    mall_id: &str,
    shop_no: i32,
    max_minor: Option<i64>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let target = external_checkout_limits::table.find((mall_id, shop_no));
    match max_minor {
        None => {
            diesel::delete(target).execute(conn)?;
        }
        Some(max) => {
            let updated = diesel::update(target)
                .set((
                    external_checkout_limits::max_minor.eq(max),
                    external_checkout_limits::updated_at.eq(now),
                ))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(external_checkout_limits::table)
                    .values((
                        external_checkout_limits::mall_id.eq(mall_id),
                        external_checkout_limits::shop_no.eq(shop_no),
                        external_checkout_limits::max_minor.eq(max),
                        external_checkout_limits::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}
