//! Money: the currency table and exact amounts in minor units (PROTOCOL §4).
//!
//! This module owns the list of ISO 4217 currencies the service accepts, their minor-unit
//! exponents, and the exact conversion between Cafe24's decimal strings (`"3065.00"`) and
//! integer minor units (`i64`). It never uses floating point, never rounds (a string with
//! more significant fractional digits than the currency has is an error), and never
//! touches the network or the database. Callers keep the exact string Cafe24 sent for
//! signatures (§2); this module only says what amount that string means.

use std::fmt;
use std::str::FromStr;

/// Longest amount text accepted, in bytes. Longer input is `InvalidAmount` without parsing.
const MAX_AMOUNT_LEN: usize = 32;

/// ISO 4217 currencies the service accepts, with their minor-unit exponent.
///
/// The exponent is the number of fractional digits of the currency's decimal format:
/// JPY and KRW have 0, every other currency here has 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    /// Japanese yen, exponent 0.
    JPY,
    /// South Korean won, exponent 0.
    KRW,
    /// US dollar, exponent 2.
    USD,
    /// Euro, exponent 2.
    EUR,
    /// Philippine peso, exponent 2.
    PHP,
    /// Hong Kong dollar, exponent 2.
    HKD,
    /// Singapore dollar, exponent 2.
    SGD,
    /// Chinese yuan, exponent 2.
    CNY,
    /// Thai baht, exponent 2.
    THB,
    /// Australian dollar, exponent 2.
    AUD,
    /// Pound sterling, exponent 2.
    GBP,
    /// Canadian dollar, exponent 2.
    CAD,
}

const ALL_CURRENCIES: [Currency; 12] = [
    Currency::JPY,
    Currency::KRW,
    Currency::USD,
    Currency::EUR,
    Currency::PHP,
    Currency::HKD,
    Currency::SGD,
    Currency::CNY,
    Currency::THB,
    Currency::AUD,
    Currency::GBP,
    Currency::CAD,
];

impl Currency {
    /// Parse an ISO 4217 code exactly as written: uppercase, no surrounding whitespace.
    ///
    /// Errors: any other text (including lowercase `"jpy"`) is
    /// [`MoneyError::UnsupportedCurrency`].
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        ALL_CURRENCIES
            .iter()
            .copied()
            .find(|currency| currency.code() == code)
            .ok_or(MoneyError::UnsupportedCurrency)
    }

    /// The symbol a shop shows before an amount (`¥`, `₩`, `$`, `HK$`…).
    pub fn symbol(self) -> &'static str {
        match self {
            Currency::JPY => "¥",
            Currency::KRW => "₩",
            Currency::USD => "$",
            Currency::EUR => "€",
            Currency::PHP => "₱",
            Currency::HKD => "HK$",
            Currency::SGD => "S$",
            Currency::CNY => "CN¥",
            Currency::THB => "฿",
            Currency::AUD => "A$",
            Currency::GBP => "£",
            Currency::CAD => "CA$",
        }
    }

    /// The three-letter uppercase ISO 4217 code, e.g. `"JPY"`.
    pub fn code(self) -> &'static str {
        match self {
            Currency::JPY => "JPY",
            Currency::KRW => "KRW",
            Currency::USD => "USD",
            Currency::EUR => "EUR",
            Currency::PHP => "PHP",
            Currency::HKD => "HKD",
            Currency::SGD => "SGD",
            Currency::CNY => "CNY",
            Currency::THB => "THB",
            Currency::AUD => "AUD",
            Currency::GBP => "GBP",
            Currency::CAD => "CAD",
        }
    }

    /// Number of fractional digits of the minor unit: JPY 0, KRW 0, all others 2.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::JPY | Currency::KRW => 0,
            Currency::USD
            | Currency::EUR
            | Currency::PHP
            | Currency::HKD
            | Currency::SGD
            | Currency::CNY
            | Currency::THB
            | Currency::AUD
            | Currency::GBP
            | Currency::CAD => 2,
        }
    }

    /// The largest amount accepted in this currency, in minor units (issue 18, item 10;
    /// `docs/decisions.md`): about one million US dollars, a round figure in each
    /// currency, far above any single online payment and far below `i64`. KOMOJU's own
    /// limits per payment method (lower, and per merchant contract) are KOMOJU's to
    /// enforce; this only refuses amounts no payment can be.
    pub fn max_minor(self) -> i64 {
        let major: i64 = match self {
            Currency::JPY => 100_000_000,
            Currency::KRW => 1_000_000_000,
            Currency::USD
            | Currency::EUR
            | Currency::GBP
            | Currency::AUD
            | Currency::CAD
            | Currency::SGD => 1_000_000,
            Currency::HKD | Currency::CNY => 10_000_000,
            Currency::PHP | Currency::THB => 50_000_000,
        };
        major * 10i64.pow(self.exponent())
    }

    /// Every supported currency, in the order of the §4 table.
    pub fn all() -> &'static [Currency] {
        &ALL_CURRENCIES
    }
}

impl fmt::Display for Currency {
    /// Writes the ISO 4217 code, e.g. `JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Same as [`Currency::parse`].
    fn from_str(code: &str) -> Result<Currency, MoneyError> {
        Currency::parse(code)
    }
}

/// An amount in the currency's minor unit (`i64`, never floating point).
///
/// `Money::from_minor(306500, Currency::PHP)` is PHP 3065.00;
/// `Money::from_minor(3065, Currency::JPY)` is JPY 3065.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount of `minor` minor units of `currency` (cents for USD, yen for JPY).
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Parse Cafe24's decimal amount string exactly; the amount must be greater than zero.
    ///
    /// Shape: ASCII digits, then optionally one `.` followed by at least one ASCII digit.
    /// At most `currency.exponent()` fractional digits may be significant; further
    /// fractional digits are accepted only when they are all `0` (`"3065.00"` JPY is 3065,
    /// `"3065.010"` PHP is 306501, `"3065.5"` JPY and `"3065.001"` PHP are errors).
    /// Leading zeros in the integer part are accepted (`"0.5"` USD is 50).
    ///
    /// Errors: [`MoneyError::InvalidAmount`] for empty text, text over 32 bytes, signs,
    /// whitespace, exponents, commas, `"."`, `".5"`, `"5."`, non-ASCII digits, a value that
    /// overflows `i64` minor units, or zero; [`MoneyError::TooLarge`] above
    /// [`Currency::max_minor`].
    pub fn parse_positive(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let money = Money::parse_non_negative(text, currency)?;
        if money.minor == 0 {
            return Err(invalid_amount(currency));
        }
        Ok(money)
    }

    /// Same rules as [`Money::parse_positive`], but zero (`"0"`, `"0.00"`) is accepted.
    ///
    /// Errors: [`MoneyError::InvalidAmount`] as for `parse_positive`, except for zero;
    /// [`MoneyError::TooLarge`] above [`Currency::max_minor`].
    pub fn parse_non_negative(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let money = parse_minor(text, currency.exponent())
            .map(|minor| Money { minor, currency })
            .ok_or_else(|| invalid_amount(currency))?;
        money.within_maximum()
    }

    /// `self` when it is at most its currency's [`Currency::max_minor`]. Errors:
    /// [`MoneyError::TooLarge`].
    pub fn within_maximum(self) -> Result<Money, MoneyError> {
        if self.minor > self.currency.max_minor() {
            return Err(MoneyError::TooLarge {
                max: Money::from_minor(self.currency.max_minor(), self.currency)
                    .to_decimal_string(),
                currency: self.currency,
            });
        }
        Ok(self)
    }

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The amount's currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// Cafe24's decimal format: exactly `exponent` fractional digits.
    ///
    /// JPY 3065 is `"3065"`; PHP 306500 is `"3065.00"`; USD 5 is `"0.05"`. A negative
    /// amount (not expected in practice) is written with a leading `-`.
    pub fn to_decimal_string(self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        let magnitude = self.minor.unsigned_abs();
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        // 10^exponent fits in u64 for every exponent in the table (at most 2).
        let scale = 10u64.pow(exponent);
        let whole = magnitude / scale;
        let fraction = magnitude % scale;
        let width = exponent as usize;
        format!("{sign}{whole}.{fraction:0width$}")
    }

    /// The amount as a shop shows it to people: the currency's symbol, then the amount
    /// with its thousands grouped by `,` and its minor digits (JPY 3400 is `¥3,400`, KRW
    /// 45000 is `₩45,000`, USD 3000 is `$30.00`, PHP 123450 is `₱1,234.50`). For pages only:
    /// what goes to Cafe24 or KOMOJU is [`Money::to_decimal_string`].
    pub fn to_display_string(self) -> String {
        let decimal = self.to_decimal_string();
        let (sign, digits) = match decimal.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", decimal.as_str()),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let symbol = self.currency.symbol();
        match fraction {
            Some(f) => format!("{sign}{symbol}{grouped}.{f}"),
            None => format!("{sign}{symbol}{grouped}"),
        }
    }

    /// Sum of two amounts. `None` when the currencies differ or the sum overflows `i64`.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let minor = self.minor.checked_add(other.minor)?;
        Some(Money::from_minor(minor, self.currency))
    }

    /// Difference `self - other`. `None` when the currencies differ or the result overflows
    /// `i64`. A negative result is returned as is; callers that need `≥ 0` check it.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let minor = self.minor.checked_sub(other.minor)?;
        Some(Money::from_minor(minor, self.currency))
    }
}

/// Why an amount or currency was refused. The messages are safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The amount text is malformed, overflows, has too many significant fractional
    /// digits for its currency, or is zero where a positive amount is required.
    /// `max_fraction_digits` is the currency's exponent.
    #[error(
        "amount is not a positive decimal with at most {max_fraction_digits} fractional digits"
    )]
    InvalidAmount {
        /// The currency's exponent: how many fractional digits may be significant.
        max_fraction_digits: u32,
    },
    /// The currency code is not in the §4 table.
    #[error("currency is not supported")]
    UnsupportedCurrency,
    /// Above the largest amount accepted in the currency ([`Currency::max_minor`]).
    #[error("amount is larger than the largest accepted in {currency} ({max})")]
    TooLarge {
        /// The largest accepted, in the currency's decimal format.
        max: String,
        currency: Currency,
    },
}

fn invalid_amount(currency: Currency) -> MoneyError {
    MoneyError::InvalidAmount {
        max_fraction_digits: currency.exponent(),
    }
}

/// Value of a non-empty run of ASCII digits, or `None` if empty, not all digits, or > i64.
fn parse_digits(digits: &str) -> Option<i64> {
    if digits.is_empty() {
        return None;
    }
    digits.bytes().try_fold(0i64, |value, byte| {
        if !byte.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(i64::from(byte - b'0'))
    })
}

/// Minor units of a decimal text with `exponent` fractional digits, or `None` if invalid.
fn parse_minor(text: &str, exponent: u32) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_AMOUNT_LEN {
        return None;
    }
    let (whole_text, fraction_text) = match text.split_once('.') {
        Some((whole, fraction)) => {
            // "5." and a second '.' are malformed; the digit check below rejects the latter.
            if fraction.is_empty() {
                return None;
            }
            (whole, fraction)
        }
        None => (text, ""),
    };
    let whole = parse_digits(whole_text)?;
    if !fraction_text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let exponent_len = usize::try_from(exponent).ok()?;
    let significant_len = fraction_text.len().min(exponent_len);
    let (significant, rest) = fraction_text.split_at(significant_len);
    if rest.bytes().any(|byte| byte != b'0') {
        return None;
    }
    // Pad the significant fractional digits on the right to exactly `exponent` digits.
    let padding = u32::try_from(exponent_len - significant_len).ok()?;
    let fraction = if significant.is_empty() {
        0
    } else {
        parse_digits(significant)?
    };
    let fraction_minor = fraction.checked_mul(10i64.checked_pow(padding)?)?;
    whole
        .checked_mul(10i64.checked_pow(exponent)?)?
        .checked_add(fraction_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(currency: Currency) -> Result<Money, MoneyError> {
        Err(MoneyError::InvalidAmount {
            max_fraction_digits: currency.exponent(),
        })
    }

    fn positive(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        Money::parse_positive(text, currency)
    }

    #[test]
    fn protocol_examples_parse_to_minor_units() {
        assert_eq!(
            positive("3065.00", Currency::JPY),
            Ok(Money::from_minor(3065, Currency::JPY))
        );
        assert_eq!(
            positive("3065", Currency::JPY),
            Ok(Money::from_minor(3065, Currency::JPY))
        );
        assert_eq!(positive("3065.5", Currency::JPY), invalid(Currency::JPY));
        assert_eq!(
            positive("3065.00", Currency::PHP),
            Ok(Money::from_minor(306500, Currency::PHP))
        );
        assert_eq!(
            positive("3065", Currency::PHP),
            Ok(Money::from_minor(306500, Currency::PHP))
        );
        assert_eq!(
            positive("0.5", Currency::USD),
            Ok(Money::from_minor(50, Currency::USD))
        );
        assert_eq!(positive("3065.001", Currency::PHP), invalid(Currency::PHP));
        assert_eq!(
            positive("3065.010", Currency::PHP),
            Ok(Money::from_minor(306501, Currency::PHP))
        );
        assert_eq!(
            positive("3065.1", Currency::PHP),
            Ok(Money::from_minor(306510, Currency::PHP))
        );
        assert_eq!(
            positive("0.05", Currency::USD),
            Ok(Money::from_minor(5, Currency::USD))
        );
    }

    #[test]
    fn invalid_amount_reports_the_currency_exponent() {
        assert_eq!(
            positive("1.5", Currency::KRW),
            Err(MoneyError::InvalidAmount {
                max_fraction_digits: 0
            })
        );
        assert_eq!(
            positive("1.555", Currency::EUR),
            Err(MoneyError::InvalidAmount {
                max_fraction_digits: 2
            })
        );
        assert_eq!(
            MoneyError::InvalidAmount {
                max_fraction_digits: 2
            }
            .to_string(),
            "amount is not a positive decimal with at most 2 fractional digits"
        );
    }

    #[test]
    fn malformed_text_is_rejected() {
        let bad = [
            "", "-1", "+1", " 1", "1 ", "1\t", "1e3", "1E3", "1,000", ".", ".5", "5.", "1.2.3",
            "1..2", "0x10", "１２", "1_000", "NaN", "inf", "-0",
        ];
        for text in bad {
            assert_eq!(
                Money::parse_non_negative(text, Currency::USD),
                invalid(Currency::USD),
                "{text:?} should be rejected"
            );
            assert_eq!(
                Money::parse_non_negative(text, Currency::JPY),
                invalid(Currency::JPY),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn overflow_is_rejected() {
        assert_eq!(
            positive("99999999999999999999", Currency::JPY),
            invalid(Currency::JPY)
        );
        // i64::MAX is 9223372036854775807.
        assert_eq!(
            positive("9223372036854775808", Currency::JPY),
            invalid(Currency::JPY)
        );
        assert_eq!(
            positive("92233720368547758.08", Currency::PHP),
            invalid(Currency::PHP)
        );
        // Fits as a whole number but not once scaled to minor units.
        assert_eq!(
            positive("9223372036854775807", Currency::PHP),
            invalid(Currency::PHP)
        );
    }

    #[test]
    fn amounts_above_the_currency_maximum_are_too_large() {
        // Issue 18: "92233720368547758.07" PHP fitted i64 and was sent to KOMOJU.
        for (text, currency) in [
            ("9223372036854775807", Currency::JPY),
            ("92233720368547758.07", Currency::PHP),
            ("100000000.01", Currency::PHP),
            ("100000001", Currency::JPY),
            ("1000000.01", Currency::USD),
        ] {
            assert!(
                matches!(positive(text, currency), Err(MoneyError::TooLarge { .. })),
                "{text} {currency}"
            );
        }
        assert_eq!(
            positive("100000000", Currency::JPY),
            Ok(Money::from_minor(100_000_000, Currency::JPY))
        );
        assert_eq!(
            positive("1000000.00", Currency::USD),
            Ok(Money::from_minor(100_000_000, Currency::USD))
        );
        assert_eq!(
            positive("50000000.00", Currency::PHP),
            Ok(Money::from_minor(5_000_000_000, Currency::PHP))
        );
        assert_eq!(
            positive("100000001", Currency::JPY)
                .err()
                .map(|e| e.to_string()),
            Some("amount is larger than the largest accepted in JPY (100000000)".into())
        );
        for &currency in Currency::all() {
            let max = Money::from_minor(currency.max_minor(), currency);
            assert_eq!(
                Money::parse_positive(&max.to_decimal_string(), currency),
                Ok(max)
            );
            assert!(currency.max_minor() < i64::MAX / 1000, "{currency}");
        }
    }

    #[test]
    fn input_longer_than_32_bytes_is_rejected() {
        let zeros_32 = format!("1.{}", "0".repeat(30));
        assert_eq!(zeros_32.len(), 32);
        assert_eq!(
            positive(&zeros_32, Currency::USD),
            Ok(Money::from_minor(100, Currency::USD))
        );
        let zeros_33 = format!("1.{}", "0".repeat(31));
        assert_eq!(positive(&zeros_33, Currency::USD), invalid(Currency::USD));
    }

    #[test]
    fn zero_is_only_non_negative() {
        for text in ["0", "0.00", "0.0", "000"] {
            assert_eq!(positive(text, Currency::USD), invalid(Currency::USD));
            assert_eq!(
                Money::parse_non_negative(text, Currency::USD),
                Ok(Money::from_minor(0, Currency::USD))
            );
        }
        assert_eq!(
            Money::parse_non_negative("0", Currency::JPY),
            Ok(Money::from_minor(0, Currency::JPY))
        );
    }

    #[test]
    fn decimal_string_format() {
        let cases = [
            (3065, Currency::JPY, "3065"),
            (306500, Currency::PHP, "3065.00"),
            (5, Currency::USD, "0.05"),
            (50, Currency::USD, "0.50"),
            (0, Currency::USD, "0.00"),
            (0, Currency::KRW, "0"),
            (-5, Currency::USD, "-0.05"),
            (-3065, Currency::JPY, "-3065"),
            (i64::MIN, Currency::EUR, "-92233720368547758.08"),
            (i64::MAX, Currency::EUR, "92233720368547758.07"),
        ];
        for (minor, currency, expected) in cases {
            assert_eq!(
                Money::from_minor(minor, currency).to_decimal_string(),
                expected
            );
        }
    }

    #[test]
    fn decimal_string_round_trips() {
        let minors = [0, 1, 9, 10, 99, 100, 101, 306500, 10_000_007];
        for &currency in Currency::all() {
            for minor in minors.into_iter().chain([currency.max_minor()]) {
                let money = Money::from_minor(minor, currency);
                let text = money.to_decimal_string();
                assert_eq!(
                    Money::parse_non_negative(&text, currency),
                    Ok(money),
                    "{text} {currency}"
                );
            }
        }
    }

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::parse("JPY"), Ok(Currency::JPY));
        assert_eq!("PHP".parse::<Currency>(), Ok(Currency::PHP));
        for code in ["jpy", "Jpy", " JPY", "JPY ", "", "XXX", "BTC"] {
            assert_eq!(
                Currency::parse(code),
                Err(MoneyError::UnsupportedCurrency),
                "{code:?}"
            );
        }
        assert_eq!(Currency::all().len(), 12);
        for &currency in Currency::all() {
            assert_eq!(Currency::parse(currency.code()), Ok(currency));
            assert_eq!(currency.to_string(), currency.code());
            let expected = match currency {
                Currency::JPY | Currency::KRW => 0,
                _ => 2,
            };
            assert_eq!(currency.exponent(), expected, "{currency}");
        }
    }

    #[test]
    fn checked_arithmetic() {
        let a = Money::from_minor(300, Currency::USD);
        let b = Money::from_minor(120, Currency::USD);
        assert_eq!(
            a.checked_add(b),
            Some(Money::from_minor(420, Currency::USD))
        );
        assert_eq!(
            a.checked_sub(b),
            Some(Money::from_minor(180, Currency::USD))
        );
        assert_eq!(
            b.checked_sub(a),
            Some(Money::from_minor(-180, Currency::USD))
        );
        let yen = Money::from_minor(300, Currency::JPY);
        assert_eq!(a.checked_add(yen), None);
        assert_eq!(a.checked_sub(yen), None);
        let max = Money::from_minor(i64::MAX, Currency::USD);
        assert_eq!(max.checked_add(Money::from_minor(1, Currency::USD)), None);
        let min = Money::from_minor(i64::MIN, Currency::USD);
        assert_eq!(min.checked_sub(Money::from_minor(1, Currency::USD)), None);
        assert_eq!(a.minor(), 300);
        assert_eq!(a.currency(), Currency::USD);
    }

    #[test]
    fn amounts_show_as_a_shop_shows_them() {
        let show = |minor, c| Money::from_minor(minor, c).to_display_string();
        assert_eq!(show(3400, Currency::JPY), "¥3,400");
        assert_eq!(show(45000, Currency::KRW), "₩45,000");
        assert_eq!(show(3000, Currency::USD), "$30.00");
        assert_eq!(show(123450, Currency::PHP), "₱1,234.50");
        assert_eq!(show(5, Currency::USD), "$0.05");
        assert_eq!(show(999, Currency::JPY), "¥999");
        assert_eq!(show(1_234_567_890, Currency::JPY), "¥1,234,567,890");
        assert_eq!(show(-1200, Currency::JPY), "-¥1,200");
    }
}
