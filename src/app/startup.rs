//! Building and running the service: the shared [`AppState`], the HTTP server on a
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
    #[cfg(feature = "sandbox")]
    sandbox: Option<Sandbox>,
    #[cfg(feature = "sandbox")]
    cafe24_sandbox: Option<Cafe24Sandbox>,
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

    /// Builds the server on an already bound listener (tests bind port 0).
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        clock: Clock,
    ) -> Result<Application, StartupError> {
        // Before the database is touched: this build cannot serve what is asked.
        #[cfg(not(feature = "sandbox"))]
        if matches!(settings.komoju, KomojuTarget::Sandbox) {
            return Err(StartupError::NoSandbox);
        }
        #[cfg(not(feature = "sandbox"))]
        if matches!(settings.cafe24, Cafe24Target::Sandbox) {
            return Err(StartupError::NoCafe24Sandbox);
        }
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
        let local = listener.local_addr()?;
        let komoju_is_sandbox = matches!(settings.komoju, KomojuTarget::Sandbox);
        #[cfg(feature = "sandbox")]
        let (komoju_base, sandbox) = match &settings.komoju {
            KomojuTarget::Api(url) => (url.as_str().trim_end_matches('/').to_owned(), None),
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
                (api, Some(Sandbox::new(&public)))
            }
        };
        #[cfg(not(feature = "sandbox"))]
        let komoju_base = match &settings.komoju {
            KomojuTarget::Api(url) => url.as_str().trim_end_matches('/').to_owned(),
            KomojuTarget::Sandbox => return Err(StartupError::NoSandbox),
        };
        let public = settings
            .public_base_url
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let (cafe24_api, cafe24_browser) = match &settings.cafe24 {
            Cafe24Target::Api(base) => (base.clone(), base.clone()),
            Cafe24Target::Sandbox => (
                format!("http://{local}{CAFE24_SANDBOX_PREFIX}/{{mall_id}}"),
                format!("{public}{CAFE24_SANDBOX_PREFIX}/{{mall_id}}"),
            ),
        };
        #[cfg(feature = "sandbox")]
        let cafe24_sandbox = match &settings.cafe24 {
            Cafe24Target::Api(_) => None,
            Cafe24Target::Sandbox => {
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
                // As registered in the Developer Center: lifecycle events to this service,
                // with its webhook credential (none configured: the check is skipped).
                let key = settings.cafe24_webhook_api_key.as_ref();
                stand_in.set_app_webhook(
                    &format!("http://{local}/cafe24/webhooks"),
                    key.map(|k| k.expose_secret()).unwrap_or_default(),
                );
                Some(stand_in)
            }
        };
        let cafe24 = Cafe24Client::new(Cafe24Config {
            api_base: cafe24_api,
            browser_base: cafe24_browser,
            api_version: settings.cafe24_api_version.clone(),
            client_id: settings.cafe24_client_id.clone(),
            client_secret: settings.cafe24_client_secret.clone(),
            scopes: settings.cafe24_scopes.clone(),
            timeout: settings.cafe24_timeout,
        })?;
        let metrics = crate::metrics::Metrics::new();
        let cafe24 = cafe24.with_metrics(metrics.registry());
        if settings.cafe24_webhook_api_key.is_none() {
            log::warn!("CAFE24_WEBHOOK_API_KEY is not set: Cafe24's app-lifecycle webhooks are accepted without checking x-api-key (development only; production refuses to start without it)");
        }
        let http_metrics = actix_web_prom::PrometheusMetricsBuilder::new(crate::metrics::NAMESPACE)
            .registry(metrics.registry().clone())
            .mask_unmatched_patterns("unmatched")
            .build()
            .map_err(|e| StartupError::Metrics(e.to_string()))?;
        let komoju =
            KomojuClient::new(&komoju_base, settings.komoju_timeout)?.with_metrics(metrics.clone());
        let state = web::Data::new(Services {
            metrics: metrics.clone(),
            cafe24,
            cafe24_client_secret: settings.cafe24_client_secret.clone(),
            launch_max_age_secs: settings.cafe24_launch_max_age_secs,
            cafe24_webhook_api_key: settings.cafe24_webhook_api_key.clone(),
            session_keys: crate::keys::session::SessionKeys::new(&settings.app_secret),
            cookie_secure: !settings.is_development(),
            // Development: the sandbox takes the webhook registration a merchant makes in
            // KOMOJU's dashboard over its API; production has no registrar.
            webhook_registrar: komoju_is_sandbox.then(|| WebhookRegistrar::new(komoju.clone())),
            komoju,
            secrets: SecretBox::new(&settings.app_secret),
            order_keys: OrderKeys::new(&settings.app_secret, settings.order_key_ttl),
            allowed_hosts: AllowedHosts::new(
                &settings.cafe24_allowed_hosts,
                settings.is_development(),
            ),
            db: db.clone(),
            clock,
            outbox_wake: Arc::new(Notify::new()),
            merchants: crate::merchant::cache::Merchants::new(
                db.clone(),
                SecretBox::new(&settings.app_secret),
                settings.merchant_cache_ttl,
            ),
            hmac_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
                HMAC_REQUESTS_PER_MINUTE,
            )),
            cafe24_service_key: settings.cafe24_service_key.clone(),
            cafe24_client_id: settings.cafe24_client_id.clone(),
            public_base_url: settings.public_base_url.clone(),
            body_limits: settings.body_limits(),
            form_token_key: crate::keys::form_key(&settings.app_secret),
            operator_keys: crate::keys::operator::OperatorKeys::new(&settings.app_secret),
        });
        log::info!(
            "serving on http://{local} ({} database, KOMOJU at {}, Cafe24 at {}, public base {})",
            state.db.backend_name(),
            state.komoju.base(),
            state.cafe24.base(),
            settings.public_base_url
        );
        let data = state.clone();
        #[cfg(feature = "sandbox")]
        let mounted = sandbox.clone();
        #[cfg(feature = "sandbox")]
        let mounted_cafe24 = cafe24_sandbox.clone();
        let metrics_listener = match &settings.metrics_bind_addr {
            Some(addr) => Some(
                TcpListener::bind(addr).map_err(|source| StartupError::Bind {
                    addr: addr.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let metrics_apart = metrics_listener.is_some();
        let guard = crate::routes::guard::GuardConfig {
            body_limit: settings.body_limit_bytes,
            request_timeout: settings.request_timeout,
            hsts: settings
                .hsts
                .then(|| actix_web::http::header::HeaderValue::from_static("max-age=31536000")),
        };
        let metrics_guard = guard.clone();
        let server = HttpServer::new(move || {
            let app = App::new()
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
                .default_service(web::to(crate::routes::not_found));
            #[cfg(feature = "sandbox")]
            let app = match &mounted {
                Some(s) => app.configure(s.configure(SANDBOX_PREFIX)),
                None => app,
            };
            #[cfg(feature = "sandbox")]
            let app = match &mounted_cafe24 {
                Some(s) => app.configure(s.configure(CAFE24_SANDBOX_PREFIX)),
                None => app,
            };
            app
        })
        .listen(listener)?
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .disable_signals()
        .run();
        let metrics_server = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                let data = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(crate::routes::guard::Guard::new(metrics_guard.clone()))
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
                Some((server, port))
            }
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if settings.outbox_worker {
            let worker = crate::notifications::Worker::new(
                state.clone(),
                settings.outbox.clone(),
                state.outbox_wake.clone(),
            )
            .map_err(|e| crate::komoju::KomojuError::Transport(e.to_string()))?;
            tasks.push(tokio::spawn(
                worker.run(shutdown_rx.clone(), settings.shutdown_timeout),
            ));
            tasks.push(tokio::spawn(crate::reconciliation::run(
                state.clone().into_inner(),
                settings.reconcile.clone(),
                shutdown_rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::install::lifecycle::run(
                state.clone().into_inner(),
                shutdown_rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::install::tokens::run(
                state.clone().into_inner(),
                shutdown_rx,
            )));
        }
        Ok(Application {
            server,
            port: local.port(),
            metrics_server,
            state,
            #[cfg(feature = "sandbox")]
            sandbox,
            #[cfg(feature = "sandbox")]
            cafe24_sandbox,
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
        self.sandbox.clone()
    }

    /// The mounted Cafe24 stand-in, in development mode without `CAFE24_API_BASE`.
    #[cfg(feature = "sandbox")]
    pub fn cafe24_sandbox(&self) -> Option<Cafe24Sandbox> {
        self.cafe24_sandbox.clone()
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
