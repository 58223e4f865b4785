//! The cancellation result Cafe24 hears at `cancel_noty_url` (PROTOCOL.md §6.5): its
//! fields in Cafe24's formats, signed with H4 over the strings that are sent.

use super::hash_data;

/// One confirmed refund or cancel of an order, as strings in Cafe24's formats.
#[derive(Debug, Clone)]
pub struct CancelResult<'a> {
    pub partner_id: &'a str,
    /// KOMOJU's payment id (the order's `tid`).
    pub tid: &'a str,
    pub order_id: &'a str,
    /// `card`, `etc` or the merchant's override.
    pub paymethod: String,
    pub currency: &'a str,
    /// Cafe24's decimal string of what was refunded.
    pub cancel_amount: &'a str,
    pub extra_data: &'a str,
}

impl CancelResult<'_> {
    /// The `cancelnoty` notice of a confirmed refund: `status` `P` (refunded),
    /// `result_code` `0000`, `hash_data` = H4 = `cancel_amount · currency · order_id ·
    /// partner_id · tid` keyed with the service key.
    pub fn refunded(&self, service_key: &[u8]) -> Vec<(&'static str, String)> {
        let hash = hash_data::CancelResult {
            cancel_amount: self.cancel_amount,
            currency: self.currency,
            order_id: self.order_id,
            partner_id: self.partner_id,
            tid: self.tid,
        }
        .sign(service_key);
        vec![
            ("request_type", "cancelnoty".to_owned()),
            ("partner_id", self.partner_id.to_owned()),
            ("tid", self.tid.to_owned()),
            ("order_id", self.order_id.to_owned()),
            ("paymethod", self.paymethod.clone()),
            ("currency", self.currency.to_owned()),
            ("cancel_amount", self.cancel_amount.to_owned()),
            ("status", "P".to_owned()),
            ("hash_data", hash),
            ("extra_data", self.extra_data.to_owned()),
            ("result_code", "0000".to_owned()),
            ("result_message", "Refund completed".to_owned()),
        ]
    }
}
