//! The built-ins that change the registry and the deployments, run by the engine on a real
//! SQLite store, a local artifact store and a deployment manager serving ONNX fixtures:
//! `model.register@1` (idempotent on the model digest), `deploy.set-alias@1`,
//! `deploy.canary@1` (first deployment, promotion onto `@champion` with one swap per step, a
//! rollback that rejects the run) and `notify.webhook@1`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use twinloop_artifacts::ArtifactStore;
use twinloop_core::webhook::{NoAnswer, SIGNATURE_HEADER, WebhookTransport, signature};
use twinloop_meta::{RegistryQuery, SqlStore, StoreHandle, StoreUri};
use twinloop_pipelines::exec::RunReport;
use twinloop_pipelines::services::Services;
use twinloop_pipelines::state::RunStatus;
use twinloop_pipelines::state::StepState::{Failed, Succeeded};
use twinloop_serving::deploy::{CanaryStatus, DeploymentManager, DeploymentStatus, StoreRegistry};
use twinloop_serving::engine::Engine;
use twinloop_serving::infer::InferRequest;
use twinloop_serving::spec::{DeploymentSpec, RouteSpec};

use crate::support::Repo;

/// The serving crate's ONNX fixtures: `logreg` and `logreg_zipmap` take the same input,
/// `pipeline` takes others.
fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../twinloop-serving/tests/models")
        .join(name)
        .join("model.onnx");
    std::fs::read(path).unwrap()
}

/// A store, an artifact store and, when asked, a deployment manager following aliases, as
/// `twinloop server` wires them.
struct World {
    store: StoreHandle,
    artifacts: ArtifactStore,
    engine: Arc<Engine>,
    deployments: Arc<DeploymentManager>,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let uri = StoreUri::Sqlite(dir.path().join("store.db"));
        let store: StoreHandle = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
        let artifacts =
            ArtifactStore::open(dir.path().join("artifacts").to_str().unwrap()).unwrap();
        let engine = Arc::new(Engine::default());
        let registry = StoreRegistry {
            store: store.clone(),
            artifacts: artifacts.clone(),
            locations: None,
        };
        let deployments =
            DeploymentManager::new(engine.clone(), store.clone(), Arc::new(registry), 1);
        deployments.follow_aliases();
        deployments.control(None);
        World {
            store,
            artifacts,
            engine,
            deployments,
            dir,
        }
    }

    fn services(&self, serving: bool) -> Services {
        Services {
            store: self.store.clone(),
            artifacts: self.artifacts.clone(),
            deployments: serving.then(|| self.deployments.clone()),
            tracking_uri: None,
            webhooks: None,
        }
    }

    async fn run(&self, repo: &Repo, yaml: &str, services: Services) -> RunReport {
        let pipeline = repo.pipeline(yaml);
        repo.run_with(&pipeline, |o| o.services = Some(services))
            .await
    }

    async fn alias(&self, model: &str, alias: &str) -> i64 {
        self.store
            .get_model_version_by_alias(model, alias)
            .await
            .unwrap()
            .version
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("store.db")
    }

    async fn status(&self, name: &str) -> DeploymentStatus {
        self.deployments.status(name).await.unwrap()
    }
}

fn value(report: &RunReport, step: &str, output: &str) -> Value {
    let step = report.step(step).unwrap();
    assert_eq!(step.state, Succeeded, "{}: {:?}", step.step, step.reason);
    step.outputs[output].value.clone().unwrap()
}

fn stdout(report: &RunReport, step: &str) -> String {
    let attempt = report.step(step).unwrap().attempts.last().unwrap();
    std::fs::read_to_string(&attempt.stdout).unwrap()
}

fn notes(status: &DeploymentStatus) -> Vec<String> {
    status
        .state
        .events
        .iter()
        .map(|e| e.message.clone())
        .collect()
}

const REGISTER: &str = r"
pipeline: register
steps:
  register:
    uses: model.register@1
    with:
      name: fraud
      model: models/model.onnx
      alias: challenger
      description: from the pipeline
      tags: {team: risk}
  prod:
    uses: deploy.set-alias@1
    with:
      model: fraud
      alias: prod
      version: ${{ steps.register.outputs.version }}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_reuses_the_version_of_the_same_bytes_and_sets_aliases() {
    let world = World::new().await;
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path().join("models")).unwrap();
    std::fs::write(repo.path().join("models/model.onnx"), fixture("logreg")).unwrap();

    let first = world.run(&repo, REGISTER, world.services(false)).await;
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(value(&first, "register", "version"), json!("1"));
    assert_eq!(value(&first, "register", "name"), json!("fraud"));
    assert_eq!(value(&first, "prod", "version"), json!("1"));
    let second = world.run(&repo, REGISTER, world.services(false)).await;
    assert_eq!(value(&second, "register", "version"), json!("1"));
    assert!(
        stdout(&second, "register").contains("reused version 1"),
        "{}",
        stdout(&second, "register")
    );

    std::fs::write(repo.path().join("models/model.onnx"), fixture("pipeline")).unwrap();
    let third = world.run(&repo, REGISTER, world.services(false)).await;
    assert_eq!(value(&third, "register", "version"), json!("2"));
    assert_eq!(world.alias("fraud", "challenger").await, 2);
    assert_eq!(world.alias("fraud", "prod").await, 2);

    let versions = world
        .store
        .search_model_versions(&RegistryQuery {
            filter: Some("name = 'fraud'".into()),
            order_by: vec!["version_number ASC".into()],
            max_results: 10,
            page_token: None,
        })
        .await
        .unwrap()
        .items;
    assert_eq!(versions.len(), 2);
    let v1 = &versions[0];
    let tag = |key: &str| {
        v1.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone())
            .unwrap_or_default()
    };
    let digest = {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(fixture("logreg"));
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(tag("twinloop.model_digest"), digest);
    assert_eq!(tag("twinloop.pipeline"), "register");
    assert_eq!(tag("twinloop.pipeline_run"), first.run_id);
    assert_eq!(tag("source"), "pipeline");
    assert_eq!(tag("team"), "risk");
    assert_eq!(v1.description, "from the pipeline");
    assert_eq!(
        v1.source,
        format!(
            "mlflow-artifacts:/pipelines/{}/register/model",
            first.run_id
        )
    );
}

const SHIP: &str = r"
pipeline: ship
steps:
  register:
    uses: model.register@1
    with: {name: fraud, model: models/model.onnx}
  canary:
    uses: deploy.canary@1
    with:
      deployment: fraud
      model: fraud
      candidate: ${{ steps.register.outputs.version }}
      steps: [50, 100]
      interval: 200ms
      max_error_rate: 0.0
      on_promote: {alias: champion}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_promotes_onto_champion_with_one_swap_per_step() {
    let world = World::new().await;
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path().join("models")).unwrap();
    std::fs::write(repo.path().join("models/model.onnx"), fixture("logreg")).unwrap();

    let first = world.run(&repo, SHIP, world.services(true)).await;
    assert_eq!(value(&first, "canary", "outcome"), json!("promoted"));
    assert_eq!(value(&first, "canary", "reason"), json!("first deployment"));
    assert_eq!(world.alias("fraud", "champion").await, 1);
    let following = vec![RouteSpec {
        model: "fraud".into(),
        version: None,
        alias: Some("champion".into()),
        weight: 100,
    }];
    assert_eq!(world.status("fraud").await.spec.unwrap().routes, following);

    // A second deployment following another alias: once it has followed a move made after the
    // promotion, the alias events before it have been handled too.
    world
        .store
        .set_alias("fraud", "probe", "1", "test")
        .await
        .unwrap();
    let probe = DeploymentSpec {
        name: "probe".into(),
        routes: vec![RouteSpec {
            model: "fraud".into(),
            version: None,
            alias: Some("probe".into()),
            weight: 100,
        }],
        shadow: None,
        sticky_key: None,
        feature_service: None,
        batching: Default::default(),
    };
    world.deployments.create(probe).await.unwrap();

    std::fs::write(
        repo.path().join("models/model.onnx"),
        fixture("logreg_zipmap"),
    )
    .unwrap();
    let second = world.run(&repo, SHIP, world.services(true)).await;
    assert_eq!(second.status, RunStatus::Succeeded);
    assert_eq!(value(&second, "register", "version"), json!("2"));
    assert_eq!(value(&second, "canary", "outcome"), json!("promoted"));
    assert_eq!(value(&second, "canary", "version"), json!("2"));
    let promoted = world.status("fraud").await;
    let served = world.engine.get("fraud").unwrap();

    world
        .store
        .set_alias("fraud", "probe", "2", "test")
        .await
        .unwrap();
    for _ in 0..500 {
        if world.status("probe").await.state.serving[0].version == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(world.status("probe").await.state.serving[0].version, "2");

    assert_eq!(world.alias("fraud", "champion").await, 2);
    let now = world.status("fraud").await;
    assert_eq!(now.spec.as_ref().unwrap().routes, following);
    assert_eq!(now.state.serving[0].version, "2");
    assert_eq!(
        notes(&now),
        [
            "created",
            "canary models:/fraud/2: 50%",
            "canary models:/fraud/2: 100%",
            "canary promoted; fraud@champion moved to version 2; following it",
        ],
        "one swap per canary step and none when the promotion's alias event arrives"
    );
    assert_eq!(notes(&now), notes(&promoted));
    assert!(Arc::ptr_eq(&world.engine.get("fraud").unwrap(), &served));
    let log = stdout(&second, "canary");
    assert!(
        log.contains("step 50%") && log.contains("step 100%"),
        "{log}"
    );
}

/// A rollback of a promotion onto `champion` moves the alias back and stores the deployment in
/// one transaction: when the deployment cannot be stored, the alias stays where the promotion
/// put it and the deployment keeps serving the promoted version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_promotion_moves_the_alias_back_with_the_deployment_or_not_at_all() {
    let world = World::new().await;
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path().join("models")).unwrap();
    for model in ["logreg", "logreg_zipmap"] {
        std::fs::write(repo.path().join("models/model.onnx"), fixture(model)).unwrap();
        let report = world.run(&repo, SHIP, world.services(true)).await;
        assert_eq!(value(&report, "canary", "outcome"), json!("promoted"));
    }
    assert_eq!(world.alias("fraud", "champion").await, 2);

    let db = rusqlite::Connection::open(world.db()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_insert BEFORE INSERT ON deployments \
           BEGIN SELECT RAISE(ABORT, 'refused'); END; \
         CREATE TRIGGER refuse_update BEFORE UPDATE ON deployments \
           BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let refused = world.deployments.rollback("fraud").await.unwrap_err();
    assert!(
        refused.to_string().contains("back to version 1"),
        "{refused}"
    );
    assert_eq!(world.alias("fraud", "champion").await, 2);
    let status = world.status("fraud").await;
    assert_eq!(status.state.serving[0].version, "2");
    assert_eq!(
        status.state.canary.as_ref().unwrap().status,
        CanaryStatus::Promoted
    );

    db.execute_batch("DROP TRIGGER refuse_insert; DROP TRIGGER refuse_update;")
        .unwrap();
    let status = world.deployments.rollback("fraud").await.unwrap();
    assert_eq!(world.alias("fraud", "champion").await, 1);
    assert_eq!(status.state.serving[0].version, "1");
    assert_eq!(status.state.serving[0].alias.as_deref(), Some("champion"));
    assert_eq!(
        status.state.canary.as_ref().unwrap().status,
        CanaryStatus::RolledBack
    );
    assert_eq!(notes(&status).last().unwrap(), "rolled back");
    let stored = world.store.deployments().await.unwrap();
    assert_eq!(stored.len(), 1);
    let state: Value = serde_json::from_str(&stored[0].state).unwrap();
    assert_eq!(state["canary"]["status"], "rolled_back");
    assert_eq!(state["serving"][0]["version"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_canary_rejects_the_run_and_tags_the_version() {
    let world = World::new().await;
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path().join("models")).unwrap();
    std::fs::write(repo.path().join("models/model.onnx"), fixture("logreg")).unwrap();
    let first = world.run(&repo, SHIP, world.services(true)).await;
    assert_eq!(value(&first, "canary", "reason"), json!("first deployment"));

    // Requests without inputs fail on any version, so the candidate's first step fails the
    // zero-error gate whichever requests it is given.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let engine = world.engine.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = engine.infer("fraud", None, InferRequest::default()).await;
                tokio::task::yield_now().await;
            }
        })
    };
    std::fs::write(repo.path().join("models/model.onnx"), fixture("pipeline")).unwrap();
    let second = world.run(&repo, SHIP, world.services(true)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    assert_eq!(second.status, RunStatus::Rejected);
    let rejected = second.rejected.clone().unwrap_or_default();
    assert!(rejected.contains("the canary rolled back"), "{rejected}");
    assert_eq!(value(&second, "canary", "outcome"), json!("rolled_back"));
    let reason = value(&second, "canary", "reason");
    assert!(reason.as_str().unwrap().contains("error rate"), "{reason}");
    let v2 = world.store.get_model_version("fraud", "2").await.unwrap();
    let tag = v2.tags.iter().find(|t| t.key == "twinloop.canary").unwrap();
    assert_eq!(
        tag.value,
        format!("rolled_back:{}", reason.as_str().unwrap())
    );
    assert_eq!(world.alias("fraud", "champion").await, 1);
    let status = world.status("fraud").await;
    assert_eq!(status.state.serving[0].version, "1");
    assert_eq!(status.state.serving.len(), 1);
}

#[tokio::test]
async fn a_canary_without_serving_in_the_process_fails_and_says_why() {
    let world = World::new().await;
    let repo = Repo::new();
    let yaml = r"
pipeline: ship
steps:
  canary:
    uses: deploy.canary@1
    with: {deployment: fraud, candidate: 1}
";
    let report = world.run(&repo, yaml, world.services(false)).await;
    let step = report.step("canary").unwrap();
    assert_eq!(step.state, Failed);
    let reason = step.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("needs serving in this process"), "{reason}");
}

/// A POST's URL, headers and body.
type Sent = (String, Vec<(String, String)>, Vec<u8>);

/// Answers 200 and keeps what it was sent.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Sent>>,
}

#[async_trait]
impl WebhookTransport for Recorder {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, NoAnswer> {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.sent
            .lock()
            .unwrap()
            .push((url.to_owned(), headers, body.to_vec()));
        Ok(200)
    }
}

#[tokio::test]
async fn a_webhook_is_signed_and_its_status_is_the_output() {
    let world = World::new().await;
    let repo = Repo::new();
    let yaml = r#"
pipeline: notify
steps:
  work:
    run: "true"
finally:
  notify:
    uses: notify.webhook@1
    with:
      url: https://hooks.example/ml
      secret: s3cr3t-key
      body: {run: "${{ run.id }}", status: "${{ run.status }}"}
"#;
    let recorder = Arc::new(Recorder::default());
    let mut services = world.services(false);
    services.webhooks = Some(recorder.clone());
    let report = world.run(&repo, yaml, services).await;
    assert_eq!(value(&report, "notify", "status"), json!(200));
    let sent = recorder.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let (url, headers, body) = &sent[0];
    assert_eq!(url, "https://hooks.example/ml");
    let body_json: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body_json["run"], json!(report.run_id));
    let signed = headers
        .iter()
        .find(|(k, _)| k == SIGNATURE_HEADER)
        .map(|(_, v)| v.clone());
    assert_eq!(signed, Some(signature("s3cr3t-key", body)));
}
