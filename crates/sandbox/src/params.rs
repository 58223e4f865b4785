//! Request bodies of the stand-in's API: JSON objects, or form-encoded bodies with
//! bracket keys (`payment_types[]=…`, `payment_data[external_order_num]=…`) turned into
//! the same JSON shape (shared/reference/komoju-api.md §1: KOMOJU takes both), and the
//! validation of each endpoint's fields into KOMOJU's 422 errors.

use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use actix_web::http::StatusCode;
use serde_json::{Map, Value};

use super::reply::Reply;
use super::state::{Capture, NewSession};

/// KOMOJU's default and maximum session lifetime (SDK
/// `CreateSessionRequestWithPaymentMode.expires_in_seconds`: 86,400).
const MAX_EXPIRES_IN_SECONDS: i64 = 86_400;
/// What a session without `payment_types` offers: "all activated payment methods" (SDK);
/// the stand-in's merchants have cards and konbini activated.
const DEFAULT_PAYMENT_TYPES: [&str; 2] = ["credit_card", "konbini"];

/// A JSON object body, or a form-encoded one. Empty → `{}`.
pub(crate) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Reply> {
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

/// An optional integer greater than 0.
fn positive(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, Reply> {
    match field(body, name) {
        None => Ok(None),
        Some(v) => integer(v).filter(|a| *a > 0).map(Some).ok_or_else(|| {
            Reply::invalid(name, &format!("{name} must be an integer greater than 0"))
        }),
    }
}

/// `POST /sessions` (SDK `CreateSessionRequestWithPaymentMode`): `mode` absent or
/// `payment` (the stand-in does not emulate the `customer` modes), `amount`, `currency`,
/// `return_url`, `default_locale`, `email`, `payment_types`, `payment_data`
/// (`external_order_num`, `capture`), `metadata`, `expires_in_seconds`.
pub(crate) fn new_session(body: &Map<String, Value>) -> Result<NewSession, Reply> {
    match field(body, "mode") {
        None => {}
        Some(Value::String(m)) if m == "payment" => {}
        Some(_) => {
            return Err(Reply::invalid(
                "mode",
                "mode must be payment (the sandbox does not emulate customer modes)",
            ))
        }
    }
    let amount = positive(body, "amount")?.ok_or_else(|| Reply::missing("amount"))?;
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
    let (external_order_num, capture) = payment_data(body)?;
    Ok(NewSession {
        amount,
        currency,
        return_url,
        default_locale: default_locale(body)?,
        email: optional_string(body, "email", "email")?,
        payment_types: match field(body, "payment_types") {
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
        },
        external_order_num,
        metadata: metadata(body)?,
        expires_in_seconds: expires_in_seconds(body)?,
        capture,
    })
}

fn default_locale(body: &Map<String, Value>) -> Result<String, Reply> {
    match field(body, "default_locale") {
        None => Ok("ja".to_string()),
        Some(Value::String(l)) if ["ja", "en", "ko"].contains(&l.as_str()) => Ok(l.clone()),
        Some(_) => Err(Reply::invalid(
            "default_locale",
            "default_locale must be one of ja, en, ko",
        )),
    }
}

/// `payment_data.external_order_num` and `payment_data.capture` (`auto` | `manual`,
/// default `auto`).
fn payment_data(body: &Map<String, Value>) -> Result<(Option<String>, Capture), Reply> {
    let data = match field(body, "payment_data") {
        None => return Ok((None, Capture::Auto)),
        Some(Value::Object(data)) => data,
        Some(_) => {
            return Err(Reply::invalid(
                "payment_data",
                "payment_data must be an object",
            ))
        }
    };
    let num = optional_string(
        data,
        "external_order_num",
        "payment_data.external_order_num",
    )?;
    let capture = match field(data, "capture") {
        None => Capture::Auto,
        Some(Value::String(c)) if c == "auto" => Capture::Auto,
        Some(Value::String(c)) if c == "manual" => Capture::Manual,
        Some(_) => {
            return Err(Reply::invalid(
                "payment_data.capture",
                "payment_data.capture must be auto or manual",
            ))
        }
    };
    Ok((num, capture))
}

fn metadata(
    body: &Map<String, Value>,
) -> Result<std::collections::BTreeMap<String, String>, Reply> {
    match field(body, "metadata") {
        None => Ok(Default::default()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect::<Option<_>>()
            .ok_or_else(|| Reply::invalid("metadata", "metadata values must be strings")),
        Some(_) => Err(Reply::invalid("metadata", "metadata must be an object")),
    }
}

fn expires_in_seconds(body: &Map<String, Value>) -> Result<i64, Reply> {
    match field(body, "expires_in_seconds") {
        None => Ok(MAX_EXPIRES_IN_SECONDS),
        Some(v) => integer(v)
            .filter(|s| (1..=MAX_EXPIRES_IN_SECONDS).contains(s))
            .ok_or_else(|| {
                Reply::invalid(
                    "expires_in_seconds",
                    "expires_in_seconds must be an integer from 1 to 86400",
                )
            }),
    }
}

pub(crate) fn is_absolute_http_url(candidate: &str) -> bool {
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
pub(crate) fn webhook_endpoint(body: &Map<String, Value>) -> Result<(String, String), Reply> {
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

/// Refund body (SDK `RefundPaymentRequest`): `amount` (optional, > 0; checked against
/// what is left later) and `description` (optional string).
pub(crate) fn refund(body: &Map<String, Value>) -> Result<(Option<i64>, Option<String>), Reply> {
    let amount = positive(body, "amount")?;
    let description = optional_string(body, "description", "description")?;
    Ok((amount, description))
}

/// Capture body (SDK `CapturePaymentRequest`): `amount` optional, > 0.
pub(crate) fn capture(body: &Map<String, Value>) -> Result<Option<i64>, Reply> {
    positive(body, "amount")
}
