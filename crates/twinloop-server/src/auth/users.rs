//! MLflow 3.17.2's user endpoints (`/api/2.0/mlflow/users/…`), its per-user grants
//! (`/api/3.0/mlflow/users/permissions/…`) and the 2.x per-resource permission endpoints
//! (`experiments/permissions/…`, `registered-models/permissions/…`) that clients before 3.17
//! call, all over one grant table. Who may call each is decided in `rules.rs`; these handlers
//! only do what is asked.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use twinloop_core::auth::{Grant, Permission, ResourceType, User, hash_password, verify_password};
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::AuthStore;

use super::{Auth, Caller};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::MAX_JSON_BODY;

type S = State<Arc<AppState>>;

/// The routes under `/api/2.0/mlflow` (and `/ajax-api/2.0/mlflow`).
pub fn v2_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/users/create", post(create_user))
        .route("/users/get", get(get_user))
        .route("/users/current", get(current_user))
        .route("/users/list", get(list_users))
        .route("/users/update-password", patch(update_password))
        .route("/users/update-admin", patch(update_admin))
        .route("/users/delete", delete(delete_user))
        .route("/experiments/permissions/create", post(legacy_create))
        .route("/experiments/permissions/get", get(legacy_get))
        .route("/experiments/permissions/update", patch(legacy_update))
        .route("/experiments/permissions/delete", delete(legacy_delete))
        .route("/registered-models/permissions/create", post(legacy_create))
        .route("/registered-models/permissions/get", get(legacy_get))
        .route(
            "/registered-models/permissions/update",
            patch(legacy_update),
        )
        .route(
            "/registered-models/permissions/delete",
            delete(legacy_delete),
        )
}

/// The routes under `/api/3.0/mlflow` (and `/ajax-api/3.0/mlflow`).
pub fn v3_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/users/permissions/grant", post(grant))
        .route("/users/permissions/revoke", post(revoke))
        .route("/users/permissions/get", get(get_permission))
        .route("/users/permissions/list", get(list_permissions))
        .route("/users/current/permissions", get(current_permissions))
        .merge(super::roles::routes())
}

/// What a handler has to work with: the server's auth (404 without `--auth`, as a server without
/// MLflow's basic-auth app has no such routes), the caller, and the request's parameters.
pub(super) struct Call {
    pub(super) auth: Arc<Auth>,
    pub(super) caller: Caller,
    pub(super) params: Value,
}

impl Call {
    pub(super) async fn read(state: &AppState, req: Request) -> Result<Call, Response> {
        let Some(auth) = state.auth.clone() else {
            return Err(ApiError::no_endpoint(req.uri().path()).into_response());
        };
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(super::unauthenticated)?;
        let mut params = serde_json::Map::new();
        if let Some(query) = req.uri().query() {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()).into_owned() {
                params.entry(k).or_insert(Value::String(v));
            }
        }
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|e| {
                ApiError::invalid(format!("Could not read the request body: {e}")).into_response()
            })?;
        if is_json && !bytes.is_empty() {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(body)) => params.extend(body),
                // MLflow reads a body that is not an object as no parameters.
                Ok(_) => {}
                Err(e) => {
                    return Err(
                        ApiError::invalid(format!("Malformed JSON body: {e}")).into_response()
                    );
                }
            }
        }
        Ok(Call {
            auth,
            caller,
            params: Value::Object(params),
        })
    }

    pub(super) fn store(&self) -> &dyn AuthStore {
        &*self.auth.store
    }

    pub(super) fn opt(&self, key: &str) -> Option<String> {
        self.params.get(key).and_then(super::text_of)
    }

    /// MLflow's `_get_request_param`: a missing parameter is a 400 naming it.
    fn required(&self, key: &str) -> ApiResult<String> {
        self.opt(key).ok_or_else(|| {
            ApiError::invalid(format!("Missing value for required parameter '{key}'."))
        })
    }

    fn permission(&self) -> ApiResult<Permission> {
        Ok(self.required("permission")?.parse()?)
    }
}

macro_rules! call {
    ($state:expr, $req:expr) => {
        match Call::read(&$state, $req).await {
            Ok(call) => call,
            Err(response) => return Ok(response),
        }
    };
}

fn user_json(user: &User) -> Value {
    json!({"id": user.id, "username": user.username, "is_admin": user.is_admin})
}

pub(super) fn empty() -> Response {
    Json(json!({})).into_response()
}

/// MLflow answers these two with a plain-text 400, not its JSON error.
fn plain_400(message: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

async fn hashed(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::internal_from("password hashing failed", e))?
        .map_err(ApiError::from)
}

async fn create_user(State(s): S, req: Request) -> ApiResult<Response> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if s.auth.is_some() && !is_json {
        return Ok(plain_400("Invalid content type. Must be application/json"));
    }
    let call = call!(s, req);
    let username = call.opt("username").unwrap_or_default();
    let password = call.opt("password").unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return Ok(plain_400("Username and password cannot be empty."));
    }
    let hash = hashed(password).await?;
    let user = call.store().create_user(&username, &hash, false).await?;
    Ok(Json(json!({"user": user_json(&user)})).into_response())
}

async fn get_user(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let user = call.store().user(&call.required("username")?).await?;
    Ok(Json(json!({"user": user_json(&user)})).into_response())
}

async fn current_user(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let user = call.store().user(&call.caller.user.username).await?;
    Ok(Json(json!({"user": user_json(&user), "is_basic_auth": true})).into_response())
}

async fn list_users(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let mut users = Vec::new();
    for user in call.store().list_users().await? {
        let roles = call.store().user_roles(&user.username).await?;
        let mut v = user_json(&user);
        v["roles"] = roles.iter().map(super::roles::role_json).collect();
        users.push(v);
    }
    Ok(Json(json!({"users": users})).into_response())
}

async fn update_password(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    let password = call.required("password")?;
    // Changing one's own password needs the current one, so a stolen session cannot rotate it.
    if username == call.caller.user.username {
        let current = call.opt("current_password").unwrap_or_default();
        if current.is_empty() {
            return Err(ApiError::invalid(
                "Current password is required when changing your own password.",
            ));
        }
        let stored = call
            .store()
            .user_credentials(&username)
            .await?
            .map(|c| c.password_hash)
            .unwrap_or_default();
        let check = current.clone();
        let matches = tokio::task::spawn_blocking(move || verify_password(&check, &stored))
            .await
            .map_err(|e| Error::internal_from("password check failed", e))?;
        if !matches {
            return Err(ApiError::invalid("Current password does not match."));
        }
        if password == current {
            return Err(ApiError::invalid(
                "New password must differ from the current password.",
            ));
        }
    }
    let hash = hashed(password).await?;
    call.store().update_password(&username, &hash).await?;
    call.auth.authenticator.cache.forget(&username);
    Ok(empty())
}

async fn update_admin(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    let is_admin = match call.params.get("is_admin") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        _ => {
            return Err(ApiError::invalid(
                "Missing value for required parameter 'is_admin'.",
            ));
        }
    };
    call.store().update_admin(&username, is_admin).await?;
    call.auth.authenticator.cache.forget(&username);
    Ok(empty())
}

async fn delete_user(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    if username == call.caller.user.username {
        return Err(ApiError::with_status(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Users cannot delete their own account. Ask another admin to delete this user instead.",
        ));
    }
    call.store().delete_user(&username).await?;
    call.auth.authenticator.cache.forget(&username);
    Ok(empty())
}

fn resource(call: &Call) -> ApiResult<(ResourceType, String)> {
    let resource_type = call.required("resource_type")?.parse()?;
    Ok((resource_type, call.required("resource_id")?))
}

async fn grant(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    let (resource_type, resource_id) = resource(&call)?;
    let permission = call.permission()?;
    call.store()
        .put_grant(&Grant {
            username,
            resource_type,
            resource_id,
            permission,
        })
        .await?;
    Ok(empty())
}

async fn revoke(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    let (resource_type, resource_id) = resource(&call)?;
    if !call
        .store()
        .delete_grant(&username, resource_type, &resource_id)
        .await?
    {
        return Err(Error::not_found(format!(
            "Permission for username={username}, resource_type={}, resource_id={resource_id} not found.",
            resource_type.name()
        ))
        .into());
    }
    Ok(empty())
}

async fn get_permission(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    let (resource_type, resource_id) = resource(&call)?;
    let user = call.store().user(&username).await?;
    let level = call
        .auth
        .level(&Caller { user, scope: None }, resource_type, &resource_id)
        .await?;
    Ok(Json(json!({"allowed": level.can_use(), "permission": level.name()})).into_response())
}

/// `users/permissions/list` rows: each grant as MLflow reports a grant of the user's own
/// synthetic role `__user_<id>__`.
async fn permissions_of(call: &Call, username: &str) -> ApiResult<Response> {
    let user = call.store().user(username).await?;
    let rows: Vec<Value> = call
        .store()
        .user_grants(username)
        .await?
        .iter()
        .map(|g| {
            json!({
                "role_id": 0,
                "role_name": format!("__user_{}__", user.id),
                "workspace": "default",
                "resource_type": g.resource_type.name(),
                "resource_pattern": g.resource_id,
                "permission": g.permission.name(),
            })
        })
        .collect();
    Ok(Json(json!({"is_admin": user.is_admin, "permissions": rows})).into_response())
}

async fn list_permissions(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.required("username")?;
    permissions_of(&call, &username).await
}

async fn current_permissions(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = call.caller.user.username.clone();
    permissions_of(&call, &username).await
}

/// The 2.x endpoints name an experiment by `experiment_id` and a model by `name`, and answer
/// with `experiment_permission` or `registered_model_permission`.
fn legacy_target(path: &str, call: &Call) -> ApiResult<(ResourceType, String)> {
    if path.contains("/experiments/permissions/") {
        Ok((ResourceType::Experiment, call.required("experiment_id")?))
    } else {
        Ok((ResourceType::RegisteredModel, call.required("name")?))
    }
}

fn legacy_body(resource_type: ResourceType, id: &str, user: &User, p: Permission) -> Value {
    match resource_type {
        ResourceType::Experiment => json!({"experiment_permission": {
            "experiment_id": id, "user_id": user.id, "permission": p.name()}}),
        ResourceType::RegisteredModel => json!({"registered_model_permission": {
            "name": id, "user_id": user.id, "permission": p.name()}}),
    }
}

fn legacy_not_found(resource_type: ResourceType, id: &str, username: &str) -> ApiError {
    let what = match resource_type {
        ResourceType::Experiment => format!("Experiment permission with experiment_id={id}"),
        ResourceType::RegisteredModel => format!("Registered model permission with name={id}"),
    };
    ApiError::of_kind(
        ErrorKind::NotFound,
        format!("{what} and username={username} not found"),
    )
}

async fn legacy_create(State(s): S, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_owned();
    let call = call!(s, req);
    let (resource_type, id) = legacy_target(&path, &call)?;
    let username = call.required("username")?;
    let permission = call.permission()?;
    let user = call.store().user(&username).await?;
    if call
        .store()
        .grant(&username, resource_type, &id)
        .await?
        .is_some()
    {
        return Err(ApiError::of_kind(
            ErrorKind::AlreadyExists,
            format!(
                "Permission for username={username}, resource_type={}, resource_id={id} already exists.",
                resource_type.name()
            ),
        ));
    }
    call.store()
        .put_grant(&Grant {
            username,
            resource_type,
            resource_id: id.clone(),
            permission,
        })
        .await?;
    Ok(Json(legacy_body(resource_type, &id, &user, permission)).into_response())
}

async fn legacy_get(State(s): S, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_owned();
    let call = call!(s, req);
    let (resource_type, id) = legacy_target(&path, &call)?;
    let username = call.required("username")?;
    let user = call.store().user(&username).await?;
    match call.store().grant(&username, resource_type, &id).await? {
        Some(permission) => {
            Ok(Json(legacy_body(resource_type, &id, &user, permission)).into_response())
        }
        None => Err(legacy_not_found(resource_type, &id, &username)),
    }
}

async fn legacy_update(State(s): S, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_owned();
    let call = call!(s, req);
    let (resource_type, id) = legacy_target(&path, &call)?;
    let username = call.required("username")?;
    let permission = call.permission()?;
    if call
        .store()
        .grant(&username, resource_type, &id)
        .await?
        .is_none()
    {
        return Err(legacy_not_found(resource_type, &id, &username));
    }
    call.store()
        .put_grant(&Grant {
            username,
            resource_type,
            resource_id: id,
            permission,
        })
        .await?;
    Ok(empty())
}

async fn legacy_delete(State(s): S, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_owned();
    let call = call!(s, req);
    let (resource_type, id) = legacy_target(&path, &call)?;
    let username = call.required("username")?;
    if !call
        .store()
        .delete_grant(&username, resource_type, &id)
        .await?
    {
        return Err(legacy_not_found(resource_type, &id, &username));
    }
    Ok(empty())
}
