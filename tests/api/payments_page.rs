//! The merchant's payments page (issue 20, item 1): the mall's own orders, newest first,
//! as the shop shows money, filtered, a page at a time by keyset.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::*;
use crate::install::{checkout, installed, merchant_row, Browser};

both_backends!(
    a_mall_sees_its_own_payments_newest_first,
    pages_hold_when_orders_arrive_between_them,
    a_filter_that_is_not_valid_changes_nothing,
    the_csv_holds_the_filtered_list,
    times_are_in_the_shops_zone
);

async fn payments_page(browser: &Browser<'_>, query: &str) -> (u16, String) {
    browser.get(&format!("/payments{query}")).await
}

/// The order ids of a page, top to bottom.
fn listed(page: &str) -> Vec<String> {
    page.split(r#"<td class="order">"#)
        .skip(1)
        .filter_map(|rest| rest.split('>').nth(1))
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_owned)
        .collect()
}

/// `n` paid-or-pending orders of the installed mall, a second apart.
async fn orders(app: &TestApp, partner_id: &str, from: usize, n: usize) {
    for i in from..from + n {
        app.clock.advance(Duration::from_secs(1));
        app.sync_checkout_ok(&checkout(partner_id, &format!("NEW-{i:04}")))
            .await;
    }
}

fn partner_id(app: &TestApp) -> String {
    let public_ref = merchant_row(app, "newmall")
        .map(|m| m.public_ref)
        .unwrap_or_default();
    format!("newmall:1:{public_ref}")
}

async fn a_mall_sees_its_own_payments_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    let partner = partner_id(&app);
    orders(&app, &partner, 1, 3).await;
    // Another mall's order (the demo merchant's) is never listed.
    app.sync_checkout_ok(&checkout_fields("20261206-0000999", "5000", "JPY"))
        .await;

    let (status, page) = payments_page(&browser, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(listed(&page), ["NEW-0003", "NEW-0002", "NEW-0001"]);
    assert!(
        page.contains("¥1,200"),
        "money as the shop shows it: {page}"
    );
    assert!(page.contains("Not paid yet"), "states in words: {page}");

    // Paid: a link to the payment in KOMOJU's dashboard, and the state filter finds it.
    let url = app.sync_checkout_ok(&checkout(&partner, "NEW-0002")).await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(
        app.get(&callback).await.status(),
        302,
        "the buyer back from KOMOJU"
    );
    let (_, page) = payments_page(&browser, "?state=paid").await;
    assert_eq!(listed(&page), ["NEW-0002"]);
    assert!(
        page.contains("https://komoju.com/admin/payments/"),
        "{page}"
    );
    let (_, page) = payments_page(&browser, "?order_id=NEW-0001").await;
    assert_eq!(listed(&page), ["NEW-0001"]);

    // Another mall's session sees nothing of this mall's: the page is refused.
    let foreign = browser
        .app
        .client
        .get(format!("{}/settings/demomall/payments", app.address))
        .header(
            "Cookie",
            format!("cafe24_komoju_session={}", browser.session),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(foreign.status(), 403);
    let body = foreign.text().await.unwrap_or_default();
    assert!(!body.contains("20261206-0000999") && !body.contains("NEW-0001"));
}

async fn pages_hold_when_orders_arrive_between_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    let partner = partner_id(&app);
    orders(&app, &partner, 1, 55).await;

    let (_, first) = payments_page(&browser, "").await;
    let first_ids = listed(&first);
    assert_eq!(first_ids.len(), 50);
    assert_eq!(first_ids[0], "NEW-0055");
    let next = first
        .split(r#"id="next-page" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .unwrap_or_else(|| panic!("no next page: {first}"));

    // Orders arriving now do not shift the second page (OFFSET would repeat five).
    orders(&app, &partner, 56, 5).await;
    let (_, second) = payments_page(&browser, &next).await;
    assert_eq!(
        listed(&second),
        ["NEW-0005", "NEW-0004", "NEW-0003", "NEW-0002", "NEW-0001"]
    );
    assert!(!second.contains("next-page"), "the last page has no next");
}

async fn a_filter_that_is_not_valid_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    for query in [
        "?state=shipped",
        "?shop=0",
        "?from=2026-13-01",
        "?after=x.y",
        "?after=1.%27",
    ] {
        let (status, page) = payments_page(&browser, query).await;
        assert_eq!(status, 422, "{query}: {page}");
        assert!(page.contains("is not valid"), "{query}: {page}");
    }
}

async fn the_csv_holds_the_filtered_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    let partner = partner_id(&app);
    orders(&app, &partner, 1, 3).await;
    let url = app.sync_checkout_ok(&checkout(&partner, "NEW-0002")).await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);

    let (_, page) = payments_page(&browser, "?state=paid").await;
    assert!(
        page.contains(r#"href="/settings/newmall/payments.csv?state=paid""#),
        "{page}"
    );
    let resp = app
        .client
        .get(format!("{}/settings/newmall/payments.csv", app.address))
        .header(
            "Cookie",
            format!("cafe24_komoju_session={}", browser.session),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("csv: {e}"));
    assert_eq!(resp.status(), 200);
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/csv"), "{kind}");
    let body = resp.bytes().await.unwrap_or_default();
    let mut reader = csv::Reader::from_reader(body.as_ref());
    let header: Vec<String> = reader
        .headers()
        .map(|h| h.iter().map(str::to_owned).collect())
        .unwrap_or_default();
    assert_eq!(header[0], "order_id");
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.map(|r| r.iter().map(str::to_owned).collect())
                .unwrap_or_default()
        })
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["NEW-0003", "NEW-0002", "NEW-0001"]);
    let paid = &rows[1];
    assert_eq!(
        (paid[2].as_str(), paid[3].as_str(), paid[4].as_str()),
        ("1200", "JPY", "paid")
    );
    assert!(!paid[6].is_empty(), "the KOMOJU payment id");
}

/// Times are shown in the shop's zone as Cafe24 lists it (the stand-in's shop 1 is in
/// `Asia/Tokyo`): the "last changed" column reads as JST, not UTC.
async fn times_are_in_the_shops_zone(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = installed(&app).await;
    let partner = partner_id(&app);
    orders(&app, &partner, 1, 1).await;
    let stored = app
        .state
        .db
        .run(|c| cafe24_komoju::db::orders::find_by_order_id(c, "newmall", "NEW-0001"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no order"));
    let tokyo = stored.updated_at + chrono::Duration::hours(9);
    let shown = format!("{} JST", tokyo.format("%Y-%m-%d %H:%M"));

    let (status, page) = payments_page(&browser, "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&shown), "{shown} in {page}");
    assert!(!page.contains("(UTC)"), "{page}");
}
