//! The Cafe24 stand-in's records: malls (shops, installation, registrations), OAuth codes
//! and tokens, and the one function per OAuth transition. Tokens are looked up by value,
//! so none of them is ever printed (no `Debug` on these records).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;

use super::{Cafe24Fault, Cafe24Request, PaymentGateway, ScriptTag, ShopSpec};

/// Cafe24's wall clock (KST, UTC+9).
const KST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("+09:00 is a valid offset"),
};

/// A code is good for one minute (Cafe24's OAuth guide).
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Length of codes and tokens, `[A-Za-z0-9]`.
const SECRET_LEN: usize = 24;

/// The token reply's timestamps: `2026-12-01T21:00:00.000`, KST wall clock, no zone.
pub(super) fn format_token_time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&KST)
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

/// Admin API dates: `2026-12-01T21:00:00+09:00`.
pub(super) fn format_admin_time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&KST)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn random_secret() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

fn lifetime(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

pub(super) struct StoredScriptTag {
    pub(super) tag: ScriptTag,
    pub(super) created: DateTime<Utc>,
}

#[derive(Default)]
pub(super) struct Mall {
    /// `None`: the one default shop.
    pub(super) shops: Option<Vec<ShopSpec>>,
    pub(super) installed: bool,
    /// Counts installations; tokens and codes of an earlier one are dead.
    installation: u64,
    /// The only refresh token of the mall that may be used.
    current_refresh: Option<String>,
    pub(super) payment_gateways: Vec<PaymentGateway>,
    pub(super) script_tags: Vec<StoredScriptTag>,
    /// Admin API calls of the last second, for `X-Api-Call-Limit`.
    calls: VecDeque<Instant>,
}

struct Code {
    mall: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    installation: u64,
    expires: Instant,
    used: bool,
}

struct AccessToken {
    mall: String,
    installation: u64,
    /// What the merchant granted at "Allow": Cafe24 checks every Admin API call against
    /// the token's scopes (introduction.md, "API Status Code": 403 when the access token
    /// has no right to the scope).
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    /// Set by `Cafe24Sandbox::expire_access_tokens`.
    expired: bool,
}

struct RefreshToken {
    mall: String,
    installation: u64,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    used: bool,
}

/// A freshly issued access and refresh token pair, for the token reply.
pub(super) struct Issued {
    pub(super) access_token: String,
    pub(super) expires_at: DateTime<Utc>,
    pub(super) refresh_token: String,
    pub(super) refresh_token_expires_at: DateTime<Utc>,
    pub(super) scopes: Vec<String>,
    pub(super) issued_at: DateTime<Utc>,
}

/// Why a bearer token does not open the Admin API.
pub(super) enum AccessError {
    /// 401: unknown, another mall's, expired or of an earlier installation.
    Unauthorized(&'static str),
    /// 403: the app is not installed on the mall.
    Forbidden,
}

/// Where lifecycle events go: the webhook URL and the fixed credential Cafe24 sends in
/// `x-api-key` (both registered in the Developer Center; PROTOCOL.md §12, "App
/// lifecycle").
#[derive(Clone)]
pub(super) struct AppWebhook {
    pub(super) url: String,
    pub(super) api_key: String,
}

pub(super) struct State {
    pub(super) malls: HashMap<String, Mall>,
    /// By code.
    codes: HashMap<String, Code>,
    /// By token.
    access_tokens: HashMap<String, AccessToken>,
    /// By token.
    refresh_tokens: HashMap<String, RefreshToken>,
    pub(super) faults: VecDeque<(Cafe24Fault, u32)>,
    pub(super) requests: Vec<Cafe24Request>,
    pub(super) token_delay: Duration,
    pub(super) access_lifetime: Duration,
    pub(super) refresh_lifetime: Duration,
    pub(super) token_reply_mall: Option<String>,
    /// Set by `Cafe24Sandbox::rotate_client_secret`: the app's client secret now (the
    /// registered one until then).
    pub(super) client_secret: Option<String>,
    /// Set by `Cafe24Sandbox::set_app_webhook`.
    pub(super) app_webhook: Option<AppWebhook>,
    /// Whether Cafe24 has authorized this client to use `paymentgateway` (true unless
    /// `Cafe24Sandbox::set_paymentgateway_authorized(false)`).
    pub(super) paymentgateway_authorized: bool,
    last_script_no: u64,
}

impl State {
    pub(super) fn new(access_lifetime: Duration, refresh_lifetime: Duration) -> State {
        State {
            malls: HashMap::new(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            token_delay: Duration::ZERO,
            access_lifetime,
            refresh_lifetime,
            token_reply_mall: None,
            client_secret: None,
            app_webhook: None,
            paymentgateway_authorized: true,
            last_script_no: 0,
        }
    }

    pub(super) fn mall_mut(&mut self, mall_id: &str) -> &mut Mall {
        self.malls.entry(mall_id.to_string()).or_default()
    }

    /// The mall's shops: as set, or the default one.
    /// Every code and token issued (used or not).
    pub(super) fn issued_secrets(&self) -> Vec<String> {
        self.codes
            .keys()
            .chain(self.access_tokens.keys())
            .chain(self.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    pub(super) fn shops(&self, mall_id: &str) -> Vec<ShopSpec> {
        match self.malls.get(mall_id).and_then(|m| m.shops.as_ref()) {
            Some(shops) => shops.clone(),
            None => vec![ShopSpec {
                shop_no: 1,
                shop_name: format!("{mall_id} shop"),
                currency_code: "JPY".into(),
                language_code: "ja_JP".into(),
                primary_domain: format!("{mall_id}.cafe24.com"),
                pc_skin_no: 1,
                mobile_skin_no: 2,
                timezone: "Asia/Tokyo".into(),
            }],
        }
    }

    pub(super) fn has_shop(&self, mall_id: &str, shop_no: i64) -> bool {
        self.shops(mall_id).iter().any(|s| s.shop_no == shop_no)
    }

    /// Takes the fault that applies to the request being received, if any.
    pub(super) fn take_fault(&mut self) -> Option<Cafe24Fault> {
        let (fault, remaining) = self.faults.front_mut()?;
        let fault = *fault;
        *remaining -= 1;
        if *remaining == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    /// Counts one Admin API call of the mall; returns the calls of the last second.
    pub(super) fn count_call(&mut self, mall_id: &str, now: Instant) -> usize {
        let calls = &mut self.mall_mut(mall_id).calls;
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            calls.pop_front();
        }
        calls.push_back(now);
        calls.len()
    }

    pub(super) fn next_script_no(&mut self) -> String {
        self.last_script_no += 1;
        self.last_script_no.to_string()
    }

    // ---- installation and OAuth ----

    /// "Allow" on the consent page: installs the app (again) and mints a single-use code
    /// bound to the mall, client, redirect URI and scopes.
    pub(super) fn allow(
        &mut self,
        mall_id: &str,
        client_id: &str,
        redirect_uri: &str,
        scopes: Vec<String>,
        now: Instant,
    ) -> String {
        let mall = self.mall_mut(mall_id);
        if !mall.installed {
            mall.installed = true;
            mall.installation += 1;
        }
        let installation = mall.installation;
        let code = loop {
            let code = random_secret();
            if !self.codes.contains_key(&code) {
                break code;
            }
        };
        self.codes.insert(
            code.clone(),
            Code {
                mall: mall_id.to_string(),
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                scopes,
                installation,
                expires: now + CODE_LIFETIME,
                used: false,
            },
        );
        code
    }

    /// `grant_type=authorization_code`: the code must be known, unused, unexpired and
    /// minted for this mall, client and exact redirect URI during the current
    /// installation. A code that passes is used up, whatever happens next.
    pub(super) fn exchange_code(
        &mut self,
        mall_id: &str,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Issued, &'static str> {
        let installation = self.live_installation(mall_id);
        let record = self.codes.get_mut(code).ok_or("unknown code")?;
        if record.used {
            return Err("the code was already used");
        }
        if Instant::now() >= record.expires {
            return Err("the code has expired");
        }
        if record.mall != mall_id {
            return Err("the code was issued for another mall");
        }
        if record.client_id != client_id {
            return Err("the code was issued to another client");
        }
        if record.redirect_uri != redirect_uri {
            return Err("redirect_uri does not match the authorization request");
        }
        if installation != Some(record.installation) {
            return Err("the app is not installed on this mall");
        }
        record.used = true;
        let scopes = record.scopes.clone();
        Ok(self.issue(mall_id, scopes))
    }

    /// `grant_type=refresh_token`: the mall's current refresh token, unexpired, unused,
    /// app installed. It rotates: the old one is dead, a new pair is issued; access
    /// tokens issued before keep working until they expire.
    pub(super) fn refresh(
        &mut self,
        mall_id: &str,
        refresh_token: &str,
    ) -> Result<Issued, &'static str> {
        let installation = self.live_installation(mall_id);
        let current = self
            .malls
            .get(mall_id)
            .and_then(|m| m.current_refresh.clone());
        let record = self
            .refresh_tokens
            .get_mut(refresh_token)
            .ok_or("unknown refresh token")?;
        if record.mall != mall_id {
            return Err("the refresh token was issued for another mall");
        }
        if installation != Some(record.installation) {
            return Err("the app is not installed on this mall");
        }
        if record.used || current.as_deref() != Some(refresh_token) {
            return Err("the refresh token was already used");
        }
        if Utc::now() >= record.expires_at {
            return Err("the refresh token has expired");
        }
        record.used = true;
        let scopes = record.scopes.clone();
        Ok(self.issue(mall_id, scopes))
    }

    /// The installation counter of the mall, if the app is installed.
    fn live_installation(&self, mall_id: &str) -> Option<u64> {
        self.malls
            .get(mall_id)
            .filter(|m| m.installed)
            .map(|m| m.installation)
    }

    /// A new access and refresh token for the mall's current installation; the refresh
    /// token becomes the mall's current one.
    fn issue(&mut self, mall_id: &str, scopes: Vec<String>) -> Issued {
        let issued_at = Utc::now();
        let expires_at = issued_at + lifetime(self.access_lifetime);
        let refresh_token_expires_at = issued_at + lifetime(self.refresh_lifetime);
        let (access_token, refresh_token) = loop {
            let pair = (random_secret(), random_secret());
            if pair.0 != pair.1
                && !self.access_tokens.contains_key(&pair.0)
                && !self.refresh_tokens.contains_key(&pair.1)
            {
                break pair;
            }
        };
        let mall = self.mall_mut(mall_id);
        mall.current_refresh = Some(refresh_token.clone());
        let installation = mall.installation;
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                mall: mall_id.to_string(),
                installation,
                scopes: scopes.clone(),
                expires_at,
                expired: false,
            },
        );
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshToken {
                mall: mall_id.to_string(),
                installation,
                scopes: scopes.clone(),
                expires_at: refresh_token_expires_at,
                used: false,
            },
        );
        Issued {
            access_token,
            expires_at,
            refresh_token,
            refresh_token_expires_at,
            scopes,
            issued_at,
        }
    }

    /// Whether `token` opens the Admin API of `mall_id`; the scopes it was granted when it
    /// does.
    pub(super) fn check_access(
        &self,
        mall_id: &str,
        token: &str,
    ) -> Result<Vec<String>, AccessError> {
        let record = self
            .access_tokens
            .get(token)
            .ok_or(AccessError::Unauthorized("Invalid access_token"))?;
        if record.mall != mall_id {
            return Err(AccessError::Unauthorized(
                "The access_token was issued for another mall",
            ));
        }
        let Some(installation) = self.live_installation(mall_id) else {
            return Err(AccessError::Forbidden);
        };
        if record.installation != installation {
            return Err(AccessError::Unauthorized("Invalid access_token"));
        }
        if record.expired || Utc::now() >= record.expires_at {
            return Err(AccessError::Unauthorized("access_token time expired."));
        }
        Ok(record.scopes.clone())
    }

    pub(super) fn expire_access_tokens(&mut self, mall_id: &str) {
        for token in self.access_tokens.values_mut() {
            if token.mall == mall_id {
                token.expired = true;
            }
        }
    }

    pub(super) fn uninstall(&mut self, mall_id: &str) {
        let mall = self.mall_mut(mall_id);
        mall.installed = false;
        mall.current_refresh = None;
    }
}
