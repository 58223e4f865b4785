//! The settings site speaks Japanese, Korean and English (issue 20, item 3): Cafe24's
//! launch `lang` first, a switch on every page that the browser keeps, then the
//! browser's `Accept-Language`.

use crate::both_backends;
use cafe24_komoju_sandbox::Fault;

use crate::helpers::*;
use crate::install::{checkout, merchant_row, set_cookie, Browser, SECRET_KEY};

both_backends!(
    a_korean_launch_gets_korean_pages_and_the_switch_is_kept,
    a_page_without_a_session_speaks_the_browsers_language,
    the_buyers_retry_page_speaks_the_browsers_language,
    komojus_page_speaks_the_checkouts_lang_then_the_shops_then_the_merchants
);

async fn get(app: &TestApp, path: &str, cookies: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}{path}", app.address))
        .header("Cookie", cookies);
    if let Some(accept) = accept {
        request = request.header("Accept-Language", accept);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn a_korean_launch_gets_korean_pages_and_the_switch_is_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::install(&app, "newmall", "ko_KR").await;
    let (status, page) = browser.page().await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<html lang="ko">"#), "{page}");
    assert!(page.contains("KOMOJU가 아직 설정되지 않았습니다"), "{page}");
    assert!(
        page.contains(r#"href="?lang=ja""#) && page.contains(r#"href="?lang=en""#),
        "a switch to the other languages: {page}"
    );

    // The switch: English now, and a cookie that keeps it.
    let session = format!("cafe24_komoju_session={}", browser.session);
    let switched = get(&app, "/settings/newmall?lang=en", &session, Some("ko")).await;
    assert_eq!(switched.status(), 200);
    let kept = set_cookie(&switched, "cafe24_komoju_lang").unwrap_or_default();
    assert_eq!(kept, "en");
    let page = switched.text().await.unwrap_or_default();
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("KOMOJU is not set up yet"), "{page}");

    let cookies = format!("{session}; cafe24_komoju_lang={kept}");
    let page = get(&app, "/settings/newmall", &cookies, Some("ko"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        page.contains(r#"<html lang="en">"#),
        "the choice outlives the launch's lang"
    );

    // The switch on the payments page holds on the next page too (Japanese now).
    let switched = get(
        &app,
        "/settings/newmall/payments?lang=ja",
        &session,
        Some("ko"),
    )
    .await;
    assert_eq!(switched.status(), 200);
    let kept = set_cookie(&switched, "cafe24_komoju_lang").unwrap_or_default();
    assert_eq!(kept, "ja");
    let cookies = format!("{session}; cafe24_komoju_lang={kept}");
    let page = get(&app, "/settings/newmall", &cookies, Some("ko"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(page.contains(r#"<html lang="ja">"#), "{page}");

    // A language the site does not speak changes nothing.
    let page = get(&app, "/settings/newmall?lang=zz", &session, None)
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(page.contains(r#"<html lang="ko">"#), "{page}");
}

async fn a_page_without_a_session_speaks_the_browsers_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let refused = get(
        &app,
        "/settings/newmall",
        "",
        Some("ko-KR,ko;q=0.9,en;q=0.5"),
    )
    .await;
    assert_eq!(refused.status(), 401);
    let page = refused.text().await.unwrap_or_default();
    assert!(page.contains(r#"<html lang="ko">"#), "{page}");
    assert!(page.contains("문제가 발생했습니다"), "{page}");

    let page = get(&app, "/settings/newmall", "", None)
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        page.contains(r#"<html lang="en">"#),
        "English when nothing says otherwise"
    );
}

async fn the_buyers_retry_page_speaks_the_browsers_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app
        .sync_checkout_ok(&checkout_fields("20261206-0000900", "3400", "JPY"))
        .await;
    let callback = app.press(&url, "credit_card").await;
    // KOMOJU fails the service's read of the session: the buyer is asked to reload.
    app.sandbox.fail_next(1, Fault::InternalError);
    let page = app
        .client
        .get(&callback)
        .header("Accept-Language", "ja-JP,ja;q=0.9")
        .send()
        .await
        .unwrap_or_else(|e| panic!("callback: {e}"));
    assert_eq!(page.status(), 502);
    let body = page.text().await.unwrap_or_default();
    assert!(body.contains(r#"<html lang="ja">"#), "{body}");
    assert!(body.contains("決済をまだ確認できていません"), "{body}");
    assert!(
        !body.contains("internal_server_error"),
        "KOMOJU's answer is for the log: {body}"
    );

    // Reloading once KOMOJU answers finishes the callback.
    let again = app.get(&callback).await;
    assert_eq!(again.status(), 302);
}

/// The stand-in's one shop of `newmall`, in `language_code`.
fn newmall_shop(language_code: &str) -> cafe24_komoju_sandbox::ShopSpec {
    cafe24_komoju_sandbox::ShopSpec {
        shop_no: 1,
        shop_name: "newmall shop".into(),
        currency_code: "JPY".into(),
        language_code: language_code.into(),
        primary_domain: "newmall.cafe24.com".into(),
        pc_skin_no: 1,
        mobile_skin_no: 2,
        timezone: "Asia/Seoul".into(),
    }
}

/// The `default_locale` of the KOMOJU session a synchronous checkout of `newmall`
/// (with Cafe24's `lang` when given) created.
async fn hosted_page_locale(app: &TestApp, order_id: &str, lang: Option<&str>) -> String {
    let public_ref = merchant_row(app, "newmall")
        .map(|m| m.public_ref)
        .unwrap_or_default();
    let mut fields = checkout(&format!("newmall:1:{public_ref}"), order_id);
    if let Some(lang) = lang {
        set(&mut fields, "lang", lang);
    }
    let url = app.sync_checkout_ok(&fields).await;
    let session = url.rsplit('/').next().unwrap_or_default();
    let json = app.sandbox.session_json(session).unwrap_or_default();
    json["default_locale"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// KOMOJU's hosted page speaks the checkout request's `lang` (Cafe24's `en_US`), else
/// the shop's language as Cafe24 lists it (`ko_KR`), else the merchant's setting (`ja`).
async fn komojus_page_speaks_the_checkouts_lang_then_the_shops_then_the_merchants(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.cafe24.set_shops("newmall", vec![newmall_shop("ko_KR")]);
    let mut browser = Browser::install(&app, "newmall", "ja_JP").await;
    assert_eq!(
        browser.save_keys(SECRET_KEY).await.0,
        303,
        "keys, locale ja"
    );
    let (status, _) = browser.post("/shops/1/gateway", &[("on", "1")]).await;
    assert_eq!(status, 303);

    assert_eq!(
        hosted_page_locale(&app, "NEW-0001", Some("en_US")).await,
        "en"
    );
    assert_eq!(hosted_page_locale(&app, "NEW-0002", None).await, "ko");

    // A shop in a language KOMOJU's page does not speak: the merchant's setting.
    app.cafe24.set_shops("newmall", vec![newmall_shop("zh_CN")]);
    assert_eq!(browser.page().await.0, 200, "the shops listed again");
    assert_eq!(hosted_page_locale(&app, "NEW-0003", None).await, "ja");
}
