//! Installing the app from Cafe24 (PROTOCOL.md §12):
//!
//! - `GET /cafe24/launch`: the App URL; 302 to the settings site (session cookie set) or
//!   to Cafe24's authorize page (`state` cookie set); 403 page for a bad launch;
//! - `GET /cafe24/oauth/callback?code&state`: 302 to the settings site with the session
//!   cookie; 400 page for a wrong, reused or expired `state` or a refused code;
//! - `POST /cafe24/webhooks`: Cafe24's app-deleted and app-expired events; 403
//!   `forbidden` before anything else when `x-api-key` is not `CAFE24_WEBHOOK_API_KEY`;
//!   200 `{"status":"ok","outcome"}`, 400 or 503 in the §3 envelope.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::settings_site::{cookie, session_cookie};
use super::State;
use super::{AckReply, Up};
use crate::error::responses::*;
use crate::error::ApiError;
use crate::install::{self, lifecycle, Callback, InstallError, Launched};
use crate::keys::session::STATE_COOKIE;

/// Mounts the three routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/cafe24/launch", "GET").route(web::get().to(launch)))
        .service(super::resource("/cafe24/oauth/callback", "GET").route(web::get().to(callback)))
        .service(super::resource("/cafe24/webhooks", "POST").route(web::post().to(webhooks)));
}

fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut reply = HttpResponse::Found();
    reply
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    reply
}

fn refused(e: InstallError) -> HttpResponse {
    super::settings_site::page(
        e.status(),
        super::settings_pages::error("en", &e.to_string()),
    )
}

/// `GET /cafe24/launch`: the App URL Cafe24 opens, signed with `hmac`.
#[utoipa::path(get, path = "/cafe24/launch", tag = "install",
    params(
        ("mall_id" = String, Query), ("shop_no" = Option<String>, Query),
        ("timestamp" = String, Query, description = "Unix seconds (or milliseconds)"),
        ("hmac" = String, Query, description = "base64(HMAC-SHA256(client secret, the query without hmac))"),
        ("is_multi_shop" = Option<String>, Query), ("lang" = Option<String>, Query),
        ("nation" = Option<String>, Query), ("user_id" = Option<String>, Query),
        ("user_name" = Option<String>, Query), ("user_type" = Option<String>, Query),
    ),
    responses(
        (status = 302, description = "To the settings site (session cookie set) or to Cafe24's authorize page (state cookie set)",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "A page: the launch cannot be served", content_type = "text/html"),
        (status = 403, description = "A page: bad or stale launch", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 could not be reached", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn launch(app: State, req: HttpRequest) -> HttpResponse {
    match install::launch(&app, req.query_string()).await {
        Ok(Launched::Settings { session, location }) => redirect(&location)
            .cookie(session_cookie(&app, session))
            .finish(),
        Ok(Launched::Authorize { state, location }) => redirect(&location)
            .cookie(cookie(
                &app,
                STATE_COOKIE,
                state,
                "/cafe24/oauth",
                install::STATE_TTL.num_seconds(),
            ))
            .finish(),
        Err(e) => refused(e),
    }
}

/// `GET /cafe24/oauth/callback?code&state`: Cafe24's OAuth redirect.
#[utoipa::path(get, path = "/cafe24/oauth/callback", tag = "install",
    params(
        ("code" = Option<String>, Query), ("state" = Option<String>, Query),
        ("error" = Option<String>, Query, description = "Set by Cafe24 when the merchant refused"),
    ),
    responses(
        (status = 302, description = "To the settings site, session cookie set",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "A page: state wrong, reused, expired or not this browser's; code refused", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 could not be reached", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn callback(app: State, req: HttpRequest) -> HttpResponse {
    let query: Callback = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let state_cookie = req.cookie(STATE_COOKIE);
    match install::callback(&app, query, state_cookie.as_ref().map(|c| c.value())).await {
        Ok((session, location)) => redirect(&location)
            .cookie(session_cookie(&app, session))
            .cookie(cookie(
                &app,
                STATE_COOKIE,
                String::new(),
                "/cafe24/oauth",
                0,
            ))
            .finish(),
        Err(e) => refused(e),
    }
}

/// `POST /cafe24/webhooks`: app deleted or expired.
#[utoipa::path(post, path = "/cafe24/webhooks", tag = "install",
    params(("x-api-key" = Option<String>, Header, description = "The webhook credential of the Cafe24 Developer Center (CAFE24_WEBHOOK_API_KEY)")),
    request_body(content((AppEvent = "application/json"))),
    responses(
        (status = 200, description = "Recorded, with its outcome", body = AckReply),
        (status = 400, response = BadRequest), (status = 403, response = ApiKeyRefused),
        (status = 405, response = MethodNotAllowed),
        (status = 408, response = Timeout), (status = 413, response = TooLarge),
        (status = 503, response = Unavailable),
    ))]
async fn webhooks(
    app: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = req.headers().get("x-api-key").map(|v| v.as_bytes());
    if !lifecycle::api_key_accepted(&app, key) {
        return Err(ApiError::Forbidden(
            "x-api-key is missing or wrong; nothing was done",
        ));
    }
    let body = crate::cafe24::read_bytes(&req, payload, app.body_limits).await?;
    match lifecycle::receive(&app, &body).await {
        Ok(outcome) => Ok(HttpResponse::Ok().json(AckReply {
            status: Up::Ok,
            outcome: outcome.as_str(),
        })),
        Err(lifecycle::LifecycleError::Invalid(why)) => Err(ApiError::invalid(why)),
        Err(lifecycle::LifecycleError::Unavailable) => Err(ApiError::Unavailable),
    }
}

/// A Cafe24 app-lifecycle event (§12): `event_no` 90077 (deleted) or 90078 (expired),
/// or the older `resource_type`/`event_type` shape.
#[derive(utoipa::ToSchema)]
pub struct AppEvent {
    #[schema(required = false, example = 90077)]
    pub event_no: i64,
    #[schema(required = false)]
    pub event_type: String,
    #[schema(required = false)]
    pub resource_type: String,
    /// Holds `mall_id` and `client_id`.
    #[schema(required = false, value_type = Object)]
    pub resource: serde_json::Value,
}
