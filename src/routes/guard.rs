//! The guard every request passes before any route (issue 18, items 4, 7 and 11): it
//! bounds what a client can make the server hold, and adds the headers every reply
//! carries. It decides nothing about orders.
//!
//! - **A body where none is taken.** A request that announces a body (`Transfer-Encoding`,
//!   or a `Content-Length` above 0) to a route that reads none (every `GET`, `HEAD`,
//!   `OPTIONS` and `DELETE`, and the operator API's `POST …/retry`) is answered 400
//!   `invalid_request` at once, before the route runs.
//! - **A body over `BODY_LIMIT_BYTES`.** Announced by `Content-Length`: 413 at once. Sent
//!   chunked: the route's read fails when the limit is passed, and whatever the route
//!   answered is replaced by the same 413 (the settings site answered a 422 page).
//! - **Connections closed.** The request's body is held until the reply has been written,
//!   so the server closes a connection whose body was not read to its end (actix-http
//!   would otherwise keep reading a chunked body the route dropped, for as long as the
//!   client trickles it).
//! - **More requests than the service can serve** (issue 21, item 3). At most
//!   `MAX_IN_FLIGHT` requests are served at once, across every worker (one shared
//!   [`Admission`]), and apart from them at most `MAX_IN_FLIGHT_WEBHOOKS` of KOMOJU's
//!   webhooks (work for the database alone, which a few in flight saturate, where a
//!   checkout holds its place for KOMOJU's whole answer); one more of either kind is
//!   answered at once, before the route runs (its body, if it comes within
//!   [`DRAIN_WAIT`], read and thrown away so that the connection stays open for the
//!   retry; else the connection closed), with 503 `unavailable` and `Retry-After` (the
//!   §3 envelope and the [`crate::error::RETRY_AFTER_SECS`] every 503 carries): KOMOJU
//!   and Cafe24 send it again later. Counted in `requests_shed_total`. `/health`, `/health/ready`,
//!   `/metrics` and the development stand-ins (`/sandbox/…`) are never refused and never
//!   counted: operators must see an overloaded service, and the service's own calls to a
//!   stand-in served beside it must not be refused by its own limit. A request refused
//!   for what it is (the 400s and 413 below) is answered so even when the limit is full,
//!   so that nobody retries a request that can never succeed.
//! - **Every request's total time** is bounded by `REQUEST_TIMEOUT_SECS`, whatever the
//!   route waits for: past it the reply is 503 `unavailable` with `Retry-After`, and the
//!   connection is closed. A route's own limits (`BODY_TIMEOUT_SECS`, the KOMOJU and
//!   Cafe24 timeouts) are shorter, so this bound is the last resort.
//! - **A control character in the path** (`%00`–`%1F`, `%7F`) is 400 `invalid_request`
//!   before any route reads a path segment (PostgreSQL cannot store a NUL).
//! - **Headers.** `X-Content-Type-Options: nosniff` on every reply, and
//!   `Strict-Transport-Security` when `HSTS` is on (production over https).

use std::cell::{Cell, RefCell};
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use futures_util::Stream;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Paths always admitted, whatever is in flight: what operators watch.
const ALWAYS_ADMITTED: [&str; 3] = ["/health", "/health/ready", "/metrics"];

/// The development stand-ins' prefix (`/sandbox/komoju`, `/sandbox/cafe24`): not the
/// service, and called by the service itself while it holds a request.
const STAND_IN_PREFIX: &str = "/sandbox/";

/// The operator API's route that takes no body although it is a `POST`.
const BODYLESS_POSTS: [&str; 1] = ["/operator/api/v1/notifications/{id}/retry"];

/// What the guard enforces (from the settings).
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// `BODY_LIMIT_BYTES`.
    pub body_limit: usize,
    /// `REQUEST_TIMEOUT_SECS`: from the request's head to its reply.
    pub request_timeout: Duration,
    /// The `Strict-Transport-Security` value to send, when on (`HSTS`).
    pub hsts: Option<header::HeaderValue>,
    /// `MAX_IN_FLIGHT` and `MAX_IN_FLIGHT_WEBHOOKS`: the requests served at once, shared
    /// by every worker.
    pub admission: Admission,
}

/// How many requests of each kind are served at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `MAX_IN_FLIGHT`: every request but the webhooks (and those never refused).
    pub requests: usize,
    /// `MAX_IN_FLIGHT_WEBHOOKS`: requests to one of `webhook_paths`.
    pub webhooks: usize,
    /// The paths of KOMOJU's webhooks (their route's own list).
    pub webhook_paths: &'static [&'static str],
}

/// The bounds on requests served at once ([`Limits`]), one for the whole process:
/// clones share the same permits and metrics.
#[derive(Clone)]
pub struct Admission {
    requests: std::sync::Arc<Semaphore>,
    webhooks: std::sync::Arc<Semaphore>,
    webhook_paths: &'static [&'static str],
    /// `requests_shed_total`: requests answered 503 because their limit was full.
    shed: IntCounter,
    /// `requests_in_flight`: requests holding a permit now, of either kind.
    in_flight: IntGauge,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Admission({} requests and {} webhooks free)",
            self.requests.available_permits(),
            self.webhooks.available_permits()
        )
    }
}

impl Admission {
    /// At most `limits` of each kind at once (at least 1); refusals counted in `shed`,
    /// the requests being served in `in_flight`.
    pub fn new(limits: Limits, shed: IntCounter, in_flight: IntGauge) -> Admission {
        let permits =
            |n: usize| std::sync::Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)));
        Admission {
            requests: permits(limits.requests),
            webhooks: permits(limits.webhooks),
            webhook_paths: limits.webhook_paths,
            shed,
            in_flight,
        }
    }

    /// A permit for `path`: `Ok(None)` when the path is never limited, `Err(())` (counted)
    /// when its kind's limit is full.
    fn admit(&self, path: &str) -> Result<Option<Admitted>, ()> {
        if ALWAYS_ADMITTED.contains(&path) || path.starts_with(STAND_IN_PREFIX) {
            return Ok(None);
        }
        let permits = if self.webhook_paths.contains(&path) {
            &self.webhooks
        } else {
            &self.requests
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.in_flight.inc();
                Ok(Some(Admitted {
                    _permit: permit,
                    in_flight: self.in_flight.clone(),
                }))
            }
            Err(_) => {
                self.shed.inc();
                Err(())
            }
        }
    }
}

/// One admitted request's permit, given back (and the gauge lowered) when dropped.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    in_flight: IntGauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// The middleware factory: `App::new().wrap(Guard::new(config))`.
#[derive(Clone)]
pub struct Guard(Rc<GuardConfig>);

impl Guard {
    /// A guard enforcing `config`.
    pub fn new(config: GuardConfig) -> Guard {
        Guard(Rc::new(config))
    }
}

impl<S, B> Transform<S, ServiceRequest> for Guard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<GuardService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
            config: self.0.clone(),
        }))
    }
}

/// The guard around one worker's app.
pub struct GuardService<S> {
    service: Rc<S>,
    config: Rc<GuardConfig>,
}

type Reply = Result<ServiceResponse<BoxBody>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Reply>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let config = self.config.clone();
        let announced = announced_body(&req);
        let refusal = refusal(&req, announced, config.body_limit);
        let payload = announced.then(|| Rc::new(RefCell::new(req.take_payload())));
        let overflowed = Rc::new(Cell::new(false));
        if let Some(held) = &payload {
            req.set_payload(Payload::Stream {
                payload: Box::pin(Watched {
                    inner: held.clone(),
                    seen: 0,
                    limit: config.body_limit,
                    overflowed: overflowed.clone(),
                }),
            });
        }
        let service = self.service.clone();
        if let Some(error) = refusal {
            let res = req.into_response(error.error_response());
            return Box::pin(ready(Ok(finish(res, &config, payload))));
        }
        let admitted = match config.admission.admit(req.path()) {
            Ok(admitted) => admitted,
            Err(()) => {
                // Counted, not logged at warn: a burst would flood the log.
                log::debug!("{} {} shed: the limit is full", req.method(), req.path());
                return Box::pin(async move {
                    let drained = payload.is_none() || drain(&mut req, DRAIN_WAIT).await;
                    let mut reply = ApiError::Unavailable.error_response();
                    if !drained {
                        reply
                            .head_mut()
                            .set_connection_type(actix_web::http::ConnectionType::Close);
                    }
                    Ok(finish(req.into_response(reply), &config, payload))
                });
            }
        };
        let what = format!("{} {}", req.method(), req.path());
        Box::pin(async move {
            let _admitted = admitted;
            match tokio::time::timeout(config.request_timeout, service.call(req)).await {
                Ok(Ok(res)) if overflowed.get() => {
                    let res = res.into_response(too_large(config.body_limit));
                    Ok(finish(res, &config, payload))
                }
                Ok(Ok(res)) => Ok(finish(res.map_into_boxed_body(), &config, payload)),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    log::warn!(
                        "{what} took longer than {} s; answered 503",
                        config.request_timeout.as_secs()
                    );
                    Err(TimedOut.into())
                }
            }
        })
    }
}

/// How long the body of a request refused by the admission limit is read for (and
/// thrown away): a body sent with its head is in by then, and the connection then
/// serves the client's next request (its retry) instead of being closed, which at a
/// burst cost a new connection per refusal (the overload bench: a second of `SYN`
/// retries once the client's ports ran out). A body not in by then closes the
/// connection.
const DRAIN_WAIT: Duration = Duration::from_millis(250);

/// Reads the request's body to its end within `wait`, keeping nothing; true when it
/// ended (within the body limit: the payload is [`Watched`]).
async fn drain(req: &mut ServiceRequest, wait: Duration) -> bool {
    use futures_util::StreamExt;
    let mut body = req.take_payload();
    tokio::time::timeout(wait, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false)
}

/// A request past `REQUEST_TIMEOUT_SECS`: 503 `unavailable`, the connection closed.
#[derive(Debug, thiserror::Error)]
#[error("the request took too long")]
struct TimedOut;

impl ResponseError for TimedOut {
    fn status_code(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let mut reply = ApiError::Unavailable.error_response();
        reply
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        reply
    }
}

/// The reply with the guard's headers, its body holding the request's payload (if any)
/// until it has been written.
fn finish(
    res: ServiceResponse<BoxBody>,
    config: &GuardConfig,
    payload: Option<Rc<RefCell<Payload>>>,
) -> ServiceResponse<BoxBody> {
    let mut res = res;
    let headers = res.headers_mut();
    if !headers.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
    }
    if let Some(hsts) = &config.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    match payload {
        None => res,
        Some(held) => res.map_body(|_, body| {
            BoxBody::new(Holding {
                body,
                _payload: held,
            })
        }),
    }
}

/// The §3 413 for a body over the limit, with the connection closed.
fn too_large(limit: usize) -> actix_web::HttpResponse {
    let mut reply = ApiError::InvalidRequest {
        message: format!("request body is larger than {limit} bytes"),
        status: StatusCode::PAYLOAD_TOO_LARGE,
    }
    .error_response();
    reply
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    reply
}

/// True when the request says a body follows: any `Transfer-Encoding`, or a
/// `Content-Length` that is not 0.
fn announced_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Why the request is answered before any route runs, if it is.
fn refusal(req: &ServiceRequest, announced: bool, limit: usize) -> Option<ApiError> {
    if has_control_escape(req.uri().path()) {
        return Some(ApiError::invalid(
            "the path must not contain control characters",
        ));
    }
    if announced && takes_no_body(req) {
        return Some(ApiError::invalid("this route takes no request body"));
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > limit as u64) {
        return Some(ApiError::InvalidRequest {
            message: format!("request body is larger than {limit} bytes"),
            status: StatusCode::PAYLOAD_TOO_LARGE,
        });
    }
    None
}

/// Routes that read no body: every `GET`, `HEAD`, `OPTIONS` and `DELETE`, and
/// [`BODYLESS_POSTS`].
fn takes_no_body(req: &ServiceRequest) -> bool {
    match *req.method() {
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE => true,
        Method::POST => req
            .match_pattern()
            .is_some_and(|p| BODYLESS_POSTS.contains(&p.as_str())),
        _ => false,
    }
}

/// True when the raw path holds a percent-escaped C0 control character or DEL.
fn has_control_escape(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1].to_ascii_uppercase(), w[2].to_ascii_uppercase()),
                (b'0' | b'1', b'0'..=b'9' | b'A'..=b'F') | (b'7', b'F')
            )
    })
}

/// The request body as the route reads it: the held payload, counted against the limit.
struct Watched {
    inner: Rc<RefCell<Payload>>,
    seen: usize,
    limit: usize,
    overflowed: Rc<Cell<bool>>,
}

impl Stream for Watched {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.overflowed.get() {
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        let polled = {
            let mut inner = this.inner.borrow_mut();
            Pin::new(&mut *inner).poll_next(cx)
        };
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            this.seen = this.seen.saturating_add(chunk.len());
            if this.seen > this.limit {
                this.overflowed.set(true);
                return Poll::Ready(Some(Err(PayloadError::Overflow)));
            }
        }
        polled
    }
}

/// A reply body that keeps the request's payload alive until the reply is written.
struct Holding {
    body: BoxBody,
    _payload: Rc<RefCell<Payload>>,
}

impl MessageBody for Holding {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBHOOK: &str = "/api/asynchronous-checkout/checkout/webhook";
    const CHECKOUT: &str = "/api/synchronous-checkout/checkout";

    fn one_of_each(metrics: &crate::metrics::Metrics) -> Admission {
        Admission::new(
            Limits {
                requests: 1,
                webhooks: 1,
                webhook_paths: &[WEBHOOK],
            },
            metrics.requests_shed.clone(),
            metrics.requests_in_flight.clone(),
        )
    }

    #[test]
    fn one_over_the_limit_is_refused_and_counted_and_operators_paths_never() {
        let metrics = crate::metrics::Metrics::new();
        let admission = one_of_each(&metrics);
        let first = admission.admit(CHECKOUT);
        assert!(matches!(first, Ok(Some(_))));
        assert_eq!(metrics.requests_in_flight.get(), 1);
        assert!(admission.admit("/api/synchronous-checkout/cancel").is_err());
        assert_eq!(metrics.requests_shed.get(), 1);
        for path in [
            "/health",
            "/health/ready",
            "/metrics",
            "/sandbox/komoju/api/v1/sessions",
        ] {
            assert!(matches!(admission.admit(path), Ok(None)), "{path}");
        }
        assert_eq!(metrics.requests_shed.get(), 1);
        drop(first);
        assert_eq!(metrics.requests_in_flight.get(), 0);
        assert!(matches!(admission.admit("/"), Ok(Some(_))));
    }

    #[test]
    fn webhooks_and_other_requests_are_limited_apart() {
        let metrics = crate::metrics::Metrics::new();
        let admission = one_of_each(&metrics);
        let webhook = admission.admit(WEBHOOK);
        assert!(matches!(webhook, Ok(Some(_))));
        assert!(admission.admit(WEBHOOK).is_err(), "a second webhook");
        let checkout = admission.admit(CHECKOUT);
        assert!(
            matches!(checkout, Ok(Some(_))),
            "webhooks took the checkout's place"
        );
        assert!(admission.admit(CHECKOUT).is_err(), "a second checkout");
        assert_eq!(metrics.requests_in_flight.get(), 2);
        assert_eq!(metrics.requests_shed.get(), 2);
        drop(webhook);
        assert!(matches!(admission.admit(WEBHOOK), Ok(Some(_))));
    }

    #[test]
    fn control_escapes_are_found_in_any_case() {
        for path in [
            "/a/%00",
            "/a/%1f/b",
            "/a/%1F",
            "/%7f",
            "/%0a",
            "/operator/api/v1/orders/demomall/%00",
        ] {
            assert!(has_control_escape(path), "{path}");
        }
        for path in ["/a/%20", "/a/%2F", "/a/b", "/%", "/a%0", "/%80", "/%7e"] {
            assert!(!has_control_escape(path), "{path}");
        }
    }
}
