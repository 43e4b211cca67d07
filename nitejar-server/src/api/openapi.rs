//! `/api/openapi.json`, generated from the route table (`crate::routes`) so that it lists exactly
//! the routes the server answers; the schemas it refers to are in `openapi_components.json`.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use crate::auth::Admin;
use crate::routes::{Access, Answer, Body, RouteDef, ROUTES};

const COMPONENTS: &str = include_str!("openapi_components.json");

/// The document, built once.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

pub async fn document(_admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(&*DOCUMENT)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema_ref("Error") } } })
}

fn operation(r: &RouteDef) -> Value {
    let mut parameters: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(r.doc.query.iter().map(|(name, description)| {
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
    }));
    let ok = match r.doc.answer {
        Answer::Json(schema) => {
            json!({ "description": "OK", "content": { "application/json": { "schema": schema_ref(schema) } } })
        }
        Answer::Html => json!({ "description": "An HTML page", "content": { "text/html": {} } }),
        Answer::Redirect => json!({ "description": "Redirect to a page" }),
        Answer::Text => {
            json!({ "description": "Prometheus text exposition", "content": { "text/plain": {} } })
        }
        Answer::Css => json!({ "description": "A stylesheet", "content": { "text/css": {} } }),
    };
    let ok_status = match r.doc.answer {
        Answer::Redirect => "303",
        _ => "200",
    };
    let mut responses = Map::new();
    responses.insert(ok_status.into(), ok);
    let security = match r.access() {
        Access::Admin | Access::Metrics => {
            responses.insert("401".into(), error_response("No or wrong credentials"));
            responses.insert(
                "403".into(),
                error_response("Cross-site request or missing CSRF token (session cookie only)"),
            );
            json!([{ "bearerAuth": [] }, { "sessionCookie": [] }])
        }
        Access::Public | Access::SignIn | Access::Webhook => json!([]),
    };
    if matches!(r.doc.answer, Answer::Json(_)) && r.path.starts_with("/api/admin") {
        responses.insert(
            "4XX".into(),
            error_response("A request the server refused; see error.code"),
        );
    }
    let mut op = json!({
        "tags": [r.doc.tag],
        "summary": r.doc.summary,
        "operationId": operation_id(r),
        "parameters": parameters,
        "responses": responses,
        "security": security,
    });
    let body = match r.doc.body {
        Body::None => None,
        Body::Json(schema) => Some(
            json!({ "required": true, "content": { "application/json": { "schema": schema_ref(schema) } } }),
        ),
        Body::Form => Some(
            json!({ "required": true, "content": { "application/x-www-form-urlencoded": { "schema": { "type": "object", "properties": { "_csrf": { "type": "string" } } } } } }),
        ),
        Body::Raw => Some(json!({ "required": true, "content": { "*/*": {} } })),
        Body::Multipart(field) => Some(json!({
            "required": true,
            "content": { "multipart/form-data": { "schema": {
                "type": "object",
                "required": [field],
                "properties": { field: { "type": "string", "format": "binary" } }
            } } }
        })),
    };
    if let (Some(body), Some(map)) = (body, op.as_object_mut()) {
        map.insert("requestBody".into(), body);
    }
    op
}

fn operation_id(r: &RouteDef) -> String {
    let mut id = r.verb.as_str().to_owned();
    for part in r
        .path
        .split(['/', '-', '.', '{', '}', '_'])
        .filter(|p| !p.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

fn build() -> Value {
    let mut paths = Map::new();
    for r in ROUTES.iter() {
        let entry = paths.entry(r.path).or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(r.verb.as_str().into(), operation(r));
        }
    }
    let components: Value = serde_json::from_str(COMPONENTS).unwrap_or_else(|e| {
        tracing::error!("openapi_components.json is not JSON: {e}");
        json!({})
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Nitejar admin API",
            "version": nitejar_core::NITEJAR_VERSION,
            "description": "Plugins, integrations, receipts and the runtime of a Nitejar server. Plugins run in-process (no hard sandbox); declared permissions are enforced at host services only. Errors are {\"error\": {\"code\", \"message\"}}.",
        },
        "paths": paths,
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_its_method() {
        let doc = &*DOCUMENT;
        let mut documented = 0;
        for r in ROUTES.iter() {
            assert!(
                doc["paths"][r.path][r.verb.as_str()].is_object(),
                "{} {} is not in the document",
                r.verb.as_str(),
                r.path
            );
            documented += 1;
        }
        let operations: usize = doc["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .filter_map(|v| v.as_object())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(
            operations, documented,
            "the document lists routes the server does not have"
        );
    }

    #[test]
    fn every_referenced_schema_exists() {
        let doc = &*DOCUMENT;
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "schema {name} is missing"
            );
        }
    }
}
