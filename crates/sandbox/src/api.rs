//! The sandbox's `/api/v1` surface: one handler that applies, in order, fault injection,
//! HTTP Basic secret-key auth, routing, `X-KOMOJU-IDEMPOTENCY` and the endpoint itself,
//! then records the request. Routing is done here rather than by actix so that every API
//! request, known route or not, passes the same steps.

use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::state::{
    payment_view, CreateError, Fingerprint, IdempotencyBegin, NewSession, RefundError, State,
};
use super::{Fault, RecordedRequest, Sandbox, SandboxError};

const IDEMPOTENCY_HEADER: &str = "x-komoju-idempotency";
const IDEMPOTENCY_PARAM: &str = "X-KOMOJU-IDEMPOTENCY";
/// KOMOJU's default and maximum session lifetime (reference §2).
const MAX_EXPIRES_IN_SECONDS: i64 = 86_400;
const DEFAULT_PAYMENT_TYPES: [&str; 2] = ["credit_card", "konbini"];
/// What `GET /api/v1/payment_methods` lists for a key by default: every type a session can
/// name, as `(type_slug, name_en, name_ja, name_ko)` with KOMOJU's names. The hosted page
/// pays `credit_card` and `konbini`; the others can be offered but not paid.
pub(super) const PAYMENT_METHODS: [(&str, &str, &str, &str); 5] = [
    ("credit_card", "Credit Card", "クレジットカード", "신용카드"),
    ("konbini", "Konbini", "コンビニ", "편의점"),
    ("paypay", "PayPay", "PayPay", "PayPay"),
    ("bank_transfer", "Bank Transfer", "銀行振込", "은행 송금"),
    ("pay_easy", "Pay-easy", "ペイジー", "페이지"),
];

/// One API answer as stored for idempotent replay: status, body, and the body with every
/// `amount` skewed by one (`Fault::WrongAmountInReply`) when the reply is a session or
/// payment.
#[derive(Clone)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Bytes,
    pub(super) skewed: Option<Bytes>,
}

impl Reply {
    /// KOMOJU's error envelope `{"error":{"code","message","param"}}`.
    pub(super) fn error(
        status: StatusCode,
        code: &str,
        message: &str,
        param: Option<&str>,
    ) -> Reply {
        let body = json!({"error": {"code": code, "message": message, "param": param}});
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            skewed: None,
        }
    }

    fn invalid(param: &str, message: &str) -> Reply {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            message,
            Some(param),
        )
    }

    fn missing(param: &str) -> Reply {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_parameter",
            &format!("{param} is required"),
            Some(param),
        )
    }

    /// 200 with a JSON body that has no `amount` to skew.
    fn plain<V: Serialize>(body: &V) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            skewed: None,
        }
    }

    fn not_found() -> Reply {
        Reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource could not be found",
            None,
        )
    }

    /// 200 with a session or payment, rendered once as is and once with `amount` + 1.
    fn object<V: Serialize>(render: impl Fn(i64) -> V) -> Reply {
        match (
            serde_json::to_vec(&render(0)),
            serde_json::to_vec(&render(1)),
        ) {
            (Ok(body), Ok(skewed)) => Reply {
                status: StatusCode::OK,
                body: Bytes::from(body),
                skewed: Some(Bytes::from(skewed)),
            },
            _ => Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "The reply could not be rendered",
                None,
            ),
        }
    }
}

/// Every request under `{prefix}/api/v1/`.
pub(super) async fn handle(
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
        _ => process(&sandbox, &req, &path, idempotency_key.as_deref(), &body),
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
pub(super) async fn not_found() -> HttpResponse {
    let reply = Reply::not_found();
    HttpResponse::build(reply.status)
        .content_type("application/json")
        .body(reply.body)
}

enum Route {
    CreateSession,
    GetSession(String),
    GetPayment(String),
    CancelPayment(String),
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
            ("GET", ["payments", payment]) => id(payment).map(Route::GetPayment),
            ("POST", ["payments", payment, "cancel"]) => id(payment).map(Route::CancelPayment),
            ("POST", ["payments", payment, "refund"]) => id(payment).map(Route::RefundPayment),
            ("POST", ["webhook_endpoints"]) => Some(Route::RegisterWebhook),
            ("POST", ["webhook_endpoints", "ping"]) => Some(Route::PingWebhook),
            ("GET", ["payment_methods"]) => Some(Route::PaymentMethods),
            _ => None,
        }
    }
}

/// Auth, routing and idempotency around one endpoint call.
fn process(
    sandbox: &Sandbox,
    req: &HttpRequest,
    path: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
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
        IdempotencyBegin::InFlight => {
            return Reply::error(
                StatusCode::CONFLICT,
                "conflict",
                "A request with this idempotency key is in progress",
                None,
            )
        }
        IdempotencyBegin::Mismatch => {
            return Reply::invalid(
                IDEMPOTENCY_PARAM,
                "This idempotency key was already used with a different request",
            )
        }
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
    match route {
        Route::CreateSession => {
            let new = match parse_body(headers, body).and_then(|b| new_session(&b)) {
                Ok(new) => new,
                Err(reply) => return reply,
            };
            sandbox
                .transition(|state, now| {
                    let (id, transitions) =
                        state.create_session(owner, new, now).map_err(|e| match e {
                            CreateError::DuplicateExternalOrderNum => Reply::invalid(
                                "payment_data.external_order_num",
                                "external_order_num has already been used",
                            ),
                        })?;
                    Ok((session_reply(state, owner, &id, base), transitions))
                })
                .unwrap_or_else(|reply| reply)
        }
        Route::GetSession(id) => session_reply(&sandbox.lock(), owner, &id, base),
        Route::GetPayment(id) => payment_reply(&sandbox.lock(), owner, &id, base),
        Route::CancelPayment(id) => {
            if let Err(reply) = parse_body(headers, body) {
                return reply;
            }
            sandbox
                .transition(|state, now| {
                    owned_payment(state, owner, &id)?;
                    let ((), transitions) =
                        state.cancel_payment(&id, now).map_err(|e| match e {
                            SandboxError::NotFound => Reply::not_found(),
                            SandboxError::InvalidState(why) => Reply::error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "not_cancellable",
                                &why,
                                None,
                            ),
                        })?;
                    Ok((payment_reply(state, owner, &id, base), transitions))
                })
                .unwrap_or_else(|reply| reply)
        }
        Route::RefundPayment(id) => {
            let (amount, description) = match parse_body(headers, body).and_then(|b| refund(&b)) {
                Ok(refund) => refund,
                Err(reply) => return reply,
            };
            sandbox
                .transition(|state, now| {
                    owned_payment(state, owner, &id)?;
                    let ((), transitions) = state
                        .refund_payment(&id, amount, description, now)
                        .map_err(|e| match e {
                            RefundError::NotFound => Reply::not_found(),
                            RefundError::NotRefundable(why) => Reply::error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "not_refundable",
                                &why,
                                None,
                            ),
                            RefundError::InvalidAmount(why) => Reply::invalid("amount", &why),
                        })?;
                    Ok((payment_reply(state, owner, &id, base), transitions))
                })
                .unwrap_or_else(|reply| reply)
        }
        Route::RegisterWebhook => {
            let (url, secret) = match parse_body(headers, body).and_then(|b| webhook_endpoint(&b)) {
                Ok(endpoint) => endpoint,
                Err(reply) => return reply,
            };
            sandbox.lock().webhooks.register(owner, &url, &secret);
            #[derive(Serialize)]
            struct Registered<'a> {
                url: &'a str,
                registered: bool,
            }
            Reply::plain(&Registered {
                url: &url,
                registered: true,
            })
        }
        Route::PingWebhook => {
            if let Err(reply) = parse_body(headers, body) {
                return reply;
            }
            if !sandbox.send_ping(owner) {
                return Reply::not_found();
            }
            Reply::plain(&json!({"sent": true}))
        }
        Route::PaymentMethods => {
            let state = sandbox.lock();
            payment_methods_reply(state.payment_methods.get(owner).map(Vec::as_slice))
        }
    }
}

/// One entry of `GET /api/v1/payment_methods`, in KOMOJU's key order.
#[derive(Serialize)]
struct PaymentMethodEntry<'a> {
    type_slug: &'a str,
    currency: &'static str,
    name_en: &'a str,
    name_ja: &'a str,
    name_ko: &'a str,
}

/// The list for a key: every known type, or the key's restriction in its order (a type
/// the sandbox has no names for is listed under its slug in every language).
fn payment_methods_reply(restricted: Option<&[String]>) -> Reply {
    let entry = |(type_slug, name_en, name_ja, name_ko)| PaymentMethodEntry {
        type_slug,
        currency: "JPY",
        name_en,
        name_ja,
        name_ko,
    };
    let entries: Vec<PaymentMethodEntry<'_>> = match restricted {
        None => PAYMENT_METHODS.into_iter().map(entry).collect(),
        Some(types) => types
            .iter()
            .map(|slug| {
                let slug = slug.as_str();
                let known = PAYMENT_METHODS.into_iter().find(|m| m.0 == slug);
                entry(known.unwrap_or((slug, slug, slug, slug)))
            })
            .collect(),
    };
    Reply::plain(&entries)
}

/// The payment exists and belongs to `owner`; otherwise 404, as KOMOJU hides other
/// merchants' objects.
fn owned_payment(state: &State, owner: &str, id: &str) -> Result<(), Reply> {
    match state.payments.get(id) {
        Some(p) if p.owner == owner => Ok(()),
        _ => Err(Reply::not_found()),
    }
}

fn session_reply(state: &State, owner: &str, id: &str, base: &str) -> Reply {
    match state.sessions.get(id) {
        Some(session) if session.owner == owner => {
            let now = super::state::now();
            Reply::object(|skew| state.session_view(session, base, now, skew))
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

// ---- request bodies ----

/// A JSON object body, or a form-encoded one with bracket keys (`payment_types[]=…`,
/// `payment_data[external_order_num]=…`) turned into the same JSON shape. Empty → `{}`.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Reply> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if is_form {
        let mut map = Map::new();
        for (key, value) in url::form_urlencoded::parse(body) {
            insert_form_pair(&mut map, &key, value.into_owned());
        }
        return Ok(map);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request body must be a JSON object",
            None,
        )),
    }
}

/// `a[b][]=v` → `{"a":{"b":["v"]}}`.
fn insert_form_pair(map: &mut Map<String, Value>, key: &str, value: String) {
    let (head, tail) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let segments: Vec<&str> = tail
        .split(']')
        .filter_map(|s| s.strip_prefix('['))
        .collect();
    insert_path(map, head, &segments, value);
}

fn insert_path(map: &mut Map<String, Value>, head: &str, rest: &[&str], value: String) {
    match rest {
        [] => {
            map.insert(head.to_string(), Value::String(value));
        }
        [""] => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(Value::String(value));
            }
        }
        [next, more @ ..] => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert_path(inner, next, more, value);
            }
        }
    }
}

/// Absent and `null` are the same thing in KOMOJU's parameters.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// An integer given as a JSON number or as a decimal string (form bodies, Ruby examples).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn optional_string(
    body: &Map<String, Value>,
    name: &str,
    param: &str,
) -> Result<Option<String>, Reply> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::invalid(param, &format!("{param} must be a string"))),
    }
}

fn new_session(body: &Map<String, Value>) -> Result<NewSession, Reply> {
    let amount = match field(body, "amount") {
        None => return Err(Reply::missing("amount")),
        Some(v) => integer(v)
            .filter(|a| *a > 0)
            .ok_or_else(|| Reply::invalid("amount", "amount must be an integer greater than 0"))?,
    };
    let currency = match field(body, "currency") {
        None => return Err(Reply::missing("currency")),
        Some(Value::String(c)) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
            c.clone()
        }
        Some(_) => {
            return Err(Reply::invalid(
                "currency",
                "currency must be a 3-letter upper-case ISO code",
            ))
        }
    };
    let return_url = match field(body, "return_url") {
        None => return Err(Reply::missing("return_url")),
        Some(Value::String(u)) if is_absolute_http_url(u) => u.clone(),
        Some(_) => {
            return Err(Reply::invalid(
                "return_url",
                "return_url must be an absolute http or https URL",
            ))
        }
    };
    let default_locale = match field(body, "default_locale") {
        None => "ja".to_string(),
        Some(Value::String(l)) if ["ja", "en", "ko"].contains(&l.as_str()) => l.clone(),
        Some(_) => {
            return Err(Reply::invalid(
                "default_locale",
                "default_locale must be one of ja, en, ko",
            ))
        }
    };
    let email = optional_string(body, "email", "email")?;
    let payment_types = match field(body, "payment_types") {
        None => DEFAULT_PAYMENT_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect(),
        Some(v) => payment_types(v).ok_or_else(|| {
            Reply::invalid(
                "payment_types",
                "payment_types must be a non-empty array of payment type names",
            )
        })?,
    };
    let external_order_num = match field(body, "payment_data") {
        None => None,
        Some(Value::Object(data)) => optional_string(
            data,
            "external_order_num",
            "payment_data.external_order_num",
        )?,
        Some(_) => {
            return Err(Reply::invalid(
                "payment_data",
                "payment_data must be an object",
            ))
        }
    };
    let metadata = match field(body, "metadata") {
        None => Default::default(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect::<Option<_>>()
            .ok_or_else(|| Reply::invalid("metadata", "metadata values must be strings"))?,
        Some(_) => return Err(Reply::invalid("metadata", "metadata must be an object")),
    };
    let expires_in_seconds = match field(body, "expires_in_seconds") {
        None => MAX_EXPIRES_IN_SECONDS,
        Some(v) => integer(v)
            .filter(|s| (1..=MAX_EXPIRES_IN_SECONDS).contains(s))
            .ok_or_else(|| {
                Reply::invalid(
                    "expires_in_seconds",
                    "expires_in_seconds must be an integer from 1 to 86400",
                )
            })?,
    };
    Ok(NewSession {
        amount,
        currency,
        return_url,
        default_locale,
        email,
        payment_types,
        external_order_num,
        metadata,
        expires_in_seconds,
    })
}

fn is_absolute_http_url(candidate: &str) -> bool {
    url::Url::parse(candidate)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// A non-empty array of `[a-z0-9_]` names, duplicates dropped, order kept.
fn payment_types(value: &Value) -> Option<Vec<String>> {
    let mut types: Vec<String> = Vec::new();
    for item in value.as_array()? {
        let name = item.as_str()?;
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return None;
        }
        if !types.iter().any(|t| t == name) {
            types.push(name.to_string());
        }
    }
    (!types.is_empty()).then_some(types)
}

/// `POST /api/v1/webhook_endpoints` body: `url` (absolute http or https) and `secret`
/// (non-empty), both strings.
fn webhook_endpoint(body: &Map<String, Value>) -> Result<(String, String), Reply> {
    let url = match field(body, "url") {
        None => return Err(Reply::missing("url")),
        Some(Value::String(u)) if is_absolute_http_url(u) => u.clone(),
        Some(_) => {
            return Err(Reply::invalid(
                "url",
                "url must be an absolute http or https URL",
            ))
        }
    };
    let secret = match field(body, "secret") {
        None => return Err(Reply::missing("secret")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(Reply::invalid(
                "secret",
                "secret must be a non-empty string",
            ))
        }
    };
    Ok((url, secret))
}

/// Refund body: `amount` (optional, > 0; checked against what is left later) and
/// `description` (optional string).
fn refund(body: &Map<String, Value>) -> Result<(Option<i64>, Option<String>), Reply> {
    let amount =
        match field(body, "amount") {
            None => None,
            Some(v) => Some(integer(v).filter(|a| *a > 0).ok_or_else(|| {
                Reply::invalid("amount", "amount must be an integer greater than 0")
            })?),
        };
    let description = optional_string(body, "description", "description")?;
    Ok((amount, description))
}
