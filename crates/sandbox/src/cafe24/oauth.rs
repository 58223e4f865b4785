//! OAuth 2.0 authorization code grant as Cafe24 runs it (PROTOCOL.md §12): the consent
//! page (`GET /{mall_id}/api/v2/oauth/authorize`), its decision (`POST` of the same path:
//! 302 to `redirect_uri` with a code, or `error=access_denied`) and the token endpoint
//! (`POST /{mall_id}/api/v2/oauth/token`: code exchange and refresh rotation). Codes and
//! tokens go only into replies, never into the log.

use std::collections::HashMap;

use actix_web::http::header::{HeaderMap, AUTHORIZATION, LOCATION};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::Engine as _;
use maud::html;
use serde::Serialize;

use super::page::{message, page};
use super::reply::Reply;
use super::state::{format_token_time, Issued};
use super::Cafe24Sandbox;

/// The parameters an authorization request and its decision share.
struct AuthorizationRequest {
    client_id: String,
    redirect_uri: String,
    state: String,
    /// As sent; shown split into scopes.
    scope: String,
}

fn params(encoded: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(encoded)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Scopes separated by commas or spaces (Cafe24's older code uses commas, its guide
/// spaces).
fn split_scopes(scope: &str) -> Vec<String> {
    scope
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_absolute_http_url(candidate: &str) -> bool {
    url::Url::parse(candidate)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `client_id` is the app's, `redirect_uri` an absolute http(s) URL, `state` and `scope`
/// present; otherwise the text of what is wrong.
fn authorization_request(
    sandbox: &Cafe24Sandbox,
    params: &HashMap<String, String>,
) -> Result<AuthorizationRequest, String> {
    let get = |name: &str| params.get(name).cloned().unwrap_or_default();
    let request = AuthorizationRequest {
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        state: get("state"),
        scope: get("scope"),
    };
    if request.client_id != sandbox.app().client_id {
        return Err("client_id is not the client id of a registered app.".into());
    }
    if !is_absolute_http_url(&request.redirect_uri) {
        return Err("redirect_uri must be an absolute http or https URL.".into());
    }
    if request.state.is_empty() {
        return Err("state is required.".into());
    }
    if split_scopes(&request.scope).is_empty() {
        return Err("scope is required.".into());
    }
    Ok(request)
}

/// `GET /{mall_id}/api/v2/oauth/authorize?response_type=code&client_id&state&redirect_uri
/// &scope`: the consent page, or a 400 page saying which parameter is wrong.
pub(super) fn authorize_page(sandbox: &Cafe24Sandbox, mall_id: &str, query: &str) -> HttpResponse {
    let params = params(query.as_bytes());
    if params.get("response_type").map(String::as_str) != Some("code") {
        return message(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            "response_type must be code.",
        );
    }
    let request = match authorization_request(sandbox, &params) {
        Ok(request) => request,
        Err(why) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &why,
            )
        }
    };
    let action = format!("{}/{mall_id}/api/v2/oauth/authorize", sandbox.public_base());
    let body = html! {
        p {
            strong id="app-name" { (sandbox.app().app_name) }
            " asks for access to the mall "
            strong id="mall-id" { (mall_id) }
            ":"
        }
        ul id="scopes" {
            @for scope in split_scopes(&request.scope) {
                li { code { (scope) } }
            }
        }
        form method="post" action=(action) {
            input type="hidden" name="client_id" value=(request.client_id);
            input type="hidden" name="redirect_uri" value=(request.redirect_uri);
            input type="hidden" name="state" value=(request.state);
            input type="hidden" name="scope" value=(request.scope);
            button type="submit" id="allow" name="decision" value="allow" { "Allow" }
            button type="submit" class="secondary" id="deny" name="decision" value="deny" {
                "Deny"
            }
        }
    };
    page(StatusCode::OK, "Install the app", body)
}

/// `POST /{mall_id}/api/v2/oauth/authorize` (form: the hidden fields and `decision`):
/// allow installs the app and answers 302 `redirect_uri?code=…&state=…`; deny answers
/// 302 `redirect_uri?error=access_denied&state=…`.
pub(super) fn decide(sandbox: &Cafe24Sandbox, mall_id: &str, form: &[u8]) -> HttpResponse {
    let params = params(form);
    let request = match authorization_request(sandbox, &params) {
        Ok(request) => request,
        Err(why) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &why,
            )
        }
    };
    let Ok(mut target) = url::Url::parse(&request.redirect_uri) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            "redirect_uri must be an absolute http or https URL.",
        );
    };
    match params.get("decision").map(String::as_str) {
        Some("allow") => {
            let code = sandbox.lock().allow(
                mall_id,
                &request.client_id,
                &request.redirect_uri,
                split_scopes(&request.scope),
                std::time::Instant::now(),
            );
            log::debug!("cafe24 sandbox: app installed on mall {mall_id}, code issued");
            target
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", &request.state);
        }
        Some("deny") => {
            target
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("state", &request.state);
        }
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "Invalid decision",
                "Choose allow or deny.",
            )
        }
    }
    HttpResponse::Found()
        .insert_header((LOCATION, target.as_str()))
        .finish()
}

/// The token reply, keys in Cafe24's order (`noston/cafe24-api-spec`
/// `cafe24_chapters/authentication.md`, "Get Access Token": `access_token, expires_at,
/// refresh_token, refresh_token_expires_at, client_id, mall_id, user_id, scopes,
/// issued_at, shop_no, token_type`).
#[derive(Serialize)]
struct TokenReply<'a> {
    access_token: &'a str,
    expires_at: String,
    refresh_token: &'a str,
    refresh_token_expires_at: String,
    client_id: &'a str,
    mall_id: &'a str,
    user_id: &'a str,
    scopes: &'a [String],
    issued_at: String,
    /// A string, `"1"` (authentication.md).
    shop_no: &'static str,
    /// `"Bearer"` (authentication.md).
    token_type: &'static str,
}

/// How the token endpoint's client authentication went.
enum ClientAuth {
    /// The app's client id and its client secret in force.
    Authenticated,
    /// The app's client id with another secret (mistyped, or rotated in the Developer
    /// Center).
    WrongSecret,
    /// No Basic credentials, or another client id.
    Unknown,
}

/// `Authorization: Basic base64(client_id:client_secret)` of the app, checked against the
/// secret in force ([`Cafe24Sandbox::rotate_client_secret`]).
fn client_authentication(sandbox: &Cafe24Sandbox, headers: &HeaderMap) -> ClientAuth {
    let decoded = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((client_id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return ClientAuth::Unknown;
    };
    if client_id != sandbox.app().client_id {
        return ClientAuth::Unknown;
    }
    if secret == sandbox.client_secret() {
        ClientAuth::Authenticated
    } else {
        ClientAuth::WrongSecret
    }
}

/// The token endpoint's answer to a request that does not authenticate as the app (see
/// [`token`]); `None` when it does.
fn client_refusal(sandbox: &Cafe24Sandbox, headers: &HeaderMap) -> Option<Reply> {
    match client_authentication(sandbox, headers) {
        ClientAuth::Authenticated => None,
        ClientAuth::WrongSecret => Some(Reply::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "Invalid client_secret",
        )),
        ClientAuth::Unknown => Some(Reply::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed (HTTP Basic client_id:client_secret)",
        )),
    }
}

/// `POST /{mall_id}/api/v2/oauth/token`, form `grant_type=authorization_code&code
/// &redirect_uri` or `grant_type=refresh_token&refresh_token`.
///
/// - The app's client id with a wrong client secret: 401 `{"error":"invalid_grant",
///   "error_description":"Invalid client_secret"}`, the code or refresh token left
///   untouched. Source: a developer's log of a refresh with a mistyped secret against
///   real Cafe24 (`kangHo-Jun/web_cadalog_ver10`, `docs/web_cadalog_ver10_완전_가이드.md`,
///   "문제 1: Invalid client_secret": `{ error: 'invalid_grant', error_description:
///   'Invalid client_secret' }`, shown with `401 Unauthorized`); PROTOCOL.md §12.
/// - No Basic credentials, or another client id: 401 `invalid_client` (RFC 6749 §5.2;
///   Cafe24's wording here is not documented: a guess).
/// - 400 `invalid_request` for a missing parameter, `invalid_grant` for a code or refresh
///   token that does not hold, and `unsupported_grant_type`.
pub(super) fn token(
    sandbox: &Cafe24Sandbox,
    mall_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if let Some(refusal) = client_refusal(sandbox, headers) {
        return refusal;
    }
    let params = params(body);
    let get = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let missing = |name: &str| {
        Reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("{name} is required"),
        )
    };
    let client_id = &sandbox.app().client_id;
    let issued = match get("grant_type").map(String::as_str) {
        None => return missing("grant_type"),
        Some("authorization_code") => {
            let Some(code) = get("code") else {
                return missing("code");
            };
            let Some(redirect_uri) = get("redirect_uri") else {
                return missing("redirect_uri");
            };
            sandbox
                .lock()
                .exchange_code(mall_id, client_id, code, redirect_uri)
        }
        Some("refresh_token") => {
            let Some(refresh_token) = get("refresh_token") else {
                return missing("refresh_token");
            };
            sandbox.lock().refresh(mall_id, refresh_token)
        }
        Some(_) => {
            return Reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )
        }
    };
    match issued {
        Ok(issued) => {
            log::debug!("cafe24 sandbox: tokens issued for mall {mall_id}");
            token_reply(sandbox, mall_id, &issued)
        }
        Err(why) => Reply::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
    }
}

fn token_reply(sandbox: &Cafe24Sandbox, mall_id: &str, issued: &Issued) -> Reply {
    let reply_mall = sandbox.lock().token_reply_mall.clone();
    Reply::json(
        StatusCode::OK,
        &TokenReply {
            access_token: &issued.access_token,
            expires_at: format_token_time(&issued.expires_at),
            refresh_token: &issued.refresh_token,
            refresh_token_expires_at: format_token_time(&issued.refresh_token_expires_at),
            client_id: &sandbox.app().client_id,
            mall_id: reply_mall.as_deref().unwrap_or(mall_id),
            // The representative operator's id is the mall id.
            user_id: mall_id,
            scopes: &issued.scopes,
            issued_at: format_token_time(&issued.issued_at),
            shop_no: "1",
            token_type: "Bearer",
        },
    )
}
