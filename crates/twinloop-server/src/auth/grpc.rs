//! `--auth` on the gRPC inference port. A call is decided as its REST twin is ([`rules::rule`]
//! reads gRPC paths through `twinloop_v2::grpc::rest_twin`), with the same credentials, the same
//! failed-login limit and the same checks as [`super::guard`]: only the answer's shape differs
//! (`UNAUTHENTICATED` for 401, `PERMISSION_DENIED` for 403, MLflow's words in both).

use axum::http::Method;
use twinloop_v2::grpc::{Call, Gate, Refusal};

use super::rules::{self, Rule};
use super::{Auth, NOT_AUTHENTICATED, PERMISSION_DENIED, Params, allowed, reads_params};

fn denied() -> Refusal {
    Refusal::PermissionDenied(PERMISSION_DENIED.into())
}

fn failed(e: twinloop_core::Error) -> Refusal {
    Refusal::Internal(e.message)
}

#[async_trait::async_trait]
impl Gate for Auth {
    async fn admit(&self, call: Call<'_>) -> Result<(), Refusal> {
        // Every gRPC call is an HTTP/2 POST to the method's path.
        let Some(rule) = rules::rule(&Method::POST, call.path) else {
            tracing::error!(
                path = call.path,
                "gRPC call without an auth decision refused"
            );
            return Err(denied());
        };
        if rule == Rule::Open {
            return Ok(());
        }
        let caller = match self.caller(call.authorization, call.peer).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return Err(Refusal::Unauthenticated(NOT_AUTHENTICATED.into())),
            Err(e) => return Err(failed(e)),
        };
        // The message is not read before the decision, so a rule that looks into the request
        // would decide on nothing: refused (`grpc_methods_need_nothing_from_the_message`).
        if reads_params(rule) {
            tracing::error!(
                path = call.path,
                ?rule,
                "gRPC call whose rule reads parameters refused"
            );
            return Err(denied());
        }
        match allowed(self, &caller, rule, call.path, &Params::default()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(denied()),
            Err(e) => Err(failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::table::grpc_routes;

    #[test]
    fn grpc_methods_need_nothing_from_the_message() {
        let routes = grpc_routes();
        assert_eq!(routes.len(), twinloop_v2::grpc::METHODS.len());
        for route in routes {
            let rule = route.rule.expect("every gRPC method has a decision");
            assert!(!reads_params(rule), "{} {rule:?}", route.path);
        }
    }

    #[test]
    fn grpc_methods_share_their_rest_twins_decisions() {
        let grpc = |method: &str| format!("/inference.GRPCInferenceService/{method}");
        let cases = [
            ("ServerLive", Some(Rule::Open)),
            ("ServerReady", Some(Rule::Open)),
            ("ModelInfer", Some(Rule::Infer)),
            (
                "ModelMetadata",
                rules::rule(&Method::GET, "/v2/models/{name}"),
            ),
            (
                "ModelReady",
                rules::rule(&Method::GET, "/v2/models/{name}/ready"),
            ),
            ("ServerMetadata", rules::rule(&Method::GET, "/v2")),
            ("NoSuchMethod", None),
        ];
        for (method, want) in cases {
            assert_eq!(rules::rule(&Method::POST, &grpc(method)), want, "{method}");
        }
        assert_eq!(rules::rule(&Method::GET, &grpc("ModelInfer")), None);
    }
}
