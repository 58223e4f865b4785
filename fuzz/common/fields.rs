//! Checks shared by the `fields_form` and `fields_json` targets.

use cafe24_komoju::cafe24::{Fields, MAX_FIELD_BYTES};

/// Whether the reader must accept these pairs (already decoded, nulls dropped): names
/// unique, no value over `MAX_FIELD_BYTES` bytes, no NUL in a name or a value.
pub fn acceptable(pairs: &[(String, String)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    pairs.iter().all(|(k, v)| {
        seen.insert(k.as_str())
            && v.len() <= MAX_FIELD_BYTES
            && !k.contains('\0')
            && !v.contains('\0')
    })
}

/// `fields` holds exactly `expected` (in that order): every name once, with its value,
/// and the accessors agree with it.
pub fn assert_holds(fields: &Fields, expected: &[(String, String)]) {
    for (k, v) in expected {
        assert!(!k.contains('\0'), "a name holds NUL: {k:?}");
        assert!(!v.contains('\0'), "the value of {k:?} holds NUL: {v:?}");
        assert!(
            v.len() <= MAX_FIELD_BYTES,
            "the value of {k:?} is {} bytes",
            v.len()
        );
        assert_eq!(fields.get(k), Some(v.as_str()), "get({k:?})");
        let non_empty = (!v.is_empty()).then_some(v.as_str());
        assert_eq!(fields.required(k).ok(), non_empty, "required({k:?})");
        assert_eq!(fields.optional(k), non_empty, "optional({k:?})");
    }
    // A name longer than every name present is absent.
    let absent = expected
        .iter()
        .map(|(k, _)| k.as_str())
        .max_by_key(|k| k.len())
        .map_or_else(|| "x".to_owned(), |k| format!("{k}x"));
    assert_eq!(fields.get(&absent), None);
    assert!(fields.required(&absent).is_err());

    // others(&[]) is a JSON object of strings holding every field.
    let all = others_map(fields, &[]);
    assert_eq!(
        all.len(),
        expected.len(),
        "others(&[]) has one entry per field"
    );
    for (k, v) in expected {
        assert_eq!(
            all.get(k).map(String::as_str),
            Some(v.as_str()),
            "others[{k:?}]"
        );
    }
    // others(known) leaves the known names out.
    if let Some((first, _)) = expected.first() {
        let rest = others_map(fields, &[first.as_str()]);
        assert!(!rest.contains_key(first));
        assert_eq!(rest.len(), expected.len() - 1);
    }

    // The same pairs build the same Fields.
    match Fields::from_pairs(expected.to_vec()) {
        Ok(rebuilt) => assert_eq!(&rebuilt, fields, "from_pairs of the same pairs"),
        Err(e) => panic!("from_pairs refused the pairs a parser accepted: {e}"),
    }
}

fn others_map(fields: &Fields, known: &[&str]) -> std::collections::BTreeMap<String, String> {
    let text = fields.others(known);
    match serde_json::from_str(&text) {
        Ok(map) => map,
        Err(e) => panic!("others({known:?}) is not a JSON object of strings: {e}: {text}"),
    }
}
