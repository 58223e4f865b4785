//! The merchant cache: merchants recently read and opened, kept a few seconds
//! (`MERCHANT_CACHE_SECS`); see [`MerchantCache`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Merchant;
use crate::db;

/// A merchant as read and opened, with its shops' `enabled` flags.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) merchant: Merchant,
    /// `(shop_no, enabled)` of every registered shop.
    pub(super) shops: Vec<(i32, bool)>,
    pub(super) read_at: Instant,
    /// [`crate::db::merchants::writes`] before the read.
    pub(super) writes: u64,
}

/// Merchants recently read and opened, so that a webhook or a checkout does not read the
/// merchant's row and open its secrets again (`MERCHANT_CACHE_SECS`, default 5 s; 0
/// turns it off). An entry is used until it is that old, or until this process writes
/// any merchant or shop (the settings site, `merchant add`/`disable`): a change made here
/// is seen at once, one made by another process within the TTL. Unknown malls are not
/// kept (a flood of made-up `mall_id`s costs a read each, never memory).
#[derive(Debug)]
pub struct MerchantCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl MerchantCache {
    /// A cache whose entries live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> MerchantCache {
        MerchantCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, mall_id: &str) -> Option<Entry> {
        let entries = self.lock();
        let entry = entries.get(mall_id)?;
        (entry.read_at.elapsed() < self.ttl && entry.writes == db::merchants::writes())
            .then(|| entry.clone())
    }

    pub(super) fn put(&self, entry: Entry) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        // Bounded by the registered malls; expired entries go when the map is large.
        if entries.len() >= 10_000 {
            let ttl = self.ttl;
            entries.retain(|_, e| e.read_at.elapsed() < ttl);
        }
        entries.insert(entry.merchant.mall_id.clone(), entry);
    }
}
