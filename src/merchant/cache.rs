//! Loading merchants as the use cases need them ([`Merchants`]: read, opened, checked
//! against the request), through the merchant cache: merchants recently read and
//! opened, kept a few seconds (`MERCHANT_CACHE_SECS`); see `MerchantCache`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Merchant;
use crate::cafe24::partner_id::PartnerId;
use crate::db::{self, merchants::ShopRow, Database};
use crate::error::ApiError;
use crate::secrets::SecretBox;

/// The merchants as the use cases load them: the database, the key that opens their
/// secrets, and the cache. Held by [`crate::services::Services`].
#[derive(Debug)]
pub struct Merchants {
    db: Database,
    secrets: SecretBox,
    cache: MerchantCache,
}

impl Merchants {
    /// Loads from `db`, opens with `secrets`, keeps entries `ttl` (`MERCHANT_CACHE_SECS`).
    pub fn new(db: Database, secrets: SecretBox, ttl: Duration) -> Merchants {
        Merchants {
            db,
            secrets,
            cache: MerchantCache::new(ttl),
        }
    }

    /// The merchant from the cache, or read and opened (one database hop) and kept.
    /// Errors: unknown mall (`unknown_merchant`), the database, a secret that cannot be
    /// opened (internal, logged).
    async fn cached(&self, mall_id: &str) -> Result<Entry, ApiError> {
        if let Some(entry) = self.cache.get(mall_id) {
            return Ok(entry);
        }
        let writes = db::merchants::writes();
        let read_at = Instant::now();
        let mall = mall_id.to_owned();
        let (row, shops, bad_signatures) = self
            .db
            .run(move |c| {
                let Some(row) = db::merchants::find(c, &mall)? else {
                    return Ok((None, Vec::new(), false));
                };
                let shops: Vec<ShopRow> = db::merchants::shops(c, &mall)?;
                let bad = db::webhook_events::bad_signatures(c, &mall)?.is_some();
                Ok((Some(row), shops, bad))
            })
            .await
            .map_err(|e| ApiError::from_db("loading merchant", e))?;
        let row = row.ok_or(ApiError::UnknownMerchant)?;
        let mut merchant = Merchant::open(&row, &self.secrets).map_err(|e| {
            log::error!("{e}");
            ApiError::Internal
        })?;
        merchant.shop_locales = shops
            .iter()
            .filter_map(|s| super::Locale::of_lang(&s.language_code).map(|l| (s.shop_no, l)))
            .collect();
        let entry = Entry {
            merchant,
            shops: shops.iter().map(|s| (s.shop_no, s.enabled)).collect(),
            read_at,
            writes,
            bad_signatures,
        };
        self.cache.put(entry.clone());
        Ok(entry)
    }

    /// Loads and opens the merchant (through `MerchantCache`). With `shop_no` (a new
    /// request from Cafe24) the mall must be enabled and the shop registered and enabled:
    /// unknown mall or shop → `unknown_merchant`, disabled mall → `merchant_disabled`.
    /// Without it (KOMOJU reporting on money that already moved) only the mall must exist:
    /// facts are applied even for a merchant disabled since.
    pub async fn load(&self, mall_id: &str, shop_no: Option<i32>) -> Result<Merchant, ApiError> {
        let entry = self.cached(mall_id).await?;
        if let Some(no) = shop_no {
            if !entry.merchant.enabled {
                return Err(ApiError::MerchantDisabled);
            }
            if !entry
                .shops
                .iter()
                .any(|&(shop, enabled)| shop == no && enabled)
            {
                log::info!("mall {} shop {no} is not enabled", entry.merchant.mall_id);
                return Err(ApiError::UnknownMerchant);
            }
        }
        Ok(entry.merchant)
    }

    /// Whether a correctly signed KOMOJU delivery for `mall_id` has failed signatures to
    /// clear: what the merchant's cached entry says, or `true` when nothing is cached
    /// (the delete is then tried, as it always was). Saves every signed webhook a write
    /// of its own (a second commit on PostgreSQL, a second hop to SQLite's thread).
    pub fn has_bad_signatures(&self, mall_id: &str) -> bool {
        self.cache.get(mall_id).map_or(true, |e| e.bad_signatures)
    }

    /// Records on the cached entry (if any) that `mall_id` now has (`true`, one was just
    /// counted) or has no (`false`, just cleared) failed signatures. Another instance's
    /// count is seen when the entry is read again (`MERCHANT_CACHE_SECS`).
    pub fn note_bad_signatures(&self, mall_id: &str, present: bool) {
        if let Some(entry) = self.cache.lock().get_mut(mall_id) {
            entry.bad_signatures = present;
        }
    }

    /// Loads the merchant a `partner_id` names, as [`Merchants::load`] does (with its shop
    /// when `new_request`), and checks that its `public_ref` is the merchant's: a
    /// `partner_id` with another mall's or a made-up `public_ref` is `unknown_merchant`.
    pub async fn load_partner(
        &self,
        partner: &PartnerId,
        new_request: bool,
    ) -> Result<Merchant, ApiError> {
        let shop_no = new_request.then_some(partner.shop_no());
        let merchant = self.load(partner.mall_id(), shop_no).await?;
        if merchant.public_ref != partner.public_ref() {
            log::info!(
                "partner_id {partner} does not carry mall {}'s public_ref",
                merchant.mall_id
            );
            return Err(ApiError::UnknownMerchant);
        }
        Ok(merchant)
    }
}

/// A merchant as read and opened, with its shops' `enabled` flags.
#[derive(Debug, Clone)]
struct Entry {
    merchant: Merchant,
    /// `(shop_no, enabled)` of every registered shop.
    shops: Vec<(i32, bool)>,
    read_at: Instant,
    /// [`crate::db::merchants::writes`] before the read.
    writes: u64,
    /// Whether the mall had KOMOJU deliveries with a bad signature not yet cleared by a
    /// signed one (`webhook_signature_failures`), as read with the merchant and kept up
    /// to date by [`Merchants::note_bad_signatures`].
    bad_signatures: bool,
}

/// Merchants recently read and opened, so that a webhook or a checkout does not read the
/// merchant's row and open its secrets again (`MERCHANT_CACHE_SECS`, default 5 s; 0
/// turns it off). An entry is used until it is that old, or until this process writes
/// any merchant or shop (the settings site, `merchant add`/`disable`): a change made here
/// is seen at once, one made by another process within the TTL. Unknown malls are not
/// kept (a flood of made-up `mall_id`s costs a read each, never memory).
#[derive(Debug)]
struct MerchantCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl MerchantCache {
    /// A cache whose entries live `ttl` (zero: nothing is kept).
    fn new(ttl: Duration) -> MerchantCache {
        MerchantCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, mall_id: &str) -> Option<Entry> {
        let entries = self.lock();
        let entry = entries.get(mall_id)?;
        (entry.read_at.elapsed() < self.ttl && entry.writes == db::merchants::writes())
            .then(|| entry.clone())
    }

    fn put(&self, entry: Entry) {
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
