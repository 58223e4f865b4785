//! The service's clock. Production reads the system time; tests move it forward to
//! expire tokens and reach retry times without waiting. Every time the service stores
//! or compares comes from here, never from the database's `now()`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

/// System time plus an offset that only tests change. Cheap to clone; clones share the
/// offset.
/// The zone a time is shown in when the shop's is empty or not an IANA name Cafe24 could
/// mean: Asia/Seoul, Cafe24's home (docs/decisions.md).
pub const FALLBACK_ZONE: Tz = chrono_tz::Asia::Seoul;

/// The IANA zone named `name` (Cafe24's `shops[].timezone`, e.g. `Asia/Tokyo`), or
/// [`FALLBACK_ZONE`] when `name` is empty or unknown.
pub fn zone(name: &str) -> Tz {
    name.trim().parse::<Tz>().unwrap_or(FALLBACK_ZONE)
}

/// `at` (UTC without a zone, as the database stores it) as pages show it in the shop's
/// zone `zone_name` (see [`zone`]): `YYYY-MM-DD HH:MM` and the zone's abbreviation,
/// e.g. `2026-12-06 18:04 JST` for 09:04 UTC in `Asia/Tokyo`.
pub fn shop_time(at: NaiveDateTime, zone_name: &str) -> String {
    at.and_utc()
        .with_timezone(&zone(zone_name))
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The real time.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Now, in UTC.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Now, as stored in the database (UTC, no zone).
    pub fn now_naive(&self) -> NaiveDateTime {
        self.now().naive_utc()
    }

    /// Now, in whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.now().timestamp()
    }

    /// Moves this clock (and every clone) forward by `by`. For tests.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap_or_default()
    }

    #[test]
    fn a_time_is_shown_in_the_shops_zone() {
        let at = utc("2026-12-06 09:04:30");
        assert_eq!(shop_time(at, "Asia/Tokyo"), "2026-12-06 18:04 JST");
        assert_eq!(shop_time(at, "America/Los_Angeles"), "2026-12-06 01:04 PST");
        assert_eq!(shop_time(at, "Asia/Seoul"), "2026-12-06 18:04 KST");
    }

    #[test]
    fn an_unknown_zone_is_seoul() {
        let at = utc("2026-12-06 20:00:00");
        assert_eq!(shop_time(at, ""), "2026-12-07 05:00 KST");
        assert_eq!(shop_time(at, "Mars/Olympus"), "2026-12-07 05:00 KST");
    }
}
