//! The slice of Cafe24's Admin API the service calls (PROTOCOL.md §12): `shops`,
//! `paymentgateway` and `scripttags`, behind Bearer auth, each endpoint open only to a
//! token granted its scope. Bodies are `{"shop_no": N, "request": {…}}`; errors
//! `{"error":{"code":N,"message":"…","more_info":{}}}`: 400 bad header or body, 401 bad
//! token, 403 app removed from the mall or scope missing (or, for `paymentgateway`, a
//! client Cafe24 has not authorized), 404 nothing there, 422 invalid field.
//!
//! Sources: Cafe24's Admin API reference as copied in `noston/cafe24-api-spec`
//! (`cafe24_chapters/introduction.md` "API Status Code", `shops.md`, `paymentgateway.md`,
//! `scripttags.md`: each endpoint's "SCOPE") and PROTOCOL.md §12.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpRequest;
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};

use super::reply::Reply;
use super::state::{format_admin_time, AccessError, StoredScriptTag};
use super::{Cafe24Sandbox, PaymentGateway, ScriptTag};

const VERSION_HEADER: &str = "x-cafe24-api-version";
/// `GET /shops`: "상점 읽기권한 (mall.read_store)" (shops.md).
const READ_STORE: &str = "mall.read_store";
/// `POST`/`PUT`/`DELETE /paymentgateway`: "상점 쓰기권한 (mall.write_store)"
/// (paymentgateway.md).
const WRITE_STORE: &str = "mall.write_store";
/// `GET /scripttags`: "앱 읽기권한 (mall.read_application)" (scripttags.md).
const READ_APPLICATION: &str = "mall.read_application";
/// `POST`/`PUT /scripttags`: "앱 쓰기권한 (mall.write_application)" (scripttags.md;
/// `DELETE` is beyond the excerpt and taken to need the same).
const WRITE_APPLICATION: &str = "mall.write_application";
/// `GET /orders/{order_id}`: "주문 읽기권한 (mall.read_order)" (orders.md, "Retrieve an
/// order").
const READ_ORDER: &str = "mall.read_order";
/// Cafe24's limit on `partner_id`.
const MAX_PARTNER_ID_CHARS: usize = 50;
const MEMBERSHIP_FEE_TYPES: [&str; 3] = ["PRE", "PAD", "FREE"];

enum Route {
    Shops,
    RegisterGateway,
    DeleteGateway(String),
    ListScriptTags,
    CreateScriptTag,
    DeleteScriptTag(String),
    Order(String),
}

impl Route {
    /// The scope the endpoint needs. A write scope is not taken to grant the read scope
    /// of the same resource: the reference lists one scope per endpoint and says nothing
    /// of one implying another (the stricter reading is a guess).
    fn scope(&self) -> &'static str {
        match self {
            Route::Shops => READ_STORE,
            Route::RegisterGateway | Route::DeleteGateway(_) => WRITE_STORE,
            Route::ListScriptTags => READ_APPLICATION,
            Route::CreateScriptTag | Route::DeleteScriptTag(_) => WRITE_APPLICATION,
            Route::Order(_) => READ_ORDER,
        }
    }

    fn parse(method: &Method, tail: &str) -> Option<Route> {
        let segments: Vec<&str> = tail.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["admin", "shops"]) => Some(Route::Shops),
            ("POST", ["admin", "paymentgateway"]) => Some(Route::RegisterGateway),
            ("DELETE", ["admin", "paymentgateway", client]) => id(client).map(Route::DeleteGateway),
            ("GET", ["admin", "scripttags"]) => Some(Route::ListScriptTags),
            ("POST", ["admin", "scripttags"]) => Some(Route::CreateScriptTag),
            ("DELETE", ["admin", "scripttags", script]) => id(script).map(Route::DeleteScriptTag),
            ("GET", ["admin", "orders", order]) => id(order).map(Route::Order),
            _ => None,
        }
    }
}

/// Auth, the version header, routing and the endpoint, for `tail` = `admin/…`.
pub(super) fn run(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    req: &HttpRequest,
    tail: &str,
    body: &[u8],
) -> Reply {
    let scopes = match authorize(sandbox, mall_id, req.headers()) {
        Ok(scopes) => scopes,
        Err(reply) => return reply,
    };
    if !valid_version(req.headers()) {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "X-Cafe24-Api-Version must be a date, YYYY-MM-DD",
        );
    }
    let Some(route) = Route::parse(req.method(), tail) else {
        return Reply::not_found();
    };
    if let Err(reply) = permitted(sandbox, &route, &scopes) {
        return reply;
    }
    let client_id = sandbox.app().client_id.as_str();
    match route {
        Route::Shops => shops(sandbox, mall_id),
        Route::RegisterGateway => match parse_body(body) {
            Ok((shop_no, request)) => {
                register_gateway(sandbox, mall_id, client_id, shop_no, &request)
            }
            Err(reply) => reply,
        },
        Route::DeleteGateway(client) => match query_shop_no(req.query_string()) {
            Ok(shop_no) => delete_gateway(sandbox, mall_id, &client, shop_no),
            Err(reply) => reply,
        },
        Route::ListScriptTags => match query_shop_no(req.query_string()) {
            Ok(shop_no) => list_script_tags(sandbox, mall_id, client_id, shop_no),
            Err(reply) => reply,
        },
        Route::CreateScriptTag => match parse_body(body) {
            Ok((shop_no, request)) => {
                create_script_tag(sandbox, mall_id, client_id, shop_no, &request)
            }
            Err(reply) => reply,
        },
        Route::DeleteScriptTag(script_no) => match query_shop_no(req.query_string()) {
            Ok(shop_no) => delete_script_tag(sandbox, mall_id, client_id, &script_no, shop_no),
            Err(reply) => reply,
        },
        Route::Order(order_id) => {
            super::orders::retrieve(sandbox, mall_id, &order_id, req.query_string())
        }
    }
}

/// 403 when the token lacks the endpoint's scope ("Access Token은 있으나 해당 Scope에
/// 권한이 없음", introduction.md "API Status Code"), or for `paymentgateway` when Cafe24
/// has not authorized this client (PROTOCOL.md §12). The messages are ours: Cafe24's
/// wording for these refusals is not documented.
fn permitted(sandbox: &Cafe24Sandbox, route: &Route, scopes: &[String]) -> Result<(), Reply> {
    let scope = route.scope();
    if !scopes.iter().any(|s| s == scope) {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            &format!("The access token has no permission for the scope {scope}"),
        ));
    }
    let gateway = matches!(route, Route::RegisterGateway | Route::DeleteGateway(_));
    if gateway && !sandbox.lock().paymentgateway_authorized {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "This client is not authorized to use the paymentgateway API",
        ));
    }
    Ok(())
}

/// `Authorization: Bearer <access token>` live for this mall; the token's scopes.
fn authorize(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    headers: &HeaderMap,
) -> Result<Vec<String>, Reply> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            "An access token is required (Authorization: Bearer)",
        ));
    };
    match sandbox.lock().check_access(mall_id, token) {
        Ok(scopes) => Ok(scopes),
        Err(AccessError::Unauthorized(why)) => Err(Reply::error(StatusCode::UNAUTHORIZED, why)),
        Err(AccessError::Forbidden) => Err(Reply::error(
            StatusCode::FORBIDDEN,
            "The app is not installed on this mall",
        )),
    }
}

/// `X-Cafe24-Api-Version` absent (Cafe24 falls back to the version registered for the
/// app: PROTOCOL.md §12), or `YYYY-MM-DD`, a real date. What Cafe24 answers to a
/// malformed value is not documented: 400 is a guess.
fn valid_version(headers: &HeaderMap) -> bool {
    match headers.get(VERSION_HEADER) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| {
            v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
        }),
    }
}

fn invalid(message: &str) -> Reply {
    Reply::error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// A shop number given as a JSON number or a decimal string; at least 1.
fn shop_no_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n >= 1)
}

/// `{"shop_no": N, "request": {…}}`; `shop_no` defaults to 1 as with Cafe24.
fn parse_body(body: &[u8]) -> Result<(i64, Map<String, Value>), Reply> {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(body) else {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object",
        ));
    };
    let shop_no = match body.get("shop_no") {
        None | Some(Value::Null) => 1,
        Some(v) => shop_no_of(v).ok_or_else(|| invalid("shop_no must be a positive integer"))?,
    };
    match body.remove("request") {
        Some(Value::Object(request)) => Ok((shop_no, request)),
        _ => Err(invalid("request must be an object")),
    }
}

/// `?shop_no=N`, default 1.
fn query_shop_no(query: &str) -> Result<i64, Reply> {
    match url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "shop_no") {
        None => Ok(1),
        Some((_, v)) => shop_no_of(&Value::String(v.into_owned()))
            .ok_or_else(|| invalid("shop_no must be a positive integer")),
    }
}

fn unknown_shop(shop_no: i64) -> Reply {
    invalid(&format!("shop_no {shop_no} does not exist in this mall"))
}

#[derive(Serialize)]
struct ShopView<'a> {
    shop_no: i64,
    default: &'static str,
    shop_name: &'a str,
    business_country_code: &'static str,
    language_code: &'a str,
    currency_code: &'a str,
    primary_domain: &'a str,
    pc_skin_no: i64,
    mobile_skin_no: i64,
    /// `shops[].timezone` (`cafe24_chapters/shops.md` in `noston/cafe24-api-spec`).
    timezone: &'a str,
}

/// `GET /admin/shops` → `{"shops":[…]}`.
fn shops(sandbox: &Cafe24Sandbox, mall_id: &str) -> Reply {
    let shops = sandbox.lock().shops(mall_id);
    let views: Vec<ShopView<'_>> = shops
        .iter()
        .map(|s| ShopView {
            shop_no: s.shop_no,
            default: if s.shop_no == 1 { "T" } else { "F" },
            shop_name: &s.shop_name,
            business_country_code: "JP",
            language_code: &s.language_code,
            currency_code: &s.currency_code,
            primary_domain: &s.primary_domain,
            pc_skin_no: s.pc_skin_no,
            mobile_skin_no: s.mobile_skin_no,
            timezone: &s.timezone,
        })
        .collect();
    #[derive(Serialize)]
    struct Shops<'a> {
        shops: Vec<ShopView<'a>>,
    }
    Reply::json(StatusCode::OK, &Shops { shops: views })
}

#[derive(Serialize)]
struct GatewayView<'a> {
    shop_no: i64,
    partner_id: &'a str,
    client_id: &'a str,
    membership_fee_type: &'a str,
}

/// `POST /admin/paymentgateway`, `request{partner_id (1–50 characters),
/// membership_fee_type (PRE|PAD|FREE, default FREE)}` → 201 `{"paymentgateway":{…}}`;
/// 422 for an invalid field, an unknown shop or a second registration.
fn register_gateway(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    client_id: &str,
    shop_no: i64,
    request: &Map<String, Value>,
) -> Reply {
    let partner_id = match request.get("partner_id") {
        Some(Value::String(p)) if !p.is_empty() && p.chars().count() <= MAX_PARTNER_ID_CHARS => {
            p.clone()
        }
        _ => return invalid("partner_id is required, 1 to 50 characters"),
    };
    let membership_fee_type = match request.get("membership_fee_type") {
        None | Some(Value::Null) => "FREE".to_string(),
        Some(Value::String(t)) if MEMBERSHIP_FEE_TYPES.contains(&t.as_str()) => t.clone(),
        Some(_) => return invalid("membership_fee_type must be PRE, PAD or FREE"),
    };
    let mut state = sandbox.lock();
    if !state.has_shop(mall_id, shop_no) {
        return unknown_shop(shop_no);
    }
    let mall = state.mall_mut(mall_id);
    if mall
        .payment_gateways
        .iter()
        .any(|g| g.client_id == client_id && g.shop_no == shop_no)
    {
        return invalid("already registered");
    }
    let gateway = PaymentGateway {
        shop_no,
        partner_id,
        client_id: client_id.to_string(),
        membership_fee_type,
    };
    let reply = gateway_reply(StatusCode::CREATED, &gateway);
    mall.payment_gateways.push(gateway);
    reply
}

fn gateway_reply(status: StatusCode, g: &PaymentGateway) -> Reply {
    #[derive(Serialize)]
    struct Wrapped<'a> {
        paymentgateway: GatewayView<'a>,
    }
    Reply::json(
        status,
        &Wrapped {
            paymentgateway: GatewayView {
                shop_no: g.shop_no,
                partner_id: &g.partner_id,
                client_id: &g.client_id,
                membership_fee_type: &g.membership_fee_type,
            },
        },
    )
}

/// `DELETE /admin/paymentgateway/{client_id}?shop_no=N` → 200
/// `{"paymentgateway":{"shop_no","client_id"}}`; 404 when there is none.
fn delete_gateway(sandbox: &Cafe24Sandbox, mall_id: &str, client_id: &str, shop_no: i64) -> Reply {
    let mut state = sandbox.lock();
    let gateways = &mut state.mall_mut(mall_id).payment_gateways;
    let before = gateways.len();
    gateways.retain(|g| !(g.client_id == client_id && g.shop_no == shop_no));
    if gateways.len() == before {
        return Reply::error(StatusCode::NOT_FOUND, "No payment gateway to delete");
    }
    #[derive(Serialize)]
    struct Deleted<'a> {
        shop_no: i64,
        client_id: &'a str,
    }
    #[derive(Serialize)]
    struct Wrapped<'a> {
        paymentgateway: Deleted<'a>,
    }
    Reply::json(
        StatusCode::OK,
        &Wrapped {
            paymentgateway: Deleted { shop_no, client_id },
        },
    )
}

#[derive(Serialize)]
struct ScriptTagView<'a> {
    shop_no: i64,
    script_no: &'a str,
    client_id: &'a str,
    src: &'a str,
    display_location: &'a [String],
    exclude_path: [&'static str; 0],
    skin_no: &'a [i64],
    integrity: Option<&'a str>,
    created_date: String,
    updated_date: String,
}

fn script_tag_view(stored: &StoredScriptTag) -> ScriptTagView<'_> {
    let tag = &stored.tag;
    ScriptTagView {
        shop_no: tag.shop_no,
        script_no: &tag.script_no,
        client_id: &tag.client_id,
        src: &tag.src,
        display_location: &tag.display_location,
        exclude_path: [],
        skin_no: &tag.skin_no,
        integrity: tag.integrity.as_deref(),
        created_date: format_admin_time(&stored.created),
        updated_date: format_admin_time(&stored.created),
    }
}

/// `GET /admin/scripttags?shop_no=N` → `{"scripttags":[…]}`, this client's tags of the
/// shop; 422 for an unknown shop.
fn list_script_tags(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    client_id: &str,
    shop_no: i64,
) -> Reply {
    let state = sandbox.lock();
    if !state.has_shop(mall_id, shop_no) {
        return unknown_shop(shop_no);
    }
    let tags: Vec<ScriptTagView<'_>> = state
        .malls
        .get(mall_id)
        .map(|mall| {
            mall.script_tags
                .iter()
                .filter(|t| t.tag.shop_no == shop_no && t.tag.client_id == client_id)
                .map(script_tag_view)
                .collect()
        })
        .unwrap_or_default();
    #[derive(Serialize)]
    struct Listed<'a> {
        scripttags: Vec<ScriptTagView<'a>>,
    }
    Reply::json(StatusCode::OK, &Listed { scripttags: tags })
}

fn is_absolute_http_url(candidate: &str) -> bool {
    url::Url::parse(candidate)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `POST /admin/scripttags`, `request{src (absolute http(s) URL), display_location
/// (non-empty array of names), skin_no (array of integers, optional), integrity
/// (sha384-… or sha512-…, optional)}` → 201 `{"scripttag":{…}}`; 422 for an invalid
/// field or an unknown shop.
fn create_script_tag(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    client_id: &str,
    shop_no: i64,
    request: &Map<String, Value>,
) -> Reply {
    let src = match request.get("src") {
        Some(Value::String(s)) if is_absolute_http_url(s) => s.clone(),
        _ => return invalid("src is required, an absolute http or https URL"),
    };
    let display_location: Option<Vec<String>> = match request.get("display_location") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect(),
        _ => None,
    };
    let Some(display_location) = display_location else {
        return invalid("display_location is required, a non-empty array of names");
    };
    let skin_no: Option<Vec<i64>> = match request.get("skin_no") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Value::as_i64).collect(),
        Some(_) => None,
    };
    let Some(skin_no) = skin_no else {
        return invalid("skin_no must be an array of integers");
    };
    let integrity = match request.get("integrity") {
        None | Some(Value::Null) => None,
        Some(Value::String(i)) if i.starts_with("sha384-") || i.starts_with("sha512-") => {
            Some(i.clone())
        }
        Some(_) => return invalid("integrity must start with sha384- or sha512-"),
    };
    let mut state = sandbox.lock();
    if !state.has_shop(mall_id, shop_no) {
        return unknown_shop(shop_no);
    }
    let stored = StoredScriptTag {
        tag: ScriptTag {
            script_no: state.next_script_no(),
            shop_no,
            client_id: client_id.to_string(),
            src,
            display_location,
            skin_no,
            integrity,
        },
        created: Utc::now(),
    };
    #[derive(Serialize)]
    struct Wrapped<'a> {
        scripttag: ScriptTagView<'a>,
    }
    let reply = Reply::json(
        StatusCode::CREATED,
        &Wrapped {
            scripttag: script_tag_view(&stored),
        },
    );
    state.mall_mut(mall_id).script_tags.push(stored);
    reply
}

/// `DELETE /admin/scripttags/{script_no}?shop_no=N` → 200 `{"scripttag":{"script_no"}}`;
/// 404 when this client has no such tag in the shop.
fn delete_script_tag(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    client_id: &str,
    script_no: &str,
    shop_no: i64,
) -> Reply {
    let mut state = sandbox.lock();
    let tags = &mut state.mall_mut(mall_id).script_tags;
    let before = tags.len();
    tags.retain(|t| {
        !(t.tag.script_no == script_no && t.tag.shop_no == shop_no && t.tag.client_id == client_id)
    });
    if tags.len() == before {
        return Reply::error(StatusCode::NOT_FOUND, "No script tag to delete");
    }
    #[derive(Serialize)]
    struct Deleted<'a> {
        script_no: &'a str,
    }
    #[derive(Serialize)]
    struct Wrapped<'a> {
        scripttag: Deleted<'a>,
    }
    Reply::json(
        StatusCode::OK,
        &Wrapped {
            scripttag: Deleted { script_no },
        },
    )
}
