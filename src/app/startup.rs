//! Building and running the service: the shared [`crate::services::Services`], the HTTP server on a
//! listener whose port is known (tests bind port 0), and the KOMOJU sandbox in
//! development mode (the crate `cafe24-komoju-sandbox`, with the default `sandbox`
//! feature; this is the only module that names it).

use std::net::TcpListener;
use std::sync::Arc;

#[cfg(feature = "sandbox")]
use secrecy::ExposeSecret;
use tokio::sync::{watch, Notify};

use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};

use crate::app::settings::{Cafe24Target, KomojuTarget, Settings};
use crate::cafe24::admin::{Cafe24Client, Cafe24Config};
use crate::cafe24::callback_url::AllowedHosts;
use crate::clock::Clock;
use crate::db::Database;
use crate::keys::order::OrderKeys;
use crate::komoju::KomojuClient;
use crate::secrets::SecretBox;
use crate::services::{Services, WebhookRegistrar};
#[cfg(feature = "sandbox")]
use cafe24_komoju_sandbox::{Cafe24App, Cafe24Sandbox, Sandbox};

/// `/script/hmac` requests allowed per client address and mall per minute (burst too).
const HMAC_REQUESTS_PER_MINUTE: std::num::NonZeroU32 = match std::num::NonZeroU32::new(20) {
    Some(n) => n,
    None => unreachable!(),
};

/// Where the sandbox is mounted in development mode.
pub const SANDBOX_PREFIX: &str = "/sandbox/komoju";
/// Where the Cafe24 stand-in is mounted in development mode.
pub const CAFE24_SANDBOX_PREFIX: &str = "/sandbox/cafe24";

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.backend_name())
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Komoju(#[from] crate::komoju::KomojuError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Development mode without `KOMOJU_API_BASE` asks for the sandbox, which this build
    /// does not have.
    #[error("this build has no KOMOJU sandbox (built without the `sandbox` feature): set KOMOJU_API_BASE to a KOMOJU API")]
    NoSandbox,
    #[error("this build has no Cafe24 stand-in (built without the `sandbox` feature): set CAFE24_API_BASE")]
    NoCafe24Sandbox,
    #[error("{0}")]
    Cafe24(#[from] crate::cafe24::admin::Cafe24Error),
    #[error("metrics: {0}")]
    Metrics(String),
}

/// A built, not yet running, service.
pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    /// The `/metrics` server on `METRICS_BIND_ADDR`, and its port.
    metrics_server: Option<(actix_web::dev::Server, u16)>,
    state: web::Data<Services>,
    /// The development stand-ins mounted beside the service.
    #[cfg(feature = "sandbox")]
    stand_ins: StandIns,
    shutdown: watch::Sender<bool>,
    /// The outbox worker and the reconciliation task.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// How long what was accepted may take to finish once the process is told to stop
    /// (`SHUTDOWN_TIMEOUT_SECS`).
    grace: std::time::Duration,
}

impl Application {
    /// Binds `settings.bind_addr`, runs migrations and builds the server.
    pub async fn build(settings: Settings, clock: Clock) -> Result<Application, StartupError> {
        let listener =
            TcpListener::bind(&settings.bind_addr).map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.clone(),
                source,
            })?;
        Application::build_with_listener(settings, listener, clock).await
    }

    /// Builds the server on an already bound listener (tests bind port 0): the database
    /// migrated, the clients and keys of [`Services`], the stand-ins development asks
    /// for, the servers, and the background tasks (when `OUTBOX_WORKER` is on). Errors:
    /// [`StartupError`].
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        clock: Clock,
    ) -> Result<Application, StartupError> {
        refuse_absent_stand_ins(&settings)?;
        let db = migrated_database(&settings).await?;
        let local = listener.local_addr()?;
        let mut stand_ins = StandIns::default();
        let komoju_base = komoju_base(&settings, local, &mut stand_ins)?;
        let cafe24_config = cafe24_config(&settings, local, &mut stand_ins);
        let state = services(&settings, db, clock, &komoju_base, cafe24_config)?;
        let state = web::Data::new(state);
        log::info!(
            "serving on http://{local} ({} database, KOMOJU at {}, Cafe24 at {}, public base {}; \
             at most {} requests and {} KOMOJU webhooks in flight)",
            state.db.backend_name(),
            state.komoju.base(),
            state.cafe24.base(),
            settings.public_base_url,
            settings.max_in_flight,
            settings.max_in_flight_webhooks
        );
        let metrics_listener = match &settings.metrics_bind_addr {
            Some(addr) => Some(bind(addr)?),
            None => None,
        };
        let guard = guard_config(&settings, &state.metrics);
        let metrics_apart = metrics_listener.is_some();
        let server = main_server(
            &settings,
            listener,
            &state,
            &guard,
            &stand_ins,
            metrics_apart,
        )?;
        let metrics_server = match metrics_listener {
            Some(listener) => Some(metrics_server(listener, &state, guard)?),
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let tasks = if settings.outbox_worker {
            background_tasks(&settings, &state, shutdown_rx)?
        } else {
            Vec::new()
        };
        Ok(Application {
            server,
            port: local.port(),
            metrics_server,
            state,
            #[cfg(feature = "sandbox")]
            stand_ins,
            shutdown,
            tasks,
            grace: settings.shutdown_timeout,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` server, when `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    /// The shared state (for tests and background work).
    pub fn state(&self) -> web::Data<Services> {
        self.state.clone()
    }

    /// The mounted sandbox, in development mode without `KOMOJU_API_BASE` (only with the
    /// `sandbox` feature; tests drive its test controls through this handle).
    #[cfg(feature = "sandbox")]
    pub fn sandbox(&self) -> Option<Sandbox> {
        self.stand_ins.komoju.clone()
    }

    /// The mounted Cafe24 stand-in, in development mode without `CAFE24_API_BASE`.
    #[cfg(feature = "sandbox")]
    pub fn cafe24_sandbox(&self) -> Option<Cafe24Sandbox> {
        self.stand_ins.cafe24.clone()
    }

    /// Serves until the process is told to stop (SIGTERM or SIGINT). Then, at once and
    /// together: the server stops accepting and finishes the requests it accepted, and
    /// the background tasks stop (the outbox worker claims nothing more, lets its batch
    /// in flight finish, and gives back the rows it still holds); all within
    /// `SHUTDOWN_TIMEOUT_SECS`, after which what is left is cut. Returns the server's
    /// result (`Ok` for a graceful stop: the process exits 0).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let served = tokio::select! {
            served = &mut server => served,
            signal = stop_signal() => {
                log::info!("{signal}: no new connections; finishing what was accepted (at most {:?})", self.grace);
                let _ = self.shutdown.send(true);
                let stopping = handle.stop(true);
                let metrics_stopping = async {
                    if let Some(h) = &metrics {
                        h.stop(true).await;
                    }
                };
                futures_util::future::join(stopping, metrics_stopping).await;
                server.await
            }
        };
        if let Some(handle) = metrics {
            handle.stop(true).await;
        }
        let _ = self.shutdown.send(true);
        let all = futures_util::future::join_all(self.tasks);
        let margin = std::time::Duration::from_secs(2);
        if tokio::time::timeout(self.grace + margin, all)
            .await
            .is_err()
        {
            log::warn!(
                "background tasks did not stop in time; the outbox's leases expire by themselves"
            );
        }
        log::info!("stopped");
        served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// The development stand-ins mounted beside the service (`/sandbox/komoju`,
/// `/sandbox/cafe24`): only with the `sandbox` feature, only when the settings ask for
/// them (no `KOMOJU_API_BASE`, no `CAFE24_API_BASE` in development).
#[derive(Clone, Default)]
struct StandIns {
    #[cfg(feature = "sandbox")]
    komoju: Option<Sandbox>,
    #[cfg(feature = "sandbox")]
    cafe24: Option<Cafe24Sandbox>,
}

impl StandIns {
    /// Mounts the stand-ins on one worker's application.
    fn mount(&self, cfg: &mut web::ServiceConfig) {
        #[cfg(feature = "sandbox")]
        {
            if let Some(s) = &self.komoju {
                s.configure(SANDBOX_PREFIX)(cfg);
            }
            if let Some(s) = &self.cafe24 {
                s.configure(CAFE24_SANDBOX_PREFIX)(cfg);
            }
        }
        #[cfg(not(feature = "sandbox"))]
        let _ = cfg;
    }
}

/// Before the database is touched: a build without the `sandbox` feature cannot serve
/// settings that ask for a stand-in.
fn refuse_absent_stand_ins(settings: &Settings) -> Result<(), StartupError> {
    #[cfg(not(feature = "sandbox"))]
    if matches!(settings.komoju, KomojuTarget::Sandbox) {
        return Err(StartupError::NoSandbox);
    }
    #[cfg(not(feature = "sandbox"))]
    if matches!(settings.cafe24, Cafe24Target::Sandbox) {
        return Err(StartupError::NoCafe24Sandbox);
    }
    #[cfg(feature = "sandbox")]
    let _ = settings;
    Ok(())
}

/// The database of `DATABASE_URL`, its pending migrations applied (each logged).
async fn migrated_database(settings: &Settings) -> Result<Database, StartupError> {
    let db = Database::connect_sized(&settings.database_url, settings.database_pool_size)?;
    let migrations = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.run_migrations())
            .await
            .map_err(|e| crate::db::DbError::Migration(e.to_string()))??
    };
    for m in &migrations {
        log::info!("applied migration {m}");
    }
    Ok(db)
}

/// The KOMOJU API base the service calls: `KOMOJU_API_BASE`, or the sandbox mounted on
/// `local` (recorded in `stand_ins`).
fn komoju_base(
    settings: &Settings,
    local: std::net::SocketAddr,
    stand_ins: &mut StandIns,
) -> Result<String, StartupError> {
    match &settings.komoju {
        KomojuTarget::Api(url) => Ok(url.as_str().trim_end_matches('/').to_owned()),
        #[cfg(feature = "sandbox")]
        KomojuTarget::Sandbox => {
            let public = format!(
                "{}{SANDBOX_PREFIX}",
                settings.public_base_url.as_str().trim_end_matches('/')
            );
            let api = url::Url::parse(&format!("http://{local}"))
                .map(|u| {
                    let prefix: Vec<&str> =
                        SANDBOX_PREFIX.trim_start_matches('/').split('/').collect();
                    crate::urls::with_path(&crate::urls::with_path(&u, &prefix), &["api", "v1"])
                        .to_string()
                })
                .map_err(|e| crate::komoju::KomojuError::Transport(e.to_string()))?;
            log::warn!("KOMOJU sandbox mounted at {public}: no real payment is made (set KOMOJU_API_BASE for a real KOMOJU)");
            stand_ins.komoju = Some(Sandbox::new(&public));
            Ok(api)
        }
        #[cfg(not(feature = "sandbox"))]
        KomojuTarget::Sandbox => {
            let _ = (local, stand_ins);
            Err(StartupError::NoSandbox)
        }
    }
}

/// The Cafe24 client's configuration: `CAFE24_API_BASE`, or the stand-in mounted on
/// `local` (recorded in `stand_ins`).
fn cafe24_config(
    settings: &Settings,
    local: std::net::SocketAddr,
    stand_ins: &mut StandIns,
) -> Cafe24Config {
    let public = settings.public_base_url.as_str().trim_end_matches('/');
    let (api_base, browser_base) = match &settings.cafe24 {
        Cafe24Target::Api(base) => (base.clone(), base.clone()),
        Cafe24Target::Sandbox => {
            #[cfg(feature = "sandbox")]
            {
                stand_ins.cafe24 = Some(cafe24_stand_in(settings, local));
            }
            (
                format!("http://{local}{CAFE24_SANDBOX_PREFIX}/{{mall_id}}"),
                format!("{public}{CAFE24_SANDBOX_PREFIX}/{{mall_id}}"),
            )
        }
    };
    #[cfg(not(feature = "sandbox"))]
    let _ = stand_ins;
    Cafe24Config {
        api_base,
        browser_base,
        api_version: settings.cafe24_api_version.clone(),
        client_id: settings.cafe24_client_id.clone(),
        client_secret: settings.cafe24_client_secret.clone(),
        scopes: settings.cafe24_scopes.clone(),
        timeout: settings.cafe24_timeout,
    }
}

/// The Cafe24 stand-in, set up as the app is registered in the Developer Center.
#[cfg(feature = "sandbox")]
fn cafe24_stand_in(settings: &Settings, local: std::net::SocketAddr) -> Cafe24Sandbox {
    let public = settings.public_base_url.as_str().trim_end_matches('/');
    log::warn!("Cafe24 stand-in mounted at {public}{CAFE24_SANDBOX_PREFIX}: open it to launch the app for any mall (set CAFE24_API_BASE for a real Cafe24)");
    let stand_in = Cafe24Sandbox::new(
        &format!("{public}{CAFE24_SANDBOX_PREFIX}"),
        Cafe24App {
            client_id: settings.cafe24_client_id.clone(),
            client_secret: settings.cafe24_client_secret.expose_secret().to_owned(),
            app_name: "cafe24-komoju (development)".into(),
            app_url: format!("{public}/cafe24/launch"),
        },
    );
    // Its notification page checks each notice's hash_data as Cafe24 would.
    stand_in.set_service_key(settings.cafe24_service_key.expose_secret());
    // As registered in the Developer Center: lifecycle events to this service, with its
    // webhook credential (none configured: the check is skipped).
    let key = settings.cafe24_webhook_api_key.as_ref();
    stand_in.set_app_webhook(
        &format!("http://{local}/cafe24/webhooks"),
        key.map(|k| k.expose_secret()).unwrap_or_default(),
    );
    stand_in
}

/// What the use cases share. The one place development wiring is decided: with the
/// KOMOJU sandbox, the service registers each merchant's webhook endpoint itself (a
/// [`WebhookRegistrar`]); with a real KOMOJU the merchant does it in the dashboard.
fn services(
    settings: &Settings,
    db: Database,
    clock: Clock,
    komoju_base: &str,
    cafe24_config: Cafe24Config,
) -> Result<Services, StartupError> {
    let metrics = crate::metrics::Metrics::new();
    let cafe24 = Cafe24Client::new(cafe24_config)?.with_metrics(metrics.registry());
    if settings.cafe24_webhook_api_key.is_none() {
        log::warn!("CAFE24_WEBHOOK_API_KEY is not set: Cafe24's app-lifecycle webhooks are accepted without checking x-api-key (development only; production refuses to start without it)");
    }
    let komoju =
        KomojuClient::new(komoju_base, settings.komoju_timeout)?.with_metrics(metrics.clone());
    let webhook_registrar = matches!(settings.komoju, KomojuTarget::Sandbox)
        .then(|| WebhookRegistrar::new(komoju.clone()));
    Ok(Services {
        metrics,
        cafe24,
        cafe24_client_secret: settings.cafe24_client_secret.clone(),
        launch_max_age_secs: settings.cafe24_launch_max_age_secs,
        cafe24_webhook_api_key: settings.cafe24_webhook_api_key.clone(),
        session_keys: crate::keys::session::SessionKeys::new(&settings.app_secret),
        cookie_secure: !settings.is_development(),
        webhook_registrar,
        komoju,
        secrets: SecretBox::new(&settings.app_secret),
        order_keys: OrderKeys::new(&settings.app_secret, settings.order_key_ttl),
        allowed_hosts: AllowedHosts::new(&settings.cafe24_allowed_hosts, settings.is_development()),
        merchants: crate::merchant::cache::Merchants::new(
            db.clone(),
            SecretBox::new(&settings.app_secret),
            settings.merchant_cache_ttl,
        ),
        db,
        clock,
        outbox_wake: Arc::new(Notify::new()),
        hmac_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
            HMAC_REQUESTS_PER_MINUTE,
        )),
        cafe24_service_key: settings.cafe24_service_key.clone(),
        cafe24_client_id: settings.cafe24_client_id.clone(),
        public_base_url: settings.public_base_url.clone(),
        body_limits: settings.body_limits(),
        form_token_key: crate::keys::form_key(&settings.app_secret),
        operator_keys: crate::keys::operator::OperatorKeys::new(&settings.app_secret),
    })
}

fn bind(addr: &str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).map_err(|source| StartupError::Bind {
        addr: addr.to_owned(),
        source,
    })
}

/// The request guard's limits (`BODY_LIMIT_BYTES`, `REQUEST_TIMEOUT_SECS`, `HSTS`,
/// `MAX_IN_FLIGHT`, `MAX_IN_FLIGHT_WEBHOOKS`): one [`crate::routes::guard::Admission`] for the process, shared by
/// every worker of both servers.
fn guard_config(
    settings: &Settings,
    metrics: &crate::metrics::Metrics,
) -> crate::routes::guard::GuardConfig {
    crate::routes::guard::GuardConfig {
        admission: crate::routes::guard::Admission::new(
            crate::routes::guard::Limits {
                requests: settings.max_in_flight,
                webhooks: settings.max_in_flight_webhooks,
                webhook_paths: &crate::routes::komoju_webhook::PATHS,
            },
            metrics.requests_shed.clone(),
            metrics.requests_in_flight.clone(),
        ),
        body_limit: settings.body_limit_bytes,
        request_timeout: settings.request_timeout,
        hsts: settings
            .hsts
            .then(|| actix_web::http::header::HeaderValue::from_static("max-age=31536000")),
    }
}

/// The service's HTTP server on `listener`: every route, `/metrics` too unless it is
/// served apart, and the stand-ins.
fn main_server(
    settings: &Settings,
    listener: TcpListener,
    state: &web::Data<Services>,
    guard: &crate::routes::guard::GuardConfig,
    stand_ins: &StandIns,
    metrics_apart: bool,
) -> Result<actix_web::dev::Server, StartupError> {
    let http_metrics = actix_web_prom::PrometheusMetricsBuilder::new(crate::metrics::NAMESPACE)
        .registry(state.metrics.registry().clone())
        .mask_unmatched_patterns("unmatched")
        // From 1 ms: a webhook is served in about one (docs/benchmarks.md).
        .buckets(&crate::metrics::HTTP_BUCKETS)
        .build()
        .map_err(|e| StartupError::Metrics(e.to_string()))?;
    let (data, guard, stand_ins) = (state.clone(), guard.clone(), stand_ins.clone());
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(crate::routes::guard::Guard::new(guard.clone()))
            .wrap(http_metrics.clone())
            .wrap(
                // The query string is left out: it holds order keys.
                Logger::new("%a \"%{method}xi %U\" %s %b %Dms")
                    .custom_request_replace("method", |req| req.method().to_string()),
            )
            .app_data(data.clone())
            .configure(crate::routes::configure)
            .configure(|cfg| {
                if !metrics_apart {
                    crate::routes::metrics::configure(cfg);
                }
            })
            .default_service(web::to(crate::routes::not_found))
            .configure(|cfg| stand_ins.mount(cfg))
    })
    .listen(listener)?
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .disable_signals()
    .run())
}

/// The `/metrics` server on `METRICS_BIND_ADDR`'s `listener`, and its port.
fn metrics_server(
    listener: TcpListener,
    state: &web::Data<Services>,
    guard: crate::routes::guard::GuardConfig,
) -> Result<(actix_web::dev::Server, u16), StartupError> {
    let port = listener.local_addr()?.port();
    let data = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(crate::routes::guard::Guard::new(guard.clone()))
            .app_data(data.clone())
            .configure(crate::routes::metrics::configure)
            .default_service(web::to(crate::routes::not_found))
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(5)
    .disable_signals()
    .run();
    log::info!("metrics served apart, on port {port}");
    Ok((server, port))
}

/// The outbox worker, the reconciliation, Cafe24's lifecycle events and the token
/// refresh, each stopping when `shutdown` turns true.
fn background_tasks(
    settings: &Settings,
    state: &web::Data<Services>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartupError> {
    let worker = crate::notifications::Worker::new(
        state.clone(),
        settings.outbox.clone(),
        state.outbox_wake.clone(),
    )
    .map_err(|e| crate::komoju::KomojuError::Transport(e.to_string()))?;
    Ok(vec![
        tokio::spawn(worker.run(shutdown.clone(), settings.shutdown_timeout)),
        tokio::spawn(crate::reconciliation::run(
            state.clone().into_inner(),
            settings.reconcile.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(crate::install::lifecycle::run(
            state.clone().into_inner(),
            shutdown.clone(),
        )),
        tokio::spawn(crate::install::tokens::run(
            state.clone().into_inner(),
            shutdown,
        )),
    ])
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); returns its name. Without signal support it
/// waits forever.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
