//! cafe24-komoju: a Cafe24 PG app that takes payments through KOMOJU hosted-page
//! sessions. The wire contract is `shared/PROTOCOL.md`; `docs/architecture.md` maps it
//! to these modules:
//!
//! - one module per external system: [`cafe24`] (requests, `hash_data`, `partner_id`,
//!   callback URLs) and [`komoju`] (the REST client); the KOMOJU sandbox that stands in
//!   for KOMOJU in development and tests is the crate `cafe24-komoju-sandbox`
//!   (`crates/sandbox`), mounted by [`startup`] with the default `sandbox` feature and
//!   reached only over HTTP;
//! - one module per route family under [`routes`];
//! - the order state machine, pure and free of I/O: [`order_state`];
//! - the checkout use case shared by the checkout families: [`checkout`]; applying
//!   KOMOJU facts with their notifications in one transaction: [`order_updates`];
//!   delivering those notifications: [`outbox`]; cancellations and refunds, never
//!   twice: [`cancellation`]; the mall front's KOMOJU button: [`external_checkout`];
//! - storage: [`db`]; money: [`money`]; merchants: [`merchant`], [`secrets`];
//! - running it: [`settings`], [`startup`], [`cli`], [`clock`], [`order_token`], [`error`].

pub mod cafe24;
pub mod cancellation;
pub mod checkout;
pub mod cli;
pub mod clock;
pub mod db;
pub mod error;
pub mod external_checkout;
pub mod komoju;
pub mod merchant;
pub mod money;
pub mod order_state;
pub mod order_token;
pub mod order_updates;
pub mod outbox;
pub mod routes;
pub mod secrets;
pub mod settings;
pub mod startup;
pub mod text;
