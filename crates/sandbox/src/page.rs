//! The browser side of the stand-in: the hosted payment page, the konbini instructions
//! page, the page behind a bank refund's `redirect_url` where the buyer gives an
//! account, and the buttons that simulate what happens at the store or at KOMOJU. Plain
//! HTML forms, inline CSS, no JavaScript; rendered with `maud` templates, which escape
//! every dynamic value.

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::clock;
use super::money::format_amount;
use super::state::{
    BankAccount, Method, PayChoice, PayOutcome, PaymentRecord, PaymentStatus, SessionRecord,
    SessionStatus, State, KONBINI_BRANDS,
};
use super::views::{instructions_url, refund_redirect_url};
use super::{Sandbox, SandboxError};

const STYLE: &str = "
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 30rem; margin: 3rem auto; background: #fff; border-radius: 8px; padding: 2rem; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.1rem; color: #b3261e; margin-top: 0; }
h2 { font-size: 1.4rem; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .4rem 1rem; }
dt { color: #5b6270; }
dd { margin: 0; font-weight: 600; }
form { display: flex; flex-direction: column; gap: .6rem; margin-top: 1.5rem; }
fieldset { display: flex; flex-direction: column; gap: .5rem; border: 1px solid #d5d8de; border-radius: 6px; }
input, select { font-size: 1rem; padding: .4rem; }
button { font-size: 1rem; padding: .7rem; border-radius: 6px; border: 1px solid #1d4ed8; background: #1d4ed8; color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: #1d4ed8; }
p.error { color: #b3261e; font-weight: 600; }
a { color: #1d4ed8; }
";

/// A whole page: the sandbox banner, `title` as heading, then `body`.
fn page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · KOMOJU sandbox" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "KOMOJU sandbox — not a real payment" }
                    h2 { (title) }
                    (body)
                }
            }
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(status, title, html! { p { (text) } })
}

/// The value of form field `name`, if given and not empty.
fn form_field(form: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(form)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `return_url` with `session_id=<id>` appended to its query, before any fragment, the
/// rest of the URL kept byte for byte (as KOMOJU does, reference §2).
pub(crate) fn return_url_with_session(return_url: &str, session_id: &str) -> String {
    let (before_fragment, fragment) = match return_url.find('#') {
        Some(i) => return_url.split_at(i),
        None => (return_url, ""),
    };
    let separator = match before_fragment.find('?') {
        None => "?",
        Some(_) if before_fragment.ends_with('?') || before_fragment.ends_with('&') => "",
        Some(_) => "&",
    };
    let encoded: String = url::form_urlencoded::byte_serialize(session_id.as_bytes()).collect();
    format!("{before_fragment}{separator}session_id={encoded}{fragment}")
}

fn return_host(return_url: &str) -> String {
    url::Url::parse(return_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

fn summary(session: &SessionRecord) -> Markup {
    html! {
        dl {
            dt { "Amount" }
            dd id="amount" { (format_amount(session.amount, &session.currency)) }
            dt { "Merchant" }
            dd id="merchant" { (return_host(&session.return_url)) }
        }
    }
}

/// The types paid with one button, and the button's text.
const OTHER_METHODS: [(&str, &str); 3] = [
    ("paypay", "Pay with PayPay"),
    ("bank_transfer", "Pay by bank transfer"),
    ("pay_easy", "Pay with Pay-easy"),
];

/// ` (1500 JPY at 150)` when KOMOJU converts for this type, else nothing.
fn charge_note(session: &SessionRecord, slug: &str) -> String {
    session
        .offered
        .iter()
        .find(|o| o.slug == slug && o.charge.converted(&session.currency))
        .map(|o| {
            let amount = format_amount(o.charge.amount, &o.charge.currency);
            format!(" ({amount} at {})", o.charge.exchange_rate)
        })
        .unwrap_or_default()
}

/// The payment form of an open session, with `error` (a declined card) above it.
fn pay_form(base: &str, session: &SessionRecord, error: Option<&str>) -> Markup {
    html! {
        (summary(session))
        @if let Some(error) = error {
            p class="error" id="error" { (error) }
        }
        form method="post" action=(format!("{base}/sessions/{}/pay", session.id)) {
            @if session.offers("credit_card") {
                fieldset {
                    legend { "Card" }
                    label for="card_number" { "Card number (KOMOJU test cards; empty: 4111 1111 1111 1111)" }
                    input id="card_number" name="card_number" inputmode="numeric" autocomplete="off";
                    button type="submit" id="pay-card" name="method" value="credit_card" { "Pay by card" }
                }
            }
            @if session.offers("konbini") {
                fieldset {
                    legend { "Konbini" (charge_note(session, "konbini")) }
                    select name="store" aria-label="Store" {
                        @for store in KONBINI_BRANDS { option value=(store) { (store) } }
                    }
                    button type="submit" id="pay-konbini" name="method" value="konbini" { "Pay at a konbini" }
                }
            }
            @for (slug, label) in OTHER_METHODS {
                @if session.offers(slug) {
                    button type="submit" id=(format!("pay-{}", slug.replace('_', "-"))) name="method" value=(slug) {
                        (label) (charge_note(session, slug))
                    }
                }
            }
            button type="submit" class="secondary" id="return-to-merchant" name="method" value="return" {
                "Return to merchant"
            }
        }
    }
}

/// `GET /sessions/{id}`: the hosted page.
pub(crate) async fn show_session(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let now = clock::now();
    let state = sandbox.lock();
    let Some(session) = state.sessions.get(id.as_str()) else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown session",
            "There is no such session.",
        );
    };
    if session.status != SessionStatus::Pending || session.expired(now) {
        return closed_session(&state, session, sandbox.public_base(), now);
    }
    let title = format!("Pay {}", format_amount(session.amount, &session.currency));
    page(
        StatusCode::OK,
        &title,
        pay_form(sandbox.public_base(), session, None),
    )
}

/// The page of a session no longer open: its status, the instructions of a deferred
/// payment (KOMOJU keeps the buyer on its page after a konbini payment, showing how to
/// pay; the WooCommerce plugin's `expired-webhook.cy.js` waits there for "How to make a
/// payment at Family Mart", then clicks "Return to"), and the link back to the merchant.
fn closed_session(
    state: &State,
    session: &SessionRecord,
    base: &str,
    now: clock::Time,
) -> HttpResponse {
    let status = if session.expired(now) {
        "expired"
    } else {
        session.status.as_str()
    };
    let deferred = session
        .payment
        .as_ref()
        .and_then(|id| state.payments.get(id))
        .filter(|p| session.status == SessionStatus::Completed && p.method.deferred());
    let back = return_url_with_session(&session.return_url, &session.id);
    let body = html! {
        (summary(session))
        p { "This session is " strong id="status" { (status) } "." }
        @if let Some(payment) = deferred {
            h3 { (instructions_title(payment)) }
            (deferred_instructions(base, payment))
        }
        p { a id="return-to-merchant" href=(back) { "Return to merchant" } }
    };
    page(StatusCode::OK, "Payment session", body)
}

/// The buyer's choice from the form: `method` = `credit_card` (with `card_number`),
/// `konbini` (with `store`), `paypay`, `bank_transfer`, `pay_easy`; `None` for `return`;
/// `Err` for anything else.
fn choice_of(form: &[u8]) -> Result<Option<PayChoice>, ()> {
    match form_field(form, "method").as_deref() {
        Some("credit_card") => Ok(Some(PayChoice::Card {
            number: form_field(form, "card_number"),
        })),
        Some("konbini") => Ok(Some(PayChoice::Konbini {
            store: form_field(form, "store"),
        })),
        Some("paypay") => Ok(Some(PayChoice::PayPay)),
        Some("bank_transfer") => Ok(Some(PayChoice::BankTransfer)),
        Some("pay_easy") => Ok(Some(PayChoice::PayEasy)),
        Some("return") => Ok(None),
        _ => Err(()),
    }
}

/// `POST /sessions/{id}/pay`: form field `method` = `credit_card` | `konbini` | `paypay` |
/// `bank_transfer` | `pay_easy` | `return`.
/// A card or PayPay payment, or "return", sends the browser to `return_url` (302); a
/// konbini, bank transfer or Pay-easy payment answers 200 with its instructions and a
/// "Return to merchant" link; a declined card answers 200 with the page again and the
/// reason (the buyer stays on KOMOJU's page and may pay again).
pub(crate) async fn pay(
    id: web::Path<String>,
    form: Bytes,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let id = id.into_inner();
    let Ok(choice) = choice_of(&form) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Unknown choice",
            "Choose credit_card, konbini, paypay, bank_transfer, pay_easy or return.",
        );
    };
    let result = sandbox.transition(|state, now| match choice {
        Some(choice) => state.pay(&id, choice, now),
        None => state
            .return_to_merchant(&id, now)
            .map(|((), t)| (PayOutcome::Returned, t)),
    });
    match result {
        Ok(PayOutcome::Completed(payment)) => after_payment(&sandbox, &id, &payment),
        Ok(PayOutcome::Returned) => to_merchant(&sandbox, &id),
        Ok(PayOutcome::Declined(message)) => again(
            &sandbox,
            &id,
            StatusCode::OK,
            &format!("Card declined: {message}"),
        ),
        Ok(PayOutcome::Refused(why)) => {
            again(&sandbox, &id, StatusCode::UNPROCESSABLE_ENTITY, &why)
        }
        Err(SandboxError::NotFound) => message(
            StatusCode::NOT_FOUND,
            "Unknown session",
            "There is no such session.",
        ),
        Err(SandboxError::InvalidState(why)) => message(
            StatusCode::CONFLICT,
            "Session not payable",
            &format!("This session can no longer be paid: {why}."),
        ),
    }
}

/// A konbini, bank transfer or Pay-easy payment keeps the buyer on KOMOJU's page, which
/// shows how to pay (200; the buyer leaves by "Return to merchant"); any other payment
/// sends the browser to `return_url` (302).
fn after_payment(sandbox: &Sandbox, session_id: &str, payment_id: &str) -> HttpResponse {
    let state = sandbox.lock();
    let deferred = state
        .payments
        .get(payment_id)
        .is_some_and(|p| p.method.deferred());
    match state.sessions.get(session_id) {
        Some(session) if deferred => {
            closed_session(&state, session, sandbox.public_base(), clock::now())
        }
        _ => {
            drop(state);
            to_merchant(sandbox, session_id)
        }
    }
}

/// 302 to the session's `return_url` with `session_id`.
fn to_merchant(sandbox: &Sandbox, id: &str) -> HttpResponse {
    let return_url = sandbox
        .lock()
        .sessions
        .get(id)
        .map(|s| s.return_url.clone())
        .unwrap_or_default();
    HttpResponse::Found()
        .insert_header((header::LOCATION, return_url_with_session(&return_url, id)))
        .finish()
}

/// The payment form again, with `error`.
fn again(sandbox: &Sandbox, id: &str, status: StatusCode, error: &str) -> HttpResponse {
    let state = sandbox.lock();
    let Some(session) = state.sessions.get(id) else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown session",
            "There is no such session.",
        );
    };
    let title = format!("Pay {}", format_amount(session.amount, &session.currency));
    page(
        status,
        &title,
        pay_form(sandbox.public_base(), session, Some(error)),
    )
}

/// What the buyer needs to pay a deferred payment (KOMOJU's instructions: for konbini the
/// store, receipt number, confirmation code and deadline, docs.komoju.com "Show a
/// payment"; for bank transfer the account to transfer to, SDK
/// `ResponsePaymentDetailsBankTransfer`; for Pay-easy the ids, SDK
/// `ResponsePaymentDetailsPayEasy`), the link to the instructions, and, while it is
/// unpaid, the buttons that simulate paying and the deadline passing.
fn deferred_instructions(base: &str, payment: &PaymentRecord) -> Markup {
    let deadline = payment
        .payment_deadline
        .as_ref()
        .map(clock::format_time)
        .unwrap_or_default();
    let open = matches!(payment.status, PaymentStatus::Authorized);
    let (pay_label, rows) = deferred_rows(payment);
    let instructions = instructions_url(base, &payment.id);
    html! {
        dl {
            dt { "Amount" }
            dd id="payment-amount" { (format_amount(payment.total(), &payment.currency)) }
            @for (id, label, value) in &rows {
                dt { (label) }
                dd id=(id) { (value) }
            }
            dt { "Pay by" }
            dd id="deadline" { (deadline) }
            dt { "Status" }
            dd id="payment-status" { (payment.status.as_str()) }
        }
        p { a id="instructions-url" href=(instructions) { (instructions) } }
        @if open {
            form method="post" action=(format!("{base}/payments/{}/simulate-capture", payment.id)) {
                button type="submit" id="simulate-capture" { (pay_label) }
            }
            form method="post" action=(format!("{base}/payments/{}/simulate-expire", payment.id)) {
                button type="submit" class="secondary" id="simulate-expire" {
                    "Simulate the deadline passing"
                }
            }
        }
    }
}

/// The simulate button's text and the rows `(id, label, value)` of a deferred payment.
fn deferred_rows(
    payment: &PaymentRecord,
) -> (&'static str, Vec<(&'static str, &'static str, String)>) {
    match &payment.method {
        Method::Konbini {
            store,
            confirmation_code,
            receipt,
        } => (
            "Simulate payment at the store",
            vec![
                ("store", "Store", store.clone()),
                ("receipt", "Receipt number", receipt.clone()),
                (
                    "confirmation-code",
                    "Confirmation code",
                    confirmation_code.clone().unwrap_or_else(|| "—".into()),
                ),
            ],
        ),
        Method::BankTransfer {
            order_id,
            account_number,
        } => (
            "Simulate the transfer arriving",
            vec![
                ("bank", "Bank", "Sandbox Bank, KOMOJU Branch".into()),
                ("account-number", "Account (普通)", account_number.clone()),
                ("order-id", "Transfer reference", order_id.clone()),
            ],
        ),
        Method::PayEasy {
            bank_id,
            customer_id,
            confirmation_id,
        } => (
            "Simulate payment at an ATM or bank",
            vec![
                (
                    "bank-id",
                    "Collection number (収納機関番号)",
                    bank_id.clone(),
                ),
                ("customer-id", "Customer number", customer_id.clone()),
                (
                    "confirmation-id",
                    "Confirmation number",
                    confirmation_id.clone(),
                ),
            ],
        ),
        _ => ("Simulate payment", Vec::new()),
    }
}

/// The title of a deferred payment's instructions.
fn instructions_title(payment: &PaymentRecord) -> &'static str {
    match payment.method {
        Method::BankTransfer { .. } => "Bank transfer instructions",
        Method::PayEasy { .. } => "Pay-easy payment instructions",
        _ => "Konbini payment instructions",
    }
}

/// `GET /instructions/{payment_id}`: how to pay a konbini, bank transfer or Pay-easy
/// payment (the page of its `instructions_url`), plus the simulation buttons.
pub(crate) async fn instructions(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let state = sandbox.lock();
    let Some(payment) = state.payments.get(id.as_str()) else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown payment",
            "There is no such payment.",
        );
    };
    if !payment.method.deferred() {
        return message(
            StatusCode::NOT_FOUND,
            "No instructions",
            "Only konbini, bank transfer and Pay-easy payments have payment instructions.",
        );
    }
    let back = state
        .sessions
        .get(&payment.session)
        .map(|session| return_url_with_session(&session.return_url, &session.id));
    let body = html! {
        (deferred_instructions(sandbox.public_base(), payment))
        @if let Some(back) = back {
            p { a id="return-to-merchant" href=(back) { "Return to merchant" } }
        }
    };
    page(StatusCode::OK, instructions_title(payment), body)
}

/// `POST /payments/{id}/simulate-capture`: the customer paid at the store.
pub(crate) async fn simulate_capture(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let result = sandbox.capture(&id);
    simulated(&sandbox, &id, result, "Payment captured")
}

/// `POST /payments/{id}/simulate-expire`: the deadline passed unpaid.
pub(crate) async fn simulate_expire(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let result = sandbox.expire(&id);
    simulated(&sandbox, &id, result, "Payment expired")
}

fn simulated(
    sandbox: &Sandbox,
    id: &str,
    result: Result<(), SandboxError>,
    done: &str,
) -> HttpResponse {
    match result {
        Ok(()) => page(
            StatusCode::OK,
            done,
            html! {
                p { (done) "." }
                p {
                    a href=(format!("{}/instructions/{id}", sandbox.public_base())) {
                        "Back to the instructions"
                    }
                }
            },
        ),
        Err(SandboxError::NotFound) => message(
            StatusCode::NOT_FOUND,
            "Unknown payment",
            "There is no such payment.",
        ),
        Err(SandboxError::InvalidState(why)) => {
            message(StatusCode::CONFLICT, "Nothing changed", &why)
        }
    }
}

// ---- a bank refund's redirect_url ----

/// The bank-account form (fields of SDK `CreateRefundRequestRequest`).
fn account_form(action: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p class="error" id="error" { (error) }
        }
        form method="post" action=(action) {
            label { "Account holder (half-width katakana)" input name="customer_name" required; }
            label { "Bank name" input name="bank_name" required; }
            label { "Bank code (4 digits, optional)" input name="bank_code" inputmode="numeric"; }
            label { "Branch name" input name="branch_name" required; }
            label { "Branch number (3 digits)" input name="branch_number" inputmode="numeric" required; }
            label { "Account type"
                select name="account_type" {
                    option value="normal" { "普通 (normal)" }
                    option value="checking" { "当座 (checking)" }
                }
            }
            label { "Account number (7 digits)" input name="account_number" inputmode="numeric" required; }
            button type="submit" id="submit-account" { "Send the account for the refund" }
        }
    }
}

/// The account in the form, or what is wrong with it.
fn account_of(form: &[u8]) -> Result<BankAccount, &'static str> {
    let required =
        |name| form_field(form, name).ok_or("Every field except the bank code is required.");
    let digits =
        |value: &str, n: usize| value.len() == n && value.bytes().all(|b| b.is_ascii_digit());
    let account = BankAccount {
        customer_name: required("customer_name")?,
        bank_name: required("bank_name")?,
        bank_code: form_field(form, "bank_code"),
        branch_name: required("branch_name")?,
        branch_number: required("branch_number")?,
        account_type: required("account_type")?,
        account_number: required("account_number")?,
    };
    if !digits(&account.branch_number, 3) || !digits(&account.account_number, 7) {
        return Err("The branch number has 3 digits and the account number 7.");
    }
    if account.bank_code.as_deref().is_some_and(|c| !digits(c, 4)) {
        return Err("The bank code has 4 digits.");
    }
    if !matches!(account.account_type.as_str(), "normal" | "checking") {
        return Err("Choose an account type.");
    }
    Ok(account)
}

/// `GET /refund_requests/{token}`: the refund, and the form for the account (or what
/// became of the one given).
pub(crate) async fn refund_account_page(
    token: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let base = sandbox.public_base();
    let state = sandbox.lock();
    let Some((payment, refund)) = state.refund_by_token(&token) else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown refund",
            "There is no such refund.",
        );
    };
    let request = payment
        .refund_requests
        .iter()
        .find(|r| r.refund == refund.id);
    let action = refund_redirect_url(base, &token);
    let body = html! {
        dl {
            dt { "Refund" }
            dd id="amount" { (format_amount(refund.amount, &payment.currency)) }
            dt { "Paid with" }
            dd { (payment.method.type_name()) }
        }
        @match request {
            None => (account_form(&action, None)),
            Some(request) => {
                p { "The account was given. Refund request " strong id="status" { (request.status.as_str()) } "." }
                form method="post" action=(format!("{action}/simulate-complete")) {
                    button type="submit" class="secondary" id="simulate-complete" { "Simulate KOMOJU paying the refund" }
                }
            }
        }
    };
    page(StatusCode::OK, "Refund to a bank account", body)
}

/// `POST /refund_requests/{token}`: the buyer's account; the payment gets a `pending`
/// refund request.
pub(crate) async fn refund_account_submit(
    token: web::Path<String>,
    form: Bytes,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let action = refund_redirect_url(sandbox.public_base(), &token);
    let account = match account_of(&form) {
        Ok(account) => account,
        Err(why) => {
            let form = account_form(&action, Some(why));
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Refund to a bank account",
                form,
            );
        }
    };
    let result = sandbox.transition(|state, now| state.submit_bank_account(&token, account, now));
    match result {
        Ok(()) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, action))
            .finish(),
        Err(SandboxError::NotFound) => message(
            StatusCode::NOT_FOUND,
            "Unknown refund",
            "There is no such refund.",
        ),
        Err(SandboxError::InvalidState(why)) => {
            message(StatusCode::CONFLICT, "Nothing changed", &why)
        }
    }
}

/// `POST /refund_requests/{token}/simulate-complete`: KOMOJU paid the refund
/// ([`Sandbox::complete_refund_request`]).
pub(crate) async fn refund_simulate_complete(
    token: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let payment = sandbox
        .lock()
        .refund_by_token(&token)
        .map(|(payment, _)| payment.id.clone());
    let Some(payment) = payment else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown refund",
            "There is no such refund.",
        );
    };
    match sandbox.complete_refund_request(&payment) {
        Ok(()) => HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                refund_redirect_url(sandbox.public_base(), &token),
            ))
            .finish(),
        Err(SandboxError::NotFound) => message(
            StatusCode::NOT_FOUND,
            "Unknown refund",
            "There is no such refund.",
        ),
        Err(SandboxError::InvalidState(why)) => {
            message(StatusCode::CONFLICT, "Nothing changed", &why)
        }
    }
}
