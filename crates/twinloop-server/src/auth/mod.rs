//! `--auth`: MLflow 3.17.2's basic-auth model on every router of the server. One middleware
//! (route-layered, so it sees the matched route) looks the route up in [`rules`], answers 401
//! (with `WWW-Authenticate: Basic realm="mlflow"`) or 403 with MLflow's bodies, grants the
//! creator MANAGE, and filters search answers to what the caller may read. The user and
//! permission endpoints are in [`users`].

pub mod credentials;
#[cfg(feature = "serving")]
mod grpc;
pub(crate) mod roles;
pub mod rules;
pub mod table;
pub(crate) mod tokens;
pub(crate) mod users;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use twinloop_core::auth::{Grant, Permission, ResourceType, TokenScope, resolve};
use twinloop_core::{ErrorKind, Result};
use twinloop_meta::StoreHandle;

use crate::error::ApiError;
use crate::extract::MAX_JSON_BODY;
pub use credentials::Caller;
use credentials::{Authenticator, presented};
use rules::{Exp, Listing, Need, RoleAccess, Rule};

/// Authentication and authorization of one server.
pub struct Auth {
    store: StoreHandle,
    /// The level of a user on a resource nobody granted them anything on (MLflow's
    /// `default_permission`, READ by default).
    default_permission: Permission,
    authenticator: Authenticator,
}

impl Auth {
    pub fn new(store: StoreHandle, default_permission: Permission) -> Auth {
        Auth {
            store,
            default_permission,
            authenticator: Authenticator::default(),
        }
    }

    /// The caller's level on one experiment or registered model: an admin's is MANAGE; else
    /// their own grants and their roles' folded as MLflow does ([`resolve`]: a workspace admin
    /// role first, then any DENY, then the highest grant raised to `default_permission`); a
    /// token's scope caps the result.
    pub async fn level(
        &self,
        caller: &Caller,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Permission> {
        let base = if caller.user.is_admin {
            Permission::Manage
        } else {
            let grants = self
                .store
                .applied_grants(&caller.user.username, resource_type, resource_id)
                .await?;
            resolve(&grants, self.default_permission)
        };
        Ok(base.min(ceiling(caller)))
    }

    /// Who an `Authorization` value signs in: `Ok(None)` when it is absent, unreadable or wrong.
    async fn caller(
        &self,
        authorization: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Option<Caller>> {
        let Some(presented) = presented(authorization) else {
            return Ok(None);
        };
        self.authenticator
            .authenticate(&*self.store, presented, address)
            .await
    }

    /// The caller's level on the planes without grants (deployments, monitors, pipelines,
    /// lineage, features, the UI's lists).
    fn global_level(&self, caller: &Caller) -> Permission {
        let base = if caller.user.is_admin || caller.scope == Some(TokenScope::Deploy) {
            Permission::Manage
        } else {
            self.default_permission
        };
        base.min(ceiling(caller))
    }
}

fn ceiling(caller: &Caller) -> Permission {
    caller.scope.map_or(Permission::Manage, TokenScope::ceiling)
}

/// Whether the caller may act as an admin: an admin signed in with their password or an
/// `admin` token.
pub fn acts_as_admin(caller: &Caller) -> bool {
    caller.user.is_admin && matches!(caller.scope, None | Some(TokenScope::Admin))
}

fn meets(level: Permission, need: Need) -> bool {
    match need {
        Need::Read => level.can_read(),
        Need::Update => level.can_update(),
        Need::Manage => level.can_manage(),
    }
}

/// MLflow's words for a request without valid credentials.
const NOT_AUTHENTICATED: &str = "You are not authenticated. Please see \
     https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow \
     on how to authenticate.";

/// MLflow's words for a caller the rules turn away.
const PERMISSION_DENIED: &str = "Permission denied";

/// MLflow's 401: its words, and the header that makes a browser ask for a password.
pub fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mlflow\""),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        NOT_AUTHENTICATED,
    )
        .into_response()
}

/// MLflow's 403.
pub fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        PERMISSION_DENIED,
    )
        .into_response()
}

/// A request's parameters wherever MLflow reads them from: the path, the JSON body, the query.
#[derive(Default)]
struct Params {
    path: HashMap<String, String>,
    body: Option<Value>,
    query: Vec<(String, String)>,
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Params {
    fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.path.get(key) {
            return Some(v.clone());
        }
        if let Some(v) = self
            .body
            .as_ref()
            .and_then(|b| b.get(key))
            .and_then(text_of)
        {
            return Some(v);
        }
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn all(&self, key: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect();
        match self.body.as_ref().and_then(|b| b.get(key)) {
            Some(Value::Array(items)) => found.extend(items.iter().filter_map(text_of)),
            Some(v) => found.extend(text_of(v)),
            None => {}
        }
        found
    }
}

/// Whether the rule reads request parameters (so a JSON body must be read before the handler).
fn reads_params(rule: Rule) -> bool {
    !matches!(
        rule,
        Rule::Open
            | Rule::Authenticated
            | Rule::Admin
            | Rule::CreateExperiment
            | Rule::Search(_)
            | Rule::Global(_)
            | Rule::Infer
    )
}

async fn read_params(
    mut req: Request,
    rule: Rule,
) -> std::result::Result<(Request, Params), Response> {
    let mut params = Params::default();
    if let Ok(raw) = axum::RequestExt::extract_parts::<RawPathParams>(&mut req).await {
        params.path = raw
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    }
    if let Some(query) = req.uri().query() {
        params.query = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    }
    let has_body = matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE);
    if !(has_body && reads_params(rule)) {
        return Ok((req, params));
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_JSON_BODY).await else {
        return Err(ApiError::of_kind(
            ErrorKind::TooLarge,
            format!("Request body is larger than the limit of {MAX_JSON_BODY} bytes"),
        )
        .into_response());
    };
    params.body = serde_json::from_slice(&bytes).ok();
    Ok((Request::from_parts(parts, Body::from(bytes)), params))
}

/// The middleware: every route of every router passes here when `--auth` is on.
pub async fn guard(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    // The event actor is the signed-in caller here, never what a client claims to be.
    req.headers_mut().remove(crate::extract::ACTOR_HEADER);
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let Some(rule) = rules::rule(req.method(), &path) else {
        tracing::error!(method = %req.method(), route = %path, "route without an auth decision refused");
        return forbidden();
    };
    if rule == Rule::Open {
        return next.run(req).await;
    }
    // Owned: the request's body is not `Sync`, so no borrow of the request may cross an await.
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let caller = match auth.caller(header.as_deref(), address).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return unauthenticated(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    req.extensions_mut().insert(caller.clone());
    let (req, params) = match read_params(req, rule).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match allowed(&auth, &caller, rule, &path, &params).await {
        Ok(true) => {}
        Ok(false) => return forbidden(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    match after(&auth, &caller, rule, &path, &params, response).await {
        Ok(response) => response,
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn allowed(
    auth: &Auth,
    caller: &Caller,
    rule: Rule,
    path: &str,
    params: &Params,
) -> Result<bool> {
    if acts_as_admin(caller) {
        return Ok(true);
    }
    Ok(match rule {
        Rule::Open | Rule::Authenticated => true,
        Rule::Admin => false,
        Rule::SelfOrAdmin => params.get("username").as_deref() == Some(&caller.user.username),
        Rule::Tokens => {
            matches!(caller.scope, None | Some(TokenScope::Admin))
                && params
                    .get("username")
                    .is_none_or(|u| u == caller.user.username)
        }
        Rule::CreateExperiment | Rule::CreateModel => ceiling(caller).can_update(),
        Rule::Search(_) => true,
        Rule::Global(need) => meets(auth.global_level(caller), need),
        Rule::Infer => {
            caller.scope == Some(TokenScope::Infer) || auth.global_level(caller).can_read()
        }
        Rule::Model(need) => {
            let name = params.get("name").unwrap_or_default();
            meets(
                auth.level(caller, ResourceType::RegisteredModel, &name)
                    .await?,
                need,
            )
        }
        Rule::Experiment(need, exp) => {
            for id in experiment_ids(auth, exp, params).await? {
                if !meets(
                    auth.level(caller, ResourceType::Experiment, &id).await?,
                    need,
                ) {
                    return Ok(false);
                }
            }
            true
        }
        Rule::Roles(access) => role_access(auth, caller, access, params).await?,
        Rule::ManageTarget => match target(path, params) {
            Some((resource_type, id)) => auth.level(caller, resource_type, &id).await?.can_manage(),
            // The handler says what is missing.
            None => true,
        },
    })
}

/// Whether a caller who is not an admin may make a role request: by the roles they hold in
/// the workspace it names. A role or role permission that does not exist is a 403 for them, so
/// its existence is not told (MLflow); a request naming no workspace reaches the handler, which
/// says what is missing.
async fn role_access(
    auth: &Auth,
    caller: &Caller,
    access: RoleAccess,
    params: &Params,
) -> Result<bool> {
    let store = &auth.store;
    let mine = store.user_roles(&caller.user.username).await?;
    let member = |workspace: &str| mine.iter().any(|r| r.workspace == workspace);
    let administers = |workspace: &str| {
        mine.iter()
            .any(|r| r.workspace == workspace && r.administers_workspace())
    };
    let cap = ceiling(caller);
    if access == RoleAccess::List {
        let asked: Vec<String> = params
            .all("workspace")
            .into_iter()
            .filter(|w| !w.trim().is_empty())
            .collect();
        return Ok(cap.can_read() && !asked.is_empty() && asked.iter().all(|w| member(w.trim())));
    }
    if access == RoleAccess::OfUser {
        let Some(username) = params.get("username") else {
            return Ok(true);
        };
        if username == caller.user.username {
            return Ok(cap.can_read());
        }
        let theirs = match store.user_roles(&username).await {
            Ok(roles) => roles,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        return Ok(cap.can_read() && theirs.iter().any(|r| administers(&r.workspace)));
    }
    let missing = |r: Result<String>| match r {
        Ok(workspace) => Ok(Some(workspace)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let workspace = if let Some(id) = params.get("role_id") {
        let Ok(id) = id.trim().parse() else {
            return Ok(true);
        };
        missing(store.role(id).await.map(|r| r.workspace))?
    } else if let Some(id) = params.get("role_permission_id") {
        let Ok(id) = id.trim().parse() else {
            return Ok(true);
        };
        let role = match store.role_permission(id).await {
            Ok(p) => store.role(p.role_id).await.map(|r| r.workspace),
            Err(e) => Err(e),
        };
        missing(role)?
    } else if let Some(workspace) = params.get("workspace") {
        Some(workspace)
    } else {
        return Ok(true);
    };
    let Some(workspace) = workspace else {
        return Ok(false);
    };
    Ok(match access {
        RoleAccess::Manage => cap.can_manage() && administers(&workspace),
        _ => cap.can_read() && member(&workspace),
    })
}

/// The resource a permission request is about.
fn target(path: &str, params: &Params) -> Option<(ResourceType, String)> {
    if path.contains("/experiments/permissions/") {
        return Some((ResourceType::Experiment, params.get("experiment_id")?));
    }
    if path.contains("/registered-models/permissions/") {
        return Some((ResourceType::RegisteredModel, params.get("name")?));
    }
    let resource_type = params.get("resource_type")?.parse().ok()?;
    Some((resource_type, params.get("resource_id")?))
}

/// The experiments a request touches. One that does not exist is checked as an id nobody was
/// granted anything on (so at `default_permission`), and the handler answers that it is
/// missing, as MLflow does.
async fn experiment_ids(auth: &Auth, exp: Exp, params: &Params) -> Result<Vec<String>> {
    let store = &auth.store;
    let or_missing = |r: Result<String>| match r {
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
            Ok(String::new())
        }
        other => other,
    };
    Ok(match exp {
        Exp::Id => vec![
            params
                .get("experiment_id")
                .or_else(|| params.get("id"))
                .unwrap_or_default(),
        ],
        Exp::Ids => params.all("experiment_ids"),
        Exp::Name => {
            let name = params.get("experiment_name").unwrap_or_default();
            vec![or_missing(
                store
                    .get_experiment_by_name(&name)
                    .await
                    .map(|e| e.experiment_id),
            )?]
        }
        Exp::Run => {
            let run = params
                .get("run_id")
                .or_else(|| params.get("run_uuid"))
                .unwrap_or_default();
            vec![or_missing(
                store.get_run(&run).await.map(|r| r.info.experiment_id),
            )?]
        }
        Exp::Runs => {
            let mut runs = params.all("run_id");
            runs.extend(params.all("run_ids"));
            let mut ids = Vec::new();
            for run in runs {
                let id = or_missing(store.get_run(&run).await.map(|r| r.info.experiment_id))?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            ids
        }
        Exp::LoggedModel => {
            let model = params.get("model_id").unwrap_or_default();
            vec![or_missing(
                store
                    .get_logged_model(&model, true)
                    .await
                    .map(|m| m.experiment_id),
            )?]
        }
        Exp::ArtifactPath => {
            let path = params.get("path").unwrap_or_default();
            let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
            let id = if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
                first.to_owned()
            } else {
                String::new()
            };
            vec![id]
        }
    })
}

/// What happens after a successful request: the creator's MANAGE, grants that follow a renamed
/// or deleted model, and search answers cut down to what the caller may read.
async fn after(
    auth: &Auth,
    caller: &Caller,
    rule: Rule,
    path: &str,
    params: &Params,
    response: Response,
) -> Result<Response> {
    let store = &auth.store;
    match rule {
        Rule::CreateModel => {
            if let Some(name) = params.get("name") {
                store
                    .put_grant(&creator(caller, ResourceType::RegisteredModel, name))
                    .await?;
            }
            Ok(response)
        }
        Rule::Model(Need::Update) if path.ends_with("registered-models/rename") => {
            if let (Some(from), Some(to)) = (params.get("name"), params.get("new_name")) {
                store
                    .rename_resource_grants(ResourceType::RegisteredModel, &from, &to)
                    .await?;
            }
            Ok(response)
        }
        Rule::Model(Need::Manage) if path.ends_with("registered-models/delete") => {
            if let Some(name) = params.get("name") {
                store
                    .delete_resource_grants(ResourceType::RegisteredModel, &name)
                    .await?;
            }
            Ok(response)
        }
        Rule::CreateExperiment => {
            let (parts, bytes) = body_of(response).await?;
            if let Some(id) = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("experiment_id").and_then(text_of))
            {
                store
                    .put_grant(&creator(caller, ResourceType::Experiment, id))
                    .await?;
            }
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
        Rule::Search(listing) if !acts_as_admin(caller) => {
            filter_listing(auth, caller, listing, response).await
        }
        _ => Ok(response),
    }
}

/// The items of a list that the caller may read, for lists that are not MLflow searches (the
/// UI's experiment and model lists): each item's resource is looked up once.
pub async fn readable<T>(
    auth: &Auth,
    caller: &Caller,
    resource_type: ResourceType,
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<T>> {
    if acts_as_admin(caller) {
        return Ok(items);
    }
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if auth
            .level(caller, resource_type, id(&item))
            .await?
            .can_read()
        {
            kept.push(item);
        }
    }
    Ok(kept)
}

fn creator(caller: &Caller, resource_type: ResourceType, resource_id: String) -> Grant {
    Grant {
        username: caller.user.username.clone(),
        resource_type,
        resource_id,
        permission: Permission::Manage,
    }
}

async fn body_of(response: Response) -> Result<(axum::http::response::Parts, Bytes)> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| twinloop_core::Error::internal_from("cannot read an answer", e))?;
    Ok((parts, bytes))
}

/// Where each listing keeps its items, and what names an item's resource.
fn listing_shape(listing: Listing) -> (&'static str, ResourceType, &'static [&'static str]) {
    match listing {
        Listing::Experiments => ("experiments", ResourceType::Experiment, &["experiment_id"]),
        Listing::Runs => ("runs", ResourceType::Experiment, &["info", "experiment_id"]),
        Listing::LoggedModels => (
            "models",
            ResourceType::Experiment,
            &["info", "experiment_id"],
        ),
        Listing::RegisteredModels => (
            "registered_models",
            ResourceType::RegisteredModel,
            &["name"],
        ),
        Listing::ModelVersions => ("model_versions", ResourceType::RegisteredModel, &["name"]),
    }
}

async fn filter_listing(
    auth: &Auth,
    caller: &Caller,
    listing: Listing,
    response: Response,
) -> Result<Response> {
    let (mut parts, bytes) = body_of(response).await?;
    let Ok(mut body) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    let (field, resource_type, key) = listing_shape(listing);
    let Some(Value::Array(items)) = body.get_mut(field) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    let mut levels: HashMap<String, bool> = HashMap::new();
    let mut keep = Vec::with_capacity(items.len());
    for item in items.iter() {
        let id = key
            .iter()
            .try_fold(item, |v, k| v.get(*k))
            .and_then(text_of)
            .unwrap_or_default();
        let readable = match levels.get(&id) {
            Some(readable) => *readable,
            None => {
                let readable = auth.level(caller, resource_type, &id).await?.can_read();
                levels.insert(id, readable);
                readable
            }
        };
        keep.push(readable);
    }
    if keep.iter().all(|k| *k) {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    }
    let mut kept = keep.into_iter();
    items.retain(|_| kept.next().unwrap_or(false));
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| twinloop_core::Error::internal_from("cannot encode an answer", e))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
