//! The Cafe24 stand-in receives the service's notifications (issue 17 item 11): what Cafe24
//! would have been told, with `hash_data` checked by the stand-in's own code under the
//! app's service key (H3 for payment notices, H4 for `cancelnoty`, PROTOCOL.md §2).

use std::time::Duration;

use cafe24_komoju_sandbox::HashCheck;

use crate::both_backends;
use crate::helpers::*;

const ORDER: &str = "20221206-0000001";
const WAIT: Duration = Duration::from_secs(5);

both_backends!(the_cafe24_stand_in_receives_payment_and_cancel_notices_whose_hash_verifies);

async fn the_cafe24_stand_in_receives_payment_and_cancel_notices_whose_hash_verifies(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.cafe24.set_service_key(SERVICE_KEY);
    let mut fields = checkout_fields(ORDER, "3000", "JPY");
    fields.push((
        "return_noty_url".into(),
        app.cafe24.notification_url("return_noty"),
    ));
    let url = app.async_checkout_ok(&fields).await;
    let callback = app.press(&url, "credit_card").await;
    assert_eq!(app.get(&callback).await.status(), 302);
    app.drain_outbox().await;
    let got = app.cafe24.notifications();
    assert_eq!(got.len(), 1, "{got:?}");
    let paid = &got[0];
    assert_eq!(paid.kind, "return_noty");
    assert_eq!(paid.field("request_type"), Some("payment"));
    assert_eq!(paid.field("payed_tf"), Some("T"));
    assert_eq!(paid.field("order_id"), Some(ORDER));
    assert_eq!(paid.hash, HashCheck::Valid, "{paid:?}");
    let tid = paid.field("tid").unwrap_or_default().to_owned();

    app.route_sandbox_webhooks();
    let mut cancel = cancel_fields(ORDER, &tid, "3000", "JPY");
    cancel.push((
        "cancel_noty_url".into(),
        app.cafe24.notification_url("cancel_noty"),
    ));
    let (status, body) = app.async_cancel(&cancel).await;
    assert_eq!(status, 200, "{body}");
    assert!(app.sandbox.webhooks_idle(WAIT).await);
    app.drain_outbox().await;
    let got = app.cafe24.notifications();
    assert_eq!(got.len(), 2, "{got:?}");
    let cancelled = &got[1];
    assert_eq!(cancelled.kind, "cancel_noty");
    assert_eq!(cancelled.field("request_type"), Some("cancelnoty"));
    assert_eq!(cancelled.field("cancel_amount"), Some("3000"));
    assert_eq!(cancelled.hash, HashCheck::Valid, "{cancelled:?}");

    // Cafe24's answer counts as delivered, and the page lists both.
    assert!(app
        .notifications()
        .await
        .iter()
        .all(|n| n.state == cafe24_komoju::db::notifications::NotificationState::Delivered));
    let page_url = app.cafe24.notification_url("");
    let html = app
        .get(page_url.trim_end_matches('/'))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(
        html.matches("<strong class=\"hash\">valid</strong>")
            .count(),
        2,
        "{html}"
    );
    assert!(html.contains(ORDER) && html.contains("cancelnoty"));
}
