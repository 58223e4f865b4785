//! The JSON of sessions, payments, refunds and refund requests, in KOMOJU's shapes and
//! key order: private structs rather than `serde_json::Value`, so that keys keep their
//! order on the wire. Sources: SDK `komoju/komoju-node-sdk` `models/session.ts`,
//! `payment.ts`, `refund.ts`, `refund-request.ts`, `payment-method.ts`,
//! `response-payment-details-*.ts`; docs.komoju.com's "Show a payment" example; the
//! WooCommerce plugin's webhook fixtures; shared/seeds/komoju-hosted-page-en.txt.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use super::clock::{format_time, Time};
use super::state::{
    Method, PaymentRecord, RefundRecord, RefundRequestRecord, SessionRecord, State, KONBINI_BRANDS,
};

/// The merchant name sessions show (SDK `models/merchant-data.ts`, `merchant.name`); the
/// stand-in has no dashboard where a merchant sets one, so it is one invented name.
const MERCHANT_NAME: &str = "KOMOJU sandbox merchant";

/// Where a deferred payment's instructions are: `{base}/instructions/{payment id}`,
/// like KOMOJU's `https://komoju.com/en/instructions/{payment id}`.
pub(crate) fn instructions_url(public_base: &str, payment_id: &str) -> String {
    format!("{public_base}/instructions/{payment_id}")
}

/// A deferred refund's `redirect_url`: the stand-in's bank-account page.
pub(crate) fn refund_redirect_url(public_base: &str, token: &str) -> String {
    format!("{public_base}/refund_requests/{token}")
}

/// The Session object; `amount_skew` is added to every `amount` (for
/// `Fault::WrongAmountInReply`).
pub(crate) fn session_view<'a>(
    state: &'a State,
    session: &'a SessionRecord,
    public_base: &str,
    now: Time,
    amount_skew: i64,
) -> SessionView<'a> {
    SessionView {
        id: &session.id,
        resource: "session",
        mode: "payment",
        amount: session.amount + amount_skew,
        currency: &session.currency,
        payment: session
            .payment
            .as_ref()
            .and_then(|id| state.payments.get(id))
            .map(|p| payment_view(p, public_base, amount_skew)),
        session_url: format!("{public_base}/sessions/{}", session.id),
        return_url: &session.return_url,
        default_locale: &session.default_locale,
        payment_methods: session
            .offered
            .iter()
            .map(|o| {
                let converted = o.charge.converted(&session.currency);
                PaymentMethodView {
                    kind: &o.slug,
                    amount: converted.then_some(o.charge.amount),
                    currency: converted.then_some(o.charge.currency.as_str()),
                    exchange_rate: converted.then_some(o.charge.exchange_rate),
                    brands: (o.slug == "konbini").then(konbini_brands),
                }
            })
            .collect(),
        created_at: format_time(&session.created_at),
        cancelled_at: session.cancelled_at.as_ref().map(format_time),
        completed_at: session.completed_at.as_ref().map(format_time),
        status: session.status.as_str(),
        expired: session.expired(now),
        merchant: MerchantView {
            name: MERCHANT_NAME,
        },
        metadata: &session.metadata,
        payment_data: PaymentDataView {
            capture: session.capture.as_str(),
            external_order_num: session.external_order_num.as_deref(),
        },
        email: session.email.as_deref(),
    }
}

fn konbini_brands() -> Vec<(&'static str, String)> {
    KONBINI_BRANDS
        .iter()
        .map(|b| (*b, format!("/images/konbini/{b}.svg")))
        .collect()
}

/// The Payment object; `amount_skew` is added to `amount` and `total` (for
/// `Fault::WrongAmountInReply`).
pub(crate) fn payment_view<'a>(
    p: &'a PaymentRecord,
    public_base: &str,
    amount_skew: i64,
) -> PaymentView<'a> {
    PaymentView {
        id: &p.id,
        resource: "payment",
        status: Cow::Borrowed(p.status.as_str()),
        amount: p.amount + amount_skew,
        tax: p.tax,
        customer: None,
        payment_deadline: p.payment_deadline.as_ref().map(format_time),
        payment_details: details_view(p, public_base),
        payment_method_fee: p.fee,
        total: p.total() + amount_skew,
        currency: &p.currency,
        description: None,
        captured_at: p.captured_at.as_ref().map(format_time),
        external_order_num: p.external_order_num.as_deref(),
        metadata: &p.metadata,
        created_at: format_time(&p.created_at),
        amount_refunded: p.amount_refunded,
        locale: &p.locale,
        session: &p.session,
        customer_family_name: None,
        customer_given_name: None,
        mcc: None,
        statement_descriptor: None,
        refunds: p
            .refunds
            .iter()
            .map(|r| refund_view(p, r, public_base))
            .collect(),
        refund_requests: p
            .refund_requests
            .iter()
            .map(|r| refund_request_view(p, r))
            .collect(),
    }
}

fn refund_view<'a>(p: &'a PaymentRecord, r: &'a RefundRecord, public_base: &str) -> RefundView<'a> {
    RefundView {
        id: &r.id,
        resource: "refund",
        amount: r.amount,
        currency: &p.currency,
        payment: &p.id,
        description: r.description.as_deref(),
        created_at: format_time(&r.created_at),
        chargeback: false,
        redirect_url: r
            .bank_token
            .as_deref()
            .map(|token| refund_redirect_url(public_base, token)),
    }
}

fn refund_request_view<'a>(
    p: &'a PaymentRecord,
    r: &'a RefundRequestRecord,
) -> RefundRequestView<'a> {
    RefundRequestView {
        id: &r.id,
        payment: &p.id,
        customer_name: &r.account.customer_name,
        bank_name: &r.account.bank_name,
        bank_code: r.account.bank_code.as_deref(),
        branch_name: &r.account.branch_name,
        branch_number: &r.account.branch_number,
        account_number: &r.account.account_number,
        status: r.status.as_str(),
        created_at: format_time(&r.created_at),
    }
}

/// `payment_details` by type (SDK `response-payment-details-{credit-card,konbini,pay-pay,
/// bank-transfer,pay-easy}`), with only the keys the stand-in has values for. The bank
/// transfer account and the Pay-easy ids are invented test values.
fn details_view<'a>(p: &'a PaymentRecord, public_base: &str) -> DetailsView<'a> {
    let email = p.email.as_deref();
    let instructions = instructions_url(public_base, &p.id);
    match &p.method {
        Method::CreditCard {
            brand,
            last_four,
            month,
            year,
        } => DetailsView::CreditCard {
            kind: "credit_card",
            email,
            brand,
            last_four_digits: last_four,
            month: *month,
            year: *year,
        },
        Method::Konbini {
            store,
            confirmation_code,
            receipt,
        } => DetailsView::Konbini {
            kind: "konbini",
            email,
            store,
            confirmation_code: confirmation_code.as_deref(),
            receipt,
            instructions_url: instructions,
        },
        Method::PayPay {
            external_payment_id,
        } => DetailsView::PayPay {
            kind: "paypay",
            email,
            external_payment_id,
        },
        Method::BankTransfer {
            order_id,
            account_number,
        } => bank_transfer_details(p, order_id, account_number, instructions),
        Method::PayEasy {
            bank_id,
            customer_id,
            confirmation_id,
        } => DetailsView::PayEasy {
            kind: "pay_easy",
            email,
            bank_id,
            customer_id,
            confirmation_id,
            instructions_url: instructions,
        },
    }
}

/// Where the buyer transfers to (invented test values), and until when: the SDK's
/// bank transfer details carry `payment_deadline` too.
fn bank_transfer_details<'a>(
    p: &'a PaymentRecord,
    order_id: &'a str,
    account_number: &'a str,
    instructions_url: String,
) -> DetailsView<'a> {
    DetailsView::BankTransfer {
        kind: "bank_transfer",
        email: p.email.as_deref(),
        order_id,
        bank_name: "Sandbox Bank",
        account_branch_name: "KOMOJU Branch",
        account_number,
        account_type: "普通",
        account_name: "ｺﾓｼﾞｭ",
        instructions_url,
        payment_deadline: p.payment_deadline.as_ref().map(format_time),
    }
}

#[derive(Serialize)]
pub(crate) struct SessionView<'a> {
    id: &'a str,
    resource: &'static str,
    mode: &'static str,
    amount: i64,
    currency: &'a str,
    payment: Option<PaymentView<'a>>,
    session_url: String,
    return_url: &'a str,
    default_locale: &'a str,
    payment_methods: Vec<PaymentMethodView<'a>>,
    created_at: String,
    cancelled_at: Option<String>,
    completed_at: Option<String>,
    status: &'static str,
    expired: bool,
    merchant: MerchantView,
    metadata: &'a BTreeMap<String, String>,
    payment_data: PaymentDataView<'a>,
    /// "Only present when an email was provided" (SDK `models/session.ts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

#[derive(Serialize)]
struct MerchantView {
    name: &'static str,
}

/// One entry of a session's `payment_methods`: `{type}` (konbini with its `brands`), as
/// in KOMOJU's hosted-page example for a session in a currency the type takes; with
/// `amount`, `currency` and `exchange_rate` when KOMOJU converts (SDK
/// `models/payment-method.ts`).
#[derive(Serialize)]
struct PaymentMethodView<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange_rate: Option<f64>,
    /// A `Vec` of pairs serialized as a map keeps KOMOJU's brand order.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_brands"
    )]
    brands: Option<Vec<(&'static str, String)>>,
}

fn serialize_brands<S: serde::Serializer>(
    brands: &Option<Vec<(&'static str, String)>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match brands {
        Some(brands) => serializer.collect_map(brands.iter().map(|(k, v)| (k, v))),
        None => serializer.serialize_none(),
    }
}

/// SDK `models/payment-data.ts`: `capture` always, `external_order_num` optional (absent
/// when the session has none).
#[derive(Serialize)]
struct PaymentDataView<'a> {
    capture: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_order_num: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct PaymentView<'a> {
    id: &'a str,
    resource: &'static str,
    status: Cow<'static, str>,
    amount: i64,
    tax: i64,
    customer: Option<&'a str>,
    payment_deadline: Option<String>,
    payment_details: DetailsView<'a>,
    payment_method_fee: i64,
    total: i64,
    currency: &'a str,
    description: Option<&'a str>,
    captured_at: Option<String>,
    external_order_num: Option<&'a str>,
    metadata: &'a BTreeMap<String, String>,
    created_at: String,
    amount_refunded: i64,
    locale: &'a str,
    session: &'a str,
    customer_family_name: Option<&'a str>,
    customer_given_name: Option<&'a str>,
    mcc: Option<&'a str>,
    /// `null` as in the WooCommerce fixtures (the SDK types it as an object).
    statement_descriptor: Option<serde_json::Value>,
    refunds: Vec<RefundView<'a>>,
    refund_requests: Vec<RefundRequestView<'a>>,
}

impl PaymentView<'_> {
    /// For injected stale events (`Sandbox::send_event`).
    pub(crate) fn override_status(&mut self, status: &str) {
        self.status = Cow::Owned(status.to_string());
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum DetailsView<'a> {
    CreditCard {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<&'a str>,
        brand: &'a str,
        last_four_digits: &'a str,
        month: u32,
        year: i32,
    },
    Konbini {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<&'a str>,
        store: &'a str,
        confirmation_code: Option<&'a str>,
        receipt: &'a str,
        instructions_url: String,
    },
    PayPay {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<&'a str>,
        external_payment_id: &'a str,
    },
    BankTransfer {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<&'a str>,
        order_id: &'a str,
        bank_name: &'static str,
        account_branch_name: &'static str,
        account_number: &'a str,
        account_type: &'static str,
        account_name: &'static str,
        instructions_url: String,
        payment_deadline: Option<String>,
    },
    PayEasy {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<&'a str>,
        bank_id: &'a str,
        customer_id: &'a str,
        confirmation_id: &'a str,
        instructions_url: String,
    },
}

/// SDK `models/refund.ts`, plus `redirect_url` for a refund to a bank account (read by
/// KOMOJU's EC-CUBE plugin, not in the SDK): absent otherwise, as in the WooCommerce
/// fixture's card refund.
#[derive(Serialize)]
struct RefundView<'a> {
    id: &'a str,
    resource: &'static str,
    amount: i64,
    currency: &'a str,
    payment: &'a str,
    description: Option<&'a str>,
    created_at: String,
    chargeback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_url: Option<String>,
}

/// SDK `models/refund-request.ts`.
#[derive(Serialize)]
struct RefundRequestView<'a> {
    id: &'a str,
    payment: &'a str,
    customer_name: &'a str,
    bank_name: &'a str,
    bank_code: Option<&'a str>,
    branch_name: &'a str,
    branch_number: &'a str,
    account_number: &'a str,
    status: &'static str,
    created_at: String,
}
