//! Cafe24 `hash_data` signatures (PROTOCOL §2).
//!
//! This module owns the one formula,
//! `base64_standard(HMAC-SHA256(key = service_key, message = concat(values)))`, and the
//! field order of the four signatures H1–H4, each fixed in a struct so callers cannot get
//! the order wrong. It signs and verifies the exact strings it is given: it never parses,
//! trims or re-formats a value (`"3065.00"` and `"3065.0"` sign differently), never
//! compares signatures with `==` (verification is constant-time), and never logs the key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256's block size in bytes: the length HMAC pads (or hashes) every key to.
const SHA256_BLOCK_LEN: usize = 64;

/// Longest `hash_data` text worth decoding. A SHA-256 tag is 44 base64 characters.
const MAX_HASH_DATA_LEN: usize = 128;

/// An HMAC-SHA256 keyed with `service_key`, of any length.
///
/// RFC 2104 turns a key into one block: keys longer than the block are replaced by their
/// SHA-256 digest, then the key is padded with zero bytes. Doing that here lets us use the
/// infallible block-sized constructor instead of unwrapping `new_from_slice` (which, for
/// HMAC, accepts every length anyway); the tests check the two agree.
fn keyed_mac(service_key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; SHA256_BLOCK_LEN];
    if service_key.len() > SHA256_BLOCK_LEN {
        let digest = Sha256::digest(service_key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..service_key.len()].copy_from_slice(service_key);
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

fn mac_over(service_key: &[u8], values: &[&str]) -> HmacSha256 {
    let mut mac = keyed_mac(service_key);
    for value in values {
        mac.update(value.as_bytes());
    }
    mac
}

/// Compute `hash_data` over `values` in order, exactly as given, with no separator.
///
/// Returns standard base64 with padding (44 characters), e.g. the §2 test vector
/// `pVyNk4tIav+unOFEb8EC2XxVPJ47ngJbfKZ1RGgeW6w=`.
pub fn sign(service_key: &[u8], values: &[&str]) -> String {
    STANDARD.encode(mac_over(service_key, values).finalize().into_bytes())
}

/// Check a received `hash_data` (base64 text) over the exact received strings.
///
/// The text must be standard-alphabet base64 with canonical padding; anything malformed,
/// empty or of the wrong length is `false`. The tag comparison is constant-time
/// (`Mac::verify_slice`).
pub fn verify(service_key: &[u8], values: &[&str], hash_data: &str) -> bool {
    if hash_data.is_empty() || hash_data.len() > MAX_HASH_DATA_LEN {
        return false;
    }
    let Ok(tag) = STANDARD.decode(hash_data) else {
        return false;
    };
    mac_over(service_key, values).verify_slice(&tag).is_ok()
}

/// H1, the payment request Cafe24 sends to checkout: `amount · currency · order_id · partner_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRequest<'a> {
    /// Amount exactly as Cafe24 sent it, e.g. `"3065.00"`.
    pub amount: &'a str,
    /// ISO 4217 code as sent, e.g. `"PHP"`.
    pub currency: &'a str,
    /// Cafe24 order id, e.g. `"20220519-0000029"`.
    pub order_id: &'a str,
    /// `mall_id:shop_no:public_ref` as sent.
    pub partner_id: &'a str,
}

impl<'a> PaymentRequest<'a> {
    /// The signed values in H1 order.
    pub fn values(&self) -> [&'a str; 4] {
        [self.amount, self.currency, self.order_id, self.partner_id]
    }

    /// H1 `hash_data` with the Cafe24 service key.
    pub fn sign(&self, key: &[u8]) -> String {
        sign(key, &self.values())
    }

    /// Constant-time check of a received H1 `hash_data`; see [`verify`].
    pub fn verify(&self, key: &[u8], hash_data: &str) -> bool {
        verify(key, &self.values(), hash_data)
    }
}

/// H2, the cancel request Cafe24 sends:
/// `cancel_amount · currency · order_id · partner_id · tid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelRequest<'a> {
    /// Amount to cancel, exactly as Cafe24 sent it.
    pub cancel_amount: &'a str,
    /// ISO 4217 code as sent.
    pub currency: &'a str,
    /// Cafe24 order id.
    pub order_id: &'a str,
    /// `mall_id:shop_no:public_ref` as sent.
    pub partner_id: &'a str,
    /// The KOMOJU payment id we reported as `tid`.
    pub tid: &'a str,
}

impl<'a> CancelRequest<'a> {
    /// The signed values in H2 order.
    pub fn values(&self) -> [&'a str; 5] {
        [
            self.cancel_amount,
            self.currency,
            self.order_id,
            self.partner_id,
            self.tid,
        ]
    }

    /// H2 `hash_data` with the Cafe24 service key.
    pub fn sign(&self, key: &[u8]) -> String {
        sign(key, &self.values())
    }

    /// Constant-time check of a received H2 `hash_data`; see [`verify`].
    pub fn verify(&self, key: &[u8], hash_data: &str) -> bool {
        verify(key, &self.values(), hash_data)
    }
}

/// H3, the payment result we send to Cafe24 (status reply, `return_noty_url`, external
/// `return_notification_url`): `amount · currency · order_id · partner_id · tid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentResult<'a> {
    /// Amount in Cafe24's string format (the order's stored string, or `"0"` when unpaid).
    pub amount: &'a str,
    /// ISO 4217 code as stored for the order.
    pub currency: &'a str,
    /// Cafe24 order id.
    pub order_id: &'a str,
    /// `mall_id:shop_no:public_ref` as stored for the order.
    pub partner_id: &'a str,
    /// The KOMOJU payment id.
    pub tid: &'a str,
}

impl<'a> PaymentResult<'a> {
    /// The signed values in H3 order.
    pub fn values(&self) -> [&'a str; 5] {
        [
            self.amount,
            self.currency,
            self.order_id,
            self.partner_id,
            self.tid,
        ]
    }

    /// H3 `hash_data` with the Cafe24 service key.
    pub fn sign(&self, key: &[u8]) -> String {
        sign(key, &self.values())
    }

    /// Constant-time check of an H3 `hash_data`; see [`verify`].
    pub fn verify(&self, key: &[u8], hash_data: &str) -> bool {
        verify(key, &self.values(), hash_data)
    }
}

/// H4, the cancel result we send to Cafe24's `cancel_noty_url`:
/// `cancel_amount · currency · order_id · partner_id · tid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelResult<'a> {
    /// Cancelled amount, the string Cafe24 sent in the cancel request.
    pub cancel_amount: &'a str,
    /// ISO 4217 code as stored for the order.
    pub currency: &'a str,
    /// Cafe24 order id.
    pub order_id: &'a str,
    /// `mall_id:shop_no:public_ref` as stored for the order.
    pub partner_id: &'a str,
    /// The KOMOJU payment id.
    pub tid: &'a str,
}

impl<'a> CancelResult<'a> {
    /// The signed values in H4 order.
    pub fn values(&self) -> [&'a str; 5] {
        [
            self.cancel_amount,
            self.currency,
            self.order_id,
            self.partner_id,
            self.tid,
        ]
    }

    /// H4 `hash_data` with the Cafe24 service key.
    pub fn sign(&self, key: &[u8]) -> String {
        sign(key, &self.values())
    }

    /// Constant-time check of an H4 `hash_data`; see [`verify`].
    pub fn verify(&self, key: &[u8], hash_data: &str) -> bool {
        verify(key, &self.values(), hash_data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-service-key";
    const H1_VECTOR: &str = "pVyNk4tIav+unOFEb8EC2XxVPJ47ngJbfKZ1RGgeW6w=";
    const H1_MESSAGE: &str = "3065.00PHP20220519-0000029demomall:1:demo-public";

    fn vector_request() -> PaymentRequest<'static> {
        PaymentRequest {
            amount: "3065.00",
            currency: "PHP",
            order_id: "20220519-0000029",
            partner_id: "demomall:1:demo-public",
        }
    }

    #[test]
    fn protocol_test_vector() {
        let request = vector_request();
        assert_eq!(request.sign(KEY), H1_VECTOR);
        assert!(request.verify(KEY, H1_VECTOR));
        assert_eq!(
            sign(
                KEY,
                &[
                    "3065.00",
                    "PHP",
                    "20220519-0000029",
                    "demomall:1:demo-public"
                ]
            ),
            H1_VECTOR
        );
        // No separator: the message is the plain concatenation.
        assert_eq!(sign(KEY, &[H1_MESSAGE]), H1_VECTOR);
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 2: a short key.
        let tag = sign(b"Jefe", &["what do ya want ", "for nothing?"]);
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(to_hex(&STANDARD.decode(tag).unwrap_or_default()), expected);
        // Test case 6: a 131-byte key, longer than the block, so it is hashed first.
        let key = [0xaau8; 131];
        let tag = sign(
            &key,
            &["Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        let expected = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
        assert_eq!(to_hex(&STANDARD.decode(tag).unwrap_or_default()), expected);
    }

    fn to_hex(bytes: &[u8]) -> String {
        hex::encode(bytes)
    }

    #[test]
    fn block_key_matches_new_from_slice_for_every_key_length() {
        for len in [0usize, 1, 16, 32, 63, 64, 65, 131, 300] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let Ok(mut reference) = <HmacSha256 as Mac>::new_from_slice(&key) else {
                panic!("HMAC accepts every key length");
            };
            reference.update(b"message");
            let expected = STANDARD.encode(reference.finalize().into_bytes());
            assert_eq!(sign(&key, &["message"]), expected, "key length {len}");
        }
    }

    #[test]
    fn a_flipped_character_fails() {
        let request = vector_request();
        let mut flipped = H1_VECTOR.to_owned();
        flipped.replace_range(0..1, "q");
        assert!(!request.verify(KEY, &flipped));
        let changed_value = PaymentRequest {
            order_id: "20220519-0000030",
            ..request
        };
        assert!(!changed_value.verify(KEY, H1_VECTOR));
    }

    #[test]
    fn a_different_key_fails() {
        assert!(!vector_request().verify(b"test-service-kez", H1_VECTOR));
        assert!(!vector_request().verify(b"", H1_VECTOR));
    }

    #[test]
    fn amount_strings_are_signed_as_given() {
        let short = PaymentRequest {
            amount: "3065.0",
            ..vector_request()
        };
        assert_ne!(short.sign(KEY), vector_request().sign(KEY));
        assert!(!short.verify(KEY, H1_VECTOR));
    }

    #[test]
    fn malformed_or_empty_hash_data_fails() {
        let request = vector_request();
        let unpadded = H1_VECTOR.trim_end_matches('=');
        let url_safe = H1_VECTOR.replace('+', "-");
        let truncated = &H1_VECTOR[..40];
        let with_space = format!(" {H1_VECTOR}");
        let doubled = format!("{H1_VECTOR}{H1_VECTOR}");
        let hex = to_hex(&STANDARD.decode(H1_VECTOR).unwrap_or_default());
        for bad in [
            "",
            "!!!!",
            "====",
            unpadded,
            url_safe.as_str(),
            truncated,
            with_space.as_str(),
            doubled.as_str(),
            hex.as_str(),
        ] {
            assert!(!request.verify(KEY, bad), "{bad:?} must not verify");
        }
    }

    #[test]
    fn field_orders_follow_the_protocol_table() {
        let cancel = CancelRequest {
            cancel_amount: "1",
            currency: "2",
            order_id: "3",
            partner_id: "4",
            tid: "5",
        };
        assert_eq!(cancel.values(), ["1", "2", "3", "4", "5"]);
        let result = PaymentResult {
            amount: "a",
            currency: "b",
            order_id: "c",
            partner_id: "d",
            tid: "e",
        };
        assert_eq!(result.values(), ["a", "b", "c", "d", "e"]);
        let cancel_result = CancelResult {
            cancel_amount: "v",
            currency: "w",
            order_id: "x",
            partner_id: "y",
            tid: "z",
        };
        assert_eq!(cancel_result.values(), ["v", "w", "x", "y", "z"]);
        assert_eq!(vector_request().values()[0], "3065.00");
        assert_eq!(vector_request().values()[3], "demomall:1:demo-public");
    }

    #[test]
    fn result_signatures_include_tid_and_verify() {
        let result = PaymentResult {
            amount: "3065.00",
            currency: "PHP",
            order_id: "20220519-0000029",
            partner_id: "demomall:1:demo-public",
            tid: "pay_abc123",
        };
        let tag = result.sign(KEY);
        assert_eq!(tag.len(), 44);
        assert_ne!(tag, H1_VECTOR);
        assert!(result.verify(KEY, &tag));
        assert_eq!(tag, sign(KEY, &[H1_MESSAGE, "pay_abc123"]));
        let cancel = CancelRequest {
            cancel_amount: "3065.00",
            currency: "PHP",
            order_id: "20220519-0000029",
            partner_id: "demomall:1:demo-public",
            tid: "pay_abc123",
        };
        // H2 and H3 share a layout; identical strings give identical tags.
        assert!(cancel.verify(KEY, &tag));
        let cancel_result = CancelResult {
            cancel_amount: cancel.cancel_amount,
            currency: cancel.currency,
            order_id: cancel.order_id,
            partner_id: cancel.partner_id,
            tid: "pay_other",
        };
        assert!(!cancel_result.verify(KEY, &tag));
        assert!(cancel_result.verify(KEY, &cancel_result.sign(KEY)));
    }
}
