//! `/api/twinloop/v1/pipelines`, `/runs` and `/triggers`: thin handlers over twinloop-pipelines'
//! `Scheduler`. The bodies are `twinloop_api::pipelines`' types; this front maps the scheduler's
//! records to them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use twinloop_api::pipelines as api;
use twinloop_core::ErrorKind;
use twinloop_core::location::Location;
use twinloop_meta::pipelines::{PipelineRun, PipelineVersion, TriggerEvent};
use twinloop_pipelines::schedule::{PlanDiff, ScheduleError, TriggerStatus};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, missing};

type S = State<Arc<AppState>>;

const RUN_STATES: [&str; 6] = [
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELED",
    "REJECTED",
];

fn api_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Invalid(invalid) => ApiError::invalid(invalid.to_string()),
        ScheduleError::NotSupported(m) | ScheduleError::BadRequest(m) => ApiError::invalid(m),
        ScheduleError::NotFound(m) => ApiError::of_kind(ErrorKind::NotFound, m),
        ScheduleError::Conflict(m) => {
            ApiError::with_status(StatusCode::CONFLICT, "INVALID_STATE", m)
        }
        ScheduleError::Store(e) => e.into(),
        ScheduleError::Io(m) => ApiError::of_kind(ErrorKind::Internal, m),
    }
}

fn pipeline(v: PipelineVersion, with_spec: bool) -> api::Pipeline {
    api::Pipeline {
        applied_ms: v.applied_ms,
        digest: v.digest,
        file: v.file,
        name: v.name,
        repo: v.repo,
        spec: with_spec.then_some(v.spec),
        version: v.version,
    }
}

fn diff(d: PlanDiff) -> api::PipelineDiff {
    api::PipelineDiff {
        policy_changed: d.policy_changed,
        steps_added: d.steps_added,
        steps_changed: d.steps_changed,
        steps_removed: d.steps_removed,
        triggers_added: d.triggers_added,
        triggers_removed: d.triggers_removed,
    }
}

fn run(r: PipelineRun) -> api::PipelineRun {
    api::PipelineRun {
        cause: serde_json::from_str(&r.cause).unwrap_or(Value::Null),
        chain: serde_json::from_str(&r.chain).unwrap_or_default(),
        created_ms: r.created_ms,
        ended_ms: r.ended_ms,
        id: r.id,
        params: serde_json::from_str(&r.params).unwrap_or(Value::Null),
        pipeline: r.pipeline,
        reason: r.reason,
        started_ms: r.started_ms,
        state: r.state,
        trigger: r.trigger_kind,
        version: r.version,
    }
}

fn event(e: TriggerEvent) -> api::TriggerEvent {
    api::TriggerEvent {
        at_ms: e.at_ms,
        dedup_key: e.dedup_key,
        id: e.id,
        outcome: e.outcome,
        reason: e.reason,
        run_id: e.run_id,
    }
}

fn trigger(t: TriggerStatus) -> api::Trigger {
    api::Trigger {
        description: t.description,
        index: i64::try_from(t.index).unwrap_or(i64::MAX),
        kind: t.kind,
        next_ms: t.next_ms,
        paused: t.paused,
        pipeline: t.pipeline,
        recent: t.recent.into_iter().map(event).collect(),
    }
}

/// `POST /pipelines`: registers a version (none when the spec is unchanged) with its plan diff.
pub async fn apply(
    State(s): S,
    JsonBody(req): JsonBody<api::ApplyPipeline>,
) -> ApiResult<(StatusCode, Json<api::PipelineApplied>)> {
    let spec = req.spec.ok_or_else(|| missing("spec"))?;
    let repo = req.repo.ok_or_else(|| missing("repo"))?;
    // The server runs the steps this directory holds: it must be one the operator allowed, with
    // links resolved, like any other location a client names.
    let repo = match s.locations.check(&repo)? {
        Location::Local(path) => path.display().to_string(),
        Location::Reference | Location::Remote => {
            return Err(ApiError::invalid(format!(
                "Invalid location '{repo}': a pipeline's repository is a directory on the server"
            )));
        }
    };
    let file = req.file.unwrap_or_else(|| "pipeline.yaml".into());
    let applied = s
        .pipelines
        .apply(&spec, &file, &repo)
        .await
        .map_err(api_error)?;
    let status = if applied.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(api::PipelineApplied {
            created: applied.created,
            diff: diff(applied.diff),
            pipeline: pipeline(applied.version, false),
        }),
    ))
}

pub async fn list(State(s): S) -> ApiResult<Json<api::PipelineList>> {
    let pipelines = s.pipelines.pipelines().await.map_err(api_error)?;
    Ok(Json(api::PipelineList {
        pipelines: pipelines.into_iter().map(|p| pipeline(p, false)).collect(),
    }))
}

pub async fn get(State(s): S, Path(name): Path<String>) -> ApiResult<Json<api::Pipeline>> {
    let version = s.pipelines.pipeline(&name).await.map_err(api_error)?;
    Ok(Json(pipeline(version, true)))
}

/// `POST /pipelines/{name}/runs`: a manual run, started now or queued behind the running ones.
pub async fn start_run(
    State(s): S,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<api::StartRun>,
) -> ApiResult<(StatusCode, Json<api::PipelineRun>)> {
    let params: Vec<(String, String)> = req.params.into_iter().collect();
    let started = s
        .pipelines
        .run_now(&name, &params)
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(run(started))))
}

/// `GET /runs[?pipeline=&state=&limit=]`, newest first.
pub async fn runs(State(s): S, q: QueryParams) -> ApiResult<Json<api::PipelineRunList>> {
    let state = q.get("state").map(str::to_ascii_uppercase);
    if let Some(st) = state.as_deref()
        && !RUN_STATES.contains(&st)
    {
        return Err(ApiError::invalid(format!(
            "state={st}: use one of {}",
            RUN_STATES.join(", ")
        )));
    }
    let limit = match q.opt_i64("limit")? {
        None => 100,
        Some(n) if (1..=10_000).contains(&n) => n,
        Some(n) => return Err(ApiError::invalid(format!("limit={n}: give 1 to 10000"))),
    };
    let found = s
        .pipelines
        .runs(q.get("pipeline"), state.as_deref(), limit)
        .await
        .map_err(api_error)?;
    Ok(Json(api::PipelineRunList {
        runs: found.into_iter().map(run).collect(),
    }))
}

pub async fn get_run(State(s): S, Path(id): Path<String>) -> ApiResult<Json<api::PipelineRun>> {
    let found = s.pipelines.run(&id).await.map_err(api_error)?;
    Ok(Json(run(found)))
}

/// `POST /runs/{id}/cancel`: a queued run ends at once; a running one once its steps have.
pub async fn cancel(State(s): S, Path(id): Path<String>) -> ApiResult<Json<api::PipelineRun>> {
    let canceled = s.pipelines.cancel(&id).await.map_err(api_error)?;
    Ok(Json(run(canceled)))
}

/// `GET /triggers[?pipeline=]`.
pub async fn triggers(State(s): S, q: QueryParams) -> ApiResult<Json<api::TriggerList>> {
    let found = s
        .pipelines
        .triggers(q.get("pipeline"))
        .await
        .map_err(api_error)?;
    Ok(Json(api::TriggerList {
        triggers: found.into_iter().map(trigger).collect(),
    }))
}

/// `POST /triggers/pause`: events of the trigger(s) are recorded as suppressed (`paused`).
pub async fn pause(
    State(s): S,
    JsonBody(req): JsonBody<api::TriggerTarget>,
) -> ApiResult<Json<api::TriggerList>> {
    set_paused(&s, req, true).await
}

/// `POST /triggers/resume`.
pub async fn resume(
    State(s): S,
    JsonBody(req): JsonBody<api::TriggerTarget>,
) -> ApiResult<Json<api::TriggerList>> {
    set_paused(&s, req, false).await
}

async fn set_paused(
    s: &AppState,
    req: api::TriggerTarget,
    paused: bool,
) -> ApiResult<Json<api::TriggerList>> {
    let pipeline = req.pipeline.ok_or_else(|| missing("pipeline"))?;
    let index = req
        .index
        .map(|i| {
            usize::try_from(i).map_err(|_| ApiError::invalid(format!("index={i}: give 0 or more")))
        })
        .transpose()?;
    let found = s
        .pipelines
        .set_paused(&pipeline, index, paused)
        .await
        .map_err(api_error)?;
    Ok(Json(api::TriggerList {
        triggers: found.into_iter().map(trigger).collect(),
    }))
}

/// `GET /pipelines/events`: the engine events of the runs under way, as server-sent events with
/// ids. From the moment of the request, or after an event id (`Last-Event-ID`, which a
/// reconnecting `EventSource` sends and which wins, or `?after=`): the kept events after it
/// first. When those are gone the stream still opens, with an `event: lost` first rather than
/// an error status: an `EventSource` given a non-200 answer stops reconnecting for good, while
/// a notice lets it re-read the runs (`GET /runs`, which has their past) and keep listening.
pub async fn events(
    State(s): S,
    headers: axum::http::HeaderMap,
    q: QueryParams,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use twinloop_pipelines::schedule::backlog::{Delivery, EventId};
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID is not text"))
        })
        .transpose()?;
    let after = header
        .or_else(|| q.get("after"))
        .filter(|id| !id.trim().is_empty())
        .map(|id| {
            id.parse::<EventId>()
                .map_err(|e| ApiError::invalid(e.to_string()))
        })
        .transpose()?;
    let follower = s.pipelines.follow(after);
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        let event = match follower.next().await? {
            Delivery::Event(e) => Event::default()
                .id(e.id.to_string())
                .event("pipeline")
                .data(serde_json::to_string(&event_body(e.event)).unwrap_or_default()),
            Delivery::Lost(lost) => {
                let body = api::PipelineEventsLost {
                    after: lost.after.to_string(),
                    oldest: lost.oldest.map(|id| id.to_string()),
                };
                Event::default()
                    .event("lost")
                    .data(serde_json::to_string(&body).unwrap_or_default())
            }
        };
        Some((Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))))
}

fn event_body(e: twinloop_pipelines::schedule::RunEvent) -> api::PipelineEvent {
    use twinloop_pipelines::exec::Event;
    let mut out = api::PipelineEvent {
        at_ms: e.at_ms,
        attempt: None,
        kind: String::new(),
        pipeline: e.pipeline,
        reason: None,
        run_id: e.run_id,
        state: None,
        step: None,
    };
    match e.event {
        Event::RunStarted { .. } => out.kind = "run_started".into(),
        Event::StepStarted { step, attempt } => {
            out.kind = "step_started".into();
            (out.step, out.attempt) = (Some(step), Some(attempt));
        }
        Event::StepRetrying {
            step,
            attempt,
            reason,
            ..
        } => {
            out.kind = "step_retrying".into();
            (out.step, out.attempt, out.reason) = (Some(step), Some(attempt), Some(reason));
        }
        Event::StepFinished {
            step,
            state,
            reason,
        } => {
            out.kind = "step_finished".into();
            (out.step, out.state, out.reason) = (Some(step), Some(state.to_string()), reason);
        }
        Event::RunFinished { status, .. } => {
            out.kind = "run_finished".into();
            out.state = Some(status.to_string());
        }
    }
    out
}
