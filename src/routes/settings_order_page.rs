//! An order's page on the settings site (issue 20, item 1), as a maud template: the
//! order, its timeline as who did what, its notifications to Cafe24 (a "send again"
//! form on a dead one), its refunds (a bank-account refund's link in a read-only field
//! with a copy button: `static/copy.js`, the site's only script) and its duplicate
//! payments. Every text is the catalogue's (`order-*`, `state-*`, `settings-*`).

use maud::{html, Markup};

use super::settings_pages::{layout, state_name, texts, Texts};
use crate::db::duplicates::DuplicateState;
use crate::db::notifications::NotificationKind;
use crate::db::refunds::{Operation, RefundState};
use crate::i18n;
use crate::install::settings::order_page::{
    page_path, DuplicateView, NoticeState, NoticeView, OrderPageView, RefundView, TimelineEntry,
};

/// Where the copy buttons' script is served.
pub const COPY_SCRIPT_PATH: &str = "/settings/assets/copy.js";
/// The copy buttons' script.
pub const COPY_SCRIPT: &str = include_str!("../../static/copy.js");

/// The catalogue's text `id` in the page's language.
fn tr(t: &Texts, id: &str) -> String {
    i18n::catalogue().text(t.lang, id)
}

/// The notice of a `done` the page was sent back with (`retried`, `captured`,
/// `capture-not-now`, `capture-refused`, `capture-unanswered`); `None` for anything
/// else.
pub fn done_text(lang: i18n::Lang, done: &str) -> Option<String> {
    let id = match done {
        "retried" => "order-queued-again",
        "captured" => "order-done-captured",
        "capture-not-now" => "order-done-capture-not-now",
        "capture-refused" => "order-done-capture-refused",
        "capture-unanswered" => "order-done-capture-unanswered",
        _ => return None,
    };
    Some(i18n::catalogue().text(lang, id))
}

/// The order's page. `notice` shows above the sections ("queued again").
pub fn order_page(view: &OrderPageView, notice: Option<&str>) -> Markup {
    let t = texts(&view.lang);
    let title = format!("{} {}", tr(t, "order-title"), view.order_id);
    let body = html! {
        header {
            h1 { (title) }
            span.mall { (t.mall) " " strong #mall-id { (view.mall_id) } }
            a.nav #payments-link href=(format!("/settings/{}/payments", view.mall_id)) { (tr(t, "order-back")) }
        }
        main {
            @if let Some(n) = notice { div.notice #notice role="status" { (n) } }
            (summary(t, view))
            (actions(view))
            (timeline(t, &view.timeline))
            (notices(t, view))
            (refunds(t, &view.refunds))
            (duplicates(t, &view.duplicates))
        }
        script src=(COPY_SCRIPT_PATH) defer {}
    };
    layout(t, &title, body)
}

/// The order's facts: amount, state, payment type, KOMOJU's dashboard.
fn summary(t: &Texts, view: &OrderPageView) -> Markup {
    html! {
        section #order {
            dl.facts {
                dt { (t.col_amount) } dd #amount { (view.amount) }
                dt { (t.col_state) } dd #state { strong { (state_name(t, view.state)) } }
                dt { (t.col_payment_type) } dd { (view.payment_type.as_deref().unwrap_or("–")) }
                dt { (t.shop) } dd { (view.shop_no) }
                dt { (tr(t, "order-placed")) } dd { (view.created_at) }
                dt { (t.col_komoju) }
                dd {
                    @if let Some(url) = &view.komoju_url {
                        a #komoju-link href=(url) rel="noopener noreferrer" target="_blank" { (t.open_in_komoju) }
                    } @else { "–" }
                }
            }
        }
    }
}

/// What the merchant may do to the order: capture a held card authorization (manual
/// capture), with when the service would capture it by itself and KOMOJU's reason for
/// refusing the last capture. Nothing for a read-only session.
pub fn actions(view: &OrderPageView) -> Markup {
    let t = texts(&view.lang);
    html! {
        @if view.capturable {
            section #capture {
                h2 { (tr(t, "order-capture")) }
                @if let Some(due) = &view.capture_due {
                    p #capture-due { (tr(t, "order-capture-due")) " " (due) }
                }
                @if let Some(why) = &view.capture_error {
                    p.error #capture-error role="alert" { (tr(t, "order-capture-refused")) " " (why) }
                }
                @if let Some(csrf) = &view.csrf {
                    (super::settings_pages::capture_button(t, &view.mall_id, &view.order_id, csrf))
                }
            }
        }
    }
}

fn timeline(t: &Texts, entries: &[TimelineEntry]) -> Markup {
    html! {
        section #timeline {
            h2 { (tr(t, "order-timeline")) }
            @if entries.is_empty() {
                p { (tr(t, "order-no-events")) }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th { (tr(t, "order-col-when")) } th { (tr(t, "order-col-who")) }
                        th { (tr(t, "order-col-what")) } th { (tr(t, "order-col-state-after")) }
                    } }
                    tbody { @for e in entries { tr {
                        td { (e.at) }
                        td.who { (tr(t, &format!("order-actor-{}", e.actor.code()))) }
                        td.what { (tr(t, &e.happening.message_id())) }
                        td { @match e.new_state {
                            Some(s) => strong { (state_name(t, s)) },
                            None => span.muted { (tr(t, "order-unchanged")) },
                        } }
                    } } }
                } }
            }
        }
    }
}

fn kind_name(t: &Texts, kind: NotificationKind) -> String {
    tr(
        t,
        &format!("order-kind-{}", kind.as_str().replace('_', "-")),
    )
}

fn notices(t: &Texts, view: &OrderPageView) -> Markup {
    html! {
        section #notifications {
            h2 { (tr(t, "order-notices")) }
            p.help { (tr(t, "order-notices-help")) }
            @if view.notices.is_empty() {
                p { (tr(t, "order-none")) }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th { (tr(t, "order-col-kind")) } th { (t.col_state) }
                        th.n { (tr(t, "order-col-attempts")) } th { (tr(t, "order-col-last-status")) } th { }
                    } }
                    tbody { @for n in &view.notices { (notice_row(t, view, n)) } }
                } }
            }
        }
    }
}

fn notice_row(t: &Texts, view: &OrderPageView, n: &NoticeView) -> Markup {
    let action = format!(
        "{}/notifications/{}/retry",
        page_path(&view.mall_id, &view.order_id),
        n.id
    );
    html! {
        tr id=(format!("notification-{}", n.id)) {
            td { (kind_name(t, n.kind)) }
            td.notice-state { @match &n.state {
                NoticeState::Delivered(at) => { span.state.on { (tr(t, "order-notice-delivered")) } " " (at) },
                NoticeState::Retrying(next) => { span.state.pending { (tr(t, "order-notice-retrying")) } " " (next) },
                NoticeState::Dead => span.state.dead { (tr(t, "order-notice-dead")) },
            } }
            td.n { (n.attempts) }
            td { (n.last_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())) }
            td {
                @if let (NoticeState::Dead, Some(csrf)) = (&n.state, &view.csrf) {
                    form.inline method="post" action=(action) {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" id=(format!("send-again-{}", n.id)) { (tr(t, "order-send-again")) }
                    }
                }
            }
        }
    }
}

/// A bank-account link in a read-only field with its copy button.
fn bank_link(t: &Texts, id: &str, link: &Result<String, ()>) -> Markup {
    html! {
        @match link {
            Ok(url) => div.bank-link {
                label for=(id) { (tr(t, "order-bank-link")) }
                p.help { (tr(t, "order-bank-link-help")) }
                div.copy-row {
                    input type="text" id=(id) readonly value=(url);
                    button type="button" .secondary data-copy=(id) { (tr(t, "order-copy")) }
                }
            },
            Err(()) => p.warning { (tr(t, "order-link-unreadable")) },
        }
    }
}

fn refund_state(t: &Texts, s: RefundState) -> String {
    tr(t, &format!("order-refund-{}", s.as_str().replace('_', "-")))
}

fn refunds(t: &Texts, rows: &[RefundView]) -> Markup {
    html! {
        section #refunds {
            h2 { (tr(t, "order-refunds")) }
            @if rows.is_empty() { p { (tr(t, "order-none")) } }
            @for (i, r) in rows.iter().enumerate() {
                div.refund id=(format!("refund-{i}")) {
                    p {
                        strong { (tr(t, match r.operation { Operation::Refund => "order-op-refund", Operation::Cancel => "order-op-cancel" })) }
                        " " span.amount { (r.amount) } " · " (refund_shown(t, r)) " · " (r.at)
                    }
                    @if let Some(link) = &r.bank_link { (bank_link(t, &format!("refund-link-{i}"), link)) }
                }
            }
        }
    }
}

/// A refund's state as the merchant reads it: one KOMOJU accepted for a bank account the
/// buyer has not given yet is not done (the money is not back until the buyer gives it).
fn refund_shown(t: &Texts, r: &RefundView) -> String {
    if r.state == RefundState::Succeeded && r.bank_link.is_some() {
        tr(t, "order-refund-awaiting-account")
    } else {
        refund_state(t, r.state)
    }
}

fn duplicate_state(t: &Texts, s: DuplicateState) -> String {
    tr(
        t,
        &format!("order-duplicate-{}", s.as_str().replace('_', "-")),
    )
}

fn duplicates(t: &Texts, rows: &[DuplicateView]) -> Markup {
    html! {
        @if !rows.is_empty() {
            section #duplicates {
                h2 { (tr(t, "order-duplicates")) }
                p.help { (tr(t, "order-duplicates-help")) }
                @for (i, d) in rows.iter().enumerate() {
                    div.duplicate {
                        p {
                            (tr(t, "order-col-payment")) " " code { (d.payment_id) } " · "
                            span.amount { (d.amount) } " · " (d.payment_type.as_deref().unwrap_or("–"))
                            " · " strong { (duplicate_state(t, d.state)) } " · " (d.at)
                        }
                        @if let Some(link) = &d.bank_link { (bank_link(t, &format!("duplicate-link-{i}"), link)) }
                    }
                }
            }
        }
    }
}
