//! The stand-in's replies held against fixtures transcribed from KOMOJU's own material
//! (issue 17 item 12): data, each with its source; no code is copied.
//!
//! - docs.komoju.com, Payments, "Show a payment": a konbini payment.
//! - `komoju/komoju-woocommerce` `tests/cypress/e2e/refunded-webhook.cy.js`: a
//!   `payment.refunded` webhook of a card payment (headers and body).
//! - `komoju/komoju-node-sdk` `models/payment.ts`, `session.ts`, `refund.ts`,
//!   `refund-request.ts`, `payment-method.ts`, `payment-data.ts`, `merchant-data.ts`,
//!   `docs/Models/AvailablePaymentMethod.md`, `docs/Models/ResponsePaymentDetails*.md`, and
//!   the enums `payment-status.ts`, `session-status.ts`, `session-mode.ts`,
//!   `refund-request-status.ts`, `locale.ts`, `currency.ts`: keys, whether required, and
//!   JSON types, transcribed into the tables below.

use super::*;
use crate::clock::deadline_after;
use crate::money::KOMOJU_CURRENCIES;
use crate::DECLINED_CARD_NUMBER;

/// docs.komoju.com/ja/api/resources/payments/, "Show a payment" (GET
/// /api/v1/payments/807nhquor2u027yn30ssx008m), the reply as published.
const DOCS_SHOW_A_KONBINI_PAYMENT: &str = r#"{
  "id": "807nhquor2u027yn30ssx008m",
  "resource": "payment",
  "status": "pending",
  "amount": 300,
  "tax": 30,
  "customer": null,
  "payment_deadline": "2018-11-16T14:59:59Z",
  "payment_details": {
    "type": "konbini",
    "email": "gordon@example.com",
    "store": "seicomart",
    "confirmation_code": null,
    "receipt": "12345",
    "instructions_url": "https://komoju.com/en/instructions/807nhquor2u027yn30ssx008m"
  },
  "payment_method_fee": 0,
  "total": 330,
  "currency": "JPY",
  "description": null,
  "captured_at": null,
  "external_order_num": "ORDER1",
  "metadata": {
  },
  "created_at": "2018-11-13T06:20:21Z",
  "amount_refunded": 0,
  "locale": "en",
  "refunds": [

  ],
  "refund_requests": [

  ]
}"#;

/// `komoju/komoju-woocommerce` `tests/cypress/e2e/refunded-webhook.cy.js`: the headers of
/// the request the test posts as KOMOJU (the signature is the test's dummy).
const WOO_REFUNDED_HEADERS: [(&str, &str); 4] = [
    ("X-Komoju-Event", "payment.refunded"),
    ("User-Agent", "Komoju-Webhook"),
    ("Content-Type", "application/json"),
    ("X-Komoju-ID", "dummy"),
];

/// The same file's body (its `external_order_num` is a template string there, `WC-${orderId}-A49R0D`).
const WOO_REFUNDED_WEBHOOK: &str = r#"{
  "id": "dummy",
  "type": "payment.refunded",
  "resource": "event",
  "data": {
    "id": "dummy",
    "resource": "payment",
    "status": "refunded",
    "amount": 1200,
    "tax": 0,
    "customer": null,
    "payment_deadline": "2023-02-19T14:59:59Z",
    "payment_details": {
      "type": "credit_card",
      "email": "dummy@dummy.com",
      "brand": "master",
      "last_four_digits": "3795",
      "month": 9,
      "year": 2024
    },
    "payment_method_fee": 0,
    "total": 1200,
    "currency": "EUR",
    "description": null,
    "captured_at": "2023-02-17T11:57:05Z",
    "external_order_num": "WC-255095-A49R0D",
    "metadata": {
      "woocommerce_order_id": "255095"
    },
    "created_at": "2023-02-17T11:57:01Z",
    "amount_refunded": 1200,
    "locale": "ja",
    "session": "dummy",
    "customer_family_name": null,
    "customer_given_name": null,
    "mcc": null,
    "statement_descriptor": null,
    "refunds": [
      {
        "id": "dummy",
        "resource": "refund",
        "amount": 1200,
        "currency": "EUR",
        "payment": "dummy",
        "description": "Bulk Chargeback 2023-08-28",
        "created_at": "2023-08-28T02:13:46Z",
        "chargeback": true
      }
    ],
    "refund_requests": []
  },
  "created_at": "2023-08-28T02:13:48Z",
  "reason": null
}"#;

/// A JSON type of the SDK's TypeScript models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Str,
    Num,
    Bool,
    Obj,
    Arr,
    Null,
}

fn type_of(value: &Value) -> T {
    match value {
        Value::String(_) => T::Str,
        Value::Number(_) => T::Num,
        Value::Bool(_) => T::Bool,
        Value::Object(_) => T::Obj,
        Value::Array(_) => T::Arr,
        Value::Null => T::Null,
    }
}

/// One key of a model: name, required (not `?` in the TypeScript), the types it may have,
/// and for enums the values.
struct Key(
    &'static str,
    bool,
    &'static [T],
    Option<&'static [&'static str]>,
);

const PAYMENT_STATUS: &[&str] = &[
    "pending",
    "authorized",
    "captured",
    "cancelled",
    "expired",
    "refunded",
    "failed",
];
const SESSION_STATUS: &[&str] = &["pending", "completed", "cancelled"];
const SESSION_MODE: &[&str] = &["payment", "customer", "customer_payment"];
const REFUND_REQUEST_STATUS: &[&str] = &["pending", "rejected", "completed"];
const LOCALE: &[&str] = &["ja", "en", "ko"];

const S: &[T] = &[T::Str];
const SN: &[T] = &[T::Str, T::Null];
const N: &[T] = &[T::Num];
const B: &[T] = &[T::Bool];
const O: &[T] = &[T::Obj];
const A: &[T] = &[T::Arr];

/// `models/payment.ts`. `statement_descriptor` is a `StatementDescriptor` object there
/// and `null` in the WooCommerce fixtures: both allowed.
const PAYMENT: &[Key] = &[
    Key("id", true, S, None),
    Key("resource", true, S, Some(&["payment"])),
    Key("status", true, S, Some(PAYMENT_STATUS)),
    Key("amount", true, N, None),
    Key("tax", true, N, None),
    Key("customer", true, SN, None),
    Key("payment_deadline", true, SN, None),
    Key("payment_details", true, O, None),
    Key("payment_method_fee", true, N, None),
    Key("total", true, N, None),
    Key("currency", true, S, Some(&KOMOJU_CURRENCIES)),
    Key("description", true, SN, None),
    Key("captured_at", true, SN, None),
    Key("external_order_num", true, SN, None),
    Key("metadata", true, O, None),
    Key("created_at", true, S, None),
    Key("amount_refunded", true, N, None),
    Key("locale", true, S, Some(LOCALE)),
    Key("session", true, S, None),
    Key("customer_family_name", true, SN, None),
    Key("customer_given_name", true, SN, None),
    Key("mcc", true, SN, None),
    Key("statement_descriptor", true, &[T::Obj, T::Null], None),
    Key("platform_details", false, O, None),
    Key("refunds", true, A, None),
    Key("refund_requests", true, A, None),
];

/// `models/session.ts`. `payment` is optional there and `null` in KOMOJU's hosted-page
/// example (shared/seeds/komoju-hosted-page-en.txt): both allowed.
const SESSION: &[Key] = &[
    Key("id", true, S, None),
    Key("resource", true, S, Some(&["session"])),
    Key("mode", true, S, Some(SESSION_MODE)),
    Key("amount", true, N, None),
    Key("currency", true, S, Some(&KOMOJU_CURRENCIES)),
    Key("session_url", true, S, None),
    Key("return_url", true, SN, None),
    Key("default_locale", true, S, Some(LOCALE)),
    Key("payment_methods", true, A, None),
    Key("created_at", true, S, None),
    Key("cancelled_at", true, SN, None),
    Key("completed_at", true, SN, None),
    Key("status", true, S, Some(SESSION_STATUS)),
    Key("expired", true, B, None),
    Key("merchant", true, O, None),
    Key("metadata", true, O, None),
    Key("payment", false, &[T::Obj, T::Null], None),
    Key("payment_data", false, O, None),
    Key("customer_id", false, S, None),
    Key("secure_token", false, O, None),
    Key("line_items", false, A, None),
    Key("merchant_id", false, S, None),
    Key("email", false, S, None),
];

/// `models/refund.ts`, whose `description` is a plain string; KOMOJU's `Payment` has
/// `description` "null if it's not set" and the stand-in does the same for a refund
/// (a guess). `redirect_url` is not in the SDK: KOMOJU's EC-CUBE plugin reads it from
/// refunds of konbini-type payments (`Controller/Admin/OrderController.php`).
const REFUND: &[Key] = &[
    Key("id", true, S, None),
    Key("resource", true, S, Some(&["refund"])),
    Key("amount", true, N, None),
    Key("currency", true, S, Some(&KOMOJU_CURRENCIES)),
    Key("payment", true, S, None),
    Key("description", true, SN, None),
    Key("created_at", true, S, None),
    Key("chargeback", true, B, None),
    Key("refund_type", false, S, None),
    Key("platform_details", false, O, None),
    Key("redirect_url", false, S, None),
];

/// `models/refund-request.ts` (`bank_code` "May be `null` if it's not given").
const REFUND_REQUEST: &[Key] = &[
    Key("id", true, S, None),
    Key("payment", true, S, None),
    Key("customer_name", true, S, None),
    Key("bank_name", true, S, None),
    Key("bank_code", true, SN, None),
    Key("branch_name", true, S, None),
    Key("branch_number", true, S, None),
    Key("account_number", true, S, None),
    Key("description", false, S, None),
    Key("status", true, S, Some(REFUND_REQUEST_STATUS)),
    Key("created_at", true, S, None),
    Key("platform_details", false, O, None),
];

/// `models/payment-method.ts` (a session's `payment_methods[]`).
const PAYMENT_METHOD: &[Key] = &[
    Key("type", true, S, None),
    Key("hashed_gateway", false, S, None),
    Key("amount", false, N, None),
    Key("currency", false, S, Some(&KOMOJU_CURRENCIES)),
    Key("exchange_rate", false, N, None),
    Key("offsite", false, B, None),
    Key("additional_fields", false, A, None),
    Key("brands", false, O, None),
    Key("seven_eleven_merchant_number", false, SN, None),
    Key("installments", false, A, None),
    Key("api_endpoint", false, S, None),
];

/// `models/payment-data.ts` and `models/merchant-data.ts`.
const PAYMENT_DATA: &[Key] = &[
    Key("capture", true, S, Some(&["auto", "manual"])),
    Key("external_order_num", false, S, None),
    Key("name", false, S, None),
    Key("name_kana", false, S, None),
    Key("platform_details", false, O, None),
];
const MERCHANT_DATA: &[Key] = &[Key("name", true, S, None)];

/// `docs/Models/AvailablePaymentMethod.md`, plus `payment_method_fee` (the WooCommerce
/// plugin's example entry, `class-wc-settings-page-komoju.php`).
const AVAILABLE_PAYMENT_METHOD: &[Key] = &[
    Key("name_en", true, S, None),
    Key("name_ja", true, S, None),
    Key("name_ko", true, S, None),
    Key("type_slug", true, S, None),
    Key("currency", true, S, Some(&KOMOJU_CURRENCIES)),
    Key("subtypes", false, A, None),
    Key("secure_token_supported", false, A, None),
    Key("payment_method_fee", false, N, None),
];

/// `docs/Models/ResponsePaymentDetails{CreditCard,Konbini,PayPay,BankTransfer,PayEasy}.md`:
/// the keys each type may have, the shipping and billing address keys left out (the
/// stand-in sends none).
const DETAILS: [(&str, &[&str], &[&str]); 5] = [
    (
        "credit_card",
        &[
            "type",
            "brand",
            "last_four_digits",
            "month",
            "year",
            "email",
        ],
        &[
            "verification_value",
            "name",
            "given_name",
            "family_name",
            "expiry_days",
            "intent",
            "initiator",
            "usage",
            "scheme_reference",
            "installments",
        ],
    ),
    (
        "konbini",
        &["type", "store", "email"],
        &["confirmation_code", "receipt", "instructions_url"],
    ),
    (
        "paypay",
        &["type", "email"],
        &["redirect_url", "external_payment_id"],
    ),
    (
        "bank_transfer",
        &["type", "email"],
        &[
            "order_id",
            "bank_name",
            "account_branch_name",
            "account_number",
            "account_type",
            "account_name",
            "instructions_url",
            "payment_deadline",
        ],
    ),
    (
        "pay_easy",
        &["type", "email"],
        &[
            "bank_id",
            "customer_id",
            "confirmation_id",
            "instructions_url",
            "payment_url",
            "cvs_code",
        ],
    ),
];

/// What in `value` disagrees with `model`: a required key missing, a key the model does
/// not have, a type or enum value it does not allow.
fn disagreements(value: &Value, model: &[Key], what: &str) -> Vec<String> {
    let Some(object) = value.as_object() else {
        return vec![format!("{what}: not an object: {value}")];
    };
    let mut found = Vec::new();
    for Key(name, required, types, values) in model {
        match object.get(*name) {
            None if *required => found.push(format!("{what}.{name}: missing")),
            None => {}
            Some(v) => {
                if !types.contains(&type_of(v)) {
                    found.push(format!("{what}.{name}: {v} is not one of {types:?}"));
                }
                if let (Some(values), Some(s)) = (values, v.as_str()) {
                    if !values.contains(&s) {
                        found.push(format!("{what}.{name}: {s} is not one of {values:?}"));
                    }
                }
            }
        }
    }
    for key in object.keys() {
        if !model.iter().any(|Key(name, ..)| name == key) {
            found.push(format!("{what}.{key}: not in the model"));
        }
    }
    found
}

/// A payment, its details by type, its refunds and refund requests.
fn payment_disagreements(p: &Value) -> Vec<String> {
    let mut found = disagreements(p, PAYMENT, "payment");
    let details = &p["payment_details"];
    let kind = details["type"].as_str().unwrap_or_default();
    match DETAILS.iter().find(|(t, ..)| *t == kind) {
        Some((_, required, optional)) => {
            let keys: Vec<&str> = details
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            for key in *required {
                if !keys.contains(key) {
                    found.push(format!("payment_details.{key}: missing"));
                }
            }
            for key in keys {
                if !required.contains(&key) && !optional.contains(&key) {
                    found.push(format!("payment_details.{key}: not in the model of {kind}"));
                }
            }
        }
        None => found.push(format!("payment_details.type: {kind}")),
    }
    for refund in p["refunds"].as_array().into_iter().flatten() {
        found.extend(disagreements(refund, REFUND, "refund"));
    }
    for request in p["refund_requests"].as_array().into_iter().flatten() {
        found.extend(disagreements(request, REFUND_REQUEST, "refund_request"));
    }
    found
}

fn session_disagreements(s: &Value) -> Vec<String> {
    let mut found = disagreements(s, SESSION, "session");
    for method in s["payment_methods"].as_array().into_iter().flatten() {
        found.extend(disagreements(method, PAYMENT_METHOD, "payment_method"));
    }
    found.extend(disagreements(&s["merchant"], MERCHANT_DATA, "merchant"));
    if let Some(data) = s.get("payment_data") {
        found.extend(disagreements(data, PAYMENT_DATA, "payment_data"));
    }
    if s["payment"].is_object() {
        found.extend(payment_disagreements(&s["payment"]));
    }
    found
}

/// Sessions and payments of every kind the stand-in makes: open, cancelled, completed,
/// converted, every type, every payment status, refunds and refund requests.
async fn every_kind(sb: &Sandbox) -> (Vec<String>, Vec<String>) {
    let app = app!(sb);
    let mut sessions = Vec::new();
    let new = |order: &str, currency: &str, types: Value, email: bool| {
        let mut body = session_body(order);
        body["currency"] = json!(currency);
        body["payment_types"] = types;
        if !email {
            body.as_object_mut().unwrap().remove("email");
        }
        body
    };
    let all = json!([
        "credit_card",
        "konbini",
        "paypay",
        "bank_transfer",
        "pay_easy"
    ]);
    for (i, (currency, email)) in [("JPY", true), ("USD", false), ("EUR", true)]
        .iter()
        .enumerate()
    {
        for (j, method) in [
            "",
            "return",
            "credit_card",
            "konbini",
            "paypay",
            "bank_transfer",
            "pay_easy",
            "decline",
        ]
        .iter()
        .enumerate()
        {
            let body = new(&format!("o-{i}-{j}"), currency, all.clone(), *email);
            let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
            let id = created.json()["id"].as_str().unwrap().to_string();
            match *method {
                "" => {}
                "decline" => {
                    submit!(
                        &app,
                        &id,
                        format!("method=credit_card&card_number={DECLINED_CARD_NUMBER}")
                    );
                }
                m => {
                    pay!(&app, &id, m);
                }
            }
            sessions.push(id);
        }
    }
    let mut payments: Vec<String> = sessions
        .iter()
        .filter_map(|s| {
            sb.session_json(s).unwrap()["payment"]["id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for p in payments.clone().iter() {
        let status = sb.payment_json(p).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string();
        let counter = seen.entry(status.clone()).or_default();
        *counter += 1;
        match (status.as_str(), *counter % 3) {
            ("authorized", 0) => {
                let _ = sb.expire(p);
            }
            ("authorized", 1) => {
                sb.capture(p).unwrap();
                let path = format!("/api/v1/payments/{p}/refund");
                send(
                    &app,
                    post_json(&path, KEY, &json!({"amount": 1})).to_request(),
                )
                .await;
                sb.complete_refund_request(p).unwrap();
                send(&app, post_json(&path, KEY, &json!({})).to_request()).await;
            }
            ("authorized", _) => {
                let path = format!("/api/v1/payments/{p}/cancel");
                send(&app, post_json(&path, KEY, &json!({})).to_request()).await;
            }
            ("captured", 0) => {}
            ("captured", _) => {
                let path = format!("/api/v1/payments/{p}/refund");
                send(
                    &app,
                    post_json(&path, KEY, &json!({"description": "fixture"})).to_request(),
                )
                .await;
            }
            _ => {}
        }
    }
    payments.sort();
    (sessions, payments)
}

#[actix_web::test]
async fn sessions_and_payments_have_the_keys_types_and_enum_values_of_the_sdk_models() {
    let sb = sandbox();
    let (sessions, payments) = every_kind(&sb).await;
    let statuses: std::collections::BTreeSet<String> = payments
        .iter()
        .map(|p| {
            sb.payment_json(p).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["cancelled", "captured", "expired", "failed", "refunded"]
    );
    let mut found = Vec::new();
    for s in &sessions {
        found.extend(session_disagreements(&sb.session_json(s).unwrap()));
    }
    for p in &payments {
        found.extend(payment_disagreements(&sb.payment_json(p).unwrap()));
    }
    assert!(found.is_empty(), "{found:#?}");
    let requests: usize = payments
        .iter()
        .map(|p| {
            sb.payment_json(p).unwrap()["refund_requests"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert!(requests >= 2, "refund requests were checked");
}

#[actix_web::test]
async fn the_payment_methods_list_has_the_sdk_available_payment_method_shape() {
    let sb = sandbox();
    let app = app!(sb);
    sb.set_payment_method_fee("konbini", 190);
    let list = send(&app, get("/api/v1/payment_methods", KEY).to_request())
        .await
        .json();
    let mut found = Vec::new();
    for entry in list.as_array().unwrap() {
        found.extend(disagreements(
            entry,
            AVAILABLE_PAYMENT_METHOD,
            "payment_method",
        ));
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// The fixture's keys and JSON types (a `null` there says nothing of the type) against
/// the stand-in's value.
fn same_shape(fixture: &Value, ours: &Value, path: &str, found: &mut Vec<String>) {
    match (fixture, ours) {
        (Value::Object(f), Value::Object(o)) => {
            for (key, fv) in f {
                match o.get(key) {
                    None => found.push(format!("{path}.{key}: missing")),
                    Some(ov) => same_shape(fv, ov, &format!("{path}.{key}"), found),
                }
            }
        }
        (Value::Array(f), Value::Array(o)) => {
            if let (Some(fv), Some(ov)) = (f.first(), o.first()) {
                same_shape(fv, ov, &format!("{path}[0]"), found);
            }
        }
        (Value::Null, _) => {}
        (f, o) if type_of(f) != type_of(o) => {
            found.push(format!("{path}: {o} where KOMOJU has {f}"))
        }
        _ => {}
    }
}

fn keys(value: &Value) -> Vec<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[actix_web::test]
async fn a_konbini_payment_has_the_shape_of_the_docs_show_a_payment_example() {
    let fixture: Value = serde_json::from_str(DOCS_SHOW_A_KONBINI_PAYMENT).unwrap();
    let sb = sandbox();
    let app = app!(sb);
    let session = create!(&app, "ORDER1");
    submit!(&app, &session, "method=konbini&store=seicomart");
    let ours = sb.payment_json(&payment_id_of(&sb, &session)).unwrap();

    let mut found = Vec::new();
    same_shape(&fixture, &ours, "payment", &mut found);
    assert!(found.is_empty(), "{found:#?}");
    // The same konbini details, no more.
    assert_eq!(
        keys(&fixture["payment_details"]),
        keys(&ours["payment_details"])
    );
    for (key, value) in [
        ("type", "konbini"),
        ("store", "seicomart"),
        ("currency", "JPY"),
    ] {
        let ours = ours.get(key).unwrap_or(&ours["payment_details"][key]);
        assert_eq!(ours, value, "{key}");
    }
    // Ids and times written the same way; the instructions URL ends in the payment id.
    for (f, o) in [(&fixture, &ours)] {
        for key in ["created_at", "payment_deadline"] {
            let (f, o) = (f[key].as_str().unwrap(), o[key].as_str().unwrap());
            assert_eq!((f.len(), o.len()), (20, 20), "{key}");
            assert!(f.ends_with("T14:59:59Z") || key == "created_at");
            assert!(
                o.ends_with('Z') && (o.ends_with("T14:59:59Z") || key == "created_at"),
                "{o}"
            );
        }
        assert_eq!(
            f["id"].as_str().unwrap().len(),
            o["id"].as_str().unwrap().len()
        );
        let id = o["id"].as_str().unwrap();
        assert!(o["payment_details"]["instructions_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/instructions/{id}")));
        assert!(f["payment_details"]["instructions_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/instructions/{}", f["id"].as_str().unwrap())));
    }
    // total = amount + tax + payment_method_fee in both.
    for p in [&fixture, &ours] {
        let n = |k: &str| p[k].as_i64().unwrap();
        assert_eq!(
            n("total"),
            n("amount") + n("tax") + n("payment_method_fee"),
            "{p}"
        );
    }
    assert!(PAYMENT_STATUS.contains(&fixture["status"].as_str().unwrap()));
}

#[test]
fn deadlines_fall_as_in_the_fixtures() {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // docs "Show a payment" (konbini, 3 days) and WooCommerce's card (2 days).
    assert_eq!(
        deadline_after(&at("2018-11-13T06:20:21Z"), 3),
        at("2018-11-16T14:59:59Z")
    );
    assert_eq!(
        deadline_after(&at("2023-02-17T11:57:01Z"), 2),
        at("2023-02-19T14:59:59Z")
    );
    // After 15:00 UTC it is already the next day in Japan.
    assert_eq!(
        deadline_after(&at("2018-11-13T15:00:00Z"), 3),
        at("2018-11-17T14:59:59Z")
    );
}

#[actix_web::test]
async fn a_refunded_webhook_has_the_headers_and_shape_of_the_woocommerce_fixture() {
    let fixture: Value = serde_json::from_str(WOO_REFUNDED_WEBHOOK).unwrap();
    let receiver = Receiver::start(0);
    let sb = webhook_sandbox(&receiver);
    let app = app!(sb);
    let mut body = session_body("WC-255095-A49R0D");
    body["currency"] = json!("EUR");
    body["amount"] = json!(1200);
    body["payment_types"] = json!(["credit_card"]);
    body["metadata"] = json!({"woocommerce_order_id": "255095"});
    let created = send(&app, post_json("/api/v1/sessions", KEY, &body).to_request()).await;
    let session = created.json()["id"].as_str().unwrap().to_string();
    submit!(
        &app,
        &session,
        "method=credit_card&card_number=5555555555554444"
    );
    let payment = payment_id_of(&sb, &session);
    let refund = format!("/api/v1/payments/{payment}/refund");
    send(
        &app,
        post_json(&refund, KEY, &json!({"description": "fixture"})).to_request(),
    )
    .await;
    assert!(sb.webhooks_idle(IDLE).await);
    let delivered = receiver
        .received()
        .into_iter()
        .find(|r| r.header("x-komoju-event") == "payment.refunded")
        .expect("a payment.refunded event");
    for (name, value) in WOO_REFUNDED_HEADERS {
        let ours = delivered.header(&name.to_ascii_lowercase());
        if name == "X-Komoju-ID" {
            assert_eq!(ours, delivered.json()["id"].as_str().unwrap());
        } else {
            assert_eq!(ours, value, "{name}");
        }
    }
    let ours = delivered.json();
    let mut found = Vec::new();
    same_shape(&fixture, &ours, "event", &mut found);
    assert!(found.is_empty(), "{found:#?}");
    // The same keys at every level (the fixture's refund is a chargeback, ours a refund).
    assert_eq!(keys(&fixture), keys(&ours));
    assert_eq!(keys(&fixture["data"]), keys(&ours["data"]));
    assert_eq!(
        keys(&fixture["data"]["payment_details"]),
        keys(&ours["data"]["payment_details"])
    );
    assert_eq!(
        keys(&fixture["data"]["refunds"][0]),
        keys(&ours["data"]["refunds"][0])
    );
    for key in ["status", "currency", "amount", "total", "amount_refunded"] {
        assert_eq!(fixture["data"][key], ours["data"][key], "{key}");
    }
    assert_eq!(ours["data"]["payment_details"]["brand"], "master");
    assert_eq!(ours["type"], fixture["type"]);
    receiver.stop().await;
}
