//! Allowed callback hosts for Cafe24 URLs (PROTOCOL §10).
//!
//! This module owns the one check every callback URL passes before it is stored or used:
//! `return_url`, `return_noty_url`, `cancel_noty_url` and the external-checkout URLs.
//! What is stored and used afterwards is the URL as the parser serialised it
//! ([`url::Url::as_str`]), never the raw text: parsers disagree on raw text (a backslash,
//! a missing `//`, a tab inside a host), they do not on its serialisation. Raw text the
//! parser would silently repair is refused outright: control characters, surrounding
//! spaces, backslashes, and a scheme not followed by exactly `//`. A URL
//! is accepted when it is absolute `https` on the default port, has no userinfo, names a
//! host (not an IP address), and that host equals an allowed host or ends with an allowed
//! `.suffix`. Hosts are compared after the `url` crate has parsed and normalized them
//! (lowercase, IDNA to punycode), never as substrings of the URL text. Development mode
//! also admits `http` or `https` on `127.0.0.1`, `[::1]` and `localhost`, any port. This
//! module never fetches a URL, never follows redirects, and never echoes the URL in its
//! error messages.

use url::{Host, Url};

/// The §10 default of `CAFE24_ALLOWED_HOSTS`.
pub const DEFAULT_ALLOWED_HOSTS: &str = ".cafe24.com,.cafe24shop.com,.cafe24api.com";

/// Longest callback URL accepted, in bytes.
const MAX_URL_LEN: usize = 2048;

/// The allow-list of §10: suffix entries (`.cafe24.com`) and exact hosts (`shop.example.jp`),
/// plus whether development-mode loopback URLs are admitted.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    suffixes: Vec<String>,
    allow_loopback_http: bool,
}

/// Why a callback URL was refused. Messages are safe to show to the caller: none of them
/// repeats the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackUrlError {
    /// Longer than 2048 bytes, as received or as serialised (percent-encoded).
    #[error("callback URL is longer than 2048 characters")]
    TooLong,
    /// Not parseable as an absolute URL.
    #[error("callback URL is not a valid absolute URL")]
    Invalid,
    /// Raw text a parser would have to repair: a control character, a backslash, a
    /// leading or trailing space, or not exactly `//` after the scheme.
    #[error("callback URL must not contain control characters or backslashes, nor start or end with a space, and needs exactly // after the scheme")]
    NotCanonical,
    /// Scheme other than `https` (or `http` on loopback in development mode).
    #[error("callback URL must use https")]
    SchemeNotAllowed,
    /// Contains `user:password@` or `user@`.
    #[error("callback URL must not contain a user name or password")]
    HasUserinfo,
    /// No host. The `url` crate already refuses http(s) URLs without one; kept as a guard.
    #[error("callback URL has no host")]
    NoHost,
    /// The host is an IP address (other than loopback in development mode).
    #[error("callback URL host must be a domain name, not an IP address")]
    IpAddressHost,
    /// An explicit non-default port on a non-loopback host.
    #[error("callback URL must use the default https port")]
    PortNotAllowed,
    /// The host is not in the allowed list nor registered on the merchant.
    #[error("callback URL host is not allowed")]
    HostNotAllowed,
}

/// Normalize one allow-list entry: trim, lowercase, IDNA to punycode through the `url`
/// crate's host parser. Returns `None` for empty, malformed, IP or bare-dot entries, and
/// for entries with a trailing dot (hosts with one are never allowed, see `check`).
fn normalize_entry(entry: &str) -> Option<String> {
    let entry = entry.trim().to_lowercase();
    let (is_suffix, name) = match entry.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, entry.as_str()),
    };
    if name.is_empty() || name.starts_with('.') || name.ends_with('.') {
        return None;
    }
    let Ok(Host::Domain(domain)) = Host::parse(name) else {
        return None;
    };
    if !is_plain_domain(&domain) {
        return None;
    }
    Some(if is_suffix {
        format!(".{domain}")
    } else {
        domain
    })
}

/// A domain with no empty label: no leading, trailing or doubled dot.
fn is_plain_domain(domain: &str) -> bool {
    !domain.is_empty() && domain.split('.').all(|label| !label.is_empty())
}

/// Whether a normalized `host` matches a normalized entry: a `.suffix` entry matches hosts
/// that end with it and have at least one more label before it; any other entry matches
/// only itself.
fn entry_matches(entry: &str, host: &str) -> bool {
    if entry.starts_with('.') {
        host.len() > entry.len() && host.ends_with(entry)
    } else {
        host == entry
    }
}

impl AllowedHosts {
    /// Build the list from the comma-separated `CAFE24_ALLOWED_HOSTS` setting, e.g.
    /// `".cafe24.com,.cafe24shop.com,.cafe24api.com"`.
    ///
    /// An entry starting with `.` is a suffix: `.cafe24.com` matches `demomall.cafe24.com`
    /// but not `cafe24.com`, `evilcafe24.com` or `x.cafe24.com.evil.example`. An entry
    /// without a leading `.` matches that exact host. Entries are trimmed, lowercased and
    /// IDNA-normalized; empty, malformed and IP-address entries are ignored.
    /// `allow_loopback_http` is development mode (see [`AllowedHosts::check`]).
    pub fn new(list: &str, allow_loopback_http: bool) -> AllowedHosts {
        let mut suffixes: Vec<String> = Vec::new();
        for entry in list.split(',').filter_map(normalize_entry) {
            if !suffixes.contains(&entry) {
                suffixes.push(entry);
            }
        }
        AllowedHosts {
            suffixes,
            allow_loopback_http,
        }
    }

    /// Check a callback URL; returns the parsed URL on success.
    ///
    /// `merchant_hosts` are extra entries registered on the merchant, by the same rules as
    /// [`AllowedHosts::new`] (exact hosts, or `.suffix`).
    ///
    /// Rules: at most 2048 bytes; no ASCII control character or backslash, no leading or
    /// trailing space; absolute; scheme `https`, followed by exactly `//`; no userinfo;
    /// host a domain name
    /// (not an IP address, not ending with `.`); no explicit non-default port; host allowed.
    /// In development mode (`allow_loopback_http`), `127.0.0.1`, `[::1]` and `localhost`
    /// are also accepted over `http` or `https` on any port.
    ///
    /// Errors: the first failed rule as a [`CallbackUrlError`].
    pub fn check(&self, url: &str, merchant_hosts: &[String]) -> Result<Url, CallbackUrlError> {
        let parsed = parse_canonical(url)?;
        let scheme = parsed.scheme();
        let host = parsed.host().ok_or(CallbackUrlError::NoHost)?;
        let is_loopback = match &host {
            Host::Ipv4(ip) => ip.octets() == [127, 0, 0, 1],
            Host::Ipv6(ip) => ip.is_loopback(),
            Host::Domain(domain) => *domain == "localhost",
        };
        if self.allow_loopback_http && is_loopback {
            // Development mode: http or https, any port.
            return Ok(parsed);
        }
        if scheme != "https" {
            return Err(CallbackUrlError::SchemeNotAllowed);
        }
        let domain = match host {
            Host::Domain(domain) => domain,
            Host::Ipv4(_) | Host::Ipv6(_) => return Err(CallbackUrlError::IpAddressHost),
        };
        // `port()` is `None` when the URL names no port or the scheme's default (443).
        if parsed.port().is_some() {
            return Err(CallbackUrlError::PortNotAllowed);
        }
        // A trailing dot ("demomall.cafe24.com.") or an empty label is never allowed.
        if !is_plain_domain(domain) {
            return Err(CallbackUrlError::HostNotAllowed);
        }
        if self.allows(domain, merchant_hosts) {
            Ok(parsed)
        } else {
            Err(CallbackUrlError::HostNotAllowed)
        }
    }

    /// Whether `domain` is on the service's list or the merchant's extra entries.
    fn allows(&self, domain: &str, merchant_hosts: &[String]) -> bool {
        self.suffixes
            .iter()
            .any(|entry| entry_matches(entry, domain))
            || merchant_hosts
                .iter()
                .filter_map(|entry| normalize_entry(entry))
                .any(|entry| entry_matches(&entry, domain))
    }

    /// [`AllowedHosts::check`] of the request field `name`, answering the URL to store:
    /// its serialisation ([`Url::as_str`]), never the raw text. Errors:
    /// `url_not_allowed` naming the field and the rule.
    pub fn check_field(
        &self,
        name: &str,
        url: &str,
        merchant_hosts: &[String],
    ) -> Result<String, crate::error::ApiError> {
        self.check(url, merchant_hosts)
            .map(String::from)
            .map_err(|e| crate::error::ApiError::UrlNotAllowed(format!("{name}: {e}")))
    }

    /// The normalized entries, in the order given: `.suffix` entries and exact hosts.
    pub fn suffixes(&self) -> &[String] {
        &self.suffixes
    }

    /// Whether development-mode loopback URLs are admitted.
    pub fn allows_loopback_http(&self) -> bool {
        self.allow_loopback_http
    }
}

impl Default for AllowedHosts {
    /// The §10 default list ([`DEFAULT_ALLOWED_HOSTS`]), development loopback off.
    fn default() -> AllowedHosts {
        AllowedHosts::new(DEFAULT_ALLOWED_HOSTS, false)
    }
}

/// The first rules of [`AllowedHosts::check`]: length (raw and serialised), no control
/// character, backslash or surrounding space, parses, `http` or `https` written with
/// exactly `//`, no userinfo.
fn parse_canonical(url: &str) -> Result<Url, CallbackUrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(CallbackUrlError::TooLong);
    }
    // What a parser would strip or reinterpret: controls anywhere (tab and newline are
    // silently removed), a backslash (read as `/` by browsers, not by others),
    // surrounding spaces (trimmed).
    if url.bytes().any(|b| b.is_ascii_control() || b == b'\\')
        || url.starts_with(' ')
        || url.ends_with(' ')
    {
        return Err(CallbackUrlError::NotCanonical);
    }
    let parsed = Url::parse(url).map_err(|_| CallbackUrlError::Invalid)?;
    // What is stored is the serialisation, where a raw non-ASCII byte becomes three:
    // it must pass this check again (the outbox re-checks before every send).
    if parsed.as_str().len() > MAX_URL_LEN {
        return Err(CallbackUrlError::TooLong);
    }
    let scheme = parsed.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(CallbackUrlError::SchemeNotAllowed);
    }
    // `https:host/` and `https:///host/` parse as `https://host/`; only the written
    // form is accepted.
    let authority = url.get(scheme.len()..).and_then(|r| r.strip_prefix("://"));
    if !authority.is_some_and(|a| !a.starts_with('/')) {
        return Err(CallbackUrlError::NotCanonical);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CallbackUrlError::HasUserinfo);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> AllowedHosts {
        AllowedHosts::default()
    }

    fn development() -> AllowedHosts {
        AllowedHosts::new(DEFAULT_ALLOWED_HOSTS, true)
    }

    fn check(hosts: &AllowedHosts, url: &str) -> Result<String, CallbackUrlError> {
        hosts.check(url, &[]).map(|parsed| parsed.to_string())
    }

    #[test]
    fn cafe24_return_url_is_allowed() {
        let url = "https://demomall.cafe24shop.com/Pay/Recv/openpg/PayReceiveRtnPage.php";
        assert_eq!(check(&production(), url), Ok(url.to_owned()));
        assert_eq!(
            check(&production(), "https://demomall.cafe24.com/x?a=1&b=2"),
            Ok("https://demomall.cafe24.com/x?a=1&b=2".to_owned())
        );
        assert!(check(&production(), "https://a.b.cafe24api.com/").is_ok());
    }

    #[test]
    fn lookalike_hosts_are_rejected() {
        for url in [
            "https://x.cafe24.com.evil.example/",
            "https://evilcafe24.com/",
            "https://cafe24.com/",
            "https://evil.example/.cafe24.com",
            "https://evil.example/?h=x.cafe24.com",
            "https://evil.example/#demomall.cafe24.com",
            "https://cafe24.com.evil.example/",
        ] {
            assert_eq!(
                check(&production(), url),
                Err(CallbackUrlError::HostNotAllowed),
                "{url}"
            );
        }
    }

    #[test]
    fn http_is_rejected_outside_loopback_dev() {
        assert_eq!(
            check(&production(), "http://demomall.cafe24.com/"),
            Err(CallbackUrlError::SchemeNotAllowed)
        );
        assert_eq!(
            check(&development(), "http://demomall.cafe24.com/"),
            Err(CallbackUrlError::SchemeNotAllowed)
        );
    }

    #[test]
    fn other_schemes_are_rejected() {
        for url in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://demomall.cafe24.com/",
            "file:///etc/passwd",
            "wss://demomall.cafe24.com/",
        ] {
            assert_eq!(
                check(&development(), url),
                Err(CallbackUrlError::SchemeNotAllowed),
                "{url}"
            );
        }
    }

    #[test]
    fn userinfo_is_rejected() {
        assert_eq!(
            check(&production(), "https://demomall.cafe24.com@evil.example/"),
            Err(CallbackUrlError::HasUserinfo)
        );
        assert_eq!(
            check(&production(), "https://user:pw@demomall.cafe24.com/"),
            Err(CallbackUrlError::HasUserinfo)
        );
        assert_eq!(
            check(&production(), "https://:pw@demomall.cafe24.com/"),
            Err(CallbackUrlError::HasUserinfo)
        );
    }

    #[test]
    fn loopback_only_in_development() {
        assert_eq!(
            check(&production(), "https://127.0.0.1/"),
            Err(CallbackUrlError::IpAddressHost)
        );
        assert_eq!(
            check(&production(), "http://127.0.0.1:9000/x"),
            Err(CallbackUrlError::SchemeNotAllowed)
        );
        assert_eq!(
            check(&production(), "https://localhost/"),
            Err(CallbackUrlError::HostNotAllowed)
        );
        assert_eq!(
            check(&development(), "http://127.0.0.1:9000/x"),
            Ok("http://127.0.0.1:9000/x".to_owned())
        );
        assert!(check(&development(), "http://localhost:1234/").is_ok());
        assert!(check(&development(), "https://localhost/").is_ok());
        assert!(check(&development(), "http://[::1]:8080/").is_ok());
        assert!(development().allows_loopback_http());
        assert!(!production().allows_loopback_http());
    }

    #[test]
    fn ip_hosts_are_rejected() {
        for url in [
            "https://10.0.0.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://[2001:db8::1]/",
            "https://[::1]/",
            "https://169.254.169.254/",
        ] {
            assert_eq!(
                check(&production(), url),
                Err(CallbackUrlError::IpAddressHost),
                "{url}"
            );
        }
        // Other private addresses stay refused in development mode.
        assert_eq!(
            check(&development(), "http://10.0.0.1/"),
            Err(CallbackUrlError::SchemeNotAllowed)
        );
        assert_eq!(
            check(&development(), "https://10.0.0.1/"),
            Err(CallbackUrlError::IpAddressHost)
        );
        assert_eq!(
            check(&development(), "https://127.0.0.2/"),
            Err(CallbackUrlError::IpAddressHost)
        );
    }

    #[test]
    fn hosts_are_compared_normalized() {
        assert_eq!(
            check(&production(), "https://DemoMall.CAFE24.com/"),
            Ok("https://demomall.cafe24.com/".to_owned())
        );
        let hosts = AllowedHosts::new(" .CAFE24.com , ,shop.example.jp,,", false);
        assert_eq!(hosts.suffixes(), [".cafe24.com", "shop.example.jp"]);
        assert!(check(&hosts, "https://demomall.cafe24.com/").is_ok());
        assert!(check(&hosts, "https://shop.example.jp/").is_ok());
        assert_eq!(
            check(&hosts, "https://sub.shop.example.jp/"),
            Err(CallbackUrlError::HostNotAllowed)
        );
    }

    #[test]
    fn internationalized_hosts_are_compared_as_punycode() {
        let hosts = AllowedHosts::new(".例え.jp", false);
        assert_eq!(hosts.suffixes(), [".xn--r8jz45g.jp"]);
        assert!(check(&hosts, "https://shop.例え.jp/").is_ok());
        assert!(check(&hosts, "https://shop.xn--r8jz45g.jp/").is_ok());
        assert_eq!(
            check(&production(), "https://demomall.cafe24.com.例え.jp/"),
            Err(CallbackUrlError::HostNotAllowed)
        );
    }

    #[test]
    fn trailing_dot_is_never_allowed() {
        assert_eq!(
            check(&production(), "https://demomall.cafe24.com./"),
            Err(CallbackUrlError::HostNotAllowed)
        );
        let merchant = vec!["shop.example.jp".to_owned()];
        assert_eq!(
            production().check("https://shop.example.jp./", &merchant),
            Err(CallbackUrlError::HostNotAllowed)
        );
        // An entry written with a trailing dot is ignored rather than matching such hosts.
        let hosts = AllowedHosts::new("shop.example.jp.,.", false);
        assert!(hosts.suffixes().is_empty());
    }

    #[test]
    fn merchant_hosts_apply_only_to_that_merchant() {
        let merchant = vec!["shop.example.jp".to_owned()];
        assert!(production()
            .check("https://shop.example.jp/x", &merchant)
            .is_ok());
        assert!(production()
            .check("https://SHOP.example.JP/x", &merchant)
            .is_ok());
        assert_eq!(
            check(&production(), "https://shop.example.jp/x"),
            Err(CallbackUrlError::HostNotAllowed)
        );
        assert_eq!(
            production().check("https://other.example.jp/x", &merchant),
            Err(CallbackUrlError::HostNotAllowed)
        );
        assert_eq!(
            production().check("https://evil.shop.example.jp/x", &merchant),
            Err(CallbackUrlError::HostNotAllowed)
        );
        let suffix = vec![" .Example.JP ".to_owned()];
        assert!(production()
            .check("https://any.example.jp/x", &suffix)
            .is_ok());
        assert_eq!(
            production().check("https://example.jp/x", &suffix),
            Err(CallbackUrlError::HostNotAllowed)
        );
    }

    #[test]
    fn only_the_default_port_is_allowed() {
        assert_eq!(
            check(&production(), "https://demomall.cafe24.com:8443/"),
            Err(CallbackUrlError::PortNotAllowed)
        );
        assert_eq!(
            check(&development(), "https://demomall.cafe24.com:8443/"),
            Err(CallbackUrlError::PortNotAllowed)
        );
        // An explicit :443 is the default port; the url crate drops it.
        assert_eq!(
            check(&production(), "https://demomall.cafe24.com:443/"),
            Ok("https://demomall.cafe24.com/".to_owned())
        );
    }

    #[test]
    fn malformed_and_overlong_urls_are_rejected() {
        for url in [
            "",
            "demomall.cafe24.com/x",
            "/relative",
            "https://",
            "https://exa mple.com/",
        ] {
            assert_eq!(
                check(&production(), url),
                Err(CallbackUrlError::Invalid),
                "{url:?}"
            );
        }
        let base = "https://demomall.cafe24.com/";
        let fits = format!("{base}{}", "a".repeat(2048 - base.len()));
        assert!(check(&production(), &fits).is_ok());
        let over = format!("{base}{}", "a".repeat(2049 - base.len()));
        assert_eq!(check(&production(), &over), Err(CallbackUrlError::TooLong));
        // Found by fuzzing: 702 bytes that serialise to 2050 were accepted, then refused
        // when the outbox checked the stored URL again before sending.
        let grows = format!("{base}{}", "é".repeat(337));
        assert!(grows.len() < 2048);
        assert_eq!(check(&production(), &grows), Err(CallbackUrlError::TooLong));
        let fits = format!("{base}{}", "é".repeat(336));
        let stored = check(&production(), &fits).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&production(), &stored), Ok(stored));
    }

    #[test]
    fn error_messages_do_not_echo_the_url() {
        let url = "https://secret-token@evil.example/";
        let Err(error) = production().check(url, &[]) else {
            panic!("userinfo must be rejected");
        };
        assert!(!error.to_string().contains("secret"));
        assert!(!error.to_string().contains("evil"));
    }
}
