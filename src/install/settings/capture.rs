//! The merchant's Capture button (issue 20, "manual capture"): the session's mall's
//! order, captured in full through [`crate::capture`] (one KOMOJU call however many
//! clicks). An order of another mall, or none, is the same [`SiteError::UnknownOrder`].

use super::{db_error, SiteError};
use crate::capture::{Captured, Capturer};
use crate::keys::session::Session;
use crate::services::Services;

/// What the button did, as the page's notice names it (`capture-<as_str>` texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureAsked {
    /// KOMOJU captured it: the order is paid.
    Captured,
    /// Nothing to capture now: another click is capturing it, or it is no longer an
    /// authorization waiting for its capture.
    NotNow,
    /// KOMOJU refused; its reason is on the order's page, the order stays authorized.
    Refused,
    /// KOMOJU did not answer; the order stays authorized, the button works again.
    Unanswered,
}

impl CaptureAsked {
    /// The `done` value of the page the button returns to.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureAsked::Captured => "captured",
            CaptureAsked::NotNow => "capture-not-now",
            CaptureAsked::Refused => "capture-refused",
            CaptureAsked::Unanswered => "capture-unanswered",
        }
    }
}

/// Captures order `order_id` of the session's mall. Errors: no such order of this mall
/// ([`SiteError::UnknownOrder`], 404), the merchant cannot be loaded, the database.
pub async fn capture(
    app: &Services,
    session: &Session,
    order_id: &str,
) -> Result<CaptureAsked, SiteError> {
    let (mall, id) = (session.mall_id.clone(), order_id.to_owned());
    let order = app
        .db
        .run(move |c| crate::db::orders::find_by_order_id(c, &mall, &id))
        .await
        .map_err(|e| db_error("reading the order to capture", e))?
        .ok_or(SiteError::UnknownOrder)?;
    let merchant = app
        .merchants
        .load(&session.mall_id, None)
        .await
        .map_err(|e| {
            log::warn!("capture for {}: merchant: {e}", session.mall_id);
            SiteError::Upstream("the KOMOJU settings of this mall cannot be used now".into())
        })?;
    let done = crate::capture::capture(app, &merchant, &order.id, Capturer::Merchant)
        .await
        .map_err(|e| db_error("capturing", e))?;
    Ok(match done {
        Captured::Done => CaptureAsked::Captured,
        Captured::NotNow => CaptureAsked::NotNow,
        Captured::Refused(_) => CaptureAsked::Refused,
        Captured::Unanswered => CaptureAsked::Unanswered,
    })
}
