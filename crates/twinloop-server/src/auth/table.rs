//! Every (method, route) the server's routers answer, read from the routers themselves: what
//! `every_route_has_a_decision` checks against [`super::rules`] and what the CLI's role matrix
//! walks on the real binary, so neither works from a hand-kept list that a new route escapes.

use axum::http::Method;

use super::rules::{Rule, rule};

/// One route and its decision (`None`: undeclared, refused under `--auth`).
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// axum's pattern (`/api/2.0/mlflow/runs/get`, `/v2/models/{name}/infer`).
    pub path: String,
    pub rule: Option<Rule>,
}

/// Every route `twinloop server` answers (with and without the artifact proxy, and `/v2` when
/// built with serving), each once.
pub fn server_routes() -> Vec<Route> {
    let mut routes = routes_of(&crate::routes(true));
    routes.extend(routes_of(&crate::routes(false)));
    #[cfg(feature = "serving")]
    routes.extend(routes_of(&twinloop_v2::http::router(std::sync::Arc::new(
        twinloop_serving::engine::Engine::new(twinloop_serving::predlog::PredictionLog::disabled()),
    ))));
    decided(routes)
}

/// Every route `twinloop features serve` answers.
#[cfg(feature = "feature-store")]
pub fn feature_server_routes() -> Vec<Route> {
    decided(routes_of(&crate::features::routes()))
}

/// Every method of the gRPC inference service (`--grpc-port`), as the POST to its path that a
/// call is.
#[cfg(feature = "serving")]
pub fn grpc_routes() -> Vec<Route> {
    use twinloop_v2::grpc::{METHODS, SERVICE};
    decided(
        METHODS
            .iter()
            .map(|m| (Method::POST, format!("/{SERVICE}/{m}")))
            .collect(),
    )
}

fn decided(mut routes: Vec<(Method, String)>) -> Vec<Route> {
    routes.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
    routes.dedup();
    routes
        .into_iter()
        .map(|(method, path)| Route {
            rule: rule(&method, &path),
            method,
            path,
        })
        .collect()
}

/// Every (method, route) a router answers, read from axum's `Debug` of the router (the only
/// place it lists its routes): the paths of its route ids and, per id, which methods have a
/// handler. Only the first `PathRouter` is read: the fallback router's are not routes.
fn routes_of(router: &impl std::fmt::Debug) -> Vec<(Method, String)> {
    let text = format!("{router:?}");
    let text = text.split("fallback_router").next().unwrap_or_default();
    let mut paths = std::collections::HashMap::new();
    let mut methods = std::collections::HashMap::new();
    for chunk in text.split("RouteId(").skip(1) {
        let Some((id, rest)) = chunk.split_once("): ") else {
            continue;
        };
        if let Some(path) = rest.strip_prefix('"') {
            paths.insert(id.to_owned(), path.split('"').next().unwrap_or_default());
        } else if let Some(fields) = rest.strip_prefix("MethodRouter(MethodRouter { ") {
            let answered: Vec<Method> = [
                Method::GET,
                Method::DELETE,
                Method::PATCH,
                Method::POST,
                Method::PUT,
            ]
            .into_iter()
            .filter(|m| !fields.contains(&format!("{}: None", m.as_str().to_lowercase())))
            .collect();
            methods.insert(id.to_owned(), answered);
        } else {
            // A nested service, not a route: axum's Debug changed shape and the test that
            // counts routes says so.
            tracing::warn!("a route that is not a method router: {rest:.80}");
        }
    }
    let mut routes = Vec::new();
    for (id, path) in paths {
        for method in methods.get(&id).into_iter().flatten() {
            routes.push((method.clone(), path.to_owned()));
        }
    }
    routes
}
