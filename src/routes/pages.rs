//! The HTML pages a buyer sees on this service, as maud templates: every value is
//! escaped by the template engine, no script runs, styles are inline (the pages' CSP
//! allows nothing else).

use maud::{html, Markup, DOCTYPE};

use crate::external_checkout::Review;
use crate::i18n::{catalogue, Lang};

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:34rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
table{width:100%;border-collapse:collapse}td,th{padding:.4rem;border-bottom:1px solid #e4e6ea;text-align:left}\
.n{text-align:right}button{margin-top:1.5rem;width:100%;padding:.8rem;font-size:1rem;border:0;border-radius:6px;background:#172b4d;color:#fff;cursor:pointer}";

/// External checkout's review page in `lang`: the order's lines and total, and a form
/// that posts the key and its form token to `review.pay_url`.
pub fn review(review: &Review, lang: Lang) -> Markup {
    let t = |id: &str| catalogue().text(lang, id);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (t("review-title")) }
                style { (STYLE) }
            }
            body {
                main {
                    h1 { (t("review-title")) }
                    p { (review.shop_name) " · " (t("review-order")) " " strong { (review.order_id) } }
                    table {
                        thead { tr { th { (t("review-item")) } th.n { (t("review-quantity")) } th.n { (t("review-amount")) } } }
                        tbody {
                            @for (name, quantity, line_total) in &review.lines {
                                tr {
                                    td { (name) }
                                    td.n { (quantity) }
                                    td.n { (line_total) " " (review.currency) }
                                }
                            }
                        }
                        tfoot {
                            tr {
                                th { (t("review-total")) }
                                th {}
                                th.n #review-total { (review.total) " " (review.currency) }
                            }
                        }
                    }
                    form method="post" action=(review.pay_url) {
                        input type="hidden" name="key" value=(review.key);
                        input type="hidden" name="csrf" value=(review.csrf);
                        button type="submit" #review-pay { (t("review-pay")) }
                    }
                }
            }
        }
    }
}

/// The page, in `lang`, for a buyer whose callback cannot finish yet (KOMOJU
/// unreachable): nothing changed, and reloading the same URL tries again. (What KOMOJU
/// answered is for the log, not for the buyer.)
pub fn retry(lang: Lang) -> Markup {
    let t = |id: &str| catalogue().text(lang, id);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (t("retry-title")) }
            }
            body style="font-family:sans-serif;max-width:36em;margin:3em auto" {
                h1 { (t("retry-heading")) }
                p { (t("retry-detail")) }
                p { (t("retry-reload")) }
            }
        }
    }
}

/// The language of a buyer's page: the browser's `Accept-Language`, then English.
pub fn buyer_lang(req: &actix_web::HttpRequest) -> Lang {
    let accept = req
        .headers()
        .get(actix_web::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::negotiate(None, None, accept)
}
