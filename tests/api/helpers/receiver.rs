//! A fake Cafe24 on loopback that records the service's notifications.

use super::*;

/// One request the fake Cafe24 received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub fields: HashMap<String, String>,
    /// The service clock when it arrived.
    pub at: chrono::DateTime<chrono::Utc>,
    pub answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    fail_next: u32,
    fail_always: bool,
    hang: Option<std::time::Duration>,
}

/// A fake Cafe24 on loopback: records every POST (form or JSON) and answers
/// `{"result":"OK"}`, or 500 while told to fail.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    state: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
}

impl Receiver {
    pub fn spawn(clock: Clock) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let state = std::sync::Arc::new(std::sync::Mutex::new(ReceiverState::default()));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            let clock = clock.clone();
            App::new().default_service(web::to(
                move |req: actix_web::HttpRequest, body: web::Bytes| {
                    let shared = shared.clone();
                    let clock = clock.clone();
                    async move {
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let fields: HashMap<String, String> = if ct.starts_with("application/json")
                        {
                            serde_json::from_slice::<HashMap<String, String>>(&body)
                                .unwrap_or_default()
                        } else {
                            serde_urlencoded::from_bytes(&body).unwrap_or_default()
                        };
                        let (status, hang) = {
                            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                            let fail = s.fail_always || s.fail_next > 0;
                            if s.fail_next > 0 {
                                s.fail_next -= 1;
                            }
                            let status = if fail { 500 } else { 200 };
                            s.received.push(Received {
                                path: req.path().to_owned(),
                                fields,
                                at: clock.now(),
                                answered: status,
                            });
                            (status, s.hang)
                        };
                        if let Some(h) = hang {
                            tokio::time::sleep(h).await;
                        }
                        if status == 200 {
                            actix_web::HttpResponse::Ok().json(serde_json::json!({"result": "OK"}))
                        } else {
                            actix_web::HttpResponse::InternalServerError().body("down")
                        }
                    }
                },
            ))
        })
        .workers(2)
        .listen(listener)
        .unwrap_or_else(|e| panic!("listen: {e}"))
        .run();
        tokio::spawn(server);
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    pub fn fail_next(&self, n: u32) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_next = n;
    }

    pub fn fail_always(&self, on: bool) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_always = on;
    }

    pub fn hang(&self, d: Option<std::time::Duration>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).hang = d;
    }

    /// Waits until at least `n` requests arrived (or `timeout`); returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
