//! The settings site's use cases (PROTOCOL.md §12, "Settings site"): what the page
//! shows (`view`), saving the KOMOJU settings (`komoju_form`: a key is checked with
//! KOMOJU before it is stored), turning a shop's payment gateway and external-checkout
//! script tag on and off at Cafe24 ([`registration`]), the webhook test ([`webhook`]),
//! disconnecting (`disconnect`), the mall's payments (`payments`) and an order's page
//! ([`order_page`]).
//!
//! Registrations at Cafe24 are recorded before and after each call
//! ([`Registration`](crate::db::merchants::Registration)): a call that fails halfway
//! leaves `registering` or `unregistering`, and the next try first removes whatever the
//! lost call may have created, so nothing is registered twice.
//!
//! Every request's session must be of the mall's current session generation (a
//! disconnect ends them all), and only a representative operator's session (`P`) may
//! post a form ([`session`]); a write that enables anything checks again, in its
//! transaction, that the session is current and the mall connected, so no write
//! re-enables a mall that was disconnected meanwhile. A call Cafe24 refuses while the mall
//! is still installed (a scope missing) is shown to the merchant with the permission to
//! add ([`refusal`]).
//!
//! This module never renders a page (`routes::settings_pages` does) and never decides a
//! Cafe24 or KOMOJU wire rule (`cafe24/`, `komoju/` do).

pub mod capture;
pub mod disconnect;
pub mod komoju_form;
pub mod merchant_keys;
pub mod order_page;
pub mod payments;
pub mod refusal;
pub mod registration;
pub mod session;
pub mod shops;
pub mod view;
pub mod webhook;

pub use capture::{capture, CaptureAsked};
pub use disconnect::disconnect;
pub use komoju_form::{save_komoju, KomojuForm};
pub use order_page::{order_page, send_again, OrderPageView};
pub use payments::{payments, PaymentsQuery, PaymentsView};
pub use registration::{set_gateway, set_script};
pub use session::authorize;
pub use view::{view, PaymentTypeView, SettingsView, ShopView};
pub use webhook::{test_webhook, WEBHOOK_EVENTS};

use crate::db::DbError;

/// A field of the KOMOJU form that is wrong, and why: the page shows the catalogue's
/// message `message` (`field-…` in `locales/*/settings.ftl`, with `$value`) under the
/// field whose name and id is `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `secret_key`, `webhook_secret`, `payment_types`, `cancel_mode` or `locale`.
    pub field: &'static str,
    /// The message's catalogue id, e.g. `field-secret-key-format`.
    pub message: &'static str,
    /// What the message names (a payment type), empty when nothing.
    pub value: String,
}

impl FieldError {
    /// `field` is wrong for the reason `message` names.
    pub fn wrong(field: &'static str, message: &'static str) -> SiteError {
        SiteError::Field(FieldError {
            field,
            message,
            value: String::new(),
        })
    }
}

/// Why a settings request was refused or failed; each is a page with its status.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// No session cookie, or an expired or foreign one (401).
    #[error("your session has ended; open the app again from the Cafe24 admin")]
    NoSession,
    /// A session of another mall, or a form without this session's CSRF token (403).
    #[error("this request is not allowed for this session")]
    Forbidden,
    /// A form posted by a sub-operator's session: only the representative operator may
    /// change the settings (403).
    #[error(
        "only the mall's representative operator can change these settings; you can view them"
    )]
    ReadOnly,
    /// Cafe24 refused a call while the app is still installed: the message says what it
    /// refused and which permission to add (502). Nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The mall has no tokens (never installed, or disconnected) (403).
    #[error("the app is not connected to this mall; open it again from the Cafe24 admin")]
    NotConnected,
    /// A form field is wrong; nothing was saved (422). The message names the field.
    #[error("{0}")]
    Form(String),
    /// A field of the KOMOJU form is wrong; nothing was saved (422). The page shows the
    /// message under that field.
    #[error("{} is not valid ({})", .0.field, .0.message)]
    Field(FieldError),
    /// The shop is not one of the mall's (404).
    #[error("no such shop in this mall")]
    UnknownShop,
    /// No such order in this mall, whether missing or another mall's (404), or no such
    /// notification of that order.
    #[error("no such order in this mall")]
    UnknownOrder,
    /// Cafe24 or KOMOJU failed; what was recorded says how far it got (502).
    #[error("{0}")]
    Upstream(String),
    /// The database is unreachable or busy (503).
    #[error("the service is temporarily unavailable; try again in a moment")]
    Unavailable,
    /// Anything else; the cause is in the log, never on the page (500).
    #[error("internal error")]
    Internal,
}

impl SiteError {
    /// Every variant whose text is fixed (the others carry their own message).
    pub const FIXED: [SiteError; 8] = [
        SiteError::NoSession,
        SiteError::Forbidden,
        SiteError::ReadOnly,
        SiteError::NotConnected,
        SiteError::UnknownShop,
        SiteError::UnknownOrder,
        SiteError::Unavailable,
        SiteError::Internal,
    ];

    /// A stable name of the refusal (`no-session`, `read-only`…): the page shows the
    /// catalogue's `site-error-<code>` in its language when there is one (the fixed
    /// texts), else the English message (`Form`, `Refused`, `Upstream` carry their own).
    pub fn code(&self) -> &'static str {
        match self {
            SiteError::NoSession => "no-session",
            SiteError::Forbidden => "forbidden",
            SiteError::ReadOnly => "read-only",
            SiteError::Refused(_) => "refused",
            SiteError::NotConnected => "not-connected",
            SiteError::Form(_) => "form",
            SiteError::Field(_) => "field",
            SiteError::UnknownShop => "unknown-shop",
            SiteError::UnknownOrder => "unknown-order",
            SiteError::Upstream(_) => "upstream",
            SiteError::Unavailable => "unavailable",
            SiteError::Internal => "internal",
        }
    }

    /// The HTTP status of the page.
    pub fn status(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode as S;
        match self {
            SiteError::NoSession => S::UNAUTHORIZED,
            SiteError::Forbidden | SiteError::NotConnected | SiteError::ReadOnly => S::FORBIDDEN,
            SiteError::Refused(_) => S::BAD_GATEWAY,
            SiteError::Form(_) | SiteError::Field(_) => S::UNPROCESSABLE_ENTITY,
            SiteError::UnknownShop | SiteError::UnknownOrder => S::NOT_FOUND,
            SiteError::Upstream(_) => S::BAD_GATEWAY,
            SiteError::Unavailable => S::SERVICE_UNAVAILABLE,
            SiteError::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A database failure while `context`: logged, shown as unavailable (503) or internal.
fn db_error(context: &str, e: DbError) -> SiteError {
    log::error!("{context}: {e}");
    if e.is_unavailable() {
        SiteError::Unavailable
    } else {
        SiteError::Internal
    }
}
