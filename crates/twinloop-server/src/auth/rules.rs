//! The one table of auth decisions: every route every router of the server answers (and every
//! method of the gRPC inference service, as its REST twin), with what a caller needs to reach
//! it. MLflow shipped routes without auth twice (a second router added beside the first); here a
//! route missing from [`rule`] is refused when `--auth` is on, and `every_route_has_a_decision`
//! in the tests fails before that can ship.

use axum::http::Method;

/// What a caller needs on a resource (MLflow's `can_read` … `can_manage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Update,
    Manage,
}

/// Where a request names the experiment it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exp {
    /// `experiment_id`.
    Id,
    /// Every `experiment_ids` given.
    Ids,
    /// `experiment_name`.
    Name,
    /// `run_id` (or MLflow's older `run_uuid`): the run's experiment.
    Run,
    /// Every `run_id` / `run_ids` given: the experiments of all of them.
    Runs,
    /// The `{model_id}` in the path: the logged model's experiment.
    LoggedModel,
    /// The artifact proxy's path (or `path` parameter), whose first part is the experiment id
    /// when the artifact root is `mlflow-artifacts:/`.
    ArtifactPath,
}

/// Which listing an answer is filtered down to what the caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Experiments,
    Runs,
    RegisteredModels,
    ModelVersions,
    LoggedModels,
}

/// The decision for one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No credentials needed: health, version, server info, static files.
    Open,
    /// Any signed-in caller (the answer is about them, or made for them).
    Authenticated,
    /// Admins only.
    Admin,
    /// Signed in; the answer is about the user named by `username`: themselves, or an admin.
    SelfOrAdmin,
    /// API tokens of the user named by `username` (the caller when none): their own, or an
    /// admin's, signed in with a password or an `admin` token, so no token mints a wider one.
    Tokens,
    /// A level on the experiment the request names.
    Experiment(Need, Exp),
    /// A level on the registered model named by `name`.
    Model(Need),
    /// Signed in; the caller becomes MANAGER of what they create.
    CreateExperiment,
    CreateModel,
    /// Signed in; the answer keeps only what the caller may read.
    Search(Listing),
    /// MANAGE on the resource a permission request names: delegation, as in MLflow.
    ManageTarget,
    /// The planes without per-resource grants (deployments, monitors, pipelines, lineage,
    /// features, the UI's lists): every user's level is `default_permission`, an admin's
    /// MANAGE, a `deploy` token's MANAGE.
    Global(Need),
    /// Predictions (`/v2/…/infer`): an `infer` token, or a caller who may read.
    Infer,
    /// MLflow's role administration, for admins and, in the workspace the request names (by
    /// `role_id`, `role_permission_id` or `workspace`), that workspace's admins.
    Roles(RoleAccess),
}

/// What a role request does, and so who besides admins may make it (MLflow's
/// `validate_can_manage_roles`, `validate_can_view_roles`, `validate_can_list_roles`,
/// `validate_can_view_user_roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleAccess {
    /// Changes: an admin of the role's workspace (a role with MANAGE on `workspace`/`*`).
    Manage,
    /// Reads one role: any member of a role in its workspace.
    View,
    /// Lists the roles of the `workspace`s asked for: a member of a role in each.
    List,
    /// Lists one user's roles: themselves, or an admin of a workspace they have a role in.
    OfUser,
}

/// MLflow serves its UI the same routes under `/ajax-api/`; one decision covers both.
fn canonical(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/ajax-api/") {
        Some(rest) => format!("/api/{rest}").into(),
        None => path.into(),
    }
}

/// The decision for `method` on the route pattern `path` (axum's `MatchedPath`), or `None` for a
/// route nobody declared.
pub fn rule(method: &Method, path: &str) -> Option<Rule> {
    use Exp::*;
    use Need::*;
    use Rule::*;
    let path = canonical(path);
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    #[cfg(feature = "serving")]
    if let Some(grpc) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(twinloop_v2::grpc::SERVICE))
        .and_then(|p| p.strip_prefix('/'))
    {
        // A gRPC call (always a POST) is decided as the REST route that answers the same.
        let (twin_method, twin) = twinloop_v2::grpc::rest_twin(grpc)?;
        return if m == "POST" {
            rule(&twin_method, twin)
        } else {
            None
        };
    }
    let mlflow = path.strip_prefix("/api/2.0/mlflow/");
    if let Some(route) = mlflow {
        return mlflow_rule(m, route);
    }
    if let Some(route) = path.strip_prefix("/api/3.0/mlflow/") {
        return match (m, route) {
            ("GET", "server-info") => Some(Open),
            ("GET", "users/current/permissions") => Some(Authenticated),
            ("GET", "users/permissions/list" | "users/permissions/get") => Some(SelfOrAdmin),
            ("POST", "users/permissions/grant" | "users/permissions/revoke") => Some(ManageTarget),
            ("POST", "roles/create" | "roles/permissions/add" | "roles/assign")
            | ("PATCH", "roles/update" | "roles/permissions/update")
            | ("DELETE", "roles/delete" | "roles/permissions/remove" | "roles/unassign") => {
                Some(Roles(RoleAccess::Manage))
            }
            ("GET", "roles/get" | "roles/permissions/list" | "roles/users/list") => {
                Some(Roles(RoleAccess::View))
            }
            ("GET", "roles/list") => Some(Roles(RoleAccess::List)),
            ("GET", "users/roles/list") => Some(Roles(RoleAccess::OfUser)),
            _ => None,
        };
    }
    if let Some(route) = path.strip_prefix("/api/2.0/mlflow-artifacts/") {
        return match (m, route) {
            ("GET", "artifacts" | "artifacts/" | "artifacts/{*path}") => {
                Some(Experiment(Read, ArtifactPath))
            }
            ("PUT", "artifacts/{*path}") => Some(Experiment(Update, ArtifactPath)),
            ("DELETE", "artifacts/{*path}") => Some(Experiment(Manage, ArtifactPath)),
            _ => None,
        };
    }
    if let Some(route) = path.strip_prefix("/api/twinloop/v1/") {
        return native_rule(m, route);
    }
    Some(match (m, path.as_ref()) {
        ("GET", "/health" | "/version" | "/static/{file}") => Open,
        ("GET", "/v2/health/live" | "/v2/health/ready") => Open,
        ("GET", "/get-artifact") => Experiment(Read, Run),
        ("GET", "/model-versions/get-artifact") => Model(Read),
        // The UI's lists; a page of one experiment, run or model needs READ on it (a run's
        // by the run's own experiment, whatever experiment the address names).
        ("GET", "/" | "/experiments" | "/models") => Global(Read),
        ("GET", "/experiments/{id}" | "/experiments/{id}/compare" | "/experiments/{id}/rows") => {
            Experiment(Read, Id)
        }
        (
            "GET",
            "/experiments/{id}/runs/{run_id}"
            | "/experiments/{id}/runs/{run_id}/artifacts"
            | "/experiments/{id}/runs/{run_id}/artifacts/raw"
            | "/experiments/{id}/runs/{run_id}/metrics/{key}"
            | "/runs/{run_id}",
        ) => Experiment(Read, Run),
        (
            "GET",
            "/models/{name}"
            | "/models/{name}/versions/{version}"
            | "/models/{name}/versions/{version}/alias"
            | "/models/{name}/aliases/delete",
        ) => Model(Read),
        ("POST", "/models/{name}/aliases" | "/models/{name}/aliases/delete") => Model(Update),
        ("GET", "/metrics") => Global(Read),
        ("GET", "/v2") => Global(Read),
        (
            "GET",
            "/v2/models/{name}"
            | "/v2/models/{name}/versions/{version}"
            | "/v2/models/{name}/ready"
            | "/v2/models/{name}/versions/{version}/ready",
        ) => Global(Read),
        ("POST", "/v2/models/{name}/infer" | "/v2/models/{name}/versions/{version}/infer") => Infer,
        // The feature server (Feast's routes), when its router is served behind auth.
        ("POST", "/get-online-features") => Global(Read),
        ("POST", "/push" | "/materialize" | "/materialize-incremental") => Global(Update),
        _ => return None,
    })
}

fn mlflow_rule(m: &str, route: &str) -> Option<Rule> {
    use Exp::*;
    use Need::*;
    use Rule::*;
    Some(match (m, route) {
        ("POST", "experiments/create") => CreateExperiment,
        ("GET", "experiments/get") => Experiment(Read, Id),
        ("GET", "experiments/get-by-name") => Experiment(Read, Name),
        ("GET" | "POST", "experiments/search") => Search(Listing::Experiments),
        ("POST", "experiments/search-datasets") => Experiment(Read, Ids),
        (
            "POST",
            "experiments/update"
            | "experiments/set-experiment-tag"
            | "experiments/delete-experiment-tag",
        ) => Experiment(Update, Id),
        ("POST", "experiments/delete" | "experiments/restore") => Experiment(Manage, Id),
        ("POST", "runs/create") => Experiment(Update, Id),
        ("GET", "runs/get") => Experiment(Read, Run),
        (
            "POST",
            "runs/update" | "runs/log-metric" | "runs/log-parameter" | "runs/log-batch"
            | "runs/set-tag" | "runs/delete-tag" | "runs/log-inputs" | "runs/outputs",
        ) => Experiment(Update, Run),
        ("POST", "runs/delete" | "runs/restore") => Experiment(Manage, Run),
        ("POST", "runs/search") => Search(Listing::Runs),
        ("GET", "metrics/get-history" | "artifacts/list") => Experiment(Read, Run),
        // The UI's upload into a run's artifacts (`/ajax-api/` only, as MLflow mounts it).
        ("POST", "upload-artifact") => Experiment(Update, Run),
        ("GET", "metrics/get-history-bulk-interval" | "metrics/get-history-bulk") => {
            Experiment(Read, Runs)
        }
        ("POST", "logged-models") => Experiment(Update, Id),
        ("POST", "logged-models/search") => Search(Listing::LoggedModels),
        (
            "GET",
            "logged-models/{model_id}"
            | "logged-models/{model_id}/artifacts/directories"
            | "logged-models/{model_id}/artifacts/files",
        ) => Experiment(Read, LoggedModel),
        ("PATCH", "logged-models/{model_id}" | "logged-models/{model_id}/tags")
        | ("POST", "logged-models/{model_id}/params")
        | ("DELETE", "logged-models/{model_id}/tags/{key}") => Experiment(Update, LoggedModel),
        ("DELETE", "logged-models/{model_id}") => Experiment(Manage, LoggedModel),
        ("POST", "registered-models/create") => CreateModel,
        ("GET", "registered-models/get" | "registered-models/alias")
        | ("GET" | "POST", "registered-models/get-latest-versions") => Model(Read),
        ("GET", "model-versions/get" | "model-versions/get-download-uri") => Model(Read),
        (
            "POST",
            "registered-models/rename"
            | "registered-models/set-tag"
            | "registered-models/alias"
            | "model-versions/create"
            | "model-versions/set-tag"
            | "model-versions/transition-stage",
        ) => Model(Update),
        ("PATCH", "registered-models/update" | "model-versions/update") => Model(Update),
        ("DELETE", "registered-models/delete-tag" | "registered-models/alias") => Model(Update),
        (
            "DELETE",
            "registered-models/delete" | "model-versions/delete" | "model-versions/delete-tag",
        ) => Model(Manage),
        ("GET", "registered-models/search") => Search(Listing::RegisteredModels),
        ("GET", "model-versions/search") => Search(Listing::ModelVersions),
        // Webhooks reach other hosts and carry secrets: admins only, as in MLflow.
        ("GET" | "POST", "webhooks")
        | ("GET" | "PATCH" | "DELETE", "webhooks/{webhook_id}")
        | ("POST", "webhooks/{webhook_id}/test") => Admin,
        ("GET", "users/current") => Authenticated,
        ("GET", "users/get") => SelfOrAdmin,
        ("PATCH", "users/update-password") => SelfOrAdmin,
        ("GET", "users/list") | ("POST", "users/create") => Admin,
        ("PATCH", "users/update-admin") | ("DELETE", "users/delete") => Admin,
        (
            "POST" | "GET" | "PATCH" | "DELETE",
            "experiments/permissions/create"
            | "experiments/permissions/get"
            | "experiments/permissions/update"
            | "experiments/permissions/delete"
            | "registered-models/permissions/create"
            | "registered-models/permissions/get"
            | "registered-models/permissions/update"
            | "registered-models/permissions/delete",
        ) => ManageTarget,
        _ => return None,
    })
}

fn native_rule(m: &str, route: &str) -> Option<Rule> {
    use Need::*;
    use Rule::*;
    Some(match (m, route) {
        ("GET", "openapi.json") => Open,
        ("GET" | "POST", "auth/tokens") | ("DELETE", "auth/tokens/{id}") => Tokens,
        ("GET", "registry/events" | "registry/events/stream") => Global(Read),
        ("GET" | "POST", "registry/webhooks")
        | ("DELETE", "registry/webhooks/{id}")
        | ("GET", "registry/webhooks/{id}/deliveries") => Admin,
        (
            "POST",
            "lineage/artifacts"
            | "lineage/executions"
            | "lineage/contexts"
            | "lineage/events"
            | "lineage/memberships",
        ) => Global(Update),
        ("GET", "lineage/nodes/{*key}" | "lineage/graph") => Global(Read),
        ("GET", "experiments/{id}/keys") => Experiment(Read, Exp::Id),
        ("GET", "metrics/summaries" | "metrics/series") => Experiment(Read, Exp::Runs),
        (
            "GET",
            "pipelines" | "pipelines/events" | "pipelines/{name}" | "runs" | "runs/{id}"
            | "triggers",
        ) => Global(Read),
        // A pipeline's steps run as the server: registering one is an operator's act.
        ("POST", "pipelines") => Global(Manage),
        (
            "POST",
            "pipelines/{name}/runs" | "runs/{id}/cancel" | "triggers/pause" | "triggers/resume",
        ) => Global(Update),
        (
            "GET",
            "deployments"
            | "deployments/{name}"
            | "monitors"
            | "monitors/events"
            | "monitors/{name}"
            | "monitors/{name}/alerts",
        ) => Global(Read),
        // What serves, and what watches it: creating, moving and removing it is deploying.
        (
            "POST",
            "deployments"
            | "deployments/{name}/traffic"
            | "deployments/{name}/canary"
            | "deployments/{name}/promote"
            | "deployments/{name}/rollback"
            | "monitors",
        ) => Global(Manage),
        ("DELETE", "deployments/{name}" | "monitors/{name}") => Global(Manage),
        ("POST", "labels") => Global(Update),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_decision() {
        let mut routes: Vec<(Method, String)> = super::super::table::server_routes()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect();
        #[cfg(feature = "feature-store")]
        routes.extend(
            super::super::table::feature_server_routes()
                .into_iter()
                .map(|r| (r.method, r.path)),
        );
        #[cfg(feature = "serving")]
        routes.extend(
            super::super::table::grpc_routes()
                .into_iter()
                .map(|r| (r.method, r.path)),
        );
        assert!(routes.len() > 100, "{} routes", routes.len());
        let undeclared: Vec<String> = routes
            .iter()
            .filter(|(m, p)| rule(m, p).is_none())
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert!(
            undeclared.is_empty(),
            "routes without an auth decision (add them to rules.rs): {undeclared:#?}"
        );
        // The few that need nothing are the ones MLflow leaves open too.
        let mut open: Vec<String> = routes
            .iter()
            .filter(|(m, p)| rule(m, p) == Some(Rule::Open))
            .map(|(_, p)| p.clone())
            .collect();
        open.sort();
        open.dedup();
        assert_eq!(
            open,
            [
                "/ajax-api/3.0/mlflow/server-info",
                "/api/3.0/mlflow/server-info",
                "/api/twinloop/v1/openapi.json",
                "/health",
                "/inference.GRPCInferenceService/ServerLive",
                "/inference.GRPCInferenceService/ServerReady",
                "/static/{file}",
                "/v2/health/live",
                "/v2/health/ready",
                "/version",
            ]
            .into_iter()
            .filter(|p| open.iter().any(|o| o == p))
            .collect::<Vec<_>>(),
            "unexpected open routes: {open:?}"
        );
    }

    #[test]
    fn ajax_routes_share_their_api_twins_decisions() {
        assert_eq!(
            rule(&Method::POST, "/ajax-api/2.0/mlflow/runs/log-batch"),
            rule(&Method::POST, "/api/2.0/mlflow/runs/log-batch")
        );
        assert_eq!(
            rule(&Method::HEAD, "/health"),
            Some(Rule::Open),
            "HEAD is GET"
        );
        assert_eq!(rule(&Method::POST, "/api/2.0/mlflow/nothing"), None);
        assert_eq!(rule(&Method::GET, "/unknown"), None);
    }
}
