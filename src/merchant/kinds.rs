//! The merchant settings that have a type, not a string: how Cafe24 cancels
//! ([`CancelMode`]), the language KOMOJU's hosted page opens in ([`Locale`]), how
//! notifications are encoded ([`NotifyEncoding`]), what Cafe24 was told about a shop's
//! registrations ([`Registration`]). Each is stored as its `as_str()` and
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
