//! The registry's pages, and the changes the UI makes there: setting, moving or deleting an
//! alias. Each is a GET confirmation page minting a token for exactly (change, model, alias,
//! version), then a POST carrying it. The token is keyed by a secret drawn when the process starts and
//! expires, and a POST whose Origin is another site is refused, so another site cannot make a
//! browser change an alias. `--ui-read-only` shows no form and refuses the POST.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use twinloop_core::registry::RegisteredModel;
use twinloop_core::{Error, ErrorKind, Result};
use twinloop_meta::RegistryQuery;
use twinloop_ui::{
    AliasConfirmView, AliasForm, Deployed, EVENTS_PAGE, MODELS_PAGE, ModelView, ModelsQuery,
    ModelsView, VERSIONS_SHOWN, VersionMetric, VersionOnline, VersionView, encode_segment,
};

use super::Timing;
use super::pages::pairs;
use crate::AppState;

type S = State<Arc<AppState>>;

/// How long a confirmation page's token stays good.
const TOKEN_TTL_SECS: u64 = 3600;
/// Who the registry records as making a change from the UI when nobody is signed in (no
/// `--auth`); with `--auth`, the signed-in user.
const UI_ACTOR: &str = "web-ui";

/// Two independently keyed SipHashes, their keys drawn from the OS when the process starts.
static TOKEN_KEYS: LazyLock<(std::hash::RandomState, std::hash::RandomState)> =
    LazyLock::new(|| (std::hash::RandomState::new(), std::hash::RandomState::new()));

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a confirmation token authorizes: an alias pointed at a version, or taken off it.
#[derive(Debug, Clone, Copy, Hash)]
enum Op {
    Set,
    Delete,
}

fn mac(op: Op, name: &str, alias: &str, version: i64, expires: u64) -> String {
    let what = (op, name, alias, version, expires);
    format!(
        "{:016x}{:016x}",
        TOKEN_KEYS.0.hash_one(what),
        TOKEN_KEYS.1.hash_one(what)
    )
}

fn token(op: Op, name: &str, alias: &str, version: i64) -> String {
    let expires = now_secs() + TOKEN_TTL_SECS;
    format!("{expires}.{}", mac(op, name, alias, version, expires))
}

fn token_ok(op: Op, token: &str, name: &str, alias: &str, version: i64) -> bool {
    let Some((expires, mac_hex)) = token.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    expires >= now_secs() && mac(op, name, alias, version, expires) == mac_hex
}

/// Whether a request comes from this site's pages: no Origin (same-origin form posts from old
/// browsers), or an Origin naming the Host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

fn refused(t: &Timing, status: StatusCode, message: &str) -> Response {
    t.page(status, twinloop_ui::error_page(message))
}

/// `/models`.
pub(super) async fn models(
    State(s): S,
    RawQuery(raw): RawQuery,
    caller: Option<axum::Extension<crate::auth::Caller>>,
) -> Response {
    let mut t = Timing::start();
    let query = ModelsQuery::from_pairs(&pairs(raw));
    let found = s
        .store
        .search_registered_models(&RegistryQuery {
            filter: query.filter(),
            order_by: vec!["name ASC".into()],
            max_results: MODELS_PAGE,
            page_token: query.page_token.clone(),
        })
        .await;
    t.lap("store");
    let (mut models, next, error) = match found {
        Ok(page) => (page.items, page.next_page_token, None),
        Err(e) if e.kind == ErrorKind::InvalidArgument => (Vec::new(), None, Some(e.message)),
        Err(e) => return t.failed(&e),
    };
    // With --auth the list shows what the caller may read, as the registered-model search does.
    if let (Some(auth), Some(axum::Extension(caller))) = (&s.auth, caller) {
        let kind = twinloop_core::auth::ResourceType::RegisteredModel;
        models = match crate::auth::readable(auth, &caller, kind, models, |m| m.name.as_str()).await
        {
            Ok(models) => models,
            Err(e) => return t.failed(&e),
        };
    }
    let page = twinloop_ui::models_page(&ModelsView {
        query: &query,
        models: &models,
        next_page_token: next.as_deref(),
        error: error.as_deref(),
    });
    t.lap("render");
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    t.page(status, page)
}

/// The deployments serving versions of `model`, by version, each with the latest closed window
/// of every monitor watching it: what the registry pages show as a version's online
/// performance. A deployment serves a version when one of its routes has it loaded now (an
/// alias route, the version the alias named when it was loaded); its shadow answers nobody and
/// monitors read primary traffic only, so it does not count.
#[cfg(feature = "serving")]
async fn online(s: &AppState, model: &str) -> Vec<(String, Deployed)> {
    let serving = &s.serving;
    let monitors = serving.monitors.list().await;
    let mut out = Vec::new();
    for name in serving.engine.names() {
        let Some(endpoint) = serving.engine.get(&name) else {
            continue;
        };
        let weights: Vec<f64> = endpoint
            .spec
            .routes
            .iter()
            .map(|r| f64::from(r.weight))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut shares: Vec<(String, f64)> = Vec::new();
        for (m, w) in endpoint.routes.iter().zip(&weights) {
            if m.name != model {
                continue;
            }
            let share = if total > 0.0 { w / total * 100.0 } else { 0.0 };
            match shares.iter_mut().find(|(v, _)| *v == m.version) {
                Some((_, s)) => *s += share,
                None => shares.push((m.version.clone(), share)),
            }
        }
        if shares.is_empty() {
            continue;
        }
        let mut windows = Vec::new();
        for m in monitors.iter().filter(|m| m.deployment == name) {
            // A monitor deleted since the listing is simply left out.
            let Ok(status) = serving.monitors.status(&m.name, 1).await else {
                continue;
            };
            let last = status.windows.last();
            windows.push(twinloop_ui::MonitorWindow {
                monitor: m.name.clone(),
                end_us: last.map(|w| w.end_us),
                metrics: last
                    .map(|w| w.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect())
                    .unwrap_or_default(),
            });
        }
        for (version, share) in shares {
            out.push((
                version,
                Deployed {
                    deployment: name.clone(),
                    traffic_percent: share,
                    monitors: windows.clone(),
                },
            ));
        }
    }
    out
}

/// Without serving there are no deployments, so no version is monitored online.
#[cfg(not(feature = "serving"))]
#[expect(
    clippy::unused_async,
    reason = "the serving build's twin awaits the engine; callers await either"
)]
async fn online(_: &AppState, _: &str) -> Vec<(String, Deployed)> {
    Vec::new()
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `/models/{name}?metric=KEY&events_before=ID`.
pub(super) async fn model(
    State(s): S,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    let pairs = pairs(raw);
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let metric = get("metric");
    let events_before = match get("events_before").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return refused(
                &t,
                StatusCode::BAD_REQUEST,
                "events_before must be an event id.",
            );
        }
    };
    match model_page(&s, &name, metric, events_before, &mut t).await {
        Ok(r) => r,
        Err(e) => t.failed(&e),
    }
}

async fn model_page(
    s: &AppState,
    name: &str,
    metric: Option<String>,
    events_before: Option<i64>,
    t: &mut Timing,
) -> Result<Response> {
    let model = s.store.get_registered_model(name).await?;
    // One more than a page tells whether older events exist.
    let mut events = s
        .store
        .model_registry_events(name, events_before, EVENTS_PAGE + 1)
        .await?;
    let more_events = events.len() as i64 > EVENTS_PAGE;
    events.truncate(EVENTS_PAGE as usize);
    let versions = s
        .store
        .search_model_versions(&RegistryQuery {
            filter: Some(format!("name = {}", quoted(name))),
            order_by: vec!["version_number DESC".into()],
            max_results: VERSIONS_SHOWN,
            page_token: None,
        })
        .await?
        .items;
    let run_ids: Vec<String> = versions
        .iter()
        .map(|v| v.run_id.clone())
        .filter(|r| !r.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let summaries = if run_ids.is_empty() {
        Vec::new()
    } else {
        s.store.metric_summaries(&run_ids, None).await?
    };
    let mut online_by_version: Vec<VersionOnline> = Vec::new();
    for (version, deployed) in online(s, name).await {
        let Ok(version) = version.parse::<i64>() else {
            continue;
        };
        match online_by_version.iter_mut().find(|o| o.version == version) {
            Some(o) => o.deployed.push(deployed),
            None => online_by_version.push(VersionOnline {
                version,
                deployed: vec![deployed],
            }),
        }
    }
    t.lap("store");
    let keys: Vec<String> = summaries
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.key.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let metric = metric
        .filter(|m| keys.contains(m))
        .or_else(|| keys.first().cloned());
    let points: Vec<VersionMetric> = match &metric {
        Some(key) => versions
            .iter()
            .filter_map(|v| {
                let run = summaries.iter().find(|r| r.run_id == v.run_id)?;
                let m = run.metrics.iter().find(|m| &m.key == key)?;
                Some(VersionMetric {
                    version: v.version,
                    value: m.last,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let page = twinloop_ui::model_page(&ModelView {
        model: &model,
        versions: &versions,
        metric_keys: &keys,
        metric: metric.as_deref(),
        metric_points: &points,
        read_only: s.ui_read_only,
        events: &events,
        events_before,
        more_events,
        online: &online_by_version,
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}

fn version_number(raw: &str) -> Result<i64> {
    raw.parse::<i64>()
        .map_err(|_| Error::not_found(format!("No version '{raw}'.")))
}

/// `/models/{name}/versions/{v}`.
pub(super) async fn version(State(s): S, Path((name, v)): Path<(String, String)>) -> Response {
    let mut t = Timing::start();
    match version_page(&s, &name, &v, &mut t).await {
        Ok(r) => r,
        Err(e) => t.failed(&e),
    }
}

async fn version_page(s: &AppState, name: &str, v: &str, t: &mut Timing) -> Result<Response> {
    let n = version_number(v)?;
    let model = s.store.get_registered_model(name).await?;
    let mv = s.store.get_model_version(name, &n.to_string()).await?;
    let logged_model = match &mv.model_id {
        Some(id) => match s.store.get_logged_model(id, true).await {
            Ok(m) => Some(m),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let signature = signature(s, name, &mv.version.to_string()).await;
    let offline: Vec<(String, f64)> = if mv.run_id.is_empty() {
        Vec::new()
    } else {
        match s
            .store
            .metric_summaries(std::slice::from_ref(&mv.run_id), None)
            .await
        {
            Ok(found) => found
                .into_iter()
                .flat_map(|r| r.metrics)
                .map(|m| (m.key, m.last))
                .collect(),
            // The source run may be gone (deleted for good); the version page still shows.
            Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        }
    };
    let version = mv.version.to_string();
    let deployed: Vec<Deployed> = online(s, name)
        .await
        .into_iter()
        .filter(|(v, _)| *v == version)
        .map(|(_, d)| d)
        .collect();
    t.lap("store");
    let confirm = format!("/models/{}/versions/{n}/alias", encode_segment(name));
    let page = twinloop_ui::version_page(&VersionView {
        model: &model,
        version: &mv,
        logged_model: logged_model.as_ref(),
        signature: signature.as_ref(),
        alias_form: AliasForm {
            read_only: s.ui_read_only,
            confirm_action: &confirm,
        },
        offline: &offline,
        online: &deployed,
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}

/// The signature in the MLmodel file where the version's files are (its logged model, or its
/// source), if it is there; a missing or unreadable file is no signature.
async fn signature(s: &AppState, name: &str, version: &str) -> Option<twinloop_ui::Signature> {
    let mut location = s
        .store
        .get_model_version_download_uri(name, version)
        .await
        .ok()?;
    // A `runs:/RUN/sub/path` source names a place in that run's artifacts.
    if let Some(rest) = location.strip_prefix("runs:/") {
        let (run, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let root = s.store.get_run(run).await.ok()?.info.artifact_uri;
        location = format!("{}/{sub}", root.trim_end_matches('/'));
    }
    let path = twinloop_artifacts::ArtifactPath::parse("MLmodel").ok()?;
    let at = twinloop_artifacts::ArtifactPath::in_location(&location, &path).ok()?;
    let (bytes, _) = super::artifacts::head(&s.artifacts, &at, 256 * 1024)
        .await
        .ok()?;
    twinloop_ui::mlmodel_signature(&String::from_utf8_lossy(&bytes))
}

fn aliases_action(name: &str) -> String {
    format!("/models/{}/aliases", encode_segment(name))
}

/// `/models/{name}/versions/{v}/alias?alias=…`: what the change does, and the POST to make it.
pub(super) async fn confirm_alias(
    State(s): S,
    Path((name, v)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    if s.ui_read_only {
        return refused(&t, StatusCode::FORBIDDEN, READ_ONLY);
    }
    let alias = alias_asked(raw);
    let found = async {
        let n = version_number(&v)?;
        let model = s.store.get_registered_model(&name).await?;
        s.store.get_model_version(&name, &n.to_string()).await?;
        Ok::<_, Error>((n, model))
    }
    .await;
    let (n, model) = match found {
        Ok(found) => found,
        Err(e) => return t.failed(&e),
    };
    if alias.is_empty() {
        return refused(&t, StatusCode::BAD_REQUEST, "Name the alias to set.");
    }
    let current = aliased_version(&model, &alias);
    t.lap("store");
    let action = aliases_action(&name);
    let token = token(Op::Set, &name, &alias, n);
    let page = twinloop_ui::alias_confirm_page(&AliasConfirmView {
        model: &model,
        version: n,
        alias: &alias,
        current,
        action: &action,
        token: &token,
        deleting: false,
    });
    t.lap("render");
    t.page(StatusCode::OK, page)
}

/// `POST /models/{name}/aliases` (form: alias, version, token): sets the alias, then back to
/// the version's page.
pub(super) async fn set_alias(
    State(s): S,
    Path(name): Path<String>,
    caller: Option<axum::Extension<crate::auth::credentials::Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut t = Timing::start();
    let (alias, version) = match confirmed(s.ui_read_only, &headers, &body, Op::Set, &name) {
        Ok(confirmed) => confirmed,
        Err((status, why)) => return refused(&t, status, why),
    };
    let result = s
        .store
        .set_alias(&name, &alias, &version.to_string(), actor(caller.as_ref()))
        .await;
    t.lap("store");
    back_to_version(&t, result, &name, version)
}

const STALE: &str =
    "This confirmation has expired or was not made by this server; review the change again.";

/// A confirmed alias change's form (alias, version), or why it is refused: the UI is read-only,
/// the form came from another site, or its token was not made by this server for this `op` on
/// this alias and version.
fn confirmed(
    read_only: bool,
    headers: &HeaderMap,
    body: &[u8],
    op: Op,
    name: &str,
) -> std::result::Result<(String, i64), (StatusCode, &'static str)> {
    if read_only {
        return Err((StatusCode::FORBIDDEN, READ_ONLY));
    }
    if !same_origin(headers) {
        return Err((
            StatusCode::FORBIDDEN,
            "Refused: the form came from another site.",
        ));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let alias = get("alias");
    let Ok(version) = get("version").parse::<i64>() else {
        return Err((StatusCode::BAD_REQUEST, "No version given."));
    };
    if !token_ok(op, get("token"), name, alias, version) {
        return Err((StatusCode::FORBIDDEN, STALE));
    }
    Ok((alias.to_string(), version))
}

const READ_ONLY: &str = "This server's UI is read-only.";

/// The `alias` a confirmation page is asked about.
fn alias_asked(raw: Option<String>) -> String {
    pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "alias")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The version `alias` names in `model`, if it is set.
fn aliased_version(model: &RegisteredModel, alias: &str) -> Option<i64> {
    model
        .aliases
        .iter()
        .find(|a| a.alias == alias)
        .map(|a| a.version)
}

fn actor(caller: Option<&axum::Extension<crate::auth::credentials::Caller>>) -> &str {
    caller.map_or(UI_ACTOR, |c| c.user.username.as_str())
}

/// After a change: the version's page, or why the registry refused it.
fn back_to_version(t: &Timing, result: Result<()>, name: &str, version: i64) -> Response {
    match result {
        Ok(()) => {
            let to = format!("/models/{}/versions/{version}", encode_segment(name));
            let mut r = (StatusCode::SEE_OTHER, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            t.set_header(r.headers_mut());
            r
        }
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            refused(t, StatusCode::BAD_REQUEST, &e.message)
        }
        Err(e) => t.failed(&e),
    }
}

fn alias_delete_action(name: &str) -> String {
    format!("/models/{}/aliases/delete", encode_segment(name))
}

/// `/models/{name}/aliases/delete?alias=…`: which version the alias leaves, and the POST that
/// deletes it.
pub(super) async fn confirm_delete_alias(
    State(s): S,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    if s.ui_read_only {
        return refused(&t, StatusCode::FORBIDDEN, READ_ONLY);
    }
    let alias = alias_asked(raw);
    let model = match s.store.get_registered_model(&name).await {
        Ok(model) => model,
        Err(e) => return t.failed(&e),
    };
    t.lap("store");
    let Some(version) = aliased_version(&model, &alias) else {
        return refused(
            &t,
            StatusCode::NOT_FOUND,
            &format!("Model {name} has no alias @{alias}."),
        );
    };
    let action = alias_delete_action(&name);
    let token = token(Op::Delete, &name, &alias, version);
    let page = twinloop_ui::alias_confirm_page(&AliasConfirmView {
        model: &model,
        version,
        alias: &alias,
        current: Some(version),
        action: &action,
        token: &token,
        deleting: true,
    });
    t.lap("render");
    t.page(StatusCode::OK, page)
}

/// `POST /models/{name}/aliases/delete` (form: alias, version, token): deletes the alias if it
/// still names the version the confirmation showed, then back to that version's page.
pub(super) async fn delete_alias(
    State(s): S,
    Path(name): Path<String>,
    caller: Option<axum::Extension<crate::auth::credentials::Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut t = Timing::start();
    let (alias, version) = match confirmed(s.ui_read_only, &headers, &body, Op::Delete, &name) {
        Ok(confirmed) => confirmed,
        Err((status, why)) => return refused(&t, status, why),
    };
    // The confirmation showed which version loses the alias; if it has moved since, deleting
    // it would take it off a version the user never saw.
    let now = match s.store.get_registered_model(&name).await {
        Ok(model) => aliased_version(&model, &alias),
        Err(e) => return t.failed(&e),
    };
    if now.is_some_and(|v| v != version) {
        return refused(
            &t,
            StatusCode::CONFLICT,
            &format!(
                "@{alias} has moved since this confirmation was made; review the change again."
            ),
        );
    }
    let result = s
        .store
        .delete_alias(&name, &alias, actor(caller.as_ref()))
        .await;
    t.lap("store");
    back_to_version(&t, result, &name, version)
}

/// `/runs/{id}`: a run by id alone (registry pages know no experiment), sent to its page.
pub(super) async fn run_by_id(State(s): S, Path(run_id): Path<String>) -> Response {
    let t = Timing::start();
    match s.store.get_run(&run_id).await {
        Ok(run) => {
            let to = format!(
                "/experiments/{}/runs/{}",
                encode_segment(&run.info.experiment_id),
                encode_segment(&run.info.run_id)
            );
            let mut r = (StatusCode::FOUND, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            t.set_header(r.headers_mut());
            r
        }
        Err(e) => t.failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_authorizes_one_change_until_it_expires() {
        let t = token(Op::Set, "m", "champion", 3);
        assert!(token_ok(Op::Set, &t, "m", "champion", 3));
        assert!(!token_ok(Op::Set, &t, "m", "champion", 2));
        assert!(!token_ok(Op::Set, &t, "m", "other", 3));
        assert!(!token_ok(Op::Set, &t, "n", "champion", 3));
        assert!(!token_ok(Op::Set, "", "m", "champion", 3));
        // Confirming a move is no confirmation of a deletion, nor the other way round.
        assert!(!token_ok(Op::Delete, &t, "m", "champion", 3));
        let d = token(Op::Delete, "m", "champion", 3);
        assert!(token_ok(Op::Delete, &d, "m", "champion", 3));
        assert!(!token_ok(Op::Set, &d, "m", "champion", 3));
        let expired = format!("1.{}", mac(Op::Set, "m", "champion", 3, 1));
        assert!(!token_ok(Op::Set, &expired, "m", "champion", 3));
        let forged_expiry = format!("{}.{}", u64::MAX, t.split_once('.').unwrap().1);
        assert!(!token_ok(Op::Set, &forged_expiry, "m", "champion", 3));
    }

    #[test]
    fn a_change_is_confirmed_only_by_its_own_token_from_this_site_on_a_writable_ui() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:5000".parse().unwrap());
        let form = |op, version: i64| {
            format!(
                "alias=champion&version={version}&token={}",
                token(op, "m", "champion", version)
            )
        };
        let set = form(Op::Set, 3);
        assert_eq!(
            confirmed(false, &h, set.as_bytes(), Op::Set, "m"),
            Ok(("champion".to_string(), 3))
        );
        let refusal = |r: std::result::Result<(String, i64), (StatusCode, &str)>| r.unwrap_err().0;
        assert_eq!(
            refusal(confirmed(true, &h, set.as_bytes(), Op::Set, "m")),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            refusal(confirmed(false, &h, set.as_bytes(), Op::Delete, "m")),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            refusal(confirmed(false, &h, set.as_bytes(), Op::Set, "other")),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            refusal(confirmed(
                false,
                &h,
                b"alias=champion&token=x",
                Op::Set,
                "m"
            )),
            StatusCode::BAD_REQUEST
        );
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(
            refusal(confirmed(false, &h, set.as_bytes(), Op::Set, "m")),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn only_this_sites_origin_may_post() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:5000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:5000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
