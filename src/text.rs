//! Text rules every input shares, whoever sent it (Cafe24, a mall front, KOMOJU): what
//! may be stored and used in a query on both backends. PostgreSQL refuses U+0000 in
//! `TEXT`, so a NUL must be refused (or dropped) before any query, never reach one.

/// Whether any string or object key of `v` holds U+0000.
pub fn json_holds_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_holds_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains('\0') || json_holds_nul(v)),
        _ => false,
    }
}

/// `s` when it is non-empty, at most `max` bytes long and free of control characters
/// (NUL included).
pub fn printable(s: &str, max: usize) -> Option<&str> {
    (!s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_nested_strings_and_keys() {
        assert!(json_holds_nul(&serde_json::json!({"a": ["x", "y\u{0}"]})));
        assert!(json_holds_nul(&serde_json::json!({"a\u{0}": 1})));
        assert!(!json_holds_nul(&serde_json::json!({"a": ["x", 1, null]})));
    }

    #[test]
    fn printable_refuses_empty_long_and_control_text() {
        assert_eq!(printable("ev_1", 10), Some("ev_1"));
        assert_eq!(printable("", 10), None);
        assert_eq!(printable("abc", 2), None);
        assert_eq!(printable("a\tb", 10), None);
        assert_eq!(printable("a\u{7f}", 10), None);
    }
}
