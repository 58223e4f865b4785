//! cafe24-komoju: a Cafe24 PG app that takes payments through KOMOJU hosted-page
//! sessions. The wire contract is `shared/PROTOCOL.md`; `docs/architecture.md` maps each
//! of its rules to the one module that owns it.
//!
//! Dependencies point one way, and the layout shows it:
//!
//! - [`routes`]: HTTP only: extract, call one use case, shape the reply;
//! - use cases: [`checkout`] (start, buyer returned), [`external_checkout`],
//!   [`cancellation`], [`capture`] (manual capture), [`webhooks`] (the §8 pipeline), [`notifications`] (the outbox
//!   worker), [`reconciliation`] (reading from KOMOJU what no webhook said), [`operator`]
//!   (the operator API); they take
//!   the [`services::Services`] they need, never the composition root;
//! - domain: [`orders`] (the pure state machine, applying a fact in one transaction,
//!   the order key), [`money`], [`merchant`];
//! - adapters: [`cafe24`] (every Cafe24 wire rule), [`komoju`] (client, wire types,
//!   webhooks), [`db`] (queries), [`secrets`], [`clock`], [`text`], [`error`] (the §3
//!   envelope);
//! - [`app`]: settings, the composition root that builds the services and the server,
//!   and the command line. Nothing below it imports it.
//!
//! The KOMOJU sandbox that stands in for KOMOJU in development and tests is the crate
//! `cafe24-komoju-sandbox` (`crates/sandbox`), mounted by [`app::startup`] with the
//! default `sandbox` feature and reached only over HTTP.

pub mod app;
pub mod cafe24;
pub mod cancellation;
pub mod capture;
pub mod checkout;
pub mod clock;
pub mod db;
pub mod duplicates;
pub mod error;
pub mod external_checkout;
pub mod i18n;
pub mod install;
pub mod keys;
pub mod komoju;
pub mod merchant;
pub mod metrics;
pub mod money;
pub mod notifications;
pub mod operator;
pub mod order_updates;
pub mod orders;
pub mod reconciliation;
pub mod retention;
pub mod routes;
pub mod secrets;
pub mod services;
pub mod text;
pub mod upstream;
pub mod urls;
pub mod webhooks;
