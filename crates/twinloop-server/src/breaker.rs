//! A circuit breaker in front of the metadata store. While PostgreSQL is down, a request would
//! wait for a connection until the store's wait budget (5 s by default) before its 503; once the
//! breaker has seen the outage, requests that need the store are answered 503 at once.
//!
//! Closed, it lets everything through. A 503 from behind it (the store unreachable, or merely
//! busy past its wait budget) makes it probe the database on a connection of its own
//! ([`HealthStore::probe`]), at most once a second: a failed probe opens it. Open, it refuses
//! for [`OPEN_FOR`]; then the next request probes (half-open, the others still refused), and the
//! first probe that succeeds closes it and lets that request through. A busy pool is not an
//! outage: the probe does not queue behind it, so overload is shed by the store's wait budget
//! and the concurrency limits, never by the breaker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tokio::time::Instant;
use twinloop_meta::StoreHandle;

/// How long an open breaker refuses before it probes again: short, as the database may be back
/// any moment (a restart takes seconds).
const OPEN_FOR: Duration = Duration::from_secs(1);

/// The least time between two probes of a closed breaker, so that a burst of 503s (an
/// overloaded store sheds many) costs one probe.
const PROBE_SPACING: Duration = Duration::from_secs(1);

/// Asks whether the database answers.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed {
        probing: bool,
        probed_at: Option<Instant>,
    },
    Open {
        until: Instant,
    },
    HalfOpen,
}

/// What the breaker does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Pass,
    /// Pass if the probe succeeds (half-open).
    Probe,
    Refuse,
}

pub struct Breaker {
    state: Mutex<Phase>,
    probe: Probe,
}

impl Breaker {
    /// A breaker whose probe is the store's.
    pub fn for_store(store: StoreHandle) -> Arc<Breaker> {
        Breaker::new(Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { store.probe().await.is_ok() })
        }))
    }

    fn new(probe: Probe) -> Arc<Breaker> {
        Arc::new(Breaker {
            state: Mutex::new(Phase::Closed {
                probing: false,
                probed_at: None,
            }),
            probe,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().expect("breaker lock poisoned")
    }

    fn admit(&self) -> Admit {
        let mut state = self.state();
        match *state {
            Phase::Closed { .. } => Admit::Pass,
            Phase::Open { until } if Instant::now() < until => Admit::Refuse,
            Phase::Open { .. } => {
                *state = Phase::HalfOpen;
                Admit::Probe
            }
            Phase::HalfOpen => Admit::Refuse,
        }
    }

    /// The outcome of a probe, whoever ran it.
    fn probed(&self, answered: bool) {
        let mut state = self.state();
        if answered {
            if !matches!(*state, Phase::Closed { .. }) {
                tracing::info!("the metadata store answers again: breaker closed");
            }
            *state = Phase::Closed {
                probing: false,
                probed_at: Some(Instant::now()),
            };
        } else {
            if matches!(*state, Phase::Closed { .. }) {
                tracing::warn!(
                    "the metadata store cannot be reached: requests that need it are answered \
                     503 at once until it answers a probe"
                );
            }
            *state = Phase::Open {
                until: Instant::now() + OPEN_FOR,
            };
        }
    }

    /// A request behind the breaker was answered 503: probe, unless a probe runs or ran lately.
    fn suspect(self: &Arc<Self>) {
        {
            let mut state = self.state();
            let Phase::Closed { probing, probed_at } = *state else {
                return;
            };
            if probing || probed_at.is_some_and(|at| at.elapsed() < PROBE_SPACING) {
                return;
            }
            *state = Phase::Closed {
                probing: true,
                probed_at,
            };
        }
        let breaker = self.clone();
        tokio::spawn(async move {
            let answered = (breaker.probe)().await;
            breaker.probed(answered);
        });
    }
}

/// Whether a path is answered from the metadata store. Health, the UI's assets, inference and
/// the artifact proxy are not, and must not be refused for its outage.
fn needs_store(path: &str) -> bool {
    if path.contains("/mlflow-artifacts/") {
        return false;
    }
    path.starts_with("/api/")
        || path.starts_with("/ajax-api/")
        || matches!(
            path,
            "/graphql" | "/get-artifact" | "/model-versions/get-artifact"
        )
}

/// `app` with the requests that need the store through `breaker`.
pub fn guarded(app: axum::Router, breaker: Arc<Breaker>) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(breaker, guard))
}

async fn guard(State(breaker): State<Arc<Breaker>>, req: Request, next: Next) -> Response {
    if !needs_store(req.uri().path()) {
        return next.run(req).await;
    }
    match breaker.admit() {
        Admit::Refuse => return refused(),
        Admit::Probe => {
            let answered = (breaker.probe)().await;
            breaker.probed(answered);
            if !answered {
                return refused();
            }
        }
        Admit::Pass => {}
    }
    let response = next.run(req).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        breaker.suspect();
    }
    response
}

/// MLflow's shape and code for a store that cannot be reached, written by the one MLflow error
/// writer (which adds `Retry-After` to a 503); the stock client retries 503.
fn refused() -> Response {
    crate::error::ApiError::of_kind(
        twinloop_core::ErrorKind::Unavailable,
        "The metadata store cannot be reached right now; retry",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A breaker over a database that is up while `up` says so, counting probes.
    fn breaker() -> (Arc<Breaker>, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let up = Arc::new(AtomicBool::new(true));
        let probes = Arc::new(AtomicUsize::new(0));
        let (u, p) = (up.clone(), probes.clone());
        let breaker = Breaker::new(Arc::new(move || {
            p.fetch_add(1, Ordering::SeqCst);
            let answered = u.load(Ordering::SeqCst);
            Box::pin(async move { answered })
        }));
        (breaker, up, probes)
    }

    /// Lets a spawned probe run to its end.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_opens_it_a_probe_half_opens_it_and_the_first_success_closes_it() {
        let (breaker, up, probes) = breaker();
        assert_eq!(breaker.admit(), Admit::Pass);

        up.store(false, Ordering::SeqCst);
        breaker.suspect();
        settle().await;
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        assert!(matches!(*breaker.state(), Phase::Open { .. }));
        assert_eq!(breaker.admit(), Admit::Refuse);

        // Still down when the open interval ends: one request probes, the others are refused
        // meanwhile, and the failed probe opens it again.
        tokio::time::advance(OPEN_FOR).await;
        assert_eq!(breaker.admit(), Admit::Probe);
        assert_eq!(breaker.admit(), Admit::Refuse);
        breaker.probed(false);
        assert_eq!(breaker.admit(), Admit::Refuse);
        tokio::time::advance(OPEN_FOR / 2).await;
        assert_eq!(breaker.admit(), Admit::Refuse);

        // Back: the next probe closes it.
        up.store(true, Ordering::SeqCst);
        tokio::time::advance(OPEN_FOR / 2).await;
        assert_eq!(breaker.admit(), Admit::Probe);
        breaker.probed(true);
        assert_eq!(breaker.admit(), Admit::Pass);
        assert_eq!(breaker.admit(), Admit::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_store_that_answers_its_probe_stays_closed_and_is_probed_once_a_second() {
        let (breaker, _up, probes) = breaker();
        for _ in 0..100 {
            breaker.suspect();
        }
        settle().await;
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        assert_eq!(breaker.admit(), Admit::Pass);

        tokio::time::advance(PROBE_SPACING / 2).await;
        breaker.suspect();
        settle().await;
        assert_eq!(probes.load(Ordering::SeqCst), 1, "probed again too soon");

        tokio::time::advance(PROBE_SPACING / 2).await;
        breaker.suspect();
        settle().await;
        assert_eq!(probes.load(Ordering::SeqCst), 2);
        assert_eq!(breaker.admit(), Admit::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_refuses_store_routes_at_once_and_lets_the_rest_through() {
        use tower::ServiceExt;
        let (breaker, up, _) = breaker();
        up.store(false, Ordering::SeqCst);
        breaker.suspect();
        settle().await;
        let app = guarded(
            axum::Router::new().fallback(|| async { "OK" }),
            breaker.clone(),
        );
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        for path in [
            "/api/2.0/mlflow/runs/get",
            "/ajax-api/2.0/mlflow/experiments/search",
            "/api/twinloop/v1/deployments",
            "/graphql",
        ] {
            let response = app.clone().oneshot(get(path)).await.unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
            let body = axum::body::to_bytes(response.into_body(), 1 << 10)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error_code"], "TEMPORARILY_UNAVAILABLE");
        }
        for path in [
            "/health",
            "/v2/models/m/infer",
            "/api/2.0/mlflow-artifacts/artifacts/a.txt",
            "/static/app.css",
        ] {
            let response = app.clone().oneshot(get(path)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }

        // Back, and the open interval over: the first request probes and is let through.
        up.store(true, Ordering::SeqCst);
        tokio::time::advance(OPEN_FOR).await;
        let response = app
            .clone()
            .oneshot(get("/api/2.0/mlflow/runs/get"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
