//! The HTML pages a buyer sees on this service, as maud templates: every value is
//! escaped by the template engine, no script runs, styles are inline (the pages' CSP
//! allows nothing else).

use maud::{html, Markup, DOCTYPE};

use crate::external_checkout::Review;

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:34rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
table{width:100%;border-collapse:collapse}td,th{padding:.4rem;border-bottom:1px solid #e4e6ea;text-align:left}\
.n{text-align:right}button{margin-top:1.5rem;width:100%;padding:.8rem;font-size:1rem;border:0;border-radius:6px;background:#172b4d;color:#fff;cursor:pointer}";

/// External checkout's review page: the order's lines and total, and a form that posts
/// the key and its form token to `review.pay_url`.
pub fn review(review: &Review) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Review your order" }
                style { (STYLE) }
            }
            body {
                main {
                    h1 { "Review your order" }
                    p { (review.shop_name) " · order " strong { (review.order_id) } }
                    table {
                        thead { tr { th { "Item" } th.n { "Qty" } th.n { "Amount" } } }
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
                                th { "Total" }
                                th {}
                                th.n #review-total { (review.total) " " (review.currency) }
                            }
                        }
                    }
                    form method="post" action=(review.pay_url) {
                        input type="hidden" name="key" value=(review.key);
                        input type="hidden" name="csrf" value=(review.csrf);
                        button type="submit" #review-pay { "Pay with KOMOJU" }
                    }
                }
            }
        }
    }
}

/// The page for a buyer whose callback cannot finish yet (KOMOJU unreachable): nothing
/// changed, and reloading the same URL tries again.
pub fn retry(message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Payment status pending" }
            }
            body style="font-family:sans-serif;max-width:36em;margin:3em auto" {
                h1 { "We could not confirm your payment yet" }
                p { (message) }
                p { "Nothing was lost. Please reload this page in a moment." }
            }
        }
    }
}
