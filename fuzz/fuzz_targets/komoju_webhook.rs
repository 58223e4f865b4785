//! KOMOJU webhook deliveries (`komoju::webhook::read`, `signature_valid`).
//!
//! Input: byte 0 is 0 for no `X-Komoju-ID` header, else 1 + the header's length; then the
//! header's bytes; the rest is the body. Properties:
//! - signed with the secret (lowercase or uppercase hex, with surrounding spaces) the
//!   delivery always reads (`Ok`), and reads the same every time;
//! - the event id is non-empty and free of control characters, and is either at most
//!   `MAX_EVENT_ID_LEN` bytes or `sha256:` + 64 hex digits; for a body that is not JSON
//!   it is the trimmed header when that is usable, else `sha256:` + hex SHA-256(body);
//! - the kind is non-empty, at most 100 bytes, free of control characters; `Ping` only
//!   for `ping`, `Payment` only for `payment.*`, `NotHandled` only for other kinds;
//! - every order reference of a `Payment` is non-empty, at most 200 bytes, and has no
//!   NUL or other control character;
//! - another secret, a body changed in one byte, a truncated or absent signature: always
//!   `Err(BadSignature)`; `signature_valid` with the header text as a garbage signature
//!   never panics and is true only if it is the right MAC.
#![no_main]

use cafe24_komoju::komoju::webhook::{
    read, signature_valid, BadSignature, Content, MAX_EVENT_ID_LEN,
};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const SECRET: &[u8] = b"whsec_fuzz_0123456789";
const OTHER: &[u8] = b"whsec_fuzz_0123456788";

fn sign(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        panic!("HMAC takes any key length");
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn clean(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

fn check_ref(name: &str, value: Option<&str>) {
    if let Some(v) = value {
        assert!(clean(v, 200), "{name} ref {v:?}");
        assert!(!v.contains('\0'));
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.split_first() {
        None | Some((0, _)) => (None, data.get(1..).unwrap_or_default()),
        Some((&n, rest)) => {
            let n = usize::from(n - 1).min(rest.len());
            (
                Some(String::from_utf8_lossy(&rest[..n]).into_owned()),
                &rest[n..],
            )
        }
    };
    let header = header.as_deref();
    let sig = sign(SECRET, body);

    let event = match read(SECRET, body, Some(&sig), header) {
        Ok(e) => e,
        Err(e) => panic!("a correctly signed body was refused: {e}"),
    };
    assert_eq!(
        read(SECRET, body, Some(&sig.to_uppercase()), header),
        Ok(event.clone())
    );
    assert_eq!(
        read(SECRET, body, Some(&format!(" {sig} ")), header),
        Ok(event.clone())
    );

    // The id.
    let digest_id = format!("sha256:{}", hex::encode(Sha256::digest(body)));
    let id = event.id.as_str();
    assert!(
        !id.is_empty() && !id.chars().any(char::is_control),
        "id {id:?}"
    );
    assert!(id.len() <= MAX_EVENT_ID_LEN || id == digest_id, "id {id:?}");
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        let from_header = header.map(str::trim).filter(|h| clean(h, MAX_EVENT_ID_LEN));
        assert_eq!(
            id,
            from_header.unwrap_or(&digest_id),
            "id of a non-JSON body"
        );
        assert_eq!(event.kind, "unknown");
        assert!(matches!(event.content, Content::Unreadable(_)));
    }

    // The kind and the content.
    let kind = event.kind.as_str();
    assert!(clean(kind, 100), "kind {kind:?}");
    match &event.content {
        Content::Ping => assert_eq!(kind, "ping"),
        Content::Payment { refs, .. } => {
            assert!(
                kind.starts_with("payment."),
                "payment content for kind {kind:?}"
            );
            check_ref("session", refs.session.as_deref());
            check_ref("external_order_num", refs.external_order_num.as_deref());
            if let Some((mall, order)) = &refs.metadata {
                check_ref("metadata.mall_id", Some(mall));
                check_ref("metadata.order_id", Some(order));
            }
        }
        Content::NotHandled => {
            assert!(
                kind != "ping" && !kind.starts_with("payment."),
                "kind {kind:?} not handled"
            )
        }
        Content::Unreadable(reason) => assert!(!reason.is_empty()),
    }

    // Wrong signatures.
    assert_eq!(read(OTHER, body, Some(&sig), header), Err(BadSignature));
    assert_eq!(
        read(SECRET, body, Some(&sign(OTHER, body)), header),
        Err(BadSignature)
    );
    assert_eq!(read(SECRET, body, None, header), Err(BadSignature));
    assert_eq!(
        read(SECRET, body, Some(&sig[..63]), header),
        Err(BadSignature)
    );
    assert_eq!(
        read(SECRET, body, Some(&format!("{sig}0")), header),
        Err(BadSignature)
    );
    assert_eq!(read(SECRET, body, Some(""), header), Err(BadSignature));
    if !body.is_empty() {
        let mut changed = body.to_vec();
        let at = usize::from(data[0]) % changed.len();
        changed[at] ^= 0x01;
        assert_eq!(
            read(SECRET, &changed, Some(&sig), header),
            Err(BadSignature)
        );
        let mut shorter = body.to_vec();
        shorter.pop();
        assert_eq!(
            read(SECRET, &shorter, Some(&sig), header),
            Err(BadSignature)
        );
    }
    // The header as a garbage signature.
    if let Some(garbage) = header {
        let valid = signature_valid(SECRET, body, Some(garbage));
        assert_eq!(
            valid,
            garbage.trim().eq_ignore_ascii_case(&sig),
            "signature {garbage:?}"
        );
    }
    // An empty secret still works as a key.
    let empty_sig = sign(b"", body);
    assert!(signature_valid(b"", body, Some(&empty_sig)));
    assert!(!signature_valid(SECRET, body, Some(&empty_sig)));
});
