//! Integration tests: the real HTTP server, a real database (SQLite always; PostgreSQL
//! when `TEST_POSTGRES_URL` is set, which CI requires) and the stateful KOMOJU sandbox
//! served on its own loopback port.

mod helpers;
#[path = "../common/merchant.rs"]
mod merchant_fixture;
#[path = "../common/serve.rs"]
mod serve_fixture;

mod asynchronous_checkout;
mod bad_day;
mod cafe24_notifications;
mod cancellation;
mod chaos;
mod cli;
mod explain;
mod external_checkout;
mod field_errors;
mod health;
mod hostile_input;
mod install;
mod install_guards;
mod komoju_truth;
mod languages;
mod manual_capture;
mod metrics;
mod openapi;
mod operator;
mod order_page;
mod overload;
mod payments_page;
mod prepared_statements;
mod processes;
mod reconciliation;
mod retention;
mod seed;
mod shutdown;
mod synchronous_checkout;
mod webhook_card;
