//! The settings site's pages (PROTOCOL.md §12), as maud templates: every value is
//! escaped by the template engine, the only stylesheet is `static/settings.css` served
//! by this service, no script runs. Japanese for a launch `lang` of `ja…`, English
//! otherwise. A read-only (sub-operator's) page shows the settings without a single
//! form.

use maud::{html, Markup, DOCTYPE};

use crate::db::merchants::Registration;
use crate::install::settings::{SettingsView, ShopView, WEBHOOK_EVENTS};

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/settings/assets/settings.css";
/// The stylesheet.
pub const STYLESHEET: &str = include_str!("../../static/settings.css");

/// Every text of the site, in one language.
pub struct Texts {
    pub lang: &'static str,
    pub title: &'static str,
    pub mall: &'static str,
    pub test_mode: &'static str,
    pub live_mode: &'static str,
    pub not_set_up: &'static str,
    pub komoju: &'static str,
    pub komoju_help: &'static str,
    pub secret_key: &'static str,
    pub webhook_secret: &'static str,
    pub saved_hint: &'static str,
    pub not_saved: &'static str,
    pub payment_types: &'static str,
    pub cancel_mode: &'static str,
    pub cancel_sync: &'static str,
    pub cancel_async: &'static str,
    pub locale: &'static str,
    pub review_page: &'static str,
    pub save: &'static str,
    pub shops: &'static str,
    pub shops_help: &'static str,
    pub shop: &'static str,
    pub currency: &'static str,
    pub gateway: &'static str,
    pub external_checkout: &'static str,
    pub on: &'static str,
    pub off: &'static str,
    pub pending: &'static str,
    pub turn_on: &'static str,
    pub turn_off: &'static str,
    pub retry: &'static str,
    pub webhook: &'static str,
    pub webhook_help: &'static str,
    pub events: &'static str,
    pub last_ping: &'static str,
    pub never: &'static str,
    pub send_test: &'static str,
    pub disconnect: &'static str,
    pub disconnect_help: &'static str,
    pub done: &'static str,
    pub disconnected: &'static str,
    pub disconnected_help: &'static str,
    pub error_title: &'static str,
    pub read_only: &'static str,
}

/// English.
pub const EN: Texts = Texts {
    lang: "en",
    title: "KOMOJU payments",
    mall: "Mall",
    test_mode: "Test mode: payments use your KOMOJU test key; no money moves.",
    live_mode: "Live mode: payments are real.",
    not_set_up: "KOMOJU is not set up yet: save your keys below, then turn a shop on.",
    komoju: "KOMOJU account",
    komoju_help: "Keys are write-only: leave a field empty to keep the saved value. A new secret key is checked with KOMOJU before it is saved.",
    secret_key: "Secret key (sk_live_… or sk_test_…)",
    webhook_secret: "Webhook secret",
    saved_hint: "Saved:",
    not_saved: "Not saved yet",
    payment_types: "Payment types to offer",
    cancel_mode: "Cancellations",
    cancel_sync: "Synchronous (answer Cafe24 at once)",
    cancel_async: "Asynchronous (notify Cafe24 when KOMOJU confirms)",
    locale: "Language of KOMOJU's payment page",
    review_page: "External checkout shows a review page before KOMOJU",
    save: "Save",
    shops: "Shops",
    shops_help: "Turning a shop on registers this app as its payment gateway in Cafe24; the external checkout adds the KOMOJU button to its product and basket pages.",
    shop: "Shop",
    currency: "Currency",
    gateway: "Payment gateway",
    external_checkout: "External checkout",
    on: "On",
    off: "Off",
    pending: "Not confirmed by Cafe24",
    turn_on: "Turn on",
    turn_off: "Turn off",
    retry: "Try again",
    webhook: "KOMOJU webhook",
    webhook_help: "In the KOMOJU dashboard, add a webhook with this URL and your webhook secret, subscribed to these events:",
    events: "Events",
    last_ping: "Last signed ping received:",
    never: "none yet",
    send_test: "Send a test",
    disconnect: "Disconnect",
    disconnect_help: "Removes the payment gateway and the buttons from every shop in Cafe24, deletes the app's access to this mall and stops taking payments. Orders stay.",
    done: "Saved.",
    disconnected: "Disconnected",
    disconnected_help: "This mall no longer takes payments through KOMOJU. Open the app from the Cafe24 admin to connect it again.",
    error_title: "Something went wrong",
    read_only: "Read-only: only the mall's representative operator can change these settings.",
};

/// Japanese.
pub const JA: Texts = Texts {
    lang: "ja",
    title: "KOMOJU 決済",
    mall: "ショップ",
    test_mode: "テストモード：KOMOJU のテスト用キーで決済します。実際の入金はありません。",
    live_mode: "本番モード：実際の決済が行われます。",
    not_set_up: "KOMOJU がまだ設定されていません。下でキーを保存してから、ショップを有効にしてください。",
    komoju: "KOMOJU アカウント",
    komoju_help: "キーは書き込み専用です。空欄のままにすると保存済みの値を使います。新しいシークレットキーは保存前に KOMOJU で確認します。",
    secret_key: "シークレットキー（sk_live_… または sk_test_…）",
    webhook_secret: "Webhook シークレット",
    saved_hint: "保存済み：",
    not_saved: "未保存",
    payment_types: "提供する決済方法",
    cancel_mode: "キャンセル",
    cancel_sync: "同期（Cafe24 にすぐ回答）",
    cancel_async: "非同期（KOMOJU の確認後に Cafe24 へ通知）",
    locale: "KOMOJU 決済ページの言語",
    review_page: "外部チェックアウトで KOMOJU の前に確認ページを表示する",
    save: "保存",
    shops: "ショップ",
    shops_help: "ショップを有効にすると、このアプリが Cafe24 の決済代行として登録されます。外部チェックアウトは商品ページとカートに KOMOJU ボタンを追加します。",
    shop: "ショップ",
    currency: "通貨",
    gateway: "決済代行",
    external_checkout: "外部チェックアウト",
    on: "有効",
    off: "無効",
    pending: "Cafe24 の確認待ち",
    turn_on: "有効にする",
    turn_off: "無効にする",
    retry: "再試行",
    webhook: "KOMOJU Webhook",
    webhook_help: "KOMOJU ダッシュボードで、この URL と Webhook シークレットを使い、次のイベントを購読する Webhook を追加してください：",
    events: "イベント",
    last_ping: "最後に受信した署名付き ping：",
    never: "まだありません",
    send_test: "テスト送信",
    disconnect: "接続を解除",
    disconnect_help: "すべてのショップの決済代行登録とボタンを Cafe24 から削除し、このショップへのアプリのアクセスを削除して、決済の受付を停止します。注文は残ります。",
    done: "保存しました。",
    disconnected: "接続を解除しました",
    disconnected_help: "このショップでは KOMOJU による決済を受け付けません。再接続するには Cafe24 管理画面からアプリを開いてください。",
    error_title: "エラーが発生しました",
    read_only: "閲覧のみ：設定を変更できるのはショップの代表運営者だけです。",
};

/// The texts for a launch `lang`.
pub fn texts(lang: &str) -> &'static Texts {
    if lang.starts_with("ja") {
        &JA
    } else {
        &EN
    }
}

fn layout(t: &Texts, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body { (body) }
        }
    }
}

fn state_cell(t: &Texts, state: Registration) -> Markup {
    let (class, label) = match state {
        Registration::On => ("state on", t.on),
        Registration::Off => ("state off", t.off),
        Registration::Registering | Registration::Unregistering => ("state pending", t.pending),
    };
    html! { span class=(class) { (label) } }
}

/// A one-button form posting `on` and the CSRF token to `action`.
fn switch(t: &Texts, action: &str, csrf: &str, id: &str, state: Registration) -> Markup {
    let (on, label, class) = match state {
        Registration::On => ("0", t.turn_off, "secondary"),
        Registration::Off => ("1", t.turn_on, ""),
        Registration::Registering => ("1", t.retry, ""),
        Registration::Unregistering => ("0", t.retry, "secondary"),
    };
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="on" value=(on);
            button type="submit" id=(id) class=(class) { (label) }
        }
    }
}

/// The KOMOJU form of the representative operator's page.
fn komoju_form(t: &Texts, view: &SettingsView, base: &str) -> Markup {
    html! {
        form method="post" action=(format!("{base}/komoju")) {
            input type="hidden" name="csrf" value=(view.csrf);
            label for="secret_key" { (t.secret_key) }
            input type="password" id="secret_key" name="secret_key" autocomplete="off"
                placeholder=(view.secret_key_hint.as_deref().unwrap_or(t.not_saved));
            p.help #secret-key-hint {
                @match &view.secret_key_hint { Some(h) => { (t.saved_hint) " " code { (h) } }, None => (t.not_saved) }
            }
            label for="webhook_secret" { (t.webhook_secret) }
            input type="password" id="webhook_secret" name="webhook_secret" autocomplete="off"
                placeholder=(view.webhook_secret_hint.as_deref().unwrap_or(t.not_saved));
            p.help #webhook-secret-hint {
                @match &view.webhook_secret_hint { Some(h) => { (t.saved_hint) " " code { (h) } }, None => (t.not_saved) }
            }
            label { (t.payment_types) }
            @match &view.payment_types {
                Ok(types) => {
                    input type="hidden" name="payment_types_shown" value="1";
                    @for pt in types {
                        label.inline {
                            input type="checkbox" name="payment_types" value=(pt.type_slug)
                                id=(format!("pt-{}", pt.type_slug)) checked[pt.selected];
                            (if t.lang == "ja" { &pt.name_ja } else { &pt.name_en })
                        }
                    }
                }
                Err(why) => p.help #payment-types-missing { (why) },
            }
            label for="cancel_mode" { (t.cancel_mode) }
            select id="cancel_mode" name="cancel_mode" {
                option value="sync" selected[view.cancel_mode == "sync"] { (t.cancel_sync) }
                option value="async" selected[view.cancel_mode == "async"] { (t.cancel_async) }
            }
            label for="locale" { (t.locale) }
            select id="locale" name="locale" {
                option value="ja" selected[view.locale == "ja"] { "日本語" }
                option value="en" selected[view.locale == "en"] { "English" }
                option value="ko" selected[view.locale == "ko"] { "한국어" }
            }
            p {
                label.inline {
                    input type="checkbox" id="external_review" name="external_review" value="1" checked[view.external_review];
                    (t.review_page)
                }
            }
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
                            span.tag { (if t.lang == "ja" { &pt.name_ja } else { &pt.name_en }) } " "
                        }
                    }
                    Err(why) => span #payment-types-missing { (why) },
                }
            }
            dt { (t.cancel_mode) }
            dd { (if view.cancel_mode == "async" { t.cancel_async } else { t.cancel_sync }) }
            dt { (t.locale) } dd { (view.locale) }
            dt { (t.review_page) } dd { (if view.external_review { t.on } else { t.off }) }
        }
    }
}

/// The settings page. `notice` and `error` show above the sections.
pub fn settings(view: &SettingsView, notice: Option<&str>, error: Option<&str>) -> Markup {
    let t = texts(&view.lang);
    let base = format!("/settings/{}", view.mall_id);
    let body = html! {
        header {
            h1 { (t.title) }
            span.mall { (t.mall) " " strong #mall-id { (view.mall_id) } }
        }
        main {
            @match view.mode {
                Some("live") => div.banner.live #mode { (t.live_mode) },
                Some(_) => div.banner.test #mode { (t.test_mode) },
                None => div.banner.none #mode { (t.not_set_up) },
            }
            @if !view.may_change { div.notice #read-only { (t.read_only) } }
            @if let Some(n) = notice { div.notice #notice { (n) } }
            @if let Some(e) = error { div.error #error { (e) } }

            section #komoju {
                h2 { (t.komoju) }
                p.help { (t.komoju_help) }
                @if view.may_change { (komoju_form(t, view, &base)) } @else { (komoju_summary(t, view)) }
            }
            (shops_section(t, view, &base))
            (webhook_section(t, view, &base))
            @if view.may_change {
                section #disconnect-section {
                    h2 { (t.disconnect) }
                    p.help { (t.disconnect_help) }
                    form method="post" action=(format!("{base}/disconnect")) {
                        input type="hidden" name="csrf" value=(view.csrf);
                        button type="submit" .danger #disconnect { (t.disconnect) }
                    }
                }
            }
        }
    };
    layout(t, t.title, body)
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
                Ok(shops) => table {
                    thead { tr {
                        th { (t.shop) } th { (t.currency) } th { "partner_id" }
                        th { (t.gateway) } th { (t.external_checkout) }
                    } }
                    tbody { @for s in shops { (shop_row(t, view, base, s)) } }
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
                @match view.last_ping { Some(at) => strong { (at.format("%Y-%m-%d %H:%M:%S UTC").to_string()) }, None => (t.never) }
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
        t.disconnected,
        html! {
            header { h1 { (t.title) } }
            main { section { h2 #disconnected { (t.disconnected) } p { (t.disconnected_help) } } }
        },
    )
}

/// An error page: `message` says what happened and what to do.
pub fn error(lang: &str, message: &str) -> Markup {
    let t = texts(lang);
    layout(
        t,
        t.error_title,
        html! {
            header { h1 { (t.title) } }
            main { section { h2 { (t.error_title) } p #error { (message) } } }
        },
    )
}
