//! The Cafe24 field reader, form encoding (`cafe24::parse_form`).
//!
//! Property: `parse_form` never panics and accepts exactly the bodies whose decoded pairs
//! (decoded independently with `serde_urlencoded`) have unique names, values of at most
//! `MAX_FIELD_BYTES` bytes and no NUL; the Fields it returns hold exactly those pairs
//! (`get`, `required`, `optional`, `others`). Round trips: re-encoding the pairs as a
//! form, or as a JSON object of strings for `parse_json`, reads back the same values.
#![no_main]

use cafe24_komoju::cafe24::{parse_form, parse_json};
use libfuzzer_sys::fuzz_target;

#[path = "../common/fields.rs"]
mod fields;

fuzz_target!(|data: &[u8]| {
    let got = parse_form(data);
    let decoded: Result<Vec<(String, String)>, _> = serde_urlencoded::from_bytes(data);
    let Ok(pairs) = decoded else {
        assert!(
            got.is_err(),
            "parse_form accepted a body that does not decode"
        );
        return;
    };
    let must_accept = fields::acceptable(&pairs);
    let f = match got {
        Ok(f) => f,
        Err(e) => {
            assert!(
                !must_accept,
                "parse_form refused acceptable pairs {pairs:?}: {e}"
            );
            return;
        }
    };
    fields::assert_holds(&f, &pairs);
    assert!(must_accept, "parse_form accepted {pairs:?}");

    // form -> form
    let encoded = match serde_urlencoded::to_string(&pairs) {
        Ok(s) => s,
        Err(e) => panic!("pairs cannot be re-encoded: {e}"),
    };
    match parse_form(encoded.as_bytes()) {
        Ok(again) => assert_eq!(again, f, "form re-encoding: {encoded:?}"),
        Err(e) => panic!("the re-encoded form {encoded:?} is refused: {e}"),
    }

    // form -> JSON object of strings
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let json = serde_json::Value::Object(object.clone()).to_string();
    let in_json_order: Vec<(String, String)> = object
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    match parse_json(json.as_bytes()) {
        Ok(from_json) => fields::assert_holds(&from_json, &in_json_order),
        Err(e) => panic!("the JSON form of accepted fields is refused: {e}: {json}"),
    }
});
