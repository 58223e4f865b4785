//! The stand-in's `/api/v1` surface: one handler that applies, in order, fault injection,
//! HTTP Basic secret-key auth, routing, `X-KOMOJU-IDEMPOTENCY` and the endpoint itself,
//! then records the request. Routing is done here rather than by actix so that every API
//! request, known route or not, passes the same steps.

use std::time::Duration;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::clock;
use super::money::{self, PAYMENT_TYPES};
use super::params::{self, parse_body};
use super::reply::Reply;
use super::state::{CaptureError, CreateError, Fingerprint, IdempotencyBegin, RefundError, State};
use super::views::{payment_view, session_view};
use super::{Fault, RecordedRequest, Sandbox, SandboxError};

const IDEMPOTENCY_HEADER: &str = "x-komoju-idempotency";
const IDEMPOTENCY_PARAM: &str = "X-KOMOJU-IDEMPOTENCY";

/// Every request under `{prefix}/api/v1/`.
pub(crate) async fn handle(
    req: HttpRequest,
    body: Bytes,
    sandbox: web::Data<Sandbox>,
) -> HttpResponse {
    let path = format!("/api/v1/{}", req.match_info().query("tail"));
    let idempotency_key = req
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let fault = sandbox.lock().take_fault();
    let reply = match fault {
        Some(Fault::InternalError) => Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "An internal error occurred (sandbox fault injection)",
            None,
        ),
        Some(Fault::Unprocessable(code)) => Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "The request was refused (sandbox fault injection)",
            None,
        ),
        Some(Fault::SlowProcessing(delay)) => {
            process(
                &sandbox,
                &req,
                &path,
                idempotency_key.as_deref(),
                &body,
                Some(delay),
            )
            .await
        }
        _ => {
            process(
                &sandbox,
                &req,
                &path,
                idempotency_key.as_deref(),
                &body,
                None,
            )
            .await
        }
    };
    let wire_body = match (fault, &reply.skewed) {
        (Some(Fault::WrongAmountInReply), Some(skewed)) => skewed.clone(),
        _ => reply.body.clone(),
    };
    sandbox.lock().requests.push(RecordedRequest {
        method: req.method().as_str().to_string(),
        path,
        idempotency_key,
        status: reply.status.as_u16(),
    });
    if let Some(Fault::DelayAfterProcessing(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    HttpResponse::build(reply.status)
        .content_type("application/json")
        .body(wire_body)
}

/// Any path under the prefix that no route claims.
pub(crate) async fn not_found() -> HttpResponse {
    let reply = Reply::not_found();
    HttpResponse::build(reply.status)
        .content_type("application/json")
        .body(reply.body)
}

enum Route {
    CreateSession,
    GetSession(String),
    CancelSession(String),
    GetPayment(String),
    CancelPayment(String),
    CapturePayment(String),
    RefundPayment(String),
    RegisterWebhook,
    PingWebhook,
    PaymentMethods,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/api/v1/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["sessions"]) => Some(Route::CreateSession),
            ("GET", ["sessions", session]) => id(session).map(Route::GetSession),
            ("POST", ["sessions", session, "cancel"]) => id(session).map(Route::CancelSession),
            ("GET", ["payments", payment]) => id(payment).map(Route::GetPayment),
            ("POST", ["payments", payment, "cancel"]) => id(payment).map(Route::CancelPayment),
            ("POST", ["payments", payment, "capture"]) => id(payment).map(Route::CapturePayment),
            ("POST", ["payments", payment, "refund"]) => id(payment).map(Route::RefundPayment),
            ("POST", ["webhook_endpoints"]) => Some(Route::RegisterWebhook),
            ("POST", ["webhook_endpoints", "ping"]) => Some(Route::PingWebhook),
            ("GET", ["payment_methods"]) => Some(Route::PaymentMethods),
            _ => None,
        }
    }
}

/// Auth, routing and idempotency around one endpoint call; `slow` (a test fault) keeps
/// the idempotency key in flight that long before the call is processed.
async fn process(
    sandbox: &Sandbox,
    req: &HttpRequest,
    path: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
    slow: Option<Duration>,
) -> Reply {
    let owner =
        authenticate(req.headers()).filter(|key| !sandbox.lock().refused_keys.contains(key));
    let Some(owner) = owner else {
        return Reply::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid secret key is required (HTTP Basic, key as user name, empty password)",
            None,
        );
    };
    let Some(route) = Route::parse(req.method(), path) else {
        return Reply::not_found();
    };
    let key = match idempotency_key {
        Some(key) if req.method() == Method::POST => key,
        _ => return run(sandbox, &owner, route, req.headers(), body),
    };
    if key.is_empty() || key.len() > 100 || !key.is_ascii() {
        return Reply::invalid(
            IDEMPOTENCY_PARAM,
            "The idempotency key must be 1 to 100 ASCII characters",
        );
    }
    let fingerprint = fingerprint(req.method(), path, body);
    let begin = sandbox.lock().begin_idempotent(&owner, key, fingerprint);
    match begin {
        IdempotencyBegin::Fresh => {}
        IdempotencyBegin::Replay(reply) => return reply,
        // KOMOJU documents the 409 (ja.doc.komoju.com/docs/idempotent-requests) but not
        // its body: the code is a guess from the documented list.
        IdempotencyBegin::InFlight => {
            return Reply::error(
                StatusCode::CONFLICT,
                "bad_request",
                "A request with this idempotency key is in progress",
                None,
            )
        }
        // Undocumented (retries must repeat the body): a guess.
        IdempotencyBegin::Mismatch => {
            return Reply::invalid(
                IDEMPOTENCY_PARAM,
                "This idempotency key was already used with a different request",
            )
        }
    }
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    let reply = run(sandbox, &owner, route, req.headers(), body);
    sandbox
        .lock()
        .finish_idempotent(&owner, key, fingerprint, reply.clone());
    reply
}

/// `Authorization: Basic base64("sk_…:")` → the secret key.
fn authenticate(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    let valid = user.len() > 3 && user.starts_with("sk_") && password.is_empty();
    valid.then(|| user.to_string())
}

/// What "the same request" means for an idempotency key: same method, path and body bytes.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().into()
}

fn run(sandbox: &Sandbox, owner: &str, route: Route, headers: &HeaderMap, body: &[u8]) -> Reply {
    let base = sandbox.public_base();
    let parsed = match parse_body(headers, body) {
        Ok(parsed) => parsed,
        Err(reply) => return reply,
    };
    match route {
        Route::CreateSession => match params::new_session(&parsed) {
            Ok(new) => create_session(sandbox, owner, new),
            Err(reply) => reply,
        },
        Route::GetSession(id) => session_reply(&sandbox.lock(), owner, &id, base),
        Route::CancelSession(id) => cancel_session(sandbox, owner, &id),
        Route::GetPayment(id) => payment_reply(&sandbox.lock(), owner, &id, base),
        Route::CancelPayment(id) => cancel_payment(sandbox, owner, &id),
        Route::CapturePayment(id) => match params::capture(&parsed) {
            Ok(amount) => capture_payment(sandbox, owner, &id, amount),
            Err(reply) => reply,
        },
        Route::RefundPayment(id) => match params::refund(&parsed) {
            Ok((amount, description)) => refund_payment(sandbox, owner, &id, amount, description),
            Err(reply) => reply,
        },
        Route::RegisterWebhook => match params::webhook_endpoint(&parsed) {
            Ok((url, secret)) => {
                sandbox.lock().webhooks.register(owner, &url, &secret);
                Reply::plain(&json!({"url": url, "registered": true}))
            }
            Err(reply) => reply,
        },
        Route::PingWebhook if sandbox.send_ping(owner) => Reply::plain(&json!({"sent": true})),
        Route::PingWebhook => Reply::not_found(),
        Route::PaymentMethods => {
            let state = sandbox.lock();
            let restricted = state.payment_methods.get(owner).map(Vec::as_slice);
            payment_methods_reply(restricted, |slug| {
                state.fees.get(slug).copied().unwrap_or(0)
            })
        }
    }
}

fn create_session(sandbox: &Sandbox, owner: &str, new: super::state::NewSession) -> Reply {
    let base = sandbox.public_base();
    sandbox
        .transition(|state, now| {
            let (id, transitions) = state.create_session(owner, new, now).map_err(|e| match e {
                CreateError::DuplicateExternalOrderNum => Reply::invalid(
                    "payment_data.external_order_num",
                    "external_order_num has already been used",
                ),
            })?;
            Ok((session_reply(state, owner, &id, base), transitions))
        })
        .unwrap_or_else(|reply| reply)
}

/// `POST /sessions/{id}/cancel`; a completed session is 422 `unprocessable_entity` (a
/// guess: the SDK documents no refusal).
fn cancel_session(sandbox: &Sandbox, owner: &str, id: &str) -> Reply {
    let base = sandbox.public_base();
    sandbox
        .transition(|state, now| {
            owned_session(state, owner, id)?;
            let ((), transitions) = state.cancel_session(id, now).map_err(|e| match e {
                SandboxError::NotFound => Reply::not_found(),
                SandboxError::InvalidState(why) => {
                    Reply::unprocessable("unprocessable_entity", &why)
                }
            })?;
            Ok((session_reply(state, owner, id, base), transitions))
        })
        .unwrap_or_else(|reply| reply)
}

fn cancel_payment(sandbox: &Sandbox, owner: &str, id: &str) -> Reply {
    let base = sandbox.public_base();
    sandbox
        .transition(|state, now| {
            owned_payment(state, owner, id)?;
            let ((), transitions) = state.cancel_payment(id, now).map_err(|e| match e {
                SandboxError::NotFound => Reply::not_found(),
                SandboxError::InvalidState(why) => Reply::unprocessable("not_cancellable", &why),
            })?;
            Ok((payment_reply(state, owner, id, base), transitions))
        })
        .unwrap_or_else(|reply| reply)
}

fn capture_payment(sandbox: &Sandbox, owner: &str, id: &str, amount: Option<i64>) -> Reply {
    let base = sandbox.public_base();
    sandbox
        .transition(|state, now| {
            owned_payment(state, owner, id)?;
            let ((), transitions) = state.capture_by_api(id, amount, now).map_err(|e| match e {
                CaptureError::NotFound => Reply::not_found(),
                CaptureError::NotCapturable(why) => Reply::unprocessable("not_capturable", &why),
                CaptureError::InvalidAmount(why) => Reply::invalid("amount", &why),
            })?;
            Ok((payment_reply(state, owner, id, base), transitions))
        })
        .unwrap_or_else(|reply| reply)
}

fn refund_payment(
    sandbox: &Sandbox,
    owner: &str,
    id: &str,
    amount: Option<i64>,
    description: Option<String>,
) -> Reply {
    let base = sandbox.public_base();
    sandbox
        .transition(|state, now| {
            owned_payment(state, owner, id)?;
            let (_, transitions) =
                state
                    .refund_payment(id, amount, description, now)
                    .map_err(|e| match e {
                        RefundError::NotFound => Reply::not_found(),
                        RefundError::NotRefundable(why) => {
                            Reply::unprocessable("not_refundable", &why)
                        }
                        RefundError::InvalidAmount(why) => Reply::invalid("amount", &why),
                    })?;
            Ok((payment_reply(state, owner, id, base), transitions))
        })
        .unwrap_or_else(|reply| reply)
}

/// One entry of `GET /api/v1/payment_methods`: SDK `docs/Models/AvailablePaymentMethod.md`
/// (`name_en`, `name_ja`, `name_ko`, `type_slug`, `currency`), one per type and currency
/// it takes, plus `payment_method_fee` (the WooCommerce plugin's example entry,
/// `class-wc-settings-page-komoju.php`, which also keeps one entry per slug, preferring the
/// shop's currency).
#[derive(Serialize)]
struct PaymentMethodEntry<'a> {
    name_en: &'a str,
    name_ja: &'a str,
    name_ko: &'a str,
    type_slug: &'a str,
    currency: &'a str,
    payment_method_fee: i64,
}

/// The list for a key: every known type in every currency it takes, or the key's
/// restriction in its order (a type the stand-in has no names for is listed under its
/// slug in every language, in JPY).
fn payment_methods_reply(restricted: Option<&[String]>, fee: impl Fn(&str) -> i64) -> Reply {
    let types: Vec<&str> = match restricted {
        None => PAYMENT_TYPES.iter().map(|t| t.slug).collect(),
        Some(types) => types.iter().map(String::as_str).collect(),
    };
    let mut entries = Vec::new();
    for slug in types {
        match money::payment_type(slug) {
            Some(t) => entries.extend(t.currencies.iter().map(|currency| PaymentMethodEntry {
                name_en: t.name_en,
                name_ja: t.name_ja,
                name_ko: t.name_ko,
                type_slug: t.slug,
                currency,
                payment_method_fee: fee(t.slug),
            })),
            None => entries.push(PaymentMethodEntry {
                name_en: slug,
                name_ja: slug,
                name_ko: slug,
                type_slug: slug,
                currency: "JPY",
                payment_method_fee: fee(slug),
            }),
        }
    }
    Reply::plain(&entries)
}

/// The object exists and belongs to `owner`; otherwise 404, as KOMOJU hides other
/// merchants' objects.
fn owned_payment(state: &State, owner: &str, id: &str) -> Result<(), Reply> {
    match state.payments.get(id) {
        Some(p) if p.owner == owner => Ok(()),
        _ => Err(Reply::not_found()),
    }
}

fn owned_session(state: &State, owner: &str, id: &str) -> Result<(), Reply> {
    match state.sessions.get(id) {
        Some(s) if s.owner == owner => Ok(()),
        _ => Err(Reply::not_found()),
    }
}

fn session_reply(state: &State, owner: &str, id: &str, base: &str) -> Reply {
    match state.sessions.get(id) {
        Some(session) if session.owner == owner => {
            let now = clock::now();
            Reply::object(|skew| session_view(state, session, base, now, skew))
        }
        _ => Reply::not_found(),
    }
}

fn payment_reply(state: &State, owner: &str, id: &str, base: &str) -> Reply {
    match state.payments.get(id) {
        Some(payment) if payment.owner == owner => {
            Reply::object(|skew| payment_view(payment, base, skew))
        }
        _ => Reply::not_found(),
    }
}
