//! The Cafe24 field reader, JSON (`cafe24::parse_json`).
//!
//! Property: `parse_json` never panics and accepts exactly the JSON objects whose
//! entries, read independently here (strings unescaped, other values as their JSON text,
//! `null` dropped), have unique names, values of at most `MAX_FIELD_BYTES` bytes and no
//! NUL; the Fields it returns hold exactly those entries (`get`, `required`, `optional`,
//! `others`), and parsing `others(&[])` again gives the same values.
#![no_main]

use cafe24_komoju::cafe24::parse_json;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

#[path = "../common/fields.rs"]
mod fields;

/// A JSON object as ordered (key, raw value) entries, duplicates kept.
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The pairs the reader must produce (nulls dropped), and whether a name repeats among
/// all entries, nulls included (then the reader must refuse); `None` when the body is not
/// a JSON object or holds a string value that cannot be decoded.
fn expected_pairs(data: &[u8]) -> Option<(Vec<(String, String)>, bool)> {
    let Entries(entries) = serde_json::from_slice(data).ok()?;
    let mut names = std::collections::HashSet::new();
    let repeated = !entries.iter().all(|(k, _)| names.insert(k.clone()));
    let mut pairs = Vec::new();
    for (k, raw) in entries {
        // Decide by the first character of the raw text, not through serde_json::Value:
        // numbers such as 1e400 are valid JSON that Value cannot hold.
        let text = raw.get().trim();
        if text == "null" {
            continue;
        }
        let value = if text.starts_with('"') {
            serde_json::from_str::<String>(text).ok()?
        } else {
            text.to_owned()
        };
        pairs.push((k, value));
    }
    Some((pairs, repeated))
}

fuzz_target!(|data: &[u8]| {
    let got = parse_json(data);
    let Some((pairs, repeated)) = expected_pairs(data) else {
        assert!(
            got.is_err(),
            "parse_json accepted a body that is not a readable object"
        );
        return;
    };
    let must_accept = !repeated && fields::acceptable(&pairs);
    let f = match got {
        Ok(f) => f,
        Err(e) => {
            assert!(
                !must_accept,
                "parse_json refused acceptable entries {pairs:?}: {e}"
            );
            return;
        }
    };
    fields::assert_holds(&f, &pairs);
    assert!(must_accept, "parse_json accepted {pairs:?}");

    // others(&[]) is itself a JSON object the reader takes back, with the same values.
    let others = f.others(&[]);
    match parse_json(others.as_bytes()) {
        Ok(again) => {
            for (k, v) in &pairs {
                assert_eq!(again.get(k), Some(v.as_str()), "others round trip of {k:?}");
            }
        }
        Err(e) => panic!("others(&[]) is refused by parse_json: {e}: {others}"),
    }
});
