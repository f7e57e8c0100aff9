//! Browser safety, as MLflow 3.5+'s security middleware: a Host allow-list (a page on an
//! attacker's domain that rebinds its name to this server's address sends its own `Host:`), no
//! CORS unless configured, state changes refused from foreign origins and, on the JSON APIs,
//! unless the body is JSON (an HTML form can send only urlencoded, multipart or text/plain, and
//! cross-origin `fetch` of anything else needs a preflight this server does not grant), and the
//! security headers on every response.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// MLflow's exact texts, so scripts that match them keep working.
const INVALID_HOST_MSG: &str = "Invalid Host header - possible DNS rebinding attack detected";
const CORS_BLOCKED_MSG: &str = "Cross-origin request blocked";

/// `--allowed-hosts` and `--cors-allowed-origins`.
#[derive(Clone, Debug)]
pub struct BrowserPolicy {
    /// Patterns (`*` matches any run of characters); `None`: any host (`*` given).
    hosts: Option<Vec<String>>,
    /// Patterns of origins that get CORS headers and may change state.
    origins: Vec<String>,
    /// `*` among the origins: every origin, without credentials, as MLflow.
    any_origin: bool,
}

impl BrowserPolicy {
    /// `allowed_hosts` empty: MLflow's default (loopback names and private-network addresses,
    /// any port) plus the address the server is bound to.
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String], bound: SocketAddr) -> Self {
        let hosts = if allowed_hosts.iter().any(|h| h == "*") {
            None
        } else if allowed_hosts.is_empty() {
            Some(default_hosts(bound.ip()))
        } else {
            Some(allowed_hosts.to_vec())
        };
        BrowserPolicy {
            hosts,
            any_origin: allowed_origins.iter().any(|o| o == "*"),
            origins: allowed_origins.to_vec(),
        }
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        match (&self.hosts, host) {
            (None, _) => true,
            // Unlike MLflow: browsers always send Host, so its absence (an HTTP/1.0 probe or
            // script) is no rebinding attack.
            (Some(_), None) => true,
            (Some(patterns), Some(host)) => patterns.iter().any(|p| wildcard(p, host)),
        }
    }

    fn origin_listed(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|p| wildcard(p, origin))
    }
}

fn default_hosts(bound: IpAddr) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]
        .iter()
        .flat_map(|h| [h.to_string(), format!("{h}:*")])
        .collect();
    hosts.extend(
        [
            "192.168.*",
            "10.*",
            "fc00:*",
            "fd00:*",
            "[fc00:*",
            "[fd00:*",
        ]
        .map(String::from),
    );
    hosts.extend((16..32).map(|i| format!("172.{i}.*")));
    if !bound.is_unspecified() {
        let name = match bound {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        hosts.push(format!("{name}:*"));
        hosts.push(name);
    }
    hosts
}

/// Glob matching with `*` only, case-insensitive (host names are).
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let mut parts = p.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = t.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Probes reach these whatever name they use.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/version") || path.starts_with("/v2/health/")
}

fn changes_state(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Routes whose bodies are JSON. Not the artifact proxy or the UI's `upload-artifact` (bytes,
/// whatever their type, as MLflow takes them), `/v2` (binary tensors) or the UI's own form
/// (same-origin only, with its own token).
fn is_json_api(path: &str) -> bool {
    let api = path.starts_with("/api/") || path.starts_with("/ajax-api/") || path == "/graphql";
    api && !path.starts_with("/api/2.0/mlflow-artifacts/")
        && !path.starts_with("/ajax-api/2.0/mlflow-artifacts/")
        && path != "/ajax-api/2.0/mlflow/upload-artifact"
}

/// The origin of this server as the browser sees it: the Host it addressed.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// MLflow's `_validate_content_type`, applied before any handler reads the body. A request
/// without a body needs no type (MLflow's client sends bodiless DELETEs).
fn content_type_error(headers: &HeaderMap) -> Option<ApiError> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    match headers.get(header::CONTENT_TYPE) {
        None if has_body => Some(ApiError::invalid(
            "Bad Request. Content-Type header is missing.",
        )),
        None => None,
        Some(value) => {
            let essence = value
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let json = essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"));
            (!json).then(|| {
                ApiError::invalid("Bad Request. Content-Type must be one of ['application/json'].")
            })
        }
    }
}

pub async fn guard(State(policy): State<Arc<BrowserPolicy>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !is_probe(&path) && !policy.host_allowed(host) {
        tracing::warn!(?host, "refused a request for a host not in --allowed-hosts");
        return with_headers(&path, plain(StatusCode::FORBIDDEN, INVALID_HOST_MSG));
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let listed = origin.as_deref().is_some_and(|o| policy.origin_listed(o));
    if let Some(origin) = &origin
        && changes_state(req.method())
        && !listed
        && !same_origin(origin, host)
    {
        tracing::warn!(origin, "refused a cross-origin state change");
        return with_headers(&path, plain(StatusCode::FORBIDDEN, CORS_BLOCKED_MSG));
    }
    if listed && req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS, PATCH"),
        );
        if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        cors(&policy, origin.as_deref(), &mut response);
        return with_headers(&path, response);
    }
    if changes_state(req.method())
        && is_json_api(&path)
        && let Some(error) = content_type_error(headers)
    {
        return with_headers(&path, error.into_response());
    }
    let mut response = next.run(req).await;
    if listed {
        cors(&policy, origin.as_deref(), &mut response);
    }
    with_headers(&path, response)
}

fn cors(policy: &BrowserPolicy, origin: Option<&str>, response: &mut Response) {
    let h = response.headers_mut();
    if policy.any_origin {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn with_headers(path: &str, mut response: Response) -> Response {
    // The UI previews an HTML artifact in a sandboxed frame of its own page.
    let frame = if path.ends_with("/artifacts/raw") {
        "SAMEORIGIN"
    } else {
        "DENY"
    };
    // A route that chose its own value (the UI's pages) keeps it.
    let h = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, frame),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> BrowserPolicy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        BrowserPolicy::new(&s(hosts), &s(origins), "127.0.0.1:5000".parse().unwrap())
    }

    #[test]
    fn default_hosts_are_loopback_and_private_networks() {
        let p = policy(&[], &[]);
        for ok in [
            "127.0.0.1:5000",
            "localhost",
            "[::1]:80",
            "10.1.2.3:5000",
            "172.20.0.1",
            "192.168.1.1:1",
        ] {
            assert!(p.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:5000",
            "172.32.0.1",
            "127.0.0.1.evil.example",
            "1.2.3.4",
        ] {
            assert!(!p.host_allowed(Some(bad)), "{bad}");
        }
        assert!(p.host_allowed(None));
        let bound = BrowserPolicy::new(&[], &[], "203.0.113.7:5000".parse().unwrap());
        assert!(bound.host_allowed(Some("203.0.113.7:5000")));
    }

    #[test]
    fn given_hosts_replace_the_default_and_star_allows_any() {
        let p = policy(&["mlflow.example.com", "*.internal:5000"], &[]);
        assert!(p.host_allowed(Some("MLflow.example.com")));
        assert!(p.host_allowed(Some("a.internal:5000")));
        assert!(!p.host_allowed(Some("127.0.0.1:5000")));
        assert!(policy(&["*"], &[]).host_allowed(Some("anything")));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("a*c*e", "abcde"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a*c", "ab"));
        assert!(!wildcard("abc", "abcd"));
        assert!(wildcard("https://*.example.com", "https://ui.example.com"));
    }

    #[test]
    fn same_origin_is_the_addressed_host() {
        assert!(same_origin("http://127.0.0.1:5000", Some("127.0.0.1:5000")));
        assert!(!same_origin(
            "http://127.0.0.1:5001",
            Some("127.0.0.1:5000")
        ));
        assert!(!same_origin("null", Some("127.0.0.1:5000")));
    }

    #[test]
    fn form_types_are_refused_and_json_passes() {
        let headers = |ct: Option<&str>, len: &str| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            }
            h.insert(header::CONTENT_LENGTH, len.parse().unwrap());
            h
        };
        for form in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
        ] {
            assert!(
                content_type_error(&headers(Some(form), "3")).is_some(),
                "{form}"
            );
        }
        assert!(
            content_type_error(&headers(Some("application/json; charset=utf-8"), "2")).is_none()
        );
        assert!(content_type_error(&headers(None, "0")).is_none());
        assert!(content_type_error(&headers(None, "2")).is_some());
        assert!(is_json_api("/api/2.0/mlflow/runs/create"));
        assert!(is_json_api("/api/twinloop/v1/deployments/d/rollback"));
        assert!(!is_json_api("/api/2.0/mlflow-artifacts/artifacts/a.bin"));
        assert!(!is_json_api("/v2/models/m/infer"));
        assert!(!is_json_api("/ajax-api/2.0/mlflow/upload-artifact"));
        assert!(!is_json_api("/models/m/aliases"));
    }
}
