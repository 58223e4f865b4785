//! `GET /openapi.json` (PROTOCOL.md §13) through the real server: an OpenAPI 3.1
//! document that names every route the server mounts (path and method), and nothing it
//! does not. What is mounted is what `routes::resource` recorded while the server was
//! configured (`routes::mounted()`).

use std::collections::BTreeSet;

use crate::both_backends;
use crate::helpers::*;

both_backends!(the_document_names_every_mounted_route_and_only_those);

/// actix's path syntax as OpenAPI spells it: `{tail:.*}` → `{tail}`.
fn openapi_path(actix: &str) -> String {
    let mut out = String::new();
    let mut rest = actix;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or(rest.len() - 1);
        let inner = &rest[open + 1..close];
        let name = inner.split(':').next().unwrap_or(inner);
        out.push('{');
        out.push_str(name);
        out.push('}');
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

async fn the_document_names_every_mounted_route_and_only_those(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get(&format!("{}/openapi.json", app.address)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json")));
    let doc: serde_json::Value = resp.json().await.unwrap_or_default();
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            documented.insert((path.clone(), method.to_ascii_uppercase()));
        }
    }
    let mut mounted = BTreeSet::new();
    for (path, methods) in cafe24_komoju::routes::mounted() {
        for method in methods {
            mounted.insert((openapi_path(&path), method));
        }
    }
    assert!(
        mounted.len() > 30,
        "the registry holds what was mounted: {mounted:?}"
    );
    assert!(mounted.contains(&("/openapi.json".to_owned(), "GET".to_owned())));
    assert!(mounted.contains(&(
        "/settings/{mall_id}/shops/{shop_no}/{switch}".to_owned(),
        "POST".to_owned()
    )));

    let missing: Vec<_> = mounted.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "mounted but not documented: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&mounted).collect();
    assert!(extra.is_empty(), "documented but not mounted: {extra:?}");
    assert!(mounted.contains(&("/metrics".to_owned(), "GET".to_owned())));

    // The shared §3 envelope and the operator API's bearer scheme.
    let envelope = &doc["components"]["schemas"]["ErrorEnvelope"];
    assert_eq!(
        envelope["required"],
        serde_json::json!(["result_code", "result_message", "error"])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["operator_token"]["scheme"],
        "bearer"
    );
}

#[test]
fn actix_paths_become_openapi_paths() {
    assert_eq!(openapi_path("/settings/{mall_id}"), "/settings/{mall_id}");
    assert_eq!(openapi_path("/files/{tail:.*}"), "/files/{tail}");
    assert_eq!(openapi_path("/a/{id:\\d+}/b/{x}"), "/a/{id}/b/{x}");
    assert_eq!(openapi_path("/health"), "/health");
}
