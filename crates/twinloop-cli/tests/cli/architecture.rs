//! ARCHITECTURE.md's dependency invariants, read from `cargo metadata`: which crates may speak
//! HTTP or gRPC, and that the workspace's crates are layered with no arrow running back up.
//! And that every reader of a user's Parquet goes through the page checks.
//! A new edge fails here, naming the crate and the dependency; allowing it is a deliberate edit
//! of the lists below (and of ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crates that carry a wire protocol: HTTP servers and clients, gRPC.
const WIRE_CRATES: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "reqwest",
    "tonic",
    "tonic-prost",
    "tonic-prost-build",
    "tower-http",
];

/// Every (crate, wire dependency, kind) the workspace has, and why. Exact: an edge missing from
/// the manifests fails too, so each reason stays true.
#[rustfmt::skip]
const WIRE_ALLOWED: &[(&str, &str, &str, &str)] = &[
    ("twinloop-server", "axum", "normal", "the MLflow, native and feature-server HTTP APIs"),
    ("twinloop-server", "tower-http", "normal", "the trace layer on the server's router"),
    ("twinloop-server", "reqwest", "normal", "the HTTP transport of webhooks (registry events, and monitors' alerts)"),
    ("twinloop-server", "hyper-util", "normal", "listen::serve, the accept loop of every HTTP listener, the only place a header-read timeout can be set (slowloris)"),
    ("twinloop-v2", "axum", "normal", "the Open Inference Protocol REST front (http.rs)"),
    ("twinloop-v2", "tonic", "normal", "the Open Inference Protocol gRPC front (grpc.rs)"),
    ("twinloop-v2", "tonic-prost", "normal", "the protobuf codec of grpc.rs"),
    ("twinloop-v2", "tonic-prost-build", "build", "compiles proto/inference.proto"),
    ("twinloop-cli", "axum", "normal", "twinloop serve puts the --auth guard on twinloop-v2's router"),
    ("twinloop-cli", "tower-http", "normal", "the trace layer of twinloop serve"),
    ("twinloop-cli", "reqwest", "normal", "client commands talk to a running server; twinloop serve's TrackingClient fetches models over MLflow REST"),
    ("twinloop-artifacts", "reqwest", "dev", "the S3 test creates its bucket on moto"),
    ("twinloop-features", "reqwest", "dev", "the S3 source test creates its bucket on moto"),
    ("twinloop-executors", "reqwest", "normal", "the Kubernetes API server and Ray's Jobs REST API, called by the remote executors"),
    ("twinloop-executors", "axum", "dev", "mock Kubernetes and Ray Jobs API servers in its tests"),
];

/// The workspace's crates, lowest first; each may depend (as normal, build or dev dependency)
/// only on crates listed before it, and only on those named. Core is at the bottom, cli at the
/// top, and only cli depends on twinloop-server.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str])] = &[
    ("twinloop-core", &[]),
    ("twinloop-monitor", &[]),
    ("twinloop-api", &[]),
    ("twinloop-meta", &["twinloop-core"]),
    // The web UI's pages: domain types in, HTML out.
    ("twinloop-ui", &["twinloop-core"]),
    ("twinloop-artifacts", &["twinloop-core"]),
    ("twinloop-predlog", &["twinloop-core", "twinloop-artifacts"]),
    ("twinloop-features", &["twinloop-core", "twinloop-meta", "twinloop-artifacts"]),
    ("twinloop-serving", &["twinloop-core", "twinloop-meta", "twinloop-artifacts", "twinloop-predlog"]),
    ("twinloop-v2", &["twinloop-core", "twinloop-serving"]),
    // Its tests load exported models in the serving runtime (dev-dependency only).
    ("twinloop-learn", &["twinloop-serving"]),
    ("twinloop-watch", &[
        "twinloop-core", "twinloop-meta", "twinloop-artifacts", "twinloop-predlog", "twinloop-monitor",
    ]),
    // Built-in steps call the feature store, the drift engine, the trainers and the serving
    // runtime in process; runs, triggers and their events persist in the metadata store.
    ("twinloop-pipelines", &[
        "twinloop-core", "twinloop-meta", "twinloop-artifacts", "twinloop-features",
        "twinloop-monitor", "twinloop-serving", "twinloop-learn",
    ]),
    // Remote executors: one step attempt as a Kubernetes Job or a Ray job.
    ("twinloop-executors", &["twinloop-core", "twinloop-pipelines"]),
    // The UI's Parquet artifact preview checks page sizes with the drift reader's guard.
    ("twinloop-server", &[
        "twinloop-api", "twinloop-core", "twinloop-meta", "twinloop-artifacts",
        "twinloop-monitor", "twinloop-features", "twinloop-serving", "twinloop-v2",
        "twinloop-watch", "twinloop-pipelines", "twinloop-ui",
    ]),
    ("twinloop-cli", &[
        "twinloop-api", "twinloop-core", "twinloop-meta", "twinloop-artifacts", "twinloop-predlog",
        "twinloop-monitor", "twinloop-features", "twinloop-serving", "twinloop-v2", "twinloop-watch",
        "twinloop-server", "twinloop-pipelines", "twinloop-learn", "twinloop-executors",
    ]),
    // The fuzz targets: one entry per parser of untrusted bytes, wherever the parser lives.
    ("twinloop-fuzzing", &[
        "twinloop-api", "twinloop-artifacts", "twinloop-core", "twinloop-features", "twinloop-meta",
        "twinloop-monitor", "twinloop-pipelines", "twinloop-server", "twinloop-serving",
        "twinloop-v2",
    ]),
];

/// Each workspace crate's declared dependencies as (package name, kind). `--no-deps` still lists
/// every member's `dependencies` as written in its manifest; it only skips resolving versions.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .args(["--manifest-path", manifest])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        if !members.contains(package["id"].as_str().expect("package id")) {
            continue;
        }
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|dep| {
                let name = dep["name"].as_str().expect("dependency name").to_owned();
                let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                (name, kind)
            })
            .collect();
        let name = package["name"].as_str().expect("package name").to_owned();
        crates.insert(name, deps);
    }
    assert!(
        !crates.is_empty(),
        "cargo metadata listed no workspace crates"
    );
    crates
}

#[test]
fn wire_dependencies_only_where_allowed() {
    let crates = workspace_dependencies();
    let found: BTreeSet<(&str, &str, &str)> = crates
        .iter()
        .flat_map(|(krate, deps)| {
            deps.iter()
                .filter(|(dep, _)| WIRE_CRATES.contains(&dep.as_str()))
                .map(move |(dep, kind)| (krate.as_str(), dep.as_str(), kind.as_str()))
        })
        .collect();
    let allowed: BTreeSet<(&str, &str, &str)> = WIRE_ALLOWED
        .iter()
        .map(|&(krate, dep, kind, _)| (krate, dep, kind))
        .collect();
    let mut problems = Vec::new();
    for (krate, dep, kind) in found.difference(&allowed) {
        problems.push(format!(
            "{krate} has a new {kind} dependency on {dep}: only the crates in WIRE_ALLOWED may \
             speak a wire protocol (ARCHITECTURE.md, Invariants)"
        ));
    }
    for (krate, dep, kind) in allowed.difference(&found) {
        problems.push(format!(
            "{krate} no longer has a {kind} dependency on {dep}: remove it from WIRE_ALLOWED"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn workspace_crates_only_depend_downwards() {
    let crates = workspace_dependencies();
    let mut problems = Vec::new();

    // The list itself must be layered: a crate names only crates below it.
    for (position, (krate, allowed)) in LAYERS.iter().enumerate() {
        for dep in *allowed {
            if !LAYERS[..position].iter().any(|(below, _)| below == dep) {
                problems.push(format!(
                    "LAYERS: {krate} may not depend on {dep}, not below it"
                ));
            }
        }
    }

    for (krate, deps) in &crates {
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| name == krate) else {
            problems.push(format!(
                "{krate} is not in LAYERS: place it in the layering"
            ));
            continue;
        };
        for (dep, kind) in deps {
            if crates.contains_key(dep) && !allowed.contains(&dep.as_str()) {
                problems.push(format!(
                    "{krate} has a {kind} dependency on {dep}, against the layering in \
                     ARCHITECTURE.md (Invariants)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Files that open Parquet with the parquet crate without `parquet_pages::checked`, and why the
/// bytes they read are not a user's: everything else a request, a logged artifact or a monitor
/// reference can bring goes through the checks (ARCHITECTURE.md, twinloop-monitor).
#[rustfmt::skip]
const UNCHECKED_PARQUET: &[(&str, &str)] = &[
    ("crates/twinloop-features/src/offline/entities.rs", "entity rows the operator names on the CLI or in a pipeline of their repository"),
    ("crates/twinloop-features/src/offline/spark/mod.rs", "what the operator's Spark job wrote"),
    ("crates/twinloop-learn/src/dataset.rs", "a training set the operator's pipeline or CLI names"),
    ("crates/twinloop-predlog/src/segment.rs", "prediction-log segments the server wrote, outside what the artifact proxy serves"),
];

#[test]
fn user_parquet_is_opened_through_the_page_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    let mut dirs = vec![root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.components().any(|c| c.as_os_str() == "src")
            {
                files.push(path);
            }
        }
    }
    let mut opening = BTreeSet::new();
    let mut problems = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("ParquetRecordBatchReaderBuilder::try_new")
            && !text.contains("SerializedFileReader::new")
        {
            continue;
        }
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        opening.insert(name.clone());
        let allowed = UNCHECKED_PARQUET.iter().any(|(file, _)| *file == name);
        if !allowed && !text.contains("checked(") {
            problems.push(format!(
                "{name} opens Parquet without twinloop_monitor::parquet_pages::checked: open a \
                 user's file through it, or say in UNCHECKED_PARQUET why the bytes are not a user's"
            ));
        }
    }
    for (file, _) in UNCHECKED_PARQUET {
        if !opening.contains(*file) {
            problems.push(format!(
                "{file} no longer opens Parquet: remove it from UNCHECKED_PARQUET"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
