//! A KOMOJU webhook delivery, verified and read (PROTOCOL.md §8; KOMOJU's webhook
//! documentation): the signature over the raw bytes first, then the envelope.
//!
//! The order of the pipeline is fixed here: nothing of the body is read before
//! `X-Komoju-Signature` (lowercase hex HMAC-SHA256 of the raw body, keyed with the
//! merchant's webhook secret token) holds, compared in constant time. After that a
//! delivery is never refused: whatever it holds becomes an [`Event`] that can be recorded
//! and acknowledged, because KOMOJU redelivers anything answered 4xx for days. This
//! module never touches the database and never logs.
//!
//! Every string of an [`Event`] is safe to store and to use in a query on both backends:
//! no NUL, no control character, bounded length.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Payment;

/// Longest event id kept as KOMOJU sent it, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 200;
/// Longest event type kept as KOMOJU sent it, in bytes.
const MAX_EVENT_TYPE_LEN: usize = 100;
/// Longest order reference (`session`, `external_order_num`, `metadata.order_id`) used
/// to look an order up, in bytes.
const MAX_REF_LEN: usize = 200;

/// The signature is missing, malformed or wrong: answer 401, change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("X-Komoju-Signature is missing or wrong")]
pub struct BadSignature;

/// A signed delivery, read as far as it can be.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The envelope's `id`; else the `X-Komoju-ID` header; else `sha256:` + the hex
    /// SHA-256 of the body, so a redelivery of the same bytes is still recognised.
    pub id: String,
    /// The envelope's `type` (`ping`, `payment.captured`, …), or `unknown`.
    pub kind: String,
    /// What the delivery says.
    pub content: Content,
}

/// What a signed delivery holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `type` is `ping`.
    Ping,
    /// A `payment.*` event with a readable Payment in `data`.
    Payment {
        payment: Box<Payment>,
        refs: OrderRefs,
    },
    /// An event type this service does not act on (not `payment.*`).
    NotHandled,
    /// Not a JSON object, a `payment.*` event whose `data` is not a Payment, or a body
    /// holding a NUL character: nothing can be applied. The reason is for the log.
    Unreadable(&'static str),
}

/// Where to look for the order of a payment event, in the order §8 gives; each present
/// value is a bounded string without control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderRefs {
    /// `data.session`: the order's current session.
    pub session: Option<String>,
    /// `data.metadata.mall_id` and `data.metadata.order_id`, as this service set them.
    pub metadata: Option<(String, String)>,
    /// `data.external_order_num`.
    pub external_order_num: Option<String>,
}

/// Verifies `signature` (the `X-Komoju-Signature` header: 64 hex digits, either case) as
/// the HMAC-SHA256 of `body` keyed with `secret`, in constant time. An empty `secret`
/// (a merchant installed from Cafe24 who has not saved a webhook secret yet) verifies
/// nothing: anyone could sign with it.
pub fn signature_valid(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(sig) = signature.map(str::trim) else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(sig, &mut expected).is_err() {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Verifies a delivery and reads it: `secret` is the merchant's webhook secret token,
/// `body` the raw request bytes, `signature` and `komoju_id` the `X-Komoju-Signature`
/// and `X-Komoju-ID` headers. Errors: [`BadSignature`] only; a signed body always reads
/// into an [`Event`].
pub fn read(
    secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
    komoju_id: Option<&str>,
) -> Result<Event, BadSignature> {
    if !signature_valid(secret, body, signature) {
        return Err(BadSignature);
    }
    Ok(read_signed(body, komoju_id))
}

#[derive(Deserialize)]
struct Envelope {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    data: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct DataRefs {
    session: Option<serde_json::Value>,
    external_order_num: Option<serde_json::Value>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn read_signed(body: &[u8], komoju_id: Option<&str>) -> Event {
    // An object only: serde would also read a JSON array into the envelope by position.
    let envelope: Option<Envelope> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok());
    let from_body = envelope
        .as_ref()
        .and_then(|e| e.id.as_ref())
        .and_then(|v| clean(v.as_str()?, MAX_EVENT_ID_LEN));
    let id = from_body
        .or_else(|| clean(komoju_id?.trim(), MAX_EVENT_ID_LEN))
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))));
    let Some(envelope) = envelope else {
        return Event {
            id,
            kind: "unknown".into(),
            content: Content::Unreadable("the body is not a JSON object"),
        };
    };
    let kind = envelope
        .kind
        .as_ref()
        .and_then(|v| clean(v.as_str()?, MAX_EVENT_TYPE_LEN))
        .unwrap_or_else(|| "unknown".into());
    let content = if kind == "ping" {
        Content::Ping
    } else if !kind.starts_with("payment.") {
        Content::NotHandled
    } else {
        payment_content(envelope.data)
    };
    Event { id, kind, content }
}

fn payment_content(data: Option<serde_json::Value>) -> Content {
    let Some(data) = data else {
        return Content::Unreadable("the payment event has no data");
    };
    if crate::text::json_holds_nul(&data) {
        return Content::Unreadable("the payment holds a NUL character");
    }
    let refs: DataRefs = serde_json::from_value(data.clone()).unwrap_or_default();
    let Ok(payment) = serde_json::from_value::<Payment>(data) else {
        return Content::Unreadable("data is not a KOMOJU payment");
    };
    let text = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.as_str())
            .and_then(|s| clean(s, MAX_REF_LEN))
    };
    let metadata = refs.metadata.as_ref().and_then(|m| {
        let field = |name: &str| m.get(name).and_then(|v| clean(v.as_str()?, MAX_REF_LEN));
        Some((field("mall_id")?, field("order_id")?))
    });
    Content::Payment {
        payment: Box::new(payment),
        refs: OrderRefs {
            session: text(&refs.session),
            metadata,
            external_order_num: text(&refs.external_order_num),
        },
    }
}

fn clean(s: &str, max: usize) -> Option<String> {
    crate::text::printable(s, max).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|e| panic!("{e}"));
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signature_is_checked_over_the_raw_bytes() {
        let body = br#"{"id":"ev1","type":"ping"}"#;
        let sig = sign(b"secret", body);
        assert!(signature_valid(b"secret", body, Some(&sig)));
        assert!(signature_valid(b"secret", body, Some(&sig.to_uppercase())));
        assert!(!signature_valid(b"other", body, Some(&sig)));
        assert!(!signature_valid(
            b"secret",
            br#"{"id":"ev1", "type":"ping"}"#,
            Some(&sig)
        ));
        assert!(!signature_valid(b"secret", body, None));
        assert!(!signature_valid(b"secret", body, Some(&sig[..62])));
        assert!(!signature_valid(b"secret", body, Some("zz")));
        assert_eq!(read(b"other", body, Some(&sig), None), Err(BadSignature));
    }

    fn read_ok(body: &[u8], komoju_id: Option<&str>) -> Event {
        read(b"s", body, Some(&sign(b"s", body)), komoju_id).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_event_id_falls_back_to_the_header_then_to_the_body_digest() {
        let with_id = read_ok(br#"{"id":"ev1","type":"ping"}"#, Some("hdr"));
        assert_eq!(
            (with_id.id.as_str(), &with_id.content),
            ("ev1", &Content::Ping)
        );
        let no_id = read_ok(br#"{"type":"ping"}"#, Some("hdr-1"));
        assert_eq!(no_id.id, "hdr-1");
        let nul_id = read_ok(br#"{"id":"a\u0000b","type":"ping"}"#, Some("hdr-2"));
        assert_eq!(nul_id.id, "hdr-2");
        let nothing = read_ok(b"not json", None);
        assert_eq!(nothing.id.len(), "sha256:".len() + 64);
        assert!(matches!(nothing.content, Content::Unreadable(_)));
        assert_eq!(read_ok(b"not json", None).id, nothing.id);
    }

    #[test]
    fn unreadable_payments_and_nul_characters_are_unreadable_not_errors() {
        let bad = read_ok(
            br#"{"id":"e","type":"payment.captured","data":{"x":1}}"#,
            None,
        );
        assert!(matches!(bad.content, Content::Unreadable(_)));
        let nul = read_ok(
            br#"{"id":"e","type":"payment.captured","data":{"id":"p","status":"captured","amount":1,"currency":"JPY","session":"s\u0000"}}"#,
            None,
        );
        assert!(matches!(nul.content, Content::Unreadable(_)));
        let other = read_ok(br#"{"id":"e","type":"customer.created","data":{}}"#, None);
        assert_eq!(other.content, Content::NotHandled);
        // Found by fuzzing: an array was read as an envelope by position.
        let array = read_ok(br#"["evt","payment.captured",{"id":"p"}]"#, Some("hdr"));
        assert_eq!(array.id, "hdr");
        assert!(matches!(array.content, Content::Unreadable(_)), "{array:?}");
    }

    #[test]
    fn a_payment_event_carries_its_order_references() {
        let e = read_ok(
            br#"{"id":"e","type":"payment.captured","data":{"id":"p","status":"captured","amount":1,"currency":"JPY","session":"s1","external_order_num":"o-1","metadata":{"mall_id":"m","order_id":"o"}}}"#,
            None,
        );
        let Content::Payment { payment, refs } = e.content else {
            panic!("not a payment: {e:?}");
        };
        assert_eq!(payment.id, "p");
        assert_eq!(refs.session.as_deref(), Some("s1"));
        assert_eq!(refs.metadata, Some(("m".into(), "o".into())));
        assert_eq!(refs.external_order_num.as_deref(), Some("o-1"));
    }
}
