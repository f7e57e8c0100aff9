//! `/api/twinloop/v1/monitors` and `/labels`: thin handlers over twinloop-watch's Monitors. The
//! bodies are `twinloop_api::monitors`' types; this front maps them to and from watch's domain
//! types.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use twinloop_api::Empty;
use twinloop_api::monitors as api;
use twinloop_core::ErrorKind;
use twinloop_watch::MonitorError;
use twinloop_watch::{alerts, spec, storage, view};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};

type S = State<Arc<AppState>>;

fn api_error(e: MonitorError) -> ApiError {
    match e {
        MonitorError::NotFound(m) => ApiError::of_kind(ErrorKind::NotFound, m),
        e if e.is_invalid() => ApiError::invalid(e.to_string()),
        e => ApiError::of_kind(ErrorKind::Internal, e.to_string()),
    }
}

pub async fn create(
    State(s): S,
    JsonBody(spec): JsonBody<api::MonitorSpec>,
) -> ApiResult<(StatusCode, Json<api::MonitorStatus>)> {
    for rule in &spec.rules {
        for action in &rule.actions {
            if let api::Action::Webhook { url, .. } = action {
                s.outbound.check(url).await.map_err(|e| {
                    ApiError::invalid(format!("rule {:?}: {}", rule.name, e.message))
                })?;
            }
        }
    }
    let created = s
        .serving
        .monitors
        .create(spec_from_api(spec))
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(status_to_api(created))))
}

pub async fn list(State(s): S) -> Json<api::MonitorList> {
    let monitors = s
        .serving
        .monitors
        .list()
        .await
        .into_iter()
        .map(|m| api::MonitorSummary {
            deployment: m.deployment,
            firing: m.firing,
            name: m.name,
            windows: m.windows,
        })
        .collect();
    Json(api::MonitorList { monitors })
}

/// `?windows=N`: how many of the latest closed windows to return (default 10).
pub async fn get(
    State(s): S,
    Path(name): Path<String>,
    q: QueryParams,
) -> ApiResult<Json<api::MonitorStatus>> {
    let windows = match q.opt_i64("windows")? {
        None => 10,
        Some(n) if (0..=1000).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "windows={n}: give 0 to 1000 windows"
            )));
        }
    };
    let status = s
        .serving
        .monitors
        .status(&name, windows)
        .await
        .map_err(api_error)?;
    Ok(Json(status_to_api(status)))
}

pub async fn delete(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Empty>> {
    s.serving.monitors.delete(&name).await.map_err(api_error)?;
    Ok(Json(Empty {}))
}

pub async fn alerts(State(s): S, Path(name): Path<String>) -> ApiResult<Json<api::AlertHistory>> {
    let history = s.serving.monitors.alerts(&name).await.map_err(api_error)?;
    Ok(Json(api::AlertHistory {
        events: history
            .events
            .into_iter()
            .map(|e| event_to_api(e, false))
            .collect(),
        name: history.name,
        rules: rules_to_api(history.rules),
    }))
}

pub async fn events(State(s): S, q: QueryParams) -> ApiResult<Json<api::EventList>> {
    let after = match q.get("after") {
        Some(a) => a
            .parse::<i64>()
            .map_err(|_| ApiError::invalid(format!("after={a:?} is not an event id")))?,
        None => 0,
    };
    let events = s.serving.monitors.events(after).await.map_err(api_error)?;
    Ok(Json(api::EventList {
        events: events.into_iter().map(|e| event_to_api(e, true)).collect(),
    }))
}

/// `[{request_id, label, timestamp?}]`, or `{"labels": [...]}`. Decoded item by item so that a
/// refusal names the item and the field.
pub async fn labels(State(s): S, body: axum::body::Bytes) -> ApiResult<Json<api::LabelsAccepted>> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the labels are not valid JSON: {e}")))?;
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("labels") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::invalid(
                    "send a list of {request_id, label, timestamp?}, or {\"labels\": [...]}",
                ));
            }
        },
        _ => {
            return Err(ApiError::invalid(
                "send a list of {request_id, label, timestamp?}",
            ));
        }
    };
    let labels = items
        .iter()
        .enumerate()
        .map(|(i, item)| label(i, item))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::invalid)?;
    let accepted = s
        .serving
        .monitors
        .put_labels(&labels)
        .await
        .map_err(api_error)?;
    Ok(Json(api::LabelsAccepted { accepted }))
}

/// `labels[i]` of the body.
fn label(i: usize, item: &Value) -> Result<storage::Label, String> {
    let request_id = item
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("labels[{i}]: request_id must be a non-empty string"))?;
    let value = item
        .get("label")
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("labels[{i}]: label is missing"))?;
    let time_ms = match item.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(t) => Some(t.as_i64().ok_or_else(|| {
            format!("labels[{i}]: timestamp must be milliseconds since the epoch")
        })?),
    };
    Ok(storage::Label {
        request_id: request_id.to_string(),
        value: value.clone(),
        time_ms,
    })
}

fn spec_from_api(s: api::MonitorSpec) -> spec::MonitorSpec {
    spec::MonitorSpec {
        name: s.name,
        deployment: s.deployment,
        reference: s.reference,
        window: match s.window {
            api::Window::Rows(n) => spec::Window::Rows(n),
            api::Window::Seconds(x) => spec::Window::Seconds(x),
        },
        features: s.features,
        prediction: s.prediction,
        probabilities: s.probabilities,
        task: match s.task {
            api::Task::Classification => spec::Task::Classification,
            api::Task::Regression => spec::Task::Regression,
        },
        label_delay_s: s.label_delay_s,
        rules: s
            .rules
            .into_iter()
            .map(|r| spec::AlertRule {
                name: r.name,
                metric: r.metric,
                op: r.op,
                threshold: r.threshold,
                for_windows: r.for_windows,
                actions: r
                    .actions
                    .into_iter()
                    .map(|a| match a {
                        api::Action::Webhook { url, secret } => {
                            spec::Action::Webhook { url, secret }
                        }
                        api::Action::Rollback => spec::Action::Rollback,
                        api::Action::Retrain => spec::Action::Retrain,
                    })
                    .collect(),
            })
            .collect(),
        training_metrics: s.training_metrics,
    }
}

fn spec_to_api(s: spec::MonitorSpec) -> api::MonitorSpec {
    api::MonitorSpec {
        name: s.name,
        deployment: s.deployment,
        reference: s.reference,
        window: match s.window {
            spec::Window::Rows(n) => api::Window::Rows(n),
            spec::Window::Seconds(x) => api::Window::Seconds(x),
        },
        features: s.features,
        prediction: s.prediction,
        probabilities: s.probabilities,
        task: match s.task {
            spec::Task::Classification => api::Task::Classification,
            spec::Task::Regression => api::Task::Regression,
        },
        label_delay_s: s.label_delay_s,
        rules: s
            .rules
            .into_iter()
            .map(|r| api::AlertRule {
                name: r.name,
                metric: r.metric,
                op: r.op,
                threshold: r.threshold,
                for_windows: r.for_windows,
                actions: r
                    .actions
                    .into_iter()
                    .map(|a| match a {
                        spec::Action::Webhook { url, secret } => {
                            api::Action::Webhook { url, secret }
                        }
                        spec::Action::Rollback => api::Action::Rollback,
                        spec::Action::Retrain => api::Action::Retrain,
                    })
                    .collect(),
            })
            .collect(),
        training_metrics: s.training_metrics,
    }
}

fn rules_to_api(
    rules: std::collections::BTreeMap<String, alerts::RuleState>,
) -> std::collections::BTreeMap<String, api::RuleState> {
    rules
        .into_iter()
        .map(|(name, r)| {
            let state = api::RuleState {
                breaches: r.breaches,
                last_value: r.last_value,
                state: r.state,
            };
            (name, state)
        })
        .collect()
}

fn status_to_api(s: view::MonitorStatus) -> api::MonitorStatus {
    let state = s.state;
    api::MonitorStatus {
        name: s.name,
        series: s.series,
        spec: spec_to_api(s.spec),
        state: api::MonitorState {
            cursor_us: state.cursor_us,
            error: state.error,
            last: state.last.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            last_window: state.last_window,
            reference_path: state.reference_path,
            rules: rules_to_api(state.rules),
            windows: state.windows,
        },
        windows: s
            .windows
            .into_iter()
            .map(|w| api::ClosedWindow {
                end_us: w.end_us,
                metrics: w.metrics,
                rules_holding: w.rules_holding,
                start_us: w.start_us,
            })
            .collect(),
    }
}

/// `with_monitor`: the listing of every monitor's events names each event's monitor; a
/// monitor's own history does not.
fn event_to_api(e: storage::Event, with_monitor: bool) -> api::MonitorEvent {
    api::MonitorEvent {
        id: e.id,
        kind: e.kind,
        monitor: with_monitor.then_some(e.monitor),
        payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
        time: e.time,
    }
}
