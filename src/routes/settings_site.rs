//! The settings site (PROTOCOL.md §12), server-rendered:
//!
//! - `GET /settings/{mall_id}`: the page;
//! - `POST /settings/{mall_id}/komoju`: KOMOJU keys and options (form);
//! - `POST /settings/{mall_id}/shops/{shop_no}/gateway` and `…/script` (`on=1|0`);
//! - `POST /settings/{mall_id}/webhook-test`, `POST /settings/{mall_id}/disconnect`;
//! - `GET /settings/{mall_id}/payments` (and `.csv`), an order's page
//!   `GET /settings/{mall_id}/payments/{order_id}` and its "send again"
//!   `POST …/{order_id}/notifications/{id}/retry`;
//! - `GET /settings/assets/settings.css`, `GET /settings/assets/copy.js`.
//!
//! Every request needs the session cookie of that mall, of the mall's current session
//! generation; every POST carries the session's CSRF token (`csrf`) and comes from the
//! representative operator's session (a sub-operator's is read-only: 403). A POST that
//! succeeds answers 303 back to the page; a form error renders the page with the error
//! (422), nothing saved; a call Cafe24 refused for a missing permission renders the page
//! with what to add (502), nothing changed. Every page carries
//! a `Content-Security-Policy` that allows only this service's stylesheet and forms,
//! and framing only by Cafe24's admin.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;

use super::settings_forms::*;
use super::settings_order_page::{self, COPY_SCRIPT, COPY_SCRIPT_PATH};
use super::settings_pages::{self, STYLESHEET, STYLESHEET_PATH};
use super::State;
use crate::error::responses::*;
use crate::i18n::Lang;
use crate::install::settings::{self, FieldError, KomojuForm, SiteError};
use crate::keys::session::{Session, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::services::Services;

/// The pages' policy: nothing but this service's stylesheet, script (the order page's
/// copy buttons) and forms; framed only by Cafe24's admin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self' https://*.cafe24.com https://*.cafe24shop.com";

/// Mounts the site.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(STYLESHEET_PATH, "GET").route(web::get().to(stylesheet)))
        .service(super::resource(COPY_SCRIPT_PATH, "GET").route(web::get().to(copy_script)))
        .service(super::resource("/settings/{mall_id}", "GET").route(web::get().to(show)))
        .service(
            super::resource("/settings/{mall_id}/payments", "GET").route(web::get().to(payments)),
        )
        .service(
            super::resource("/settings/{mall_id}/payments.csv", "GET")
                .route(web::get().to(payments_csv)),
        )
        .service(
            super::resource("/settings/{mall_id}/payments/{order_id}/capture", "POST")
                .route(web::post().to(capture)),
        )
        .service(
            super::resource("/settings/{mall_id}/payments/{order_id}", "GET")
                .route(web::get().to(order)),
        )
        .service(
            super::resource(
                "/settings/{mall_id}/payments/{order_id}/notifications/{id}/retry",
                "POST",
            )
            .route(web::post().to(order_retry)),
        )
        .service(
            super::resource("/settings/{mall_id}/komoju", "POST").route(web::post().to(komoju)),
        )
        .service(
            super::resource("/settings/{mall_id}/shops/{shop_no}/{switch}", "POST")
                .route(web::post().to(shop_switch)),
        )
        .service(
            super::resource("/settings/{mall_id}/webhook-test", "POST")
                .route(web::post().to(webhook_test)),
        )
        .service(
            super::resource("/settings/{mall_id}/disconnect", "POST")
                .route(web::post().to(disconnect)),
        );
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

/// The cookie that keeps a person's choice of language (the switch), path `/settings`.
pub const LANG_COOKIE: &str = "cafe24_komoju_lang";

/// The language a person chose with the switch on this request (`?lang=`), if any.
fn switched(req: &HttpRequest) -> Option<Lang> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::from_tag(&v))
}

/// The language of a page for `req`: the switch on this request or its cookie, then
/// Cafe24's launch `lang` (kept in the session), then `Accept-Language`.
fn page_lang(req: &HttpRequest, launch: Option<&str>) -> Lang {
    let chosen = switched(req)
        .map(|l| l.code().to_owned())
        .or_else(|| req.cookie(LANG_COOKIE).map(|c| c.value().to_owned()));
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::negotiate(chosen.as_deref(), launch, accept)
}

/// `session` with its `lang` the page's ([`page_lang`]).
fn speaking(req: &HttpRequest, mut session: Session) -> Session {
    session.lang = page_lang(req, Some(&session.lang)).code().to_owned();
    session
}

/// An HTML page with the site's headers.
pub fn page(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(markup.into_string())
}

fn failed(lang: &str, e: SiteError) -> HttpResponse {
    page(e.status(), settings_pages::error(lang, &shown(lang, &e)))
}

/// What the page says of `e` in `lang`: the catalogue's text of a fixed refusal, else
/// the error's own (English) message.
fn shown(lang: &str, e: &SiteError) -> String {
    let lang = Lang::from_tag(lang).unwrap_or(Lang::En);
    crate::i18n::catalogue()
        .get(lang, &format!("site-error-{}", e.code()))
        .unwrap_or_else(|| e.to_string())
}

/// A refused request of the site, rendered as its error page (English: no session says
/// which language to speak).
#[derive(Debug)]
struct Refused(SiteError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<SiteError> for Refused {
    fn from(e: SiteError) -> Refused {
        Refused(e)
    }
}

impl actix_web::ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        page(
            self.0.status(),
            settings_pages::error("en", &self.0.to_string()),
        )
    }
}

/// `GET /settings/assets/settings.css`.
#[utoipa::path(get, path = "/settings/assets/settings.css", tag = "settings site",
    responses(
        (status = 200, description = "The site's stylesheet", content_type = "text/css", body = String),
        (status = 405, response = MethodNotAllowed),
    ))]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

/// `GET /settings/assets/copy.js`.
#[utoipa::path(get, path = "/settings/assets/copy.js", tag = "settings site",
    responses(
        (status = 200, description = "The order page's copy buttons", content_type = "text/javascript", body = String),
        (status = 405, response = MethodNotAllowed),
    ))]
async fn copy_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(COPY_SCRIPT)
}

/// The form fields of a POST: pairs in order (repeated names kept).
async fn form(
    app: &Services,
    req: &HttpRequest,
    body: web::Payload,
) -> Result<Vec<(String, String)>, SiteError> {
    let bytes = crate::cafe24::read_bytes(req, body, app.body_limits)
        .await
        .map_err(|e| SiteError::Form(e.to_string()))?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The session of a POST for `mall_id`: cookie, mall and CSRF token checked.
async fn posted(
    app: &Services,
    req: &HttpRequest,
    body: web::Payload,
    mall_id: &str,
) -> Result<(Session, Vec<(String, String)>), SiteError> {
    let fields = form(app, req, body).await?;
    let cookie = req.cookie(SESSION_COOKIE);
    let session = settings::authorize(
        app,
        cookie.as_ref().map(|c| c.value()),
        mall_id,
        Some(field(&fields, "csrf")),
    )
    .await?;
    Ok((speaking(req, session), fields))
}

/// 303 back to the page (`?done={done}`; `done` may end in a fragment, `#shop-N`, to
/// keep the changed row in view), or the page with the form error, or an error page.
async fn after(
    app: &Services,
    session: &Session,
    result: Result<(), SiteError>,
    done: &str,
) -> HttpResponse {
    match result {
        Ok(()) => HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/settings/{}?done={done}", session.mall_id),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e @ (SiteError::Form(_) | SiteError::Refused(_))) => {
            match settings::view(app, session).await {
                Ok(view) => page(
                    e.status(),
                    settings_pages::settings(&view, None, Some(&shown(&session.lang, &e)), None),
                ),
                Err(e) => failed(&session.lang, e),
            }
        }
        Err(e) => failed(&session.lang, e),
    }
}

/// `reply` with the language cookie when the request switched language (`?lang=`): the
/// choice holds on every page of the site from then on.
fn keeping_lang(app: &Services, req: &HttpRequest, mut reply: HttpResponse) -> HttpResponse {
    if let Some(lang) = switched(req) {
        let keep = self::cookie(
            app,
            LANG_COOKIE,
            lang.code().to_owned(),
            "/settings",
            365 * 86400,
        );
        let _ = reply.add_cookie(&keep);
    }
    reply
}

/// `GET /settings/{mall_id}`: the settings page.
#[utoipa::path(get, path = "/settings/{mall_id}", tag = "settings site",
    params(("mall_id" = String, Path, description = "The Cafe24 mall id"), ("done" = Option<String>, Query, description = "What was just saved: shows a notice")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, response = BadRequest),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 or KOMOJU could not be reached, or Cafe24 refused a call for a missing permission (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn show(app: State, req: HttpRequest, mall_id: web::Path<String>) -> HttpResponse {
    let cookie = req.cookie(SESSION_COOKIE);
    let session =
        match settings::authorize(&app, cookie.as_ref().map(|c| c.value()), &mall_id, None).await {
            Ok(s) => speaking(&req, s),
            Err(e) => return failed(page_lang(&req, None).code(), e),
        };
    let done = url::form_urlencoded::parse(req.query_string().as_bytes()).any(|(k, _)| k == "done");
    match settings::view(&app, &session).await {
        Ok(view) => {
            let notice = done.then_some(settings_pages::texts(&session.lang).done.as_str());
            let reply = page(
                StatusCode::OK,
                settings_pages::settings(&view, notice, None, None),
            );
            keeping_lang(&app, &req, reply)
        }
        Err(e) => failed(&session.lang, e),
    }
}

/// `GET /settings/{mall_id}/payments`: the mall's orders, newest first, filtered, a page
/// at a time (`after`, the cursor the previous page links to).
#[utoipa::path(get, path = "/settings/{mall_id}/payments", tag = "settings site",
    params(
        ("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("state" = Option<String>, Query, description = "An order state; empty: all",
            pattern = "^(pending|awaiting_payment|authorized|paid|amount_mismatch|partially_refunded|refunded|cancelled|expired|failed)?$"),
        ("shop" = Option<String>, Query, description = "A shop number, 1–9999; empty: all",
            pattern = "^([1-9][0-9]{0,3})?$"),
        ("from" = Option<String>, Query, description = "Created on or after this day, YYYY-MM-DD (UTC)",
            pattern = "^(20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))?$"),
        ("to" = Option<String>, Query, description = "Created on or before this day, YYYY-MM-DD (UTC)",
            pattern = "^(20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))?$"),
        ("order_id" = Option<String>, Query, description = "Cafe24's order id, exactly",
            pattern = "^[A-Za-z0-9-]{0,40}$"),
        ("after" = Option<String>, Query, description = "The cursor of the next page, as the previous page links it",
            pattern = "^(1[0-9]{15}\\.[a-f0-9-]{36})?$"),
        ("lang" = Option<String>, Query, description = "The page's language, kept in a cookie",
            pattern = "^(ja|ko|en)?$"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, response = BadRequest),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session is another mall's", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 422, description = "A page: a filter that is not valid (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn payments(app: State, req: HttpRequest, mall_id: web::Path<String>) -> HttpResponse {
    let (session, query, parsed) = match payments_request(&app, &req, &mall_id).await {
        Ok(asked) => asked,
        Err(refused) => return refused,
    };
    let listed = match parsed {
        Ok(q) => settings::payments(&app, &session, q).await,
        Err(e) => Err(e),
    };
    match listed {
        Ok(view) => keeping_lang(
            &app,
            &req,
            page(StatusCode::OK, settings_pages::payments(&view, &query)),
        ),
        Err(e) => failed(&session.lang, e),
    }
}

/// `GET /settings/{mall_id}/payments.csv`: the filtered list as CSV (every cell safe from
/// spreadsheet formulas), newest first, at most `CSV_MAX_ROWS` rows, streamed a batch at
/// a time.
#[utoipa::path(get, path = "/settings/{mall_id}/payments.csv", tag = "settings site",
    params(
        ("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("state" = Option<String>, Query, description = "An order state; empty: all",
            pattern = "^(pending|awaiting_payment|authorized|paid|amount_mismatch|partially_refunded|refunded|cancelled|expired|failed)?$"),
        ("shop" = Option<String>, Query, description = "A shop number, 1–9999; empty: all",
            pattern = "^([1-9][0-9]{0,3})?$"),
        ("from" = Option<String>, Query, description = "Created on or after this day, YYYY-MM-DD (UTC)",
            pattern = "^(20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))?$"),
        ("to" = Option<String>, Query, description = "Created on or before this day, YYYY-MM-DD (UTC)",
            pattern = "^(20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))?$"),
        ("order_id" = Option<String>, Query, description = "Cafe24's order id, exactly",
            pattern = "^[A-Za-z0-9-]{0,40}$"),
    ),
    responses(
        (status = 200, description = "The orders as CSV, a header row first", content_type = "text/csv", body = String),
        (status = 400, response = BadRequest),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session is another mall's", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 422, description = "A page: a filter that is not valid (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn payments_csv(app: State, req: HttpRequest, mall_id: web::Path<String>) -> HttpResponse {
    let (session, _, parsed) = match payments_request(&app, &req, &mall_id).await {
        Ok(asked) => asked,
        Err(refused) => return refused,
    };
    match parsed {
        Ok(q) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"payments-{}.csv\"", session.mall_id),
            ))
            .streaming(csv_stream(app.into_inner(), session, q.filter)),
        Err(e) => failed(&session.lang, e),
    }
}

/// What the payments page and its CSV are asked: the session (refused as a page in the
/// browser's language), the query pairs as sent, and the filter they make.
async fn payments_request(
    app: &Services,
    req: &HttpRequest,
    mall_id: &str,
) -> Result<PaymentsAsk, HttpResponse> {
    let cookie = req.cookie(SESSION_COOKIE);
    let session = settings::authorize(app, cookie.as_ref().map(|c| c.value()), mall_id, None)
        .await
        .map_err(|e| failed(page_lang(req, None).code(), e))?;
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let parsed = settings::PaymentsQuery::parse(&query);
    Ok((speaking(req, session), query, parsed))
}

/// The session, the query pairs as sent, and the filter (or why it is not valid).
type PaymentsAsk = (
    Session,
    Vec<(String, String)>,
    Result<settings::PaymentsQuery, SiteError>,
);

/// The CSV export's body: batches of 500 rows by keyset until the filter is exhausted
/// or `CSV_MAX_ROWS` rows were written. A failure mid-way ends the body early (logged):
/// the download is then visibly cut, never silently complete.
fn csv_stream(
    app: std::sync::Arc<Services>,
    session: Session,
    filter: crate::db::orders::PaymentsFilter,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, SiteErrorBody>> {
    use crate::install::settings::payments::{csv_batch, csv_chunk, CSV_MAX_ROWS};
    const BATCH: i64 = 500;
    let start = (Some(None), 0usize);
    futures_util::stream::unfold(start, move |(after, written)| {
        let (app, session, filter) = (app.clone(), session.clone(), filter.clone());
        async move {
            let after = after?;
            if written >= CSV_MAX_ROWS {
                return None;
            }
            let batch = BATCH.min((CSV_MAX_ROWS - written) as i64);
            let chunk = csv_batch(&app, &session, filter, after, batch)
                .await
                .and_then(|(rows, next)| Ok((csv_chunk(&rows, written == 0)?, next, rows.len())));
            match chunk {
                Ok((bytes, next, n)) => Some((
                    Ok(actix_web::web::Bytes::from(bytes)),
                    (next.map(Some), written + n),
                )),
                Err(e) => Some((Err(SiteErrorBody(e.to_string())), (None, written))),
            }
        }
    })
}

/// Why a CSV body ended early (for actix's streaming body; the cause is in the log).
#[derive(Debug)]
pub struct SiteErrorBody(String);

impl std::fmt::Display for SiteErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SiteErrorBody {}

/// `GET /settings/{mall_id}/payments/{order_id}`: an order of the session's mall, with
/// its timeline, notifications, refunds and duplicate payments. Another mall's order
/// and a missing one are the same 404 page.
#[utoipa::path(get, path = "/settings/{mall_id}/payments/{order_id}", tag = "settings site",
    params(
        ("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("order_id" = String, Path, description = "Cafe24's order id"),
        ("done" = Option<String>, Query, description = "What was just done (shows a notice): `retried` (a notification queued again), `captured`, `capture-not-now`, `capture-refused`, `capture-unanswered`"),
        ("lang" = Option<String>, Query, description = "The page's language", pattern = "^(ja|ko|en)?$"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, response = BadRequest),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session is another mall's", content_type = "text/html"),
        (status = 404, description = "A page: no such order in this mall", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn order(app: State, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (mall_id, order_id) = path.into_inner();
    let cookie = req.cookie(SESSION_COOKIE);
    let session =
        match settings::authorize(&app, cookie.as_ref().map(|c| c.value()), &mall_id, None).await {
            Ok(s) => speaking(&req, s),
            Err(e) => return failed(page_lang(&req, None).code(), e),
        };
    let done = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v.into_owned());
    match settings::order_page(&app, &session, &order_id).await {
        Ok(view) => {
            let lang = Lang::from_tag(&session.lang).unwrap_or(Lang::En);
            let notice = done
                .as_deref()
                .and_then(|d| settings_order_page::done_text(lang, d));
            let markup = settings_order_page::order_page(&view, notice.as_deref());
            keeping_lang(&app, &req, page(StatusCode::OK, markup))
        }
        Err(e) => failed(&session.lang, e),
    }
}

/// `POST /settings/{mall_id}/payments/{order_id}/notifications/{id}/retry`: a dead
/// notification of the order sent again; 303 back to the order's page.
#[utoipa::path(post, path = "/settings/{mall_id}/payments/{order_id}/notifications/{id}/retry", tag = "settings site",
    params(
        ("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("order_id" = String, Path, description = "Cafe24's order id"),
        ("id" = i64, Path, description = "The notification's id, as the order's page shows it"),
    ),
    request_body(content((CsrfForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 303, description = "Queued again (or it was not dead: nothing changed): back to the order's page", headers(("Location" = String))),
        (status = 400, response = BadRequest), (status = 413, response = TooLarge),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, the form has no valid CSRF token, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 404, description = "A page: no such notification of that order in this mall", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn order_retry(
    app: State,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, Refused> {
    let (mall_id, order_id, id) = path.into_inner();
    let (session, _) = posted(&app, &req, body, &mall_id).await?;
    let queued = match settings::send_again(&app, &session, &order_id, id).await {
        Ok(queued) => queued,
        Err(e) => return Ok(failed(&session.lang, e)),
    };
    let back = settings::order_page::page_path(&session.mall_id, &order_id);
    let location = if queued {
        format!("{back}?done=retried")
    } else {
        back
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /settings/{mall_id}/komoju`: KOMOJU keys and options.
#[utoipa::path(post, path = "/settings/{mall_id}/komoju", tag = "settings site",
    params(("mall_id" = String, Path, description = "The Cafe24 mall id")),
    request_body(content((KomojuSettingsForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 303, description = "Saved: back to the page", headers(("Location" = String))),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 or KOMOJU could not be reached, or Cafe24 refused a call for a missing permission (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
        (status = 404, description = "A page: no such shop", content_type = "text/html"),
        (status = 422, description = "The page with the form error; nothing saved", content_type = "text/html"),
        (status = 400, response = BadRequest), (status = 413, response = TooLarge),
    ))]
async fn komoju(
    app: State,
    req: HttpRequest,
    body: web::Payload,
    mall_id: web::Path<String>,
) -> Result<HttpResponse, Refused> {
    let (session, fields) = posted(&app, &req, body, &mall_id).await?;
    let result = settings::save_komoju(&app, &session, komoju_form_of(&fields)).await;
    Ok(match result {
        Err(SiteError::Field(e)) => field_error_page(&app, &session, &e, &fields).await,
        result => after(&app, &session, result, "komoju").await,
    })
}

fn posted_types(fields: &[(String, String)]) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| k == "payment_types")
        .map(|(_, v)| v.clone())
        .collect()
}

/// The KOMOJU form as posted.
fn komoju_form_of(fields: &[(String, String)]) -> KomojuForm {
    KomojuForm {
        secret_key: SecretString::from(field(fields, "secret_key").unwrap_or("").to_owned()),
        webhook_secret: SecretString::from(
            field(fields, "webhook_secret").unwrap_or("").to_owned(),
        ),
        payment_types: posted_types(fields),
        payment_types_shown: field(fields, "payment_types_shown") == Some("1"),
        cancel_mode: field(fields, "cancel_mode").unwrap_or("").to_owned(),
        locale: field(fields, "locale").unwrap_or("").to_owned(),
        external_review: field(fields, "external_review") == Some("1"),
        capture: field(fields, "capture").map(str::to_owned),
        auto_capture_after_days: field(fields, "auto_capture_after_days").map(str::to_owned),
    }
}

/// The settings page answering a KOMOJU form with a wrong field (422): the form as
/// posted (the typed secrets in their fields, the choices as chosen), the message under
/// the field, a summary at the top. Nothing was saved.
async fn field_error_page(
    app: &Services,
    session: &Session,
    e: &FieldError,
    fields: &[(String, String)],
) -> HttpResponse {
    let mut view = match settings::view(app, session).await {
        Ok(view) => view,
        Err(e) => return failed(&session.lang, e),
    };
    let chosen = posted_types(fields);
    if field(fields, "payment_types_shown") == Some("1") {
        if let Ok(types) = view.payment_types.as_mut() {
            for t in types.iter_mut() {
                t.selected = chosen.contains(&t.type_slug);
            }
        }
    }
    view.cancel_mode = field(fields, "cancel_mode").unwrap_or("").to_owned();
    view.locale = field(fields, "locale").unwrap_or("").to_owned();
    view.external_review = field(fields, "external_review") == Some("1");
    let lang = Lang::from_tag(&session.lang).unwrap_or(Lang::En);
    let message = crate::i18n::catalogue().text_with(lang, e.message, &[("value", &e.value)]);
    // A typed secret comes back unless it is the field in error (a refused key is typed
    // again, not kept).
    let typed = |name: &str| match e.field == name {
        true => String::new(),
        false => field(fields, name).unwrap_or("").to_owned(),
    };
    let posted = settings_pages::Posted {
        secret_key: typed("secret_key"),
        webhook_secret: typed("webhook_secret"),
        error: Some((e.field, message)),
    };
    let summary = shown(&session.lang, &SiteError::Field(e.clone()));
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        settings_pages::settings(&view, None, Some(&summary), Some(&posted)),
    )
}

/// `POST /settings/{mall_id}/payments/{order_id}/capture`: the Capture button of an
/// authorized manual-capture order; 303 to the order's page, whose notice says what
/// came of it (captured, refused with KOMOJU's reason, not answered, nothing to do).
#[utoipa::path(post, path = "/settings/{mall_id}/payments/{order_id}/capture", tag = "settings site",
    params(("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("order_id" = String, Path, description = "Cafe24's order id")),
    request_body(content((CsrfForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 303, description = "Asked: to the order's page, `done` naming the outcome", headers(("Location" = String))),
        (status = 400, response = BadRequest), (status = 413, response = TooLarge),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 404, description = "A page: no such order in this mall", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: the mall's KOMOJU settings cannot be used now", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
    ))]
async fn capture(
    app: State,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Refused> {
    let (mall_id, order_id) = path.into_inner();
    let (session, _) = posted(&app, &req, body, &mall_id).await?;
    let asked = settings::capture(&app, &session, &order_id).await?;
    let back = settings::order_page::page_path(&mall_id, &order_id);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{back}?done={}", asked.as_str())))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /settings/{mall_id}/shops/{shop_no}/{switch}`: a shop's `gateway` or
/// `script` on or off.
#[utoipa::path(post, path = "/settings/{mall_id}/shops/{shop_no}/{switch}", tag = "settings site",
    params(("mall_id" = String, Path, description = "The Cafe24 mall id"),
        ("shop_no" = i32, Path, description = "The shop number"),
        ("switch" = String, Path, description = "`gateway` or `script`")),
    request_body(content((SwitchForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 303, description = "Saved: back to the page", headers(("Location" = String))),
        (status = 400, response = BadRequest), (status = 413, response = TooLarge),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 or KOMOJU could not be reached, or Cafe24 refused a call for a missing permission (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
        (status = 404, description = "A page: no such shop", content_type = "text/html"),
        (status = 422, description = "The page with the form error; nothing saved", content_type = "text/html"),
    ))]
async fn shop_switch(
    app: State,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<(String, i32, String)>,
) -> Result<HttpResponse, Refused> {
    let (mall_id, shop_no, switch) = path.into_inner();
    let (session, fields) = posted(&app, &req, body, &mall_id).await?;
    let on = match field(&fields, "on") {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(SiteError::Form("on must be 1 or 0".into()).into()),
    };
    let result = match switch.as_str() {
        "gateway" => settings::set_gateway(&app, &session, shop_no, on).await,
        "script" => settings::set_script(&app, &session, shop_no, on).await,
        _ => Err(SiteError::UnknownShop),
    };
    let done = format!("{switch}#shop-{shop_no}");
    Ok(after(&app, &session, result, &done).await)
}

/// `POST /settings/{mall_id}/webhook-test`: a test delivery to the KOMOJU webhook.
#[utoipa::path(post, path = "/settings/{mall_id}/webhook-test", tag = "settings site",
    params(("mall_id" = String, Path, description = "The Cafe24 mall id")),
    request_body(content((CsrfForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 303, description = "Saved: back to the page", headers(("Location" = String))),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 or KOMOJU could not be reached, or Cafe24 refused a call for a missing permission (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
        (status = 404, description = "A page: no such shop", content_type = "text/html"),
        (status = 422, description = "The page with the form error; nothing saved", content_type = "text/html"),
        (status = 400, response = BadRequest), (status = 413, response = TooLarge),
    ))]
async fn webhook_test(
    app: State,
    req: HttpRequest,
    body: web::Payload,
    mall_id: web::Path<String>,
) -> Result<HttpResponse, Refused> {
    let (session, _) = posted(&app, &req, body, &mall_id).await?;
    let result = settings::test_webhook(&app, &session).await.map(|_| ());
    Ok(after(&app, &session, result, "webhook").await)
}

/// `POST /settings/{mall_id}/disconnect`: the app disconnected from the mall.
#[utoipa::path(post, path = "/settings/{mall_id}/disconnect", tag = "settings site",
    params(("mall_id" = String, Path, description = "The Cafe24 mall id")),
    request_body(content((CsrfForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Disconnected: a page saying so; the session cookie removed", content_type = "text/html", body = String),
        (status = 401, description = "A page: no session cookie, not this mall's, or ended by a disconnect", content_type = "text/html"),
        (status = 403, description = "A page: the mall is not connected, or the session may not (a sub-operator's session is read-only)", content_type = "text/html"),
        (status = 405, response = MethodNotAllowed),
        (status = 502, description = "A page: Cafe24 or KOMOJU could not be reached, or Cafe24 refused a call for a missing permission (the page names it)", content_type = "text/html"),
        (status = 503, description = "A page: the database cannot be reached", content_type = "text/html"),
        (status = 404, description = "A page: no such shop", content_type = "text/html"),
        (status = 422, description = "The page with the form error; nothing saved", content_type = "text/html"),
        (status = 400, response = BadRequest), (status = 413, response = TooLarge),
    ))]
async fn disconnect(
    app: State,
    req: HttpRequest,
    body: web::Payload,
    mall_id: web::Path<String>,
) -> Result<HttpResponse, Refused> {
    let (session, _) = posted(&app, &req, body, &mall_id).await?;
    Ok(match settings::disconnect(&app, &session).await {
        Ok(()) => {
            let mut reply = page(StatusCode::OK, settings_pages::disconnected(&session.lang));
            let _ = reply.add_removal_cookie(&session_cookie(&app, String::new()));
            reply
        }
        Err(e) => failed(&session.lang, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_refusal_speaks_every_language() {
        for e in SiteError::FIXED {
            for lang in Lang::ALL {
                let id = format!("site-error-{}", e.code());
                assert!(
                    crate::i18n::catalogue().get(lang, &id).is_some(),
                    "{id} is missing in {}",
                    lang.code()
                );
            }
        }
        assert_eq!(
            shown(
                "ko",
                &SiteError::Form("Enter your KOMOJU secret key".into())
            ),
            "Enter your KOMOJU secret key"
        );
        assert_eq!(
            shown("ja_JP", &SiteError::UnknownShop),
            "このショップにそのショップ番号はありません。"
        );
    }
}
