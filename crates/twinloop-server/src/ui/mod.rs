//! The web UI's routes: thin handlers that read the store and hand domain values to
//! `twinloop-ui`'s render functions. Every page answers with a CSP that allows this server's
//! own scripts, styles and images only (no inline script or style, no other host), and every
//! handler reports where its time went in `Server-Timing`.

mod artifacts;
mod pages;
mod registry;
mod row_orders;

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;
use twinloop_core::{Error, ErrorKind};
use twinloop_ui::Markup;

use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::experiments))
        .route("/experiments", get(pages::experiments))
        .route("/experiments/{id}", get(pages::runs))
        .route("/experiments/{id}/rows", get(pages::rows))
        .route("/experiments/{id}/compare", get(pages::compare))
        .route("/experiments/{id}/runs/{run_id}", get(pages::run))
        .route(
            "/experiments/{id}/runs/{run_id}/artifacts",
            get(artifacts::page),
        )
        .route(
            "/experiments/{id}/runs/{run_id}/metrics/{key}",
            get(pages::metric),
        )
        .route("/models", get(registry::models))
        .route("/models/{name}", get(registry::model))
        .route("/models/{name}/aliases", post(registry::set_alias))
        .route(
            "/models/{name}/aliases/delete",
            get(registry::confirm_delete_alias).post(registry::delete_alias),
        )
        .route("/models/{name}/versions/{version}", get(registry::version))
        .route(
            "/models/{name}/versions/{version}/alias",
            get(registry::confirm_alias),
        )
        .route("/runs/{run_id}", get(registry::run_by_id))
        .layer(compressed())
        // Added after the layer, so it leaves them alone: assets are stored gzipped already, and
        // an artifact is the user's bytes, often compressed, served with their length.
        .route(
            "/experiments/{id}/runs/{run_id}/artifacts/raw",
            get(artifacts::raw),
        )
        .route("/static/{file}", get(asset))
}

/// Gzip for the UI's HTML and data answers when the client accepts it: they are text that
/// shrinks several times over (the 1,000-run compare page is 723 KB of HTML). Not on MLflow's
/// REST routes, whose clients measure raw throughput. The default predicate skips bodies under
/// 32 bytes, images and event streams, and a streamed body is compressed as it goes.
pub(crate) fn compressed() -> CompressionLayer {
    CompressionLayer::new()
}

/// `frame-src 'self'` is for artifact previews, which load in sandboxed frames.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'self'";

/// How long each step of a handler took, for `Server-Timing`.
pub(crate) struct Timing {
    start: Instant,
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Timing {
    pub(crate) fn start() -> Self {
        let now = Instant::now();
        Timing {
            start: now,
            last: now,
            steps: Vec::new(),
        }
    }

    /// Ends a step called `name` (a step may end several times; the times add up).
    pub(crate) fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        match self.steps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) => *d += took,
            None => self.steps.push((name, took)),
        }
    }

    fn header(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut out = String::new();
        for (name, d) in &self.steps {
            let _ = write!(out, "{name};dur={:.3}, ", ms(*d));
        }
        let _ = write!(out, "total;dur={:.3}", ms(self.start.elapsed()));
        out
    }

    /// The page for a failure: a missing id (or one that cannot exist) is a 404 page, anything
    /// else a 500 page whose details go to the log only.
    pub(crate) fn failed(&self, e: &Error) -> Response {
        match e.kind {
            ErrorKind::NotFound | ErrorKind::InvalidArgument => self.page(
                StatusCode::NOT_FOUND,
                twinloop_ui::not_found_page(&e.message),
            ),
            _ => {
                tracing::error!(error = %e, "web UI page failed");
                self.page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    twinloop_ui::error_page("The server could not read this page's data."),
                )
            }
        }
    }

    /// An HTML page with the UI's security headers and this handler's timing.
    pub(crate) fn page(&self, status: StatusCode, markup: Markup) -> Response {
        let mut response = (status, markup.into_string()).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.set_header(h);
        response
    }

    /// A plain-text refusal for a page's script (a window of rows), with this handler's timing.
    pub(crate) fn text(&self, status: StatusCode, message: &str) -> Response {
        let mut response = (status, message.to_string()).into_response();
        let h = response.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        self.set_header(h);
        response
    }

    fn set_header(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.header()) {
            headers.insert("server-timing", v);
        }
    }
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `/static/{file}`: an embedded asset by its content-hashed name, cacheable for good.
async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let mut timing = Timing::start();
    let Some(asset) = twinloop_ui::assets::lookup(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let gzip = accepts_gzip(&headers).then(|| asset.gzipped()).flatten();
    let mut response = gzip.unwrap_or(asset.bytes).to_vec().into_response();
    timing.lap("asset");
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gzip.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    timing.set_header(h);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        h
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&encoding("gzip, deflate, br")));
        assert!(accepts_gzip(&encoding("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&encoding("gzip;q=0")));
        assert!(!accepts_gzip(&encoding("br, x-gzip2")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn timing_names_each_step_and_the_total() {
        let mut t = Timing::start();
        t.lap("store");
        t.lap("render");
        t.lap("store");
        let h = t.header();
        assert!(h.starts_with("store;dur="), "{h}");
        assert_eq!(h.matches("store;").count(), 1, "{h}");
        assert!(
            h.contains(", render;dur=") && h.contains(", total;dur="),
            "{h}"
        );
    }
}
