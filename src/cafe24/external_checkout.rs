//! External checkout's Cafe24 signatures (the Cafe24 sample app's
//! `app/Http/Controllers/ExternalCheckout/InternalController.php`; PROTOCOL.md §6.3;
//! `../shared/reference/cafe24-pg-sample-app.md` rows 7 and 8): the precreateOrder
//! request HMAC this app gives the mall front, and the reservation HMAC Cafe24 signs its
//! answer with. Pure functions; when to sign and for whom is the use case's
//! ([`crate::external_checkout`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The precreateOrder request HMAC (the Cafe24 sample's `ExternalCheckout` controller,
/// `getHmac`): `base64(HMAC-SHA256(service_key, mall_id · request_time · client_id ·
/// member_id))`.
pub fn request_hmac(
    service_key: &[u8],
    mall_id: &str,
    request_time: &str,
    client_id: &str,
    member_id: &str,
) -> String {
    crate::cafe24::hash_data::sign(service_key, &[mall_id, request_time, client_id, member_id])
}

/// Cafe24's reservation (precreateOrder response) HMAC, as the Cafe24 sample app checks
/// it (`app/Http/Controllers/ExternalCheckout/InternalController.php`, `createPayload`;
/// `../shared/reference/cafe24-pg-sample-app.md` row 8; Cafe24's own documentation of it
/// could not be read): key `client_id · order_id`; message
/// `json_encode($s, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)` of the string
/// `$s = (string)(int) total · order_id · response_time · return_notification_url`,
/// i.e. quoted, with `/` and non-ASCII characters left as they are (see
/// `php_json_encode`). `total_major` is the total in major units truncated toward
/// zero, as PHP's `(int)` does.
pub fn reservation_hmac(
    client_id: &str,
    order_id: &str,
    total_major: i64,
    response_time: &str,
    return_notification_url: &str,
) -> Vec<u8> {
    reservation_mac(
        client_id,
        order_id,
        total_major,
        response_time,
        return_notification_url,
    )
    .finalize()
    .into_bytes()
    .to_vec()
}

/// Checks a received reservation HMAC (raw bytes) in constant time.
pub fn reservation_valid(
    client_id: &str,
    order_id: &str,
    total_major: i64,
    response_time: &str,
    return_notification_url: &str,
    received: &[u8],
) -> bool {
    reservation_mac(
        client_id,
        order_id,
        total_major,
        response_time,
        return_notification_url,
    )
    .verify_slice(received)
    .is_ok()
}

fn reservation_mac(
    client_id: &str,
    order_id: &str,
    total_major: i64,
    response_time: &str,
    return_notification_url: &str,
) -> Hmac<Sha256> {
    let message = php_json_encode(&format!(
        "{total_major}{order_id}{response_time}{return_notification_url}"
    ));
    let key = format!("{client_id}{order_id}");
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(message.as_bytes());
    mac
}

/// PHP's `json_encode($s, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)` of a
/// string (PHP ≥ 7.1, `ext/json/json_encoder.c`): quoted; `"` and `\` escaped with a
/// backslash; `\b \f \n \r \t` by name; other characters below U+0020 as `\u00xx`
/// (lowercase hex); U+2028 and U+2029 as `\u2028` / `\u2029` (escaped unless
/// `JSON_UNESCAPED_LINE_TERMINATORS` is also given); everything else, `/`, DEL and
/// non-ASCII included, as it is.
fn php_json_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn php_json_encode_leaves_slashes_and_unicode_as_they_are() {
        // Expected strings written by hand from PHP's json_encoder.c rules.
        assert_eq!(
            php_json_encode("3065A-1https://a.b/c"),
            r#""3065A-1https://a.b/c""#
        );
        assert_eq!(php_json_encode("é\"\\"), "\"é\\\"\\\\\"");
        assert_eq!(
            php_json_encode("a\nb\tc\u{1}\u{7f}\u{2028}"),
            r#""a\nb\tc\u0001"#.to_owned() + "\u{7f}" + r#"\u2028""#
        );
    }

    /// A known-answer vector computed outside this code, with Python's `hmac` and
    /// `json.dumps(s, ensure_ascii=False)` (identical to PHP's `json_encode` with
    /// `JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES` for this string).
    #[test]
    fn reservation_hmac_matches_a_vector_computed_outside() {
        let url = "https://demomall.cafe24.com/exec/front/order/pg/notify?shop=デモ店&order_id=20261121-0000042";
        let message = php_json_encode(&format!("306520261121-00000422026-11-21 12:00:00{url}"));
        assert_eq!(
            hex::encode(message.as_bytes()),
            "223330363532303236313132312d30303030303432323032362d31312d32312031323a30303a303068747470733a2f2f64656d6f6d616c6c2e6361666532342e636f6d2f657865632f66726f6e742f6f726465722f70672f6e6f746966793f73686f703de38387e383a2e5ba97266f726465725f69643d32303236313132312d3030303030343222"
        );
        let mac = reservation_hmac(
            "test-client-id",
            "20261121-0000042",
            3065,
            "2026-11-21 12:00:00",
            url,
        );
        assert_eq!(
            STANDARD.encode(mac),
            "3KRF00tPkRmONg2AscbD65x4KpzfsXqnusQhZHzGtPc="
        );
    }

    #[test]
    fn reservation_hmac_is_keyed_by_client_and_order() {
        let a = reservation_hmac(
            "client",
            "order-1",
            3065,
            "1700000000",
            "https://m.cafe24.com/n",
        );
        assert_eq!(
            a,
            reservation_hmac(
                "client",
                "order-1",
                3065,
                "1700000000",
                "https://m.cafe24.com/n"
            )
        );
        assert_ne!(
            a,
            reservation_hmac(
                "client",
                "order-2",
                3065,
                "1700000000",
                "https://m.cafe24.com/n"
            )
        );
        assert_ne!(
            a,
            reservation_hmac(
                "other",
                "order-1",
                3065,
                "1700000000",
                "https://m.cafe24.com/n"
            )
        );
        assert_ne!(
            a,
            reservation_hmac(
                "client",
                "order-1",
                3066,
                "1700000000",
                "https://m.cafe24.com/n"
            )
        );
    }
}
