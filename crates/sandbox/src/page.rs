//! The browser side of the sandbox: the hosted payment page, the konbini instructions page
//! and the buttons that simulate what happens at the store. Plain HTML forms, inline CSS,
//! no JavaScript; rendered with `maud` templates, which escape every dynamic value.

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::state::{self, Method, PaymentStatus, SessionStatus};
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
button { font-size: 1rem; padding: .7rem; border-radius: 6px; border: 1px solid #1d4ed8; background: #1d4ed8; color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: #1d4ed8; }
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

/// Minor units → display: JPY and KRW have no decimals, every other currency two.
fn format_amount(amount: i64, currency: &str) -> String {
    if matches!(currency, "JPY" | "KRW") {
        format!("{amount} {currency}")
    } else {
        let sign = if amount < 0 { "-" } else { "" };
        let abs = amount.unsigned_abs();
        format!("{sign}{}.{:02} {currency}", abs / 100, abs % 100)
    }
}

/// `return_url` with `session_id=<id>` appended to its query, before any fragment, the
/// rest of the URL kept byte for byte (as KOMOJU does, reference §2).
pub(super) fn return_url_with_session(return_url: &str, session_id: &str) -> String {
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

/// `GET /sessions/{id}`: the hosted page.
pub(super) async fn show_session(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let now = state::now();
    let base = sandbox.public_base();
    let state = sandbox.lock();
    let Some(session) = state.sessions.get(id.as_str()) else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown session",
            "There is no such session.",
        );
    };
    let amount = format_amount(session.amount, &session.currency);
    let summary = html! {
        dl {
            dt { "Amount" }
            dd id="amount" { (amount) }
            dt { "Merchant" }
            dd id="merchant" { (return_host(&session.return_url)) }
        }
    };
    if session.status != SessionStatus::Pending || session.expired(now) {
        let status = if session.expired(now) {
            "expired"
        } else {
            session.status.as_str()
        };
        let back = return_url_with_session(&session.return_url, &session.id);
        let body = html! {
            (summary)
            p { "This session is " strong id="status" { (status) } "." }
            p { a id="return-to-merchant" href=(back) { "Return to merchant" } }
        };
        return page(StatusCode::OK, "Payment session", body);
    }
    let body = html! {
        (summary)
        form method="post" action=(format!("{base}/sessions/{}/pay", session.id)) {
            @if session.offers("credit_card") {
                button type="submit" id="pay-card" name="method" value="credit_card" {
                    "Pay by card"
                }
            }
            @if session.offers("konbini") {
                button type="submit" id="pay-konbini" name="method" value="konbini" {
                    "Pay at a konbini"
                }
            }
            button type="submit" class="secondary" id="return-to-merchant" name="method" value="return" {
                "Return to merchant"
            }
        }
    };
    page(StatusCode::OK, &format!("Pay {amount}"), body)
}

/// `POST /sessions/{id}/pay` with form field `method` = `credit_card` | `konbini` | `return`.
pub(super) async fn pay(
    id: web::Path<String>,
    form: Bytes,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let method = url::form_urlencoded::parse(&form)
        .find(|(k, _)| k == "method")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let id = id.into_inner();
    if !matches!(method.as_str(), "credit_card" | "konbini" | "return") {
        return message(
            StatusCode::BAD_REQUEST,
            "Unknown choice",
            "Choose credit_card, konbini or return.",
        );
    }
    let result = sandbox.transition(|state, now| {
        let transitions = match method.as_str() {
            "credit_card" => state.pay_by_card(&id, now)?.1,
            "konbini" => state.pay_at_konbini(&id, now)?.1,
            _ => state.return_to_merchant(&id, now)?.1,
        };
        let return_url = state
            .sessions
            .get(&id)
            .map(|s| s.return_url.clone())
            .unwrap_or_default();
        Ok((return_url, transitions))
    });
    match result {
        Ok(return_url) => HttpResponse::Found()
            .insert_header((header::LOCATION, return_url_with_session(&return_url, &id)))
            .finish(),
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

/// `GET /instructions/{payment_id}`: how to pay a konbini payment, plus simulation buttons.
pub(super) async fn instructions(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let base = sandbox.public_base();
    let state = sandbox.lock();
    let Some(payment) = state.payments.get(id.as_str()) else {
        return message(
            StatusCode::NOT_FOUND,
            "Unknown payment",
            "There is no such payment.",
        );
    };
    let Method::Konbini {
        store,
        confirmation_code,
        receipt,
    } = &payment.method
    else {
        return message(
            StatusCode::NOT_FOUND,
            "No instructions",
            "Only konbini payments have payment instructions.",
        );
    };
    let deadline = payment
        .payment_deadline
        .as_ref()
        .map(state::format_time)
        .unwrap_or_default();
    let open = matches!(
        payment.status,
        PaymentStatus::Authorized | PaymentStatus::Pending
    );
    let back = state
        .sessions
        .get(&payment.session)
        .map(|session| return_url_with_session(&session.return_url, &session.id));
    let body = html! {
        dl {
            dt { "Amount" }
            dd id="amount" { (format_amount(payment.amount, &payment.currency)) }
            dt { "Store" }
            dd { (store) }
            dt { "Receipt number" }
            dd id="receipt" { (receipt) }
            dt { "Confirmation code" }
            dd id="confirmation-code" { (confirmation_code) }
            dt { "Pay by" }
            dd id="deadline" { (deadline) }
            dt { "Status" }
            dd id="status" { (payment.status.as_str()) }
        }
        @if open {
            form method="post" action=(format!("{base}/payments/{}/simulate-capture", payment.id)) {
                button type="submit" id="simulate-capture" { "Simulate payment at the store" }
            }
            form method="post" action=(format!("{base}/payments/{}/simulate-expire", payment.id)) {
                button type="submit" class="secondary" id="simulate-expire" {
                    "Simulate the deadline passing"
                }
            }
        }
        @if let Some(back) = back {
            p { a id="return-to-merchant" href=(back) { "Return to merchant" } }
        }
    };
    page(StatusCode::OK, "Konbini payment instructions", body)
}

/// `POST /payments/{id}/simulate-capture`: the customer paid at the store.
pub(super) async fn simulate_capture(
    id: web::Path<String>,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let result = sandbox.capture(&id);
    simulated(&sandbox, &id, result, "Payment captured")
}

/// `POST /payments/{id}/simulate-expire`: the deadline passed unpaid.
pub(super) async fn simulate_expire(
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
