//! MLflow 3.17.2's role endpoints (`/api/3.0/mlflow/roles/…`, `users/roles/list`): named sets
//! of grants in a workspace, assigned to users, with `DENY` as a veto. Who may call each is
//! decided in `rules.rs` (admins, or the admins of the role's workspace); these handlers only do
//! what is asked, with MLflow's checks and messages.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use twinloop_core::auth::{Role, RoleAssignment, RolePermission, role_permission};

use super::users::{Call, empty};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

type S = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/roles/create", post(create_role))
        .route("/roles/get", get(get_role))
        .route("/roles/list", get(list_roles))
        .route("/roles/update", patch(update_role))
        .route("/roles/delete", delete(delete_role))
        .route("/roles/permissions/add", post(add_permission))
        .route("/roles/permissions/remove", delete(remove_permission))
        .route("/roles/permissions/list", get(list_permissions))
        .route("/roles/permissions/update", patch(update_permission))
        .route("/roles/assign", post(assign))
        .route("/roles/unassign", delete(unassign))
        .route("/roles/users/list", get(role_users))
        .route("/users/roles/list", get(user_roles))
}

pub fn role_json(role: &Role) -> Value {
    json!({
        "id": role.id,
        "name": role.name,
        "workspace": role.workspace,
        "description": role.description,
        "permissions": role.permissions.iter().map(permission_json).collect::<Vec<_>>(),
    })
}

fn permission_json(p: &RolePermission) -> Value {
    json!({
        "id": p.id,
        "role_id": p.role_id,
        "resource_type": p.resource_type,
        "resource_pattern": p.resource_pattern,
        "permission": p.permission.name(),
    })
}

fn assignment_json(a: &RoleAssignment) -> Value {
    json!({"id": a.id, "user_id": a.user_id, "role_id": a.role_id})
}

async fn read(state: &AppState, req: Request) -> Result<Call, Response> {
    Call::read(state, req).await
}

/// MLflow's `_get_request_param` in the auth app: a missing parameter is a 400 naming it.
fn required(call: &Call, key: &str) -> ApiResult<String> {
    call.opt(key).ok_or_else(|| {
        ApiError::invalid(format!(
            "Missing value for required parameter '{key}'. See the API docs for more \
             information about request parameters."
        ))
    })
}

/// MLflow's `_get_int_request_param`: a value that is not an integer is a 400, not a 500.
fn int_param(call: &Call, key: &str) -> ApiResult<i64> {
    let raw = required(call, key)?;
    raw.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "Parameter '{key}' must be an integer. Got: '{raw}'"
        ))
    })
}

/// A non-blank string parameter, else MLflow's message for it.
fn non_blank(call: &Call, key: &str, message: &str) -> ApiResult<String> {
    match call.params.get(key) {
        None => Err(required(call, key).unwrap_err()),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::invalid(message.to_owned())),
    }
}

macro_rules! call {
    ($state:expr, $req:expr) => {
        match read(&$state, $req).await {
            Ok(call) => call,
            Err(response) => return Ok(response),
        }
    };
}

async fn create_role(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let name = non_blank(&call, "name", "Role name cannot be empty.")?;
    let workspace = non_blank(&call, "workspace", "Workspace cannot be empty.")?;
    let description = match call.params.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => {
            return Err(ApiError::invalid(
                "Role description must be a string or null.",
            ));
        }
    };
    let role = call
        .store()
        .create_role(&name, &workspace, description)
        .await?;
    Ok(Json(json!({"role": role_json(&role)})).into_response())
}

async fn get_role(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let role = call.store().role(int_param(&call, "role_id")?).await?;
    Ok(Json(json!({"role": role_json(&role)})).into_response())
}

async fn list_roles(State(s): S, req: Request) -> ApiResult<Response> {
    // `workspace` may repeat, so the query is read whole rather than through `Call`.
    let workspaces: Vec<String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "workspace")
            .map(|(_, v)| v.into_owned())
            .collect();
    let call = call!(s, req);
    if workspaces.iter().any(|w| w.trim().is_empty()) {
        return Err(ApiError::invalid(
            "Parameter 'workspace' must be a non-empty string when provided.",
        ));
    }
    let scope = (!workspaces.is_empty()).then_some(workspaces.as_slice());
    let roles = call.store().list_roles(scope).await?;
    let roles: Vec<Value> = roles.iter().map(role_json).collect();
    Ok(Json(json!({"roles": roles})).into_response())
}

async fn update_role(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let id = int_param(&call, "role_id")?;
    let name = call.params.get("name").filter(|v| !v.is_null());
    let description = call.params.get("description").filter(|v| !v.is_null());
    if name.is_none() && description.is_none() {
        return Err(ApiError::invalid(
            "At least one of 'name' or 'description' must be provided to update a role.",
        ));
    }
    let name = match name {
        None => None,
        Some(Value::String(n)) if !n.trim().is_empty() => Some(n.as_str()),
        Some(_) => return Err(ApiError::invalid("Role name cannot be empty.")),
    };
    let description = match description {
        None => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(ApiError::invalid("Role description must be a string.")),
    };
    let role = call.store().update_role(id, name, description).await?;
    Ok(Json(json!({"role": role_json(&role)})).into_response())
}

async fn delete_role(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    call.store()
        .delete_role(int_param(&call, "role_id")?)
        .await?;
    Ok(empty())
}

async fn add_permission(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let role_id = int_param(&call, "role_id")?;
    let resource_type = required(&call, "resource_type")?;
    let pattern = required(&call, "resource_pattern")?;
    let permission = required(&call, "permission")?;
    let level = role_permission(&resource_type, Some(&pattern), &permission)?;
    let added = call
        .store()
        .add_role_permission(role_id, &resource_type, &pattern, level)
        .await?;
    Ok(Json(json!({"role_permission": permission_json(&added)})).into_response())
}

async fn remove_permission(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let id = int_param(&call, "role_permission_id")?;
    call.store().remove_role_permission(id).await?;
    Ok(empty())
}

async fn list_permissions(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let role = call.store().role(int_param(&call, "role_id")?).await?;
    let permissions: Vec<Value> = role.permissions.iter().map(permission_json).collect();
    Ok(Json(json!({"role_permissions": permissions})).into_response())
}

async fn update_permission(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let id = int_param(&call, "role_permission_id")?;
    let permission = required(&call, "permission")?;
    let current = call.store().role_permission(id).await?;
    let level = role_permission(&current.resource_type, None, &permission)?;
    let updated = call.store().update_role_permission(id, level).await?;
    Ok(Json(json!({"role_permission": permission_json(&updated)})).into_response())
}

async fn assign(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = required(&call, "username")?;
    let role_id = int_param(&call, "role_id")?;
    let assignment = call.store().assign_role(&username, role_id).await?;
    Ok(Json(json!({"assignment": assignment_json(&assignment)})).into_response())
}

async fn unassign(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = required(&call, "username")?;
    let role_id = int_param(&call, "role_id")?;
    call.store().unassign_role(&username, role_id).await?;
    Ok(empty())
}

async fn role_users(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let assignments = call
        .store()
        .role_users(int_param(&call, "role_id")?)
        .await?;
    let assignments: Vec<Value> = assignments.iter().map(assignment_json).collect();
    Ok(Json(json!({"assignments": assignments})).into_response())
}

/// A user's roles. Another user's are shown to an admin whole, and to a workspace admin only
/// in the workspaces they administer (as MLflow, which must not leak other memberships).
async fn user_roles(State(s): S, req: Request) -> ApiResult<Response> {
    let call = call!(s, req);
    let username = required(&call, "username")?;
    let mut roles = call.store().user_roles(&username).await?;
    if !(super::acts_as_admin(&call.caller) || username == call.caller.user.username) {
        let mine = call.store().user_roles(&call.caller.user.username).await?;
        roles.retain(|r| {
            mine.iter()
                .any(|m| m.workspace == r.workspace && m.administers_workspace())
        });
    }
    let roles: Vec<Value> = roles.iter().map(role_json).collect();
    Ok(Json(json!({"roles": roles})).into_response())
}
