//! The callback-URL check (`cafe24::callback_url::AllowedHosts::check`).
//!
//! The fuzz string is checked as given and behind the prefixes `https://`,
//! `https://demomall.cafe24shop.com` and `http://localhost` (to reach host, port, path
//! and userinfo handling), against the default list and the development list, with and
//! without merchant hosts. Properties of every accepted URL `u`:
//! - `u.as_str()` holds no control character, no whitespace and no backslash;
//! - its scheme is https, or http only in development mode on 127.0.0.1/localhost/[::1];
//! - it has no userinfo; off loopback, no explicit port and a host that ends with an
//!   allowed suffix (`.cafe24.com`, `.cafe24shop.com`, `.cafe24api.com`, or the
//!   merchant's `.example.com`) with a label before it, or is the merchant's exact host;
//! - checking `u.as_str()` again gives `Ok(u)` (idempotent: what is stored passes the
//!   check again when it is used);
//!
//! and of every input: one holding `\r`, `\n`, `\t`, NUL or `\`, or with a leading or
//! trailing space, is refused (the url crate would silently drop or rewrite those).
#![no_main]

use cafe24_komoju::cafe24::callback_url::{AllowedHosts, CallbackUrlError, DEFAULT_ALLOWED_HOSTS};
use libfuzzer_sys::fuzz_target;

const DEFAULT_SUFFIXES: [&str; 3] = [".cafe24.com", ".cafe24shop.com", ".cafe24api.com"];
const MERCHANT_EXACT: &str = "shop.example.jp";
const MERCHANT_SUFFIX: &str = ".example.com";

fn suffix_matches(suffix: &str, host: &str) -> bool {
    host.len() > suffix.len() && host.ends_with(suffix)
}

fn check_one(hosts: &AllowedHosts, dev: bool, input: &str, merchant: &[String]) {
    let result = hosts.check(input, merchant);

    let forbidden = input.contains(['\r', '\n', '\t', '\0', '\\'])
        || input.starts_with(' ')
        || input.ends_with(' ');
    if forbidden {
        assert!(result.is_err(), "accepted {input:?} -> {result:?}");
    }

    let Ok(u) = result else { return };
    let text = u.as_str();
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
        "accepted URL {text:?} (from {input:?}) holds a control, space or backslash"
    );
    assert!(
        u.username().is_empty() && u.password().is_none(),
        "userinfo in {text:?}"
    );
    let host = u.host_str().unwrap_or_default();
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    match u.scheme() {
        "https" => {}
        "http" => assert!(dev && loopback, "http accepted: {text:?} (from {input:?})"),
        other => panic!("scheme {other} accepted: {text:?}"),
    }
    if !(dev && loopback) {
        assert_eq!(u.port(), None, "port in {text:?}");
        let allowed = DEFAULT_SUFFIXES.iter().any(|s| suffix_matches(s, host))
            || (!merchant.is_empty()
                && (host == MERCHANT_EXACT || suffix_matches(MERCHANT_SUFFIX, host)));
        assert!(allowed, "host {host:?} accepted: {text:?} (from {input:?})");
        assert!(!host.ends_with('.'), "trailing dot in {text:?}");
    }
    let again = hosts.check(text, merchant);
    assert_eq!(
        again,
        Ok(u.clone()),
        "not idempotent: {input:?} -> {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let production = AllowedHosts::default();
    let development = AllowedHosts::new(DEFAULT_ALLOWED_HOSTS, true);
    let merchant = vec![MERCHANT_EXACT.to_owned(), MERCHANT_SUFFIX.to_owned()];
    let inputs = [
        s.to_string(),
        format!("https://{s}"),
        format!("https://demomall.cafe24shop.com{s}"),
        format!("http://localhost{s}"),
    ];
    for input in &inputs {
        for (hosts, dev) in [(&production, false), (&development, true)] {
            check_one(hosts, dev, input, &[]);
            check_one(hosts, dev, input, &merchant);
        }
    }
});
