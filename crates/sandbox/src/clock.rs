//! Time as KOMOJU writes it, and the deadlines it sets. Every timestamp the stand-in
//! sends is UTC, whole seconds, with a `Z`: `"2018-11-13T06:20:21Z"` (docs.komoju.com,
//! "Show a payment"; the WooCommerce plugin's webhook fixtures
//! `tests/cypress/e2e/refunded-webhook.cy.js`). KOMOJU's older hosted-page guide shows
//! sessions as `"2020-12-09T18:26:59.000+09:00"`; a client reading RFC 3339 reads both.
//! Deadlines are calendar days in Japan: 23:59:59 JST is 14:59:59 UTC.

use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};

/// A timestamp, UTC, whole seconds.
pub(crate) type Time = DateTime<Utc>;

const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("+09:00 is a valid offset"),
};

/// Now, truncated to whole seconds.
pub(crate) fn now() -> Time {
    Utc::now().trunc_subsecs(0)
}

/// `2018-11-13T06:20:21Z`.
pub(crate) fn format_time(t: &Time) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `days` calendar days (in Japan) after `created`, at 23:59:59 JST. KOMOJU's konbini
/// examples are 3 days: created `2018-11-13T06:20:21Z`, `payment_deadline`
/// `2018-11-16T14:59:59Z` (docs.komoju.com, "Show a payment"); the WooCommerce card
/// fixture is 2 days: created `2023-02-17T11:57:01Z`, deadline `2023-02-19T14:59:59Z`.
pub(crate) fn deadline_after(created: &Time, days: u64) -> Time {
    let local = created.with_timezone(&JST).date_naive() + chrono::Days::new(days);
    local
        .and_hms_opt(23, 59, 59)
        .and_then(|t| t.and_local_timezone(JST).single())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(*created + TimeDelta::days(days as i64))
}
