//! Cafe24 `partner_id`: `{mall_id}:{shop_no}:{public_ref}` (PROTOCOL §2).
//!
//! This module owns the syntax of `partner_id` and of a Cafe24 `mall_id`: it splits the
//! string into its three parts, checks each, and keeps the exact received text for
//! signatures. It never decides whether the mall is registered or the shop enabled (the
//! merchant store does), and it never trusts a `partner_id` by itself: callers parse it
//! only after its `hash_data` has been verified over the raw string (§2).

use std::fmt;

use super::ids::MallId;

/// Longest accepted `partner_id`, in bytes.
const MAX_PARTNER_ID_LEN: usize = 200;
/// Longest accepted `public_ref`, in bytes.
const MAX_PUBLIC_REF_LEN: usize = 100;
/// Largest accepted `shop_no`.
const MAX_SHOP_NO: i32 = 9999;

/// A checked Cafe24 `partner_id`, e.g. `demomall:1:demo-public`.
///
/// `mall_id` is 1..=50 of `[a-z0-9_-]`; `shop_no` is 1..=9999; `public_ref` is 1..=100 of
/// `[A-Za-z0-9_.-]`. The raw text is kept exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerId {
    mall_id: MallId,
    shop_no: i32,
    public_ref: String,
    raw: String,
}

/// Why a `partner_id` (or one of its parts) was refused. Messages name the wrong part and
/// are safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerIdError {
    /// Not exactly three `:`-separated parts.
    #[error("partner_id must be mall_id:shop_no:public_ref")]
    Shape,
    /// Longer than 200 bytes.
    #[error("partner_id is longer than 200 characters")]
    TooLong,
    /// The `mall_id` part is empty, longer than 50, or has a character outside `[a-z0-9_-]`.
    #[error(
        "partner_id mall_id must be 1 to 50 characters of lowercase letters, digits, '_' or '-'"
    )]
    MallId,
    /// The `shop_no` part is not a decimal 1..=9999 without sign or leading zeros.
    #[error("partner_id shop_no must be a number from 1 to 9999 without leading zeros")]
    ShopNo,
    /// The `public_ref` part is empty, longer than 100, or has a character outside
    /// `[A-Za-z0-9_.-]`.
    #[error(
        "partner_id public_ref must be 1 to 100 characters of letters, digits, '_', '.' or '-'"
    )]
    PublicRef,
}

/// Whether `s` is a well-formed Cafe24 `mall_id`: 1..=50 ASCII lowercase letters, digits,
/// `_` or `-`.
pub fn is_valid_mall_id(s: &str) -> bool {
    MallId::parse(s).is_ok()
}

fn is_valid_public_ref(s: &str) -> bool {
    (1..=MAX_PUBLIC_REF_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn is_valid_shop_no(shop_no: i32) -> bool {
    (1..=MAX_SHOP_NO).contains(&shop_no)
}

/// `shop_no` text: 1 to 4 ASCII digits, no leading zero, value 1..=9999.
fn parse_shop_no(text: &str) -> Result<i32, PartnerIdError> {
    let well_formed = (1..=4).contains(&text.len())
        && !text.starts_with('0')
        && text.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(PartnerIdError::ShopNo);
    }
    text.parse::<i32>()
        .ok()
        .filter(|&n| is_valid_shop_no(n))
        .ok_or(PartnerIdError::ShopNo)
}

impl PartnerId {
    /// Parse a received `partner_id`, keeping `raw` exactly as given.
    ///
    /// Errors, checked in this order: over 200 bytes → [`PartnerIdError::TooLong`]; not
    /// exactly three `:`-separated parts → [`PartnerIdError::Shape`]; then the first bad
    /// part → [`PartnerIdError::MallId`], [`PartnerIdError::ShopNo`] or
    /// [`PartnerIdError::PublicRef`].
    pub fn parse(raw: &str) -> Result<PartnerId, PartnerIdError> {
        if raw.len() > MAX_PARTNER_ID_LEN {
            return Err(PartnerIdError::TooLong);
        }
        let mut parts = raw.split(':');
        let (Some(mall_id), Some(shop_no), Some(public_ref), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PartnerIdError::Shape);
        };
        let mall_id = MallId::parse(mall_id).map_err(|_| PartnerIdError::MallId)?;
        let shop_no = parse_shop_no(shop_no)?;
        if !is_valid_public_ref(public_ref) {
            return Err(PartnerIdError::PublicRef);
        }
        Ok(PartnerId {
            mall_id,
            shop_no,
            public_ref: public_ref.to_owned(),
            raw: raw.to_owned(),
        })
    }

    /// Build a `partner_id` from its parts (for example, to show a merchant theirs).
    ///
    /// Errors: [`PartnerIdError::MallId`], [`PartnerIdError::ShopNo`] or
    /// [`PartnerIdError::PublicRef`] by the same rules as [`PartnerId::parse`].
    pub fn new(mall_id: &str, shop_no: i32, public_ref: &str) -> Result<PartnerId, PartnerIdError> {
        let mall = MallId::parse(mall_id).map_err(|_| PartnerIdError::MallId)?;
        if !is_valid_shop_no(shop_no) {
            return Err(PartnerIdError::ShopNo);
        }
        if !is_valid_public_ref(public_ref) {
            return Err(PartnerIdError::PublicRef);
        }
        Ok(PartnerId {
            mall_id: mall,
            shop_no,
            public_ref: public_ref.to_owned(),
            raw: format!("{mall_id}:{shop_no}:{public_ref}"),
        })
    }

    /// The Cafe24 mall id, e.g. `demomall`.
    pub fn mall_id(&self) -> &MallId {
        &self.mall_id
    }

    /// The Cafe24 shop number, 1..=9999.
    pub fn shop_no(&self) -> i32 {
        self.shop_no
    }

    /// The merchant's public reference, e.g. `demo-public`.
    pub fn public_ref(&self) -> &str {
        &self.public_ref
    }

    /// The exact string as received (or as built by [`PartnerId::new`]).
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for PartnerId {
    /// Writes the raw `partner_id`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol_example() {
        let parsed = PartnerId::parse("demomall:1:demo-public");
        let Ok(id) = parsed else {
            panic!("expected a valid partner_id, got {parsed:?}");
        };
        assert_eq!(id.mall_id(), "demomall");
        assert_eq!(id.shop_no(), 1);
        assert_eq!(id.public_ref(), "demo-public");
        assert_eq!(id.as_str(), "demomall:1:demo-public");
        assert_eq!(id.to_string(), "demomall:1:demo-public");
    }

    #[test]
    fn accepts_the_full_character_sets_and_limits() {
        let mall = "a".repeat(50);
        let public_ref = format!("Ab9_.-{}", "z".repeat(94));
        let raw = format!("{mall}:9999:{public_ref}");
        let parsed = PartnerId::parse(&raw);
        let Ok(id) = parsed else {
            panic!("expected a valid partner_id, got {parsed:?}");
        };
        assert_eq!(id.mall_id().as_str(), mall);
        assert_eq!(id.shop_no(), 9999);
        assert_eq!(id.public_ref(), public_ref);
        assert!(PartnerId::parse("my_mall-2:12:x").is_ok());
    }

    #[test]
    fn rejects_bad_shop_numbers() {
        for shop_no in [
            "0", "01", "00", "-1", "+1", "10000", " 1", "1 ", "1.0", "x", "", "١",
        ] {
            let raw = format!("demomall:{shop_no}:x");
            assert_eq!(
                PartnerId::parse(&raw),
                Err(PartnerIdError::ShopNo),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_wrong_number_of_parts() {
        for raw in [
            "",
            "demomall",
            "demomall:1",
            "demomall:1:x:y",
            "demomall:1:x:",
            "::::",
        ] {
            assert_eq!(PartnerId::parse(raw), Err(PartnerIdError::Shape), "{raw:?}");
        }
    }

    #[test]
    fn rejects_empty_parts() {
        assert_eq!(PartnerId::parse(":1:x"), Err(PartnerIdError::MallId));
        assert_eq!(PartnerId::parse("demomall::x"), Err(PartnerIdError::ShopNo));
        assert_eq!(
            PartnerId::parse("demomall:1:"),
            Err(PartnerIdError::PublicRef)
        );
        assert_eq!(PartnerId::parse("::"), Err(PartnerIdError::MallId));
    }

    #[test]
    fn rejects_bad_mall_ids() {
        for mall in [
            "DemoMall",
            "demo mall",
            "demo.mall",
            "démo",
            "demo/mall",
            &"a".repeat(51),
        ] {
            let raw = format!("{mall}:1:x");
            assert_eq!(
                PartnerId::parse(&raw),
                Err(PartnerIdError::MallId),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_public_refs() {
        for public_ref in [
            "demo public",
            "demo/public",
            "demo%20",
            "ref!",
            "ü",
            &"a".repeat(101),
        ] {
            let raw = format!("demomall:1:{public_ref}");
            assert_eq!(
                PartnerId::parse(&raw),
                Err(PartnerIdError::PublicRef),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_too_long_before_splitting() {
        let raw = format!("demomall:1:{}", "a".repeat(190));
        assert_eq!(raw.len(), 201);
        assert_eq!(PartnerId::parse(&raw), Err(PartnerIdError::TooLong));
    }

    #[test]
    fn errors_name_the_wrong_part() {
        assert_eq!(
            PartnerIdError::Shape.to_string(),
            "partner_id must be mall_id:shop_no:public_ref"
        );
        assert!(PartnerIdError::MallId.to_string().contains("mall_id"));
        assert!(PartnerIdError::ShopNo.to_string().contains("shop_no"));
        assert!(PartnerIdError::PublicRef.to_string().contains("public_ref"));
    }

    #[test]
    fn new_validates_and_builds_raw() {
        let built = PartnerId::new("demomall", 1, "demo-public");
        assert_eq!(built, PartnerId::parse("demomall:1:demo-public"));
        assert_eq!(
            built.map(|id| id.as_str().to_owned()),
            Ok("demomall:1:demo-public".to_owned())
        );
        assert_eq!(
            PartnerId::new("DemoMall", 1, "x"),
            Err(PartnerIdError::MallId)
        );
        assert_eq!(
            PartnerId::new("demomall", 0, "x"),
            Err(PartnerIdError::ShopNo)
        );
        assert_eq!(
            PartnerId::new("demomall", -3, "x"),
            Err(PartnerIdError::ShopNo)
        );
        assert_eq!(
            PartnerId::new("demomall", 10000, "x"),
            Err(PartnerIdError::ShopNo)
        );
        assert_eq!(
            PartnerId::new("demomall", 1, "a:b"),
            Err(PartnerIdError::PublicRef)
        );
        assert_eq!(
            PartnerId::new("demomall", 1, ""),
            Err(PartnerIdError::PublicRef)
        );
    }

    #[test]
    fn mall_id_rule() {
        assert!(is_valid_mall_id("demomall"));
        assert!(is_valid_mall_id("a"));
        assert!(is_valid_mall_id("shop_01-b"));
        assert!(is_valid_mall_id(&"z".repeat(50)));
        assert!(!is_valid_mall_id(""));
        assert!(!is_valid_mall_id(&"z".repeat(51)));
        assert!(!is_valid_mall_id("Demomall"));
        assert!(!is_valid_mall_id("demo:mall"));
        assert!(!is_valid_mall_id("demomall\n"));
    }
}
