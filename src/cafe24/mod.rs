//! The Cafe24 side of the wire (PROTOCOL.md §2–§4, §10): request bodies as Cafe24 sends
//! them, `hash_data`, `partner_id`, the callback-URL allow-list, and the redirect back
//! to Cafe24's `return_url`.
//!
//! Requests arrive as `application/x-www-form-urlencoded` or `application/json` (and
//! query strings on GET). Both become [`Fields`]: the exact strings received, in order,
//! so `hash_data` is verified over what Cafe24 signed and never over a re-formatted
//! value. This module never touches the database or KOMOJU.

pub mod admin;
pub mod callback_url;
pub mod cancel_result;
pub mod external_checkout;
pub mod hash_data;
pub mod ids;
pub mod launch;
pub mod notify;
pub mod oauth;
pub mod orders;
pub mod partner_id;
pub mod payment_result;

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::error::ApiError;

/// Longest value accepted in any single field, in bytes.
pub const MAX_FIELD_BYTES: usize = 4096;

/// How much of a request body is read, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes (`BODY_LIMIT_BYTES`).
    pub max_bytes: usize,
    /// Longest time the whole body may take to arrive, counted from the first read
    /// (`BODY_TIMEOUT_SECS`): a client that sends headers and then trickles or stalls the
    /// body gets 408 and its connection closed.
    pub timeout: Duration,
}

/// The fields of one request, as received. Keys are unique; no name or value holds a
/// NUL character (PostgreSQL cannot store one, and no Cafe24 field has one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pairs: Vec<(String, String)>,
}

impl Fields {
    /// Fields from `(name, value)` pairs. `invalid_request` for a repeated name (a hash
    /// over one of two values would be ambiguous), a value over [`MAX_FIELD_BYTES`], or a
    /// NUL character in a name or value.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Fields, ApiError> {
        let mut seen = std::collections::HashSet::new();
        for (k, v) in &pairs {
            if k.contains('\0') || v.contains('\0') {
                return Err(ApiError::invalid(format!(
                    "field {} contains a NUL character",
                    k.escape_debug()
                )));
            }
            if !seen.insert(k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "field {k} is given more than once"
                )));
            }
            if v.len() > MAX_FIELD_BYTES {
                return Err(ApiError::invalid(format!("field {k} is too long")));
            }
        }
        Ok(Fields { pairs })
    }

    /// The value of `name`, if present (an empty value counts as present).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required field: missing or empty is `invalid_request` naming it.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::invalid(format!("{name} is required"))),
        }
    }

    /// An optional field; empty counts as absent.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every field whose name is not in `known`, as a JSON object of strings (kept on
    /// the order, never an error).
    pub fn others(&self, known: &[&str]) -> String {
        let map: BTreeMap<&str, &str> = self
            .pairs
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }

    /// Adds the pairs of `other` whose names are not present yet.
    pub fn merge_missing(&mut self, other: Fields) {
        for (k, v) in other.pairs {
            if self.get(&k).is_none() {
                self.pairs.push((k, v));
            }
        }
    }
}

/// The `mall_id` field, required and well-formed (1 to 50 lowercase letters, digits,
/// `_` or `-`, as Cafe24 names malls). Errors: `invalid_request` saying which.
pub fn mall_id_field(fields: &Fields) -> Result<&str, ApiError> {
    let mall_id = fields.required("mall_id")?;
    if partner_id::is_valid_mall_id(mall_id) {
        Ok(mall_id)
    } else {
        Err(ApiError::invalid(
            "mall_id must be 1 to 50 lowercase letters, digits, '_' or '-'",
        ))
    }
}

/// Reads a request body within `limits` into [`Fields`]: form or JSON by
/// `Content-Type`, an empty body as no fields. Over the size → 413, too slow → 408,
/// another content type or an unparseable body → 400; all `invalid_request`.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits,
) -> Result<Fields, ApiError> {
    let body = read_bytes(req, payload, limits).await?;
    if body.is_empty() {
        return Ok(Fields::default());
    }
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/x-www-form-urlencoded" => parse_form(&body),
        "application/json" => parse_json(&body),
        _ => Err(ApiError::invalid(
            "body must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// The query string's fields, then the body's (form or JSON) for the names the query
/// does not have: callbacks are reached by GET (KOMOJU's redirect) and by POST.
pub async fn query_and_body(
    req: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits,
) -> Result<Fields, ApiError> {
    let mut fields = query(req)?;
    fields.merge_missing(read_body(req, payload, limits).await?);
    Ok(fields)
}

/// The query string's fields (the same rules as a form body: no repeated name, no NUL).
pub fn query(req: &HttpRequest) -> Result<Fields, ApiError> {
    parse_urlencoded(req.query_string().as_bytes(), "query string")
}

/// Reads a raw request body within `limits`: its size is checked against
/// `Content-Length` first, then while reading (over it → 413 `invalid_request`); the
/// whole body must arrive within `limits.timeout` (else 408 `invalid_request`, and the
/// connection is closed).
pub async fn read_bytes(
    req: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits,
) -> Result<web::BytesMut, ApiError> {
    match tokio::time::timeout(limits.timeout, read_within(req, payload, limits.max_bytes)).await {
        Ok(read) => read,
        Err(_) => {
            log::warn!(
                "request body of {} did not arrive within {} s; answered 408",
                req.path(),
                limits.timeout.as_secs_f32()
            );
            Err(ApiError::InvalidRequest {
                message: format!(
                    "request body did not arrive within {} seconds",
                    limits.timeout.as_secs_f32()
                ),
                status: StatusCode::REQUEST_TIMEOUT,
            })
        }
    }
}

async fn read_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || ApiError::InvalidRequest {
        message: format!("request body is larger than {limit} bytes"),
        status: StatusCode::PAYLOAD_TOO_LARGE,
    };
    if let Some(len) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a query string (or form body) into fields.
pub fn parse_form(bytes: &[u8]) -> Result<Fields, ApiError> {
    parse_urlencoded(bytes, "body")
}

fn parse_urlencoded(bytes: &[u8], what: &str) -> Result<Fields, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| ApiError::invalid(format!("{what} is not valid form encoding")))?;
    Fields::from_pairs(pairs)
}

/// Parses a JSON object. String values are taken unescaped; numbers, booleans, objects
/// and arrays keep their exact JSON text (so `3065.00` stays `"3065.00"`); `null` is
/// dropped.
pub fn parse_json(bytes: &[u8]) -> Result<Fields, ApiError> {
    let map: Vec<(String, Box<serde_json::value::RawValue>)> =
        serde_json::from_slice::<OrderedRawMap>(bytes)
            .map_err(|_| ApiError::invalid("body is not a JSON object"))?
            .0;
    // Repeated names are refused even when one of them is `null` (dropped below).
    let mut seen = std::collections::HashSet::new();
    if let Some((k, _)) = map.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(ApiError::invalid(format!(
            "field {} is given more than once",
            k.escape_debug()
        )));
    }
    let mut pairs = Vec::with_capacity(map.len());
    for (k, raw) in map {
        let text = raw.get().trim();
        if text == "null" {
            continue;
        }
        let value = if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map_err(|_| ApiError::invalid(format!("field {k} is not a valid string")))?
        } else {
            text.to_owned()
        };
        pairs.push((k, value));
    }
    Fields::from_pairs(pairs)
}

/// Reads a JSON document into `T` (a mall front's reservation): `invalid_request` when
/// it is not JSON, not of `T`'s shape (the message names the field), or holds a NUL
/// character in any string or key.
pub fn parse_json_document<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| ApiError::invalid("body is not JSON"))?;
    if crate::text::json_holds_nul(&value) {
        return Err(ApiError::invalid("body contains a NUL character"));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid(format!(
            "body is not of the expected shape: {}",
            e.to_string().split(" at line").next().unwrap_or("")
        ))
    })
}

/// A JSON object read as ordered `(key, raw value)` pairs, duplicates preserved (so that
/// [`Fields::from_pairs`] can refuse them).
struct OrderedRawMap(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for OrderedRawMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedRawMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<OrderedRawMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) =
                    m.next_entry::<String, Box<serde_json::value::RawValue>>()?
                {
                    out.push((k, v));
                }
                Ok(OrderedRawMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `base` with `params` appended to its query, form-encoded, joined with `?` or `&` as
/// the URL needs, the fragment kept last; built by [`url::Url`], so the result is the
/// parser's serialisation (no control character, space or raw non-ASCII can reach a
/// `Location` header). Errors: `base` is not an absolute URL (a bug or a row stored
/// before URLs were normalised): logged, `internal_error`.
pub fn append_query(base: &str, params: &[(&str, &str)]) -> Result<String, ApiError> {
    let url = url::Url::parse(base).map_err(|e| {
        log::error!("cannot build a redirect: a stored URL is not an absolute URL ({e})");
        ApiError::Internal
    })?;
    Ok(crate::urls::with_query(url, params).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_their_exact_text() {
        let f = parse_json(br#"{"amount":3065.00,"currency":"PHP","extra_data":{"a":1},"x":null}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.get("amount"), Some("3065.00"));
        assert_eq!(f.get("currency"), Some("PHP"));
        assert_eq!(f.get("extra_data"), Some(r#"{"a":1}"#));
        assert_eq!(f.get("x"), None);
    }

    #[test]
    fn duplicates_and_non_objects_are_refused() {
        assert!(parse_json(br#"{"a":"1","a":"2"}"#).is_err());
        // Found by fuzzing: a null twin was dropped before the duplicate check.
        assert!(parse_json(br#"{"a":null,"a":"x"}"#).is_err());
        assert!(parse_json(b"[1,2]").is_err());
        assert!(parse_form(b"a=1&a=2").is_err());
        assert_eq!(
            parse_form(b"a=1+2&b=%26")
                .map(|f| f.get("b").map(str::to_owned))
                .ok()
                .flatten(),
            Some("&".into())
        );
    }

    #[test]
    fn query_is_appended_with_the_right_separator() {
        let appended = |base: &str, params: &[(&str, &str)]| {
            append_query(base, params).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            appended("https://a.cafe24.com/r", &[("a", "1")]),
            "https://a.cafe24.com/r?a=1"
        );
        assert_eq!(
            appended("https://a.cafe24.com/r?x=1", &[("a", "1 2")]),
            "https://a.cafe24.com/r?x=1&a=1+2"
        );
        assert_eq!(
            appended("https://a.cafe24.com/r?", &[("a", "1")]),
            "https://a.cafe24.com/r?a=1"
        );
        assert_eq!(
            appended("https://a.cafe24.com/r#top", &[("a", "1")]),
            "https://a.cafe24.com/r?a=1#top"
        );
        assert_eq!(
            appended("https://a.cafe24.com/r\tx\n", &[("m", "a\r\nb")]),
            "https://a.cafe24.com/rx?m=a%0D%0Ab"
        );
        assert!(append_query("not a url", &[]).is_err());
    }

    #[test]
    fn others_keeps_unknown_fields() {
        let f = Fields::from_pairs(vec![
            ("order_id".into(), "1".into()),
            ("foo".into(), "bar".into()),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.others(&["order_id"]), r#"{"foo":"bar"}"#);
    }
}
