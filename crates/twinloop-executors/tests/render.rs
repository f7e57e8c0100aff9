//! A23's manifest half: `render` of a pipeline file equals the committed golden Job manifests.
//! `UPDATE_GOLDEN=1 cargo test -p twinloop-executors --test render` rewrites them after a
//! deliberate change; the diff is then the review.

use std::path::PathBuf;

use twinloop_executors::k8s::JobTemplate;
use twinloop_executors::render::{RenderError, RenderOptions, render_k8s};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn options(params: &[(&str, &str)]) -> RenderOptions {
    let mut template = JobTemplate::new("ghcr.io/acme/fraud-train:3");
    template.namespace = "ml".into();
    template.launcher_image = "ghcr.io/twinloop/twinloop:0.1.0".into();
    RenderOptions {
        run_id: "render".into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        template,
    }
}

fn render(text: &str, params: &[(&str, &str)]) -> Result<String, RenderError> {
    render_k8s("train.yaml", text, &options(params))
}

#[test]
fn rendered_jobs_equal_the_golden_manifests() {
    let text = std::fs::read_to_string(golden("train.yaml")).unwrap();
    let rendered = render(&text, &[("lr", "0.2")]).unwrap();
    let path = golden("train.k8s.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(rendered, expected, "render differs from {}", path.display());
}

#[test]
fn every_document_is_a_job_of_its_step() {
    let text = std::fs::read_to_string(golden("train.yaml")).unwrap();
    let rendered = render(&text, &[]).unwrap();
    let jobs: Vec<serde_norway::Value> = rendered
        .split("\n---\n")
        .skip(1)
        .map(|doc| serde_norway::from_str(doc).unwrap())
        .collect();
    let steps: Vec<&str> = jobs
        .iter()
        .map(|j| {
            j["metadata"]["labels"]["twinloop.dev/step"]
                .as_str()
                .unwrap()
        })
        .collect();
    // `report` runs locally (executor: local), so only three steps become Jobs.
    assert_eq!(steps, ["prepare", "train", "notify"]);
    let train = &jobs[1];
    assert_eq!(train["spec"]["activeDeadlineSeconds"].as_u64(), Some(3600));
    assert_eq!(jobs[0]["spec"]["activeDeadlineSeconds"].as_u64(), Some(600));
    let step = &train["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(step["resources"]["requests"]["cpu"].as_str(), Some("1"));
    let command = step["command"][7].as_str().unwrap();
    assert_eq!(command, "python src/train.py --lr 0.1 --run render");
    assert!(
        jobs[0]["spec"]["template"]["spec"]["containers"][0]
            .get("resources")
            .is_none()
    );
}

#[test]
fn built_ins_are_noted_not_rendered() {
    let text = "pipeline: p\nsteps:\n  hook:\n    uses: notify.webhook@1\n    with: {url: \"http://x\", body: {}}\n";
    let rendered = render(text, &[]).unwrap();
    assert!(
        rendered.contains("# hook: uses notify.webhook@1"),
        "{rendered}"
    );
    assert!(!rendered.contains("kind: Job"), "{rendered}");
}

#[test]
fn bad_files_and_resources_are_located_errors() {
    let bad_resources = "pipeline: p\nsteps:\n  a:\n    run: 'true'\n    resources: {cpu: lots}\n";
    let e = render(bad_resources, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("train.yaml: steps[a].resources: cpu \"lots\""),
        "{e}"
    );

    // A real problem elsewhere is reported at its line, not hidden by the resources.
    let bad_needs =
        "pipeline: p\nsteps:\n  a:\n    run: 'true'\n    resources: {cpu: 1}\n    needs: [nope]\n";
    let e = render(bad_needs, &[]).unwrap_err();
    let RenderError::Invalid(invalid) = &e else {
        panic!("{e:?}")
    };
    assert!(
        invalid.0.iter().all(|p| !p.field.ends_with(".resources")),
        "{e}"
    );
    assert!(e.to_string().contains("train.yaml:6:"), "{e}");

    let e = render(
        "pipeline: p\nparams: {lr: 1}\nsteps:\n  a:\n    run: 'true'\n",
        &[("nope", "1")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown param \"nope\""), "{e}");
}
