//! The two peers the service talks to, served by the bench process on loopback, each on
//! one worker thread of its own:
//! - a KOMOJU stand-in that answers `POST /api/v1/sessions` after a fixed delay (50 ms),
//!   with session ids `bs1`, `bs2`, … so that the pgbench script can name them, and
//!   `GET /api/v1/payment_methods`;
//! - a Cafe24 stand-in that answers every notification `{"result":"OK"}` at once and
//!   records when the first and the last arrived.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};

/// Binds a loopback port.
pub fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let a = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    (l, a)
}

/// The KOMOJU stand-in; returns its API base (`http://…/api/v1`).
pub fn komoju(delay: Duration) -> String {
    let (l, addr) = listener();
    let sessions = Arc::new(AtomicUsize::new(0));
    tokio::spawn(
        HttpServer::new(move || {
            let sessions = sessions.clone();
            App::new()
                .route(
                    "/api/v1/sessions",
                    web::post().to(move || {
                        let n = sessions.fetch_add(1, Ordering::Relaxed) + 1;
                        async move {
                            tokio::time::sleep(delay).await;
                            let id = format!("bs{n}");
                            HttpResponse::Ok().json(serde_json::json!({
                                "id": id,
                                "resource": "session",
                                "mode": "payment",
                                "status": "pending",
                                "session_url": format!("http://{addr}/sessions/{id}"),
                                "expired": false,
                                "payment": null,
                            }))
                        }
                    }),
                )
                // The account's payment methods, which the service reads (and keeps) before
                // a session: the bench merchant's types, as KOMOJU lists them (an array of
                // `{type_slug, currency, …}`; crates/sandbox holds the sourced model).
                .route(
                    "/api/v1/payment_methods",
                    web::get().to(|| async {
                        HttpResponse::Ok().json(serde_json::json!([
                            {"type_slug": "credit_card", "currency": "JPY", "name_en": "Credit Card"},
                            {"type_slug": "konbini", "currency": "JPY", "name_en": "Konbini"},
                            {"type_slug": "paypay", "currency": "JPY", "name_en": "PayPay"}
                        ]))
                    }),
                )
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().json(serde_json::json!({"error": {"code": "not_found", "message": "not served by the bench"}}))
                }))
        })
        .workers(1)
        .listen(l)
        .unwrap_or_else(|e| panic!("{e}"))
        .run(),
    );
    format!("http://{addr}/api/v1")
}

/// What the Cafe24 stand-in has received.
#[derive(Debug, Default)]
struct Seen {
    count: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The Cafe24 stand-in receiving notifications.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    pub fn spawn() -> Receiver {
        let (l, addr) = listener();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        tokio::spawn(
            HttpServer::new(move || {
                let s = s.clone();
                App::new().default_service(web::to(move || {
                    {
                        let mut seen = s.lock().unwrap_or_else(|e| e.into_inner());
                        let now = Instant::now();
                        seen.count += 1;
                        seen.first.get_or_insert(now);
                        seen.last = Some(now);
                    }
                    async { HttpResponse::Ok().json(serde_json::json!({"result": "OK"})) }
                }))
            })
            .workers(1)
            .listen(l)
            .unwrap_or_else(|e| panic!("{e}"))
            .run(),
        );
        Receiver {
            url: format!("http://{addr}/noty"),
            seen,
        }
    }

    /// Forgets what was received.
    pub fn reset(&self) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Seen::default();
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// Waits until `n` notifications arrived (10 minutes at most); returns the time from
    /// the first to the last of them.
    pub async fn wait_for(&self, n: usize) -> Duration {
        let started = Instant::now();
        loop {
            {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.count >= n {
                    return match (seen.first, seen.last) {
                        (Some(a), Some(b)) => b - a,
                        _ => Duration::ZERO,
                    };
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "deliveries stalled at {} of {n}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
