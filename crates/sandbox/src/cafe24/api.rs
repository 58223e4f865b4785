//! Every request under `/{mall_id}/api/v2`: one handler that sends the authorize pages to
//! `oauth.rs` (HTML, no faults), and applies to everything else, in order, fault
//! injection, the mall id check, routing (token endpoint, Admin API) and the endpoint,
//! then records the request and adds `X-Api-Call-Limit` to Admin API replies and an
//! `X-Trace_ID` to every API reply. Routing is done here rather than by actix so that
//! every API request passes the same steps.

use std::time::Instant;

use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::reply::Reply;
use super::{admin, oauth, valid_mall_id, Cafe24Fault, Cafe24Request, Cafe24Sandbox};

/// The bucket size Cafe24 announces in `X-Api-Call-Limit: n/40`.
const CALL_LIMIT: usize = 40;
/// Cafe24's replies carry an `X-Trace_ID` header, worth quoting to Cafe24 about a failed
/// call (PROTOCOL.md §12, "Admin API"). Its format is not documented: 32 lowercase hex
/// digits here is a guess.
const TRACE_HEADER: &str = "X-Trace_ID";

fn new_trace_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// Every request under `{prefix}/{mall_id}/api/v2/`.
pub(super) async fn handle(
    req: HttpRequest,
    body: Bytes,
    sandbox: web::Data<Cafe24Sandbox>,
) -> HttpResponse {
    let mall_id = req.match_info().query("mall_id").to_string();
    let tail = req.match_info().query("tail").to_string();
    let path = format!("/api/v2/{tail}");
    let trace_id = new_trace_id();
    let record = |status: StatusCode, grant_type: Option<String>| {
        sandbox.lock().requests.push(Cafe24Request {
            mall_id: mall_id.clone(),
            method: req.method().as_str().to_string(),
            path: path.clone(),
            grant_type,
            status: status.as_u16(),
            trace_id: trace_id.clone(),
        });
    };

    if tail == "oauth/authorize" && valid_mall_id(&mall_id) {
        let page = match *req.method() {
            Method::GET => oauth::authorize_page(&sandbox, &mall_id, req.query_string()),
            Method::POST => oauth::decide(&sandbox, &mall_id, &body),
            _ => reply_response(Reply::not_found(), None, false, None),
        };
        record(page.status(), None);
        return page;
    }

    let is_token = tail == "oauth/token";
    let is_admin = tail == "admin" || tail.starts_with("admin/");
    let grant_type = if is_token {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.into_owned())
    } else {
        None
    };
    let fault = sandbox.lock().take_fault();
    let reply = match fault {
        Some(Cafe24Fault::Status(code)) => Reply::error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Injected by the Cafe24 sandbox (fault injection)",
        ),
        _ if !valid_mall_id(&mall_id) => Reply::error(StatusCode::NOT_FOUND, "Unknown mall"),
        _ if is_token && req.method() == Method::POST => {
            oauth::token(&sandbox, &mall_id, req.headers(), &body)
        }
        _ if is_admin => admin::run(&sandbox, &mall_id, &req, &tail, &body),
        _ => Reply::not_found(),
    };
    let call_limit = (is_admin && valid_mall_id(&mall_id)).then(|| {
        let used = sandbox.lock().count_call(&mall_id, Instant::now());
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            CALL_LIMIT
        } else {
            used
        }
    });
    record(reply.status, grant_type);
    if let Some(Cafe24Fault::Delay(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    if is_token {
        let delay = sandbox.lock().token_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let retry_after = reply.status == StatusCode::TOO_MANY_REQUESTS;
    reply_response(reply, call_limit, retry_after, Some(&trace_id))
}

/// Any path under the prefix that no route claims.
pub(super) async fn not_found() -> HttpResponse {
    reply_response(Reply::not_found(), None, false, Some(&new_trace_id()))
}

fn reply_response(
    reply: Reply,
    call_limit: Option<usize>,
    retry_after: bool,
    trace_id: Option<&str>,
) -> HttpResponse {
    let mut response = HttpResponse::build(reply.status);
    response.content_type("application/json");
    if let Some(trace_id) = trace_id {
        response.insert_header((TRACE_HEADER, trace_id));
    }
    if let Some(used) = call_limit {
        response.insert_header(("X-Api-Call-Limit", format!("{used}/{CALL_LIMIT}")));
    }
    if retry_after {
        response.insert_header(("Retry-After", "1"));
    }
    response.body(reply.body)
}
