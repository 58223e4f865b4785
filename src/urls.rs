//! Building URLs with [`url::Url`], never by joining strings: a path under a base (each
//! segment percent-encoded as a path segment) and a query appended (form-encoded, `?` or
//! `&` as the URL needs, the fragment kept last). What comes out is the parser's
//! serialisation: no control character, space or raw non-ASCII reaches a header.

use url::Url;

/// `base` with `segments` appended to its path (a trailing empty segment of `base`, the
/// `/` of `https://host/`, is dropped first). `https://x.example/pg` + `["api", "v1"]` is
/// `https://x.example/pg/api/v1`.
pub fn with_path(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// An absolute path `/a/b/c` of `segments`, each percent-encoded as a segment (a `/` in
/// one stays inside it).
pub fn path(segments: &[&str]) -> String {
    let base = Url::parse("http://localhost/").unwrap_or_else(|_| unreachable!("a fixed URL"));
    with_path(&base, segments).path().to_owned()
}

/// `url` with `params` appended to its query, form-encoded (`1 2` is `1+2`).
pub fn with_query(mut url: Url, params: &[(&str, &str)]) -> Url {
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn paths_are_appended_segment_by_segment() {
        assert_eq!(
            with_path(&url("https://x.example"), &["api", "v1"]).as_str(),
            "https://x.example/api/v1"
        );
        assert_eq!(
            with_path(&url("https://x.example/pg/"), &["api", "shop", "pgsuccess"]).as_str(),
            "https://x.example/pg/api/shop/pgsuccess"
        );
        assert_eq!(
            with_path(&url("https://x.example/pg"), &["payments", "a/b?c"]).as_str(),
            "https://x.example/pg/payments/a%2Fb%3Fc"
        );
    }

    #[test]
    fn queries_are_appended_form_encoded() {
        assert_eq!(
            with_query(url("https://x.example/r?x=1#top"), &[("a", "1 2&")]).as_str(),
            "https://x.example/r?x=1&a=1+2%26#top"
        );
        assert_eq!(
            with_query(url("https://x.example/r"), &[]).as_str(),
            "https://x.example/r"
        );
    }
}
