//! The Cafe24 side of the wire (PROTOCOL.md §2–§4, §10): request bodies as Cafe24 sends
//! them, `hash_data`, `partner_id`, the callback-URL allow-list, and the redirect back
//! to Cafe24's `return_url`.
//!
//! Requests arrive as `application/x-www-form-urlencoded` or `application/json` (and
//! query strings on GET). Both become [`Fields`]: the exact strings received, in order,
//! so `hash_data` is verified over what Cafe24 signed and never over a re-formatted
//! value. This module never touches the database or KOMOJU.

pub mod callback_url;
pub mod hash_data;
pub mod partner_id;

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::error::ApiError;

/// Longest value accepted in any single field, in bytes.
pub const MAX_FIELD_BYTES: usize = 4096;

/// The fields of one request, as received. Keys are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pairs: Vec<(String, String)>,
}

impl Fields {
    /// Fields from `(name, value)` pairs; a repeated name is `invalid_request` (a hash
    /// over one of two values would be ambiguous).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Fields, ApiError> {
        let mut seen = std::collections::HashSet::new();
        for (k, v) in &pairs {
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

/// Reads a request body of at most `limit` bytes into [`Fields`]: form or JSON by
/// `Content-Type`, an empty body as no fields. Over the limit → 413 `invalid_request`;
/// another content type or an unparseable body → 400 `invalid_request`.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Fields, ApiError> {
    let body = read_bytes(req, payload, limit).await?;
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
    limit: usize,
) -> Result<Fields, ApiError> {
    let mut fields = parse_form(req.query_string().as_bytes())?;
    fields.merge_missing(read_body(req, payload, limit).await?);
    Ok(fields)
}

/// Reads a raw request body of at most `limit` bytes (checked against `Content-Length`
/// first, then while reading). Over the limit → 413 `invalid_request`.
pub async fn read_bytes(
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
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| ApiError::invalid("body is not valid form encoding"))?;
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

/// Appends query parameters to `base`, joining with `?` or `&` as the URL needs and
/// keeping any fragment last. Values are form-encoded.
pub fn append_query(base: &str, params: &[(&str, &str)]) -> String {
    let (without_fragment, fragment) = match base.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (base, None),
    };
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    let mut out = String::with_capacity(base.len() + encoded.len() + 2);
    out.push_str(without_fragment);
    if !encoded.is_empty() {
        if without_fragment.contains('?') {
            if !without_fragment.ends_with('?') && !without_fragment.ends_with('&') {
                out.push('&');
            }
        } else {
            out.push('?');
        }
        out.push_str(&encoded);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
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
        assert_eq!(
            append_query("https://a.cafe24.com/r", &[("a", "1")]),
            "https://a.cafe24.com/r?a=1"
        );
        assert_eq!(
            append_query("https://a.cafe24.com/r?x=1", &[("a", "1 2")]),
            "https://a.cafe24.com/r?x=1&a=1+2"
        );
        assert_eq!(
            append_query("https://a.cafe24.com/r?", &[("a", "1")]),
            "https://a.cafe24.com/r?a=1"
        );
        assert_eq!(
            append_query("https://a.cafe24.com/r#top", &[("a", "1")]),
            "https://a.cafe24.com/r?a=1#top"
        );
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
