//! The order domain (PROTOCOL.md §5): [`state`], the pure state machine and notice
//! table, and [`Flow`], which route family an order came through. Nothing here reads a
//! database or talks to anyone: applying a fact in a transaction is
//! [`crate::order_updates`], the `key` naming an order is [`crate::keys::order`].

pub mod state;

/// Which route family an order came through (the `orders.flow` column).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// §6.1: Cafe24 reads the result with `status`.
    Sync,
    /// §6.2: Cafe24 hears the result at `return_noty_url`.
    Async,
    /// External checkout (§6.3): the mall front's button; Cafe24 hears the result at the
    /// reservation's `return_notification_url`.
    External,
}

impl Flow {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Sync => "sync",
            Flow::Async => "async",
            Flow::External => "external",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Flow> {
        [Flow::Sync, Flow::Async, Flow::External]
            .into_iter()
            .find(|f| f.as_str() == s)
    }

    /// The path of the callback KOMOJU returns the buyer to.
    pub fn callback_path(self) -> &'static str {
        match self {
            Flow::Sync => "/api/synchronous-checkout/checkout/callback",
            Flow::Async => "/api/asynchronous-checkout/checkout/callback",
            Flow::External => "/api/external-checkout/order/callback",
        }
    }
}
