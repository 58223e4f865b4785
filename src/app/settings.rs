//! Settings: read once at start-up from the environment (and a `.env` file when present,
//! loaded by `main`). PROTOCOL.md §11.
//!
//! Variables read here:
//! `APP_ENV`, `DATABASE_URL`, `DATABASE_POOL_SIZE`, `BIND_ADDR`, `PUBLIC_BASE_URL`, `CAFE24_SERVICE_KEY`,
//! `CAFE24_CLIENT_ID`, `CAFE24_ALLOWED_HOSTS`, `KOMOJU_API_BASE`, `KOMOJU_TIMEOUT_SECS`,
//! `APP_SECRET`, `BODY_LIMIT_BYTES`, `BODY_TIMEOUT_SECS`, `ORDER_KEY_TTL_SECS`, `OUTBOX_WORKER`,
//! `OUTBOX_POLL_MS`, `OUTBOX_LEASE_SECS`, `OUTBOX_BATCH`, `NOTIFY_TIMEOUT_SECS`,
//! `RECONCILE_INTERVAL_MS`, `RECONCILE_AFTER_SECS`, `RECONCILE_PENDING_AFTER_SECS`,
//! `RECONCILE_EXPIRY_GRACE_SECS`, `RECONCILE_CAPTURE_WINDOW_SECS`, `RETENTION_DAYS`,
//! `CAFE24_CLIENT_SECRET`, `CAFE24_API_BASE`, `CAFE24_API_VERSION`, `CAFE24_SCOPES`,
//! `CAFE24_LAUNCH_MAX_AGE_SECS`, `CAFE24_TIMEOUT_SECS`, `METRICS_BIND_ADDR`,
//! `MERCHANT_CACHE_SECS`, `CAFE24_WEBHOOK_API_KEY`, `REQUEST_TIMEOUT_SECS`, `HSTS`,
//! `SHUTDOWN_TIMEOUT_SECS`, `MAX_IN_FLIGHT`, `MAX_IN_FLIGHT_WEBHOOKS`.
//! (`RUST_LOG` is env_logger's.)
//!
//! In development every variable has a default; the secrets' defaults are public
//! strings, so `APP_ENV=production` refuses to start while any of them is in use and
//! names the variable. Secret values never appear in `Debug` output or errors.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// The development default of `CAFE24_SERVICE_KEY` (public: never use it for real).
pub const DEV_SERVICE_KEY: &str = "dev-cafe24-service-key";
/// The development default of `CAFE24_CLIENT_ID`.
pub const DEV_CLIENT_ID: &str = "dev-cafe24-client-id";
/// The development default of `CAFE24_CLIENT_SECRET`.
pub const DEV_CLIENT_SECRET: &str = "dev-cafe24-client-secret";
/// Cafe24's Admin API for a mall (PROTOCOL.md §12).
pub const CAFE24_PRODUCTION_API: &str = "https://{mall_id}.cafe24api.com";
/// The Admin API version sent by default.
pub const DEFAULT_CAFE24_API_VERSION: &str = "2026-03-01";
/// Cafe24's guide allows a launch's `timestamp` ±2 h (PROTOCOL.md §12): the largest
/// `CAFE24_LAUNCH_MAX_AGE_SECS` accepted.
pub const LAUNCH_MAX_AGE_LIMIT: u64 = 7200;
/// The scopes asked by default.
pub const DEFAULT_CAFE24_SCOPES: &str =
    "mall.read_application,mall.write_application,mall.read_store,mall.write_store,mall.read_order";
/// The development default of `APP_SECRET`.
pub const DEV_APP_SECRET: &str = "dev-app-secret-change-me-0123456789abcdef";
/// The default of `MAX_IN_FLIGHT`, derived from the figures of docs/benchmarks.md (see
/// docs/decisions.md, "A burst larger than the machine").
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 32;
/// KOMOJU webhooks in flight per core the process may run on: the default of
/// `MAX_IN_FLIGHT_WEBHOOKS` is this many per core ([`default_max_in_flight_webhooks`]),
/// measured (docs/benchmarks.md, "A burst larger than the machine": on one core of its
/// own, 2 against 3 and 4, with arrivals spread as real senders spread them).
pub const WEBHOOKS_IN_FLIGHT_PER_CORE: u64 = 2;
/// The largest `MAX_IN_FLIGHT` (and `MAX_IN_FLIGHT_WEBHOOKS`) accepted.
pub const MAX_IN_FLIGHT_LIMIT: u64 = 10_000;

/// The default of `MAX_IN_FLIGHT_WEBHOOKS` for a process that may run on `cores` cores
/// (as [`std::thread::available_parallelism`] counts them: its CPU affinity and cgroup
/// quota): [`WEBHOOKS_IN_FLIGHT_PER_CORE`] per core, one core at least, at most
/// [`MAX_IN_FLIGHT_LIMIT`]. A webhook is database work alone; past a few per core in
/// flight each further one only waits.
pub fn default_max_in_flight_webhooks(cores: usize) -> u64 {
    let cores = u64::try_from(cores.max(1)).unwrap_or(u64::MAX);
    WEBHOOKS_IN_FLIGHT_PER_CORE
        .saturating_mul(cores)
        .min(MAX_IN_FLIGHT_LIMIT)
}

/// The §10 default allow-list.
pub const DEFAULT_ALLOWED_HOSTS: &str = ".cafe24.com,.cafe24shop.com,.cafe24api.com";
/// KOMOJU's production API.
pub const KOMOJU_PRODUCTION_API: &str = "https://komoju.com/api/v1";

/// `development` (defaults allowed, sandbox available) or `production`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// Why the settings are unusable. Names the variable, never its value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{0} is not valid: {1}")]
    Invalid(&'static str, String),
    #[error("{0} is still the development default; APP_ENV=production refuses to start with it")]
    DevDefaultInProduction(&'static str),
}

/// Where the service talks to KOMOJU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KomojuTarget {
    /// A real KOMOJU API base (`KOMOJU_API_BASE`).
    Api(url::Url),
    /// The built-in sandbox, mounted under `/sandbox/komoju` (development only).
    Sandbox,
}

/// Where the service talks to Cafe24's OAuth and Admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cafe24Target {
    /// `CAFE24_API_BASE`, `{mall_id}` replaced per mall (default
    /// `https://{mall_id}.cafe24api.com`).
    Api(String),
    /// The built-in Cafe24 stand-in, mounted under `/sandbox/cafe24` (development only).
    Sandbox,
}

/// Every setting, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub database_url: String,
    /// Connections to PostgreSQL kept by each process (`DATABASE_POOL_SIZE`, default
    /// 10, 1 to 100); SQLite always has one.
    pub database_pool_size: u32,
    pub bind_addr: String,
    /// Base of the URLs given to KOMOJU and browsers, without trailing slash.
    pub public_base_url: url::Url,
    pub cafe24_service_key: SecretString,
    pub cafe24_client_id: String,
    /// The app's client secret: keys the launch `hmac` and authenticates OAuth calls.
    pub cafe24_client_secret: SecretString,
    pub cafe24: Cafe24Target,
    /// `X-Cafe24-Api-Version`.
    pub cafe24_api_version: String,
    /// The scopes asked at authorization.
    pub cafe24_scopes: String,
    /// How far a launch's `timestamp` may be from now, in seconds (default 3600).
    pub cafe24_launch_max_age_secs: i64,
    /// Timeout of one Cafe24 call (default 10 s).
    pub cafe24_timeout: Duration,
    /// The credential Cafe24 sends in `x-api-key` with every app-lifecycle webhook
    /// (`CAFE24_WEBHOOK_API_KEY`, from the Developer Center): required in production; in
    /// development, unset skips the check (with a warning at start).
    pub cafe24_webhook_api_key: Option<SecretString>,
    /// When set, `/metrics` is served only on this address, not on `bind_addr`.
    pub metrics_bind_addr: Option<String>,
    /// Comma-separated §10 allow-list.
    pub cafe24_allowed_hosts: String,
    pub komoju: KomojuTarget,
    /// Timeout of one KOMOJU call.
    pub komoju_timeout: Duration,
    /// At least 32 bytes.
    pub app_secret: SecretString,
    /// Largest request body accepted, in bytes (default 64 KiB).
    pub body_limit_bytes: usize,
    /// Longest time a whole request body may take to arrive (default 10 s).
    pub body_timeout: Duration,
    /// Lifetime of the `key` tokens given to Cafe24 (default 7 days).
    pub order_key_ttl: Duration,
    /// How long a merchant read and opened is used before it is read again
    /// (`MERCHANT_CACHE_SECS`, default 5, `0` reads it for every request).
    pub merchant_cache_ttl: Duration,
    /// The notification worker: run by `serve` unless `OUTBOX_WORKER=off`.
    pub outbox_worker: bool,
    pub outbox: crate::notifications::OutboxSettings,
    pub reconcile: crate::reconciliation::ReconcileSettings,
    /// Longest time from a request's head to its reply (`REQUEST_TIMEOUT_SECS`, default
    /// 60 s; longer than `BODY_TIMEOUT_SECS`, `KOMOJU_TIMEOUT_SECS` and
    /// `CAFE24_TIMEOUT_SECS`); past it the reply is 503 `unavailable`.
    pub request_timeout: Duration,
    /// `Strict-Transport-Security` on every reply (`HSTS`, `on` or `off`; default on when
    /// `PUBLIC_BASE_URL` is https).
    pub hsts: bool,
    /// How long a SIGTERM'd process finishes what it accepted before it exits
    /// (`SHUTDOWN_TIMEOUT_SECS`, default 25).
    pub shutdown_timeout: Duration,
    /// Requests served at once across all workers (`MAX_IN_FLIGHT`, 1 to 10000, default
    /// [`DEFAULT_MAX_IN_FLIGHT`]); one more is answered 503 `unavailable` with
    /// `Retry-After` at once. `/health`, `/health/ready` and `/metrics` are never refused.
    /// KOMOJU's webhooks are not counted here but in `max_in_flight_webhooks`.
    pub max_in_flight: usize,
    /// KOMOJU webhooks served at once across all workers (`MAX_IN_FLIGHT_WEBHOOKS`, 1 to
    /// 10000, default [`default_max_in_flight_webhooks`] of the process's cores: 4 on
    /// two): work for the database alone, which a few in flight per core saturate; one
    /// more is answered like any refusal above.
    pub max_in_flight_webhooks: usize,
    /// Variables left at a development default, for the start-up warning.
    pub dev_defaults: Vec<&'static str>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests): each
    /// variable with its default, checked; then the timeouts against each other and
    /// production against the development defaults. Errors: [`SettingsError::Invalid`]
    /// naming the variable, never echoing a secret.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let secrets = secrets(&get)?;
        let app_env = app_env(&get)?;
        let bind_addr = get("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let public_base_url =
            get("PUBLIC_BASE_URL").unwrap_or_else(|| format!("http://{bind_addr}"));
        let public_base_url = parse_base_url("PUBLIC_BASE_URL", &public_base_url)?;
        let hsts_default = public_base_url.scheme() == "https";
        let settings = Settings {
            app_env,
            database_url: get("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://data/cafe24-komoju.sqlite3".into()),
            database_pool_size: database_pool_size(&get)?,
            bind_addr,
            public_base_url,
            cafe24_service_key: SecretString::from(secrets.service_key),
            cafe24_client_id: secrets.client_id,
            cafe24_client_secret: SecretString::from(secrets.client_secret),
            cafe24: cafe24_target(&get, app_env)?,
            cafe24_api_version: cafe24_api_version(&get)?,
            cafe24_scopes: cafe24_scopes(&get)?,
            cafe24_launch_max_age_secs: launch_max_age(&get)?,
            cafe24_webhook_api_key: get("CAFE24_WEBHOOK_API_KEY").map(SecretString::from),
            cafe24_timeout: Duration::from_secs(parse_num(&get, "CAFE24_TIMEOUT_SECS", 10)?),
            metrics_bind_addr: get("METRICS_BIND_ADDR"),
            cafe24_allowed_hosts: get("CAFE24_ALLOWED_HOSTS")
                .unwrap_or_else(|| DEFAULT_ALLOWED_HOSTS.into()),
            komoju: komoju_target(&get, app_env)?,
            komoju_timeout: Duration::from_secs(parse_num(&get, "KOMOJU_TIMEOUT_SECS", 15)?),
            app_secret: SecretString::from(secrets.app_secret),
            body_limit_bytes: parse_num(&get, "BODY_LIMIT_BYTES", 64 * 1024)? as usize,
            body_timeout: Duration::from_secs(parse_num(&get, "BODY_TIMEOUT_SECS", 10)?),
            order_key_ttl: Duration::from_secs(parse_num(
                &get,
                "ORDER_KEY_TTL_SECS",
                7 * 24 * 3600,
            )?),
            merchant_cache_ttl: merchant_cache_ttl(&get)?,
            outbox_worker: on_off(&get, "OUTBOX_WORKER", true)?,
            outbox: outbox_settings(&get)?,
            reconcile: reconcile_settings(&get)?,
            request_timeout: Duration::from_secs(parse_num(&get, "REQUEST_TIMEOUT_SECS", 60)?),
            hsts: on_off(&get, "HSTS", hsts_default)?,
            shutdown_timeout: Duration::from_secs(parse_num(&get, "SHUTDOWN_TIMEOUT_SECS", 25)?),
            max_in_flight: max_in_flight(&get, "MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?,
            max_in_flight_webhooks: max_in_flight(
                &get,
                "MAX_IN_FLIGHT_WEBHOOKS",
                default_max_in_flight_webhooks(cores()),
            )?,
            dev_defaults: secrets.dev_defaults,
        };
        settings.check_timeouts()?;
        settings.check_production()?;
        Ok(settings)
    }

    /// `REQUEST_TIMEOUT_SECS` must leave room for the limits inside a request.
    fn check_timeouts(&self) -> Result<(), SettingsError> {
        let inner = self
            .body_timeout
            .max(self.komoju_timeout)
            .max(self.cafe24_timeout);
        if self.request_timeout <= inner {
            return Err(SettingsError::Invalid(
                "REQUEST_TIMEOUT_SECS",
                "must be longer than BODY_TIMEOUT_SECS, KOMOJU_TIMEOUT_SECS and CAFE24_TIMEOUT_SECS"
                    .into(),
            ));
        }
        Ok(())
    }

    /// In production, refuses any development default and the sandbox.
    pub fn check_production(&self) -> Result<(), SettingsError> {
        if self.app_env != AppEnv::Production {
            return Ok(());
        }
        if let Some(first) = self.dev_defaults.first() {
            return Err(SettingsError::DevDefaultInProduction(first));
        }
        let defaults = [
            (
                "CAFE24_SERVICE_KEY",
                self.cafe24_service_key.expose_secret() == DEV_SERVICE_KEY,
            ),
            ("CAFE24_CLIENT_ID", self.cafe24_client_id == DEV_CLIENT_ID),
            (
                "CAFE24_CLIENT_SECRET",
                self.cafe24_client_secret.expose_secret() == DEV_CLIENT_SECRET,
            ),
            (
                "APP_SECRET",
                self.app_secret.expose_secret() == DEV_APP_SECRET,
            ),
        ];
        if let Some((name, _)) = defaults.iter().find(|(_, is_default)| *is_default) {
            return Err(SettingsError::DevDefaultInProduction(name));
        }
        if self.cafe24_webhook_api_key.is_none() {
            return Err(SettingsError::Invalid(
                "CAFE24_WEBHOOK_API_KEY",
                "is required in production: the webhook credential of the Cafe24 Developer Center, checked on every app-lifecycle event".into(),
            ));
        }
        Ok(())
    }

    /// The limits every request body is read within.
    pub fn body_limits(&self) -> crate::cafe24::BodyLimits {
        crate::cafe24::BodyLimits {
            max_bytes: self.body_limit_bytes,
            timeout: self.body_timeout,
        }
    }

    /// True in development mode.
    pub fn is_development(&self) -> bool {
        self.app_env == AppEnv::Development
    }
}

fn outbox_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::notifications::OutboxSettings, SettingsError> {
    let lease = Duration::from_secs(parse_num(get, "OUTBOX_LEASE_SECS", 60)?);
    let send_timeout = Duration::from_secs(parse_num(get, "NOTIFY_TIMEOUT_SECS", 15)?);
    if send_timeout >= lease {
        return Err(SettingsError::Invalid(
            "NOTIFY_TIMEOUT_SECS",
            "must be shorter than OUTBOX_LEASE_SECS".into(),
        ));
    }
    Ok(crate::notifications::OutboxSettings {
        poll: Duration::from_millis(parse_num(get, "OUTBOX_POLL_MS", 1000)?),
        lease,
        send_timeout,
        batch: parse_num(get, "OUTBOX_BATCH", 10)?.min(1000) as i64,
    })
}

/// The service's secrets as read, each its development default when unset.
struct Secrets {
    service_key: String,
    client_id: String,
    client_secret: String,
    app_secret: String,
    /// The variables left at their development default.
    dev_defaults: Vec<&'static str>,
}

/// `CAFE24_SERVICE_KEY`, `CAFE24_CLIENT_ID`, `CAFE24_CLIENT_SECRET`, `APP_SECRET` (at
/// least 32 bytes); production refuses the defaults later ([`Settings::check_production`]).
fn secrets(get: &impl Fn(&str) -> Option<String>) -> Result<Secrets, SettingsError> {
    let mut dev_defaults = Vec::new();
    let mut secret = |k: &'static str, default: &str| match get(k) {
        Some(v) => v,
        None => {
            dev_defaults.push(k);
            default.to_owned()
        }
    };
    let service_key = secret("CAFE24_SERVICE_KEY", DEV_SERVICE_KEY);
    let client_id = secret("CAFE24_CLIENT_ID", DEV_CLIENT_ID);
    let client_secret = secret("CAFE24_CLIENT_SECRET", DEV_CLIENT_SECRET);
    let app_secret = secret("APP_SECRET", DEV_APP_SECRET);
    if app_secret.len() < 32 {
        return Err(SettingsError::Invalid(
            "APP_SECRET",
            "must be at least 32 bytes".into(),
        ));
    }
    Ok(Secrets {
        service_key,
        client_id,
        client_secret,
        app_secret,
        dev_defaults,
    })
}

/// `APP_ENV`: `development` (default, or `dev`) or `production` (`prod`).
fn app_env(get: &impl Fn(&str) -> Option<String>) -> Result<AppEnv, SettingsError> {
    match get("APP_ENV").as_deref().unwrap_or("development") {
        "development" | "dev" => Ok(AppEnv::Development),
        "production" | "prod" => Ok(AppEnv::Production),
        _ => Err(SettingsError::Invalid(
            "APP_ENV",
            "expected development or production".into(),
        )),
    }
}

/// `KOMOJU_API_BASE`; unset: the sandbox in development, KOMOJU's API in production.
fn komoju_target(
    get: &impl Fn(&str) -> Option<String>,
    app_env: AppEnv,
) -> Result<KomojuTarget, SettingsError> {
    Ok(match get("KOMOJU_API_BASE") {
        Some(v) => KomojuTarget::Api(parse_base_url("KOMOJU_API_BASE", &v)?),
        None if app_env == AppEnv::Development => KomojuTarget::Sandbox,
        None => KomojuTarget::Api(parse_base_url("KOMOJU_API_BASE", KOMOJU_PRODUCTION_API)?),
    })
}

/// `CAFE24_API_BASE` (with `{mall_id}`); unset: the stand-in in development, Cafe24's
/// API in production.
fn cafe24_target(
    get: &impl Fn(&str) -> Option<String>,
    app_env: AppEnv,
) -> Result<Cafe24Target, SettingsError> {
    Ok(match get("CAFE24_API_BASE") {
        Some(v) => {
            let probe = v.replace("{mall_id}", "mall");
            parse_base_url("CAFE24_API_BASE", &probe)?;
            Cafe24Target::Api(v.trim_end_matches('/').to_owned())
        }
        None if app_env == AppEnv::Development => Cafe24Target::Sandbox,
        None => Cafe24Target::Api(CAFE24_PRODUCTION_API.into()),
    })
}

/// `CAFE24_API_VERSION`: a date, `YYYY-MM-DD`.
fn cafe24_api_version(get: &impl Fn(&str) -> Option<String>) -> Result<String, SettingsError> {
    let version = get("CAFE24_API_VERSION").unwrap_or_else(|| DEFAULT_CAFE24_API_VERSION.into());
    if chrono::NaiveDate::parse_from_str(&version, "%Y-%m-%d").is_err() {
        return Err(SettingsError::Invalid(
            "CAFE24_API_VERSION",
            "must be a date like 2026-03-01".into(),
        ));
    }
    Ok(version)
}

/// `CAFE24_SCOPES`: scope names separated by commas.
fn cafe24_scopes(get: &impl Fn(&str) -> Option<String>) -> Result<String, SettingsError> {
    let scopes = get("CAFE24_SCOPES").unwrap_or_else(|| DEFAULT_CAFE24_SCOPES.into());
    if scopes.chars().any(|c| c.is_control()) {
        return Err(SettingsError::Invalid(
            "CAFE24_SCOPES",
            "must be scope names separated by commas".into(),
        ));
    }
    Ok(scopes)
}

/// `DATABASE_POOL_SIZE`: 1 to 100 connections (default 10).
fn database_pool_size(get: &impl Fn(&str) -> Option<String>) -> Result<u32, SettingsError> {
    match parse_num(get, "DATABASE_POOL_SIZE", 10)? {
        n @ 1..=100 => Ok(n as u32),
        _ => Err(SettingsError::Invalid(
            "DATABASE_POOL_SIZE",
            "must be between 1 and 100".into(),
        )),
    }
}

/// `MAX_IN_FLIGHT` or `MAX_IN_FLIGHT_WEBHOOKS` (`name`): 1 to [`MAX_IN_FLIGHT_LIMIT`]
/// requests, `default` when unset.
fn max_in_flight(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<usize, SettingsError> {
    match parse_num(get, name, default)? {
        n @ 1..=MAX_IN_FLIGHT_LIMIT => Ok(n as usize),
        _ => Err(SettingsError::Invalid(
            name,
            "must be between 1 and 10000 requests".into(),
        )),
    }
}

/// The cores this process may run on, as [`std::thread::available_parallelism`] counts
/// them; 1 when it cannot tell.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `CAFE24_LAUNCH_MAX_AGE_SECS`: seconds, at most [`LAUNCH_MAX_AGE_LIMIT`] (default 3600).
fn launch_max_age(get: &impl Fn(&str) -> Option<String>) -> Result<i64, SettingsError> {
    match parse_num(get, "CAFE24_LAUNCH_MAX_AGE_SECS", 3600)? {
        n @ 1..=LAUNCH_MAX_AGE_LIMIT => Ok(n as i64),
        _ => Err(SettingsError::Invalid(
            "CAFE24_LAUNCH_MAX_AGE_SECS",
            "must be at most 7200 (Cafe24's guide allows a launch ±2 hours)".into(),
        )),
    }
}

/// `MERCHANT_CACHE_SECS`: seconds, `0` for no cache, at most an hour (default 5).
fn merchant_cache_ttl(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, SettingsError> {
    Ok(Duration::from_secs(match get("MERCHANT_CACHE_SECS") {
        Some(v) if v.trim() == "0" => 0,
        _ => parse_num(get, "MERCHANT_CACHE_SECS", 5)?.min(3600),
    }))
}

/// A switch: `on`/`true`/`1` or `off`/`false`/`0`; unset is `default`.
fn on_off(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, SettingsError> {
    match get(name).as_deref() {
        None => Ok(default),
        Some("on") | Some("true") | Some("1") => Ok(true),
        Some("off") | Some("false") | Some("0") => Ok(false),
        Some(_) => Err(SettingsError::Invalid(name, "expected on or off".into())),
    }
}

/// The reconciliation's `RECONCILE_*` settings (milliseconds for the interval, seconds
/// for the rest).
fn reconcile_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::reconciliation::ReconcileSettings, SettingsError> {
    let secs = |name, default| parse_num(get, name, default).map(Duration::from_secs);
    let interval = Duration::from_millis(parse_num(get, "RECONCILE_INTERVAL_MS", 30_000)?);
    Ok(crate::reconciliation::ReconcileSettings {
        interval,
        budget: interval,
        cancellations_after: secs("RECONCILE_AFTER_SECS", 300)?,
        pending_after: secs("RECONCILE_PENDING_AFTER_SECS", 900)?,
        expiry_grace: secs("RECONCILE_EXPIRY_GRACE_SECS", 300)?,
        capture_window: secs("RECONCILE_CAPTURE_WINDOW_SECS", 30 * 24 * 60 * 60)?,
        retention: retention(get)?,
    })
}

/// `RETENTION_DAYS`: how long delivered notifications, webhook events and order events
/// are kept (default 400; at least 30, longer than KOMOJU retries a webhook and Cafe24
/// a notification). Orders, refunds and duplicate payments are never purged.
fn retention(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, SettingsError> {
    let days = parse_num(get, "RETENTION_DAYS", 400)?;
    if days < 30 {
        return Err(SettingsError::Invalid(
            "RETENTION_DAYS",
            "must be at least 30 (days)".into(),
        ));
    }
    Ok(Duration::from_secs(days * 24 * 60 * 60))
}

fn parse_base_url(name: &'static str, v: &str) -> Result<url::Url, SettingsError> {
    let trimmed = v.trim_end_matches('/');
    let url = url::Url::parse(trimmed).map_err(|e| SettingsError::Invalid(name, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SettingsError::Invalid(
            name,
            "must be an http(s) URL".into(),
        ));
    }
    Ok(url)
}

fn parse_num(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, SettingsError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| SettingsError::Invalid(name, "must be a positive whole number".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_settings_is_development_on_sqlite_with_the_sandbox() {
        let s = with(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.is_development());
        assert_eq!(s.database_url, "sqlite://data/cafe24-komoju.sqlite3");
        assert_eq!(s.komoju, KomojuTarget::Sandbox);
        assert_eq!(
            s.dev_defaults,
            vec![
                "CAFE24_SERVICE_KEY",
                "CAFE24_CLIENT_ID",
                "CAFE24_CLIENT_SECRET",
                "APP_SECRET"
            ]
        );
        assert_eq!(s.cafe24, Cafe24Target::Sandbox);
        assert_eq!(s.body_limit_bytes, 65536);
        assert_eq!(s.body_timeout, Duration::from_secs(10));
    }

    #[test]
    fn production_refuses_each_development_default_by_name() {
        let key = "k".repeat(40);
        let full = [
            ("APP_ENV", "production"),
            ("CAFE24_SERVICE_KEY", "real-service-key"),
            ("CAFE24_CLIENT_ID", "real-client"),
            ("CAFE24_CLIENT_SECRET", "real-client-secret"),
            ("APP_SECRET", key.as_str()),
            ("CAFE24_WEBHOOK_API_KEY", "real-webhook-key"),
        ];
        let s = with(&full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.komoju,
            KomojuTarget::Api(
                url::Url::parse(KOMOJU_PRODUCTION_API).unwrap_or_else(|e| panic!("{e}"))
            )
        );
        assert_eq!(s.cafe24, Cafe24Target::Api(CAFE24_PRODUCTION_API.into()));
        for missing in [
            "CAFE24_SERVICE_KEY",
            "CAFE24_CLIENT_ID",
            "CAFE24_CLIENT_SECRET",
            "APP_SECRET",
        ] {
            let rest: Vec<(&str, &str)> = full
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = with(&rest).err();
            assert_eq!(err, Some(SettingsError::DevDefaultInProduction(missing)));
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains(missing));
        }
        let explicit_default: Vec<(&str, &str)> = full
            .iter()
            .copied()
            .map(|(k, v)| {
                if k == "APP_SECRET" {
                    (k, DEV_APP_SECRET)
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(
            with(&explicit_default).err(),
            Some(SettingsError::DevDefaultInProduction("APP_SECRET"))
        );
    }

    #[test]
    fn max_in_flight_is_a_positive_bounded_number_named_when_wrong() {
        let s = with(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.max_in_flight, DEFAULT_MAX_IN_FLIGHT as usize);
        assert_eq!(s.max_in_flight_webhooks, 2 * super::cores());
        assert_eq!(
            [0, 1, 2, 16, 5000, 6000].map(default_max_in_flight_webhooks),
            [2, 2, 4, 32, 10_000, 10_000]
        );
        let s = with(&[("MAX_IN_FLIGHT", "2"), ("MAX_IN_FLIGHT_WEBHOOKS", "3")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.max_in_flight, s.max_in_flight_webhooks), (2, 3));
        for variable in ["MAX_IN_FLIGHT", "MAX_IN_FLIGHT_WEBHOOKS"] {
            for bad in ["0", "-1", "many", "1.5", "10001", "99999999999999999999"] {
                match with(&[(variable, bad)]) {
                    Err(SettingsError::Invalid(name, _)) => assert_eq!(name, variable, "{bad}"),
                    other => panic!("{variable}={bad}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn short_app_secret_is_refused_without_echoing_it() {
        let err = with(&[("APP_SECRET", "too-short-secret")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("APP_SECRET"));
        assert!(!err.contains("too-short-secret"));
    }

    #[test]
    fn a_launch_window_over_two_hours_is_refused_naming_the_variable() {
        let ok =
            with(&[("CAFE24_LAUNCH_MAX_AGE_SECS", "7200")]).map(|s| s.cafe24_launch_max_age_secs);
        assert_eq!(ok, Ok(7200));
        let err = with(&[("CAFE24_LAUNCH_MAX_AGE_SECS", "7201")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("CAFE24_LAUNCH_MAX_AGE_SECS"), "{err}");
        assert!(
            with(&[("CAFE24_LAUNCH_MAX_AGE_SECS", "86400")]).is_err(),
            "never clamped"
        );
    }

    #[test]
    fn production_requires_the_webhook_api_key_and_development_does_not() {
        let key = "k".repeat(40);
        let production = [
            ("APP_ENV", "production"),
            ("CAFE24_SERVICE_KEY", "real-service-key"),
            ("CAFE24_CLIENT_ID", "real-client"),
            ("CAFE24_CLIENT_SECRET", "real-client-secret"),
            ("APP_SECRET", key.as_str()),
        ];
        let err = with(&production)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("CAFE24_WEBHOOK_API_KEY"), "{err}");
        let development = with(&[]).map(|s| s.cafe24_webhook_api_key.is_none());
        assert_eq!(development, Ok(true));
    }
}
