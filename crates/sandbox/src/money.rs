//! Currencies, the payment types KOMOJU offers and the currencies each takes, exchange
//! rates, and what paying a session with a type charges.
//!
//! KOMOJU converts: a session keeps its own `amount` and `currency`, and when the buyer
//! picks a type that does not take that currency, the payment is charged in a currency
//! the type does take (JPY for the Japanese methods) at an exchange rate. The session
//! shows it per type, `payment_methods[]{type, amount, currency, exchange_rate}` (SDK
//! `komoju/komoju-node-sdk` `models/payment-method.ts`: "Exchange rate applied when this
//! payment method's currency differs from the session currency"); KOMOJU's Salesforce
//! cartridge creates sessions in the store's currency for any one type and reads
//! `payment_methods[0].exchange_rate` from the reply, multiplying the session's amount
//! (major units) by it to get the charged amount (`int_komoju_sfra/.../KomojuController.js`,
//! `int_komoju_common/.../komojuHelpers.js`). So a USD session may offer konbini.

use std::collections::HashMap;

/// A payment type the stand-in knows, with KOMOJU's display names and the currencies
/// it takes.
pub(crate) struct PaymentType {
    pub(crate) slug: &'static str,
    pub(crate) name_en: &'static str,
    pub(crate) name_ja: &'static str,
    pub(crate) name_ko: &'static str,
    /// The first one is the currency a conversion charges in.
    pub(crate) currencies: &'static [&'static str],
}

/// KOMOJU's `Currency` enum (SDK `models/currency.ts`).
pub(crate) const KOMOJU_CURRENCIES: [&str; 20] = [
    "JPY", "USD", "EUR", "TWD", "KRW", "PLN", "GBP", "HKD", "SGD", "NZD", "AUD", "IDR", "MYR",
    "PHP", "THB", "CNY", "BRL", "CHF", "CAD", "VND",
];

const JPY_ONLY: [&str; 1] = ["JPY"];

/// Every type a merchant of the service can choose. Which currencies cards take is a
/// guess (every currency of KOMOJU's enum); the Japanese methods take only JPY
/// (shared/reference/komoju-api.md §5; issue 17 item 3).
pub(crate) const PAYMENT_TYPES: [PaymentType; 5] = [
    PaymentType {
        slug: "credit_card",
        name_en: "Credit Card",
        name_ja: "クレジットカード",
        name_ko: "신용카드",
        currencies: &KOMOJU_CURRENCIES,
    },
    PaymentType {
        slug: "konbini",
        name_en: "Konbini",
        name_ja: "コンビニ",
        name_ko: "편의점",
        currencies: &JPY_ONLY,
    },
    PaymentType {
        slug: "paypay",
        name_en: "PayPay",
        name_ja: "PayPay",
        name_ko: "PayPay",
        currencies: &JPY_ONLY,
    },
    PaymentType {
        slug: "bank_transfer",
        name_en: "Bank Transfer",
        name_ja: "銀行振込",
        name_ko: "은행 송금",
        currencies: &JPY_ONLY,
    },
    PaymentType {
        slug: "pay_easy",
        name_en: "Pay-easy",
        name_ja: "ペイジー",
        name_ko: "페이지",
        currencies: &JPY_ONLY,
    },
];

pub(crate) fn payment_type(slug: &str) -> Option<&'static PaymentType> {
    PAYMENT_TYPES.iter().find(|t| t.slug == slug)
}

/// Digits after the decimal point of the currency's minor unit: none for the currencies
/// KOMOJU's Salesforce cartridge lists as having no cents (`noCentCurrency`, of which
/// JPY, KRW and VND are in KOMOJU's enum), two for the others.
pub(crate) fn exponent(currency: &str) -> i32 {
    const NO_CENTS: [&str; 16] = [
        "DIF", "CLP", "BIF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    if NO_CENTS.contains(&currency) {
        0
    } else {
        2
    }
}

/// Rates the stand-in starts with, into JPY: invented round figures for tests, not market
/// rates. [`Rates::set`] (`Sandbox::set_exchange_rate`) changes or adds any pair.
const DEFAULT_RATES_TO_JPY: [(&str, f64); 11] = [
    ("USD", 150.0),
    ("EUR", 160.0),
    ("GBP", 190.0),
    ("AUD", 100.0),
    ("CAD", 110.0),
    ("HKD", 19.0),
    ("SGD", 110.0),
    ("CNY", 21.0),
    ("THB", 4.2),
    ("PHP", 2.6),
    ("KRW", 0.11),
];

/// Exchange rates: units of `to` for one unit of `from`, in major units.
pub(crate) struct Rates {
    rates: HashMap<(String, String), f64>,
}

impl Default for Rates {
    fn default() -> Rates {
        let rates = DEFAULT_RATES_TO_JPY
            .iter()
            .map(|(from, rate)| ((from.to_string(), "JPY".to_string()), *rate))
            .collect();
        Rates { rates }
    }
}

impl Rates {
    pub(crate) fn set(&mut self, from: &str, to: &str, rate: f64) {
        self.rates.insert((from.to_string(), to.to_string()), rate);
    }

    /// 1 for a currency into itself; `None` for an unknown pair.
    pub(crate) fn get(&self, from: &str, to: &str) -> Option<f64> {
        if from == to {
            return Some(1.0);
        }
        self.rates.get(&(from.to_string(), to.to_string())).copied()
    }
}

/// What a payment of one type charges for a session: currency, amount in its minor unit,
/// and the rate from the session's currency (1 when it is the same currency).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Charge {
    pub(crate) currency: String,
    pub(crate) amount: i64,
    pub(crate) exchange_rate: f64,
}

impl Charge {
    /// Whether KOMOJU converted (the charged currency is not the session's).
    pub(crate) fn converted(&self, session_currency: &str) -> bool {
        self.currency != session_currency
    }
}

/// What paying `amount` (minor units of `currency`) with type `slug` charges: the same
/// amount when the type takes the currency (and for a type the stand-in does not know),
/// else the amount converted into the first currency the type takes, rounded to its
/// minor unit (the rounding is a guess); `None` when no rate is known.
pub(crate) fn charge(slug: &str, amount: i64, currency: &str, rates: &Rates) -> Option<Charge> {
    let takes = payment_type(slug).map(|t| t.currencies);
    let same = Charge {
        currency: currency.to_string(),
        amount,
        exchange_rate: 1.0,
    };
    let Some(takes) = takes else {
        return Some(same);
    };
    if takes.contains(&currency) {
        return Some(same);
    }
    let to = takes.first()?;
    let rate = rates.get(currency, to)?;
    Some(Charge {
        currency: to.to_string(),
        amount: convert(amount, currency, to, rate),
        exchange_rate: rate,
    })
}

/// `amount` minor units of `from` in minor units of `to` at `rate` (major units).
pub(crate) fn convert(amount: i64, from: &str, to: &str, rate: f64) -> i64 {
    let major = amount as f64 / 10f64.powi(exponent(from));
    (major * rate * 10f64.powi(exponent(to))).round() as i64
}

/// `1500 JPY`, `12.34 USD`.
pub(crate) fn format_amount(amount: i64, currency: &str) -> String {
    let exp = exponent(currency);
    if exp == 0 {
        return format!("{amount} {currency}");
    }
    let sign = if amount < 0 { "-" } else { "" };
    let unit = 10u64.pow(exp as u32);
    let abs = amount.unsigned_abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / unit,
        abs % unit,
        width = exp as usize
    )
}
