//! `GET /openapi.json` (PROTOCOL.md §13): the OpenAPI 3.1 document of every route this
//! service mounts outside the development-only `/sandbox/…`, generated with utoipa from
//! the `#[utoipa::path]` annotations beside the handlers, the reply types they return,
//! the request field tables ([`super::fields`]) and the §3 envelope's shared responses
//! ([`crate::error::responses`]). This module only assembles and serves it; it never touches a
//! handler's behaviour.
//!
//! Aliases served by one handler (the sample app's `…-refund` paths, the three webhook
//! paths) are documented as copies of the annotated path; every `operationId` is
//! `{method}_{path}`. `tests/api/openapi.rs` checks that the document and the mounted routes
//! ([`super::mounted`]) name the same paths and methods.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem};
use utoipa::{Modify, OpenApi};

use super::{
    asynchronous_cancellation, asynchronous_checkout, external_checkout, install, komoju_webhook,
    operator, settings_site, synchronous_cancellation, synchronous_checkout,
};
use crate::error::responses::*;
use crate::error::{ErrorCode, ErrorEnvelope};

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// `(alias, documented path)`: paths one handler serves under another name.
pub const ALIASES: [(&str, &str); 4] = [
    (
        "/api/synchronous-refund/cancel",
        "/api/synchronous-cancellation/cancel",
    ),
    (
        "/api/asynchronous-refund/cancel",
        "/api/asynchronous-cancellation/cancel",
    ),
    (
        "/api/asynchronous-cancellation/cancel/webhook",
        "/api/asynchronous-checkout/checkout/webhook",
    ),
    (
        "/api/asynchronous-refund/cancel/webhook",
        "/api/asynchronous-checkout/checkout/webhook",
    ),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cafe24-komoju",
        description = "A Cafe24 PG app in front of KOMOJU hosted-page sessions. Every reply to Cafe24 is JSON with `result_code` and `result_message`; a failure is the §3 envelope `{\"result_code\":\"9999\",\"result_message\":…,\"error\":<code>}`. An unknown path is 404 and a method a path does not serve 405 (with `Allow`), in the same envelope."
    ),
    paths(
        super::health,
        super::ready,
        super::metrics::metrics,
        openapi_json,
        synchronous_checkout::checkout,
        synchronous_checkout::callback,
        synchronous_checkout::status,
        synchronous_checkout::status_by_query,
        asynchronous_checkout::checkout,
        asynchronous_checkout::callback,
        komoju_webhook::webhook,
        synchronous_cancellation::cancel,
        asynchronous_cancellation::cancel,
        external_checkout::loader,
        external_checkout::app_js,
        external_checkout::data,
        external_checkout::hmac,
        external_checkout::payload,
        external_checkout::review,
        external_checkout::pay,
        external_checkout::callback,
        operator::orders,
        operator::order,
        operator::notifications,
        operator::retry,
        operator::merchants,
        install::launch,
        install::callback,
        install::webhooks,
        settings_site::stylesheet,
        settings_site::copy_script,
        settings_site::show,
        settings_site::payments,
        settings_site::payments_csv,
        settings_site::capture,
        settings_site::order,
        settings_site::order_retry,
        settings_site::komoju,
        settings_site::shop_switch,
        settings_site::webhook_test,
        settings_site::disconnect,
    ),
    components(
        schemas(ErrorEnvelope, ErrorCode),
        responses(
            BadRequest, InvalidHash, Unauthorized, InvalidSignature, Forbidden, NotFound,
            MethodNotAllowed, Timeout, Conflict, TooLarge, NotRefundable, RateLimited,
            Upstream, Unavailable, ApiKeyRefused,
        )
    ),
    modifiers(&Assembly)
)]
struct ApiDoc;

/// The aliases, the operator API's security scheme, and one `operationId` per operation.
struct Assembly;

impl Modify for Assembly {
    fn modify(&self, doc: &mut Document) {
        for (alias, documented) in ALIASES {
            if let Some(item) = doc.paths.paths.get(documented).cloned() {
                doc.paths.paths.insert(alias.to_owned(), item);
            }
        }
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme(
                "operator_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "`cafe24-komoju operator token`: HS256, audience cafe24-komoju/operator",
                        ))
                        .build(),
                ),
            );
        }
        // One handler may serve several methods and paths: every operation is named by
        // its method and path, which are unique together.
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                let words = path
                    .split(['/', '-', '.', '{', '}', '_'])
                    .filter(|w| !w.is_empty());
                let id = std::iter::once(method).chain(words).collect::<Vec<_>>();
                operation.operation_id = Some(id.join("_"));
            }
        }
    }
}

/// The operations of a path item with their method names.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
        ("head", item.head.as_mut()),
        ("options", item.options.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// The document, built once per process.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// Mounts `GET /openapi.json`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(PATH, "GET").route(web::get().to(openapi_json)));
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this service",
            content_type = "application/json", body = Object),
        (status = 405, response = MethodNotAllowed),
    ))]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(document())
}
