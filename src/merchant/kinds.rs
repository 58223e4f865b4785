//! The merchant settings that have a type, not a string: how Cafe24 cancels
//! ([`CancelMode`]), the language KOMOJU's hosted page opens in ([`Locale`]), how
//! notifications are encoded ([`NotifyEncoding`]), what Cafe24 was told about a shop's
//! registrations ([`Registration`]), the payment types it offers ([`PaymentTypes`]),
//! when card payments are captured ([`CaptureMode`]).
//! Each is stored as its `as_str()` and
//! read back with `parse()` (a stored value it does not know is an error, never a
//! default). This module depends on nothing, so the database layer can store them.

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses a stored or wire name; `None` for anything else.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// How Cafe24 cancels the merchant's payments, and through which route family a
    /// cancellation came (PROTOCOL.md §6.1 `cancel_mode`, §6.4, §6.5).
    CancelMode {
        /// §6.4: `0000` only once KOMOJU confirmed.
        Sync = "sync",
        /// §6.5: `0000` once KOMOJU accepted; `cancel_noty_url` hears the confirmation.
        Async = "async",
    }
);

named_enum!(
    /// When a card payment's money is taken (PROTOCOL.md §7 `payment_data.capture`):
    /// at once, or at the merchant's capture (`POST /payments/{id}/capture`, cards only).
    CaptureMode {
        /// KOMOJU captures at authorization (the default).
        Auto = "auto",
        /// KOMOJU authorizes; the merchant captures at shipment, or the service does
        /// after `auto_capture_after_days`.
        Manual = "manual",
    }
);

named_enum!(
    /// The languages of KOMOJU's hosted page (§7 `default_locale`).
    Locale {
        Ja = "ja",
        En = "en",
        Ko = "ko",
    }
);

impl Locale {
    /// The language of a Cafe24 `lang` (`ja_JP`, `ko_KR`, `en_US`…) or a two-letter code,
    /// when it is one of ours.
    pub fn of_lang(lang: &str) -> Option<Locale> {
        let two = lang.get(..2).unwrap_or(lang).to_ascii_lowercase();
        Locale::parse(&two)
    }
}

named_enum!(
    /// How notifications to Cafe24 are encoded (§9): form-encoded by default, JSON per
    /// merchant setting.
    NotifyEncoding {
        Form = "form",
        Json = "json",
    }
);

named_enum!(
    /// A registration at Cafe24 (a shop's payment gateway or its script tag) as last
    /// recorded (PROTOCOL.md §12). The state is written before the Admin API call
    /// (`registering`, `unregistering`) and after its answer (`on`, `off`), so a failure
    /// halfway is seen and can be retried.
    Registration {
        Off = "off",
        Registering = "registering",
        On = "on",
        Unregistering = "unregistering",
    }
);

/// The KOMOJU payment types a merchant offers (PROTOCOL.md §7 `payment_types`), in the
/// merchant's order, stored comma-separated (`credit_card,konbini`). Which slugs are
/// acceptable is `merchant::rules::payment_types`; this type only keeps the list, so a
/// value stored by an older rule still reads (pieces trimmed, empty ones dropped).
#[derive(Debug, Clone, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct PaymentTypes(String);

impl PaymentTypes {
    /// The list `types`, in their order (trimmed, empty ones dropped).
    pub fn from_list<S: AsRef<str>>(types: &[S]) -> PaymentTypes {
        let kept: Vec<&str> = types
            .iter()
            .map(|t| t.as_ref().trim())
            .filter(|t| !t.is_empty())
            .collect();
        PaymentTypes(kept.join(","))
    }

    /// The stored form, `credit_card,konbini`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a stored value (always `Some`: see the type's doc).
    pub fn parse(stored: &str) -> Option<PaymentTypes> {
        Some(PaymentTypes::from_list(
            &stored.split(',').collect::<Vec<_>>(),
        ))
    }

    /// Each type, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').filter(|t| !t.is_empty())
    }

    /// Each type, owned.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl std::fmt::Display for PaymentTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_types_keep_their_order_and_read_older_stored_values() {
        let types = PaymentTypes::from_list(&["credit_card", "konbini", "paypay"]);
        assert_eq!(types.as_str(), "credit_card,konbini,paypay");
        assert_eq!(
            types.iter().collect::<Vec<_>>(),
            ["credit_card", "konbini", "paypay"]
        );
        assert_eq!(PaymentTypes::parse(types.as_str()), Some(types));
        // Spaces and empty pieces an earlier rule let through read as the list they meant.
        let older = PaymentTypes::parse(" credit_card, ,konbini,");
        assert_eq!(
            older.map(|t| t.to_vec()),
            Some(vec!["credit_card".into(), "konbini".into()])
        );
        assert_eq!(PaymentTypes::from_list::<&str>(&[]).iter().count(), 0);
    }

    #[test]
    fn every_named_value_reads_back_and_nothing_else_does() {
        for mode in CancelMode::ALL {
            assert_eq!(CancelMode::parse(mode.as_str()), Some(*mode));
        }
        for registration in Registration::ALL {
            assert_eq!(
                Registration::parse(registration.as_str()),
                Some(*registration)
            );
        }
        assert_eq!(CancelMode::parse("Sync"), None);
        assert_eq!(Registration::parse(""), None);
    }
}
