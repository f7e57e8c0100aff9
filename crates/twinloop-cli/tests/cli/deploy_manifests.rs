//! The Kubernetes manifests under `deploy/k8s` start for real: every twinloop container, run with
//! the manifest's own arguments and environment (ConfigMap and Secret values resolved, `$(VAR)`
//! expanded, projected volumes written out), becomes ready on its readinessProbe and answers its
//! livenessProbe. Only what a cluster would provide is replaced: ports by free ones, Service names
//! by 127.0.0.1, bucket names by this run's buckets on the local S3 server (moto), the Secret by
//! values a test operator would put in it (a throwaway PostgreSQL, a redis-server, a token), and
//! KServe's `/mnt/models` by a model directory. A manifest whose flags the binary no longer takes,
//! whose probe path is wrong or whose settings do not fit together fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s")
}

/// Every document of every YAML file in `dir`.
fn documents(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let doc = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !doc.is_null() {
                docs.push(doc);
            }
        }
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

/// What a cluster provides: the Secret's values, and the replacements for names and ports that
/// only exist inside one.
struct Cluster {
    secrets: BTreeMap<String, String>,
    replace: Vec<(String, String)>,
    work: PathBuf,
}

impl Cluster {
    fn map(&self, text: &str) -> String {
        self.replace
            .iter()
            .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
    }
}

/// One container of a manifest, resolved the way the kubelet resolves it.
struct Container {
    args: Vec<String>,
    env: Vec<(String, String)>,
    ports: BTreeMap<String, u16>,
    readiness: (String, String),
    liveness: Option<(String, String)>,
}

fn probe(probe: &Value) -> Option<(String, String)> {
    let get = &probe["httpGet"];
    let port = match &get["port"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Some((get["path"].as_str()?.to_string(), port))
}

fn resolve(docs: &[Value], pod: &Value, cluster: &Cluster) -> Container {
    let spec = &pod["containers"][0];
    assert!(
        spec["image"].as_str().unwrap().starts_with("twinloop"),
        "{spec}"
    );
    let mut env: Vec<(String, String)> = Vec::new();
    for from in spec["envFrom"].as_array().into_iter().flatten() {
        let map = find(
            docs,
            "ConfigMap",
            from["configMapRef"]["name"].as_str().unwrap(),
        );
        for (k, v) in map["data"].as_object().unwrap() {
            env.push((k.clone(), v.as_str().unwrap().to_string()));
        }
    }
    for var in spec["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_string()
        } else {
            let key = var["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
            cluster
                .secrets
                .get(key)
                .unwrap_or_else(|| panic!("the Secret has no key {key}"))
                .clone()
        };
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    let env: Vec<_> = env.into_iter().map(|(k, v)| (k, cluster.map(&v))).collect();
    let expand = |arg: &str| {
        env.iter().fold(arg.to_string(), |a, (k, v)| {
            a.replace(&format!("$({k})"), v)
        })
    };
    let mut ports = BTreeMap::new();
    let mut args: Vec<String> = spec["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| cluster.map(&expand(a.as_str().unwrap())))
        .collect();
    for port in spec["ports"].as_array().unwrap() {
        let number = port["containerPort"].as_u64().unwrap().to_string();
        let free = support::free_port();
        for arg in args.iter_mut().filter(|a| **a == number) {
            *arg = free.to_string();
        }
        ports.insert(number, free);
        if let Some(name) = port["name"].as_str() {
            ports.insert(name.to_string(), free);
        }
    }
    // Volumes: ConfigMap and Secret items, written where the pod would see them.
    for mount in spec["volumeMounts"].as_array().into_iter().flatten() {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let dir = cluster.work.join(volume["name"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        for source in volume["projected"]["sources"].as_array().unwrap() {
            if let Some(name) = source["configMap"]["name"].as_str() {
                for (file, text) in find(docs, "ConfigMap", name)["data"].as_object().unwrap() {
                    let text = cluster.map(text.as_str().unwrap());
                    std::fs::write(dir.join(file), text).unwrap();
                }
            }
            for item in source["secret"]["items"].as_array().into_iter().flatten() {
                let value = &cluster.secrets[item["key"].as_str().unwrap()];
                std::fs::write(dir.join(item["path"].as_str().unwrap()), value).unwrap();
            }
        }
        let path = mount["mountPath"].as_str().unwrap();
        for arg in &mut args {
            *arg = arg.replace(path, dir.to_str().unwrap());
        }
    }
    Container {
        args,
        env,
        ports,
        readiness: probe(&spec["readinessProbe"]).expect("a readinessProbe"),
        liveness: probe(&spec["livenessProbe"]),
    }
}

struct Running {
    child: Child,
    name: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Container {
    fn start(&self, name: &str, cwd: &Path) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TWINLOOP_LOG", "warn")
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Running {
            child,
            name: name.to_string(),
        }
    }

    fn url(&self, (path, port): &(String, String)) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[port])
    }

    /// Polls the readinessProbe as the kubelet does; then the livenessProbe must answer too.
    async fn wait_ready(&self, running: &mut Running) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        let ready = self.url(&self.readiness);
        loop {
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("{} exited ({status}) before it was ready", running.name);
            }
            if http
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never ready at {ready}",
                running.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(live) = &self.liveness {
            let r = http.get(self.url(live)).send().await.unwrap();
            assert!(
                r.status().is_success(),
                "{}: {live:?} {}",
                running.name,
                r.status()
            );
        }
    }
}

/// A bucket on the local S3 server, filled with `files`.
async fn bucket(endpoint: &str, name: &str, files: &[(&str, Vec<u8>)]) {
    let http = reqwest::Client::new();
    let r = http.put(format!("{endpoint}/{name}")).send().await.unwrap();
    assert!(
        r.status().is_success(),
        "create bucket {name}: {}",
        r.status()
    );
    for (key, body) in files {
        let r = http
            .put(format!("{endpoint}/{name}/{key}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "put {key}: {}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_container_of_the_manifests_becomes_ready_as_written() {
    let Some(database) = support::postgres_database() else {
        return;
    };
    let Ok(s3) = std::env::var("TWINLOOP_TEST_S3_ENDPOINT") else {
        assert_ne!(
            std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
            Ok("1"),
            "TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_S3_ENDPOINT is not set"
        );
        eprintln!("TWINLOOP_TEST_S3_ENDPOINT not set: the manifests' test is skipped");
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let (artifacts, features) = (format!("tl-art-{pid}"), format!("tl-feat-{pid}"));
    let stats = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/feature_repo/data/driver_hourly_stats.parquet"),
    )
    .unwrap();
    bucket(&s3, &artifacts, &[]).await;
    bucket(&s3, &features, &[("driver_hourly_stats.parquet", stats)]).await;

    let docs = documents(&deploy_dir().join("base"));
    let server_port = support::free_port();
    let admin_password = "deploy-test-password";
    let mut cluster = Cluster {
        secrets: BTreeMap::from([
            ("backend-store-uri".into(), database.clone()),
            ("admin-password".into(), admin_password.into()),
            ("aws-access-key-id".into(), "testing".into()),
            ("aws-secret-access-key".into(), "testing".into()),
            (
                "feature-repo.yaml".into(),
                format!(
                    "project: rides\nonline_store: {{type: redis, url: \"{}\"}}\nregistry: {database}\n",
                    redis.url
                ),
            ),
        ]),
        replace: vec![
            (
                "s3://twinloop-artifacts/".into(),
                format!("s3://{artifacts}/"),
            ),
            (
                "s3://twinloop-features/".into(),
                format!("s3://{features}/"),
            ),
            (
                "http://twinloop-server:5000".into(),
                format!("http://127.0.0.1:{server_port}"),
            ),
        ],
        work: work.path().to_path_buf(),
    };
    // The overlay's S3-compatible endpoint setting, as an operator on MinIO would add it.
    let s3_endpoint = ("MLFLOW_S3_ENDPOINT_URL".to_string(), s3.clone());

    // The tracking server, every replica on the one database and bucket.
    let server_pod = &find(&docs, "Deployment", "twinloop-server")["spec"]["template"]["spec"];
    let replicas = find(&docs, "Deployment", "twinloop-server")["spec"]["replicas"]
        .as_u64()
        .unwrap();
    let mut servers = Vec::new();
    for replica in 0..replicas {
        let mut server = resolve(&docs, server_pod, &cluster);
        server.env.push(s3_endpoint.clone());
        if replica == 0 {
            // The Service's port lands on the first replica, where the other pods look for it.
            let port = server.ports["http"];
            for arg in server.args.iter_mut().filter(|a| **a == port.to_string()) {
                *arg = server_port.to_string();
            }
            server.ports.values_mut().for_each(|p| {
                if *p == port {
                    *p = server_port;
                }
            });
        }
        let dir = work.path().join(format!("server-{replica}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut running = server.start(&format!("server replica {replica}"), &dir);
        server.wait_ready(&mut running).await;
        servers.push(running);
    }

    // The operator's steps from docs/deploy.md: a model behind `champion`, a read token.
    let admin = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64_encode(format!("admin:{admin_password}").as_bytes())
            )
            .parse()
            .unwrap(),
        )]))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{server_port}");
    let version = support::register_model(
        &admin,
        &base,
        "model",
        &support::serving_fixture("feature_sum"),
        "deploy-test/model",
        None,
    )
    .await;
    support::post_ok(
        &admin,
        &format!("{base}/api/2.0/mlflow/registered-models/alias"),
        json!({"name": "model", "alias": "champion", "version": version}),
    )
    .await;
    let token = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["auth", "--backend-store-uri", &database])
        .args(["token", "create", "--user", "admin", "--scope", "read"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    cluster.secrets.insert("serving-token".into(), token);

    // The V2 serving Deployment follows `champion` through the server.
    let serving_pod = &find(&docs, "Deployment", "twinloop-serving")["spec"]["template"]["spec"];
    let serving = resolve(&docs, serving_pod, &cluster);
    let mut running = serving.start("serving", work.path());
    serving.wait_ready(&mut running).await;
    let infer = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/v2/models/model/infer",
            serving.ports["http"]
        ))
        .json(&json!({"inputs": [
            {"name": "conv_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.25]},
            {"name": "acc_rate", "shape": [1, 1], "datatype": "FP32", "data": [0.5]},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(infer.status().as_u16(), 200, "{:?}", infer.text().await);
    drop(running);

    // The feature server on Redis, its definitions' source on S3.
    let features_pod = &find(&docs, "Deployment", "twinloop-features")["spec"]["template"]["spec"];
    let mut feature_server = resolve(&docs, features_pod, &cluster);
    feature_server.env.push(s3_endpoint.clone());
    let mut running = feature_server.start("feature server", work.path());
    feature_server.wait_ready(&mut running).await;
    drop(running);

    // KServe's runtime: the storage initializer's /mnt/models is a model directory.
    let kserve = documents(&deploy_dir().join("kserve"));
    let runtime = &find(&kserve, "ClusterServingRuntime", "twinloop")["spec"];
    cluster.replace.push(("{{.Name}}".into(), "fraud".into()));
    cluster.replace.push((
        "/mnt/models".into(),
        support::serving_fixture("feature_sum")
            .to_str()
            .unwrap()
            .into(),
    ));
    let runtime = resolve(&kserve, runtime, &cluster);
    let mut running = runtime.start("KServe runtime", work.path());
    runtime.wait_ready(&mut running).await;
    let r = reqwest::get(format!(
        "http://127.0.0.1:{}/v2/models/fraud/ready",
        runtime.ports["8080"]
    ))
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    drop(servers);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A `redis-server` on a free port for the test's lifetime; `None` when it is not installed
/// (a failure under TWINLOOP_REQUIRE_ALL_BACKENDS=1).
struct RedisServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert_ne!(
                std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
                Ok("1"),
                "redis-server is not installed but TWINLOOP_REQUIRE_ALL_BACKENDS=1"
            );
            eprintln!("redis-server not found: the manifests' test is skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
        Some(RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
            _dir: dir,
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
