//! Amounts (`money::Money`): parsing Cafe24's decimal strings and formatting them back.
//!
//! Input: byte 0 picks the currency, bytes 1..9 are an `i64` (little endian), the rest
//! is the amount text. Properties, for every currency:
//! - `parse_non_negative` never panics and agrees with an independent u128 reading of
//!   the documented grammar (digits, optional `.digits`, at most 32 bytes, only zeros
//!   past the exponent, fits in i64 minor units);
//! - `parse(format(m)) == m`: a parsed amount formats to text that parses back to it, and
//!   so does `from_minor(n)` for every non-negative n; a negative one formats with `-`
//!   and is refused;
//! - `parse_positive` is `parse_non_negative` without zero;
//! - `checked_add`/`checked_sub` agree with i128 arithmetic.
#![no_main]

use cafe24_komoju::money::{Currency, Money};
use libfuzzer_sys::fuzz_target;

/// Minor units of `text` by the documented grammar, computed without i64 arithmetic.
fn oracle(text: &str, exponent: u32) -> Option<i64> {
    if text.is_empty() || text.len() > 32 {
        return None;
    }
    let (whole, fraction) = match text.find('.') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let fraction = fraction.unwrap_or("");
    let e = exponent as usize;
    let (significant, rest) = fraction.split_at(fraction.len().min(e));
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    // At most 32 + 2 digits: far below u128::MAX (39 digits).
    let mut value: u128 = 0;
    let padding = std::iter::repeat(b'0').take(e - significant.len());
    for b in whole.bytes().chain(significant.bytes()).chain(padding) {
        value = value * 10 + u128::from(b - b'0');
    }
    i64::try_from(value).ok()
}

fn check_format(money: Money) {
    let c = money.currency();
    let text = money.to_decimal_string();
    let e = c.exponent() as usize;
    match text.split_once('.') {
        Some((_, fraction)) => assert_eq!(fraction.len(), e, "{text} has {e} decimals"),
        None => assert_eq!(e, 0, "{text} has no decimals"),
    }
    if money.minor() >= 0 {
        assert_eq!(
            Money::parse_non_negative(&text, c),
            Ok(money),
            "parse(format(m)) for {text} {c}"
        );
    } else {
        assert!(text.starts_with('-'), "{text}");
        assert!(
            Money::parse_non_negative(&text, c).is_err(),
            "{text} parses"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, tail) = data.split_at(data.len().min(9));
    let all = Currency::all();
    let currency = all[usize::from(head.first().copied().unwrap_or(0)) % all.len()];
    let mut raw = [0u8; 8];
    let rest = head.get(1..).unwrap_or_default();
    raw[..rest.len()].copy_from_slice(rest);
    let any_minor = i64::from_le_bytes(raw);
    let text = String::from_utf8_lossy(tail);

    // Currency codes.
    if let Ok(c) = Currency::parse(&text) {
        assert_eq!(c.code(), text);
    }

    for &c in all {
        let parsed = Money::parse_non_negative(&text, c);
        assert_eq!(
            parsed.as_ref().ok().map(|m| m.minor()),
            oracle(&text, c.exponent()),
            "parse_non_negative({text:?}, {c})"
        );
        let positive = Money::parse_positive(&text, c);
        match &parsed {
            Ok(m) => {
                assert_eq!(m.currency(), c);
                assert!(m.minor() >= 0);
                check_format(*m);
                if m.minor() > 0 {
                    assert_eq!(positive, Ok(*m));
                } else {
                    assert!(positive.is_err(), "parse_positive({text:?}) accepted zero");
                }
            }
            Err(_) => assert!(positive.is_err(), "parse_positive is looser: {text:?}"),
        }
        if let Ok(m) = positive {
            assert!(m.minor() > 0);
        }
        check_format(Money::from_minor(any_minor, c));
        check_format(Money::from_minor(any_minor & i64::MAX, c));
    }

    // Arithmetic against i128, using the parsed amount when there is one.
    let a = Money::from_minor(any_minor, currency);
    let b = Money::parse_non_negative(&text, currency)
        .unwrap_or_else(|_| Money::from_minor(any_minor.rotate_left(17), currency));
    let (x, y) = (i128::from(a.minor()), i128::from(b.minor()));
    let expect = |v: i128| {
        i64::try_from(v)
            .ok()
            .map(|m| Money::from_minor(m, currency))
    };
    assert_eq!(a.checked_add(b), expect(x + y));
    assert_eq!(a.checked_sub(b), expect(x - y));
    let other = all[(all.iter().position(|&c| c == currency).unwrap_or(0) + 1) % all.len()];
    assert_eq!(a.checked_add(Money::from_minor(b.minor(), other)), None);
});
