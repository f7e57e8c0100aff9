//! MLflow's error codes belong to the MLflow front (`twinloop-server`'s `error.rs`) and the wire
//! types shared with the CLI (`twinloop-api`); domain crates speak in `ErrorKind`. A code spelled
//! in a domain crate's source fails here, naming the file.

use std::path::{Path, PathBuf};

const MLFLOW_CODES: &[&str] = &[
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INTERNAL_ERROR",
    "TEMPORARILY_UNAVAILABLE",
];

const DOMAIN_CRATES: &[&str] = &[
    "twinloop-core",
    "twinloop-meta",
    "twinloop-artifacts",
    "twinloop-features",
    "twinloop-monitor",
    "twinloop-watch",
    "twinloop-serving",
    "twinloop-predlog",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_domain_crate_names_an_mlflow_error_code() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    for krate in DOMAIN_CRATES {
        let mut files = Vec::new();
        rust_files(&crates.join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for code in MLFLOW_CODES.iter().filter(|c| text.contains(*c)) {
                problems.push(format!(
                    "{} names {code}: map an ErrorKind to it in twinloop-server instead",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
