//! Changes to deployments. Each change loads and warms whatever new versions it needs first and
//! only then swaps the deployment in the engine, so a failed change leaves the old one serving
//! and a successful one fails no request.
//!
//! Among replicas on one database, as a KServe controller is one leader, the holder of the
//! `deployments` lease makes the decisions nobody asked for — a canary's next step, its
//! promotion or rollback — and stores each with the deployment; every replica serves what the
//! store says ([`DeploymentManager::control`]), and follows aliases itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use tokio::sync::Mutex;
use twinloop_core::deployments::DeploymentRecord;
use twinloop_core::registry::RegistryEventKind;
use twinloop_core::time::now_ms;
use twinloop_meta::StoreHandle;
use twinloop_meta::lease::LeaseKeeper;

use super::canary::{at_step, judge, pinned_to, promoted};
use super::state::{
    CanaryState, CanaryStatus, DeploymentState, DeploymentStatus, MovedAlias, ServingRoute,
};
use crate::engine::{Endpoint, Engine, ServeError};
use crate::served::{ServedModel, Traffic};
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
    /// The lease under which this replica decides (see [`DeploymentManager::control`]); unset:
    /// it is the only one, and always decides.
    lease: OnceLock<Arc<LeaseKeeper>>,
    /// Stored specs this replica could not load, so that it does not retry them every second.
    unloadable: StdMutex<HashMap<String, DeploymentSpec>>,
}

/// The lease a server's deployment decisions are made under.
pub const LEASE: &str = "deployments";

/// How often canaries are looked at; a step lasts its interval rounded up to this.
const CONTROL_EVERY: Duration = Duration::from_millis(100);
/// Every this many looks, a replica under a lease rereads the stored deployments.
const SYNC_EVERY: u64 = 10;

/// Who the registry records as moving an alias on a canary's promotion.
const PROMOTION_ACTOR: &str = "twinloop-canary";

/// The running canaries whose current step has lasted its interval.
fn due_canaries(states: &HashMap<String, DeploymentState>) -> Vec<(String, CanaryState)> {
    let now = now_ms();
    states
        .iter()
        .filter_map(|(name, s)| Some((name.clone(), s.running_canary()?.clone())))
        .filter(|(_, c)| now - c.step_started_ms >= (c.spec.interval_s * 1000.0) as i64)
        .collect()
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
            lease: OnceLock::new(),
            unloadable: StdMutex::new(HashMap::new()),
        })
    }

    /// Whether this replica makes the decisions now: it holds the lease, or there is none.
    fn decides(&self) -> bool {
        self.lease.get().is_none_or(|l| l.token().is_some())
    }

    /// Steps running canaries, whatever replica started them, while this one decides; under a
    /// `lease`, also rereads the stored deployments every second and serves what they say (a
    /// deployment created, changed or deleted through another replica, a canary's step taken
    /// there). Call once.
    pub fn control(self: &Arc<Self>, lease: Option<Arc<LeaseKeeper>>) {
        let shared = lease.is_some();
        if let Some(lease) = lease {
            let _ = self.lease.set(lease);
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            for tick in 1u64.. {
                tokio::time::sleep(CONTROL_EVERY).await;
                let Some(me) = me.upgrade() else { return };
                let mut states = me.states.lock().await;
                if tick.is_multiple_of(SYNC_EVERY) {
                    me.flush_canaries(&states).await;
                }
                // Before `restore` has loaded what is stored, there is nothing to compare.
                if shared && tick.is_multiple_of(SYNC_EVERY) && me.engine.is_ready() {
                    me.sync(&mut states).await;
                }
                if me.decides() {
                    me.step_canaries(&mut states, shared).await;
                }
            }
        });
    }

    /// Stops deciding and gives the `deployments` lease up, so that another replica takes the
    /// decisions over at once instead of after the lease's expiry: for a graceful stop.
    pub async fn release(&self) {
        if let Some(lease) = self.lease.get() {
            // Held across the release, so that no step is half taken when the lease goes.
            let _states = self.states.lock().await;
            lease.release().await;
        }
    }

    /// Adds what each running canary's candidate answered here since the last time to its
    /// traffic in the store, where the replica that decides reads every replica's.
    async fn flush_canaries(&self, states: &HashMap<String, DeploymentState>) {
        for (name, state) in states {
            if state.running_canary().is_some() {
                self.flush_candidate(name).await;
            }
        }
    }

    /// Hands this replica's traffic of the candidate (the last route) of `name` to the store,
    /// and answers the candidate.
    async fn flush_candidate(&self, name: &str) -> Option<Arc<ServedModel>> {
        let candidate = self.engine.get(name)?.routes.last().cloned()?;
        let traffic = candidate.window.take();
        if traffic == Traffic::default() {
            return Some(candidate);
        }
        let (model, version) = (&candidate.name, &candidate.version);
        let added = self
            .store
            .add_canary_traffic(name, model, version, &traffic.to_rows())
            .await;
        if let Err(e) = added {
            tracing::warn!(deployment = %name, error = %e.message, "cannot store the canary's traffic");
            candidate.window.put_back(&traffic);
        }
        Some(candidate)
    }

    /// The candidate's traffic in `name` summed over every replica, this one's included.
    async fn candidate_traffic(&self, name: &str) -> Option<Traffic> {
        let candidate = self.flush_candidate(name).await?;
        let (model, version) = (&candidate.name, &candidate.version);
        match self.store.canary_traffic(name, model, version).await {
            Ok(rows) => Some(Traffic::from_rows(&rows)),
            Err(e) => {
                tracing::warn!(deployment = %name, error = %e.message, "cannot read the canary's traffic");
                None
            }
        }
    }

    /// Serves what the store says: deployments created elsewhere are loaded, changed ones
    /// switched to (loaded and warmed first), deleted ones dropped; the stored state (the
    /// decisions, the notes) replaces this replica's, except for what it serves itself.
    async fn sync(&self, states: &mut HashMap<String, DeploymentState>) {
        let records = match self.store.deployments().await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot read the stored deployments");
                return;
            }
        };
        let stored: HashMap<String, (DeploymentSpec, DeploymentState)> = records
            .iter()
            .filter_map(|r| {
                let spec = serde_json::from_str::<DeploymentSpec>(&r.spec).ok()?;
                let state = serde_json::from_str::<DeploymentState>(&r.state).ok()?;
                Some((r.name.clone(), (spec, state)))
            })
            .collect();
        let gone: Vec<String> = states
            .keys()
            .filter(|name| !records.iter().any(|r| &&r.name == name))
            .cloned()
            .collect();
        for name in gone {
            states.remove(&name);
            self.engine.remove(&name);
        }
        for (name, (spec, mut state)) in stored {
            let current = self.engine.get(&name);
            if current.as_ref().is_some_and(|c| c.spec == spec) {
                if let Some(mine) = states.get(&name) {
                    state.serving.clone_from(&mine.serving);
                    state.shadow.clone_from(&mine.shadow);
                }
                states.insert(name, state);
                continue;
            }
            let failed_before = self
                .unloadable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                == Some(&spec);
            if failed_before {
                states.entry(name).or_insert(state);
                continue;
            }
            match self.build(&spec, current.as_deref()).await {
                Ok(endpoint) => {
                    self.install(&mut state, endpoint);
                    states.insert(name, state);
                }
                Err(e) => {
                    tracing::error!(deployment = %name, error = %e, "cannot serve the stored deployment");
                    self.unloadable
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), spec);
                    states.entry(name).or_insert(state);
                }
            }
        }
    }

    /// Judges each running canary whose step has lasted its interval, and takes the next step,
    /// promotes or rolls back. Each decision is stored with the deployment in one write, so a
    /// replica that takes over continues from the last one stored.
    async fn step_canaries(&self, states: &mut HashMap<String, DeploymentState>, shared: bool) {
        if due_canaries(states).is_empty() {
            return;
        }
        // A canary promoted, rolled back or replaced through another replica since the last
        // reading must not be stepped from this replica's older view.
        if shared {
            self.sync(states).await;
        }
        for (name, canary) in due_canaries(states) {
            // The lease may have been lost during the pass: a replica that no longer decides
            // must not act on what it read.
            if !self.decides() {
                return;
            }
            // Judged on every replica's traffic; unreadable now, it is tried again next time.
            let Some(traffic) = self.candidate_traffic(&name).await else {
                continue;
            };
            let seen = traffic.since(&canary.traffic_before);
            let step = judge(&canary.spec, canary.percent, &seen.stats());
            tracing::info!(deployment = %name, percent = step.percent, requests = step.requests, errors = step.errors, p99_ms = ?step.p99_ms, passed = step.passed, "canary step");
            let failed = step.reason.clone();
            if let Some(state) = states.get_mut(&name) {
                state.canary_judged(step);
            }
            let next = canary.spec.steps.get(canary.steps.len() + 1).copied();
            let baseline = &canary.baseline;
            match (failed, next) {
                (Some(reason), _) => {
                    self.end_canary_locked(
                        states,
                        &name,
                        baseline,
                        CanaryStatus::RolledBack,
                        Some(reason),
                    )
                    .await;
                }
                (None, None) => {
                    self.end_canary_locked(states, &name, baseline, CanaryStatus::Promoted, None)
                        .await;
                }
                (None, Some(percent)) => {
                    if let Some(state) = states.get_mut(&name) {
                        state.canary_moved(percent, now_ms(), traffic);
                    }
                    let spec = at_step(baseline, &canary.spec.candidate, percent);
                    let note = format!("canary {}: {percent}%", canary.spec.candidate.uri());
                    if let Err(e) = self.switch(states, spec, note, false, true).await {
                        self.end_canary_locked(
                            states,
                            &name,
                            baseline,
                            CanaryStatus::RolledBack,
                            Some(e.to_string()),
                        )
                        .await;
                    }
                }
            }
        }
    }

    /// Starts every stored deployment as stored (a running canary goes on from its step), then
    /// marks the engine ready. A deployment that cannot start is kept with status `failed`.
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
                    // Other replicas may serve it: only the one that decides says it failed.
                    if self.decides() {
                        self.persist(&spec, &state).await;
                    }
                }
            }
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
        Self::describe(state, &endpoint);
        self.engine.put(endpoint);
    }

    /// Records in `state` what `endpoint` serves.
    fn describe(state: &mut DeploymentState, endpoint: &Endpoint) {
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
    }

    /// The deployment as stored.
    fn record(
        spec: &DeploymentSpec,
        state: &DeploymentState,
    ) -> Result<DeploymentRecord, serde_json::Error> {
        Ok(DeploymentRecord {
            name: spec.name.clone(),
            spec: serde_json::to_string(spec)?,
            state: serde_json::to_string(state)?,
            update_time: 0,
        })
    }

    async fn persist(&self, spec: &DeploymentSpec, state: &DeploymentState) {
        let record = match Self::record(spec, state) {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(deployment = %spec.name, error = %e, "cannot encode the deployment");
                return;
            }
        };
        if let Err(e) = self.store.put_deployment(&record).await {
            tracing::error!(deployment = %spec.name, error = %e.message, "cannot save the deployment");
        }
    }

    /// Moves `name` to `spec` (the caller holds the states lock), and stores the result when
    /// `save`.
    async fn switch(
        &self,
        states: &mut HashMap<String, DeploymentState>,
        spec: DeploymentSpec,
        note: String,
        remember: bool,
        save: bool,
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
                if save {
                    self.persist(&current.map(|c| c.spec.clone()).unwrap_or(spec), &state)
                        .await;
                }
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
        if save {
            self.persist(&spec, &state).await;
        }
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
        let mut states = self.states.lock().await;
        let current = self.engine.get(name).ok_or_else(|| unknown(name))?;
        if let Some(state) = states.get_mut(name) {
            state.canary = None;
        }
        let spec = DeploymentSpec {
            routes,
            ..current.spec.clone()
        };
        self.switch(&mut states, spec, "traffic set".into(), true, true)
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
        // A new canary's traffic starts from nothing, whatever an earlier one left.
        self.store
            .clear_canary_traffic(name)
            .await
            .map_err(ServeError::Internal)?;
        let baseline = current.spec.clone();
        let first = canary.steps[0];
        let spec = at_step(&baseline, &canary.candidate, first);
        // Started in the state the switch stores, so the step and the canary are one write.
        let before = states.get(name).and_then(|s| s.canary.clone());
        if let Some(state) = states.get_mut(name) {
            state.start_canary(canary.clone(), baseline.clone(), now_ms());
        }
        let note = format!("canary {}: {first}%", canary.candidate.uri());
        if let Err(e) = self.switch(&mut states, spec, note, true, true).await {
            if let Some(state) = states.get_mut(name) {
                state.canary = before;
                let snapshot = state.clone();
                self.persist(&baseline, &snapshot).await;
            }
            return Err(e);
        }
        if let Some(candidate) = self.engine.get(name).and_then(|e| e.routes.last().cloned()) {
            candidate.window.take();
        }
        drop(states);
        self.status(name).await
    }

    /// Finishes a canary: promoted gives the candidate all traffic, rolled back restores the
    /// baseline. The states lock is held throughout, so an alias the promotion moves is heard
    /// by `alias_moved` only once the deployment already follows it.
    async fn end_canary(
        &self,
        name: &str,
        baseline: &DeploymentSpec,
        outcome: CanaryStatus,
        reason: Option<String>,
    ) {
        let mut states = self.states.lock().await;
        self.end_canary_locked(&mut states, name, baseline, outcome, reason)
            .await;
    }

    async fn end_canary_locked(
        &self,
        states: &mut HashMap<String, DeploymentState>,
        name: &str,
        baseline: &DeploymentSpec,
        outcome: CanaryStatus,
        reason: Option<String>,
    ) {
        let Some(canary) = states.get(name).and_then(|s| s.canary.clone()) else {
            return;
        };
        let mut note = match &reason {
            Some(r) => format!("canary {}: {r}", outcome.as_str()),
            None => format!("canary {}", outcome.as_str()),
        };
        let candidate = &canary.spec.candidate;
        let spec = match outcome {
            CanaryStatus::Promoted => {
                if let Some(alias) = &canary.spec.on_promote_alias {
                    let onto = self
                        .promote_onto_alias(states, name, &canary, alias, &note, reason.clone())
                        .await;
                    let Err(e) = onto else { return };
                    // The promotion the gates earned still happens, and the alias still names
                    // what it named.
                    tracing::error!(deployment = name, error = %e, "cannot move the promoted alias");
                    note = format!(
                        "{note}; cannot move {}@{alias} to the candidate ({e}): serving {} pinned",
                        candidate.model,
                        candidate.uri()
                    );
                } else {
                    note = format!("{note}; serving {}", candidate.uri());
                }
                promoted(baseline, candidate)
            }
            _ => baseline.clone(),
        };
        if let Err(e) = self.switch(states, spec.clone(), note, false, true).await {
            tracing::error!(deployment = name, error = %e, "cannot finish the canary");
        }
        if let Some(state) = states.get_mut(name) {
            state.finish_canary(outcome, reason);
            let snapshot = state.clone();
            self.persist(&spec, &snapshot).await;
        }
    }

    /// Promotes the canary of `name` by pointing `alias` at the candidate's version, with the
    /// route following the alias. The alias move, its registry event and the deployment's
    /// stored promotion are one transaction, so no crash leaves the alias moved under a
    /// deployment still mid-canary; the engine swaps once it has committed, and the alias
    /// event (announced after the commit) finds the deployment already following it. The
    /// candidate is already loaded under that version: no reload, one swap. On an error
    /// nothing has changed.
    async fn promote_onto_alias(
        &self,
        states: &mut HashMap<String, DeploymentState>,
        name: &str,
        canary: &CanaryState,
        alias: &str,
        note: &str,
        reason: Option<String>,
    ) -> Result<(), String> {
        let (baseline, candidate) = (&canary.baseline, &canary.spec.candidate);
        let version = self.candidate_version(name, candidate).await?;
        let following = promoted(
            baseline,
            &RouteSpec {
                version: None,
                alias: Some(alias.to_string()),
                ..candidate.clone()
            },
        );
        following.validate().map_err(|e| e.to_string())?;
        // Built pinned to that version, as the alias names the old one until the commit.
        let pinned = promoted(
            baseline,
            &RouteSpec {
                version: Some(version.clone()),
                alias: None,
                ..candidate.clone()
            },
        );
        let current = self.engine.get(name);
        let mut endpoint = self
            .build(&pinned, current.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        endpoint.spec = following;
        let from = self
            .store
            .get_model_version_by_alias(&candidate.model, alias)
            .await
            .ok()
            .map(|v| v.version.to_string());
        let mut state = states
            .get(name)
            .cloned()
            .ok_or_else(|| unknown(name).to_string())?;
        Self::describe(&mut state, &endpoint);
        state.status = "ready".into();
        state.error = None;
        state.note(format!(
            "{note}; {}@{alias} moved to version {version}; following it",
            candidate.model
        ));
        state.finish_canary(CanaryStatus::Promoted, reason);
        if let Some(c) = state.canary.as_mut() {
            c.moved_alias = Some(MovedAlias {
                model: candidate.model.clone(),
                alias: alias.to_string(),
                from,
                to: version.clone(),
            });
        }
        let record = Self::record(&endpoint.spec, &state).map_err(|e| e.to_string())?;
        self.store
            .put_deployment_moving_alias(
                &record,
                &candidate.model,
                alias,
                &version,
                PROMOTION_ACTOR,
            )
            .await
            .map_err(|e| e.message)?;
        self.engine.put(endpoint);
        states.insert(name.to_string(), state);
        Ok(())
    }

    /// The version the canary's candidate route serves: the one loaded now, or else the one
    /// its URI resolves to.
    async fn candidate_version(&self, name: &str, candidate: &RouteSpec) -> Result<String, String> {
        let same = |r: &RouteSpec| {
            r.model == candidate.model
                && r.version == candidate.version
                && r.alias == candidate.alias
        };
        if let Some(current) = self.engine.get(name)
            && let Some(i) = current.spec.routes.iter().rposition(same)
            && let Some(model) = current.routes.get(i)
        {
            return Ok(model.version.clone());
        }
        let uri = ModelUri::parse(&candidate.uri()).map_err(|e| e.0)?;
        self.registry
            .resolve(&uri)
            .await
            .map(|r| r.version)
            .map_err(|e| e.0)
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
        let state = states.get(name).ok_or_else(|| unknown(name))?;
        let previous = state.history.last().cloned().ok_or_else(|| {
            invalid(format!(
                "deployment {name:?} has no earlier state to roll back to"
            ))
        })?;
        previous.validate().map_err(|e| invalid(e.to_string()))?;
        // Undoing a promotion that moved an alias moves it back in the same transaction as
        // the deployment's record, so that no crash leaves the alias back under a deployment
        // still promoted. Until that commit the alias names the promoted version, so the
        // routes following it are loaded pinned to the version it goes back to.
        let restore = match state.alias_to_restore(&previous) {
            Some(MovedAlias {
                model,
                alias,
                from: Some(from),
                ..
            }) => Some((model.clone(), alias.clone(), from.clone())),
            _ => None,
        };
        let loadable = match &restore {
            Some((model, alias, from)) => pinned_to(&previous, model, alias, from),
            None => previous.clone(),
        };
        let current = self.engine.get(name);
        let mut endpoint = match self.build(&loadable, current.as_deref()).await {
            Ok(endpoint) => endpoint,
            Err(e) => {
                // A previous spec that no longer loads stays in the history.
                let state = states.get_mut(name).ok_or_else(|| unknown(name))?;
                state.error = Some(e.to_string());
                state.note(format!("change refused, still serving as before: {e}"));
                let state = state.clone();
                if let Some(current) = &current {
                    self.persist(&current.spec, &state).await;
                }
                return Err(e);
            }
        };
        endpoint.spec = previous.clone();
        let mut next = states.get(name).cloned().ok_or_else(|| unknown(name))?;
        Self::describe(&mut next, &endpoint);
        next.status = "ready".into();
        next.error = None;
        next.note("rolled back");
        next.undo();
        let record = Self::record(&previous, &next).map_err(|e| {
            ServeError::Internal(twinloop_core::Error::internal_from(
                "cannot encode the deployment",
                e,
            ))
        })?;
        let stored = match &restore {
            Some((model, alias, from)) => {
                self.store
                    .put_deployment_moving_alias(&record, model, alias, from, PROMOTION_ACTOR)
                    .await
            }
            None => self.store.put_deployment(&record).await,
        };
        stored.map_err(|e| match &restore {
            Some((model, alias, from)) => invalid(format!(
                "cannot move {model}@{alias} back to version {from}: {}",
                e.message
            )),
            None => ServeError::Internal(e),
        })?;
        self.engine.put(endpoint);
        states.insert(name.to_string(), next);
        drop(states);
        self.status(name).await
    }

    pub async fn delete(&self, name: &str) -> Result<(), ServeError> {
        let mut states = self.states.lock().await;
        if states.remove(name).is_none() {
            return Err(unknown(name));
        }
        self.engine.remove(name);
        self.store
            .delete_deployment(name)
            .await
            .map_err(ServeError::Internal)?;
        if let Err(e) = self.store.clear_canary_traffic(name).await {
            tracing::warn!(deployment = %name, error = %e.message, "cannot forget the canary's traffic");
        }
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

    /// Whether every route of `endpoint` that `follows` the moved alias already serves the
    /// version the alias names now, as after a promotion that moved it: then there is nothing
    /// to swap. A route that cannot be resolved is left to `switch`, which reports it.
    async fn serves_aliases_already(
        &self,
        endpoint: &Endpoint,
        follows: &(dyn Fn(&RouteSpec) -> bool + Sync),
    ) -> bool {
        let routes = endpoint.spec.routes.iter().zip(&endpoint.routes);
        let shadow = endpoint.spec.shadow.iter().zip(&endpoint.shadow);
        for (route, served) in routes.chain(shadow).filter(|(r, _)| follows(r)) {
            let Ok(uri) = ModelUri::parse(&route.uri()) else {
                return false;
            };
            match self.registry.resolve(&uri).await {
                Ok(resolved) if resolved.version == served.version => {}
                _ => return false,
            }
        }
        true
    }

    async fn alias_moved(&self, model: &str, alias: &str) {
        let follows = |r: &RouteSpec| r.follows(model, alias);
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
                || self.serves_aliases_already(&current, &follows).await
            {
                continue;
            }
            let spec = current.spec.clone();
            let note = format!("alias {model}@{alias} moved: following it");
            // Every replica follows the alias itself; only the one that decides stores it, so
            // that a replica's older view never overwrites a decision stored meanwhile.
            let save = self.decides();
            if let Err(e) = self.switch(&mut states, spec, note, false, save).await {
                tracing::error!(deployment = %name, error = %e, "cannot follow the alias");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use twinloop_core::registry::NewModelVersion;
    use twinloop_meta::{SqlStore, StoreUri};

    use super::*;
    use crate::deploy::StoreRegistry;

    /// A manager on a fresh SQLite store where model `m` has versions 1 and 2 (the same ONNX
    /// model) and `m@champion` is version 1, with deployment `d` following `m@champion`.
    async fn following_champion() -> (Arc<DeploymentManager>, Arc<Engine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let uri = StoreUri::Sqlite(dir.path().join("t.db"));
        let store: StoreHandle = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
        let artifacts =
            twinloop_artifacts::ArtifactStore::open(dir.path().join("a").to_str().unwrap())
                .unwrap();
        store
            .create_registered_model("m", None, &[], "test")
            .await
            .unwrap();
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/logreg");
        for _ in 0..2 {
            let new = NewModelVersion {
                name: "m".into(),
                source: source.into(),
                ..NewModelVersion::default()
            };
            store.create_model_version(new, "test").await.unwrap();
        }
        store.set_alias("m", "champion", "1", "test").await.unwrap();
        let engine = Arc::new(Engine::default());
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models");
        let registry = StoreRegistry {
            store: store.clone(),
            artifacts,
            locations: Some(
                twinloop_core::location::LocationPolicy::new([models], [""; 0], dir.path())
                    .unwrap(),
            ),
        };
        let manager = DeploymentManager::new(engine.clone(), store, Arc::new(registry), 1);
        manager.control(None);
        let spec = DeploymentSpec {
            name: "d".into(),
            routes: vec![RouteSpec {
                model: "m".into(),
                version: None,
                alias: None,
                weight: 100,
            }],
            shadow: None,
            sticky_key: None,
            feature_service: None,
            batching: Default::default(),
        };
        manager.create(spec).await.unwrap();
        (manager, engine, dir)
    }

    fn notes(status: &DeploymentStatus) -> Vec<String> {
        status
            .state
            .events
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    async fn wait_until_promoted(manager: &DeploymentManager) -> DeploymentStatus {
        for _ in 0..500 {
            let status = manager.status("d").await.unwrap();
            if status.state.running_canary().is_none() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the canary did not end");
    }

    #[tokio::test]
    async fn a_promotion_moves_the_alias_and_follows_it_with_one_swap() {
        let (manager, engine, _dir) = following_champion().await;
        let canary = CanarySpec {
            candidate: RouteSpec {
                model: "m".into(),
                version: Some("2".into()),
                alias: None,
                weight: 0,
            },
            steps: vec![50, 100],
            interval_s: 0.02,
            max_error_rate: None,
            max_p99_ms: None,
            on_promote_alias: Some("champion".into()),
        };
        manager.canary("d", canary).await.unwrap();
        let candidate = engine.get("d").unwrap().routes.last().cloned().unwrap();
        assert_eq!(candidate.version, "2");
        let status = wait_until_promoted(&manager).await;
        assert_eq!(
            status.state.canary.as_ref().map(|c| c.status),
            Some(CanaryStatus::Promoted)
        );
        let champion = manager
            .store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap();
        assert_eq!(champion.version, 2);
        let endpoint = engine.get("d").unwrap();
        assert_eq!(
            endpoint.spec.routes,
            vec![RouteSpec {
                model: "m".into(),
                version: None,
                alias: Some("champion".into()),
                weight: 100,
            }]
        );
        assert!(
            Arc::ptr_eq(&endpoint.routes[0], &candidate),
            "the promoted deployment serves the candidate it canaried, not a reload"
        );
        assert_eq!(
            notes(&status)[1..],
            [
                "canary models:/m/2: 50%",
                "canary models:/m/2: 100%",
                "canary promoted; m@champion moved to version 2; following it",
            ]
        );

        // The alias event the promotion caused finds the deployment already there.
        manager.alias_moved("m", "champion").await;
        assert!(
            Arc::ptr_eq(&engine.get("d").unwrap(), &endpoint),
            "no second swap"
        );
        assert_eq!(notes(&manager.status("d").await.unwrap()), notes(&status));

        // A real move is still followed.
        manager
            .store
            .set_alias("m", "champion", "1", "test")
            .await
            .unwrap();
        manager.alias_moved("m", "champion").await;
        let moved = engine.get("d").unwrap();
        assert_eq!(moved.routes[0].version, "1");
        assert!(
            notes(&manager.status("d").await.unwrap())
                .last()
                .unwrap()
                .contains("alias m@champion moved")
        );
    }

    /// The canary of `following_champion`'s deployment: version 2 in one step, promoted onto
    /// `alias`.
    fn canary_onto(alias: &str) -> CanarySpec {
        CanarySpec {
            candidate: RouteSpec {
                model: "m".into(),
                version: Some("2".into()),
                alias: None,
                weight: 0,
            },
            steps: vec![100],
            interval_s: 0.02,
            max_error_rate: None,
            max_p99_ms: None,
            on_promote_alias: Some(alias.into()),
        }
    }

    /// The deployment `d` as stored.
    async fn stored(manager: &DeploymentManager) -> (DeploymentSpec, DeploymentState) {
        let records = manager.store.deployments().await.unwrap();
        let record = records.iter().find(|r| r.name == "d").unwrap();
        (
            serde_json::from_str(&record.spec).unwrap(),
            serde_json::from_str(&record.state).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_alias_event_of_a_promotion_finds_the_promotion_stored() {
        let (manager, _engine, _dir) = following_champion().await;
        let mut events = manager.store.subscribe_registry_events();
        manager.canary("d", canary_onto("champion")).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (event.kind, event.actor.as_str(), event.after.as_deref()),
            (RegistryEventKind::AliasSet, PROMOTION_ACTOR, Some("2"))
        );
        // Read as soon as the event is heard: the same commit stored the promotion.
        let (spec, state) = stored(&manager).await;
        assert_eq!(spec.routes[0].alias.as_deref(), Some("champion"));
        let canary = state.canary.unwrap();
        assert_eq!(canary.status, CanaryStatus::Promoted);
        let moved = canary.moved_alias.unwrap();
        assert_eq!((moved.from.as_deref(), moved.to.as_str()), (Some("1"), "2"));
        assert_eq!(state.serving[0].version, "2");
    }

    #[tokio::test]
    async fn a_promotion_whose_alias_cannot_move_pins_the_candidate_and_moves_nothing() {
        let (manager, engine, _dir) = following_champion().await;
        let before = manager.store.latest_registry_event_id().await.unwrap();
        // `latest` names the highest version and cannot be set.
        manager.canary("d", canary_onto("latest")).await.unwrap();
        let status = wait_until_promoted(&manager).await;
        assert_eq!(
            manager.store.latest_registry_event_id().await.unwrap(),
            before,
            "no alias event"
        );
        let champion = manager
            .store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap();
        assert_eq!(champion.version, 1);
        let served = engine.get("d").unwrap();
        assert_eq!(served.spec.routes[0].version.as_deref(), Some("2"));
        assert!(
            notes(&status)
                .last()
                .unwrap()
                .contains("cannot move m@latest to the candidate"),
            "{:?}",
            notes(&status)
        );
        let (spec, state) = stored(&manager).await;
        assert_eq!(spec, served.spec);
        let canary = state.canary.unwrap();
        assert_eq!(canary.status, CanaryStatus::Promoted);
        assert!(canary.moved_alias.is_none());
    }

    #[tokio::test]
    async fn rolling_back_a_promotion_moves_the_alias_back() {
        let (manager, engine, _dir) = following_champion().await;
        let canary = CanarySpec {
            candidate: RouteSpec {
                model: "m".into(),
                version: Some("2".into()),
                alias: None,
                weight: 0,
            },
            steps: vec![100],
            interval_s: 0.02,
            max_error_rate: None,
            max_p99_ms: None,
            on_promote_alias: Some("champion".into()),
        };
        manager.canary("d", canary).await.unwrap();
        let promoted = wait_until_promoted(&manager).await;
        let moved = promoted.state.canary.unwrap().moved_alias.unwrap();
        assert_eq!((moved.from.as_deref(), moved.to.as_str()), (Some("1"), "2"));

        let back = manager.rollback("d").await.unwrap();
        let champion = manager
            .store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap();
        assert_eq!(champion.version, 1);
        assert_eq!(engine.get("d").unwrap().routes[0].version, "1");
        assert_eq!(
            back.spec.unwrap().routes[0].alias,
            None,
            "the baseline again"
        );
        assert_eq!(
            back.state.canary.map(|c| c.status),
            Some(CanaryStatus::RolledBack)
        );
    }

    #[tokio::test]
    async fn without_an_alias_to_move_a_promotion_pins_the_candidate() {
        let (manager, engine, _dir) = following_champion().await;
        let candidate = RouteSpec {
            model: "m".into(),
            version: Some("2".into()),
            alias: None,
            weight: 0,
        };
        let canary = CanarySpec {
            candidate: candidate.clone(),
            steps: vec![100],
            interval_s: 0.02,
            max_error_rate: None,
            max_p99_ms: None,
            on_promote_alias: None,
        };
        manager.canary("d", canary).await.unwrap();
        wait_until_promoted(&manager).await;
        let champion = manager
            .store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap();
        assert_eq!(champion.version, 1, "the alias is left alone");
        assert_eq!(
            engine.get("d").unwrap().spec.routes,
            vec![RouteSpec {
                weight: 100,
                ..candidate
            }]
        );
    }
}
