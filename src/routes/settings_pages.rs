//! The settings site's pages (PROTOCOL.md §12), as maud templates: every value is
//! escaped by the template engine, the only stylesheet is `static/settings.css` served
//! by this service, no script runs. Japanese, Korean or English ([`crate::i18n`]: the
//! texts are the catalogue's `settings-*` messages), with a language switch on every
//! page. A read-only (sub-operator's) page shows the settings without a single
//! form.

use std::sync::OnceLock;

use maud::{html, Markup, DOCTYPE};

use crate::i18n::{self, Lang};

use crate::db::merchants::Registration;
use crate::install::settings::order_page;
use crate::install::settings::{PaymentsView, SettingsView, ShopView, WEBHOOK_EVENTS};
use crate::orders::state::OrderState;

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/settings/assets/settings.css";
/// The stylesheet.
pub const STYLESHEET: &str = include_str!("../../static/settings.css");

/// Declares [`Texts`] with one field per message `settings-<field>` (underscores as
/// hyphens) of the catalogue (`locales/*/settings.ftl`).
macro_rules! texts {
    ($($field:ident),+ $(,)?) => {
        /// Every text of the site, in one language, from the catalogue.
        pub struct Texts {
            /// The language (its code is `<html lang>`).
            pub lang: Lang,
            $(pub $field: String,)+
        }

        impl Texts {
            fn load(lang: Lang) -> Texts {
                let catalogue = i18n::catalogue();
                Texts {
                    lang,
                    $($field: catalogue.text(
                        lang,
                        &concat!("settings-", stringify!($field)).replace('_', "-"),
                    ),)+
                }
            }
        }
    };
}

texts!(
    title,
    mall,
    test_mode,
    live_mode,
    not_set_up,
    komoju,
    komoju_help,
    secret_key,
    webhook_secret,
    saved_hint,
    not_saved,
    payment_types,
    cancel_mode,
    cancel_sync,
    cancel_async,
    locale,
    review_page,
    save,
    shops,
    shops_help,
    shop,
    currency,
    gateway,
    external_checkout,
    on,
    off,
    pending,
    turn_on,
    turn_off,
    retry,
    webhook,
    webhook_help,
    events,
    last_ping,
    never,
    send_test,
    disconnect,
    disconnect_help,
    disconnect_confirm,
    payments,
    payments_help,
    filter_state,
    filter_all,
    filter_shop,
    filter_from,
    filter_to,
    filter_order_id,
    filter_show,
    col_order,
    col_amount,
    col_state,
    col_payment_type,
    col_updated,
    col_komoju,
    open_in_komoju,
    next_page,
    no_payments,
    back_to_settings,
    download_csv,
    done,
    disconnected,
    disconnected_help,
    error_title,
    read_only,
    capture,
    capture_mode,
    capture_auto,
    capture_manual,
    auto_capture_days,
    auto_capture_days_help,
);

/// The texts in `lang`, loaded once.
pub fn texts_in(lang: Lang) -> &'static Texts {
    static TEXTS: OnceLock<[Texts; 3]> = OnceLock::new();
    let all = TEXTS.get_or_init(|| Lang::ALL.map(Texts::load));
    let i = Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0);
    &all[i]
}

/// The texts for a language tag (`ja`, `ko_KR`, `en_US`…); English for any other.
pub fn texts(lang: &str) -> &'static Texts {
    texts_in(Lang::from_tag(lang).unwrap_or(Lang::En))
}

/// The language switch: a link per language to the same page in it (`?lang=`), the
/// current one marked.
fn language_switch(t: &Texts) -> Markup {
    html! {
        nav.languages aria-label="Language" {
            @for lang in Lang::ALL {
                @if lang == t.lang {
                    span lang=(lang.code()) aria-current="true" { (lang.name()) }
                } @else {
                    a href={ "?lang=" (lang.code()) } lang=(lang.code()) hreflang=(lang.code()) { (lang.name()) }
                }
                " "
            }
        }
    }
}

/// A page of the site: `<html lang>`, the stylesheet, the language switch, then `body`.
pub fn layout(t: &Texts, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body { (language_switch(t)) (body) }
        }
    }
}

fn state_cell(t: &Texts, state: Registration) -> Markup {
    let (class, label) = match state {
        Registration::On => ("state on", &t.on),
        Registration::Off => ("state off", &t.off),
        Registration::Registering | Registration::Unregistering => ("state pending", &t.pending),
    };
    html! { span class=(class) { (label) } }
}

/// A one-button form posting `on` and the CSRF token to `action`.
fn switch(t: &Texts, action: &str, csrf: &str, id: &str, state: Registration) -> Markup {
    let (on, label, class) = match state {
        Registration::On => ("0", &t.turn_off, "secondary"),
        Registration::Off => ("1", &t.turn_on, ""),
        Registration::Registering => ("1", &t.retry, ""),
        Registration::Unregistering => ("0", &t.retry, "secondary"),
    };
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="on" value=(on);
            button type="submit" id=(id) class=(class) { (label) }
        }
    }
}

/// What the KOMOJU form sent, shown again only on the page that answers that same POST:
/// the typed secrets (so an error in another field does not clear them; never stored
/// unless saved, never logged) and the field in error with its message. No `Debug`.
#[derive(Default)]
pub struct Posted {
    pub secret_key: String,
    pub webhook_secret: String,
    /// The field in error (its name and id) and the message, in the page's language.
    pub error: Option<(&'static str, String)>,
}

impl Posted {
    /// The message of `field`, when it is the one in error.
    fn error_of(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// The ids describing `field`: its `help` line, and its error when it has one.
    fn described(&self, field: &str, help: &str) -> String {
        match self.error_of(field) {
            Some(_) => format!("{help} {field}-error"),
            None => help.to_owned(),
        }
    }
}

/// The error line under a field (`{field}-error`), when `field` is the one in error.
fn field_error(posted: &Posted, field: &str) -> Markup {
    html! {
        @if let Some(message) = posted.error_of(field) {
            p.field-error id=(format!("{field}-error")) { (message) }
        }
    }
}

/// A secret's password field, its hint and its error line.
fn secret_field(
    t: &Texts,
    posted: &Posted,
    field: &str,
    typed: &str,
    hint: &Option<String>,
) -> Markup {
    let help = format!("{}-hint", field.replace('_', "-"));
    let invalid = posted.error_of(field).map(|_| "true");
    html! {
        input type="password" id=(field) name=(field) autocomplete="off"
            value=(typed) aria-invalid=[invalid] aria-describedby=(posted.described(field, &help))
            placeholder=(hint.as_deref().unwrap_or(&t.not_saved));
        p.help id=(help) {
            @match hint { Some(h) => { (t.saved_hint) " " code { (h) } }, None => (t.not_saved) }
        }
        (field_error(posted, field))
    }
}

/// The payment-type choices (what KOMOJU offers the saved key), with their error line.
fn payment_types_field(t: &Texts, view: &SettingsView, posted: &Posted) -> Markup {
    let invalid = posted
        .error_of("payment_types")
        .map(|_| "payment_types-error");
    html! {
        fieldset #payment-types aria-describedby=[invalid] {
            legend { (t.payment_types) }
            (field_error(posted, "payment_types"))
            @match &view.payment_types {
                Ok(types) => {
                    input type="hidden" name="payment_types_shown" value="1";
                    @for pt in types {
                        label.inline {
                            input type="checkbox" name="payment_types" value=(pt.type_slug)
                                id=(format!("pt-{}", pt.type_slug)) checked[pt.selected];
                            (pt.name(t.lang))
                        }
                    }
                }
                Err(why) => p.help #payment-types-missing { (why) },
            }
        }
    }
}

/// A `select` of `field` with its options `(value, label)` and error line.
fn select_field(
    posted: &Posted,
    field: &str,
    label: &str,
    current: &str,
    options: &[(&str, &str)],
) -> Markup {
    let invalid = posted.error_of(field).map(|_| "true");
    let described = posted.error_of(field).map(|_| format!("{field}-error"));
    html! {
        label for=(field) { (label) }
        select id=(field) name=(field) aria-invalid=[invalid] aria-describedby=[described] {
            @for (value, text) in options {
                option value=(value) selected[current == *value] { (text) }
            }
        }
        (field_error(posted, field))
    }
}

/// The KOMOJU form of the representative operator's page.
fn komoju_form(t: &Texts, view: &SettingsView, base: &str, posted: &Posted) -> Markup {
    html! {
        form method="post" action=(format!("{base}/komoju")) {
            input type="hidden" name="csrf" value=(view.csrf);
            label for="secret_key" { (t.secret_key) }
            (secret_field(t, posted, "secret_key", &posted.secret_key, &view.secret_key_hint))
            label for="webhook_secret" { (t.webhook_secret) }
            (secret_field(t, posted, "webhook_secret", &posted.webhook_secret, &view.webhook_secret_hint))
            (payment_types_field(t, view, posted))
            (select_field(posted, "cancel_mode", &t.cancel_mode, &view.cancel_mode,
                &[("sync", &t.cancel_sync), ("async", &t.cancel_async)]))
            (select_field(posted, "locale", &t.locale, &view.locale,
                &[("ja", "日本語"), ("en", "English"), ("ko", "한국어")]))
            p {
                label.inline {
                    input type="checkbox" id="external_review" name="external_review" value="1" checked[view.external_review];
                    (t.review_page)
                }
            }
            (capture_fields(t, view, posted))
            p { button type="submit" #save-komoju { (t.save) } }
        }
    }
}

/// The KOMOJU settings as a sub-operator's page shows them: no form, no field.
fn komoju_summary(t: &Texts, view: &SettingsView) -> Markup {
    let hint = |h: &Option<String>| h.clone().unwrap_or_else(|| t.not_saved.to_owned());
    html! {
        dl #komoju-summary {
            dt { (t.secret_key) } dd #secret-key-hint { code { (hint(&view.secret_key_hint)) } }
            dt { (t.webhook_secret) } dd #webhook-secret-hint { code { (hint(&view.webhook_secret_hint)) } }
            dt { (t.payment_types) }
            dd {
                @match &view.payment_types {
                    Ok(types) => {
                        @for pt in types.iter().filter(|pt| pt.selected) {
                            span.tag { (pt.name(t.lang)) } " "
                        }
                    }
                    Err(why) => span #payment-types-missing { (why) },
                }
            }
            dt { (t.cancel_mode) }
            dd { (if view.cancel_mode == "async" { &t.cancel_async } else { &t.cancel_sync }) }
            dt { (t.locale) } dd { (view.locale) }
            dt { (t.review_page) } dd { (if view.external_review { &t.on } else { &t.off }) }
        }
    }
}

/// The settings page. `notice` and `error` show above the sections; `posted` is what the
/// KOMOJU form sent when this page answers it (its field error under the field).
pub fn settings(
    view: &SettingsView,
    notice: Option<&str>,
    error: Option<&str>,
    posted: Option<&Posted>,
) -> Markup {
    let empty = Posted::default();
    let posted = posted.unwrap_or(&empty);
    let t = texts(&view.lang);
    let base = format!("/settings/{}", view.mall_id);
    let body = html! {
        header {
            h1 { (t.title) }
            span.mall { (t.mall) " " strong #mall-id { (view.mall_id) } }
            a.nav #payments-link href=(format!("{base}/payments")) { (t.payments) }
        }
        main {
            @match view.mode {
                Some("live") => div.banner.live #mode { (t.live_mode) },
                Some(_) => div.banner.test #mode { (t.test_mode) },
                None => div.banner.none #mode { (t.not_set_up) },
            }
            @if !view.may_change { div.notice #read-only { (t.read_only) } }
            @if let Some(n) = notice { div.notice #notice { (n) } }
            @if let Some(e) = error { div.error #error role="alert" { (e) } }

            section #komoju {
                h2 { (t.komoju) }
                p.help { (t.komoju_help) }
                @if view.may_change { (komoju_form(t, view, &base, posted)) } @else { (komoju_summary(t, view)) }
            }
            (shops_section(t, view, &base))
            (webhook_section(t, view, &base))
            @if view.may_change {
                section #disconnect-section {
                    h2 { (t.disconnect) }
                    p.help { (t.disconnect_help) }
                    form method="post" action=(format!("{base}/disconnect")) {
                        input type="hidden" name="csrf" value=(view.csrf);
                        // The browser asks for the tick before it sends the form (no script).
                        label.inline.confirm {
                            input type="checkbox" #disconnect-confirm name="confirm" value="1" required;
                            (t.disconnect_confirm)
                        }
                        p { button type="submit" .danger #disconnect { (t.disconnect) } }
                    }
                }
            }
        }
    };
    layout(t, &t.title, body)
}

/// The shops, each with its gateway and external-checkout switches (a read-only session
/// sees the states only), or why Cafe24 could not list them.
fn shops_section(t: &Texts, view: &SettingsView, base: &str) -> Markup {
    html! {
        section #shops {
            h2 { (t.shops) }
            p.help { (t.shops_help) }
            @match &view.shops {
                Err(why) => div.warning #shops-warning { (why) },
                Ok(shops) => div.table-scroll {
                    table {
                        thead { tr {
                            th { (t.shop) } th { (t.currency) } th { "partner_id" }
                            th { (t.gateway) } th { (t.external_checkout) }
                        } }
                        tbody { @for s in shops { (shop_row(t, view, base, s)) } }
                    }
                },
            }
        }
    }
}

fn shop_row(t: &Texts, view: &SettingsView, base: &str, s: &ShopView) -> Markup {
    html! {
        tr id=(format!("shop-{}", s.shop_no)) {
            td { (s.shop_no) " · " (s.shop_name) }
            td { (s.currency) }
            td { code { (s.partner_id) } }
            td {
                (state_cell(t, s.gateway)) " "
                @if view.may_change {
                    (switch(t, &format!("{base}/shops/{}/gateway", s.shop_no), &view.csrf, &format!("gateway-{}", s.shop_no), s.gateway))
                }
            }
            td {
                (state_cell(t, s.script)) " "
                @if view.may_change && (s.gateway == Registration::On || s.script != Registration::Off) {
                    (switch(t, &format!("{base}/shops/{}/script", s.shop_no), &view.csrf, &format!("script-{}", s.shop_no), s.script))
                }
            }
        }
    }
}

/// The webhook URL and events to register in KOMOJU, the last ping, and the test button.
fn webhook_section(t: &Texts, view: &SettingsView, base: &str) -> Markup {
    html! {
        section #webhook {
            h2 { (t.webhook) }
            p.help { (t.webhook_help) }
            p { code #webhook-url { (view.webhook_url) } }
            ul.events { @for e in WEBHOOK_EVENTS { li { code { (e) } } } }
            p #last-ping {
                (t.last_ping) " "
                @match &view.last_ping { Some(at) => strong { (at) }, None => (t.never) }
            }
            @if let Some((count, since)) = &view.signature_failures {
                p.error #signature-failures role="alert" {
                    (i18n::catalogue().text_with(t.lang, "webhook-signature-failures",
                        &[("count", &count.to_string()), ("since", since)]))
                }
            }
            @if view.may_change {
                form method="post" action=(format!("{base}/webhook-test")) {
                    input type="hidden" name="csrf" value=(view.csrf);
                    button type="submit" .secondary #webhook-test { (t.send_test) }
                }
            }
        }
    }
}

/// The page after a disconnect.
pub fn disconnected(lang: &str) -> Markup {
    let t = texts(lang);
    layout(
        t,
        &t.disconnected,
        html! {
            header { h1 { (t.title) } }
            main { section { h2 #disconnected { (t.disconnected) } p { (t.disconnected_help) } } }
        },
    )
}

/// The name of an order state in `t`'s language (`state-<state>` of the catalogue).
pub fn state_name(t: &Texts, state: OrderState) -> String {
    i18n::catalogue().text(
        t.lang,
        &format!("state-{}", state.as_str().replace('_', "-")),
    )
}

/// The payments page: the filter form (a GET), the mall's orders, the next page's link.
/// `query` is the filter as sent (kept in the next page's link and in the form).
pub fn payments(view: &PaymentsView, query: &[(String, String)]) -> Markup {
    let t = texts(&view.lang);
    let base = format!("/settings/{}", view.mall_id);
    let sent = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = html! {
        header {
            h1 { (t.payments) }
            span.mall { (t.mall) " " strong #mall-id { (view.mall_id) } }
            a.nav #settings-link href=(base) { (t.back_to_settings) }
        }
        main {
            section #payments {
                p.help { (t.payments_help) }
                (payments_filter(t, &sent))
                @if view.rows.is_empty() {
                    p #no-payments { (t.no_payments) }
                } @else {
                    (payments_table(t, view))
                }
                @if let Some(next) = &view.next {
                    p { a #next-page href=(next_link(query, next)) { (t.next_page) } }
                }
                p { a #csv-link href=(csv_link(&base, query)) download { (t.download_csv) } }
            }
        }
    };
    layout(t, &t.payments, body)
}

fn payments_filter(t: &Texts, sent: &dyn Fn(&str) -> String) -> Markup {
    let state = sent("state");
    html! {
        form.filters method="get" {
            div.field {
                label for="f-state" { (t.filter_state) }
                select #f-state name="state" {
                    option value="" selected[state.is_empty()] { (t.filter_all) }
                    @for s in OrderState::ALL {
                        option value=(s.as_str()) selected[state == s.as_str()] { (state_name(t, s)) }
                    }
                }
            }
            div.field {
                label for="f-shop" { (t.filter_shop) }
                input type="text" #f-shop name="shop" inputmode="numeric" value=(sent("shop"));
            }
            div.field {
                label for="f-from" { (t.filter_from) }
                input type="date" #f-from name="from" value=(sent("from"));
            }
            div.field {
                label for="f-to" { (t.filter_to) }
                input type="date" #f-to name="to" value=(sent("to"));
            }
            div.field {
                label for="f-order" { (t.filter_order_id) }
                input type="text" #f-order name="order_id" value=(sent("order_id"));
            }
            div.field { button type="submit" #filter { (t.filter_show) } }
        }
    }
}

fn payments_table(t: &Texts, view: &PaymentsView) -> Markup {
    html! {
        div.table-scroll {
            table #payment-rows {
                thead { tr {
                    th { (t.col_order) } th { (t.shop) } th.n { (t.col_amount) } th { (t.col_state) }
                    th { (t.col_payment_type) } th { (t.col_updated) } th { (t.col_komoju) }
                } }
                tbody {
                    @for r in &view.rows {
                        tr {
                            td.order {
                                a.order-link href=(order_page::page_path(&view.mall_id, &r.order_id)) { (r.order_id) }
                            }
                            td { (r.shop_no) }
                            td.n.amount { (r.amount) }
                            td.state {
                                (state_name(t, r.state))
                                @if let (true, Some(csrf)) = (r.capturable, &view.csrf) {
                                    (capture_button(t, &view.mall_id, &r.order_id, csrf))
                                }
                            }
                            td { (r.payment_type.as_deref().unwrap_or("–")) }
                            td { (r.updated_at) }
                            td {
                                @if let Some(url) = &r.komoju_url {
                                    a href=(url) rel="noopener noreferrer" target="_blank" { (t.open_in_komoju) }
                                } @else { "–" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Manual capture: the mode and the days before the automatic capture.
fn capture_fields(t: &Texts, view: &SettingsView, posted: &Posted) -> Markup {
    let days = "auto_capture_after_days";
    let invalid = posted.error_of(days).map(|_| "true");
    html! {
        fieldset #capture {
            legend { (t.capture_mode) }
            (field_error(posted, "capture"))
            label.inline {
                input type="radio" name="capture" value="auto" id="capture-auto" checked[view.capture == "auto"];
                (t.capture_auto)
            }
            label.inline {
                input type="radio" name="capture" value="manual" id="capture-manual" checked[view.capture == "manual"];
                (t.capture_manual)
            }
            label for="auto_capture_after_days" { (t.auto_capture_days) }
            input type="number" id=(days) name=(days) min="1" max="29"
                value=(view.auto_capture_after_days) aria-invalid=[invalid]
                aria-describedby=(posted.described(days, "auto-capture-help"));
            p.help #auto-capture-help { (t.auto_capture_days_help) }
            (field_error(posted, days))
        }
    }
}

/// The Capture button of a held card authorization (a POST with the session's CSRF
/// token); its accessible name names the order.
pub fn capture_button(t: &Texts, mall_id: &str, order_id: &str, csrf: &str) -> Markup {
    let action = crate::urls::path(&["settings", mall_id, "payments", order_id, "capture"]);
    html! {
        form.inline.capture method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" aria-label=(format!("{} {order_id}", t.capture)) { (t.capture) }
        }
    }
}

/// The CSV export of the same filter (from the newest).
fn csv_link(base: &str, query: &[(String, String)]) -> String {
    let start = format!("{base}/payments.csv?");
    let mut link = url::form_urlencoded::Serializer::for_suffix(start.clone(), start.len());
    for (k, v) in query.iter().filter(|(k, _)| k != "after" && k != "lang") {
        link.append_pair(k, v);
    }
    link.finish()
}

/// The same filter, starting after `next`.
fn next_link(query: &[(String, String)], next: &str) -> String {
    let mut link = url::form_urlencoded::Serializer::for_suffix(String::from("?"), 1);
    for (k, v) in query.iter().filter(|(k, _)| k != "after" && k != "lang") {
        link.append_pair(k, v);
    }
    link.append_pair("after", next);
    link.finish()
}

/// An error page: `message` says what happened and what to do.
pub fn error(lang: &str, message: &str) -> Markup {
    let t = texts(lang);
    layout(
        t,
        &t.error_title,
        html! {
            header { h1 { (t.title) } }
            main { section { h2 { (t.error_title) } p #error { (message) } } }
        },
    )
}
