//! Locations a client names: paths inside the artifact root, and the location policy's
//! judgement of any URI or path.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use twinloop_artifacts::ArtifactPath;
use twinloop_core::location::{Location, LocationPolicy};

/// An artifact path. Accepted paths are normal (parsing one again gives itself), and joined to
/// a root they name something under it: only plain components, never `..`, a root or a prefix.
pub fn artifact_path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = ArtifactPath::parse(raw) else {
        return;
    };
    let again = ArtifactPath::parse(path.as_str());
    assert_eq!(again.as_ref().ok(), Some(&path), "{raw:?} became {path:?}");
    let root = Path::new("/srv/artifacts");
    let joined = root.join(path.as_str());
    assert!(joined.starts_with(root), "{raw:?} joined as {joined:?}");
    let inside = joined.strip_prefix(root).unwrap_or(&joined);
    assert!(
        inside
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{raw:?} joined as {joined:?}"
    );
    if ArtifactPath::client(raw).is_ok() {
        assert!(
            !path.is_internal(),
            "{raw:?} reaches the server's own files"
        );
    }
}

/// A directory with a root the policy allows, a sibling it does not, and links from inside the
/// root to each: created once per process.
struct Tree {
    root: PathBuf,
    policy: LocationPolicy,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("twinloop-fuzz-location-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        for dir in [root.join("a/b"), outside.clone()] {
            std::fs::create_dir_all(&dir).expect("a temporary directory");
        }
        for (link, target) in [("up", &outside), ("self", &root)] {
            let link = root.join(link);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(target, link).expect("a symlink");
            }
        }
        let root = root.canonicalize().expect("the root resolves");
        let policy = LocationPolicy::new(
            [root.display().to_string(), "s3://bucket/prefix".to_string()],
            ["gs"],
            &root,
        )
        .expect("a valid policy");
        Tree { root, policy }
    })
}

/// A location as a client sends it (an `artifact_location`, a model version's `source`, a
/// monitor's reference), relative ones taken from inside the root. A local location accepted
/// lies inside the root once links are resolved, whatever the spelling.
pub fn location(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tree = tree();
    if let Ok(Location::Local(path)) = tree.policy.check(text) {
        assert!(
            path.starts_with(&tree.root),
            "{text:?} accepted as {path:?}"
        );
        let resolved = path.canonicalize().unwrap_or(path.clone());
        assert!(
            resolved.starts_with(&tree.root),
            "{text:?} accepted as {path:?}, which resolves to {resolved:?}"
        );
    }
}
