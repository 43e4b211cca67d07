//! `/api/admin/plugins/{id}/config`: a plugin's settings — the config its manifest declares and
//! the secrets it declares — read (secrets masked, with where each value comes from) and changed
//! through [`PluginManager::configure`](nitejar_core::lifecycle::PluginManager::configure), as the
//! admin UI and the CLI change them.

use nitejar_core::lifecycle::execution::ExecutionChoice;
use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use nitejar_core::lifecycle::SettingsChange;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::auth::Admin;
use crate::state::AppState;

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.plugins.settings(&id).await?;
    Ok(HttpResponse::Ok().json(settings))
}

/// The change a request body asks for. `config` present (even `null`) replaces the config; absent
/// leaves it. Read by hand rather than by serde so that `"config": null` and no `config` differ.
pub fn change_of(body: &Value) -> Result<SettingsChange, ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object with `config` and/or `secrets`",
        ));
    };
    if let Some(other) = fields.keys().find(|k| *k != "config" && *k != "secrets") {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("unknown field `{other}`; send `config` (the whole config) and/or `secrets` (by name)"),
        ));
    }
    let mut change = SettingsChange {
        config: fields.get("config").cloned(),
        secrets: BTreeMap::new(),
    };
    match fields.get("secrets") {
        None | Some(Value::Null) => {}
        Some(Value::Object(secrets)) => {
            for (name, value) in secrets {
                let value = match value {
                    Value::String(v) => Some(v.clone()),
                    Value::Null => None,
                    _ => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_secret",
                            format!("secrets.{name} must be a string (the value to store) or null (remove the stored value); nothing was saved"),
                        ))
                    }
                };
                change.secrets.insert(name.clone(), value);
            }
        }
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_secret",
                "`secrets` must be an object of secret names to values (or null to remove a stored value); nothing was saved",
            ))
        }
    }
    Ok(change)
}

pub async fn put(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let change = change_of(&body)?;
    let outcome = state.plugins.configure(&id, change).await?;
    let settings = state.plugins.settings(&id).await?;
    Ok(HttpResponse::Ok().json(json!({ "configured": outcome, "settings": settings })))
}

/// `PUT /api/admin/plugins/{id}/execution`: `{"mode": "isolated" | "in_process" | null,
/// "memoryMib": n | null, "cpuSeconds": n | null}` (null or absent: the server's default; the
/// limits bound the plugin's own process when it runs isolated). An active plugin is re-activated
/// with the new choice at once.
pub async fn put_execution(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let choice = execution_choice_of(&body)?;
    let outcome = state.plugins.set_execution(&id, choice).await?;
    Ok(HttpResponse::Ok().json(json!({ "execution": outcome })))
}

const EXECUTION_SHAPE: &str = "the body must be {\"mode\": \"isolated\" | \"in_process\" | null, \"memoryMib\": number | null, \"cpuSeconds\": number | null}";

/// Reads the body of `PUT …/execution`.
fn execution_choice_of(body: &Value) -> Result<ExecutionChoice, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request("invalid_json", EXECUTION_SHAPE));
    };
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "mode" | "memoryMib" | "cpuSeconds"))
    {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("unknown field `{key}`: {EXECUTION_SHAPE}"),
        ));
    }
    let mode = match object.get("mode") {
        None => {
            return Err(ApiError::bad_request(
                "invalid_json",
                format!("`mode` is required: {EXECUTION_SHAPE}"),
            ))
        }
        Some(Value::Null) => None,
        Some(Value::String(m)) => Some(
            nitejar_core::lifecycle::execution::parse_execution(m).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_execution_mode",
                    format!("`mode` must be \"isolated\", \"in_process\" or null (the server's default), not {m:?}"),
                )
            })?,
        ),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_execution_mode",
                format!("`mode` must be \"isolated\", \"in_process\" or null (the server's default), not {other}"),
            ))
        }
    };
    let limit = |field: &str| -> Result<Option<u64>, ApiError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_limit",
                    format!(
                        "`{field}` must be a whole number or null (the server's default), not {v}"
                    ),
                )
            }),
        }
    };
    Ok(ExecutionChoice {
        mode,
        memory_mib: limit("memoryMib")?,
        cpu_seconds: limit("cpuSeconds")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_config_differs_from_no_config() {
        let change = change_of(&json!({ "config": null })).unwrap();
        assert_eq!(change.config, Some(Value::Null));
        let change = change_of(&json!({ "secrets": { "A": "x", "B": null } })).unwrap();
        assert_eq!(change.config, None);
        assert_eq!(change.secrets["A"].as_deref(), Some("x"));
        assert_eq!(change.secrets["B"], None);
        assert_eq!(
            change_of(&json!({ "confg": {} })).unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            change_of(&json!({ "secrets": { "A": 1 } }))
                .unwrap_err()
                .code,
            "invalid_secret"
        );
    }
}
