//! Where `libonnxruntime` comes from. ort's load-dynamic binds the library at run time; we look
//! for it in a documented order so that a server without it starts and says what is missing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;

/// The library version the pinned `ort` release is built against (its `api-31` floor).
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.32.0";

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(pub String);

/// Candidate library paths, in the order they are tried:
/// 1. `ORT_DYLIB_PATH`;
/// 2. beside the `twinloop` executable (`libonnxruntime.so*`), for a packaged install;
/// 3. `$TWINLOOP_HOME/onnxruntime/`, default `~/.cache/twinloop/onnxruntime/`, where
///    `scripts/install-onnxruntime.sh` unpacks the pinned PyPI wheel;
/// 4. the bare name, so the system loader's own search path (`LD_LIBRARY_PATH`, ldconfig) applies.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(LIBRARY_FILE));
        out.push(dir.join("libonnxruntime.so"));
    }
    let home = std::env::var_os("TWINLOOP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/twinloop")));
    if let Some(home) = home {
        out.push(home.join("onnxruntime").join(LIBRARY_FILE));
    }
    out.push(PathBuf::from("libonnxruntime.so.1"));
    out
}

static ENVIRONMENT: OnceLock<Result<Arc<Environment>, RuntimeError>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<Arc<Environment>, RuntimeError> {
    ENVIRONMENT.get_or_init(load).clone()
}

fn load() -> Result<Arc<Environment>, RuntimeError> {
    let candidates = library_candidates();
    let mut tried = Vec::new();
    for path in &candidates {
        let bare = path.components().count() == 1;
        if !bare && !path.is_file() {
            tried.push(format!("{} (missing)", path.display()));
            continue;
        }
        match ort::init_from(path) {
            Ok(builder) => {
                return builder
                    .with_name("twinloop")
                    .build()
                    .map(Arc::new)
                    .map_err(|e| RuntimeError(format!("ONNX Runtime at {}: {e}", path.display())));
            }
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    Err(RuntimeError(format!(
        "ONNX Runtime not found (tried {}); hint: run scripts/install-onnxruntime.sh or set ORT_DYLIB_PATH to {LIBRARY_FILE}",
        tried.join("; ")
    )))
}
