//! The role matrix on the real binary: every route of the auth table (read from the server's
//! routers, so a new route is walked the day it is added, and every gRPC inference method) ×
//! every kind of caller × a resource the caller was granted their level on ("own") and one
//! nobody granted them anything on ("other's", at `default_permission`). Allowed (not 401/403) must be exactly what the route's
//! rule says. Requests name existing experiments, runs, logged models and registered models, so
//! a denial is never hidden behind a 404, and a request that changed something gets fresh
//! resources for the next caller, so one caller's delete or grant never decides another's case.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use twinloop_core::auth::{Permission, TokenScope};
use twinloop_server::auth::rules::{Need, RoleAccess, Rule};
use twinloop_server::auth::table::{Route, grpc_routes, server_routes};

use crate::support::{TestServer, free_port, grpc};

const ADMIN_PASSWORD: &str = "matrix-admin-pw";
/// Who permission and user requests are about, so no case changes a caller's own grants.
const VICTIM: &str = "victim";
/// Signs in with a wrong password; no other case uses this user, so the failed-login limit it
/// reaches locks nobody else out.
const INTRUDER: &str = "intruder";
/// Owns the tokens: their scope, not the user, is what limits them.
const TOKEN_OWNER: &str = "manager";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    BadPassword,
    /// A user granted this level on the own resources.
    User(Permission),
    Admin,
    /// A token of [`TOKEN_OWNER`] with this scope.
    Token(TokenScope),
}

fn user_of(level: Permission) -> &'static str {
    match level {
        Permission::NoPermissions => "nobody",
        Permission::Read => "reader",
        Permission::Edit => "editor",
        Permission::Manage => TOKEN_OWNER,
        other => unreachable!("no matrix user at {other:?}"),
    }
}

fn callers() -> Vec<Who> {
    let mut all = vec![Who::Anonymous, Who::BadPassword];
    all.extend(
        [
            Permission::NoPermissions,
            Permission::Read,
            Permission::Edit,
            Permission::Manage,
        ]
        .map(Who::User),
    );
    all.push(Who::Admin);
    all.extend(TokenScope::ALL.map(Who::Token));
    all
}

/// What the rule says this caller may do; `own`: the request names resources the caller (or
/// the token's owner) was granted their level on, else ones at `default_permission` (READ).
fn expected(rule: Rule, who: Who, own: bool) -> bool {
    let cap = match who {
        Who::Anonymous | Who::BadPassword => return rule == Rule::Open,
        Who::Admin => return true,
        Who::User(_) => Permission::Manage,
        Who::Token(scope) => scope.ceiling(),
    };
    let granted = match who {
        Who::User(level) => level,
        _ => Permission::Manage,
    };
    let on_resource = if own { granted } else { Permission::Read }.min(cap);
    let global = match who {
        Who::Token(TokenScope::Deploy) => Permission::Manage,
        _ => Permission::Read,
    }
    .min(cap);
    let meets = |level: Permission, need: Need| match need {
        Need::Read => level.can_read(),
        Need::Update => level.can_update(),
        Need::Manage => level.can_manage(),
    };
    match rule {
        Rule::Open | Rule::Authenticated | Rule::Search(_) => true,
        Rule::Admin => false,
        Rule::SelfOrAdmin => own,
        Rule::Tokens => own && matches!(who, Who::User(_) | Who::Token(TokenScope::Admin)),
        Rule::CreateExperiment | Rule::CreateModel => cap.can_update(),
        Rule::Global(need) => meets(global, need),
        Rule::Infer => who == Who::Token(TokenScope::Infer) || global.can_read(),
        Rule::Experiment(need, _) | Rule::Model(need) => meets(on_resource, need),
        Rule::ManageTarget => on_resource.can_manage(),
        // The matrix's users hold no roles: only their own role list is theirs to read.
        Rule::Roles(RoleAccess::OfUser) => own && cap.can_read(),
        Rule::Roles(_) => false,
    }
}

/// One experiment with a run and a logged model, and one registered model.
#[derive(Clone, Default)]
struct Resources {
    experiment: String,
    experiment_name: String,
    run: String,
    logged_model: String,
    model: String,
}

struct Matrix {
    http: Client,
    url: String,
    /// The server's gRPC inference port, whose methods are walked as routes of their own.
    grpc_port: u16,
    backend_uri: String,
    tokens: HashMap<TokenScope, String>,
    role_id: String,
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn password_of(user: &str) -> String {
    format!("{user}-pw")
}

impl Matrix {
    fn authorization(&self, who: Who) -> Option<String> {
        match who {
            Who::Anonymous => None,
            Who::BadPassword => Some(basic(INTRUDER, "wrong")),
            Who::User(level) => Some(basic(user_of(level), &password_of(user_of(level)))),
            Who::Admin => Some(basic("admin", ADMIN_PASSWORD)),
            Who::Token(scope) => Some(format!("Bearer {}", self.tokens[&scope])),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        who: Who,
        read_body: bool,
    ) -> (StatusCode, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .query(query);
        if let Some(authorization) = self.authorization(who) {
            request = request.header("Authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        // Only a 403's words tell the guard's refusal from a handler's; other bodies are not
        // read, since some answers are streams that never end.
        let text = if read_body || status == StatusCode::FORBIDDEN {
            response.text().await.unwrap_or_default()
        } else {
            String::new()
        };
        (status, text)
    }

    async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, text) = self
            .send(method, path, &[], Some(&body), Who::Admin, true)
            .await;
        assert!(status.is_success(), "{path} {body}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Fresh resources: granted to each matrix user at their level (own), or to nobody.
    async fn resources(&self, own: bool) -> Resources {
        let api = "/api/2.0/mlflow";
        let experiment_name = unique("exp");
        let created = self
            .admin(
                Method::POST,
                &format!("{api}/experiments/create"),
                json!({"name": experiment_name}),
            )
            .await;
        let experiment = created["experiment_id"].as_str().unwrap().to_owned();
        let run = self
            .admin(
                Method::POST,
                &format!("{api}/runs/create"),
                json!({"experiment_id": experiment}),
            )
            .await["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let logged_model = self
            .admin(
                Method::POST,
                &format!("{api}/logged-models"),
                json!({"experiment_id": experiment, "name": "m"}),
            )
            .await["model"]["info"]["model_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let model = unique("model");
        self.admin(
            Method::POST,
            &format!("{api}/registered-models/create"),
            json!({"name": model}),
        )
        .await;
        // The admin created both, and so holds MANAGE; the matrix users get their own levels.
        if own {
            for level in [
                Permission::NoPermissions,
                Permission::Read,
                Permission::Edit,
                Permission::Manage,
            ] {
                let permission = level.name();
                let username = user_of(level);
                self.admin(
                    Method::POST,
                    &format!("{api}/experiments/permissions/create"),
                    json!({"experiment_id": experiment, "username": username, "permission": permission}),
                )
                .await;
                self.admin(
                    Method::POST,
                    &format!("{api}/registered-models/permissions/create"),
                    json!({"name": model, "username": username, "permission": permission}),
                )
                .await;
            }
        }
        Resources {
            experiment,
            experiment_name,
            run,
            logged_model,
            model,
        }
    }

    /// The request for `route` about `r`, as `who`: its path with the ids filled in, and every
    /// parameter the rules read, in the query (GET) or a JSON body.
    fn request(
        &self,
        route: &Route,
        r: &Resources,
        who: Who,
        own: bool,
    ) -> (String, Vec<(String, String)>, Option<Value>) {
        let p = route.path.as_str();
        let native = p.starts_with("/api/twinloop/") || p.starts_with("/v2");
        // `{id}` is an experiment's, or something that does not exist: an API token's id must
        // not be one of the matrix's own tokens, which a revoke would take from later cases.
        let id = if p.contains("experiments/{id}") {
            r.experiment.as_str()
        } else {
            "999999"
        };
        let path = p
            .replace("{id}", id)
            .replace("{run_id}", &r.run)
            .replace("{model_id}", &r.logged_model)
            .replace("{name}", if native { "nothing" } else { &r.model })
            .replace("{version}", "1")
            .replace("{key}", "k")
            .replace("{*key}", "artifact/x")
            .replace("{*path}", &format!("{}/f.txt", r.experiment))
            .replace("{file}", "nothing.js")
            .replace("{webhook_id}", "1");
        let username = match who {
            Who::User(level) if own => user_of(level).to_owned(),
            Who::Token(_) if own => TOKEN_OWNER.to_owned(),
            Who::Admin if own => "admin".to_owned(),
            _ => VICTIM.to_owned(),
        };
        // Creating names something new; everything else names the resources.
        let creates = [
            "experiments/create",
            "registered-models/create",
            "roles/create",
        ]
        .iter()
        .any(|c| p.ends_with(c));
        let name = if creates {
            unique("new")
        } else {
            r.model.clone()
        };
        let users_route = p.contains("/users/") && !p.contains("permissions");
        let username = if users_route && matches!(route.rule, Some(Rule::Admin)) {
            // Creating, deleting or promoting a user: a throwaway one, never a caller.
            unique("throwaway")
        } else {
            username
        };
        let password = if username == "admin" {
            ADMIN_PASSWORD.to_owned()
        } else {
            password_of(&username)
        };
        let params = json!({
            "experiment_id": r.experiment,
            "experiment_ids": [r.experiment],
            "experiment_name": r.experiment_name,
            "run_id": r.run,
            "run_ids": [r.run],
            "model_id": r.logged_model,
            "name": name,
            "version": "1",
            "username": username,
            "password": password,
            "current_password": password,
            "is_admin": false,
            "permission": "READ",
            "resource_type": "experiment",
            "resource_id": r.experiment,
            "role_id": self.role_id,
            "workspace": "default",
            "key": "k",
            "value": "v",
            "path": format!("{}/f.txt", r.experiment),
        });
        if route.method == Method::GET {
            let query = params
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| !["password", "current_password"].contains(&k.as_str()))
                .map(|(k, v)| {
                    let v = match v {
                        Value::Array(items) => items[0].clone(),
                        v => v.clone(),
                    };
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), text)
                })
                .collect();
            (path, query, None)
        } else {
            (path, Vec::new(), Some(params))
        }
    }
}

/// A line of the matrix's report.
#[derive(Default)]
struct Counts {
    allowed_as_expected: usize,
    denied_as_expected: usize,
    unauthorized_successes: Vec<String>,
    wrong_denials: Vec<String>,
}

#[test]
fn every_route_by_every_caller_is_allowed_exactly_as_its_rule_says() {
    let dir = tempfile::tempdir().unwrap();
    let grpc_port = free_port();
    let server = TestServer::start_sqlite_auth_with(
        dir.path(),
        ADMIN_PASSWORD,
        &["--grpc-port", &grpc_port.to_string()],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(walk(&server, grpc_port));
}

async fn walk(server: &TestServer, grpc_port: u16) {
    let mut matrix = Matrix {
        http: Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap(),
        url: server.url.clone(),
        grpc_port,
        backend_uri: server.backend_uri.clone(),
        tokens: HashMap::new(),
        role_id: String::new(),
    };
    let api = "/api/2.0/mlflow";
    for user in ["nobody", "reader", "editor", TOKEN_OWNER, VICTIM, INTRUDER] {
        matrix
            .admin(
                Method::POST,
                &format!("{api}/users/create"),
                json!({"username": user, "password": password_of(user)}),
            )
            .await;
    }
    for scope in TokenScope::ALL {
        let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["auth", "--backend-store-uri", &matrix.backend_uri])
            .args(["token", "create", "--user", TOKEN_OWNER, "--scope"])
            .arg(scope.name())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        matrix.tokens.insert(scope, token);
    }
    let role = matrix
        .admin(
            Method::POST,
            "/api/3.0/mlflow/roles/create",
            json!({"name": "matrix-role", "workspace": "default"}),
        )
        .await;
    matrix.role_id = role["role"]["id"].to_string();

    let routes = server_routes();
    let undeclared: Vec<String> = routes
        .iter()
        .filter(|r| r.rule.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(undeclared.is_empty(), "undeclared routes: {undeclared:?}");
    let mut counts = Counts::default();
    let mut per_rule: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for route in &routes {
        let rule = route.rule.unwrap();
        for own in [true, false] {
            let mut resources = matrix.resources(own).await;
            // Callers expected to be refused first: a wrong success shows, and changes nothing
            // that an expected success after it relies on.
            let mut order = callers();
            order.sort_by_key(|who| expected(rule, *who, own));
            for who in order {
                let (path, query, body) = matrix.request(route, &resources, who, own);
                let want = expected(rule, who, own);
                let (status, text) = matrix
                    .send(
                        route.method.clone(),
                        &path,
                        &query,
                        body.as_ref(),
                        who,
                        false,
                    )
                    .await;
                // The guard's 403 says exactly this; a handler's own refusal (a bad form token, a
                // role's rule) is past the guard.
                let denied = status == StatusCode::UNAUTHORIZED
                    || (status == StatusCode::FORBIDDEN && text == "Permission denied");
                let case = format!(
                    "{} {} as {who:?} on {} ({rule:?}): {status} {:.120}",
                    route.method,
                    route.path,
                    if own { "own" } else { "other's" },
                    text
                );
                let tally = per_rule.entry(format!("{rule:?}")).or_default();
                tally.0 += 1;
                match (want, denied) {
                    (true, false) => counts.allowed_as_expected += 1,
                    (false, true) => counts.denied_as_expected += 1,
                    (false, false) => {
                        tally.1 += 1;
                        counts.unauthorized_successes.push(case);
                    }
                    (true, true) => {
                        tally.1 += 1;
                        counts.wrong_denials.push(case);
                    }
                }
                // A request that got through may have changed or removed what the next one
                // names.
                if status.is_success() && route.method != Method::GET {
                    resources = matrix.resources(own).await;
                }
            }
        }
    }
    // gRPC methods name no experiment or model the rules look at: each once per caller.
    let rpc = grpc::client(std::time::Duration::from_secs(10));
    let methods = grpc_routes();
    for route in &methods {
        let rule = route.rule.expect("every gRPC method has a decision");
        for who in callers() {
            let want = expected(rule, who, false);
            let url = format!("http://127.0.0.1:{}{}", matrix.grpc_port, route.path);
            let authorization = matrix.authorization(who);
            let (code, message, _) = grpc::call(
                &rpc,
                &url,
                &grpc::named("nothing"),
                authorization.as_deref(),
            )
            .await;
            // UNAUTHENTICATED, or the guard's PERMISSION_DENIED in its words.
            let denied = code == 16 || (code == 7 && message == "Permission denied");
            let case = format!(
                "gRPC {} as {who:?} ({rule:?}): code {code} {message:.120}",
                route.path
            );
            let tally = per_rule.entry(format!("{rule:?}")).or_default();
            tally.0 += 1;
            match (want, denied) {
                (true, false) => counts.allowed_as_expected += 1,
                (false, true) => counts.denied_as_expected += 1,
                (false, false) => {
                    tally.1 += 1;
                    counts.unauthorized_successes.push(case);
                }
                (true, true) => {
                    tally.1 += 1;
                    counts.wrong_denials.push(case);
                }
            }
        }
    }
    println!(
        "role matrix: {} routes and {} gRPC methods × {} callers × own/other's: {} allowed and {} \
         denied as the rules say, {} unauthorized successes, {} wrong denials",
        routes.len(),
        methods.len(),
        callers().len(),
        counts.allowed_as_expected,
        counts.denied_as_expected,
        counts.unauthorized_successes.len(),
        counts.wrong_denials.len()
    );
    for (rule, (cases, wrong)) in &per_rule {
        println!("  {rule}: {cases} cases, {wrong} wrong");
    }
    assert!(
        counts.unauthorized_successes.is_empty() && counts.wrong_denials.is_empty(),
        "unauthorized successes: {:#?}\nwrong denials: {:#?}",
        counts.unauthorized_successes,
        counts.wrong_denials
    );
}
