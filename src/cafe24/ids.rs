//! The identifiers Cafe24 gives, parsed once at the edge (PROTOCOL.md §2, §3, §12): once
//! a use case holds a [`MallId`] or an [`OrderId`], nothing downstream checks it again.
//! Both read as `&str` (`Deref`), and are safe in a log line, a query and a URL segment.

use std::fmt;
use std::ops::Deref;

/// Longest `mall_id`: Cafe24's mall ids are short lower-case names.
pub const MAX_MALL_ID_LEN: usize = 50;
/// Longest `order_id` accepted.
pub const MAX_ORDER_ID_LEN: usize = 100;

/// Why an identifier was refused; the message names the field, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("mall_id must be 1-50 characters of a-z, 0-9, '_' or '-'")]
    MallId,
    #[error("order_id must be 1-100 printable characters")]
    OrderId,
}

/// A Cafe24 mall id (`mall_id`): 1–50 characters of `a-z`, `0-9`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MallId(String);

impl MallId {
    /// Parses a `mall_id`. Errors: [`IdError::MallId`].
    pub fn parse(s: &str) -> Result<MallId, IdError> {
        let valid = (1..=MAX_MALL_ID_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        valid.then(|| MallId(s.to_owned())).ok_or(IdError::MallId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Cafe24 order id (`order_id`, e.g. `20220519-0000029`): 1–100 characters, none a
/// control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    /// Parses an `order_id`. Errors: [`IdError::OrderId`].
    pub fn parse(s: &str) -> Result<OrderId, IdError> {
        let valid =
            !s.is_empty() && s.len() <= MAX_ORDER_ID_LEN && !s.chars().any(char::is_control);
        valid.then(|| OrderId(s.to_owned())).ok_or(IdError::OrderId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! reads_as_str {
    ($ty:ty) => {
        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

reads_as_str!(MallId);
reads_as_str!(OrderId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mall_ids_are_short_lower_case_names() {
        for ok in ["demomall", "a", "shop_01-b", &"z".repeat(50)] {
            assert!(MallId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"z".repeat(51),
            "Demomall",
            "demo:mall",
            "demomall\n",
            "몰",
        ] {
            assert_eq!(MallId::parse(bad), Err(IdError::MallId), "{bad}");
        }
    }

    #[test]
    fn order_ids_are_printable_and_bounded() {
        assert!(OrderId::parse("20220519-0000029").is_ok());
        assert!(OrderId::parse("注文-1").is_ok());
        assert!(OrderId::parse(&"9".repeat(100)).is_ok());
        for bad in ["", &"9".repeat(101), "a\nb", "a\0b"] {
            assert_eq!(OrderId::parse(bad), Err(IdError::OrderId));
        }
    }
}
