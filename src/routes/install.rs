//! Installing the app from Cafe24 (PROTOCOL.md §12):
//!
//! - `GET /cafe24/launch`: the App URL; 302 to the settings site (session cookie set) or
//!   to Cafe24's authorize page (`state` cookie set); 403 page for a bad launch;
//! - `GET /cafe24/oauth/callback?code&state`: 302 to the settings site with the session
//!   cookie; 400 page for a wrong, reused or expired `state` or a refused code;
//! - `POST /cafe24/webhooks`: Cafe24's app-deleted and app-expired events; 200
//!   `{"status":"ok","outcome"}`, 400 or 503 in the §3 envelope.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::State;
use crate::error::ApiError;
use crate::install::session::{SESSION_COOKIE, SESSION_TTL_SECS, STATE_COOKIE};
use crate::install::{self, lifecycle, Callback, InstallError, Launched};
use crate::services::Services;

/// Mounts the three routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/cafe24/launch", "GET").route(web::get().to(launch)))
        .service(super::resource("/cafe24/oauth/callback", "GET").route(web::get().to(callback)))
        .service(super::resource("/cafe24/webhooks", "POST").route(web::post().to(webhooks)));
}

/// A cookie of this service: `HttpOnly`, `SameSite=Lax`, `Secure` in production.
pub fn cookie(
    app: &Services,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_secs: i64,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(app.cookie_secure)
        .max_age(CookieAge::seconds(max_age_secs))
        .finish()
}

/// The session cookie (path `/settings`).
pub fn session_cookie(app: &Services, token: String) -> Cookie<'static> {
    cookie(app, SESSION_COOKIE, token, "/settings", SESSION_TTL_SECS)
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

async fn webhooks(
    app: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::cafe24::read_bytes(&req, payload, app.body_limits).await?;
    match lifecycle::receive(&app, &body).await {
        Ok(outcome) => {
            Ok(HttpResponse::Ok().json(json!({"status": "ok", "outcome": outcome.as_str()})))
        }
        Err(lifecycle::LifecycleError::Invalid(why)) => Err(ApiError::invalid(why)),
        Err(lifecycle::LifecycleError::Unavailable) => Err(ApiError::Unavailable),
    }
}
