//! Artifact locations built the way MLflow's store builds them (`mlflow.utils.uri`): a relative
//! local location is made absolute against the working directory (`resolve_uri_if_local`), and
//! a run's or a model's location goes into the path of its experiment's URI, before any query
//! or fragment (`append_to_uri_path`). Pure string work, following Python's `urllib.parse`.

use std::path::{Path, PathBuf};

use twinloop_core::{Error, Result};

/// A URI split as Python's `urlsplit` splits it. The scheme is lower-cased, as there.
struct Split<'a> {
    scheme: String,
    netloc: Option<&'a str>,
    path: &'a str,
    query: &'a str,
    fragment: &'a str,
}

fn split(uri: &str) -> Split<'_> {
    let (scheme, mut rest) = match uri.split_once(':') {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (scheme.to_ascii_lowercase(), rest)
        }
        _ => (String::new(), uri),
    };
    let mut netloc = None;
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = Some(&after[..end]);
        rest = &after[end..];
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Split {
        scheme,
        netloc,
        path,
        query,
        fragment,
    }
}

/// Schemes whose URIs Python writes with `//` even when the authority is empty (`file:///x`).
const USES_NETLOC: &[&str] = &[
    "ftp",
    "http",
    "gopher",
    "nntp",
    "telnet",
    "imap",
    "wais",
    "file",
    "mms",
    "https",
    "shttp",
    "snews",
    "prospero",
    "rtsp",
    "rtsps",
    "rtspu",
    "rsync",
    "svn",
    "svn+ssh",
    "sftp",
    "nfs",
    "git",
    "git+ssh",
    "ws",
    "wss",
    "itms-services",
];

/// Python's `urlunsplit`.
fn unsplit(scheme: &str, netloc: Option<&str>, path: &str, query: &str, fragment: &str) -> String {
    let netloc = netloc.unwrap_or("");
    let mut url = path.to_string();
    if !netloc.is_empty()
        || (!scheme.is_empty() && USES_NETLOC.contains(&scheme) && !path.starts_with("//"))
    {
        if !url.is_empty() && !url.starts_with('/') {
            url.insert(0, '/');
        }
        url = format!("//{netloc}{url}");
    }
    if !scheme.is_empty() {
        url = format!("{scheme}:{url}");
    }
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    if !fragment.is_empty() {
        url = format!("{url}#{fragment}");
    }
    url
}

/// `posixpath.join(prefix, suffix)`, except that an absolute suffix is appended too.
fn join_posix(prefix: &str, suffix: &str) -> String {
    if prefix.is_empty() {
        return suffix.to_string();
    }
    let suffix = suffix.trim_start_matches('/');
    if prefix.ends_with('/') {
        format!("{prefix}{suffix}")
    } else {
        format!("{prefix}/{suffix}")
    }
}

/// `paths` appended to the path of `uri`: `s3://b/p?x=1` and `["r", "artifacts"]` give
/// `s3://b/p/r/artifacts?x=1`. A URI without a scheme is a POSIX path.
pub(crate) fn append_to_uri_path(uri: &str, paths: &[&str]) -> String {
    let path = paths
        .iter()
        .fold(String::new(), |acc, p| join_posix(&acc, p));
    let parts = split(uri);
    if parts.scheme.is_empty() {
        return join_posix(uri, &path);
    }
    let new_path = join_posix(parts.path, &path);
    if parts.path.starts_with('/') {
        unsplit(
            &parts.scheme,
            parts.netloc,
            &new_path,
            parts.query,
            parts.fragment,
        )
    } else {
        // Python would turn a relative path absolute when it writes the scheme back; MLflow
        // keeps the scheme out of the rebuild for that reason, and so do we.
        let rest = unsplit("", parts.netloc, &new_path, parts.query, parts.fragment);
        format!("{}:{rest}", parts.scheme)
    }
}

/// Schemes whose last path segment Python's `urlparse` splits `;params` from.
const USES_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtsps", "rtspu",
    "sip", "sips", "mms", "sftp", "tel",
];

/// MLflow's checks of a location given to `create_experiment` (`_validate_storage_location_uri`):
/// no fragment or params, no `..` in the query, not a `runs:` URI.
pub fn validate_location(location: &str) -> Result<()> {
    let parts = split(location);
    let params = USES_PARAMS.contains(&parts.scheme.as_str())
        && parts
            .path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(';'));
    if !parts.fragment.is_empty() || params {
        return Err(Error::invalid(
            "'artifact_location' URL can't include fragments or params.",
        ));
    }
    if unquote(parts.query).contains("..") {
        return Err(Error::invalid("Invalid query string"));
    }
    if location.starts_with("runs:") {
        return Err(Error::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{location}'"
        )));
    }
    Ok(())
}

/// Python's `urllib.parse.unquote`: `%XX` escapes decoded as UTF-8, invalid bytes replaced.
fn unquote(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `cwd` joined with `path` as `pathlib` writes it: `.` segments and repeated or trailing
/// slashes gone, `..` kept.
fn absolute(cwd: &Path, path: &str) -> String {
    let joined: PathBuf = cwd.join(path).components().collect();
    joined.to_string_lossy().into_owned()
}

/// A relative local location (`my_location`, `file:rel`) made absolute against `cwd`, as
/// MLflow's server does with the location given to `create_experiment`; any other location
/// (absolute, or another scheme's) is returned as given.
pub(crate) fn resolve_if_local(location: &str, cwd: &Path) -> String {
    let parts = split(location);
    let remote_host = parts.netloc.is_some_and(|n| {
        let host = n.rsplit('@').next().unwrap_or(n);
        !(host.is_empty()
            || host == "."
            || host.starts_with("localhost")
            || host.starts_with("127.0.0.1"))
    });
    match parts.scheme.as_str() {
        "" => {
            let path = unquote(location);
            if path.starts_with('/') {
                location.to_string()
            } else {
                absolute(cwd, &path)
            }
        }
        "file" if !remote_host => {
            let path = unquote(parts.path);
            if path.starts_with('/') {
                location.to_string()
            } else {
                unsplit(
                    "file",
                    None,
                    &absolute(cwd, &path),
                    parts.query,
                    parts.fragment,
                )
            }
        }
        _ => location.to_string(),
    }
}

/// The artifact root of new experiments (`--default-artifact-root`), as MLflow's SQL store takes
/// it: checked as a location given to `create_experiment` is, and a relative local root made
/// absolute against `cwd`. A bare scheme (`mlflow-artifacts:`) stands for that scheme's root, so
/// that experiment `1` is `mlflow-artifacts:/1` whichever of the two a caller passes.
pub fn experiment_root(root: &str, cwd: &Path) -> Result<String> {
    if root.is_empty() {
        return Err(Error::invalid("the default artifact root is empty"));
    }
    validate_location(root)?;
    let root = resolve_if_local(root, cwd);
    let parts = split(&root);
    Ok(
        if parts.path.is_empty() && parts.netloc.is_none() && !parts.scheme.is_empty() {
            format!("{root}/")
        } else {
            root
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_into_the_path_before_query_and_fragment() {
        // Each pair is what mlflow.utils.uri.append_to_uri_path(uri, "RUN", "artifacts") gave.
        let cases = [
            ("s3://b/p?x=1", "s3://b/p/RUN/artifacts?x=1"),
            ("s3://b/p/", "s3://b/p/RUN/artifacts"),
            ("mlflow-artifacts:/0", "mlflow-artifacts:/0/RUN/artifacts"),
            ("mlflow-artifacts:", "mlflow-artifacts:RUN/artifacts"),
            ("file:///abs/x", "file:///abs/x/RUN/artifacts"),
            ("file:/abs/x", "file:///abs/x/RUN/artifacts"),
            ("/abs/loc/", "/abs/loc/RUN/artifacts"),
            ("rel/loc", "rel/loc/RUN/artifacts"),
            ("S3://B/p#frag", "s3://B/p/RUN/artifacts#frag"),
            ("gs://b", "gs://b/RUN/artifacts"),
            ("file:rel", "file:rel/RUN/artifacts"),
        ];
        for (uri, want) in cases {
            assert_eq!(
                append_to_uri_path(uri, &["RUN", "artifacts"]),
                want,
                "{uri}"
            );
        }
    }

    #[test]
    fn locations_mlflow_refuses() {
        for bad in [
            "s3://b/p#frag",
            "http://h/a;p",
            "my;loc",
            "s3://b/p?x=../y",
            "s3://b/p?x=%2E%2E/y",
            "runs:/abc/model",
        ] {
            assert!(validate_location(bad).is_err(), "{bad}");
        }
        for good in ["s3://b/p;x", "s3://b/p?versionId=1", "my_location", "/abs"] {
            assert!(validate_location(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn relative_local_locations_become_absolute() {
        // Each pair is what mlflow.utils.uri.resolve_uri_if_local gave with /tmp as cwd.
        let cwd = Path::new("/tmp");
        let cases = [
            ("my_location", "/tmp/my_location"),
            ("./a/../b//c/", "/tmp/a/../b/c"),
            ("/abs/x", "/abs/x"),
            ("file:rel/x", "file:///tmp/rel/x"),
            ("file:///abs", "file:///abs"),
            ("file:rel?q=1#f", "file:///tmp/rel?q=1#f"),
            ("s3://b/p", "s3://b/p"),
            ("file://localhost/abs", "file://localhost/abs"),
            ("my%20loc", "/tmp/my loc"),
        ];
        for (location, want) in cases {
            assert_eq!(resolve_if_local(location, cwd), want, "{location}");
        }
    }

    #[test]
    fn experiment_roots_are_checked_and_made_absolute() {
        let cwd = Path::new("/srv");
        let cases = [
            ("mlflow-artifacts:", "mlflow-artifacts:/"),
            ("mlflow-artifacts:/", "mlflow-artifacts:/"),
            ("art", "/srv/art"),
            ("./a/b/", "/srv/a/b"),
            ("file:rel", "file:///srv/rel"),
            ("s3://b/p?versionId=1", "s3://b/p?versionId=1"),
        ];
        for (root, want) in cases {
            let root = experiment_root(root, cwd).unwrap();
            assert_eq!(root, want);
        }
        // Experiment 7's location under each, as MLflow's append_to_uri_path(root, "7") gave.
        for (root, want) in [
            ("mlflow-artifacts:/", "mlflow-artifacts:/7"),
            ("/srv/art/", "/srv/art/7"),
            ("s3://b/p?versionId=1", "s3://b/p/7?versionId=1"),
            ("s3://b", "s3://b/7"),
        ] {
            assert_eq!(append_to_uri_path(root, &["7"]), want, "{root}");
        }
        for bad in ["", "s3://b/p#frag", "runs:/abc/model", "s3://b/p?x=../y"] {
            assert!(experiment_root(bad, cwd).is_err(), "{bad}");
        }
    }
}
