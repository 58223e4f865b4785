//! The settings site's KOMOJU form (issue 20, walk-through): a wrong field's message sits
//! under that field in the page's language (`aria-describedby`, `aria-invalid`), a typed
//! secret survives an error in another field, and a shop switch comes back to its row.

use crate::both_backends;
use crate::helpers::*;
use crate::install::{csrf_of, merchant_row, Browser, SECRET_KEY};

both_backends!(
    a_wrong_field_is_marked_under_it_in_the_pages_language,
    a_typed_secret_key_survives_an_error_in_another_field,
    a_shop_switch_comes_back_to_its_row
);

/// The KOMOJU form with a webhook secret too short for the rules (8 to 200 characters).
async fn post_short_webhook_secret(browser: &mut Browser<'_>) -> (u16, String) {
    browser
        .post(
            "/komoju",
            &[
                ("secret_key", SECRET_KEY),
                ("webhook_secret", "short"),
                ("cancel_mode", "async"),
                ("locale", "ko"),
            ],
        )
        .await
}

async fn a_wrong_field_is_marked_under_it_in_the_pages_language(backend: Backend) {
    let cases = [
        ("ko_KR", "웹훅 시크릿은 8~200자여야 합니다."),
        ("en_US", "The webhook secret must be 8 to 200 characters."),
    ];
    for (lang, message) in cases {
        let app = spawn_app(backend.clone()).await;
        let mut browser = Browser::install(&app, "newmall", lang).await;
        let (status, page) = post_short_webhook_secret(&mut browser).await;
        assert_eq!(status, 422, "{page}");
        let under = format!(r#"<p class="field-error" id="webhook_secret-error">{message}</p>"#);
        assert!(page.contains(&under), "{lang}: {under} in {page}");
        let input = page
            .split(r#"id="webhook_secret""#)
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or_default();
        assert!(input.contains(r#"aria-invalid="true""#), "{input}");
        assert!(
            input.contains(r#"aria-describedby="webhook-secret-hint webhook_secret-error""#),
            "{input}"
        );
        assert!(page.contains(r#"role="alert""#), "a summary at the top");
        assert!(
            !page.contains(r#"id="notice""#),
            "no 'Saved' when nothing was"
        );
        assert_eq!(
            merchant_row(&app, "newmall")
                .map(|m| m.komoju_secret_key)
                .as_deref(),
            Some(""),
            "nothing saved"
        );
    }
}

async fn a_typed_secret_key_survives_an_error_in_another_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::install(&app, "newmall", "ja_JP").await;
    let (status, page) = post_short_webhook_secret(&mut browser).await;
    assert_eq!(status, 422);
    let key_field =
        format!(r#"id="secret_key" name="secret_key" autocomplete="off" value="{SECRET_KEY}""#);
    assert!(page.contains(&key_field), "the typed key is kept: {page}");
    assert!(
        page.contains("Webhook シークレットは 8〜200 文字で入力してください。"),
        "{page}"
    );
    assert!(
        page.contains(r#"<option value="async" selected>"#),
        "the choices as posted"
    );
    // Only on the page answering that POST: the next page shows no typed value.
    let (_, next) = browser.page().await;
    assert!(!next.contains(SECRET_KEY), "{next}");
    assert!(!next.contains("field-error"));
    // No log line holds it.
    for line in log_lines() {
        assert!(
            !line.contains(SECRET_KEY),
            "a secret reached a log line: {line}"
        );
    }
}

async fn a_shop_switch_comes_back_to_its_row(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::install(&app, "newmall", "en_US").await;
    assert_eq!(browser.save_keys(SECRET_KEY).await.0, 303);
    let (_, page) = browser.page().await;
    assert!(!page.contains(r#"id="notice""#), "no 'Saved' before a save");
    let resp = app
        .client
        .post(format!("{}/settings/newmall/shops/1/gateway", app.address))
        .header(
            "Cookie",
            format!("cafe24_komoju_session={}", browser.session),
        )
        .form(&[("csrf", csrf_of(&page).as_str()), ("on", "1")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/settings/newmall?done=gateway#shop-1");
    let (_, page) = browser.page().await;
    assert!(page.contains(r#"<tr id="shop-1">"#), "{page}");
}
