//! The browser side of the sandbox: the hosted payment page, the konbini instructions page
//! and the buttons that simulate what happens at the store. Plain HTML forms, inline CSS,
//! no JavaScript; every dynamic value is HTML-escaped.

use std::fmt::Write as _;

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;

use super::state::{self, Method, PaymentStatus, SessionStatus};
use super::{Sandbox, SandboxError};

/// Escapes text for HTML element content and quoted attribute values alike.
fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

fn html(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · KOMOJU sandbox</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }}
main {{ max-width: 30rem; margin: 3rem auto; background: #fff; border-radius: 8px; padding: 2rem; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.1rem; color: #b3261e; margin-top: 0; }}
h2 {{ font-size: 1.4rem; }}
dl {{ display: grid; grid-template-columns: auto 1fr; gap: .4rem 1rem; }}
dt {{ color: #5b6270; }}
dd {{ margin: 0; font-weight: 600; }}
form {{ display: flex; flex-direction: column; gap: .6rem; margin-top: 1.5rem; }}
button {{ font-size: 1rem; padding: .7rem; border-radius: 6px; border: 1px solid #1d4ed8; background: #1d4ed8; color: #fff; cursor: pointer; }}
button.secondary {{ background: #fff; color: #1d4ed8; }}
a {{ color: #1d4ed8; }}
</style>
</head>
<body>
<main>
<h1>KOMOJU sandbox — not a real payment</h1>
<h2>{title}</h2>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    html(status, title, &format!("<p>{}</p>", esc(text)))
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
    let mut body = format!(
        "<dl><dt>Amount</dt><dd id=\"amount\">{}</dd><dt>Merchant</dt><dd id=\"merchant\">{}</dd></dl>",
        esc(&amount),
        esc(&return_host(&session.return_url)),
    );
    if session.status != SessionStatus::Pending || session.expired(now) {
        let status = if session.expired(now) {
            "expired"
        } else {
            session.status.as_str()
        };
        let back = return_url_with_session(&session.return_url, &session.id);
        let _ = write!(
            body,
            "<p>This session is <strong id=\"status\">{}</strong>.</p><p><a id=\"return-to-merchant\" href=\"{}\">Return to merchant</a></p>",
            esc(status),
            esc(&back),
        );
        return html(StatusCode::OK, "Payment session", &body);
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\">",
        esc(&format!("{base}/sessions/{}/pay", session.id)),
    );
    if session.offers("credit_card") {
        body.push_str(
            "<button type=\"submit\" id=\"pay-card\" name=\"method\" value=\"credit_card\">Pay by card</button>",
        );
    }
    if session.offers("konbini") {
        body.push_str(
            "<button type=\"submit\" id=\"pay-konbini\" name=\"method\" value=\"konbini\">Pay at a konbini</button>",
        );
    }
    body.push_str(
        "<button type=\"submit\" class=\"secondary\" id=\"return-to-merchant\" name=\"method\" value=\"return\">Return to merchant</button></form>",
    );
    html(StatusCode::OK, &format!("Pay {amount}"), &body)
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
    let mut body = format!(
        "<dl><dt>Amount</dt><dd id=\"amount\">{}</dd><dt>Store</dt><dd>{}</dd><dt>Receipt number</dt><dd id=\"receipt\">{}</dd><dt>Confirmation code</dt><dd id=\"confirmation-code\">{}</dd><dt>Pay by</dt><dd id=\"deadline\">{}</dd><dt>Status</dt><dd id=\"status\">{}</dd></dl>",
        esc(&format_amount(payment.amount, &payment.currency)),
        esc(store),
        esc(receipt),
        esc(confirmation_code),
        esc(&deadline),
        esc(payment.status.as_str()),
    );
    if matches!(
        payment.status,
        PaymentStatus::Authorized | PaymentStatus::Pending
    ) {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{}\"><button type=\"submit\" id=\"simulate-capture\">Simulate payment at the store</button></form><form method=\"post\" action=\"{}\"><button type=\"submit\" class=\"secondary\" id=\"simulate-expire\">Simulate the deadline passing</button></form>",
            esc(&format!("{base}/payments/{}/simulate-capture", payment.id)),
            esc(&format!("{base}/payments/{}/simulate-expire", payment.id)),
        );
    }
    if let Some(session) = state.sessions.get(&payment.session) {
        let _ = write!(
            body,
            "<p><a id=\"return-to-merchant\" href=\"{}\">Return to merchant</a></p>",
            esc(&return_url_with_session(&session.return_url, &session.id)),
        );
    }
    html(StatusCode::OK, "Konbini payment instructions", &body)
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
        Ok(()) => html(
            StatusCode::OK,
            done,
            &format!(
                "<p>{}.</p><p><a href=\"{}\">Back to the instructions</a></p>",
                esc(done),
                esc(&format!("{}/instructions/{id}", sandbox.public_base())),
            ),
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
