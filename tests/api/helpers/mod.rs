//! Test harness: spawns the service on port 0 against a fresh database and a KOMOJU
//! sandbox on its own port, with a controllable clock and helpers per endpoint.
//!
//! - this file: the backends (`Backend`, `both_backends!`) and the per-test database;
//! - `app`: the service under test (`TestApp`) and the stand-ins it talks to;
//! - `logs`: every log line of the test binary;
//! - `cafe24`: what Cafe24 sends (signed checkout and cancellation fields) and its calls;
//! - `receiver`: a fake Cafe24 that records the service's notifications;
//! - `komoju`: what KOMOJU sends (signed webhooks) and what it recorded;
//! - `outbox`: driving the notification outbox to idle;
//! - `process`: the real binary in a process of its own.

use std::collections::HashMap;
use std::net::TcpListener;

use actix_web::{web, App, HttpServer};
use base64::Engine;
use cafe24_komoju::app::cli::{self, Cli};
use cafe24_komoju::app::settings::Settings;
use cafe24_komoju::app::startup::Application;
use cafe24_komoju::clock::Clock;
use cafe24_komoju::db::{self, orders::OrderRow};
use cafe24_komoju::services::Services;
use cafe24_komoju_sandbox::{Cafe24App, Cafe24Sandbox, Sandbox};
use clap::Parser;
use diesel::prelude::*;
use hmac::{Hmac, Mac};

pub use crate::merchant_fixture::MerchantAdd;

mod app;
mod cafe24;
mod komoju;
mod logs;
mod outbox;
mod process;
mod receiver;

pub use app::*;
pub use cafe24::*;
pub use komoju::*;
pub use logs::*;
pub use process::*;
pub use receiver::*;

pub const SERVICE_KEY: &str = "test-service-key";
pub const CLIENT_ID: &str = "test-client-id";
pub const CLIENT_SECRET: &str = "test-cafe24-client-secret";
pub const APP_SECRET: &str = "test-app-secret-0123456789abcdef-0123456789";
/// The webhook credential Cafe24 sends in `x-api-key` (`CAFE24_WEBHOOK_API_KEY`).
pub const WEBHOOK_API_KEY: &str = "test-cafe24-webhook-api-key";
pub const MALL: &str = "demomall";
pub const RETURN_URL: &str =
    "https://demomall.cafe24shop.com/Pay/Recv/openpg/PayReceiveRtnPage.php";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL at `TEST_POSTGRES_URL`. Only called by tests compiled with the
    /// `test_postgres` cfg (build.rs sets it when the variable is set at build time);
    /// without it those tests are `#[ignore]`d with the reason, never passed unrun.
    pub fn postgres() -> Backend {
        cafe24_komoju::db::init_tls();
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Backend::Postgres(url),
            _ => panic!(
                "TEST_POSTGRES_URL was set when the tests were built but is not set now: \
                 set it again (or unset it and rebuild to skip the PostgreSQL variants)"
            ),
        }
    }
}

/// Generates `NAME::sqlite` and `NAME::postgres` tests from `async fn NAME(Backend)`;
/// the `postgres` one is ignored, with the reason, unless `TEST_POSTGRES_URL` was set at
/// build time.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[actix_web::test]
            #[cfg_attr(not(test_postgres), ignore = "PostgreSQL: set TEST_POSTGRES_URL (then cargo rebuilds the tests)")]
            async fn postgres() {
                super::$name($crate::helpers::Backend::postgres()).await
            }
        }
    )*};
}

/// A database that lives as long as the test: a temporary SQLite file, or a fresh
/// PostgreSQL schema (dropped at the end).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub fn new(backend: &Backend) -> TestDb {
        cafe24_komoju::db::init_tls();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_schema: None,
                }
            }
            Backend::Postgres(admin) => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(admin)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_POSTGRES_URL: {e}"));
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("create schema: {e}"));
                let sep = if admin.contains('?') { '&' } else { '?' };
                // The schema also names the connections (`application_name`), so a test
                // can find and cut its service's own connections.
                let url = format!(
                    "{admin}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"
                );
                TestDb {
                    url,
                    _dir: None,
                    pg_schema: Some((admin.clone(), schema)),
                }
            }
        }
    }
}

impl TestDb {
    /// The PostgreSQL schema (also the connections' `application_name`), if PostgreSQL.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg_schema.as_ref().map(|(_, schema)| schema.as_str())
    }

    /// The admin URL (`TEST_POSTGRES_URL`), if PostgreSQL.
    pub fn pg_admin(&self) -> Option<&str> {
        self.pg_schema.as_ref().map(|(admin, _)| admin.as_str())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &self.pg_schema {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn);
            }
        }
    }
}
