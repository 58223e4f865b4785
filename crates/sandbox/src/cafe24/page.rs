//! The browser side of the Cafe24 stand-in: the development launch form (`GET /`), the
//! page with a signed launch link (`GET /launch`), and the page frame the consent page
//! uses. Plain HTML forms, inline CSS, no JavaScript; `maud` escapes every dynamic value.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{valid_mall_id, Cafe24Sandbox};

const STYLE: &str = "
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 34rem; margin: 3rem auto; background: #fff; border-radius: 8px; padding: 2rem; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.1rem; color: #b3261e; margin-top: 0; }
h2 { font-size: 1.4rem; }
form { display: flex; flex-direction: column; gap: .6rem; margin-top: 1.5rem; }
label { display: flex; flex-direction: column; gap: .2rem; color: #5b6270; }
input, select { font-size: 1rem; padding: .5rem; border: 1px solid #c4c8d0; border-radius: 6px; color: #1d2330; }
button { font-size: 1rem; padding: .7rem; border-radius: 6px; border: 1px solid #1d4ed8; background: #1d4ed8; color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: #1d4ed8; }
a { color: #1d4ed8; }
pre { white-space: pre-wrap; word-break: break-all; background: #f4f5f7; padding: .7rem; border-radius: 6px; }
";

const LANGUAGES: [(&str, &str); 3] = [("ja", "日本語"), ("en", "English"), ("ko", "한국어")];
/// Who opens the app: Cafe24's `user_type` values (PROTOCOL.md §12).
const USER_TYPES: [(&str, &str); 3] = [
    ("P", "Representative operator (P)"),
    ("A", "Sub-operator (A)"),
    ("S", "Supplier (S)"),
];

/// A whole page: the sandbox banner, `title` as heading, then `body`.
pub(super) fn page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cafe24 sandbox" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "Cafe24 sandbox — not a real mall" }
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

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(status, title, html! { p id="message" { (text) } })
}

/// `GET /`: the form that makes a launch link.
pub(super) async fn launch_form(sandbox: web::Data<Cafe24Sandbox>) -> HttpResponse {
    let action = format!("{}/launch", sandbox.public_base());
    let body = html! {
        p {
            "Opens the App URL " code { (sandbox.app().app_url) }
            " as Cafe24 does when an operator starts the app, with a signed query."
        }
        form method="get" action=(action) {
            label { "Mall id" input id="mall_id" name="mall_id" value="demomall" required; }
            label { "Shop number" input id="shop_no" name="shop_no" type="number" min="1" value="1" required; }
            label {
                "Language"
                select id="lang" name="lang" {
                    @for (code, name) in LANGUAGES {
                        option value=(code) { (name) }
                    }
                }
            }
            label { "Operator id" input id="user_id" name="user_id" value="admin" required; }
            label { "Operator name" input id="user_name" name="user_name" value="홍길동"; }
            label {
                "Operator type"
                select id="user_type" name="user_type" {
                    @for (code, name) in USER_TYPES {
                        option value=(code) { (name) }
                    }
                }
            }
            button type="submit" id="make-link" { "Make the launch link" }
        }
    };
    page(StatusCode::OK, "Launch the app", body)
}

/// `GET /launch?mall_id&shop_no&lang&user_id&user_name&user_type`: the signed launch
/// link, timestamp now (`user_type` `P` when absent); 400 when a field is invalid.
pub(super) async fn launch_link(
    req: HttpRequest,
    sandbox: web::Data<Cafe24Sandbox>,
) -> HttpResponse {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let invalid = |text: &str| message(StatusCode::BAD_REQUEST, "Invalid launch", text);
    let mall_id = get("mall_id");
    if !valid_mall_id(mall_id) {
        return invalid("mall_id must be 1 to 50 characters of a-z, 0-9, _ and -.");
    }
    let Some(shop_no) = get("shop_no")
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
    else {
        return invalid("shop_no must be a positive integer.");
    };
    let lang = get("lang");
    if !LANGUAGES.iter().any(|(code, _)| *code == lang) {
        return invalid("lang must be ja, en or ko.");
    }
    let user_id = get("user_id");
    if user_id.is_empty() {
        return invalid("user_id is required.");
    }
    let user_type = match get("user_type") {
        "" => "P",
        t if USER_TYPES.iter().any(|(code, _)| *code == t) => t,
        _ => return invalid("user_type must be P, A or S."),
    };
    let url = sandbox.launch_url_for(&super::Launch {
        mall_id,
        shop_no,
        lang,
        user_id,
        user_name: get("user_name"),
        user_type,
        timestamp: chrono::Utc::now().timestamp(),
    });
    let body = html! {
        p { "Mall " strong { (mall_id) } ", shop " strong { (shop_no) } "." }
        p { a id="launch" href=(url) { "Launch the app" } }
        pre id="launch-url" { (url) }
        p { a href=(format!("{}/", sandbox.public_base())) { "Make another" } }
    };
    page(StatusCode::OK, "Launch link", body)
}
