//! Cafe24 `partner_id` (`cafe24::partner_id`).
//!
//! Properties: `PartnerId::parse` never panics and agrees with an independent reading of
//! the documented grammar, error included (over 200 bytes → TooLong; not three
//! `:`-separated parts → Shape; then the first bad part: mall_id 1..=50 of `[a-z0-9_-]`,
//! shop_no 1..=9999 without sign or leading zero, public_ref 1..=100 of
//! `[A-Za-z0-9_.-]`). On `Ok(p)`: `p.as_str()`, `p.to_string()` and
//! `mall_id:shop_no:public_ref` are all the raw text, and `PartnerId::new` of its parts
//! is equal to it. `PartnerId::new` with fuzzed parts agrees with the same grammar, and
//! what it builds parses back to itself. `is_valid_mall_id` agrees with the grammar.
#![no_main]

use cafe24_komoju::cafe24::partner_id::{is_valid_mall_id, PartnerId, PartnerIdError};
use libfuzzer_sys::fuzz_target;

fn mall_ok(s: &str) -> bool {
    (1..=50).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn ref_ok(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

fn shop_no_text(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 4 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i32, |n, d| n * 10 + i32::from(d - b'0')))
}

fn expected(raw: &str) -> Result<(String, i32, String), PartnerIdError> {
    if raw.len() > 200 {
        return Err(PartnerIdError::TooLong);
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let [mall, shop, public_ref] = parts[..] else {
        return Err(PartnerIdError::Shape);
    };
    if !mall_ok(mall) {
        return Err(PartnerIdError::MallId);
    }
    let shop = shop_no_text(shop).ok_or(PartnerIdError::ShopNo)?;
    if !ref_ok(public_ref) {
        return Err(PartnerIdError::PublicRef);
    }
    Ok((mall.to_owned(), shop, public_ref.to_owned()))
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let raw = raw.as_ref();

    assert_eq!(
        is_valid_mall_id(raw),
        mall_ok(raw),
        "is_valid_mall_id({raw:?})"
    );

    let parsed = PartnerId::parse(raw);
    match (&parsed, expected(raw)) {
        (Ok(p), Ok((mall, shop, public_ref))) => {
            assert_eq!(
                (p.mall_id(), p.shop_no(), p.public_ref()),
                (&*mall, shop, &*public_ref)
            );
            assert_eq!(p.as_str(), raw);
            assert_eq!(p.to_string(), raw);
            assert_eq!(
                format!("{}:{}:{}", p.mall_id(), p.shop_no(), p.public_ref()),
                raw
            );
            assert!(raw.len() <= 200);
            assert!(is_valid_mall_id(p.mall_id()));
            assert_eq!(
                PartnerId::new(p.mall_id(), p.shop_no(), p.public_ref()).as_ref(),
                Ok(p)
            );
        }
        (Err(got), Err(want)) => assert_eq!(got, &want, "error for {raw:?}"),
        (got, want) => panic!("parse({raw:?}) = {got:?}, grammar says {want:?}"),
    }

    // PartnerId::new with fuzzed parts: "mall:number:ref", the number read as any i32.
    let mut parts = raw.splitn(3, ':');
    if let (Some(mall), Some(number), Some(public_ref)) = (parts.next(), parts.next(), parts.next())
    {
        if let Ok(shop_no) = number.parse::<i32>() {
            let built = PartnerId::new(mall, shop_no, public_ref);
            let want = if !mall_ok(mall) {
                Err(PartnerIdError::MallId)
            } else if !(1..=9999).contains(&shop_no) {
                Err(PartnerIdError::ShopNo)
            } else if !ref_ok(public_ref) {
                Err(PartnerIdError::PublicRef)
            } else {
                Ok(())
            };
            assert_eq!(
                built.as_ref().map(|_| ()).map_err(Clone::clone),
                want,
                "new({mall:?}, {shop_no}, {public_ref:?})"
            );
            if let Ok(p) = built {
                assert_eq!(p.as_str(), format!("{mall}:{shop_no}:{public_ref}"));
                assert_eq!(PartnerId::parse(p.as_str()), Ok(p.clone()));
            }
        }
    }
});
