//! What answers a path no route knows: browsers (which ask for HTML) get the web UI's 404 page,
//! API clients MLflow's JSON error. Also the tracking URI the experiments page tells users to set.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// `http://<Host>` as the browser reached this server, so the `MLFLOW_TRACKING_URI` a page shows
/// is right; a Host header with anything but host-name characters is not echoed.
pub(crate) fn tracking_uri(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .map_or_else(
            || "http://127.0.0.1:5000".to_string(),
            |h| format!("http://{h}"),
        )
}

pub(crate) async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    // Werkzeug, under MLflow's routes, redirects a path with repeated slashes to the merged one
    // (308 keeps the method); the merged path starts with one slash, so it names no other host.
    if uri.path().contains("//") {
        return (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, merged_slashes(&uri))],
        )
            .into_response();
    }
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let timing = crate::ui::Timing::start();
        return timing.page(
            StatusCode::NOT_FOUND,
            twinloop_ui::not_found_page(&format!("Nothing lives at {}.", uri.path())),
        );
    }
    crate::ApiError::no_endpoint(uri.path()).into_response()
}

fn merged_slashes(uri: &Uri) -> String {
    let mut merged = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    if let Some(query) = uri.query() {
        merged.push('?');
        merged.push_str(query);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_slashes_redirect_to_the_merged_path_on_this_host() {
        let uri: Uri = "//model-versions//get-artifact?path=a//b".parse().unwrap();
        assert_eq!(
            merged_slashes(&uri),
            "/model-versions/get-artifact?path=a//b"
        );
        let uri: Uri = "//evil.example/x".parse().unwrap();
        assert_eq!(merged_slashes(&uri), "/evil.example/x");
    }

    #[test]
    fn the_tracking_uri_is_the_address_the_browser_used() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "10.1.2.3:5001".parse().unwrap());
        assert_eq!(tracking_uri(&headers), "http://10.1.2.3:5001");
    }

    #[test]
    fn a_hostile_host_header_is_not_echoed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "x<script>".parse().unwrap());
        assert_eq!(tracking_uri(&headers), "http://127.0.0.1:5000");
    }
}
