//! Changes to deployments. Each change loads and warms whatever new versions it needs first and
//! only then swaps the deployment in the engine, so a failed change leaves the old one serving
//! and a successful one fails no request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::AbortHandle;
use twinloop_core::deployments::DeploymentRecord;
use twinloop_core::registry::RegistryEventKind;
use twinloop_meta::StoreHandle;

use super::canary::{at_step, judge, promoted};
use super::state::{
    CanaryState, CanaryStatus, CanaryStep, DeploymentState, DeploymentStatus, ServingRoute,
};
use crate::engine::{Endpoint, Engine, ServeError};
use crate::served::ServedModel;
use crate::source::{ModelRegistry, ModelUri};
use crate::spec::{CanarySpec, DeploymentSpec, RouteSpec};

pub struct DeploymentManager {
    engine: Arc<Engine>,
    /// Specs and state persist here; alias moves are heard from its registry events.
    store: StoreHandle,
    registry: Arc<dyn ModelRegistry>,
    sessions: usize,
    /// Every deployment's state; the lock also puts changes in a line.
    states: Mutex<HashMap<String, DeploymentState>>,
    canaries: StdMutex<HashMap<String, AbortHandle>>,
}

fn invalid(message: impl Into<String>) -> ServeError {
    ServeError::Invalid(message.into())
}

fn unknown(name: &str) -> ServeError {
    ServeError::NotFound(format!("no deployment {name:?}"))
}

impl DeploymentManager {
    pub fn new(
        engine: Arc<Engine>,
        store: StoreHandle,
        registry: Arc<dyn ModelRegistry>,
        sessions: usize,
    ) -> Arc<DeploymentManager> {
        Arc::new(DeploymentManager {
            engine,
            store,
            registry,
            sessions,
            states: Mutex::new(HashMap::new()),
            canaries: StdMutex::new(HashMap::new()),
        })
    }

    /// Starts every stored deployment (a running canary resumes from its baseline), then marks
    /// the engine ready. A deployment that cannot start is kept with status `failed`.
    pub async fn restore(self: &Arc<Self>) -> Result<(), ServeError> {
        let records = self
            .store
            .deployments()
            .await
            .map_err(ServeError::Internal)?;
        let mut states = self.states.lock().await;
        for record in records {
            let (Ok(spec), Ok(mut state)) = (
                serde_json::from_str::<DeploymentSpec>(&record.spec),
                serde_json::from_str::<DeploymentState>(&record.state),
            ) else {
                tracing::error!(deployment = %record.name, "stored deployment is unreadable; skipped");
                continue;
            };
            let spec = match state.running_canary().map(|c| c.baseline.clone()) {
                Some(baseline) => {
                    let reason = "the server restarted during the canary: back to its baseline";
                    state.finish_canary(CanaryStatus::RolledBack, Some(reason.into()));
                    state.note(reason);
                    baseline
                }
                None => spec,
            };
            match self.build(&spec, None).await {
                Ok(endpoint) => {
                    self.install(&mut state, endpoint);
                    state.status = "ready".into();
                    state.error = None;
                }
                Err(e) => {
                    state.status = "failed".into();
                    state.error = Some(e.to_string());
                    state.note(format!("could not start: {e}"));
                }
            }
            self.persist(&spec, &state).await;
            states.insert(spec.name.clone(), state);
        }
        self.engine.set_ready(true);
        Ok(())
    }

    /// Loads the routes of `spec`, reusing the models of `current` that are the same version.
    async fn build(
        &self,
        spec: &DeploymentSpec,
        current: Option<&Endpoint>,
    ) -> Result<Endpoint, ServeError> {
        let mut routes = Vec::with_capacity(spec.routes.len());
        for route in &spec.routes {
            routes.push(self.load_route(spec, route, current).await?);
        }
        let shadow = match &spec.shadow {
            Some(route) => Some(self.load_route(spec, route, current).await?),
            None => None,
        };
        Ok(Endpoint {
            spec: spec.clone(),
            routes,
            shadow,
        })
    }

    async fn load_route(
        &self,
        spec: &DeploymentSpec,
        route: &RouteSpec,
        current: Option<&Endpoint>,
    ) -> Result<Arc<ServedModel>, ServeError> {
        let uri = ModelUri::parse(&route.uri()).map_err(|e| invalid(e.0))?;
        let resolved = self
            .registry
            .resolve(&uri)
            .await
            .map_err(|e| invalid(e.0))?;
        if let Some(current) = current {
            let loaded = current.routes.iter().chain(&current.shadow).find(|m| {
                m.name == route.model
                    && m.version == resolved.version
                    && m.batching == spec.batching
            });
            if let Some(m) = loaded {
                return Ok(m.clone());
            }
        }
        let exact = ModelUri::Version {
            name: route.model.clone(),
            version: resolved.version,
        };
        ServedModel::load(
            Some(self.registry.as_ref()),
            &exact,
            Some(&route.model),
            spec.batching,
            self.sessions,
        )
        .await
        .map_err(|e| invalid(format!("cannot load {}: {e}", route.uri())))
    }

    fn install(&self, state: &mut DeploymentState, endpoint: Endpoint) {
        let describe = |route: &RouteSpec, m: &ServedModel| ServingRoute {
            model: m.name.clone(),
            version: m.version.clone(),
            alias: route.alias.clone(),
            weight: route.weight,
        };
        state.serving = endpoint
            .spec
            .routes
            .iter()
            .zip(&endpoint.routes)
            .map(|(r, m)| describe(r, m))
            .collect();
        state.shadow = endpoint
            .spec
            .shadow
            .as_ref()
            .zip(endpoint.shadow.as_ref())
            .map(|(r, m)| describe(r, m));
        self.engine.put(endpoint);
    }

    async fn persist(&self, spec: &DeploymentSpec, state: &DeploymentState) {
        let encoded =
            serde_json::to_string(spec).and_then(|s| Ok((s, serde_json::to_string(state)?)));
        let (spec_json, state_json) = match encoded {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(deployment = %spec.name, error = %e, "cannot encode the deployment");
                return;
            }
        };
        let record = DeploymentRecord {
            name: spec.name.clone(),
            spec: spec_json,
            state: state_json,
            update_time: 0,
        };
        if let Err(e) = self.store.put_deployment(&record).await {
            tracing::error!(deployment = %spec.name, error = %e.message, "cannot save the deployment");
        }
    }

    /// Moves `name` to `spec` (the caller holds the states lock).
    async fn switch(
        &self,
        states: &mut HashMap<String, DeploymentState>,
        spec: DeploymentSpec,
        note: String,
        remember: bool,
    ) -> Result<(), ServeError> {
        spec.validate().map_err(|e| invalid(e.to_string()))?;
        let current = self.engine.get(&spec.name);
        let state = states
            .get_mut(&spec.name)
            .ok_or_else(|| unknown(&spec.name))?;
        let endpoint = match self.build(&spec, current.as_deref()).await {
            Ok(e) => e,
            Err(e) => {
                state.error = Some(e.to_string());
                state.note(format!("change refused, still serving as before: {e}"));
                let state = state.clone();
                self.persist(&current.map(|c| c.spec.clone()).unwrap_or(spec), &state)
                    .await;
                return Err(e);
            }
        };
        if remember && let Some(current) = &current {
            state.remember(current.spec.clone());
        }
        self.install(state, endpoint);
        state.status = "ready".into();
        state.error = None;
        state.note(note);
        let state = state.clone();
        self.persist(&spec, &state).await;
        Ok(())
    }

    pub async fn create(&self, spec: DeploymentSpec) -> Result<DeploymentStatus, ServeError> {
        spec.validate().map_err(|e| invalid(e.to_string()))?;
        let mut states = self.states.lock().await;
        if states.contains_key(&spec.name) {
            return Err(invalid(format!(
                "deployment {:?} already exists (hint: twinloop deploy set-traffic, or delete it first)",
                spec.name
            )));
        }
        let endpoint = self.build(&spec, None).await?;
        let mut state = DeploymentState::default();
        self.install(&mut state, endpoint);
        state.status = "ready".into();
        state.note("created");
        self.persist(&spec, &state).await;
        states.insert(spec.name.clone(), state);
        drop(states);
        self.status(&spec.name).await
    }

    pub async fn set_traffic(
        &self,
        name: &str,
        routes: Vec<RouteSpec>,
    ) -> Result<DeploymentStatus, ServeError> {
        self.stop_canary(name);
        let mut states = self.states.lock().await;
        let current = self.engine.get(name).ok_or_else(|| unknown(name))?;
        if let Some(state) = states.get_mut(name) {
            state.canary = None;
        }
        let spec = DeploymentSpec {
            routes,
            ..current.spec.clone()
        };
        self.switch(&mut states, spec, "traffic set".into(), true)
            .await?;
        drop(states);
        self.status(name).await
    }

    /// Starts a canary: the candidate is loaded and given the first step's share now, and a
    /// background task moves it through the steps, promoting or rolling back at the end.
    pub async fn canary(
        self: &Arc<Self>,
        name: &str,
        canary: CanarySpec,
    ) -> Result<DeploymentStatus, ServeError> {
        canary.validate().map_err(|e| invalid(e.to_string()))?;
        let mut states = self.states.lock().await;
        let current = self.engine.get(name).ok_or_else(|| unknown(name))?;
        if states
            .get(name)
            .and_then(DeploymentState::running_canary)
            .is_some()
        {
            return Err(invalid(format!(
                "deployment {name:?} already has a canary running (hint: promote or rollback it first)"
            )));
        }
        let baseline = current.spec.clone();
        let first = canary.steps[0];
        let spec = at_step(&baseline, &canary.candidate, first);
        self.switch(
            &mut states,
            spec,
            format!("canary {}: {first}%", canary.candidate.uri()),
            true,
        )
        .await?;
        if let Some(state) = states.get_mut(name) {
            state.start_canary(canary.clone(), baseline.clone());
            let snapshot = state.clone();
            self.persist(&at_step(&baseline, &canary.candidate, first), &snapshot)
                .await;
        }
        drop(states);
        let me = self.clone();
        let task_name = name.to_string();
        let handle = tokio::spawn(async move { me.run_canary(task_name, canary, baseline).await });
        self.canaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), handle.abort_handle());
        self.status(name).await
    }

    async fn run_canary(
        self: Arc<Self>,
        name: String,
        canary: CanarySpec,
        baseline: DeploymentSpec,
    ) {
        for (i, &percent) in canary.steps.iter().enumerate() {
            if i > 0 {
                let mut states = self.states.lock().await;
                let spec = at_step(&baseline, &canary.candidate, percent);
                let moved = self
                    .switch(
                        &mut states,
                        spec,
                        format!("canary {}: {percent}%", canary.candidate.uri()),
                        false,
                    )
                    .await;
                if let Err(e) = moved {
                    drop(states);
                    self.end_canary(
                        &name,
                        &baseline,
                        CanaryStatus::RolledBack,
                        Some(e.to_string()),
                    )
                    .await;
                    return;
                }
                if let Some(state) = states.get_mut(&name) {
                    state.canary_moved(percent);
                }
            }
            let Some(candidate) = self
                .engine
                .get(&name)
                .and_then(|e| e.routes.last().cloned())
            else {
                return;
            };
            candidate.window.take();
            tokio::time::sleep(Duration::from_secs_f64(canary.interval_s)).await;
            let step = judge(&canary, percent, &candidate.window.take());
            let failed = step.reason.clone();
            self.canary_judged(&name, step).await;
            if let Some(reason) = failed {
                self.end_canary(&name, &baseline, CanaryStatus::RolledBack, Some(reason))
                    .await;
                return;
            }
        }
        self.end_canary(&name, &baseline, CanaryStatus::Promoted, None)
            .await;
    }

    /// Keeps what a step of the running canary saw, so that `status` shows each gate's figures.
    async fn canary_judged(&self, name: &str, step: CanaryStep) {
        tracing::info!(deployment = %name, percent = step.percent, requests = step.requests, errors = step.errors, p99_ms = ?step.p99_ms, passed = step.passed, "canary step");
        let mut states = self.states.lock().await;
        let (Some(state), Some(current)) = (states.get_mut(name), self.engine.get(name)) else {
            return;
        };
        state.canary_judged(step);
        let snapshot = state.clone();
        self.persist(&current.spec, &snapshot).await;
    }

    /// Finishes a canary: promoted gives the candidate all traffic, rolled back restores the
    /// baseline.
    async fn end_canary(
        &self,
        name: &str,
        baseline: &DeploymentSpec,
        outcome: CanaryStatus,
        reason: Option<String>,
    ) {
        let mut states = self.states.lock().await;
        let Some(canary) = states.get(name).and_then(|s| s.canary.clone()) else {
            return;
        };
        let spec = match outcome {
            CanaryStatus::Promoted => promoted(baseline, &canary.spec.candidate),
            _ => baseline.clone(),
        };
        let note = match &reason {
            Some(r) => format!("canary {}: {r}", outcome.as_str()),
            None => format!("canary {}", outcome.as_str()),
        };
        if let Err(e) = self.switch(&mut states, spec.clone(), note, false).await {
            tracing::error!(deployment = name, error = %e, "cannot finish the canary");
        }
        if let Some(state) = states.get_mut(name) {
            state.finish_canary(outcome, reason);
            let snapshot = state.clone();
            self.persist(&spec, &snapshot).await;
        }
        self.canaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    fn stop_canary(&self, name: &str) -> bool {
        match self
            .canaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    fn running_canary(
        states: &HashMap<String, DeploymentState>,
        name: &str,
    ) -> Option<CanaryState> {
        states.get(name)?.running_canary().cloned()
    }

    /// Ends a running canary now with the candidate at 100 %.
    pub async fn promote(&self, name: &str) -> Result<DeploymentStatus, ServeError> {
        let canary = Self::running_canary(&*self.states.lock().await, name).ok_or_else(|| {
            invalid(format!(
                "deployment {name:?} has no canary running to promote"
            ))
        })?;
        self.stop_canary(name);
        self.end_canary(
            name,
            &canary.baseline,
            CanaryStatus::Promoted,
            Some("promoted by hand".into()),
        )
        .await;
        self.status(name).await
    }

    /// Aborts a running canary, or else returns to the spec before the last change.
    pub async fn rollback(&self, name: &str) -> Result<DeploymentStatus, ServeError> {
        let canary = Self::running_canary(&*self.states.lock().await, name);
        if let Some(canary) = canary {
            self.stop_canary(name);
            // The caller may be a person or a monitor's rollback action.
            self.end_canary(
                name,
                &canary.baseline,
                CanaryStatus::RolledBack,
                Some("rollback requested".into()),
            )
            .await;
            return self.status(name).await;
        }
        let mut states = self.states.lock().await;
        let previous = states
            .get(name)
            .ok_or_else(|| unknown(name))?
            .history
            .last()
            .cloned()
            .ok_or_else(|| {
                invalid(format!(
                    "deployment {name:?} has no earlier state to roll back to"
                ))
            })?;
        // Taken from the history only once it serves: a previous spec that no longer loads
        // stays there.
        self.switch(&mut states, previous.clone(), "rolled back".into(), false)
            .await?;
        if let Some(state) = states.get_mut(name) {
            state.undo();
            let snapshot = state.clone();
            self.persist(&previous, &snapshot).await;
        }
        drop(states);
        self.status(name).await
    }

    pub async fn delete(&self, name: &str) -> Result<(), ServeError> {
        self.stop_canary(name);
        let mut states = self.states.lock().await;
        if states.remove(name).is_none() {
            return Err(unknown(name));
        }
        self.engine.remove(name);
        self.store
            .delete_deployment(name)
            .await
            .map_err(ServeError::Internal)?;
        Ok(())
    }

    pub async fn status(&self, name: &str) -> Result<DeploymentStatus, ServeError> {
        let states = self.states.lock().await;
        let state = states.get(name).ok_or_else(|| unknown(name))?;
        Ok(DeploymentStatus {
            name: name.to_string(),
            spec: self.engine.get(name).map(|e| e.spec.clone()),
            state: state.clone(),
        })
    }

    /// Every deployment's status, by name.
    pub async fn list(&self) -> Vec<DeploymentStatus> {
        let names: Vec<String> = self.states.lock().await.keys().cloned().collect();
        let mut out = Vec::new();
        for name in names {
            if let Ok(s) = self.status(&name).await {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Follows registry aliases: when an alias a route follows moves, the new version is loaded
    /// and warmed, then swapped in.
    pub fn follow_aliases(self: &Arc<Self>) {
        let me = self.clone();
        let mut events = self.store.subscribe_registry_events();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                if event.kind != RegistryEventKind::AliasSet {
                    continue;
                }
                let Some(alias) = event.alias.clone() else {
                    continue;
                };
                me.alias_moved(&event.model_name, &alias).await;
            }
        });
    }

    async fn alias_moved(&self, model: &str, alias: &str) {
        let follows = |r: &RouteSpec| {
            r.model == model
                && r.version.is_none()
                && r.alias.as_deref().unwrap_or("champion") == alias
        };
        let mut states = self.states.lock().await;
        let names: Vec<String> = states.keys().cloned().collect();
        for name in names {
            let Some(current) = self.engine.get(&name) else {
                continue;
            };
            if !current
                .spec
                .routes
                .iter()
                .chain(&current.spec.shadow)
                .any(follows)
            {
                continue;
            }
            let spec = current.spec.clone();
            let note = format!("alias {model}@{alias} moved: following it");
            if let Err(e) = self.switch(&mut states, spec, note, false).await {
                tracing::error!(deployment = %name, error = %e, "cannot follow the alias");
            }
        }
    }
}
